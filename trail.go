// Package trail is a tamper-evident audit log.
//
// Apps append audit events (who did what to which entity, when, from where,
// and whether it worked) to a log. Each log is an append-only RFC 6962
// Merkle tree whose leaves are the RFC 8785 canonical JSON of the stored
// events; after every committed batch Trail signs a checkpoint in the C2SP
// tlog-checkpoint format (https://c2sp.org/tlog-checkpoint) as an Ed25519
// signed note (https://c2sp.org/signed-note). Inclusion and consistency
// proofs let anyone check that an event is in the log and that the log only
// ever grew, so editing, deleting, reordering or inserting events is
// detected by Verify or by any independent verifier.
//
// A DB is an open store of any number of logs, named by a URL (OpenStore,
// StoreURL). This build has two backends: a data directory holding one
// SQLite database (trail.db), one signing key per log under keys/, and
// the web viewer's session secret (Open is the shortcut for it); and a
// PostgreSQL database, shared by any number of servers, holding all of it,
// the keys sealed with a master key that each server is given
// (Options.MasterKey).
package trail

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/trail-audit/trail/event"
	"github.com/trail-audit/trail/internal/merkle"
	"github.com/trail-audit/trail/internal/store"
	"github.com/trail-audit/trail/internal/store/sqlite"
	"github.com/trail-audit/trail/policy"
)

// Checkpoint is a parsed C2SP tlog-checkpoint: origin, tree size, root.
type Checkpoint = merkle.Checkpoint

// Errors returned by this package. Callers branch on them with errors.Is.
var (
	// ErrNotFound: no such log, event, or checkpoint.
	ErrNotFound = store.ErrNotFound
	// ErrExists: a log with that name exists already.
	ErrExists = store.ErrExists
	// ErrNotInitialized: the directory holds no Trail database.
	ErrNotInitialized = errors.New("not a Trail data directory")
	// ErrMissingKey: the store keeps no signing key for a log (in a data
	// directory, its key file is missing).
	ErrMissingKey = errors.New("signing key missing")
	// ErrReadOnly: the DB was opened read-only.
	ErrReadOnly = errors.New("opened read-only")
	// ErrClosed: the DB is closed.
	ErrClosed = errors.New("trail is closed")
	// ErrUnavailable: the store could not commit; nothing was stored. The
	// DB returns it as an *UnavailableError saying why.
	ErrUnavailable = errors.New("store unavailable, nothing was stored")
	// ErrOutcomeUnknown: the store's connection broke while it committed
	// an append, so the append may or may not have been stored. Retry it
	// with the same idempotency key (AppendIdempotent; the HTTP API's
	// Idempotency-Key header), which stores it at most once. The DB
	// returns it as an *UnavailableError with Unknown set.
	ErrOutcomeUnknown = errors.New("store unavailable while committing, the append may or may not have been stored")
)

// DatabaseFile is the name of the database inside a data directory.
const DatabaseFile = "trail.db"

