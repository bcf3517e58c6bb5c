// Package postgres is the PostgreSQL backend of the store boundary
// (internal/store), on github.com/jackc/pgx/v5, for running any number of
// trail processes on one database.
//
// Implemented so far: store.Log (logs, events, tiles, checkpoints, Commit),
// store.Indexes (Search, SeqAtTime, Rollup, Actions) and store.Access (API
// keys, idempotency records), so a *Store is a store.Store, passing
// storetest.RunLog, RunIndexes and RunAccess against a real PostgreSQL;
// store.Secrets; store.Derived (RunDerived), for Trail's VerifyIndex and
// Reindex; and the schema's migrations. The search indexes and counts
// follow the log: an indexer in every Store writes them shortly after the
// commits, one Store at a time per log (indexer.go), and searches read
// the events not indexed yet from the log. Tests reach the raw database
// through package postgrestest (RunTamper), and storetest/backends lists
// the backend as backends.Postgres, not yet in All.
//
// The formats are SQLite's: each event is stored as its canonical form
// (canon.Append), the bytes hashed as its Merkle leaf, sixteen events to
// a row (event_bundles, compressed with lz4; bundle.go); tiles are
// tlog-tiles of height 8; checkpoints are signed notes, stored as given.
// The search indexes are small (0003_indexes.sql): a narrow row per event
// of the fields searched, under btrees whose last key is a bucket of
// seqs, and a tsvector of the words of each bundle under GIN; a search
// checks every event they find against the whole query (search.go).
//
// Several Stores, in one process or many, may share a database: each
// Commit locks the rows of the logs it appends to, so the commits to one
// log are serialised inside PostgreSQL, and a batch built on a stale state
// fails with store.ErrConflict.
//
// Bad states get errors saying what is wrong and what to do, naming the
// server but never the URL's password: Open's for a malformed URL, a
// missing database or role, a refused login; and, from Open, Commit and
// Writable, ErrUnavailable when PostgreSQL cannot be reached or the
// connection is lost. The Store reconnects by itself once PostgreSQL is
// back.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/trail-audit/trail/internal/store"
)

// Errors of Open.
var (
	// ErrNewerSchema: the database was migrated by a newer version of
	// Trail. The error names both versions.
	ErrNewerSchema = errors.New("database schema is newer than this version of Trail supports")
	// ErrNeedsUpgrade: the database lacks migrations this version has, and
	// Open was not asked to apply them (Options.Migrate).
	ErrNeedsUpgrade = errors.New("database schema is older than this version of Trail; migrate it")
	// ErrNoSchema: the database holds no Trail schema at all, and Open was
	// not asked to create it (Options.Migrate).
	ErrNoSchema = errors.New("database holds no Trail schema")
)

// Options configure Open.
type Options struct {
	// Migrate applies the migrations the database lacks (an empty
	// database gets them all). Without it, Open refuses a database that
	// lacks any, with ErrNeedsUpgrade.
	Migrate bool
	// Logger receives the store's logs; nil discards them.
	Logger *slog.Logger
	// NoIndexer leaves the indexing and counting of committed events
	// (indexer.go) to the other Stores of the database: for a Store that
	// only reads. WaitIndexed still indexes.
	NoIndexer bool
}

// Store is a PostgreSQL database holding Trail's logs. It is safe for
// concurrent use.
type Store struct {
	pool    *pgxpool.Pool
	log     *slog.Logger
	srv     server   // for the texts of errors
	indexer *indexer // nil without one (Options.NoIndexer)
	recent  store.Recent
	lags    lags
	tips    tips
	// pairs lets one indexing pass at a time take its two connections
	// (indexOnce), so that passes do not each hold one while waiting for
	// another.
	pairs sync.Mutex
}

var (
	_ store.Log     = (*Store)(nil)
	_ store.Indexes = (*Store)(nil)
	_ store.Access  = (*Store)(nil)
	_ store.Store   = (*Store)(nil)
)

// Open connects to the database at url (a postgres:// URL or a key=value
// connection string, as pgx takes them), checks its schema version, and
// applies the migrations it lacks if opts.Migrate. Without it, it fails
// with ErrNoSchema on a database that holds no Trail schema, and with
// ErrNeedsUpgrade on one that lacks migrations. It fails with
// ErrNewerSchema if the database's schema is newer than this build's.
//
// Every connection runs with synchronous_commit on, whatever the server's
// default, so that a Commit that returned is durable, and in read
// committed transactions. A connection attempt
// gives up after the URL's connect_timeout, 5 seconds if it sets none (or
// sets 0).
//
// Open's errors say what is wrong and what to do, and never hold the
// URL's password: a malformed URL; PostgreSQL unreachable (refused, no
// answer in time, host not found), which matches ErrUnavailable; a
// database or role that does not exist, or a refused password.
func Open(ctx context.Context, url string, opts Options) (*Store, error) {
	s, err := connect(ctx, url, opts.Logger)
	if err != nil {
		return nil, err
	}
	if opts.Migrate {
		err = migrate(ctx, s.pool, migrations, s.log)
	} else {
		err = checkVersion(ctx, s.pool, migrations)
	}
	if err != nil {
		s.pool.Close()
		return nil, s.srv.explain(ctx, err)
	}
	if !opts.NoIndexer {
		s.startIndexer()
	}
	return s, nil
}

