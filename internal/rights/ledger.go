package rights

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"time"

	"steward/internal/apperr"
	"steward/internal/blob"
	"steward/internal/datamap"
	"steward/internal/store"
	"steward/internal/vault"
)

// Ledger is how erasures are remembered.
type Ledger struct {
	// Key keys the hashes of erased ids (LedgerHash) and, through a key derived from
	// it, the MAC of every ledger object. It is kept outside the database.
	Key []byte
	// Index is the blind index of addresses. An erased address is remembered by it, so
	// that a holder which keeps the same index (the newsletter) finds it again.
	Index *vault.Index
	// Blobs is the object store (the one files use). Every erasure writes its entries
	// there as one object, apart from the database and its backups.
	Blobs blob.Store
}

// Ledger entry kinds.
const (
	KindID      = "id"      // LedgerHash("id", subject id)
	KindAddress = "address" // vault.Index.Address(address)
	// kindEmail is LedgerHash("email", address): what entries made before addresses
	// were remembered by their blind index hold. They are still read; no holder can
	// find an address by it, so such an erasure is found again by its id entry.
	kindEmail = "email"
)

const (
	// LedgerPrefix is where ledger objects are in the blob store. Files are under
	// files/, and the files reconciler lists only that: it never sees these.
	LedgerPrefix = "ledger/"
	ledgerFormat = "steward-ledger/1"
	// maxLedgerObject bounds what is read of one object.
	maxLedgerObject = 1 << 20
	// backfillRequest names the object that says every erasure made before ledger
	// objects existed has been written out (see writeMissingObjects).
	backfillRequest = "backfill"
)

// ReplayMargin is how far before the newest erasure the database knows a replay at
// start begins to read ledger objects. An object's time is taken before its erasure
// commits, and nodes' clocks differ, so an erasure that committed after a backup was
// taken can carry a time a little before the newest one in that backup; a day covers
// a slow commit and any sane clock skew, and reading a day of objects costs little.
const ReplayMargin = 24 * time.Hour

// ErrLedgerObject is what Replay returns for a ledger object that does not verify.
var ErrLedgerObject = errors.New("erasure ledger object does not verify")

// LedgerEntry is one hashed identifier of an erasure.
type LedgerEntry struct {
	Kind string `json:"kind"`
	Hash string `json:"hash"`
}

// ledgerObject is the object an erasure leaves in the blob store: keyed hashes only,
// and a MAC over its canonical content.
type ledgerObject struct {
	Format    string        `json:"format"`
	RequestID string        `json:"request_id"`
	ErasedAt  int64         `json:"erased_at"`
	Entries   []LedgerEntry `json:"entries"`
	MAC       string        `json:"mac"`
}

// deriveKey derives a key for one use from the ledger key (HMAC-SHA-256 of the label),
// so that the key of one use tells nothing of another's.
func deriveKey(key []byte, label string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(label))
	return m.Sum(nil)
}

// ledgerObjectName is the object's name: its time as 13 digits of milliseconds, so that
// names sort by time and a listing can start at a point in time, and the request id.
func ledgerObjectName(erasedAt int64, requestID string) string {
	return fmt.Sprintf("%s%013d-%s.json", LedgerPrefix, erasedAt, requestID)
}

// ledgerEntries are the hashes an erasure of subj remembers.
func (s *Service) ledgerEntries(subj datamap.Subject) []LedgerEntry {
	var out []LedgerEntry
	if subj.ID != "" {
		out = append(out, LedgerEntry{Kind: KindID, Hash: s.LedgerHash(KindID, subj.ID)})
	}
	if subj.Email != "" {
		out = append(out, LedgerEntry{Kind: KindAddress, Hash: s.ledger.Index.Address(subj.Email)})
	}
	// Every address the subject proved before is theirs too: a restore must not bring
	// back what was filed under it.
	for _, h := range subj.Proven {
		out = append(out, LedgerEntry{Kind: KindAddress, Hash: h})
	}
	return out
}

// canonical is what the MAC covers: one field a line, entries in their order. Every
// field is checked to hold no line break or space (check), so the form is unambiguous.
func (o ledgerObject) canonical() []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s\nrequest_id %s\nerased_at %d\n", o.Format, o.RequestID, o.ErasedAt)
	for _, e := range o.Entries {
		fmt.Fprintf(&b, "%s %s\n", e.Kind, e.Hash)
	}
	return b.Bytes()
}

func (s *Service) objectMAC(o ledgerObject) string {
	m := hmac.New(sha256.New, s.objKey)
	m.Write(o.canonical())
	return hex.EncodeToString(m.Sum(nil))
}

