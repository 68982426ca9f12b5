package server

import (
	"mime"
	"strings"
	"testing"
)

// The attachment's name survives whole in filename*, and the ASCII fallback can break
// neither the header nor the quoted string, whatever the member named the file.
func TestContentDisposition(t *testing.T) {
	for _, tc := range []struct {
		name, fallback string
	}{
		{"report.pdf", "report.pdf"},
		{"Übersicht 2026.pdf", "_bersicht 2026.pdf"},
		{`a"b\c.txt`, "a_b_c.txt"},
		{"100%.txt", "100_.txt"},
		{"line\r\nX-Injected 1.txt", "line__X-Injected 1.txt"},
		{"tab\there\x7f.txt", "tab_here_.txt"},
		{"日本語.txt", "___.txt"}, // one for each character, not each byte
		{"a;b.txt", "a;b.txt"},
		{"notes: draft=2 @home + more$.txt", "notes: draft=2 @home + more$.txt"},
		{"a'b (c) [d] {e} <f>,g?.txt", "a'b (c) [d] {e} <f>,g?.txt"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := ContentDisposition(tc.name)
			if strings.ContainsAny(h, "\r\n\x00") {
				t.Fatalf("header %q holds a line break or NUL", h)
			}
			if !strings.HasPrefix(h, `attachment; filename="`+tc.fallback+`"; `) {
				t.Errorf("header %q, want the fallback %q", h, tc.fallback)
			}
			disp, params, err := mime.ParseMediaType(h)
			if err != nil {
				t.Fatalf("header %q does not parse: %v", h, err)
			}
			// mime prefers filename* (RFC 2231) over filename.
			if disp != "attachment" || params["filename"] != tc.name {
				t.Errorf("parsed %q %q, want attachment with the name %q", disp, params, tc.name)
			}
		})
	}
}

