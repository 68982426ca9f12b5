// Package store opens Steward's database, SQLite or PostgreSQL, applies the embedded
// migrations of the dialect, and offers the small layer every capability package uses:
// placeholder rebinding, a transaction helper, schema listing and compaction after
// erasure. It owns no tables of its own beyond the migration bookkeeping.
package store

import (
	"context"
	"crypto/rand"
	"database/sql"
	"database/sql/driver"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/fnv"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5/pgconn"
	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" driver
	"modernc.org/sqlite"               // registers the "sqlite" driver
	sqlite3 "modernc.org/sqlite/lib"
)

// Dialect names a database engine.
type Dialect string

// The supported engines.
const (
	SQLite   Dialect = "sqlite"
	Postgres Dialect = "postgres"
)

// DB is an open database. On SQLite, reads use a pool of connections and writes a
// single connection, because SQLite has one writer: queuing writes in the pool beats
// fighting SQLITE_BUSY. On PostgreSQL both are the same pool.
type DB struct {
	Dialect Dialect
	read    *sql.DB
	write   *sql.DB
	path    string // the SQLite file, "" on PostgreSQL
	rebinds sync.Map
	stmts   sync.Map   // insertKey -> *sql.Stmt prepared on the writer (InsertRows)
	wstmts  *stmtCache // SQLite: the writer's statements kept prepared; nil on PostgreSQL
	// SQLite: the connection that checkpoints the WAL, and its stop.
	ckpt          *sql.DB
	stop, stopped chan struct{}
}

// Open opens the database named by rawURL: "sqlite:PATH" (or a path ending in .db) or
// "postgres://...". It does not migrate; call Migrate.
func Open(ctx context.Context, rawURL string) (*DB, error) {
	switch {
	case strings.HasPrefix(rawURL, "postgres://"), strings.HasPrefix(rawURL, "postgresql://"):
		return openPostgres(ctx, rawURL)
	case strings.HasPrefix(rawURL, "sqlite:"):
		return openSQLite(ctx, strings.TrimPrefix(strings.TrimPrefix(rawURL, "sqlite:"), "//"))
	case strings.HasSuffix(rawURL, ".db"):
		return openSQLite(ctx, rawURL)
	}
	return nil, fmt.Errorf("store: database %q: want sqlite:PATH or postgres://HOST/DB", redact(rawURL))
}

func openSQLite(ctx context.Context, path string) (*DB, error) {
	if path == "" {
		return nil, errors.New("store: sqlite: empty path")
	}
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("store: sqlite: %w", err)
		}
	}
	// secure_delete overwrites deleted content with zeros, so an erased row does not
	// linger in free pages of the file; the WAL is checkpointed after erasure (Compact).
	pragmas := "_pragma=foreign_keys(1)&_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)" +
		"&_pragma=synchronous(NORMAL)&_pragma=secure_delete(1)&_time_format=sqlite"
	// The writer gets a larger page cache and keeps statement journals in memory: bulk
	// writes (imports) otherwise spill to temporary files. It leaves checkpoints to a
	// connection of their own (below) unless the WAL passes 16,000 pages (64 MB): a bulk
	// write's commits do not stop to copy the WAL while the other connection can. The
	// WAL file is cut back to 64 MB when it restarts; after an erasure Compact truncates
	// it to nothing.
	write, err := sql.Open("sqlite", "file:"+path+"?"+pragmas+"&_pragma=cache_size(-16384)&_pragma=temp_store(MEMORY)"+
		"&_pragma=wal_autocheckpoint(16000)&_pragma=journal_size_limit(67108864)&_txlock=immediate")
	if err != nil {
		return nil, fmt.Errorf("store: sqlite: %w", err)
	}
	write.SetMaxOpenConns(1)
	write.SetConnMaxIdleTime(0)
	write.SetConnMaxLifetime(0)
	if err := write.PingContext(ctx); err != nil {
		write.Close()
		return nil, fmt.Errorf("store: sqlite %s: %w", path, err)
	}
	// Readers: four (two cores' worth of reads, twice over), each with a 1 MiB page
	// cache; the file's pages are in the system's cache anyway. Each connection also
	// keeps every statement it prepared: with eight of them, the readers held about
	// 17 MiB under the soak's load, four with 1 MiB caches about 4 MiB (issue 11's
	// memory target).
	read, err := sql.Open("sqlite", "file:"+path+"?"+pragmas+"&_pragma=query_only(1)&_pragma=cache_size(-1024)")
	if err != nil {
		write.Close()
		return nil, fmt.Errorf("store: sqlite: %w", err)
	}
	read.SetMaxOpenConns(4)
	read.SetMaxIdleConns(4)
	read.SetConnMaxLifetime(0)
	read.SetConnMaxIdleTime(0)
	ckpt, err := sql.Open("sqlite", "file:"+path+"?"+pragmas)
	if err != nil {
		write.Close()
		read.Close()
		return nil, fmt.Errorf("store: sqlite: %w", err)
	}
	ckpt.SetMaxOpenConns(1)
	db := &DB{Dialect: SQLite, read: read, write: write, path: path, ckpt: ckpt, stop: make(chan struct{}), stopped: make(chan struct{}),
		wstmts: newStmtCache(write, writerStatements)}
	go db.checkpoints(250 * time.Millisecond)
	return db, nil
}

