package mail

import (
	"bufio"
	"context"
	"errors"
	"net"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// hangUpSMTP is a bare SMTP server that takes messages until the one numbered
// hangUpAt (from 0) has been sent whole, then closes the connection without answering
// it: whether that one was taken cannot be known by the client.
func hangUpSMTP(t *testing.T, hangUpAt int) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(10 * time.Second))
				r := bufio.NewReader(c)
				say := func(s string) { c.Write([]byte(s + "\r\n")) }
				say("220 localhost ready")
				n := 0
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					switch cmd := strings.ToUpper(strings.TrimSpace(line)); {
					case strings.HasPrefix(cmd, "EHLO"), strings.HasPrefix(cmd, "HELO"):
						say("250 localhost")
					case strings.HasPrefix(cmd, "DATA"):
						say("354 go on")
						for {
							l, err := r.ReadString('\n')
							if err != nil {
								return
							}
							if l == ".\r\n" {
								break
							}
						}
						if n == hangUpAt {
							return // the end was received; no answer
						}
						n++
						say("250 taken")
					case strings.HasPrefix(cmd, "QUIT"):
						say("221 bye")
						return
					default: // MAIL, RCPT, RSET, NOOP
						say("250 ok")
					}
				}
			}()
		}
	}()
	return ln.Addr().String()
}

// A connection lost while waiting for the answer to a message's end leaves that
// message unconfirmed (it may have been taken: sending it again could deliver it
// twice); the messages after it were never handed over, and fail for a while.
func TestSMTPSessionLostAnswerIsUnsure(t *testing.T) {
	s, err := NewSMTPSender(hangUpSMTP(t, 2), "", "", "none", "Steward <no-reply@example.org>", WithSMTPTimeout(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	err = s.SendAll(context.Background(), batch(5, "lost"))
	var pe *PartialError
	if !errors.As(err, &pe) {
		t.Fatalf("SendAll = %v, want a PartialError", err)
	}
	if want := map[int]bool{2: true}; !reflect.DeepEqual(pe.Unsure, want) {
		t.Errorf("unsure = %v, want %v", pe.Unsure, want)
	}
	if want := map[int]bool{3: true, 4: true}; !reflect.DeepEqual(pe.Failed, want) {
		t.Errorf("failed = %v, want %v (temporary: never handed over)", pe.Failed, want)
	}
}

// The folder says which messages it holds.
func TestFileSenderTaken(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "outbox")
	s := FileSender{Dir: dir, From: "Steward <no-reply@example.org>"}
	if got, err := s.Taken([]string{"a"}); err != nil || len(got) != 0 {
		t.Fatalf("Taken before the folder exists = %v, %v", got, err)
	}
	if err := s.SendAll(context.Background(), batch(2, "taken")); err != nil { // ids 0 and 1
		t.Fatal(err)
	}
	got, err := s.Taken([]string{"0", "1", "2"})
	if want := map[string]bool{"0": true, "1": true}; err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("Taken = %v, %v; want %v", got, err, want)
	}
	c, ok := ConfirmerOf(struct{ BulkSender }{s})
	if ok {
		t.Errorf("a wrapper without Unwrap was taken for a Confirmer: %T", c)
	}
	if _, ok := ConfirmerOf(s); !ok {
		t.Error("the folder is not a Confirmer")
	}
}