var (
	requestIDRE = regexp.MustCompile(`^[a-z0-9]{1,64}$`)
	kindRE      = regexp.MustCompile(`^[a-z]{1,20}$`)
	hashRE      = regexp.MustCompile(`^[0-9a-f]{64}$`)
)

// check reports what is wrong with the object's fields, or nil.
func (o ledgerObject) check() error {
	switch {
	case o.Format != ledgerFormat:
		return fmt.Errorf("format %q, want %q", o.Format, ledgerFormat)
	case !requestIDRE.MatchString(o.RequestID):
		return errors.New("malformed request id")
	case o.ErasedAt < 0 || o.ErasedAt > 9999999999999:
		return errors.New("erased_at out of range")
	}
	for _, e := range o.Entries {
		if !kindRE.MatchString(e.Kind) || !hashRE.MatchString(e.Hash) {
			return errors.New("malformed entry")
		}
	}
	return nil
}

// writeLedgerObject puts the erasure's object in the blob store. The name holds the
// time and the request, so writing it again (a retry) replaces it with the same.
func (s *Service) writeLedgerObject(ctx context.Context, requestID string, erasedAt int64, entries []LedgerEntry) error {
	if s.ledger.Blobs == nil {
		return errors.New("rights: no blob store for the erasure ledger")
	}
	o := ledgerObject{Format: ledgerFormat, RequestID: requestID, ErasedAt: erasedAt, Entries: entries}
	if o.Entries == nil {
		o.Entries = []LedgerEntry{}
	}
	if err := o.check(); err != nil {
		return fmt.Errorf("rights: ledger object: %w", err)
	}
	o.MAC = s.objectMAC(o)
	b, err := json.Marshal(o)
	if err != nil {
		return fmt.Errorf("rights: ledger object: %w", err)
	}
	if _, err := s.ledger.Blobs.Put(ctx, ledgerObjectName(erasedAt, requestID), bytes.NewReader(b), int64(len(b))); err != nil {
		return fmt.Errorf("rights: ledger object: %w", err)
	}
	return nil
}

// readLedgerObject reads and verifies an object; any failure is ErrLedgerObject with
// the object's name and what to do.
func (s *Service) readLedgerObject(ctx context.Context, name string) (ledgerObject, error) {
	var o ledgerObject
	bad := func(reason string) error {
		return fmt.Errorf("%w: %s: %s. It was changed, damaged, or written under another ledger key "+
			"(--ledger-key-file); Steward does not start while it is there. Put back this object from a copy of the "+
			"ledger store, or, if it is not this deployment's, move it out of %s; do not delete a genuine one",
			ErrLedgerObject, name, reason, LedgerPrefix)
	}
	r, err := s.ledger.Blobs.Open(ctx, name, 0, -1)
	if err != nil {
		return o, fmt.Errorf("rights: ledger object %s: %w", name, err)
	}
	b, err := io.ReadAll(io.LimitReader(r, maxLedgerObject+1))
	r.Close()
	if err != nil {
		return o, fmt.Errorf("rights: ledger object %s: %w", name, err)
	}
	if len(b) > maxLedgerObject {
		return o, bad("larger than any ledger object")
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&o); err != nil {
		return o, bad("not a ledger object (" + err.Error() + ")")
	}
	if err := o.check(); err != nil {
		return o, bad(err.Error())
	}
	if !hmac.Equal([]byte(o.MAC), []byte(s.objectMAC(o))) {
		return o, bad("its MAC does not match its content under this deployment's ledger key")
	}
	if name != ledgerObjectName(o.ErasedAt, o.RequestID) {
		return o, bad("its name does not match its time and request")
	}
	return o, nil
}

// VerifyLedgerObjects reads every ledger object and verifies it, changing nothing: a
// restore asks it before it replaces the database, so that an object that would stop
// the replay stops the restore before anything changed. It returns how many it read.
func VerifyLedgerObjects(ctx context.Context, l Ledger) (int, error) {
	s := &Service{ledger: l, objKey: deriveKey(l.Key, "steward ledger object v1")}
	var names []string
	if err := l.Blobs.List(ctx, LedgerPrefix, func(i blob.Info) error {
		names = append(names, i.Name)
		return nil
	}); err != nil {
		return 0, fmt.Errorf("rights: ledger objects: %w", err)
	}
	for _, name := range names {
		if _, err := s.readLedgerObject(ctx, name); err != nil {
			return 0, err
		}
	}
	return len(names), nil
}

// ReplayReport counts what a replay did. It holds no identifier.
type ReplayReport struct {
	Objects  int // ledger objects read and verified
	Entries  int // entries the database lacked, now in erasure_ledger
	Subjects int // subjects the new entries found in the database, erased again
	Written  int // ledger objects written for erasures the database had and the store lacked
}

