package server

import (
	"net/http"
	"time"

	"steward/internal/analytics"
)

// RequestLog writes a line of the request log (analytics.Service.LogRequest) for every
// request h answers: its time, method, path without the query, status, bytes, duration,
// the browser's family and the client's network. Never the session, the member, the
// query or the full address. The line goes to the analytics buffer, which never blocks.
// A page beacon answered without error (BeaconPath) is the one exception: what it
// brought is in the events, or was refused by the visitor's choice, and a line of the
// request log beside each would double the writes of the busiest route; a beacon
// refused (4xx, 5xx) is logged, as floods and spoofed sites should be seen.
func RequestLog(h http.Handler, svc *analytics.Service, trustProxy bool, now func() time.Time) http.Handler {
	if svc == nil {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		at := now()
		rec := &recorder{ResponseWriter: w, status: http.StatusOK}
		defer func() {
			if rec.status < 400 && BeaconPath(r.URL.Path) {
				return
			}
			svc.LogRequest(analytics.Request{At: at, Method: r.Method, Path: r.URL.Path, Status: rec.status, Bytes: rec.bytes,
				Duration: time.Since(start), IP: ClientIP(r, trustProxy), UserAgent: r.UserAgent()})
		}()
		h.ServeHTTP(rec, r)
	})
}

// BeaconPath reports whether path is one of the page beacons' (GET /b.gif, POST
// /api/v1/events).
func BeaconPath(path string) bool { return path == "/b.gif" || path == "/api/v1/events" }

// recorder notes the status and the size of an answer.
type recorder struct {
	http.ResponseWriter
	status int
	bytes  int64
	wrote  bool
}

func (w *recorder) WriteHeader(code int) {
	if !w.wrote && code >= 200 {
		w.status, w.wrote = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *recorder) Write(b []byte) (int, error) {
	w.wrote = true
	n, err := w.ResponseWriter.Write(b)
	w.bytes += int64(n)
	return n, err
}

// Unwrap lets http.ResponseController reach the connection (deadlines, flushes).
func (w *recorder) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Flush passes a flush on (streamed exports).
func (w *recorder) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}
