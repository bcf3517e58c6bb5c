package trail_test

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/trail-audit/trail"
	"github.com/trail-audit/trail/api"
	"github.com/trail-audit/trail/event"
	"github.com/trail-audit/trail/internal/baseline"
	"github.com/trail-audit/trail/internal/store/postgres/pgtest"
	"github.com/trail-audit/trail/internal/workload"
)

// The PostgreSQL benchmarks run Trail on the server pgtest uses
// ($TRAIL_TEST_POSTGRES, default 127.0.0.1:5432), each on a fresh
// database, through the public API only, next to a plain PostgreSQL table
// of the same events (internal/baseline's PGTable) measured in the same
// run. They skip when the server cannot be reached. See BENCHMARKS.md,
// "PostgreSQL".

// benchMasterKey is the master key of every benchmark store: fixed, so
// that a database loaded by one run (TRAIL_BENCH_PG_URL) opens in the next.
var benchMasterKey = func() []byte {
	k := sha256.Sum256([]byte("trail benchmark master key"))
	return k[:]
}()

// pgServerLogged holds the names of the benchmarks that logged the server.
var pgServerLogged sync.Map

// logPGServer logs the server's version and durability settings once per
// benchmark name, next to the workload's source.
func logPGServer(b testing.TB, dbURL string) {
	b.Helper()
	if _, done := pgServerLogged.LoadOrStore(b.Name(), true); done {
		return
	}
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close(ctx)
	var version, fsync, sync string
	if err := conn.QueryRow(ctx, "SELECT current_setting('server_version'), current_setting('fsync'), current_setting('synchronous_commit')").Scan(&version, &fsync, &sync); err != nil {
		b.Fatal(err)
	}
	b.Logf("PostgreSQL %s, fsync %s, synchronous_commit %s (server default; Trail and the baseline set it on)", version, fsync, sync)
}

// openPGNodes makes Trail's store in dbURL and opens it n times, as n
// servers would (each DB its own pool and writer), closing them when b
// ends.
func openPGNodes(b testing.TB, dbURL string, n int) []*trail.DB {
	b.Helper()
	ctx := context.Background()
	logPGServer(b, dbURL)
	first, err := trail.InitStore(ctx, dbURL, trail.Options{MasterKey: benchMasterKey})
	if err != nil {
		b.Fatal(err)
	}
	nodes := []*trail.DB{first}
	b.Cleanup(func() { first.Close() })
	for range n - 1 {
		db, err := trail.OpenStore(ctx, dbURL, trail.Options{MasterKey: benchMasterKey})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { db.Close() })
		nodes = append(nodes, db)
	}
	return nodes
}

// pgLogs creates the logs named in names through nodes[0] and returns
// them as each node sees them: logs[node][i] is names[i].
func pgLogs(b testing.TB, nodes []*trail.DB, names ...string) [][]*trail.Log {
	b.Helper()
	ctx := context.Background()
	for _, name := range names {
		if _, err := nodes[0].CreateLog(ctx, name, "bench.example/"+name); err != nil {
			b.Fatal(err)
		}
	}
	logs := make([][]*trail.Log, len(nodes))
	for i, db := range nodes {
		for _, name := range names {
			l, err := db.Log(ctx, name)
			if err != nil {
				b.Fatal(err)
			}
			logs[i] = append(logs[i], l)
		}
	}
	return logs
}

// newPGBenchLog returns a log in a fresh Trail store on PostgreSQL.
func newPGBenchLog(b testing.TB) *trail.Log {
	nodes := openPGNodes(b, pgtest.DB(b), 1)
	return pgLogs(b, nodes, "bench")[0][0]
}

// appendLoad performs ops appends of batch events each from callers
// goroutines, caller k appending through targets[k%len(targets)] (Append
// when batch is 1, else AppendBatch), the events taken in turn from evs,
// and waits for the logs' indexes. It returns how long that took.
func appendLoad(ctx context.Context, targets []*trail.Log, evs []event.Event, callers, batch, ops int) (time.Duration, error) {
	var (
		next  atomic.Int64
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
	)
	slots := len(evs) / batch
	start := time.Now()
	for k := range callers {
		l := targets[k%len(targets)]
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= ops {
					return
				}
				off := (i % slots) * batch
				var err error
				if batch == 1 {
					_, err = l.Append(ctx, evs[off])
				} else {
					_, err = l.AppendBatch(ctx, evs[off:off+batch])
				}
				if err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
					next.Store(int64(ops)) // stop the others
					return
				}
			}
		}()
	}
	wg.Wait()
	if first != nil {
		return 0, first
	}
	for _, l := range targets {
		if err := l.WaitIndexed(ctx); err != nil {
			return 0, err
		}
	}
	return time.Since(start), nil
}

