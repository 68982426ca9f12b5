package mail

import (
	"context"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// countingSMTP counts connections and messages, and closes connections that stay
// idle longer than idle (as servers do).
type countingSMTP struct {
	mu    sync.Mutex
	conns int
	msgs  int
}

func (s *countingSMTP) NewSession(*smtp.Conn) (smtp.Session, error) {
	s.mu.Lock()
	s.conns++
	s.mu.Unlock()
	return countingSession{s}, nil
}

type countingSession struct{ s *countingSMTP }

func (countingSession) Reset()                               {}
func (countingSession) Logout() error                        { return nil }
func (countingSession) Mail(string, *smtp.MailOptions) error { return nil }
func (countingSession) Rcpt(string, *smtp.RcptOptions) error { return nil }
func (x countingSession) Data(r io.Reader) error {
	io.Copy(io.Discard, r)
	x.s.mu.Lock()
	x.s.msgs++
	x.s.mu.Unlock()
	return nil
}

func (s *countingSMTP) counts() (conns, msgs int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.conns, s.msgs
}

func startCountingSMTP(t *testing.T, idle time.Duration) (*countingSMTP, string) {
	t.Helper()
	c := &countingSMTP{}
	srv := smtp.NewServer(c)
	srv.Domain = "localhost"
	srv.ReadTimeout = idle
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return c, ln.Addr().String()
}

func batch(n int, tag string) []Message {
	out := make([]Message, n)
	for i := range out {
		out[i] = Message{ID: fmt.Sprint(i), To: fmt.Sprintf("r%d-%s@example.org", i, tag), Subject: "S", Text: "T", Template: "campaign"}
	}
	return out
}

// A session keeps one connection across batches; a pause longer than the timeout (a
// slow batch before) does not break the next batch, nor does a server that closed the
// idle connection meanwhile: the session notices before sending and dials again.
func TestSMTPSessionSurvivesPauses(t *testing.T) {
	ctx := context.Background()
	timeout := WithSMTPTimeout(300 * time.Millisecond)

	srv, addr := startCountingSMTP(t, time.Minute)
	s, err := NewSMTPSender(addr, "", "", "none", "S <s@example.org>", timeout)
	if err != nil {
		t.Fatal(err)
	}
	sess := s.Open()
	defer sess.Close()
	for i := range 3 {
		if err := sess.SendAll(ctx, batch(5, fmt.Sprint(i))); err != nil {
			t.Fatalf("batch %d: %v", i, err)
		}
		time.Sleep(500 * time.Millisecond) // longer than the timeout
	}
	if conns, msgs := srv.counts(); conns != 1 || msgs != 15 {
		t.Errorf("%d connections, %d messages; want 1 and 15", conns, msgs)
	}

	idle, addr2 := startCountingSMTP(t, 200*time.Millisecond)
	s2, _ := NewSMTPSender(addr2, "", "", "none", "S <s@example.org>", timeout)
	sess2 := s2.Open()
	defer sess2.Close()
	for i := range 2 {
		if err := sess2.SendAll(ctx, batch(3, fmt.Sprint(i))); err != nil {
			t.Fatalf("batch %d after the server closed the idle connection: %v", i, err)
		}
		time.Sleep(400 * time.Millisecond)
	}
	if conns, msgs := idle.counts(); conns != 2 || msgs != 6 {
		t.Errorf("%d connections, %d messages; want 2 and 6", conns, msgs)
	}
}

// The session opens a new connection after perConnection messages.
func TestSMTPSessionCapsMessagesPerConnection(t *testing.T) {
	srv, addr := startCountingSMTP(t, time.Minute)
	s, _ := NewSMTPSender(addr, "", "", "none", "S <s@example.org>")
	sess := s.Open()
	defer sess.Close()
	for i := range 3 {
		if err := sess.SendAll(context.Background(), batch(perConnection/2+1, fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	if conns, msgs := srv.counts(); msgs != 3*(perConnection/2+1) || conns != 2 {
		t.Errorf("%d messages over %d connections; want %d over 2", msgs, conns, 3*(perConnection/2+1))
	}
}
