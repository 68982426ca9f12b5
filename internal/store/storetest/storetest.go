// Package storetest gives tests a fresh, migrated database on every engine: SQLite
// always, PostgreSQL too when STEWARD_TEST_POSTGRES_URL is set (each test in a schema
// of its own, dropped afterwards).
package storetest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net/url"
	"os"
	"path/filepath"
	"testing"

	"steward/internal/store"
)

// Engines lists the database URLs a test should run against, creating a fresh
// database for each. With STEWARD_TEST_REQUIRE_SERVICES=1 a missing PostgreSQL fails
// the test instead of leaving it out.
func Engines(t testing.TB) map[store.Dialect]string {
	t.Helper()
	out := map[store.Dialect]string{
		store.SQLite: "sqlite:" + filepath.Join(t.TempDir(), "steward.db"),
	}
	if pg := PostgresURL(t); pg != "" {
		out[store.Postgres] = pg
	}
	return out
}

// PostgresURL returns the URL of a fresh schema on the test PostgreSQL, or "" when
// none is configured.
func PostgresURL(t testing.TB) string {
	t.Helper()
	base := os.Getenv("STEWARD_TEST_POSTGRES_URL")
	if base == "" {
		if os.Getenv("STEWARD_TEST_REQUIRE_SERVICES") == "1" {
			t.Fatal("STEWARD_TEST_POSTGRES_URL is not set but STEWARD_TEST_REQUIRE_SERVICES=1")
		}
		return ""
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	schema := "t_" + hex.EncodeToString(b[:])
	admin, err := sql.Open("pgx", base)
	if err != nil {
		t.Fatalf("postgres: %v", err)
	}
	defer admin.Close()
	if _, err := admin.Exec("CREATE SCHEMA " + schema); err != nil {
		t.Fatalf("postgres: create schema: %v", err)
	}
	t.Cleanup(func() {
		admin, err := sql.Open("pgx", base)
		if err != nil {
			return
		}
		defer admin.Close()
		_, _ = admin.Exec("DROP SCHEMA " + schema + " CASCADE")
		// The analytics store's schema beside it (internal/analytics.StoreURL), if the
		// test started Steward.
		_, _ = admin.Exec("DROP SCHEMA IF EXISTS " + schema + "_analytics CASCADE")
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("postgres url: %v", err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// Each runs fn as a subtest on a fresh migrated database of every engine.
func Each(t *testing.T, fn func(t *testing.T, db *store.DB)) {
	t.Helper()
	for dialect, u := range Engines(t) {
		t.Run(string(dialect), func(t *testing.T) {
			fn(t, Open(t, u))
		})
	}
}

// Open opens and migrates the database at u, closing it when the test ends.
func Open(t testing.TB, u string) *store.DB {
	t.Helper()
	ctx := context.Background()
	db, err := store.Open(ctx, u)
	if err != nil {
		t.Fatalf("open %s: %v", u, err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.Migrate(ctx); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	return db
}
