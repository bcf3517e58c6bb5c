package trail_test

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/trail-audit/trail"
	"github.com/trail-audit/trail/api"
	"github.com/trail-audit/trail/event"
	"github.com/trail-audit/trail/internal/workload"
)

// Benchmarks run on the workload's events (internal/workload): those of
// the shared generator (../shared/workload, or $TRAIL_WORKLOAD), the same
// events every system under comparison is fed, or, in a clone without it,
// the same events from the repository's copy of the generator. See
// BENCHMARKS.md for how to run them and the figures.

// workloadEvents returns the first n events of the workload and the size
// of their NDJSON, and logs which generator made them.
func workloadEvents(b testing.TB, n int) ([]event.Event, int64) {
	evs, raw, err := workload.Events(n)
	if err != nil {
		b.Fatal(err)
	}
	workload.LogSource(b)
	return evs, raw
}

func newBenchLog(b testing.TB) (*trail.DB, *trail.Log) {
	ctx := context.Background()
	db, err := trail.Init(ctx, b.TempDir(), trail.Options{})
	if err != nil {
		b.Fatal(err)
	}
	l, err := db.CreateLog(ctx, "bench", "bench.example/trail")
	if err != nil {
		b.Fatal(err)
	}
	return db, l
}

// BenchmarkAppendBatch1000 measures bulk ingest: AppendBatch of 1000
// events per call, durable.
func BenchmarkAppendBatch1000(b *testing.B) {
	evs, _ := workloadEvents(b, 200_000)
	db, l := newBenchLog(b)
	defer db.Close()
	ctx := context.Background()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		off := (i * 1000) % len(evs)
		if _, err := l.AppendBatch(ctx, evs[off:off+1000]); err != nil {
			b.Fatal(err)
		}
	}
	if err := l.WaitIndexed(ctx); err != nil { // indexing is part of the cost
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N*1000)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkAppendSingle measures one caller appending one durable event at
// a time.
func BenchmarkAppendSingle(b *testing.B) {
	evs, _ := workloadEvents(b, 200_000)
	db, l := newBenchLog(b)
	defer db.Close()
	ctx := context.Background()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := l.Append(ctx, evs[i%len(evs)]); err != nil {
			b.Fatal(err)
		}
	}
	if err := l.WaitIndexed(ctx); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkAppendParallel32 measures 32 goroutines each appending one
// durable event at a time (group commit).
func BenchmarkAppendParallel32(b *testing.B) {
	evs, _ := workloadEvents(b, 200_000)
	db, l := newBenchLog(b)
	defer db.Close()
	ctx := context.Background()
	var next atomic.Int64
	b.SetParallelism(32 / max(1, runtimeProcs()))
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := next.Add(1)
			if _, err := l.Append(ctx, evs[int(i)%len(evs)]); err != nil {
				b.Error(err)
				return
			}
		}
	})
	if err := l.WaitIndexed(ctx); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

func runtimeProcs() int { return runtime.GOMAXPROCS(0) }

// big is a log of the first 1,000,000 workload events, built once per run
// with AppendBatch(1000) and fully indexed.
var big struct {
	once   sync.Once
	dir    string
	db     *trail.DB
	log    *trail.Log
	events []event.Event
	raw    int64
	err    error
}

const bigSize = 1_000_000

func bigLog(b *testing.B) (*trail.Log, []event.Event) {
	if testing.Short() {
		b.Skip("builds a 1M-event log")
	}
	big.once.Do(func() {
		evs, raw := workloadEvents(b, bigSize)
		big.events, big.raw = evs, raw
		big.dir, big.err = os.MkdirTemp("", "trail-bench-1m-")
		if big.err != nil {
			return
		}
		ctx := context.Background()
		db, err := trail.Init(ctx, big.dir, trail.Options{})
		if err != nil {
			big.err = err
			return
		}
		l, err := db.CreateLog(ctx, "bench", "bench.example/trail")
		if err != nil {
			big.err = err
			return
		}
		for off := 0; off < len(evs); off += 1000 {
			if _, err := l.AppendBatch(ctx, evs[off:off+1000]); err != nil {
				big.err = err
				return
			}
		}
		if big.err = l.WaitIndexed(ctx); big.err != nil {
			return
		}
		// Reopen so the WAL is folded into the database file.
		if big.err = db.Close(); big.err != nil {
			return
		}
		if big.db, big.err = trail.Open(ctx, big.dir, trail.Options{}); big.err != nil {
			return
		}
		big.log, big.err = big.db.Log(ctx, "bench")
	})
	if big.err != nil {
		b.Fatal(big.err)
	}
	return big.log, big.events
}

