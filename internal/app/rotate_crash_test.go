package app_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"steward/internal/store"
	"steward/internal/store/storetest"
	"steward/internal/vault"
)

// TestRotationSurvivesSIGKILL kills `steward keys rotate` (SIGKILL) half-way through
// rewrapping, runs it again, and finds every data key at the new epoch and opening: a
// rotation interrupted anywhere resumes, and no key is lost.
func TestRotationSurvivesSIGKILL(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "steward")
	if out, err := exec.Command("go", "build", "-o", bin, "steward/cmd/steward").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	for engine, url := range storetest.Engines(t) {
		t.Run(string(engine), func(t *testing.T) {
			ctx := context.Background()
			data := t.TempDir()
			db := storetest.Open(t, url)
			keyFile := filepath.Join(data, "master.key")
			v, err := vault.Open(ctx, db, vault.Config{KeyFile: keyFile, Create: true, Grace: -1}, time.Now, slog.New(slog.DiscardHandler))
			if err != nil {
				t.Fatal(err)
			}
			const n = 60000
			sealed := map[string][]byte{}
			err = db.InTx(ctx, func(tx *store.Tx) error {
				b := tx.Bulk("vault_keys", []string{"subject_id", "wrapped", "epoch", "created_at"}, 500, "")
				for i := range n {
					s := fmt.Sprintf("subject-%06d", i)
					k, row, err := v.NewKey(s)
					if err != nil {
						return err
					}
					if i%997 == 0 {
						sealed[s] = k.Seal("test.value", []byte("value of "+s))
					}
					if err := b.Add(ctx, row...); err != nil {
						return err
					}
				}
				return b.Close(ctx)
			})
			if err != nil {
				t.Fatal(err)
			}
			args := []string{"keys", "rotate", "--data", data, "--database", url, "--master-key-file", keyFile, "--key-grace", "0", "--log-level", "error"}
			cmd := exec.Command(bin, args...)
			cmd.Stderr = os.Stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			// Killed once some keys are rewrapped and others are not.
			deadline := time.Now().Add(60 * time.Second)
			for {
				var moved int
				_ = db.QueryRowContext(ctx, `SELECT count(*) FROM vault_keys WHERE epoch = 1`).Scan(&moved)
				if moved > 0 {
					break
				}
				if time.Now().After(deadline) {
					cmd.Process.Kill()
					t.Fatal("the rotation rewrapped nothing in a minute")
				}
				time.Sleep(2 * time.Millisecond)
			}
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			var left, epoch int
			if err := db.QueryRowContext(ctx, `SELECT count(*) FROM vault_keys WHERE epoch = 0`).Scan(&left); err != nil {
				t.Fatal(err)
			}
			if err := db.QueryRowContext(ctx, `SELECT epoch FROM kek_state`).Scan(&epoch); err != nil {
				t.Fatal(err)
			}
			if left == 0 || epoch != 0 {
				t.Fatalf("killed too late to prove anything: %d keys still at epoch 0, state at epoch %d", left, epoch)
			}
			// Run again: it resumes, and ends.
			if out, err := exec.Command(bin, args...).CombinedOutput(); err != nil {
				t.Fatalf("rotate again: %v\n%s", err, out)
			}
			var total, at1 int
			_ = db.QueryRowContext(ctx, `SELECT count(*), count(CASE WHEN epoch = 1 THEN 1 END) FROM vault_keys`).Scan(&total, &at1)
			if total != n || at1 != n {
				t.Fatalf("after the resumed rotation: %d keys, %d at epoch 1, want %d", total, at1, n)
			}
			v2, err := vault.Open(ctx, db, vault.Config{KeyFile: keyFile}, time.Now, slog.New(slog.DiscardHandler))
			if err != nil {
				t.Fatal(err)
			}
			if e, rotating := v2.Epoch(); e != 1 || rotating {
				t.Fatalf("epoch %d rotating %v after the rotation", e, rotating)
			}
			for s, ct := range sealed {
				k, err := v2.DataKey(ctx, s, false)
				if err != nil {
					t.Fatalf("key of %s: %v", s, err)
				}
				if got, err := k.Open("test.value", ct); err != nil || string(got) != "value of "+s {
					t.Fatalf("value of %s: %q %v", s, got, err)
				}
			}
		})
	}
}
