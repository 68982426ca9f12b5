package app_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"net/smtp"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-msgauth/dkim"

	"steward/internal/app/apptest"
)

const unsubAddr = "unsubscribe@steward.localhost"

var confirmRE = regexp.MustCompile(`/unsubscribe\?t=(m\.[A-Za-z0-9_-]+)`)

// mailUnsubscribe sends msg to rcpt through the inbound listener, from the
// envelope sender, as the test client at 127.0.0.1.
func mailUnsubscribe(t *testing.T, h *apptest.Harness, sender, rcpt, msg string) {
	t.Helper()
	if err := smtp.SendMail(h.App.InboundAddr().String(), nil, sender, []string{rcpt}, []byte(msg)); err != nil {
		t.Fatalf("the listener refused the mail: %v", err)
	}
}

func unsubscribeMessage(from string) string {
	return "From: " + from + "\r\nTo: <" + unsubAddr + ">\r\nSubject: unsubscribe\r\n\r\nplease\r\n"
}

// marketingMember registers a member who consents to the newsletter and own offers.
func marketingMember(t *testing.T, h *apptest.Harness, email string) string {
	t.Helper()
	_, token := h.Member(email, pw, nil)
	if r := h.Do("PUT", "/api/v1/me/consents", `{"choices":{"newsletter":true,"own_offers":true,"partner_offers":true,"email_open_tracking":true}}`, token); r.Status != 200 {
		t.Fatalf("consents: %d %s", r.Status, r.Body)
	}
	return token
}

// checkConsents checks the member's marketing consents are all want ("granted" or
// "withdrawn"), and that a purpose that is not marketing stayed granted.
func checkConsents(t *testing.T, h *apptest.Harness, token, email, want string) {
	t.Helper()
	r := h.Do("GET", "/api/v1/me/consents", nil, token)
	for _, k := range []string{"newsletter", "own_offers", "partner_offers"} {
		if c := choice(t, r, k); c["decision"] != want {
			t.Errorf("%s of %s: %v, want %s", k, email, c, want)
		}
	}
	if c := choice(t, r, "email_open_tracking"); c["decision"] != "granted" {
		t.Errorf("a purpose that is not marketing changed: %v", c)
	}
	suppressed, err := h.App.Newsletter().Suppressed(context.Background(), email, "newsletter")
	if err != nil {
		t.Fatal(err)
	}
	if suppressed != (want == "withdrawn") {
		t.Errorf("%s suppressed = %v with consents %s", email, suppressed, want)
	}
}

// withdrawalEvidence is the evidence of the member's last withdrawal of purpose.
func withdrawalEvidence(t *testing.T, h *apptest.Harness, token, purpose string) (source string, evidence map[string]any) {
	t.Helper()
	for _, e := range jsonOK(t, h.Do("GET", "/api/v1/me/consents/history", nil, token))["events"].([]any) {
		ev := e.(map[string]any)
		if ev["purpose"] == purpose && ev["decision"] == "withdrawn" {
			source, evidence = ev["source"].(string), ev["evidence"].(map[string]any)
		}
	}
	if evidence == nil {
		t.Fatalf("no withdrawal of %s in the history", purpose)
	}
	return source, evidence
}

// confirmations counts the confirmation mails queued or sent to addr, once the
// outbox has sent all it holds.
func confirmations(t *testing.T, h *apptest.Harness, addr string) int {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var queued int
		if err := h.App.DB().QueryRowContext(context.Background(), `SELECT count(*) FROM mail_outbox WHERE template = 'unsubscribe_confirm'`).Scan(&queued); err != nil {
			t.Fatal(err)
		}
		if queued == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d confirmation mails still queued after 10s", queued)
		}
		time.Sleep(20 * time.Millisecond)
	}
	n := 0
	for _, m := range h.Mails(addr) {
		if confirmRE.MatchString(m.Raw) {
			n++
		}
	}
	return n
}

