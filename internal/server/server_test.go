package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"steward/internal/apperr"
)

type decoded struct {
	Name  string   `json:"name"`
	Age   int      `json:"age"`
	Tags  []string `json:"tags"`
	Inner struct {
		Flag bool `json:"flag"`
	} `json:"inner"`
}

func TestDecodeJSON(t *testing.T) {
	for _, tc := range []struct {
		name, ct, body string
		kind           apperr.Kind
		code, field    string
		message        string // a part of it
	}{
		{name: "ok", ct: "application/json", body: `{"name":"Ada","age":36,"tags":["a"],"inner":{"flag":true}}`},
		{name: "ok with charset", ct: "application/json; charset=utf-8", body: `{"name":"Ada"}`},
		{name: "ok without content type", body: ` {"name":"Ada"} ` + "\n"},
		{name: "unknown field", body: `{"name":"Ada","colour":"red"}`, kind: apperr.Invalid, code: "unknown_field", field: "colour"},
		{name: "number for a string", body: `{"name":42}`, kind: apperr.Invalid, code: "wrong_type", field: "name", message: "must be a JSON string"},
		{name: "string for a number", body: `{"age":"old"}`, kind: apperr.Invalid, code: "wrong_type", field: "age", message: "must be a JSON number"},
		{name: "object for an array", body: `{"tags":{}}`, kind: apperr.Invalid, code: "wrong_type", field: "tags", message: "must be a JSON array"},
		{name: "nested wrong type", body: `{"inner":{"flag":"yes"}}`, kind: apperr.Invalid, code: "wrong_type", field: "inner.flag", message: "must be a JSON boolean"},
		{name: "array for the object", body: `[]`, kind: apperr.Invalid, code: "wrong_type", message: "must be a JSON object"},
		{name: "trailing object", body: `{"name":"Ada"} {"name":"Bob"}`, kind: apperr.Invalid, code: "malformed_json", message: "more than one"},
		{name: "trailing garbage", body: `{"name":"Ada"} ]`, kind: apperr.Invalid, code: "malformed_json", message: "more than one"},
		{name: "empty", body: ``, kind: apperr.Invalid, code: "malformed_json", message: "empty"},
		{name: "cut short", body: `{"name":"Ad`, kind: apperr.Invalid, code: "malformed_json", message: "ends too early"},
		{name: "syntax", body: `{"name" "Ada"}`, kind: apperr.Invalid, code: "malformed_json", message: "at byte 9"},
		{name: "too large", body: `{"name":"` + strings.Repeat("a", MaxJSONBody) + `"}`, kind: apperr.TooLarge, code: "body_too_large"},
		{name: "form", ct: "application/x-www-form-urlencoded", body: `name=Ada`, kind: apperr.Invalid, code: "content_type"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("POST", "/", strings.NewReader(tc.body))
			if tc.ct != "" {
				r.Header.Set("Content-Type", tc.ct)
			}
			var v decoded
			err := DecodeJSON(httptest.NewRecorder(), r, &v)
			if tc.code == "" {
				if err != nil || v.Name != "Ada" {
					t.Fatalf("DecodeJSON = %v, name %q; want Ada", err, v.Name)
				}
				return
			}
			e, ok := apperr.As(err)
			if !ok {
				t.Fatalf("DecodeJSON = %v, want an apperr.Error", err)
			}
			if e.Kind != tc.kind || e.Code != tc.code || e.Field != tc.field || !strings.Contains(e.Message, tc.message) {
				t.Errorf("DecodeJSON = %+v; want kind %s code %s field %q message with %q", e, tc.kind, tc.code, tc.field, tc.message)
			}
		})
	}
}

func TestStatus(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want int
	}{
		{apperr.Field("x", "bad", "bad"), http.StatusBadRequest},
		{apperr.New(apperr.Unauthorized, "c", "m"), http.StatusUnauthorized},
		{apperr.New(apperr.Forbidden, "c", "m"), http.StatusForbidden},
		{apperr.New(apperr.NotFound, "c", "m"), http.StatusNotFound},
		{apperr.New(apperr.Conflict, "c", "m"), http.StatusConflict},
		{apperr.New(apperr.TooLarge, "c", "m"), http.StatusRequestEntityTooLarge},
		{ErrRateLimited, http.StatusTooManyRequests},
		{fmt.Errorf("wrapped: %w", apperr.New(apperr.NotFound, "c", "m")), http.StatusNotFound},
		{errors.New("disk on fire"), http.StatusInternalServerError},
		{apperr.New("", "c", "m"), http.StatusInternalServerError},
	} {
		if got := Status(tc.err); got != tc.want {
			t.Errorf("Status(%v) = %d, want %d", tc.err, got, tc.want)
		}
	}
}

