package inbound

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"net/smtp"
	"net/textproto"
	"strings"
	"sync"
	"testing"
	"time"

	"steward/internal/inbound/fakedns"
)

const domain = "steward.localhost"

// recorder is a Handler that remembers its calls and fails with err.
type recorder struct {
	mu   sync.Mutex
	reqs []Request
	err  error
}

func (r *recorder) handle(_ context.Context, req Request) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.reqs = append(r.reqs, req)
	return r.err
}

func (r *recorder) calls() []Request {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Request(nil), r.reqs...)
}

// start serves a new Server on 127.0.0.1:0 and checks at the end of the test
// that Close makes Serve return nil.
func start(t *testing.T, cfg Config, h Handler) (*Server, string) {
	t.Helper()
	if cfg.Domain == "" {
		cfg.Domain = domain
	}
	if cfg.Resolver == nil {
		cfg.Resolver = fakedns.New() // never the network
	}
	s, err := New(cfg, h)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(ln) }()
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Serve returned %v, want nil", err)
			}
		case <-time.After(5 * time.Second):
			t.Error("Serve did not return after Close")
		}
	})
	return s, ln.Addr().String()
}

// dial opens an SMTP client from localIP ("" for any) that has said EHLO.
func dial(t *testing.T, addr, localIP string) *smtp.Client {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second}
	if localIP != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(localIP)}
	}
	conn, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	c, err := smtp.NewClient(conn, domain)
	if err != nil {
		t.Fatalf("smtp client: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.Hello("client.example"); err != nil {
		t.Fatalf("EHLO: %v", err)
	}
	return c
}

// send runs one mail transaction and returns the first refusal.
func send(c *smtp.Client, from string, to []string, msg string) error {
	if err := c.Mail(from); err != nil {
		return fmt.Errorf("MAIL: %w", err)
	}
	for _, rcpt := range to {
		if err := c.Rcpt(rcpt); err != nil {
			return fmt.Errorf("RCPT %s: %w", rcpt, err)
		}
	}
	w, err := c.Data()
	if err != nil {
		return fmt.Errorf("DATA: %w", err)
	}
	if _, err := w.Write([]byte(msg)); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("end of data: %w", err)
	}
	return nil
}

// message returns a message with the given header lines and a short body.
func message(headers ...string) string {
	return strings.Join(headers, "\r\n") + "\r\n\r\nPlease unsubscribe me.\r\n"
}

var plain = message("From: Alice Example <Alice@Example.COM>", "To: unsubscribe@"+domain, "Subject: unsubscribe")

// code returns the SMTP reply code in err, or 0.
func code(err error) int {
	var tp *textproto.Error
	if errors.As(err, &tp) {
		return tp.Code
	}
	return 0
}

func TestDeliversUnsubscribeRequest(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		rcpt string
		want Request
	}{
		{"plain address", "unsubscribe@" + domain, Request{
			Sender: "bounces@sender.example", From: "alice@example.com", Token: "",
			Recipient: "unsubscribe@" + domain, RemoteIP: "127.0.0.1",
		}},
		{"token", "unsubscribe+abc123@" + domain, Request{
			Sender: "bounces@sender.example", From: "alice@example.com", Token: "abc123",
			Recipient: "unsubscribe+abc123@" + domain, RemoteIP: "127.0.0.1",
		}},
		{"case-insensitive address keeps the token's case", "UnSubscribe+AbC_1.2=3-x@Steward.LOCALHOST", Request{
			Sender: "bounces@sender.example", From: "alice@example.com", Token: "AbC_1.2=3-x",
			Recipient: "unsubscribe+AbC_1.2=3-x@" + domain, RemoteIP: "127.0.0.1",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rec := &recorder{}
			_, addr := start(t, Config{}, rec.handle)
			c := dial(t, addr, "")
			if err := send(c, "Bounces@Sender.Example", []string{tt.rcpt}, plain); err != nil {
				t.Fatalf("send: %v", err)
			}
			got := rec.calls()
			if len(got) != 1 || got[0] != tt.want {
				t.Errorf("handler calls = %+v, want [%+v]", got, tt.want)
			}
		})
	}
}

