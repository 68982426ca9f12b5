package app_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"steward/internal/app/apptest"
	"steward/internal/apperr"
	"steward/internal/datamap/residuetest"
	"steward/internal/requests"
	"steward/internal/server"
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
		if err := h.GrantStaff(ctx, dpoID, "dpo"); err != nil {
			t.Fatal(err)
		}
		staff := requests.Actor{Kind: requests.ByStaff, ID: dpoID, IP: "192.0.2.77"}
		const complaint = "Zebulonquist complained that the quarterly mailing ignored his objection"

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
		const answer = "The objection was recorded late; Quillonwright fixed it"
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
		ext, _, err := desk.Submit(ctx, requests.Submission{SubjectID: memberID, Right: requests.Rectification, Details: "My birth name is Oddnyrathbone"})
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
		// Long terms: a short one turns up by chance in the base64 of sealed values across
		// the whole cluster's WAL, which the raw scan reads on PostgreSQL.
		terms := []string{"Zebulonquist", "Quillonwright", "Oddnyrathbone", "Archives in another office"}
		if found := residuetest.RawFindings(t, h.App.DB(), terms...); len(found) > 0 {
			t.Fatalf("a request's text is on disk in plain text: %v", found)
		}
		exp := get(h, token, "/api/v1/me/export", nil)
		files := unzip(t, exp.Body)
		for path, want := range map[string][]string{
			"requests/privacy_requests.csv":       {complaint, "Oddnyrathbone", "complaint", "rectification"},
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

// The privacy center's API: every right through POST /api/v1/me/requests, carried out
// by the flow that already does it or left for staff, each shown with its state and
// due date, with the contacts from config; bad input refused, another member's
// requests out of reach.
func TestPrivacyCenterAPI(t *testing.T) {
	apptest.EachDatabase(t, func(t *testing.T, dbURL string) {
		h := apptest.Start(t, dbURL, "--dpo-contact", "Jane Roe, dpo@example.com", "--eu-representative", "EU Rep GmbH, Berlin",
			"--supervisory-authority", "The Commissioner, https://authority.example")
		const pw = "correct horse battery"
		_, token := h.Member("center@example.org", pw, nil)
		_, other := h.Member("center.other@example.org", pw, nil)
		post := func(body map[string]any) apptest.Response {
			t.Helper()
			return h.Do("POST", "/api/v1/me/requests", body, token)
		}

		list := jsonOK(t, h.Do("GET", "/api/v1/me/requests", nil, token))
		c := list["contacts"].(map[string]any)
		if c["dpo"] != "Jane Roe, dpo@example.com" || c["eu_representative"] != "EU Rep GmbH, Berlin" ||
			c["supervisory_authority"] != "The Commissioner, https://authority.example" {
			t.Errorf("contacts = %v", c)
		}
		if rs := list["requests"].([]any); len(rs) != 0 || len(list["rights"].([]any)) != 9 {
			t.Errorf("a new member's list = %v", list)
		}

		// Bad input: a clear error on the field, nothing recorded.
		for _, c := range []struct {
			body        map[string]any
			field, code string
		}{
			{map[string]any{}, "right", "required"},
			{map[string]any{"right": "be_forgotten"}, "right", "right_unknown"},
			{map[string]any{"right": "rectification"}, "details", "required"},
			{map[string]any{"right": "complaint", "details": strings.Repeat("é", 10001)}, "details", "too_long"},
			{map[string]any{"right": "restriction"}, "restricted", "required"},
			{map[string]any{"right": "objection", "purpose": "newsletter"}, "purpose", "not_objectable"},
			{map[string]any{"right": "withdrawal", "purpose": "security"}, "purpose", "not_consent"},
			{map[string]any{"right": "withdrawal", "purpose": "no_such_purpose"}, "purpose", "purpose_unknown"},
			{map[string]any{"right": "erasure"}, "password", "required"},
		} {
			r := post(c.body)
			if f, code := r.ErrorField(); r.Status != 400 || f != c.field || code != c.code {
				t.Errorf("%v = %d %s, want 400 on %s (%s)", c.body, r.Status, r.Body, c.field, c.code)
			}
		}
		if r := post(map[string]any{"right": "withdrawal"}); r.Status != 409 {
			t.Errorf("withdrawing with no consent given = %d %s, want 409", r.Status, r.Body)
		}
		if r := post(map[string]any{"right": "erasure", "password": "wrong password!"}); r.Status < 400 || r.Status == 202 {
			t.Errorf("erasure with a wrong password = %d %s", r.Status, r.Body)
		}
		if rs := jsonOK(t, h.Do("GET", "/api/v1/me/requests", nil, token))["requests"].([]any); len(rs) != 0 {
			t.Fatalf("refused requests recorded: %v", rs)
		}

		// Rights carried out at once are recorded as done.
		access := post(map[string]any{"right": "access"})
		if access.Status != 201 || access.JSON()["state"] != "done" || access.JSON()["links"].(map[string]any)["export"] != "/api/v1/me/export" {
			t.Errorf("access = %d %s", access.Status, access.Body)
		}
		if r := post(map[string]any{"right": "restriction", "restricted": true}); r.Status != 201 || r.JSON()["state"] != "done" {
			t.Errorf("restriction = %d %s", r.Status, r.Body)
		}
		if !jsonOK(t, h.Do("GET", "/api/v1/me/consents", nil, token))["restricted"].(bool) {
			t.Error("restriction not in the ledger")
		}
		if r := post(map[string]any{"right": "restriction", "restricted": false}); r.Status != 201 {
			t.Errorf("lifting = %d %s", r.Status, r.Body)
		}
		if jsonOK(t, h.Do("GET", "/api/v1/me/consents", nil, token))["restricted"].(bool) {
			t.Error("restriction not lifted")
		}
		if r := post(map[string]any{"right": "objection", "purpose": "security"}); r.Status != 201 {
			t.Errorf("objection = %d %s", r.Status, r.Body)
		}
		if r := h.Do("PUT", "/api/v1/me/consents", map[string]any{"choices": map[string]bool{"newsletter": true, "own_offers": true}}, token); r.Status != 200 {
			t.Fatalf("opt in = %d %s", r.Status, r.Body)
		}
		if r := post(map[string]any{"right": "withdrawal", "purpose": "newsletter"}); r.Status != 201 {
			t.Errorf("withdrawal = %d %s", r.Status, r.Body)
		}
		decisions := map[string]string{}
		for _, p := range jsonOK(t, h.Do("GET", "/api/v1/me/consents", nil, token))["purposes"].([]any) {
			p := p.(map[string]any)
			decisions[p["key"].(string)] = p["decision"].(string)
		}
		if decisions["newsletter"] != "withdrawn" || decisions["own_offers"] != "granted" || decisions["security"] != "withdrawn" {
			t.Errorf("decisions after objection and one withdrawal = %v", decisions)
		}
		if r := post(map[string]any{"right": "withdrawal"}); r.Status != 201 {
			t.Errorf("withdrawing every consent = %d %s", r.Status, r.Body)
		}
		for _, p := range jsonOK(t, h.Do("GET", "/api/v1/me/consents", nil, token))["purposes"].([]any) {
			if p := p.(map[string]any); p["decision"] == "granted" {
				t.Errorf("%s still granted after withdrawing every consent", p["key"])
			}
		}

		// What needs a person waits for staff, with its due date; twice is once.
		rect := post(map[string]any{"right": "rectification", "details": "My name at birth was Zorbalind"})
		if rect.Status != 201 || rect.JSON()["state"] != "received" || rect.JSON()["due_date"] != requests.DueDate(h.Clock.Now(), 0).String() {
			t.Fatalf("rectification = %d %s", rect.Status, rect.Body)
		}
		id := rect.JSON()["id"].(string)
		if again := post(map[string]any{"right": "rectification", "details": "My name at birth was Zorbalind"}); again.Status != 200 || again.JSON()["id"] != id {
			t.Errorf("the same request again = %d %s, want 200 with %s", again.Status, again.Body, id)
		}
		if r := post(map[string]any{"right": "inquiry", "details": "Whom do you share my data with?"}); r.Status != 201 {
			t.Errorf("inquiry = %d %s", r.Status, r.Body)
		}
		rs := jsonOK(t, h.Do("GET", "/api/v1/me/requests", nil, token))["requests"].([]any)
		if len(rs) != 8 {
			t.Errorf("%d requests listed, want 8", len(rs))
		}
		for _, r := range rs {
			r := r.(map[string]any)
			if r["due_date"] == "" || r["state"] == "" || r["right"] == "" {
				t.Errorf("listed without right, state or due date: %v", r)
			}
		}
		one := jsonOK(t, h.Do("GET", "/api/v1/me/requests/"+id, nil, token))
		if evs := one["events"].([]any); len(evs) != 1 || one["details"] != "My name at birth was Zorbalind" {
			t.Errorf("one request = %v", one)
		}
		if r := h.Do("GET", "/api/v1/me/requests/"+id, nil, other); r.Status != 404 {
			t.Errorf("another member reads it: %d", r.Status)
		}
		if r := h.Do("POST", "/api/v1/me/requests/"+id+"/withdraw", nil, other); r.Status != 404 {
			t.Errorf("another member withdraws it: %d", r.Status)
		}
		if r := h.Do("POST", "/api/v1/me/requests/"+id+"/withdraw", nil, token); r.Status != 200 || r.JSON()["state"] != "withdrawn" {
			t.Errorf("withdraw = %d %s", r.Status, r.Body)
		}
		if r := h.Do("POST", "/api/v1/me/requests/"+id+"/withdraw", nil, token); r.Status != 409 {
			t.Errorf("withdraw twice = %d %s, want 409", r.Status, r.Body)
		}

		// Erasure is the account's erasure, which takes the requests with it.
		er := post(map[string]any{"right": "erasure", "password": pw})
		if er.Status != 202 || er.JSON()["links"].(map[string]any)["erasure"] == nil {
			t.Fatalf("erasure = %d %s", er.Status, er.Body)
		}
		h.WaitErasure(er.JSON()["id"].(string))
		var left int
		if err := h.App.DB().QueryRowContext(t.Context(), `SELECT count(*) FROM privacy_requests WHERE requester = 'member'`).Scan(&left); err != nil || left != 0 {
			t.Errorf("%d requests left after the erasure (%v)", left, err)
		}
	})
}

// The DPO's queue through the API: filters, a change with a note, an extension, every
// one an event and in the audit log; mistakes refused.
func TestDPOQueueAPI(t *testing.T) {
	apptest.Each(t, func(t *testing.T, h *apptest.Harness) {
		ctx := t.Context()
		_, token := h.Member("queue.member@example.org", "correct horse battery", nil)
		dpoID, dpoToken := h.Member("queue.dpo@example.org", "correct horse battery", nil)
		if err := h.GrantStaff(ctx, dpoID, "dpo"); err != nil {
			t.Fatal(err)
		}
		first := h.Do("POST", "/api/v1/me/requests", map[string]any{"right": "complaint", "details": "You mailed me after I objected"}, token).JSON()["id"].(string)
		h.Clock.Advance(3 * 24 * time.Hour)
		h.KeepStaff(ctx, dpoID) // a staff session idle that long has ended: they gave a code again
		second := h.Do("POST", "/api/v1/me/requests", map[string]any{"right": "inquiry", "details": "Where is my data stored?"}, token).JSON()["id"].(string)

		ids := func(path string) []string {
			t.Helper()
			var out []string
			for _, r := range jsonOK(t, h.Do("GET", path, nil, dpoToken))["requests"].([]any) {
				out = append(out, r.(map[string]any)["id"].(string))
			}
			return out
		}
		if got := ids("/api/v1/staff/requests?state=open"); strings.Join(got, ",") != first+","+second {
			t.Errorf("open queue = %v, want the sooner due first", got)
		}
		cut := requests.DueDate(h.Clock.Now(), 0).String() // after the first's due date, on the second's
		if got := ids("/api/v1/staff/requests?due_before=" + cut); len(got) != 1 || got[0] != first {
			t.Errorf("due before %s = %v, want only %s", cut, got, first)
		}
		for _, bad := range []string{"?state=lost", "?due_before=31.01.2027", "?due_before=2027-02-30", "?limit=0"} {
			if r := h.Do("GET", "/api/v1/staff/requests"+bad, nil, dpoToken); r.Status != 400 {
				t.Errorf("%s = %d %s, want 400", bad, r.Status, r.Body)
			}
		}

		st := h.Do("POST", "/api/v1/staff/requests/"+first+"/state", map[string]any{"state": "in_progress", "note": "Checking the send logs"}, dpoToken)
		if st.Status != 200 || st.JSON()["state"] != "in_progress" || len(st.JSON()["events"].([]any)) != 2 {
			t.Fatalf("change = %d %s", st.Status, st.Body)
		}
		if r := h.Do("POST", "/api/v1/staff/requests/"+first+"/state", map[string]any{"state": "refused"}, dpoToken); r.Status != 400 {
			t.Errorf("refusal without a reason = %d %s", r.Status, r.Body)
		}
		ext := h.Do("POST", "/api/v1/staff/requests/"+first+"/extension", map[string]any{"months": 2, "reason": "Many requests this month"}, dpoToken)
		want := requests.DueDate(h.Clock.Now().Add(-3*24*time.Hour), 2).String()
		if ext.Status != 200 || ext.JSON()["due_date"] != want || ext.JSON()["extended_months"] != float64(2) {
			t.Errorf("extension = %d %s, want due %s", ext.Status, ext.Body, want)
		}
		if r := h.Do("POST", "/api/v1/staff/requests/"+first+"/extension", map[string]any{"months": 1, "reason": "more"}, dpoToken); r.Status != 400 {
			t.Errorf("extension past three months = %d %s", r.Status, r.Body)
		}
		if r := h.Do("POST", "/api/v1/staff/requests/no-such-request/state", map[string]any{"state": "done", "note": "x"}, dpoToken); r.Status != 404 {
			t.Errorf("unknown request = %d", r.Status)
		}
		done := h.Do("POST", "/api/v1/staff/requests/"+first+"/state", map[string]any{"state": "done", "note": "We fixed the suppression list"}, dpoToken)
		if done.Status != 200 || done.JSON()["closed_at"] == nil {
			t.Fatalf("done = %d %s", done.Status, done.Body)
		}
		mine := jsonOK(t, h.Do("GET", "/api/v1/me/requests/"+first, nil, token))
		var notes []string
		for _, e := range mine["events"].([]any) {
			e := e.(map[string]any)
			if e["actor_id"] != nil {
				t.Errorf("the member sees the staff member's id: %v", e)
			}
			if n, _ := e["note"].(string); n != "" {
				notes = append(notes, n)
			}
		}
		if strings.Join(notes, "|") != "Checking the send logs|Many requests this month|We fixed the suppression list" {
			t.Errorf("the member's history notes = %v", notes)
		}
		audit, err := h.App.Audit().ForAccount(ctx, h.App.DB(), dpoID, 20)
		if err != nil {
			t.Fatal(err)
		}
		var kinds []string
		for _, e := range audit {
			if strings.Contains(e.Detail, first) {
				kinds = append(kinds, e.Event)
			}
		}
		if strings.Join(kinds, ",") != "privacy_request_state,privacy_request_extended,privacy_request_state" {
			t.Errorf("audit of the staff member = %v", kinds)
		}
	})
}

// The daily warning: staff of the dpo role are mailed the requests due within 7 days
// and the overdue ones, once a day however often the job runs; closed requests do not
// count, and the queue shows the same figures.
func TestRequestsDueWarning(t *testing.T) {
	apptest.Each(t, func(t *testing.T, h *apptest.Harness) {
		ctx := t.Context()
		desk := h.App.Requests()
		memberID, _ := h.Member("late.member@example.org", "correct horse battery", nil)
		dpoID, _ := h.Member("warned.dpo@example.org", "correct horse battery", nil)
		adminID, _ := h.Member("not.warned.admin@example.org", "correct horse battery", nil)
		if err := errors.Join(h.GrantStaff(ctx, dpoID, "dpo"), h.GrantStaff(ctx, adminID, "admin")); err != nil {
			t.Fatal(err)
		}
		warn := func(wantOverdue, wantSoon int, wantSent bool) {
			t.Helper()
			sum, sent, err := desk.WarnDue(ctx)
			if err != nil || sum.Overdue != wantOverdue || sum.Soon != wantSoon || sent != wantSent {
				t.Errorf("WarnDue on %s = %+v, sent %v (%v); want %d overdue, %d soon, sent %v",
					requests.DateOf(h.Clock.Now()), sum, sent, err, wantOverdue, wantSoon, wantSent)
			}
		}
		dueMails := func() int {
			return len(mailsWith(h, "warned.dpo@example.org", "Privacy requests at Steward need an answer"))
		}

		warn(0, 0, false) // nothing open
		first, _, err := desk.Submit(ctx, requests.Submission{SubjectID: memberID, Right: requests.Inquiry, Details: "What do you keep?"})
		if err != nil {
			t.Fatal(err)
		}
		closed, _, err := desk.Submit(ctx, requests.Submission{SubjectID: memberID, Right: requests.Complaint, Details: "A complaint"})
		if err != nil {
			t.Fatal(err)
		}
		warn(0, 0, false) // due in a month

		// 25 days on, both are due within 7 days; the closed one does not count.
		h.Clock.Advance(25 * 24 * time.Hour)
		if _, err := desk.Transition(ctx, closed.ID, requests.Change{State: requests.Done, Note: "Answered"},
			requests.Actor{Kind: requests.ByStaff, ID: dpoID}); err != nil {
			t.Fatal(err)
		}
		warn(0, 1, true)
		warn(0, 1, false) // once a day
		if m := mailWith(h, "warned.dpo@example.org", "Privacy requests at Steward need an answer"); !strings.Contains(m, "0 overdue, 1 due within 7 days") ||
			!strings.Contains(m, "/staff/requests?state=open") {
			t.Errorf("the warning:\n%s", m)
		}
		if n := len(mailsWith(h, "not.warned.admin@example.org", "need an answer")); n != 0 {
			t.Errorf("an admin without the dpo role got %d warnings", n)
		}

		// Past its due date it is overdue, and the queue says so too.
		h.Clock.Advance(10 * 24 * time.Hour)
		if _, _, err := desk.Submit(ctx, requests.Submission{SubjectID: memberID, Right: requests.Inquiry, Details: "Another question"}); err != nil {
			t.Fatal(err)
		}
		warn(1, 0, true)
		waitFor(t, func() bool { return dueMails() == 2 })
		if m := mailWith(h, "warned.dpo@example.org", "1 overdue, 0 due within 7 days"); m == "" {
			t.Error("no overdue warning")
		}
		q, err := desk.Queue(ctx, requests.Filter{State: requests.StateOpen, DueBefore: requests.DateOf(h.Clock.Now())})
		if err != nil || len(q) != 1 || q[0].ID != first.ID {
			t.Errorf("overdue in the queue = %+v (%v), want %s", q, err, first.ID)
		}
		// The staff pages show it: the API's counts and the queue page's banner.
		tok := h.StaffLogin(dpoID, "warned.dpo@example.org", "correct horse battery")
		if l := jsonOK(t, h.Do("GET", "/api/v1/staff/requests?state=open", nil, tok)); l["overdue"] != float64(1) || l["due_soon"] != float64(0) {
			t.Errorf("queue counts = %v overdue, %v due soon", l["overdue"], l["due_soon"])
		}
		page := apptest.Call(t, h.Client, h.URL, "GET", "/staff/requests", nil, "", map[string]string{"Cookie": server.CookieName + "=" + tok})
		if page.Status != 200 || !strings.Contains(string(page.Body), `id="due-banner"`) || !strings.Contains(string(page.Body), "1 overdue") {
			t.Errorf("the queue page = %d, without the overdue banner:\n%s", page.Status, page.Body)
		}
		// Answered, nothing is due any more: no mail.
		if _, err := desk.Transition(ctx, first.ID, requests.Change{State: requests.Done, Note: "Everything is in your export"},
			requests.Actor{Kind: requests.ByStaff, ID: dpoID}); err != nil {
			t.Fatal(err)
		}
		h.Clock.Advance(24 * time.Hour)
		warn(0, 0, false)
	})
}

// mailsWith returns the mails to addr that contain s.
func mailsWith(h *apptest.Harness, addr, s string) []string {
	var out []string
	for _, m := range h.Mails(addr) {
		if strings.Contains(m.Raw, s) {
			out = append(out, m.Raw)
		}
	}
	return out
}

// waitFor waits up to 10 s for cond.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("timed out")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Requests without logging in (P-RIGHT-9): the same answer whoever the addresses
// belong to, nothing but a confirmation mail until the link is opened, the clock from
// the confirmation, staff see who asked, and the request's own key is shredded once
// it is closed (or with the request, if the link is never opened).
func TestVisitorRequests(t *testing.T) {
	apptest.Each(t, func(t *testing.T, h *apptest.Harness) {
		ctx := t.Context()
		h.Member("known.member@example.org", "correct horse battery", nil)
		dpoID, dpoToken := h.Member("visitor.dpo@example.org", "correct horse battery", nil)
		if err := h.GrantStaff(ctx, dpoID, "dpo"); err != nil {
			t.Fatal(err)
		}
		send := func(body map[string]any) apptest.Response {
			t.Helper()
			return h.Do("POST", "/api/v1/requests", body, "")
		}
		for _, c := range []struct {
			body        map[string]any
			field, code string
		}{
			{map[string]any{"email": "v@example.org", "right": "access"}, "name", "required"},
			{map[string]any{"name": "Vera", "email": "not an address", "right": "access"}, "email", "email_invalid"},
			{map[string]any{"name": "Vera", "email": "v@example.org", "held_email": "v@", "right": "access"}, "held_email", "email_invalid"},
			{map[string]any{"name": "Vera", "email": "v@example.org", "right": "everything"}, "right", "right_unknown"},
			{map[string]any{"name": "Vera", "email": "v@example.org", "right": "complaint"}, "details", "required"},
			{map[string]any{"name": "Vera\nEvil: header", "email": "v@example.org", "right": "access"}, "name", ""},
		} {
			r := send(c.body)
			if f, code := r.ErrorField(); r.Status != 400 || f != c.field || (c.code != "" && code != c.code) {
				t.Errorf("%v = %d %s, want 400 on %s (%s)", c.body, r.Status, r.Body, c.field, c.code)
			}
		}

		// A known and an unknown address: the same answer; only the confirmation
		// mails go out, none to the address the data is said to be held under.
		known := send(map[string]any{"name": "Kim Known", "email": "kim.notify@example.org", "held_email": "known.member@example.org",
			"right": "access"})
		unknown := send(map[string]any{"name": "Uma Unknown", "email": "uma.notify@example.org", "held_email": "nobody@example.org",
			"right": "erasure"})
		if known.Status != 202 || unknown.Status != 202 || string(known.Body) != string(unknown.Body) {
			t.Errorf("answers differ: %d %s / %d %s", known.Status, known.Body, unknown.Status, unknown.Body)
		}
		link := h.WaitLink("kim.notify@example.org", "/requests/confirm?token=")
		h.WaitLink("uma.notify@example.org", "/requests/confirm?token=")
		if n := len(h.Mails("known.member@example.org")); n != 1 { // its verification only
			t.Errorf("the member whose address was named got %d mails, want only the verification", n)
		}
		if l := jsonOK(t, h.Do("GET", "/api/v1/staff/requests?state=unconfirmed", nil, dpoToken))["requests"].([]any); len(l) != 2 {
			t.Errorf("%d unconfirmed requests, want 2", len(l))
		}

		// Forged and reused links are one error; the clock starts at the confirmation.
		if r := h.Do("POST", "/api/v1/requests/confirm", map[string]string{"token": "forged-token"}, ""); r.Status != 400 {
			t.Errorf("forged link = %d %s", r.Status, r.Body)
		}
		h.Clock.Advance(20 * time.Hour)
		h.KeepStaff(ctx, dpoID) // a staff session idle that long has ended: they gave a code again
		c := h.Do("POST", "/api/v1/requests/confirm", map[string]string{"token": link}, "")
		if c.Status != 200 || c.JSON()["state"] != "received" || c.JSON()["due_date"] != requests.DueDate(h.Clock.Now(), 0).String() {
			t.Fatalf("confirm = %d %s, want received, due %s", c.Status, c.Body, requests.DueDate(h.Clock.Now(), 0))
		}
		if r := h.Do("POST", "/api/v1/requests/confirm", map[string]string{"token": link}, ""); r.Status != 400 {
			t.Errorf("the link again = %d %s", r.Status, r.Body)
		}
		if ack := mailWith(h, "kim.notify@example.org", "was received"); !strings.Contains(ack, requests.DueDate(h.Clock.Now(), 0).Long()) ||
			strings.Contains(ack, "/account/requests") {
			t.Errorf("acknowledgment:\n%s", ack)
		}
		id := c.JSON()["id"].(string)

		// Staff see who asked, check them, answer; the answer goes to the notification address.
		got := jsonOK(t, h.Do("GET", "/api/v1/staff/requests/"+id, nil, dpoToken))
		if got["requester"] != "visitor" || got["requester_name"] != "Kim Known" || got["notify_email"] != "kim.notify@example.org" ||
			got["held_email"] != "known.member@example.org" {
			t.Errorf("staff view = %v", got)
		}
		if r := h.Do("POST", "/api/v1/staff/requests/"+id+"/state", map[string]any{"state": "verifying", "note": "Asked for proof of identity"},
			dpoToken); r.Status != 200 {
			t.Fatalf("verifying = %d %s", r.Status, r.Body)
		}
		if r := h.Do("POST", "/api/v1/staff/requests/"+id+"/identity", map[string]any{"verified": true}, dpoToken); r.Status != 200 ||
			r.JSON()["state"] != "in_progress" {
			t.Fatalf("identity verified = %d %s", r.Status, r.Body)
		}
		if r := h.Do("POST", "/api/v1/staff/requests/"+id+"/state", map[string]any{"state": "done", "note": "Your data is ready"},
			dpoToken); r.Status != 200 {
			t.Fatalf("done = %d %s", r.Status, r.Body)
		}
		mailWith(h, "kim.notify@example.org", "Your data is ready")
		// The key waits for the download link: the data is downloaded, and the link used.
		dl := h.WaitLink("kim.notify@example.org", "/requests/download?token=")
		if r := h.Do("POST", "/api/v1/requests/download", map[string]string{"token": dl}, ""); r.Status != 200 {
			t.Fatalf("download = %d %s", r.Status, r.Body)
		}

		// The other link was never opened: an hour after it expires the request is gone
		// with its key; a day after closing, the confirmed one's key is shredded and
		// only its outline stays.
		h.Clock.Advance(5 * time.Hour)
		h.KeepStaff(ctx, dpoID) // a staff session idle that long has ended: they gave a code again
		if d, s, err := h.App.Requests().Tidy(ctx); err != nil || d != 1 || s != 0 {
			t.Errorf("Tidy = %d deleted, %d shredded (%v); want 1, 0", d, s, err)
		}
		h.Clock.Advance(requests.ShredAfter)
		h.KeepStaff(ctx, dpoID) // a staff session idle that long has ended: they gave a code again
		if d, s, err := h.App.Requests().Tidy(ctx); err != nil || d != 0 || s != 1 {
			t.Errorf("Tidy = %d deleted, %d shredded (%v); want 0, 1", d, s, err)
		}
		if has, err := h.App.Vault().HasKey(ctx, id); err != nil || has {
			t.Errorf("the closed request's key is still there (%v)", err)
		}
		after := jsonOK(t, h.Do("GET", "/api/v1/staff/requests/"+id, nil, dpoToken))
		// created, confirmed, verifying, identity verified, in progress, link sent, done, downloaded
		if after["state"] != "done" || after["requester_name"] != nil || after["notify_email"] != nil || len(after["events"].([]any)) != 8 {
			t.Errorf("after shredding = %v", after)
		}
		var rows int
		if err := h.App.DB().QueryRowContext(ctx, `SELECT count(*) FROM privacy_requests WHERE requester = 'visitor'`).Scan(&rows); err != nil || rows != 1 {
			t.Errorf("%d visitor requests left (%v), want the closed one", rows, err)
		}
		if found := residuetest.RawFindings(t, h.App.DB(), "Kim Known", "kim.notify", "Uma Unknown", "uma.notify", "nobody@example.org"); len(found) > 0 {
			t.Errorf("a visitor's data on disk in plain text: %v", found)
		}
	})
}

// The same request sent several times at once (a double click, a client's retry on
// another node) is recorded once: every call answers with the one request.
func TestDuplicateRequestsAtOnce(t *testing.T) {
	apptest.Each(t, func(t *testing.T, h *apptest.Harness) {
		memberID, _ := h.Member("twice@example.org", "correct horse battery", nil)
		sub := requests.Submission{SubjectID: memberID, Right: requests.Complaint, Details: "You mailed me twice."}
		const n = 8
		var wg sync.WaitGroup
		ids := make([]string, n)
		created := make([]bool, n)
		errs := make([]error, n)
		for i := range n {
			wg.Go(func() {
				var r requests.Request
				r, created[i], errs[i] = h.App.Requests().Submit(t.Context(), sub)
				ids[i] = r.ID
			})
		}
		wg.Wait()
		made := 0
		for i := range n {
			if errs[i] != nil {
				t.Fatalf("submit %d: %v", i, errs[i])
			}
			if ids[i] != ids[0] {
				t.Errorf("submit %d answered request %s, submit 0 %s", i, ids[i], ids[0])
			}
			if created[i] {
				made++
			}
		}
		list, err := h.App.Requests().List(t.Context(), memberID)
		if err != nil {
			t.Fatal(err)
		}
		if len(list) != 1 || made != 1 {
			t.Fatalf("%d requests recorded, %d calls said they made one; want 1 and 1", len(list), made)
		}
	})
}

// The queue's API pages: limit and offset, and the total the filter selects.
func TestDPOQueuePaging(t *testing.T) {
	apptest.Each(t, func(t *testing.T, h *apptest.Harness) {
		memberID, _ := h.Member("paged@example.org", "correct horse battery", nil)
		dpoID, dpoTok := h.Member("paged.dpo@example.org", "correct horse battery", nil)
		if err := h.GrantStaff(t.Context(), dpoID, "dpo"); err != nil {
			t.Fatal(err)
		}
		for i := range 3 {
			if _, _, err := h.App.Requests().Submit(t.Context(), requests.Submission{SubjectID: memberID, Right: requests.Inquiry,
				Details: fmt.Sprintf("Question %d", i)}); err != nil {
				t.Fatal(err)
			}
		}
		page := func(q string) (ids []string, total float64) {
			t.Helper()
			r := h.Do("GET", "/api/v1/staff/requests?state=open&"+q, nil, dpoTok)
			if r.Status != 200 {
				t.Fatalf("%s: %d %s", q, r.Status, r.Body)
			}
			for _, x := range r.JSON()["requests"].([]any) {
				ids = append(ids, x.(map[string]any)["id"].(string))
			}
			return ids, r.JSON()["total"].(float64)
		}
		first, total := page("limit=2")
		second, total2 := page("limit=2&offset=2")
		if len(first) != 2 || len(second) != 1 || total != 3 || total2 != 3 || slices.Contains(first, second[0]) {
			t.Errorf("pages %v and %v of %v/%v, want 2 and 1 other of 3", first, second, total, total2)
		}
		if r := h.Do("GET", "/api/v1/staff/requests?offset=-1", nil, dpoTok); r.Status != 400 || !strings.Contains(string(r.Body), "offset_invalid") {
			t.Errorf("a negative offset = %d %s", r.Status, r.Body)
		}
	})
}
