package store

import (
	"container/list"
	"context"
	"database/sql"
	"strings"
	"sync"
)

// stmtCache keeps the statements run on one SQLite pool prepared, by their text, so a
// statement run again is not parsed and planned again (the driver prepares every
// statement it is given as text, and a write transaction's statements hold SQLite's
// only writer while they are parsed). It holds at most max statements and closes the
// least recently used one to make room: statements built at run time (lists of
// placeholders of every length) come and go without growing it. database/sql keeps a
// statement's preparations per connection and closes them when the statement closes,
// after whoever is still using it is done.
//
// PostgreSQL does not need it: pgx keeps each connection's statements prepared by
// itself.
type stmtCache struct {
	pool *sql.DB
	max  int

	mu    sync.Mutex
	byQ   map[string]*list.Element // of *cachedStmt, by query
	order list.List                // most recently used at the front
	seen  map[string]bool          // run once as text, not kept yet
}

type cachedStmt struct {
	q  string
	st *sql.Stmt
}

// maxCachedQuery is the longest statement kept prepared: longer ones are built at run
// time (multi-row inserts and lists), seldom twice alike, and InsertRows keeps its own.
const maxCachedQuery = 2048

func newStmtCache(pool *sql.DB, max int) *stmtCache {
	return &stmtCache{pool: pool, max: max, byQ: map[string]*list.Element{}, seen: map[string]bool{}}
}

// cacheable reports whether q (already rebound) may be kept prepared: one statement of
// reasonable length. A text of several statements runs them all only as text: a
// prepared statement would run the first.
func cacheable(q string) bool {
	if len(q) > maxCachedQuery {
		return false
	}
	q = strings.TrimRight(strings.TrimSpace(q), ";")
	return !strings.Contains(q, ";")
}

// lookup returns the statement kept for q, or nil.
func (c *stmtCache) lookup(q string) *sql.Stmt {
	if c == nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.byQ[q]; ok {
		c.order.MoveToFront(e)
		return e.Value.(*cachedStmt).st
	}
	return nil
}

// wanted reports whether q, run as text now, is worth preparing: the second time a
// statement is seen (a statement built for one use never is), if it may be kept.
func (c *stmtCache) wanted(q string) bool {
	if c == nil || !cacheable(q) {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.byQ[q]; ok {
		return false
	}
	if c.seen[q] {
		delete(c.seen, q)
		return true
	}
	if len(c.seen) >= 4*c.max {
		clear(c.seen)
	}
	c.seen[q] = true
	return false
}

// get returns the statement kept for q, preparing it when it is wanted (see wanted);
// nil (and no error) when the caller is to run q as text. It takes a connection of
// the pool to prepare: never call it holding the pool's only connection (in a
// transaction on the SQLite writer), use lookup, wanted and add instead.
func (c *stmtCache) get(ctx context.Context, q string) (*sql.Stmt, error) {
	if st := c.lookup(q); st != nil || !c.wanted(q) {
		return st, nil
	}
	return c.add(ctx, q)
}

// add prepares q on the pool and keeps it, closing the least recently used statement
// if there is no room.
func (c *stmtCache) add(ctx context.Context, q string) (*sql.Stmt, error) {
	// Prepared outside the lock: two goroutines may both prepare a new statement,
	// and the second one's is closed.
	st, err := c.pool.PrepareContext(ctx, q)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	if e, ok := c.byQ[q]; ok {
		c.mu.Unlock()
		st.Close()
		return e.Value.(*cachedStmt).st, nil
	}
	c.byQ[q] = c.order.PushFront(&cachedStmt{q: q, st: st})
	var evicted *sql.Stmt
	if c.order.Len() > c.max {
		last := c.order.Back()
		c.order.Remove(last)
		old := last.Value.(*cachedStmt)
		delete(c.byQ, old.q)
		evicted = old.st
	}
	c.mu.Unlock()
	if evicted != nil {
		evicted.Close()
	}
	return st, nil
}

// close closes every statement kept.
func (c *stmtCache) close() {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for e := c.order.Front(); e != nil; e = e.Next() {
		e.Value.(*cachedStmt).st.Close()
	}
	c.order.Init()
	clear(c.byQ)
	clear(c.seen)
}
