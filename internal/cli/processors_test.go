package cli

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"steward/internal/app"
	"steward/internal/config"
	"steward/internal/notices"
)

// "steward processors secret NAME" prints the processor's signing secret: the one
// its notices are signed with (a signature made with it checks), the same at every
// run, another for another processor; an unknown name is refused with the register's
// names, and a call without a name says how to call it.
func TestProcessorsSecret(t *testing.T) {
	env := func(string) string { return "" }
	data := t.TempDir()
	run := func(args ...string) (int, string, string) {
		t.Helper()
		var out, errb bytes.Buffer
		code := Run(context.Background(), append(args, "--data", data, "--log-level", "error"), env, &out, &errb)
		return code, out.String(), errb.String()
	}
	code, first, errs := run("processors", "secret", "email_provider")
	if code != 0 || len(strings.TrimSpace(first)) != 64 {
		t.Fatalf("secret: exit %d, %q %s", code, first, errs)
	}
	if _, again, _ := run("processors", "secret", "email_provider"); again != first {
		t.Errorf("a second run printed %q, want %q", again, first)
	}
	cfg, _, err := config.Load([]string{"--data", data}, env)
	if err != nil {
		t.Fatal(err)
	}
	a, err := app.New(context.Background(), cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	at, body := time.Unix(1_800_000_000, 0), []byte(`{"event":"erasure"}`)
	if got, want := notices.Sign(strings.TrimSpace(first), at, body), notices.Sign(a.Notices().Secret("email_provider"), at, body); got != want {
		t.Errorf("a signature with the printed secret = %s, the notices' = %s", got, want)
	}
	if other := a.Notices().Secret("crm"); other == strings.TrimSpace(first) {
		t.Error("two processors share a secret")
	}
	a.Close()
	if code, out, errs := run("processors", "secret", "nobody"); code != 2 || out != "" || !strings.Contains(errs, "email_provider") {
		t.Errorf("an unknown processor: exit %d, %q %s", code, out, errs)
	}
	if code, _, errs := run("processors"); code != 2 || !strings.Contains(errs, "usage: steward processors secret NAME") {
		t.Errorf("no name: exit %d, %s", code, errs)
	}
}
