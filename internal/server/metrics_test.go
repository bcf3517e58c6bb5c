package server_test

import (
	"bufio"
	"bytes"
	"context"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/trail-audit/trail/internal/server"
)

// scrape fetches /metrics and returns each sample's value by its series
// text, such as `trail_http_requests_total{code="201",route="POST /v1/events"}`.
func (e *env) scrape() map[string]float64 {
	e.t.Helper()
	r := e.do("GET", "/metrics", "", "", nil)
	if r.status != 200 {
		e.t.Fatalf("GET /metrics = %d %s", r.status, r.body)
	}
	samples := map[string]float64{}
	sc := bufio.NewScanner(bytes.NewReader(r.body))
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			e.t.Fatalf("GET /metrics: line %q: %v", line, err)
		}
		samples[line[:i]] = v
	}
	return samples
}

func TestMetrics(t *testing.T) {
	e := newEnv(t, server.Options{})
	// Two servers in one process count apart.
	other := newEnv(t, server.Options{})

	var sent int
	for _, body := range []string{
		ev("alice", "user.login"),
		`{"events":[` + ev("bob", "user.login") + `,` + ev("carol", "user.delete") + `]}`,
	} {
		e.ok(201, "POST", "/v1/events", "acme-append", "application/json", []byte(body), nil)
		sent += len(body)
	}
	nd := ev("dave", "user.login") + "\n" + ev("erin", "billing.pay") + "\n"
	e.ok(201, "POST", "/v1/events", "acme-append", "application/x-ndjson", []byte(nd), nil)
	sent += len(nd)
	e.ok(201, "POST", "/v1/events", "globex-admin", "application/json", []byte(ev("zed", "user.login")), nil)
	sent += len(ev("zed", "user.login"))

	// A retry with the same Idempotency-Key stores nothing and counts no
	// event.
	for range 2 {
		req, err := http.NewRequest("POST", e.url+"/v1/events", strings.NewReader(ev("ivan", "user.login")))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+e.keys["acme-append"])
		req.Header.Set("Idempotency-Key", "metrics-1")
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode != 201 {
			t.Fatalf("POST /v1/events with an Idempotency-Key = %v, %v; want 201", resp, err)
		}
		resp.Body.Close()
	}
	sent += len(ev("ivan", "user.login"))

	e.do("POST", "/v1/events", "acme-append", "application/json", []byte(`{"actor":{"id":"x"},"action":"Bad Action"}`))
	e.do("POST", "/v1/events", "acme-append", "application/json", []byte(`{"actor":{}}`))
	e.do("POST", "/v1/events", "acme-read", "application/json", []byte(ev("x", "user.login")))
	e.do("POST", "/v1/events", "", "application/json", []byte(ev("x", "user.login")))
	e.do("POST", "/v1/events", "acme-append", "text/plain", []byte("hello"))
	e.ok(200, "GET", "/v1/events", "acme-read", "", nil, nil)
	e.ok(200, "GET", "/v1/events", "acme-read", "", nil, nil)
	e.do("GET", "/no/such/page", "", "", nil)

	m := e.scrape()
	for series, want := range map[string]float64{
		`trail_http_requests_total{code="201",route="POST /v1/events"}`:         6,
		`trail_http_requests_total{code="400",route="POST /v1/events"}`:         2,
		`trail_http_requests_total{code="403",route="POST /v1/events"}`:         1,
		`trail_http_requests_total{code="401",route="POST /v1/events"}`:         1,
		`trail_http_requests_total{code="415",route="POST /v1/events"}`:         1,
		`trail_http_requests_total{code="200",route="GET /v1/events"}`:          2,
		`trail_http_requests_total{code="404",route="/"}`:                       1,
		`trail_http_request_duration_seconds_count{route="GET /v1/events"}`:     2,
		`trail_ingest_events_total`:                                             7,
		`trail_ingest_bytes_total`:                                              float64(sent),
		`trail_ingest_rejected_requests_total{reason="invalid_event"}`:          2,
		`trail_ingest_rejected_requests_total{reason="forbidden"}`:              1,
		`trail_ingest_rejected_requests_total{reason="unauthorized"}`:           1,
		`trail_ingest_rejected_requests_total{reason="unsupported_media_type"}`: 1,
		`trail_log_tree_size{log="globex"}`:                                     float64(e.start["globex"] + 1),
	} {
		if got, ok := m[series]; !ok || got != want {
			t.Errorf("/metrics %s = %v (present %v), want %v", series, got, ok, want)
		}
	}
	// The tree size is the log's, reads recorded in it included.
	acme, err := e.db.Log(context.Background(), "acme")
	if err != nil {
		t.Fatal(err)
	}
	if got := m[`trail_log_tree_size{log="acme"}`]; got != float64(acme.Size()) || got < 5 {
		t.Errorf("/metrics tree size of acme = %v, want %d", got, acme.Size())
	}
	if _, ok := m["go_goroutines"]; !ok {
		t.Errorf("/metrics lacks the Go runtime metrics")
	}

	// A second scrape sees the first.
	if got := e.scrape()[`trail_http_requests_total{code="200",route="GET /metrics"}`]; got != 1 {
		t.Errorf("second scrape: GET /metrics requests = %v, want 1", got)
	}
	om := other.scrape()
	if got, ok := om[`trail_ingest_events_total`]; !ok || got != 0 {
		t.Errorf("another server's trail_ingest_events_total = %v, want 0", got)
	}
}

// With Options.Metrics the caller's registry gets the metrics and the API
// does not serve /metrics.
func TestMetricsElsewhere(t *testing.T) {
	reg := prometheus.NewRegistry()
	e := newEnv(t, server.Options{Metrics: reg})
	e.ok(201, "POST", "/v1/events", "acme-append", "application/json", []byte(ev("alice", "user.login")), nil)
	e.fails(404, "not_found", "", "GET", "/metrics", "", "", nil)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, mf := range mfs {
		if mf.GetName() == "trail_ingest_events_total" {
			found = mf.GetMetric()[0].GetCounter().GetValue() == 1
		}
	}
	if !found {
		t.Errorf("the registry of Options.Metrics lacks trail_ingest_events_total = 1")
	}
}

// Group commits are measured: one per sequential request here, with the
// events each stored.
func TestCommitMetrics(t *testing.T) {
	e := newEnv(t, server.Options{})
	e.ok(201, "POST", "/v1/events", "acme-append", "application/json", []byte(ev("a", "user.login")), nil)
	e.ok(201, "POST", "/v1/events", "acme-append", "application/x-ndjson", []byte(ev("b", "user.login")+"\n"+ev("c", "user.login")+"\n"), nil)
	e.ok(201, "POST", "/v1/events", "globex-admin", "application/x-ndjson", []byte(ev("d", "user.login")+"\n"+ev("e", "user.login")+"\n"), nil)
	m := e.scrape()
	for series, want := range map[string]float64{
		`trail_commit_events_count`:           3,
		`trail_commit_events_sum`:             5,
		`trail_commit_events_bucket{le="1"}`:  1,
		`trail_commit_events_bucket{le="4"}`:  3,
		`trail_commit_duration_seconds_count`: 3,
		`trail_commit_failures_total`:         0,
	} {
		if got, ok := m[series]; !ok || got != want {
			t.Errorf("/metrics %s = %v (present %v), want %v", series, got, ok, want)
		}
	}
	if m[`trail_commit_duration_seconds_sum`] <= 0 {
		t.Errorf("/metrics commit durations sum to %v", m[`trail_commit_duration_seconds_sum`])
	}
}
