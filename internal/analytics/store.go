// Package analytics owns the analytics store: the request log, page beacons and
// events, the salts of the daily visitor hash and the daily rollups. The store is kept
// apart from Steward's own database (its own SQLite file, or its own PostgreSQL schema
// and, where the operator gives one, its own role), and holds nothing that joins to a
// member: no subject id, no email, no raw IP, no token, no hash under a key the member
// side uses. The package speaks no HTTP: the front ends hand it what a request says.
package analytics

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"

	"steward/internal/store"
)

//go:embed migrations/sqlite/*.sql migrations/postgres/*.sql
var migrations embed.FS

// StoreURL is the analytics store's URL: the operator's (--analytics-database), else,
// for a SQLite database, the file analytics.db next to it, and for PostgreSQL the same
// server in a schema of its own: "analytics", or SCHEMA_analytics when Steward's own
// tables live in a schema other than public (its search_path).
func StoreURL(mainURL, override string) (string, error) {
	if override != "" {
		return override, nil
	}
	if p, ok := strings.CutPrefix(mainURL, "sqlite:"); ok {
		p = strings.TrimPrefix(p, "//")
		return "sqlite:" + filepath.Join(filepath.Dir(p), "analytics.db"), nil
	}
	if strings.HasSuffix(mainURL, ".db") {
		return "sqlite:" + filepath.Join(filepath.Dir(mainURL), "analytics.db"), nil
	}
	u, err := url.Parse(mainURL)
	if err != nil {
		return "", fmt.Errorf("analytics: database url: %w", err)
	}
	q := u.Query()
	schema := "analytics"
	if main := strings.TrimSpace(strings.Split(q.Get("search_path"), ",")[0]); main != "" && main != "public" {
		schema = main + "_analytics"
	}
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String(), nil
}

var identifier = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

// OpenStore opens the analytics store at rawURL and applies its own migrations (a goose
// version table of its own, in its own file or schema). On PostgreSQL it makes the
// schema its URL's search_path names when the schema does not exist yet.
func OpenStore(ctx context.Context, rawURL string) (*store.DB, error) {
	if strings.HasPrefix(rawURL, "postgres://") || strings.HasPrefix(rawURL, "postgresql://") {
		if err := ensureSchema(ctx, rawURL); err != nil {
			return nil, err
		}
	}
	db, err := store.Open(ctx, rawURL)
	if err != nil {
		return nil, fmt.Errorf("analytics: %w", err)
	}
	if err := migrate(ctx, db); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

// ensureSchema makes the schema the URL's search_path names, unless it exists (a role
// of the operator's may own it without the right to create schemas).
//
//sqlcheck:postgres
func ensureSchema(ctx context.Context, rawURL string) error {
	u, err := url.Parse(rawURL)
	if err != nil {
		return fmt.Errorf("analytics: database url: %w", err)
	}
	schema := strings.TrimSpace(strings.Split(u.Query().Get("search_path"), ",")[0])
	if schema == "" {
		return nil // the role's default schema
	}
	if !identifier.MatchString(schema) {
		return fmt.Errorf("analytics: schema %q: want lower-case letters, digits and _", schema)
	}
	db, err := sql.Open("pgx", rawURL)
	if err != nil {
		return fmt.Errorf("analytics: %w", err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM pg_namespace WHERE nspname = $1`, schema).Scan(&n); err != nil {
		return fmt.Errorf("analytics: schema %s: %w", schema, err)
	}
	if n > 0 {
		return nil
	}
	if _, err := db.ExecContext(ctx, `CREATE SCHEMA IF NOT EXISTS `+schema); err != nil {
		return fmt.Errorf("analytics: create schema %s: %w", schema, err)
	}
	return nil
}

// migrate applies the analytics store's migrations. On PostgreSQL a session lock of its
// own (not the main store's) keeps nodes that start together from racing.
func migrate(ctx context.Context, db *store.DB) error {
	dir, dialect := "migrations/sqlite", goose.DialectSQLite3
	var opts []goose.ProviderOption
	if db.Dialect == store.Postgres {
		dir, dialect = "migrations/postgres", goose.DialectPostgres
		locker, err := lock.NewPostgresSessionLocker(lock.WithLockID(4097083627))
		if err != nil {
			return fmt.Errorf("analytics: migrate: %w", err)
		}
		opts = append(opts, goose.WithSessionLocker(locker))
	}
	sub, err := fs.Sub(migrations, dir)
	if err != nil {
		return fmt.Errorf("analytics: migrate: %w", err)
	}
	p, err := goose.NewProvider(dialect, db.Writer(), sub, append(opts, goose.WithDisableGlobalRegistry(true))...)
	if err != nil {
		return fmt.Errorf("analytics: migrate: %w", err)
	}
	if _, err := p.Up(ctx); err != nil && !errors.Is(err, goose.ErrNoNextVersion) {
		return fmt.Errorf("analytics: migrate: %w", err)
	}
	return nil
}
