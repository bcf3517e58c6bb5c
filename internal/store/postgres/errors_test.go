package postgres

import (
	"context"
	"errors"
	"io"
	"net"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/trail-audit/trail/internal/store"
	"github.com/trail-audit/trail/internal/store/postgres/pgtest"
	"github.com/trail-audit/trail/internal/store/storetest"
)

// password is put in the URLs of the tests of bad states: no error may
// show it.
const password = "s3cret-Pa55word"

// withPassword returns the URL u with password set, and its host replaced
// by host unless that is empty.
func withPassword(t *testing.T, u, host string) string {
	t.Helper()
	pu, err := url.Parse(u)
	if err != nil {
		t.Fatal(err)
	}
	pu.User = url.UserPassword(pu.User.Username(), password)
	if host != "" {
		pu.Host = host
	}
	return pu.String()
}

// freePort returns a local address where nothing listens.
func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// silent starts a server that accepts connections and never answers, as a
// PostgreSQL that hangs or a host that drops the packets would.
func silent(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu    sync.Mutex
		conns []net.Conn
	)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return ln.Addr().String()
}

// checkOpenError opens url and checks that it fails with an error holding
// each of want, and matching ErrUnavailable if unavailable, and never the
// password.
func checkOpenError(t *testing.T, url string, unavailable bool, want ...string) {
	t.Helper()
	s, err := Open(context.Background(), url, Options{Logger: testLogger(t)})
	if err == nil {
		s.Close()
		t.Fatalf("Open(%s) = nil, want an error", url)
	}
	t.Logf("Open: %v", err)
	msg := err.Error()
	for _, w := range want {
		if !strings.Contains(msg, w) {
			t.Errorf("Open = %q, want it to say %q", msg, w)
		}
	}
	if strings.Contains(msg, password) {
		t.Errorf("Open = %q, shows the password of the URL", msg)
	}
	if got := errors.Is(err, ErrUnavailable); got != unavailable {
		t.Errorf("errors.Is(Open's error, ErrUnavailable) = %v, want %v", got, unavailable)
	}
}

// TestOpenBadURL checks Open's errors for URLs that need no server.
func TestOpenBadURL(t *testing.T) {
	t.Parallel()
	refused := freePort(t)
	tests := []struct {
		name        string
		url         string
		unavailable bool
		want        []string
	}{
		{name: "malformed port", url: "postgres://postgres:" + password + "@127.0.0.1:notaport/test",
			want: []string{"store URL is malformed", "want postgres://"}},
		{name: "malformed URL", url: "postgres://postgres:" + password + "@[::1/test",
			want: []string{"store URL is malformed"}},
		{name: "malformed escape", url: "postgres://postgres:" + password + "%zz@127.0.0.1/test",
			want: []string{"store URL is malformed", "percent-encode"}},
		{name: "malformed pairs", url: "host=127.0.0.1 password='" + password + " dbname=test",
			want: []string{"store URL is malformed"}},
		{name: "bad connect_timeout", url: "postgres://postgres:" + password + "@127.0.0.1/test?connect_timeout=soon",
			want: []string{"store URL is malformed", "connect_timeout"}},
		{name: "refused", url: "postgres://postgres:" + password + "@" + refused + "/test?sslmode=disable", unavailable: true,
			want: []string{"PostgreSQL at " + refused + ": connection refused; is it running"}},
		{name: "unknown host", url: "postgres://postgres:" + password + "@trail-no-such-host.invalid/test", unavailable: true,
			want: []string{`PostgreSQL at trail-no-such-host.invalid:5432: host "trail-no-such-host.invalid" not found; fix the host in the URL`}},
		{name: "no answer", url: "postgres://postgres:" + password + "@" + silent(t) + "/test?sslmode=disable&connect_timeout=1", unavailable: true,
			want: []string{"no answer within 1s; is it running"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			checkOpenError(t, tt.url, tt.unavailable, tt.want...)
		})
	}
}

