package backup

import (
	"archive/tar"
	"bufio"
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
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"steward/internal/store"
)

// RestoreOptions are what Restore needs besides the backup and the database.
type RestoreOptions struct {
	Key       []byte // the erasure ledger's key: the deployment's, which the backup must be of
	PgRestore string // the pg_restore program; "": pg_restore on PATH
	Log       *slog.Logger
}

// Restore replaces the database at dbURL with the backup at path. It reads and checks
// all of the backup first (format, deployment, the manifest's MAC, every entry's size
// and SHA-256) into a folder of its own, then takes the database alone (ErrInUse while
// a server runs), replaces it, and calls then while it still holds it, so that no
// server starts before the caller has migrated the database and replayed the erasure
// ledger. A backup that does not check out, or a database in use, changes nothing.
//
// SQLite: the database's log is first folded into it (so that a failed rename leaves
// the old database whole), the new file, already synced, is renamed over it after its
// -wal and -shm are removed (the old log must never be applied to the new file).
// PostgreSQL: pg_restore --clean --if-exists --no-owner --single-transaction into the
// schema of the URL, which must be the schema dumped.
func Restore(ctx context.Context, path, dbURL string, opts RestoreOptions, then func(ctx context.Context) error) (Manifest, error) {
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	engine, dbPath, err := target(dbURL)
	if err != nil {
		return Manifest{}, err
	}
	var work string
	if engine == EngineSQLite {
		// Beside the database: the checked copy is renamed into place.
		if err := os.MkdirAll(filepath.Dir(dbPath), 0o700); err != nil {
			return Manifest{}, fmt.Errorf("backup: %w", err)
		}
		work, err = os.MkdirTemp(filepath.Dir(dbPath), ".steward-restore-*")
	} else {
		work, err = os.MkdirTemp("", "steward-restore-*")
	}
	if err != nil {
		return Manifest{}, fmt.Errorf("backup: %w", err)
	}
	defer os.RemoveAll(work)
	m, err := Verify(path, opts.Key, engine, work)
	if err != nil {
		return m, err
	}
	file := filepath.Join(work, m.Entries[0].Name)

	var pg *store.DB
	if engine == EnginePostgres {
		if pg, err = store.Open(ctx, dbURL); err != nil {
			return m, err
		}
		defer pg.Close()
	}
	var pool *sql.DB
	if pg != nil {
		pool = pg.Writer()
	}
	lock, err := holdAlone(ctx, dbPath, pool)
	if err != nil {
		return m, err
	}
	defer func() {
		if err := lock.Release(); err != nil {
			opts.Log.Warn("restore: releasing the lock failed; the session's end releases it", "err", err)
		}
	}()
	if engine == EngineSQLite {
		err = replaceSQLite(ctx, dbPath, file, opts.Log)
	} else {
		err = restorePostgres(ctx, pg, dbURL, opts.PgRestore, file, m)
	}
	if err != nil {
		return m, err
	}
	if then != nil {
		if err := then(ctx); err != nil {
			return m, err
		}
	}
	return m, nil
}

// target tells the engine of a database URL and, for SQLite, its file (the rules of
// store.Open).
func target(dbURL string) (engine, path string, err error) {
	switch {
	case strings.HasPrefix(dbURL, "postgres://"), strings.HasPrefix(dbURL, "postgresql://"):
		return EnginePostgres, "", nil
	case strings.HasPrefix(dbURL, "sqlite:"):
		path = strings.TrimPrefix(strings.TrimPrefix(dbURL, "sqlite:"), "//")
	case strings.HasSuffix(dbURL, ".db"):
		path = dbURL
	}
	if path == "" {
		return "", "", fmt.Errorf("backup: database %q: want sqlite:PATH or postgres://HOST/DB", dbURL)
	}
	return EngineSQLite, path, nil
}

