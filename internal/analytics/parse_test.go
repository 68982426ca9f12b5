package analytics

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"steward/internal/apperr"
)

// ParseEvent reads what encoding/json reads, and refuses, naming the field, what the
// API's strict decoder refuses.
func TestParseEvent(t *testing.T) {
	good := []string{
		`{"site":"example.com","kind":"pageview","path":"/a","referrer":"https://x.example/","name":"","props":{"plan":"pro","n":"1"}}`,
		` { "site" : "example.com" , "path" : "/caf\u00e9\"q\"" , "props" : { } , "name": null } `,
		`{"site":"example.com","path":"/","consent":"granted"}`,
		`{}`,
	}
	for _, b := range good {
		got, err := ParseEvent([]byte(b))
		if err != nil {
			t.Errorf("ParseEvent(%s): %v", b, err)
			continue
		}
		var want Event
		if err := json.Unmarshal([]byte(b), &want); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("ParseEvent(%s) = %+v, encoding/json reads %+v", b, got, want)
		}
	}
	bad := []struct{ body, field, code string }{
		{`{"site":"a","site":"b"}`, "site", "duplicate_field"},
		{`{"Site":"a"}`, "Site", "unknown_field"},
		{`{"user":"jane"}`, "user", "unknown_field"},
		{`{"path":7}`, "path", "wrong_type"},
		{`{"props":"x"}`, "props", "wrong_type"},
		{`{"consent":true}`, "consent", "wrong_type"},
		{`{"consent":"granted","consent":"refused"}`, "consent", "duplicate_field"},
		{`{"Consent":"granted"}`, "Consent", "unknown_field"},
		{`{"props":{"a":1}}`, "props.a", "wrong_type"},
		{`{"props":{"a":"1","a":"2"}}`, "props.a", "duplicate_field"},
		{`{"props":{` + strings.Repeat(`"k":"v",`, 0) + `"a":"1","b":"2","c":"3","d":"4","e":"5","f":"6","g":"7","h":"8","i":"9"}}`, "props", "too_many"},
		{`{"site":"a"} {}`, "", "malformed_json"},
		{`{"site":"a"`, "", "malformed_json"},
		{`{"site":"a\u0"}`, "", "malformed_json"},
		{"{\"site\":\"a\nb\"}", "", "malformed_json"},
		{`[]`, "", "malformed_json"},
		{``, "", "malformed_json"},
	}
	for _, b := range bad {
		_, err := ParseEvent([]byte(b.body))
		e, ok := apperr.As(err)
		if !ok || e.Field != b.field || e.Code != b.code {
			t.Errorf("ParseEvent(%s) = %v, want %s on %q", b.body, err, b.code, b.field)
		}
	}
}

// Nothing a client sends makes the parser panic or read past the body.
func FuzzParseEvent(f *testing.F) {
	f.Add(`{"site":"example.com","props":{"a":"b"}}`)
	f.Add(`{"site":"\u00e9\\","path":null}`)
	f.Fuzz(func(t *testing.T, s string) {
		e, err := ParseEvent([]byte(s))
		if err == nil {
			var want Event
			if jerr := json.Unmarshal([]byte(s), &want); jerr != nil {
				t.Fatalf("ParseEvent took %q, which encoding/json refuses: %v", s, jerr)
			}
			if len(e.Props) == 0 {
				e.Props, want.Props = nil, nil
			}
			if !reflect.DeepEqual(e, want) {
				t.Fatalf("ParseEvent(%q) = %+v, encoding/json %+v", s, e, want)
			}
		}
	})
}
