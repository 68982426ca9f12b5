// Package vault owns the vault_keys, kek_state and kek_escrow tables: every subject's
// data key, wrapped under a key-encryption key that changes every epoch; the sealing
// of personal fields and the streaming encryption of members' files under data keys;
// blind indexes; and the escrow of epoch keys for backups. Erasure deletes the data
// key (crypto-shredding): once the epoch passes, no key a node holds opens any copy
// of the subject's data, in dead rows, logs or backups.
package vault

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"sync"
	"time"

	"steward/internal/datamap"
	"steward/internal/store"
)

// ErrNoKey is returned by DataKey when the subject has no key and none is to be
// created: the subject was erased, or never stored anything sealed.
var ErrNoKey = errors.New("vault: no data key for the subject")

// NeedsRecovery reports whether the database's data keys are at an older epoch than
// the node's key file: a database restored from a backup, which Recover makes
// readable.
func NeedsRecovery(ctx context.Context, db *store.DB, keyFile string) (bool, error) {
	st, err := loadState(ctx, db)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("vault: key state: %w", err)
	}
	k, err := ReadKEK(keyFile)
	if errors.Is(err, fs.ErrNotExist) {
		return true, nil
	}
	if err != nil {
		return false, err
	}
	return st.epoch < k.epoch, nil
}

// ErrKeysBehind is returned when the database's data keys are wrapped at an epoch
// older than this node's key file: the database was restored from a backup, and the
// epoch's key must come from escrow (`steward keys recover`).
var ErrKeysBehind = errors.New("vault: the database's data keys are older than this node's key")

// dataKeySize is the size of a data key.
const dataKeySize = 32

// rewrapBatch is how many keys a rotation rewraps in one transaction.
const rewrapBatch = 1000

// Config says where the node's key lives and how keys rotate.
type Config struct {
	KeyFile string        // the node's KEK file (mode 0600)
	Epoch   time.Duration // how long an epoch lasts (default one day)
	// Grace is how long a rotation waits, once every key was rewrapped, before it
	// ends and the old KEK is destroyed: every node must have begun wrapping new keys
	// under the next epoch by then (nodes look every Poll). Default two minutes.
	// Zero is the default; negative is none.
	Grace time.Duration
	Poll  time.Duration // how often Run looks at the epoch (default 10 s)
	// Escrow, if set, encrypts each epoch's KEK to the operator's offline keys,
	// kept in kek_escrow for Retention (default 35 days), so backups can be restored.
	Escrow    *Escrow
	Retention time.Duration
	// Create lets Open make the KEK of a new deployment.
	Create bool
}

func (c *Config) defaults() {
	if c.Epoch <= 0 {
		c.Epoch = 24 * time.Hour
	}
	if c.Grace < 0 {
		c.Grace = 0
	} else if c.Grace == 0 {
		c.Grace = 2 * time.Minute
	}
	if c.Poll <= 0 {
		c.Poll = 10 * time.Second
	}
	if c.Retention <= 0 {
		c.Retention = 35 * 24 * time.Hour
	}
}

// Vault keeps the data keys.
type Vault struct {
	db  *store.DB
	cfg Config
	now func() time.Time
	log *slog.Logger

	// Created reports that Open made the KEK of a new deployment.
	Created bool

	mu       sync.RWMutex
	cur      KEK                   // the node's KEK: the epoch every key is at, or before target
	rotating bool                  // new keys are wrapped at cur's next epoch
	aeads    map[int64]cipher.AEAD // by epoch: cur's, and later ones derived on demand
	keys     *keyCache             // data keys unwrapped recently

	afterBatch func(n int) // test hook: called after each committed rewrap batch
}

type state struct {
	epoch, target       int64
	keyID               string
	startedAt, targetAt int64
}

func loadState(ctx context.Context, q store.Querier) (state, error) {
	var st state
	err := q.QueryRowContext(ctx, `SELECT epoch, target, key_id, started_at, target_at FROM kek_state WHERE id = 1`).
		Scan(&st.epoch, &st.target, &st.keyID, &st.startedAt, &st.targetAt)
	return st, err
}

