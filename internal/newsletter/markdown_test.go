package newsletter

import (
	"regexp"
	"strings"
	"testing"
)

// The text part is a plain-text rendition of the Markdown that a person reads as is:
// no Markdown markers that mean nothing in text, no HTML, links with their address.
func TestMarkdownText(t *testing.T) {
	for _, tc := range []struct {
		name, src, want string
	}{
		{"paragraphs", "Dear reader,\n\nThe engine\nis running.", "Dear reader,\n\nThe engine is running.\n"},
		{"emphasis and code", "A *secret* and **bold** `x < y` plan.", "A secret and bold x < y plan.\n"},
		{"headings", "# News\n\n## This week\n\n### Small", "News\n====\n\nThis week\n---------\n\nSmall\n"},
		{"link", "Read [the post](https://example.org/post \"Title\").", "Read the post (https://example.org/post).\n"},
		{"link that is its address", "See [https://example.org](https://example.org).", "See https://example.org.\n"},
		{"autolinks", "<https://example.org/a> or <ada@example.org>", "https://example.org/a or ada@example.org\n"},
		{"dangerous link", "[click](javascript:alert(1))", "click\n"},
		{"image", "![A chart](https://example.org/c.png)", "A chart (https://example.org/c.png)\n"},
		{"bullets", "Items:\n\n- one\n- two\n  - two a\n- three", "Items:\n\n- one\n- two\n  - two a\n- three\n"},
		{"ordered from 3", "3. three\n4. four", "3. three\n4. four\n"},
		{"loose list", "- one\n\n- two", "- one\n\n- two\n"},
		{"quote", "> Quoted\n> text.\n>\n> More.", "> Quoted text.\n>\n> More.\n"},
		{"code block", "```\nfunc main() {\n}\n```", "    func main() {\n    }\n"},
		{"rule", "Above\n\n---\n\nBelow", "Above\n\n--------------------\n\nBelow\n"},
		{"hard break", "Line one  \nLine two", "Line one\nLine two\n"},
		{"escapes and entities", `1\. not a list &amp; &copy; \*star\*`, "1. not a list & © *star*\n"},
		{"inline raw HTML left out", "Some <b>bold</b> and <span style=\"x\">span</span>.", "Some bold and span.\n"},
		{"HTML block left out", "Before\n\n<div>\nhidden <script>alert(1)</script>\n</div>\n\nAfter", "Before\n\nAfter\n"},
		{"wrapped", strings.Repeat("word ", 20), "word word word word word word word word word word word word word word\nword word word word word word\n"},
		{"long address not broken", "x https://example.org/" + strings.Repeat("a", 80), "x\nhttps://example.org/" + strings.Repeat("a", 80) + "\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := markdown(tc.src)
			if err != nil {
				t.Fatal(err)
			}
			if b.Text != tc.want {
				t.Errorf("text of %q:\ngot  %q\nwant %q", tc.src, b.Text, tc.want)
			}
			if strings.Contains(b.Text, "<") && !strings.Contains(tc.src, "x < y") {
				t.Errorf("text of %q holds raw markup: %q", tc.src, b.Text)
			}
		})
	}
}

// Raw HTML in the Markdown is left out of the HTML part as of the text part, and the
// tags the renderer makes carry inline styles.
func TestMarkdownHTML(t *testing.T) {
	b, err := markdown("# Title\n\nSome <b>bold</b> [link](https://example.org).\n\n<script>alert(1)</script>\n\n<img src=x onerror=alert(1)>\n\n1. a\n2. b")
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"<b>", "<script", "onerror", "alert(1)"} {
		if strings.Contains(b.HTML, bad) {
			t.Errorf("the HTML keeps %q:\n%s", bad, b.HTML)
		}
	}
	for _, want := range []string{`<h1 style="`, `<p style="`, `<a style="color:#1d4ed8;" href="https://example.org">link</a>`, `<ol style="`} {
		if !strings.Contains(b.HTML, want) {
			t.Errorf("the HTML lacks %q:\n%s", want, b.HTML)
		}
	}
	if strings.Contains(b.Text, "alert") || strings.Contains(b.Text, "<") {
		t.Errorf("the text keeps raw HTML: %q", b.Text)
	}
}

// Whatever the Markdown, the HTML part holds no markup but the renderer's own: no
// script, frame, style or object, no event handler, no script link.
func FuzzMarkdown(f *testing.F) {
	for _, s := range []string{"# Hi\n\n*x* [a](b)", "<script>alert(1)</script>", "<scr<b>ipt>", "[x](javascript:alert(1))",
		"<img src=x onerror=alert(1)>", "- a\n  - b\n\n> q", "```\n<b>\n```", "<!-- c -->x", "&lt;b&gt;", "![a](javascript:x)"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, src string) {
		b, err := markdown(src)
		if err != nil {
			t.Fatal(err)
		}
		if m := unsafeHTML.FindString(strings.ToLower(b.HTML)); m != "" {
			t.Errorf("the HTML of %q holds %q:\n%s", src, m, b.HTML)
		}
	})
}

// unsafeHTML matches markup that could run or load anything: a tag the renderer never
// makes, an event handler, a script address (text is escaped, so every "<" opens a tag).
var unsafeHTML = regexp.MustCompile(`<(script|iframe|style|object|embed|svg|math|form|input|link|meta|base)\b|<[^>]*\son[a-z]+\s*=|(href|src)="\s*(javascript:|vbscript:|data:text)`)
