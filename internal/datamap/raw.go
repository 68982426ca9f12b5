package datamap

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"

	"steward/internal/store"
)

// ScanRaw is Scan, and on PostgreSQL also the server's own files, as far as the server
// lets its role read them: after a CHECKPOINT (so pages changed in memory are on disk),
// every 1 GiB segment of the files of the tables of the connection's schema, of their
// TOAST tables and of their indexes, where a deleted row's bytes stay after VACUUM
// until overwritten, and every WAL segment the server keeps. It reads them through
// the server (pg_read_binary_file), a chunk at a time.
//
// What it could not read is not skipped in silence: unread says, one plain statement
// each, what was left unread and why (a role without superuser, pg_checkpoint,
// pg_read_server_files or pg_monitor; a function the server lacks). A scan with
// anything unread proves nothing about what it did not read.
func ScanRaw(ctx context.Context, db *store.DB, terms []Term) (found []Finding, unread []string, err error) {
	found, err = Scan(ctx, db, terms)
	if err != nil || db.Dialect != store.Postgres {
		return found, nil, err
	}
	raw, unread, err := scanServerFiles(ctx, db, usable(terms))
	if err != nil {
		return nil, nil, err
	}
	return append(found, raw...), unread, nil
}

// ScanAllRaw is ScanAll with ScanRaw instead of Scan: the database's raw files too,
// and what could not be read.
func (r *Registry) ScanAllRaw(ctx context.Context, db *store.DB, terms []Term) ([]Finding, []string, error) {
	found, unread, err := ScanRaw(ctx, db, terms)
	if err != nil {
		return nil, nil, err
	}
	more, err := r.scanHolders(ctx, terms)
	if err != nil {
		return nil, nil, err
	}
	return append(found, more...), unread, nil
}

// relationFile is one relation of the schema whose file is read.
type relationFile struct {
	what  string // "table file accounts", "index file accounts_pkey"
	path  string // relative to the data directory, as pg_relation_filepath gives it
	table string // the table it belongs to: itself, an index's or a TOAST table's
}

// relationFilesSQL lists the files of every relation of the connection's schema that
// has storage (tables, indexes, sequences, materialized views; views and partitioned
// tables have none), and of their TOAST tables and TOAST indexes, named by their table.
const relationFilesSQL = `
WITH own AS (
	SELECT c.oid, c.relname, c.relkind, c.reltoastrelid FROM pg_class c
	WHERE c.relnamespace = (SELECT n.oid FROM pg_namespace n WHERE n.nspname = current_schema())
)
SELECT what, path, tbl FROM (
	SELECT CASE relkind WHEN 'i' THEN 'index' WHEN 'S' THEN 'sequence' WHEN 'm' THEN 'materialized view' ELSE 'table' END
	       || ' file ' || relname AS what, pg_relation_filepath(oid) AS path,
	       CASE relkind WHEN 'i' THEN (SELECT t.relname FROM pg_index x JOIN pg_class t ON t.oid = x.indrelid WHERE x.indexrelid = own.oid)
	       ELSE relname END AS tbl FROM own
	UNION ALL
	SELECT 'TOAST file ' || relname, pg_relation_filepath(reltoastrelid), relname FROM own WHERE reltoastrelid <> 0
	UNION ALL
	SELECT 'TOAST index file ' || own.relname, pg_relation_filepath(x.indexrelid), own.relname
	FROM own JOIN pg_index x ON x.indrelid = own.reltoastrelid WHERE own.reltoastrelid <> 0
) f WHERE path IS NOT NULL ORDER BY what`