func TestMissingFromHeaderStillDelivers(t *testing.T) {
	t.Parallel()
	rec := &recorder{}
	_, addr := start(t, Config{}, rec.handle)
	c := dial(t, addr, "")
	if err := send(c, "a@sender.example", []string{"unsubscribe+t@" + domain}, message("Subject: hi")); err != nil {
		t.Fatalf("send: %v", err)
	}
	got := rec.calls()
	if len(got) != 1 || got[0].From != "" || got[0].Token != "t" {
		t.Errorf("handler calls = %+v, want one with From \"\" and Token t", got)
	}
}

func TestRefusesOtherRecipients(t *testing.T) {
	t.Parallel()
	rcpts := []string{
		"someone@" + domain,
		"unsubscribe@other.example",
		"postmaster@" + domain,
		"unsubscribe@sub." + domain,
		"unsubscribe@" + domain + ".evil.example",
		"unsubscribe+@" + domain,
		"unsubscribe+a/b@" + domain,
		"unsubscribe+a+b@" + domain,
		"unsubscribe+" + strings.Repeat("a", 513) + "@" + domain,
		"unsubscribe-x@" + domain,
	}
	for _, rcpt := range rcpts {
		t.Run(rcpt[:min(len(rcpt), 40)], func(t *testing.T) {
			t.Parallel()
			rec := &recorder{}
			_, addr := start(t, Config{}, rec.handle)
			c := dial(t, addr, "")
			if err := c.Mail("a@sender.example"); err != nil {
				t.Fatalf("MAIL: %v", err)
			}
			err := c.Rcpt(rcpt)
			if got := code(err); got != 550 {
				t.Errorf("RCPT reply = %v (code %d), want 550", err, got)
			}
			if err != nil && !strings.Contains(err.Error(), "no such user here") {
				t.Errorf("RCPT reply = %q, want it to say no such user here", err)
			}
			if _, err := c.Data(); err == nil {
				t.Error("DATA without an accepted recipient succeeded")
			}
			if got := rec.calls(); len(got) != 0 {
				t.Errorf("handler called %d times, want 0", len(got))
			}
		})
	}
}

func TestRefusesTooLargeMessage(t *testing.T) {
	t.Parallel()
	rec := &recorder{}
	_, addr := start(t, Config{MaxMessageBytes: 1024}, rec.handle)
	c := dial(t, addr, "")

	big := message("From: a@sender.example", "Subject: big") + strings.Repeat(strings.Repeat("x", 70)+"\r\n", 60)
	err := send(c, "a@sender.example", []string{"unsubscribe@" + domain}, big)
	if got := code(err); got != 552 {
		t.Errorf("send of %d bytes = %v (code %d), want 552", len(big), err, got)
	}
	if got := rec.calls(); len(got) != 0 {
		t.Fatalf("handler called %d times for a refused message, want 0", len(got))
	}

	// The connection is still usable for a message within the limit.
	if err := send(c, "a@sender.example", []string{"unsubscribe@" + domain}, plain); err != nil {
		t.Fatalf("send after refusal: %v", err)
	}
	if got := rec.calls(); len(got) != 1 {
		t.Errorf("handler called %d times, want 1", len(got))
	}
}

func TestRefusesDeclaredSizeAndOversizedChunk(t *testing.T) {
	t.Parallel()
	rec := &recorder{}
	_, addr := start(t, Config{MaxMessageBytes: 1024}, rec.handle)
	tp := rawConn(t, addr)
	expect(t, tp, 250, "EHLO client.example")
	expect(t, tp, 552, "MAIL FROM:<a@sender.example> SIZE=100000")
	expect(t, tp, 250, "MAIL FROM:<a@sender.example>")
	expect(t, tp, 250, "RCPT TO:<unsubscribe@%s>", domain)
	if err := tp.PrintfLine("BDAT 2000 LAST"); err != nil {
		t.Fatal(err)
	}
	if _, err := tp.W.WriteString(strings.Repeat(strings.Repeat("x", 98)+"\r\n", 20)); err != nil {
		t.Fatal(err)
	}
	tp.W.Flush()
	if _, _, err := tp.ReadResponse(552); err != nil {
		t.Errorf("oversized BDAT: %v, want 552", err)
	}
	if got := rec.calls(); len(got) != 0 {
		t.Errorf("handler called %d times, want 0", len(got))
	}
}

