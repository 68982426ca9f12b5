package app_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"steward/internal/app/apptest"
)

// A draft is changed and deleted through the API until it is sent, then both are a
// conflict; a bad field is named. A test goes to the caller alone, marked, as no
// delivery, with an opt-out link that acts on no one. On every engine.
func TestCampaignDraftsAPI(t *testing.T) {
	apptest.Each(t, func(t *testing.T, h *apptest.Harness) {
		ctx := context.Background()
		staffID, staff := h.Member("editor@example.org", pw, map[string]any{"name": "Grace Hopper"})
		if err := h.GrantStaff(ctx, staffID, "marketing"); err != nil {
			t.Fatal(err)
		}
		subscribe(t, h, "ann@example.org", true)
		c := h.Do("POST", "/api/v1/staff/campaigns", map[string]string{"purpose": "newsletter", "subject": "Autumn news", "body": "Autumn."}, staff)
		if c.Status != 201 {
			t.Fatalf("create = %d %s", c.Status, c.Body)
		}
		id := c.JSON()["id"].(string)
		path := "/api/v1/staff/campaigns/" + id

		// Change it: only the fields given change; a bad one is named.
		r := h.Do("PATCH", path, map[string]string{"subject": "Winter news", "body": "# Winter\n\nSnow <b>today</b>, see [us](https://example.org)."}, staff)
		if r.Status != 200 || r.JSON()["subject"] != "Winter news" || r.JSON()["purpose"] != "newsletter" || r.JSON()["status"] != "draft" {
			t.Fatalf("patch = %d %s", r.Status, r.Body)
		}
		for _, tc := range []struct {
			body        any
			field, code string
		}{
			{map[string]string{"subject": " "}, "subject", "subject_invalid"},
			{map[string]string{"subject": "two\nlines"}, "subject", ""},
			{map[string]string{"body": ""}, "body", "body_invalid"},
			{map[string]string{"purpose": "account"}, "purpose", "purpose_not_mail"},
			{map[string]string{"purpose": "nonesuch"}, "purpose", "purpose_unknown"},
			{map[string]any{"subject": 5}, "subject", ""},
		} {
			r := h.Do("PATCH", path, tc.body, staff)
			field, code := r.ErrorField()
			if r.Status != 400 || field != tc.field || (tc.code != "" && code != tc.code) {
				t.Errorf("patch %v = %d %s, want 400 naming %s", tc.body, r.Status, r.Body, tc.field)
			}
		}
		got := h.Do("GET", path, nil, staff).JSON()
		pv := got["preview"].(map[string]any)
		if got["subject"] != "Winter news" || !strings.Contains(pv["text"].(string), "Winter\n======\n\nSnow today, see us (https://example.org).") ||
			!strings.Contains(pv["html"].(string), "max-width:600px") || strings.Contains(pv["html"].(string), "<b>") {
			t.Errorf("after the refused patches the campaign is %v", got)
		}
		if r := h.Do("PATCH", "/api/v1/staff/campaigns/0123456789abcdef", map[string]string{"subject": "x"}, staff); r.Status != 404 {
			t.Errorf("patch of no campaign = %d", r.Status)
		}

		// A test: to the caller's own address, marked, both parts, no delivery.
		r = h.Do("POST", path+"/test", nil, staff)
		if r.Status != 200 || r.JSON()["to"] != "editor@example.org" || r.JSON()["subject"] != "[Test] Winter news" {
			t.Fatalf("test = %d %s", r.Status, r.Body)
		}
		m := lastMail(t, h, "editor@example.org", "[Test] Winter news")
		for _, want := range []string{"Subject: [Test] Winter news", "text/plain", "text/html", "This is a test", "Hello Grace,",
			"Snow today, see us (https://example.org).", h.URL + "/unsubscribe/test", "max-width:600px"} {
			if !strings.Contains(m.Raw, want) {
				t.Errorf("the test mail lacks %q:\n%s", want, m.Raw)
			}
		}
		for _, bad := range []string{"List-Unsubscribe", "/unsubscribe?t=", "unsubscribe+", "/b/o.gif", "<b>"} {
			if strings.Contains(m.Raw, bad) {
				t.Errorf("the test mail holds %q:\n%s", bad, m.Raw)
			}
		}
		for _, mm := range h.Mails("ann@example.org") {
			if strings.Contains(mm.Raw, "Winter news") {
				t.Errorf("a subscriber got the test:\n%s", mm.Raw)
			}
		}
		if got := h.Do("GET", path, nil, staff).JSON(); got["recipients"] != float64(0) || got["status"] != "draft" {
			t.Errorf("after a test the campaign is %v", got)
		}
		if r := h.Do("GET", "/unsubscribe/test", nil, ""); r.Status != 200 || !strings.Contains(string(r.Body), "This was a test mail") {
			t.Errorf("the test opt-out page = %d", r.Status)
		}
		if r := h.Do("POST", "/api/v1/staff/campaigns/0123456789abcdef/test", nil, staff); r.Status != 404 {
			t.Errorf("test of no campaign = %d", r.Status)
		}

		// Delete a draft: gone, and a second delete finds nothing.
		d := h.Do("POST", "/api/v1/staff/campaigns", map[string]string{"purpose": "newsletter", "subject": "Never sent", "body": "x"}, staff).JSON()["id"].(string)
		if r := h.Do("DELETE", "/api/v1/staff/campaigns/"+d, nil, staff); r.Status != 204 {
			t.Errorf("delete = %d %s", r.Status, r.Body)
		}
		if r := h.Do("GET", "/api/v1/staff/campaigns/"+d, nil, staff); r.Status != 404 {
			t.Errorf("a deleted draft = %d", r.Status)
		}
		if r := h.Do("DELETE", "/api/v1/staff/campaigns/"+d, nil, staff); r.Status != 404 {
			t.Errorf("delete twice = %d", r.Status)
		}

		// Sent: it goes to the subscriber (not the test's marking), and can no longer be
		// changed or deleted.
		if r := h.Do("POST", path+"/send", nil, staff); r.Status != 202 {
			t.Fatalf("send = %d %s", r.Status, r.Body)
		}
		for _, req := range []struct {
			method string
			body   any
		}{{"PATCH", map[string]string{"subject": "Late"}}, {"DELETE", nil}} {
			r := h.Do(req.method, path, req.body, staff)
			if _, code := r.ErrorField(); r.Status != 409 || code != "campaign_not_draft" {
				t.Errorf("%s of a sent campaign = %d %s, want 409 campaign_not_draft", req.method, r.Status, r.Body)
			}
		}
		waitSent(t, h, staff, id)
		ann := lastMail(t, h, "ann@example.org", "Winter news")
		if strings.Contains(ann.Raw, "[Test]") || strings.Contains(ann.Raw, "This is a test") || !strings.Contains(ann.Raw, "/unsubscribe?t=") {
			t.Errorf("the campaign as sent:\n%s", ann.Raw)
		}
		if got := h.Do("GET", path, nil, staff).JSON(); got["subject"] != "Winter news" || got["recipients"] != float64(1) {
			t.Errorf("the sent campaign = %v", got)
		}
	})
}

