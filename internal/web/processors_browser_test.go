package web_test

import (
	"net/http"
	"steward/internal/app/apptest"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"steward/internal/store/storetest"
)

// TestProcessorsInBrowser walks the register of processors in Chromium, on every
// engine, as the administrator and the DPO would: the administrator adds a processor
// outside the region (refused without a safeguard, then added under standard
// contractual clauses), edits it, and adds one that data is sold to, which she cannot
// approve herself; the DPO approves it; the history says who did what; the records of
// processing download in three formats; a visitor reads the public list.
func TestProcessorsInBrowser(t *testing.T) {
	t.Parallel()
	root := browserContext(t)
	for dialect, dbURL := range storetest.Engines(t) {
		t.Run(string(dialect), func(t *testing.T) {
			s := start(t, dbURL, "--region", "EU")
			const adminEmail, dpoEmail, password = "ada@example.com", "grace@example.com", "analytical engine 1843"
			adminID := s.signUp(t, s.client(), adminEmail, "Ada Lovelace", password)
			dpoID := s.signUp(t, s.client(), dpoEmail, "Grace Hopper", password)
			for id, role := range map[string]string{adminID: "admin", dpoID: "dpo"} {
				if err := apptest.GrantStaff(t.Context(), s.app, id, role); err != nil {
					t.Fatal(err)
				}
			}
			admin := s.tab(t, root)
			admin.staffLogin(adminEmail, password, adminID)

			// Outside the region without a safeguard: refused, the field says why.
			admin.do("add without a safeguard",
				chromedp.Navigate(admin.base+"/staff/processors"),
				chromedp.WaitVisible(chromedp.ID("page-staff-processors")),
				chromedp.SendKeys(chromedp.ID("f-key"), "helpdesk"),
				chromedp.SendKeys(chromedp.ID("f-name"), "Helpdesk Inc."),
				chromedp.SendKeys(chromedp.ID("f-service"), "Answers members' questions"),
				chromedp.Click(chromedp.CSS(`#f-purposes input[value="account"]`)),
				chromedp.SendKeys(chromedp.ID("f-categories"), "user.contact.email, user.name"),
				chromedp.SendKeys(chromedp.ID("f-country"), "US"),
				chromedp.Click(chromedp.CSS(`#processor-form button[type="submit"]`)),
				chromedp.WaitVisible(chromedp.ID("f-transfer-error")),
			)
			if got := admin.text("the error", "#f-transfer-error"); !strings.Contains(got, "outside the region") {
				t.Errorf("the safeguard's error reads %q", got)
			}
			if _, err := s.app.Processors().Get(t.Context(), "helpdesk"); err == nil {
				t.Fatal("a processor refused was stored")
			}
			// The form kept what was typed: choose the clauses and send it again.
			admin.do("add under SCC",
				chromedp.SetValue(chromedp.ID("f-transfer"), "scc"),
				chromedp.SendKeys(chromedp.ID("f-contract"), "DPA-2026-01"),
				chromedp.Click(chromedp.CSS(`#processor-form button[type="submit"]`)),
			)
			admin.until("add under SCC", "done=added")
			if got := admin.text("facts", "#processor"); !strings.Contains(got, "Standard contractual clauses") || !strings.Contains(got, "DPA-2026-01") {
				t.Errorf("the processor's page reads %q", got)
			}

			// Edit: the history shows the change and who made it.
			admin.do("edit",
				chromedp.SetValue(chromedp.ID("f-safeguard"), "SCC 2021/914, module 2"),
				chromedp.Click(chromedp.CSS(`#processor-form button[type="submit"]`)),
			)
			admin.until("edit", "done=edited")
			if got := admin.text("history", "#history"); !strings.Contains(got, "edited") || !strings.Contains(got, "SCC 2021/914, module 2") ||
				!strings.Contains(got, adminID) {
				t.Errorf("the history reads %q, want the edit by the administrator", got)
			}

			// A sale: pending, and not for its proposer to approve.
			admin.do("add a sale",
				chromedp.Navigate(admin.base+"/staff/processors"),
				chromedp.WaitVisible(chromedp.ID("page-staff-processors")),
				chromedp.SendKeys(chromedp.ID("f-key"), "broker"),
				chromedp.SendKeys(chromedp.ID("f-name"), "Data Broker Ltd"),
				chromedp.Click(chromedp.CSS(`#f-purposes input[value="partner_sharing"]`)),
				chromedp.SendKeys(chromedp.ID("f-categories"), "user.contact.email"),
				chromedp.SendKeys(chromedp.ID("f-country"), "FR"),
				chromedp.Click(chromedp.ID("f-sale")),
				chromedp.Click(chromedp.CSS(`#processor-form button[type="submit"]`)),
			)
			admin.until("add a sale", "done=proposed")
			if got := admin.text("proposal", "#proposal"); !strings.Contains(got, "You proposed it") {
				t.Errorf("the proposal reads %q", got)
			}
			if n, _ := chromedp.Run(admin.ctx, chromedp.Evaluate[int](`document.querySelectorAll('form[action$="/approve"]').length`)); n != 0 {
				t.Error("the proposer is offered to approve her own sale")
			}
			if status, _ := admin.fetch("/privacy/processors"); status != http.StatusOK {
				t.Fatalf("public list = %d", status)
			}

			// The DPO approves it.
			dpo := s.tab(t, root)
			dpo.staffLogin(dpoEmail, password, dpoID)
			dpo.do("approve",
				chromedp.Navigate(dpo.base+"/staff/processors"),
				chromedp.WaitVisible(chromedp.ID("pending-broker")),
				chromedp.Click(chromedp.CSS(`#pending-broker a`)),
				chromedp.WaitVisible(chromedp.ID("proposal")),
				chromedp.Click(chromedp.CSS(`#proposal form[action$="/approve"] button`)),
			)
			dpo.until("approve", "done=approved")
			e, err := s.app.Processors().Get(t.Context(), "broker")
			if err != nil || e.State != "active" || !e.Sale {
				t.Fatalf("after the approval, broker = %+v, %v", e, err)
			}
			if got := dpo.text("history", "#history"); !strings.Contains(got, "approved") || !strings.Contains(got, dpoID) || !strings.Contains(got, "proposed") {
				t.Errorf("the history reads %q, want proposed then approved by the DPO", got)
			}

			// The records of processing: the page, and its three downloads.
			dpo.do("records of processing",
				chromedp.Navigate(dpo.base+"/staff/ropa"),
				chromedp.WaitVisible(chromedp.ID("page-staff-ropa")),
			)
			if got := dpo.text("ropa", "#ropa-processors"); !strings.Contains(got, "Helpdesk Inc.") || !strings.Contains(got, "Data Broker Ltd") {
				t.Errorf("the record's processors read %q", got)
			}
			for _, f := range []struct{ href, ctype string }{{"/staff/ropa/markdown", "text/markdown"}, {"/staff/ropa/csv", "text/csv"},
				{"/staff/ropa/json", "application/json"}} {
				sel := `#downloads a[href="` + f.href + `"]`
				if n, _ := chromedp.Run(dpo.ctx, chromedp.Evaluate[int](`document.querySelectorAll(`+jsString(sel)+`).length`)); n != 1 {
					t.Errorf("no download link %s", f.href)
				}
				if status, ctype := dpo.fetch(f.href); status != http.StatusOK || !strings.HasPrefix(ctype, f.ctype) {
					t.Errorf("download %s = %d %q", f.href, status, ctype)
				}
			}

			// A visitor reads the public list: the region, and both processors in force.
			visitor := s.tab(t, root)
			visitor.do("public list", chromedp.Navigate(visitor.base+"/privacy/processors"), chromedp.WaitVisible(chromedp.ID("processors")))
			if got := visitor.text("region", "#region"); !strings.Contains(got, "EU") {
				t.Errorf("the region reads %q", got)
			}
			got := visitor.text("list", "#processors")
			for _, want := range []string{"Helpdesk Inc.", "Data Broker Ltd", "Email delivery provider", "Standard contractual clauses"} {
				if !strings.Contains(got, want) {
					t.Errorf("the public list lacks %q: %q", want, got)
				}
			}
		})
	}
}