// Open reads the node's KEK and agrees with the database on the epoch: a node whose
// key is behind (it was stopped during rotations) moves it forward, destroying the
// old one; a database behind the node (restored from a backup) is ErrKeysBehind, with
// a vault that can shred keys but open none, so that the erasure ledger can still be
// replayed before the operator recovers the keys from escrow.
// A new deployment gets a new KEK when cfg.Create is set.
func Open(ctx context.Context, db *store.DB, cfg Config, now func() time.Time, log *slog.Logger) (*Vault, error) {
	cfg.defaults()
	v := &Vault{db: db, cfg: cfg, now: now, log: log, aeads: map[int64]cipher.AEAD{}, keys: newKeyCache(keyCacheSize, keyCacheTTL)}
	k, ferr := ReadKEK(cfg.KeyFile)
	noFile := errors.Is(ferr, fs.ErrNotExist)
	if ferr != nil && !noFile {
		return nil, ferr
	}
	st, serr := loadState(ctx, db)
	noState := errors.Is(serr, sql.ErrNoRows)
	if serr != nil && !noState {
		return nil, fmt.Errorf("vault: key state: %w", serr)
	}
	switch {
	case noFile && noState:
		var n int
		if err := db.QueryRowContext(ctx, `SELECT count(*) FROM vault_keys`).Scan(&n); err != nil {
			return nil, fmt.Errorf("vault: %w", err)
		}
		if n > 0 || !cfg.Create {
			return nil, fmt.Errorf("vault: no key file at %s (--master-key-file): the data keys cannot be opened without it", cfg.KeyFile)
		}
		k = GenerateKEK()
		if err := WriteKEK(cfg.KeyFile, k); err != nil {
			return nil, err
		}
		v.Created = true
		fallthrough
	case noState:
		// A new deployment, or one of a release before epochs: its master key is the
		// KEK of epoch 0, and every key it wrapped is at epoch 0.
		ms := store.Millis(now())
		if _, err := db.ExecContext(ctx, `INSERT INTO kek_state (id, epoch, key_id, target, started_at, target_at)
			VALUES (1, $1, $2, $1, $3, $3) ON CONFLICT (id) DO NOTHING`, k.epoch, k.id, ms); err != nil {
			return nil, fmt.Errorf("vault: key state: %w", err)
		}
		if st, serr = loadState(ctx, db); serr != nil {
			return nil, fmt.Errorf("vault: key state: %w", serr)
		}
	case noFile:
		return nil, fmt.Errorf("vault: this deployment's key (epoch %d, id %s) is not on this node: copy the key file of another node to %s (--master-key-file)",
			st.epoch, st.keyID, cfg.KeyFile)
	}
	v.cur = k
	if err := v.agree(ctx, st); err != nil {
		if errors.Is(err, ErrKeysBehind) {
			// The vault still shreds keys (an erasure needs no key), but opens none:
			// every key of the database is older than the node's.
			return v, err
		}
		return nil, err
	}
	if err := v.escrow(ctx, v.current()); err != nil {
		return nil, err
	}
	if st.target > st.epoch {
		if err := v.escrow(ctx, v.current().Next()); err != nil {
			return nil, err
		}
	}
	return v, nil
}

// agree brings the node's key to the database's epoch, or says why it cannot.
func (v *Vault) agree(ctx context.Context, st state) error {
	cur := v.current()
	switch {
	case st.epoch < cur.epoch:
		return fmt.Errorf("%w: the database is at epoch %d, this node at %d; the database was restored from an older backup: "+
			"run `steward keys recover --identity FILE` with the offline escrow key", ErrKeysBehind, st.epoch, cur.epoch)
	case st.epoch == cur.epoch:
		if st.keyID != cur.id {
			return fmt.Errorf("vault: the key file %s (id %s) is not this database's key of epoch %d (id %s): another deployment's",
				v.cfg.KeyFile, cur.id, st.epoch, st.keyID)
		}
	default:
		next, err := cur.Forward(st.epoch)
		if err != nil {
			return err
		}
		if next.id != st.keyID {
			return fmt.Errorf("vault: the key file %s does not lead to this database's key of epoch %d: another deployment's", v.cfg.KeyFile, st.epoch)
		}
		// Keys this node wrapped at its old epoch while the others rotated are
		// rewrapped before the old KEK goes.
		if _, err := v.rewrap(ctx, st.epoch); err != nil {
			return err
		}
		if err := v.ratchet(next); err != nil {
			return err
		}
	}
	v.mu.Lock()
	v.rotating = st.target > st.epoch
	v.mu.Unlock()
	return nil
}

