package newsletter_test

import (
	"context"
	"fmt"
	"html"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"steward/internal/app/apptest"
	"steward/internal/mail"
	"steward/internal/newsletter"
)

// capture keeps the messages a campaign sends.
type capture struct {
	mu   sync.Mutex
	msgs []mail.Message
}

func (c *capture) SendAll(_ context.Context, msgs []mail.Message) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.msgs = append(c.msgs, msgs...)
	return nil
}

var (
	hrefs    = regexp.MustCompile(`href="([^"]+)"`)
	textURLs = regexp.MustCompile(`https?://[^\s()]+`)
)

// siteLinks are the links of a part to the hosts of the test's campaign, in order.
func siteLinks(all []string) []string {
	var out []string
	for _, l := range all {
		l = strings.TrimRight(l, ".,") // a sentence's end after an address in the text
		for _, h := range []string{"//example.com", "//shop.example.com", "//partner.example.org", "//www.example.com"} {
			if strings.Contains(l, h+"/") || strings.HasSuffix(l, h) {
				out = append(out, l)
			}
		}
	}
	return out
}

// A campaign's links to the operator's own sites (--analytics-sites) carry
// utm_source=newsletter, utm_medium=email and the campaign's slug, in the text part
// and the HTML part alike, unless they carry utm parameters already; other links are
// left alone; and the links are the same in every recipient's copy: nothing of the
// member (no token, no id) is in them.
func TestCampaignLinksTagged(t *testing.T) {
	apptest.EachDatabase(t, func(t *testing.T, dbURL string) {
		h := apptest.Start(t, dbURL, "--analytics-sites", "example.com,shop.example.com")
		ctx := context.Background()
		ns := h.App.Newsletter()
		csv := "email,first_name,last_name\nada@example.org,Ada,L\ngrace@example.org,Grace,H\n"
		if rep, err := ns.Import(ctx, strings.NewReader(csv), newsletter.Purpose, "staff-1"); err != nil || rep.Imported != 2 {
			t.Fatalf("import: %+v %v", rep, err)
		}
		body := "Our [new prices](https://example.com/pricing) and [the cart](https://shop.example.com/cart?item=3#top).\n\n" +
			"A [partner](https://partner.example.org/offer), [ours, tagged by hand](https://example.com/?utm_source=blog), " +
			"[www](https://www.example.com/about) and <https://shop.example.com/new>."
		c, err := ns.CreateCampaign(ctx, "staff-1", newsletter.Purpose, "Spring", body)
		if err != nil {
			t.Fatal(err)
		}
		slug := c.Slug()
		if !regexp.MustCompile(`^nl-[a-z]{10}$`).MatchString(slug) || slug == c.ID {
			t.Fatalf("slug %q", slug)
		}
		if _, err := ns.StartSend(ctx, noJobs{}, c.ID); err != nil {
			t.Fatal(err)
		}
		cap := &capture{}
		old := ns.SwapSender(cap)
		defer ns.SwapSender(old)
		if err := ns.Send(ctx, c.ID); err != nil {
			t.Fatal(err)
		}
		if len(cap.msgs) != 2 {
			t.Fatalf("%d mails sent, want 2", len(cap.msgs))
		}
		tags := "utm_source=newsletter&utm_medium=email&utm_campaign=" + slug
		want := []string{
			"https://example.com/pricing?" + tags,
			"https://shop.example.com/cart?item=3&" + tags + "#top",
			"https://partner.example.org/offer",
			"https://example.com/?utm_source=blog",
			"https://www.example.com/about",
			"https://shop.example.com/new?" + tags,
		}
		var first []string
		for i, m := range cap.msgs {
			var inHTML []string
			for _, g := range hrefs.FindAllStringSubmatch(m.HTML, -1) {
				inHTML = append(inHTML, html.UnescapeString(g[1]))
			}
			inHTML = siteLinks(inHTML)
			inText := siteLinks(textURLs.FindAllString(m.Text, -1))
			if !slices.Equal(inHTML, want) {
				t.Errorf("mail %d: the HTML part's links\n%s\nwant\n%s", i, strings.Join(inHTML, "\n"), strings.Join(want, "\n"))
			}
			if !slices.Equal(inText, want) {
				t.Errorf("mail %d: the text part's links\n%s\nwant\n%s\n%s", i, strings.Join(inText, "\n"), strings.Join(want, "\n"), m.Text)
			}
			all := fmt.Sprint(inHTML, inText)
			if strings.Contains(all, m.ID) || strings.Contains(all, m.To) || strings.Contains(all, "/unsubscribe") {
				t.Errorf("mail %d: a tagged link names its recipient: %s", i, all)
			}
			if i == 0 {
				first = append(inHTML, inText...)
			} else if !slices.Equal(first, append(inHTML, inText...)) {
				t.Errorf("two recipients' copies have different links:\n%v\n%v", first, append(inHTML, inText...))
			}
		}
		// Each copy still has its own opt-out: the copies differ there, not in the links.
		if cap.msgs[0].Headers["List-Unsubscribe"] == cap.msgs[1].Headers["List-Unsubscribe"] {
			t.Error("the two copies share an opt-out link")
		}
	})
}
