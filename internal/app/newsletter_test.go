package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"steward/internal/app/apptest"
	"steward/internal/cli"
	"steward/internal/consent"
	"steward/internal/newsletter"
)

// subscribe subscribes an address through the API and confirms it from its mail.
func subscribe(t *testing.T, h *apptest.Harness, email string, confirm bool) {
	t.Helper()
	r := h.Do("POST", "/api/v1/newsletter", map[string]string{"first_name": "Sub", "last_name": "Scriber", "email": email}, "")
	if r.Status != http.StatusAccepted {
		t.Fatalf("subscribe %s = %d %s", email, r.Status, r.Body)
	}
	if !confirm {
		return
	}
	mails := h.WaitMail(email, 1)
	_, tok := mails[len(mails)-1].Link()
	if c := h.Do("POST", "/api/v1/newsletter/confirm", map[string]string{"token": tok}, ""); c.Status != 200 {
		t.Fatalf("confirm %s = %d %s", email, c.Status, c.Body)
	}
}

func audience(t *testing.T, h *apptest.Harness, purpose string) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	if err := h.App.Newsletter().Recipients(context.Background(), purpose, func(r newsletter.Recipient) error {
		out[r.Email] = true
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestNewsletterDoubleOptIn(t *testing.T) {
	apptest.Each(t, func(t *testing.T, h *apptest.Harness) {
		ctx := context.Background()
		for body, field := range map[string]string{
			`{"first_name":"A","last_name":"X"}`:                                                         "email",
			`{"first_name":"A","last_name":"X","email":"not-mail"}`:                                      "email",
			`{"first_name":"A","last_name":"X","email":"a@example.org","company":"4111 1111 1111 1111"}`: "company",
			`{"first_name":"A","last_name":"X","email":"a@example.org","phone":"1"}`:                     "phone",
			`{"first_name":"A\u0000B","last_name":"X","email":"a@example.org"}`:                          "first_name",
		} {
			if r := h.Do("POST", "/api/v1/newsletter", body, ""); r.Status != 400 {
				t.Errorf("%s = %d", body, r.Status)
			} else if f, _ := r.ErrorField(); f != field {
				t.Errorf("%s: field %q, want %q", body, f, field)
			}
		}
		// The address alone is enough: names are optional (issue 12, finding 9).
		if r := h.Do("POST", "/api/v1/newsletter", `{"email":"names.optional@example.org"}`, ""); r.Status != 202 {
			t.Errorf("address alone = %d, want 202", r.Status)
		}
		email := "reader@example.org"
		subscribe(t, h, email, false)
		firstMail := h.WaitMail(email, 1)[0]
		again := h.Do("POST", "/api/v1/newsletter", map[string]string{"first_name": "Sub", "last_name": "Scriber", "email": email}, "")
		if again.Status != 202 {
			t.Fatal(again.Status)
		}
		var newer apptest.Mail
		for _, m := range h.WaitMail(email, 2) {
			if m.File != firstMail.File {
				newer = m
			}
		}
		if len(audience(t, h, "newsletter")) != 0 {
			t.Fatal("an unconfirmed subscriber is in the audience")
		}
		_, old := firstMail.Link()
		_, tok := newer.Link()
		if r := h.Do("POST", "/api/v1/newsletter/confirm", map[string]string{"token": old}, ""); r.Status != 400 {
			t.Errorf("the superseded link = %d", r.Status)
		}
		if r := h.Do("POST", "/api/v1/newsletter/confirm", map[string]string{"token": tok}, ""); r.Status != 200 {
			t.Fatalf("confirm = %d %s", r.Status, r.Body)
		}
		if a := audience(t, h, "newsletter"); !a[email] {
			t.Fatal("the confirmed subscriber is not in the audience")
		}
		subject, _ := h.App.Newsletter().Lookup(ctx, email)
		hist, _ := h.App.Consent().History(ctx, subject)
		if len(hist) != 1 || hist[0].Source != consent.SourceEmailLink || hist[0].Evidence["request_ip"] == "" || hist[0].Evidence["confirm_ip"] == "" {
			t.Errorf("consent recorded = %+v", hist)
		}
		// Registering later with the same, verified address makes one subject.
		id, token := h.Member(email, pw, nil)
		if s, _ := h.App.Newsletter().Lookup(ctx, email); s != id {
			t.Errorf("subscriber's subject = %s, want the account %s", s, id)
		}
		if c := choice(t, h.Do("GET", "/api/v1/me/consents", nil, token), "newsletter"); c["decision"] != "granted" {
			t.Errorf("the member does not see the subscription's consent: %v", c)
		}
	})
}

var tokRE = regexp.MustCompile(`[?&]t=([a-z2-7]{42})`)

func campaignToken(t *testing.T, m apptest.Mail) string {
	t.Helper()
	sub := tokRE.FindStringSubmatch(m.Raw)
	if sub == nil {
		t.Fatalf("no opt-out link in %s", m.Raw)
	}
	return sub[1]
}

func TestCampaign(t *testing.T) {
	apptest.Each(t, func(t *testing.T, h *apptest.Harness) {
		ctx := context.Background()
		staffID, staff := h.Member("editor@example.org", pw, nil)
		_, plain := h.Member("plain@example.org", pw, nil)
		body := map[string]string{"purpose": "newsletter", "subject": "Autumn news", "body": "# News\n\nHello <b>world</b>, see [us](https://example.org)."}
		if r := h.Do("POST", "/api/v1/staff/campaigns", body, plain); r.Status != http.StatusForbidden {
			t.Fatalf("a member without the role = %d", r.Status)
		}
		if err := h.GrantStaff(ctx, staffID, "marketing"); err != nil {
			t.Fatal(err)
		}
		if r := h.Do("POST", "/api/v1/staff/campaigns", map[string]string{"purpose": "account", "subject": "x", "body": "y"}, staff); r.Status != 400 {
			t.Errorf("a campaign for a contract purpose = %d", r.Status)
		}
		subscribe(t, h, "ann@example.org", true)
		subscribe(t, h, "bob@example.org", true)
		subscribe(t, h, "cat@example.org", false) // never confirms
		subscribe(t, h, "dan@example.org", true)
		danSubject, _ := h.App.Newsletter().Lookup(ctx, "dan@example.org")
		h.App.Consent().SetFlags(ctx, danSubject, consent.Flags{Restricted: true})

		c := h.Do("POST", "/api/v1/staff/campaigns", body, staff)
		if c.Status != 201 {
			t.Fatalf("create = %d %s", c.Status, c.Body)
		}
		id := c.JSON()["id"].(string)
		pv := h.Do("GET", "/api/v1/staff/campaigns/"+id, nil, staff).JSON()["preview"].(map[string]any)
		if pv["audience"] != float64(2) || strings.Contains(pv["html"].(string), "<b>") || !strings.Contains(pv["html"].(string), `;">News</h1>`) ||
			!strings.Contains(pv["text"].(string), "News\n====\n\nHello world, see us (https://example.org).") {
			t.Errorf("preview = %v", pv)
		}
		if r := h.Do("POST", "/api/v1/staff/campaigns/"+id+"/send", nil, staff); r.Status != 202 {
			t.Fatalf("send = %d %s", r.Status, r.Body)
		}
		if r := h.Do("POST", "/api/v1/staff/campaigns/"+id+"/send", nil, staff); r.Status != 409 {
			t.Errorf("sending twice = %d", r.Status)
		}
		waitSent(t, h, staff, id)
		annMail := lastMail(t, h, "ann@example.org", "Autumn news")
		bobMail := lastMail(t, h, "bob@example.org", "Autumn news")
		for _, who := range []string{"cat@example.org", "dan@example.org"} {
			for _, m := range h.Mails(who) {
				if strings.Contains(m.Raw, "Autumn news") {
					t.Errorf("%s got the campaign", who)
				}
			}
		}
		for _, hdr := range []string{"List-Unsubscribe: <" + h.URL + "/unsubscribe/one-click?t=", "mailto:unsubscribe+", "List-Unsubscribe-Post: List-Unsubscribe=One-Click"} {
			if !strings.Contains(annMail.Raw, hdr) {
				t.Errorf("campaign mail lacks %q", hdr)
			}
		}
		if strings.Contains(annMail.Raw, "/b/o.gif") {
			t.Error("an open beacon without consent to open measurement")
		}

		// One click (RFC 8058), no login: Bob is out, and suppressed.
		bobTok := campaignToken(t, bobMail)
		oneClick := func(tok string) int {
			req, _ := http.NewRequest("POST", h.URL+"/unsubscribe/one-click?t="+tok, strings.NewReader("List-Unsubscribe=One-Click"))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			resp, err := h.Client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			return resp.StatusCode
		}
		forged := []byte(bobTok)
		if forged[5] == 'a' { // change one character, always to another one
			forged[5] = 'b'
		} else {
			forged[5] = 'a'
		}
		if st := oneClick(string(forged)); st != 400 {
			t.Errorf("forged token = %d", st)
		}
		if st := oneClick(bobTok); st != 200 {
			t.Fatalf("one-click = %d", st)
		}
		bobSubject, _ := h.App.Newsletter().Lookup(ctx, "bob@example.org")
		if v, _ := h.App.Consent().Allowed(ctx, bobSubject, "newsletter"); v.Allowed {
			t.Error("Bob still allowed after unsubscribing")
		}
		if s, _ := h.App.Newsletter().Suppressed(ctx, "bob@example.org", "newsletter"); !s {
			t.Error("Bob's address is not suppressed")
		}
		// The beacon answers an image and records nothing without consent.
		if r := h.Do("GET", "/b/o.gif?t="+campaignToken(t, annMail), nil, ""); r.Status != 200 || r.Header.Get("Content-Type") != "image/gif" {
			t.Errorf("beacon = %d %s", r.Status, r.Header.Get("Content-Type"))
		}
		var opens int
		h.App.DB().QueryRowContext(ctx, `SELECT count(*) FROM campaign_opens`).Scan(&opens)
		if opens != 0 {
			t.Errorf("%d opens recorded without consent", opens)
		}

		// An old import cannot bring Bob back; a new address comes in with its evidence.
		csv := "email,first_name,last_name,consented_at,source,evidence\n" +
			"bob@example.org,Bob,B,2019-01-01,old shop,checkbox\nann@example.org,Ann,A,2019-01-01,old shop,checkbox\n" +
			"eve@example.org,Eve,E,2019-02-02,old shop,checkbox\nnot-an-address,X,Y,,,\n"
		req, _ := http.NewRequest("POST", h.URL+"/api/v1/staff/subscribers/import", strings.NewReader(csv))
		req.Header.Set("Authorization", "Bearer "+staff)
		req.Header.Set("Content-Type", "text/csv")
		resp, err := h.Client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var rep apptest.Response
		rep.Status = resp.StatusCode
		rep.Body, _ = readAll(resp)
		if m := rep.JSON(); rep.Status != 200 || m["imported"] != float64(1) || m["suppressed"] != float64(1) || m["existing"] != float64(1) || m["invalid"] != float64(1) {
			t.Errorf("import = %d %s", rep.Status, rep.Body)
		}

		// The next campaign reaches Ann and Eve only; every recipient is what Allowed
		// says, subject by subject.
		annSubject, _ := h.App.Newsletter().Lookup(ctx, "ann@example.org")
		if _, err := h.App.Consent().Record(ctx, annSubject, "email_open_tracking", consent.Granted, consent.SourceForm, nil); err != nil {
			t.Fatal(err)
		}
		c2 := h.Do("POST", "/api/v1/staff/campaigns", map[string]string{"purpose": "newsletter", "subject": "Winter news", "body": "Brr."}, staff)
		id2 := c2.JSON()["id"].(string)
		h.Do("POST", "/api/v1/staff/campaigns/"+id2+"/send", nil, staff)
		waitSent(t, h, staff, id2)
		got := h.Do("GET", "/api/v1/staff/campaigns/"+id2, nil, staff).JSON()
		if got["sent"] != float64(2) {
			t.Errorf("second campaign sent to %v, want 2", got["sent"])
		}
		lastMail(t, h, "eve@example.org", "Winter news")
		// Ann agreed to open measurement: her mail has the beacon, and an open counts.
		annWinter := lastMail(t, h, "ann@example.org", "Winter news")
		if !strings.Contains(annWinter.Raw, "/b/o.gif?t=") {
			t.Error("no open beacon for a recipient who agreed to it")
		}
		h.Do("GET", "/b/o.gif?t="+campaignToken(t, annWinter), nil, "")
		h.App.DB().QueryRowContext(ctx, `SELECT count(*) FROM campaign_opens`).Scan(&opens)
		if opens != 1 {
			t.Errorf("%d opens recorded, want Ann's one", opens)
		}
		for _, m := range h.Mails("bob@example.org") {
			if strings.Contains(m.Raw, "Winter news") {
				t.Error("Bob was mailed after unsubscribing")
			}
		}
		aud := audience(t, h, "newsletter")
		for _, e := range []string{"ann@example.org", "bob@example.org", "cat@example.org", "dan@example.org", "eve@example.org"} {
			subj, err := h.App.Newsletter().Lookup(ctx, e)
			if err != nil {
				t.Fatal(err)
			}
			v, _ := h.App.Consent().Allowed(ctx, subj, "newsletter")
			supp, _ := h.App.Newsletter().Suppressed(ctx, e, "newsletter")
			var status string
			h.App.DB().QueryRowContext(ctx, `SELECT status FROM subscribers WHERE email_hash = $1`, h.App.Newsletter().AddressHash(e)).Scan(&status)
			want := v.Allowed && !supp && status == "confirmed"
			if aud[e] != want {
				t.Errorf("%s: in audience %v, but Allowed %v, suppressed %v, %s", e, aud[e], v.Allowed, supp, status)
			}
		}

		// The maintained table says what the rule says, for every mail purpose.
		for _, purpose := range []string{"newsletter", "own_offers", "partner_offers"} {
			byRule := map[string]bool{}
			h.App.Newsletter().AudienceByRule(ctx, purpose, func(r newsletter.Recipient) error { byRule[r.Email] = true; return nil })
			kept := audience(t, h, purpose)
			if len(kept) != len(byRule) {
				t.Errorf("%s: maintained audience %v, by the rule %v", purpose, kept, byRule)
			}
			for e := range byRule {
				if !kept[e] {
					t.Errorf("%s: %s allowed by the rule but not in the maintained audience", purpose, e)
				}
			}
		}
		// A subscriber without an account is erased by the command line, and stays off
		// the list.
		var out bytes.Buffer
		env := func(k string) string {
			if k == "STEWARD_DATA" {
				return h.Data
			}
			return ""
		}
		args := []string{"erase", "eve@example.org", "--log-level", "error"}
		if h.App.DB().Dialect == "postgres" {
			return // the command line opens its own SQLite by default; the service path is the same
		}
		if code := cli.Run(ctx, args, env, &out, &out); code != 0 {
			t.Fatalf("erase subscriber: %d %s", code, out.String())
		}
		if _, err := h.App.Newsletter().Lookup(ctx, "eve@example.org"); err == nil {
			t.Error("the erased subscriber is still on the list")
		}
		if s, _ := h.App.Newsletter().Suppressed(ctx, "eve@example.org", "own_offers"); !s {
			t.Error("the erased address is not suppressed for every purpose")
		}
	})
}

func waitSent(t *testing.T, h *apptest.Harness, staff, id string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if h.Do("GET", "/api/v1/staff/campaigns/"+id, nil, staff).JSON()["status"] == "sent" {
			return
		}
		time.Sleep(30 * time.Millisecond)
	}
	t.Fatalf("campaign %s not sent after 15s", id)
}

func lastMail(t *testing.T, h *apptest.Harness, to, subject string) apptest.Mail {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		ms := h.Mails(to)
		for i := len(ms) - 1; i >= 0; i-- {
			if strings.Contains(ms[i].Raw, subject) {
				return ms[i]
			}
		}
		time.Sleep(30 * time.Millisecond)
	}
	t.Fatalf("no mail %q to %s", subject, to)
	return apptest.Mail{}
}

