package config

import (
	"strings"
	"testing"
)

func noEnv(string) string { return "" }

func TestDefaults(t *testing.T) {
	c, pos, err := Load(nil, noEnv)
	if err != nil {
		t.Fatal(err)
	}
	if c.Addr != "localhost:8080" || c.DataDir != "./steward-data" || c.DatabaseURL != "sqlite:steward-data/steward.db" ||
		c.MailMode != "file" || c.BaseURL != "http://localhost:8080" || c.CookieSecure || len(pos) != 0 {
		t.Errorf("defaults = %+v", c)
	}
	if c.AgeOfConsentFor("FR") != 15 || c.AgeOfConsentFor("ZA") != 16 || c.Fields["name"] != Required {
		t.Errorf("age/fields defaults wrong: FR %d ZA %d name %s", c.AgeOfConsentFor("FR"), c.AgeOfConsentFor("ZA"), c.Fields["name"])
	}
}

func TestFlagBeatsEnvironment(t *testing.T) {
	env := map[string]string{"STEWARD_ADDR": "127.0.0.1:9000", "STEWARD_DATA": "/srv/steward"}
	c, pos, err := Load([]string{"--addr", "127.0.0.1:9100", "someone@example.org"}, func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if c.Addr != "127.0.0.1:9100" || c.DataDir != "/srv/steward" || len(pos) != 1 || pos[0] != "someone@example.org" {
		t.Errorf("got addr %s data %s pos %v", c.Addr, c.DataDir, pos)
	}
}

func TestInvalidSettingsNamed(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"--addr", "nonsense"}, "--addr (STEWARD_ADDR)"},
		{[]string{"--mail", "pigeon"}, "--mail (STEWARD_MAIL)"},
		{[]string{"--mail", "smtp"}, "--smtp-addr (STEWARD_SMTP_ADDR)"},
		{[]string{"--database", "mysql://x"}, "--database (STEWARD_DATABASE)"},
		{[]string{"--argon2-memory", "lots"}, "--argon2-memory (STEWARD_ARGON2_MEMORY)"},
		{[]string{"--session-ttl", "1s"}, "--session-ttl (STEWARD_SESSION_TTL)"},
		{[]string{"--age-of-consent", "16,FR=11"}, "an age of consent is from 13 to 16"},
		{[]string{"--age-of-consent", "16,QQ=14"}, "unknown country code"},
		{[]string{"--fields", "name=sometimes"}, "--fields (STEWARD_FIELDS): field name"},
		{[]string{"--fields", "shoe_size=required"}, `unknown field "shoe_size"`},
		{[]string{"--base-url", "ftp://x"}, "--base-url (STEWARD_BASE_URL)"},
		{[]string{"--metrics-addr", "9464"}, "--metrics-addr (STEWARD_METRICS_ADDR)"},
		{[]string{"--stats-k", "1"}, "--stats-k (STEWARD_STATS_K)"},
		{[]string{"--analytics-sites", "example.com", "--stats-public-sites", "other.example"}, `"other.example" is not one of --analytics-sites`},
	}
	for _, tt := range tests {
		_, _, err := Load(tt.args, noEnv)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Load(%v) error = %v, want it to contain %q", tt.args, err, tt.want)
		}
	}
	// Several mistakes are all reported at once.
	_, _, err := Load([]string{"--addr", "x", "--mail", "y"}, noEnv)
	if err == nil || !strings.Contains(err.Error(), "--addr") || !strings.Contains(err.Error(), "--mail") {
		t.Errorf("both mistakes not reported: %v", err)
	}
}

func TestValidCountry(t *testing.T) {
	for code, want := range map[string]bool{"DE": true, "FR": true, "US": true, "XQ": false, "de": false, "DEU": false, "": false, "EU": false} {
		if got := ValidCountry(code); got != want {
			t.Errorf("ValidCountry(%q) = %v, want %v", code, got, want)
		}
	}
}

func TestWithdrawnCountriesRefused(t *testing.T) {
	for _, code := range []string{"UK", "SU", "YU", "DD", "BU", "ZR", "EZ", "UN", "AC", "CP", "DG", "EA", "IC", "TA", "EU"} {
		if ValidCountry(code) {
			t.Errorf("ValidCountry(%q) = true, want false", code)
		}
	}
	for _, code := range []string{"GB", "RS", "DE", "MM", "CD", "XK", "SS"} {
		if !ValidCountry(code) {
			t.Errorf("ValidCountry(%q) = false, want true", code)
		}
	}
}

func TestSizes(t *testing.T) {
	for in, want := range map[string]int64{"4GiB": 4 << 30, "500MiB": 500 << 20, "1000": 1000, "2 GB": 2e9, "7B": 7} {
		c, _, err := Load([]string{"--max-file-size", in}, noEnv)
		if err != nil || c.MaxFileSize != want {
			t.Errorf("--max-file-size %s = %d (%v), want %d", in, c.MaxFileSize, err, want)
		}
	}
	for _, in := range []string{"lots", "-5MiB", "0", "5PB"} {
		if _, _, err := Load([]string{"--quota", in}, noEnv); err == nil || !strings.Contains(err.Error(), "--quota (STEWARD_QUOTA)") {
			t.Errorf("--quota %s: err = %v", in, err)
		}
	}
	if _, _, err := Load([]string{"--files", "s3"}, noEnv); err == nil || !strings.Contains(err.Error(), "--s3-endpoint") || !strings.Contains(err.Error(), "--s3-bucket") {
		t.Errorf("--files=s3 without endpoint: %v", err)
	}
}

func TestHelpShowsNoSecrets(t *testing.T) {
	env := map[string]string{"STEWARD_SMTP_PASSWORD": "hunter2-smtp", "STEWARD_S3_SECRET_KEY": "s3-very-secret",
		"STEWARD_DATABASE": "postgres://u:db-secret@127.0.0.1/x"}
	_, _, err := Load([]string{"-h"}, func(k string) string { return env[k] })
	if err == nil {
		t.Fatal("-h gave no usage")
	}
	for _, v := range []string{"hunter2-smtp", "s3-very-secret", "db-secret"} {
		if strings.Contains(err.Error(), v) {
			t.Fatalf("-h prints the secret %q: %s", v, err)
		}
	}
	c, _, err := Load(nil, func(k string) string { return env[k] })
	if err != nil || c.SMTPPassword != "hunter2-smtp" || c.S3.SecretKey != "s3-very-secret" || c.DatabaseURL != env["STEWARD_DATABASE"] {
		t.Errorf("secrets from the environment not taken: %v", err)
	}
}
