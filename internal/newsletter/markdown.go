package newsletter

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/yuin/goldmark"
	"github.com/yuin/goldmark/ast"
	"github.com/yuin/goldmark/renderer/html"
	gtext "github.com/yuin/goldmark/text"
	"github.com/yuin/goldmark/util"

	"steward/internal/mail"
)

// mailBody is a campaign's Markdown rendered once for all its recipients, from one
// parse: the HTML of the body (styled inline for mail clients) and its plain-text
// rendition. Raw HTML in the Markdown is left out of both: goldmark without the
// unsafe option omits it from the HTML, and the text leaves out the same nodes.
type mailBody struct {
	HTML string
	Text string
	// frame is the HTML part's layout around HTML, made at the first mail: a
	// mailBody serves one campaign's mails (the same subject, purpose and kind).
	frame *frameOnce
}

// frameOnce makes a layout's frame once, whichever goroutine renders first.
type frameOnce struct {
	once  sync.Once
	frame mail.CampaignFrame
	err   error
}

// layout returns the frame of l around the body, made at the first call.
func (b mailBody) layout(l mail.CampaignLayout) (mail.CampaignFrame, error) {
	if b.frame == nil { // a mailBody not made by markdown: no cache
		return l.Frame(b.HTML)
	}
	b.frame.once.Do(func() { b.frame.frame, b.frame.err = l.Frame(b.HTML) })
	return b.frame.frame, b.frame.err
}

// md is CommonMark without raw HTML (goldmark's default).
var md = goldmark.New()

// markdown renders a campaign's body.
func markdown(src string) (mailBody, error) { return markdownTagged(src, nil) }

// markdownTagged renders a campaign's body, each link's address passed through tag
// first when tag is not nil (tagLinks).
func markdownTagged(src string, tag func(string) string) (mailBody, error) {
	source := []byte(src)
	doc := md.Parser().Parse(gtext.NewReader(source))
	if tag != nil {
		tagLinks(doc, source, tag)
	}
	var buf bytes.Buffer
	if err := md.Renderer().Render(&buf, source, doc); err != nil {
		return mailBody{}, fmt.Errorf("newsletter: markdown: %w", err)
	}
	return mailBody{HTML: inlineStyles.Replace(buf.String()), Text: plainText(doc, source), frame: &frameOnce{}}, nil
}

// inlineStyles gives goldmark's own tags the inline styles mail clients need (many
// drop a <style> element), and drops the comments that mark raw HTML left out. Raw
// HTML never reaches here (it is omitted, and text is escaped), so only the
// renderer's tags match.
var inlineStyles = strings.NewReplacer(
	"<!-- raw HTML omitted -->", "",
	"<h1>", `<h1 style="margin:0 0 16px;font-size:24px;line-height:1.3;">`,
	"<h2>", `<h2 style="margin:24px 0 12px;font-size:20px;line-height:1.3;">`,
	"<h3>", `<h3 style="margin:20px 0 8px;font-size:17px;line-height:1.3;">`,
	"<p>", `<p style="margin:0 0 16px;">`,
	"<ul>", `<ul style="margin:0 0 16px;padding-left:24px;">`,
	"<ol>", `<ol style="margin:0 0 16px;padding-left:24px;">`,
	"<ol start=", `<ol style="margin:0 0 16px;padding-left:24px;" start=`,
	"<blockquote>", `<blockquote style="margin:0 0 16px;padding:0 0 0 12px;border-left:3px solid #d4d4d8;color:#3f3f46;">`,
	"<pre>", `<pre style="margin:0 0 16px;padding:12px;background-color:#f4f4f5;white-space:pre-wrap;word-wrap:break-word;font-size:14px;">`,
	"<hr>", `<hr style="border:0;border-top:1px solid #e4e4e7;margin:24px 0;">`,
	"<a href=", `<a style="color:#1d4ed8;" href=`,
	"<img src=", `<img style="max-width:100%;height:auto;border:0;" src=`,
)

// textWidth is the column plain-text paragraphs wrap at.
const textWidth = 72

// plainText renders the parsed Markdown as plain text a person reads as is: headings
// underlined, lists with their markers, quotes with "> ", code indented, links as
// "text (address)", emphasis without its markers, raw HTML left out, paragraphs
// wrapped.
func plainText(doc ast.Node, src []byte) string {
	t := strings.TrimRight(blockText(doc, src, textWidth), "\n ")
	if t == "" {
		return ""
	}
	return t + "\n"
}

