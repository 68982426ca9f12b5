package governance

import (
	"context"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"steward/internal/datamap"
	"steward/internal/store"
	"steward/internal/store/storetest"
)

// record writes n events alternating between an account and none.
func record(t *testing.T, a *Audit, db *store.DB, account string, n int) {
	t.Helper()
	ctx := context.Background()
	for i := range n {
		e := Event{Name: "login", AccountID: account, IP: fmt.Sprintf("198.51.100.%d", i+1)}
		if i%2 == 1 {
			e = Event{Name: "login_failed", IP: "203.0.113.9", Detail: "unknown account"}
		}
		if err := a.Record(ctx, db, e); err != nil {
			t.Fatal(err)
		}
	}
}

func chain(t *testing.T, a *Audit, db *store.DB) int {
	t.Helper()
	n, err := a.Chain(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func verify(t *testing.T, a *Audit, db *store.DB) Report {
	t.Helper()
	rep, err := a.Verify(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

func exec(t *testing.T, db *store.DB, q string, args ...any) {
	t.Helper()
	if _, err := db.ExecContext(context.Background(), q, args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

// dump is every entry as stored, in chain order.
func dump(t *testing.T, db *store.DB) []string {
	t.Helper()
	rows, err := db.QueryContext(context.Background(), `SELECT `+rowColumns+` FROM audit_log ORDER BY seq, id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var r row
		if err := r.scan(rows); err != nil {
			t.Fatal(err)
		}
		out = append(out, fmt.Sprintf("%+v", r))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// Each way of tampering with the log by SQL is found by Verify, which names the place
// in the chain where it breaks; the untouched log verifies.
func TestAuditVerifyFindsTampering(t *testing.T) {
	cases := []struct {
		name   string
		tamper func(t *testing.T, a *Audit, db *store.DB)
		want   int64 // where it breaks, 0: intact
		says   string
	}{
		{"intact", func(*testing.T, *Audit, *store.DB) {}, 0, ""},
		{"detail changed", func(t *testing.T, _ *Audit, db *store.DB) {
			exec(t, db, `UPDATE audit_log SET detail = 'nothing happened' WHERE seq = 4`)
		}, 4, "does not match its MAC"},
		{"event changed", func(t *testing.T, _ *Audit, db *store.DB) {
			exec(t, db, `UPDATE audit_log SET event = 'logout' WHERE seq = 5`)
		}, 5, "does not match its MAC"},
		{"time changed", func(t *testing.T, _ *Audit, db *store.DB) {
			exec(t, db, `UPDATE audit_log SET at = at - 3600000 WHERE seq = 6`)
		}, 6, "does not match its MAC"},
		{"sealed IP changed", func(t *testing.T, _ *Audit, db *store.DB) {
			exec(t, db, `UPDATE audit_log SET ip = (SELECT ip FROM audit_log WHERE seq = 1) WHERE seq = 3`)
		}, 3, "does not match its MAC"},
		{"hash rewritten", func(t *testing.T, _ *Audit, db *store.DB) {
			exec(t, db, `UPDATE audit_log SET hash = (SELECT hash FROM audit_log WHERE seq = 1) WHERE seq = 2`)
		}, 2, "does not match its hash"},
		{"removed", func(t *testing.T, _ *Audit, db *store.DB) {
			exec(t, db, `DELETE FROM audit_log WHERE seq = 2`)
		}, 2, "entry 2 is missing"},
		{"removed from the end, before a checkpoint", func(t *testing.T, _ *Audit, db *store.DB) {
			exec(t, db, `DELETE FROM audit_log WHERE seq >= 7`)
		}, 7, "checkpoint was signed at entry 8"},
		{"pair reordered", func(t *testing.T, _ *Audit, db *store.DB) {
			exec(t, db, `UPDATE audit_log SET seq = -1 WHERE seq = 3`)
			exec(t, db, `UPDATE audit_log SET seq = 3 WHERE seq = 4`)
			exec(t, db, `UPDATE audit_log SET seq = 4 WHERE seq = -1`)
		}, 3, "does not match its hash"},
		{"copy of a real entry inserted in the middle", func(t *testing.T, _ *Audit, db *store.DB) {
			exec(t, db, `UPDATE audit_log SET seq = seq + 100 WHERE seq >= 5`)
			exec(t, db, `UPDATE audit_log SET seq = seq - 99 WHERE seq >= 105`)
			exec(t, db, `INSERT INTO audit_log (at, event, account_idx, ip, ip_idx, detail, sealed, mac, seq, hash)
				SELECT at, event, account_idx, ip, ip_idx, detail, sealed, mac, 5, hash FROM audit_log WHERE seq = 4`)
		}, 5, "does not match its hash"},
		{"forged entry inserted unchained", func(t *testing.T, a *Audit, db *store.DB) {
			exec(t, db, `INSERT INTO audit_log (at, event, ip, ip_idx, detail, sealed, mac) VALUES (1, 'login', '', NULL, 'forged', 1, $1)`,
				strings.Repeat("0", 64))
			chain(t, a, db) // as the job would: it cannot tell
		}, 9, "does not match its MAC"},
		{"forged entry appended with a recomputed hash", func(t *testing.T, _ *Audit, db *store.DB) {
			var prev string
			if err := db.QueryRowContext(context.Background(), `SELECT hash FROM audit_log WHERE seq = 8`).Scan(&prev); err != nil {
				t.Fatal(err)
			}
			p, _ := hex.DecodeString(prev)
			forged := row{id: 1000, at: 1, event: "login", detail: "forged", sealed: 1, mac: sql.NullString{String: "legacy", Valid: true}}
			exec(t, db, `INSERT INTO audit_log (id, at, event, ip, detail, sealed, mac, seq, hash) VALUES (1000, 1, 'login', '', 'forged', 1, 'legacy', 9, $1)`,
				hex.EncodeToString(forged.chainHash(9, p)))
		}, 9, "claims to be from before the chain"},
		{"checkpoint rewritten", func(t *testing.T, _ *Audit, db *store.DB) {
			exec(t, db, `UPDATE audit_checkpoints SET hash = (SELECT hash FROM audit_log WHERE seq = 3) WHERE seq = 4`)
		}, 4, "not signed by this deployment's audit key"},
		{"checkpoint signed with another key", func(t *testing.T, a *Audit, db *store.DB) {
			record(t, a, db, "acct", 2)
			other := *a
			other.key = GenerateAuditKey()
			if err := other.Checkpoint(context.Background(), db); err != nil {
				t.Fatal(err)
			}
		}, 10, "not signed by this deployment's audit key"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			storetest.Each(t, func(t *testing.T, db *store.DB) {
				ctx := context.Background()
				a, v, _ := newAudit(t, db)
				if _, err := v.DataKey(ctx, "acct", true); err != nil {
					t.Fatal(err)
				}
				a.checkpointEvery = 1 << 30
				record(t, a, db, "acct", 4)
				if err := a.Checkpoint(ctx, db); err != nil {
					t.Fatal(err)
				}
				record(t, a, db, "acct", 4)
				if err := a.Checkpoint(ctx, db); err != nil {
					t.Fatal(err)
				}
				c.tamper(t, a, db)
				rep := verify(t, a, db)
				// In ranges at once (as a long chain is), the report is the same.
				for _, n := range []int{2, 3, 8} {
					parallelVerifyMin, verifyRanges = 1, n
					ranged := verify(t, a, db)
					parallelVerifyMin, verifyRanges = 50_000, 0
					if ranged != rep {
						t.Errorf("verify in %d ranges: %+v; in one pass: %+v", n, ranged, rep)
					}
				}
				if rep.BrokenAt != c.want || !strings.Contains(rep.Problem, c.says) {
					t.Errorf("verify: broken at %d (%q), want %d (%q)", rep.BrokenAt, rep.Problem, c.want, c.says)
				}
				if c.want == 0 && (!rep.Intact() || rep.Entries != 8 || rep.Checkpoints != 2 || rep.Head != 8 || len(rep.HeadHash) != 64) {
					t.Errorf("intact log: %+v; want 8 entries, 2 checkpoints, head 8", rep)
				}
				if c.want != 0 && rep.Intact() {
					t.Errorf("tampered log reported intact: %+v", rep)
				}
			})
		})
	}
}

// An erasure shreds the member's key and leaves the entries' bytes as chained: the
// chain across it still verifies, the member's entries no longer open, and no entry
// names the member by their id.
func TestAuditChainAcrossErasure(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		a, v, _ := newAudit(t, db)
		for _, id := range []string{"gone-acct", "kept-acct"} {
			if _, err := v.DataKey(ctx, id, true); err != nil {
				t.Fatal(err)
			}
		}
		record(t, a, db, "gone-acct", 4)
		record(t, a, db, "kept-acct", 2)
		chain(t, a, db)
		before := dump(t, db)
		err := db.InTx(ctx, func(tx *store.Tx) error {
			if err := v.Shred(ctx, tx, "gone-acct"); err != nil {
				return err
			}
			return AuditHolder{}.Erase(ctx, tx, datamap.Subject{ID: "gone-acct"})
		})
		if err != nil {
			t.Fatal(err)
		}
		after := dump(t, db)
		if strings.Join(before, "\n") != strings.Join(after, "\n") {
			t.Errorf("the erasure changed chained entries:\nbefore %q\nafter  %q", before, after)
		}
		record(t, a, db, "kept-acct", 3)
		if n := chain(t, a, db); n != 3 {
			t.Errorf("chained %d after the erasure, want 3", n)
		}
		if rep := verify(t, a, db); !rep.Intact() || rep.Entries != 9 {
			t.Errorf("verify across an erasure: %+v", rep)
		}
		if got, err := a.ForAccount(ctx, db, "gone-acct", 10); err != nil || got != nil {
			t.Errorf("the erased member's entries: %+v, %v; want none", got, err)
		}
		if got, err := a.ForAccount(ctx, db, "kept-acct", 10); err != nil || len(got) != 3 {
			t.Errorf("the other member's entries: %d, %v; want 3", len(got), err)
		}
		for _, r := range dump(t, db) {
			if strings.Contains(r, "gone-acct") || strings.Contains(r, "198.51.100") {
				t.Errorf("an entry holds an id or IP in plain text: %s", r)
			}
		}
	})
}

// Entries recorded in many concurrent transactions while the chainer runs all end up
// in the chain exactly once, numbered without gaps; on PostgreSQL an entry whose
// transaction commits after a later one joins the chain after it.
func TestAuditChainConcurrent(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		a, v, _ := newAudit(t, db)
		if _, err := v.DataKey(ctx, "acct", true); err != nil {
			t.Fatal(err)
		}
		const writers, each = 16, 8
		var wg sync.WaitGroup
		errs := make(chan error, writers+1)
		done := make(chan struct{})
		for w := range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range each {
					err := db.InTx(ctx, func(tx *store.Tx) error {
						return a.Record(ctx, tx, Event{Name: "login", AccountID: "acct", IP: fmt.Sprintf("192.0.2.%d", w*each+i)})
					})
					if err != nil {
						errs <- err
						return
					}
				}
			}()
		}
		chained := make(chan int, 1)
		go func() {
			total := 0
			for {
				select {
				case <-done:
					chained <- total
					return
				default:
				}
				n, err := a.Chain(ctx, db)
				if err != nil {
					errs <- err
					<-done
					chained <- total
					return
				}
				total += n
			}
		}()
		wg.Wait()
		close(done)
		total := <-chained + chain(t, a, db)
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		if total != writers*each {
			t.Errorf("chained %d entries in all, want %d", total, writers*each)
		}
		var n, distinct, maxSeq, unchained int64
		if err := db.QueryRowContext(ctx, `SELECT count(seq), count(DISTINCT seq), COALESCE(max(seq), 0), count(*) - count(seq) FROM audit_log`).
			Scan(&n, &distinct, &maxSeq, &unchained); err != nil {
			t.Fatal(err)
		}
		if n != writers*each || distinct != n || maxSeq != n || unchained != 0 {
			t.Errorf("chained %d, distinct %d, max %d, unchained %d; want %d each, none unchained", n, distinct, maxSeq, unchained, writers*each)
		}
		if rep := verify(t, a, db); !rep.Intact() || rep.Entries != writers*each {
			t.Errorf("verify: %+v", rep)
		}

		if db.Dialect != store.Postgres {
			return // SQLite has one writer: no transaction commits out of order
		}
		recorded, release := make(chan error), make(chan struct{})
		go func() {
			recorded <- db.InTx(ctx, func(tx *store.Tx) error {
				err := a.Record(ctx, tx, Event{Name: "late", AccountID: "acct"})
				recorded <- err
				<-release
				return err
			})
		}()
		if err := <-recorded; err != nil {
			t.Fatal(err)
		}
		record(t, a, db, "acct", 1) // a later id, committed first
		if n := chain(t, a, db); n != 1 {
			t.Errorf("chained %d while a transaction is open, want the committed one", n)
		}
		close(release)
		if err := <-recorded; err != nil {
			t.Fatal(err)
		}
		if n := chain(t, a, db); n != 1 {
			t.Errorf("chained %d after the late commit, want 1", n)
		}
		var late int64
		if err := db.QueryRowContext(ctx, `SELECT seq FROM audit_log WHERE event = 'late'`).Scan(&late); err != nil || late != writers*each+2 {
			t.Errorf("the late entry's place: %d, %v; want %d (after the one committed before it)", late, err, writers*each+2)
		}
		if rep := verify(t, a, db); !rep.Intact() {
			t.Errorf("verify: %+v", rep)
		}
	})
}

// A chainer that dies in the middle of a batch leaves nothing half chained: its
// transaction rolls back, and the next run chains the whole batch.
func TestAuditChainResumesAfterCrash(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		a, v, _ := newAudit(t, db)
		if _, err := v.DataKey(ctx, "acct", true); err != nil {
			t.Fatal(err)
		}
		record(t, a, db, "acct", 10)
		crash := errors.New("killed")
		a.chainFault = func(i int) error {
			if i == 6 {
				return crash
			}
			return nil
		}
		a.checkpointEvery = 1
		if _, err := a.Chain(ctx, db); !errors.Is(err, crash) {
			t.Fatalf("chain: %v, want the crash", err)
		}
		var chained, checkpoints int
		if err := db.QueryRowContext(ctx, `SELECT count(seq), (SELECT count(*) FROM audit_checkpoints) FROM audit_log`).Scan(&chained, &checkpoints); err != nil {
			t.Fatal(err)
		}
		if chained != 0 || checkpoints != 0 {
			t.Errorf("after the crash: %d entries chained, %d checkpoints; want none", chained, checkpoints)
		}
		a.chainFault = nil
		if n := chain(t, a, db); n != 10 {
			t.Errorf("chained %d on resuming, want 10", n)
		}
		if rep := verify(t, a, db); !rep.Intact() || rep.Entries != 10 || rep.Checkpoints != 1 {
			t.Errorf("verify: %+v; want 10 entries and a checkpoint", rep)
		}
	})
}

// Checkpoints come every N entries, and once the interval has passed since the last.
func TestAuditCheckpointsDue(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		a, v, _ := newAudit(t, db)
		if _, err := v.DataKey(ctx, "acct", true); err != nil {
			t.Fatal(err)
		}
		a.checkpointEvery = 5
		record(t, a, db, "acct", 3)
		chain(t, a, db) // the first checkpoint: none before it
		record(t, a, db, "acct", 2)
		chain(t, a, db) // 2 since: not due
		record(t, a, db, "acct", 3)
		chain(t, a, db) // 5 since: due
		seqs, err := store.Strings(ctx, db, `SELECT seq FROM audit_checkpoints ORDER BY seq`)
		if err != nil || strings.Join(seqs, ",") != "3,8" {
			t.Errorf("checkpoints at %v, %v; want 3,8", seqs, err)
		}
		a.checkpointInterval = 0 // as if an hour had passed
		record(t, a, db, "acct", 1)
		chain(t, a, db)
		if rep := verify(t, a, db); !rep.Intact() || rep.Checkpoints != 3 {
			t.Errorf("verify: %+v; want 3 checkpoints", rep)
		}
	})
}