// confirmationLink waits for the confirmation mail to addr and returns its link's token.
func confirmationLink(t *testing.T, h *apptest.Harness, addr string) string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		for _, m := range h.Mails(addr) {
			if sub := confirmRE.FindStringSubmatch(m.Raw); sub != nil {
				return sub[1]
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no confirmation mail to %s after 10s", addr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// openConfirmation opens the link of the confirmation mail to addr: the page first,
// which changes nothing, then its button.
func openConfirmation(t *testing.T, h *apptest.Harness, token, addr string) {
	t.Helper()
	tok := confirmationLink(t, h, addr)
	if r := h.Do("GET", "/unsubscribe?t="+url.QueryEscape(tok), nil, ""); r.Status != 200 || !strings.Contains(string(r.Body), "all marketing mail") {
		t.Fatalf("the confirmation page = %d %s", r.Status, r.Body)
	}
	checkConsents(t, h, token, addr, "granted")
	forged := tok[:len(tok)-3] + "AAA"
	if forged == tok {
		forged = tok[:len(tok)-3] + "BBB"
	}
	if r := h.Do("GET", "/unsubscribe?t="+url.QueryEscape(forged), nil, ""); r.Status != 400 {
		t.Errorf("a forged confirmation link = %d", r.Status)
	}
	resp, err := h.Client.PostForm(h.URL+"/unsubscribe", url.Values{"t": {tok}})
	if err != nil {
		t.Fatal(err)
	}
	var body bytes.Buffer
	body.ReadFrom(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(body.String(), "unsubscribed from all marketing mail") {
		t.Fatalf("confirming = %d %s", resp.StatusCode, body.String())
	}
}

// A mail to the plain unsubscribe address acts at once only when DKIM or SPF passes
// aligned with its From: domain; otherwise the From: address is mailed a link that
// does the same once opened. The client's answer is the same either way.
func TestUnsubscribeMailAuthentication(t *testing.T) {
	apptest.EachDatabase(t, func(t *testing.T, dbURL string) {
		h := apptest.Start(t, dbURL, "--inbound-smtp-addr", "127.0.0.1:0")

		t.Run("forged From, no SPF, no DKIM: a confirmation link", func(t *testing.T) {
			token := marketingMember(t, h, "victim@example.com")
			h.DNS.TXT("evil.example", "v=spf1 -all")
			mailUnsubscribe(t, h, "attacker@evil.example", unsubAddr, unsubscribeMessage("Victim <victim@example.com>"))
			checkConsents(t, h, token, "victim@example.com", "granted")
			if n := confirmations(t, h, "victim@example.com"); n != 1 {
				t.Fatalf("%d confirmation mails, want 1", n)
			}
			if n := confirmations(t, h, "attacker@evil.example"); n != 0 {
				t.Errorf("the envelope sender got %d confirmation mails", n)
			}
			// Again within the hour: no second mail to the victim.
			mailUnsubscribe(t, h, "attacker@evil.example", unsubAddr, unsubscribeMessage("Victim <victim@example.com>"))
			if n := confirmations(t, h, "victim@example.com"); n != 1 {
				t.Errorf("%d confirmation mails after a second forged mail, want 1", n)
			}
			openConfirmation(t, h, token, "victim@example.com")
			checkConsents(t, h, token, "victim@example.com", "withdrawn")
			src, ev := withdrawalEvidence(t, h, token, "own_offers")
			if src != "email_link" || ev["check"] != "confirmation link opened" {
				t.Errorf("the ledger says %s %v, want the confirmation link opened", src, ev)
			}
		})

		t.Run("an unknown address gets no mail", func(t *testing.T) {
			mailUnsubscribe(t, h, "attacker@evil.example", unsubAddr, unsubscribeMessage("<nobody.known@example.com>"))
			if n := confirmations(t, h, "nobody.known@example.com"); n != 0 {
				t.Errorf("%d confirmation mails to an unknown address", n)
			}
		})

		t.Run("DKIM aligned: at once", func(t *testing.T) {
			token := marketingMember(t, h, "signed@dkim.example")
			pub, priv, err := ed25519.GenerateKey(rand.Reader)
			if err != nil {
				t.Fatal(err)
			}
			h.DNS.TXT("sel._domainkey.mail.dkim.example", "v=DKIM1; k=ed25519; p="+base64.StdEncoding.EncodeToString(pub))
			var signed bytes.Buffer
			if err := dkim.Sign(&signed, strings.NewReader(unsubscribeMessage("Signed <signed@dkim.example>")),
				&dkim.SignOptions{Domain: "mail.dkim.example", Selector: "sel", Signer: priv}); err != nil {
				t.Fatal(err)
			}
			// The envelope sender is another domain's, without SPF: DKIM alone is enough.
			mailUnsubscribe(t, h, "relay@forwarder.example", unsubAddr, signed.String())
			checkConsents(t, h, token, "signed@dkim.example", "withdrawn")
			src, ev := withdrawalEvidence(t, h, token, "newsletter")
			if src != "inbound_email" || ev["check"] != "dkim:mail.dkim.example aligned" {
				t.Errorf("the ledger says %s %v", src, ev)
			}
			if n := confirmations(t, h, "signed@dkim.example"); n != 0 {
				t.Errorf("%d confirmation mails for an authenticated mail", n)
			}
		})

		t.Run("SPF aligned: at once", func(t *testing.T) {
			token := marketingMember(t, h, "Pass@SPF.example")
			h.DNS.TXT("spf.example", "v=spf1 ip4:127.0.0.1 -all")
			mailUnsubscribe(t, h, "pass@spf.example", unsubAddr, unsubscribeMessage("<Pass@SPF.example>"))
			checkConsents(t, h, token, "pass@spf.example", "withdrawn")
			src, ev := withdrawalEvidence(t, h, token, "partner_offers")
			if src != "inbound_email" || ev["check"] != "spf:spf.example aligned" {
				t.Errorf("the ledger says %s %v", src, ev)
			}
		})

		t.Run("SPF passes for a domain not aligned with From: a confirmation link", func(t *testing.T) {
			token := marketingMember(t, h, "target@victim.example")
			h.DNS.TXT("attacker.example", "v=spf1 ip4:127.0.0.1 -all")
			mailUnsubscribe(t, h, "me@attacker.example", unsubAddr, unsubscribeMessage("<target@victim.example>"))
			checkConsents(t, h, token, "target@victim.example", "granted")
			if n := confirmations(t, h, "target@victim.example"); n != 1 {
				t.Fatalf("%d confirmation mails, want 1", n)
			}
			openConfirmation(t, h, token, "target@victim.example")
			checkConsents(t, h, token, "target@victim.example", "withdrawn")
		})

		t.Run("a link whose member was erased since does nothing", func(t *testing.T) {
			token := marketingMember(t, h, "gone@example.com")
			mailUnsubscribe(t, h, "attacker@evil.example", unsubAddr, unsubscribeMessage("<gone@example.com>"))
			tok := confirmationLink(t, h, "gone@example.com")
			del := h.Do("DELETE", "/api/v1/me", map[string]string{"password": pw}, token)
			h.WaitErasure(del.JSON()["request_id"].(string))
			if r := h.Do("GET", "/unsubscribe?t="+url.QueryEscape(tok), nil, ""); r.Status != 400 {
				t.Errorf("the link of an erased member = %d", r.Status)
			}
			resp, err := h.Client.PostForm(h.URL+"/unsubscribe", url.Values{"t": {tok}})
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != 400 {
				t.Errorf("confirming for an erased member = %d", resp.StatusCode)
			}
		})

		t.Run("token: trusted by its token, unchanged", func(t *testing.T) {
			ctx := context.Background()
			staffID, staff := h.Member("editor@example.org", pw, nil)
			if err := h.GrantStaff(ctx, staffID, "marketing"); err != nil {
				t.Fatal(err)
			}
			token := marketingMember(t, h, "reader@example.net")
			c := h.Do("POST", "/api/v1/staff/campaigns", map[string]string{"purpose": "newsletter", "subject": "Spring news", "body": "Hi."}, staff)
			if c.Status != 201 {
				t.Fatalf("create = %d %s", c.Status, c.Body)
			}
			id := c.JSON()["id"].(string)
			if r := h.Do("POST", "/api/v1/staff/campaigns/"+id+"/send", nil, staff); r.Status != 202 {
				t.Fatalf("send = %d %s", r.Status, r.Body)
			}
			waitSent(t, h, staff, id)
			m := lastMail(t, h, "reader@example.net", "Spring news")
			sub := regexp.MustCompile(`mailto:(unsubscribe\+[a-z2-7]+@steward\.localhost)`).FindStringSubmatch(m.Raw)
			if sub == nil {
				t.Fatalf("no mailto opt-out in %s", m.Raw)
			}
			// Forged and unauthenticated, but the token is the proof.
			mailUnsubscribe(t, h, "anyone@elsewhere.example", sub[1], unsubscribeMessage("<anyone@elsewhere.example>"))
			r := h.Do("GET", "/api/v1/me/consents", nil, token)
			if c := choice(t, r, "newsletter"); c["decision"] != "withdrawn" {
				t.Errorf("newsletter after the token mail: %v", c)
			}
			if c := choice(t, r, "own_offers"); c["decision"] != "granted" {
				t.Errorf("a token withdrew another purpose: %v", c)
			}
			src, ev := withdrawalEvidence(t, h, token, "newsletter")
			if src != "inbound_email" || ev["check"] != "token" {
				t.Errorf("the ledger says %s %v", src, ev)
			}
		})
	})
}

// The listener's rate per client and the hourly confirmation per address are buckets
// in the database, shared by every node, keyed by blind indexes: the 31st mail of a
// minute from one IP is refused, and no bucket names the IP or the address.
func TestInboundLimitsAreShared(t *testing.T) {
	apptest.EachDatabase(t, func(t *testing.T, dbURL string) {
		h := apptest.Start(t, dbURL, "--inbound-smtp-addr", "127.0.0.1:0")
		marketingMember(t, h, "bucket@example.com")
		h.DNS.TXT("evil.example", "v=spf1 -all")
		for i := range 30 {
			from := "Bucket <bucket@example.com>"
			if i > 0 {
				from = "<nobody" + string(rune('a'+i%26)) + "@example.com>"
			}
			mailUnsubscribe(t, h, "attacker@evil.example", unsubAddr, unsubscribeMessage(from))
		}
		err := smtp.SendMail(h.App.InboundAddr().String(), nil, "attacker@evil.example", []string{unsubAddr},
			[]byte(unsubscribeMessage("<bucket@example.com>")))
		if err == nil || !strings.Contains(err.Error(), "450") {
			t.Errorf("the 31st mail within the minute = %v, want 450", err)
		}
		if n := confirmations(t, h, "bucket@example.com"); n != 1 {
			t.Errorf("%d confirmation mails, want 1", n)
		}
		var inbound, confirm int
		rows, qerr := h.App.DB().QueryContext(context.Background(), `SELECT bucket FROM rate_limits`)
		if qerr != nil {
			t.Fatal(qerr)
		}
		defer rows.Close()
		for rows.Next() {
			var b string
			if err := rows.Scan(&b); err != nil {
				t.Fatal(err)
			}
			if strings.Contains(b, "127.0.0.1") || strings.Contains(b, "example.com") {
				t.Errorf("a bucket names its client: %q", b)
			}
			switch {
			case strings.HasPrefix(b, "inbound-mail:"):
				inbound++
			case strings.HasPrefix(b, "unsubscribe-confirm:"):
				confirm++
			}
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		if inbound != 1 || confirm != 1 {
			t.Errorf("buckets in the database: %d inbound, %d confirmation, want 1 and 1", inbound, confirm)
		}
	})
}
