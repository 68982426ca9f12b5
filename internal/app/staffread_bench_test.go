package app_test

import (
	"context"
	"os"
	"testing"

	"steward/internal/access"
	"steward/internal/app/apptest"
)

// BenchmarkStaffReadRecord is the cost of recording one staff read (the sealed row and
// its audit entry, in one transaction), on each engine:
// go test -run X -bench StaffReadRecord -benchmem ./internal/app
func BenchmarkStaffReadRecord(b *testing.B) {
	for name, dbURL := range map[string]string{"sqlite": "", "postgres": os.Getenv("STEWARD_TEST_POSTGRES_URL")} {
		if name == "postgres" && dbURL == "" {
			continue
		}
		b.Run(name, func(b *testing.B) { benchStaffRead(b, dbURL) })
	}
}

func benchStaffRead(b *testing.B, dbURL string) {
	{
		h := apptest.Start(b, dbURL)
		ctx := context.Background()
		staffID, _ := h.Member("sam@example.org", pw, nil)
		memberID, _ := h.Member("mia@example.org", pw, nil)
		if err := h.GrantStaff(ctx, staffID, access.RoleDPO); err != nil {
			b.Fatal(err)
		}
		v, err := h.App.Access().Viewer(ctx, staffID, "203.0.113.9")
		if err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for b.Loop() {
			if err := h.App.Access().Record(ctx, v, access.Read{SubjectID: memberID, What: "member view: profile", Why: "dpo review"}); err != nil {
				b.Fatal(err)
			}
		}
	}
}
