package api

import (
	"bytes"
	"encoding/json"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"

	"steward/internal/apperr"
	"steward/internal/server"
)

// requestTypes makes a fresh value of each request body the API decodes.
var requestTypes = []func() any{
	func() any { return new(registerRequest) },
	func() any { return new(tokenRequest) },
	func() any { return new(guardianDecision) },
	func() any { return new(loginRequest) },
	func() any { return new(resetRequest) },
	func() any { return new(confirmResetRequest) },
	func() any { return new(changePasswordRequest) },
	func() any { return new(putConsentsRequest) },
	func() any { return new(patchRequest) },
	func() any { return new(deleteRequest) },
	func() any { return new(subscribeRequest) },
	func() any { return new(campaignRequest) },
	func() any { return new(campaignPatch) },
}

// Any body DecodeJSON is given, into any of the API's request types, is either refused
// as invalid (or too large) input, never another kind of error, or is one valid JSON
// object (or null) that decodes to a value of the type: encoded again, it decodes to
// the same value.
func FuzzDecodeJSON(f *testing.F) {
	for i, s := range []string{
		`{"email":"ada@example.org","password":"correct horse battery","name":"Ada","birthdate":"1985-03-02","country":"GB"}`,
		`{"email":"a@example.org","EMAIL":"b@example.org"}`,
		`{"email":"a@example.org","email":"b@example.org"}`,
		`{"token":"abc"}{"token":"def"}`,
		`{"token":"abc"} x`,
		`{"choices":{"newsletter":true,"Newsletter":false},"restricted":null}`,
		`{"choices":{"newsletter":true,"newsletter":false}}`,
		`{"public":{"name":true,"Name":false}}`,
		`{"\u212aind":"x","\u017fubject":"y"}`,
		`{"birthdate":"1990-01-01","public":{"name":true}}`,
		`{"name":"Eve\r\nBcc: victim@example.com\r\n\r\nInjected body"}`,
		`{"\u0065mail":"x"}`,
		`{"unknown":1}`,
		`{"agree":"yes"}`,
		`null`,
		`[]`,
		"\xef\xbb\xbf{}",
		`{"name":"` + strings.Repeat("a", 70000) + `"}`,
		strings.Repeat(`{"public":`, 10000),
	} {
		f.Add([]byte(s), uint8(i), "application/json")
	}
	f.Add([]byte(`{}`), uint8(0), "text/plain")
	f.Fuzz(func(t *testing.T, body []byte, which uint8, ctype string) {
		mk := requestTypes[int(which)%len(requestTypes)]
		v := mk()
		err := decode(body, ctype, v)
		if err != nil {
			if e, ok := apperr.As(err); !ok || (e.Kind != apperr.Invalid && e.Kind != apperr.TooLarge) {
				t.Fatalf("DecodeJSON(%q): %v, want an invalid or too large input", body, err)
			}
			return
		}
		if !json.Valid(body) {
			t.Fatalf("DecodeJSON accepted %q, which is not JSON", body)
		}
		if trimmed := bytes.TrimSpace(body); trimmed[0] != '{' && string(trimmed) != "null" {
			t.Fatalf("DecodeJSON accepted %q, which is not an object", body)
		}
		again, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		w := mk()
		if err := decode(again, "application/json", w); err != nil || !reflect.DeepEqual(v, w) {
			t.Fatalf("%T %s decoded again: %+v, %v; want %+v", v, again, w, err, v)
		}
	})
}

func decode(body []byte, ctype string, v any) error {
	r := httptest.NewRequest("POST", "/api/v1/x", bytes.NewReader(body))
	if ctype != "" {
		r.Header.Set("Content-Type", ctype)
	}
	return server.DecodeJSON(httptest.NewRecorder(), r, v)
}
