package cli

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"steward/internal/store/storetest"
)

// steward retention list|run: the rules with their periods (inactive accounts off by
// default), a run that prints what each rule removed, then listed as each rule's last
// run; a wrong subcommand is a usage error.
func TestRetentionCommand(t *testing.T) {
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
				case "STEWARD_RETENTION_REQUESTS":
					return "17520h"
				}
				return ""
			}
			run := func(args ...string) (int, string) {
				var out, errb bytes.Buffer
				code := Run(ctx, args, env, &out, &errb)
				return code, out.String() + errb.String()
			}
			code, out := run("retention", "list")
			if code != 0 || !strings.Contains(out, "closed_requests") || !strings.Contains(out, "17520h0m0s") ||
				!strings.Contains(out, "never") {
				t.Fatalf("list: exit %d\n%s", code, out)
			}
			if line := lineOf(out, "inactive_accounts"); !strings.Contains(line, " off ") {
				t.Errorf("list: inactive accounts not shown off: %q", line)
			}
			code, out = run("retention", "run")
			if code != 0 || !strings.Contains(out, "expired_sessions") || strings.Contains(out, "inactive_accounts") {
				t.Fatalf("run: exit %d, want every rule but the one off\n%s", code, out)
			}
			code, out = run("retention", "list")
			for _, rule := range []string{"unconfirmed_registrations", "expired_sessions", "closed_requests"} {
				if line := lineOf(out, rule); code != 0 || strings.Contains(line, "never") || !strings.Contains(line, " UTC ") {
					t.Errorf("list after a run: exit %d, %s's line %q, want its last run", code, rule, line)
				}
			}
			if line := lineOf(out, "inactive_accounts"); !strings.Contains(line, "never") {
				t.Errorf("list after a run: the rule that is off ran: %q", line)
			}
			if code, out := run("retention", "purge"); code != 2 || !strings.Contains(out, "usage: steward retention list|run") {
				t.Errorf("retention purge: exit %d, %s", code, out)
			}
		})
	}
}

// lineOf is the line of out that begins with prefix.
func lineOf(out, prefix string) string {
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, prefix) {
			return l
		}
	}
	return ""
}