// missingEntry is an entry of a ledger object that the database lacks.
type missingEntry struct {
	LedgerEntry
	requestID string
	erasedAt  int64
	subjects  []string // whom it finds in the database
}

// Replay makes the database agree with the ledger objects, so that a restored database
// does not bring back anyone erased after its backup was taken. It reads the objects
// (all with full; otherwise from ReplayMargin before the newest erasure the database
// knows: what a database lacks was erased after its newest entry), verifies every one
// before it changes anything, adds to erasure_ledger the entries it lacks, and finds the
// subjects those name: an id through the subject column of every table of the data
// map, an address through the holders that keep its blind index. In one transaction
// with the new entries, each such subject gets an erasure request, and each holder
// of addresses records them as erased; then the requests run, before Replay returns.
// A crash after that transaction leaves the requests pending: a start resumes them.
func (s *Service) Replay(ctx context.Context, full bool) (ReplayReport, error) {
	var rep ReplayReport
	after := ""
	if !full {
		newest, err := NewestErasure(ctx, s.db)
		if err != nil {
			return rep, err
		}
		if from := newest - ReplayMargin.Milliseconds(); from > 0 {
			after = fmt.Sprintf("%s%013d", LedgerPrefix, from)
		}
	}
	var names []string
	if err := s.ledger.Blobs.ListAfter(ctx, LedgerPrefix, after, func(i blob.Info) error {
		names = append(names, i.Name)
		return nil
	}); err != nil {
		return rep, fmt.Errorf("rights: replay: %w", err)
	}
	slices.Sort(names) // oldest first: an identifier erased twice keeps its first time
	missing := map[string]*missingEntry{}
	var order []string
	var batch []missingEntry
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		hashes := make([]string, len(batch))
		for i, e := range batch {
			hashes[i] = e.Hash
		}
		in, args := s.db.In("hash", 1, hashes)
		known, err := store.Strings(ctx, s.db, `SELECT hash FROM erasure_ledger WHERE `+in, args...)
		if err != nil {
			return fmt.Errorf("rights: replay: %w", err)
		}
		have := map[string]bool{}
		for _, h := range known {
			have[h] = true
		}
		for _, e := range batch {
			if !have[e.Hash] && missing[e.Hash] == nil {
				missing[e.Hash] = &e
				order = append(order, e.Hash)
			}
		}
		batch = batch[:0]
		return nil
	}
	for _, name := range names {
		o, err := s.readLedgerObject(ctx, name)
		if err != nil {
			return rep, err
		}
		rep.Objects++
		for _, e := range o.Entries {
			batch = append(batch, missingEntry{LedgerEntry: e, requestID: o.RequestID, erasedAt: o.ErasedAt})
		}
		if len(batch) >= 500 {
			if err := flush(); err != nil {
				return rep, err
			}
		}
	}
	if err := flush(); err != nil {
		return rep, err
	}
	if len(missing) > 0 {
		if err := s.replayMissing(ctx, missing, order, &rep); err != nil {
			return rep, err
		}
	}
	n, err := s.writeMissingObjects(ctx)
	rep.Written = n
	if err != nil {
		return rep, err
	}
	s.log.Info("erasure ledger replayed", "objects", rep.Objects, "entries_added", rep.Entries,
		"subjects_erased_again", rep.Subjects, "objects_written", rep.Written)
	return rep, nil
}