// Verify reads the backup at path and checks all of it against key, and that it is of
// engine ("" for any), writing its database entry into dir. On any error the entry
// written is incomplete or unchecked, and nothing outside dir was touched.
func Verify(path string, key []byte, engine, dir string) (Manifest, error) {
	f, err := os.Open(path)
	if err != nil {
		return Manifest{}, fmt.Errorf("backup: %w", err)
	}
	defer f.Close()
	tr := tar.NewReader(bufio.NewReaderSize(f, 1<<20))
	hdr, err := tr.Next()
	if err != nil {
		return Manifest{}, fmt.Errorf("%w: %s: not a tar file with a manifest (%v)", ErrNotBackup, path, err)
	}
	if hdr.Name != manifestName || hdr.Size > maxManifest {
		return Manifest{}, fmt.Errorf("%w: %s: its first entry is %q, not %s", ErrNotBackup, path, hdr.Name, manifestName)
	}
	mb, err := io.ReadAll(tr)
	if err != nil {
		return Manifest{}, fmt.Errorf("%w: %s: the manifest is cut short (%v)", ErrDamaged, path, err)
	}
	m, err := checkManifest(mb, key)
	if err != nil {
		return m, err
	}
	if engine != "" && m.Engine != engine {
		return m, fmt.Errorf("%w: the backup is of a %s database, and this one is %s", ErrWrongTarget, m.Engine, engine)
	}
	for _, e := range m.Entries {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return m, fmt.Errorf("%w: %s: entry %s is missing: the backup is cut short", ErrDamaged, path, e.Name)
		}
		if err != nil {
			return m, fmt.Errorf("%w: %s: before entry %s: %v", ErrDamaged, path, e.Name, err)
		}
		if hdr.Name != e.Name || hdr.Typeflag != tar.TypeReg {
			return m, fmt.Errorf("%w: %s: entry %q where the manifest has %s", ErrDamaged, path, hdr.Name, e.Name)
		}
		if hdr.Size != e.Size {
			return m, fmt.Errorf("%w: %s: entry %s holds %d bytes, the manifest says %d", ErrDamaged, path, e.Name, hdr.Size, e.Size)
		}
		if err := extract(tr, filepath.Join(dir, e.Name), e); err != nil {
			return m, fmt.Errorf("%w: %s: %v", ErrDamaged, path, err)
		}
	}
	if hdr, err := tr.Next(); err == nil {
		return m, fmt.Errorf("%w: %s: entry %q is not in the manifest", ErrDamaged, path, hdr.Name)
	} else if !errors.Is(err, io.EOF) {
		return m, fmt.Errorf("%w: %s: after the last entry: %v", ErrDamaged, path, err)
	}
	return m, nil
}

// checkManifest parses a manifest and checks its format, deployment and MAC.
func checkManifest(b, key []byte) (Manifest, error) {
	var m Manifest
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return m, fmt.Errorf("%w: manifest.json: %v", ErrNotBackup, err)
	}
	if m.Format != Format {
		return m, fmt.Errorf("%w: format %q; this release reads %s", ErrNotBackup, m.Format, Format)
	}
	// The deployment is checked first, for a clear message; the MAC then proves it.
	if want := Deployment(key); m.Deployment != want {
		return m, fmt.Errorf("%w: it names deployment %s, and this is %s (the ledger key differs): restore a backup "+
			"only where its deployment's ledger key file is (--ledger-key-file)", ErrOtherDeployment, m.Deployment, want)
	}
	mac, err := m.mac(key)
	if err != nil {
		return m, fmt.Errorf("backup: manifest: %w", err)
	}
	if !hmac.Equal([]byte(mac), []byte(m.MAC)) {
		return m, fmt.Errorf("%w: the manifest's MAC does not verify under this deployment's ledger key: it was altered", ErrDamaged)
	}
	if m.Engine != EngineSQLite && m.Engine != EnginePostgres {
		return m, fmt.Errorf("%w: unknown engine %q", ErrNotBackup, m.Engine)
	}
	if len(m.Entries) != 1 || m.Entries[0].Name != databaseEntry(m.Engine) {
		return m, fmt.Errorf("%w: the manifest lists %d entries; want the database alone (%s)", ErrNotBackup, len(m.Entries), databaseEntry(m.Engine))
	}
	return m, nil
}

// extract copies an entry to path, checking its size and SHA-256, and syncs it.
func extract(r io.Reader, path string, e Entry) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h), r)
	if err != nil {
		return fmt.Errorf("entry %s is cut short after %d of %d bytes (%v)", e.Name, n, e.Size, err)
	}
	if n != e.Size {
		return fmt.Errorf("entry %s holds %d bytes, the manifest says %d", e.Name, n, e.Size)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != e.SHA256 {
		return fmt.Errorf("entry %s: its SHA-256 differs from the manifest's", e.Name)
	}
	if err := f.Sync(); err != nil {
		return err
	}
	return f.Close()
}

// replaceSQLite puts file in the place of the database at dbPath.
func replaceSQLite(ctx context.Context, dbPath, file string, log *slog.Logger) error {
	if _, err := os.Stat(dbPath); err == nil {
		if err := checkpoint(ctx, dbPath); err != nil {
			// Safe to go on: the database is being replaced, and a damaged one is a
			// reason to restore. Only a failed rename below would then lose the
			// transactions still in its log.
			log.Warn("restore: could not fold the old database's log into it before replacing it", "err", err)
		}
	}
	for _, suffix := range []string{"-wal", "-shm"} {
		if err := os.Remove(dbPath + suffix); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("backup: restore: %w", err)
		}
	}
	if err := os.Rename(file, dbPath); err != nil {
		return fmt.Errorf("backup: restore: %w", err)
	}
	return syncDir(filepath.Dir(dbPath))
}

// checkpoint copies the log of a SQLite database into its file and truncates the log.
//
//sqlcheck:sqlite
func checkpoint(ctx context.Context, path string) error {
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)")
	if err != nil {
		return err
	}
	defer db.Close()
	var busy, frames, done int
	if err := db.QueryRowContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`).Scan(&busy, &frames, &done); err != nil {
		return err
	}
	if busy != 0 {
		return errors.New("the log is in use")
	}
	return db.Close()
}
