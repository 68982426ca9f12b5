package newsletter

import (
	"strings"
	"testing"
	"time"
)

func TestConfirmationTokens(t *testing.T) {
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	s := &Service{key: []byte("0123456789abcdef0123456789abcdef"), now: func() time.Time { return now }}
	hash := strings.Repeat("ab", 32)
	subject := "0190f4a1b2c3d4e5f60718293a4b5c6d"
	tok := s.mailToken(subject, hash, now.Add(confirmTTL))
	if !strings.HasPrefix(tok, mailTokenPrefix) || strings.Contains(tok, "@") {
		t.Fatalf("token %q", tok)
	}
	gotSubject, gotHash, err := s.parseMailToken(tok)
	if err != nil || gotSubject != subject || gotHash != hash {
		t.Fatalf("parseMailToken = %q, %q, %v", gotSubject, gotHash, err)
	}
	if _, err := s.parseToken(tok); err == nil {
		t.Error("a confirmation token passed for a campaign's")
	}
	flip := func(c byte) string {
		if c == 'A' {
			return "B"
		}
		return "A"
	}
	for name, bad := range map[string]string{
		"changed":       tok[:20] + flip(tok[20]) + tok[21:],
		"truncated":     tok[:len(tok)-1],
		"no prefix":     strings.TrimPrefix(tok, mailTokenPrefix),
		"garbage":       "m.not-a-token",
		"other key":     (&Service{key: []byte("another key of thirty-two bytes!"), now: s.now}).mailToken(subject, hash, now.Add(time.Hour)),
		"expired":       s.mailToken(subject, hash, now.Add(-48*time.Hour)),
		"campaign's":    s.token([]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, now.Add(time.Hour)),
		"other subject": strings.Replace(tok, tok[len(tok)-30:len(tok)-28], "zz", 1),
	} {
		if _, _, err := s.parseMailToken(bad); err == nil {
			t.Errorf("%s token accepted", name)
		}
	}
}