func TestWriteError(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	w := httptest.NewRecorder()
	WriteError(log, w, httptest.NewRequest("POST", "/login", nil), ErrRateLimited)
	if w.Code != http.StatusTooManyRequests || w.Header().Get("Retry-After") != "60" {
		t.Errorf("rate limited: %d, Retry-After %q", w.Code, w.Header().Get("Retry-After"))
	}
	w = httptest.NewRecorder()
	WriteError(log, w, httptest.NewRequest("POST", "/x", nil), apperr.Field("email", "email_invalid", "is not valid"))
	var body ErrorBody
	if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
		t.Fatal(err)
	}
	if w.Code != 400 || body.Error != (ErrorDetail{Code: "email_invalid", Message: "is not valid", Field: "email"}) ||
		w.Header().Get("Retry-After") != "" || w.Header().Get("Content-Type") != "application/json; charset=utf-8" ||
		w.Header().Get("Cache-Control") != "no-store" {
		t.Errorf("invalid field: %d %+v %v", w.Code, body, w.Header())
	}
}

func TestClientIP(t *testing.T) {
	for _, tc := range []struct {
		name, remote, xff string
		trust             bool
		want              string
	}{
		{"connection", "192.0.2.1:5555", "", false, "192.0.2.1"},
		{"header ignored without a trusted proxy", "192.0.2.1:5555", "203.0.113.9", false, "192.0.2.1"},
		{"the proxy's entry", "10.0.0.1:5555", "203.0.113.9", true, "203.0.113.9"},
		{"the last entry, the one the proxy added", "10.0.0.1:5555", "198.51.100.7, 203.0.113.9", true, "203.0.113.9"},
		{"a forged last entry falls back", "10.0.0.1:5555", "203.0.113.9, not-an-ip", true, "10.0.0.1"},
		{"IPv6 normalized", "10.0.0.1:5555", "2001:DB8::0001", true, "2001:db8::1"},
		{"no header behind the proxy", "[2001:db8::2]:443", "", true, "2001:db8::2"},
		{"no port", "192.0.2.1", "", false, "192.0.2.1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/", nil)
			r.RemoteAddr = tc.remote
			if tc.xff != "" {
				r.Header.Set("X-Forwarded-For", tc.xff)
			}
			r.Header.Set("User-Agent", "Test/1")
			if got := ClientIP(r, tc.trust); got != tc.want {
				t.Errorf("ClientIP = %q, want %q", got, tc.want)
			}
			if m := Meta(r, tc.trust); m.IP != tc.want || m.UserAgent != "Test/1" {
				t.Errorf("Meta = %+v", m)
			}
		})
	}
}

