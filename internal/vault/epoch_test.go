package vault

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"steward/internal/store"
	"steward/internal/store/storetest"
)

type keyRow struct {
	subject string
	wrapped []byte
	epoch   int64
}

func keyRows(t *testing.T, db *store.DB) []keyRow {
	t.Helper()
	rows, err := db.QueryContext(context.Background(), `SELECT subject_id, wrapped, epoch FROM vault_keys ORDER BY subject_id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []keyRow
	for rows.Next() {
		var r keyRow
		if err := rows.Scan(&r.subject, &r.wrapped, &r.epoch); err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	return out
}

func makeKeys(t *testing.T, v *Vault, n int) map[string][]byte {
	t.Helper()
	ctx := context.Background()
	sealed := map[string][]byte{}
	err := v.db.InTx(ctx, func(tx *store.Tx) error {
		for i := range n {
			s := fmt.Sprintf("subject-%05d", i)
			k, err := v.KeyIn(ctx, tx, s, true)
			if err != nil {
				return err
			}
			sealed[s] = k.Seal("accounts.name", []byte("name of "+s))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return sealed
}

// opens checks that every sealed value still opens under its subject's key.
func opens(t *testing.T, v *Vault, sealed map[string][]byte) {
	t.Helper()
	for s, ct := range sealed {
		k, err := v.DataKey(context.Background(), s, false)
		if err != nil {
			t.Fatalf("DataKey(%s): %v", s, err)
		}
		got, err := k.Open("accounts.name", ct)
		if err != nil || string(got) != "name of "+s {
			t.Fatalf("Open(%s): %q, %v", s, got, err)
		}
	}
}

func TestSeal(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		v := openVault(t, db, t.TempDir(), Config{})
		alice, err := v.DataKey(ctx, "alice", true)
		if err != nil {
			t.Fatal(err)
		}
		bob, err := v.DataKey(ctx, "bob", true)
		if err != nil {
			t.Fatal(err)
		}
		ct := alice.Seal("accounts.phone", []byte("+33 6 12 34 56 78"))
		if bytes.Contains(ct, []byte("12 34")) {
			t.Fatal("the sealed value holds the plain text")
		}
		if got, err := alice.Open("accounts.phone", ct); err != nil || string(got) != "+33 6 12 34 56 78" {
			t.Fatalf("Open: %q, %v", got, err)
		}
		for name, open := range map[string]func() ([]byte, error){
			"another column":  func() ([]byte, error) { return alice.Open("accounts.name", ct) },
			"another subject": func() ([]byte, error) { return bob.Open("accounts.phone", ct) },
			"a flipped byte": func() ([]byte, error) {
				c := bytes.Clone(ct)
				c[len(c)-1] ^= 1
				return alice.Open("accounts.phone", c)
			},
			"truncated": func() ([]byte, error) { return alice.Open("accounts.phone", ct[:10]) },
		} {
			if _, err := open(); !errors.Is(err, ErrSealed) {
				t.Errorf("%s: got %v, want ErrSealed", name, err)
			}
		}
		if alice.SealString("x", "") != nil {
			t.Error(`SealString("") is not NULL`)
		}
		if s, err := alice.OpenString("x", nil); s != "" || err != nil {
			t.Errorf("OpenString(nil): %q, %v", s, err)
		}
		if a, b := alice.Seal("l", []byte("same")), alice.Seal("l", []byte("same")); bytes.Equal(a, b) {
			t.Error("sealing the same value twice gave the same bytes")
		}
	})
}

func TestRotation(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		dir := t.TempDir()
		escrow, identity := testEscrow(t)
		v := openVault(t, db, dir, Config{Escrow: escrow})
		sealed := makeKeys(t, v, 2*rewrapBatch+17)
		before := keyRows(t, db)
		fileBefore, err := os.ReadFile(filepath.Join(dir, "master.key"))
		if err != nil {
			t.Fatal(err)
		}

		epoch, err := v.RotateNow(ctx)
		if err != nil || epoch != 1 {
			t.Fatalf("RotateNow: %d, %v, want epoch 1", epoch, err)
		}
		opens(t, v, sealed)
		after := keyRows(t, db)
		if len(after) != len(before) {
			t.Fatalf("%d keys after rotation, %d before", len(after), len(before))
		}
		for i := range after {
			if after[i].epoch != 1 || bytes.Equal(after[i].wrapped, before[i].wrapped) {
				t.Fatalf("key %s not rewrapped: epoch %d", after[i].subject, after[i].epoch)
			}
		}
		// The old wrapped keys (what dead rows, logs and backups keep) open with no key
		// the node holds: neither by the epoch they were written at nor by any other.
		for _, r := range before[:50] {
			if _, err := v.Unwrap(r.subject, r.wrapped, r.epoch); err == nil {
				t.Fatalf("an old wrapped key of %s opened at its epoch", r.subject)
			}
			for e := int64(1); e < 4; e++ {
				if _, err := v.Unwrap(r.subject, r.wrapped, e); err == nil {
					t.Fatalf("an old wrapped key of %s opened at epoch %d", r.subject, e)
				}
			}
		}
		file, err := ReadKEK(filepath.Join(dir, "master.key"))
		if err != nil || file.Epoch() != 1 {
			t.Fatalf("key file after rotation: %v, %v", file, err)
		}
		fileNow, _ := os.ReadFile(filepath.Join(dir, "master.key"))
		if bytes.Equal(fileNow, fileBefore) {
			t.Fatal("the key file still holds the old key")
		}
		// The escrow opens both epochs for a restore, and nothing else does.
		var n int
		if err := db.QueryRowContext(ctx, `SELECT count(*) FROM kek_escrow WHERE epoch IN (0, 1)`).Scan(&n); err != nil || n != 2 {
			t.Fatalf("escrowed epochs: %d, %v, want 2", n, err)
		}
		var sealed0 []byte
		if err := db.QueryRowContext(ctx, `SELECT sealed FROM kek_escrow WHERE epoch = 0`).Scan(&sealed0); err != nil {
			t.Fatal(err)
		}
		k0, err := OpenEscrowed(identity, sealed0)
		if err != nil {
			t.Fatal(err)
		}
		a0, _ := gcm(k0.key[:])
		if _, err := unwrap(a0, before[0].subject, before[0].wrapped); err != nil {
			t.Fatalf("the escrowed epoch-0 key does not open an epoch-0 key: %v", err)
		}
		if _, err := OpenEscrowed(nil, sealed0); err == nil {
			t.Fatal("the escrow opened without an identity")
		}
		// A second rotation: epoch 2, everything still opens.
		if epoch, err := v.RotateNow(ctx); err != nil || epoch != 2 {
			t.Fatalf("second RotateNow: %d, %v", epoch, err)
		}
		opens(t, v, sealed)
	})
}

func testEscrow(t *testing.T) (*Escrow, Identities) {
	t.Helper()
	id, recipient, err := GenerateIdentity()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "escrow.txt")
	if err := os.WriteFile(path, []byte(id+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ids, err := ReadIdentities(path)
	if err != nil {
		t.Fatal(err)
	}
	e, err := ParseRecipients(recipient)
	if err != nil {
		t.Fatal(err)
	}
	return e, ids
}

func TestRotationResumes(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		dir := t.TempDir()
		v := openVault(t, db, dir, Config{})
		sealed := makeKeys(t, v, 3*rewrapBatch)
		ctx, cancel := context.WithCancel(context.Background())
		v.afterBatch = func(n int) {
			if n >= rewrapBatch {
				cancel() // the process dies after the first batch
			}
		}
		if _, err := v.RotateNow(ctx); err == nil {
			t.Fatal("RotateNow survived its cancellation")
		}
		var mixed int
		if err := db.QueryRowContext(context.Background(), `SELECT count(DISTINCT epoch) FROM vault_keys`).Scan(&mixed); err != nil || mixed != 2 {
			t.Fatalf("after an interrupted rotation: %d epochs, %v, want both", mixed, err)
		}
		// Restarted: the node still has epoch 0's key (the database never said the
		// rotation ended) and reads keys of both epochs.
		file, err := ReadKEK(filepath.Join(dir, "master.key"))
		if err != nil || file.Epoch() != 0 {
			t.Fatalf("key file after the interruption: %v, %v", file, err)
		}
		v2 := openVault(t, db, dir, Config{})
		opens(t, v2, sealed)
		if e, rotating := v2.Epoch(); e != 0 || !rotating {
			t.Fatalf("restarted node: epoch %d rotating %v, want 0 and true", e, rotating)
		}
		if err := v2.Step(context.Background()); err != nil {
			t.Fatal(err)
		}
		if e, rotating := v2.Epoch(); e != 1 || rotating {
			t.Fatalf("after a step: epoch %d rotating %v", e, rotating)
		}
		opens(t, v2, sealed)
	})
}

func TestNodes(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		dirA, dirB := t.TempDir(), t.TempDir()
		a := openVault(t, db, dirA, Config{})
		key, err := os.ReadFile(filepath.Join(dirA, "master.key"))
		if err != nil {
			t.Fatal(err)
		}
		// A node without the deployment's key refuses to start, and does not make one.
		if _, err := Open(ctx, db, Config{KeyFile: filepath.Join(dirB, "master.key"), Create: true}, clock, slog.New(slog.DiscardHandler)); err == nil ||
			!strings.Contains(err.Error(), "copy the key file") {
			t.Fatalf("a node without the key: %v", err)
		}
		if err := os.WriteFile(filepath.Join(dirB, "master.key"), key, 0o600); err != nil {
			t.Fatal(err)
		}
		b := openVault(t, db, dirB, Config{})
		sealed := makeKeys(t, a, 10)

		// A begins a rotation (due at once: epochs of no length) but its grace has not
		// passed; B sees it and wraps new keys at the next epoch.
		slow := Config{Epoch: 0, Grace: 1 << 62, KeyFile: filepath.Join(dirA, "master.key")}
		a.cfg.Epoch, a.cfg.Grace = slow.Epoch, slow.Grace
		b.cfg.Grace = slow.Grace
		if err := a.Step(ctx); err != nil {
			t.Fatal(err)
		}
		if err := b.Step(ctx); err != nil {
			t.Fatal(err)
		}
		if _, rotating := b.Epoch(); !rotating {
			t.Fatal("node B did not see the rotation")
		}
		more := makeKeys(t, b, 3)
		for s := range more {
			var e int64
			_ = db.QueryRowContext(ctx, `SELECT epoch FROM vault_keys WHERE subject_id = $1`, s).Scan(&e)
			if e != 1 {
				t.Fatalf("B wrapped a new key at epoch %d during the rotation", e)
			}
		}
		opens(t, a, more)
		// A ends the rotation; B follows, destroying its copy of the old key.
		a.cfg.Grace = 0
		if err := a.Step(ctx); err != nil {
			t.Fatal(err)
		}
		if e, _ := a.Epoch(); e != 1 {
			t.Fatalf("A at epoch %d", e)
		}
		if err := b.Step(ctx); err != nil {
			t.Fatal(err)
		}
		fb, _ := ReadKEK(filepath.Join(dirB, "master.key"))
		fa, _ := ReadKEK(filepath.Join(dirA, "master.key"))
		if fb.Epoch() != 1 || fb.ID() != fa.ID() {
			t.Fatalf("B's key file: %v, A's: %v", fb, fa)
		}
		if e, rotating := b.Epoch(); e != 1 || rotating {
			t.Fatalf("B at epoch %d rotating %v", e, rotating)
		}
		opens(t, b, sealed)
		opens(t, b, more)
	})
}

func TestRecover(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		dir := t.TempDir()
		escrow, identity := testEscrow(t)
		v := openVault(t, db, dir, Config{Escrow: escrow})
		sealed := makeKeys(t, v, 20)
		// A backup: the keys and the key state as they are now.
		backup := keyRows(t, db)
		var st state
		st, err := loadState(ctx, db)
		if err != nil {
			t.Fatal(err)
		}
		for range 2 {
			if _, err := v.RotateNow(ctx); err != nil {
				t.Fatal(err)
			}
		}
		// Restored by hand: the rows of the backup come back.
		restore := func() {
			t.Helper()
			if _, err := db.ExecContext(ctx, `DELETE FROM vault_keys`); err != nil {
				t.Fatal(err)
			}
			for _, r := range backup {
				if _, err := db.ExecContext(ctx, `INSERT INTO vault_keys (subject_id, wrapped, epoch, created_at) VALUES ($1, $2, $3, 0)`, r.subject, r.wrapped, r.epoch); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := db.ExecContext(ctx, `UPDATE kek_state SET epoch = $1, target = $2, key_id = $3`, st.epoch, st.target, st.keyID); err != nil {
				t.Fatal(err)
			}
		}
		restore()
		cfg := Config{KeyFile: filepath.Join(dir, "master.key"), Grace: -1}
		if _, err := Open(ctx, db, cfg, clock, slog.New(slog.DiscardHandler)); !errors.Is(err, ErrKeysBehind) {
			t.Fatalf("Open on a restored database: %v, want ErrKeysBehind", err)
		}
		_, wrong := testEscrow(t)
		if _, err := Recover(ctx, db, cfg.KeyFile, wrong, clock); err == nil {
			t.Fatal("Recover with another identity succeeded")
		}
		// Without the escrowed key of the database's epoch: a clear refusal, nothing
		// changed.
		var escrowed []byte
		if err := db.QueryRowContext(ctx, `SELECT sealed FROM kek_escrow WHERE epoch = $1`, st.epoch).Scan(&escrowed); err != nil {
			t.Fatal(err)
		}
		if _, err := db.ExecContext(ctx, `DELETE FROM kek_escrow WHERE epoch = $1`, st.epoch); err != nil {
			t.Fatal(err)
		}
		if _, err := Recover(ctx, db, cfg.KeyFile, identity, clock); err == nil || !strings.Contains(err.Error(), "no escrowed key for epoch") {
			t.Fatalf("Recover without the escrowed key: %v", err)
		}
		if got := keyRows(t, db); !bytes.Equal(got[0].wrapped, backup[0].wrapped) {
			t.Fatal("a refused recovery changed the keys")
		}
		if _, err := db.ExecContext(ctx, `INSERT INTO kek_escrow (epoch, key_id, recipients, sealed, created_at) VALUES ($1, $2, '', $3, 0)`,
			st.epoch, st.keyID, escrowed); err != nil {
			t.Fatal(err)
		}
		n, err := Recover(ctx, db, cfg.KeyFile, identity, clock)
		if err != nil || n == 0 {
			t.Fatalf("Recover: %d, %v", n, err)
		}
		v2, err := Open(ctx, db, cfg, clock, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		if e, _ := v2.Epoch(); e != 2 {
			t.Fatalf("recovered at epoch %d, want the node's 2", e)
		}
		opens(t, v2, sealed)
	})
}

func TestLegacyMasterKey(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		dir := t.TempDir()
		m := GenerateMasterKey()
		if err := WriteMasterKey(filepath.Join(dir, "master.key"), m); err != nil {
			t.Fatal(err)
		}
		// A key wrapped by the master key of an earlier release.
		a, _ := gcm(m.key[:])
		data := bytes.Repeat([]byte{7}, dataKeySize)
		if _, err := db.ExecContext(ctx, `INSERT INTO vault_keys (subject_id, wrapped, epoch, created_at) VALUES ('old', $1, 0, 0)`,
			wrap(a, "old", data)); err != nil {
			t.Fatal(err)
		}
		v := openVault(t, db, dir, Config{})
		k, err := v.DataKey(ctx, "old", false)
		if err != nil || !bytes.Equal(k.data[:], data) {
			t.Fatalf("the old key under epoch 0: %v", err)
		}
		if _, err := v.RotateNow(ctx); err != nil {
			t.Fatal(err)
		}
		k, err = v.DataKey(ctx, "old", false)
		if err != nil || !bytes.Equal(k.data[:], data) {
			t.Fatalf("the old key after rotation: %v", err)
		}
		raw, _ := os.ReadFile(filepath.Join(dir, "master.key"))
		if !bytes.HasPrefix(raw, []byte(kekFormat)) || bytes.Contains(raw, []byte(m.Encode())) {
			t.Fatal("the key file was not rewritten without the master key")
		}
	})
}
