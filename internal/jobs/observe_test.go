package jobs_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"steward/internal/jobs"
	"steward/internal/store"
	"steward/internal/store/storetest"
)

type failArgs struct{}

func (failArgs) Kind() string { return "fail" }

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// At the default level (INFO) River says nothing while a queue starts, works and
// stops; this node counts its job runs by result, and Counts reads the queue.
func TestQueueQuietAndCounted(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		if err := jobs.Migrate(ctx, db); err != nil {
			t.Fatal(err)
		}
		var info, debug lockedBuffer
		log := slog.New(fanout{slog.NewTextHandler(&info, nil), slog.NewTextHandler(&debug, &slog.HandlerOptions{Level: slog.LevelDebug})})
		q := jobs.New(db, log, 2, 50*time.Millisecond)
		ran := make(chan int, 10)
		failed := make(chan struct{}, 10)
		jobs.Register(q, func(_ context.Context, a pingArgs) error { ran <- a.N; return nil })
		jobs.Register(q, func(context.Context, failArgs) error { failed <- struct{}{}; return errors.New("no luck") })
		if err := q.Open(true); err != nil {
			t.Fatal(err)
		}
		if err := q.Start(ctx); err != nil {
			t.Fatal(err)
		}
		if err := db.InTx(ctx, func(tx *store.Tx) error {
			return errors.Join(q.Enqueue(ctx, tx, pingArgs{7}), q.Enqueue(ctx, tx, failArgs{}))
		}); err != nil {
			t.Fatal(err)
		}
		waitJob(t, ran, 7)
		select {
		case <-failed:
		case <-time.After(20 * time.Second):
			t.Fatal("the failing job did not run")
		}
		if err := q.Stop(ctx); err != nil {
			t.Fatal(err)
		}

		runs := map[jobs.Run]int64{}
		for _, r := range q.Runs() {
			runs[jobs.Run{Kind: r.Kind, Result: r.Result}] = r.N
		}
		if runs[jobs.Run{Kind: "ping", Result: "ok"}] != 1 || runs[jobs.Run{Kind: "fail", Result: "error"}] != 1 {
			t.Errorf("runs = %v, want ping ok 1 and fail error 1", runs)
		}
		counts, err := q.Counts(ctx)
		if err != nil {
			t.Fatal(err)
		}
		// A retry due within River's scheduler interval is "available" at once.
		var queued int64
		for _, c := range counts {
			if c.Kind == "fail" && (c.State == "retryable" || c.State == "available") {
				queued += c.N
			}
			if c.Kind == "ping" {
				t.Errorf("a completed job is counted: %+v", c)
			}
		}
		if queued != 1 {
			t.Errorf("counts = %+v, want the failed job queued again", counts)
		}

		if strings.Contains(info.String(), "level=INFO") || strings.Contains(info.String(), "level=DEBUG") {
			t.Errorf("River logged below WARN at the default level:\n%s", info.String())
		}
		if !strings.Contains(debug.String(), "level=DEBUG") {
			t.Errorf("nothing of River's at DEBUG either (is the log captured?):\n%s", debug.String())
		}
	})
}

// fanout sends each record to every handler that takes its level.
type fanout []slog.Handler

func (f fanout) Enabled(ctx context.Context, l slog.Level) bool {
	for _, h := range f {
		if h.Enabled(ctx, l) {
			return true
		}
	}
	return false
}

func (f fanout) Handle(ctx context.Context, r slog.Record) error {
	for _, h := range f {
		if h.Enabled(ctx, r.Level) {
			if err := h.Handle(ctx, r.Clone()); err != nil {
				return err
			}
		}
	}
	return nil
}

func (f fanout) WithAttrs(as []slog.Attr) slog.Handler {
	out := make(fanout, len(f))
	for i, h := range f {
		out[i] = h.WithAttrs(as)
	}
	return out
}

func (f fanout) WithGroup(name string) slog.Handler {
	out := make(fanout, len(f))
	for i, h := range f {
		out[i] = h.WithGroup(name)
	}
	return out
}
