package consent_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"steward/internal/consent"
	"steward/internal/store"
	"steward/internal/store/storetest"
	"steward/internal/vault"
)

// beforeSealing is the last migration of the release that kept consent evidence in
// plain text.
const beforeSealing = 15

func clock() time.Time { return time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC) }

// eachUpgrade runs fn on every engine with a database as the release before sealing
// left it, and what to call once that release's rows are written: it migrates to the
// current schema and opens the vault and the consent service.
func eachUpgrade(t *testing.T, fn func(t *testing.T, db *store.DB, upgrade func() (*consent.Service, *vault.Vault))) {
	for dialect, u := range storetest.Engines(t) {
		t.Run(string(dialect), func(t *testing.T) {
			ctx := context.Background()
			db, err := store.Open(ctx, u)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { db.Close() })
			if err := db.MigrateTo(ctx, beforeSealing); err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			fn(t, db, func() (*consent.Service, *vault.Vault) {
				t.Helper()
				if err := db.Migrate(ctx); err != nil {
					t.Fatal(err)
				}
				v, err := vault.Open(ctx, db, vault.Config{KeyFile: filepath.Join(dir, "master.key"), Create: true, Grace: -1}, clock, slog.New(slog.DiscardHandler))
				if err != nil {
					t.Fatal(err)
				}
				reg, err := consent.LoadRegister("")
				if err != nil {
					t.Fatal(err)
				}
				signer, _, err := consent.LoadSigner(filepath.Join(dir, "receipt.key"), "https://example.org", true)
				if err != nil {
					t.Fatal(err)
				}
				return consent.New(db, reg, "2025.1", signer, v, consent.Hooks{}, clock), v
			})
		})
	}
}

