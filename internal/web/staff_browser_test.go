package web_test

import (
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"steward/internal/app/apptest"
	"steward/internal/store"
	"steward/internal/store/storetest"
)

// TestStaffInBrowser walks an administrator through the second factor and the staff
// console: set up on the first staff login (the key read off the page, the code made
// from it), the recovery codes, a role granted and revoked on the staff page (the
// revocation after the re-authentication window, so the password is asked again),
// the audit log verified, and a second login with a code.
func TestStaffInBrowser(t *testing.T) {
	t.Parallel()
	root := browserContext(t)
	axe := axeSource(t)
	for dialect, dbURL := range storetest.Engines(t) {
		t.Run(string(dialect), func(t *testing.T) {
			s := start(t, dbURL)
			const admin, adminPW = "ada.admin@example.com", "analytical engine 1843"
			const other, otherPW = "bob.audit@example.com", "difference engine 1822"
			adminID := s.signUp(t, s.client(), admin, "Ada Admin", adminPW)
			s.signUp(t, s.client(), other, "Bob Audit", otherPW)
			if err := s.app.Staff().Grant(t.Context(), adminID, "admin"); err != nil {
				t.Fatal(err)
			}
			b := s.tab(t, root)
			b.do("log in: set up the second factor",
				chromedp.Navigate(b.base+"/login"),
				chromedp.WaitVisible(chromedp.ID("page-login")),
				chromedp.SendKeys(chromedp.ID("f-email"), admin),
				chromedp.SendKeys(chromedp.ID("f-password"), adminPW),
				chromedp.Click(chromedp.CSS(`#page-login button[type="submit"]`)),
				chromedp.WaitVisible(chromedp.ID("page-second-factor-setup")),
				chromedp.WaitVisible(chromedp.ID("qr")),
			)
			secret := strings.TrimSpace(b.text("the key", "#secret"))
			if uri := b.text("the URI", "#otpauth"); !strings.HasPrefix(uri, "otpauth://totp/") || !strings.Contains(uri, secret) {
				t.Fatalf("the page's URI = %q, key %q", uri, secret)
			}
			b.do("confirm with a code",
				chromedp.SendKeys(chromedp.ID("f-totp"), apptest.TOTPCode(secret, time.Now())),
				chromedp.Click(chromedp.CSS(`#page-second-factor-setup button[type="submit"]`)),
				chromedp.WaitVisible(chromedp.ID("recovery-codes")),
			)
			checkPage(t, b.ctx, axe, "second-factor-codes")
			if codes := strings.Fields(b.text("recovery codes", "#recovery-codes")); len(codes) != 10 {
				t.Errorf("recovery codes shown = %v, want 10", codes)
			}
			b.do("continue to the staff pages",
				chromedp.Click(chromedp.CSS(`#page-second-factor-codes a.button`)),
				chromedp.WaitVisible(chromedp.CSS(`body.staff`)),
				chromedp.Navigate(b.base+"/staff/people"),
				chromedp.WaitVisible(chromedp.ID("people")),
			)
			if got := b.text("staff", "#people"); !strings.Contains(got, admin) || !strings.Contains(got, "Set up") {
				t.Fatalf("the staff list reads %q, want the admin with a second factor", got)
			}
			b.do("grant the auditor role",
				chromedp.SendKeys(chromedp.ID("f-email"), other),
				chromedp.SetValue(chromedp.ID("f-role"), "auditor"),
				chromedp.Click(chromedp.CSS(`form[action="/staff/people/grant"] button[type="submit"]`)),
			)
			b.until("grant the auditor role", "done=granted")
			if got := b.text("staff", "#people"); !strings.Contains(got, other) || !strings.Contains(got, "auditor") {
				t.Fatalf("after the grant the staff list reads %q", got)
			}

			// The re-authentication window passes (as if 10 minutes went by).
			if _, err := s.app.DB().ExecContext(t.Context(), `UPDATE sessions SET reauth_at = $1 WHERE account_id = $2`,
				store.Millis(time.Now().Add(-time.Hour)), adminID); err != nil {
				t.Fatal(err)
			}
			b.do("revoke: asked who it is",
				chromedp.Click(chromedp.CSS(`button[aria-label="Revoke auditor from this account"]`)),
				chromedp.WaitVisible(chromedp.ID("page-reauth")),
			)
			checkPage(t, b.ctx, axe, "reauth")
			b.do("give the password",
				chromedp.SendKeys(chromedp.ID("f-reauth_password"), adminPW),
				chromedp.Click(chromedp.CSS(`#page-reauth button[type="submit"]`)),
			)
			b.until("revoke", "done=revoked")
			if got := b.text("staff", "#people"); strings.Contains(got, other) {
				t.Fatalf("after the revocation the staff list reads %q", got)
			}

			b.do("the audit log",
				chromedp.Navigate(b.base+"/staff/audit"),
				chromedp.WaitVisible(chromedp.ID("audit")),
			)
			// The page shows the newest verification; the admin asks for one now and
			// reloads until the job has run.
			b.do("verify now", chromedp.Click(chromedp.CSS(`form[action="/staff/audit/verify"] button`)))
			b.until("verify now", "verify=queued")
			if got := b.text("queued", "#verify-queued"); !strings.Contains(got, "was asked for") {
				t.Errorf("after verify now the page says %q", got)
			}
			verified := ""
			for range 100 {
				if verified = b.text("verification", "#verification"); strings.Contains(verified, "(staff,") {
					break
				}
				time.Sleep(100 * time.Millisecond)
				b.do("reload", chromedp.Reload(), chromedp.WaitVisible(chromedp.ID("audit")))
			}
			if !strings.Contains(verified, "The chain verified at") || !strings.Contains(verified, "(staff,") {
				t.Errorf("the audit page says %q, want the staff member's verification, intact", verified)
			}
			if got := b.text("audit", "#audit"); !strings.Contains(got, "staff_role_revoked") || !strings.Contains(got, "second_factor_enrolled") {
				t.Errorf("the audit page lists %q", got)
			}

			// A new login asks for a code.
			code, err := apptest.NextCode(t.Context(), s.app, adminID)
			if err != nil {
				t.Fatal(err)
			}
			c := s.tab(t, root)
			c.do("log in with a code",
				chromedp.Navigate(c.base+"/login"),
				chromedp.WaitVisible(chromedp.ID("page-login")),
				chromedp.SendKeys(chromedp.ID("f-email"), admin),
				chromedp.SendKeys(chromedp.ID("f-password"), adminPW),
				chromedp.Click(chromedp.CSS(`#page-login button[type="submit"]`)),
				chromedp.WaitVisible(chromedp.ID("page-second-factor")),
				chromedp.SendKeys(chromedp.ID("f-totp"), code),
				chromedp.Click(chromedp.CSS(`#page-second-factor button[type="submit"]`)),
				chromedp.WaitVisible(chromedp.CSS(`body.staff`)),
				chromedp.Navigate(c.base+"/staff/people"),
				chromedp.WaitVisible(chromedp.ID("people")),
			)
		})
	}
}
