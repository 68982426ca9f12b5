package stress

import (
	"context"
	"os"
	"testing"
)

// postgresOrSkip skips a PostgreSQL run when no database is configured, unless the
// services are required.
func postgresOrSkip(t *testing.T, engine string) {
	if engine != "postgres" || os.Getenv("STEWARD_TEST_POSTGRES_URL") != "" {
		return
	}
	if os.Getenv("STEWARD_TEST_REQUIRE_SERVICES") == "1" {
		t.Fatal("STEWARD_TEST_POSTGRES_URL is not set but STEWARD_TEST_REQUIRE_SERVICES=1")
	}
	t.Skip("STEWARD_TEST_POSTGRES_URL not set")
}

// TestCrashCycles is the short version of scripts/crash-cycles: ten SIGKILLs per engine
// during concurrent writes of every kind, each followed by every check.
func TestCrashCycles(t *testing.T) {
	if testing.Short() {
		t.Skip("crash cycles run real servers for about a minute")
	}
	bin, err := Build(context.Background(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, engine := range []string{"sqlite", "postgres"} {
		t.Run(engine, func(t *testing.T) {
			postgresOrSkip(t, engine)
			rep, err := Crash(context.Background(), CrashOptions{Cycles: 10, Engine: engine, Bin: bin, Dir: t.TempDir()})
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("seed %d: %d cycles in %s, acknowledged %v, %d campaigns pending River's rescue, %d duplicates, %d unconfirmed",
				rep.Seed, rep.Cycles, rep.Elapsed, rep.Acknowledged, rep.Pending, rep.Duplicates, rep.Unconfirmed)
			if rep.Cycles != 10 || rep.Kills != 10 {
				t.Errorf("%d cycles, %d kills, want 10", rep.Cycles, rep.Kills)
			}
			for _, kind := range []string{"registrations", "uploads", "erasures", "imported addresses", "campaigns"} {
				if rep.Acknowledged[kind] == 0 {
					t.Errorf("no %s acknowledged: the cycles tested nothing of them", kind)
				}
			}
			for _, v := range rep.Violations {
				t.Error(v)
			}
		})
	}
}
