package mail

import (
	"bytes"
	"crypto/rand"
	"embed"
	"encoding/hex"
	"fmt"
	"html"
	htmltemplate "html/template"
	"strings"
)

//go:embed layout/campaign.html
var layoutFS embed.FS

// campaignLayout is the HTML frame of a marketing mail, parsed once.
var campaignLayout = htmltemplate.Must(htmltemplate.ParseFS(layoutFS, "layout/campaign.html"))

// CampaignLayout is what the HTML frame of a marketing mail shows around its body: a
// simple layout mail clients render alike (one table, inline styles, at most 600 px
// wide), with the site's name at the top and, in the footer, the purpose the mail is
// sent for and the opt-out link.
type CampaignLayout struct {
	Site        string // the site's name (--site-name)
	SiteURL     string // where the name links to; no link when empty
	Subject     string // the mail's subject, as the document's title
	Greeting    string
	Purpose     string // the purpose's name
	Unsubscribe string // the opt-out link
	Beacon      string // the open beacon's address; none when empty
	Test        bool   // a test mail to its author: says so at the top
}

// HTML renders the layout around body, which must be trusted HTML (the campaign's
// Markdown rendered without raw HTML); every other value is escaped.
func (l CampaignLayout) HTML(body string) (string, error) {
	var buf bytes.Buffer
	err := campaignLayout.Execute(&buf, struct {
		CampaignLayout
		Body htmltemplate.HTML
	}{l, htmltemplate.HTML(body)}) //nolint:gosec // the body is the renderer's own HTML: raw HTML is omitted, text escaped
	if err != nil {
		return "", fmt.Errorf("mail: campaign layout: %w", err)
	}
	return buf.String(), nil
}

// CampaignFrame is the layout rendered once around a campaign's body, with slots for
// what differs by recipient (the greeting, the opt-out link, the beacon): filling it
// joins strings, rather than executing a template per recipient.
type CampaignFrame struct {
	parts []string   // the frame cut at its slots: len(slots)+1 pieces
	slots []slotKind // which value goes between parts[i] and parts[i+1]
	size  int
	// The beacon's element around its address: before and after it.
	beaconOpen, beaconClose string
}

type slotKind int

const (
	slotGreeting slotKind = iota
	slotUnsubscribe
	slotBeacon
)

// Frame renders the layout around body (trusted HTML, as for HTML), leaving the
// greeting, the opt-out link and the beacon to Fill.
func (l CampaignLayout) Frame(body string) (CampaignFrame, error) {
	greeting, unsubscribe, beacon := slotMarker(), slotMarker(), slotMarker()
	l.Greeting, l.Unsubscribe, l.Beacon = greeting, unsubscribe, beacon
	h, err := l.HTML(body)
	if err != nil {
		return CampaignFrame{}, err
	}
	var f CampaignFrame
	// The beacon's slot is its whole element, left out when there is none.
	start := strings.Index(h, `<img src="`+beacon+`"`)
	if start < 0 {
		return CampaignFrame{}, fmt.Errorf("mail: campaign layout: no beacon slot")
	}
	end := strings.IndexByte(h[start:], '>')
	if end < 0 {
		return CampaignFrame{}, fmt.Errorf("mail: campaign layout: no beacon slot")
	}
	tag := h[start : start+end+1]
	f.beaconOpen, f.beaconClose, _ = strings.Cut(tag, beacon)
	h = strings.Replace(h, tag, beacon, 1)
	for rest := h; ; {
		at, kind, marker := -1, slotKind(0), ""
		for k, m := range []string{greeting, unsubscribe, beacon} {
			if i := strings.Index(rest, m); i >= 0 && (at < 0 || i < at) {
				at, kind, marker = i, slotKind(k), m
			}
		}
		if at < 0 {
			f.parts = append(f.parts, rest)
			break
		}
		f.parts = append(f.parts, rest[:at])
		f.slots = append(f.slots, kind)
		rest = rest[at+len(marker):]
	}
	if len(f.slots) != 3 {
		return CampaignFrame{}, fmt.Errorf("mail: campaign layout: %d slots, want 3", len(f.slots))
	}
	f.size = len(h)
	return f, nil
}

// Fill returns the frame with one recipient's greeting, opt-out link and beacon
// address ("" for none), escaped as the template would.
func (f CampaignFrame) Fill(greeting, unsubscribe, beacon string) string {
	var b strings.Builder
	b.Grow(f.size + 512)
	for i, part := range f.parts {
		b.WriteString(part)
		if i == len(f.slots) {
			break
		}
		switch f.slots[i] {
		case slotGreeting:
			b.WriteString(html.EscapeString(greeting))
		case slotUnsubscribe:
			b.WriteString(html.EscapeString(unsubscribe))
		case slotBeacon:
			if beacon != "" {
				b.WriteString(f.beaconOpen + html.EscapeString(beacon) + f.beaconClose)
			}
		}
	}
	return b.String()
}

// slotMarker is a random word that stands for a slot: no body can hold it by chance,
// and the template leaves it as it is in text and in a link.
func slotMarker() string {
	var b [12]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24)
	return "slot" + hex.EncodeToString(b[:])
}
