package web_test

import (
	"steward/internal/app/apptest"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"steward/internal/store/storetest"
)

// TestRetentionInBrowser walks the retention page as the DPO would, on every engine:
// the rules with their periods (inactive accounts off by default), "Run now", and
// the run listed with what each rule removed: here a registration left unconfirmed
// for eight days.
func TestRetentionInBrowser(t *testing.T) {
	t.Parallel()
	root := browserContext(t)
	for dialect, dbURL := range storetest.Engines(t) {
		t.Run(string(dialect), func(t *testing.T) {
			s := start(t, dbURL)
			const email, password = "dora@example.com", "retention rules 2026"
			dpoID := s.signUp(t, s.client(), email, "Dora Keeper", password)
			if err := apptest.GrantStaff(t.Context(), s.app, dpoID, "dpo"); err != nil {
				t.Fatal(err)
			}
			// The daily job runs once at start: waited for, so that the run that finds
			// the registration below is the DPO's.
			for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
				runs, err := s.app.Retention().Runs(t.Context(), 1)
				if err != nil {
					t.Fatal(err)
				}
				if len(runs) == 1 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatal("the daily job did not run at start")
				}
			}
			// A registration never confirmed, eight days old (the site has no clock to
			// move here: its date is written back).
			s.client().post("/register", registration("never.confirmed@example.com", "Nev Confirmed", "silent lighthouse 9071")).
				wantRedirect(t, "register", "/register/sent")
			if _, err := s.app.DB().ExecContext(t.Context(), `UPDATE accounts SET created_at = $1 WHERE status = 'pending_verification'`,
				time.Now().Add(-8*24*time.Hour).UnixMilli()); err != nil {
				t.Fatal(err)
			}

			b := s.tab(t, root)
			b.staffLogin(email, password, dpoID)
			b.do("open the retention page",
				chromedp.Navigate(b.base+"/staff/retention"),
				chromedp.WaitVisible(chromedp.ID("page-staff-retention")),
			)
			rules := b.text("rules", "#rules")
			for _, want := range []string{"unconfirmed_registrations", "7 days", "expired_sessions", "closed_requests", "1095 days",
				"file_access_log", "365 days", "inactive_accounts", "off", "never"} {
				if !strings.Contains(rules, want) {
					t.Errorf("the rules read %q, want %q", rules, want)
				}
			}
			if got := b.text("sidebar link", `a[href="/staff/retention"]`); got != "Retention" {
				t.Errorf("the sidebar's link reads %q", got)
			}
			b.do("run now", chromedp.Click(chromedp.CSS(`#run button[type="submit"]`)))
			b.until("run now", "done=ran")
			if got := b.text("notice", `p.notice`); !strings.Contains(got, "The rules ran") {
				t.Errorf("the notice reads %q", got)
			}
			runs := b.text("runs", "#runs")
			if !strings.Contains(runs, "staff") || !strings.Contains(runs, "unconfirmed_registrations: removed 1") {
				t.Errorf("the runs read %q, want the staff's run removing the registration", runs)
			}
			// The rule's row shows its last run.
			if got := b.text("rule's last run", "#rule-unconfirmed_registrations"); !strings.Contains(got, "removed 1") {
				t.Errorf("the rule's row reads %q, want its last run", got)
			}
			if _, err := s.app.Accounts().Lookup(t.Context(), "never.confirmed@example.com"); err == nil {
				t.Error("the unconfirmed registration survived the run")
			}
		})
	}
}
