package app_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"

	"steward/internal/app/apptest"
	"steward/internal/datamap/residuetest"
)

// randomIP is an IPv6 address of the documentation range, random and written as
// Steward writes it (no zero group, no leading zero), so it is unique in raw files.
func randomIP() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	groups := []string{"2001", "db8"}
	for i := 0; i < 12; i += 2 {
		groups = append(groups, fmt.Sprintf("%x%03x", 1+b[i]%15, (uint16(b[i+1])<<4|uint16(b[i]>>4))&0xfff))
	}
	ip := strings.Join(groups, ":")
	if net.ParseIP(ip).String() != ip {
		panic("not canonical: " + ip)
	}
	return ip
}

// doAs is Harness.Do from a browser and an address of the test's own.
func doAs(t *testing.T, h *apptest.Harness, ip, agent, method, path string, body any, token string) apptest.Response {
	t.Helper()
	return apptest.Call(t, h.Client, h.URL, method, path, body, token, map[string]string{"X-Forwarded-For": ip, "User-Agent": agent})
}

// A member's mail and security log never reach the engine's files in plain text: they
// register (the verification mail is queued, sealed, and sent), log in with a wrong
// password and then the right one, and delete their account. While they are a member
// their IP and browser are in the database (the activity page and the export open
// them) but their address, name, IP and browser are in no raw file, the WAL
// included; after the erasure none is either.
func TestMemberMailAndAuditSealedOnDisk(t *testing.T) {
	apptest.EachDatabase(t, func(t *testing.T, dbURL string) {
		h := apptest.Start(t, dbURL, "--trust-proxy=true")
		ctx := context.Background()
		email := randomValue("mailseal.") + "@example.org"
		name := "Ottilie " + randomValue("Sealwright")
		ip := randomIP()
		agent := randomValue("SealBrowser/")

		r := doAs(t, h, ip, agent, "POST", "/api/v1/accounts", map[string]any{"email": email, "password": pw, "name": name,
			"birthdate": "1985-03-02", "country": "DE"}, "")
		if r.Status != http.StatusCreated {
			t.Fatalf("register: %d %s", r.Status, r.Body)
		}
		id := r.JSON()["id"].(string)
		tok := h.WaitLink(email, "/verify?token=") // queued, then handed over
		if m := h.Mails(email); len(m) != 1 || !strings.Contains(m[0].Raw, name) {
			t.Fatalf("the verification mail does not greet the member: %v", m)
		}
		if v := doAs(t, h, ip, agent, "POST", "/api/v1/verifications", map[string]string{"token": tok}, ""); v.Status != http.StatusOK {
			t.Fatalf("verify: %d %s", v.Status, v.Body)
		}
		if l := doAs(t, h, ip, agent, "POST", "/api/v1/sessions", map[string]string{"email": email, "password": "not-" + pw}, ""); l.Status != http.StatusUnauthorized {
			t.Fatalf("login with a wrong password: %d %s", l.Status, l.Body)
		}
		l := doAs(t, h, ip, agent, "POST", "/api/v1/sessions", map[string]string{"email": email, "password": pw}, "")
		if l.Status != http.StatusCreated {
			t.Fatalf("login: %d %s", l.Status, l.Body)
		}
		token := l.JSON()["token"].(string)

		// The values are kept, and open for the member.
		act := h.Do("GET", "/api/v1/me/activity", nil, token)
		if act.Status != http.StatusOK || strings.Count(string(act.Body), ip) < 4 || !strings.Contains(string(act.Body), "wrong password") {
			t.Fatalf("activity (registered, verified, failed and good login from %s): %d %s", ip, act.Status, act.Body)
		}
		ex := h.Do("GET", "/api/v1/me/export", nil, token)
		if ex.Status != http.StatusOK {
			t.Fatalf("export: %d", ex.Status)
		}
		files := unzip(t, ex.Body)
		if log := files["audit_log/audit_log.json"]; !strings.Contains(log, ip) || !strings.Contains(log, "wrong password") {
			t.Errorf("the export's audit log is not opened: %s", log)
		}
		if !strings.Contains(files["account/sessions.csv"], agent) {
			t.Errorf("the export's sessions lack the browser: %s", files["account/sessions.csv"])
		}
		if events, err := h.App.Audit().ForAccount(ctx, h.App.DB(), id, 100); err != nil || len(events) < 4 {
			t.Fatalf("audit events of the member: %d, %v", len(events), err)
		}
		if found := residuetest.RawFindings(t, h.App.DB(), email, name, ip, agent); len(found) > 0 {
			t.Errorf("a live member's name, IP or browser is on disk in plain text: %v", found)
		}

		del := h.Do("DELETE", "/api/v1/me", map[string]string{"password": pw}, token)
		if del.Status != http.StatusAccepted {
			t.Fatalf("delete: %d %s", del.Status, del.Body)
		}
		h.WaitErasure(del.JSON()["request_id"].(string))
		// Nothing of them, the address included: the erasure request keeps only its
		// blind index.
		if found := residuetest.RawFindings(t, h.App.DB(), email, name, ip, agent); len(found) > 0 {
			t.Errorf("after erasure, on disk: %v", found)
		}
		// The audit log keeps the member's entries as they were chained, unreadable (the
		// key is shredded) and naming them by no plain id: the chain still verifies.
		if _, err := h.App.Audit().Chain(ctx, h.App.DB()); err != nil {
			t.Fatal(err)
		}
		var plainIDs int
		if err := h.App.DB().QueryRowContext(ctx, `SELECT count(*) FROM audit_log WHERE account_id IS NOT NULL`).Scan(&plainIDs); err != nil || plainIDs != 0 {
			t.Errorf("audit entries with a plain account id: %d, %v", plainIDs, err)
		}
		if rep, err := h.App.Audit().Verify(ctx, h.App.DB()); err != nil || !rep.Intact() || rep.Entries < 4 {
			t.Errorf("the audit chain after the erasure: %+v, %v", rep, err)
		}
		// (The erasure request keeps the id; on PostgreSQL the audit log's own files are
		// told apart, and hold none.)
		for _, f := range residuetest.RawFindings(t, h.App.DB(), id) {
			if strings.Contains(f, "audit_log") {
				t.Errorf("after erasure, the member's id in the audit log's files: %s", f)
			}
		}
	})
}
