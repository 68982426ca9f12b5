// Package metrics owns Steward's Prometheus registry: requests and latencies per
// route, mail handed over or refused, job runs, and, read from the database when
// Prometheus scrapes, the job queue, the mail outbox and erasure requests (started,
// done, failing, overdue). Labels are routes (ServeMux patterns), kinds and states:
// never a path, an id or anything of a member.
package metrics

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"steward/internal/jobs"
	"steward/internal/mail"
	"steward/internal/rights"
)

// OverdueAfter is how old an unfinished erasure request is when it counts as overdue:
// an erasure runs in seconds, so one pending for an hour is stuck (its job failing, or
// the queue not running), long before the month the law allows.
const OverdueAfter = time.Hour

// Sources are what the scrape reads, from the database through the packages that own
// each table, or from this node's job runs. They are functions, called at each scrape,
// so that the registry can be made before the services it reads (it counts the mail
// they send).
type Sources struct {
	JobRuns   func() []jobs.Run
	JobCounts func(ctx context.Context) ([]jobs.Count, error)
	Outbox    func(ctx context.Context) (int64, error)
	Erasures  func(ctx context.Context, overdue time.Time) (rights.Stats, error)
	Now       func() time.Time
}

// Metrics is the registry and the collectors that count as things happen.
type Metrics struct {
	reg      *prometheus.Registry
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	mails    *prometheus.CounterVec
	log      *slog.Logger
}

// New registers every metric in a registry of its own (no global state).
func New(src Sources, log *slog.Logger) *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "steward_http_requests_total",
			Help: "HTTP requests answered, by method, route (the ServeMux pattern; \"unmatched\" for none) and status code.",
		}, []string{"method", "route", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "steward_http_request_duration_seconds",
			Help:    "Time to answer HTTP requests, by method and route.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"method", "route"}),
		mails: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "steward_mails_total",
			Help: "Mails given to the mail server by this node, by result: sent (accepted), refused (for good: no such mailbox), deferred (failed for a while; tried again), unconfirmed (handed over, but the connection failed before the answer).",
		}, []string{"result"}),
		log: log,
	}
	for _, r := range []string{"sent", "refused", "deferred", "unconfirmed"} {
		m.mails.WithLabelValues(r)
	}
	m.reg.MustRegister(m.requests, m.duration, m.mails,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		&scrape{src: src, log: log})
	return m
}

// Handler serves the metrics in Prometheus's text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{ErrorLog: slog.NewLogLogger(m.log.Handler(), slog.LevelWarn)})
}

// Gatherer is the registry, for tests.
func (m *Metrics) Gatherer() prometheus.Gatherer { return m.reg }

// methods are the methods that become labels; any other is "other", so that a client
// cannot make labels up.
var methods = map[string]bool{"GET": true, "HEAD": true, "POST": true, "PUT": true, "PATCH": true, "DELETE": true, "OPTIONS": true}

// Instrument counts and times every request by its route. It goes outside
// server.Middleware, which answers a panic with 500 before the count is taken. The
// route is the pattern the ServeMux matched, which it sets on the request it is given
// (the one passed down from here): "GET /api/v1/erasures/{id}", never the id itself.
func (m *Metrics) Instrument(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		defer func() {
			route := r.Pattern
			if route == "" {
				route = "unmatched"
			}
			method := r.Method
			if !methods[method] {
				method = "other"
			}
			code := sw.code
			if code == 0 {
				code = http.StatusOK
			}
			m.requests.WithLabelValues(method, route, strconv.Itoa(code)).Inc()
			m.duration.WithLabelValues(method, route).Observe(time.Since(start).Seconds())
		}()
		h.ServeHTTP(sw, r)
	})
}

// statusWriter remembers the status of the answer. Unwrap lets
// http.ResponseController reach the connection (read deadlines, flushes).
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.code == 0 && code >= 200 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Sender counts what s hands over: every message of a batch is sent, unless the
// batch's error says it was refused (for good) or deferred (for a while). It keeps
// what s offers beyond sending: recalling messages (the .eml folder) and holding one
// connection for a campaign.
func (m *Metrics) Sender(s mail.BulkSender) mail.BulkSender { return &countingSender{s: s, m: m} }

type countingSender struct {
	s mail.BulkSender
	m *Metrics
}

func (c *countingSender) SendAll(ctx context.Context, msgs []mail.Message) error {
	err := c.s.SendAll(ctx, msgs)
	c.m.countMails(len(msgs), err)
	return err
}

func (m *Metrics) countMails(n int, err error) {
	sent, refused, deferred, unsure := n, 0, 0, 0
	if err != nil {
		var pe *mail.PartialError
		if !errors.As(err, &pe) { // nothing is known handed over
			sent, deferred = 0, n
		} else {
			for _, temporary := range pe.Failed {
				sent--
				if temporary {
					deferred++
				} else {
					refused++
				}
			}
			sent -= len(pe.Unsure)
			unsure = len(pe.Unsure)
		}
	}
	m.mails.WithLabelValues("sent").Add(float64(sent))
	m.mails.WithLabelValues("refused").Add(float64(refused))
	m.mails.WithLabelValues("deferred").Add(float64(deferred))
	m.mails.WithLabelValues("unconfirmed").Add(float64(unsure))
}

// Unwrap gives the sender counted, for what it offers beyond sending (mail.ConfirmerOf).
func (c *countingSender) Unwrap() mail.BulkSender { return c.s }

// Recall passes on to a sender that can take messages back; for any other there is
// nothing to take back.
func (c *countingSender) Recall(ids []string) error {
	if r, ok := c.s.(mail.Recaller); ok {
		return r.Recall(ids)
	}
	return nil
}

// Open holds one connection where the sender can; otherwise each batch is sent alone,
// as it would be without a session.
func (c *countingSender) Open() mail.Session {
	if ss, ok := c.s.(mail.SessionSender); ok {
		return &countingSession{Session: ss.Open(), m: c.m}
	}
	return &countingSession{Session: noSession{c.s}, m: c.m}
}

type countingSession struct {
	mail.Session
	m *Metrics
}

func (c *countingSession) SendAll(ctx context.Context, msgs []mail.Message) error {
	err := c.Session.SendAll(ctx, msgs)
	c.m.countMails(len(msgs), err)
	return err
}

type noSession struct{ mail.BulkSender }

func (noSession) Close() error { return nil }
