package app_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"steward/internal/app/apptest"
)

// noticeBody is a notice as a processor receives it.
type noticeBody struct {
	ID      string            `json:"id"`
	Event   string            `json:"event"`
	Emails  []string          `json:"emails"`
	Changes map[string]string `json:"changes"`
}

// A rectification and a restriction set or lifted are told to the processors too
// (GDPR art. 19), each time: the mail provider, which holds the address and the name,
// is sent the changed name with the address it knows the member by; a confirmed new
// address is sent with the old one; a restriction, its end and a second restriction
// are three notices. The CRM, which holds only the address and has no endpoint, gets
// a task for the address and none for the name. A restriction asked for in the
// privacy center records the mail provider's acknowledgment on the request.
func TestChangesToldToProcessors(t *testing.T) {
	apptest.EachDatabase(t, func(t *testing.T, dbURL string) {
		var mu sync.Mutex
		var got []noticeBody
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			b, _ := io.ReadAll(r.Body)
			var n noticeBody
			if err := json.Unmarshal(b, &n); err != nil {
				t.Errorf("a notice that is not JSON: %s", b)
			}
			mu.Lock()
			got = append(got, n)
			mu.Unlock()
			w.WriteHeader(http.StatusNoContent)
		}))
		defer srv.Close()
		base, err := os.ReadFile("../consent/purposes.toml")
		if err != nil {
			t.Fatal(err)
		}
		reg := strings.Replace(string(base), `key = "email_provider"`, `key = "email_provider"
notify_url = "`+srv.URL+`/steward"`, 1) + `
[[processor]]
key = "crm"
name = "Customer records"
service = "Keeps the newsletter's readers"
country = "IE"
categories = ["user.contact.email"]
safeguard = "Processing agreement (GDPR art. 28)"

[[purpose]]
key = "crm_news"
name = "News through our CRM"
description = "Our news, sent through our customer records system."
basis = "consent"
processors = ["crm"]
marketing = true
`
		file := filepath.Join(t.TempDir(), "purposes.toml")
		if err := os.WriteFile(file, []byte(reg), 0o600); err != nil {
			t.Fatal(err)
		}
		h := apptest.Start(t, dbURL, "--purposes", file)
		ctx := context.Background()
		dpoID, dpo := h.Member("dpo@example.org", pw, nil)
		if err := h.GrantStaff(ctx, dpoID, "dpo"); err != nil {
			t.Fatal(err)
		}
		_, token := h.Member("rhea@example.org", pw, map[string]any{"name": "Rhea Old"})
		if r := h.Do("PUT", "/api/v1/me/consents", `{"choices":{"crm_news":true}}`, token); r.Status != 200 {
			t.Fatalf("consents = %d %s", r.Status, r.Body)
		}
		// waitFor waits until the mail provider received n notices, and returns them.
		waitFor := func(n int) []noticeBody {
			t.Helper()
			for deadline := time.Now().Add(20 * time.Second); ; {
				mu.Lock()
				list := slices.Clone(got)
				mu.Unlock()
				if len(list) >= n || time.Now().After(deadline) {
					if len(list) != n {
						t.Fatalf("the mail provider received %d notices, want %d: %+v", len(list), n, list)
					}
					return list
				}
				time.Sleep(20 * time.Millisecond)
			}
		}
		tasks := func() []map[string]any {
			t.Helper()
			var out []map[string]any
			for _, n := range h.Do("GET", "/api/v1/staff/processor-notices?state=task", nil, dpo).JSON()["notices"].([]any) {
				out = append(out, n.(map[string]any))
			}
			return out
		}

		// The name: the mail provider holds it; the CRM does not.
		if r := h.Do("PATCH", "/api/v1/me", map[string]any{"name": "Rhea New"}, token); r.Status != 200 {
			t.Fatalf("patch = %d %s", r.Status, r.Body)
		}
		n := waitFor(1)[0]
		if n.Event != "rectification" || !slices.Equal(n.Emails, []string{"rhea@example.org"}) || len(n.Changes) != 1 || n.Changes["name"] != "Rhea New" {
			t.Errorf("the name's notice = %+v", n)
		}
		if len(tasks()) != 0 {
			t.Errorf("tasks after a change of the name = %v, want none (the CRM holds no name)", tasks())
		}
		// Sending the same values again is no change: nothing is told.
		if r := h.Do("PATCH", "/api/v1/me", map[string]any{"name": "Rhea New"}, token); r.Status != 200 {
			t.Fatalf("patch = %d %s", r.Status, r.Body)
		}

		// The address: told once confirmed, with the old address the processors know.
		if r := h.Do("PATCH", "/api/v1/me", map[string]any{"email": "rhea2@example.org", "current_password": pw}, token); r.Status != 200 {
			t.Fatalf("patch email = %d %s", r.Status, r.Body)
		}
		tok := h.WaitLink("rhea2@example.org", "/verify?token=")
		if r := h.Do("POST", "/api/v1/verifications", map[string]string{"token": tok}, ""); r.Status != 200 {
			t.Fatalf("confirm = %d %s", r.Status, r.Body)
		}
		n = waitFor(2)[1]
		if n.Event != "rectification" || !slices.Equal(n.Emails, []string{"rhea@example.org"}) || len(n.Changes) != 1 || n.Changes["email"] != "rhea2@example.org" {
			t.Errorf("the address's notice = %+v", n)
		}
		tl := tasks()
		if len(tl) != 1 || tl[0]["processor"] != "crm" || tl[0]["event"] != "rectification" {
			t.Fatalf("tasks = %v, want the CRM's rectification", tl)
		}
		d := h.Do("GET", "/api/v1/staff/processor-notices/"+tl[0]["id"].(string), nil, dpo)
		if d.Status != 200 || d.JSON()["changes"].(map[string]any)["email"] != "rhea2@example.org" || !strings.Contains(string(d.Body), `"rhea@example.org"`) {
			t.Errorf("the CRM's task = %d %s", d.Status, d.Body)
		}
		entries, err := h.App.Audit().ForAccount(ctx, h.App.DB(), dpoID, 100)
		opened := 0
		for _, e := range entries {
			if e.Event == "processor_notice_opened" {
				opened++
			}
		}
		if err != nil || opened != 1 {
			t.Errorf("audit entries of the dpo's reading = %d (%v), want 1", opened, err)
		}

		// Restriction on, off, on again: three notices to each processor.
		for i, on := range []bool{true, false, true} {
			r := h.Do("POST", "/api/v1/me/requests", map[string]any{"right": "restriction", "restricted": on}, token)
			if r.Status != 201 && r.Status != 200 {
				t.Fatalf("restriction %v = %d %s", on, r.Status, r.Body)
			}
			want := "restriction"
			if !on {
				want = "restriction_lifted"
			}
			n = waitFor(3 + i)[2+i]
			if n.Event != want || !slices.Equal(n.Emails, []string{"rhea2@example.org"}) || len(n.Changes) != 0 {
				t.Errorf("notice %d = %+v, want %s naming the new address", i, n, want)
			}
			// The request records the acknowledgment.
			rid := r.JSON()["id"].(string)
			var events string
			for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
				req := h.Do("GET", "/api/v1/me/requests/"+rid, nil, token)
				events = string(req.Body)
				if strings.Contains(events, "processor_acknowledged") {
					break
				}
			}
			if !strings.Contains(events, "processor_acknowledged") || !strings.Contains(events, "Email delivery provider acknowledged") {
				t.Errorf("the request's events = %s, want the mail provider's acknowledgment", events)
			}
		}
		var crm []string
		for _, tk := range tasks() {
			crm = append(crm, tk["event"].(string))
		}
		slices.Sort(crm)
		if want := []string{"rectification", "restriction", "restriction", "restriction_lifted"}; !slices.Equal(crm, want) {
			t.Errorf("the CRM's tasks = %v, want %v", crm, want)
		}
	})
}
