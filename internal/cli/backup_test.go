package cli

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// "steward backup -h" and "steward restore -h" say how to call them and list their
// flags; a backup without --out is refused with the flag's name.
func TestBackupRestoreHelp(t *testing.T) {
	env := func(string) string { return "" }
	for _, c := range []struct {
		args []string
		code int
		want []string
	}{
		{[]string{"backup", "-h"}, 0, []string{"Usage: steward backup --out FILE", "-out", "-pg-dump string", "STEWARD_PG_DUMP"}},
		{[]string{"restore", "-h"}, 0, []string{"Usage: steward restore FILE", "-pg-restore string", "STEWARD_PG_RESTORE"}},
		{[]string{"backup", "--data", t.TempDir()}, 2, []string{"out: is required"}},
		{[]string{"restore", "--data", t.TempDir()}, 2, []string{"usage: steward restore FILE"}},
		{[]string{"-h"}, 0, []string{"backup --out FILE", "restore FILE"}},
	} {
		var out, errb bytes.Buffer
		code := Run(context.Background(), c.args, env, &out, &errb)
		got := out.String() + errb.String()
		if code != c.code {
			t.Errorf("%v: exit %d, want %d: %s", c.args, code, c.code, got)
		}
		for _, w := range c.want {
			if !strings.Contains(got, w) {
				t.Errorf("%v: output lacks %q: %s", c.args, w, got)
			}
		}
	}
}
