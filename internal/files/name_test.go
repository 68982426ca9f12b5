package files

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestSanitizeName(t *testing.T) {
	tests := map[string]string{
		"report.pdf":                     "report.pdf",
		"../../etc/passwd":               "passwd",
		`C:\Users\ann\secret.docx`:       "secret.docx",
		"evil\r\nSet-Cookie: x=1.txt":    "evil  Set-Cookie: x=1.txt",
		"\u202egnp.exe":                  "gnp.exe",
		"..":                             "file",
		"":                               "file",
		"  spaced  name .txt ":           "spaced  name .txt",
		"<script>alert(1)</script>.html": "script>.html",
		"<b onmouseover=x>hi.html":       "<b onmouseover=x>hi.html", // escaped where shown, never run
		"tab\tname.txt":                  "tab name.txt",
		"résumé – été.pdf":               "résumé – été.pdf",
	}
	for in, want := range tests {
		if got := SanitizeName(in); got != want {
			t.Errorf("SanitizeName(%q) = %q, want %q", in, got, want)
		}
	}
	long := SanitizeName(strings.Repeat("é", 300))
	if len(long) > maxNameBytes || !utf8.ValidString(long) {
		t.Errorf("long name: %d bytes, valid %v", len(long), utf8.ValidString(long))
	}
}

func FuzzSanitizeName(f *testing.F) {
	f.Add("../a\x00b/c.txt")
	f.Fuzz(func(t *testing.T, s string) {
		got := SanitizeName(s)
		if got == "" || strings.ContainsAny(got, "/\\\r\n\x00") || len(got) > maxNameBytes || !utf8.ValidString(got) {
			t.Fatalf("SanitizeName(%q) = %q", s, got)
		}
	})
}