// Options configure a DB. The zero value is a good default.
type Options struct {
	// ReadOnly opens the DB for reading and verifying only; signing keys are
	// not needed.
	ReadOnly bool
	// Lock makes the DB its data directory's one server: Open and Init
	// take the exclusive lock file DIR/serve.lock (LockFile), writing this
	// process's id, host and start time in it, and fail with an error
	// wrapping ErrLocked that names the process holding it if there is
	// one. DBs opened without Lock (trail append, trail keys) work beside
	// the holder; their appends are sequenced after its own, and each DB's
	// reads show the others' appends (see Log.Size). The lock is released
	// by Close, or when the process ends.
	Lock bool
	// Limits bound incoming events; zero fields take event.DefaultLimits.
	Limits event.Limits
	// MaxCommitEvents bounds how many events one group commit gathers.
	// Default 20000. A single AppendBatch larger than this still commits
	// whole.
	MaxCommitEvents int
	// MasterKey seals the logs' signing keys and the viewer's session
	// secret in a store shared by many servers (PostgreSQL): 32 bytes,
	// the same for every server on the store, never stored in it (see
	// LoadMasterKey). Such a store opened for writing needs it; read-only,
	// it does not. A sqlite store keeps its keys in files and ignores it.
	MasterKey []byte
	// Migrate lets OpenStore bring a PostgreSQL database's schema up to
	// this build's, applying the migrations it lacks under a lock that
	// makes servers starting at once apply each one once. Without it,
	// OpenStore refuses a database that lacks migrations; InitStore always
	// applies them. A sqlite store upgrades its schema when opened.
	Migrate bool
	// WitnessPolicy, if set, is the C2SP tlog-policy the logs' checkpoints
	// are witnessed under (package policy; see witnessing.go): unless
	// ReadOnly, the DB submits each covered log's newest checkpoint to the
	// policy's witnesses in the background, until Close, and stores the
	// checkpoints whose cosignatures meet its quorum, which
	// Log.WitnessedCheckpoint returns. A policy whose `log` lines do not
	// list a log of the store makes OpenStore fail, naming the log.
	WitnessPolicy *policy.Policy
	// WitnessInterval is the least time between two submissions of a
	// log's newest checkpoint to the witnesses: under steady ingest each
	// covers every commit since the last, so a witness gets at most one a
	// log every WitnessInterval. Default 200 ms.
	WitnessInterval time.Duration
	// Logger receives operational logs. Default: discard.
	Logger *slog.Logger
	// Now is the clock, for tests. Default time.Now.
	Now func() time.Time
}

func (o *Options) defaults() {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.MaxCommitEvents <= 0 {
		o.MaxCommitEvents = 20000
	}
	d := event.DefaultLimits()
	if o.Limits.MaxFutureSkew == 0 {
		o.Limits.MaxFutureSkew = d.MaxFutureSkew
	}
	if o.Limits.MaxMetadataSize == 0 {
		o.Limits.MaxMetadataSize = d.MaxMetadataSize
	}
	if o.Limits.MaxDepth == 0 {
		o.Limits.MaxDepth = d.MaxDepth
	}
	if o.Limits.MaxEventSize <= 0 || o.Limits.MaxEventSize > event.MaxEntrySize {
		o.Limits.MaxEventSize = d.MaxEventSize
	}
}

// DB is an open data directory. It is safe for concurrent use.
type DB struct {
	dir  string
	opts Options
	st   store.Store
	// signers keeps the logs' signing keys; sessions what the viewer's
	// sessions need (signer.go).
	signers  signerSource
	sessions sessionKeeper
	w        *writer
	lock     *dirLock // held when opts.Lock

	commits commitHealth // see Ready
	// refused maps the name of each log whose latest append was refused
	// for damage to that error (see RefusedAppends).
	refused sync.Map

	// stopFollow ends followLoop, which closes followDone; closing, set
	// first, stops Log.follow from reading the store.
	stopFollow context.CancelFunc
	followDone chan struct{}
	closing    atomic.Bool

	mu     sync.Mutex
	logs   map[string]*Log
	closed bool

	keysRevoked atomic.Uint64 // see KeysRevoked
	keyChecks   keyChecks     // keys found to agree with their logs' records

	obsMu     sync.Mutex
	observers []func(CommitStats)

	witness *witnessors // nil unless the DB witnesses its logs
}

// CommitStats describes one group commit.
type CommitStats struct {
	Events   int           // events stored (0 when Err is set)
	Requests int           // appends it answered
	Duration time.Duration // from sequencing to durable
	Err      error         // why it failed, if it did
}

// ObserveCommits calls f after every group commit, from the writer
// goroutine: f must be quick and must not append.
func (db *DB) ObserveCommits(f func(CommitStats)) {
	db.obsMu.Lock()
	defer db.obsMu.Unlock()
	db.observers = append(db.observers, f)
}

func (db *DB) observe(s CommitStats) {
	db.obsMu.Lock()
	obs := db.observers
	db.obsMu.Unlock()
	for _, f := range obs {
		f(s)
	}
}