// escrow stores k encrypted to the operator's offline keys, once per epoch.
func (v *Vault) escrow(ctx context.Context, k KEK) error {
	if v.cfg.Escrow == nil {
		return nil
	}
	sealed, err := v.cfg.Escrow.Seal(k)
	if err != nil {
		return err
	}
	if _, err := v.db.ExecContext(ctx, `INSERT INTO kek_escrow (epoch, key_id, recipients, sealed, created_at)
		VALUES ($1, $2, $3, $4, $5) ON CONFLICT (epoch) DO NOTHING`,
		k.epoch, k.id, v.cfg.Escrow.Recipients(), sealed, store.Millis(v.now())); err != nil {
		return fmt.Errorf("vault: escrow: %w", err)
	}
	return nil
}

// ratchet replaces the node's KEK with next, destroying the old one in the key file
// and dropping it from memory.
func (v *Vault) ratchet(next KEK) error {
	if err := WriteKEK(v.cfg.KeyFile, next); err != nil {
		return err
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	for e := range v.aeads {
		if e < next.epoch {
			delete(v.aeads, e)
		}
	}
	v.keys.dropBefore(next.epoch)
	clear(v.cur.key[:])
	v.cur = next
	v.rotating = false
	v.log.Info("vault: moved to a new epoch; the old key-encryption key is destroyed on this node", "epoch", next.epoch)
	return nil
}

func (v *Vault) current() KEK {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return v.cur
}

// Epoch returns the node's epoch and whether a rotation to the next one runs.
func (v *Vault) Epoch() (int64, bool) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return v.cur.epoch, v.rotating
}

// writeEpoch is the epoch new keys are wrapped at.
func (v *Vault) writeEpoch() int64 {
	v.mu.RLock()
	defer v.mu.RUnlock()
	if v.rotating {
		return v.cur.epoch + 1
	}
	return v.cur.epoch
}

// aead returns the cipher of an epoch's KEK: the node's, or a later one derived from
// it. An earlier epoch's KEK is gone.
func (v *Vault) aead(epoch int64) (cipher.AEAD, error) {
	v.mu.RLock()
	a, cur := v.aeads[epoch], v.cur
	v.mu.RUnlock()
	if a != nil {
		return a, nil
	}
	if epoch < cur.epoch {
		return nil, fmt.Errorf("vault: a key wrapped at epoch %d, whose key-encryption key this node destroyed (it is at epoch %d)", epoch, cur.epoch)
	}
	if epoch > cur.epoch+1000 {
		return nil, fmt.Errorf("vault: a key wrapped at epoch %d, far beyond this node's %d", epoch, cur.epoch)
	}
	k, err := cur.Forward(epoch)
	if err != nil {
		return nil, err
	}
	if a, err = gcm(k.key[:]); err != nil {
		return nil, err
	}
	v.mu.Lock()
	if v.cur.id == cur.id {
		v.aeads[epoch] = a
	}
	v.mu.Unlock()
	return a, nil
}

func gcm(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("vault: %w", err)
	}
	return cipher.NewGCM(block)
}

// Key is one subject's data key.
type Key struct {
	subject string
	data    [dataKeySize]byte
	aead    cipher.AEAD
}

// Subject is the ID of the subject the key belongs to.
func (k *Key) Subject() string { return k.subject }

// String names the key's subject, so that logging a Key never leaks it.
func (k *Key) String() string { return "vault.Key(" + k.subject + ")" }

// GoString is String, for %#v.
func (k *Key) GoString() string { return k.String() }

// DataKey returns the subject's data key. When the subject has none, it creates one if
// create is true and returns ErrNoKey otherwise.
func (v *Vault) DataKey(ctx context.Context, subjectID string, create bool) (*Key, error) {
	k, err := v.KeyIn(ctx, v.db, subjectID, false)
	if !errors.Is(err, ErrNoKey) || !create {
		return k, err
	}
	err = v.db.InTx(ctx, func(tx *store.Tx) error {
		k, err = v.KeyIn(ctx, tx, subjectID, true)
		return err
	})
	return k, err
}