// TestOpenConnectTimeout checks that Open gives up on a server that does
// not answer after the default connect timeout when the URL sets none.
func TestOpenConnectTimeout(t *testing.T) {
	t.Parallel()
	start := time.Now()
	checkOpenError(t, "postgres://postgres:"+password+"@"+silent(t)+"/test?sslmode=disable", true,
		"no answer within "+defaultConnectTimeout.String())
	if d := time.Since(start); d > defaultConnectTimeout+3*time.Second {
		t.Errorf("Open took %v, want about %v", d, defaultConnectTimeout)
	}
}

// TestOpenMissing checks Open's errors for a database and a role that do
// not exist on the real server.
func TestOpenMissing(t *testing.T) {
	u := pgtest.DB(t)
	pu, _ := url.Parse(u)
	t.Run("database", func(t *testing.T) {
		bad := *pu
		bad.Path = "/trail_no_such_db"
		checkOpenError(t, withPassword(t, bad.String(), ""), false,
			`database "trail_no_such_db" does not exist on `+pu.Host+"; create it (createdb trail_no_such_db) or fix the URL")
	})
	t.Run("role", func(t *testing.T) {
		bad := *pu
		bad.User = url.User("trail_no_such_role")
		checkOpenError(t, withPassword(t, bad.String(), ""), false,
			"PostgreSQL at "+pu.Host+` refused the login as role "trail_no_such_role"`,
			`role "trail_no_such_role" does not exist`, "createuser trail_no_such_role")
	})
	t.Run("good", func(t *testing.T) {
		// The same URL with a password is fine under trust auth: the
		// tests above failed for their stated reasons.
		s, err := Open(context.Background(), withPassword(t, u, ""), Options{Migrate: true})
		if err != nil {
			t.Fatalf("Open(the test database, with a password) = %v", err)
		}
		s.Close()
	})
}

// TestExplainLogin checks the texts of the login errors that this
// server, with trust auth, cannot produce: a refused password. The error
// is the server's, as pgx returns it.
func TestExplainLogin(t *testing.T) {
	sv := server{addr: "db.example:5432", user: "trail", db: "audit"}
	tests := []struct {
		code string
		want string
	}{
		{"28P01", `postgres: PostgreSQL at db.example:5432 refused the password of role "trail"; fix the password in the URL`},
		{"28000", `postgres: PostgreSQL at db.example:5432 refused the login as role "trail": no pg_hba.conf entry`},
		{"3D000", `postgres: database "audit" does not exist on db.example:5432; create it (createdb audit) or fix the URL`},
	}
	for _, tt := range tests {
		pgErr := &pgconn.PgError{Severity: "FATAL", Code: tt.code, Message: "no pg_hba.conf entry for host"}
		got := sv.explain(context.Background(), pgErr)
		if got == nil || !strings.HasPrefix(got.Error(), tt.want) {
			t.Errorf("explain(SQLSTATE %s) = %v, want it to start %q", tt.code, got, tt.want)
		}
		if errors.Is(got, ErrUnavailable) {
			t.Errorf("explain(SQLSTATE %s) matches ErrUnavailable, want a plain error: it needs fixing, not a retry", tt.code)
		}
	}
}

// proxy forwards TCP connections to a PostgreSQL server, and can be taken
// down (connections cut, new ones refused) and brought back up on the same
// address, to stand for a PostgreSQL that goes away while a store uses it,
// without touching the shared server.
type proxy struct {
	t      *testing.T
	target string
	addr   string

	mu    sync.Mutex
	ln    net.Listener // nil while down
	conns map[net.Conn]bool
}

func startProxy(t *testing.T, target string) *proxy {
	p := &proxy{t: t, target: target, conns: map[net.Conn]bool{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p.addr = ln.Addr().String()
	p.ln = ln
	go p.serve(ln)
	t.Cleanup(p.down)
	return p
}

func (p *proxy) serve(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		if p.ln != ln { // went down meanwhile
			p.mu.Unlock()
			c.Close()
			s.Close()
			return
		}
		p.conns[c], p.conns[s] = true, true
		p.mu.Unlock()
		pipe := func(dst, src net.Conn) {
			io.Copy(dst, src)
			dst.Close()
			src.Close()
		}
		go pipe(c, s)
		go pipe(s, c)
	}
}

// down closes the listener and every connection.
func (p *proxy) down() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for c := range p.conns {
		c.Close()
	}
	clear(p.conns)
}

