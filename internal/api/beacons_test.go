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

// The cookie banner script stays small (under 3 KB gzipped), needs nothing, stores
// nothing but its choice cookie, and reads the consent field the statistics script
// sends: "granted" or "refused".
func TestConsentScriptSize(t *testing.T) {
	b, err := consentScript.ReadFile("static/steward-consent.js")
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
	t.Logf("steward-consent.js: %d bytes, %d gzipped", len(b), z.Len())
	if z.Len() >= 3072 || z.Len() < 500 {
		t.Errorf("the banner script is %d bytes gzipped, want under 3072 (and a real script)", z.Len())
	}
	for _, dep := range []string{"import ", "require(", "localStorage", "sessionStorage", "innerHTML", "fetch(", "sendBeacon", "XMLHttpRequest"} {
		if bytes.Contains(b, []byte(dep)) {
			t.Errorf("the banner script uses %q: it must need nothing, send nothing and keep only its cookie", dep)
		}
	}
	if n := bytes.Count(b, []byte("d.cookie =")); n != 1 || !bytes.Contains(b, []byte(`"steward_cookies=v"`)) {
		t.Errorf("the banner script writes a cookie %d times, want once: steward_cookies", n)
	}
	a, err := analyticsScript.ReadFile("static/steward-analytics.js")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"granted"`, `"refused"`, "e.consent = choice", "steward:consent", "/*cookieless*/ false"} {
		if !bytes.Contains(a, []byte(want)) {
			t.Errorf("the statistics script lacks %s", want)
		}
	}
}