func TestAcceptsChunkedMessage(t *testing.T) {
	t.Parallel()
	rec := &recorder{}
	_, addr := start(t, Config{}, rec.handle)
	tp := rawConn(t, addr)
	expect(t, tp, 250, "EHLO client.example")
	expect(t, tp, 250, "MAIL FROM:<a@sender.example>")
	expect(t, tp, 250, "RCPT TO:<unsubscribe+chunk@%s>", domain)
	if err := tp.PrintfLine("BDAT %d LAST", len(plain)); err != nil {
		t.Fatal(err)
	}
	tp.W.WriteString(plain)
	tp.W.Flush()
	if _, _, err := tp.ReadResponse(250); err != nil {
		t.Fatalf("BDAT LAST: %v", err)
	}
	got := rec.calls()
	if len(got) != 1 || got[0].Token != "chunk" || got[0].From != "alice@example.com" {
		t.Errorf("handler calls = %+v, want one with Token chunk and From alice@example.com", got)
	}
}

func TestRateLimitPerIP(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); defer mu.Unlock(); now = now.Add(d) }

	rec := &recorder{}
	_, addr := start(t, Config{Now: clock}, rec.handle)
	c := dial(t, addr, "")
	to := []string{"unsubscribe@" + domain}
	for i := range 30 {
		if err := send(c, "a@sender.example", to, plain); err != nil {
			t.Fatalf("message %d: %v", i+1, err)
		}
	}
	err := send(c, "a@sender.example", to, plain)
	if got := code(err); got != 450 && got != 421 {
		t.Errorf("message 31 = %v (code %d), want 450 or 421", err, got)
	}
	if got := len(rec.calls()); got != 30 {
		t.Fatalf("handler called %d times, want 30", got)
	}

	// Another IP has its own budget.
	if other := tryDial(addr, "127.0.0.2"); other != nil {
		other.Close()
		c2 := dial(t, addr, "127.0.0.2")
		if err := send(c2, "a@sender.example", to, plain); err != nil {
			t.Errorf("from 127.0.0.2: %v", err)
		}
		if got := len(rec.calls()); got != 31 {
			t.Fatalf("handler called %d times, want 31", got)
		}
	} else {
		t.Log("cannot dial from 127.0.0.2; skipped the other-IP check")
	}
	base := len(rec.calls())

	// The budget refills at RatePerMinute a minute: 2 s buys one message.
	advance(2 * time.Second)
	if err := send(c, "a@sender.example", to, plain); err != nil {
		t.Errorf("after 2 s: %v", err)
	}
	if err := send(c, "a@sender.example", to, plain); code(err) != 450 {
		t.Errorf("second message after 2 s = %v, want 450", err)
	}
	advance(time.Minute)
	for i := range 30 {
		if err := send(c, "a@sender.example", to, plain); err != nil {
			t.Fatalf("after a minute, message %d: %v", i+1, err)
		}
	}
	if got, want := len(rec.calls()), base+31; got != want {
		t.Errorf("handler called %d times, want %d", got, want)
	}
}

