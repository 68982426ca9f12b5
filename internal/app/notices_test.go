package app_test

import (
	"context"
	"crypto/hmac"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"steward/internal/app/apptest"
	"steward/internal/notices"
)

// An erasure is told to every processor that received the member's data (GDPR art.
// 19): the mail provider, which has an endpoint in the register, gets a signed notice
// naming the member's address, retried after a failure until it acknowledges; the CRM,
// which has none, becomes a task that a dpo reads and closes. Nothing of the member is
// left readable once both are settled, and a processor the member's data never
// reached is told nothing.
func TestErasureToldToProcessors(t *testing.T) {
	apptest.EachDatabase(t, func(t *testing.T, dbURL string) {
		var mu sync.Mutex
		var bodies []string
		var sigs []string
		fail := 1 // the first delivery fails: the queue must retry
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			b, _ := io.ReadAll(r.Body)
			mu.Lock()
			defer mu.Unlock()
			bodies = append(bodies, string(b))
			sigs = append(sigs, r.Header.Get("Steward-Signature"))
			if fail > 0 {
				fail--
				w.WriteHeader(http.StatusServiceUnavailable)
				return
			}
			w.WriteHeader(http.StatusNoContent)
		}))
		defer srv.Close()
		base, err := os.ReadFile("../consent/purposes.toml")
		if err != nil {
			t.Fatal(err)
		}
		reg := strings.Replace(string(base), `key = "email_provider"`, `key = "email_provider"
notify_url = "`+srv.URL+`/steward"`, 1)
		reg += `
[[processor]]
key = "crm"
name = "Customer records"
service = "Keeps the newsletter's readers"
country = "IE"
categories = ["user.contact.email"]
safeguard = "Processing agreement (GDPR art. 28)"

[[processor]]
key = "unused"
name = "A processor of a purpose nobody chose"
service = "Nothing"
country = "FR"
notify_url = "` + srv.URL + `/unused"

[[purpose]]
key = "crm_news"
name = "News through our CRM"
description = "Our news, sent through our customer records system."
basis = "consent"
processors = ["crm"]
marketing = true

[[purpose]]
key = "unused_purpose"
name = "Something nobody chose"
description = "A purpose nobody consents to in this test."
basis = "consent"
processors = ["unused"]
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
		id, token := h.Member("leaving@example.org", pw, map[string]any{"name": "Lea Leaving"})
		if r := h.Do("PUT", "/api/v1/me/consents", `{"choices":{"crm_news":true}}`, token); r.Status != 200 {
			t.Fatalf("consents = %d %s", r.Status, r.Body)
		}
		terms, err := h.App.Accounts().Identifiers(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		del := h.Do("DELETE", "/api/v1/me", map[string]string{"password": pw}, token)
		if del.Status != 202 {
			t.Fatalf("delete = %d %s", del.Status, del.Body)
		}
		h.WaitErasure(del.JSON()["request_id"].(string))

		// The mail provider: a failure, then an acknowledged delivery.
		var list []any
		for deadline := time.Now().Add(20 * time.Second); ; {
			list = h.Do("GET", "/api/v1/staff/processor-notices?state=acknowledged", nil, dpo).JSON()["notices"].([]any)
			if len(list) > 0 || time.Now().After(deadline) {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		if len(list) != 1 || list[0].(map[string]any)["processor"] != "email_provider" || list[0].(map[string]any)["attempts"] != float64(1) {
			t.Fatalf("acknowledged notices = %v, want the mail provider's after one failed attempt", list)
		}
		mu.Lock()
		if len(bodies) != 2 || bodies[0] != bodies[1] {
			t.Errorf("deliveries = %q, want the same notice twice", bodies)
		}
		var got struct {
			ID     string   `json:"id"`
			Event  string   `json:"event"`
			Emails []string `json:"emails"`
		}
		if err := json.Unmarshal([]byte(bodies[len(bodies)-1]), &got); err != nil || got.Event != "erasure" ||
			len(got.Emails) != 1 || got.Emails[0] != "leaving@example.org" {
			t.Errorf("the notice = %s (%v)", bodies[len(bodies)-1], err)
		}
		ts, _, _ := strings.Cut(strings.TrimPrefix(sigs[len(sigs)-1], "t="), ",")
		sec, _ := strconv.ParseInt(ts, 10, 64)
		want := notices.Sign(h.App.Notices().Secret("email_provider"), time.Unix(sec, 0), []byte(bodies[len(bodies)-1]))
		if !hmac.Equal([]byte(sigs[len(sigs)-1]), []byte(want)) {
			t.Errorf("signature %q, want %q", sigs[len(sigs)-1], want)
		}
		for _, b := range bodies {
			if strings.Contains(b, "unused") {
				t.Error("a processor the member's data never reached was told")
			}
		}
		mu.Unlock()

		// The CRM: a task for the dpo, who reads the address and closes it.
		tasks := h.Do("GET", "/api/v1/staff/processor-notices?state=task", nil, dpo).JSON()["notices"].([]any)
		if len(tasks) != 1 || tasks[0].(map[string]any)["processor"] != "crm" {
			t.Fatalf("tasks = %v, want the CRM's", tasks)
		}
		taskID := tasks[0].(map[string]any)["id"].(string)
		if d := h.Do("GET", "/api/v1/staff/processor-notices/"+taskID, nil, dpo); d.Status != 200 || !strings.Contains(string(d.Body), "leaving@example.org") {
			t.Errorf("the task = %d %s", d.Status, d.Body)
		}
		_, plain := h.Member("plain@example.org", pw, nil)
		if d := h.Do("GET", "/api/v1/staff/processor-notices/"+taskID, nil, plain); d.Status != 403 {
			t.Errorf("a member without the role reads the task = %d", d.Status)
		}
		if d := h.Do("POST", "/api/v1/staff/processor-notices/"+taskID+"/done", nil, dpo); d.Status != 204 {
			t.Errorf("closing the task = %d %s", d.Status, d.Body)
		}
		if d := h.Do("GET", "/api/v1/staff/processor-notices/"+taskID, nil, dpo); d.Status != 404 {
			t.Errorf("a closed task = %d", d.Status)
		}
		if d := h.Do("POST", "/api/v1/staff/processor-notices/"+taskID+"/done", nil, dpo); d.Status != 404 {
			t.Errorf("closing twice = %d", d.Status)
		}
		// An address typed at registration and never proved may be anyone's: its
		// erasure tells no processor of it.
		before := len(h.Do("GET", "/api/v1/staff/processor-notices", nil, dpo).JSON()["notices"].([]any))
		typo := h.Register(map[string]any{"email": "someone-else@example.org", "password": pw, "name": "Typo", "birthdate": "1980-01-01", "country": "DE"})
		if typo.Status != 201 {
			t.Fatalf("register = %d %s", typo.Status, typo.Body)
		}
		if err := h.App.Rights().EraseNow(ctx, typo.JSON()["id"].(string), "test"); err != nil {
			t.Fatal(err)
		}
		if after := len(h.Do("GET", "/api/v1/staff/processor-notices", nil, dpo).JSON()["notices"].([]any)); after != before {
			t.Errorf("notices after erasing a registration never verified: %d, want %d", after, before)
		}

		// Settled: no key of a notice is left, and nothing of the member.
		var keys int
		if err := h.App.DB().QueryRowContext(ctx, `SELECT count(*) FROM vault_keys WHERE subject_id LIKE 'notice:%'`).Scan(&keys); err != nil {
			t.Fatal(err)
		}
		if keys != 0 {
			t.Errorf("%d notice keys left after both notices settled", keys)
		}
		found, err := h.App.Registry().ScanAll(ctx, h.App.DB(), terms)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range found {
			t.Errorf("residue after erasure: %s", f)
		}
	})
}
