package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"steward/internal/app/apptest"
	"steward/internal/notices"
	"steward/internal/ropa"
)

// staffToken makes a member holding a role and returns its id and token.
func staffToken(t *testing.T, h *apptest.Harness, email, role string) (string, string) {
	t.Helper()
	id, tok := h.Member(email, pw, nil)
	if err := h.GrantStaff(t.Context(), id, role); err != nil {
		t.Fatal(err)
	}
	return id, tok
}

func auditCount(t *testing.T, h *apptest.Harness, event string) int {
	t.Helper()
	var n int
	if err := h.App.DB().QueryRowContext(t.Context(), `SELECT count(*) FROM audit_log WHERE event = $1`, event).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// The register is seeded from the purposes file, kept by admins and the DPO through
// the API, every change in its history and the audit log; a processor outside the
// region needs a safeguard; a sale needs a second approval; the public list shows the
// processors in force.
func TestProcessorsRegister(t *testing.T) {
	apptest.Each(t, func(t *testing.T, h *apptest.Harness) {
		_, admin := staffToken(t, h, "admin@example.org", "admin")
		dpoID, dpo := staffToken(t, h, "dpo@example.org", "dpo")
		_, support := staffToken(t, h, "support@example.org", "support")

		// The seed: the built-in file's mail provider, in force, serving its purposes.
		pub := h.Do("GET", "/api/v1/processors", nil, "")
		list, _ := pub.JSON()["processors"].([]any)
		if pub.Status != 200 || len(list) != 1 || list[0].(map[string]any)["key"] != "email_provider" {
			t.Fatalf("public processors = %d %s, want the seeded mail provider", pub.Status, pub.Body)
		}
		if reg := pub.JSON()["region"].(map[string]any); reg["name"] != "EEA" {
			t.Errorf("region = %v, want EEA", reg)
		}
		if got := list[0].(map[string]any)["purposes"].([]any); len(got) != 4 {
			t.Errorf("seeded purposes = %v, want the 4 purposes naming it", got)
		}
		if r := h.Do("GET", "/api/v1/staff/processors", nil, support); r.Status != 403 {
			t.Errorf("support lists the register = %d, want 403", r.Status)
		}

		// Bad input: a clear error naming the field, nothing stored.
		good := map[string]any{"key": "analytics_us", "name": "Analytics Inc.", "service": "Product analytics", "purposes": []string{"security"},
			"categories": []string{"user.device.ip_address"}, "country": "US", "transfer": "scc", "safeguard": "SCC 2021/914 module 2",
			"contract": "DPA-2026-07"}
		for _, c := range []struct {
			change map[string]any
			field  string
		}{
			{map[string]any{"transfer": ""}, "transfer"},
			{map[string]any{"transfer": "handshake"}, "transfer"},
			{map[string]any{"country": "XX"}, "country"},
			{map[string]any{"purposes": []string{"nope"}}, "purposes"},
			{map[string]any{"categories": []string{}}, "categories"},
			{map[string]any{"key": "Bad Key"}, "key"},
			{map[string]any{"name": ""}, "name"},
			{map[string]any{"notify_url": "http://example.com/hook"}, "notify_url"},
			{map[string]any{"key": "email_provider"}, "key"},
		} {
			body := map[string]any{}
			for k, v := range good {
				body[k] = v
			}
			for k, v := range c.change {
				body[k] = v
			}
			r := h.Do("POST", "/api/v1/staff/processors", body, admin)
			if f, _ := r.ErrorField(); r.Status != 400 && r.Status != 409 || f != c.field {
				t.Errorf("add with %v = %d %s, want an error on %s", c.change, r.Status, r.Body, c.field)
			}
		}
		if r := h.Do("GET", "/api/v1/staff/processors/analytics_us", nil, admin); r.Status != 404 {
			t.Fatalf("a refused processor was stored: %d %s", r.Status, r.Body)
		}

		// Added outside the region under SCC: in force, and a transfer is recorded.
		before := auditCount(t, h, "processor_added")
		if r := h.Do("POST", "/api/v1/staff/processors", good, dpo); r.Status != 201 {
			t.Fatalf("add = %d %s", r.Status, r.Body)
		}
		if got := auditCount(t, h, "processor_added"); got != before+1 {
			t.Errorf("audit processor_added = %d, want %d", got, before+1)
		}
		st := h.Do("GET", "/api/v1/staff/processors", nil, admin).JSON()
		transfers := st["transfers"].([]any)
		if len(transfers) != 1 || transfers[0].(map[string]any)["processor"] != "analytics_us" || transfers[0].(map[string]any)["safeguard"] != "scc" ||
			transfers[0].(map[string]any)["country"] != "US" {
			t.Fatalf("transfers = %v, want analytics_us to the US under SCC", transfers)
		}

		// Edit: history keeps old and new; a new safeguard ends the transfer and opens another.
		edit := map[string]any{}
		for k, v := range good {
			edit[k] = v
		}
		edit["transfer"], edit["safeguard"] = "adequacy", "EU-US Data Privacy Framework"
		if r := h.Do("PUT", "/api/v1/staff/processors/analytics_us", edit, admin); r.Status != 200 {
			t.Fatalf("edit = %d %s", r.Status, r.Body)
		}
		one := h.Do("GET", "/api/v1/staff/processors/analytics_us", nil, admin).JSON()
		hist := one["history"].([]any)
		if len(hist) != 2 || hist[0].(map[string]any)["action"] != "edited" || hist[0].(map[string]any)["old"].(map[string]any)["transfer"] != "scc" ||
			hist[0].(map[string]any)["new"].(map[string]any)["transfer"] != "adequacy" || hist[0].(map[string]any)["by"] == "" {
			t.Errorf("history = %v, want added then edited scc -> adequacy, with who", hist)
		}
		transfers = h.Do("GET", "/api/v1/staff/processors", nil, admin).JSON()["transfers"].([]any)
		if len(transfers) != 2 || transfers[0].(map[string]any)["until"] == nil || transfers[1].(map[string]any)["safeguard"] != "adequacy" {
			t.Errorf("transfers after the edit = %v, want the SCC one ended and an adequacy one open", transfers)
		}

		// A sale: pending until a second admin or DPO approves; the proposer cannot.
		sale := map[string]any{"key": "broker", "name": "Data Broker Ltd", "purposes": []string{"partner_sharing"},
			"categories": []string{"user.contact.email", "user.name"}, "country": "FR", "sale": true}
		r := h.Do("POST", "/api/v1/staff/processors", sale, admin)
		if r.Status != 202 || r.JSON()["state"] != "pending" {
			t.Fatalf("add a sale = %d %s, want 202 pending", r.Status, r.Body)
		}
		if got := pubKeys(t, h); strings.Contains(got, "broker") {
			t.Errorf("a pending sale is on the public list: %s", got)
		}
		if r := h.Do("POST", "/api/v1/staff/processors/broker/approve", nil, admin); r.Status != 403 {
			t.Errorf("the proposer approves = %d %s, want 403", r.Status, r.Body)
		}
		if r := h.Do("POST", "/api/v1/staff/processors/broker/approve", nil, support); r.Status != 403 {
			t.Errorf("support approves = %d, want 403", r.Status)
		}
		if r := h.Do("POST", "/api/v1/staff/processors/broker/approve", nil, dpo); r.Status != 200 || r.JSON()["state"] != "active" {
			t.Fatalf("the DPO approves = %d %s", r.Status, r.Body)
		}
		if auditCount(t, h, "processor_approved") != 1 || auditCount(t, h, "processor_proposed") != 1 {
			t.Errorf("audit: proposed %d, approved %d, want 1 each", auditCount(t, h, "processor_proposed"), auditCount(t, h, "processor_approved"))
		}
		// Marking an existing processor a sale waits too: it stays as it was meanwhile.
		edit["sale"] = true
		if r := h.Do("PUT", "/api/v1/staff/processors/analytics_us", edit, dpo); r.Status != 202 || r.JSON()["sale"] != false ||
			r.JSON()["proposed"] == nil {
			t.Fatalf("mark a sale = %d %s, want 202, not a sale yet", r.Status, r.Body)
		}
		if r := h.Do("POST", "/api/v1/staff/processors/analytics_us/reject", nil, admin); r.Status != 200 || r.JSON()["sale"] != false ||
			r.JSON()["state"] != "active" {
			t.Errorf("reject = %d %s", r.Status, r.Body)
		}

		// Retired: off the public list, its transfer ended.
		if r := h.Do("POST", "/api/v1/staff/processors/analytics_us/retire", nil, admin); r.Status != 200 || r.JSON()["state"] != "retired" {
			t.Fatalf("retire = %d %s", r.Status, r.Body)
		}
		if got := pubKeys(t, h); got != "broker,email_provider" {
			t.Errorf("public list = %s, want broker,email_provider", got)
		}
		for _, tr := range h.Do("GET", "/api/v1/staff/processors", nil, admin).JSON()["transfers"].([]any) {
			if tr.(map[string]any)["until"] == nil {
				t.Errorf("a transfer of a retired processor is open: %v", tr)
			}
		}

		// The DPO leaves: the history keeps what was done, but no longer by whom.
		found, err := h.App.Registry().CheckResidue(t.Context(), dpoID)
		if err != nil || len(found) == 0 {
			t.Fatalf("residue of the DPO before erasure = %v, %v: the test finds nothing", found, err)
		}
		del := h.Do("DELETE", "/api/v1/me", map[string]string{"password": pw}, dpo)
		if del.Status != 202 {
			t.Fatalf("delete = %d %s", del.Status, del.Body)
		}
		h.WaitErasure(del.JSON()["request_id"].(string))
		if left, err := h.App.Registry().CheckResidue(t.Context(), dpoID); err != nil || len(left) != 0 {
			t.Errorf("residue of the erased DPO = %v, %v", left, err)
		}
		changes, err := h.App.Processors().History(t.Context(), "broker")
		if err != nil || len(changes) != 2 || changes[0].Action != "approved" || changes[0].By != "" || changes[1].By == "" {
			t.Errorf("broker's history after the DPO's erasure = %+v, %v: want the approval kept, without its author", changes, err)
		}
	})
}

func pubKeys(t *testing.T, h *apptest.Harness) string {
	t.Helper()
	var keys []string
	for _, p := range h.Do("GET", "/api/v1/processors", nil, "").JSON()["processors"].([]any) {
		keys = append(keys, p.(map[string]any)["key"].(string))
	}
	return strings.Join(keys, ",")
}

// A member's export lists the processors that receive their data and the transfers
// of it; the notices' sender sends nothing outside the region without a safeguard.
func TestTransfersExportAndNotices(t *testing.T) {
	apptest.EachDatabase(t, func(t *testing.T, dbURL string) {
		hits := make(chan string, 10)
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			hits <- r.URL.Path
			w.WriteHeader(http.StatusNoContent)
		}))
		defer srv.Close()
		base, err := os.ReadFile("../consent/purposes.toml")
		if err != nil {
			t.Fatal(err)
		}
		reg := string(base) + `
[[processor]]
key = "crm_ch"
name = "Swiss CRM"
service = "Keeps the readers of our news"
country = "CH"
categories = ["user.contact.email"]
transfer = "adequacy"
safeguard = "Swiss adequacy decision"
notify_url = "` + srv.URL + `/crm"

[[purpose]]
key = "crm_news"
name = "News through our CRM"
description = "Our news, sent through our customer records system."
basis = "consent"
processors = ["crm_ch"]
marketing = true
`
		file := filepath.Join(t.TempDir(), "purposes.toml")
		if err := os.WriteFile(file, []byte(reg), 0o600); err != nil {
			t.Fatal(err)
		}
		h := apptest.Start(t, dbURL, "--purposes", file, "--region", "EU")
		ctx := context.Background()
		_, dpo := staffToken(t, h, "dpo@example.org", "dpo")
		_, tokA := h.Member("reader@example.org", pw, nil)
		_, tokB := h.Member("other@example.org", pw, nil)
		if r := h.Do("PUT", "/api/v1/me/consents", `{"choices":{"crm_news":true}}`, tokA); r.Status != 200 {
			t.Fatalf("consents = %d %s", r.Status, r.Body)
		}
		files := unzip(t, h.Do("GET", "/api/v1/me/export", nil, tokA).Body)
		if got := files["processors/transfers.csv"]; !strings.Contains(got, "Swiss CRM,CH,user.contact.email,Adequacy decision") {
			t.Errorf("A's transfers = %q, want the Swiss CRM's", got)
		}
		if got := files["processors/processors.csv"]; !strings.Contains(got, "Swiss CRM") || !strings.Contains(got, "Email delivery provider") {
			t.Errorf("A's processors = %q", got)
		}
		files = unzip(t, h.Do("GET", "/api/v1/me/export", nil, tokB).Body)
		if got := files["processors/transfers.csv"]; strings.Contains(got, "Swiss CRM") {
			t.Errorf("B, who never chose the CRM's purpose, has its transfer: %q", got)
		}

		// The safeguard gone (a register written before the region was set): the
		// restriction's notice is not sent but left to staff.
		if _, err := h.App.DB().ExecContext(ctx, `UPDATE processors SET transfer = '' WHERE key = 'crm_ch'`); err != nil {
			t.Fatal(err)
		}
		if r := h.Do("PUT", "/api/v1/me/consents", `{"restricted":true}`, tokA); r.Status != 200 {
			t.Fatalf("restrict = %d %s", r.Status, r.Body)
		}
		list, _ := h.App.Notices().List(ctx, "", 10)
		var crm []notices.Notice
		for _, n := range list {
			if n.Processor == "crm_ch" {
				crm = append(crm, n)
			}
		}
		if len(crm) != 1 || crm[0].State != notices.Task {
			t.Fatalf("notices to the CRM = %+v, want one task for staff", crm)
		}
		// Delivery checks again: a pending notice whose processor lost its safeguard
		// becomes a task, and nothing is sent.
		if _, err := h.App.DB().ExecContext(ctx, `UPDATE processor_notices SET state = 'pending' WHERE id = $1`, crm[0].ID); err != nil {
			t.Fatal(err)
		}
		if err := h.App.Notices().Deliver(ctx, crm[0].ID); err != nil {
			t.Fatal(err)
		}
		n, _ := h.App.Notices().Get(ctx, crm[0].ID)
		if n.State != notices.Task || !strings.Contains(n.LastError, "without a recorded transfer safeguard") {
			t.Errorf("delivered without safeguard: %+v", n)
		}
		select {
		case p := <-hits:
			if p == "/crm" {
				t.Errorf("the CRM outside the region was sent a notice without a safeguard")
			}
		case <-time.After(200 * time.Millisecond):
		}
		_ = dpo
	})
}