// checkpoints copies the WAL into the database file every interval, beside the writer
// (a PASSIVE checkpoint waits for no one): the writer's commits do not pay for it. Once
// a checkpoint has copied everything, the next write starts the WAL from its beginning.
//
//sqlcheck:sqlite
func (db *DB) checkpoints(interval time.Duration) {
	defer close(db.stopped)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-db.stop:
			return
		case <-t.C:
			_, _ = db.ckpt.Exec(`PRAGMA wal_checkpoint(PASSIVE)`) // busy with another checkpoint: next time
		}
	}
}

func openPostgres(ctx context.Context, rawURL string) (*DB, error) {
	db, err := sql.Open("pgx", rawURL)
	if err != nil {
		return nil, fmt.Errorf("store: postgres: %w", err)
	}
	db.SetMaxOpenConns(32)
	db.SetMaxIdleConns(32)
	db.SetConnMaxIdleTime(5 * time.Minute)
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := db.PingContext(pctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("store: postgres %s: %w", redact(rawURL), err)
	}
	return &DB{Dialect: Postgres, read: db, write: db}, nil
}

// redact hides a password in a database URL so that it never reaches a log.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		return raw
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	return u.String()
}

// Close closes both pools.
func (db *DB) Close() error {
	if db.ckpt != nil {
		close(db.stop)
		<-db.stopped
		db.ckpt.Close()
	}
	db.wstmts.close()
	err := db.write.Close()
	if db.read != db.write {
		err = errors.Join(err, db.read.Close())
	}
	return err
}

// Path is the SQLite file, or "" on PostgreSQL.
func (db *DB) Path() string { return db.path }

// Writer is the pool that writes go through (one connection on SQLite). The job queue
// uses it.
func (db *DB) Writer() *sql.DB { return db.write }

// Rebind turns $1-style placeholders into the dialect's form. SQLite would bind "$1"
// as a named parameter by first appearance, so it gets "?1" instead, or a bare "?" when
// the placeholders are $1, $2, ... each once and in order: SQLite looks a numbered
// parameter up linearly, which makes a multi-row INSERT of thousands of them quadratic.
func (db *DB) Rebind(q string) string {
	if db.Dialect != SQLite || !strings.Contains(q, "$") {
		return q
	}
	if v, ok := db.rebinds.Load(q); ok {
		return v.(string)
	}
	var b strings.Builder
	b.Grow(len(q))
	inQuote := false
	sequential, next := true, 1
	for i := 0; i < len(q); i++ {
		c := q[i]
		if c == '\'' {
			inQuote = !inQuote
		}
		if c == '$' && !inQuote && i+1 < len(q) && q[i+1] >= '0' && q[i+1] <= '9' {
			c = '?'
			n, j := 0, i+1
			for ; j < len(q) && q[j] >= '0' && q[j] <= '9'; j++ {
				n = n*10 + int(q[j]-'0')
			}
			if n != next {
				sequential = false
			}
			next++
		}
		b.WriteByte(c)
	}
	out := b.String()
	if sequential {
		out = anonymous(out)
	}
	db.rebinds.Store(q, out)
	return out
}

// anonymous drops the numbers of ?N placeholders outside quotes.
func anonymous(q string) string {
	var b strings.Builder
	b.Grow(len(q))
	inQuote := false
	for i := 0; i < len(q); i++ {
		c := q[i]
		if c == '\'' {
			inQuote = !inQuote
		}
		b.WriteByte(c)
		if c == '?' && !inQuote {
			for i+1 < len(q) && q[i+1] >= '0' && q[i+1] <= '9' {
				i++
			}
		}
	}
	return b.String()
}

