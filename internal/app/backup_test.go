package app_test

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"steward/internal/app"
	"steward/internal/backup"
	"steward/internal/datamap"
	"steward/internal/rights"
	"steward/internal/store"
	"steward/internal/store/storetest"
	"steward/internal/vault"
)

// P-ERASE-3: a backup made before an erasure, restored with steward restore, does
// not bring the erased back: the restore replays the ledger objects and erases them
// again, and the start after it finds nothing left to do.
func TestRestoreErasesAgain(t *testing.T) {
	eachSite(t, []string{"disk", "s3"}, func(t *testing.T, s *site) {
		ctx := context.Background()
		h := s.start()
		member, subscriber, _ := populate(t, h)
		// A subscriber who, after the backup, registers with the address (the
		// subscription joins the account) and is erased: the backup holds the
		// subscription under an id the ledger never saw; its address finds it.
		linked := subscribeAs(t, h, "philippa.quenneville@example.org", "Philippa", "Quenneville")
		file := filepath.Join(t.TempDir(), "steward.backup")
		if code, out := s.run("backup", "--out", file); code != 0 || !strings.Contains(out, "backup written to") || !strings.Contains(out, "not escrowed") {
			t.Fatalf("backup: exit %d: %s (want a warning that the epoch is not escrowed)", code, out)
		}
		if code, out := s.run("backup", "--out", file); code == 0 || !strings.Contains(out, "exists") {
			t.Errorf("a backup over an existing file: exit %d: %s", code, out)
		}
		erase(t, h, member, subscriber)
		accountID, _ := h.Member(linked.email, pw, map[string]any{"name": "Philippa Quenneville"})
		if id, err := h.App.Newsletter().Lookup(ctx, linked.email); err != nil || id != accountID {
			t.Fatalf("the subscription is %q (%v), want it joined to the account %s", id, err, accountID)
		}
		if err := h.App.Rights().EraseNow(ctx, accountID, "test"); err != nil {
			t.Fatal(err)
		}
		linked.terms = append(linked.terms, datamap.Term{Kind: "id", Value: accountID})
		h.Close()

		code, out := s.run("restore", file)
		if code != 0 || !strings.Contains(out, "3 subject(s) erased again") {
			t.Fatalf("restore: exit %d: %s", code, out)
		}
		h = s.start()
		assertErased(t, h, member)
		assertErased(t, h, subscriber)
		for _, f := range present(t, h, linked) {
			t.Errorf("%s: still there: %s", linked.email, f)
		}
		if _, ok, _ := h.App.Rights().Erased(ctx, linked.email); !ok {
			t.Errorf("the ledger lacks %s", linked.email)
		}
		assertStays(t, h)
		if ok, err := h.App.Newsletter().Suppressed(context.Background(), subscriber.email, "newsletter"); err != nil || !ok {
			t.Errorf("the erased subscriber's address is not suppressed again (%v)", err)
		}
		// Restored twice: the ledger already has everything, nobody is erased again.
		h.Close()
		if code, out := s.run("restore", file); code != 0 || !strings.Contains(out, "3 subject(s) erased again") {
			t.Errorf("second restore: exit %d: %s", code, out)
		}
	})
}

