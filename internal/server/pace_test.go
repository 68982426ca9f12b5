package server

import (
	"bufio"
	"bytes"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"
)

type bodyResult struct {
	n   int
	err error
	ctx error // the request context's error after the handler waited
}

// paced serves the middleware with a short pace, around a handler that reads the
// whole body, waits wait, and reports.
func paced(t *testing.T, wait time.Duration) (*httptest.Server, chan bodyResult) {
	t.Helper()
	got := make(chan bodyResult, 1)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if wait > 0 && err == nil {
			<-time.After(wait)
		}
		got <- bodyResult{n: len(b), err: err, ctx: r.Context().Err()}
		w.WriteHeader(http.StatusNoContent)
	})
	srv := httptest.NewServer(middleware(h, slog.New(slog.DiscardHandler), false, pace{grace: 300 * time.Millisecond, rate: 1000}))
	t.Cleanup(srv.Close)
	return srv, got
}

func post(t *testing.T, srv *httptest.Server, size int) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := io.WriteString(c, "POST / HTTP/1.1\r\nHost: steward.test\r\nContent-Type: application/json\r\nContent-Length: "+
		strconv.Itoa(size)+"\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	return c
}

// A body dripped a byte at a time is cut off once it falls behind the pace.
func TestDrippedBodyIsCutOff(t *testing.T) {
	srv, got := paced(t, 0)
	c := post(t, srv, 100)
	start := time.Now()
	ticker := time.NewTicker(100 * time.Millisecond)
	defer ticker.Stop()
	for {
		select {
		case r := <-got:
			if r.err == nil || r.n >= 100 {
				t.Fatalf("the dripped body was read whole: %d bytes, %v", r.n, r.err)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Fatalf("cut off after %v", d)
			}
			return
		case <-ticker.C:
			if _, err := c.Write([]byte("x")); err != nil {
				t.Fatalf("the connection closed before the handler saw an error: %v", err)
			}
			if time.Since(start) > 10*time.Second {
				t.Fatal("the dripped body is still being read after 10 s")
			}
		}
	}
}

// A body that keeps flowing at the pace is read whole, however long it takes, and the
// handler's work after it is not cut short by the deadline the body had.
func TestFlowingBodyIsRead(t *testing.T) {
	srv, got := paced(t, 600*time.Millisecond)
	const size = 40 << 10
	c := post(t, srv, size)
	chunk := bytes.Repeat([]byte("y"), 2<<10)
	for sent := 0; sent < size; sent += len(chunk) {
		// 2 KiB every 50 ms: 40 KB/s against a pace of 1,000 B/s, for a second, past
		// the grace of 300 ms.
		if _, err := c.Write(chunk); err != nil {
			t.Fatal(err)
		}
		<-time.After(50 * time.Millisecond)
	}
	r := <-got
	if r.err != nil || r.n != size {
		t.Fatalf("a flowing body: %d bytes, %v", r.n, r.err)
	}
	if r.ctx != nil {
		t.Fatalf("the request's context ended while the handler worked after the body: %v", r.ctx)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil || resp.StatusCode != http.StatusNoContent {
		t.Fatalf("answer: %v, %v", resp, err)
	}
}

// The deadline a body had goes once it is in (net/http clears it as it starts reading
// in the background): a deadline passing there would end the request's context
// mid-work.
func TestWorkAfterBodyIsNotCut(t *testing.T) {
	srv, got := paced(t, 700*time.Millisecond) // past the 300 ms the small body earns
	c := post(t, srv, 10)
	if _, err := c.Write([]byte("0123456789")); err != nil {
		t.Fatal(err)
	}
	r := <-got
	if r.err != nil || r.n != 10 {
		t.Fatalf("body: %d bytes, %v", r.n, r.err)
	}
	if r.ctx != nil {
		t.Fatalf("the request's context ended while the handler worked after the body: %v", r.ctx)
	}
}

// The pace counts from the handler's first read: a handler that waits before reading
// (its turn on a busy node) does not spend the client's grace.
func TestPaceStartsAtFirstRead(t *testing.T) {
	got := make(chan bodyResult, 1)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-time.After(500 * time.Millisecond) // past the 300 ms grace before reading
		b, err := io.ReadAll(r.Body)
		got <- bodyResult{n: len(b), err: err}
		w.WriteHeader(http.StatusNoContent)
	})
	srv := httptest.NewServer(middleware(h, slog.New(slog.DiscardHandler), false, pace{grace: 300 * time.Millisecond, rate: 1000}))
	t.Cleanup(srv.Close)
	c := post(t, srv, 10)
	if _, err := c.Write([]byte("0123456789")); err != nil {
		t.Fatal(err)
	}
	if r := <-got; r.err != nil || r.n != 10 {
		t.Fatalf("a body sent at once, read late: %d bytes, %v", r.n, r.err)
	}
}