// Querier is what both a DB and a Tx offer: statements with $N placeholders.
type Querier interface {
	ExecContext(ctx context.Context, q string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row
}

// writerStatements is how many statements the SQLite writer keeps prepared.
const writerStatements = 256

// ExecContext runs a statement on the writer.
func (db *DB) ExecContext(ctx context.Context, q string, args ...any) (sql.Result, error) {
	q = db.Rebind(q)
	st, err := db.wstmts.get(ctx, q)
	if err != nil {
		return nil, err
	}
	if st != nil {
		return st.ExecContext(ctx, args...)
	}
	return db.write.ExecContext(ctx, q, args...)
}

// QueryContext runs a query on the readers.
func (db *DB) QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	return db.read.QueryContext(ctx, db.Rebind(q), args...)
}

// QueryRowContext runs a one-row query on the readers.
func (db *DB) QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row {
	return db.read.QueryRowContext(ctx, db.Rebind(q), args...)
}

// QueryWriter runs a statement that writes and returns rows (UPDATE ... RETURNING) on
// the writer. Close the rows promptly: on SQLite they hold the only writer.
func (db *DB) QueryWriter(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	q = db.Rebind(q)
	st, err := db.wstmts.get(ctx, q)
	if err != nil {
		return nil, err
	}
	if st != nil {
		return st.QueryContext(ctx, args...)
	}
	return db.write.QueryContext(ctx, q, args...)
}

// Prepare prepares a read statement once, so that a typo fails at start and the hot
// path skips parsing.
func (db *DB) Prepare(ctx context.Context, q string) (*sql.Stmt, error) {
	st, err := db.read.PrepareContext(ctx, db.Rebind(q))
	if err != nil {
		return nil, fmt.Errorf("store: prepare %q: %w", q, err)
	}
	return st, nil
}

// Tx is a transaction on the writer.
type Tx struct {
	db    *DB
	tx    *sql.Tx
	after []func()
}

// AfterCommit runs f once the transaction has committed (never if it rolls back).
func (t *Tx) AfterCommit(f func()) { t.after = append(t.after, f) }

// SQL is the underlying transaction, for libraries that join it (the job queue).
func (t *Tx) SQL() *sql.Tx { return t.tx }

// Dialect is the engine of the transaction.
func (t *Tx) Dialect() Dialect { return t.db.Dialect }

// Lock takes the lock called name until the transaction ends, shared with other
// shared holders or alone. On PostgreSQL it is an advisory transaction lock, and fair:
// a request waiting for it alone holds back shared requests made after it, so a
// stream of shared holders cannot starve it (row locks taken FOR SHARE are not fair
// that way). On SQLite it is nothing: the transaction holds the only writer.
func (t *Tx) Lock(ctx context.Context, name string, shared bool) error {
	if t.db.Dialect != Postgres {
		return nil
	}
	h := fnv.New64a()
	h.Write([]byte("steward lock " + name))
	f := "pg_advisory_xact_lock"
	if shared {
		f += "_shared"
	}
	if _, err := t.tx.ExecContext(ctx, `SELECT `+f+`($1)`, int64(h.Sum64())); err != nil {
		return fmt.Errorf("store: lock %s: %w", name, err)
	}
	return nil
}

// ExecContext runs a statement in the transaction.
func (t *Tx) ExecContext(ctx context.Context, q string, args ...any) (sql.Result, error) {
	q = t.db.Rebind(q)
	if st := t.db.wstmts.lookup(q); st != nil {
		return t.tx.StmtContext(ctx, st).ExecContext(ctx, args...)
	}
	t.keep(ctx, q)
	return t.tx.ExecContext(ctx, q, args...)
}

// QueryContext runs a query in the transaction.
func (t *Tx) QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	q = t.db.Rebind(q)
	if st := t.db.wstmts.lookup(q); st != nil {
		return t.tx.StmtContext(ctx, st).QueryContext(ctx, args...)
	}
	t.keep(ctx, q)
	return t.tx.QueryContext(ctx, q, args...)
}

// QueryRowContext runs a one-row query in the transaction.
func (t *Tx) QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row {
	q = t.db.Rebind(q)
	if st := t.db.wstmts.lookup(q); st != nil {
		return t.tx.StmtContext(ctx, st).QueryRowContext(ctx, args...)
	}
	t.keep(ctx, q)
	return t.tx.QueryRowContext(ctx, q, args...)
}

// keep has q, run as text in the transaction, prepared on the writer once the
// transaction has let the writer go, if it is wanted (stmtCache.wanted).
func (t *Tx) keep(ctx context.Context, q string) {
	if t.db.wstmts.wanted(q) {
		t.AfterCommit(func() { _, _ = t.db.wstmts.add(context.WithoutCancel(ctx), q) })
	}
}

