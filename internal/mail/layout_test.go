package mail

import (
	"strings"
	"testing"
)

// The campaign layout frames the body for mail clients (a 600 px table with inline
// styles, no <style> or script), shows the site's name, the purpose and the opt-out
// link, and escapes every value but the body.
func TestCampaignLayout(t *testing.T) {
	l := CampaignLayout{Site: `Ada & Co <Labs>`, SiteURL: "https://example.org", Subject: `News "<today>"`, Greeting: "Hello <Ada>,",
		Purpose: "Newsletter & offers", Unsubscribe: "https://example.org/unsubscribe?t=abc&x=1", Beacon: "https://example.org/b/o.gif?t=abc"}
	h, err := l.HTML(`<p style="margin:0 0 16px;">The <em>body</em>.</p>`)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"<!DOCTYPE html>", `<html lang="en">`, `<title>News &#34;&lt;today&gt;&#34;</title>`,
		`role="presentation"`, "max-width:600px", `<a href="https://example.org" style="color:#18181b;text-decoration:none;">Ada &amp; Co &lt;Labs&gt;</a>`,
		"Hello &lt;Ada&gt;,", `<p style="margin:0 0 16px;">The <em>body</em>.</p>`,
		"because you agreed to: Newsletter &amp; offers.", `<a href="https://example.org/unsubscribe?t=abc&amp;x=1" style="color:#1d4ed8;">Unsubscribe with one click</a>`,
		`<img src="https://example.org/b/o.gif?t=abc" width="1" height="1" alt=""`,
	} {
		if !strings.Contains(h, want) {
			t.Errorf("the layout lacks %s:\n%s", want, h)
		}
	}
	for _, bad := range []string{"<style", "<script", "This is a test", "<Ada>", "<Labs>"} {
		if strings.Contains(h, bad) {
			t.Errorf("the layout holds %s:\n%s", bad, h)
		}
	}

	// A test says so at the top; without a beacon there is no image.
	l.Test, l.Beacon = true, ""
	if h, err = l.HTML("<p>x</p>"); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(h, "This is a test.") || strings.Contains(h, "<img") {
		t.Errorf("a test layout lacks its banner, or has a beacon:\n%s", h)
	}
}

// The frame filled for a recipient is the layout rendered with the recipient's values.
func TestCampaignFrame(t *testing.T) {
	body := `<p>Body with <a href="https://example.org/?a=1&amp;b=2">a link</a>.</p>`
	for _, test := range []bool{false, true} {
		l := CampaignLayout{Site: "Ada & Co", SiteURL: "https://example.org", Subject: "News", Purpose: "Offers & news", Test: test}
		f, err := l.Frame(body)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range []struct{ greeting, unsubscribe, beacon string }{
			{"Hello,", "https://example.org/unsubscribe?t=abc", ""},
			{`Hello <Eve> "&" 'x',`, "https://example.org/unsubscribe?t=abc&x=1", "https://example.org/b/o.gif?t=abc"},
		} {
			l.Greeting, l.Unsubscribe, l.Beacon = r.greeting, r.unsubscribe, r.beacon
			want, err := l.HTML(body)
			if err != nil {
				t.Fatal(err)
			}
			if got := f.Fill(r.greeting, r.unsubscribe, r.beacon); got != want {
				t.Errorf("test %v, %+v: the frame filled is\n%s\nwant\n%s", test, r, got, want)
			}
		}
	}
}
