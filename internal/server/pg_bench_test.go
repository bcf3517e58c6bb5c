package server_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/trail-audit/trail"
	"github.com/trail-audit/trail/internal/server"
	"github.com/trail-audit/trail/internal/store/postgres/pgtest"
	"github.com/trail-audit/trail/internal/workload"
)

// BenchmarkPostgresHTTPThreeNodesOneLog is the three-node benchmark of
// the root package (BenchmarkPostgresThreeNodesOneLog) through HTTP, as
// nodes take appends in production: three servers (each its own DB,
// pool, writer and listening HTTP server) on one PostgreSQL database, 32
// keep-alive connections posting one event per request to one log,
// spread evenly over the servers. Each round first runs the same load on
// one server, untimed, each on a fresh database, and reports both rates
// and their ratio (x-one-node). The clients run in the benchmark's
// process, on the servers' two cores, with the minimal client of
// BenchmarkHTTPIngest.
func BenchmarkPostgresHTTPThreeNodesOneLog(b *testing.B) {
	lines, err := workload.Lines(200_000)
	if err != nil {
		b.Fatal(err)
	}
	workload.LogSource(b)
	b.StopTimer()
	one, err := postHTTPNodes(b, lines, 1, b.N)
	if err != nil {
		b.Fatal(err)
	}
	b.StartTimer()
	three, err := postHTTPNodes(b, lines, 3, b.N)
	b.StopTimer()
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/three.Seconds(), "events/s")
	b.ReportMetric(float64(b.N)/one.Seconds(), "one-node-events/s")
	b.ReportMetric(one.Seconds()/three.Seconds(), "x-one-node")
}

// postHTTPNodes makes a store on a fresh database, opens it n times as
// n servers, and posts n events through 32 connections spread over
// them, one event per request. It returns the time from the first
// request to the last answer and the indexes caught up.
func postHTTPNodes(b *testing.B, lines [][]byte, n, events int) (time.Duration, error) {
	ctx := context.Background()
	url := pgtest.DB(b)
	master := sha256.Sum256([]byte("trail benchmark master key"))
	opts := trail.Options{MasterKey: master[:]}
	first, err := trail.InitStore(ctx, url, opts)
	if err != nil {
		return 0, err
	}
	defer first.Close()
	if _, err := first.CreateLog(ctx, "bench", "bench.example/trail"); err != nil {
		return 0, err
	}
	key, _, err := first.CreateKey(ctx, testAdmin, "bench", "bench", trail.ScopeAppend)
	if err != nil {
		return 0, err
	}
	dbs := []*trail.DB{first}
	for range n - 1 {
		db, err := trail.OpenStore(ctx, url, opts)
		if err != nil {
			return 0, err
		}
		defer db.Close()
		dbs = append(dbs, db)
	}
	var addrs []string
	for _, db := range dbs {
		srv := httptest.NewServer(server.New(db, server.Options{RateLimit: -1}))
		defer srv.Close()
		addrs = append(addrs, srv.Listener.Addr().String())
	}

	var next atomic.Int64
	var mu sync.Mutex
	var failed error
	fail := func(err error) {
		mu.Lock()
		if failed == nil {
			failed = err
		}
		mu.Unlock()
		next.Store(int64(events)) // stop the others
	}
	start := time.Now()
	var wg sync.WaitGroup
	for c := range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			conn, err := net.Dial("tcp", addrs[c%len(addrs)])
			if err != nil {
				fail(err)
				return
			}
			defer conn.Close()
			var body bytes.Buffer
			send := minimalClient(conn, key, &body)
			for {
				i := int(next.Add(1)) - 1
				if i >= events {
					return
				}
				body.Reset()
				body.Write(lines[i%len(lines)])
				body.WriteByte('\n')
				code, err := send()
				if err == nil && code != http.StatusCreated {
					err = &statusError{code}
				}
				if err != nil {
					fail(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if failed != nil {
		return 0, failed
	}
	l, err := first.Log(ctx, "bench")
	if err != nil {
		return 0, err
	}
	if err := l.WaitIndexed(ctx); err != nil {
		return 0, err
	}
	return time.Since(start), nil
}

type statusError struct{ code int }

func (e *statusError) Error() string { return "POST /v1/events = " + http.StatusText(e.code) }
