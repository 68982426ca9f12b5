package app_test

import (
	"context"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"steward/internal/app/apptest"
	"steward/internal/datamap"
	"steward/internal/datamap/residuetest"
)

const day = 24 * time.Hour

// warningText is in the mail that warns an inactive member.
const warningText = "Unless you log in before"

// timeLimited matches a retention that ends after a period: a number of hours, days,
// weeks, months or years, or a period the operator sets.
var timeLimited = regexp.MustCompile(`(?i)\b\d+\s+(hour|day|week|month|year)s?\b|period of inactivity`)

// The data map's retention texts and the retention rules agree: a holder that declares
// a time-limited retention has a rule, every rule names a registered holder, and a
// holder with a rule says in its retention that its data is time-limited.
func TestRetentionRulesMatchDataMap(t *testing.T) {
	h := apptest.Start(t, "")
	reg := h.App.Registry()
	ruled := map[string][]string{}
	for _, r := range h.App.Retention().Rules() {
		if _, ok := reg.Holder(r.Holder); !ok {
			t.Errorf("rule %s names holder %q, which the data map does not have", r.Name, r.Holder)
		}
		if r.Removes == "" || r.Flag == "" {
			t.Errorf("rule %s: says neither what it removes nor its flag", r.Name)
		}
		ruled[r.Holder] = append(ruled[r.Holder], r.Name)
	}
	for _, hd := range reg.Holders() {
		d := hd.Declaration()
		limited := timeLimited.MatchString(d.Retention)
		switch {
		case limited && len(ruled[d.Name]) == 0:
			t.Errorf("holder %s declares a time-limited retention (%q) without a retention rule", d.Name, d.Retention)
		case !limited && len(ruled[d.Name]) > 0:
			t.Errorf("holder %s has rules %v but its retention (%q) does not say it is time-limited", d.Name, ruled[d.Name], d.Retention)
		}
	}
	if len(ruled) == 0 {
		t.Fatal("no retention rules")
	}
}

// waitStartRun waits for the daily job's run at start, so that no run but the test's
// own finds what the test ages by moving the clock.
func waitStartRun(t *testing.T, h *apptest.Harness) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		runs, err := h.App.Retention().Runs(context.Background(), 1)
		if err != nil {
			t.Fatal(err)
		}
		if len(runs) == 1 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the daily retention job did not run at start")
		}
	}
}

// login opens a session and returns its token.
func login(t *testing.T, h *apptest.Harness, email string) string {
	t.Helper()
	r := h.Do("POST", "/api/v1/sessions", map[string]string{"email": email, "password": pw}, "")
	if r.Status != http.StatusOK && r.Status != http.StatusCreated {
		t.Fatalf("login %s: %d %s", email, r.Status, r.Body)
	}
	return r.JSON()["token"].(string)
}

// runRetention runs every rule through the API as the DPO and returns what each rule
// did, by rule name.
func runRetention(t *testing.T, h *apptest.Harness, dpoTok string) map[string]map[string]any {
	t.Helper()
	r := h.Do("POST", "/api/v1/staff/retention/run", nil, dpoTok)
	if r.Status != http.StatusOK {
		t.Fatalf("run: %d %s", r.Status, r.Body)
	}
	out := map[string]map[string]any{}
	for _, x := range r.JSON()["rules"].([]any) {
		rr := x.(map[string]any)
		if rr["error"] != nil {
			t.Errorf("rule %s failed: %v", rr["rule"], rr["error"])
		}
		out[rr["rule"].(string)] = rr
	}
	return out
}

func removed(t *testing.T, run map[string]map[string]any, rule string, want int) {
	t.Helper()
	rr, ok := run[rule]
	if !ok {
		t.Errorf("rule %s did not run", rule)
		return
	}
	if got := int(rr["removed"].(float64)); got != want {
		t.Errorf("rule %s removed %d, want %d", rule, got, want)
	}
}

