package server

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/trail-audit/trail"
	"github.com/trail-audit/trail/api"
	"github.com/trail-audit/trail/internal/web"
)

// Witnessing, as the API shows it (trail.Options.WitnessPolicy):
//
//	GET /v1/witness-policy                the server's witness policy, tlog-policy text (any scope)
//	GET /v1/checkpoint, /v1/tlog/checkpoint
//	                                      the newest checkpoint that meets the policy, with its
//	                                      cosignatures; ?witnessed=false the newest signed one
//	GET /tlog/{log}/checkpoint            the tlog-tiles layout of the log named in the path
//	GET /tlog/{log}/tile/...              (Options.PublicTiles: checkpoint and hash tiles without a key)
//
// Every answer that carries a checkpoint says in the Trail-Witnessed
// header whether it meets the policy: "met", "unmet", or "none" when no
// policy covers the log.

// The Trail-Witnessed header and its values (package api).
const (
	witnessedHeader = api.WitnessedHeader
	witnessedMet    = api.WitnessedMet
	witnessedUnmet  = api.WitnessedUnmet
	witnessedNone   = api.WitnessedNone
)

// witnessLagLimit is how far behind the log's newest checkpoint the
// newest witnessed one may be, in time, before /readyz says witnessing is
// degraded.
const witnessLagLimit = 10 * time.Second

// witnessRoutes adds the witness policy and the tlog-tiles layout under
// the log's name to mux.
func (s *server) witnessRoutes(mux *http.ServeMux) {
	mux.Handle("GET /v1/witness-policy", s.auth(anyScope, s.witnessPolicy))
	mux.Handle("GET /tlog/{log}/checkpoint", s.namedLog(anyScope, s.checkpoint))
	mux.Handle("GET /tlog/{log}/tile/entries/{path...}", s.namedLog(trail.ScopeRead, s.entryBundle))
	mux.Handle("GET /tlog/{log}/tile/{path...}", s.namedLog(anyScope, s.hashTile))
}

// namedLog serves h on the log the path names, for a key of that log; with
// Options.PublicTiles, routes open to any key (the checkpoint and hash
// tiles) are served without a key too. A key of another log gets 404, as
// if the log did not exist.
func (s *server) namedLog(scope trail.Scope, h apiHandler) http.Handler {
	keyed := s.auth(scope, func(w http.ResponseWriter, r *http.Request, key trail.KeyInfo, l *trail.Log) error {
		if l.Name() != r.PathValue("log") {
			return errNotFound
		}
		return h(w, r, key, l)
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !s.opts.PublicTiles || scope != anyScope || r.Header.Get("Authorization") != "" {
			keyed.ServeHTTP(w, r)
			return
		}
		w.Header().Set("Cache-Control", cacheNoStore)
		// Without a key, the rate limit is the client address's.
		if s.limiter != nil {
			host, _, err := net.SplitHostPort(r.RemoteAddr)
			if err != nil {
				host = r.RemoteAddr
			}
			if ok, wait := s.limiter.allow("addr:"+host, time.Now()); !ok {
				w.Header().Set("Retry-After", retryAfter(wait))
				s.writeError(w, r, errRateLimitedAddr)
				return
			}
		}
		name := r.PathValue("log")
		if !trail.ValidLogName(name) {
			s.writeError(w, r, errNotFound)
			return
		}
		l, err := s.db.Log(r.Context(), name)
		if err == nil {
			err = h(publicCache{w}, r, trail.KeyInfo{}, l)
		}
		if err != nil {
			s.writeError(w, r, err)
		}
	})
}

// errRateLimitedAddr answers a client address that sent more requests
// without a key than Options.RateLimit allows.
var errRateLimitedAddr = &apiError{status: http.StatusTooManyRequests, code: "rate_limited", msg: "too many requests without a key from this address; retry after the Retry-After seconds"}

// publicCache lets shared caches keep the full tiles served without a
// key: their Cache-Control becomes public.
type publicCache struct{ http.ResponseWriter }

