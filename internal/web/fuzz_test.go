package web

import (
	"bytes"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"testing"

	"steward/internal/apperr"
)

// A form body is read without panicking whatever it holds: refused as invalid (or too
// large) input, or read into fields that encode and read back the same; posted gives
// a field's first value exactly when the form has it.
func FuzzParseForm(f *testing.F) {
	for _, s := range []string{
		"email=ada%40example.org&password=correct+horse&name=Ada",
		"name=Eve%0D%0ABcc%3A+victim%40example.com%0D%0A%0D%0AInjected+body",
		"name=a&name=b&NAME=c&consent_newsletter=on",
		"name=%zz&x=%",
		"a=1;b=2",
		"=&&=&name",
		"name=" + strings.Repeat("a", 70000),
		strings.Repeat("x=1&", 20000),
	} {
		f.Add([]byte(s), "application/x-www-form-urlencoded")
	}
	f.Add([]byte("--B\r\nContent-Disposition: form-data; name=\"name\"\r\n\r\nAda\r\n--B--\r\n"), "multipart/form-data; boundary=B")
	f.Add([]byte("name=x"), "text/plain")
	f.Fuzz(func(t *testing.T, body []byte, ctype string) {
		r := httptest.NewRequest("POST", "/profile", bytes.NewReader(body))
		r.Header.Set("Content-Type", ctype)
		err := parseForm(httptest.NewRecorder(), r)
		if err != nil {
			if e, ok := apperr.As(err); !ok || (e.Kind != apperr.Invalid && e.Kind != apperr.TooLarge) {
				t.Fatalf("parseForm: %v, want invalid or too large input", err)
			}
			return
		}
		again, err := url.ParseQuery(r.PostForm.Encode())
		if err != nil || (len(r.PostForm) > 0 && !reflect.DeepEqual(again, r.PostForm)) {
			t.Fatalf("the form %v reads back as %v, %v", r.PostForm, again, err)
		}
		for name, vs := range r.PostForm {
			v, ok := posted(r, name)
			if !ok || v == nil || (len(vs) > 0 && *v != vs[0]) {
				t.Fatalf("posted(%q) = %v, %v; the form has %q", name, v, ok, vs)
			}
		}
		if v, ok := posted(r, "\x00absent"); ok && r.PostForm["\x00absent"] == nil {
			t.Fatalf("posted found a field the form lacks: %v", v)
		}
	})
}

// sentence makes any message a sentence without panicking: a capital letter (where
// there is one to make), an ending stop.
func FuzzSentence(f *testing.F) {
	f.Add("Name", "is required")
	f.Add("", "")
	f.Add("", "\xffé")
	f.Fuzz(func(t *testing.T, label, msg string) {
		got := sentence(label, msg)
		if label == "" && msg == "" {
			if got != "" {
				t.Fatalf("sentence of nothing = %q", got)
			}
			return
		}
		if !strings.HasSuffix(got, ".") && !strings.HasSuffix(got, "?") && !strings.HasSuffix(got, "!") {
			t.Fatalf("sentence(%q, %q) = %q", label, msg, got)
		}
	})
}
