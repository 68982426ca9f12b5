package cli

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"

	"steward/internal/app"
	"steward/internal/config"
	"steward/internal/governance"
	"steward/internal/store/storetest"
)

// steward audit verify: refuses without the deployment's audit key; exit 0 with the
// counts and the head on an intact log; exit 1 naming the entry of a changed one.
func TestAuditVerifyCommand(t *testing.T) {
	for dialect, dbURL := range storetest.Engines(t) {
		t.Run(string(dialect), func(t *testing.T) {
			ctx := context.Background()
			dir := t.TempDir()
			env := func(k string) string {
				switch k {
				case "STEWARD_DATA":
					return dir
				case "STEWARD_DATABASE":
					return dbURL
				case "STEWARD_LOG_LEVEL":
					return "error"
				}
				return ""
			}
			run := func() (int, string) {
				var out, errb bytes.Buffer
				code := Run(ctx, []string{"audit", "verify"}, env, &out, &errb)
				return code, out.String() + errb.String()
			}
			if code, out := run(); code != 1 || !strings.Contains(out, "no audit key") {
				t.Fatalf("verify without the key: exit %d, %s", code, out)
			}
			cfg, _, err := config.Load(nil, env)
			if err != nil {
				t.Fatal(err)
			}
			a, err := app.New(ctx, cfg, slog.New(slog.DiscardHandler)) // makes the key
			if err != nil {
				t.Fatal(err)
			}
			defer a.Close()
			for _, d := range []string{"unknown account", "unknown account", "blocked"} {
				if err := a.Audit().Record(ctx, a.DB(), governance.Event{Name: "login_failed", IP: "192.0.2.7", Detail: d}); err != nil {
					t.Fatal(err)
				}
			}
			code, out := run()
			if code != 0 || !strings.Contains(out, "chained 3 new entries first") || !strings.Contains(out, "entries checked: 3\n") ||
				!strings.Contains(out, "head: entry 3, hash ") || !strings.Contains(out, "the audit log is intact") {
				t.Errorf("verify of an intact log: exit %d\n%s", code, out)
			}
			if _, err := a.DB().ExecContext(ctx, `UPDATE audit_log SET detail = 'fine' WHERE seq = 2`); err != nil {
				t.Fatal(err)
			}
			if code, out := run(); code != 1 || !strings.Contains(out, "BROKEN at entry 2:") || !strings.Contains(out, "intact up to entry 1,") {
				t.Errorf("verify of a changed entry: exit %d\n%s", code, out)
			}
		})
	}
}
