package cli

import (
	"bytes"
	"context"
	"log/slog"
	"slices"
	"strings"
	"testing"

	"github.com/pquerna/otp/totp"

	"steward/internal/account"
	"steward/internal/app"
	"steward/internal/config"
	"steward/internal/governance"
	"steward/internal/store/storetest"
)

// steward staff grant|revoke|list|reset-mfa: each change is made and recorded in the
// audit log "by the command line"; the list shows roles and the second factor. (The
// account has not proven its address: the command names it by id.)
func TestStaffCommand(t *testing.T) {
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
				case "STEWARD_ARGON2_MEMORY":
					return "1024"
				}
				return ""
			}
			run := func(args ...string) (int, string) {
				var out, errb bytes.Buffer
				code := Run(ctx, append([]string{"staff"}, args...), env, &out, &errb)
				return code, out.String() + errb.String()
			}
			cfg, _, err := config.Load(nil, env)
			if err != nil {
				t.Fatal(err)
			}
			a, err := app.New(ctx, cfg, slog.New(slog.DiscardHandler))
			if err != nil {
				t.Fatal(err)
			}
			defer a.Close()
			const email = "cli.auditor@example.org"
			reg, err := a.Accounts().Register(ctx, account.Registration{Email: email, Password: "correct horse battery", Name: "Cli Auditor",
				Birthdate: "1980-01-01", Country: "DE"}, account.Meta{})
			if err != nil {
				t.Fatal(err)
			}
			if code, out := run("grant", email, "auditor"); code != 0 || !strings.Contains(out, "granted auditor to "+reg.ID) {
				t.Fatalf("grant: exit %d, %s", code, out)
			}
			if code, out := run("list"); code != 0 || !strings.Contains(out, email) || !strings.Contains(out, "\tauditor\tno second factor") {
				t.Errorf("list: exit %d, %s", code, out)
			}
			e, err := a.Accounts().Enroll(ctx, reg.ID, false)
			if err != nil {
				t.Fatal(err)
			}
			code, _ := totp.GenerateCode(e.Secret, a.Now())
			if _, err := a.Accounts().ConfirmEnrollment(ctx, account.Session{AccountID: reg.ID}, code, account.Meta{}); err != nil {
				t.Fatal(err)
			}
			if code, out := run("list"); code != 0 || !strings.Contains(out, "second factor set up") {
				t.Errorf("list after enrolling: exit %d, %s", code, out)
			}
			if code, out := run("reset-mfa", email); code != 0 || !strings.Contains(out, "reset the second factor of "+reg.ID) {
				t.Errorf("reset-mfa: exit %d, %s", code, out)
			}
			if st, err := a.Accounts().SecondFactor(ctx, reg.ID); err != nil || st.Enrolled {
				t.Errorf("after reset-mfa: %+v, %v", st, err)
			}
			if code, out := run("grant", email, "owner"); code == 0 || !strings.Contains(out, "role") {
				t.Errorf("grant of an unknown role: exit %d, %s", code, out)
			}
			if code, out := run("revoke", email, "auditor"); code != 0 || !strings.Contains(out, "revoked auditor from "+reg.ID) {
				t.Errorf("revoke: exit %d, %s", code, out)
			}
			if code, out := run("list"); code != 0 || strings.Contains(out, email) {
				t.Errorf("list after the revocation: exit %d, %s", code, out)
			}
			entries, err := a.Accounts().Activity(ctx, reg.ID, 50)
			if err != nil {
				t.Fatal(err)
			}
			for _, want := range []string{"staff_role_granted:auditor by the command line", "second_factor_reset:by the command line",
				"staff_role_revoked:auditor by the command line"} {
				if !slices.ContainsFunc(entries, func(e governance.Entry) bool { return e.Event+":"+e.Detail == want }) {
					t.Errorf("no audit entry %q in %+v", want, entries)
				}
			}
		})
	}
}
