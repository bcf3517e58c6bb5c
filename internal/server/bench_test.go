package server_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/trail-audit/trail"
	"github.com/trail-audit/trail/event"
	"github.com/trail-audit/trail/internal/baseline"
	"github.com/trail-audit/trail/internal/server"
	"github.com/trail-audit/trail/internal/workload"
)

// BenchmarkHTTPIngest measures POST /v1/events against a real listening
// server on a fresh data directory, each request acknowledged durably:
// 32 keep-alive clients sending one event per request, and one client
// sending batches of 1000 (NDJSON). Events are the workload's (see
// internal/workload; the run's log says which generator made them).
// Reports events/s and request latency percentiles. Like the embedded
// benchmarks, each waits for the indexer to catch up before it stops.
//
// The clients run in the benchmark's process, on the server's two cores.
// single-32clients uses net/http.Client, whose transport spends three
// goroutines and about a fifth of the process's CPU per request;
// single-32conns drives 32 keep-alive connections with a minimal
// HTTP/1.1 client (the request written out, the response read by
// net/http.ReadResponse), as a load generator on another machine would
// leave the server its cores.
//
// baseline-single-32conns is the app without Trail, measured first: the
// same 32 connections and requests against a handler that decodes the
// event and inserts it into a plain SQLite table (internal/baseline),
// committing each request's row on its own, as an app's auditLogs table
// does. The single-event cases report their rate as a multiple of it
// (x-baseline).
//
// embedded-batch1000 runs Log.AppendBatch(1000) on the same events in the
// same process, just before batch1000, which reports its rate as a
// multiple of it (x-embedded).
func BenchmarkHTTPIngest(b *testing.B) {
	lines, err := workload.Lines(200_000)
	if err != nil {
		b.Fatal(err)
	}
	workload.LogSource(b)
	var embedded float64 // events/s of the last embedded-batch1000 run
	var base float64     // events/s of the last baseline-single-32conns run
	for _, bc := range []struct {
		name     string
		clients  int
		batch    int
		embedded bool
		baseline bool
	}{
		{"baseline-single-32conns", 32, 1, false, true},
		{"single-32clients", 32, 1, false, false},
		{"single-32conns", 32, 1, false, false},
		{"embedded-batch1000", 1, 1000, true, false},
		{"batch1000", 1, 1000, false, false},
	} {
		b.Run(bc.name, func(b *testing.B) {
			ctx := context.Background()
			var handler http.Handler
			var key string
			var l *trail.Log
			var bt *baseline.Table
			if bc.baseline {
				var err error
				if bt, err = baseline.Create(b.TempDir()); err != nil {
					b.Fatal(err)
				}
				defer bt.Close()
				handler = baselineHandler(bt)
			} else {
				db, err := trail.Init(ctx, b.TempDir(), trail.Options{})
				if err != nil {
					b.Fatal(err)
				}
				defer db.Close()
				if key, _, err = db.CreateKey(ctx, testAdmin, "bench", "bench", trail.ScopeAppend); err != nil {
					b.Fatal(err)
				}
				if l, err = db.Log(ctx, "bench"); err != nil {
					b.Fatal(err)
				}
				handler = server.New(db, server.Options{RateLimit: -1, MaxBodyBytes: 8 << 20})
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
			srv := httptest.NewServer(handler)
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
					var send func() (int, error)
					if strings.HasSuffix(bc.name, "-32conns") {
						conn, err := net.Dial("tcp", srv.Listener.Addr().String())
						if err != nil {
							b.Error(err)
							return
						}
						defer conn.Close()
						send = minimalClient(conn, key, &body)
					} else {
						send = func() (int, error) {
							req, _ := http.NewRequest("POST", srv.URL+"/v1/events", bytes.NewReader(body.Bytes()))
							req.Header.Set("Authorization", "Bearer "+key)
							req.Header.Set("Content-Type", "application/x-ndjson")
							resp, err := hc.Do(req)
							if err != nil {
								return 0, err
							}
							io.Copy(io.Discard, resp.Body)
							resp.Body.Close()
							return resp.StatusCode, nil
						}
					}
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
						code, err := send()
						if err != nil {
							b.Error(err)
							return
						}
						if code != http.StatusCreated {
							b.Errorf("POST /v1/events = %d", code)
							return
						}
						lat[c] = append(lat[c], time.Since(start))
					}
				}()
			}
			wg.Wait()
			if l != nil {
				if err := l.WaitIndexed(ctx); err != nil {
					b.Fatal(err)
				}
			}
			if bt != nil {
				var rows int
				if err := bt.DB.QueryRow("SELECT count(*) FROM audit").Scan(&rows); err != nil || rows != b.N {
					b.Fatalf("baseline table holds %d rows (%v), want %d", rows, err, b.N)
				}
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
			switch {
			case bc.baseline:
				base = rate
			case bc.batch > 1 && embedded > 0:
				b.ReportMetric(rate/embedded, "x-embedded")
			case bc.batch == 1 && base > 0:
				b.ReportMetric(rate/base, "x-baseline")
			}
		})
	}
}

// baselineHandler stores each request's event as a row of t, committed
// on its own, and answers 201 with the row's id.
func baselineHandler(t *baseline.Table) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var e event.Event
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
		if err == nil {
			err = json.Unmarshal(body, &e)
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		id, err := t.Insert(r.Context(), nil, &e)
		if err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		fmt.Fprintf(w, "{\"id\":%d}\n", id)
	})
}

// minimalClient returns a function that posts body as NDJSON over conn, a
// keep-alive HTTP/1.1 connection, and returns the response's status once
// it has read all of it.
func minimalClient(conn net.Conn, key string, body *bytes.Buffer) func() (int, error) {
	br, bw := bufio.NewReader(conn), bufio.NewWriter(conn)
	return func() (int, error) {
		fmt.Fprintf(bw, "POST /v1/events HTTP/1.1\r\nHost: trail\r\nAuthorization: Bearer %s\r\n"+
			"Content-Type: application/x-ndjson\r\nContent-Length: %d\r\n\r\n", key, body.Len())
		bw.Write(body.Bytes())
		if err := bw.Flush(); err != nil {
			return 0, err
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			return 0, err
		}
		_, err = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode, err
	}
}
