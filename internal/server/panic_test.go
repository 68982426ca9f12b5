package server

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// A handler that panics is answered 500, and the log names its route (the pattern),
// never the path with its ids, and the panic value's type and stack, never its text,
// which may be built from member data. A runtime error is the runtime's own words.
func TestPanicLoggedWithRoute(t *testing.T) {
	const secret = "ada.lovelace@example.org"
	for _, tc := range []struct {
		name  string
		panic func()
		want  []string
	}{
		{"string", func() { panic("no account for " + secret) }, []string{"panic_type=string"}},
		{"error", func() { panic(fmt.Errorf("sealing %s: %w", secret, errors.New("no key"))) }, []string{"panic_type=*fmt.wrapError"}},
		{"stringer", func() { panic(member{secret}) }, []string{"panic_type=server.member"}},
		{"runtime error", func() {
			var p *member
			_ = p.email + secret
		}, []string{"panic_type=runtime.errorString", `panic="runtime error: invalid memory address or nil pointer dereference"`}},
		{"index", func() {
			s := []string{secret}
			i := len(secret)
			_ = s[i]
		}, []string{"panic_type=runtime.boundsError", `panic="runtime error: index out of range [24] with length 1"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var logs bytes.Buffer
			log := slog.New(slog.NewTextHandler(&logs, nil))
			mux := http.NewServeMux()
			mux.HandleFunc("GET /api/v1/things/{id}", func(http.ResponseWriter, *http.Request) { tc.panic() })
			srv := httptest.NewServer(Middleware(mux, log, false))
			defer srv.Close()

			resp, err := http.Get(srv.URL + "/api/v1/things/id-4711")
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusInternalServerError {
				t.Errorf("status = %d, want 500", resp.StatusCode)
			}
			got := logs.String()
			for _, want := range append([]string{"level=ERROR", `msg=panic`, `route="GET /api/v1/things/{id}"`, "method=GET",
				"stack=", "TestPanicLoggedWithRoute"}, tc.want...) {
				if !strings.Contains(got, want) {
					t.Errorf("log lacks %s:\n%s", want, got)
				}
			}
			for _, never := range []string{"id-4711", secret, "ada.lovelace"} {
				if strings.Contains(got, never) {
					t.Errorf("log holds %q:\n%s", never, got)
				}
			}
		})
	}
}

type member struct{ email string }

func (m member) String() string { return "member " + m.email }
