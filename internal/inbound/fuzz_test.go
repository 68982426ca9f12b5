package inbound

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/mail"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// headerSeeds are message headers as forgers and broken mailers write them.
var headerSeeds = []string{
	"From: Victim <victim@example.com>\r\nSubject: unsubscribe\r\n\r\nbody\r\n",
	"From: \"Eve\r\n Bcc: x@example.com\" <eve@example.com>\r\n\r\n",
	"From: a@example.com, b@example.com\r\nFrom: c@example.com\r\n\r\n",
	"FROM: =?utf-8?q?V=C3=ADctim?= <VICTIM@EXAMPLE.COM>\r\n\r\n",
	"From: <>\r\nAuto-Submitted: auto-replied; owner-email=\"x@example.com\"\r\n\r\n",
	"Auto-Submitted: No (comment)\r\nauto-submitted: auto-generated\r\n\r\n",
	"From: undisclosed-recipients:;\r\n\r\n",
	"From: " + strings.Repeat("a", 10000) + "@example.com\r\n\r\n",
	"From:\r\n\t(comment) x@[127.0.0.1]\r\n\r\n",
	"no header at all",
}

// The headers of any message are read without panicking: the From address taken is
// none or one valid address in lower case, on one line; a message is auto-submitted
// only when an Auto-Submitted field says other than "no".
func FuzzHeaders(f *testing.F) {
	for _, s := range headerSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		msg, err := mail.ReadMessage(strings.NewReader(raw))
		if err != nil {
			return
		}
		from := fromAddress(msg.Header)
		if from != "" {
			if strings.ToLower(from) != from || strings.ContainsAny(from, "\r\n") {
				t.Fatalf("fromAddress = %q", from)
			}
			if _, err := mail.ParseAddress(from); err != nil && !strings.ContainsAny(from, " \"\\") {
				t.Fatalf("fromAddress = %q, which does not parse: %v", from, err)
			}
		}
		said := false
		for _, v := range msg.Header["Auto-Submitted"] {
			// The keyword is what comes before any parameter or comment (RFC 3834).
			kw := v
			if i := strings.IndexAny(kw, ";("); i >= 0 {
				kw = kw[:i]
			}
			kw = strings.ToLower(strings.TrimSpace(kw))
			said = said || kw != "no"
		}
		if autoSubmitted(msg.Header) && !said {
			t.Fatalf("auto-submitted without a field saying so: %q", msg.Header["Auto-Submitted"])
		}
	})
}

// A recipient matches only the unsubscribe address (with a well-formed token or
// none), in any case, and the address rebuilt from what matched matches the same way.
func FuzzMatch(f *testing.F) {
	for _, s := range []string{
		"unsubscribe@" + domain, "UNSUBSCRIBE@STEWARD.LOCALHOST.", "unsubscribe+abc_DEF.1=-@" + domain,
		"unsubscribe+@" + domain, "unsubscribe+a+b@" + domain, "unsubscribe@evil.example", "unsubscribe@" + domain + "@evil.example",
		"\"unsubscribe\"@" + domain, "unsubscribe+" + strings.Repeat("a", 513) + "@" + domain, "@", "",
	} {
		f.Add(s)
	}
	s, err := New(Config{Domain: domain}, func(context.Context, Request) error { return nil })
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, addr string) {
		token, ok := s.match(addr)
		if !ok {
			if token != "" {
				t.Fatalf("match(%q) refused with token %q", addr, token)
			}
			return
		}
		if token != "" && !validToken(token) {
			t.Fatalf("match(%q) = %q, not a token", addr, token)
		}
		if !strings.HasSuffix(strings.ToLower(strings.TrimSuffix(addr, ".")), "@"+domain) {
			t.Fatalf("match(%q): another domain", addr)
		}
		if again, ok := s.match(s.recipient(token)); !ok || again != token {
			t.Fatalf("the rebuilt address %q: %q, %v", s.recipient(token), again, ok)
		}
	})
}

// A whole SMTP conversation from a client, whatever it sends, is answered in SMTP
// (each reply a three-digit code) without the server panicking, and the Handler is
// only ever asked about the unsubscribe address, with a From that is none or one
// address. The conversation goes to a server listening on a loopback port.
func FuzzSession(f *testing.F) {
	rcpt := "RCPT TO:<unsubscribe@" + domain + ">\r\n"
	for _, s := range []string{
		"EHLO client.example\r\nMAIL FROM:<attacker@evil.example>\r\n" + rcpt + "DATA\r\n" + headerSeeds[0] + ".\r\nQUIT\r\n",
		"HELO x\r\nMAIL FROM:<>\r\n" + rcpt + "DATA\r\nAuto-Submitted: auto-replied\r\n\r\n.\r\n",
		"EHLO x\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<unsubscribe+tok_1@" + domain + ">\r\nRCPT TO:<other@" + domain + ">\r\nDATA\r\n" + headerSeeds[1] + "..dot\r\n.\r\nRSET\r\nQUIT\r\n",
		"EHLO x\r\nMAIL FROM:<a@b.example>\r\n" + rcpt + "DATA\r\nSubject: " + strings.Repeat("x", 10000) + "\r\n\r\n.\r\n",
		"EHLO x\r\nMAIL FROM:<a@b.example> SIZE=99999999\r\n" + rcpt + "BDAT 5 LAST\r\nFrom:",
		"DATA\r\nRCPT TO:<x>\r\nMAIL FROM:<\r\nSTARTTLS\r\nAUTH PLAIN AAAA\r\nVRFY root\r\nNOOP\r\n\x00\xff\r\n",
		"EHLO x\r\nMAIL FROM:<a@b.example>\r\n" + rcpt + "DATA\r\n" + headerSeeds[2] + "\r\n", // never ends its data
	} {
		f.Add(s)
	}
	var (
		mu   sync.Mutex
		reqs []Request
	)
	s, err := New(Config{Domain: domain, RatePerMinute: 1 << 30, MaxConnections: 1000, MaxConnectionsPerIP: 1000,
		ReadTimeout: 5 * time.Second, WriteTimeout: 5 * time.Second},
		func(_ context.Context, r Request) error {
			mu.Lock()
			defer mu.Unlock()
			reqs = append(reqs, r)
			return nil
		})
	if err != nil {
		f.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		f.Fatal(err)
	}
	go s.Serve(ln)
	f.Cleanup(func() { s.Close() })
	f.Fuzz(func(t *testing.T, conversation string) {
		mu.Lock()
		reqs = nil
		mu.Unlock()
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(20 * time.Second))
		go func() {
			io.WriteString(c, conversation)
			c.(*net.TCPConn).CloseWrite()
		}()
		sc := bufio.NewScanner(c)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			line := sc.Text()
			if len(line) < 3 || strings.Trim(line[:3], "0123456789") != "" {
				t.Fatalf("reply %q is not SMTP", line)
			}
		}
		if err := sc.Err(); err != nil && !isReset(err) {
			t.Fatalf("reading the replies: %v", err)
		}
		mu.Lock()
		defer mu.Unlock()
		for _, r := range reqs {
			if _, ok := s.match(r.Recipient); !ok {
				t.Fatalf("the handler was asked about %q", r.Recipient)
			}
			if r.From != "" {
				if _, err := mail.ParseAddress(r.From); err != nil && !strings.ContainsAny(r.From, " \"\\") {
					t.Fatalf("the handler got From %q: %v", r.From, err)
				}
			}
		}
	})
}

// isReset reports a connection the server cut (it may, after a fatal error, while
// the client is still sending).
func isReset(err error) bool {
	return errors.Is(err, syscall.ECONNRESET)
}
