package web_test

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"steward/internal/app/apptest"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"steward/internal/store/storetest"
)

// TestRegistersInBrowser walks both registers in Chromium as the DPO, on every
// engine: a disclosure recorded with its document and the "not yet" flag (the member
// sees nothing), its document opened, the flag lifted (the member is mailed and her
// privacy center lists it); a breach recorded with its 72-hour clock, the member
// selected by a preview then a list, the report to the authority recorded and the
// notice sent, once.
func TestRegistersInBrowser(t *testing.T) {
	t.Parallel()
	root := browserContext(t)
	for dialect, dbURL := range storetest.Engines(t) {
		t.Run(string(dialect), func(t *testing.T) {
			s := start(t, dbURL, "--dpo-contact", "Jane Roe, dpo@example.com")
			const (
				email, password = "rita@example.com", "violet harbour lantern 77"
				dpo, dpoPW      = "officer@example.com", "quiet copper meadow 31"
			)
			s.signUp(t, s.client(), email, "Rita Register", password)
			dpoID := s.signUp(t, s.client(), dpo, "Otto Officer", dpoPW)
			if err := apptest.GrantStaff(t.Context(), s.app, dpoID, "dpo"); err != nil {
				t.Fatal(err)
			}
			doc := filepath.Join(t.TempDir(), "order.pdf")
			if err := os.WriteFile(doc, []byte("%PDF-1.4\n% the order of the court\n%%EOF\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			d := s.tab(t, root)
			d.staffLogin(dpo, dpoPW, dpoID)
			disclosureWalk(t, s, root, d, email, password, doc)
			breachWalk(t, s, d, email)
		})
	}
}

func disclosureWalk(t *testing.T, s *site, root context.Context, d *rightsTab, email, password, doc string) {
	today := time.Now().UTC().Format(time.DateOnly)
	// Without a document the form comes back with the field named, nothing recorded.
	d.do("record without a document",
		chromedp.Navigate(d.base+"/staff/disclosures"),
		chromedp.WaitVisible(chromedp.ID("page-staff-disclosures")),
		chromedp.SendKeys(chromedp.ID("f-authority"), "District Court of Example"),
		chromedp.SendKeys(chromedp.ID("f-legal_basis"), "Production order 4711"),
		chromedp.SendKeys(chromedp.ID("f-members"), email),
		chromedp.SendKeys(chromedp.ID("f-categories"), "contact details, login times"),
		chromedp.SendKeys(chromedp.ID("f-what"), "Her email address and login times"),
		chromedp.SetValue(chromedp.ID("f-disclosed_at"), today),
		chromedp.Evaluate[chromedp.Void](`document.getElementById("f-document").removeAttribute("required")`),
		chromedp.Click(chromedp.CSS(`#record button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.ID("f-document-error")),
	)
	if got := d.text("document error", "#f-document-error"); !strings.Contains(got, "is required") {
		t.Errorf("the document's error reads %q", got)
	}
	if list, err := s.app.Disclosures().List(t.Context()); err != nil || len(list) != 0 {
		t.Fatalf("a disclosure without a document was recorded: %v %v", list, err)
	}
	// With it, and the flag: the members are not told yet.
	d.do("record with the flag",
		chromedp.SetUploadFiles(chromedp.ID("f-document"), []string{doc}),
		chromedp.Click(chromedp.ID("f-withhold")),
		chromedp.SendKeys(chromedp.ID("f-withhold_reason"), "The prosecutor asks for secrecy"),
		chromedp.SetValue(chromedp.ID("f-review_at"), time.Now().UTC().AddDate(0, 0, 14).Format(time.DateOnly)),
		chromedp.Click(chromedp.CSS(`#record button[type="submit"]`)),
	)
	d.until("record with the flag", "done=recorded")
	if got := d.text("register", "#disclosures"); !strings.Contains(got, "District Court of Example") || !strings.Contains(got, "not yet") {
		t.Fatalf("the register reads %q", got)
	}
	m := s.tab(t, root)
	m.login(email, password)
	m.do("privacy center", chromedp.Navigate(m.base+"/account/requests"), chromedp.WaitVisible(chromedp.ID("page-requests")))
	if got := m.text("privacy center", "#page-requests"); strings.Contains(got, "District Court") {
		t.Fatal("the member sees a disclosure not to be told yet")
	}

	d.do("open the disclosure",
		chromedp.Click(chromedp.CSS(`#disclosures a`)),
		chromedp.WaitVisible(chromedp.ID("page-staff-disclosure")),
	)
	href, err := chromedp.Run(d.ctx, chromedp.AttributeValue(chromedp.ID("document"), "href"))
	if err != nil {
		t.Fatal(err)
	}
	if status, ctype := d.fetch(href.Value); status != 200 || ctype != "application/pdf" {
		t.Errorf("the document: %d %q", status, ctype)
	}
	d.do("lift the flag", chromedp.Click(chromedp.CSS(`#lift button[type="submit"]`)))
	d.until("lift the flag", "done=lifted")
	if got := d.text("disclosure", "#disclosure"); !strings.Contains(got, "told") {
		t.Errorf("after the lift the disclosure reads %q", got)
	}
	s.find(email, regexp.MustCompile(`disclosed some of your data to District Court of Example`))
	m.do("privacy center again", chromedp.Reload(), chromedp.WaitVisible(chromedp.ID("disclosures")))
	if got := m.text("privacy center", "#disclosures"); !strings.Contains(got, "Her email address and login times") {
		t.Errorf("the privacy center lists %q", got)
	}
}

func breachWalk(t *testing.T, s *site, d *rightsTab, email string) {
	discovered := time.Now().UTC().Add(-2 * time.Hour).Format("2006-01-02T15:04")
	d.do("record a breach",
		chromedp.Navigate(d.base+"/staff/breaches"),
		chromedp.WaitVisible(chromedp.ID("page-staff-breaches")),
		chromedp.SendKeys(chromedp.ID("f-description"), "A laptop with an export was stolen"),
		chromedp.SetValue(chromedp.ID("f-discovered_at"), discovered),
		chromedp.SendKeys(chromedp.ID("f-categories"), "contact details"),
		chromedp.SendKeys(chromedp.ID("f-consequences"), "Phishing mails"),
		chromedp.SendKeys(chromedp.ID("f-measures"), "The disk was encrypted; be wary of mails asking for your password"),
		chromedp.Click(chromedp.CSS(`#record button[type="submit"]`)),
	)
	d.until("record a breach", "done=recorded")
	if got := d.text("clock", "#clock"); !strings.Contains(got, "to report") || !regexp.MustCompile(`(69 h 5\d|70 h 0) min left`).MatchString(got) {
		t.Errorf("the clock reads %q, want about 70 hours left", got)
	}
	d.do("preview the selection",
		chromedp.SendKeys(chromedp.ID("f-emails"), email),
		chromedp.Click(chromedp.CSS(`#select button[value="preview"]`)),
		chromedp.WaitVisible(chromedp.ID("preview")),
	)
	if got := d.text("preview", "#preview"); !strings.Contains(got, "finds 1 member") {
		t.Errorf("the preview reads %q", got)
	}
	d.do("add the members", chromedp.Click(chromedp.CSS(`#select button[value="add"]`)))
	d.until("add the members", "done=selected")
	d.do("record the report",
		chromedp.SendKeys(chromedp.ID("f-reference"), "DPA-2026-0042"),
		chromedp.Click(chromedp.CSS(`#report button[type="submit"]`)),
	)
	d.until("record the report", "done=reported")
	if got := d.text("clock", "#clock"); !strings.Contains(got, "reported") || !strings.Contains(got, "DPA-2026-0042") {
		t.Errorf("after the report the clock reads %q", got)
	}
	d.do("send the notice", chromedp.Click(chromedp.CSS(`#notify button[type="submit"]`)))
	d.until("send the notice", "done=notified")
	if got := d.text("affected", "#affected"); !strings.Contains(got, "1 selected") || !strings.Contains(got, "1 notified") {
		t.Errorf("the members read %q", got)
	}
	if got := d.text("notice section", "#page-staff-breach"); !strings.Contains(got, "Every member selected has been sent the notice") {
		t.Errorf("after the notice the page reads %q", got)
	}
	s.find(email, regexp.MustCompile(`A laptop with an export was stolen`))
}
