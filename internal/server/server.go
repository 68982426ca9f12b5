// Package server holds what every HTTP route shares: the middleware (security
// headers, cross-origin protection, panic recovery, request logging without personal
// data), authentication from a bearer token or the session cookie, rate limits,
// JSON decoding that names the field at fault, and the one mapping from error kinds to
// HTTP status.
package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"time"

	"steward/internal/account"
	"steward/internal/apperr"
	"steward/internal/strictjson"
)

// CookieName is the session cookie.
const CookieName = "steward_session"

// Status maps an error to its HTTP status: the one place that does.
func Status(err error) int {
	switch apperr.KindOf(err) {
	case apperr.Invalid:
		return http.StatusBadRequest
	case apperr.Unauthorized:
		return http.StatusUnauthorized
	case apperr.Forbidden:
		return http.StatusForbidden
	case apperr.NotFound:
		return http.StatusNotFound
	case apperr.Conflict:
		return http.StatusConflict
	case apperr.TooLarge:
		return http.StatusRequestEntityTooLarge
	case apperr.RateLimited:
		return http.StatusTooManyRequests
	case apperr.Unavailable:
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

// ErrorBody is the JSON error shape of the API.
type ErrorBody struct {
	Error ErrorDetail `json:"error"`
}

// ErrorDetail is the inside of ErrorBody.
type ErrorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Field   string `json:"field,omitempty"`
}

// Public returns what a user may see of err: its code, message and field, or a
// generic message for an internal error (which is logged instead).
func Public(log *slog.Logger, r *http.Request, err error) ErrorDetail {
	if e, ok := apperr.As(err); ok {
		return ErrorDetail{Code: e.Code, Message: e.Message, Field: e.Field}
	}
	if r.Context().Err() != nil && errors.Is(err, r.Context().Err()) {
		// The client went away (or its deadline passed) mid-request: nothing of ours
		// failed, and no one reads the answer.
		log.DebugContext(r.Context(), "request ended by the client", "method", r.Method, "path", r.URL.Path)
	} else {
		log.ErrorContext(r.Context(), "internal error", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	return ErrorDetail{Code: "internal", Message: "something went wrong on our side; please try again"}
}

// WriteError answers with the API error shape.
func WriteError(log *slog.Logger, w http.ResponseWriter, r *http.Request, err error) {
	switch apperr.KindOf(err) {
	case apperr.RateLimited:
		w.Header().Set("Retry-After", "60")
	case apperr.Unavailable:
		w.Header().Set("Retry-After", "1")
	}
	WriteJSON(w, Status(err), ErrorBody{Error: Public(log, r, err)})
}

// WriteJSON answers with v as JSON.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	buf := jsonBufs.Get().(*bytes.Buffer)
	defer func() {
		if buf.Cap() <= 64<<10 {
			buf.Reset()
			jsonBufs.Put(buf)
		}
	}()
	if a, ok := v.(JSONAppender); ok {
		buf.Write(append(a.AppendJSON(buf.AvailableBuffer()), '\n'))
	} else if err := json.NewEncoder(buf).Encode(v); err != nil {
		// A value that does not encode is a bug of the caller, never the client's.
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	hd := w.Header()
	hd["Content-Type"] = jsonContentType
	hd["Cache-Control"] = noStore
	hd["Content-Length"] = []string{strconv.Itoa(buf.Len())}
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes()) // a client that went away is not an error of ours
}

var (
	jsonBufs        = sync.Pool{New: func() any { return new(bytes.Buffer) }}
	jsonContentType = []string{"application/json; charset=utf-8"}
	noStore         = []string{"no-store"}
)

// MaxJSONBody is the largest JSON request body accepted.
const MaxJSONBody = 64 << 10

// DecodeJSON reads one JSON object into v, refusing unknown fields, a field given
// twice or in another case than its own ("Email" for "email": Go's decoder would take
// either), wrong types, trailing data and bodies over MaxJSONBody, each with an error
// naming the field.
func DecodeJSON(w http.ResponseWriter, r *http.Request, v any) error {
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(ct, "application/json") {
		return apperr.New(apperr.Invalid, "content_type", "send the body as application/json")
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxJSONBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return apperr.New(apperr.TooLarge, "body_too_large", fmt.Sprintf("the body is over %d bytes", MaxJSONBody))
		}
		// A body cut off (the client went away, or its pace ran out) is input the
		// request did not complete: invalid, as a body cut short always was.
		return apperr.New(apperr.Invalid, "malformed_json", "the body could not be read to its end")
	}
	// What is not JSON at all is left to the decoder, whose errors say where.
	var strict *strictjson.Error
	if err := strictjson.Check(body, v); errors.As(err, &strict) {
		switch strict.Problem {
		case strictjson.Duplicate:
			return apperr.Field(strict.Member, "duplicate_field", "is given twice")
		case strictjson.CaseVariant:
			return apperr.Field(strict.Member, "unknown_field", fmt.Sprintf("is not a field of this request (the field is %q, in that case)", strict.Field))
		default:
			return apperr.New(apperr.Invalid, "malformed_json", "the body holds more than one JSON value")
		}
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	err = dec.Decode(v)
	if err == nil {
		if dec.More() {
			return apperr.New(apperr.Invalid, "malformed_json", "the body holds more than one JSON value")
		}
		if _, err := dec.Token(); err != io.EOF {
			return apperr.New(apperr.Invalid, "malformed_json", "the body holds more than one JSON value")
		}
		return nil
	}
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		return apperr.New(apperr.TooLarge, "body_too_large", fmt.Sprintf("the body is over %d bytes", MaxJSONBody))
	case errors.As(err, &syn):
		return apperr.New(apperr.Invalid, "malformed_json", fmt.Sprintf("malformed JSON at byte %d", syn.Offset))
	case errors.As(err, &typ):
		return apperr.Field(typ.Field, "wrong_type", fmt.Sprintf("must be a JSON %s", jsonKind(typ.Type.Kind().String())))
	case errors.Is(err, io.EOF):
		return apperr.New(apperr.Invalid, "malformed_json", "the body is empty; send a JSON object")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return apperr.New(apperr.Invalid, "malformed_json", "the JSON ends too early")
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		name := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		return apperr.Field(name, "unknown_field", "is not a field of this request")
	}
	return apperr.New(apperr.Invalid, "malformed_json", "the body is not valid JSON")
}

func jsonKind(k string) string {
	switch k {
	case "string":
		return "string"
	case "bool":
		return "boolean"
	case "map", "struct":
		return "object"
	case "slice", "array":
		return "array"
	}
	return "number"
}

// ClientIP returns the client's address: the connection's, or, behind a proxy the
// operator trusts, the last address the proxy added to X-Forwarded-For.
func ClientIP(r *http.Request, trustProxy bool) string {
	if trustProxy {
		if xff := r.Header.Get("X-Forwarded-For"); xff != "" {
			parts := strings.Split(xff, ",")
			if ip := net.ParseIP(strings.TrimSpace(parts[len(parts)-1])); ip != nil {
				return ip.String()
			}
		}
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// Meta describes the request for the account service.
func Meta(r *http.Request, trustProxy bool) account.Meta {
	return account.Meta{IP: ClientIP(r, trustProxy), UserAgent: r.UserAgent()}
}

// Token returns the session token of a request: a bearer token, else the cookie.
func Token(r *http.Request) string {
	if h := r.Header.Get("Authorization"); h != "" {
		if t, ok := strings.CutPrefix(h, "Bearer "); ok {
			return strings.TrimSpace(t)
		}
		return ""
	}
	if c, err := r.Cookie(CookieName); err == nil {
		return c.Value
	}
	return ""
}

// SetSessionCookie sets the session cookie: HttpOnly, SameSite=Lax, Secure when the
// site is served over https, and without an expiry so that the browser drops it when
// it closes (the server ends the session after its lifetime either way).
func SetSessionCookie(w http.ResponseWriter, token string, secure bool) {
	http.SetCookie(w, &http.Cookie{Name: CookieName, Value: token, Path: "/", HttpOnly: true, Secure: secure, SameSite: http.SameSiteLaxMode})
}

// ClearSessionCookie removes the session cookie.
func ClearSessionCookie(w http.ResponseWriter, secure bool) {
	http.SetCookie(w, &http.Cookie{Name: CookieName, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, Secure: secure, SameSite: http.SameSiteLaxMode})
}

type header struct {
	name  string
	value []string
}

// securityHeaders go on every response. Each value is a slice of capacity one: a
// handler that Adds to one of them gets a new array, never changes the shared one.
var securityHeaders = []header{
	{"X-Content-Type-Options", []string{"nosniff"}},
	{"X-Frame-Options", []string{"DENY"}},
	{"Referrer-Policy", []string{"no-referrer"}},
	{"Content-Security-Policy", []string{"default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"}},
	{"Cross-Origin-Opener-Policy", []string{"same-origin"}},
	{"Cross-Origin-Resource-Policy", []string{"same-origin"}},
	{"Permissions-Policy", []string{"camera=(), microphone=(), geolocation=(), interest-cohort=()"}},
}

// beaconHeaders go on the page beacons' answers (BeaconPath) instead: a 204 or a
// 1x1 GIF is never a document that runs, frames or opens anything, so the headers that
// govern documents (framing, openers, permissions, the page's policy) would only cost
// the busiest route time on every answer, on the server and in the browser. What
// stays: no sniffing, no referrer, and a policy that allows nothing and no framing.
var beaconHeaders = []header{
	{"X-Content-Type-Options", []string{"nosniff"}},
	{"Referrer-Policy", []string{"no-referrer"}},
	{"Content-Security-Policy", []string{"default-src 'none'; frame-ancestors 'none'"}},
}

// Middleware wraps the whole site: security headers on every answer, cross-origin
// protection for every state-changing request, and recovery from panics.
func Middleware(h http.Handler, log *slog.Logger, hsts bool) http.Handler {
	return middleware(h, log, hsts, defaultPace)
}

// pace is how fast a request body must arrive: it may take grace, plus one second for
// every rate bytes received. A client that drips a body (a byte every ten seconds
// would hold a connection and a handler forever) is cut off once it falls behind;
// an upload that keeps flowing at rate or faster is never cut.
type pace struct {
	grace time.Duration
	rate  int64 // bytes a second
}

// defaultPace lets a body take 10 s plus a second for every 16 KiB: a 1 GiB upload
// must arrive at 16 KiB/s on average.
var defaultPace = pace{grace: 10 * time.Second, rate: 16 << 10}

// pacedBody renews the connection's read deadline before every read, to the time the
// bytes received so far earn.
type pacedBody struct {
	io.ReadCloser
	rc    *http.ResponseController
	pace  pace
	start time.Time
	n     int64
}

func (b *pacedBody) Read(p []byte) (int, error) {
	if b.start.IsZero() {
		// The clock starts when the handler first reads, not when the request came:
		// a handler that waits its turn (a busy node) must not cost the client its
		// grace.
		b.start = time.Now()
	}
	earned := b.pace.grace + time.Duration(b.n)*time.Second/time.Duration(b.pace.rate)
	// A writer that cannot take deadlines (a test's recorder) just reads.
	_ = b.rc.SetReadDeadline(b.start.Add(earned))
	n, err := b.ReadCloser.Read(p)
	b.n += int64(n)
	// Once the whole body is in, net/http clears the deadline as it starts reading in
	// the background (a test holds it to that: a deadline passing there would end the
	// request's context while the handler works).
	return n, err
}

func middleware(h http.Handler, log *slog.Logger, hsts bool, pc pace) http.Handler {
	cop := http.NewCrossOriginProtection()
	// Page events come from the operator's other sites (navigator.sendBeacon): the
	// handler reads no cookie and acts for no one, so a cross-site POST forges nothing.
	cop.AddInsecureBypassPattern("POST /api/v1/events")
	protected := cop.Handler(h)
	headers, beacon := securityHeaders, beaconHeaders
	if hsts {
		sts := header{"Strict-Transport-Security", []string{"max-age=63072000; includeSubDomains"}}
		headers = append(headers[:len(headers):len(headers)], sts)
		beacon = append(beacon[:len(beacon):len(beacon)], sts)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hs := headers
		if BeaconPath(r.URL.Path) {
			hs = beacon
		}
		for _, h := range hs {
			// The names are canonical and the value slices are never appended to by
			// net/http: every response shares them, with no canonicalizing per request.
			hd[h.name] = h.value
		}
		if r.Body != nil && r.Body != http.NoBody {
			r.Body = &pacedBody{ReadCloser: r.Body, rc: http.NewResponseController(w), pace: pc}
		}
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				// The route (the ServeMux pattern, set on r as it matched) says which
				// handler failed without the ids a path holds.
				log.Error("panic", append([]any{"method", r.Method, "route", r.Pattern}, panicAttrs(v)...)...)
				http.Error(w, "internal error", http.StatusInternalServerError)
			}
		}()
		protected.ServeHTTP(w, r)
	})
}

// panicAttrs describes a recovered panic value for the log without its text, which
// may be built from member data (a name formatted into a message, an error holding an
// address): its type and the stack, whose frames print argument words in hex, not the
// values they point to. A runtime error (an index out of range, a nil map) is the
// runtime's own words, and is logged whole.
func panicAttrs(v any) []any {
	attrs := []any{"panic_type", fmt.Sprintf("%T", v)}
	if re, ok := v.(runtime.Error); ok {
		attrs = append(attrs, "panic", re.Error())
	}
	return append(attrs, "stack", string(debug.Stack()))
}

// Timeouts for the HTTP server.
const (
	ReadHeaderTimeout = 10 * time.Second
	IdleTimeout       = 120 * time.Second
)
