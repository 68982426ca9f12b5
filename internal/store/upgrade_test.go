package store_test

import (
	"context"
	"strings"
	"testing"

	"steward/internal/store"
	"steward/internal/store/storetest"
)

// A database left by the release before migration 9 keeps its consent states and
// suppressions through it; on SQLite both tables then keep their rows in their key's
// tree (WITHOUT ROWID).
func TestUpgradeKeepsConsentStateAndSuppressions(t *testing.T) {
	for dialect, u := range storetest.Engines(t) {
		t.Run(string(dialect), func(t *testing.T) {
			ctx := context.Background()
			db, err := store.Open(ctx, u)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			if err := db.MigrateTo(ctx, 8); err != nil {
				t.Fatal(err)
			}
			for _, q := range []string{
				`INSERT INTO consent_state (subject_id, purpose, decision, event_id, at) VALUES ('s1', 'newsletter', 'granted', 7, 1000)`,
				`INSERT INTO consent_state (subject_id, purpose, decision, event_id, at) VALUES ('s1', 'own_offers', 'withdrawn', 9, 2000)`,
				`INSERT INTO suppressions (hash, purpose, reason, at) VALUES ('h1', '*', 'erased', 3000)`,
			} {
				if _, err := db.ExecContext(ctx, q); err != nil {
					t.Fatal(err)
				}
			}
			if err := db.Migrate(ctx); err != nil {
				t.Fatal(err)
			}
			var states, supps int
			var decision string
			if err := db.QueryRowContext(ctx, `SELECT (SELECT count(*) FROM consent_state), (SELECT count(*) FROM suppressions),
				(SELECT decision FROM consent_state WHERE subject_id = 's1' AND purpose = 'own_offers')`).Scan(&states, &supps, &decision); err != nil {
				t.Fatal(err)
			}
			if states != 2 || supps != 1 || decision != "withdrawn" {
				t.Errorf("after the upgrade: %d states, %d suppressions, own_offers %q", states, supps, decision)
			}
			// The keys still hold.
			_, err = db.ExecContext(ctx, `INSERT INTO suppressions (hash, purpose, reason, at) VALUES ('h1', '*', 'again', 4000)`)
			if !store.IsUniqueViolation(err) {
				t.Errorf("a second suppression of the same key = %v", err)
			}
			if dialect == store.SQLite {
				for _, table := range []string{"consent_state", "suppressions"} {
					var def string
					if err := db.QueryRowContext(ctx, `SELECT sql FROM sqlite_master WHERE type = 'table' AND name = $1`, table).Scan(&def); err != nil {
						t.Fatal(err)
					}
					if !strings.Contains(def, "WITHOUT ROWID") {
						t.Errorf("%s: %s", table, def)
					}
				}
			}
		})
	}
}

// The subscribers a release before migration 18 stored in plain text are listed to be
// sealed at start, and keep their links; from then on the blind index of the address
// is the unique key, and the (sealed, randomized) address no longer is.
func TestUpgradeListsSubscribersToSeal(t *testing.T) {
	for dialect, u := range storetest.Engines(t) {
		t.Run(string(dialect), func(t *testing.T) {
			ctx := context.Background()
			db, err := store.Open(ctx, u)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			if err := db.MigrateTo(ctx, 15); err != nil {
				t.Fatal(err)
			}
			if _, err := db.ExecContext(ctx, `INSERT INTO subscribers (id, subject_id, email, email_hash, first_name, last_name, status, source, created_at)
				VALUES ('s1', 's1', 'old@example.org', 'h1', 'Old', 'Timer', 'pending', 'form', 1)`); err != nil {
				t.Fatal(err)
			}
			if _, err := db.ExecContext(ctx, `INSERT INTO subscriber_tokens (id, subscriber_id, evidence, created_at, expires_at)
				VALUES ('t1', 's1', '{}', 1, 2)`); err != nil {
				t.Fatal(err)
			}
			if err := db.Migrate(ctx); err != nil {
				t.Fatal(err)
			}
			listed, err := store.Strings(ctx, db, `SELECT id FROM subscribers_unsealed`)
			if err != nil || len(listed) != 1 || listed[0] != "s1" {
				t.Fatalf("listed to seal: %v %v", listed, err)
			}
			_, err = db.ExecContext(ctx, `INSERT INTO subscribers (id, subject_id, email, email_hash, first_name, last_name, status, source, created_at)
				VALUES ('s2', 's2', 'other sealed value', 'h1', 'A', 'B', 'pending', 'form', 2)`)
			if !store.IsUniqueViolation(err) {
				t.Errorf("a second subscriber of the same blind index = %v", err)
			}
			if _, err := db.ExecContext(ctx, `INSERT INTO subscribers (id, subject_id, email, email_hash, first_name, last_name, status, source, created_at)
				VALUES ('s3', 's3', 'old@example.org', 'h3', 'A', 'B', 'pending', 'form', 3)`); err != nil {
				t.Errorf("the address is still unique: %v", err)
			}
			// The link survived, and still goes with its subscriber.
			if ids, err := store.Strings(ctx, db, `SELECT id FROM subscriber_tokens WHERE subscriber_id = 's1'`); err != nil || len(ids) != 1 {
				t.Errorf("links of s1 after the upgrade: %v %v", ids, err)
			}
			if _, err := db.ExecContext(ctx, `DELETE FROM subscribers WHERE id = 's1'`); err != nil {
				t.Fatal(err)
			}
			if ids, err := store.Strings(ctx, db, `SELECT id FROM subscriber_tokens`); err != nil || len(ids) != 0 {
				t.Errorf("links after their subscriber was deleted: %v %v", ids, err)
			}
		})
	}
}
