package governance

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"runtime"
	"strconv"
	"sync"
	"time"

	"steward/internal/store"
)

// The chain (docs/design.md, "The audit log"). Record writes an entry unchained, in
// the caller's transaction, without any lock: logins in many concurrent transactions
// never wait for each other. The chainer (Chain: a periodic job, at start and before
// Verify) takes the unchained entries in id order and gives each its place in the
// chain (seq) and its hash, a batch per transaction under an advisory lock, so one
// node chains at a time and a batch is chained wholly or not at all. The chain's order
// is the chainer's: an entry whose transaction commits late joins the chain later.

// ChainArgs is the periodic job that chains new entries and signs checkpoints.
type ChainArgs struct{}

// Kind names the job.
func (ChainArgs) Kind() string { return "audit_chain" }

// Defaults of the checkpoints: one every CheckpointEvery entries, and one at least
// every CheckpointInterval while entries are added.
const (
	CheckpointEvery    = 10000
	CheckpointInterval = time.Hour
)

// chainBatch is how many entries one transaction of the chainer chains.
const chainBatch = 1000

// chainLock is the advisory lock the chainer holds (store.Tx.Lock).
const chainLock = "audit chain"

// legacyMAC marks entries written before the chain (migration 36), which have no MAC.
const legacyMAC = "legacy"

// row is an entry of the audit log as stored.
type row struct {
	id         int64
	seq        sql.NullInt64
	at         int64
	event      string
	accountID  sql.NullString // an earlier release's rows only, until SealLegacy
	accountIdx sql.NullString
	ip         string
	ipIdx      sql.NullString
	detail     string
	sealed     int64
	mac        sql.NullString
	hash       sql.NullString
}

// rowColumns are the columns of row, in its order (scan).
const rowColumns = `id, seq, at, event, account_id, account_idx, ip, ip_idx, detail, sealed, mac, hash`

func (r *row) scan(rows *sql.Rows) error {
	return rows.Scan(&r.id, &r.seq, &r.at, &r.event, &r.accountID, &r.accountIdx, &r.ip, &r.ipIdx, &r.detail, &r.sealed, &r.mac, &r.hash)
}

// encoder writes the canonical encoding of values: each a tag, then an integer's 8
// bytes, or a string's length (4 bytes) and bytes; NULL is a tag alone. Equal values
// encode equally on both engines; no two different lists encode the same.
type encoder []byte

func (e encoder) int(v int64) encoder {
	return binary.BigEndian.AppendUint64(append(e, 'i'), uint64(v))
}

func (e encoder) str(s string) encoder {
	return append(binary.BigEndian.AppendUint32(append(e, 's'), uint32(len(s))), s...)
}

func (e encoder) null(s sql.NullString) encoder {
	if !s.Valid {
		return append(e, 'n')
	}
	return e.str(s.String)
}

// content is what an entry's MAC covers: what Record writes, before the entry has an
// id or a place in the chain.
func (r *row) content(e encoder) encoder {
	e = append(e, "steward audit entry v1\n"...)
	return e.int(r.at).str(r.event).null(r.accountIdx).str(r.ip).null(r.ipIdx).str(r.detail).int(r.sealed)
}

// chained is what an entry's hash covers: every stored byte of the entry (its
// ciphertexts as stored, its MAC), its id and place in the chain, and the hash of the
// entry before it.
func (r *row) chained(e encoder, seq int64, prev []byte) encoder {
	e = append(e, "steward audit chain v1\n"...)
	e = e.int(seq).int(r.id).int(r.at).str(r.event).null(r.accountID).null(r.accountIdx).
		str(r.ip).null(r.ipIdx).str(r.detail).int(r.sealed).null(r.mac)
	return append(binary.BigEndian.AppendUint32(append(e, 'p'), uint32(len(prev))), prev...)
}

