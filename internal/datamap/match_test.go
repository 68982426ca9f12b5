package datamap

import (
	"bytes"
	"strings"
	"testing"
)

// The matcher finds a term wherever it lies in the stream, across a chunk boundary too,
// whatever the case, and counts each match once.
func TestScanReader(t *testing.T) {
	terms := []Term{{Kind: "email", Value: "Ada.Lovelace@Example.org"}, {Kind: "name", Value: "Özgür Çelik"}, {Kind: "id", Value: "abcd"}}
	tests := []struct {
		name string
		data string
		want map[string]int // kind -> count
	}{
		{"nothing", strings.Repeat("x", 100), nil},
		{"lower case", "..ada.lovelace@example.org..", map[string]int{"email": 1}},
		{"upper case", "..ADA.LOVELACE@EXAMPLE.ORG..", map[string]int{"email": 1}},
		{"across every chunk boundary", strings.Repeat("-", 5) + "ada.lovelace@example.org" + strings.Repeat("-", 3) + "Ada.Lovelace@example.org", map[string]int{"email": 2}},
		{"name as written", "\x00\x17Özgür Çelik\x00", map[string]int{"name": 1}},
		{"name in upper case", "ÖZGÜR ÇELIK", map[string]int{"name": 1}},
		{"name in lower case", "özgür çelik", map[string]int{"name": 1}},
		{"short term inside the carried end", "abcd" + strings.Repeat(".", 30) + "ABCD", map[string]int{"id": 2}},
		{"adjacent", "abcdabcd", map[string]int{"id": 2}},
		{"binary around", "\xff\xfeABCD\xc3", map[string]int{"id": 1}},
	}
	for _, tt := range tests {
		for _, size := range []int{1, 3, 7, 16, 1 << 20} {
			t.Run(tt.name, func(t *testing.T) {
				found, err := scanReader(strings.NewReader(tt.data), "here", usable(terms), size)
				if err != nil {
					t.Fatal(err)
				}
				got := map[string]int{}
				for _, f := range found {
					if f.Where != "here" {
						t.Errorf("where = %q, want here", f.Where)
					}
					got[f.Kind] = f.Count
				}
				if len(got) != len(tt.want) {
					t.Fatalf("chunks of %d: got %v, want %v", size, got, tt.want)
				}
				for k, n := range tt.want {
					if got[k] != n {
						t.Errorf("chunks of %d: %s found %d times, want %d", size, k, got[k], n)
					}
				}
			})
		}
	}
}

// A file is read a chunk at a time: the reader never gets a buffer larger than a chunk.
func TestScanReaderChunks(t *testing.T) {
	data := bytes.Repeat([]byte("z"), 3*chunkSize+5)
	copy(data[chunkSize-4:], "needle")
	r := &maxRead{r: bytes.NewReader(data)}
	found, err := ScanReader(r, "f", []Term{{Kind: "k", Value: "NEEDLE"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(found) != 1 || found[0].Count != 1 {
		t.Errorf("found %v, want the needle once", found)
	}
	if r.largest > chunkSize {
		t.Errorf("largest read %d, want at most %d", r.largest, chunkSize)
	}
}

type maxRead struct {
	r       *bytes.Reader
	largest int
}

func (m *maxRead) Read(p []byte) (int, error) {
	m.largest = max(m.largest, len(p))
	return m.r.Read(p)
}
