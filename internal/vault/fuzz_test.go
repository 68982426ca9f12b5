package vault

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fuzzKey is a data key with its AEAD, as Unwrap gives one.
func fuzzKey(t testing.TB, subject string) *Key {
	t.Helper()
	k := &Key{subject: subject}
	rand.Read(k.data[:])
	var err error
	if k.aead, err = gcm(k.data[:]); err != nil {
		t.Fatal(err)
	}
	return k
}

// A sealed value opens only as it was sealed: OpenText never panics on anything read
// from a column, and a sealed text changed in any way (a byte replaced, one inserted
// or cut, a line break added, the last character's spare bits set) never opens. The
// fuzzer gives the plaintext and an edit of its sealed text, and also a whole
// arbitrary text to open.
func FuzzOpenText(f *testing.F) {
	f.Add("Ada Lovelace", uint16(0), byte('A'), uint8(0), "")
	f.Add("", uint16(5), byte('\n'), uint8(1), "AQ")
	f.Add("+44 20 7946 0958", uint16(40), byte('='), uint8(2), strings.Repeat("A", 700))
	f.Add("12 Baker Street\r\nLondon", uint16(3), byte(0), uint8(3), "AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\r\n")
	f.Add(strings.Repeat("é", 300), uint16(1000), byte('/'), uint8(0), "\x00")
	k := fuzzKey(f, "subject-1")
	other := fuzzKey(f, "subject-1")
	f.Fuzz(func(t *testing.T, plain string, at uint16, b byte, op uint8, arbitrary string) {
		sealed := k.SealText("name", plain)
		if got, err := k.OpenText("name", sealed); err != nil || got != plain {
			t.Fatalf("OpenText(SealText(%q)) = %q, %v", plain, got, err)
		}
		changed := edit(sealed, int(at), b, op)
		if changed != sealed {
			if got, err := k.OpenText("name", changed); err == nil {
				t.Fatalf("a changed sealed value opened: %q -> %q opened as %q", sealed, changed, got)
			} else if !errors.Is(err, ErrSealed) {
				t.Fatalf("OpenText(changed): %v, want ErrSealed", err)
			}
		}
		if _, err := k.OpenText("phone", sealed); err == nil {
			t.Fatal("a value sealed for one column opened for another")
		}
		if _, err := other.OpenText("name", sealed); err == nil {
			t.Fatal("a value sealed under one key opened under another")
		}
		// Anything else, whatever it is, does not open (the fuzzer cannot forge a tag).
		if arbitrary != "" && arbitrary != sealed {
			if got, err := k.OpenText("name", arbitrary); err == nil {
				t.Fatalf("OpenText(%q) opened as %q", arbitrary, got)
			}
		}
		if got, err := k.Open("name", []byte(arbitrary)); err == nil {
			t.Fatalf("Open(%q) opened as %q", arbitrary, got)
		}
	})
}

// edit changes s at position at (modulo its length): op 0 replaces the byte there
// with b, 1 inserts b, 2 cuts the byte, 3 flips the low bits of the last character
// (what a lax base64 decoder ignores).
func edit(s string, at int, b byte, op uint8) string {
	if s == "" {
		return string([]byte{b})
	}
	at %= len(s)
	switch op % 4 {
	case 0:
		return s[:at] + string([]byte{b}) + s[at+1:]
	case 1:
		return s[:at] + string([]byte{b}) + s[at:]
	case 2:
		return s[:at] + s[at+1:]
	default:
		const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
		last := strings.IndexByte(alphabet, s[len(s)-1])
		if last < 0 {
			return s
		}
		return s[:len(s)-1] + string(alphabet[last^int(b&3)])
	}
}

// A key file is read strictly: what parseKEK accepts names an epoch and a 32-byte key,
// and writing that key back gives a file that reads as the same key.
func FuzzParseKEK(f *testing.F) {
	k := GenerateKEK()
	f.Add(k.encode())
	f.Add(k.Next().encode())
	f.Add([]byte(kekFormat + "\nepoch 3\nkey " + base64.StdEncoding.EncodeToString(make([]byte, 32)) + "\n"))
	f.Add([]byte(kekFormat + "\r\nepoch 1\r\nkey AAAA\r\n"))
	f.Add([]byte(kekFormat + "\nepoch -1\nkey x\n"))
	f.Add([]byte(kekFormat + "\nepoch 1\nepoch 2\nkey " + base64.StdEncoding.EncodeToString(make([]byte, 32)) + "\n"))
	f.Add([]byte(kekFormat + "\nepoch 9223372036854775807\nkey " + base64.StdEncoding.EncodeToString(make([]byte, 32)) + "\nextra line\n"))
	f.Add(append([]byte(kekFormat+"\nkey "), bytes.Repeat([]byte("A"), 70000)...))
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := parseKEK(data)
		if err != nil {
			if !got.IsZero() {
				t.Fatalf("parseKEK failed (%v) but returned a key", err)
			}
			return
		}
		if got.IsZero() || got.Epoch() < 0 {
			t.Fatalf("parseKEK(%q) = %v", data, got)
		}
		again, err := parseKEK(got.encode())
		if err != nil || again.ID() != got.ID() || again.Epoch() != got.Epoch() {
			t.Fatalf("re-reading %v: %v, %v", got, again, err)
		}
	})
}

// ReadKEK reads whatever file an operator gives it (a key file of this release, a
// master key of an earlier one, anything else) without panicking, and what it accepts
// is a key.
func FuzzReadKEK(f *testing.F) {
	f.Add(GenerateKEK().encode())
	f.Add([]byte(GenerateMasterKey().Encode() + "\n"))
	f.Add(make([]byte, 32))
	f.Add([]byte("  " + base64.RawURLEncoding.EncodeToString(make([]byte, 32)) + "\r\n"))
	f.Add([]byte(base64.StdEncoding.EncodeToString(make([]byte, 31))))
	f.Add(bytes.Repeat([]byte("k"), 2000))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(dir, "kek")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		k, err := ReadKEK(path)
		if err == nil && k.IsZero() {
			t.Fatalf("ReadKEK(%q) accepted no key", data)
		}
	})
}
