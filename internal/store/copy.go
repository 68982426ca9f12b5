package store

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
)

// CopyTable is rows for DB.Copy: Values holds them one after the other, len(Cols)
// values each.
type CopyTable struct {
	Name   string
	Cols   []string
	Values []any
}

func (t CopyTable) rows() int {
	if len(t.Cols) == 0 {
		return 0
	}
	return len(t.Values) / len(t.Cols)
}

// Copy writes the rows of every table in one transaction of its own. On PostgreSQL it
// is COPY (binary): no statement to plan, no thousands of parameters to bind, the
// server's cheapest way in for a stream of small rows. On SQLite, multi-row INSERTs
// (Tx.InsertRows).
func (db *DB) Copy(ctx context.Context, tables ...CopyTable) error {
	for _, t := range tables {
		if len(t.Cols) == 0 || len(t.Values)%len(t.Cols) != 0 {
			return fmt.Errorf("store: copy into %s: %d values for rows of %d", t.Name, len(t.Values), len(t.Cols))
		}
	}
	if db.Dialect != Postgres {
		return db.InTx(ctx, func(tx *Tx) error {
			for _, t := range tables {
				if t.rows() == 0 {
					continue
				}
				head := "INSERT INTO " + t.Name + " (" + strings.Join(t.Cols, ", ") + ") VALUES "
				if err := tx.InsertRows(ctx, head, len(t.Cols), t.Values, ""); err != nil {
					return err
				}
			}
			return nil
		})
	}
	conn, err := db.write.Conn(ctx)
	if err != nil {
		return fmt.Errorf("store: copy: %w", err)
	}
	defer conn.Close()
	return conn.Raw(func(dc any) error {
		pc, ok := dc.(interface{ Conn() *pgx.Conn })
		if !ok {
			return fmt.Errorf("store: copy: the driver's connection is a %T, not pgx's", dc)
		}
		tx, err := pc.Conn().Begin(ctx)
		if err != nil {
			return fmt.Errorf("store: copy: %w", err)
		}
		defer tx.Rollback(context.WithoutCancel(ctx)) // after Commit, a no-op
		for _, t := range tables {
			n, c := t.rows(), len(t.Cols)
			if n == 0 {
				continue
			}
			src := pgx.CopyFromSlice(n, func(i int) ([]any, error) { return t.Values[i*c : (i+1)*c], nil })
			if _, err := tx.CopyFrom(ctx, pgx.Identifier{t.Name}, t.Cols, src); err != nil {
				return fmt.Errorf("store: copy into %s: %w", t.Name, err)
			}
		}
		if err := tx.Commit(ctx); err != nil {
			return fmt.Errorf("store: copy: commit: %w", err)
		}
		return nil
	})
}