// InTx runs fn in a transaction on the writer, committing when it returns nil.
func (db *DB) InTx(ctx context.Context, fn func(tx *Tx) error) error {
	sqlTx, err := db.write.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store: begin: %w", err)
	}
	tx := &Tx{db: db, tx: sqlTx}
	if err := fn(tx); err != nil {
		if rerr := sqlTx.Rollback(); rerr != nil && !errors.Is(rerr, sql.ErrTxDone) {
			// The engine ends the transaction with its connection anyway; the caller
			// learns both, and errors.Is and As still find fn's error.
			return errors.Join(err, fmt.Errorf("store: rollback: %w", rerr))
		}
		return err
	}
	if err := sqlTx.Commit(); err != nil {
		return fmt.Errorf("store: commit: %w", err)
	}
	for _, f := range tx.after {
		f()
	}
	return nil
}

// IsUnavailable reports whether err says the database could not be used at all (a
// lost connection, a lock held too long, a cancelled request, a server shutting down)
// rather than that it refused what a statement asked.
func IsUnavailable(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, driver.ErrBadConn) || errors.Is(err, sql.ErrConnDone) || errors.Is(err, pgconn.ErrConnClosed) {
		return true
	}
	var ne net.Error
	var ce *pgconn.ConnectError
	if errors.As(err, &ne) || errors.As(err, &ce) {
		return true
	}
	if code, ok := sqliteCode(err); ok {
		// The primary code, whatever the extended one (SQLITE_BUSY_SNAPSHOT...).
		switch code & 0xff {
		case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED:
			return true
		}
		return false
	}
	// Connection exceptions, insufficient resources, operator intervention (a
	// shutdown, a cancelled statement): classes 08, 53 and 57.
	if code, ok := pgCode(err); ok {
		switch code[:2] {
		case "08", "53", "57":
			return true
		}
	}
	return false
}

// IsUniqueViolation reports whether err is a unique-constraint failure on either engine
// (a primary key included).
func IsUniqueViolation(err error) bool {
	if code, ok := sqliteCode(err); ok {
		return code == sqlite3.SQLITE_CONSTRAINT_UNIQUE || code == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY
	}
	code, ok := pgCode(err)
	return ok && code == pgerrcode.UniqueViolation
}

// IsConflict reports whether err says the transaction lost to a concurrent one and
// may simply be run again: a deadlock or a serialization failure on PostgreSQL.
func IsConflict(err error) bool {
	code, ok := pgCode(err)
	return ok && (code == pgerrcode.DeadlockDetected || code == pgerrcode.SerializationFailure)
}

// sqliteCode is the (extended) result code of a SQLite error in err's chain.
func sqliteCode(err error) (int, bool) {
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return 0, false
	}
	return se.Code(), true
}

// pgCode is the SQLSTATE of a PostgreSQL error in err's chain.
func pgCode(err error) (string, bool) {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || len(pe.Code) != 5 {
		return "", false
	}
	return pe.Code, true
}

// Millis is the form every timestamp is stored in: Unix milliseconds, the same on both
// engines.
func Millis(t time.Time) int64 { return t.UnixMilli() }

// FromMillis turns a stored timestamp back into a time.
func FromMillis(ms int64) time.Time { return time.UnixMilli(ms).UTC() }

// NullMillis turns a nullable stored timestamp into a time, zero when NULL.
func NullMillis(v sql.NullInt64) time.Time {
	if !v.Valid {
		return time.Time{}
	}
	return FromMillis(v.Int64)
}

// Column is one column of the live schema.
type Column struct {
	Table string
	Name  string
	Type  string
	Text  bool // can hold text (TEXT, VARCHAR, JSON...)
}

// Columns lists every column of every table of the live schema.
func (db *DB) Columns(ctx context.Context) ([]Column, error) {
	q, textual := `SELECT table_name, column_name, data_type FROM information_schema.columns
			 WHERE table_schema = current_schema() ORDER BY table_name, ordinal_position`, postgresText
	if db.Dialect == SQLite {
		q, textual = `SELECT m.name, p.name, p.type FROM sqlite_master m, pragma_table_info(m.name) p
			 WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%' ORDER BY m.name, p.cid`, sqliteText
	}
	rows, err := db.read.QueryContext(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("store: columns: %w", err)
	}
	defer rows.Close()
	var out []Column
	for rows.Next() {
		var c Column
		if err := rows.Scan(&c.Table, &c.Name, &c.Type); err != nil {
			return nil, err
		}
		c.Text = textual(c.Type)
		out = append(out, c)
	}
	return out, rows.Err()
}

