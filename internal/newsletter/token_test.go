package newsletter

import (
	"strings"
	"testing"
	"time"
)

func TestOptOutTokens(t *testing.T) {
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	s := &Service{key: []byte("0123456789abcdef0123456789abcdef"), now: func() time.Time { return now }}
	id := []byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	tok := s.token(id, now.Add(48*time.Hour))
	if len(tok) != 42 || strings.ToLower(tok) != tok || len("unsubscribe+"+tok) > 64 {
		t.Fatalf("token %q: want 42 lower-case characters that fit an address's local part", tok)
	}
	got, err := s.parseToken(strings.ToUpper(tok)) // a mail server may change the case
	if err != nil || got != "0102030405060708090a" {
		t.Fatalf("parseToken = %q, %v", got, err)
	}
	for name, bad := range map[string]string{
		"changed":   tok[:10] + string("abcdefgh"[(strings.IndexByte("abcdefgh", tok[10])+1)%8]) + tok[11:],
		"truncated": tok[:41],
		"garbage":   "not-a-token",
		"other key": (&Service{key: []byte("another key of thirty-two bytes!"), now: s.now}).token(id, now.Add(time.Hour)),
	} {
		if _, err := s.parseToken(bad); err == nil {
			t.Errorf("%s token accepted", name)
		}
	}
	expired := s.token(id, now.Add(-48*time.Hour))
	if _, err := s.parseToken(expired); err == nil {
		t.Error("an expired token was accepted")
	}
}