// scanServerFiles reads the relation files of the schema and the WAL through the server.
func scanServerFiles(ctx context.Context, db *store.DB, terms []Term) (found []Finding, unread []string, err error) {
	if _, err := db.ExecContext(ctx, `CHECKPOINT`); err != nil {
		why, ok := refusal(err)
		if !ok {
			return nil, nil, fmt.Errorf("datamap: checkpoint: %w", err)
		}
		unread = append(unread, "CHECKPOINT was refused ("+why+"; it needs superuser or the pg_checkpoint role): "+
			"pages changed since the server's last checkpoint may be only in its memory, so the table files read may lack them")
	}

	var rels []relationFile
	rows, err := db.QueryContext(ctx, relationFilesSQL)
	if err != nil {
		return nil, nil, fmt.Errorf("datamap: list relation files: %w", err)
	}
	for rows.Next() {
		var r relationFile
		if err := rows.Scan(&r.what, &r.path, &r.table); err != nil {
			rows.Close()
			return nil, nil, fmt.Errorf("datamap: list relation files: %w", err)
		}
		rels = append(rels, r)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, nil, fmt.Errorf("datamap: list relation files: %w", err)
	}
	if len(rels) == 0 {
		unread = append(unread, "no table file was read: the connection's schema has no tables")
	}
	for i, r := range rels {
		f, err := scanReader(&serverFile{ctx: ctx, db: db, path: r.path, segmented: true}, r.what, terms, chunkSize)
		if errors.Is(err, errMissing) {
			unread = append(unread, r.what+" was not read: its file was gone (the relation was dropped or rewritten during the scan)")
			continue
		}
		if err != nil {
			why, ok := refusal(err)
			if !ok {
				return nil, nil, fmt.Errorf("datamap: read %s: %w", r.what, err)
			}
			if !lacksRight(err) {
				unread = append(unread, r.what+" was not read: "+why)
				continue
			}
			// Every other file would be refused alike: say so once.
			unread = append(unread, fmt.Sprintf("%d of %d table, TOAST and index files of the schema were not read (%s; "+
				"reading them needs superuser or the pg_read_server_files role)", len(rels)-i, len(rels), why))
			break
		}
		for j := range f {
			f[j].Table = r.table
		}
		found = append(found, f...)
	}

	wal, walUnread, err := scanWAL(ctx, db, terms)
	if err != nil {
		return nil, nil, err
	}
	return append(found, wal...), append(unread, walUnread...), nil
}

// scanWAL reads every WAL segment the server lists, each under its name.
func scanWAL(ctx context.Context, db *store.DB, terms []Term) (found []Finding, unread []string, err error) {
	names, err := store.Strings(ctx, db, `SELECT name FROM pg_ls_waldir() ORDER BY name`)
	if err != nil {
		why, ok := refusal(err)
		if !ok {
			return nil, nil, fmt.Errorf("datamap: list WAL: %w", err)
		}
		return nil, []string{"the WAL was not read: it could not be listed (" + why + "; listing it needs superuser or the pg_monitor role)"}, nil
	}
	for i, name := range names {
		// A segment removed or recycled since the listing no longer exists under its
		// name: a missing file reads as empty (segmented: false), and its bytes, if
		// recycled, are read under the next name listed by a later scan.
		f, err := scanReader(&serverFile{ctx: ctx, db: db, path: "pg_wal/" + name}, "WAL "+name, terms, chunkSize)
		if err != nil {
			why, ok := refusal(err)
			if !ok {
				return nil, nil, fmt.Errorf("datamap: read WAL %s: %w", name, err)
			}
			if !lacksRight(err) {
				unread = append(unread, "WAL "+name+" was not read: "+why)
				continue
			}
			unread = append(unread, fmt.Sprintf("%d of %d WAL segments were not read (%s; reading them needs superuser or the pg_read_server_files role)",
				len(names)-i, len(names), why))
			break
		}
		found = append(found, f...)
	}
	return found, unread, nil
}

// errMissing says a relation's file was not there when read.
var errMissing = errors.New("file missing")

// serverFile reads a file of the server's data directory through pg_read_binary_file,
// one chunk per Read. A segmented relation file goes on into its next 1 GiB segment
// (path.1, path.2, ...) until one is missing.
type serverFile struct {
	ctx       context.Context
	db        *store.DB
	path      string
	segmented bool
	seg       int
	off       int64
}

// Read reads the next bytes of the file through pg_read_binary_file.
//
//sqlcheck:postgres
func (f *serverFile) Read(p []byte) (int, error) {
	for {
		name := f.path
		if f.seg > 0 {
			name += "." + strconv.Itoa(f.seg)
		}
		var missing bool
		var b []byte
		err := f.db.QueryRowContext(f.ctx,
			`SELECT b IS NULL, coalesce(b, ''::bytea) FROM pg_read_binary_file($1, $2, $3, true) AS b`,
			name, f.off, int64(len(p))).Scan(&missing, &b)
		if err != nil {
			return 0, err
		}
		if len(b) > 0 {
			f.off += int64(len(b))
			return copy(p, b), nil
		}
		// The end of this segment: a relation goes on in the next one, if there is one.
		if missing && f.seg == 0 && f.off == 0 && f.segmented {
			return 0, errMissing
		}
		if missing || !f.segmented {
			return 0, io.EOF
		}
		f.seg++
		f.off = 0
	}
}

// refusal says why the server would not do what a raw read asked, when that is what
// err is: a right the role lacks, a function the server does not have, or a file it
// could not read (classes 42501, 42883 and 58).
func refusal(err error) (string, bool) {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		return "", false
	}
	switch {
	case pe.Code == "42501", pe.Code == "42883", strings.HasPrefix(pe.Code, "58"):
		return pe.Message, true
	}
	return "", false
}

// lacksRight reports whether err is the server refusing the role or lacking the
// function: every later read of the same kind would fail the same way.
func lacksRight(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == "42501" || pe.Code == "42883")
}
