package backup

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"slices"
	"strings"

	"steward/internal/store"
)

// pgTarget is how PostgreSQL's programs reach the database of a Steward URL.
type pgTarget struct {
	conn     string // a libpq URL without the password and without pgx-only parameters
	password string // given to the program as PGPASSWORD: never on a command line
}

// pgxOnly are parameters of a Steward database URL that pgx takes and libpq refuses.
// search_path names the schema, which is given to pg_dump and pg_restore as --schema.
var pgxOnly = []string{"search_path", "pool_max_conns", "pool_min_conns", "pool_max_conn_lifetime",
	"pool_max_conn_idle_time", "pool_health_check_period", "statement_cache_capacity",
	"description_cache_capacity", "default_query_exec_mode"}

func newPGTarget(rawURL string) (pgTarget, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return pgTarget{}, fmt.Errorf("backup: database url: %w", err)
	}
	var t pgTarget
	if u.User != nil {
		if pw, ok := u.User.Password(); ok {
			t.password = pw
			u.User = url.User(u.User.Username())
		}
	}
	q := u.Query()
	for _, k := range pgxOnly {
		q.Del(k)
	}
	u.RawQuery = q.Encode()
	t.conn = u.String()
	return t, nil
}

// run runs one of PostgreSQL's programs and returns its error with what it said.
func (t pgTarget) run(ctx context.Context, prog, fallback string, args ...string) ([]byte, error) {
	if prog == "" {
		p, err := exec.LookPath(fallback)
		if err != nil {
			return nil, fmt.Errorf("backup: %s not found on PATH: install PostgreSQL's client programs "+
				"(of the server's major version or newer), or name it with --%s (STEWARD_%s)",
				fallback, strings.ReplaceAll(fallback, "_", "-"), strings.ToUpper(fallback))
		}
		prog = p
	}
	cmd := exec.CommandContext(ctx, prog, args...)
	cmd.Env = os.Environ()
	if t.password != "" {
		cmd.Env = append(cmd.Env, "PGPASSWORD="+t.password)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		if len(msg) > 2000 {
			msg = msg[:2000] + "..."
		}
		return nil, fmt.Errorf("backup: %s: %w: %s", fallback, err, msg)
	}
	return stdout.Bytes(), nil
}

// quotePattern makes a schema name an exact pattern for pg_dump's --schema.
func quotePattern(name string) string { return `"` + strings.ReplaceAll(name, `"`, `""`) + `"` }

// dumpPostgres dumps the schema the URL works in (its search_path, else public) with
// pg_dump in its custom format. A repeatable-read transaction exports its snapshot to
// pg_dump and reads the manifest's state in it: the dump and the manifest agree.
func dumpPostgres(ctx context.Context, db *store.DB, dbURL, pgDump, file string, m *Manifest) error {
	t, err := newPGTarget(dbURL)
	if err != nil {
		return err
	}
	conn, err := db.Writer().Conn(ctx)
	if err != nil {
		return fmt.Errorf("backup: postgres: %w", err)
	}
	defer conn.Close()
	tx, err := conn.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelRepeatableRead, ReadOnly: true})
	if err != nil {
		return fmt.Errorf("backup: postgres: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // read-only: nothing to keep or lose
	var snapshot string
	var schema sql.NullString
	if err := tx.QueryRowContext(ctx, `SELECT pg_export_snapshot(), current_schema()`).Scan(&snapshot, &schema); err != nil {
		return fmt.Errorf("backup: postgres: export snapshot: %w", err)
	}
	if !schema.Valid {
		return fmt.Errorf("backup: postgres: the database URL's search_path names no existing schema")
	}
	m.Schema = schema.String
	if err := readState(ctx, tx, m); err != nil {
		return err
	}
	_, err = t.run(ctx, pgDump, "pg_dump", "--format=custom", "--snapshot="+snapshot, "--schema="+quotePattern(schema.String),
		"--file="+file, "--dbname="+t.conn)
	return err
}

// archiveTables lists the tables of a pg_dump archive in the schema (pg_restore -l).
func (t pgTarget) archiveTables(ctx context.Context, pgRestore, file, schema string) ([]string, error) {
	out, err := t.run(ctx, pgRestore, "pg_restore", "--list", file)
	if err != nil {
		return nil, err
	}
	var tables []string
	for line := range strings.SplitSeq(string(out), "\n") {
		// "215; 1259 73819 TABLE bk t postgres": id; catalog oid TABLE schema name owner
		_, rest, ok := strings.Cut(line, ";")
		f := strings.Fields(rest)
		if !ok || strings.HasPrefix(line, ";") || len(f) < 5 || f[2] != "TABLE" || f[3] != schema {
			continue
		}
		tables = append(tables, f[4])
	}
	return tables, nil
}

// restorePostgres replaces the schema's objects with the archive's, in one transaction:
// if pg_restore fails, nothing has changed. It refuses a schema other than the one
// dumped (pg_restore cannot rename one), and a schema holding tables the archive lacks
// (a later release's, which the restored migration version would make again).
//
//sqlcheck:postgres
func restorePostgres(ctx context.Context, db *store.DB, dbURL, pgRestore, file string, m Manifest) error {
	t, err := newPGTarget(dbURL)
	if err != nil {
		return err
	}
	var schema sql.NullString
	if err := db.QueryRowContext(ctx, `SELECT current_schema()`).Scan(&schema); err != nil {
		return fmt.Errorf("backup: postgres: %w", err)
	}
	if !schema.Valid {
		return fmt.Errorf("backup: postgres: the database URL's search_path names no existing schema; create it first")
	}
	if schema.String != m.Schema {
		return fmt.Errorf("%w: the backup is of schema %q, the database URL works in %q; restore into a schema of that name",
			ErrWrongTarget, m.Schema, schema.String)
	}
	dumped, err := t.archiveTables(ctx, pgRestore, file, m.Schema)
	if err != nil {
		return err
	}
	live, err := store.Strings(ctx, db, `SELECT table_name FROM information_schema.tables
		WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' ORDER BY table_name`)
	if err != nil {
		return fmt.Errorf("backup: postgres: %w", err)
	}
	var extra []string
	for _, tbl := range live {
		if !slices.Contains(dumped, tbl) {
			extra = append(extra, tbl)
		}
	}
	if len(extra) > 0 {
		return fmt.Errorf("%w: schema %q holds tables the backup does not (%s), made by a later release or by hand; "+
			"restore into an empty schema, or drop them first", ErrWrongTarget, m.Schema, strings.Join(extra, ", "))
	}
	_, err = t.run(ctx, pgRestore, "pg_restore", "--clean", "--if-exists", "--no-owner", "--single-transaction",
		"--schema="+m.Schema, "--dbname="+t.conn, file)
	return err
}