// A Config.Limit replaces the per-server buckets: what it refuses gets 450, and a
// limit that cannot be read defers the mail (451) rather than letting it in.
func TestSharedLimit(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var clients []string
	answer := struct {
		ok  bool
		err error
	}{ok: true}
	limit := func(_ context.Context, client string) (bool, error) {
		mu.Lock()
		defer mu.Unlock()
		clients = append(clients, client)
		return answer.ok, answer.err
	}
	rec := &recorder{}
	_, addr := start(t, Config{Limit: limit, RatePerMinute: 1}, rec.handle)
	to := []string{"unsubscribe@" + domain}
	c := dial(t, addr, "")
	for i := range 3 { // past RatePerMinute: the shared limit decides, not the server's own
		if err := send(c, "a@sender.example", to, plain); err != nil {
			t.Fatalf("message %d: %v", i+1, err)
		}
	}
	mu.Lock()
	answer.ok = false
	mu.Unlock()
	if err := send(c, "a@sender.example", to, plain); code(err) != 450 {
		t.Errorf("refused by the limit = %v, want 450", err)
	}
	mu.Lock()
	answer.ok, answer.err = true, errors.New("database unavailable")
	mu.Unlock()
	if err := send(c, "a@sender.example", to, plain); code(err) != 451 {
		t.Errorf("the limit failing = %v, want 451", err)
	}
	if got := len(rec.calls()); got != 3 {
		t.Errorf("handler called %d times, want 3", got)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(clients) != 5 || clients[0] != "127.0.0.1" {
		t.Errorf("the limit was asked for %q, want 127.0.0.1 five times", clients)
	}
}

func TestRateLimitCutsPersistentClient(t *testing.T) {
	t.Parallel()
	rec := &recorder{}
	_, addr := start(t, Config{RatePerMinute: 1}, rec.handle)
	c := dial(t, addr, "")
	to := []string{"unsubscribe@" + domain}
	if err := send(c, "a@sender.example", to, plain); err != nil {
		t.Fatalf("first message: %v", err)
	}
	for i := range 2 {
		if err := c.Mail("a@sender.example"); code(err) != 450 {
			t.Fatalf("MAIL %d over the rate = %v, want 450", i+1, err)
		}
	}
	c.Mail("a@sender.example") // the third is cut
	if err := c.Noop(); err == nil {
		t.Error("connection still open after three refusals")
	}
	if got := len(rec.calls()); got != 1 {
		t.Errorf("handler called %d times, want 1", got)
	}
}

func TestDropsBouncesAndAutoReplies(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		from      string
		msg       string
		wantCalls int
	}{
		{"null sender", "", plain, 0},
		{"auto-replied", "a@sender.example", message("From: a@sender.example", "Auto-Submitted: auto-replied"), 0},
		{"auto-generated with comment", "a@sender.example", message("From: a@sender.example", "AUTO-SUBMITTED: Auto-Generated (vacation)"), 0},
		{"auto-submitted no", "a@sender.example", message("From: a@sender.example", "Auto-Submitted: no"), 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rec := &recorder{}
			_, addr := start(t, Config{}, rec.handle)
			c := dial(t, addr, "")
			if err := send(c, tt.from, []string{"unsubscribe@" + domain}, tt.msg); err != nil {
				t.Fatalf("send: %v, want accepted", err)
			}
			if got := len(rec.calls()); got != tt.wantCalls {
				t.Errorf("handler called %d times, want %d", got, tt.wantCalls)
			}
		})
	}
}

func TestHandlerFailureIsTemporary(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		h    Handler
	}{
		{"error", func(context.Context, Request) error { return errors.New("database is down") }},
		{"panic", func(context.Context, Request) error { panic("boom") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, addr := start(t, Config{}, tt.h)
			c := dial(t, addr, "")
			err := send(c, "a@sender.example", []string{"unsubscribe@" + domain}, plain)
			if got := code(err); got != 451 {
				t.Errorf("send = %v (code %d), want 451", err, got)
			}
			if err != nil && strings.Contains(err.Error(), "database") {
				t.Errorf("reply %q leaks the handler's error", err)
			}
			// The connection goes on.
			if err := c.Noop(); err != nil {
				t.Errorf("NOOP after failure: %v", err)
			}
		})
	}
}

func TestRecipientLimit(t *testing.T) {
	t.Parallel()
	t.Run("accepted recipients", func(t *testing.T) {
		t.Parallel()
		rec := &recorder{}
		_, addr := start(t, Config{}, rec.handle)
		c := dial(t, addr, "")
		if err := c.Mail("a@sender.example"); err != nil {
			t.Fatal(err)
		}
		for i := 1; i <= 5; i++ {
			if err := c.Rcpt(fmt.Sprintf("unsubscribe+t%d@%s", i, domain)); err != nil {
				t.Fatalf("RCPT %d: %v", i, err)
			}
		}
		if err := c.Rcpt("unsubscribe+t6@" + domain); code(err) != 452 {
			t.Errorf("RCPT 6 = %v, want 452", err)
		}
		w, err := c.Data()
		if err != nil {
			t.Fatal(err)
		}
		w.Write([]byte(plain))
		if err := w.Close(); err != nil {
			t.Fatalf("end of data: %v", err)
		}
		got := rec.calls()
		if len(got) != 1 || got[0].Token != "t1" || got[0].Recipient != "unsubscribe+t1@"+domain {
			t.Errorf("handler calls = %+v, want one for the first recipient", got)
		}
	})
	t.Run("refused recipients count too", func(t *testing.T) {
		t.Parallel()
		rec := &recorder{}
		_, addr := start(t, Config{MaxRecipients: 2}, rec.handle)
		c := dial(t, addr, "")
		if err := c.Mail("a@sender.example"); err != nil {
			t.Fatal(err)
		}
		for i := range 2 {
			if err := c.Rcpt(fmt.Sprintf("guess%d@%s", i, domain)); code(err) != 550 {
				t.Fatalf("RCPT guess%d = %v, want 550", i, err)
			}
		}
		if err := c.Rcpt("unsubscribe@" + domain); code(err) != 452 {
			t.Errorf("RCPT after the limit = %v, want 452", err)
		}
		if len(rec.calls()) != 0 {
			t.Error("handler called")
		}
	})
}

