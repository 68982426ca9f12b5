package metrics

import (
	"context"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// scrape reads, at each scrape, what the database holds for every node: so the figures
// agree whichever node is asked, and survive restarts. Each source has a short timeout;
// one that fails is logged and reported by steward_metrics_source_up, and the others
// are still given.
type scrape struct {
	src Sources
	log *slog.Logger
}

var (
	descSourceUp = prometheus.NewDesc("steward_metrics_source_up",
		"Whether the last scrape could read a source of metrics from the database (1) or not (0).", []string{"source"}, nil)
	descJobs = prometheus.NewDesc("steward_jobs",
		"Jobs in the queue of every node, by kind and state (available, scheduled, retryable and running are queued or working; discarded failed for good; completed ones are not counted).",
		[]string{"kind", "state"}, nil)
	descJobRuns = prometheus.NewDesc("steward_job_runs_total",
		"Job runs on this node, by kind and result: ok, again (yielded to run again), error (failed; retried later or discarded after the last attempt).",
		[]string{"kind", "result"}, nil)
	descOutbox = prometheus.NewDesc("steward_mail_outbox_queued",
		"Transactional mails queued in the outbox, not yet handed to the mail server.", nil, nil)
	descErasuresStarted = prometheus.NewDesc("steward_erasures_started_total",
		"Erasure requests ever made.", nil, nil)
	descErasuresDone = prometheus.NewDesc("steward_erasures_done_total",
		"Erasure requests done.", nil, nil)
	descErasuresUnfinished = prometheus.NewDesc("steward_erasures_unfinished",
		"Erasure requests not done yet (pending, or scrubbing the engine's files).", nil, nil)
	descErasuresFailing = prometheus.NewDesc("steward_erasures_failing",
		"Unfinished erasure requests whose last step failed (they are retried).", nil, nil)
	descErasuresOverdue = prometheus.NewDesc("steward_erasures_overdue",
		"Unfinished erasure requests made more than an hour ago: stuck.", nil, nil)
)

func (s *scrape) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descSourceUp, descJobs, descJobRuns, descOutbox, descErasuresStarted,
		descErasuresDone, descErasuresUnfinished, descErasuresFailing, descErasuresOverdue} {
		ch <- d
	}
}

const scrapeTimeout = 2 * time.Second

func (s *scrape) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
	defer cancel()
	up := func(source string, err error) {
		v := 1.0
		if err != nil {
			v = 0
			s.log.Warn("metrics: reading "+source, "err", err)
		}
		ch <- prometheus.MustNewConstMetric(descSourceUp, prometheus.GaugeValue, v, source)
	}
	if s.src.JobRuns != nil {
		for _, r := range s.src.JobRuns() {
			ch <- prometheus.MustNewConstMetric(descJobRuns, prometheus.CounterValue, float64(r.N), r.Kind, r.Result)
		}
	}
	if s.src.JobCounts != nil {
		counts, err := s.src.JobCounts(ctx)
		for _, c := range counts {
			ch <- prometheus.MustNewConstMetric(descJobs, prometheus.GaugeValue, float64(c.N), c.Kind, c.State)
		}
		up("jobs", err)
	}
	if s.src.Outbox != nil {
		n, err := s.src.Outbox(ctx)
		if err == nil {
			ch <- prometheus.MustNewConstMetric(descOutbox, prometheus.GaugeValue, float64(n))
		}
		up("outbox", err)
	}
	if s.src.Erasures != nil {
		st, err := s.src.Erasures(ctx, s.src.Now().Add(-OverdueAfter))
		if err == nil {
			ch <- prometheus.MustNewConstMetric(descErasuresStarted, prometheus.CounterValue, float64(st.Started))
			ch <- prometheus.MustNewConstMetric(descErasuresDone, prometheus.CounterValue, float64(st.Done))
			ch <- prometheus.MustNewConstMetric(descErasuresUnfinished, prometheus.GaugeValue, float64(st.Unfinished))
			ch <- prometheus.MustNewConstMetric(descErasuresFailing, prometheus.GaugeValue, float64(st.Failing))
			ch <- prometheus.MustNewConstMetric(descErasuresOverdue, prometheus.GaugeValue, float64(st.Overdue))
		}
		up("erasures", err)
	}
}