// chainHash is the entry's hash (chained).
func (r *row) chainHash(seq int64, prev []byte) []byte {
	sum := sha256.Sum256(r.chained(nil, seq, prev))
	return sum[:]
}

// genesis is the "hash before" the first entry.
var genesis = make([]byte, sha256.Size)

// checkpointMessage is what a checkpoint's signature covers.
func checkpointMessage(seq int64, hash string, at int64) []byte {
	return []byte("steward audit checkpoint v1\n" + strconv.FormatInt(seq, 10) + "\n" + hash + "\n" + strconv.FormatInt(at, 10) + "\n")
}

// Chain chains every entry written so far that is in its final form, a batch per
// transaction, and signs a checkpoint when one is due. It returns how many entries it
// chained. Safe to run on every node at once: they take turns.
func (a *Audit) Chain(ctx context.Context, db *store.DB) (int, error) {
	total := 0
	for {
		n, err := a.chainBatch(ctx, db, false)
		total += n
		if err != nil {
			return total, fmt.Errorf("governance: audit: chain: %w", err)
		}
		if n < chainBatch {
			return total, nil
		}
	}
}

// Checkpoint chains what is unchained and signs a checkpoint of the head now, if the
// head has none yet.
func (a *Audit) Checkpoint(ctx context.Context, db *store.DB) error {
	if _, err := a.Chain(ctx, db); err != nil {
		return err
	}
	if _, err := a.chainBatch(ctx, db, true); err != nil {
		return fmt.Errorf("governance: audit: checkpoint: %w", err)
	}
	return nil
}

