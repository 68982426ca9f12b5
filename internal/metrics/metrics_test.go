package metrics

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"steward/internal/mail"
)

type fakeSender struct{ err error }

func (f fakeSender) SendAll(context.Context, []mail.Message) error { return f.err }

func mailCounts(t *testing.T, g prometheus.Gatherer) map[string]float64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != "steward_mails_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			out[m.GetLabel()[0].GetValue()] = m.GetCounter().GetValue()
		}
	}
	return out
}

// Each message of a batch is sent, refused or deferred as the sender's error says;
// a session (a campaign's one connection) counts the same.
func TestMailCounts(t *testing.T) {
	m := New(Sources{}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	three := make([]mail.Message, 3)
	ctx := context.Background()
	_ = m.Sender(fakeSender{}).SendAll(ctx, three)
	_ = m.Sender(fakeSender{&mail.PartialError{Failed: map[int]bool{0: true, 2: false}}}).SendAll(ctx, three)
	_ = m.Sender(fakeSender{&mail.PartialError{Failed: map[int]bool{0: true}, Unsure: map[int]bool{1: true}}}).SendAll(ctx, three)
	_ = m.Sender(fakeSender{errors.New("connection refused")}).SendAll(ctx, three)
	s := m.Sender(fakeSender{}).(mail.SessionSender).Open()
	_ = s.SendAll(ctx, three)
	_ = s.Close()
	got := mailCounts(t, m.Gatherer())
	want := map[string]float64{"sent": 3 + 1 + 1 + 3, "refused": 1, "deferred": 1 + 1 + 3, "unconfirmed": 1}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v, want %v (all: %v)", k, got[k], v, got)
		}
	}
}

// The counting writer lets a handler reach the connection: the request body's read
// deadlines (server.Middleware) and flushes keep working under Instrument.
func TestInstrumentKeepsResponseController(t *testing.T) {
	m := New(Sources{}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	var deadlineErr, flushErr error
	srv := httptest.NewServer(m.Instrument(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc := http.NewResponseController(w)
		deadlineErr = rc.SetReadDeadline(time.Now().Add(time.Minute))
		flushErr = rc.Flush()
	})))
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if deadlineErr != nil || flushErr != nil {
		t.Errorf("SetReadDeadline: %v; Flush: %v", deadlineErr, flushErr)
	}
}

// The counting wrapper keeps the .eml folder's answer to which messages it holds: a
// campaign's crash is settled exactly through it.
func TestSenderKeepsConfirmer(t *testing.T) {
	m := New(Sources{}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if _, ok := mail.ConfirmerOf(m.Sender(mail.FileSender{Dir: t.TempDir()})); !ok {
		t.Error("the wrapped folder is no longer a Confirmer")
	}
	if _, ok := mail.ConfirmerOf(m.Sender(fakeSender{})); ok {
		t.Error("a sender that cannot tell what it took is taken for a Confirmer")
	}
}