// The records of processing name every holder of the data map, every purpose and
// every processor, in each format; the command line writes them too.
func TestRecordsOfProcessing(t *testing.T) {
	apptest.Each(t, func(t *testing.T, h *apptest.Harness) {
		_, admin := staffToken(t, h, "admin@example.org", "admin")
		if r := h.Do("POST", "/api/v1/staff/processors", map[string]any{"key": "helpdesk", "name": "Helpdesk SaaS", "purposes": []string{"account"},
			"categories": []string{"user.contact.email"}, "country": "US", "transfer": "scc"}, admin); r.Status != 201 {
			t.Fatalf("add = %d %s", r.Status, r.Body)
		}
		var want []string
		for _, hd := range h.App.Registry().Holders() {
			want = append(want, hd.Declaration().Name)
		}
		for _, p := range h.App.Consent().Register().Purposes {
			want = append(want, p.Key)
		}
		procs, err := h.App.Processors().List(t.Context())
		if err != nil || len(procs) != 2 {
			t.Fatalf("processors = %v, %v", procs, err)
		}
		for _, p := range procs {
			want = append(want, p.Key)
		}
		for _, format := range ropa.Formats {
			r := h.Do("GET", "/api/v1/staff/ropa?format="+format, nil, admin)
			if r.Status != 200 {
				t.Fatalf("ropa %s = %d %s", format, r.Status, r.Body)
			}
			for _, w := range want {
				if !bytes.Contains(r.Body, []byte(w)) {
					t.Errorf("ropa %s lacks %q", format, w)
				}
			}
		}
		var rec ropa.Record
		if err := json.Unmarshal(h.Do("GET", "/api/v1/staff/ropa?format=json", nil, admin).Body, &rec); err != nil {
			t.Fatal(err)
		}
		if len(rec.Activities) != len(h.App.Registry().Holders()) || len(rec.Purposes) != len(h.App.Consent().Register().Purposes) ||
			len(rec.Processors) != 2 || len(rec.Transfers) != 1 {
			t.Errorf("ropa: %d activities, %d purposes, %d processors, %d transfers", len(rec.Activities), len(rec.Purposes), len(rec.Processors),
				len(rec.Transfers))
		}
		if r := h.Do("GET", "/api/v1/staff/ropa?format=pdf", nil, admin); r.Status != 400 {
			t.Errorf("ropa pdf = %d, want 400", r.Status)
		} else if f, _ := r.ErrorField(); f != "format" {
			t.Errorf("ropa pdf names %q, want format", f)
		}
	})
}
