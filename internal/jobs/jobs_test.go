package jobs_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"steward/internal/jobs"
	"steward/internal/store"
	"steward/internal/store/storetest"
)

type pingArgs struct{ N int }

func (pingArgs) Kind() string { return "ping" }

// A job queued in a transaction starts when the transaction commits, not at the next
// poll (here a minute away); a job queued in a transaction that rolls back never runs.
func TestJobStartsOnCommit(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		if err := jobs.Migrate(ctx, db); err != nil {
			t.Fatal(err)
		}
		q := jobs.New(db, slog.New(slog.NewTextHandler(io.Discard, nil)), 2, time.Minute)
		ran := make(chan int, 10)
		jobs.Register(q, func(_ context.Context, a pingArgs) error { ran <- a.N; return nil })
		if err := q.Open(true); err != nil {
			t.Fatal(err)
		}
		if err := q.Start(ctx); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { q.Stop(ctx) })
		// The first fetch at start has happened once an unrelated job ran.
		if err := db.InTx(ctx, func(tx *store.Tx) error { return q.Enqueue(ctx, tx, pingArgs{0}) }); err != nil {
			t.Fatal(err)
		}
		waitJob(t, ran, 0)

		errRollback := errors.New("roll back")
		if err := db.InTx(ctx, func(tx *store.Tx) error {
			if err := q.Enqueue(ctx, tx, pingArgs{1}); err != nil {
				return err
			}
			return errRollback
		}); !errors.Is(err, errRollback) {
			t.Fatal(err)
		}
		for n := 2; n < 5; n++ {
			time.Sleep(50 * time.Millisecond) // not right after the previous fetch
			if err := db.InTx(ctx, func(tx *store.Tx) error { return q.Enqueue(ctx, tx, pingArgs{n}) }); err != nil {
				t.Fatal(err)
			}
			waitJob(t, ran, n)
		}
	})
}

func waitJob(t *testing.T, ran <-chan int, want int) {
	t.Helper()
	select {
	case n := <-ran:
		if n != want {
			t.Fatalf("job %d ran, want %d (a rolled-back job ran?)", n, want)
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("job %d did not start within 20 s of its commit (the next poll is a minute away)", want)
	}
}