// sqliteText reports whether a column of SQLite's declared type can hold text: by type
// affinity, anything declaring TEXT, CHAR, CLOB, or no type at all; so can BLOB (JSON
// is stored as text or blob).
func sqliteText(typ string) bool {
	t := strings.ToUpper(typ)
	return t == "" || strings.Contains(t, "TEXT") || strings.Contains(t, "CHAR") ||
		strings.Contains(t, "CLOB") || strings.Contains(t, "BLOB") || strings.Contains(t, "JSON")
}

// postgresText reports whether a PostgreSQL column of the data type can hold text.
func postgresText(typ string) bool {
	t := strings.ToLower(typ)
	return strings.Contains(t, "char") || t == "text" || strings.Contains(t, "json") ||
		t == "bytea" || t == "array" || t == "user-defined"
}

// Compact makes deleted rows unrecoverable from the database's own files as far as
// the engine allows: on SQLite (secure_delete is on) it checkpoints and truncates the
// write-ahead log, which otherwise keeps old page images; on PostgreSQL it vacuums the
// given tables so dead tuples are reclaimed.
func (db *DB) Compact(ctx context.Context, tables ...string) error {
	switch db.Dialect {
	case SQLite:
		var busy, logFrames, done int
		// Readers come and go every few milliseconds (job polls, the dispatcher): a
		// truncating checkpoint needs a moment without one, which a loaded machine may
		// take seconds to offer.
		for range 250 {
			if err := db.write.QueryRowContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`).Scan(&busy, &logFrames, &done); err != nil {
				return fmt.Errorf("store: checkpoint: %w", err)
			}
			if busy == 0 {
				return nil
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(20 * time.Millisecond):
			}
		}
		return errors.New("store: checkpoint: readers kept the log busy")
	default:
		for _, t := range tables {
			if _, err := db.write.ExecContext(ctx, "VACUUM "+quoteIdent(t)); err != nil {
				return fmt.Errorf("store: vacuum %s: %w", t, err)
			}
		}
		return nil
	}
}

// quoteIdent quotes an identifier taken from the schema listing.
func quoteIdent(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

// QuoteIdent quotes a table or column name for use in generated SQL.
func QuoteIdent(s string) string { return quoteIdent(s) }

// In returns the condition that col is one of vals, its placeholders numbered from
// the one given, and its arguments. On PostgreSQL it is one array parameter
// (col = ANY($n)): a statement of hundreds of parameters costs its server more to
// parse and plan, and is a new statement for every length. On SQLite it is a list.
func (db *DB) In(col string, from int, vals []string) (string, []any) {
	if db.Dialect == Postgres {
		return col + " = ANY($" + strconv.Itoa(from) + "::text[])", []any{vals}
	}
	args := make([]any, len(vals))
	for i, v := range vals {
		args[i] = v
	}
	return col + " IN (" + Placeholders(from, len(vals)) + ")", args
}

// Placeholders returns "$from, $from+1, ..." for n values, for an IN list or a
// multi-row INSERT.
func Placeholders(from, n int) string {
	var b strings.Builder
	for i := range n {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString("$" + strconv.Itoa(from+i))
	}
	return b.String()
}

// SortedID is a new random id that sorts by creation time, at (as a UUIDv7 does): 12
// hex digits of Unix milliseconds, then 20 random ones. Rows written together land on the
// same index pages, so a busy table's inserts touch few pages instead of one per row;
// 80 random bits keep ids unguessable. It reveals the creation time to the second, which
// the rows it keys record anyway.
func SortedID(at time.Time) string {
	var b [16]byte
	ms := uint64(at.UnixMilli())
	for i := 5; i >= 0; i-- {
		b[i] = byte(ms)
		ms >>= 8
	}
	_, _ = rand.Read(b[6:])
	return hex.EncodeToString(b[:])
}

// Tuples is the VALUES list of a multi-row INSERT: rows tuples of cols placeholders,
// numbered from 1: "($1, $2), ($3, $4)".
func Tuples(rows, cols int) string { return TuplesFrom(1, rows, cols) }

// TuplesFrom is Tuples with placeholders numbered from the one given.
func TuplesFrom(from, rows, cols int) string {
	var b strings.Builder
	b.Grow(rows * cols * 6)
	n := from - 1
	var num [20]byte
	for r := range rows {
		if r > 0 {
			b.WriteString(", ")
		}
		b.WriteByte('(')
		for c := range cols {
			if c > 0 {
				b.WriteString(", ")
			}
			n++
			b.WriteByte('$')
			b.Write(strconv.AppendInt(num[:0], int64(n), 10))
		}
		b.WriteByte(')')
	}
	return b.String()
}

// Strings runs a query of one text column and returns its values.
func Strings(ctx context.Context, q Querier, query string, args ...any) ([]string, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, rows.Err()
}
