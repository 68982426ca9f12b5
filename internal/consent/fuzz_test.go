package consent

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"
)

// Whatever file Verify is given, it accepts only the receipt that was signed, read as
// it was signed: the receipt it returns re-encodes to the exact bytes the signature
// covers. The seeds are the genuine file and the variants of issue 11's defect 5.
func FuzzVerify(f *testing.F) {
	signer, _, err := LoadSigner(filepath.Join(f.TempDir(), "receipt.key"), "steward.example", true)
	if err != nil {
		f.Fatal(err)
	}
	pub := signer.PublicKey()
	r := Receipt{Format: receiptFormat, ReceiptID: "42", Issuer: "steward.example", Subject: "acc_1", Purpose: "newsletter",
		PurposeName: "News & <offers>", LawfulBasis: "consent", Decision: "withdrawn", Time: "2026-11-27T12:00:00Z",
		Source: "web", PolicyVersion: "3", KeyID: KeyID(pub)}
	signed := signer.Sign(r)
	file, err := json.Marshal(signed)
	if err != nil {
		f.Fatal(err)
	}
	msg, _ := json.Marshal(r)
	text := string(file)
	var pretty bytes.Buffer
	_ = json.Indent(&pretty, file, "", "  ")
	for _, s := range []string{
		text,
		pretty.String() + "\n",
		strings.Replace(text, `"decision":"withdrawn"`, `"decision":"withdrawn","Decision":"granted"`, 1),
		strings.Replace(text, `"decision":"withdrawn"`, `"Decision":"granted","decision":"withdrawn"`, 1),
		strings.Replace(text, `"decision":"withdrawn"`, `"decision":"withdrawn","decision":"granted"`, 1),
		strings.Replace(text, `"decision":"withdrawn"`, `"\u0064ecision":"withdrawn"`, 1),
		strings.Replace(text, `"signature":`, `"Signature":`, 1),
		strings.Replace(text, `{"receipt":`, `{"receipt":{"decision":"granted"},"receipt":`, 1),
		text + `{"receipt":{}}`,
		text + "\x00",
		`[` + text + `]`,
		strings.Replace(text, `"receipt_id":"42"`, `"receipt_id":42`, 1),
		strings.Replace(text, `News \u0026 \u003coffers\u003e`, `News & <offers>`, 1),
		strings.Repeat(`{"receipt":`, 1000),
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := Verify(data, pub)
		if err != nil {
			return
		}
		if got != r {
			t.Fatalf("Verify accepted %q as %+v, want the signed %+v", data, got, r)
		}
		if again, _ := json.Marshal(got); !bytes.Equal(again, msg) {
			t.Fatalf("the receipt accepted re-encodes to %s, the signed bytes are %s", again, msg)
		}
	})
}

// Every receipt Sign makes verifies, whatever its values hold, and reads back as the
// bytes it was signed over.
func FuzzSignVerify(f *testing.F) {
	signer, _, err := LoadSigner(filepath.Join(f.TempDir(), "receipt.key"), "steward.example", true)
	if err != nil {
		f.Fatal(err)
	}
	pub := signer.PublicKey()
	f.Add("acc_1", "News & <offers>", "granted", "2026-11-27T12:00:00.123456789Z")
	f.Add("\u2028", "\"\\\x00", "withdrawn", "\xff\xfe")
	f.Fuzz(func(t *testing.T, subject, name, decision, at string) {
		r := Receipt{Format: receiptFormat, ReceiptID: "7", Issuer: "steward.example", Subject: subject, Purpose: "newsletter",
			PurposeName: name, LawfulBasis: "consent", Decision: decision, Time: at, Source: "api", PolicyVersion: "1", KeyID: KeyID(pub)}
		file, err := json.Marshal(signer.Sign(r))
		if err != nil {
			t.Fatal(err)
		}
		got, err := Verify(file, pub)
		if err != nil {
			t.Fatalf("Verify(Sign(%+v)): %v", r, err)
		}
		// A byte that is not UTF-8 is signed as U+FFFD: the receipt reads so.
		want := r
		want.Subject, want.PurposeName = strings.ToValidUTF8(r.Subject, "\uFFFD"), strings.ToValidUTF8(r.PurposeName, "\uFFFD")
		want.Decision, want.Time = strings.ToValidUTF8(r.Decision, "\uFFFD"), strings.ToValidUTF8(r.Time, "\uFFFD")
		if got != want {
			t.Fatalf("read back as %+v, signed %+v", got, want)
		}
	})
}

