// Package consent owns the register of processing purposes with their lawful bases,
// the append-only consent ledger and the state derived from it, the restriction and
// objection flags a member can set, the browser's Global Privacy Control signal, and
// signed consent receipts. One function, Allowed, answers "may we process subject S
// for purpose P now?"; every path that processes for a purpose asks it. Its tables are
// consent_events, consent_state, consent_conflicts and processing_flags.
package consent

import (
	_ "embed"
	"fmt"
	"net/netip"
	"net/url"
	"os"
	"regexp"
	"slices"
	"sort"
	"strings"

	"github.com/BurntSushi/toml"
)

// Basis is a lawful basis for processing (GDPR article 6).
type Basis string

// The lawful bases.
const (
	Contract           Basis = "contract"
	LegitimateInterest Basis = "legitimate_interest"
	Consent            Basis = "consent"
	LegalObligation    Basis = "legal_obligation"
)

// Purpose is one registered purpose of processing.
type Purpose struct {
	Key         string   `toml:"key"`
	Name        string   `toml:"name"`
	Description string   `toml:"description"`
	Basis       Basis    `toml:"basis"`
	Processors  []string `toml:"processors"`
	// Marketing purposes are direct marketing: a restriction or an objection stops
	// them, and their mails carry an opt-out.
	Marketing bool `toml:"marketing"`
	// Sharing purposes share or sell data to third parties: the Global Privacy Control
	// signal opts out of every one of them.
	Sharing bool `toml:"sharing"`
	// PolicyVersion names the version of the privacy policy the purpose depends on:
	// when that version, a material change, takes effect, consents to the purpose
	// given before it are asked again (see consent_reconfirm).
	PolicyVersion string `toml:"policy_version"`
	// Cookies names the optional cookie category (preferences, statistics or
	// marketing) the purpose stands for: a member's choice in the cookie banner or on
	// the cookie page is recorded in the ledger under it. At most one purpose per
	// category, on consent.
	Cookies string `toml:"cookies"`
}

// The optional cookie categories a purpose may stand for (Purpose.Cookies). Strictly
// necessary cookies need no choice and have no purpose of their own.
var CookieCategories = []string{"preferences", "statistics", "marketing"}

// NeedsConsent reports whether processing waits for the subject's opt-in.
func (p Purpose) NeedsConsent() bool { return p.Basis == Consent }

// Objectable reports whether the subject may object to it (article 21): processing on
// legitimate interest.
func (p Purpose) Objectable() bool { return p.Basis == LegitimateInterest }

// Processor is a third party that processes personal data for the operator.
type Processor struct {
	Key        string   `toml:"key"`
	Name       string   `toml:"name"`
	Service    string   `toml:"service"`
	Country    string   `toml:"country"`
	Categories []string `toml:"categories"`
	Safeguard  string   `toml:"safeguard"`
	// Transfer is the safeguard of a transfer outside the deployment's region
	// (adequacy, scc, bcr, derogation), and Contract the reference of the processing
	// agreement; the register in the database takes both from here at first start.
	Transfer string `toml:"transfer"`
	Contract string `toml:"contract"`
	// NotifyURL is where the processor is sent notices of erasure, rectification and
	// restriction (a signed webhook);
	// the register is the allow-list of such destinations. Without one, staff get a
	// task to tell the processor by hand.
	NotifyURL string `toml:"notify_url"`
}

// Register is the operator's register of purposes and processors.
type Register struct {
	Purposes   []Purpose   `toml:"purpose"`
	Processors []Processor `toml:"processor"`
	byKey      map[string]Purpose
}

//go:embed purposes.toml
var defaultRegister []byte

var keyRE = regexp.MustCompile(`^[a-z][a-z0-9_]{1,47}$`)

// LoadRegister reads the register from path, or the built-in one when path is "".
func LoadRegister(path string) (*Register, error) {
	data, src := defaultRegister, "built-in register"
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("consent: purposes file: %w", err)
		}
		data, src = b, path
	}
	var r Register
	md, err := toml.Decode(string(data), &r)
	if err != nil {
		return nil, fmt.Errorf("consent: %s: %w", src, err)
	}
	if und := md.Undecoded(); len(und) > 0 {
		return nil, fmt.Errorf("consent: %s: unknown setting %s", src, und[0])
	}
	if err := r.check(); err != nil {
		return nil, fmt.Errorf("consent: %s: %w", src, err)
	}
	return &r, nil
}

