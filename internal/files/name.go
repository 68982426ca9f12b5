package files

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// maxNameBytes bounds a stored file name.
const maxNameBytes = 255

// SanitizeName turns what a browser or client calls a file into a safe display name:
// the last path element only (no directories, so no traversal), no control or
// formatting characters (no header injection, no bidi tricks), trimmed, at most 255
// bytes on a rune boundary; "file" when nothing is left.
func SanitizeName(raw string) string {
	if i := strings.LastIndexAny(raw, `/\`); i >= 0 {
		raw = raw[i+1:]
	}
	var b strings.Builder
	for _, r := range raw {
		switch {
		case unicode.IsSpace(r):
			b.WriteByte(' ')
		case r == utf8.RuneError, unicode.IsControl(r), unicode.Is(unicode.Cf, r):
			continue
		default:
			b.WriteRune(r)
		}
	}
	name := strings.TrimSpace(b.String())
	name = strings.Trim(name, ".")
	for len(name) > maxNameBytes {
		_, size := utf8.DecodeLastRuneInString(name)
		name = name[:len(name)-size]
	}
	if strings.TrimSpace(name) == "" {
		return "file"
	}
	return name
}