// BenchmarkPostgresAppendBatch1000 measures bulk ingest on PostgreSQL:
// AppendBatch of 1000 events per call to one log, one call after the
// other, and the median and 99th percentile of a call's time (p50-ms,
// p99-ms): a call waits while a commit that finds the indexes too far
// behind indexes them first.
func BenchmarkPostgresAppendBatch1000(b *testing.B) {
	evs, _ := workloadEvents(b, 200_000)
	l := newPGBenchLog(b)
	ctx := context.Background()
	took := make([]time.Duration, b.N)
	b.ResetTimer()
	cpu := startCPU()
	for i := 0; i < b.N; i++ {
		off := (i * 1000) % len(evs)
		start := time.Now()
		if _, err := l.AppendBatch(ctx, evs[off:off+1000]); err != nil {
			b.Fatal(err)
		}
		took[i] = time.Since(start)
	}
	if err := l.WaitIndexed(ctx); err != nil {
		b.Fatal(err)
	}
	cpu.report(b, b.N*1000)
	b.ReportMetric(float64(b.N*1000)/b.Elapsed().Seconds(), "events/s")
	slices.Sort(took)
	b.ReportMetric(float64(took[b.N/2])/1e6, "p50-ms")
	b.ReportMetric(float64(took[b.N*99/100])/1e6, "p99-ms")
}