// up listens on the proxy's address again.
func (p *proxy) up() {
	p.t.Helper()
	var ln net.Listener
	var err error
	for range 50 {
		if ln, err = net.Listen("tcp", p.addr); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		p.t.Fatalf("proxy: listen again on %s: %v", p.addr, err)
	}
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	go p.serve(ln)
}

// count returns the number of events and the size of the log named name,
// read straight from the database.
func count(t *testing.T, conn *pgx.Conn, name string) (events, size int64) {
	t.Helper()
	err := conn.QueryRow(context.Background(), "SELECT size FROM logs WHERE name = $1", name).Scan(&size)
	if err != nil {
		t.Fatal(err)
	}
	rows, err := conn.Query(context.Background(), "SELECT b.data FROM event_bundles b JOIN logs l ON l.id = b.log WHERE l.name = $1", name)
	if err != nil {
		t.Fatal(err)
	}
	var data []byte
	_, err = pgx.ForEachRow(rows, []any{&data}, func() error {
		recs, err := splitBundle(data)
		for _, r := range recs {
			if len(r) > 0 {
				events++
			}
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return events, size
}

// TestPostgresGoesAway runs a store through a proxy that goes down while
// the store is open: Writable and Commit fail with ErrUnavailable saying
// so, nothing of the failed commit is stored, and once the proxy is up
// again the store works by itself, without being reopened.
func TestPostgresGoesAway(t *testing.T) {
	u := pgtest.DB(t)
	pu, _ := url.Parse(u)
	p := startProxy(t, pu.Host)
	s := open(t, withPassword(t, u, p.addr))
	direct := raw(t, u)
	ctx := context.Background()

	w := storetest.NewWriter(t, s, "audit")
	evs := storetest.Events(60, 7)
	w.Append(t, s, t0, evs[:20]...)

	p.down()
	wantText := "PostgreSQL at " + p.addr + ": "
	check := func(what string, err error) {
		t.Helper()
		t.Logf("%s: %v", what, err)
		switch {
		case err == nil:
			t.Fatalf("%s = nil while PostgreSQL is unreachable, want an error", what)
		case !errors.Is(err, ErrUnavailable):
			t.Errorf("%s = %v, want an error matching ErrUnavailable", what, err)
		case !strings.Contains(err.Error(), wantText) || !strings.Contains(err.Error(), "is it running"):
			t.Errorf("%s = %q, want it to say %q and ask whether it is running", what, err, wantText)
		}
		if strings.Contains(err.Error(), password) {
			t.Errorf("%s = %q, shows the password of the URL", what, err)
		}
	}
	b := w.Batch(t, t0.Add(time.Second), evs[20:40]...)
	// CommitLocked after the Store's own commit, which would go in one
	// round trip, fails the same way (here, at connecting).
	locked := func() error {
		return s.CommitLocked(ctx, map[int64]int64{w.Info.ID: 20}, func(map[int64]int64, map[int64]store.State) ([]store.Batch, error) {
			return []store.Batch{b}, nil
		})
	}
	for i := range 3 {
		start := time.Now()
		check("Writable", s.Writable(ctx))
		check("Commit", s.Commit(ctx, []store.Batch{b}))
		check("CommitLocked", locked())
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("try %d: Writable and Commit took %v while PostgreSQL was unreachable, want them to fail fast", i, d)
		}
	}
	if n, size := count(t, direct, "audit"); n != 20 || size != 20 {
		t.Fatalf("after failed commits, the database has %d events and log size %d, want 20 and 20", n, size)
	}

	p.up()
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := s.Writable(ctx)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Writable = %v 10s after PostgreSQL came back, want nil", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	storetest.CheckLog(t, s, w) // the failed batch is not there
	if err := s.Commit(ctx, []store.Batch{b}); err != nil {
		t.Fatalf("Commit after PostgreSQL came back = %v, want nil", err)
	}
	w.Committed(t, b)
	w.Append(t, s, t0.Add(2*time.Second), evs[40:]...)
	storetest.CheckLog(t, s, w)
	if n, size := count(t, direct, "audit"); n != 60 || size != 60 {
		t.Fatalf("at the end, the database has %d events and log size %d, want 60 and 60", n, size)
	}
}

// TestBackendsTerminated ends the store's server connections from another
// connection, as a restart of PostgreSQL or an administrator would: the
// next Commit either succeeds on a fresh connection or fails with
// ErrUnavailable storing nothing, and the store then works by itself.
func TestBackendsTerminated(t *testing.T) {
	u := pgtest.DB(t)
	s := open(t, u)
	direct := raw(t, u)
	ctx := context.Background()
	w := storetest.NewWriter(t, s, "audit")
	evs := storetest.Events(50, 9)
	w.Append(t, s, t0, evs[:10]...)

	for round := range 4 {
		killed := terminateOthers(t, direct)
		if killed == 0 {
			t.Fatalf("round %d: no connection of the store to terminate", round)
		}
		b := w.Batch(t, t0.Add(time.Duration(round+1)*time.Second), evs[10+round*10:20+round*10]...)
		err := s.Commit(ctx, []store.Batch{b})
		if err != nil {
			t.Logf("round %d: Commit after %d connections were terminated: %v", round, killed, err)
			if !errors.Is(err, ErrUnavailable) {
				t.Fatalf("round %d: Commit = %v, want nil or an error matching ErrUnavailable", round, err)
			}
			if n, size := count(t, direct, "audit"); n != w.Size() || size != w.Size() {
				t.Fatalf("round %d: after a failed commit, %d events and log size %d, want %d", round, n, size, w.Size())
			}
			if err := s.Commit(ctx, []store.Batch{b}); err != nil {
				t.Fatalf("round %d: Commit again = %v, want nil: the store reconnects by itself", round, err)
			}
		}
		w.Committed(t, b)
		storetest.CheckLog(t, s, w)
	}
}

// terminateOthers ends every server connection to the database but
// direct's, as a restart of PostgreSQL would, and returns how many.
func terminateOthers(t *testing.T, direct *pgx.Conn) int {
	t.Helper()
	var killed int
	err := direct.QueryRow(context.Background(), `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
		WHERE datname = current_database() AND pid <> pg_backend_pid()`).Scan(&killed)
	if err != nil {
		t.Fatal(err)
	}
	return killed
}

// TestReadsTerminated: the reads an append makes before it commits (the
// log's state, an idempotency record), on connections PostgreSQL ended,
// succeed on a fresh one or fail as unavailable saying why, not with the
// driver's bare error.
func TestReadsTerminated(t *testing.T) {
	u := pgtest.DB(t)
	s := open(t, u)
	direct := raw(t, u)
	ctx := context.Background()
	w := storetest.NewWriter(t, s, "audit")
	w.Append(t, s, t0, storetest.Events(3, 1)...)
	for _, read := range []struct {
		name string
		do   func() error
	}{
		{"State", func() error { _, err := s.State(ctx, w.Info.ID); return err }},
		{"Idempotency", func() error {
			_, err := s.Idempotency(ctx, "scope", "key", time.Time{})
			if errors.Is(err, store.ErrNotFound) {
				return nil
			}
			return err
		}},
	} {
		if err := read.do(); err != nil { // the pool holds a connection
			t.Fatal(err)
		}
		if terminateOthers(t, direct) == 0 {
			t.Fatalf("%s: no connection of the store to terminate", read.name)
		}
		err := read.do()
		if err != nil && (!errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "PostgreSQL at ")) {
			t.Errorf("%s on a terminated connection = %v, want nil or ErrUnavailable saying what happened to PostgreSQL", read.name, err)
		}
		t.Logf("%s on a terminated connection: %v", read.name, err)
	}
}

// blackhole is a TCP proxy to a PostgreSQL server that can stop passing
// anything on, in either direction, while keeping every connection open:
// a network partition, as a client sees one.
type blackhole struct {
	ln     net.Listener
	target string
	drop   atomic.Bool
}

func newBlackhole(t *testing.T, target string) *blackhole {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &blackhole{ln: ln, target: target}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go b.serve(t, c)
		}
	}()
	return b
}

