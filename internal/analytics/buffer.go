package analytics

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"steward/internal/store"
)

// eventRow and logRow are rows as the store keeps them.
type eventRow struct {
	at, day                                           int64
	site, kind, path, referrer, name, props, campaign string
	visitor                                           int64
	browser                                           string
	bot                                               bool
	country                                           string // ISO code of the client's address; never the address
}

type logRow struct {
	at            int64
	method, path  string
	status        int
	bytes, micros int64
	browser, net  string
}

// buffer holds rows in memory and writes them in batches, every interval or as soon as
// a batch's worth waits: one transaction per batch instead of one per request. What
// it accepted is written before close returns; what it has no room for is refused
// (events: ErrFull) or dropped and counted (the request log), never grown.
type buffer struct {
	db       *store.DB
	max      int
	interval time.Duration
	log      *slog.Logger

	mu      sync.Mutex
	events  []eventRow
	logs    []logRow
	pending int // rows accepted and not yet written: waiting, and in the batch being written
	closed  bool

	writing sync.Mutex // one batch at a time, in the order taken
	evArgs  []any      // the batch's values, kept between batches (under writing)
	logArgs []any
	wake    chan struct{}
	stop    chan struct{}
	done    chan struct{}
	started atomic.Bool
	dropped atomic.Int64
}

// batch is the number of waiting rows that starts a write before the interval ends.
const batch = 4096

func newBuffer(db *store.DB, max int, interval time.Duration, log *slog.Logger) *buffer {
	return &buffer{db: db, max: max, interval: interval, log: log, wake: make(chan struct{}, 1),
		stop: make(chan struct{}), done: make(chan struct{})}
}

func (b *buffer) addEvent(r eventRow) error {
	b.mu.Lock()
	if b.closed || b.pending >= b.max {
		b.mu.Unlock()
		return ErrFull
	}
	b.events = append(b.events, r)
	b.pending++
	n := len(b.events) + len(b.logs)
	b.mu.Unlock()
	if n == batch {
		b.kick()
	}
	return nil
}

func (b *buffer) addLog(r logRow) {
	b.mu.Lock()
	if b.closed || b.pending >= b.max {
		b.mu.Unlock()
		b.dropped.Add(1)
		return
	}
	b.logs = append(b.logs, r)
	b.pending++
	n := len(b.events) + len(b.logs)
	b.mu.Unlock()
	if n == batch {
		b.kick()
	}
}

func (b *buffer) kick() {
	select {
	case b.wake <- struct{}{}:
	default:
	}
}

// start runs the writer until close.
func (b *buffer) start() {
	if !b.started.CompareAndSwap(false, true) {
		return
	}
	go func() {
		defer close(b.done)
		t := time.NewTicker(b.interval)
		defer t.Stop()
		for {
			select {
			case <-b.stop:
				return
			case <-t.C:
			case <-b.wake:
			}
			if err := b.flush(context.Background()); err != nil {
				// Safe to go on: the rows stay in the buffer and the next tick writes
				// them; meanwhile the buffer fills, and sheds load when full.
				b.log.Error("analytics: writing the buffer", "err", err)
			}
		}
	}()
}

// flush writes every row waiting now, in one transaction. On failure the rows go back
// to the front of the buffer.
func (b *buffer) flush(ctx context.Context) error {
	b.writing.Lock()
	defer b.writing.Unlock()
	b.mu.Lock()
	events, logs := b.events, b.logs
	b.events, b.logs = nil, nil
	b.mu.Unlock()
	if len(events)+len(logs) == 0 {
		return nil
	}
	evArgs := b.evArgs[:0]
	for _, e := range events {
		bot := 0
		if e.bot {
			bot = 1
		}
		evArgs = append(evArgs, e.at, e.day, e.site, e.kind, e.path, e.referrer, e.name, e.props, e.campaign, e.visitor, e.browser, bot, e.country)
	}
	logArgs := b.logArgs[:0]
	for _, l := range logs {
		logArgs = append(logArgs, l.at, l.method, l.path, l.status, l.bytes, l.micros, l.browser, l.net)
	}
	err := b.db.Copy(ctx,
		store.CopyTable{Name: "events", Cols: eventCols, Values: evArgs},
		store.CopyTable{Name: "request_log", Cols: logCols, Values: logArgs})
	b.evArgs, b.logArgs = keepArgs(evArgs), keepArgs(logArgs)
	b.mu.Lock()
	defer b.mu.Unlock()
	if err != nil {
		b.events = append(events, b.events...)
		b.logs = append(logs, b.logs...)
		return fmt.Errorf("analytics: write %d events and %d log lines: %w", len(events), len(logs), err)
	}
	b.pending -= len(events) + len(logs)
	return nil
}

// keepArgs is a batch's values slice emptied for the next batch (the rows' strings are
// not held), or nil if a backlog made it larger than a usual batch needs.
func keepArgs(args []any) []any {
	if cap(args) > 2*batch*len(eventCols) {
		return nil
	}
	clear(args)
	return args[:0]
}

// The columns the buffer writes.
var (
	eventCols = []string{"at", "day", "site", "kind", "path", "referrer", "name", "props", "campaign", "visitor", "browser", "bot", "country"}
	logCols   = []string{"at", "method", "path", "status", "bytes", "micros", "browser", "net"}
)

// close refuses new rows, stops the writer and writes what was accepted, trying again
// until ctx ends.
func (b *buffer) close(ctx context.Context) error {
	b.mu.Lock()
	b.closed = true
	b.mu.Unlock()
	if b.started.Load() {
		close(b.stop)
		<-b.done
	}
	for {
		err := b.flush(ctx)
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			b.mu.Lock()
			lost := len(b.events) + len(b.logs)
			b.mu.Unlock()
			return errors.Join(err, fmt.Errorf("analytics: %d rows not written at shutdown", lost))
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// waiting is how many rows are accepted and not yet written.
func (b *buffer) waiting() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.pending
}
