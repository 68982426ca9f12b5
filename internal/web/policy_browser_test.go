package web_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"steward/internal/app/apptest"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"steward/internal/store/storetest"
)

// smtpCatcher is the test SMTP server and its API (Mailpit), or a skip (a failure
// with STEWARD_TEST_REQUIRE_SERVICES=1) without one.
func smtpCatcher(t *testing.T) (addr, api string) {
	t.Helper()
	addr, api = os.Getenv("STEWARD_TEST_SMTP_ADDR"), os.Getenv("STEWARD_TEST_MAILPIT_URL")
	if addr == "" || api == "" {
		if os.Getenv("STEWARD_TEST_REQUIRE_SERVICES") == "1" {
			t.Fatal("STEWARD_TEST_SMTP_ADDR and STEWARD_TEST_MAILPIT_URL are required")
		}
		t.Skip("no SMTP server configured")
	}
	return addr, api
}

// caught waits for a message to addr whose subject contains subj at the SMTP catcher
// and returns its text.
func caught(t *testing.T, api, addr, subj string) string {
	t.Helper()
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		resp, err := http.Get(api + "/api/v1/search?query=" + url.QueryEscape("to:"+addr+` subject:"`+subj+`"`))
		if err != nil {
			t.Fatal(err)
		}
		var res struct{ Messages []struct{ ID string } }
		err = json.NewDecoder(resp.Body).Decode(&res)
		resp.Body.Close()
		if err != nil || len(res.Messages) == 0 {
			continue
		}
		resp, err = http.Get(api + "/api/v1/message/" + res.Messages[0].ID)
		if err != nil {
			t.Fatal(err)
		}
		var msg struct{ Text string }
		err = json.NewDecoder(resp.Body).Decode(&msg)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		return msg.Text
	}
	t.Fatalf("no message %q to %s at the SMTP catcher", subj, addr)
	return ""
}

var verifyToken = regexp.MustCompile(`/verify\?token=([A-Za-z0-9_-]+)`)

// signUpSMTP registers, confirms the address from the mail at the SMTP catcher and
// logs c in; it returns the account id.
func (s *site) signUpSMTP(t *testing.T, api string, c *client, email, name, password string) string {
	t.Helper()
	c.post("/register", registration(email, name, password)).wantRedirect(t, "register", "/register/sent")
	m := verifyToken.FindStringSubmatch(caught(t, api, email, "Confirm your email address"))
	if m == nil {
		t.Fatalf("no confirmation link mailed to %s", email)
	}
	c.post("/verify", url.Values{"token": {m[1]}}).wantRedirect(t, "verify", "/verify/done?status=active")
	c.post("/login", url.Values{"email": {email}, "password": {password}}).wantRedirect(t, "login", "/account")
	acct := c.get("/account")
	acct.want(t, "account", http.StatusOK)
	id := memberLink.FindStringSubmatch(acct.body)
	if id == nil {
		t.Fatalf("account page has no link to the public profile:\n%s", acct.body)
	}
	return id[1]
}