// OpenStore opens the existing store that url names (see StoreURL:
// "sqlite:DIR" is the data directory DIR). It never creates one: without
// a Trail store there it gives an error wrapping ErrNotInitialized. A URL
// this build cannot open is an error naming the schemes it can.
func OpenStore(ctx context.Context, url string, opts Options) (*DB, error) {
	u, err := ParseStoreURL(url)
	if err != nil {
		return nil, err
	}
	db, err := backends[u.Scheme].open(ctx, u, opts)
	return checkWitnessPolicy(ctx, db, err)
}

// InitStore creates the store that url names (see StoreURL), empty; for
// "sqlite:DIR" it is Init of DIR. It fails if a store is there already.
func InitStore(ctx context.Context, url string, opts Options) (*DB, error) {
	u, err := ParseStoreURL(url)
	if err != nil {
		return nil, err
	}
	return backends[u.Scheme].create(ctx, u, opts)
}

// Init creates a data directory (mode 0700) with an empty database. It
// fails if the directory already holds one. It is InitStore of
// "sqlite:"+dir.
func Init(ctx context.Context, dir string, opts Options) (*DB, error) {
	if err := os.MkdirAll(filepath.Join(dir, keysDir), 0o700); err != nil {
		return nil, fmt.Errorf("create data directory: %w", err)
	}
	lock, err := opts.lockDir(dir)
	if err != nil {
		return nil, err
	}
	path := filepath.Join(dir, DatabaseFile)
	if _, err := os.Stat(path); err == nil {
		lock.release()
		return nil, fmt.Errorf("%s already holds a Trail database", dir)
	}
	st, err := sqlite.Create(ctx, path, sqlite.Options{Logger: opts.Logger})
	if err != nil {
		lock.release()
		return nil, err
	}
	return newDB(dir, st, dirKeys{dir}, dirKeys{dir}, lock, opts), nil
}

// lockDir takes dir's lock file if o asks for it.
func (o *Options) lockDir(dir string) (*dirLock, error) {
	if !o.Lock || o.ReadOnly {
		return nil, nil
	}
	return lockDir(dir)
}

// Open opens an existing data directory: it is OpenStore of "sqlite:"+dir.
// It never creates one: a directory without a Trail database gives
// ErrNotInitialized.
func Open(ctx context.Context, dir string, opts Options) (*DB, error) {
	info, err := os.Stat(dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%s: %w (it does not exist; run trail init)", dir, ErrNotInitialized)
		}
		return nil, err
	}
	if !info.IsDir() {
		return nil, fmt.Errorf("%s: %w (not a directory)", dir, ErrNotInitialized)
	}
	path := filepath.Join(dir, DatabaseFile)
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		// Said before the lock file is made in a directory that is not
		// Trail's.
		return nil, fmt.Errorf("%s: %w (no %s; run trail init)", dir, ErrNotInitialized, DatabaseFile)
	}
	lock, err := opts.lockDir(dir)
	if err != nil {
		return nil, err
	}
	st, err := sqlite.Open(ctx, path, sqlite.Options{Logger: opts.Logger, ReadOnly: opts.ReadOnly})
	if err != nil {
		lock.release()
		if errors.Is(err, sqlite.ErrNoDatabase) {
			return nil, fmt.Errorf("%s: %w (no %s; run trail init)", dir, ErrNotInitialized, DatabaseFile)
		}
		return nil, err
	}
	return checkWitnessPolicy(ctx, newDB(dir, st, dirKeys{dir}, dirKeys{dir}, lock, opts), nil)
}

func newDB(dir string, st store.Store, signers signerSource, sessions sessionKeeper, lock *dirLock, opts Options) *DB {
	opts.defaults()
	db := &DB{dir: dir, opts: opts, st: st, signers: signers, sessions: sessions, lock: lock, logs: map[string]*Log{}, followDone: make(chan struct{})}
	if !opts.ReadOnly {
		db.w = newWriter(db)
	}
	ctx, cancel := context.WithCancel(context.Background())
	db.stopFollow = cancel
	go db.followLoop(ctx)
	db.startWitnessing()
	return db
}

