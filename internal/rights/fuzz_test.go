package rights

import (
	"bytes"
	"context"
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"steward/internal/blob"
)

// An erasure ledger object is read without panicking whatever the store holds, and
// one that verifies is the object written: its MAC covers every field, so no change
// (a member twice or in another case, an entry added, data after the object) passes.
func FuzzReadLedgerObject(f *testing.F) {
	ctx := context.Background()
	blobs, err := blob.NewDisk(f.TempDir())
	if err != nil {
		f.Fatal(err)
	}
	key := []byte("0123456789abcdef0123456789abcdef")
	s := &Service{ledger: Ledger{Key: key, Blobs: blobs}, objKey: deriveKey(key, "steward ledger object v1")}
	const requestID, erasedAt = "a1b2c3", int64(1764244800000)
	entries := []LedgerEntry{{Kind: KindID, Hash: strings.Repeat("ab", 32)}, {Kind: KindAddress, Hash: strings.Repeat("0f", 32)}}
	if err := s.writeLedgerObject(ctx, requestID, erasedAt, entries); err != nil {
		f.Fatal(err)
	}
	name := ledgerObjectName(erasedAt, requestID)
	want, err := s.readLedgerObject(ctx, name)
	if err != nil {
		f.Fatal(err)
	}
	b, _ := json.Marshal(want)
	text := string(b)
	for _, v := range []string{
		text,
		strings.Replace(text, `"request_id":`, `"Request_ID":"zzz","request_id":`, 1),
		strings.Replace(text, `"entries":[`, `"entries":[],"entries":[`, 1),
		strings.Replace(text, `"entries":[`, `"entries":[{"kind":"id","hash":"`+strings.Repeat("cd", 32)+`"},`, 1),
		strings.Replace(text, `"kind":"id"`, `"kind":"id\nforged 00"`, 1),
		text + `{}`,
		strings.Replace(text, `"erased_at":1764244800000`, `"erased_at":1764244800000.0`, 1),
		strings.Replace(text, `"erased_at":1764244800000`, `"erased_at":-1`, 1),
		strings.Repeat(`{"entries":[`, 5000),
	} {
		f.Add([]byte(v))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if _, err := blobs.Put(ctx, name, bytes.NewReader(data), int64(len(data))); err != nil {
			t.Fatal(err)
		}
		got, err := s.readLedgerObject(ctx, name)
		if err != nil {
			return
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("readLedgerObject accepted %q as %+v, want %+v", data, got, want)
		}
	})
}