func (r *Register) check() error {
	if len(r.Purposes) == 0 {
		return fmt.Errorf("no [[purpose]] defined")
	}
	procs := map[string]bool{}
	for i, p := range r.Processors {
		if !keyRE.MatchString(p.Key) {
			return fmt.Errorf("processor %d: key %q must be lower case letters, digits and _", i+1, p.Key)
		}
		if procs[p.Key] {
			return fmt.Errorf("processor %q defined twice", p.Key)
		}
		if p.Name == "" || p.Country == "" {
			return fmt.Errorf("processor %q: name and country are required", p.Key)
		}
		if err := checkNotifyURL(p.NotifyURL); err != nil {
			return fmt.Errorf("processor %q: notify_url: %w", p.Key, err)
		}
		procs[p.Key] = true
	}
	r.byKey = map[string]Purpose{}
	for i, p := range r.Purposes {
		if !keyRE.MatchString(p.Key) {
			return fmt.Errorf("purpose %d: key %q must be lower case letters, digits and _", i+1, p.Key)
		}
		if IsFlag(p.Key) {
			return fmt.Errorf("purpose %q: the key is reserved for the ledger's %s", p.Key, FlagName(p.Key))
		}
		if _, dup := r.byKey[p.Key]; dup {
			return fmt.Errorf("purpose %q defined twice", p.Key)
		}
		switch p.Basis {
		case Contract, LegitimateInterest, Consent, LegalObligation:
		default:
			return fmt.Errorf("purpose %q: basis %q: want contract, legitimate_interest, consent or legal_obligation", p.Key, p.Basis)
		}
		if p.Name == "" || p.Description == "" {
			return fmt.Errorf("purpose %q: name and description are required", p.Key)
		}
		if p.PolicyVersion != "" && p.Basis != Consent {
			return fmt.Errorf("purpose %q: policy_version: only a purpose on consent is asked again when the policy changes", p.Key)
		}
		if p.Sharing && p.Basis != Consent && p.Basis != LegitimateInterest {
			return fmt.Errorf("purpose %q: sharing with third parties needs consent or a legitimate interest", p.Key)
		}
		if p.Cookies != "" {
			if !slices.Contains(CookieCategories, p.Cookies) {
				return fmt.Errorf("purpose %q: cookies %q: want preferences, statistics or marketing", p.Key, p.Cookies)
			}
			if p.Basis != Consent {
				return fmt.Errorf("purpose %q: a cookie category needs consent (basis = \"consent\")", p.Key)
			}
			if q, dup := r.CookiePurpose(p.Cookies); dup {
				return fmt.Errorf("purpose %q: cookies %q is already the category of purpose %q", p.Key, p.Cookies, q.Key)
			}
		}
		for _, k := range p.Processors {
			if !procs[k] {
				return fmt.Errorf("purpose %q: unknown processor %q", p.Key, k)
			}
		}
		r.byKey[p.Key] = p
	}
	return nil
}

// Purpose returns a purpose by key.
func (r *Register) Purpose(key string) (Purpose, bool) {
	p, ok := r.byKey[key]
	return p, ok
}

// CookiePurpose returns the purpose that stands for an optional cookie category, if
// the register has one.
func (r *Register) CookiePurpose(category string) (Purpose, bool) {
	for _, p := range r.byKey {
		if p.Cookies == category {
			return p, true
		}
	}
	return Purpose{}, false
}

// Keys returns the purpose keys, sorted.
func (r *Register) Keys() []string {
	out := make([]string, 0, len(r.byKey))
	for k := range r.byKey {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Processor returns a processor by key.
func (r *Register) Processor(key string) (Processor, bool) {
	for _, p := range r.Processors {
		if p.Key == key {
			return p, true
		}
	}
	return Processor{}, false
}

// Describe is a one-line summary of a purpose, for logs and pages.
func (p Purpose) Describe() string {
	return fmt.Sprintf("%s (%s)", p.Name, strings.ReplaceAll(string(p.Basis), "_", " "))
}

// checkNotifyURL accepts an https URL, or an http one on the loopback interface (a
// processor's relay on the same machine, and tests).
func checkNotifyURL(raw string) error {
	if raw == "" {
		return nil
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || u.User != nil {
		return fmt.Errorf("%q is not an absolute URL without credentials", raw)
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		host := u.Hostname()
		if ip, err := netip.ParseAddr(host); (err == nil && ip.IsLoopback()) || host == "localhost" {
			return nil
		}
		return fmt.Errorf("%q: plain http is accepted on the loopback interface only", raw)
	}
	return fmt.Errorf("%q: want https", raw)
}

// CheckNotifyURL checks a processor's notices endpoint as the register does: https, or
// http on the loopback interface; "" for none.
func CheckNotifyURL(raw string) error { return checkNotifyURL(raw) }
