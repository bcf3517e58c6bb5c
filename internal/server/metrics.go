package server

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/trail-audit/trail"
)

// metrics are the server's Prometheus metrics, in a registry of its own
// (Options.Metrics, or a new one) so that two servers in one process (or
// one test binary) do not share counters. GET /metrics serves them unless
// Options.Metrics is set:
//
//	trail_http_requests_total{route,code}         requests by route pattern and status code
//	trail_http_request_duration_seconds{route}    request latency by route pattern
//	trail_ingest_events_total                     events stored by POST /v1/events
//	trail_ingest_bytes_total                      request body bytes of the appends that stored them
//	trail_ingest_rejected_requests_total{reason}  POST /v1/events answered with an error, by error code
//	trail_log_tree_size{log}                      each log's tree size (events stored)
//	trail_commit_events                           events per group commit (all logs, all clients)
//	trail_commit_duration_seconds                 group commit latency, sequencing to durable
//	trail_commit_failures_total                   group commits that failed (nothing acknowledged)
//	trail_index_lag_events{log}                   each log's committed events not indexed yet
//	trail_index_failures_total                    the background indexer's failed attempts
//	trail_witness_lag_events{log}                 events of the newest checkpoint no checkpoint meeting the witness policy covers
//	trail_witness_lag_seconds{log}                how long the oldest of them has waited
//	trail_witnessed_tree_size{log}                size of the newest checkpoint meeting the policy
//	trail_witness_submissions_total{log,witness}  checkpoints submitted to each witness
//	trail_witness_submission_errors_total{log,witness}  submissions that failed (unreachable, timed out, refused)
//	trail_witness_up{log,witness}                 1 if the latest submission to the witness succeeded
//
// plus the Go runtime and process collectors.
type metrics struct {
	reg          *prometheus.Registry
	requests     *prometheus.CounterVec
	duration     *prometheus.HistogramVec
	ingestEvents prometheus.Counter
	ingestBytes  prometheus.Counter
	rejected     *prometheus.CounterVec
	commitSize   prometheus.Histogram
	commitTime   prometheus.Histogram
	commitFailed prometheus.Counter
}

func newMetrics(db *trail.DB, reg *prometheus.Registry) *metrics {
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	m := &metrics{
		reg: reg,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "trail_http_requests_total",
			Help: "HTTP requests by route pattern and status code.",
		}, []string{"route", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "trail_http_request_duration_seconds",
			Help:    "HTTP request latency by route pattern.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"route"}),
		ingestEvents: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "trail_ingest_events_total",
			Help: "Events acknowledged (durably stored) by POST /v1/events.",
		}),
		ingestBytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "trail_ingest_bytes_total",
			Help: "Request body bytes of the acknowledged POST /v1/events requests.",
		}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "trail_ingest_rejected_requests_total",
			Help: "POST /v1/events requests answered with an error, by error code; none of their events was stored.",
		}, []string{"reason"}),
	}
	m.commitSize = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "trail_commit_events",
		Help:    "Events stored per group commit.",
		Buckets: prometheus.ExponentialBuckets(1, 4, 9), // 1 … 65536
	})
	m.commitTime = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "trail_commit_duration_seconds",
		Help:    "Group commit latency, from sequencing to durable.",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
	})
	m.commitFailed = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "trail_commit_failures_total",
		Help: "Group commits that failed; none of their appends was acknowledged.",
	})
	db.ObserveCommits(func(c trail.CommitStats) {
		if c.Err != nil {
			m.commitFailed.Inc()
			return
		}
		m.commitSize.Observe(float64(c.Events))
		m.commitTime.Observe(c.Duration.Seconds())
	})
	m.reg.MustRegister(m.requests, m.duration, m.ingestEvents, m.ingestBytes, m.rejected,
		m.commitSize, m.commitTime, m.commitFailed,
		treeSizeCollector{db}, indexCollector{db}, witnessCollector{db},
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// observe records a finished request. route is the mux pattern that
// served it, code the error code of an error response.
func (m *metrics) observe(route string, status int, code string, d time.Duration) {
	if route == "" {
		route = "none"
	}
	m.requests.WithLabelValues(route, strconv.Itoa(status)).Inc()
	m.duration.WithLabelValues(route).Observe(d.Seconds())
	if route == appendRoute && status >= 400 {
		if code == "" {
			code = "unknown"
		}
		m.rejected.WithLabelValues(code).Inc()
	}
}

const appendRoute = "POST /v1/events"

// ingested counts the events an append request stored and its body's
// bytes. A replayed idempotent answer stored nothing and is not counted.
func (m *metrics) ingested(events, bytes int) {
	m.ingestEvents.Add(float64(events))
	m.ingestBytes.Add(float64(bytes))
}

// treeSizeCollector reports each log's tree size when scraped.
type treeSizeCollector struct{ db *trail.DB }

var treeSizeDesc = prometheus.NewDesc("trail_log_tree_size", "Events in the log's Merkle tree (its latest size).", []string{"log"}, nil)

func (c treeSizeCollector) Describe(ch chan<- *prometheus.Desc) { ch <- treeSizeDesc }

func (c treeSizeCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	names, err := c.db.Logs(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(treeSizeDesc, err)
		return
	}
	for _, name := range names {
		l, err := c.db.Log(ctx, name)
		if err != nil {
			ch <- prometheus.NewInvalidMetric(treeSizeDesc, err)
			continue
		}
		ch <- prometheus.MustNewConstMetric(treeSizeDesc, prometheus.GaugeValue, float64(l.Size()), name)
	}
}

// indexCollector reports the background indexer's lag and failures when
// scraped.
type indexCollector struct{ db *trail.DB }

var (
	indexLagDesc      = prometheus.NewDesc("trail_index_lag_events", "Committed events of the log that the search indexes do not cover yet (searches scan them).", []string{"log"}, nil)
	indexFailuresDesc = prometheus.NewDesc("trail_index_failures_total", "Failed attempts of the background indexer; it retries by itself, and /readyz fails while its latest attempt failed.", nil, nil)
)

func (c indexCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- indexLagDesc
	ch <- indexFailuresDesc
}

func (c indexCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := c.db.IndexStatus(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(indexLagDesc, err)
		ch <- prometheus.NewInvalidMetric(indexFailuresDesc, err)
		return
	}
	for name, lag := range st.Lag {
		ch <- prometheus.MustNewConstMetric(indexLagDesc, prometheus.GaugeValue, float64(lag), name)
	}
	ch <- prometheus.MustNewConstMetric(indexFailuresDesc, prometheus.CounterValue, float64(st.Failures))
}
