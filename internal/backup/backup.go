// Package backup makes consistent online backups of Steward's database and restores
// them. A backup is one tar file: manifest.json, then the database (SQLite: a copy made
// by VACUUM INTO; PostgreSQL: pg_dump's custom format of the schema). The manifest
// names the deployment, the engine, the schema version and the newest erasure, gives
// every entry's size and SHA-256, and carries a MAC under a key derived from the erasure
// ledger's key; the deployment id is derived from that key too. So a restore can check
// a backup, and tell one of another deployment, without trusting anything in it.
//
// Objects in the blob store (files, the erasure ledger's objects) are not in a backup:
// they stay where they are. A restore checks all of the backup before it touches the
// database, and refuses while a server runs (HoldServing takes a lock that a restore
// needs alone). Replaying the erasure ledger afterwards is the caller's (app.Restore).
package backup

import (
	"archive/tar"
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
	"os"
	"path/filepath"
	"time"

	"steward/internal/apperr"
	"steward/internal/store"
)

// Format names the format of a backup.
const Format = "steward-backup/1"

// Engines and the names of their database entries.
const (
	EngineSQLite   = "sqlite"
	EnginePostgres = "postgres"
	manifestName   = "manifest.json"
	maxManifest    = 1 << 20
)

// databaseEntry is the name of an engine's database entry.
func databaseEntry(engine string) string {
	if engine == EnginePostgres {
		return "database.pgdump"
	}
	return "database.sqlite"
}

// Errors a restore reports; each says what was wrong in its message.
var (
	// ErrNotBackup: the file is not a Steward backup (or not one this release reads).
	ErrNotBackup = apperr.New(apperr.Invalid, "backup_invalid", "not a Steward backup")
	// ErrDamaged: truncated, or changed since it was made.
	ErrDamaged = apperr.New(apperr.Invalid, "backup_damaged", "the backup is damaged or was altered")
	// ErrOtherDeployment: made by a deployment with another ledger key.
	ErrOtherDeployment = apperr.New(apperr.Invalid, "backup_other_deployment", "the backup is of another deployment")
	// ErrWrongTarget: of another engine or PostgreSQL schema than the database given.
	ErrWrongTarget = apperr.New(apperr.Invalid, "backup_wrong_target", "the backup does not fit this database")
	// ErrInUse: a server (or another restore) is using the database.
	ErrInUse = apperr.New(apperr.Conflict, "database_in_use", "the database is in use")
)

