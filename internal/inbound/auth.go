package inbound

import (
	"bytes"
	"context"
	"net"
	"strings"
	"time"

	"blitiri.com.ar/go/spf"
	"github.com/emersion/go-msgauth/dkim"
	"golang.org/x/net/publicsuffix"
)

// Resolver is the DNS that the SPF and DKIM checks ask: net.DefaultResolver in
// production, an in-process one in tests (internal/inbound/fakedns).
type Resolver interface {
	LookupTXT(ctx context.Context, name string) ([]string, error)
	LookupMX(ctx context.Context, name string) ([]*net.MX, error)
	LookupIPAddr(ctx context.Context, host string) ([]net.IPAddr, error)
	LookupAddr(ctx context.Context, addr string) ([]string, error)
}

// authTimeout bounds the DNS lookups of one message's checks (taken from the
// Handler's time): a check that runs out has not passed.
const authTimeout = 15 * time.Second

// maxSignatures is how many DKIM signatures of one message are checked, each a
// DNS lookup and a public-key operation: more are ignored.
const maxSignatures = 5

// authenticate says which check ties the From: address's domain to the message,
// as DMARC does (RFC 7489, relaxed alignment): a valid DKIM signature whose d=
// domain, or an SPF pass for the envelope sender, whose domain is in the same
// organizational domain as the From: address. It returns the evidence
// ("dkim:DOMAIN aligned" or "spf:DOMAIN aligned"), or "" when nothing passed
// aligned (a pass for another domain, a failure, no record, a DNS error).
// DKIM is checked first: it survives forwarding, SPF does not.
func authenticate(ctx context.Context, res Resolver, raw []byte, from, sender, helo string, ip net.IP) string {
	fromOrg := orgDomain(domainOf(from))
	if fromOrg == "" {
		return ""
	}
	ctx, cancel := context.WithTimeout(ctx, authTimeout)
	defer cancel()

	verifs, err := dkim.VerifyWithOptions(bytes.NewReader(raw), &dkim.VerifyOptions{
		LookupTXT:        func(name string) ([]string, error) { return res.LookupTXT(ctx, name) },
		MaxVerifications: maxSignatures,
	})
	_ = err // a malformed signature or too many of them: those checked still count
	for _, v := range verifs {
		if v.Err == nil && orgDomain(v.Domain) == fromOrg {
			return "dkim:" + strings.ToLower(v.Domain) + " aligned"
		}
	}

	senderDomain := domainOf(sender)
	if ip == nil || senderDomain == "" || orgDomain(senderDomain) != fromOrg {
		return "" // an SPF pass for this sender could not align
	}
	r, _ := spf.CheckHostWithSender(ip, helo, sender, spf.WithResolver(res), spf.WithContext(ctx))
	if r == spf.Pass {
		return "spf:" + senderDomain + " aligned"
	}
	return ""
}

// orgDomain is the organizational domain of d (RFC 7489 section 3.2): one label
// below its public suffix, e.g. example.co.uk for mail.example.co.uk; "" for an
// empty name or a public suffix itself.
func orgDomain(d string) string {
	d = strings.ToLower(strings.TrimSuffix(strings.TrimSpace(d), "."))
	if d == "" {
		return ""
	}
	org, err := publicsuffix.EffectiveTLDPlusOne(d)
	if err != nil {
		return ""
	}
	return org
}
