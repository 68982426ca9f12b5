package store

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
)

// Bulk inserts many rows into one table within a transaction, in multi-row INSERTs of
// up to per rows. The statement for a full chunk is prepared once and run again for
// every full chunk (SQLite would otherwise parse a statement of thousands of values at
// each run); only the last, shorter chunk is parsed on its own. Placeholders are
// anonymous on SQLite (see Rebind): numbered ones cost a linear search each at parse
// and bind time.
type Bulk struct {
	tx     *Tx
	head   string // INSERT INTO t (cols) VALUES
	suffix string // ON CONFLICT ..., or ""
	cols   int
	per    int
	fixed  int   // values every statement starts with (BulkSelect)
	args   []any // the fixed values, then the queued rows'
	rows   int
	full   *sql.Stmt
}

// Bulk starts a bulk insert into table of the columns, per rows a statement, with an
// optional suffix (an ON CONFLICT clause). Close it when done.
func (t *Tx) Bulk(table string, cols []string, per int, suffix string) *Bulk {
	return &Bulk{tx: t, head: "INSERT INTO " + table + " (" + strings.Join(cols, ", ") + ") VALUES ",
		suffix: suffix, cols: len(cols), per: max(per, 1), args: make([]any, 0, per*len(cols))}
}

// BulkSelect is Bulk for rows that share values: each row gives only cols values, and a
// SELECT makes the table's row of them and of the fixed values. head ends with
// "FROM (VALUES ", uses the fixed values as $1, $2, ... (each once, in that order) and
// the row's as column1, column2, ...; suffix closes the parenthesis and names the list
// (") AS v": PostgreSQL wants a name). An import's
// consent events, of which five columns of seven are the same for every row, bind two
// values a row instead of seven.
func (t *Tx) BulkSelect(head string, fixed []any, cols, per int, suffix string) *Bulk {
	per = max(per, 1)
	args := make([]any, len(fixed), len(fixed)+per*cols)
	copy(args, fixed)
	return &Bulk{tx: t, head: head, suffix: suffix, cols: cols, per: per, fixed: len(fixed), args: args}
}

// OrIgnore drops rows that conflict with a constraint instead of failing: for rows
// known not to conflict (generated ones), since SQLite then keeps no statement journal
// (a copy of every page the statement changes). On PostgreSQL: ON CONFLICT DO NOTHING.
func (b *Bulk) OrIgnore() *Bulk {
	if b.tx.db.Dialect == SQLite {
		b.head = strings.Replace(b.head, "INSERT INTO ", "INSERT OR IGNORE INTO ", 1)
	} else {
		b.suffix = " ON CONFLICT DO NOTHING" + b.suffix
	}
	return b
}

// Add queues one row (its values in the columns' order), writing a chunk when full.
func (b *Bulk) Add(ctx context.Context, vals ...any) error {
	if len(vals) != b.cols {
		return fmt.Errorf("store: bulk insert: %d values for %d columns", len(vals), b.cols)
	}
	b.args = append(b.args, vals...)
	b.rows++
	if b.rows == b.per {
		return b.Flush(ctx)
	}
	return nil
}

// Flush writes the queued rows.
func (b *Bulk) Flush(ctx context.Context) error {
	if b.rows == 0 {
		return nil
	}
	var err error
	if b.rows == b.per {
		if b.full == nil {
			q := b.tx.db.Rebind(b.head + TuplesFrom(b.fixed+1, b.per, b.cols) + b.suffix)
			if b.full, err = b.tx.tx.PrepareContext(ctx, q); err != nil {
				return fmt.Errorf("store: bulk insert: %w", err)
			}
		}
		_, err = b.full.ExecContext(ctx, b.args...)
	} else {
		_, err = b.tx.tx.ExecContext(ctx, b.tx.db.Rebind(b.head+TuplesFrom(b.fixed+1, b.rows, b.cols)+b.suffix), b.args...)
	}
	clear(b.args[b.fixed:])
	b.args, b.rows = b.args[:b.fixed], 0
	if err != nil {
		return fmt.Errorf("store: bulk insert: %w", err)
	}
	return nil
}

// Close writes what is queued and releases the prepared statement.
func (b *Bulk) Close(ctx context.Context) error {
	err := b.Flush(ctx)
	if b.full != nil {
		if cerr := b.full.Close(); err == nil {
			err = cerr
		}
		b.full = nil
	}
	return err
}

// InsertRows inserts rows of cols values each (args, row after row) with head, as
// "INSERT INTO t (a, b) VALUES ", and suffix (an ON CONFLICT clause, or ""). The rows go
// in statements of 256, 128, ... 1 rows, each prepared once for the life of the
// database and run again (on SQLite parsing a multi-row INSERT costs more than running
// it): a batch of 13 rows is three statements, none parsed.
func (t *Tx) InsertRows(ctx context.Context, head string, cols int, args []any, suffix string) error {
	if cols <= 0 || len(args)%cols != 0 {
		return fmt.Errorf("store: insert: %d values for rows of %d", len(args), cols)
	}
	for rows := len(args) / cols; rows > 0; {
		n := 256
		for n > rows {
			n /= 2
		}
		// The statement is found by its parts: its text (thousands of placeholders) is
		// built only the first time.
		key := insertKey{head: head, suffix: suffix, rows: n, cols: cols}
		var err error
		if st, ok := t.db.stmts.Load(key); ok {
			_, err = t.tx.StmtContext(ctx, st.(*sql.Stmt)).ExecContext(ctx, args[:n*cols]...)
		} else {
			// Not prepared yet: parsed this once, and prepared on the writer after the
			// commit (the transaction holds SQLite's only writer connection now).
			q := head + Tuples(n, cols) + suffix
			_, err = t.tx.ExecContext(ctx, t.db.Rebind(q), args[:n*cols]...)
			// A statement that fails to prepare is only parsed again next time: the
			// insert itself has run.
			t.AfterCommit(func() { _, _ = t.db.writerStmt(context.WithoutCancel(ctx), key, q) })
		}
		if err != nil {
			return fmt.Errorf("store: insert: %w", err)
		}
		args, rows = args[n*cols:], rows-n
	}
	return nil
}

// insertKey names a statement of InsertRows.
type insertKey struct {
	head, suffix string
	rows, cols   int
}

// writerStmt returns the statement prepared on the writer for key (whose text is q),
// preparing it the first time.
func (db *DB) writerStmt(ctx context.Context, key insertKey, q string) (*sql.Stmt, error) {
	if st, ok := db.stmts.Load(key); ok {
		return st.(*sql.Stmt), nil
	}
	st, err := db.write.PrepareContext(ctx, db.Rebind(q))
	if err != nil {
		return nil, fmt.Errorf("store: prepare: %w", err)
	}
	if prev, loaded := db.stmts.LoadOrStore(key, st); loaded {
		st.Close()
		return prev.(*sql.Stmt), nil
	}
	return st, nil
}
