package newsletter

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"runtime"
	"slices"
	"strings"
	"sync"

	"steward/internal/apperr"
	"steward/internal/consent"
	"steward/internal/store"
	"steward/internal/vault"
)

// ImportReport says what an import did.
type ImportReport struct {
	Rows       int
	Imported   int
	Existing   int // already on the list: left as they are
	Suppressed int // unsubscribed or erased before: never brought back
	Invalid    int
	Errors     []string // the first few invalid rows, by line
}

// importBatch is how many rows go in one transaction: large enough that the pages of
// the indexes written in key order are written once for many rows, small enough that a
// transaction holds the writer for a fraction of a second.
const importBatch = 10_000

// importFirstBatch is how many rows go in the first batch: storing starts once it is
// read, sooner than after a whole batch.
const importFirstBatch = 2_000

// importWorkers is how many batches PostgreSQL stores at once.
const importWorkers = 2

// importChunk is how many rows go in one INSERT on SQLite; PostgreSQL takes a whole
// batch in arrays.
const importChunk = 500

// Import reads a CSV of subscribers who consented to purpose in another system:
// a header naming at least email, first_name and last_name, and optionally company,
// consented_at, source and evidence (kept as the consent's evidence). Addresses already
// on the list are left alone; suppressed ones (unsubscribed, erased) are skipped.
//
// Two stages overlap: one reads, checks and prepares the next batch (it makes a data
// key for each new subscriber and seals the values under it, on every core, while it
// asks the read connections which of its addresses are on the list already or
// suppressed) while the other stores the batch before it in one transaction (on
// PostgreSQL, two batches at once), the subscribers' keys with them.
func (s *Service) Import(ctx context.Context, r io.Reader, purpose, importedBy string) (ImportReport, error) {
	var rep ImportReport
	if p, ok := s.consent.Register().Purpose(purpose); !ok || !p.NeedsConsent() || !p.Marketing {
		return rep, apperr.Field("purpose", "purpose_not_mail", "is not a marketing purpose that takes consent")
	}
	cr, col, err := importReader(r)
	if err != nil {
		return rep, err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	batches := make(chan importWork, 1)
	var (
		read    ImportReport // the reading stage's counts
		readErr error        // and how it ended; both read once batches is closed
	)
	go func() {
		defer close(batches)
		readErr = s.readImport(ctx, cr, col, purpose, importedBy, &read, batches)
	}()
	// SQLite has one writer: one batch at a time. PostgreSQL stores two at once, each
	// on a server process of its own.
	workers := 1
	if s.db.Dialect == store.Postgres {
		workers = importWorkers
	}
	var (
		mu       sync.Mutex
		storeErr error
		wg       sync.WaitGroup
	)
	fail := func(err error) {
		mu.Lock()
		defer mu.Unlock()
		if storeErr == nil {
			storeErr = err
			cancel()
		}
	}
	for range workers {
		wg.Go(func() {
			for w := range batches {
				got, err := s.importBatch(ctx, w, purpose)
				if err != nil {
					fail(err)
					return
				}
				mu.Lock()
				rep.Imported += got.Imported
				rep.Existing += got.Existing
				rep.Suppressed += got.Suppressed
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	cancel()
	for range batches { // let the reader end
	}
	if storeErr == nil {
		storeErr = readErr // a bad line, or the caller gave up
	}
	rep.Rows, rep.Invalid, rep.Errors = read.Rows, read.Invalid, read.Errors
	if storeErr == nil && rep.Imported > 0 && s.db.Dialect == store.Postgres {
		s.analyzeAfterImport(context.WithoutCancel(ctx))
	}
	return rep, storeErr
}

// importReader reads an import's header and returns the reader of its rows and the
// column of each name.
func importReader(r io.Reader) (*csv.Reader, map[string]int, error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	cr.ReuseRecord = true
	head, err := cr.Read()
	if err != nil {
		return nil, nil, apperr.Field("file", "csv_invalid", "cannot read the CSV header: "+err.Error())
	}
	col := map[string]int{}
	for i, h := range head {
		col[strings.ToLower(strings.TrimSpace(h))] = i
	}
	for _, need := range []string{"email", "first_name", "last_name"} {
		if _, ok := col[need]; !ok {
			return nil, nil, apperr.Field("file", "csv_invalid", "the header must name a column "+need)
		}
	}
	return cr, col, nil
}

// analyzeAfterImport brings PostgreSQL's statistics of what an import wrote up to date.
// After a bulk load they are stale until autovacuum comes round, and plans made
// meanwhile can scan what an index would find (a campaign sent right after an import
// checked each batch by reading the whole audience table). Only the columns that the
// audience, sending and lookup queries filter and join on are measured, each table on
// a connection of its own: the whole tables took the server half a second per 100,000
// rows. (consent_events is only read by subject, through its index.) A statistics
// target of 10 samples 3,000 rows a table (PostgreSQL samples 300 times the target,
// 30,000 rows by default): that tells the planner what it needs after a bulk load (how
// many rows, that the ids are distinct, the share of each status, purpose and
// decision) in a tenth of the default's time; autovacuum analyzes the tables again
// with the full sample once enough of them changed.
func (s *Service) analyzeAfterImport(ctx context.Context) {
	var wg sync.WaitGroup
	for _, t := range []string{"subscribers (subject_id, email_hash, status)", "consent_state (subject_id, purpose, decision)", "mailable (purpose, subject_id)"} {
		wg.Go(func() {
			if err := s.db.InTx(ctx, func(tx *store.Tx) error {
				if _, err := tx.ExecContext(ctx, `SET LOCAL default_statistics_target = 10`); err != nil {
					return err
				}
				_, err := tx.ExecContext(ctx, `ANALYZE `+t)
				return err
			}); err != nil {
				s.log.Warn("newsletter: analyze after import", "table", t, "err", err)
			}
		})
	}
	wg.Wait()
}

// importWork is a batch ready to store.
type importWork struct {
	rows []importRow
	// suppressed holds the hashes of the batch's addresses suppressed for the purpose
	// or for everything, read when the count of suppressions made stood at changes
	// or later.
	suppressed map[string]bool
	changes    int64
}

// suppressionsCounter names the count of suppressions made (change_counters).
const suppressionsCounter = "suppressions"

// importEvidence is what an imported consent keeps as its evidence: who imported it
// and what the file said of it.
type importEvidence struct {
	ImportedBy  string `json:"imported_by"`
	ConsentedAt string `json:"original_consented_at,omitempty"`
	Evidence    string `json:"original_evidence,omitempty"`
	Source      string `json:"original_source,omitempty"`
}

type importRow struct {
	sub      Subscription
	evidence string // JSON
	hash     string // AddressHash of the address
	existing bool   // on the list already, when the batch was read
	// The new subscriber's id (its subject), its data key with the key's vault_keys
	// row, and its values sealed under it. The key is stored before the consent
	// events, in the same transaction, so that what seals their evidence finds it.
	id     string
	key    *vault.Key
	keyRow []any
	sealed sealedSub
}

// readImport reads the CSV into batches: each row checked, its address hashed and its
// evidence encoded, the batch's addresses already on the list marked and its
// suppressed ones found, and every row given its id, data key and sealed values.
func (s *Service) readImport(ctx context.Context, cr *csv.Reader, col map[string]int, purpose, importedBy string, rep *ImportReport, out chan<- importWork) error {
	field := func(rec []string, name string) string {
		if i, ok := col[name]; ok && i < len(rec) {
			return strings.TrimSpace(rec[i])
		}
		return ""
	}
	size := importFirstBatch
	batch := make([]importRow, 0, size)
	seen := map[string]bool{}
	hasher := s.index.Hasher()
	send := func() error {
		if len(batch) == 0 {
			return nil
		}
		// In the order of their blind indexes, the batch's inserts into the unique
		// index of addresses go from one page to the next instead of jumping about.
		// (The rows are large: their order is sorted, then they are moved once.)
		order := make([]int, len(batch))
		for i := range order {
			order[i] = i
		}
		slices.SortFunc(order, func(a, b int) int { return strings.Compare(batch[a].hash, batch[b].hash) })
		sorted := make([]importRow, len(batch))
		for i, j := range order {
			sorted[i] = batch[j]
		}
		batch = sorted
		// Ids made in the same millisecond are in random order: sorted, they follow
		// the rows, and every index of the new rows (and of their keys) is written
		// in key order too, one page after another.
		ids := make([]string, len(batch))
		for i := range ids {
			ids[i] = s.newID()
		}
		slices.Sort(ids)
		for i := range batch {
			batch[i].id = ids[i]
		}
		// Keys are made and values sealed (other goroutines write the rows' key and
		// sealed values) while the read connections are asked about the addresses.
		hashes := rowHashes(batch)
		sealed := s.sealImport(batch)
		w := importWork{rows: batch}
		existing, err := s.lookUpImport(ctx, &w, hashes, purpose)
		if serr := sealed(); err == nil {
			err = serr
		}
		if err != nil {
			return err
		}
		for i := range batch {
			batch[i].existing = existing[batch[i].hash]
		}
		if s.importRead != nil {
			s.importRead()
		}
		select {
		case out <- w:
		case <-ctx.Done():
			return ctx.Err()
		}
		size = importBatch
		batch = make([]importRow, 0, size)
		return nil
	}
	line := 1
	for {
		rec, err := cr.Read()
		line++
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return apperr.Field("file", "csv_invalid", fmt.Sprintf("line %d: %v", line, err))
		}
		rep.Rows++
		sub, err := Subscription{FirstName: field(rec, "first_name"), LastName: field(rec, "last_name"),
			Email: field(rec, "email"), Company: field(rec, "company")}.check()
		if err != nil || seen[sub.Email] {
			rep.Invalid++
			if len(rep.Errors) < 10 {
				msg := "duplicate address"
				if err != nil {
					msg = err.Error()
				}
				rep.Errors = append(rep.Errors, fmt.Sprintf("line %d: %s", line, msg))
			}
			continue
		}
		seen[sub.Email] = true
		evJSON, _ := json.Marshal(importEvidence{ImportedBy: importedBy, ConsentedAt: field(rec, "consented_at"),
			Evidence: field(rec, "evidence"), Source: field(rec, "source")})
		batch = append(batch, importRow{sub: sub, evidence: string(evJSON), hash: hasher.Address(sub.Email)})
		if len(batch) == size {
			if err := send(); err != nil {
				return err
			}
		}
	}
	return send()
}

// lookUpImport reads the count of suppressions made, then which of the addresses (by
// their blind indexes) are on the list, and which are suppressed. The count is read
// first: a suppression added after it was read (and perhaps missed by the lookup) changes it.
func (s *Service) lookUpImport(ctx context.Context, w *importWork, hashes []string, purpose string) (existing map[string]bool, err error) {
	if w.changes, err = s.suppressionChanges(ctx, s.db); err != nil {
		return nil, err
	}
	if existing, err = s.existingIn(ctx, s.db, hashes); err != nil {
		return nil, err
	}
	w.suppressed, err = s.suppressedIn(ctx, s.db, hashes, purpose)
	return existing, err
}

// sealImport makes each row's data key and seals its values under it, the rows shared
// among as many goroutines as there are cores; the function it returns waits for them.
func (s *Service) sealImport(batch []importRow) func() error {
	n := min(runtime.GOMAXPROCS(0), max(len(batch)/100, 1))
	per := (len(batch) + n - 1) / n
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		part := batch[min(i*per, len(batch)):min((i+1)*per, len(batch))]
		wg.Go(func() {
			for j := range part {
				r := &part[j]
				k, row, err := s.vault.NewKey(r.id)
				if err != nil {
					errs[i] = fmt.Errorf("newsletter: import: %w", err)
					return
				}
				r.key, r.keyRow, r.sealed = k, row, sealSub(k, r.sub)
			}
		})
	}
	return func() error {
		wg.Wait()
		return errors.Join(errs...)
	}
}

// markExisting marks the rows whose address is on the list.
func (s *Service) markExisting(ctx context.Context, q store.Querier, batch []importRow) error {
	existing, err := s.existingIn(ctx, q, rowHashes(batch))
	for i := range batch {
		batch[i].existing = existing[batch[i].hash]
	}
	return err
}

// existingIn returns which of the addresses (by their blind indexes) are on the list.
func (s *Service) existingIn(ctx context.Context, q store.Querier, hashes []string) (map[string]bool, error) {
	existing := map[string]bool{}
	err := s.inChunks(hashes, func(chunk []string) error {
		in, args := s.db.In("email_hash", 1, chunk)
		return addStrings(ctx, q, existing, `SELECT email_hash FROM subscribers WHERE `+in, args)
	})
	return existing, err
}

func rowHashes(batch []importRow) []string {
	hashes := make([]string, len(batch))
	for i := range batch {
		hashes[i] = batch[i].hash
	}
	return hashes
}

// importBatch stores one batch in one transaction. Which addresses are on the list and
// which are suppressed was asked when the batch was read. An erasure or unsubscribe
// that committed since has changed the count of suppressions, and the suppressions
// are then asked again within the transaction. If an address joined the list since,
// the insert fails on it and the batch is stored again, asking both within; so it is
// too if PostgreSQL chose it as the victim of a deadlock (an erasure of an address the
// batch holds, waiting for the batch's lock on the suppressions while the batch waits
// for the erased row).
func (s *Service) importBatch(ctx context.Context, w importWork, purpose string) (ImportReport, error) {
	var got ImportReport
	err := s.db.InTx(ctx, func(tx *store.Tx) error {
		got = ImportReport{}
		return s.storeImport(ctx, tx, w, purpose, &got, false)
	})
	if store.IsUniqueViolation(err) || store.IsConflict(err) {
		err = s.db.InTx(ctx, func(tx *store.Tx) error {
			got = ImportReport{}
			return s.storeImport(ctx, tx, w, purpose, &got, true)
		})
	}
	return got, err
}

func (s *Service) storeImport(ctx context.Context, tx *store.Tx, w importWork, purpose string, rep *ImportReport, recheck bool) error {
	batch, suppressed := w.rows, w.suppressed
	if recheck {
		if err := s.markExisting(ctx, tx, batch); err != nil {
			return err
		}
	}
	// The count is relied on until the commit: a suppression waits for the lock.
	if err := tx.Lock(ctx, suppressionsCounter, true); err != nil {
		return fmt.Errorf("newsletter: import: %w", err)
	}
	changes, err := s.suppressionChanges(ctx, tx)
	if err != nil {
		return err
	}
	if s.importStoring != nil {
		s.importStoring()
	}
	if recheck || changes != w.changes {
		if suppressed, err = s.suppressedIn(ctx, tx, rowHashes(batch), purpose); err != nil {
			return err
		}
	}
	var fresh []importRow
	for _, r := range batch {
		switch {
		case suppressed[r.hash]:
			rep.Suppressed++
		case r.existing:
			rep.Existing++
		default:
			fresh = append(fresh, r)
		}
	}
	if len(fresh) == 0 {
		return nil
	}
	// The rows' ids were made and sorted with the rows when the batch was read.
	ids := make([]string, len(fresh))
	decisions := make([]consent.Imported, len(fresh))
	for i, r := range fresh {
		ids[i] = r.id
		decisions[i] = consent.Imported{SubjectID: r.id, Purpose: purpose, EvidenceJSON: r.evidence, Key: r.key}
	}
	// The new subscribers are mailable for the imported purpose: every input of the
	// rule was written or read in this transaction (confirmed, consent granted, not
	// suppressed for it or for everything; a new subject holds no restriction or
	// objection). A marketing purpose that takes no consent is evaluated by the rule
	// itself (its suppressions differ); one that takes consent is not theirs yet.
	now := store.Millis(s.now())
	if s.db.Dialect == store.Postgres {
		if err := storeImportArrays(ctx, tx, fresh, purpose, now); err != nil {
			return err
		}
	} else if err := storeImportRows(ctx, tx, fresh, purpose, now); err != nil {
		return err
	}
	if err := s.consent.ImportTx(ctx, tx, decisions); err != nil {
		return err
	}
	for _, p := range s.mailPurposes() {
		if p.NeedsConsent() {
			continue
		}
		if err := s.fillSubjects(ctx, tx, p.Key, ids); err != nil {
			return err
		}
	}
	rep.Imported += len(decisions)
	return nil
}

// storeImportRows writes the new subscribers and their keys in multi-row INSERTs
// (SQLite: its statements are cheapest prepared once and run again), the values the
// rows share bound once a statement; their mailable rows are copied from them.
func storeImportRows(ctx context.Context, tx *store.Tx, fresh []importRow, purpose string, now int64) error {
	// The transaction holds the only writer: rows with a larger rowid than any before
	// are the ones it writes.
	var before int64
	if err := tx.QueryRowContext(ctx, `SELECT COALESCE(max(rowid), 0) FROM subscribers`).Scan(&before); err != nil {
		return fmt.Errorf("newsletter: import: %w", err)
	}
	keys := tx.Bulk("vault_keys", []string{"subject_id", "wrapped", "epoch", "created_at"}, importChunk, "")
	defer keys.Close(ctx)
	for _, r := range fresh {
		if err := keys.Add(ctx, r.keyRow...); err != nil {
			return fmt.Errorf("newsletter: import: %w", err)
		}
	}
	if err := keys.Close(ctx); err != nil {
		return fmt.Errorf("newsletter: import: %w", err)
	}
	ins := tx.BulkSelect(`INSERT INTO subscribers (id, subject_id, email, email_hash, first_name, last_name, company,
		status, source, created_at, confirmed_at)
		SELECT column1, column1, column2, column3, column4, column5, column6, $1, 'import', $2, $3 FROM (VALUES `,
		[]any{StatusConfirmed, now, now}, 6, importChunk, ") AS v")
	defer ins.Close(ctx)
	for _, r := range fresh {
		if err := ins.Add(ctx, r.id, r.sealed.email, r.hash, r.sealed.first, r.sealed.last, r.sealed.company); err != nil {
			return fmt.Errorf("newsletter: import: %w", err)
		}
	}
	if err := ins.Close(ctx); err != nil {
		return fmt.Errorf("newsletter: import: %w", err)
	}
	// The kept copies of the address and first name are the same ciphertexts: the
	// columns share their labels.
	if _, err := tx.ExecContext(ctx, `INSERT INTO mailable (purpose, subject_id, email, first_name)
		SELECT $1, subject_id, email, first_name FROM subscribers WHERE rowid > $2 ORDER BY rowid`, purpose, before); err != nil {
		return fmt.Errorf("newsletter: import: %w", err)
	}
	return nil
}

// storeImportArrays writes the new subscribers, their keys and their mailable rows in
// one statement of a few arrays (PostgreSQL: parsing and binding tens of thousands of
// parameters costs it more than unnesting arrays), each value sent once.
func storeImportArrays(ctx context.Context, tx *store.Tx, fresh []importRow, purpose string, now int64) error {
	cols := make([][]string, 6)
	for i := range cols {
		cols[i] = make([]string, len(fresh))
	}
	wrapped, epochs, created := make([][]byte, len(fresh)), make([]int64, len(fresh)), make([]int64, len(fresh))
	for i, r := range fresh {
		cols[0][i], cols[1][i], cols[2][i], cols[3][i], cols[4][i], cols[5][i] = r.id, r.sealed.email, r.hash, r.sealed.first, r.sealed.last, r.sealed.company
		wrapped[i], epochs[i], created[i] = r.keyRow[1].([]byte), r.keyRow[2].(int64), r.keyRow[3].(int64)
	}
	// The arrays are unnested in the select lists, where their rows stream into the
	// inserts (unnest in FROM first copies them all into a store of rows, which spills
	// to a temporary file once it passes work_mem).
	if _, err := tx.ExecContext(ctx, `WITH k AS (
			INSERT INTO vault_keys (subject_id, wrapped, epoch, created_at)
			SELECT unnest($1::text[]), unnest($7::bytea[]), unnest($8::bigint[]), unnest($9::bigint[])),
		s AS (
			INSERT INTO subscribers (id, subject_id, email, email_hash, first_name, last_name, company, status, source, created_at, confirmed_at)
			SELECT u.id, u.id, u.email, u.hash, u.first, u.last, u.company, $10, 'import', $11, $11
			FROM (SELECT unnest($1::text[]) AS id, unnest($2::text[]) AS email, unnest($3::text[]) AS hash,
				unnest($4::text[]) AS first, unnest($5::text[]) AS last, unnest($6::text[]) AS company) AS u)
		INSERT INTO mailable (purpose, subject_id, email, first_name)
		SELECT $12, unnest($1::text[]), unnest($2::text[]), unnest($4::text[])`,
		cols[0], cols[1], cols[2], cols[3], cols[4], cols[5], wrapped, epochs, created, StatusConfirmed, now, purpose); err != nil {
		return fmt.Errorf("newsletter: import: %w", err)
	}
	return nil
}

// suppressionChanges returns the count of suppressions made (Suppress raises it).
func (s *Service) suppressionChanges(ctx context.Context, q store.Querier) (int64, error) {
	var n int64
	if err := q.QueryRowContext(ctx, `SELECT value FROM change_counters WHERE name = $1`, suppressionsCounter).Scan(&n); err != nil {
		return 0, fmt.Errorf("newsletter: import: %w", err)
	}
	return n, nil
}

// suppressedIn returns which of the addresses (by their blind indexes) are suppressed
// for the purpose or for everything.
func (s *Service) suppressedIn(ctx context.Context, q store.Querier, hashes []string, purpose string) (map[string]bool, error) {
	suppressed := map[string]bool{}
	err := s.inChunks(hashes, func(chunk []string) error {
		in, args := s.db.In("hash", 2, chunk)
		return addStrings(ctx, q, suppressed, `SELECT hash FROM suppressions WHERE purpose IN ($1, '*') AND `+in, append([]any{purpose}, args...))
	})
	return suppressed, err
}

// addStrings adds the values of a query of one text column to set.
func addStrings(ctx context.Context, q store.Querier, set map[string]bool, query string, args []any) error {
	list, err := store.Strings(ctx, q, query, args...)
	if err != nil {
		return fmt.Errorf("newsletter: import: %w", err)
	}
	for _, v := range list {
		set[v] = true
	}
	return nil
}