// TestPolicyInBrowser walks a material change of the privacy policy in Chromium, on
// every engine: the DPO drafts a version that asks the newsletter again and publishes
// it; the mail to the member arrives at the SMTP server; the member, at the next
// visit, sees the notice, reads the change, accepts it and consents to the newsletter
// again; the diff page shows the added line.
func TestPolicyInBrowser(t *testing.T) {
	t.Parallel()
	addr, api := smtpCatcher(t)
	root := browserContext(t)
	for dialect, dbURL := range storetest.Engines(t) {
		t.Run(string(dialect), func(t *testing.T) {
			s := start(t, dbURL, "--mail", "smtp", "--smtp-addr", addr, "--smtp-tls", "none")
			ctx := t.Context()
			stamp := time.Now().UnixNano()
			member, dpo := fmt.Sprintf("ada-%d@example.com", stamp), fmt.Sprintf("dpo-%d@example.net", stamp)
			const password = "analytical engine 1843"
			mc := s.client()
			memberID := s.signUpSMTP(t, api, mc, member, "Ada Lovelace", password)
			mc.post("/account/preferences", url.Values{"consent_newsletter": {"on"}}).wantRedirect(t, "opt in", "/account/preferences?saved=1")
			dpoID := s.signUpSMTP(t, api, s.client(), dpo, "Dana Officer", password)
			if err := apptest.GrantStaff(ctx, s.app, dpoID, "dpo"); err != nil {
				t.Fatal(err)
			}
			first, err := s.app.Policy().Current(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if v, _ := s.app.Consent().Allowed(ctx, memberID, "newsletter"); !v.Allowed {
				t.Fatalf("before the change: %+v", v)
			}

			// The DPO drafts the version from the console and publishes it.
			d := s.tab(t, root)
			d.staffLogin(dpo, password, dpoID)
			d.do("draft a version",
				chromedp.Navigate(d.base+"/staff/policy"),
				chromedp.WaitVisible(chromedp.ID("page-staff-policies")),
				chromedp.Click(chromedp.CSS(`a[href="/staff/policy/new"].button`)),
				chromedp.WaitVisible(chromedp.ID("f-label")),
				chromedp.SetValue(chromedp.ID("f-label"), "2026.1"),
				chromedp.SetValue(chromedp.ID("f-summary"), "The newsletter goes through a new provider."),
				chromedp.SetValue(chromedp.ID("f-body"), first.Body+"\nWe now send the newsletter through a new provider.\n"),
				chromedp.Click(chromedp.CSS(`input[name="material"]`)),
				chromedp.Click(chromedp.CSS(`input[name="purposes"][value="newsletter"]`)),
				chromedp.Click(chromedp.CSS(`#draft button[type="submit"]`)),
			)
			d.until("the draft saved", "/staff/policy/2026.1?saved=1")
			d.do("publish", chromedp.Click(chromedp.CSS(`#publish button[type="submit"]`)))
			d.until("published", "/staff/policy/2026.1?published=1")
			if got := d.text("published facts", "dl.facts"); !strings.Contains(got, "Newsletter") {
				t.Errorf("the published version does not name the newsletter as asked again: %q", got)
			}

			// The mail, at the SMTP server.
			text := caught(t, api, member, "privacy policy")
			if !strings.Contains(text, "2026.1") || !strings.Contains(text, "/account/policy") || !strings.Contains(text, "Newsletter") {
				t.Errorf("the mail to the member:\n%s", text)
			}
			if v, _ := s.app.Consent().Allowed(ctx, memberID, "newsletter"); v.Allowed {
				t.Fatalf("the old consent still counts: %+v", v)
			}

			// The member's next visit: the notice, the change, the renewed consent.
			b := s.tab(t, root)
			b.login(member, password)
			if got := b.text("the notice", "#policy-banner"); !strings.Contains(got, "2026.1") {
				t.Fatalf("the notice: %q", got)
			}
			b.do("open the notice", chromedp.Click(chromedp.CSS(`#policy-banner a`)), chromedp.WaitVisible(chromedp.ID("page-account-policy")))
			if got := b.text("the change", "#page-account-policy"); !strings.Contains(got, "The newsletter goes through a new provider.") {
				t.Fatalf("the member's policy page: %q", got)
			}
			b.do("accept and consent again",
				chromedp.Click(chromedp.CSS(`input[name="reconfirm"][value="newsletter"]`)),
				chromedp.Click(chromedp.CSS(`#accept button[type="submit"]`)),
			)
			b.until("accepted", "/account/policy?accepted=1")
			if v, _ := s.app.Consent().Allowed(ctx, memberID, "newsletter"); !v.Allowed {
				t.Fatalf("after consenting again: %+v", v)
			}
			b.do("the account", chromedp.Navigate(b.base+"/account"), chromedp.WaitVisible(chromedp.ID("page-account")))
			if n, err := chromedp.Run(b.ctx, chromedp.Evaluate[int](`document.querySelectorAll("#policy-banner").length`)); err != nil || n != 0 {
				t.Fatalf("the notice is still shown after accepting (%d, %v)", n, err)
			}

			// The diff: from the version the member had accepted to the new one.
			b.do("the diff",
				chromedp.Navigate(b.base+"/account/policy"),
				chromedp.WaitVisible(chromedp.ID("page-account-policy")),
				chromedp.Click(chromedp.CSS(`a[href^="/privacy/policy/diff"]`)),
				chromedp.WaitVisible(chromedp.ID("page-policy-diff")),
			)
			added, err := chromedp.Run(b.ctx, chromedp.Evaluate[[]string](`Array.from(document.querySelectorAll("#diff ins")).map(e => e.textContent)`))
			if err != nil || len(added) != 2 || !strings.Contains(added[1], "We now send the newsletter through a new provider.") {
				t.Fatalf("the diff's added lines: %q (%v), want a blank one and the new sentence", added, err)
			}
			if n, err := chromedp.Run(b.ctx, chromedp.Evaluate[int](`document.querySelectorAll("#diff del").length`)); err != nil || n != 0 {
				t.Errorf("the diff removes %d lines (%v), want none", n, err)
			}
		})
	}
}