// Each rule removes what is older than its period and keeps what is not; each run is
// recorded (what each rule removed) and audited, and the console's API lists it.
func TestRetentionRules(t *testing.T) {
	apptest.Each(t, func(t *testing.T, h *apptest.Harness) {
		ctx := context.Background()
		waitStartRun(t, h)
		dpoID, dpoTok := h.Member("retention.dpo@example.net", pw, nil)
		if err := h.GrantStaff(ctx, dpoID, "dpo"); err != nil {
			t.Fatal(err)
		}
		// Day 0: a registration and a subscription never confirmed; a member with a
		// session, a file (its upload is in the access log) and a closed complaint.
		oldReg := h.Register(map[string]any{"email": "old.unconfirmed@example.org", "password": pw, "name": "Old Unconfirmed",
			"birthdate": "1970-01-01", "country": "DE"})
		if r := h.Do("POST", "/api/v1/newsletter", map[string]string{"email": "old.subscriber@example.org", "first_name": "Olga"}, ""); r.Status != 202 {
			t.Fatalf("subscribe: %d %s", r.Status, r.Body)
		}
		memberID, memberTok := h.Member("keeps.data@example.org", pw, nil)
		if r := upload(h, memberTok, "notes.txt", []byte("Retention keeps this file"), false); r.Status != http.StatusCreated {
			t.Fatalf("upload: %d %s", r.Status, r.Body)
		}
		req := h.Do("POST", "/api/v1/me/requests", map[string]any{"right": "complaint", "details": "Quibbleton mailed me twice"}, memberTok)
		if req.Status != http.StatusCreated {
			t.Fatalf("complaint: %d %s", req.Status, req.Body)
		}
		oldReq := req.JSON()["id"].(string)
		if r := h.Do("POST", "/api/v1/staff/requests/"+oldReq+"/state", map[string]any{"state": "done", "note": "Answered by mail"}, dpoTok); r.Status != 200 {
			t.Fatalf("close: %d %s", r.Status, r.Body)
		}
		// Another member's closed complaint, under a legal hold that keeps requests.
		heldID, heldTok := h.Member("held.requester@example.org", pw, nil)
		req = h.Do("POST", "/api/v1/me/requests", map[string]any{"right": "complaint", "details": "Held complaint"}, heldTok)
		heldReq := req.JSON()["id"].(string)
		if r := h.Do("POST", "/api/v1/staff/requests/"+heldReq+"/state", map[string]any{"state": "done", "note": "Answered"}, dpoTok); r.Status != 200 {
			t.Fatalf("close: %d %s", r.Status, r.Body)
		}
		if r := h.Do("POST", "/api/v1/staff/holds", map[string]any{"subject": heldID, "holders": []string{"requests"},
			"reason": "The complaint is before the court"}, dpoTok); r.Status != http.StatusCreated {
			t.Fatalf("hold: %d %s", r.Status, r.Body)
		}
		h.WaitMail("old.unconfirmed@example.org", 1)
		h.WaitMail("old.subscriber@example.org", 1)

		// Day 8: the same again, fresh; the old ones are past 7 days.
		h.Clock.Advance(8 * day)
		newReg := h.Register(map[string]any{"email": "new.unconfirmed@example.org", "password": pw, "name": "New Unconfirmed",
			"birthdate": "1970-01-01", "country": "DE"})
		if r := h.Do("POST", "/api/v1/newsletter", map[string]string{"email": "new.subscriber@example.org", "first_name": "Nina"}, ""); r.Status != 202 {
			t.Fatalf("subscribe: %d %s", r.Status, r.Body)
		}
		h.WaitMail("new.subscriber@example.org", 1)
		dpoTok = h.StaffLogin(dpoID, "retention.dpo@example.net", pw)
		run := runRetention(t, h, dpoTok)
		removed(t, run, "unconfirmed_registrations", 1)
		removed(t, run, "unconfirmed_subscriptions", 1)
		if _, err := h.App.Accounts().Lookup(ctx, oldReg.JSON()["id"].(string)); err == nil {
			t.Error("the registration unconfirmed for 8 days survived")
		}
		if _, err := h.App.Accounts().Lookup(ctx, newReg.JSON()["id"].(string)); err != nil {
			t.Errorf("the fresh registration was removed: %v", err)
		}
		if _, err := h.App.Newsletter().Lookup(ctx, "old.subscriber@example.org"); err == nil {
			t.Error("the subscription unconfirmed for 8 days survived")
		}
		if _, err := h.App.Newsletter().Lookup(ctx, "new.subscriber@example.org"); err != nil {
			t.Errorf("the fresh subscription was removed: %v", err)
		}
		// Nothing of the removed ones is left: the same guarantee as an erasure.
		gone := []datamap.Term{{Kind: "email", Value: "old.unconfirmed@example.org"}, {Kind: "name", Value: "Old Unconfirmed"},
			{Kind: "email", Value: "old.subscriber@example.org"}}
		found, err := datamap.Scan(ctx, h.App.DB(), gone)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range found {
			t.Errorf("residue of a removed registration or subscription: %s", f)
		}
		if raw := residuetest.RawFindings(t, h.App.DB(), "old.unconfirmed@example.org", "Old Unconfirmed", "old.subscriber@example.org"); len(raw) > 0 {
			t.Errorf("raw residue: %v", raw)
		}

		// Day 15: the member's first session (14 days) has expired; a new one has not.
		memberTok2 := login(t, h, "keeps.data@example.org")
		h.Clock.Advance(7 * day)
		dpoTok = h.StaffLogin(dpoID, "retention.dpo@example.net", pw)
		sessions := `SELECT count(*) FROM sessions WHERE account_id = $1`
		if n := countRows(t, h, sessions, memberID); n != 2 {
			t.Fatalf("member sessions before the run = %d, want 2", n)
		}
		run = runRetention(t, h, dpoTok)
		if got := int(run["expired_sessions"]["removed"].(float64)); got < 1 {
			t.Errorf("expired_sessions removed %d, want at least the member's first session", got)
		}
		if n := countRows(t, h, sessions, memberID); n != 1 {
			t.Errorf("member sessions after the run = %d, want 1", n)
		}
		if r := h.Do("GET", "/api/v1/me", nil, memberTok2); r.Status != http.StatusOK {
			t.Errorf("the live session was removed: %d", r.Status)
		}
		if n := countRows(t, h, `SELECT count(*) FROM sessions WHERE expires_at < $1`, h.Clock.Now().UnixMilli()); n != 0 {
			t.Errorf("%d expired sessions left", n)
		}

		// Day 200: a download adds an access entry. Day 367: the upload's entry is past
		// a year, the download's is not.
		h.Clock.Advance(185 * day)
		memberTok = login(t, h, "keeps.data@example.org")
		list := h.Do("GET", "/api/v1/me/files", nil, memberTok)
		fileID := list.JSON()["files"].([]any)[0].(map[string]any)["id"].(string)
		if r := h.Do("GET", "/api/v1/me/files/"+fileID, nil, memberTok); r.Status != http.StatusOK {
			t.Fatalf("download: %d", r.Status)
		}
		h.Clock.Advance(167 * day)
		dpoTok = h.StaffLogin(dpoID, "retention.dpo@example.net", pw)
		access := `SELECT count(*) FROM file_access_log WHERE owner_id = $1`
		if n := countRows(t, h, access, memberID); n != 2 {
			t.Fatalf("access entries before = %d, want 2", n)
		}
		run = runRetention(t, h, dpoTok)
		removed(t, run, "file_access_log", 1)
		removed(t, run, "closed_requests", 0)
		if n := countRows(t, h, access, memberID); n != 1 {
			t.Errorf("access entries after = %d, want the download's", n)
		}

		// A second complaint closed now; after 3 years from the first, only the first goes.
		memberTok = login(t, h, "keeps.data@example.org")
		req = h.Do("POST", "/api/v1/me/requests", map[string]any{"right": "complaint", "details": "Second complaint"}, memberTok)
		newReq := req.JSON()["id"].(string)
		if r := h.Do("POST", "/api/v1/staff/requests/"+newReq+"/state", map[string]any{"state": "done", "note": "Answered"}, dpoTok); r.Status != 200 {
			t.Fatalf("close: %d %s", r.Status, r.Body)
		}
		h.Clock.Advance(3*365*day - 367*day + 2*day)
		dpoTok = h.StaffLogin(dpoID, "retention.dpo@example.net", pw)
		run = runRetention(t, h, dpoTok)
		removed(t, run, "closed_requests", 1)
		if held := run["closed_requests"]["held"]; held != float64(1) {
			t.Errorf("closed_requests held %v, want the request under a hold", held)
		}
		if r := h.Do("GET", "/api/v1/staff/requests/"+heldReq, nil, dpoTok); r.Status != http.StatusOK {
			t.Errorf("the request under a hold: %d, want 200", r.Status)
		}
		if r := h.Do("GET", "/api/v1/staff/requests/"+oldReq, nil, dpoTok); r.Status != http.StatusNotFound {
			t.Errorf("the request closed 3 years ago: %d, want 404", r.Status)
		}
		if r := h.Do("GET", "/api/v1/staff/requests/"+newReq, nil, dpoTok); r.Status != http.StatusOK {
			t.Errorf("the request closed 2 years ago: %d, want 200", r.Status)
		}
		if n := countRows(t, h, `SELECT count(*) FROM privacy_request_events WHERE request_id = $1`, oldReq); n != 0 {
			t.Errorf("%d events of the deleted request left", n)
		}

		// The console's API lists the rules and the runs; each run is in the audit log.
		list = h.Do("GET", "/api/v1/staff/retention", nil, dpoTok)
		if list.Status != http.StatusOK {
			t.Fatalf("list: %d %s", list.Status, list.Body)
		}
		rules := list.JSON()["rules"].([]any)
		var sawInactive bool
		for _, x := range rules {
			r := x.(map[string]any)
			if r["name"] == "inactive_accounts" {
				sawInactive = true
				if r["on"] != false {
					t.Errorf("inactive_accounts is on by default: %v", r)
				}
			}
			if r["name"] == "closed_requests" {
				if last, _ := r["last_run"].(map[string]any); last == nil || last["removed"] != float64(1) {
					t.Errorf("closed_requests' last run = %v, want removed 1", r["last_run"])
				}
			}
		}
		if !sawInactive {
			t.Error("inactive_accounts is not listed")
		}
		if runs := list.JSON()["runs"].([]any); len(runs) < 4 {
			t.Errorf("runs listed = %d, want the 4 made here at least", len(runs))
		}
		if n := countRows(t, h, `SELECT count(*) FROM audit_log WHERE event = 'retention_run'`); n < 4 {
			t.Errorf("audit entries of runs = %d, want at least 4", n)
		}
		// A member of staff without the dpo role is refused.
		_, otherTok := h.Member("not.dpo@example.net", pw, nil)
		if r := h.Do("POST", "/api/v1/staff/retention/run", nil, otherTok); r.Status != http.StatusForbidden {
			t.Errorf("run by a member = %d, want 403", r.Status)
		}
	})
}