// rawConn opens a plain text connection and reads the greeting.
func rawConn(t *testing.T, addr string) *textproto.Conn {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	tp := textproto.NewConn(conn)
	t.Cleanup(func() { tp.Close() })
	if _, _, err := tp.ReadResponse(220); err != nil {
		t.Fatalf("greeting: %v", err)
	}
	return tp
}

// expect sends a command and checks the reply code; a one-digit want checks
// only the class of the reply.
func expect(t *testing.T, tp *textproto.Conn, want int, format string, args ...any) {
	t.Helper()
	if err := tp.PrintfLine(format, args...); err != nil {
		t.Fatalf("send %q: %v", format, err)
	}
	if got, msg, err := tp.ReadResponse(want); err != nil {
		t.Errorf("%q: got %d %s, want %d", fmt.Sprintf(format, args...), got, msg, want)
	}
}

func TestSurvivesGarbageAndAbortedTransactions(t *testing.T) {
	t.Parallel()
	rec := &recorder{}
	_, addr := start(t, Config{}, rec.handle)
	rcpt := "RCPT TO:<unsubscribe@" + domain + ">"

	// Out-of-order and unknown commands.
	tp := rawConn(t, addr)
	expect(t, tp, 502, "MAIL FROM:<a@sender.example>")
	expect(t, tp, 250, "EHLO client.example")
	expect(t, tp, 502, "%s", rcpt)
	expect(t, tp, 502, "DATA")
	expect(t, tp, 5, "FROBNICATE now") // 500 or 501
	expect(t, tp, 250, "MAIL FROM:<a@sender.example>")
	expect(t, tp, 250, "%s", rcpt)
	expect(t, tp, 501, "DATA extra")
	expect(t, tp, 221, "QUIT") // no DATA: nothing to record

	// Too many protocol errors close the connection.
	tp = rawConn(t, addr)
	for range 4 {
		tp.PrintfLine("\x00\xff garbage")
	}
	if _, err := readAll(tp); err != nil {
		t.Errorf("after garbage: %v, want the server to close the connection", err)
	}

	// A line beyond the limit closes the connection.
	tp = rawConn(t, addr)
	tp.PrintfLine("NOOP %s", strings.Repeat("x", 3000))
	if _, _, err := tp.ReadResponse(500); err != nil {
		t.Errorf("too long line: %v, want 500", err)
	}

	// A client that leaves in the middle of DATA.
	tp = rawConn(t, addr)
	expect(t, tp, 250, "EHLO client.example")
	expect(t, tp, 250, "MAIL FROM:<a@sender.example>")
	expect(t, tp, 250, "%s", rcpt)
	expect(t, tp, 354, "DATA")
	tp.PrintfLine("From: a@sender.example")
	tp.Close()

	// A message without a header block.
	tp = rawConn(t, addr)
	expect(t, tp, 250, "EHLO client.example")
	expect(t, tp, 250, "MAIL FROM:<a@sender.example>")
	expect(t, tp, 250, "%s", rcpt)
	expect(t, tp, 354, "DATA")
	expect(t, tp, 550, "this is not a header\r\n.")

	if got := rec.calls(); len(got) != 0 {
		t.Fatalf("handler called %d times, want 0", len(got))
	}

	// The server still serves.
	c := dial(t, addr, "")
	if err := send(c, "a@sender.example", []string{"unsubscribe@" + domain}, plain); err != nil {
		t.Fatalf("send after garbage: %v", err)
	}
	if got := rec.calls(); len(got) != 1 {
		t.Errorf("handler called %d times, want 1", len(got))
	}
}

