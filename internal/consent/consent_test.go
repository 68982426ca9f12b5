package consent

import (
	"strings"
	"testing"
)

func TestDecide(t *testing.T) {
	reg, err := LoadRegister("")
	if err != nil {
		t.Fatal(err)
	}
	p := func(k string) Purpose { v, _ := reg.Purpose(k); return v }
	tests := []struct {
		purpose string
		flags   Flags
		d       Decision
		stale   bool // asked again by a material change of the policy since d
		want    bool
	}{
		{"account", Flags{Restricted: true, Objected: true}, "", false, true},
		{"newsletter", Flags{}, "", false, false},
		{"newsletter", Flags{}, Granted, false, true},
		{"newsletter", Flags{}, Withdrawn, false, false},
		{"newsletter", Flags{Restricted: true}, Granted, false, false},
		{"newsletter", Flags{Objected: true}, Granted, false, false},
		{"email_open_tracking", Flags{Objected: true}, Granted, false, true}, // not marketing, not legitimate interest
		{"security", Flags{}, "", false, true},
		{"security", Flags{}, Withdrawn, false, false},
		{"security", Flags{Objected: true}, Granted, false, false},
		{"security", Flags{Restricted: true}, "", false, false},
		// A consent asked again counts as not given; nothing else changes.
		{"newsletter", Flags{}, Granted, true, false},
		{"newsletter", Flags{}, Withdrawn, true, false},
		{"account", Flags{}, "", true, true},
		{"security", Flags{}, Granted, true, true},
	}
	for _, tt := range tests {
		if got := decide(p(tt.purpose), tt.flags, tt.d, tt.stale); got.Allowed != tt.want {
			t.Errorf("decide(%s, %+v, %q, stale %v) = %+v, want %v", tt.purpose, tt.flags, tt.d, tt.stale, got, tt.want)
		}
	}
}

func TestRegisterChecks(t *testing.T) {
	bad := map[string]string{
		"no purposes":                   ``,
		"bad basis":                     "[[purpose]]\nkey='x1'\nname='X'\ndescription='d'\nbasis='whim'",
		"unknown processor":             "[[purpose]]\nkey='x1'\nname='X'\ndescription='d'\nbasis='consent'\nprocessors=['nobody']",
		"unknown setting":               "[[purpose]]\nkey='x1'\nname='X'\ndescription='d'\nbasis='consent'\ncolour='red'",
		"policy_version not on consent": "[[purpose]]\nkey='x1'\nname='X'\ndescription='d'\nbasis='contract'\npolicy_version='2026.1'",
		"duplicate":                     "[[purpose]]\nkey='x1'\nname='X'\ndescription='d'\nbasis='consent'\n[[purpose]]\nkey='x1'\nname='X'\ndescription='d'\nbasis='consent'",
		"sharing on contract":           "[[purpose]]\nkey='x1'\nname='X'\ndescription='d'\nbasis='contract'\nsharing=true",
	}
	dir := t.TempDir()
	for name, text := range bad {
		path := dir + "/" + strings.ReplaceAll(name, " ", "_") + ".toml"
		if err := writeFile(path, text); err != nil {
			t.Fatal(err)
		}
		if _, err := LoadRegister(path); err == nil {
			t.Errorf("%s: loaded", name)
		}
	}
}
