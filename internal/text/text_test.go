package text

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	"steward/internal/apperr"
)

func TestLine(t *testing.T) {
	for _, ok := range []string{"", "Ada Lovelace", "Zoë Ørsted-Łukasz", "李小龙", "O'Brien & Sons, Ltd.", "\u200d👩\u200d💻 dev", "+44 20 7946 0958"} {
		if err := Line("name", ok, 200); err != nil {
			t.Errorf("Line(%q) = %v", ok, err)
		}
	}
	for _, bad := range []string{
		"Eve\r\nBcc: victim@example.com\r\n\r\nInjected body", "Eve\nBody", "a\rb", "tab\there", "nul\x00", "vt\vx", "esc\x1b[31m",
		"line\u2028sep", "para\u2029sep", "del\x7f", "c1\u0085next", "rlo\u202egnp.exe", "isolate\u2066x\u2069",
	} {
		err := Line("name", bad, 200)
		if apperr.KindOf(err) != apperr.Invalid || !strings.Contains(err.Error(), "name") {
			t.Errorf("Line(%q) = %v, want an invalid name", bad, err)
		}
	}
	if err := Line("name", strings.Repeat("é", 201), 200); err == nil || !strings.Contains(err.Error(), "200") {
		t.Errorf("201 characters: %v", err)
	}
	if err := Line("name", strings.Repeat("é", 200), 200); err != nil {
		t.Errorf("200 two-byte characters: %v", err)
	}
	if err := Line("name", "\xff", 200); err == nil {
		t.Error("invalid UTF-8 accepted")
	}
	if err := Line("company", "card 4111 1111 1111 1111", 200); err == nil || !strings.Contains(err.Error(), "card") {
		t.Errorf("a card number: %v", err)
	}
}

func TestLines(t *testing.T) {
	if err := Lines("home_address", "12 Analytical Row\r\nLondon\tW1\nUK", 500); err != nil {
		t.Errorf("an address of three lines: %v", err)
	}
	for _, bad := range []string{"a\x00b", "a\vb", "a\u2028b", "a\u202eb", "a\x1bb"} {
		if err := Lines("home_address", bad, 500); err == nil {
			t.Errorf("Lines(%q) accepted", bad)
		}
	}
}

func TestCut(t *testing.T) {
	for _, tc := range []struct {
		in   string
		n    int
		want string
	}{
		{"short", 300, "short"},
		{"abcdef", 3, "abc"},
		{"aé", 2, "a"}, // é is two bytes: cut before it, not inside
		{"aéb", 3, "aé"},
		{"€€", 4, "€"}, // three bytes each
		{"€", 2, ""},
		{strings.Repeat("x", 299) + "é", 300, strings.Repeat("x", 299)},
	} {
		got := Cut(tc.in, tc.n)
		if got != tc.want || !utf8.ValidString(got) || len(got) > tc.n {
			t.Errorf("Cut(%q, %d) = %q, want %q", tc.in, tc.n, got, tc.want)
		}
	}
}

// Required trims, refuses an empty field with its own words, and checks the rest as
// Lines does.
func TestRequired(t *testing.T) {
	if v, err := Required("f", "  two\nlines  ", 20, "say it"); err != nil || v != "two\nlines" {
		t.Errorf("Required = %q, %v", v, err)
	}
	for _, c := range []struct{ in, code string }{{"   ", "required"}, {"a\x1bb", "text_invalid"}, {"this is far too long", "too_long"}} {
		_, err := Required("f", c.in, 10, "say it")
		var e *apperr.Error
		if !errors.As(err, &e) || e.Code != c.code || e.Field != "f" {
			t.Errorf("Required(%q) = %v, want %s on f", c.in, err, c.code)
		}
	}
}
