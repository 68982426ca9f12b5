// Package text checks the free text people give Steward (names, phone numbers,
// addresses, companies, mail subjects) before it is stored, so that what is stored can
// be put in a mail, a page or a CSV file without reshaping it there.
package text

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"steward/internal/apperr"
	"steward/internal/pan"
)

// Line checks a field of one line: valid UTF-8, at most max characters, no payment
// card number, and nothing that breaks or hides a line: no control character (line
// feed, carriage return, tab, NUL, VT, ESC...), no Unicode line or paragraph separator
// (U+2028, U+2029), no bidirectional override or isolate (U+202A-U+202E,
// U+2066-U+2069), which would make a name read differently from what it is.
func Line(field, v string, max int) error {
	return check(field, v, max, false)
}

// Lines checks a field of several lines (a postal address): as Line, except that
// line feeds, carriage returns and tabs are allowed.
func Lines(field, v string, max int) error {
	return check(field, v, max, true)
}

// Required trims a required field of plain text (several lines allowed), refuses it
// empty (what says what the field wants) and checks it as Lines does.
func Required(field, v string, max int, what string) (string, error) {
	v = strings.TrimSpace(v)
	if v == "" {
		return "", apperr.Field(field, "required", "is required: "+what)
	}
	return v, Lines(field, v, max)
}

func check(field, v string, max int, multiline bool) error {
	if !utf8.ValidString(v) {
		return apperr.Field(field, "text_invalid", "is not valid UTF-8")
	}
	if n := utf8.RuneCountInString(v); n > max {
		return apperr.Field(field, "too_long", fmt.Sprintf("must be at most %d characters", max))
	}
	i := 0
	for _, r := range v {
		i++
		if multiline && (r == '\n' || r == '\r' || r == '\t') {
			continue
		}
		if Forbidden(r) {
			what := "one line of plain text"
			if multiline {
				what = "plain text"
			}
			return apperr.Field(field, "text_invalid", fmt.Sprintf("must be %s: character %d is U+%04X, a control character", what, i, r))
		}
	}
	if pan.Contains(v) {
		return apperr.Field(field, "card_number", "looks like a payment card number; card numbers are never stored here, please remove it")
	}
	return nil
}

// Forbidden reports whether r may not appear in a line of text: a control character
// (C0, DEL, C1), a line or paragraph separator, or a bidirectional override or isolate.
func Forbidden(r rune) bool {
	switch {
	case r < 0x20, r >= 0x7f && r < 0xa0:
		return true
	case r == 0x2028, r == 0x2029:
		return true
	case r >= 0x202a && r <= 0x202e, r >= 0x2066 && r <= 0x2069:
		return true
	}
	return false
}

// Cut returns s cut to at most n bytes, never inside a UTF-8 sequence: what is kept of
// a long browser name or error stays valid text.
func Cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