func (b *blackhole) serve(t *testing.T, c net.Conn) {
	defer c.Close()
	up, err := net.Dial("tcp", b.target)
	if err != nil {
		return
	}
	defer up.Close()
	pass := func(dst, src net.Conn) {
		buf := make([]byte, 32<<10)
		for {
			n, err := src.Read(buf)
			if err != nil {
				dst.Close()
				return
			}
			if !b.drop.Load() {
				dst.Write(buf[:n])
			}
		}
	}
	go pass(up, c)
	pass(c, up)
}

// behindBlackhole opens a store of a test database through a blackhole,
// with a log "audit" of three events.
func behindBlackhole(t *testing.T) (*Store, *storetest.Writer, *blackhole) {
	t.Helper()
	u, err := url.Parse(pgtest.DB(t))
	if err != nil {
		t.Fatal(err)
	}
	bh := newBlackhole(t, u.Host)
	u.Host = bh.ln.Addr().String()
	s := open(t, u.String())
	w := storetest.NewWriter(t, s, "audit")
	w.Append(t, s, t0, storetest.Events(3, 1)...)
	return s, w, bh
}

// TestCommitPartitioned: a commit whose packets go nowhere, the
// connection staying open (a network partition), fails as unavailable
// within commitTimeout instead of waiting for the operating system to
// give up, and so do the indexer's passes; once the network is back the
// store commits and indexes again by itself.
func TestCommitPartitioned(t *testing.T) {
	defer func(c, i time.Duration) { commitTimeout, indexTimeout = c, i }(commitTimeout, indexTimeout)
	commitTimeout, indexTimeout = 2*time.Second, 2*time.Second
	ctx := context.Background()
	s, w, bh := behindBlackhole(t)

	bh.drop.Store(true)
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	start := time.Now()
	b := w.Batch(t, t0.Add(time.Second), storetest.Events(2, 2)...)
	err := s.Commit(cctx, []store.Batch{b})
	took := time.Since(start)
	if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "did not answer within") {
		t.Fatalf("Commit with the network gone = %v, want ErrUnavailable saying PostgreSQL did not answer", err)
	}
	if took > 10*time.Second {
		t.Errorf("Commit with the network gone failed after %v, want about %v", took, commitTimeout)
	}
	// The indexer's passes give up too, and try again.
	indexFailures := func() int64 {
		s.indexer.mu.Lock()
		defer s.indexer.mu.Unlock()
		return s.indexer.failures
	}
	failed := indexFailures()
	for deadline := time.Now().Add(15 * time.Second); indexFailures() == failed; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the indexer failed no pass in 15 s with the network gone (indexTimeout %v)", indexTimeout)
		}
	}

	bh.drop.Store(false)
	var size int64
	for deadline := time.Now().Add(20 * time.Second); ; {
		b = w.Batch(t, t0.Add(2*time.Second), storetest.Events(2, 2)...)
		if err = s.Commit(ctx, []store.Batch{b}); err == nil {
			w.Committed(t, b)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Commit once the network is back = %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if size, err = s.Size(ctx, w.Info.ID); err != nil || size != 5 {
		t.Errorf("Size = %d, %v; want 5 (the lost commit stored nothing)", size, err)
	}
	wctx, cancel := context.WithTimeout(ctx, 40*time.Second)
	defer cancel()
	if err := s.WaitIndexed(wctx, w.Info.ID); err != nil {
		t.Errorf("WaitIndexed once the network is back = %v", err)
	}
}

// TestReadPartitioned: reads sent into a network partition fail as
// unavailable after answerTimeout, saying PostgreSQL did not answer,
// instead of waiting for the operating system to give up; a context
// that ends first still ends them at once; Writable blames the network,
// not a lock; and once the network is back the store reads again.
// Statements lifted from the bound (unbounded) may take longer.
func TestReadPartitioned(t *testing.T) {
	defer func(a time.Duration) { answerTimeout = a }(answerTimeout)
	answerTimeout = 2 * time.Second
	ctx := context.Background()
	s, w, bh := behindBlackhole(t)

	// Longer than answerTimeout, lifted: waits; bounded: fails.
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	restore := unbounded(conn.Conn().PgConn())
	if _, err := conn.Exec(ctx, "SELECT pg_sleep(3)"); err != nil {
		t.Errorf("a statement of 3 s on a connection without the bound = %v, want it to finish", err)
	}
	restore()
	_, err = conn.Exec(ctx, "SELECT pg_sleep(3)")
	conn.Release()
	if err == nil {
		t.Errorf("a statement of 3 s under a bound of 2 s finished, want it cut off")
	}

	bh.drop.Store(true)
	for _, read := range []struct {
		name string
		do   func(context.Context) error
	}{
		{"Size", func(ctx context.Context) error { _, err := s.Size(ctx, w.Info.ID); return err }},
		{"Log", func(ctx context.Context) error { _, err := s.Log(ctx, "audit"); return err }},
		{"Keys", func(ctx context.Context) error { _, err := s.Keys(ctx, w.Info.ID); return err }},
		// An append reads these before it commits.
		{"State", func(ctx context.Context) error { _, err := s.State(ctx, w.Info.ID); return err }},
		{"Idempotency", func(ctx context.Context) error {
			_, err := s.Idempotency(ctx, "scope", "key", time.Time{})
			return err
		}},
	} {
		start := time.Now()
		err := read.do(ctx)
		took := time.Since(start)
		if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "did not answer within 2s") {
			t.Errorf("%s with the network gone = %v, want ErrUnavailable saying PostgreSQL did not answer within 2s", read.name, err)
		}
		if took > 8*time.Second {
			t.Errorf("%s with the network gone failed after %v, want about %v", read.name, took, answerTimeout)
		}
		// A context that ends first ends the read then.
		cctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		start = time.Now()
		err = read.do(cctx)
		cancel()
		if took := time.Since(start); err == nil || took > time.Second {
			t.Errorf("%s with the network gone and a context of 300 ms = %v after %v, want an error within it", read.name, err, took)
		}
	}
	rctx, cancel := context.WithTimeout(ctx, time.Second)
	err = s.Writable(rctx)
	cancel()
	if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "did not answer within") {
		t.Errorf("Writable with the network gone = %v, want ErrUnavailable saying PostgreSQL did not answer", err)
	}

	bh.drop.Store(false)
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		size, err := s.Size(ctx, w.Info.ID)
		if err == nil && size == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Size once the network is back = %d, %v; want 3", size, err)
		}
	}
}

