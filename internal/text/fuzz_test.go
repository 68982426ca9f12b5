package text

import (
	"strings"
	"testing"
	"unicode/utf8"

	"steward/internal/apperr"
)

// What Line accepts is one line of at most max characters of valid UTF-8 with no
// forbidden character; what Lines accepts is that with line breaks and tabs allowed.
// Every refusal is an invalid-input error naming the field.
func FuzzLine(f *testing.F) {
	for _, s := range []string{
		"Ada Lovelace", "Eve\r\nBcc: victim@example.com\r\n\r\nInjected body", "a\x00b", "x\vy", "\x1b[31mred",
		"line\u2028sep", "\u202egnp.exe", "é", "\xff", "4111 1111 1111 1111", "12 Baker Street\nLondon\tNW1",
		strings.Repeat("é", 201), strings.Repeat("a", 70000),
	} {
		f.Add(s, uint8(200))
	}
	f.Fuzz(func(t *testing.T, v string, max uint8) {
		for _, multiline := range []bool{false, true} {
			var err error
			if multiline {
				err = Lines("name", v, int(max))
			} else {
				err = Line("name", v, int(max))
			}
			if err != nil {
				if e, ok := apperr.As(err); !ok || e.Kind != apperr.Invalid || e.Field != "name" {
					t.Fatalf("check(%q): %v, want an invalid-input error on the field", v, err)
				}
				continue
			}
			if !utf8.ValidString(v) || utf8.RuneCountInString(v) > int(max) {
				t.Fatalf("accepted %q (max %d)", v, max)
			}
			for _, r := range v {
				if Forbidden(r) && !(multiline && (r == '\n' || r == '\r' || r == '\t')) {
					t.Fatalf("accepted %q holding U+%04X (multiline %v)", v, r, multiline)
				}
			}
		}
	})
}

// Cut returns a prefix of at most n bytes that splits no UTF-8 character: valid text
// stays valid, and nothing is cut that fits.
func FuzzCut(f *testing.F) {
	f.Add("Mozilla/5.0 (X11; Linux x86_64) 日本語", uint16(300))
	f.Add("ééé", uint16(3))
	f.Add("\xff\xfe\xfd", uint16(1))
	f.Add("", uint16(0))
	f.Fuzz(func(t *testing.T, s string, n uint16) {
		got := Cut(s, int(n))
		if !strings.HasPrefix(s, got) || len(got) > int(n) {
			t.Fatalf("Cut(%q, %d) = %q", s, n, got)
		}
		if len(s) <= int(n) && got != s {
			t.Fatalf("Cut(%q, %d) = %q, cut what fits", s, n, got)
		}
		if utf8.ValidString(s) && !utf8.ValidString(got) {
			t.Fatalf("Cut(%q, %d) = %q, not valid UTF-8", s, n, got)
		}
		if utf8.ValidString(s) && len(s) > int(n) && len(got) < int(n)-utf8.UTFMax+1 {
			t.Fatalf("Cut(%q, %d) = %q cuts more than one character short", s, n, got)
		}
	})
}