func (a *Audit) chainBatch(ctx context.Context, db *store.DB, forceCheckpoint bool) (int, error) {
	n := 0
	err := db.InTx(ctx, func(tx *store.Tx) error {
		n = 0
		if err := tx.Lock(ctx, chainLock, false); err != nil {
			return err
		}
		var head int64
		prev := genesis
		var headHash sql.NullString
		err := tx.QueryRowContext(ctx, `SELECT seq, hash FROM audit_log WHERE seq IS NOT NULL ORDER BY seq DESC LIMIT 1`).Scan(&head, &headHash)
		switch {
		case err == sql.ErrNoRows:
		case err != nil:
			return err
		default:
			if prev, err = hex.DecodeString(headHash.String); err != nil || len(prev) != sha256.Size {
				return fmt.Errorf("the head entry %d has no valid hash (%q): run steward audit verify", head, headHash.String)
			}
		}
		// Only entries in their final form: an earlier release's rows wait for SealLegacy.
		rows, err := tx.QueryContext(ctx, `SELECT `+rowColumns+` FROM audit_log
			WHERE seq IS NULL AND sealed = 1 AND account_id IS NULL ORDER BY id LIMIT $1`, chainBatch)
		if err != nil {
			return err
		}
		var batch []row
		for rows.Next() {
			var r row
			if err := r.scan(rows); err != nil {
				rows.Close()
				return err
			}
			batch = append(batch, r)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		for i := range batch {
			if a.chainFault != nil {
				if err := a.chainFault(i); err != nil {
					return err
				}
			}
			head++
			prev = batch[i].chainHash(head, prev)
			if _, err := tx.ExecContext(ctx, `UPDATE audit_log SET seq = $1, hash = $2 WHERE id = $3 AND seq IS NULL`,
				head, hex.EncodeToString(prev), batch[i].id); err != nil {
				return err
			}
		}
		n = len(batch)
		if head == 0 {
			return nil
		}
		return a.checkpointIfDue(ctx, tx, head, hex.EncodeToString(prev), forceCheckpoint)
	})
	return n, err
}

// checkpointIfDue signs a checkpoint of the head (seq, hash) when the last one is
// checkpointEvery entries behind or older than checkpointInterval, or force is set.
func (a *Audit) checkpointIfDue(ctx context.Context, tx *store.Tx, seq int64, hash string, force bool) error {
	var last, lastAt int64
	err := tx.QueryRowContext(ctx, `SELECT seq, at FROM audit_checkpoints ORDER BY seq DESC LIMIT 1`).Scan(&last, &lastAt)
	if err != nil && err != sql.ErrNoRows {
		return err
	}
	now := store.Millis(a.now())
	due := seq > last && (force || seq-last >= int64(a.checkpointEvery) || now-lastAt >= a.checkpointInterval.Milliseconds())
	if !due {
		return nil
	}
	sig := ed25519.Sign(a.key.sign, checkpointMessage(seq, hash, now))
	_, err = tx.ExecContext(ctx, `INSERT INTO audit_checkpoints (seq, hash, at, key_id, signature) VALUES ($1, $2, $3, $4, $5)`,
		seq, hash, now, a.key.KeyID(), base64.StdEncoding.EncodeToString(sig))
	return err
}

// Report is what Verify found.
type Report struct {
	Entries     int64  // entries checked, in chain order
	Legacy      int64  // of them, written before the chain (no MAC)
	Checkpoints int    // checkpoints whose signature and hash were verified
	Head        int64  // the last entry's place in the chain
	HeadHash    string // and its hash
	Unchained   int64  // entries not chained yet (written since the chainer ran)
	// BrokenAt is the place in the chain where it first fails to verify, 0 if
	// nowhere; Problem says how.
	BrokenAt int64
	Problem  string
}

// Intact reports whether the log verified.
func (r Report) Intact() bool { return r.Problem == "" }

// Verify recomputes the chain from its first entry and checks each entry's MAC, the
// order of the places (none missing, none repeated), and each checkpoint: signed by
// this deployment's audit key, and naming the hash the chain has at its place. It
// stops at the first place where the chain breaks. A changed entry breaks at its own
// place (its MAC and hash no longer match), a removed one where it was, a reordered
// pair at the first of the two, an entry inserted by hand at its place (no MAC of
// ours). Entries removed from the end after the last checkpoint cannot be told from
// entries never written: checkpoints bound that window.
//
// Given the database (not a transaction) and a long chain, it verifies ranges of the
// chain at once, one per processor, each on its own connection: a range starts from
// the hash stored on the entry before it, which the range before checks, so the
// report is the one a single pass gives.
func (a *Audit) Verify(ctx context.Context, q store.Querier) (Report, error) {
	var rep Report
	cps, lastCheckpoint, err := readCheckpoints(ctx, q)
	if err != nil {
		return rep, fmt.Errorf("governance: audit: verify: %w", err)
	}
	// Entries from before the chain (legacy) may only come first: the first place
	// of an entry with a MAC ends them.
	var firstMAC, maxSeq sql.NullInt64
	if err := q.QueryRowContext(ctx, `SELECT (SELECT min(seq) FROM audit_log WHERE seq IS NOT NULL AND (mac IS NULL OR mac <> 'legacy')),
		(SELECT max(seq) FROM audit_log)`).Scan(&firstMAC, &maxSeq); err != nil {
		return rep, fmt.Errorf("governance: audit: verify: %w", err)
	}
	v := verifier{a: a, cps: cps, firstMAC: math.MaxInt64}
	if firstMAC.Valid {
		v.firstMAC = firstMAC.Int64
	}
	ranges := []verifyRange{{lo: math.MinInt64, hi: math.MaxInt64, prev: genesis}}
	if db, ok := q.(*store.DB); ok && maxSeq.Int64 >= parallelVerifyMin {
		n := verifyRanges
		if n == 0 {
			n = runtime.GOMAXPROCS(0)
		}
		if ranges, err = v.split(ctx, db, maxSeq.Int64, n); err != nil {
			return rep, fmt.Errorf("governance: audit: verify: %w", err)
		}
	}
	parts := make([]Report, len(ranges))
	errs := make([]error, len(ranges))
	var wg sync.WaitGroup
	for i := range ranges {
		wg.Go(func() { parts[i], errs[i] = v.verify(ctx, q, ranges[i]) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return rep, fmt.Errorf("governance: audit: verify: %w", err)
	}
	for _, p := range parts {
		rep.Entries += p.Entries
		rep.Legacy += p.Legacy
		rep.Checkpoints += p.Checkpoints
		if p.Entries > 0 {
			rep.Head, rep.HeadHash = p.Head, p.HeadHash
		}
		if p.Problem != "" {
			rep.BrokenAt, rep.Problem = p.BrokenAt, p.Problem
			break
		}
	}
	if rep.Problem == "" && lastCheckpoint > rep.Head {
		rep.BrokenAt = rep.Head + 1
		rep.Problem = fmt.Sprintf("a checkpoint was signed at entry %d, but the chain ends at %d: entries were removed from its end", lastCheckpoint, rep.Head)
	}
	if err := q.QueryRowContext(ctx, `SELECT count(*) FROM audit_log WHERE seq IS NULL`).Scan(&rep.Unchained); err != nil {
		return rep, fmt.Errorf("governance: audit: verify: %w", err)
	}
	return rep, nil
}

// From parallelVerifyMin entries on, Verify splits the chain in verifyRanges ranges
// (0: one per processor). Tests change them.
var (
	parallelVerifyMin int64 = 50_000
	verifyRanges            = 0
)

// checkpoint is a signed checkpoint as stored.
type checkpoint struct {
	hash, keyID, sig string
	at               int64
}

// readCheckpoints returns the checkpoints by place, and the last place.
func readCheckpoints(ctx context.Context, q store.Querier) (map[int64]checkpoint, int64, error) {
	cps := map[int64]checkpoint{}
	rows, err := q.QueryContext(ctx, `SELECT seq, hash, at, key_id, signature FROM audit_checkpoints ORDER BY seq`)
	if err != nil {
		return nil, 0, err
	}
	defer rows.Close()
	var last int64
	for rows.Next() {
		var seq int64
		var c checkpoint
		if err := rows.Scan(&seq, &c.hash, &c.at, &c.keyID, &c.sig); err != nil {
			return nil, 0, err
		}
		cps[seq] = c
		last = seq
	}
	return cps, last, rows.Err()
}

// verifier checks ranges of the chain.
type verifier struct {
	a        *Audit
	cps      map[int64]checkpoint
	firstMAC int64 // the first place of an entry with a MAC
}

// verifyRange is the places lo to hi, and the hash of the entry before lo.
type verifyRange struct {
	lo, hi int64
	prev   []byte
	next   int64 // the first place after hi that holds an entry; 0 for the last range
}

// split cuts places 1 to maxSeq in n ranges. Each range but the first starts from the
// hash stored on the entry before it (a missing or malformed one gives a hash that
// cannot match, and the range before reports that entry).
func (v verifier) split(ctx context.Context, db *store.DB, maxSeq int64, n int) ([]verifyRange, error) {
	n = max(2, min(n, 8, int(maxSeq)))
	size := maxSeq / int64(n)
	ranges := make([]verifyRange, n)
	for i := range ranges {
		r := &ranges[i]
		r.lo, r.hi, r.prev = int64(i)*size+1, int64(i+1)*size, genesis
		if i == 0 {
			r.lo = math.MinInt64
		} else {
			var stored sql.NullString
			err := db.QueryRowContext(ctx, `SELECT hash FROM audit_log WHERE seq = $1`, r.lo-1).Scan(&stored)
			if err != nil && !errors.Is(err, sql.ErrNoRows) {
				return nil, err
			}
			r.prev, _ = hex.DecodeString(stored.String)
			if len(r.prev) != sha256.Size {
				r.prev = []byte("missing")
			}
		}
		if i == n-1 {
			r.hi = math.MaxInt64
			continue
		}
		var next sql.NullInt64
		if err := db.QueryRowContext(ctx, `SELECT min(seq) FROM audit_log WHERE seq > $1`, r.hi).Scan(&next); err != nil {
			return nil, err
		}
		r.next = next.Int64
	}
	return ranges, nil
}

// verify checks the entries of one range, as Verify describes, and reports them
// (Entries, Legacy and Checkpoints counted within the range, up to a break).
func (v verifier) verify(ctx context.Context, q store.Querier, rg verifyRange) (Report, error) {
	var rep Report
	broken := func(seq int64, format string, args ...any) {
		if rep.Problem == "" {
			rep.BrokenAt, rep.Problem = seq, fmt.Sprintf(format, args...)
		}
	}
	pub := v.a.key.PublicKey()
	checkCheckpoint := func(seq int64, hash string, c checkpoint) {
		sig, err := base64.StdEncoding.DecodeString(c.sig)
		if err != nil || !ed25519.Verify(pub, checkpointMessage(seq, c.hash, c.at), sig) {
			broken(seq, "the checkpoint at entry %d is not signed by this deployment's audit key (%s; it names key %s)", seq, v.a.key.KeyID(), c.keyID)
			return
		}
		if c.hash != hash {
			broken(seq, "the checkpoint at entry %d signed hash %s, but the chain has %s there", seq, c.hash, hash)
			return
		}
		rep.Checkpoints++
	}

	rows, err := q.QueryContext(ctx, `SELECT `+rowColumns+` FROM audit_log WHERE seq IS NOT NULL AND seq >= $1 AND seq <= $2 ORDER BY seq`, rg.lo, rg.hi)
	if err != nil {
		return rep, err
	}
	defer rows.Close()
	prev := rg.prev
	expect := max(rg.lo, 1)
	var r row
	// One MAC, one buffer and one hash for every entry: Verify reads millions.
	mac, buf := v.a.key.macHash(), encoder(nil)
	var sum, prevBuf [sha256.Size]byte
	var hexed [2 * sha256.Size]byte
	matches := func(stored sql.NullString, want []byte) bool {
		hex.Encode(hexed[:], want)
		return stored.Valid && stored.String == string(hexed[:])
	}
	for rows.Next() && rep.Problem == "" {
		if err := r.scan(rows); err != nil {
			return rep, err
		}
		seq := r.seq.Int64
		switch {
		case seq > expect:
			broken(expect, "entry %d is missing (the next one is %d): removed", expect, seq)
			continue
		case seq < expect: // the unique index makes this impossible unless dropped
			broken(seq, "entry %d appears twice", seq)
			continue
		}
		switch {
		case r.mac.Valid && r.mac.String == legacyMAC && seq < v.firstMAC:
			rep.Legacy++
		case r.mac.Valid && r.mac.String == legacyMAC:
			broken(seq, "entry %d claims to be from before the chain, after entries that are not: inserted", seq)
		default:
			buf = r.content(buf[:0])
			mac.Reset()
			mac.Write(buf)
			if !matches(r.mac, mac.Sum(sum[:0])) {
				broken(seq, "entry %d does not match its MAC: changed, or not written by Steward", seq)
			}
		}
		buf = r.chained(buf[:0], seq, prev)
		sum = sha256.Sum256(buf)
		if !matches(r.hash, sum[:]) {
			broken(seq, "entry %d does not match its hash: changed, moved, or the entry before it was", seq)
		}
		if rep.Problem != "" {
			break
		}
		prevBuf = sum
		prev = prevBuf[:]
		rep.Entries++
		rep.Head, rep.HeadHash = seq, r.hash.String
		if c, ok := v.cps[seq]; ok {
			checkCheckpoint(seq, r.hash.String, c)
		}
		expect++
	}
	if err := rows.Err(); err != nil {
		return rep, err
	}
	if rep.Problem == "" && rg.next != 0 && expect <= rg.hi {
		broken(expect, "entry %d is missing (the next one is %d): removed", expect, rg.next)
	}
	return rep, nil
}
