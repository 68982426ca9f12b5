package inbound

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"strings"
	"testing"

	"github.com/emersion/go-msgauth/dkim"

	"steward/internal/inbound/fakedns"
)

// dkimKey makes a key, publishes it in dns as selector._domainkey.domain and
// returns a function that signs a message with it for domain.
func dkimKey(t *testing.T, dns *fakedns.Resolver, domain, selector string) func(msg string) string {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	dns.TXT(selector+"._domainkey."+domain, "v=DKIM1; k=ed25519; p="+base64.StdEncoding.EncodeToString(pub))
	return func(msg string) string {
		var out bytes.Buffer
		if err := dkim.Sign(&out, strings.NewReader(msg), &dkim.SignOptions{
			Domain: domain, Selector: selector, Signer: priv, HeaderKeys: []string{"From", "To", "Subject"},
		}); err != nil {
			t.Fatalf("sign: %v", err)
		}
		return out.String()
	}
}

// The checks a plain request gets, end to end through the listener: the test
// client connects from 127.0.0.1, and DNS answers come from an in-process
// resolver. Only a pass whose domain aligns with From's organizational domain
// authenticates the request.
func TestAuthenticatesPlainRequest(t *testing.T) {
	t.Parallel()
	victim := message("From: Victim <victim@example.com>", "To: unsubscribe@"+domain, "Subject: unsubscribe")
	tests := []struct {
		name   string
		setup  func(t *testing.T, dns *fakedns.Resolver, msg string) string // publishes records, returns what to send
		sender string
		rcpt   string
		want   string
	}{
		{"forged: no SPF, no DKIM", func(t *testing.T, dns *fakedns.Resolver, msg string) string { return msg },
			"attacker@evil.example", "", ""},
		{"forged sender at the victim's domain, SPF fails", func(t *testing.T, dns *fakedns.Resolver, msg string) string {
			dns.TXT("example.com", "v=spf1 ip4:192.0.2.1 -all")
			return msg
		}, "victim@example.com", "", ""},
		{"forged sender at the victim's domain, SPF softfails", func(t *testing.T, dns *fakedns.Resolver, msg string) string {
			dns.TXT("example.com", "v=spf1 ~all")
			return msg
		}, "victim@example.com", "", ""},
		{"SPF passes for a domain not aligned with From", func(t *testing.T, dns *fakedns.Resolver, msg string) string {
			dns.TXT("evil.example", "v=spf1 ip4:127.0.0.1 -all")
			return msg
		}, "attacker@evil.example", "", ""},
		{"SPF passes, aligned", func(t *testing.T, dns *fakedns.Resolver, msg string) string {
			dns.TXT("example.com", "v=spf1 ip4:127.0.0.1 -all")
			return msg
		}, "victim@example.com", "", "spf:example.com aligned"},
		{"SPF passes for a subdomain of From's (relaxed alignment), through include and mx", func(t *testing.T, dns *fakedns.Resolver, msg string) string {
			dns.TXT("bounces.example.com", "v=spf1 include:_spf.example.com -all")
			dns.TXT("_spf.example.com", "v=spf1 mx -all")
			dns.MX("_spf.example.com", "mx1.example.com")
			dns.IP("mx1.example.com", "127.0.0.1")
			return msg
		}, "b-123@bounces.example.com", "", "spf:bounces.example.com aligned"},
		{"an SPF pass does not cover a token request", func(t *testing.T, dns *fakedns.Resolver, msg string) string {
			dns.TXT("example.com", "v=spf1 ip4:127.0.0.1 -all")
			return msg
		}, "victim@example.com", "unsubscribe+tok@" + domain, ""},
		{"DKIM, aligned", func(t *testing.T, dns *fakedns.Resolver, msg string) string {
			return dkimKey(t, dns, "example.com", "s1")(msg)
		}, "attacker@evil.example", "", "dkim:example.com aligned"},
		{"DKIM of a subdomain, aligned", func(t *testing.T, dns *fakedns.Resolver, msg string) string {
			return dkimKey(t, dns, "mail.example.com", "s1")(msg)
		}, "attacker@evil.example", "", "dkim:mail.example.com aligned"},
		{"DKIM of another domain", func(t *testing.T, dns *fakedns.Resolver, msg string) string {
			return dkimKey(t, dns, "evil.example", "s1")(msg)
		}, "attacker@evil.example", "", ""},
		{"DKIM of a sibling under a public suffix", func(t *testing.T, dns *fakedns.Resolver, msg string) string {
			return dkimKey(t, dns, "evil.co.uk", "s1")(strings.Replace(msg, "victim@example.com", "victim@example.co.uk", 1))
		}, "attacker@evil.example", "", ""},
		{"DKIM signature that no longer matches the body", func(t *testing.T, dns *fakedns.Resolver, msg string) string {
			return strings.Replace(dkimKey(t, dns, "example.com", "s1")(msg), "Please", "Plaese", 1)
		}, "attacker@evil.example", "", ""},
		{"DKIM key not published", func(t *testing.T, dns *fakedns.Resolver, msg string) string {
			signed := dkimKey(t, dns, "example.com", "s1")(msg)
			dns.TXT("s1._domainkey.example.com")
			return signed
		}, "attacker@evil.example", "", ""},
		{"a second From: above a signed one", func(t *testing.T, dns *fakedns.Resolver, msg string) string {
			signed := dkimKey(t, dns, "evil.example", "s1")(strings.Replace(msg, "victim@example.com", "me@evil.example", 1))
			return "From: <victim@example.com>\r\n" + signed
		}, "attacker@evil.example", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dns := fakedns.New()
			rec := &recorder{}
			_, addr := start(t, Config{Resolver: dns}, rec.handle)
			msg := tt.setup(t, dns, victim)
			rcpt := tt.rcpt
			if rcpt == "" {
				rcpt = "unsubscribe@" + domain
			}
			// The same answer whatever the checks found: no oracle.
			if err := send(dial(t, addr, ""), tt.sender, []string{rcpt}, msg); err != nil {
				t.Fatalf("send: %v", err)
			}
			calls := rec.calls()
			if len(calls) != 1 {
				t.Fatalf("handler called %d times, want 1", len(calls))
			}
			if got := calls[0].Authenticated; got != tt.want {
				t.Errorf("Authenticated = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestFromAddressRefusesTwoFromFields(t *testing.T) {
	t.Parallel()
	rec := &recorder{}
	_, addr := start(t, Config{}, rec.handle)
	msg := message("From: <victim@example.com>", "From: <me@evil.example>", "Subject: x")
	if err := send(dial(t, addr, ""), "me@evil.example", []string{"unsubscribe@" + domain}, msg); err != nil {
		t.Fatal(err)
	}
	if c := rec.calls(); len(c) != 1 || c[0].From != "" {
		t.Errorf("calls = %+v, want one with no From", c)
	}
}

func TestOrgDomain(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"example.com": "example.com", "Mail.Example.COM.": "example.com", "a.b.example.co.uk": "example.co.uk",
		"co.uk": "", "": "", "com": "",
	} {
		if got := orgDomain(in); got != want {
			t.Errorf("orgDomain(%q) = %q, want %q", in, got, want)
		}
	}
}
