package api

import (
	"bytes"
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"steward/internal/account"
	"steward/internal/apperr"
	"steward/internal/server"
)

// decode runs a body through the API's decoder into v.
func decodeBody(t *testing.T, body string, v any) error {
	t.Helper()
	return server.DecodeJSON(httptest.NewRecorder(), httptest.NewRequest("POST", "/", strings.NewReader(body)), v)
}

// A profile change tells a field left out (nil: unchanged) from one cleared ("").
func TestPatchRequestDecoding(t *testing.T) {
	var p patchRequest
	if err := decodeBody(t, `{"name":"","phone":"+33 1 23 45 67 89","public":{"name":true},"current_password":"pw"}`, &p); err != nil {
		t.Fatal(err)
	}
	if p.Name == nil || *p.Name != "" {
		t.Errorf("name = %v, want cleared", p.Name)
	}
	if p.Phone == nil || *p.Phone != "+33 1 23 45 67 89" {
		t.Errorf("phone = %v", p.Phone)
	}
	if p.Email != nil || p.HomeAddress != nil || p.BusinessAddress != nil || p.Birthdate != nil || p.Country != nil {
		t.Errorf("fields left out are set: %+v", p)
	}
	if !p.Public["name"] || len(p.Public) != 1 || p.CurrentPassword != "pw" {
		t.Errorf("public %v, password %q", p.Public, p.CurrentPassword)
	}
	err := decodeBody(t, `{"status":"active"}`, &patchRequest{})
	if e, ok := apperr.As(err); !ok || e.Field != "status" || e.Code != "unknown_field" {
		t.Errorf("a status in a profile change: %v, want unknown_field naming status", err)
	}
	err = decodeBody(t, `{"public":{"name":"yes"}}`, &patchRequest{})
	if e, ok := apperr.As(err); !ok || e.Code != "wrong_type" || !strings.HasPrefix(e.Field, "public") {
		t.Errorf("a public flag that is not a boolean: %v, want wrong_type naming public", err)
	}
}

func TestRequestDecoding(t *testing.T) {
	var reg registerRequest
	if err := decodeBody(t, `{"email":"a@example.org","password":"pw","birthdate":"1990-01-01","country":"FR","guardian_email":"g@example.org"}`, &reg); err != nil {
		t.Fatal(err)
	}
	if reg.Email != "a@example.org" || reg.Country != "FR" || reg.GuardianEmail != "g@example.org" {
		t.Errorf("register = %+v", reg)
	}
	// A client cannot choose what the service decides.
	for _, field := range []string{"id", "status", "email_verified"} {
		err := decodeBody(t, `{"email":"a@example.org","`+field+`":"x"}`, &registerRequest{})
		if e, ok := apperr.As(err); !ok || e.Field != field || e.Code != "unknown_field" {
			t.Errorf("register with %s: %v, want unknown_field naming it", field, err)
		}
	}

	var pc putConsentsRequest
	if err := decodeBody(t, `{"choices":{"newsletter":true,"partners":false},"objected":false}`, &pc); err != nil {
		t.Fatal(err)
	}
	if !pc.Choices["newsletter"] || pc.Choices["partners"] || len(pc.Choices) != 2 || pc.Restricted != nil || pc.Objected == nil || *pc.Objected {
		t.Errorf("consents = %+v; want two choices, restriction unchanged, objection lifted", pc)
	}
	err := decodeBody(t, `{"choices":{"newsletter":"yes"}}`, &putConsentsRequest{})
	if e, ok := apperr.As(err); !ok || e.Code != "wrong_type" || !strings.HasPrefix(e.Field, "choices") {
		t.Errorf("a choice that is not a boolean: %v", err)
	}
}

// The profile as the API shows it carries every field the member gave and leaves the
// empty optional ones out.
func TestProfileResponse(t *testing.T) {
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	b, err := json.Marshal(toProfile(account.Profile{ID: "id1", Email: "a@example.org", Status: account.Active, Name: "Ada",
		Public: map[string]bool{"name": true}, CreatedAt: at, UpdatedAt: at}))
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if got["id"] != "id1" || got["email"] != "a@example.org" || got["status"] != "active" || got["name"] != "Ada" ||
		got["created_at"] != "2026-03-01T12:00:00Z" || got["public"].(map[string]any)["name"] != true {
		t.Errorf("profile = %s", b)
	}
	for _, absent := range []string{"pending_email", "guardian_email", "guardian_confirmed"} {
		if _, ok := got[absent]; ok {
			t.Errorf("profile holds an empty %s: %s", absent, b)
		}
	}
}

// The profile's own JSON writer gives what encoding/json gives, whichever optional
// fields are set and whatever the strings hold.
func TestProfileAppendJSON(t *testing.T) {
	type plain profileResponse // without the AppendJSON method
	at := time.Date(2026, 3, 1, 12, 0, 0, 5, time.UTC)
	for _, p := range []profileResponse{
		{},
		{ID: "id1", Email: "a@example.org", Status: "active", Name: "Ada <Lovelace> & \"co\"", Public: map[string]bool{},
			CreatedAt: at, UpdatedAt: at.Add(time.Hour)},
		{ID: "id2", Email: "b@example.org", PendingEmail: "new@example.org", EmailVerified: true, Status: "active",
			Name: "Zoë\u2028\x01\xff", Phone: "+49 30 1234", HomeAddress: "Weg 1\nBerlin", BusinessAddress: "Tab\there",
			Birthdate: "2012-05-06", Country: "DE", GuardianEmail: "g@example.org", GuardianConfirmed: true,
			Public: map[string]bool{"phone": false, "name": true, "country": true}, CreatedAt: at, UpdatedAt: at},
	} {
		want, err := json.Marshal(plain(p))
		if err != nil {
			t.Fatal(err)
		}
		if got := p.AppendJSON(nil); !bytes.Equal(got, want) {
			t.Errorf("got  %s\nwant %s", got, want)
		}
	}
}