// BenchmarkPostgresAppendSingle measures one caller appending one event
// at a time to one log on PostgreSQL.
func BenchmarkPostgresAppendSingle(b *testing.B) {
	evs, _ := workloadEvents(b, 200_000)
	l := newPGBenchLog(b)
	b.ResetTimer()
	cpu := startCPU()
	if _, err := appendLoad(context.Background(), []*trail.Log{l}, evs, 1, 1, b.N); err != nil {
		b.Fatal(err)
	}
	cpu.report(b, b.N)
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkPostgresAppendParallel32 measures 32 goroutines each appending
// one event at a time to one log on PostgreSQL (group commit).
func BenchmarkPostgresAppendParallel32(b *testing.B) {
	evs, _ := workloadEvents(b, 200_000)
	l := newPGBenchLog(b)
	b.ResetTimer()
	cpu := startCPU()
	if _, err := appendLoad(context.Background(), []*trail.Log{l}, evs, 32, 1, b.N); err != nil {
		b.Fatal(err)
	}
	cpu.report(b, b.N)
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkPostgresThreeNodesOneLog measures three servers (three DBs on
// one database, each its own pool and writer) appending to one log, and
// one server under the same load in the same run.
func BenchmarkPostgresThreeNodesOneLog(b *testing.B) { benchThreeNodes(b, 1) }

// BenchmarkPostgresThreeNodesThreeLogs measures three servers each
// appending to a log of its own, and one server appending to the three
// logs under the same load in the same run.
func BenchmarkPostgresThreeNodesThreeLogs(b *testing.B) { benchThreeNodes(b, 3) }

// benchThreeNodes runs the three-node benchmarks on nlogs logs: append32
// is 32 callers appending one event at a time, append96 the same with 96
// (32 a node when three share them), batch1000 six callers appending
// 1000 events per call (b.N counts calls). The callers are
// spread evenly over the nodes, and with three logs node k writes log k.
// Each round first runs the load on one node, untimed, then on three,
// each on a fresh database, and reports both rates and their ratio
// (x-one-node; the target is at least 0.8 on one log).
func benchThreeNodes(b *testing.B, nlogs int) {
	names := []string{"bench0", "bench1", "bench2"}[:nlogs]
	for _, c := range []struct {
		name           string
		callers, batch int
	}{
		{"append32", 32, 1},
		{"append96", 96, 1},
		{"batch1000", 6, 1000},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.StopTimer()
			evs, _ := workloadEvents(b, 200_000)
			ctx := context.Background()

			one := openPGNodes(b, pgtest.DB(b), 1)
			soloLogs := pgLogs(b, one, names...)[0]
			solo, err := appendLoad(ctx, soloLogs, evs, c.callers, c.batch, b.N)
			if err != nil {
				b.Fatal(err)
			}
			one[0].Close()

			nodes := openPGNodes(b, pgtest.DB(b), 3)
			perNode := pgLogs(b, nodes, names...)
			// Caller k appends through node k%3; with three logs, node k
			// writes log k, so each log has one writer.
			targets := make([]*trail.Log, 3)
			for k := range targets {
				targets[k] = perNode[k][k%nlogs]
			}
			b.StartTimer()
			cpu := startCPU()
			three, err := appendLoad(ctx, targets, evs, c.callers, c.batch, b.N)
			b.StopTimer()
			if err != nil {
				b.Fatal(err)
			}
			cpu.report(b, b.N*c.batch)
			events := float64(b.N * c.batch)
			b.ReportMetric(events/three.Seconds(), "events/s")
			b.ReportMetric(events/solo.Seconds(), "one-node-events/s")
			b.ReportMetric(solo.Seconds()/three.Seconds(), "x-one-node")
		})
	}
}

// pgBigEventsEnv and pgBigURLEnv size and place the large PostgreSQL log.
const (
	pgBigEventsEnv = "TRAIL_BENCH_PG_EVENTS"
	pgBigURLEnv    = "TRAIL_BENCH_PG_URL"
)

// pgBig is the large log of BenchmarkPostgresSearch1M and
// BenchmarkPostgresDisk1M: the first n workload events, appended with
// AppendBatch(1000), built once per run in a database made for it
// (dropped by TestMain through dropPGBig), or kept across runs in the
// database $TRAIL_BENCH_PG_URL names.
var pgBig struct {
	once        sync.Once
	unreachable error // the server cannot be reached
	err         error
	url         string
	drop        string // the database to drop at the end of the run, if made here
	db          *trail.DB
	log         *trail.Log
	events      []event.Event
	raw         int64
	n           int
}

// pgBigLogged holds the names of the benchmarks that logged the large
// log's size and place.
var pgBigLogged sync.Map

// pgBigSize returns the number of events of the large log:
// $TRAIL_BENCH_PG_EVENTS, default 1,000,000.
func pgBigSize() (int, error) {
	s := os.Getenv(pgBigEventsEnv)
	if s == "" {
		return 1_000_000, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		return 0, fmt.Errorf("%s=%q: want a number of events, at least 1", pgBigEventsEnv, s)
	}
	return n, nil
}

// pgBigLog returns the large log and its events, loading it on first use.
func pgBigLog(b *testing.B) (*trail.Log, []event.Event) {
	if testing.Short() {
		b.Skip("builds a large PostgreSQL log")
	}
	pgBig.once.Do(func() { pgBig.err = loadPGBig(b) })
	if pgBig.unreachable != nil {
		pgtest.Unavailable(b, pgBig.unreachable)
	}
	if pgBig.err != nil {
		b.Fatal(pgBig.err)
	}
	logPGServer(b, pgBig.url)
	workloadEvents(b, pgBig.n) // logs the source
	if _, done := pgBigLogged.LoadOrStore(b.Name(), true); !done {
		where := "in a database made for this run"
		if pgBig.drop == "" {
			where = "in the database " + pgBigURLEnv + " names"
		}
		b.Logf("log of %d events (%s=%d), %s", pgBig.n, pgBigEventsEnv, pgBig.n, where)
	}
	return pgBig.log, pgBig.events
}

// loadPGBig opens or makes the large log's database and appends to the
// log the workload events it lacks, so that a database given by
// $TRAIL_BENCH_PG_URL is loaded once, and a run stopped while loading
// continues where it stopped.
func loadPGBig(b *testing.B) error {
	n, err := pgBigSize()
	if err != nil {
		return err
	}
	pgBig.n = n
	ctx := context.Background()
	pgBig.url = os.Getenv(pgBigURLEnv)
	if pgBig.url == "" {
		if pgBig.url, pgBig.drop, err = createPGBenchDatabase(ctx); err != nil {
			return err
		}
	}
	evs, raw, err := workload.Events(n)
	if err != nil {
		return err
	}
	pgBig.events, pgBig.raw = evs, raw

	db, err := trail.OpenStore(ctx, pgBig.url, trail.Options{MasterKey: benchMasterKey})
	if errors.Is(err, trail.ErrNotInitialized) {
		db, err = trail.InitStore(ctx, pgBig.url, trail.Options{MasterKey: benchMasterKey})
	}
	if err != nil {
		return fmt.Errorf("large log's database: %w", err)
	}
	pgBig.db = db
	l, err := db.Log(ctx, "bench")
	if errors.Is(err, trail.ErrNotFound) {
		l, err = db.CreateLog(ctx, "bench", "bench.example/trail")
	}
	if err != nil {
		return err
	}
	pgBig.log = l
	have := int(l.Size())
	if have > n {
		return fmt.Errorf("log bench in %s holds %d events, more than the %d asked for: set %s=%d, or give an empty database",
			pgBigURLEnv, have, n, pgBigEventsEnv, have)
	}
	if have > 0 {
		// A log loaded by an earlier run holds the workload's first events.
		first, err := l.GetSeq(ctx, 0)
		if err != nil {
			return err
		}
		if first.Actor.ID != evs[0].Actor.ID || first.Action != evs[0].Action || !first.Time.Equal(evs[0].Time) {
			return fmt.Errorf("log bench in %s holds other events than the workload's (its first is %s by %s): give an empty database",
				pgBigURLEnv, first.Action, first.Actor.ID)
		}
		if have < n {
			b.Logf("log bench holds %d events already; appending the %d it lacks", have, n-have)
		}
	}
	start := time.Now()
	for off := have; off < n; off += 1000 {
		if _, err := l.AppendBatch(ctx, evs[off:min(off+1000, n)]); err != nil {
			return fmt.Errorf("loading the large log at event %d: %w", off, err)
		}
	}
	if err := l.WaitIndexed(ctx); err != nil {
		return err
	}
	if have < n {
		b.Logf("loaded %d events in %v", n-have, time.Since(start).Round(time.Millisecond))
	}
	return nil
}

// createPGBenchDatabase makes an empty database on pgtest's server for
// the large log and returns its URL and name. pgBig.unreachable is set
// when the server cannot be reached.
func createPGBenchDatabase(ctx context.Context) (string, string, error) {
	server := pgtest.ServerURL()
	u, err := url.Parse(server)
	if err != nil {
		return "", "", fmt.Errorf("%s: not a URL: %w", pgtest.EnvVar, err)
	}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(cctx, server)
	if err != nil {
		pgBig.unreachable = err
		return "", "", err
	}
	defer conn.Close(ctx)
	var r [8]byte
	rand.Read(r[:])
	name := "trail_test_bench_" + hex.EncodeToString(r[:])
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		return "", "", fmt.Errorf("create the large log's database: %w", err)
	}
	u.Path = "/" + name
	return u.String(), name, nil
}

