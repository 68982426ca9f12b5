package mail

import (
	"bytes"
	"embed"
	"fmt"
	htmltemplate "html/template"
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