func evidenceOf(t *testing.T, db *store.DB, subject string) []string {
	t.Helper()
	out, err := store.Strings(context.Background(), db, `SELECT evidence FROM consent_events WHERE subject_id = $1 ORDER BY id`, subject)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// Evidence an earlier release kept in plain JSON is sealed at start under its
// subject's key (made for a subscriber who has none), opens as it was, and is found
// again by no later start.
func TestSealLegacyEvidence(t *testing.T) {
	eachUpgrade(t, func(t *testing.T, db *store.DB, upgrade func() (*consent.Service, *vault.Vault)) {
		ctx := context.Background()
		plain := map[string][]string{
			"sub-old":  {`{"ip":"192.0.2.7","user_agent":"OldBrowser/1"}`, `{"imported_by":"staff-1"}`},
			"acct-old": {`{"ip":"192.0.2.8"}`},
		}
		n := 0
		for subject, evs := range plain {
			for _, ev := range evs {
				if _, err := db.ExecContext(ctx, `INSERT INTO consent_events (subject_id, purpose, decision, source, policy_version, evidence, at)
					VALUES ($1, 'newsletter', 'granted', 'form', '2024.1', $2, 1)`, subject, ev); err != nil {
					t.Fatal(err)
				}
				n++
			}
		}
		c, v := upgrade()
		if _, err := v.DataKey(ctx, "acct-old", true); err != nil { // an account sealed before
			t.Fatal(err)
		}
		got, err := c.SealLegacy(ctx)
		if err != nil || got != n {
			t.Fatalf("SealLegacy = %d, %v; want %d", got, err, n)
		}
		for subject, evs := range plain {
			for _, raw := range evidenceOf(t, db, subject) {
				if strings.Contains(raw, "192.0.2") || strings.HasPrefix(raw, "{") {
					t.Errorf("%s: evidence still plain: %s", subject, raw)
				}
			}
			hist, err := c.History(ctx, subject)
			if err != nil || len(hist) != len(evs) {
				t.Fatalf("%s: history %v, %v", subject, hist, err)
			}
			for i, e := range hist {
				if want := evs[len(evs)-1-i]; fmt.Sprint(e.Evidence) != fmt.Sprint(decode(t, want)) {
					t.Errorf("%s: evidence %v, want %s", subject, e.Evidence, want)
				}
			}
			if _, err := c.Receipt(ctx, subject, hist[0].ID); err != nil {
				t.Errorf("%s: receipt: %v", subject, err)
			}
		}
		if again, err := c.SealLegacy(ctx); err != nil || again != 0 {
			t.Errorf("a second SealLegacy = %d, %v; want 0", again, err)
		}
	})
}

// An import seals each evidence under the key the importer gives, or under one it
// reads or makes; a member's ledger that moves to another subject is sealed again
// under that subject's key.
func TestImportAndRekeySeal(t *testing.T) {
	eachUpgrade(t, func(t *testing.T, db *store.DB, upgrade func() (*consent.Service, *vault.Vault)) {
		ctx := context.Background()
		c, v := upgrade()
		given, row, err := v.NewKey("sub-given")
		if err != nil {
			t.Fatal(err)
		}
		err = db.InTx(ctx, func(tx *store.Tx) error {
			if _, err := tx.ExecContext(ctx, `INSERT INTO vault_keys (subject_id, wrapped, epoch, created_at) VALUES ($1, $2, $3, $4)`, row...); err != nil {
				return err
			}
			return c.ImportTx(ctx, tx, []consent.Imported{
				{SubjectID: "sub-given", Purpose: "newsletter", EvidenceJSON: `{"imported_by":"given"}`, Key: given},
				{SubjectID: "sub-made", Purpose: "newsletter", Evidence: map[string]string{"imported_by": "made"}},
			})
		})
		if err != nil {
			t.Fatal(err)
		}
		for subject, by := range map[string]string{"sub-given": "given", "sub-made": "made"} {
			hist, err := c.History(ctx, subject)
			if err != nil || len(hist) != 1 || hist[0].Evidence["imported_by"] != by {
				t.Errorf("%s: history %+v, %v", subject, hist, err)
			}
			if raw := evidenceOf(t, db, subject); len(raw) != 1 || strings.Contains(raw[0], by) {
				t.Errorf("%s: stored evidence %v", subject, raw)
			}
		}
		// A key given for another subject is refused.
		err = db.InTx(ctx, func(tx *store.Tx) error {
			return c.ImportTx(ctx, tx, []consent.Imported{{SubjectID: "sub-other", Purpose: "newsletter", Key: given}})
		})
		if err == nil {
			t.Error("an import sealed under another subject's key")
		}

		// The subscriber registers: its ledger moves to the account.
		if _, err := c.Record(ctx, "sub-made", "own_offers", consent.Granted, consent.SourceForm, map[string]string{"ip": "198.51.100.4"}); err != nil {
			t.Fatal(err)
		}
		if err := c.SetFlags(ctx, "sub-made", consent.Flags{Objected: true}); err != nil {
			t.Fatal(err)
		}
		if err := db.InTx(ctx, func(tx *store.Tx) error { return c.Rekey(ctx, tx, "sub-made", "acct-1") }); err != nil {
			t.Fatal(err)
		}
		hist, err := c.History(ctx, "acct-1")
		if err != nil || len(hist) != 4 {
			t.Fatalf("the account's history after the move: %+v, %v", hist, err)
		}
		var ips []string
		for _, e := range hist {
			ips = append(ips, e.Evidence["ip"]+e.Evidence["imported_by"]+e.Evidence["merged_from"])
		}
		// Newest first: the merge's own objection, the subscriber's objection (no
		// evidence), its opt-in from an address, the import.
		if got := strings.Join(ips, ","); got != "sub-made,,198.51.100.4,made" {
			t.Errorf("moved evidence = %s", got)
		}
		if old, err := c.History(ctx, "sub-made"); err != nil || len(old) != 0 {
			t.Errorf("the subscriber's history after the move: %v, %v", old, err)
		}
	})
}

func decode(t *testing.T, s string) map[string]string {
	t.Helper()
	var m map[string]string
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// BenchmarkImportTx measures an import's consent events, 10,000 new subscribers a
// transaction, with the importer giving each subject's key (as the newsletter's import
// does once it makes its subscribers' keys) and with ImportTx making them.
func BenchmarkImportTx(b *testing.B) {
	for dialect, u := range storetest.Engines(b) {
		ctx := context.Background()
		db := storetest.Open(b, u)
		dir := b.TempDir()
		v, err := vault.Open(ctx, db, vault.Config{KeyFile: filepath.Join(dir, "master.key"), Create: true, Grace: -1}, clock, slog.New(slog.DiscardHandler))
		if err != nil {
			b.Fatal(err)
		}
		reg, _ := consent.LoadRegister("")
		signer, _, _ := consent.LoadSigner(filepath.Join(dir, "receipt.key"), "https://example.org", true)
		c := consent.New(db, reg, "2025.1", signer, v, consent.Hooks{}, clock)
		run := 0
		for _, mode := range []string{"key-given", "key-made"} {
			b.Run(string(dialect)+"/"+mode, func(b *testing.B) {
				const rows = 10_000
				ev := `{"imported_by":"bench","original_consented_at":"2024-03-01T10:00:00Z","original_evidence":"double opt-in confirmed from 203.0.113.7, form version 3","original_source":"signup form, spring webinar"}`
				for range b.N {
					run++
					in := make([]consent.Imported, rows)
					var keyRows []any
					for j := range in {
						in[j] = consent.Imported{SubjectID: fmt.Sprintf("s%05d-%06d", run, j), Purpose: "newsletter", EvidenceJSON: ev}
						if mode == "key-given" {
							k, row, err := v.NewKey(in[j].SubjectID)
							if err != nil {
								b.Fatal(err)
							}
							in[j].Key = k
							keyRows = append(keyRows, row...)
						}
					}
					err := db.InTx(ctx, func(tx *store.Tx) error {
						if len(keyRows) > 0 {
							if err := tx.InsertRows(ctx, `INSERT INTO vault_keys (subject_id, wrapped, epoch, created_at) VALUES `, 4, keyRows, ""); err != nil {
								return err
							}
						}
						return c.ImportTx(ctx, tx, in)
					})
					if err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(b.N*rows)/b.Elapsed().Seconds(), "rows/s")
			})
		}
	}
}
