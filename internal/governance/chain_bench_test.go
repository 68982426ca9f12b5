package governance

import (
	"context"
	"math"
	"testing"
	"time"

	"steward/internal/store"
	"steward/internal/store/storetest"
)

// BenchmarkAuditVerify measures Verify over a chain of 100,000 entries without an
// account (go test -run - -bench AuditVerify ./internal/governance), on each engine,
// as entries verified per second; it logs how fast the chainer built the chain.
func BenchmarkAuditVerify(b *testing.B) {
	const n = 100_000
	for dialect, url := range storetest.Engines(b) {
		ctx := context.Background()
		db, err := store.Open(ctx, url)
		if err != nil {
			b.Fatal(err)
		}
		defer db.Close()
		if err := db.Migrate(ctx); err != nil {
			b.Fatal(err)
		}
		a, _, _ := newAudit(b, db)
		for i := 0; i < n; i += 1000 {
			err := db.InTx(ctx, func(tx *store.Tx) error {
				for range 1000 {
					if err := a.Record(ctx, tx, Event{Name: "login_failed", IP: "192.0.2.1", Detail: "unknown account"}); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				b.Fatal(err)
			}
		}
		start := time.Now()
		if _, err := a.Chain(ctx, db); err != nil {
			b.Fatal(err)
		}
		b.Logf("%s: chained %d entries in %v (%.0f/s)", dialect, n, time.Since(start), n/time.Since(start).Seconds())
		// In one pass, and in ranges at once (one per processor), as Verify does
		// from parallelVerifyMin entries on.
		for _, mode := range []struct {
			name string
			min  int64
		}{{"one-pass", math.MaxInt64}, {"ranges", 1}} {
			b.Run(string(dialect)+"/"+mode.name, func(b *testing.B) {
				parallelVerifyMin = mode.min
				defer func() { parallelVerifyMin = 50_000 }()
				for range b.N {
					rep, err := a.Verify(ctx, db)
					if err != nil || !rep.Intact() || rep.Entries != n {
						b.Fatalf("verify: %+v, %v", rep, err)
					}
				}
				b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "verified/s")
			})
		}
	}
}