// Entry is one file of a backup besides the manifest.
type Entry struct {
	Name   string `json:"name"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// Manifest describes a backup. Times are Unix milliseconds, as in the database.
type Manifest struct {
	Format        string  `json:"format"`
	Deployment    string  `json:"deployment"`
	Engine        string  `json:"engine"`
	Schema        string  `json:"schema,omitempty"` // PostgreSQL: the schema dumped
	CreatedAt     int64   `json:"created_at"`
	SchemaVersion int64   `json:"schema_version"`   // the newest migration applied
	NewestErasure int64   `json:"newest_erased_at"` // in the erasure ledger; 0: none
	Entries       []Entry `json:"entries"`
	MAC           string  `json:"mac"`
}

// deriveKey derives a key for one use from the ledger key (HMAC-SHA-256 of a label).
func deriveKey(key []byte, label string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(label))
	return m.Sum(nil)
}

// Deployment is the id of the deployment whose ledger key is key: derived from the
// key, so a backup's claim to be of this deployment is checked, not trusted, and the
// id tells nothing of the key.
func Deployment(key []byte) string {
	return hex.EncodeToString(deriveKey(key, "steward deployment v1")[:16])
}

// mac is the manifest's MAC: HMAC-SHA-256 over its JSON encoding with an empty mac
// field (Manifest's fields in their declared order).
func (m Manifest) mac(key []byte) (string, error) {
	m.MAC = ""
	b, err := json.Marshal(m)
	if err != nil {
		return "", err
	}
	h := hmac.New(sha256.New, deriveKey(key, "steward backup manifest v1"))
	h.Write(b)
	return hex.EncodeToString(h.Sum(nil)), nil
}

// Options are what Create needs besides the database.
type Options struct {
	Key    []byte           // the erasure ledger's key
	PgDump string           // the pg_dump program; "": pg_dump on PATH
	Now    func() time.Time // default time.Now
}

// Create writes a backup of db (whose URL is dbURL) to out, which must not exist. The
// database stays online: SQLite is copied by VACUUM INTO (a consistent snapshot, and
// compact: no free pages holding deleted rows), PostgreSQL dumped by pg_dump from a
// snapshot exported by a transaction that also reads the schema version and the
// newest erasure, so the manifest describes exactly what was dumped.
func Create(ctx context.Context, db *store.DB, dbURL, out string, opts Options) (Manifest, error) {
	if len(opts.Key) == 0 {
		return Manifest{}, errors.New("backup: no ledger key")
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if _, err := os.Lstat(out); err == nil {
		return Manifest{}, apperr.Field("out", "exists", fmt.Sprintf("%s exists; give a new file", out))
	}
	dir, err := os.MkdirTemp(filepath.Dir(out), ".steward-backup-*")
	if err != nil {
		return Manifest{}, fmt.Errorf("backup: %w", err)
	}
	defer os.RemoveAll(dir)
	m := Manifest{Format: Format, Deployment: Deployment(opts.Key), CreatedAt: opts.Now().UnixMilli()}
	var file string
	switch db.Dialect {
	case store.SQLite:
		m.Engine = EngineSQLite
		file = filepath.Join(dir, databaseEntry(m.Engine))
		if err := snapshotSQLite(ctx, db.Path(), file, &m); err != nil {
			return Manifest{}, err
		}
	case store.Postgres:
		m.Engine = EnginePostgres
		file = filepath.Join(dir, databaseEntry(m.Engine))
		if err := dumpPostgres(ctx, db, dbURL, opts.PgDump, file, &m); err != nil {
			return Manifest{}, err
		}
	default:
		return Manifest{}, fmt.Errorf("backup: unknown engine %q", db.Dialect)
	}
	e, err := describe(file)
	if err != nil {
		return Manifest{}, err
	}
	m.Entries = []Entry{e}
	if m.MAC, err = m.mac(opts.Key); err != nil {
		return Manifest{}, fmt.Errorf("backup: manifest: %w", err)
	}
	if err := writeArchive(out, m, file); err != nil {
		return Manifest{}, err
	}
	return m, nil
}

// readState reads what the manifest says of the database: the newest migration
// applied and the newest erasure.
func readState(ctx context.Context, q interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}, m *Manifest) error {
	if err := q.QueryRowContext(ctx, `SELECT COALESCE(max(version_id), 0) FROM goose_db_version WHERE is_applied`).Scan(&m.SchemaVersion); err != nil {
		return fmt.Errorf("backup: schema version: %w", err)
	}
	var newest sql.NullInt64
	if err := q.QueryRowContext(ctx, `SELECT max(erased_at) FROM erasure_ledger`).Scan(&newest); err != nil {
		return fmt.Errorf("backup: erasure ledger: %w", err)
	}
	m.NewestErasure = newest.Int64
	return nil
}

// snapshotSQLite copies the database at path to file with VACUUM INTO, on a connection
// of its own (the store's readers are query-only, which VACUUM INTO refuses, and its
// writer must not wait for a copy), then reads the state from the copy itself.
func snapshotSQLite(ctx context.Context, path, file string, m *Manifest) error {
	src, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)")
	if err != nil {
		return fmt.Errorf("backup: sqlite: %w", err)
	}
	defer src.Close()
	if _, err := src.ExecContext(ctx, `VACUUM INTO ?`, file); err != nil {
		return fmt.Errorf("backup: sqlite: vacuum into: %w", err)
	}
	cp, err := sql.Open("sqlite", "file:"+file+"?mode=ro&immutable=1")
	if err != nil {
		return fmt.Errorf("backup: sqlite: %w", err)
	}
	defer cp.Close()
	return readState(ctx, cp, m)
}

// describe returns a file's entry: its name, size and SHA-256.
func describe(path string) (Entry, error) {
	f, err := os.Open(path)
	if err != nil {
		return Entry{}, fmt.Errorf("backup: %w", err)
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return Entry{}, fmt.Errorf("backup: %w", err)
	}
	return Entry{Name: filepath.Base(path), Size: n, SHA256: hex.EncodeToString(h.Sum(nil))}, nil
}

// writeArchive writes the manifest and the database entry as a tar to a temp file
// beside out, syncs it and renames it into place: out appears whole or not at all.
func writeArchive(out string, m Manifest, file string) (err error) {
	mb, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return fmt.Errorf("backup: manifest: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(out), ".steward-backup-*.tar")
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	name := tmp.Name()
	defer func() {
		if tmp != nil {
			tmp.Close()
		}
		if err != nil {
			os.Remove(name)
		}
	}()
	tw := tar.NewWriter(tmp)
	mod := time.UnixMilli(m.CreatedAt)
	if err := tw.WriteHeader(&tar.Header{Name: manifestName, Mode: 0o600, Size: int64(len(mb)), ModTime: mod, Typeflag: tar.TypeReg}); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	if _, err := io.Copy(tw, bytes.NewReader(mb)); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	for _, e := range m.Entries {
		f, err := os.Open(filepath.Join(filepath.Dir(file), e.Name))
		if err != nil {
			return fmt.Errorf("backup: %w", err)
		}
		err = tw.WriteHeader(&tar.Header{Name: e.Name, Mode: 0o600, Size: e.Size, ModTime: mod, Typeflag: tar.TypeReg})
		if err == nil {
			_, err = io.Copy(tw, f)
		}
		f.Close()
		if err != nil {
			return fmt.Errorf("backup: %w", err)
		}
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	err = tmp.Close()
	tmp = nil
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	if err = os.Rename(name, out); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	return syncDir(filepath.Dir(out))
}

func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("backup: sync %s: %w", dir, err)
	}
	return nil
}
