package consent

import (
	"bytes"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
)

// A receipt verifies only as it was signed: every variant that some reader could take
// differently (a member twice, in another case, data after the object) is refused.
func TestVerifyReadsOneWay(t *testing.T) {
	signer, _, err := LoadSigner(filepath.Join(t.TempDir(), "receipt.key"), "steward.example", true)
	if err != nil {
		t.Fatal(err)
	}
	pub := signer.PublicKey()
	r := Receipt{Format: receiptFormat, ReceiptID: "42", Issuer: "steward.example", Subject: "acc_1", Purpose: "newsletter",
		PurposeName: "News & <offers>", LawfulBasis: "consent", Decision: "withdrawn", Time: "2026-11-27T12:00:00Z",
		Source: "web", PolicyVersion: "3", KeyID: KeyID(pub)}
	file, err := json.Marshal(signer.Sign(r))
	if err != nil {
		t.Fatal(err)
	}
	got, err := Verify(file, pub)
	if err != nil || got != r {
		t.Fatalf("the genuine receipt: %+v, %v", got, err)
	}
	var pretty bytes.Buffer
	if err := json.Indent(&pretty, file, "", "  "); err != nil {
		t.Fatal(err)
	}
	if got, err := Verify(append(pretty.Bytes(), '\n'), pub); err != nil || got != r {
		t.Fatalf("the genuine receipt, indented: %+v, %v", got, err)
	}
	text := string(file)
	for _, tc := range []struct{ name, file string }{
		{"a case variant of a member", strings.Replace(text, `"decision":"withdrawn"`, `"decision":"withdrawn","Decision":"granted"`, 1)},
		{"a case variant before the member", strings.Replace(text, `"decision":"withdrawn"`, `"Decision":"granted","decision":"withdrawn"`, 1)},
		{"a member twice", strings.Replace(text, `"decision":"withdrawn"`, `"decision":"withdrawn","decision":"granted"`, 1)},
		{"a member in another case only", strings.Replace(text, `"decision":"withdrawn"`, `"Decision":"withdrawn"`, 1)},
		{"an escaped member name", strings.Replace(text, `"decision":"withdrawn"`, `"\u0064ecision":"withdrawn"`, 1)},
		{"an unknown member", strings.Replace(text, `"decision":"withdrawn"`, `"decision":"withdrawn","note":"x"`, 1)},
		{"a missing member", strings.Replace(text, `"source":"web",`, ``, 1)},
		{"a second object after the file", text + `{"receipt":{}}`},
		{"trailing garbage", text + `x`},
		{"the receipt twice in the file", strings.Replace(text, `{"receipt":`, `{"receipt":{"decision":"granted"},"receipt":`, 1)},
		{"the file's members in another case", strings.Replace(text, `"signature":`, `"Signature":`, 1)},
		{"a changed decision", strings.Replace(text, `"withdrawn"`, `"granted"`, 1)},
		{"a value that is not a string", strings.Replace(text, `"receipt_id":"42"`, `"receipt_id":42`, 1)},
		{"not an object", `[` + text + `]`},
	} {
		if tc.file == text {
			t.Fatalf("%s: the variant is the genuine file", tc.name)
		}
		if got, err := Verify([]byte(tc.file), pub); err == nil {
			t.Errorf("%s verified: %+v", tc.name, got)
		}
	}
	other, _, err := LoadSigner(filepath.Join(t.TempDir(), "other.key"), "steward.example", true)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Verify(file, other.PublicKey()); err == nil {
		t.Error("a receipt verified against another operator's key")
	}
}