// readAll reads until the server closes the connection, which must happen
// before the test's deadline.
func readAll(tp *textproto.Conn) (string, error) {
	var b strings.Builder
	for {
		line, err := tp.ReadLine()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return b.String(), err
			}
			return b.String(), nil
		}
		b.WriteString(line + "\n")
	}
}

func tryDial(addr, localIP string) net.Conn {
	d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(localIP)}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		return nil
	}
	return c
}

// greeting dials from localIP and returns the server's first line.
func greeting(t *testing.T, addr, localIP string) (net.Conn, string) {
	t.Helper()
	c := tryDial(addr, localIP)
	if c == nil {
		t.Skipf("cannot dial from %s", localIP)
	}
	t.Cleanup(func() { c.Close() })
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	line, err := textproto.NewReader(bufio.NewReader(c)).ReadLine()
	if err != nil {
		t.Fatalf("read greeting: %v", err)
	}
	return c, line
}

func TestConnectionLimits(t *testing.T) {
	t.Parallel()
	t.Run("total", func(t *testing.T) {
		t.Parallel()
		_, addr := start(t, Config{MaxConnections: 2}, (&recorder{}).handle)
		first, line := greeting(t, addr, "127.0.0.1")
		if !strings.HasPrefix(line, "220 ") {
			t.Fatalf("first greeting = %q, want 220", line)
		}
		if _, line := greeting(t, addr, "127.0.0.1"); !strings.HasPrefix(line, "220 ") {
			t.Fatalf("second greeting = %q, want 220", line)
		}
		if _, line := greeting(t, addr, "127.0.0.1"); !strings.HasPrefix(line, "421 ") {
			t.Errorf("third greeting = %q, want 421", line)
		}
		// A freed slot is taken again.
		first.Close()
		deadline := time.Now().Add(5 * time.Second)
		for {
			_, line := greeting(t, addr, "127.0.0.1")
			if strings.HasPrefix(line, "220 ") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("greeting after a close = %q, want 220", line)
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
	t.Run("per IP", func(t *testing.T) {
		t.Parallel()
		_, addr := start(t, Config{MaxConnections: 5, MaxConnectionsPerIP: 1}, (&recorder{}).handle)
		if _, line := greeting(t, addr, "127.0.0.1"); !strings.HasPrefix(line, "220 ") {
			t.Fatalf("first greeting = %q, want 220", line)
		}
		if _, line := greeting(t, addr, "127.0.0.1"); !strings.HasPrefix(line, "421 ") {
			t.Errorf("second greeting from the same IP = %q, want 421", line)
		}
		if _, line := greeting(t, addr, "127.0.0.2"); !strings.HasPrefix(line, "220 ") {
			t.Errorf("greeting from another IP = %q, want 220", line)
		}
	})
}

func TestSessionDurationLimit(t *testing.T) {
	t.Parallel()
	_, addr := start(t, Config{MaxSessionDuration: 300 * time.Millisecond}, (&recorder{}).handle)
	c := dial(t, addr, "")
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if err := c.Noop(); err != nil {
			return // cut, as it should be
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Error("a busy session outlived MaxSessionDuration")
}

func TestStartTLS(t *testing.T) {
	t.Parallel()
	serverTLS, pool := testCert(t)
	rec := &recorder{}
	_, addr := start(t, Config{TLS: serverTLS}, rec.handle)
	c := dial(t, addr, "")
	if ok, _ := c.Extension("STARTTLS"); !ok {
		t.Fatal("STARTTLS not advertised")
	}
	if err := c.StartTLS(&tls.Config{RootCAs: pool, ServerName: domain}); err != nil {
		t.Fatalf("STARTTLS: %v", err)
	}
	if err := send(c, "a@sender.example", []string{"unsubscribe+tls@" + domain}, plain); err != nil {
		t.Fatalf("send: %v", err)
	}
	if got := rec.calls(); len(got) != 1 || got[0].Token != "tls" {
		t.Errorf("handler calls = %+v, want one with Token tls", got)
	}
}

func testCert(t *testing.T) (*tls.Config, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: domain},
		DNSNames:     []string{domain},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}, pool
}

func TestCloseStopsServe(t *testing.T) {
	t.Parallel()
	s, err := New(Config{Domain: domain, Resolver: fakedns.New()}, (&recorder{}).handle)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(ln) }()

	idle, line := greeting(t, ln.Addr().String(), "127.0.0.1")
	if !strings.HasPrefix(line, "220 ") {
		t.Fatalf("greeting = %q", line)
	}
	if got := s.Addr(); got == nil || got.String() != ln.Addr().String() {
		t.Errorf("Addr() = %v, want %v", got, ln.Addr())
	}

	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Serve returned %v, want nil", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return after Close")
	}
	idle.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := idle.Read(make([]byte, 64)); err == nil {
		t.Error("an open connection survived Close")
	} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Error("an open connection was not closed by Close")
	}
	if c, err := net.DialTimeout("tcp", ln.Addr().String(), time.Second); err == nil {
		c.Close()
		t.Error("dial after Close succeeded")
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	ln2, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Serve(ln2); !errors.Is(err, ErrServerClosed) {
		t.Errorf("Serve after Close = %v, want ErrServerClosed", err)
	}
}

