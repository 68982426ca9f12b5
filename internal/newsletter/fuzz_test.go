package newsletter

import (
	"strings"
	"testing"
	"time"
)

// An opt-out token is accepted only as it was made: whatever parseToken accepts is a
// token this key made (its id and expiry re-encode, with the MAC, to the text given,
// case aside), and nothing else is. Seeds: a genuine token, changed in case, with
// a line break, with its last character's spare bits set, and garbage.
func FuzzParseToken(f *testing.F) {
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	s := &Service{key: []byte("0123456789abcdef0123456789abcdef"), now: func() time.Time { return now }}
	tok := s.token([]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, now.Add(48*time.Hour))
	for _, seed := range []string{
		tok, strings.ToUpper(tok), " " + tok + "\r\n", tok[:20] + "\n" + tok[20:], tok[:41] + "b", tok[:41],
		tok + "a", "not-a-token", strings.Repeat("a", 42), strings.Repeat("7", 10000), "",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, in string) {
		id, err := s.parseToken(in)
		if err != nil {
			if id != "" {
				t.Fatalf("parseToken(%q) failed (%v) but returned %q", in, err, id)
			}
			return
		}
		if id != "0102030405060708090a" {
			t.Fatalf("parseToken(%q) = %q, a token this key never made", in, id)
		}
		if got := strings.ToLower(strings.TrimSpace(in)); got != tok {
			t.Fatalf("parseToken accepted %q, which is not the token %q", in, tok)
		}
	})
}
