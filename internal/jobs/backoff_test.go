package jobs

import (
	"testing"
	"time"

	"github.com/riverqueue/river/rivertype"
)

// A retry waits 2^attempt seconds, at most ten minutes, from when the failed attempt
// began.
func TestBackoff(t *testing.T) {
	created := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	attempted := created.Add(time.Hour)
	tests := []struct {
		name      string
		attempt   int
		attempted *time.Time
		want      time.Time
	}{
		{"first", 1, &attempted, attempted.Add(2 * time.Second)},
		{"third", 3, &attempted, attempted.Add(8 * time.Second)},
		{"capped", 12, &attempted, attempted.Add(10 * time.Minute)},
		{"never attempted", 1, nil, created.Add(2 * time.Second)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := backoff{}.NextRetry(&rivertype.JobRow{Attempt: tt.attempt, AttemptedAt: tt.attempted, CreatedAt: created})
			if !got.Equal(tt.want) {
				t.Errorf("NextRetry = %v, want %v", got, tt.want)
			}
		})
	}
}
