package newsletter

import (
	"crypto/sha256"
	"net/url"
	"strings"

	"github.com/yuin/goldmark/ast"
)

// Slug is the campaign's public name in its links' utm_campaign: "nl-" and ten
// letters drawn from a digest of its id. It is stable (the id never changes), says
// nothing of anyone, and has no digits, so the analytics store keeps it as it is (a
// value that looks like an id is cut there).
func (c Campaign) Slug() string {
	sum := sha256.Sum256([]byte("steward campaign slug v1\x00" + c.ID))
	b := []byte("nl-")
	for _, x := range sum[:10] {
		b = append(b, 'a'+x%26)
	}
	return string(b)
}

// UTM parameters the campaigns' own links carry: the same in every recipient's copy.
const (
	UTMSource = "newsletter"
	UTMMedium = "email"
)

// tagLink adds utm_source=newsletter, utm_medium=email and utm_campaign=slug to a link
// to one of sites (hosts, lower case), unless the link already carries a utm_
// parameter; any other link is returned as it is.
func tagLink(dest string, sites map[string]bool, slug string) string {
	u, err := url.Parse(dest)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || !sites[strings.ToLower(u.Hostname())] {
		return dest
	}
	for k := range u.Query() {
		if strings.HasPrefix(strings.ToLower(k), "utm_") {
			return dest
		}
	}
	tags := "utm_source=" + UTMSource + "&utm_medium=" + UTMMedium + "&utm_campaign=" + url.QueryEscape(slug)
	if u.RawQuery == "" {
		u.RawQuery = tags
	} else {
		u.RawQuery += "&" + tags
	}
	return u.String()
}

// tagLinks rewrites the links of a parsed campaign body with tag: each link's
// destination, and each autolink (<https://...>), which becomes a link whose text is its
// tagged address, so that the text part and the HTML part show the same address.
func tagLinks(doc ast.Node, src []byte, tag func(string) string) {
	var autos []*ast.AutoLink
	_ = ast.Walk(doc, func(n ast.Node, entering bool) (ast.WalkStatus, error) {
		if !entering {
			return ast.WalkContinue, nil
		}
		switch n := n.(type) {
		case *ast.Link:
			n.Destination = []byte(tag(string(n.Destination)))
		case *ast.AutoLink:
			if n.AutoLinkType == ast.AutoLinkURL {
				autos = append(autos, n)
			}
		}
		return ast.WalkContinue, nil
	})
	for _, a := range autos {
		orig := string(a.URL(src))
		tagged := tag(orig)
		if tagged == orig {
			continue
		}
		l := ast.NewLink()
		l.Destination = []byte(tagged)
		l.AppendChild(l, ast.NewString([]byte(tagged)))
		a.Parent().ReplaceChild(a.Parent(), a, l)
	}
}

// body renders a campaign's Markdown, its links to the operator's own sites tagged
// with the campaign's UTM parameters (Config.TagSites).
func (s *Service) body(c Campaign) (mailBody, error) {
	if len(s.tagSites) == 0 {
		return markdown(c.Body)
	}
	slug := c.Slug()
	return markdownTagged(c.Body, func(dest string) string { return tagLink(dest, s.tagSites, slug) })
}
