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

// "steward ropa" writes the records of processing in each format, naming every holder
// of the data map, every purpose and every processor; an unknown format is refused.
func TestROPACommand(t *testing.T) {
	env := func(string) string { return "" }
	data := t.TempDir()
	run := func(args ...string) (int, string, string) {
		t.Helper()
		var out, errb bytes.Buffer
		code := Run(context.Background(), append(args, "--data", data, "--log-level", "error"), env, &out, &errb)
		return code, out.String(), errb.String()
	}
	cfg, _, err := config.Load([]string{"--data", data}, env)
	if err != nil {
		t.Fatal(err)
	}
	a, err := app.New(context.Background(), cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, h := range a.Registry().Holders() {
		want = append(want, "`"+h.Declaration().Name+"`")
	}
	for _, p := range a.Consent().Register().Purposes {
		want = append(want, "`"+p.Key+"`")
	}
	procs, err := a.Processors().List(context.Background())
	if err != nil || len(procs) == 0 {
		t.Fatalf("processors = %v, %v", procs, err)
	}
	for _, p := range procs {
		want = append(want, "`"+p.Key+"`")
	}
	a.Close()
	code, md, errs := run("ropa")
	if code != 0 || !strings.HasPrefix(md, "# Records of processing activities") {
		t.Fatalf("ropa: exit %d, %.200q %s", code, md, errs)
	}
	for _, w := range want {
		if !strings.Contains(md, w) {
			t.Errorf("the Markdown record lacks %s", w)
		}
	}
	for _, f := range []string{"csv", "json"} {
		code, out, errs := run("ropa", "--format", f)
		if code != 0 {
			t.Fatalf("ropa --format %s: exit %d %s", f, code, errs)
		}
		for _, w := range want {
			if !strings.Contains(out, strings.Trim(w, "`")) {
				t.Errorf("the %s record lacks %s", f, w)
			}
		}
	}
	if code, _, errs := run("ropa", "--format", "pdf"); code != 2 || !strings.Contains(errs, "format") {
		t.Errorf("ropa --format pdf: exit %d %s, want 2 naming the format", code, errs)
	}
}
