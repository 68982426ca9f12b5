package server

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"
)

func stdJSON(t *testing.T, v any) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := json.NewEncoder(&buf).Encode(v); err != nil {
		t.Fatal(err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}

// AppendJSONString writes what encoding/json writes, for every kind of character it
// treats apart.
func TestAppendJSONString(t *testing.T) {
	for _, s := range []string{"", "plain", `quote " and \ backslash`, "<script>&amp;</script>",
		"\x00\x01\x07\b\t\n\v\f\r\x1b\x1f\x7f", "Zoë Ünal 日本 🙂", "line\u2028para\u2029end",
		"bad \xff\xfe utf8 \xc3", "trailing \xe2\x80", "\U0010FFFF", string(rune(0xFFFD))} {
		if got, want := AppendJSONString(nil, s), stdJSON(t, s); !bytes.Equal(got, want) {
			t.Errorf("%q: got %s, want %s", s, got, want)
		}
	}
}

func FuzzAppendJSONString(f *testing.F) {
	f.Add("a<b>&\"\\\x00\u2028\xff")
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := AppendJSONString(nil, s), stdJSON(t, s); !bytes.Equal(got, want) {
			t.Errorf("%q: got %s, want %s", s, got, want)
		}
	})
}

func TestAppendJSONTimeAndBool(t *testing.T) {
	for _, tm := range []time.Time{time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC), time.Date(2026, 3, 1, 12, 0, 0, 123456789, time.UTC),
		time.Date(1999, 12, 31, 23, 59, 59, 1000, time.FixedZone("x", 5*3600+1800)), {}} {
		if got, want := AppendJSONTime(nil, tm), stdJSON(t, tm); !bytes.Equal(got, want) {
			t.Errorf("%v: got %s, want %s", tm, got, want)
		}
	}
	for _, v := range []bool{true, false} {
		if got, want := AppendJSONBool(nil, v), stdJSON(t, v); !bytes.Equal(got, want) {
			t.Errorf("%v: got %s, want %s", v, got, want)
		}
	}
}
