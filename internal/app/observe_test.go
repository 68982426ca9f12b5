package app_test

import (
	"bufio"
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"steward/internal/app/apptest"
)

// scrape reads the metrics the way Prometheus does, and returns each sample by its
// name and labels as printed ("steward_mails_total{result=\"sent\"}").
func scrape(t *testing.T, h *apptest.Harness) map[string]float64 {
	t.Helper()
	rec := httptest.NewRecorder()
	h.App.MetricsHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("GET /metrics = %d %s", rec.Code, rec.Body)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(rec.Body)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("metrics line %q: %v", line, err)
		}
		out[line[:i]] = v
	}
	return out
}

// scrapeUntil scrapes until ok says the samples are there, for at most ten seconds,
// and returns the last scrape.
func scrapeUntil(t *testing.T, h *apptest.Harness, ok func(map[string]float64) bool) map[string]float64 {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		m := scrape(t, h)
		if ok(m) || time.Now().After(deadline) {
			return m
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Requests are counted by route, never by path; mail handed over is counted; the
// queue, the outbox and erasures are read from the database; /healthz and /readyz
// answer.
func TestMetrics(t *testing.T) {
	apptest.Each(t, func(t *testing.T, h *apptest.Harness) {
		id, token := h.Member("metered@example.org", pw, nil)
		if r := h.Do("GET", "/api/v1/members/"+id, nil, ""); r.Status != http.StatusOK {
			t.Fatalf("public profile = %d", r.Status)
		}
		h.Do("GET", "/no/such/page/"+id, nil, "")
		del := h.Do("DELETE", "/api/v1/me", map[string]string{"password": pw}, token)
		if del.Status != http.StatusAccepted {
			t.Fatalf("DELETE /me = %d %s", del.Status, del.Body)
		}
		h.WaitErasure(del.JSON()["request_id"].(string))

		for path, want := range map[string]string{"/healthz": `"ok"`, "/readyz": `"ready"`} {
			if r := h.Do("GET", path, nil, ""); r.Status != http.StatusOK || !strings.Contains(string(r.Body), want) {
				t.Errorf("GET %s = %d %s", path, r.Status, r.Body)
			}
		}

		// The job's run and the mail's hand-over are counted just after what the test
		// waited for (the request done, the .eml written).
		m := scrapeUntil(t, h, func(m map[string]float64) bool {
			return m[`steward_job_runs_total{kind="erasure",result="ok"}`] >= 1 && m[`steward_mails_total{result="sent"}`] >= 1
		})
		for sample, want := range map[string]float64{
			`steward_http_requests_total{code="200",method="GET",route="GET /api/v1/members/{id}"}`:      1,
			`steward_http_requests_total{code="201",method="POST",route="POST /api/v1/accounts"}`:        1,
			`steward_http_requests_total{code="202",method="DELETE",route="DELETE /api/v1/me"}`:          1,
			`steward_http_request_duration_seconds_count{method="GET",route="GET /api/v1/members/{id}"}`: 1,
			`steward_erasures_started_total`:                     1,
			`steward_erasures_done_total`:                        1,
			`steward_erasures_unfinished`:                        0,
			`steward_erasures_overdue`:                           0,
			`steward_erasures_failing`:                           0,
			`steward_metrics_source_up{source="jobs"}`:           1,
			`steward_metrics_source_up{source="outbox"}`:         1,
			`steward_metrics_source_up{source="erasures"}`:       1,
			`steward_job_runs_total{kind="erasure",result="ok"}`: 1,
			`steward_mails_total{result="refused"}`:              0,
		} {
			if got, ok := m[sample]; !ok || got != want {
				t.Errorf("%s = %v (present %v), want %v", sample, got, ok, want)
			}
		}
		if m[`steward_mails_total{result="sent"}`] < 1 { // the confirmation, and any notice since
			t.Errorf("mails sent = %v, want at least the confirmation", m[`steward_mails_total{result="sent"}`])
		}
		if _, ok := m[`steward_mail_outbox_queued`]; !ok {
			t.Error("no steward_mail_outbox_queued")
		}
		unmatched := false
		for sample := range m {
			if strings.Contains(sample, id) {
				t.Errorf("a sample holds the member's id: %s", sample)
			}
			// The pages' catch-all answers what no other route takes.
			if strings.HasPrefix(sample, `steward_http_requests_total{code="404",method="GET",route="/"}`) {
				unmatched = true
			}
		}
		if !unmatched {
			t.Error("a request for no page is not counted under the catch-all route")
		}
	})
}

// An erasure that no worker takes stays unfinished, and an hour on it is overdue.
func TestMetricsOverdueErasure(t *testing.T) {
	apptest.Each(t, func(t *testing.T, h *apptest.Harness) {
		_, token := h.Member("stuck@example.org", pw, nil)
		if err := h.App.Jobs().Stop(context.Background()); err != nil {
			t.Fatal(err)
		}
		if r := h.Do("DELETE", "/api/v1/me", map[string]string{"password": pw}, token); r.Status != http.StatusAccepted {
			t.Fatalf("DELETE /me = %d %s", r.Status, r.Body)
		}
		if m := scrape(t, h); m[`steward_erasures_unfinished`] != 1 || m[`steward_erasures_overdue`] != 0 {
			t.Errorf("just requested: unfinished %v, overdue %v; want 1, 0", m[`steward_erasures_unfinished`], m[`steward_erasures_overdue`])
		}
		h.Clock.Advance(61 * time.Minute)
		if m := scrape(t, h); m[`steward_erasures_unfinished`] != 1 || m[`steward_erasures_overdue`] != 1 {
			t.Errorf("an hour on: unfinished %v, overdue %v; want 1, 1", m[`steward_erasures_unfinished`], m[`steward_erasures_overdue`])
		}
	})
}

// /readyz names what is not reachable (here the SMTP server: nothing listens on the
// port) and answers 503; /healthz still answers 200.
func TestReadyzNamesWhatFailed(t *testing.T) {
	ln, err := newClosedPort()
	if err != nil {
		t.Fatal(err)
	}
	h := apptest.Start(t, "", "--mail", "smtp", "--smtp-addr", ln, "--smtp-tls", "none")
	r := h.Do("GET", "/readyz", nil, "")
	if r.Status != http.StatusServiceUnavailable || !strings.Contains(string(r.Body), `"failed":["mail"]`) {
		t.Errorf("GET /readyz = %d %s, want 503 naming mail", r.Status, r.Body)
	}
	if r := h.Do("GET", "/healthz", nil, ""); r.Status != http.StatusOK {
		t.Errorf("GET /healthz = %d", r.Status)
	}
}

// newClosedPort is a loopback address where nothing listens.
func newClosedPort() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	addr := ln.Addr().String()
	return addr, ln.Close()
}