func TestToken(t *testing.T) {
	for _, tc := range []struct {
		name, auth, cookie, want string
	}{
		{"bearer", "Bearer abc ", "", "abc"},
		{"bearer before cookie", "Bearer abc", "fromcookie", "abc"},
		{"another scheme is no token, whatever the cookie", "Basic dXNlcjpwdw==", "fromcookie", ""},
		{"cookie", "", "fromcookie", "fromcookie"},
		{"nothing", "", "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/", nil)
			if tc.auth != "" {
				r.Header.Set("Authorization", tc.auth)
			}
			if tc.cookie != "" {
				r.AddCookie(&http.Cookie{Name: CookieName, Value: tc.cookie})
			}
			if got := Token(r); got != tc.want {
				t.Errorf("Token = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestSessionCookie(t *testing.T) {
	for _, secure := range []bool{false, true} {
		w := httptest.NewRecorder()
		SetSessionCookie(w, "tok", secure)
		cs := w.Result().Cookies()
		if len(cs) != 1 {
			t.Fatalf("cookies = %v", cs)
		}
		c := cs[0]
		if c.Name != CookieName || c.Value != "tok" || c.Path != "/" || !c.HttpOnly || c.Secure != secure ||
			c.SameSite != http.SameSiteLaxMode || c.MaxAge != 0 || !c.Expires.IsZero() {
			t.Errorf("secure=%v: cookie %+v; want HttpOnly, SameSite=Lax, a session cookie, Secure as asked", secure, c)
		}
		w = httptest.NewRecorder()
		ClearSessionCookie(w, secure)
		c = w.Result().Cookies()[0]
		if c.Name != CookieName || c.Value != "" || c.MaxAge >= 0 || !c.HttpOnly || c.Secure != secure {
			t.Errorf("secure=%v: clearing cookie %+v", secure, c)
		}
	}
}

// fakeClock is a clock that moves only when told.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func TestMiddleware(t *testing.T) {
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	mux := http.NewServeMux()
	mux.HandleFunc("/ok", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	mux.HandleFunc("/panic", func(http.ResponseWriter, *http.Request) { panic("boom") })
	for _, hsts := range []bool{false, true} {
		h := Middleware(mux, log, hsts)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest("GET", "/ok", nil))
		for _, sh := range securityHeaders {
			if got := w.Header().Get(sh.name); got != sh.value[0] {
				t.Errorf("%s = %q, want %q", sh.name, got, sh.value[0])
			}
		}
		if got := w.Header().Get("Strict-Transport-Security") != ""; got != hsts {
			t.Errorf("hsts=%v: Strict-Transport-Security set %v", hsts, got)
		}
	}
	h := Middleware(mux, log, false)
	cross := httptest.NewRequest("POST", "/ok", strings.NewReader("{}"))
	cross.Header.Set("Sec-Fetch-Site", "cross-site")
	w := httptest.NewRecorder()
	h.ServeHTTP(w, cross)
	if w.Code != http.StatusForbidden {
		t.Errorf("cross-site POST: %d, want 403", w.Code)
	}
	same := httptest.NewRequest("POST", "/ok", strings.NewReader("{}"))
	same.Header.Set("Sec-Fetch-Site", "same-origin")
	w = httptest.NewRecorder()
	h.ServeHTTP(w, same)
	if w.Code != http.StatusNoContent {
		t.Errorf("same-origin POST: %d, want 204", w.Code)
	}
	w = httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("GET", "/panic", nil))
	if w.Code != http.StatusInternalServerError || !strings.Contains(logs.String(), "panic_type=string") || strings.Contains(logs.String(), "boom") {
		t.Errorf("panic: %d, logged %q", w.Code, logs.String())
	}
}

// Two readers of the same body must not see different requests: a field given twice,
// a field in another case than its own (Go's decoder would take it) and data after
// the object are refused, each naming the field where there is one, whatever the depth.
func TestDecodeJSONStrict(t *testing.T) {
	type choices struct {
		Choices map[string]bool `json:"choices"`
	}
	for _, tc := range []struct {
		name, body string
		into       func() any
		code       string
		field      string
		message    string
	}{
		{name: "twice", body: `{"name":"Ada","name":"Bob"}`, code: "duplicate_field", field: "name", message: "twice"},
		{name: "twice, nested", body: `{"inner":{"flag":true,"flag":false}}`, code: "duplicate_field", field: "inner.flag"},
		{name: "twice in a map", body: `{"choices":{"newsletter":true,"newsletter":false}}`, into: func() any { return new(choices) },
			code: "duplicate_field", field: "choices.newsletter"},
		{name: "case variant", body: `{"Name":"Ada"}`, code: "unknown_field", field: "Name", message: `"name"`},
		{name: "case variant beside the field", body: `{"name":"Ada","NAME":"Bob"}`, code: "unknown_field", field: "NAME"},
		{name: "case variant, nested", body: `{"inner":{"Flag":true}}`, code: "unknown_field", field: "inner.Flag", message: `"inner.flag"`},
		{name: "kelvin sign", body: `{"\u212aind":1}`, into: func() any {
			return new(struct {
				Kind int `json:"kind"`
			})
		}, code: "unknown_field", field: "\u212aind"},
		{name: "trailing object", body: `{"name":"Ada"}{"name":"Bob"}`, code: "malformed_json", message: "more than one"},
		{name: "trailing text", body: `{"name":"Ada"} x`, code: "malformed_json"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("POST", "/", strings.NewReader(tc.body))
			var v any = new(decoded)
			if tc.into != nil {
				v = tc.into()
			}
			err := DecodeJSON(httptest.NewRecorder(), r, v)
			e, ok := apperr.As(err)
			if !ok {
				t.Fatalf("DecodeJSON = %v, want an apperr.Error", err)
			}
			if e.Kind != apperr.Invalid || e.Code != tc.code || e.Field != tc.field || !strings.Contains(e.Message, tc.message) {
				t.Errorf("DecodeJSON = %+v; want invalid, code %s field %q message with %q", e, tc.code, tc.field, tc.message)
			}
		})
	}
	// The same members once each, in their own case, are taken; an unknown one is still
	// refused as before.
	var v decoded
	r := httptest.NewRequest("POST", "/", strings.NewReader(`{"name":"Ada","inner":{"flag":true},"tags":["a","a"]}`))
	if err := DecodeJSON(httptest.NewRecorder(), r, &v); err != nil || v.Name != "Ada" || !v.Inner.Flag {
		t.Errorf("DecodeJSON = %v, %+v", err, v)
	}
}