func TestCloseCancelsAndWaitsForHandler(t *testing.T) {
	t.Parallel()
	started := make(chan struct{})
	var handlerErr error
	var returned bool
	h := func(ctx context.Context, _ Request) error {
		close(started)
		<-ctx.Done()
		handlerErr = ctx.Err()
		returned = true
		return ctx.Err()
	}
	s, err := New(Config{Domain: domain, Resolver: fakedns.New()}, h)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(ln) }()

	c := dial(t, ln.Addr().String(), "")
	sent := make(chan error, 1)
	go func() { sent <- send(c, "a@sender.example", []string{"unsubscribe@" + domain}, plain) }()
	select {
	case <-started:
	case <-time.After(5 * time.Second):
		t.Fatal("handler not called")
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	// Close waited for the handler, so reading its results races with nothing.
	if !returned || !errors.Is(handlerErr, context.Canceled) {
		t.Errorf("after Close: handler returned = %v with %v, want returned with context.Canceled", returned, handlerErr)
	}
	if err := <-sent; err == nil {
		t.Error("the client was told its message was accepted")
	}
	if err := <-done; err != nil {
		t.Errorf("Serve returned %v, want nil", err)
	}
}

func TestListenAndServe(t *testing.T) {
	t.Parallel()
	rec := &recorder{}
	s, err := New(Config{Addr: "127.0.0.1:0", Domain: domain, Resolver: fakedns.New()}, rec.handle)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.ListenAndServe() }()
	deadline := time.Now().Add(5 * time.Second)
	for s.Addr() == nil {
		if time.Now().After(deadline) {
			t.Fatal("Addr() still nil")
		}
		time.Sleep(10 * time.Millisecond)
	}
	c := dial(t, s.Addr().String(), "")
	if err := send(c, "a@sender.example", []string{"unsubscribe@" + domain}, plain); err != nil {
		t.Fatalf("send: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Errorf("ListenAndServe returned %v, want nil", err)
	}
	if len(rec.calls()) != 1 {
		t.Errorf("handler called %d times, want 1", len(rec.calls()))
	}
}

// syncBuffer is a bytes.Buffer safe for the server's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

func TestLogsHoldNoAddressesOrContents(t *testing.T) {
	t.Parallel()
	var buf syncBuffer
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	rec := &recorder{err: nil}
	_, addr := start(t, Config{Log: log}, rec.handle)
	c := dial(t, addr, "")
	if err := c.Mail("secret-sender@sender.example"); err != nil {
		t.Fatal(err)
	}
	c.Rcpt("secret-guess@" + domain)
	if err := c.Rcpt("unsubscribe+secret-token@" + domain); err != nil {
		t.Fatal(err)
	}
	w, err := c.Data()
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprint(w, "From: Secret Name <secret-from@from.example>\r\nSubject: secret subject\r\n\r\nsecret body\r\n")
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	logs := buf.String()
	for _, want := range []string{"sender.example", "from.example", "inbound unsubscribe request accepted", "inbound recipient refused"} {
		if !strings.Contains(logs, want) {
			t.Errorf("logs lack %q:\n%s", want, logs)
		}
	}
	if strings.Contains(strings.ToLower(logs), "secret") {
		t.Errorf("logs hold an address, token or content:\n%s", logs)
	}
}

