package api

import (
	"bytes"
	"compress/gzip"
	"testing"
)

// The page statistics script stays under 2 KB gzipped (what a page pays to include it).
func TestScriptSize(t *testing.T) {
	b, err := analyticsScript.ReadFile("static/steward-analytics.js")
	if err != nil {
		t.Fatal(err)
	}
	var z bytes.Buffer
	w, _ := gzip.NewWriterLevel(&z, gzip.BestCompression)
	if _, err := w.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	t.Logf("steward-analytics.js: %d bytes, %d gzipped", len(b), z.Len())
	if z.Len() >= 2048 || z.Len() < 200 {
		t.Errorf("the script is %d bytes gzipped, want under 2048 (and a real script)", z.Len())
	}
	for _, dep := range []string{"import ", "require(", "document.cookie", "localStorage", "sessionStorage"} {
		if bytes.Contains(b, []byte(dep)) {
			t.Errorf("the script uses %q: it must need nothing and store nothing", dep)
		}
	}
}
