package datamap

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"os"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"
)

// chunkSize is how much of a file a raw scan holds at once: files are read in chunks,
// never whole (a PostgreSQL relation segment is 1 GiB, a SQLite file may be larger).
const chunkSize = 1 << 20

// ScanReader looks for the terms in every byte r yields, reading it in chunks of 1 MiB
// and keeping the end of each chunk for the next, so a match across two chunks is found
// once. Raw bytes are no text to fold, so they are folded to lower case in ASCII only,
// and a term is looked for in lower case, and, for its letters beyond ASCII, also in
// upper case and capitalized ("Özgür"). Findings are named where, one per term found.
func ScanReader(r io.Reader, where string, terms []Term) ([]Finding, error) {
	return scanReader(r, where, usable(terms), chunkSize)
}

// scanReader is ScanReader on terms already usable, with the chunk size given (tests
// make it small).
func scanReader(r io.Reader, where string, terms []Term, size int) ([]Finding, error) {
	m := newMatcher(terms)
	buf := make([]byte, size)
	for {
		n, err := r.Read(buf)
		m.write(buf[:n])
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
	}
	return m.findings(where), nil
}

// matcher counts the terms in a stream written to it chunk by chunk.
type matcher struct {
	terms  []Term
	pats   [][][]byte // per term, the forms looked for, folded as the data is
	counts []int
	keep   int    // bytes of the stream's end to carry over: the longest form but one
	buf    []byte // the carried end, then the chunk
}

func newMatcher(terms []Term) *matcher {
	m := &matcher{terms: terms, pats: make([][][]byte, len(terms)), counts: make([]int, len(terms))}
	for i, t := range terms {
		m.pats[i] = forms(t.Value)
		for _, p := range m.pats[i] {
			m.keep = max(m.keep, len(p)-1)
		}
	}
	return m
}

// write folds p (in place: the caller's buffer) and counts what it completes. A match
// that ends in p starts at most len(form)-1 bytes before it, within the carried end; one
// that ends before p was counted by an earlier write.
func (m *matcher) write(p []byte) {
	if len(p) == 0 {
		return
	}
	foldASCII(p)
	carried := len(m.buf)
	m.buf = append(m.buf, p...)
	for i, forms := range m.pats {
		for _, f := range forms {
			from := max(0, carried-(len(f)-1))
			m.counts[i] += bytes.Count(m.buf[from:], f)
		}
	}
	if len(m.buf) > m.keep {
		m.buf = append(m.buf[:0], m.buf[len(m.buf)-m.keep:]...)
	}
}

// findings reports the counts under where.
func (m *matcher) findings(where string) []Finding {
	var out []Finding
	for i, t := range m.terms {
		if m.counts[i] > 0 {
			out = append(out, Finding{Where: where, Kind: t.Kind, Count: m.counts[i]})
		}
	}
	return out
}

// forms returns the byte strings to look for a term (in lower case) as in data folded by
// foldASCII: the term itself, and when it has letters beyond ASCII, its upper case and
// its capitalized words too, since folding the data left those letters as they were.
func forms(lower string) [][]byte {
	out := [][]byte{[]byte(lower)}
	if isASCII(lower) {
		return out
	}
	for _, v := range []string{strings.ToUpper(lower), capitalized(lower)} {
		b := []byte(v)
		foldASCII(b)
		if !slices.ContainsFunc(out, func(o []byte) bool { return bytes.Equal(o, b) }) {
			out = append(out, b)
		}
	}
	return out
}

// capitalized upper-cases the first letter of every word.
func capitalized(s string) string {
	var b strings.Builder
	start := true
	for _, r := range s {
		if start {
			r = unicode.ToUpper(r)
		}
		start = unicode.IsSpace(r) || r == '-'
		b.WriteRune(r)
	}
	return b.String()
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// foldASCII lowers the ASCII letters of b in place and leaves every other byte, so that
// positions in binary data stay where they were.
func foldASCII(b []byte) {
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + ('a' - 'A')
		}
	}
}

// scanFile scans the file at name, reporting findings under where. A file that does not
// exist holds nothing and reports nothing.
func scanFile(name, where string, terms []Term) ([]Finding, error) {
	f, err := os.Open(name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return scanReader(f, where, terms, chunkSize)
}