// followLoop checks the open logs for commits of other DBs (Log.follow)
// every followIdle, unless a read just did, so that Size and Checkpoint,
// which read no store, show them too; until ctx ends.
func (db *DB) followLoop(ctx context.Context) {
	defer close(db.followDone)
	tick := time.NewTicker(followIdle)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		db.mu.Lock()
		logs := make([]*Log, 0, len(db.logs))
		for _, l := range db.logs {
			logs = append(logs, l)
		}
		db.mu.Unlock()
		for _, l := range logs {
			l.follow(ctx, followReads)
		}
	}
}

// Ready reports whether the DB works fully now. It returns ErrClosed or
// ErrReadOnly; an *UnavailableError when appends would fail: the data
// directory was removed or replaced, the store does not grant its write
// lock, a probe (a page written to a new file in the data directory,
// synced and removed, at most once a second) fails, the database files
// cannot be written, or the last group commit failed within the last
// second; or an error wrapping ErrIndexing when the background indexer's
// latest attempt failed. It stores nothing, and recovers by itself once
// the cause is gone (except for a removed data directory, which needs the
// DB to be opened again).
func (db *DB) Ready(ctx context.Context) error {
	if err := db.usable(); err != nil {
		return err
	}
	if err := db.st.Writable(ctx); err != nil {
		return db.unavailable(err)
	}
	if err := db.commits.recent(); err != nil {
		return err
	}
	// The store's own status: Ready needs its error, not the lag by log
	// name, which DB.IndexStatus reads the logs for.
	st, err := db.st.IndexStatus(ctx)
	if err != nil {
		return fmt.Errorf("read the indexer's status: %w", err)
	}
	if st.Err != nil {
		return fmt.Errorf("%w: %v", ErrIndexing, st.Err)
	}
	return nil
}

// Dir returns the data directory.
func (db *DB) Dir() string { return db.dir }

// Close commits what is queued, stops the writer and closes the store.
func (db *DB) Close() error {
	db.mu.Lock()
	if db.closed {
		db.mu.Unlock()
		return nil
	}
	db.closed = true
	db.mu.Unlock()
	db.closing.Store(true)
	db.stopWitnessing()
	db.stopFollow()
	<-db.followDone
	if db.w != nil {
		db.w.close()
	}
	return errors.Join(db.st.Close(), db.lock.release())
}

var logNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)

// ValidLogName reports whether name can name a log: 1 to 64 characters of
// lower-case letters, digits, '.', '_' and '-', starting with a letter or
// digit.
func ValidLogName(name string) bool { return logNameRE.MatchString(name) }

// CreateLog creates a log and its signing key. origin is the checkpoint
// origin line and the key name; empty means DefaultOrigin(name). It returns
// the new log.
func (db *DB) CreateLog(ctx context.Context, name, origin string) (*Log, error) {
	if db.closing.Load() {
		return nil, ErrClosed
	}
	if db.opts.ReadOnly {
		return nil, ErrReadOnly
	}
	if !ValidLogName(name) {
		return nil, fmt.Errorf("log name %q: must be 1-64 characters of a-z, 0-9, '.', '_', '-', starting with a letter or digit", name)
	}
	if origin == "" {
		origin = DefaultOrigin(name)
	}
	if err := CheckOrigin(origin); err != nil {
		return nil, err
	}
	if _, err := db.st.Log(ctx, name); err == nil {
		return nil, fmt.Errorf("log %q: %w", name, ErrExists)
	}
	infos, err := db.st.Logs(ctx)
	if err != nil {
		return nil, err
	}
	for _, li := range infos {
		if li.Origin == origin {
			// Checkpoints name their log by origin: two logs under one
			// would pass for each other to whoever checks one.
			return nil, fmt.Errorf("origin %q: log %q has it already; each log needs its own", origin, li.Name)
		}
	}
	vkey, err := db.signers.Create(ctx, logRef{Name: name, Origin: origin})
	if err != nil {
		return nil, err
	}
	if _, err := db.st.CreateLog(ctx, name, origin, vkey); err != nil {
		return nil, err
	}
	return db.Log(ctx, name)
}