// Inactive accounts (off by default; on with --retention-inactive): a member unused
// for the period is mailed a warning; still unused after the warning period, erased
// through the erasure service with nothing left; one who logs in after the warning is
// kept; a legal hold stops both the warning and the erasure.
func TestRetentionInactiveAccounts(t *testing.T) {
	apptest.EachDatabase(t, func(t *testing.T, dbURL string) {
		// Sessions outlive the period here, so that a member can come back by using one.
		h := apptest.Start(t, dbURL, "--retention-inactive", "8760h", "--retention-inactive-warning", "720h", "--session-ttl", "17520h")
		ctx := context.Background()
		waitStartRun(t, h)
		dpoID, _ := h.Member("inactive.dpo@example.net", pw, nil)
		if err := h.GrantStaff(ctx, dpoID, "dpo"); err != nil {
			t.Fatal(err)
		}
		idleID, idleTok := h.Member("idle.member@example.org", pw, map[string]any{"name": "Ida Idlewood", "phone": "+49 30 5550101"})
		if r := upload(h, idleTok, "idle.txt", []byte("Idlewood's diary"), false); r.Status != http.StatusCreated {
			t.Fatalf("upload: %d %s", r.Status, r.Body)
		}
		backID, _ := h.Member("comes.back@example.org", pw, nil)
		sessionID, sessionTok := h.Member("uses.session@example.org", pw, nil)
		heldID, _ := h.Member("held.member@example.org", pw, nil)
		freshID, _ := h.Member("fresh.member@example.org", pw, nil)
		terms, err := h.App.Accounts().Identifiers(ctx, idleID)
		if err != nil {
			t.Fatal(err)
		}
		dpoTok := h.StaffLogin(dpoID, "inactive.dpo@example.net", pw)
		if r := h.Do("POST", "/api/v1/staff/holds", map[string]any{"subject": heldID, "holders": []string{"account"},
			"reason": "Litigation about an unpaid invoice"}, dpoTok); r.Status != http.StatusCreated {
			t.Fatalf("hold: %d %s", r.Status, r.Body)
		}
		waitOutboxEmpty(t, h)

		// Day 200: one member logs in. Day 366: the others are a year unused.
		h.Clock.Advance(200 * day)
		login(t, h, "fresh.member@example.org")
		h.Clock.Advance(166 * day)
		dpoTok = h.StaffLogin(dpoID, "inactive.dpo@example.net", pw)
		before := map[string]int{}
		for _, addr := range []string{"idle.member@example.org", "comes.back@example.org", "uses.session@example.org"} {
			before[addr] = len(h.Mails(addr))
		}
		run := runRetention(t, h, dpoTok)
		rr := run["inactive_accounts"]
		if rr == nil {
			t.Fatal("inactive_accounts did not run")
		}
		if rr["warned"] != float64(3) || rr["removed"] != float64(0) || rr["held"] != float64(1) {
			t.Errorf("first run: %v, want warned 3 (idle, comes back, uses a session), removed 0, held 1", rr)
		}
		for _, addr := range []string{"idle.member@example.org", "comes.back@example.org", "uses.session@example.org"} {
			m := h.WaitMail(addr, before[addr]+1)
			if last := m[len(m)-1]; !strings.Contains(last.Raw, warningText) {
				t.Errorf("%s: mail %q, want the inactivity warning", addr, last.Raw)
			}
		}
		for _, addr := range []string{"held.member@example.org", "fresh.member@example.org"} {
			for _, m := range h.Mails(addr) {
				if strings.Contains(m.Raw, warningText) {
					t.Errorf("%s was warned", addr)
				}
			}
		}
		// A second run the same day warns no one again.
		if again := runRetention(t, h, dpoTok)["inactive_accounts"]; again["warned"] != float64(0) {
			t.Errorf("second run warned %v again", again["warned"])
		}

		// Day 380: one warned member logs in. Day 397: past the 30 days after the warning.
		h.Clock.Advance(14 * day)
		login(t, h, "comes.back@example.org")
		if r := h.Do("GET", "/api/v1/me", nil, sessionTok); r.Status != http.StatusOK {
			t.Fatalf("the long session: %d", r.Status)
		}
		h.Clock.Advance(17 * day)
		dpoTok = h.StaffLogin(dpoID, "inactive.dpo@example.net", pw)
		rr = runRetention(t, h, dpoTok)["inactive_accounts"]
		if rr["removed"] != float64(1) || rr["held"] != float64(1) {
			t.Errorf("second run: %v, want removed 1 (idle), held 1", rr)
		}
		if _, err := h.App.Accounts().Lookup(ctx, idleID); err == nil {
			t.Error("the idle member survived")
		}
		for _, id := range []string{backID, sessionID, heldID, freshID, dpoID} {
			if _, err := h.App.Accounts().Lookup(ctx, id); err != nil {
				t.Errorf("%s was erased: %v", id, err)
			}
		}
		// The erasure leaves nothing: the same scan as a member's own erasure.
		found, err := datamap.Scan(ctx, h.App.DB(), append(terms, datamap.Term{Kind: "file", Value: "Idlewood's diary"}))
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range found {
			t.Errorf("residue of the erased idle member: %s", f)
		}
		if raw := residuetest.RawFindings(t, h.App.DB(), "idle.member@example.org", "Ida Idlewood", "Idlewood's diary"); len(raw) > 0 {
			t.Errorf("raw residue of the erased idle member: %v", raw)
		}
		if erased, ok, err := h.App.Rights().Erased(ctx, idleID); err != nil || !ok || erased.IsZero() {
			t.Errorf("the erasure ledger does not have the idle member: %v %v", ok, err)
		}
	})
}
