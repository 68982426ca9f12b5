// Package vault owns the vault_keys table: every member's data key, wrapped by the
// operator's master key, and the streaming encryption of members' files under it.
// Erasure deletes the data key (crypto-shredding), after which every copy of the
// member's files, backups included, is unreadable.
package vault

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"steward/internal/datamap"
	"steward/internal/store"
)

// ErrNoKey is returned by DataKey when the subject has no key and none is to be
// created: the subject was erased, or never stored a file.
var ErrNoKey = errors.New("vault: no data key for the subject")

// dataKeySize is the size of a data key.
const dataKeySize = 32

// RotateBatch is how many keys Rotate rewraps in one transaction.
const RotateBatch = 100

// Vault keeps the data keys.
type Vault struct {
	db     *store.DB
	master MasterKey
	now    func() time.Time

	batch      int         // keys per Rotate transaction
	afterBatch func(n int) // test hook: called after each committed Rotate batch
}

// New returns a vault over db whose keys are wrapped by master.
func New(db *store.DB, master MasterKey, now func() time.Time) *Vault {
	return &Vault{db: db, master: master, now: now, batch: RotateBatch}
}

// MasterID is the ID of the vault's master key.
func (v *Vault) MasterID() string { return v.master.ID() }

// Key is one subject's data key.
type Key struct {
	subject string
	data    [dataKeySize]byte
}

// Subject is the ID of the subject the key belongs to.
func (k *Key) Subject() string { return k.subject }

// String names the key's subject, so that logging a Key never leaks it.
func (k *Key) String() string { return "vault.Key(" + k.subject + ")" }

// GoString is String, for %#v.
func (k *Key) GoString() string { return k.String() }

// DataKey returns the subject's data key. When the subject has none, it creates one if
// create is true and returns ErrNoKey otherwise. A key wrapped under another master key
// is an error naming both keys' IDs.
func (v *Vault) DataKey(ctx context.Context, subjectID string, create bool) (*Key, error) {
	if subjectID == "" {
		return nil, errors.New("vault: data key: empty subject id")
	}
	wrapped, masterID, err := v.read(ctx, v.db, subjectID)
	if errors.Is(err, sql.ErrNoRows) {
		if !create {
			return nil, ErrNoKey
		}
		wrapped, masterID, err = v.create(ctx, subjectID)
	}
	if err != nil {
		return nil, fmt.Errorf("vault: data key: %w", err)
	}
	return v.unwrap(subjectID, wrapped, masterID)
}

func (v *Vault) read(ctx context.Context, q store.Querier, subjectID string) ([]byte, string, error) {
	var wrapped []byte
	var masterID string
	err := q.QueryRowContext(ctx, `SELECT wrapped, master_id FROM vault_keys WHERE subject_id = $1`, subjectID).
		Scan(&wrapped, &masterID)
	return wrapped, masterID, err
}

