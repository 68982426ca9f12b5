package server

import (
	"bytes"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// A handler that panics is answered 500, and the log names its route (the pattern),
// never the path with its ids.
func TestPanicLoggedWithRoute(t *testing.T) {
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v1/things/{id}", func(http.ResponseWriter, *http.Request) { panic("boom") })
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
	for _, want := range []string{"level=ERROR", `msg=panic`, `route="GET /api/v1/things/{id}"`, "panic=boom", "method=GET"} {
		if !strings.Contains(got, want) {
			t.Errorf("log lacks %s:\n%s", want, got)
		}
	}
	if strings.Contains(got, "id-4711") {
		t.Errorf("log holds the id of the path:\n%s", got)
	}
}
