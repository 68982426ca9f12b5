package backup

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"os"

	"steward/internal/store"
)

// Lock is held while a server runs on a database (shared by every node on PostgreSQL;
// alone on SQLite, which has one server) or while a restore replaces it (always alone).
type Lock struct {
	file *os.File  // SQLite: the lock file, locked
	conn *sql.Conn // PostgreSQL: the session holding the advisory lock
	fn   string    // PostgreSQL: the function that releases it
}

// lockKey is the advisory lock of the schema the session works in: tests and
// deployments may share a database, one schema each.
const lockKey = `hashtextextended('steward serving ' || coalesce(current_schema(), ''), 0)`

// lockFile is the file a SQLite database is locked by: beside it, so that every
// process that opens the same database file finds the same lock, whatever its data
// folder.
func lockFile(dbPath string) string { return dbPath + ".lock" }

// HoldServing takes the lock a running server holds until Release: on SQLite an
// exclusive lock on the database's lock file (one server per database file: the
// reconciler's start takes every upload in progress for dead), on PostgreSQL a shared
// session advisory lock (any number of nodes). It fails while a restore runs.
func HoldServing(ctx context.Context, db *store.DB) (*Lock, error) {
	if db.Dialect == store.SQLite {
		l, err := lockSQLite(db.Path())
		if errors.Is(err, ErrInUse) {
			return nil, fmt.Errorf("%w: another steward serve, or a steward restore, holds %s; one server runs on a SQLite database",
				ErrInUse, lockFile(db.Path()))
		}
		return l, err
	}
	l, ok, err := lockPostgres(ctx, db.Writer(), true)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("%w: a steward restore is replacing this database; start when it has finished", ErrInUse)
	}
	return l, nil
}

// holdAlone takes the lock alone, as a restore does: it fails while any server runs.
func holdAlone(ctx context.Context, dbPath string, pg *sql.DB) (*Lock, error) {
	const running = "%w: a steward serve (or another restore) is running on this database; stop every server first"
	if pg == nil {
		l, err := lockSQLite(dbPath)
		if errors.Is(err, ErrInUse) {
			return nil, fmt.Errorf(running+" (%s is held)", ErrInUse, lockFile(dbPath))
		}
		return l, err
	}
	l, ok, err := lockPostgres(ctx, pg, false)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf(running, ErrInUse)
	}
	return l, nil
}

func lockSQLite(dbPath string) (*Lock, error) {
	f, err := os.OpenFile(lockFile(dbPath), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("backup: lock: %w", err)
	}
	if err := flock(f); err != nil {
		f.Close()
		return nil, err
	}
	return &Lock{file: f}, nil
}

// lockPostgres tries the advisory lock on a connection of its own, which keeps it.
func lockPostgres(ctx context.Context, pool *sql.DB, shared bool) (*Lock, bool, error) {
	conn, err := pool.Conn(ctx)
	if err != nil {
		return nil, false, fmt.Errorf("backup: lock: %w", err)
	}
	try, release := "pg_try_advisory_lock", "pg_advisory_unlock"
	if shared {
		try, release = try+"_shared", release+"_shared"
	}
	var ok bool
	if err := conn.QueryRowContext(ctx, `SELECT `+try+`(`+lockKey+`)`).Scan(&ok); err != nil {
		conn.Close()
		return nil, false, fmt.Errorf("backup: lock: %w", err)
	}
	if !ok {
		conn.Close()
		return nil, false, nil
	}
	return &Lock{conn: conn, fn: release}, true, nil
}

// Release lets the lock go. On PostgreSQL the session is closed rather than handed
// back to the pool, so that no pooled connection can keep the lock by mistake.
func (l *Lock) Release() error {
	if l == nil {
		return nil
	}
	if l.file != nil {
		err := l.file.Close() // closing the file lets its lock go
		l.file = nil
		return err
	}
	if l.conn == nil {
		return nil
	}
	_, err := l.conn.ExecContext(context.Background(), `SELECT `+l.fn+`(`+lockKey+`)`)
	// Discard the session: its end releases the lock even if the unlock failed.
	_ = l.conn.Raw(func(any) error { return driver.ErrBadConn })
	l.conn.Close()
	l.conn = nil
	if err != nil {
		return fmt.Errorf("backup: unlock: %w", err)
	}
	return nil
}