// create inserts a new key unless another caller got there first, and returns
// whichever is stored.
func (v *Vault) create(ctx context.Context, subjectID string) ([]byte, string, error) {
	if v.master.IsZero() {
		return nil, "", errors.New("no master key")
	}
	var data [dataKeySize]byte
	_, _ = rand.Read(data[:]) // crypto/rand.Read never fails
	w, err := wrap(v.master, subjectID, data[:])
	if err != nil {
		return nil, "", err
	}
	var wrapped []byte
	var masterID string
	err = v.db.InTx(ctx, func(tx *store.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO vault_keys (subject_id, wrapped, master_id, created_at)
			VALUES ($1, $2, $3, $4) ON CONFLICT (subject_id) DO NOTHING`,
			subjectID, w, v.master.ID(), store.Millis(v.now())); err != nil {
			return err
		}
		var err error
		wrapped, masterID, err = v.read(ctx, tx, subjectID)
		return err
	})
	return wrapped, masterID, err
}

func (v *Vault) unwrap(subjectID string, wrapped []byte, masterID string) (*Key, error) {
	if masterID != v.master.ID() {
		return nil, fmt.Errorf("vault: the data key of %s is wrapped under master key %s, but the configured master key is %s",
			subjectID, masterID, v.master.ID())
	}
	data, err := unwrap(v.master, subjectID, wrapped)
	if err != nil {
		return nil, err
	}
	k := &Key{subject: subjectID}
	copy(k.data[:], data)
	return k, nil
}

// Shred deletes the subject's data key in tx. Once tx commits, every ciphertext under
// the key, wherever it is kept, is unreadable. Shredding a subject without a key is
// not an error.
func (v *Vault) Shred(ctx context.Context, tx *store.Tx, subjectID string) error {
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

// Rotate rewraps every data key from the vault's master key to next, RotateBatch keys
// per transaction, without touching any ciphertext, and returns how many it rewrapped.
// Keys already under next are skipped, so an interrupted rotation is resumed by
// running it again. A key under a third master key stops it with an error naming
// that key's ID. Once it returns, the operator configures next as the master key;
// until then, this vault refuses the keys already rewrapped, so rotate with the
// service stopped.
func (v *Vault) Rotate(ctx context.Context, next MasterKey) (int, error) {
	switch {
	case next.IsZero() || v.master.IsZero():
		return 0, errors.New("vault: rotate: no master key")
	case next.ID() == v.master.ID():
		return 0, fmt.Errorf("vault: rotate: the new master key %s is the current one", next.ID())
	}
	type row struct {
		subject, masterID string
		wrapped           []byte
	}
	total := 0
	for {
		if err := ctx.Err(); err != nil {
			return total, fmt.Errorf("vault: rotate: %w", err)
		}
		n := 0
		err := v.db.InTx(ctx, func(tx *store.Tx) error {
			rows, err := tx.QueryContext(ctx, `SELECT subject_id, wrapped, master_id FROM vault_keys
				WHERE master_id <> $1 ORDER BY subject_id LIMIT $2`, next.ID(), v.batch)
			if err != nil {
				return err
			}
			var batch []row
			for rows.Next() {
				var r row
				if err := rows.Scan(&r.subject, &r.wrapped, &r.masterID); err != nil {
					rows.Close()
					return err
				}
				batch = append(batch, r)
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				return err
			}
			for _, r := range batch {
				k, err := v.unwrap(r.subject, r.wrapped, r.masterID)
				if err != nil {
					return err
				}
				w, err := wrap(next, r.subject, k.data[:])
				if err != nil {
					return err
				}
				res, err := tx.ExecContext(ctx, `UPDATE vault_keys SET wrapped = $1, master_id = $2
					WHERE subject_id = $3 AND master_id = $4`, w, next.ID(), r.subject, r.masterID)
				if err != nil {
					return err
				}
				if c, _ := res.RowsAffected(); c > 0 {
					n++
				}
			}
			if len(batch) == 0 {
				n = -1
			}
			return nil
		})
		if err != nil {
			return total, fmt.Errorf("vault: rotate: %w", err)
		}
		if n < 0 {
			return total, nil
		}
		total += n
		if v.afterBatch != nil {
			v.afterBatch(total)
		}
	}
}

// wrap seals a data key under the master key with AES-256-GCM, bound to the subject:
// the result is nonce (12) | ciphertext (32) | tag (16).
func wrap(m MasterKey, subjectID string, data []byte) ([]byte, error) {
	aead, err := masterAEAD(m)
	if err != nil {
		return nil, err
	}
	out := make([]byte, aead.NonceSize(), aead.NonceSize()+len(data)+aead.Overhead())
	_, _ = rand.Read(out)
	return aead.Seal(out, out[:aead.NonceSize()], data, []byte(subjectID)), nil
}

func unwrap(m MasterKey, subjectID string, wrapped []byte) ([]byte, error) {
	aead, err := masterAEAD(m)
	if err != nil {
		return nil, err
	}
	ns := aead.NonceSize()
	if len(wrapped) != ns+dataKeySize+aead.Overhead() {
		return nil, fmt.Errorf("vault: the wrapped data key of %s is %d bytes, want %d", subjectID, len(wrapped), ns+dataKeySize+aead.Overhead())
	}
	data, err := aead.Open(nil, wrapped[:ns], wrapped[ns:], []byte(subjectID))
	if err != nil {
		return nil, fmt.Errorf("vault: the wrapped data key of %s does not open under master key %s: damaged, or moved from another subject", subjectID, m.ID())
	}
	return data, nil
}

func masterAEAD(m MasterKey) (cipher.AEAD, error) {
	if m.IsZero() {
		return nil, errors.New("vault: no master key")
	}
	block, err := aes.NewCipher(m.key[:])
	if err != nil {
		return nil, fmt.Errorf("vault: master key: %w", err)
	}
	return cipher.NewGCM(block)
}

// Holder is the vault's entry in the data map: the members' wrapped data keys.
type Holder struct{}

var keysTable = datamap.Table{Name: "vault_keys", Subject: "subject_id", Columns: []datamap.Column{
	{Name: "subject_id", Categories: []string{"user.unique_id"}},
	{Name: "wrapped", Categories: []string{"user.authorization.credentials"},
		Withheld: "key material: the data key wrapped by the operator's master key, of no use to the member outside Steward"},
	{Name: "master_id", NotPersonal: "fingerprint of the operator's master key"},
	{Name: "created_at", NotPersonal: "time the key was created", Time: true},
}}

// Declaration describes the vault.
func (Holder) Declaration() datamap.Declaration {
	return datamap.Declaration{
		Name:        "vault",
		Description: "Each member's data key, wrapped by the master key",
		Purpose:     "Keep members' files confidential, and make erasure final: deleting the key makes every copy of the files unreadable (crypto-shredding).",
		LawfulBasis: "contract",
		Retention:   "Until erasure of the account.",
		Tables:      []datamap.Table{keysTable},
	}
}

// Export returns the subject's key row, without the key itself.
func (Holder) Export(ctx context.Context, q store.Querier, s datamap.Subject) ([]datamap.Section, error) {
	sec, err := datamap.SelectSection(ctx, q, keysTable, "subject_id = $1", s.ID)
	return []datamap.Section{sec}, err
}

// Erase deletes the subject's data key: the same as Shred.
func (Holder) Erase(ctx context.Context, tx *store.Tx, s datamap.Subject) error {
	if s.ID == "" {
		return nil
	}
	return shred(ctx, tx, s.ID)
}
