// Package server holds what every HTTP route shares: the middleware (security
// headers, cross-origin protection, panic recovery, request logging without personal
// data), authentication from a bearer token or the session cookie, rate limits,
// JSON decoding that names the field at fault, and the one mapping from error kinds to
// HTTP status.
package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"steward/internal/account"
	"steward/internal/apperr"
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
	log.ErrorContext(r.Context(), "internal error", "method", r.Method, "path", r.URL.Path, "err", err)
	return ErrorDetail{Code: "internal", Message: "something went wrong on our side; please try again"}
}

// WriteError answers with the API error shape.
func WriteError(log *slog.Logger, w http.ResponseWriter, r *http.Request, err error) {
	if apperr.KindOf(err) == apperr.RateLimited {
		w.Header().Set("Retry-After", "60")
	}
	WriteJSON(w, Status(err), ErrorBody{Error: Public(log, r, err)})
}

// WriteJSON answers with v as JSON.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v) // the status is sent: a failed write is a client gone, nothing to answer
}

// MaxJSONBody is the largest JSON request body accepted.
const MaxJSONBody = 64 << 10

// DecodeJSON reads one JSON object into v, refusing unknown fields, wrong types,
// trailing data and bodies over MaxJSONBody, each with an error naming the field.
func DecodeJSON(w http.ResponseWriter, r *http.Request, v any) error {
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(ct, "application/json") {
		return apperr.New(apperr.Invalid, "content_type", "send the body as application/json")
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, MaxJSONBody))
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
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

type sessionKey struct{}

// WithSession stores the authenticated session in the request context.
func WithSession(ctx context.Context, s account.Session) context.Context {
	return context.WithValue(ctx, sessionKey{}, s)
}

// SessionFrom returns the session stored by WithSession.
func SessionFrom(ctx context.Context) (account.Session, bool) {
	s, ok := ctx.Value(sessionKey{}).(account.Session)
	return s, ok
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

// Middleware wraps the whole site: security headers on every answer, cross-origin
// protection for every state-changing request, and recovery from panics.
func Middleware(h http.Handler, log *slog.Logger, hsts bool) http.Handler {
	cop := http.NewCrossOriginProtection()
	protected := cop.Handler(h)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("X-Frame-Options", "DENY")
		hd.Set("Referrer-Policy", "no-referrer")
		hd.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'")
		hd.Set("Cross-Origin-Opener-Policy", "same-origin")
		hd.Set("Cross-Origin-Resource-Policy", "same-origin")
		hd.Set("Permissions-Policy", "camera=(), microphone=(), geolocation=(), interest-cohort=()")
		if hsts {
			hd.Set("Strict-Transport-Security", "max-age=63072000; includeSubDomains")
		}
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				log.Error("panic", "method", r.Method, "path", r.URL.Path, "panic", fmt.Sprint(v))
				http.Error(w, "internal error", http.StatusInternalServerError)
			}
		}()
		protected.ServeHTTP(w, r)
	})
}

// Timeouts for the HTTP server.
const (
	ReadHeaderTimeout = 10 * time.Second
	IdleTimeout       = 120 * time.Second
)
