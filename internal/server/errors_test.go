package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
)

// A client that goes away mid-request is not an internal error: it is logged at debug
// level, not as an ERROR. A real failure still is, and neither shows its detail.
func TestPublicErrors(t *testing.T) {
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	ctx, cancel := context.WithCancel(context.Background())
	r := httptest.NewRequest("GET", "/api/v1/me/export", nil).WithContext(ctx)
	cancel()
	d := Public(log, r, fmt.Errorf("export: %w", context.Canceled))
	if d.Code != "internal" || logs.Len() != 0 {
		t.Errorf("a client gone away: %+v, logged %q", d, logs.String())
	}
	live := httptest.NewRequest("GET", "/api/v1/me/export", nil)
	d = Public(log, live, errors.New("disk on fire"))
	if d.Code != "internal" || strings.Contains(d.Message, "fire") || !strings.Contains(logs.String(), "level=ERROR") {
		t.Errorf("an internal error: %+v, logged %q", d, logs.String())
	}
	// A canceled context of our own making, on a live request, is still an error.
	logs.Reset()
	Public(log, live, context.Canceled)
	if !strings.Contains(logs.String(), "level=ERROR") {
		t.Errorf("a cancellation not the client's was not logged as an error: %q", logs.String())
	}
}