// KeyIn is DataKey on q: a transaction when create is true, so the key is stored with
// what it seals.
func (v *Vault) KeyIn(ctx context.Context, q store.Querier, subjectID string, create bool) (*Key, error) {
	if subjectID == "" {
		return nil, errors.New("vault: data key: empty subject id")
	}
	var wrapped []byte
	var epoch int64
	err := q.QueryRowContext(ctx, `SELECT wrapped, epoch FROM vault_keys WHERE subject_id = $1`, subjectID).Scan(&wrapped, &epoch)
	if errors.Is(err, sql.ErrNoRows) {
		if !create {
			return nil, ErrNoKey
		}
		k, row, nerr := v.NewKey(subjectID)
		if nerr != nil {
			return nil, nerr
		}
		if _, err := q.ExecContext(ctx, `INSERT INTO vault_keys (subject_id, wrapped, epoch, created_at)
			VALUES ($1, $2, $3, $4) ON CONFLICT (subject_id) DO NOTHING`, row...); err != nil {
			return nil, fmt.Errorf("vault: data key: %w", err)
		}
		// Read back: ours, or the key a concurrent first use stored before ours (then
		// err is nil and that key is unwrapped below).
		err = q.QueryRowContext(ctx, `SELECT wrapped, epoch FROM vault_keys WHERE subject_id = $1`, subjectID).Scan(&wrapped, &epoch)
		if err == nil && bytes.Equal(wrapped, row[1].([]byte)) {
			return k, nil
		}
	}
	if err != nil {
		return nil, fmt.Errorf("vault: data key: %w", err)
	}
	return v.Unwrap(subjectID, wrapped, epoch)
}

// WithKey returns s with its data key, read in q, for opening sealed columns, unless s
// carries one already. A subject without a key is returned as it is: it has nothing
// sealed (or it was erased).
func (v *Vault) WithKey(ctx context.Context, q store.Querier, s datamap.Subject) (datamap.Subject, error) {
	if s.Key != nil {
		return s, nil
	}
	key, err := v.KeyIn(ctx, q, s.ID, false)
	switch {
	case err == nil:
		s.Key = key
	case !errors.Is(err, ErrNoKey):
		return s, err
	}
	return s, nil
}

// KeyColumns are the vault_keys columns Unwrap takes, for a query that joins
// vault_keys (aliased alias) to read a row and its subject's key in one statement.
func KeyColumns(alias string) string { return alias + ".wrapped, " + alias + ".epoch" }

// KeyJoin joins vault_keys as alias on the subject expression.
func KeyJoin(alias, subject string) string {
	return "LEFT JOIN vault_keys " + alias + " ON " + alias + ".subject_id = " + subject
}

// NewKey makes a data key for a subject and returns it with its row for vault_keys
// (subject_id, wrapped, epoch, created_at), for callers that store keys in bulk.
func (v *Vault) NewKey(subjectID string) (*Key, []any, error) {
	epoch := v.writeEpoch()
	a, err := v.aead(epoch)
	if err != nil {
		return nil, nil, err
	}
	k := &Key{subject: subjectID}
	_, _ = rand.Read(k.data[:]) // crypto/rand.Read never fails
	if k.aead, err = gcm(k.data[:]); err != nil {
		return nil, nil, err
	}
	w := wrap(a, subjectID, k.data[:])
	return k, []any{subjectID, w, epoch, store.Millis(v.now())}, nil
}

// Unwrap opens a subject's wrapped data key read at epoch.
func (v *Vault) Unwrap(subjectID string, wrapped []byte, epoch int64) (*Key, error) {
	a, err := v.aead(epoch)
	if err != nil {
		return nil, fmt.Errorf("vault: the data key of %s: %w", subjectID, err)
	}
	if k := v.keys.get(subjectID, wrapped, epoch, v.now()); k != nil {
		return k, nil
	}
	data, err := unwrap(a, subjectID, wrapped)
	if err != nil {
		return nil, err
	}
	k := &Key{subject: subjectID}
	copy(k.data[:], data)
	clear(data)
	if k.aead, err = gcm(k.data[:]); err != nil {
		return nil, err
	}
	v.keys.put(subjectID, wrapped, epoch, k, v.now())
	return k, nil
}

// Shred deletes the subject's data key in tx. Once tx commits, every ciphertext under
// the key, wherever it is kept, is unreadable (and, once the epoch passes, so is the
// key itself in the database's dead rows, logs and backups). Shredding a subject
// without a key is not an error.
func (v *Vault) Shred(ctx context.Context, tx *store.Tx, subjectID string) error {
	v.keys.drop(subjectID)
	return shred(ctx, tx, subjectID)
}

func shred(ctx context.Context, q store.Querier, subjectID string) error {
	if _, err := q.ExecContext(ctx, `DELETE FROM vault_keys WHERE subject_id = $1`, subjectID); err != nil {
		return fmt.Errorf("vault: shred: %w", err)
	}
	return nil
}

