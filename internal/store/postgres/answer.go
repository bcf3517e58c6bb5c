package postgres

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// answerTimeout bounds how long a connection waits for PostgreSQL to
// answer, or to take what it sends: past it the connection fails as
// unavailable and is closed. Without it, a statement sent into a
// network partition (packets dropped, or a proxy that stopped passing
// them, the socket open) waits until the operating system gives up,
// about 15 minutes on Linux, and every read or key check of a request
// with it. No statement of Trail's takes that long but those that lift
// it on purpose (unbounded): migrations, and the rebuild of a log's
// indexes. It is longer than a wait for a lock may be (lockTimeout),
// which is longer than a node that stopped mid-commit may hold its log
// (idleInTransaction): a commit waiting behind such a node gets the log
// once PostgreSQL ends that node's transaction. A variable for tests.
// A Store reads it once, when it opens.
var answerTimeout = 45 * time.Second

// lockTimeout is how long a statement may wait for a lock, given the
// answer bound: PostgreSQL then fails it (55P03), which explain reports
// as a lock held elsewhere.
func lockTimeout(answer time.Duration) time.Duration { return answer - answer/9 }

// answerDialer wraps dial so that the connections it makes wait at most
// limit for each read and write.
func answerDialer(dial pgconn.DialFunc, limit time.Duration) pgconn.DialFunc {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return &answerConn{Conn: c, limit: limit}, nil
	}
}

// answerConn is a connection whose reads and writes fail with a
// *noAnswerError after answerTimeout, or at the deadline pgx sets (for
// a context that ended) if that comes first. The connection only reads
// when pgx waits for an answer: PostgreSQL sends nothing unasked to
// Trail's connections, which never LISTEN.
type answerConn struct {
	net.Conn
	limit     time.Duration // answerTimeout when it was made
	mu        sync.Mutex
	read      time.Time // the read deadline pgx set; zero for none
	write     time.Time // the write deadline pgx set
	unlimited bool
}

func (c *answerConn) SetDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.read, c.write = t, t
	return c.Conn.SetDeadline(t)
}

func (c *answerConn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.read = t
	return c.Conn.SetReadDeadline(t)
}

func (c *answerConn) SetWriteDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.write = t
	return c.Conn.SetWriteDeadline(t)
}

// bound sets the deadline of the next read (or write, with write): the
// earlier of the one pgx set and answerTimeout from now. It returns the
// deadline pgx set, and whether the one in force is answerTimeout's.
// Both under the lock, so that a deadline pgx sets meanwhile (a context
// ended) is never put back.
func (c *answerConn) bound(write bool) (set time.Time, ours bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	set, apply := c.read, c.Conn.SetReadDeadline
	if write {
		set, apply = c.write, c.Conn.SetWriteDeadline
	}
	limit := time.Now().Add(c.limit)
	if c.unlimited || !set.IsZero() && set.Before(limit) {
		apply(set)
		return set, false
	}
	apply(limit)
	return set, true
}

// timedOut reports whether err, of a read (or write) begun when pgx's
// deadline was set and answerTimeout's was in force, is answerTimeout's:
// pgx has set no other deadline since.
func (c *answerConn) timedOut(err error, write bool, set time.Time, ours bool) bool {
	if err == nil || !ours || !isNetTimeout(err) {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if write {
		return c.write.Equal(set)
	}
	return c.read.Equal(set)
}

func (c *answerConn) Read(b []byte) (int, error) {
	set, ours := c.bound(false)
	n, err := c.Conn.Read(b)
	if c.timedOut(err, false, set, ours) {
		return n, &noAnswerError{wait: c.limit, op: "answer"}
	}
	return n, err
}

func (c *answerConn) Write(b []byte) (int, error) {
	set, ours := c.bound(true)
	n, err := c.Conn.Write(b)
	if c.timedOut(err, true, set, ours) {
		return n, &noAnswerError{wait: c.limit, op: "take what was sent"}
	}
	return n, err
}

// noAnswerError is the error of a read or write of an answerConn that
// timed out. It matches ErrUnavailable, whichever of the store's methods
// returns it. It is not a net.Error timeout: pgx would read again after
// one, where this one ends the connection.
type noAnswerError struct {
	wait time.Duration
	op   string
}

func (e *noAnswerError) Error() string {
	return fmt.Sprintf("PostgreSQL did not %s within %v", e.op, e.wait)
}
func (e *noAnswerError) Is(target error) bool { return target == ErrUnavailable }

// unbounded lifts answerTimeout from the connection of pc until the
// function it returns is called: for statements that may wait longer on
// purpose, such as a migration building an index, or one waiting for
// another node's migration.
func unbounded(pc *pgconn.PgConn) (restore func()) {
	c := pc.Conn()
	if t, ok := c.(*tls.Conn); ok {
		c = t.NetConn()
	}
	ac, ok := c.(*answerConn)
	if !ok {
		return func() {}
	}
	ac.mu.Lock()
	ac.unlimited = true
	ac.mu.Unlock()
	return func() {
		ac.mu.Lock()
		ac.unlimited = false
		ac.mu.Unlock()
	}
}
