package jobs

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

// Below WARN, River's lines are DEBUG: gone at the default level, there at debug.
func TestQuietLogger(t *testing.T) {
	for _, tt := range []struct {
		name  string
		level slog.Level
		want  []string
		not   []string
	}{
		{"info", slog.LevelInfo, []string{"level=WARN msg=warned", "level=ERROR msg=failed"}, []string{"informed", "debugged"}},
		{"debug", slog.LevelDebug, []string{"level=DEBUG msg=informed", "level=DEBUG msg=debugged", "level=WARN msg=warned"}, []string{"level=INFO"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			log := quietLogger(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: tt.level}))).With("from", "river")
			log.Debug("debugged")
			log.Info("informed")
			log.Warn("warned")
			log.Error("failed")
			got := buf.String()
			for _, w := range tt.want {
				if !strings.Contains(got, w) {
					t.Errorf("log lacks %q:\n%s", w, got)
				}
			}
			for _, n := range tt.not {
				if strings.Contains(got, n) {
					t.Errorf("log holds %q:\n%s", n, got)
				}
			}
		})
	}
}
