package trail_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/trail-audit/trail"
	"github.com/trail-audit/trail/event"
	"github.com/trail-audit/trail/internal/witnessd/witnesstest"
	"github.com/trail-audit/trail/policy"
)

// witnessedLog returns a log on SQLite witnessed by n real witnesses
// (witnesstest: the witness of trail witness, in process, on a loopback
// port, with its SQLite state on disk) under a quorum of all of them; no
// policy when n is 0.
func witnessedLog(b *testing.B, n int) *trail.Log {
	b.Helper()
	ctx := context.Background()
	dir := filepath.Join(b.TempDir(), "data")
	vkey := initLog(b, dir, "bench", "bench.example/trail")
	var opts trail.Options
	var err error
	if n > 0 {
		var lines, names []string
		for i := range n {
			w := witnesstest.New(b, "", vkey)
			name := fmt.Sprintf("w%d", i+1)
			lines = append(lines, fmt.Sprintf("witness %s %s %s", name, w.VerifierKey, w.URL))
			names = append(names, name)
		}
		text := fmt.Sprintf("log %s\n%s\ngroup all-of all %s\nquorum all-of\n", vkey, strings.Join(lines, "\n"), strings.Join(names, " "))
		if opts.WitnessPolicy, err = policy.Parse([]byte(text)); err != nil {
			b.Fatal(err)
		}
	}
	db, err := trail.Open(ctx, dir, opts)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	l, err := db.Log(ctx, "bench")
	if err != nil {
		b.Fatal(err)
	}
	return l
}

// BenchmarkWitnessedAppend measures ingest with 0, 1 and 2 witnesses: 32
// goroutines each appending one event at a time (group commit), reporting
// events/s and the 99th percentile of an append's latency. Witnessing
// runs beside the commits, one submission in flight per witness covering
// every commit since the last, so it should cost ingest little.
func BenchmarkWitnessedAppend(b *testing.B) {
	evs, _ := workloadEvents(b, 100_000)
	for _, n := range []int{0, 1, 2} {
		b.Run(fmt.Sprintf("witnesses=%d", n), func(b *testing.B) {
			l := witnessedLog(b, n)
			ctx := context.Background()
			var (
				next atomic.Int64
				wg   sync.WaitGroup
				mu   sync.Mutex
				lat  = make([]time.Duration, 0, b.N)
				errs = make(chan error, 32)
			)
			b.ResetTimer()
			for range 32 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					var mine []time.Duration
					for {
						i := int(next.Add(1)) - 1
						if i >= b.N {
							break
						}
						start := time.Now()
						if _, err := l.Append(ctx, evs[i%len(evs)]); err != nil {
							errs <- err
							return
						}
						mine = append(mine, time.Since(start))
					}
					mu.Lock()
					lat = append(lat, mine...)
					mu.Unlock()
				}()
			}
			wg.Wait()
			b.StopTimer()
			close(errs)
			for err := range errs {
				b.Fatal(err)
			}
			slices.Sort(lat)
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
		})
	}
}

// BenchmarkTimeToWitnessed measures the time from an append's return to
// the log's first checkpoint that covers it and meets the policy of 1 and
// 2 witnesses (as Log.WitnessedAt reads it). idle: the appends are 300 ms
// apart, more than the follower's least interval between rounds (200
// ms), so each starts a round at once. loaded: 8 other goroutines append
// all the while, so rounds follow each other every 200 ms and an event,
// appended at a random moment, waits for the next.
func BenchmarkTimeToWitnessed(b *testing.B) {
	for _, n := range []int{1, 2} {
		for _, load := range []string{"idle", "loaded"} {
			b.Run(fmt.Sprintf("witnesses=%d/%s", n, load), func(b *testing.B) {
				l := witnessedLog(b, n)
				ctx, cancel := context.WithCancel(context.Background())
				var wg sync.WaitGroup
				defer func() {
					cancel()
					wg.Wait()
				}()
				if load == "loaded" {
					for g := range 8 {
						wg.Go(func() {
							for i := 0; ctx.Err() == nil; i++ {
								l.Append(ctx, event.Event{Actor: event.Actor{ID: fmt.Sprintf("bg_%d_%d", g, i)}, Action: "user.login"})
							}
						})
					}
				}
				var waits []time.Duration
				b.ResetTimer()
				for i := range b.N {
					if load == "idle" {
						time.Sleep(300 * time.Millisecond)
					} else {
						// At a random moment, not just after the round
						// that witnessed the last one started.
						time.Sleep(rand.N(250 * time.Millisecond))
					}
					r, err := l.Append(ctx, event.Event{Actor: event.Actor{ID: fmt.Sprintf("u_%d", i)}, Action: "user.login"})
					if err != nil {
						b.Fatal(err)
					}
					start := time.Now()
					for {
						_, met, err := l.WitnessedAt(ctx, r.Seq)
						if err != nil {
							b.Fatal(err)
						}
						if met {
							break
						}
						if time.Since(start) > 30*time.Second {
							b.Fatalf("seq %d not witnessed after 30s", r.Seq)
						}
						time.Sleep(200 * time.Microsecond)
					}
					waits = append(waits, time.Since(start))
				}
				b.StopTimer()
				slices.Sort(waits)
				b.ReportMetric(float64(waits[len(waits)/2].Microseconds())/1000, "p50-ms")
				b.ReportMetric(float64(waits[len(waits)*99/100].Microseconds())/1000, "p99-ms")
			})
		}
	}
}