// An operator's purposes file is read without panicking, and a register it accepts is
// consistent: keys well formed and unique, every purpose found by its key, every
// processor named defined; written back in TOML it reads as the same register.
func FuzzLoadRegister(f *testing.F) {
	f.Add(defaultRegister)
	f.Add([]byte("[[purpose]]\nkey = \"news\"\nname = \"N\"\ndescription = \"D\"\nbasis = \"consent\"\n"))
	f.Add([]byte("[[purpose]]\nkey = \"news\"\nname = \"N\"\ndescription = \"D\"\nbasis = \"consent\"\n[[purpose]]\nkey = \"news\"\nname = \"N\"\ndescription = \"D\"\nbasis = \"consent\"\n"))
	f.Add([]byte("[[purpose]]\nKey = \"news\"\nkey = \"news\"\nname = \"N\"\ndescription = \"D\"\nbasis = \"Consent\"\n"))
	f.Add([]byte("[[purpose]]\nkey = \"restriction\"\nname = \"N\"\ndescription = \"D\\r\\nBcc: x\"\nbasis = \"contract\"\nsharing = true\nprocessors = [\"nobody\"]\n"))
	f.Add([]byte("purpose = 1\n[[processor]]\nkey = \"\"\n"))
	f.Add([]byte("[[purpose]]\nkey = \"" + strings.Repeat("a", 10000) + "\"\n"))
	f.Add([]byte(strings.Repeat("[", 5000)))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(dir, "purposes.toml")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		reg, err := LoadRegister(path)
		if err != nil {
			return
		}
		checkRegister(t, reg)
		var buf bytes.Buffer
		if err := toml.NewEncoder(&buf).Encode(reg); err != nil {
			t.Fatalf("encode: %v", err)
		}
		if err := os.WriteFile(path, buf.Bytes(), 0o600); err != nil {
			t.Fatal(err)
		}
		again, err := LoadRegister(path)
		if err != nil {
			t.Fatalf("the register written back does not read: %v\n%s", err, buf.Bytes())
		}
		if !sameRegister(reg, again) {
			t.Fatalf("the register written back reads differently:\n%+v\n%+v", reg, again)
		}
	})
}

func checkRegister(t *testing.T, reg *Register) {
	t.Helper()
	procs := map[string]bool{}
	for _, p := range reg.Processors {
		if !keyRE.MatchString(p.Key) || procs[p.Key] || p.Name == "" || p.Country == "" {
			t.Fatalf("processor %+v accepted", p)
		}
		procs[p.Key] = true
		if got, ok := reg.Processor(p.Key); !ok || got.Key != p.Key {
			t.Fatalf("Processor(%q) = %+v, %v", p.Key, got, ok)
		}
	}
	keys := reg.Keys()
	if len(keys) != len(reg.Purposes) {
		t.Fatalf("Keys() = %v for %d purposes", keys, len(reg.Purposes))
	}
	for _, p := range reg.Purposes {
		if !keyRE.MatchString(p.Key) || IsFlag(p.Key) || p.Name == "" || p.Description == "" {
			t.Fatalf("purpose %+v accepted", p)
		}
		switch p.Basis {
		case Contract, LegitimateInterest, Consent, LegalObligation:
		default:
			t.Fatalf("purpose %q: basis %q accepted", p.Key, p.Basis)
		}
		if got, ok := reg.Purpose(p.Key); !ok || got.Key != p.Key || !slices.Contains(keys, p.Key) {
			t.Fatalf("purpose %q not found by its key", p.Key)
		}
		for _, k := range p.Processors {
			if !procs[k] {
				t.Fatalf("purpose %q: unknown processor %q accepted", p.Key, k)
			}
		}
	}
}

func sameRegister(a, b *Register) bool {
	if len(a.Purposes) != len(b.Purposes) || len(a.Processors) != len(b.Processors) {
		return false
	}
	for i, p := range a.Purposes {
		q := b.Purposes[i]
		if p.Key != q.Key || p.Name != q.Name || p.Description != q.Description || p.Basis != q.Basis ||
			p.Marketing != q.Marketing || p.Sharing != q.Sharing || !slices.Equal(p.Processors, q.Processors) {
			return false
		}
	}
	for i, p := range a.Processors {
		q := b.Processors[i]
		if p.Key != q.Key || p.Name != q.Name || p.Service != q.Service || p.Country != q.Country ||
			p.Safeguard != q.Safeguard || !slices.Equal(p.Categories, q.Categories) {
			return false
		}
	}
	return true
}