// blockText renders a block node within width columns, without a trailing newline.
func blockText(n ast.Node, src []byte, width int) string {
	width = max(width, 20)
	switch n := n.(type) {
	case *ast.Paragraph, *ast.TextBlock:
		return wrap(strings.TrimSpace(inlineText(n, src)), width)
	case *ast.Heading:
		t := strings.TrimSpace(inlineText(n, src))
		switch n.Level {
		case 1:
			return t + "\n" + strings.Repeat("=", max(1, longestLine(t)))
		case 2:
			return t + "\n" + strings.Repeat("-", max(1, longestLine(t)))
		}
		return t
	case *ast.ThematicBreak:
		return strings.Repeat("-", 20)
	case *ast.CodeBlock, *ast.FencedCodeBlock:
		var b strings.Builder
		lines := n.Lines()
		for i := 0; i < lines.Len(); i++ {
			seg := lines.At(i)
			line := strings.TrimRight(string(seg.Value(src)), "\r\n")
			if line != "" {
				b.WriteString("    " + line)
			}
			b.WriteString("\n")
		}
		return strings.TrimRight(b.String(), "\n")
	case *ast.Blockquote:
		return prefixLines(childBlocks(n, src, width-2, "\n\n"), "> ", "> ", ">")
	case *ast.List:
		sep := "\n\n"
		if n.IsTight {
			sep = "\n"
		}
		var items []string
		i := 0
		for c := n.FirstChild(); c != nil; c = c.NextSibling() {
			marker := "- "
			if n.IsOrdered() {
				marker = strconv.Itoa(n.Start+i) + ". "
			}
			i++
			inner := childBlocks(c, src, width-len(marker), sep)
			items = append(items, prefixLines(inner, marker, strings.Repeat(" ", len(marker)), ""))
		}
		return strings.Join(items, sep)
	case *ast.HTMLBlock:
		return "" // left out, as the HTML part leaves it out
	}
	return childBlocks(n, src, width, "\n\n")
}

// childBlocks renders the block children of n, joined by sep.
func childBlocks(n ast.Node, src []byte, width int, sep string) string {
	var parts []string
	for c := n.FirstChild(); c != nil; c = c.NextSibling() {
		if t := blockText(c, src, width); strings.TrimSpace(t) != "" {
			parts = append(parts, t)
		}
	}
	return strings.Join(parts, sep)
}

// inlineText renders the inline children of n on one line; a hard line break is a
// newline.
func inlineText(n ast.Node, src []byte) string {
	var b strings.Builder
	for c := n.FirstChild(); c != nil; c = c.NextSibling() {
		switch c := c.(type) {
		case *ast.Text:
			v := c.Segment.Value(src)
			if !c.IsRaw() {
				v = util.ResolveEntityNames(util.ResolveNumericReferences(util.UnescapePunctuations(v)))
			}
			b.Write(v)
			switch {
			case c.HardLineBreak():
				b.WriteString("\n")
			case c.SoftLineBreak():
				b.WriteString(" ")
			}
		case *ast.String:
			b.Write(c.Value)
		case *ast.CodeSpan:
			b.WriteString(inlineText(c, src))
		case *ast.Link:
			b.WriteString(linkText(inlineText(c, src), c.Destination))
		case *ast.Image:
			b.WriteString(linkText(inlineText(c, src), c.Destination))
		case *ast.AutoLink:
			if c.AutoLinkType == ast.AutoLinkEmail {
				b.Write(c.Label(src))
			} else {
				b.Write(c.URL(src))
			}
		case *ast.RawHTML:
			// Left out, as the HTML part leaves it out.
		default:
			b.WriteString(inlineText(c, src))
		}
	}
	return b.String()
}

// linkText is a link as text: "label (address)", the address alone when the label is
// it, the label alone when the address is one the HTML part would not link either.
func linkText(label string, dest []byte) string {
	label = strings.TrimSpace(label)
	d := string(dest)
	switch {
	case d == "" || html.IsDangerousURL(dest):
		return label
	case label == "" || label == d || "mailto:"+label == d:
		return d
	}
	return label + " (" + d + ")"
}

// wrap breaks each line of s between words so that none is longer than width, where
// a word allows it (an address is never broken).
func wrap(s string, width int) string {
	var out []string
	for _, line := range strings.Split(s, "\n") {
		var cur strings.Builder
		n := 0
		for _, w := range strings.Fields(line) {
			wl := utf8.RuneCountInString(w)
			if n > 0 && n+1+wl > width {
				out = append(out, cur.String())
				cur.Reset()
				n = 0
			}
			if n > 0 {
				cur.WriteByte(' ')
				n++
			}
			cur.WriteString(w)
			n += wl
		}
		out = append(out, cur.String())
	}
	return strings.Join(out, "\n")
}

// prefixLines puts first before the first line of s and rest before every other
// line; an empty line gets empty instead.
func prefixLines(s, first, rest, empty string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		switch {
		case l == "" && i > 0:
			lines[i] = empty
		case i == 0:
			lines[i] = first + l
		default:
			lines[i] = rest + l
		}
	}
	return strings.Join(lines, "\n")
}

// longestLine is the length in characters of the longest line of s.
func longestLine(s string) int {
	n := 0
	for _, l := range strings.Split(s, "\n") {
		n = max(n, utf8.RuneCountInString(l))
	}
	return n
}
