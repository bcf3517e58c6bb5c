package server_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/trail-audit/trail"
	"github.com/trail-audit/trail/internal/server"
	"github.com/trail-audit/trail/internal/workload"
)

// BenchmarkHTTPIngest measures POST /v1/events against a real listening
// server on a fresh data directory, each request acknowledged durably:
// 32 keep-alive clients sending one event per request, and one client
// sending batches of 1000 (NDJSON). Events are the shared workload's.
// Reports events/s and request latency percentiles. Like the embedded
// benchmarks, each waits for the indexer to catch up before it stops.
//
// embedded-batch1000 runs Log.AppendBatch(1000) on the same events in the
// same process, just before batch1000, which reports its rate as a
// multiple of it (x-embedded).
func BenchmarkHTTPIngest(b *testing.B) {
	lines, err := workload.Lines(200_000)
	if errors.Is(err, workload.ErrNoGenerator) {
		b.Skip(err)
	}
	if err != nil {
		b.Fatal(err)
	}
	var embedded float64 // events/s of the last embedded-batch1000 run
	for _, bc := range []struct {
		name     string
		clients  int
		batch    int
		embedded bool
	}{
		{"single-32clients", 32, 1, false},
		{"embedded-batch1000", 1, 1000, true},
		{"batch1000", 1, 1000, false},
	} {
		b.Run(bc.name, func(b *testing.B) {
			ctx := context.Background()
			db, err := trail.Init(ctx, b.TempDir(), trail.Options{})
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			key, _, err := db.CreateKey(ctx, "bench", "bench", trail.ScopeAppend)
			if err != nil {
				b.Fatal(err)
			}
			l, err := db.Log(ctx, "bench")
			if err != nil {
				b.Fatal(err)
			}
			if bc.embedded {
				evs, _, err := workload.Events(len(lines))
				if err != nil {
					b.Fatal(err)
				}
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					off := (i * bc.batch) % len(evs)
					if _, err := l.AppendBatch(ctx, evs[off:off+bc.batch]); err != nil {
						b.Fatal(err)
					}
				}
				if err := l.WaitIndexed(ctx); err != nil {
					b.Fatal(err)
				}
				embedded = float64(b.N*bc.batch) / b.Elapsed().Seconds()
				b.ReportMetric(embedded, "events/s")
				return
			}
			srv := httptest.NewServer(server.New(db, server.Options{RateLimit: -1, MaxBodyBytes: 8 << 20}))
			defer srv.Close()
			tr := &http.Transport{MaxIdleConnsPerHost: bc.clients, MaxConnsPerHost: bc.clients}
			hc := &http.Client{Transport: tr}
			defer tr.CloseIdleConnections()

			var next atomic.Int64
			lat := make([][]time.Duration, bc.clients)
			b.ResetTimer()
			var wg sync.WaitGroup
			for c := range bc.clients {
				wg.Add(1)
				go func() {
					defer wg.Done()
					var body bytes.Buffer
					for {
						i := int(next.Add(1)) - 1
						if i >= b.N {
							return
						}
						body.Reset()
						for j := range bc.batch {
							body.Write(lines[(i*bc.batch+j)%len(lines)])
							body.WriteByte('\n')
						}
						start := time.Now()
						req, _ := http.NewRequest("POST", srv.URL+"/v1/events", bytes.NewReader(body.Bytes()))
						req.Header.Set("Authorization", "Bearer "+key)
						req.Header.Set("Content-Type", "application/x-ndjson")
						resp, err := hc.Do(req)
						if err != nil {
							b.Error(err)
							return
						}
						io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
						if resp.StatusCode != http.StatusCreated {
							b.Errorf("POST /v1/events = %d", resp.StatusCode)
							return
						}
						lat[c] = append(lat[c], time.Since(start))
					}
				}()
			}
			wg.Wait()
			if err := l.WaitIndexed(ctx); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			all := slices.Concat(lat...)
			slices.Sort(all)
			if len(all) == 0 {
				return
			}
			pct := func(p float64) float64 {
				return float64(all[min(len(all)-1, int(p*float64(len(all))))].Microseconds()) / 1000
			}
			rate := float64(b.N*bc.batch) / b.Elapsed().Seconds()
			b.ReportMetric(rate, "events/s")
			b.ReportMetric(pct(0.50), "p50-ms")
			b.ReportMetric(pct(0.99), "p99-ms")
			if bc.batch > 1 && embedded > 0 {
				b.ReportMetric(rate/embedded, "x-embedded")
			}
		})
	}
}