// CheckOrigin says what is wrong with origin as a log's checkpoint origin,
// which is also its key's name (C2SP signed-note): 1 to 255 bytes of
// printable text with no space and no '+'.
func CheckOrigin(origin string) error {
	switch {
	case origin == "" || len(origin) > 255:
		return fmt.Errorf("origin %q: must be 1 to 255 bytes", origin)
	case !utf8.ValidString(origin):
		return fmt.Errorf("origin %q: not valid UTF-8", origin)
	case strings.ContainsRune(origin, '+'):
		return fmt.Errorf("origin %q: must not hold '+', which ends a key's name in a verifier key", origin)
	case strings.ContainsFunc(origin, func(r rune) bool { return unicode.IsSpace(r) || !unicode.IsPrint(r) }):
		return fmt.Errorf("origin %q: must not hold spaces, control or formatting characters; such as example.com/trail/audit", origin)
	}
	return nil
}

// DefaultOrigin is the checkpoint origin of a log created without one:
// "<hostname>/trail/<name>".
func DefaultOrigin(name string) string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "localhost"
	}
	return host + "/trail/" + name
}

// Logs lists the names of all logs.
func (db *DB) Logs(ctx context.Context) ([]string, error) {
	if db.closing.Load() {
		return nil, ErrClosed
	}
	infos, err := db.st.Logs(ctx)
	if err != nil {
		return nil, err
	}
	names := make([]string, len(infos))
	for i, li := range infos {
		names[i] = li.Name
	}
	return names, nil
}

// CheckKeys checks, for every log of the store, that the verifier key
// stored for it can be read and, unless the DB is read-only, that its
// signing key matches it, without opening the log. It returns the error
// of each log that fails, by name: a *LogDamagedError, an
// *UnavailableError for a signing key sealed under another master key, or
// another error (a missing key file, say). A log that fails for either of
// the first two is listed by RefusedAppends until it opens. trail serve
// runs it at start, so that such a log is named then rather than at its
// first request; with a PostgreSQL store, the signing keys it unseals are
// kept for the server's life (see sealedKeys.Signer).
func (db *DB) CheckKeys(ctx context.Context) (map[string]error, error) {
	infos, err := db.st.Logs(ctx)
	if err != nil {
		return nil, err
	}
	failed := map[string]error{}
	for _, info := range infos {
		if _, _, err := db.logKeys(ctx, info); err != nil {
			failed[info.Name] = err
			if refusesLog(err) {
				db.refused.Store(info.Name, err)
			}
		}
	}
	return failed, nil
}

// refusesLog reports whether err keeps a log from being opened until
// someone acts: damage to the log as a whole (*LogDamagedError), or a
// signing key this DB's master key does not open (an *UnavailableError).
func refusesLog(err error) bool {
	var lde *LogDamagedError
	return errors.As(err, &lde) || keySealedElsewhere(err)
}

// Log returns the named log, or an error wrapping ErrNotFound. Unless the DB
// is read-only, the log's signing key must be present and match the
// verifier key recorded when the log was created. Like the log's reads, it
// brings the log's Size and Checkpoint up to the appends of other DBs (see
// Log.Size).
func (db *DB) Log(ctx context.Context, name string) (*Log, error) {
	db.mu.Lock()
	if db.closed {
		db.mu.Unlock()
		return nil, ErrClosed
	}
	if l, ok := db.logs[name]; ok {
		db.mu.Unlock()
		l.follow(ctx, followReads)
		return l, nil
	}
	defer db.mu.Unlock()
	info, err := db.st.Log(ctx, name)
	if err != nil {
		return nil, err
	}
	l, err := openLog(ctx, db, info)
	if refusesLog(err) {
		// Reported by the server's readiness until the log opens.
		db.refused.Store(name, err)
	} else if old, ok := db.refused.Load(name); ok && err == nil && refusesLog(old.(error)) {
		db.refused.Delete(name)
	}
	if err != nil {
		return nil, err
	}
	db.logs[name] = l
	return l, nil
}