// dropPGBig closes the large log and drops its database if this run made
// it; TestMain calls it.
func dropPGBig() {
	if pgBig.db != nil {
		pgBig.db.Close()
	}
	if pgBig.drop == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, pgtest.ServerURL())
	if err != nil {
		fmt.Fprintf(os.Stderr, "drop database %s: %v\n", pgBig.drop, err)
		return
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgBig.drop+" WITH (FORCE)"); err != nil {
		fmt.Fprintf(os.Stderr, "drop database %s: %v\n", pgBig.drop, err)
	}
}

// BenchmarkPostgresSearch1M measures the first page (100 events, newest
// first) of typical queries on the large PostgreSQL log.
func BenchmarkPostgresSearch1M(b *testing.B) {
	l, evs := pgBigLog(b)
	ctx := context.Background()
	n := len(evs)
	from, err := l.GetSeq(ctx, int64(n*4/10))
	if err != nil {
		b.Fatal(err)
	}
	to, err := l.GetSeq(ctx, int64(n*6/10))
	if err != nil {
		b.Fatal(err)
	}
	pick := func(i int) *event.Event { return &evs[(i*7919)%n] }
	cases := []struct {
		name string
		q    func(i int) api.Query
	}{
		{"actor", func(i int) api.Query { return api.Query{Actor: pick(i).Actor.ID} }},
		{"target", func(i int) api.Query {
			t := pick(i).Targets[0]
			return api.Query{TargetType: t.Type, TargetID: t.ID}
		}},
		{"ip", func(i int) api.Query { return api.Query{IP: pick(i).Source.IP} }},
		{"action", func(i int) api.Query { return api.Query{Action: "user.login.failed"} }},
		{"action-prefix", func(i int) api.Query { return api.Query{Action: "user.*"} }},
		{"rare-action-prefix", func(i int) api.Query { return api.Query{Action: "billing.*"} }},
		{"action+time", func(i int) api.Query {
			return api.Query{Action: "user.login.failed", Since: from.ReceivedAt, Until: to.ReceivedAt}
		}},
		{"text", func(i int) api.Query { return api.Query{Text: "account_locked"} }},
		{"text-prefix", func(i int) api.Query { return api.Query{Text: "lock*"} }},
		{"text+outcome", func(i int) api.Query { return api.Query{Text: "terraform", Outcome: event.Failure} }},
		{"actor+action+outcome", func(i int) api.Query {
			return api.Query{Actor: pick(i).Actor.ID, Action: "password.reset", Outcome: event.Failure}
		}},
		{"text+actor", func(i int) api.Query { return api.Query{Text: "terraform", Actor: pick(i).Actor.ID} }},
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

// BenchmarkPostgresDisk1M reports the large log's database size per
// event, every table of the database with its indexes and TOAST (WAL
// aside), and its ratio to the events' NDJSON.
func BenchmarkPostgresDisk1M(b *testing.B) {
	l, evs := pgBigLog(b)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, pgBig.url)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close(ctx)
	var size int64
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		_ = l.Size()
		err = conn.QueryRow(ctx, `SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0)::bigint
			FROM pg_class c JOIN pg_namespace ns ON ns.oid = c.relnamespace
			WHERE c.relkind IN ('r', 'm', 'p')
			AND ns.nspname NOT IN ('pg_catalog', 'information_schema') AND ns.nspname NOT LIKE 'pg_toast%'`).Scan(&size)
		if err != nil {
			b.Fatal(err)
		}
	}
	n := float64(len(evs))
	b.ReportMetric(float64(size)/n, "bytes/event")
	b.ReportMetric(float64(pgBig.raw)/n, "ndjson-bytes/event")
	b.ReportMetric(float64(size)/float64(pgBig.raw), "x-ndjson")
}

