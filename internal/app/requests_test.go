package app_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"steward/internal/app/apptest"
	"steward/internal/apperr"
	"steward/internal/datamap/residuetest"
	"steward/internal/requests"
)

// A request's life on the desk: received with its due date and acknowledged by mail,
// worked and closed by staff with every change an event and an audit entry, extended
// within the law's limits, sealed at rest, in the member's export, gone with the
// member, and the staff member who acted blanked when they are erased.
func TestRequestLifecycle(t *testing.T) {
	apptest.Each(t, func(t *testing.T, h *apptest.Harness) {
		ctx := context.Background()
		desk := h.App.Requests()
		memberID, token := h.Member("asker@example.org", "correct horse battery", nil)
		otherID, _ := h.Member("other.asker@example.org", "correct horse battery", nil)
		dpoID, _ := h.Member("dpo@example.org", "correct horse battery", nil)
		if err := h.App.Staff().Grant(ctx, dpoID, "dpo"); err != nil {
			t.Fatal(err)
		}
		staff := requests.Actor{Kind: requests.ByStaff, ID: dpoID, IP: "192.0.2.77"}
		const complaint = "Zebulon complained that the quarterly mailing ignored his objection"

		// Bad input first: nothing is recorded.
		for _, c := range []struct {
			sub  requests.Submission
			code string
		}{
			{requests.Submission{SubjectID: memberID, Right: "forget-me"}, "right_unknown"},
			{requests.Submission{SubjectID: memberID}, "required"},
			{requests.Submission{SubjectID: memberID, Right: requests.Complaint, Details: "  "}, "required"},
			{requests.Submission{SubjectID: memberID, Right: requests.Inquiry, Details: strings.Repeat("x", 10001)}, "too_long"},
			{requests.Submission{SubjectID: memberID, Right: requests.Inquiry, Details: "a\x00b"}, "invalid"},
		} {
			_, _, err := desk.Submit(ctx, c.sub)
			if e, ok := apperr.As(err); !ok || e.Code != c.code {
				t.Errorf("Submit(%+v) = %v, want %s", c.sub.Right, err, c.code)
			}
		}
		if list, _ := desk.List(ctx, memberID); len(list) != 0 {
			t.Fatalf("refused submissions recorded: %v", list)
		}

		received := h.Clock.Now()
		req, created, err := desk.Submit(ctx, requests.Submission{SubjectID: memberID, Right: requests.Complaint, Details: complaint})
		if err != nil || !created {
			t.Fatalf("Submit = %v, %v", created, err)
		}
		if want := requests.DueDate(received, 0); req.DueDate != want || req.State != requests.Received {
			t.Errorf("request due %s in %s, want %s, received", req.DueDate, req.State, want)
		}
		if ack := mailWith(h, "asker@example.org", "was received"); !strings.Contains(ack, req.DueDate.Long()) || !strings.Contains(ack, "complaint") {
			t.Errorf("acknowledgment lacks the due date %s:\n%s", req.DueDate.Long(), ack)
		}
		// Sent twice (a double click): one request.
		again, created, err := desk.Submit(ctx, requests.Submission{SubjectID: memberID, Right: requests.Complaint, Details: complaint})
		if err != nil || created || again.ID != req.ID {
			t.Errorf("second identical submission = %s created %v (%v), want the first, %s", again.ID, created, err, req.ID)
		}

		// Staff work it: the state machine holds, and every change is an event.
		if _, err := desk.Transition(ctx, req.ID, requests.Change{State: requests.Unconfirmed}, staff); apperr.KindOf(err) != apperr.Invalid {
			t.Errorf("received -> unconfirmed = %v, want invalid", err)
		}
		if _, err := desk.Transition(ctx, req.ID, requests.Change{State: "lost"}, staff); apperr.KindOf(err) != apperr.Invalid {
			t.Errorf("unknown state = %v, want invalid", err)
		}
		if _, err := desk.Transition(ctx, req.ID, requests.Change{State: requests.InProgress, Note: "Looking into the mailing logs"}, staff); err != nil {
			t.Fatal(err)
		}
		if _, err := desk.Transition(ctx, req.ID, requests.Change{State: requests.Done}, staff); apperr.KindOf(err) != apperr.Invalid {
			t.Errorf("a complaint closed without an answer = %v, want invalid", err)
		}
		const answer = "The objection was recorded late; Quillon fixed it"
		if _, err := desk.Transition(ctx, req.ID, requests.Change{State: requests.Done, Note: answer}, staff); err != nil {
			t.Fatal(err)
		}
		if _, err := desk.Transition(ctx, req.ID, requests.Change{State: requests.InProgress}, staff); apperr.KindOf(err) != apperr.Conflict {
			t.Errorf("a closed request reopened = %v, want conflict", err)
		}
		if closed := mailWith(h, "asker@example.org", "Subject: Your request to Steward: done"); !strings.Contains(closed, answer) {
			t.Errorf("closing mail lacks the answer:\n%s", closed)
		}
		got, events, err := desk.Get(ctx, req.ID)
		if err != nil || got.State != requests.Done || got.ClosedAt.IsZero() || got.Details != complaint {
			t.Fatalf("Get = %+v, %v", got, err)
		}
		var trail []string
		for _, e := range events {
			trail = append(trail, e.Action+":"+e.From+">"+e.To+":"+e.Actor+":"+e.ActorID+":"+e.Note)
		}
		want := []string{"created:>received:requester::", "state:received>in_progress:staff:" + dpoID + ":Looking into the mailing logs",
			"state:in_progress>done:staff:" + dpoID + ":" + answer}
		if strings.Join(trail, "\n") != strings.Join(want, "\n") {
			t.Errorf("events:\n%s\nwant:\n%s", strings.Join(trail, "\n"), strings.Join(want, "\n"))
		}
		audit, err := h.App.Audit().ForAccount(ctx, h.App.DB(), dpoID, 20)
		if err != nil {
			t.Fatal(err)
		}
		var audited int
		for _, e := range audit {
			if e.Event == "privacy_request_state" && strings.Contains(e.Detail, req.ID) && e.IP == "192.0.2.77" {
				audited++
			}
		}
		if audited != 2 {
			t.Errorf("%d audit entries of the staff member's changes, want 2: %+v", audited, audit)
		}

		// Extensions: a reason, at most two months in all, and only within the first month.
		ext, _, err := desk.Submit(ctx, requests.Submission{SubjectID: memberID, Right: requests.Rectification, Details: "My birth name is Oddny"})
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range []struct {
			months int
			reason string
			code   string
		}{{3, "complex", "months_invalid"}, {0, "complex", "months_invalid"}, {1, " ", "required"}} {
			if _, err := desk.Extend(ctx, ext.ID, c.months, c.reason, staff); codeOf(err) != c.code {
				t.Errorf("Extend(%d, %q) = %v, want %s", c.months, c.reason, err, c.code)
			}
		}
		ext, err = desk.Extend(ctx, ext.ID, 1, "Archives in another office", staff)
		if err != nil || ext.DueDate != requests.DueDate(ext.ReceivedAt, 1) || ext.ExtendedMonths != 1 {
			t.Fatalf("Extend = %+v, %v", ext, err)
		}
		if m := mailWith(h, "asker@example.org", "Archives in another office"); !strings.Contains(m, "Archives in another office") || !strings.Contains(m, ext.DueDate.Long()) {
			t.Errorf("extension mail lacks the reason or the new date:\n%s", m)
		}
		if _, err := desk.Extend(ctx, ext.ID, 2, "more", staff); codeOf(err) != "extension_too_long" {
			t.Errorf("extension past three months = %v", err)
		}
		if ext, err = desk.Extend(ctx, ext.ID, 1, "Still waiting for the archives", staff); err != nil || ext.DueDate != requests.DueDate(ext.ReceivedAt, 2) {
			t.Fatalf("second extension = %+v, %v", ext, err)
		}
		// At rest the request's text is sealed; the export opens it.
		terms := []string{"Zebulon", "Quillon", "Oddny", "Archives in another office"}
		if found := residuetest.RawFindings(t, h.App.DB(), terms...); len(found) > 0 {
			t.Fatalf("a request's text is on disk in plain text: %v", found)
		}
		exp := get(h, token, "/api/v1/me/export", nil)
		files := unzip(t, exp.Body)
		for path, want := range map[string][]string{
			"requests/privacy_requests.csv":       {complaint, "Oddny", "complaint", "rectification"},
			"requests/privacy_request_events.csv": {answer, "Archives in another office"},
		} {
			for _, w := range want {
				if !strings.Contains(files[path], w) {
					t.Errorf("export %s lacks %q:\n%s", path, w, files[path])
				}
			}
		}
		if strings.Contains(files["requests/privacy_request_events.csv"], dpoID) {
			t.Errorf("the export names the staff member's id:\n%s", files["requests/privacy_request_events.csv"])
		}

		late, _, err := desk.Submit(ctx, requests.Submission{SubjectID: otherID, Right: requests.Inquiry, Details: "What do you hold?"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := desk.Transition(ctx, late.ID, requests.Change{State: requests.InProgress}, staff); err != nil {
			t.Fatal(err)
		}
		h.Clock.Advance(32 * 24 * time.Hour)
		if _, err := desk.Extend(ctx, late.ID, 1, "too late", staff); codeOf(err) != "extension_late" {
			t.Errorf("extension after the first month = %v", err)
		}
		if q, err := desk.Queue(ctx, requests.Filter{State: requests.StateOpen, DueBefore: requests.DateOf(h.Clock.Now())}); err != nil ||
			len(q) != 1 || q[0].ID != late.ID || !q[0].Overdue(requests.DateOf(h.Clock.Now())) {
			t.Errorf("overdue queue = %+v, %v; want only %s", q, err, late.ID)
		}
		if q, err := desk.Queue(ctx, requests.Filter{}); err != nil || len(q) != 3 || q[0].DueDate > q[1].DueDate || q[1].DueDate > q[2].DueDate ||
			q[2].ID != ext.ID {
			t.Errorf("queue = %+v (%v), want 3, the soonest due first", q, err)
		}

		// Erasing the member takes their requests; erasing the staff member blanks
		// them on the other member's request, which stays.
		if err := h.App.Rights().EraseNow(ctx, memberID, "operator"); err != nil {
			t.Fatal(err)
		}
		if err := h.App.Rights().EraseNow(ctx, dpoID, "operator"); err != nil {
			t.Fatal(err)
		}
		var mine, actor, others int
		if err := h.App.DB().QueryRowContext(ctx, `SELECT
			(SELECT count(*) FROM privacy_requests WHERE subject_id = $1) + (SELECT count(*) FROM privacy_request_events WHERE subject_id = $1),
			(SELECT count(*) FROM privacy_request_events WHERE actor_id = $2),
			(SELECT count(*) FROM privacy_request_events WHERE subject_id = $3 AND actor = 'staff')`, memberID, dpoID, otherID).
			Scan(&mine, &actor, &others); err != nil {
			t.Fatal(err)
		}
		if mine != 0 || actor != 0 || others != 1 {
			t.Errorf("after erasures: %d rows of the member, %d naming the staff member, %d staff events on the other's request (want 0, 0, 1)",
				mine, actor, others)
		}
		if found := residuetest.RawFindings(t, h.App.DB(), terms...); len(found) > 0 {
			t.Fatalf("after erasure: %v", found)
		}
	})
}

// codeOf is the code of an error a person sees, or "".
func codeOf(err error) string {
	if e, ok := apperr.As(err); ok {
		return e.Code
	}
	return ""
}

// mailWith waits for a mail to addr that contains s and returns it.
func mailWith(h *apptest.Harness, addr, s string) string {
	h.T.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		for _, m := range h.Mails(addr) {
			if strings.Contains(m.Raw, s) {
				return m.Raw
			}
		}
		if time.Now().After(deadline) {
			h.T.Fatalf("no mail to %s contains %q", addr, s)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
