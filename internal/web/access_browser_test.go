package web_test

import (
	"steward/internal/app/apptest"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"steward/internal/store/storetest"
)

// TestAccessGrantsInBrowser walks a grant through the pages in Chromium, on every
// engine: support is refused the member's page, asks for access on the grants page,
// the member approves it on their staff access page, support opens the member's page,
// and the member sees that read: who (role and name), what and why.
func TestAccessGrantsInBrowser(t *testing.T) {
	t.Parallel()
	root := browserContext(t)
	for dialect, dbURL := range storetest.Engines(t) {
		t.Run(string(dialect), func(t *testing.T) {
			s := start(t, dbURL)
			const (
				member, memberPW   = "mia@example.com", "orchard lantern 77"
				support, supportPW = "sam@example.com", "helpdesk harbour 12"
			)
			memberID := s.signUp(t, s.client(), member, "Mia Member", memberPW)
			supportID := s.signUp(t, s.client(), support, "Sam Support", supportPW)
			if err := apptest.GrantStaff(t.Context(), s.app, supportID, "support"); err != nil {
				t.Fatal(err)
			}

			sup := s.tab(t, root)
			sup.staffLogin(support, supportPW, supportID)
			sup.do("open the member without a grant", chromedp.Navigate(sup.base+"/staff/members/"+memberID),
				chromedp.WaitVisible(chromedp.CSS("h1")))
			if h := sup.text("refusal", "h1"); !strings.Contains(h, "No access grant") {
				t.Fatalf("support without a grant sees %q, want the refusal", h)
			}
			sup.do("ask for access",
				chromedp.Navigate(sup.base+"/staff/grants"),
				chromedp.WaitVisible(chromedp.ID("page-staff-grants")),
				chromedp.SendKeys(chromedp.ID("f-member"), member),
				chromedp.Click(chromedp.CSS(`#ask input[value="profile"]`)),
				chromedp.Click(chromedp.CSS(`#ask input[value="files"]`)),
				chromedp.SendKeys(chromedp.ID("f-reason"), "Ticket #4711: cannot log in"),
				chromedp.Click(chromedp.CSS(`#ask button[type="submit"]`)),
			)
			sup.until("ask for access", "done=requested")
			if got := sup.text("grants", "#mine"); !strings.Contains(got, "waiting for approval") {
				t.Fatalf("support's grants read %q, want the grant waiting", got)
			}

			mem := s.tab(t, root)
			mem.login(member, memberPW)
			mem.do("open the staff access page", chromedp.Navigate(mem.base+"/account/access"),
				chromedp.WaitVisible(chromedp.ID("page-access")))
			if got := mem.text("pending", "#pending"); !strings.Contains(got, "Support: Sam Support") || !strings.Contains(got, "Ticket #4711") {
				t.Fatalf("the member's pending requests read %q", got)
			}
			mem.do("approve", chromedp.Click(chromedp.CSS(`#pending input[value="approve"] + button`)))
			mem.until("approve", "done=approved")

			sup.do("open the member", chromedp.Navigate(sup.base+"/staff/members/"+memberID),
				chromedp.WaitVisible(chromedp.ID("page-staff-member")))
			if got := sup.text("profile", "#profile"); !strings.Contains(got, "Mia Member") || !strings.Contains(got, member) {
				t.Fatalf("the member's page shows %q, want her profile", got)
			}

			mem.do("see the read", chromedp.Navigate(mem.base+"/account/access"), chromedp.WaitVisible(chromedp.ID("page-access")))
			got := mem.text("reads", "#reads")
			for _, want := range []string{"Support: Sam Support", "member view: profile, files", "Ticket #4711: cannot log in"} {
				if !strings.Contains(got, want) {
					t.Errorf("the member's reads read %q, want %q", got, want)
				}
			}
		})
	}
}