// Bad input is refused with a clear error before anything changes: a backup of
// another deployment, a truncated one, one with a byte of the database changed, one
// whose manifest was altered, and a restore while a server runs.
func TestRestoreRefusesBadInput(t *testing.T) {
	eachSite(t, []string{"disk"}, func(t *testing.T, s *site) {
		ctx := context.Background()
		h := s.start()
		member, subscriber, _ := populate(t, h)
		dir := t.TempDir()
		good := filepath.Join(dir, "good.backup")
		if _, err := app.Backup(ctx, s.config(), good); err != nil {
			t.Fatal(err)
		}
		// What the restores below must leave alone: an erasure after the backup and a
		// member who registered after it.
		erase(t, h, member, subscriber)
		later, _ := h.Member("later@example.org", pw, nil)

		other := newSite(t, map[bool]string{true: "sqlite", false: "postgres"}[s.dbURL == ""], "disk")
		ho := other.start()
		ho.Close()
		foreign := filepath.Join(dir, "foreign.backup")
		if _, err := app.Backup(ctx, other.config(), foreign); err != nil {
			t.Fatal(err)
		}

		raw, err := os.ReadFile(good)
		if err != nil {
			t.Fatal(err)
		}
		write := func(name string, b []byte) string {
			p := filepath.Join(dir, name)
			if err := os.WriteFile(p, b, 0o600); err != nil {
				t.Fatal(err)
			}
			return p
		}
		truncated := write("truncated.backup", raw[:len(raw)/2])
		flipped := append([]byte(nil), raw...)
		flipped[databaseOffset(t, raw)+100] ^= 0x20
		flippedFile := write("flipped.backup", flipped)
		tampered := write("tampered.backup", rewriteManifest(t, raw, func(m map[string]any) { m["newest_erased_at"] = 1 }))
		notBackup := write("notes.txt", []byte("shopping list\n"))

		// While the server runs.
		if _, err := app.Restore(ctx, s.config(), slog.New(slog.DiscardHandler), good, app.RestoreOptions{}); !errors.Is(err, backup.ErrInUse) ||
			!strings.Contains(err.Error(), "stop every server") {
			t.Errorf("restore while serving: %v", err)
		}
		h.Close()
		before := fingerprint(t, s)
		for _, c := range []struct {
			name, file string
			want       error
			says       string
		}{
			{"another deployment", foreign, backup.ErrOtherDeployment, "another deployment"},
			{"truncated", truncated, backup.ErrDamaged, "cut short"},
			{"byte flipped in the database", flippedFile, backup.ErrDamaged, "SHA-256 differs"},
			{"manifest altered", tampered, backup.ErrDamaged, "MAC does not verify"},
			{"not a backup", notBackup, backup.ErrNotBackup, "not a Steward backup"},
		} {
			_, err := app.Restore(ctx, s.config(), slog.New(slog.DiscardHandler), c.file, app.RestoreOptions{
				AfterRestore: func(context.Context, *store.DB) error { t.Errorf("%s: the hook ran", c.name); return nil },
			})
			if !errors.Is(err, c.want) || !strings.Contains(err.Error(), c.says) {
				t.Errorf("%s: err = %v, want %v saying %q", c.name, err, c.want, c.says)
			}
			if code, out := s.run("restore", c.file); code != 2 || !strings.Contains(out, c.says) {
				t.Errorf("%s: steward restore: exit %d: %s", c.name, code, out)
			}
		}
		if after := fingerprint(t, s); after != before {
			t.Errorf("a refused restore changed the database")
		}
		h = s.start()
		if _, err := h.App.Accounts().Lookup(ctx, later); err != nil {
			t.Errorf("the member who registered after the backup is gone: %v", err)
		}
		assertErased(t, h, member)
	})
}

// databaseOffset is where the database entry's bytes begin in a backup.
func databaseOffset(t *testing.T, raw []byte) int {
	t.Helper()
	tr := tar.NewReader(bytes.NewReader(raw))
	hdr, err := tr.Next()
	if err != nil {
		t.Fatal(err)
	}
	// A header block, the manifest in whole blocks, the database's header block.
	return 512 + int((hdr.Size+511)/512*512) + 512
}

// rewriteManifest writes the backup again with its manifest changed by fn.
func rewriteManifest(t *testing.T, raw []byte, fn func(map[string]any)) []byte {
	t.Helper()
	tr := tar.NewReader(bytes.NewReader(raw))
	var out bytes.Buffer
	tw := tar.NewWriter(&out)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(tr)
		if hdr.Name == "manifest.json" {
			var m map[string]any
			if err := json.Unmarshal(b, &m); err != nil {
				t.Fatal(err)
			}
			fn(m)
			b, _ = json.Marshal(m)
			hdr.Size = int64(len(b))
		}
		tw.WriteHeader(hdr)
		tw.Write(b)
	}
	tw.Close()
	return out.Bytes()
}

// A restore verifies every ledger object before it replaces the database, even one
// older than the day before the newest erasure that a start reads.
func TestRestoreVerifiesLedgerObjects(t *testing.T) {
	eachSite(t, []string{"disk"}, func(t *testing.T, s *site) {
		ctx := context.Background()
		h := s.start()
		name := eraseOne(t, h, "restore.ledger@example.org")
		file := filepath.Join(t.TempDir(), "steward.backup")
		if _, err := app.Backup(ctx, s.config(), file); err != nil {
			t.Fatal(err)
		}
		h.Close()
		bs := openBlobs(t, s)
		old := "ledger/0000000000001-0123456789abcdef0123456789abcdef.json"
		putObject(t, bs, old, tamper(t, readObject(t, bs, name)))
		h = s.start() // too old for a start to read
		h.Close()
		before := fingerprint(t, s)
		_, err := app.Restore(ctx, s.config(), slog.New(slog.DiscardHandler), file, app.RestoreOptions{})
		if !errors.Is(err, rights.ErrLedgerObject) || !strings.Contains(err.Error(), old) {
			t.Errorf("restore with a tampered old ledger object: %v", err)
		}
		if after := fingerprint(t, s); after != before {
			t.Error("the refused restore changed the database")
		}
	})
}