// HasKey reports whether the subject still has a data key.
func (v *Vault) HasKey(ctx context.Context, subjectID string) (bool, error) {
	var n int
	if err := v.db.QueryRowContext(ctx, `SELECT count(*) FROM vault_keys WHERE subject_id = $1`, subjectID).Scan(&n); err != nil {
		return false, fmt.Errorf("vault: has key: %w", err)
	}
	return n > 0, nil
}

// wrap seals a data key under a KEK with AES-256-GCM, bound to the subject: the
// result is nonce (12) | ciphertext (32) | tag (16).
func wrap(a cipher.AEAD, subjectID string, data []byte) []byte {
	out := make([]byte, a.NonceSize(), a.NonceSize()+len(data)+a.Overhead())
	_, _ = rand.Read(out)
	return a.Seal(out, out[:a.NonceSize()], data, []byte(subjectID))
}

func unwrap(a cipher.AEAD, subjectID string, wrapped []byte) ([]byte, error) {
	ns := a.NonceSize()
	if len(wrapped) != ns+dataKeySize+a.Overhead() {
		return nil, fmt.Errorf("vault: the wrapped data key of %s is %d bytes, want %d", subjectID, len(wrapped), ns+dataKeySize+a.Overhead())
	}
	data, err := a.Open(nil, wrapped[:ns], wrapped[ns:], []byte(subjectID))
	if err != nil {
		return nil, fmt.Errorf("vault: the wrapped data key of %s does not open: damaged, or moved from another subject", subjectID)
	}
	return data, nil
}

// Holder is the vault's entry in the data map: the members' wrapped data keys.
type Holder struct{}

var keysTable = datamap.Table{Name: "vault_keys", Subject: "subject_id", Columns: []datamap.Column{
	{Name: "subject_id", Categories: []string{"user.unique_id"}, Plain: "a random id"},
	{Name: "wrapped", Categories: []string{"user.authorization.credentials"}, Plain: "the data key itself, wrapped under the epoch's key-encryption key",
		Withheld: "key material: the data key wrapped under Steward's key-encryption key, of no use to the member outside Steward"},
	{Name: "epoch", NotPersonal: "epoch of the key-encryption key that wraps the data key"},
	{Name: "created_at", NotPersonal: "time the key was created", Time: true},
}}

var stateTable = datamap.Table{Name: "kek_state", Columns: []datamap.Column{
	{Name: "id", NotPersonal: "the one row"},
	{Name: "epoch", NotPersonal: "the epoch every data key is wrapped at"},
	{Name: "key_id", NotPersonal: "fingerprint of the epoch's key-encryption key"},
	{Name: "target", NotPersonal: "the epoch a running rotation moves keys to"},
	{Name: "started_at", NotPersonal: "when the epoch began", Time: true},
	{Name: "target_at", NotPersonal: "when the rotation began", Time: true},
}}

var escrowTable = datamap.Table{Name: "kek_escrow", Columns: []datamap.Column{
	{Name: "epoch", NotPersonal: "epoch of the escrowed key"},
	{Name: "key_id", NotPersonal: "fingerprint of the escrowed key"},
	{Name: "recipients", NotPersonal: "the operator's public keys it is encrypted to"},
	{Name: "sealed", NotPersonal: "an epoch's key-encryption key, encrypted to the operator's offline keys: no one's data, and nothing a node can open"},
	{Name: "created_at", NotPersonal: "when it was escrowed", Time: true},
}}

// Declaration describes the vault.
func (Holder) Declaration() datamap.Declaration {
	return datamap.Declaration{
		Name:        "vault",
		Description: "Each member's data key, wrapped by the master key",
		Purpose:     "Keep members' files confidential, and make erasure final: deleting the key makes every copy of the files unreadable (crypto-shredding).",
		LawfulBasis: "contract",
		Retention:   "Until erasure of the account.",
		Tables:      []datamap.Table{keysTable, stateTable, escrowTable},
	}
}

// Export returns the subject's key row, without the key itself.
func (h Holder) Export(ctx context.Context, q store.Querier, s datamap.Subject) ([]datamap.Section, error) {
	return datamap.ExportDeclared(ctx, q, s, h.Declaration())
}

// Erase deletes the subject's data key: the same as Shred.
func (h Holder) Erase(ctx context.Context, tx *store.Tx, s datamap.Subject) error {
	return datamap.EraseDeclared(ctx, tx, s, h.Declaration())
}