func readAll(resp *http.Response) ([]byte, error) {
	defer resp.Body.Close()
	var b bytes.Buffer
	_, err := b.ReadFrom(resp.Body)
	return b.Bytes(), err
}

// mailpitMessage waits for a message to addr whose subject contains subj in the test
// SMTP server and returns its id and text.
func mailpitMessage(t *testing.T, api, addr, subj string) (string, string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get(api + "/api/v1/search?query=" + url.QueryEscape("to:"+addr+` subject:"`+subj+`"`))
		if err != nil {
			t.Fatal(err)
		}
		var res struct{ Messages []struct{ ID string } }
		json.NewDecoder(resp.Body).Decode(&res)
		resp.Body.Close()
		if len(res.Messages) > 0 {
			resp, err := http.Get(api + "/api/v1/message/" + res.Messages[0].ID)
			if err != nil {
				t.Fatal(err)
			}
			var msg struct{ Text string }
			json.NewDecoder(resp.Body).Decode(&msg)
			resp.Body.Close()
			return res.Messages[0].ID, msg.Text
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("no message %q to %s in the SMTP server", subj, addr)
	return "", ""
}

// TestCampaignOverSMTP sends a campaign through a real SMTP server over one
// connection and finds the opt-out headers on the delivered message.
func TestCampaignOverSMTP(t *testing.T) {
	addr, api := smtpServer(t)
	h := apptest.Start(t, "", "--mail", "smtp", "--smtp-addr", addr, "--smtp-tls", "none")
	ctx := context.Background()
	stamp := time.Now().UnixNano()
	reader := fmt.Sprintf("smtp-reader-%d@example.org", stamp)
	if r := h.Do("POST", "/api/v1/newsletter", map[string]string{"first_name": "Rea", "last_name": "Der", "email": reader}, ""); r.Status != 202 {
		t.Fatal(r.Status)
	}
	_, text := mailpitMessage(t, api, reader, "Confirm your subscription")
	_, tok := apptest.Mail{Raw: text}.Link()
	if r := h.Do("POST", "/api/v1/newsletter/confirm", map[string]string{"token": tok}, ""); r.Status != 200 {
		t.Fatalf("confirm = %d %s", r.Status, r.Body)
	}
	editor := fmt.Sprintf("smtp-editor-%d@example.org", stamp)
	if r := h.Register(map[string]any{"email": editor, "password": pw, "name": "Ed", "birthdate": "1980-01-01", "country": "DE"}); r.Status != 201 {
		t.Fatal(r.Status)
	}
	_, vtext := mailpitMessage(t, api, editor, "Confirm your email")
	_, vtok := apptest.Mail{Raw: vtext}.Link()
	h.Do("POST", "/api/v1/verifications", map[string]string{"token": vtok}, "")
	staff := h.Do("POST", "/api/v1/sessions", map[string]string{"email": editor, "password": pw}, "").JSON()["token"].(string)
	subj, _ := h.App.Accounts().Lookup(ctx, editor)
	h.GrantStaff(ctx, subj.ID, "marketing")
	// In base 36: a run of 16 digits could pass for a card number, which a subject
	// may not hold.
	subject := "Campaign " + strconv.FormatInt(stamp, 36)
	id := h.Do("POST", "/api/v1/staff/campaigns", map[string]string{"purpose": "newsletter", "subject": subject, "body": "Hi."}, staff).JSON()["id"].(string)
	h.Do("POST", "/api/v1/staff/campaigns/"+id+"/send", nil, staff)
	waitSent(t, h, staff, id)
	msgID, _ := mailpitMessage(t, api, reader, subject)
	resp, err := http.Get(api + "/api/v1/message/" + msgID + "/headers")
	if err != nil {
		t.Fatal(err)
	}
	var headers map[string][]string
	json.NewDecoder(resp.Body).Decode(&headers)
	resp.Body.Close()
	if lu := strings.Join(headers["List-Unsubscribe"], " "); !strings.Contains(lu, "/unsubscribe/one-click?t=") || !strings.Contains(lu, "mailto:unsubscribe+") {
		t.Errorf("List-Unsubscribe = %q", lu)
	}
	if p := strings.Join(headers["List-Unsubscribe-Post"], ""); p != "List-Unsubscribe=One-Click" {
		t.Errorf("List-Unsubscribe-Post = %q", p)
	}
	for k := range headers {
		if strings.HasPrefix(strings.ToLower(k), "x-") {
			t.Errorf("a header the processor does not need: %s", k)
		}
	}
}

// Single-line fields refuse what breaks or hides a line (the name of a mail's
// greeting could otherwise forge lines of its text), each with an error naming the
// field; a postal address keeps its lines. Nothing refused is stored.
func TestSingleLineFields(t *testing.T) {
	h := apptest.Start(t, "")
	ctx := context.Background()
	staffID, staff := h.Member("lines.editor@example.org", pw, nil)
	if err := h.GrantStaff(ctx, staffID, "marketing"); err != nil {
		t.Fatal(err)
	}
	_, member := h.Member("lines.member@example.org", pw, map[string]any{"name": "Plain Name"})
	forged := "Eve\r\nBcc: victim@example.com\r\n\r\nInjected body"
	for _, tc := range []struct {
		name, path, token, field string
		body                     map[string]any
	}{
		{"a name with line breaks", "/api/v1/me", member, "name", map[string]any{"name": forged}},
		{"a name with NUL", "/api/v1/me", member, "name", map[string]any{"name": "Eve\x00"}},
		{"a name with VT", "/api/v1/me", member, "name", map[string]any{"name": "Eve\vAdams"}},
		{"a name with ESC", "/api/v1/me", member, "name", map[string]any{"name": "Eve\x1b[2J"}},
		{"a name with a line separator", "/api/v1/me", member, "name", map[string]any{"name": "Eve\u2028Adams"}},
		{"a name with a bidi override", "/api/v1/me", member, "name", map[string]any{"name": "Eve\u202eexe.txt"}},
		{"a phone with a line break", "/api/v1/me", member, "phone", map[string]any{"phone": "+44 20\n7946 0958"}},
		{"a subscriber's first name", "/api/v1/newsletter", "", "first_name", map[string]any{"first_name": "Eve\u2028Bcc", "last_name": "A", "email": "lines.sub@example.org"}},
		{"a subscriber's company", "/api/v1/newsletter", "", "company", map[string]any{"first_name": "Eve", "last_name": "A", "company": "Evil\x1bCorp", "email": "lines.sub@example.org"}},
		{"a campaign subject", "/api/v1/staff/campaigns", staff, "subject", map[string]any{"purpose": "newsletter", "subject": "News\x00\x1b", "body": "Hello"}},
	} {
		r := h.Do(map[bool]string{true: "PATCH", false: "POST"}[tc.path == "/api/v1/me"], tc.path, tc.body, tc.token)
		if r.Status != 400 || !strings.Contains(string(r.Body), `"`+tc.field+`"`) {
			t.Errorf("%s = %d %s, want 400 naming %s", tc.name, r.Status, r.Body, tc.field)
		}
	}
	me := h.Do("GET", "/api/v1/me", nil, member).JSON()
	if me["name"] != "Plain Name" || me["phone"] != "" && me["phone"] != nil {
		t.Errorf("a refused change was stored: %v", me)
	}
	if s, _ := h.App.Newsletter().Lookup(ctx, "lines.sub@example.org"); s != "" {
		t.Errorf("a refused subscription was stored: %s", s)
	}
	// An address keeps its lines.
	if r := h.Do("PATCH", "/api/v1/me", map[string]any{"home_address": "12 Analytical Row\nLondon"}, member); r.Status != 200 || r.JSON()["home_address"] != "12 Analytical Row\nLondon" {
		t.Errorf("a two-line address = %d %s", r.Status, r.Body)
	}
}
