package policy

import (
	"bytes"
	"context"
	"fmt"
	"strings"

	"github.com/yuin/goldmark"

	"steward/internal/apperr"
)

// Op is what a line of a diff does.
type Op string

// The operations of a diff.
const (
	Same    Op = "same"
	Added   Op = "added"
	Removed Op = "removed"
)

// Line is one line of a diff between two versions' texts.
type Line struct {
	Op   Op
	Text string
	// Old and New are the line's numbers in the older and the newer text (0: not in it).
	Old, New int
}

// maxDiffCells bounds the work of the longest common subsequence of the lines that
// differ (their counts multiplied). Beyond it, the differing middle is shown as all
// removed and all added: still true, only coarser.
const maxDiffCells = 4_000_000

// Diff returns the line diff from a to b: the longest common subsequence of lines,
// after their common beginning and end are set aside.
func Diff(a, b string) []Line {
	x, y := splitLines(a), splitLines(b)
	pre := 0
	for pre < len(x) && pre < len(y) && x[pre] == y[pre] {
		pre++
	}
	suf := 0
	for suf < len(x)-pre && suf < len(y)-pre && x[len(x)-1-suf] == y[len(y)-1-suf] {
		suf++
	}
	var out []Line
	for i := 0; i < pre; i++ {
		out = append(out, Line{Op: Same, Text: x[i], Old: i + 1, New: i + 1})
	}
	mx, my := x[pre:len(x)-suf], y[pre:len(y)-suf]
	out = append(out, middle(mx, my, pre)...)
	for i := 0; i < suf; i++ {
		ox, oy := len(x)-suf+i, len(y)-suf+i
		out = append(out, Line{Op: Same, Text: x[ox], Old: ox + 1, New: oy + 1})
	}
	return out
}

// middle diffs the lines between the common beginning (off lines) and end.
func middle(x, y []string, off int) []Line {
	var out []Line
	if len(x)*len(y) > maxDiffCells {
		for i, l := range x {
			out = append(out, Line{Op: Removed, Text: l, Old: off + i + 1})
		}
		for j, l := range y {
			out = append(out, Line{Op: Added, Text: l, New: off + j + 1})
		}
		return out
	}
	// lcs[i][j] is the length of the longest common subsequence of x[i:] and y[j:].
	w := len(y) + 1
	lcs := make([]int32, (len(x)+1)*w)
	for i := len(x) - 1; i >= 0; i-- {
		for j := len(y) - 1; j >= 0; j-- {
			if x[i] == y[j] {
				lcs[i*w+j] = lcs[(i+1)*w+j+1] + 1
			} else {
				lcs[i*w+j] = max(lcs[(i+1)*w+j], lcs[i*w+j+1])
			}
		}
	}
	i, j := 0, 0
	for i < len(x) || j < len(y) {
		switch {
		case i < len(x) && j < len(y) && x[i] == y[j]:
			out = append(out, Line{Op: Same, Text: x[i], Old: off + i + 1, New: off + j + 1})
			i++
			j++
		case i < len(x) && (j == len(y) || lcs[(i+1)*w+j] >= lcs[i*w+j+1]):
			// Removed before added, where either keeps the longest common run.
			out = append(out, Line{Op: Removed, Text: x[i], Old: off + i + 1})
			i++
		default:
			out = append(out, Line{Op: Added, Text: y[j], New: off + j + 1})
			j++
		}
	}
	return out
}

func splitLines(s string) []string {
	s = strings.TrimSuffix(strings.ReplaceAll(s, "\r\n", "\n"), "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

// Compare returns the diff between two published versions.
func (s *Service) Compare(ctx context.Context, from, to string) (Version, Version, []Line, error) {
	a, err := s.Published(ctx, from)
	if err != nil {
		return Version{}, Version{}, nil, fieldNotFound("from", err)
	}
	b, err := s.Published(ctx, to)
	if err != nil {
		return Version{}, Version{}, nil, fieldNotFound("to", err)
	}
	return a, b, Diff(a.Body, b.Body), nil
}

// md is CommonMark without raw HTML (goldmark's default): the text is the operator's,
// but a page shows no markup it did not make itself.
var md = goldmark.New()

// HTML renders a version's Markdown text. Raw HTML in it is left out.
func HTML(body string) (string, error) {
	var buf bytes.Buffer
	if err := md.Convert([]byte(body), &buf); err != nil {
		return "", fmt.Errorf("policy: markdown: %w", err)
	}
	return strings.ReplaceAll(buf.String(), "<!-- raw HTML omitted -->", ""), nil
}

// fieldNotFound names the query field of a version not found.
func fieldNotFound(field string, err error) error {
	if apperr.KindOf(err) == apperr.NotFound {
		return apperr.Field(field, "policy_version_not_found", "is not a published version of the policy")
	}
	return err
}