// TestLockHeld: a commit that waits for a lock held by another session
// (a LOCK TABLE of someone else's) fails after lockTimeout saying so, not
// as a network that stopped answering, and nothing is stored; a rebuild
// of the indexes waits for as long as it takes.
func TestLockHeld(t *testing.T) {
	defer func(a time.Duration) { answerTimeout = a }(answerTimeout)
	answerTimeout = 3 * time.Second // locks: 2.67 s
	ctx := context.Background()
	url := pgtest.DB(t)
	s := open(t, url)
	w := storetest.NewWriter(t, s, "audit")
	w.Append(t, s, t0, storetest.Events(3, 1)...)

	tx, err := raw(t, url).Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, "LOCK TABLE logs IN EXCLUSIVE MODE"); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	err = s.Commit(ctx, []store.Batch{w.Batch(t, t0.Add(time.Second), storetest.Events(2, 2)...)})
	if took := time.Since(start); !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "stayed held by another session") || took > 10*time.Second {
		t.Errorf("Commit with the logs table locked elsewhere = %v after %v, want ErrUnavailable saying a lock stayed held", err, took)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if size, err := s.Size(ctx, w.Info.ID); err != nil || size != 3 {
		t.Errorf("Size = %d, %v; want 3, nothing stored", size, err)
	}

	// The indexing held longer than lockTimeout: the rebuild waits.
	tx = holdIndexing(t, url, w.Info.ID)
	reset := make(chan error, 1)
	go func() { reset <- s.ResetIndex(ctx, w.Info.ID) }()
	time.Sleep(4 * time.Second)
	tx.Rollback(ctx)
	if err := <-reset; err != nil {
		t.Errorf("ResetIndex after waiting 4 s for the indexing: %v", err)
	}
}