// Migrate applies the migrations the database at url lacks, as Open does
// with Options.Migrate, and returns its schema version before and after.
// A database whose schema is newer than this build's is refused
// untouched, with ErrNewerSchema.
func Migrate(ctx context.Context, url string, logger *slog.Logger) (from, to int64, err error) {
	s, err := connect(ctx, url, logger)
	if err != nil {
		return 0, 0, err
	}
	defer s.Close()
	if from, err = s.SchemaVersion(ctx); err != nil {
		return 0, 0, err
	}
	if err := migrate(ctx, s.pool, migrations, s.log); err != nil {
		return from, from, s.srv.explain(ctx, err)
	}
	to, err = s.SchemaVersion(ctx)
	return from, to, err
}

// idleInTransaction is how long a transaction of Trail's may wait on its
// node between statements before PostgreSQL ends it (see connect). A
// variable for tests.
var idleInTransaction = 30 * time.Second

// connect opens a pool of connections to the database at url (see Open)
// and checks that it answers.
func connect(ctx context.Context, url string, logger *slog.Logger) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, parseError(err)
	}
	if cfg.ConnConfig.ConnectTimeout == 0 {
		cfg.ConnConfig.ConnectTimeout = defaultConnectTimeout
	}
	cfg.ConnConfig.RuntimeParams["synchronous_commit"] = "on"
	// Commits take turns on a log's row and then read what the one before
	// stored (write.go), which a snapshot taken before the wait would not
	// show: under a database's or role's default of repeatable read or
	// serializable, every commit that waited failed.
	cfg.ConnConfig.RuntimeParams["default_transaction_isolation"] = "read committed"
	// A node that stops mid-transaction (frozen, suspended, cut off
	// without its socket closing) would hold its log's row, and every
	// other node's commits to the log with it, for as long as it stays
	// so: PostgreSQL ends such a transaction, and frees the row, after
	// idleInTransaction. Trail's own transactions never idle that long.
	cfg.ConnConfig.RuntimeParams["idle_in_transaction_session_timeout"] = strconv.FormatInt(idleInTransaction.Milliseconds(), 10)
	// A statement that waits for a lock longer than lockTimeout fails
	// saying so (55P03), before the connection would give up on an
	// answer (answer.go) and blame the network. Migrations and index
	// rebuilds wait as long as they need (SET LOCAL lock_timeout = 0).
	answer := answerTimeout
	cfg.ConnConfig.RuntimeParams["lock_timeout"] = strconv.FormatInt(lockTimeout(answer).Milliseconds(), 10)
	// pgx prepares every statement once per connection; after five runs
	// PostgreSQL may plan it once for any arguments, and a generic plan
	// of a search cannot tell a common actor from a rare one, nor use the
	// seq buckets of the range: searches took 10 ms and more instead of
	// 2 to 4 at 1M events. A custom plan costs well under a millisecond.
	cfg.ConnConfig.RuntimeParams["plan_cache_mode"] = "force_custom_plan"
	if cfg.ConnConfig.RuntimeParams["application_name"] == "" {
		// Named by the URL's application_name, to tell nodes apart.
		cfg.ConnConfig.RuntimeParams["application_name"] = "trail"
	}
	cfg.ConnConfig.DialFunc = answerDialer(cfg.ConnConfig.DialFunc, answer)
	cfg.AfterConnect = afterConnect
	srv := newServer(&cfg.ConnConfig.Config)
	srv.lockWait = lockTimeout(answer)
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: %s: %w", srv.addr, err)
	}
	s := &Store{pool: pool, log: logger, srv: srv}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if err := checkSettings(ctx, pool); err != nil {
		pool.Close()
		return nil, srv.explain(ctx, err)
	}
	return s, nil
}

// errSettings says that a connection does not run with the settings Trail
// gives its connections (connect): a pooler in between may drop them.
var errSettings = errors.New("PostgreSQL does not run Trail's connections as Trail set them")

// checkSettings asks the server how it runs a connection of q: a commit
// must be flushed before it returns (synchronous_commit not off) and
// transactions must be read committed (see connect). A pooler such as
// PgBouncer passes neither setting on; the role's defaults must then
// hold them, or Trail would acknowledge commits that a crash could lose.
func checkSettings(ctx context.Context, q interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}) error {
	var syncCommit, isolation string
	if err := q.QueryRow(ctx, "SELECT current_setting('synchronous_commit'), current_setting('transaction_isolation')").Scan(&syncCommit, &isolation); err != nil {
		return err
	}
	switch {
	case syncCommit == "off":
		return fmt.Errorf("%w: synchronous_commit is off, so a commit would be acknowledged before it is durable; set it on for Trail's role (ALTER ROLE … SET synchronous_commit = on)", errSettings)
	case isolation != "read committed":
		return fmt.Errorf("%w: transactions are %s; set them read committed for Trail's role (ALTER ROLE … SET default_transaction_isolation = 'read committed')", errSettings, isolation)
	}
	return nil
}

// SchemaVersion returns the database's schema version: the number of the
// last migration applied, 0 for a database without Trail's schema.
func (s *Store) SchemaVersion(ctx context.Context) (int64, error) {
	v, err := version(ctx, s.pool)
	if err != nil {
		return 0, s.explain(ctx, err)
	}
	return v, nil
}

// LatestSchema is the schema version this build migrates databases to.
func LatestSchema() int64 { return migrations[len(migrations)-1].Version }

// explain is s.srv.explain, which also drops the pool's idle connections
// when PostgreSQL is unavailable: they are likely broken too, and the
// next caller should get a fresh one rather than another failure.
func (s *Store) explain(ctx context.Context, err error) error {
	err = s.srv.explain(ctx, err)
	if errors.Is(err, ErrUnavailable) {
		s.pool.Reset()
	}
	return err
}

// Close closes the store's connections.
func (s *Store) Close() error {
	if s.indexer != nil {
		s.indexer.stop()
		<-s.indexer.done
	}
	s.pool.Close()
	return nil
}

var _ store.LockingLog = (*Store)(nil)
