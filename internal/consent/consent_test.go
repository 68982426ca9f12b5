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
		want    bool
	}{
		{"account", Flags{Restricted: true, Objected: true}, "", true},
		{"newsletter", Flags{}, "", false},
		{"newsletter", Flags{}, Granted, true},
		{"newsletter", Flags{}, Withdrawn, false},
		{"newsletter", Flags{Restricted: true}, Granted, false},
		{"newsletter", Flags{Objected: true}, Granted, false},
		{"email_open_tracking", Flags{Objected: true}, Granted, true}, // not marketing, not legitimate interest
		{"security", Flags{}, "", true},
		{"security", Flags{}, Withdrawn, false},
		{"security", Flags{Objected: true}, Granted, false},
		{"security", Flags{Restricted: true}, "", false},
	}
	for _, tt := range tests {
		if got := decide(p(tt.purpose), tt.flags, tt.d, false); got.Allowed != tt.want {
			t.Errorf("decide(%s, %+v, %q) = %+v, want %v", tt.purpose, tt.flags, tt.d, got, tt.want)
		}
	}
}

func TestRegisterChecks(t *testing.T) {
	bad := map[string]string{
		"no purposes":         ``,
		"bad basis":           "[[purpose]]\nkey='x1'\nname='X'\ndescription='d'\nbasis='whim'",
		"unknown processor":   "[[purpose]]\nkey='x1'\nname='X'\ndescription='d'\nbasis='consent'\nprocessors=['nobody']",
		"unknown setting":     "[[purpose]]\nkey='x1'\nname='X'\ndescription='d'\nbasis='consent'\ncolour='red'",
		"duplicate":           "[[purpose]]\nkey='x1'\nname='X'\ndescription='d'\nbasis='consent'\n[[purpose]]\nkey='x1'\nname='X'\ndescription='d'\nbasis='consent'",
		"sharing on contract": "[[purpose]]\nkey='x1'\nname='X'\ndescription='d'\nbasis='contract'\nsharing=true",
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
