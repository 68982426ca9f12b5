package mail

import (
	"context"
	"encoding/json"
	"mime"
	"net/http"
	"net/mail"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestFileSender(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "outbox")
	s := FileSender{Dir: dir, From: "Steward <no-reply@example.org>"}
	m := Message{ID: "abc", To: "ann@example.org", Subject: "Grüße", Text: "Hello Ann\n", HTML: "<p>Hello Ann</p>", Template: "t"}
	if err := s.Send(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*"))
	if len(files) != 1 || !strings.HasSuffix(files[0], "-abc.eml") {
		t.Fatalf("outbox holds %v, want one .eml and no temporary file", files)
	}
	f, _ := os.Open(files[0])
	defer f.Close()
	msg, err := mail.ReadMessage(f)
	if err != nil {
		t.Fatalf("not a mail: %v", err)
	}
	if got := msg.Header.Get("To"); !strings.Contains(got, "ann@example.org") {
		t.Errorf("To = %q", got)
	}
	dec := new(mime.WordDecoder)
	if subj, _ := dec.DecodeHeader(msg.Header.Get("Subject")); subj != "Grüße" {
		t.Errorf("Subject = %q", subj)
	}
	if msg.Header.Get("Auto-Submitted") != "auto-generated" {
		t.Errorf("Auto-Submitted missing")
	}
}

// TestSMTPSender delivers through a real SMTP server (mailpit) and reads the message
// back from its API.
func TestSMTPSender(t *testing.T) {
	addr, api := os.Getenv("STEWARD_TEST_SMTP_ADDR"), os.Getenv("STEWARD_TEST_MAILPIT_URL")
	if addr == "" || api == "" {
		if os.Getenv("STEWARD_TEST_REQUIRE_SERVICES") == "1" {
			t.Fatal("STEWARD_TEST_SMTP_ADDR and STEWARD_TEST_MAILPIT_URL are required")
		}
		t.Skip("no SMTP server configured")
	}
	s, err := NewSMTPSender(addr, "", "", "none", "Steward <no-reply@example.org>")
	if err != nil {
		t.Fatal(err)
	}
	subject := "smtp test " + time.Now().Format(time.RFC3339Nano)
	if err := s.Send(context.Background(), Message{ID: "x", To: "bob@example.org", Subject: subject, Text: "Hi Bob", HTML: "<p>Hi Bob</p>"}); err != nil {
		t.Fatalf("send: %v", err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get(api + "/api/v1/search?query=" + url.QueryEscape(`subject:"`+subject+`"`))
		if err != nil {
			t.Fatal(err)
		}
		var res struct {
			Messages []struct {
				Subject string
				To      []struct{ Address string }
			}
		}
		_ = json.NewDecoder(resp.Body).Decode(&res)
		resp.Body.Close()
		if len(res.Messages) == 1 {
			if m := res.Messages[0]; m.Subject != subject || len(m.To) != 1 || m.To[0].Address != "bob@example.org" {
				t.Fatalf("delivered message = %+v", m)
			}
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("message did not reach the SMTP server")
}