// replayMissing adds the missing entries, and erases again whom they find.
func (s *Service) replayMissing(ctx context.Context, missing map[string]*missingEntry, order []string, rep *ReplayReport) error {
	// Whom the entries find. Ids: every subject id of the database, hashed as the
	// ledger hashes them.
	byID := map[string]*missingEntry{}
	var addresses []*missingEntry
	for _, h := range order {
		switch e := missing[h]; e.Kind {
		case KindID:
			byID[h] = e
		case KindAddress:
			addresses = append(addresses, e)
		}
	}
	if len(byID) > 0 {
		err := s.reg.EachSubjectID(ctx, s.db, func(id string) error {
			if e := byID[s.LedgerHash(KindID, id)]; e != nil {
				e.subjects = append(e.subjects, id)
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("rights: replay: %w", err)
		}
	}
	var indexed []datamap.AddressIndexed
	for _, h := range s.reg.Holders() {
		if ai, ok := h.(datamap.AddressIndexed); ok {
			indexed = append(indexed, ai)
		}
	}
	for _, e := range addresses {
		for _, ai := range indexed {
			ids, err := ai.SubjectsByAddress(ctx, s.db, []string{e.Hash})
			if err != nil {
				return fmt.Errorf("rights: replay: %w", err)
			}
			e.subjects = append(e.subjects, ids...)
		}
	}
	// Each subject as erasure knows it: an account with its addresses, or else an id
	// that holders erase by (the addresses are remembered as erased below).
	subjects := map[string]datamap.Subject{}
	for _, h := range order {
		for _, id := range missing[h].subjects {
			if _, ok := subjects[id]; ok {
				continue
			}
			subj, err := s.accounts.ErasureSubject(ctx, id)
			if apperr.KindOf(err) == apperr.NotFound {
				subj, err = datamap.Subject{ID: id}, nil
			}
			if err != nil {
				return fmt.Errorf("rights: replay: %w", err)
			}
			subjects[id] = subj
		}
	}
	var requests []string
	err := s.db.InTx(ctx, func(tx *store.Tx) error {
		requests, rep.Entries = nil, 0
		// Nodes starting together replay one at a time; the later finds the entries
		// added and leaves their subjects to the first.
		if err := tx.Lock(ctx, "erasure ledger replay", false); err != nil {
			return err
		}
		var erased []string
		var addrs []string
		for _, h := range order {
			e := missing[h]
			res, err := tx.ExecContext(ctx, `INSERT INTO erasure_ledger (hash, kind, request_id, erased_at) VALUES ($1, $2, $3, $4)
				ON CONFLICT (hash) DO NOTHING`, e.Hash, e.Kind, e.requestID, e.erasedAt)
			if err != nil {
				return err
			}
			if n, err := res.RowsAffected(); err != nil || n == 0 {
				continue // added meanwhile by another node, or RowsAffected unknown: leave it
			}
			rep.Entries++
			erased = append(erased, e.subjects...)
			if e.Kind == KindAddress {
				addrs = append(addrs, e.Hash)
			}
		}
		for _, ai := range indexed {
			if err := ai.AddressesErased(ctx, tx, addrs); err != nil {
				return err
			}
		}
		seen := map[string]bool{}
		for _, id := range erased {
			if seen[id] {
				continue
			}
			seen[id] = true
			req, err := s.insertRequest(ctx, tx, subjects[id], "ledger_replay")
			if err != nil {
				return err
			}
			requests = append(requests, req)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("rights: replay: %w", err)
	}
	var errs []error
	for _, id := range requests {
		if err := s.Run(ctx, id); err != nil {
			errs = append(errs, err)
			continue
		}
		rep.Subjects++
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("rights: replay: erasing again a subject the ledger names (the request stays pending and the next start resumes it): %w", err)
	}
	return nil
}

// writeMissingObjects writes an object for every erasure of the database ledger, once:
// erasures made before ledger objects existed have none. A marker object says it was
// done; until it is there, every start tries again (writing an object twice is
// harmless: same name, same content).
func (s *Service) writeMissingObjects(ctx context.Context) (int, error) {
	marker := ledgerObjectName(0, backfillRequest)
	if _, err := s.ledger.Blobs.Stat(ctx, marker); err == nil {
		return 0, nil
	} else if !errors.Is(err, blob.ErrNotFound) {
		return 0, fmt.Errorf("rights: ledger objects: %w", err)
	}
	rows, err := s.db.QueryContext(ctx, `SELECT request_id, kind, hash, erased_at FROM erasure_ledger ORDER BY request_id, kind, hash`)
	if err != nil {
		return 0, fmt.Errorf("rights: ledger objects: %w", err)
	}
	type request struct {
		id      string
		at      int64
		entries []LedgerEntry
	}
	var reqs []*request
	for rows.Next() {
		var id string
		var e LedgerEntry
		var at int64
		if err := rows.Scan(&id, &e.Kind, &e.Hash, &at); err != nil {
			rows.Close()
			return 0, fmt.Errorf("rights: ledger objects: %w", err)
		}
		if len(reqs) == 0 || reqs[len(reqs)-1].id != id {
			reqs = append(reqs, &request{id: id})
		}
		r := reqs[len(reqs)-1]
		r.at = max(r.at, at)
		r.entries = append(r.entries, e)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("rights: ledger objects: %w", err)
	}
	n := 0
	for _, r := range reqs {
		name := ledgerObjectName(r.at, r.id)
		if _, err := s.ledger.Blobs.Stat(ctx, name); err == nil {
			continue
		}
		if err := s.writeLedgerObject(ctx, r.id, r.at, r.entries); err != nil {
			return n, err
		}
		n++
	}
	return n, s.writeLedgerObject(ctx, backfillRequest, 0, nil)
}

// NewestErasure is the time of the newest erasure in the database's ledger, or zero.
func NewestErasure(ctx context.Context, q store.Querier) (int64, error) {
	var newest sql.NullInt64
	if err := q.QueryRowContext(ctx, `SELECT max(erased_at) FROM erasure_ledger`).Scan(&newest); err != nil {
		return 0, fmt.Errorf("rights: newest erasure: %w", err)
	}
	return newest.Int64, nil
}
