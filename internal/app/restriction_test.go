package app_test

import (
	"context"
	"strings"
	"testing"

	"steward/internal/app/apptest"
)

// A restricted member's data is kept but not used (GDPR art. 18, P-RIGHT-5): no
// campaign reaches them, an open of a mail sent before is not recorded, their public
// profile is hidden (API and page), and they can still correct their data themselves.
// Lifting the restriction brings the profile back.
func TestRestrictionTakesEffectEverywhere(t *testing.T) {
	apptest.Each(t, func(t *testing.T, h *apptest.Harness) {
		ctx := context.Background()
		staffID, staff := h.Member("editor@example.org", pw, nil)
		if err := h.GrantStaff(ctx, staffID, "marketing"); err != nil {
			t.Fatal(err)
		}
		id, token := h.Member("rita@example.org", pw, nil)
		if r := h.Do("PATCH", "/api/v1/me", map[string]any{"public": map[string]bool{"name": true}}, token); r.Status != 200 {
			t.Fatalf("making the name public: %d %s", r.Status, r.Body)
		}
		if r := h.Do("PUT", "/api/v1/me/consents", `{"choices":{"newsletter":true,"email_open_tracking":true}}`, token); r.Status != 200 {
			t.Fatalf("consents: %d %s", r.Status, r.Body)
		}
		if r := h.Do("GET", "/api/v1/members/"+id, nil, ""); r.Status != 200 || !strings.Contains(string(r.Body), "Test Member") {
			t.Fatalf("the public profile before the restriction = %d %s", r.Status, r.Body)
		}
		send := func(subject string) {
			t.Helper()
			c := h.Do("POST", "/api/v1/staff/campaigns", map[string]string{"purpose": "newsletter", "subject": subject, "body": "Hello."}, staff)
			if c.Status != 201 {
				t.Fatalf("create = %d %s", c.Status, c.Body)
			}
			cid := c.JSON()["id"].(string)
			if r := h.Do("POST", "/api/v1/staff/campaigns/"+cid+"/send", nil, staff); r.Status != 202 {
				t.Fatalf("send = %d %s", r.Status, r.Body)
			}
			waitSent(t, h, staff, cid)
		}
		send("Before")
		before := lastMail(t, h, "rita@example.org", "Before")
		beacon := campaignToken(t, before)
		if !strings.Contains(before.Raw, "/b/o.gif") {
			t.Fatal("no open beacon in the mail sent with consent to measure opens")
		}

		if r := h.Do("PUT", "/api/v1/me/consents", `{"restricted":true}`, token); r.Status != 200 {
			t.Fatalf("restricting: %d %s", r.Status, r.Body)
		}
		// No campaign.
		send("After")
		for _, m := range h.Mails("rita@example.org") {
			if strings.Contains(m.Raw, "Subject: After") {
				t.Error("a campaign reached a restricted member")
			}
		}
		// No open recorded.
		if r := h.Do("GET", "/b/o.gif?t="+beacon, nil, ""); r.Status != 200 {
			t.Errorf("beacon = %d", r.Status)
		}
		var opens int
		if err := h.App.DB().QueryRowContext(ctx, `SELECT count(*) FROM campaign_opens`).Scan(&opens); err != nil {
			t.Fatal(err)
		}
		if opens != 0 {
			t.Errorf("%d opens recorded while restricted", opens)
		}
		// No public profile, for anyone.
		if r := h.Do("GET", "/api/v1/members/"+id, nil, ""); r.Status != 404 || strings.Contains(string(r.Body), "Test Member") {
			t.Errorf("the public profile while restricted = %d %s", r.Status, r.Body)
		}
		if r := h.Do("GET", "/members/"+id, nil, token); r.Status != 404 || strings.Contains(string(r.Body), "Test Member") {
			t.Errorf("the public profile page while restricted = %d", r.Status)
		}
		// The member's own rectification still works, and the account page says why.
		if r := h.Do("PATCH", "/api/v1/me", map[string]any{"name": "Rita Right"}, token); r.Status != 200 || r.JSON()["name"] != "Rita Right" {
			t.Errorf("rectifying while restricted = %d %s", r.Status, r.Body)
		}
		if r := h.Do("GET", "/account", nil, token); r.Status != 200 || !strings.Contains(string(r.Body), "public profile is hidden") {
			t.Errorf("the account page does not say the profile is hidden: %d", r.Status)
		}

		if r := h.Do("PUT", "/api/v1/me/consents", `{"restricted":false}`, token); r.Status != 200 {
			t.Fatalf("lifting: %d %s", r.Status, r.Body)
		}
		if r := h.Do("GET", "/api/v1/members/"+id, nil, ""); r.Status != 200 || !strings.Contains(string(r.Body), "Rita Right") {
			t.Errorf("the public profile after the restriction = %d %s", r.Status, r.Body)
		}
	})
}