func (w publicCache) WriteHeader(code int) {
	if w.Header().Get("Cache-Control") == cacheImmutable {
		w.Header().Set("Cache-Control", cachePublicImmutable)
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w publicCache) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// cachePublicImmutable is the Cache-Control of a full tile served
// without a key.
const cachePublicImmutable = "public, max-age=31536000, immutable"

// witnessPolicy serves GET /v1/witness-policy.
func (s *server) witnessPolicy(w http.ResponseWriter, r *http.Request, key trail.KeyInfo, l *trail.Log) error {
	if err := onlyParams(r); err != nil {
		return err
	}
	p := s.db.WitnessPolicy()
	if p == nil {
		return &apiError{status: http.StatusNotFound, code: "no_policy", msg: "this server has no witness policy: its checkpoints are signed by the log only"}
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Write([]byte(p.String()))
	return nil
}

// servedCheckpoint returns the checkpoint GET /v1/checkpoint answers: the
// newest that meets the witness policy, unless ?witnessed=false asks for
// the newest signed one; while none meets it, the newest signed one with
// the cosignatures it has so far (Log.CheckpointCosigned); and the value
// of its Trail-Witnessed header.
func (s *server) servedCheckpoint(r *http.Request, l *trail.Log) ([]byte, string, error) {
	want := true
	switch v := r.URL.Query().Get("witnessed"); v {
	case "", "true":
	case "false":
		want = false
	default:
		return nil, "", badParam("witnessed", "must be true or false")
	}
	if want && l.Witnessed() {
		signed, err := l.WitnessedCheckpoint(r.Context())
		if err == nil {
			return signed, witnessedMet, nil
		}
		if !errors.Is(err, trail.ErrNotFound) {
			return nil, "", err
		}
	}
	latest := l.Checkpoint
	if want {
		// None meets the policy yet, if one covers the log: the
		// latest, with the cosignatures it has so far.
		latest = l.CheckpointCosigned
	}
	signed, err := latest()
	if err != nil {
		return nil, "", err
	}
	return signed, s.witnessedValue(l, signed), nil
}

// witnessedValue is the Trail-Witnessed header of a checkpoint of l.
func (s *server) witnessedValue(l *trail.Log, signed []byte) string {
	if !l.Witnessed() {
		return witnessedNone
	}
	if s.db.WitnessPolicy().Check(signed).Met {
		return witnessedMet
	}
	return witnessedUnmet
}

// witnessDegraded says what is wrong with the witnessing of the DB's
// logs: witnesses whose latest submission failed, and logs whose newest
// checkpoint has waited more than witnessLagLimit for one that meets the
// policy. Empty when all is well, or when the DB does not witness.
func (s *server) witnessDegraded() []string {
	var why []string
	for _, st := range s.db.WitnessStatus() {
		if !st.Since.IsZero() && time.Since(st.Since) > witnessLagLimit {
			why = append(why, fmt.Sprintf("log %s: witnessing lags %s, %s", st.Log, web.Count(st.Size-st.Witnessed, "event"), time.Since(st.Since).Round(time.Second)))
		}
		for _, w := range st.Witnesses {
			if w.Err != nil {
				why = append(why, fmt.Sprintf("log %s: witness %s: %v", st.Log, w.Name, w.Err))
			}
		}
	}
	return why
}

// writeDegraded answers /readyz while the DB works but witnessing does
// not: 200, since appends are stored, saying what is degraded.
func writeDegraded(w http.ResponseWriter, why []string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Write([]byte("degraded: " + strings.Join(why, "; ") + "\n"))
}

// witnessCollector reports the witnessing of each log when scraped.
type witnessCollector struct{ db *trail.DB }

var (
	witnessLagEventsDesc  = prometheus.NewDesc("trail_witness_lag_events", "Events of the log's newest checkpoint that the newest checkpoint meeting the witness policy does not cover.", []string{"log"}, nil)
	witnessLagSecondsDesc = prometheus.NewDesc("trail_witness_lag_seconds", "How long ago the log signed the oldest checkpoint that the newest checkpoint meeting the witness policy does not cover; 0 when it covers the newest.", []string{"log"}, nil)
	witnessedSizeDesc     = prometheus.NewDesc("trail_witnessed_tree_size", "The tree size of the log's newest checkpoint that meets the witness policy.", []string{"log"}, nil)
	witnessSubmitDesc     = prometheus.NewDesc("trail_witness_submissions_total", "Checkpoints of the log submitted to the witness.", []string{"log", "witness"}, nil)
	witnessFailDesc       = prometheus.NewDesc("trail_witness_submission_errors_total", "Submissions to the witness that failed: unreachable, timed out, or refused.", []string{"log", "witness"}, nil)
	witnessUpDesc         = prometheus.NewDesc("trail_witness_up", "1 if the latest submission of the log's checkpoint to the witness succeeded, else 0.", []string{"log", "witness"}, nil)
)

func (c witnessCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{witnessLagEventsDesc, witnessLagSecondsDesc, witnessedSizeDesc, witnessSubmitDesc, witnessFailDesc, witnessUpDesc} {
		ch <- d
	}
}

func (c witnessCollector) Collect(ch chan<- prometheus.Metric) {
	for _, st := range c.db.WitnessStatus() {
		lag := 0.0
		if !st.Since.IsZero() {
			lag = time.Since(st.Since).Seconds()
		}
		ch <- prometheus.MustNewConstMetric(witnessLagEventsDesc, prometheus.GaugeValue, float64(st.Size-st.Witnessed), st.Log)
		ch <- prometheus.MustNewConstMetric(witnessLagSecondsDesc, prometheus.GaugeValue, lag, st.Log)
		ch <- prometheus.MustNewConstMetric(witnessedSizeDesc, prometheus.GaugeValue, float64(st.Witnessed), st.Log)
		for _, w := range st.Witnesses {
			up := 1.0
			if w.Err != nil {
				up = 0
			}
			ch <- prometheus.MustNewConstMetric(witnessSubmitDesc, prometheus.CounterValue, float64(w.Submissions), st.Log, w.Name)
			ch <- prometheus.MustNewConstMetric(witnessFailDesc, prometheus.CounterValue, float64(w.Failures), st.Log, w.Name)
			ch <- prometheus.MustNewConstMetric(witnessUpDesc, prometheus.GaugeValue, up, st.Log, w.Name)
		}
	}
}