func TestMain(m *testing.M) {
	code := m.Run()
	if big.db != nil {
		big.db.Close()
	}
	if big.dir != "" {
		os.RemoveAll(big.dir)
	}
	dropPGBig() // postgres_bench_test.go
	os.Exit(code)
}

// BenchmarkDisk1M reports the database size per event and its ratio to
// the events' NDJSON, hashes, checkpoints and indexes included.
func BenchmarkDisk1M(b *testing.B) {
	l, _ := bigLog(b)
	var size int64
	for _, suffix := range []string{"", "-wal"} {
		if fi, err := os.Stat(filepath.Join(big.dir, trail.DatabaseFile+suffix)); err == nil {
			size += fi.Size()
		}
	}
	for i := 0; i < b.N; i++ {
		_ = l.Size()
	}
	b.ReportMetric(float64(size)/bigSize, "bytes/event")
	b.ReportMetric(float64(big.raw)/bigSize, "ndjson-bytes/event")
	b.ReportMetric(float64(size)/float64(big.raw), "x-ndjson")
}

// BenchmarkSearch1M measures the first page (100 events, newest first) of
// typical queries on a 1M-event log.
func BenchmarkSearch1M(b *testing.B) {
	l, evs := bigLog(b)
	ctx := context.Background()
	from, err := l.GetSeq(ctx, bigSize*4/10)
	if err != nil {
		b.Fatal(err)
	}
	to, err := l.GetSeq(ctx, bigSize*6/10)
	if err != nil {
		b.Fatal(err)
	}
	cases := []struct {
		name string
		q    func(i int) api.Query
	}{
		{"actor", func(i int) api.Query { return api.Query{Actor: evs[(i*7919)%len(evs)].Actor.ID} }},
		{"action+time", func(i int) api.Query {
			return api.Query{Action: "user.login.failed", Since: from.ReceivedAt, Until: to.ReceivedAt}
		}},
		{"action-prefix", func(i int) api.Query { return api.Query{Action: "user.*"} }},
		{"target", func(i int) api.Query {
			t := evs[(i*7919)%len(evs)].Targets[0]
			return api.Query{TargetType: t.Type, TargetID: t.ID}
		}},
		{"ip", func(i int) api.Query { return api.Query{IP: evs[(i*7919)%len(evs)].Source.IP} }},
		{"failures", func(i int) api.Query { return api.Query{Outcome: event.Failure} }},
		{"text", func(i int) api.Query { return api.Query{Text: "account_locked"} }},
		// A busy actor with a rare action and outcome, and free text
		// with a busy actor: filters whose indexes meet.
		{"actor+action+outcome", func(i int) api.Query {
			return api.Query{Actor: evs[(i*7919)%len(evs)].Actor.ID, Action: "password.reset", Outcome: event.Failure}
		}},
		{"text+actor", func(i int) api.Query {
			return api.Query{Text: "terraform", Actor: evs[(i*7919)%len(evs)].Actor.ID}
		}},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				q := c.q(i)
				q.Limit = 100
				if _, err := l.Search(ctx, q); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkExport1M reads events as an export does (Log.Events, each
// checked against its leaf): the whole 1M-event log, and one actor's.
func BenchmarkExport1M(b *testing.B) {
	l, evs := bigLog(b)
	ctx := context.Background()
	for _, c := range []struct {
		name string
		q    api.Query
	}{
		{"all", api.Query{}},
		{"actor", api.Query{Actor: evs[7919].Actor.ID}},
	} {
		b.Run(c.name, func(b *testing.B) {
			n := 0
			for i := 0; i < b.N; i++ {
				for _, err := range l.Events(ctx, c.q) {
					if err != nil {
						b.Fatal(err)
					}
					n++
				}
			}
			b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "events/s")
		})
	}
}

// BenchmarkVerify1M verifies the whole 1M-event log.
func BenchmarkVerify1M(b *testing.B) {
	l, _ := bigLog(b)
	ctx := context.Background()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		rep, err := l.Verify(ctx, trail.VerifyOptions{})
		if err != nil {
			b.Fatal(err)
		}
		if rep.Size != bigSize {
			b.Fatalf("verified %d events, want %d", rep.Size, bigSize)
		}
	}
	b.ReportMetric(float64(b.N*bigSize)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkInclusionProof1M builds an inclusion proof for a random event
// against the full 1M-event tree.
func BenchmarkInclusionProof1M(b *testing.B) {
	l, _ := bigLog(b)
	ctx := context.Background()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		seq := int64(i*104729) % bigSize
		if _, err := l.ProveInclusion(ctx, seq, bigSize); err != nil {
			b.Fatal(err)
		}
	}
}