// A staff member's test mails are limited: three at once, then more are refused (429)
// until the budget refills.
func TestCampaignTestLimit(t *testing.T) {
	h := apptest.Start(t, "", "--rate-limits=true")
	staffID, staff := h.Member("editor@example.org", pw, nil)
	if err := h.GrantStaff(context.Background(), staffID, "marketing"); err != nil {
		t.Fatal(err)
	}
	id := h.Do("POST", "/api/v1/staff/campaigns", map[string]string{"purpose": "newsletter", "subject": "News", "body": "x"}, staff).JSON()["id"].(string)
	for i := range 3 {
		if r := h.Do("POST", "/api/v1/staff/campaigns/"+id+"/test", nil, staff); r.Status != 200 {
			t.Fatalf("test %d = %d %s", i+1, r.Status, r.Body)
		}
	}
	if r := h.Do("POST", "/api/v1/staff/campaigns/"+id+"/test", nil, staff); r.Status != 429 {
		t.Errorf("a fourth test at once = %d %s, want 429", r.Status, r.Body)
	}
	h.Clock.Advance(time.Minute)
	if r := h.Do("POST", "/api/v1/staff/campaigns/"+id+"/test", nil, staff); r.Status != 200 {
		t.Errorf("a test a minute later = %d %s", r.Status, r.Body)
	}
	if n := len(h.Mails("editor@example.org")); n < 4 {
		t.Errorf("%d mails to the staff member, want the 4 tests", n)
	}
}

// A test mail goes over real SMTP to the staff member alone.
func TestCampaignTestOverSMTP(t *testing.T) {
	addr, api := smtpServer(t)
	h := apptest.Start(t, "", "--mail", "smtp", "--smtp-addr", addr, "--smtp-tls", "none")
	stamp := time.Now().UnixNano()
	editor := fmt.Sprintf("smtp-tester-%d@example.org", stamp)
	if r := h.Register(map[string]any{"email": editor, "password": pw, "name": "Ed Itor", "birthdate": "1980-01-01", "country": "DE"}); r.Status != 201 {
		t.Fatal(r.Status)
	}
	_, vtext := mailpitMessage(t, api, editor, "Confirm your email")
	_, vtok := apptest.Mail{Raw: vtext}.Link()
	h.Do("POST", "/api/v1/verifications", map[string]string{"token": vtok}, "")
	l := h.Do("POST", "/api/v1/sessions", map[string]string{"email": editor, "password": pw}, "")
	staff, _ := l.JSON()["token"].(string)
	sess := h.Do("GET", "/api/v1/me", nil, staff).JSON()
	if err := h.GrantStaff(context.Background(), sess["id"].(string), "marketing"); err != nil {
		t.Fatal(err)
	}
	// Letters, not the digits of the stamp: a long enough run of digits can pass the
	// payment card check (Luhn) and be refused.
	subject := "Tested " + strings.Map(func(r rune) rune { return 'a' + (r-'0')%26 }, fmt.Sprint(stamp))
	c := h.Do("POST", "/api/v1/staff/campaigns", map[string]string{"purpose": "newsletter", "subject": subject, "body": "Checked."}, staff)
	id, _ := c.JSON()["id"].(string)
	if c.Status != 201 || id == "" {
		t.Fatalf("create = %d %s", c.Status, c.Body)
	}
	if r := h.Do("POST", "/api/v1/staff/campaigns/"+id+"/test", nil, staff); r.Status != 200 {
		t.Fatalf("test = %d %s", r.Status, r.Body)
	}
	_, text := mailpitMessage(t, api, editor, "[Test] "+subject)
	if !strings.Contains(text, "This is a test") || !strings.Contains(text, "Checked.") || !strings.Contains(text, "/unsubscribe/test") {
		t.Errorf("the delivered test:\n%s", text)
	}
	// Nobody else got it.
	resp, err := http.Get(api + "/api/v1/search?query=" + url.QueryEscape(`subject:"`+subject+`"`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var res struct {
		Messages []struct {
			To []struct{ Address string }
		}
	}
	if err := json.NewDecoder(resp.Body).Decode(&res); err != nil {
		t.Fatal(err)
	}
	if len(res.Messages) != 1 || len(res.Messages[0].To) != 1 || res.Messages[0].To[0].Address != editor {
		t.Errorf("messages with the campaign's subject: %+v, want one, to %s", res.Messages, editor)
	}
}