// A backup goes back only into a database it fits: not into the other engine, not
// into another PostgreSQL schema (pg_restore cannot rename one), not into a schema
// holding tables the backup lacks (a later release's). Each is refused before the
// database changes.
func TestRestoreRefusesOtherTargets(t *testing.T) {
	ctx := context.Background()
	log := slog.New(slog.DiscardHandler)
	lite, pg, pg2 := newSite(t, "sqlite", "disk"), newSite(t, "postgres", "disk"), newSite(t, "postgres", "disk")
	lite.start().Close()
	for _, s := range []*site{pg, pg2} { // the same deployment: the ledger key is the site's
		key, err := os.ReadFile(filepath.Join(lite.data, "ledger.key"))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(s.data, "ledger.key"), key, 0o600); err != nil {
			t.Fatal(err)
		}
		s.start().Close()
	}
	dir := t.TempDir()
	liteBackup, pgBackup := filepath.Join(dir, "lite"), filepath.Join(dir, "pg")
	if _, err := app.Backup(ctx, lite.config(), liteBackup); err != nil {
		t.Fatal(err)
	}
	if _, err := app.Backup(ctx, pg.config(), pgBackup); err != nil {
		t.Fatal(err)
	}
	extra := storetest.Open(t, pg.dbURL)
	if _, err := extra.ExecContext(ctx, `CREATE TABLE notes_of_a_later_release (id TEXT)`); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name, file string
		into       *site
		says       string
	}{
		{"SQLite into PostgreSQL", liteBackup, pg, "is of a sqlite database, and this one is postgres"},
		{"PostgreSQL into SQLite", pgBackup, lite, "is of a postgres database, and this one is sqlite"},
		{"another schema", pgBackup, pg2, "restore into a schema of that name"},
		{"a schema with more tables", pgBackup, pg, "notes_of_a_later_release"},
	} {
		before := fingerprint(t, c.into)
		_, err := app.Restore(ctx, c.into.config(), log, c.file, app.RestoreOptions{})
		if !errors.Is(err, backup.ErrWrongTarget) || !strings.Contains(err.Error(), c.says) {
			t.Errorf("%s: err = %v, want ErrWrongTarget saying %q", c.name, err, c.says)
		}
		if fingerprint(t, c.into) != before {
			t.Errorf("%s: the refused restore changed the database", c.name)
		}
	}
}

// A backup whose key epoch has passed: the nodes destroyed the key its data keys are
// wrapped under. Restored without the offline escrow identity, the erased are still
// erased again, but Steward refuses to serve until `steward keys recover`; restored
// with it, the keys are rewrapped from escrow at once. Either way the member who
// stayed logs in, and the erased one stays erased.
func TestRestoreAcrossEpochs(t *testing.T) {
	eachSite(t, []string{"disk"}, func(t *testing.T, s *site) {
		ctx := context.Background()
		identity, recipient, err := vault.GenerateIdentity()
		if err != nil {
			t.Fatal(err)
		}
		idFile := filepath.Join(t.TempDir(), "escrow-identity.txt")
		if err := os.WriteFile(idFile, []byte(identity+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		s.flags = append(s.flags, "--escrow-recipient", recipient)
		h := s.start()
		member, subscriber, _ := populate(t, h)
		file := filepath.Join(t.TempDir(), "steward.backup")
		if code, out := s.run("backup", "--out", file); code != 0 || strings.Contains(out, "not escrowed") {
			t.Fatalf("backup: exit %d: %s", code, out)
		}
		erase(t, h, member, subscriber)
		if _, err := h.App.Vault().RotateNow(ctx); err != nil {
			t.Fatal(err)
		}
		h.Close()

		// Without the identity: replayed, then refused.
		code, out := s.run("restore", file)
		if code == 0 || !strings.Contains(out, "keys recover") || !strings.Contains(out, "2 subject(s) erased again") {
			t.Fatalf("restore without the identity: exit %d: %s", code, out)
		}
		// A start replays the ledger (nothing left to do) and refuses to serve.
		a, err := app.New(ctx, s.config(), slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatalf("build: %v", err)
		}
		if err := a.Start(ctx); !errors.Is(err, vault.ErrKeysBehind) {
			t.Errorf("start with keys behind: %v, want ErrKeysBehind", err)
		}
		a.Close()
		if code, out := s.run("keys", "recover", "--identity", idFile); code != 0 || !strings.Contains(out, "rewrapped") {
			t.Fatalf("keys recover: exit %d: %s", code, out)
		}
		h = s.start()
		assertErased(t, h, member)
		assertErased(t, h, subscriber)
		assertStays(t, h)
		if _, err := h.App.Vault().RotateNow(ctx); err != nil {
			t.Fatal(err)
		}
		h.Close()

		// With it: recovered during the restore.
		code, out = s.run("restore", file, "--identity", idFile)
		if code != 0 || !strings.Contains(out, "rewrapped") || !strings.Contains(out, "2 subject(s) erased again") {
			t.Fatalf("restore with the identity: exit %d: %s", code, out)
		}
		h = s.start()
		assertErased(t, h, member)
		assertErased(t, h, subscriber)
		assertStays(t, h)
	})
}
