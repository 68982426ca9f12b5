package config

import "testing"

// TestDev: development mode is off by default, and --dev alone switches it on.
func TestDev(t *testing.T) {
	for _, c := range []struct {
		args []string
		env  string
		want bool
	}{
		{nil, "", false},
		{[]string{"--dev"}, "", true},
		{[]string{"--dev=false"}, "", false},
		{[]string{"serve", "--dev"}, "", true},
		{nil, "true", true},
		{[]string{"--dev=false"}, "true", false},
	} {
		cfg, _, err := Load(append([]string{"--data", t.TempDir()}, c.args...), func(k string) string {
			if k == "STEWARD_DEV" {
				return c.env
			}
			return ""
		})
		if err != nil {
			t.Fatalf("%v (STEWARD_DEV=%q): %v", c.args, c.env, err)
		}
		if cfg.Dev != c.want {
			t.Errorf("%v (STEWARD_DEV=%q): Dev = %v, want %v", c.args, c.env, cfg.Dev, c.want)
		}
	}
	if _, _, err := Load([]string{"--dev=maybe"}, func(string) string { return "" }); err == nil {
		t.Error("--dev=maybe was accepted")
	}
}