func TestNewValidatesConfig(t *testing.T) {
	t.Parallel()
	h := (&recorder{}).handle
	tests := []struct {
		name string
		cfg  Config
		h    Handler
		want string
	}{
		{"nil handler", Config{Domain: domain}, nil, "handler"},
		{"no domain", Config{}, h, "Domain is required"},
		{"bad domain", Config{Domain: "exa mple.com"}, h, "not a host name"},
		{"empty label", Config{Domain: "a..b"}, h, "not a host name"},
		{"address as domain", Config{Domain: "u@example.com"}, h, "not a host name"},
		{"plus in local part", Config{Domain: domain, LocalPart: "un+sub"}, h, "LocalPart"},
		{"negative size", Config{Domain: domain, MaxMessageBytes: -1}, h, "MaxMessageBytes"},
		{"negative rate", Config{Domain: domain, RatePerMinute: -1}, h, "RatePerMinute"},
		{"negative timeout", Config{Domain: domain, ReadTimeout: -time.Second}, h, "ReadTimeout"},
		{"per-IP over total", Config{Domain: domain, MaxConnections: 5, MaxConnectionsPerIP: 6}, h, "MaxConnectionsPerIP"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.cfg, tt.h)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("New() error = %v, want one mentioning %q", err, tt.want)
			}
		})
	}

	s, err := New(Config{Domain: "Steward.Localhost.", MaxConnections: 4}, h)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	got := s.cfg
	if got.Domain != domain || got.LocalPart != "unsubscribe" || got.MaxMessageBytes != 64<<10 ||
		got.MaxRecipients != 5 || got.RatePerMinute != 30 || got.MaxConnectionsPerIP != 4 ||
		got.ReadTimeout != 30*time.Second || got.WriteTimeout != 30*time.Second {
		t.Errorf("defaults = %+v", got)
	}
	if err := s.ListenAndServe(); err == nil || !strings.Contains(err.Error(), "Addr") {
		t.Errorf("ListenAndServe without Addr = %v, want an error naming Addr", err)
	}
}

func TestClientKey(t *testing.T) {
	t.Parallel()
	tests := []struct {
		addr    net.Addr
		ip, key string
	}{
		{&net.TCPAddr{IP: net.ParseIP("192.0.2.7"), Port: 25}, "192.0.2.7", "192.0.2.7"},
		{&net.TCPAddr{IP: net.ParseIP("::ffff:192.0.2.7"), Port: 25}, "192.0.2.7", "192.0.2.7"},
		{&net.TCPAddr{IP: net.ParseIP("2001:db8:1:2:3:4:5:6"), Port: 25}, "2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"},
	}
	for _, tt := range tests {
		ip, key := clientKey(tt.addr)
		if ip != tt.ip || key != tt.key {
			t.Errorf("clientKey(%v) = %q, %q; want %q, %q", tt.addr, ip, key, tt.ip, tt.key)
		}
	}
}

// A header line longer than the listener takes is refused for good (resending does
// not shorten it), and no log line at INFO or above names the client's address.
func TestLongLineRefusedForGood(t *testing.T) {
	t.Parallel()
	var logs bytes.Buffer
	rec := &recorder{}
	_, addr := start(t, Config{Log: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))}, rec.handle)
	c := dial(t, addr, "")
	long := message("From: a@sender.example", "Subject: "+strings.Repeat("x", 10_000))
	err := send(c, "a@sender.example", []string{"unsubscribe@" + domain}, long)
	if got := code(err); got < 500 || got > 599 {
		t.Errorf("a 10,000-character header line = %v (code %d), want a permanent 5xx", err, got)
	}
	if got := rec.calls(); len(got) != 0 {
		t.Fatalf("handler called %d times for a refused message", len(got))
	}
	if !strings.Contains(logs.String(), "line too long") {
		t.Errorf("the refusal is not logged: %s", logs.String())
	}
	if strings.Contains(logs.String(), "remote_ip") {
		t.Errorf("the client's address is logged at INFO: %s", logs.String())
	}
}