// The PostgreSQL baseline (internal/baseline's PGTable) is what an app on
// PostgreSQL does without Trail: one plain table with three btree
// indexes, pgx, synchronous_commit on.

// openPGBaseline makes the baseline table in a fresh database, with a
// pool of maxConns connections.
func openPGBaseline(b *testing.B, maxConns int32) *baseline.PGTable {
	b.Helper()
	dbURL := pgtest.DB(b)
	logPGServer(b, dbURL)
	t, err := baseline.CreatePostgres(context.Background(), dbURL, maxConns)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(t.Close)
	return t
}

// BenchmarkPostgresBaselineBatch1000 inserts 1000 rows per transaction
// with one INSERT … SELECT FROM unnest.
func BenchmarkPostgresBaselineBatch1000(b *testing.B) {
	evs, _ := workloadEvents(b, 200_000)
	t := openPGBaseline(b, 0)
	ctx := context.Background()
	b.ResetTimer()
	cpu := startCPU()
	for i := 0; i < b.N; i++ {
		off := (i * 1000) % len(evs)
		if err := t.InsertBatch(ctx, evs[off:off+1000]); err != nil {
			b.Fatal(err)
		}
	}
	cpu.report(b, b.N*1000)
	b.ReportMetric(float64(b.N*1000)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkPostgresBaselineCopy1000 copies 1000 rows per transaction with
// COPY.
func BenchmarkPostgresBaselineCopy1000(b *testing.B) {
	evs, _ := workloadEvents(b, 200_000)
	t := openPGBaseline(b, 0)
	ctx := context.Background()
	b.ResetTimer()
	cpu := startCPU()
	for i := 0; i < b.N; i++ {
		off := (i * 1000) % len(evs)
		if err := t.Copy(ctx, evs[off:off+1000]); err != nil {
			b.Fatal(err)
		}
	}
	cpu.report(b, b.N*1000)
	b.ReportMetric(float64(b.N*1000)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkPostgresBaselineSingle commits one row per transaction from one
// caller.
func BenchmarkPostgresBaselineSingle(b *testing.B) {
	evs, _ := workloadEvents(b, 200_000)
	t := openPGBaseline(b, 0)
	ctx := context.Background()
	b.ResetTimer()
	cpu := startCPU()
	for i := 0; i < b.N; i++ {
		if err := t.Insert(ctx, &evs[i%len(evs)]); err != nil {
			b.Fatal(err)
		}
	}
	cpu.report(b, b.N)
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkPostgresBaselineParallel32 commits one row per transaction from
// 32 goroutines, each with a connection of its own.
func BenchmarkPostgresBaselineParallel32(b *testing.B) {
	evs, _ := workloadEvents(b, 200_000)
	t := openPGBaseline(b, 32)
	ctx := context.Background()
	var (
		next atomic.Int64
		wg   sync.WaitGroup
		errs = make(chan error, 32)
	)
	b.ResetTimer()
	cpu := startCPU()
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= b.N {
					return
				}
				if err := t.Insert(ctx, &evs[i%len(evs)]); err != nil {
					errs <- err
					next.Store(int64(b.N))
					return
				}
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	close(errs)
	if err := <-errs; err != nil {
		b.Fatal(err)
	}
	cpu.report(b, b.N)
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}
