package notices

import (
	"testing"

	"steward/internal/processors"
)

// A processor holds a field when one of its categories is the field's or a parent of
// it: a rectification tells it of that field only.
func TestHolds(t *testing.T) {
	for _, c := range []struct {
		categories []string
		field      string
		want       bool
	}{
		{[]string{"user.contact.email", "user.name"}, "email", true},
		{[]string{"user.contact.email", "user.name"}, "name", true},
		{[]string{"user.contact.email"}, "name", false},
		{[]string{"user.contact"}, "email", true},
		{[]string{"user.contact"}, "country", true},
		{[]string{"user"}, "birthdate", true},
		{[]string{"user.contact.email"}, "phone", false},
		{[]string{"user.contact.emailx"}, "email", false},
		{[]string{"user.contact.email.work"}, "email", false}, // a narrower category is not the field
		{[]string{"user.contact.email"}, "password", false},   // not a field a rectification tells of
	} {
		if got := holds(processors.Processor{Categories: c.categories}, c.field); got != c.want {
			t.Errorf("holds(%v, %s) = %v, want %v", c.categories, c.field, got, c.want)
		}
	}
}
