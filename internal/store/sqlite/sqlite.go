// Package sqlite is Trail's embedded store: one SQLite file in WAL mode,
// written by a single connection with synchronous=FULL, so a committed batch
// survives power loss, and read by a small pool of query-only connections.
package sqlite

import (
	"context"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/trail-audit/trail/internal/durable"
	"github.com/trail-audit/trail/internal/store"
)

var _ store.Store = (*Store)(nil)

// Errors returned by Open.
var (
	// ErrNoDatabase: the file does not exist.
	ErrNoDatabase = errors.New("no Trail database at this path")
	// ErrNotTrail: the file is not a Trail database.
	ErrNotTrail = errors.New("not a Trail database")
	// ErrReadOnly: the store was opened read-only.
	ErrReadOnly = errors.New("store opened read-only")
	// ErrNewerSchema: the database was written by a newer version of Trail.
	ErrNewerSchema = errors.New("database schema is newer than this version of Trail supports")
	// ErrNeedsUpgrade: the database was written by an older version of
	// Trail, and a read-only store cannot upgrade it. Opening it
	// read-write once does.
	ErrNeedsUpgrade = errors.New("database needs a schema upgrade this read-only open cannot make: run trail migrate on it once (or start trail serve on it)")
)

// Options tune a Store. The zero value is a good default.
type Options struct {
	// Logger receives background errors (full-text indexing). Default: discard.
	Logger *slog.Logger
	// CacheSize is the writer's page cache in bytes. Default 64 MiB: index
	// pages stay hot, which is what keeps inserts cheap as the log grows.
	CacheSize int
	// IndexChunk is the most events the background indexer adds per
	// transaction (it adds fewer while it keeps up, see indexer.go); chunks
	// never cross a 16384-event segment. Default 16384.
	IndexChunk int
	// MaxIndexLag bounds how far indexing may trail ingest, in events per
	// log; searches scan that many events at most beyond the indexes.
	// Default 100000.
	MaxIndexLag int64
	// IndexDelay is how long the indexer lets commits gather before it
	// indexes them. Default 250ms.
	IndexDelay time.Duration
	// ReadOnly opens the database for reading only: no write connection,
	// no background indexer; Commit and CreateLog fail with ErrReadOnly.
	// A database of an older schema version is not upgraded: one older
	// than readableFrom is refused with ErrNeedsUpgrade, a newer one is
	// read as it is.
	ReadOnly bool
	// ReadConns bounds concurrent readers. Default 4.
	ReadConns int
}

// Store is the SQLite implementation of store.Store.
type Store struct {
	path   string
	opts   Options
	logger *slog.Logger
	r      *sql.DB // query-only pool

	// wmu serialises use of the write connection between Commit and the
	// indexer.
	wmu sync.Mutex
	w   *sql.DB // exactly one connection
	ins *inserter
	// notFull: the write connection may be at synchronous=NORMAL, for the
	// indexer (see holdWriter); Commit restores FULL first.
	notFull bool
	// ids are the database file and directory as opened; gone, once set,
	// says they are no longer at the path (files.go).
	ids  fileIDs
	gone error

	// Writable's probe file and its last result (files.go).
	probeMu  sync.Mutex
	probedAt time.Time
	probeErr error

	mu    sync.Mutex
	names map[int64]string // log id → name, for rebuilding events

	actionsOf map[int64]map[string]bool // per log, actions known to be stored; under wmu

	// ix follows the commits and maintains the indexes and counts
	// (indexer.go). Its loop runs unless the store is read-only.
	ix *indexer
	// closed is set by the first Close.
	closed atomic.Bool

	// afterTail, when set (by tests), is called by a search between its
	// read of a segment's posting tail and of its index tables.
	afterTail func(seg int64)
}

// pageSize is the page size of new databases: a bundle of 16 events
// (about 5 KiB) and a full Merkle tile (8 KiB) each fit in a page or two,
// without chains of overflow pages.
const pageSize = 8192

// Create makes a new, empty Trail database at path. It fails if the file
// exists.
func Create(ctx context.Context, path string, opts Options) (*Store, error) {
	if _, err := os.Lstat(path); err == nil {
		return nil, fmt.Errorf("create database: %w", fs.ErrExist)
	}
	// The database is made whole under another name and then linked into
	// place, so that a process killed while making it leaves no file at
	// path that is not a Trail database, which every command would refuse.
	removeStale(path)
	tmp := fmt.Sprintf("%s.init-%d", path, os.Getpid())
	os.Remove(tmp)
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("create database: %w", err)
	}
	f.Close()
	defer os.Remove(tmp + "-journal")
	defer os.Remove(tmp)
	// The page size is set before the first write, which the writer's
	// switch to WAL mode would be.
	w, err := sql.Open(DriverName, "file:"+tmp)
	if err != nil {
		return nil, err
	}
	w.SetMaxOpenConns(1)
	if _, err := w.ExecContext(ctx, fmt.Sprintf("PRAGMA page_size = %d", pageSize)); err != nil {
		w.Close()
		return nil, err
	}
	if err := initSchema(ctx, w); err != nil {
		w.Close()
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, fmt.Errorf("create database: %w", err)
	}
	if err := syncFile(tmp); err != nil {
		return nil, fmt.Errorf("create database: %w", err)
	}
	// A link, unlike a rename, fails if path exists (another process
	// made it meanwhile).
	if err := os.Link(tmp, path); err != nil {
		return nil, fmt.Errorf("create database: %w", err)
	}
	os.Remove(tmp)
	durable.SyncDir(filepath.Dir(path))
	return Open(ctx, path, opts)
}

// removeStale removes what a process killed while creating the database
// at path left: files of its name with .init-PID, of processes gone.
func removeStale(path string) {
	matches, _ := filepath.Glob(path + ".init-*")
	for _, m := range matches {
		pid, err := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(m, path+".init-"), "-journal"))
		if err != nil || processAlive(pid) {
			continue
		}
		os.Remove(m)
	}
}

// syncFile flushes the file at path to stable storage.
func syncFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

// initSchema marks a new database as Trail's and applies every migration
// to it.
func initSchema(ctx context.Context, w *sql.DB) error {
	if _, err := w.ExecContext(ctx, fmt.Sprintf("PRAGMA application_id = %d", applicationID)); err != nil {
		return fmt.Errorf("create schema: %w", err)
	}
	if err := migrate(ctx, w, migrations); err != nil {
		return fmt.Errorf("create schema: %w", err)
	}
	return nil
}

// Open opens an existing Trail database. It returns ErrNoDatabase,
// ErrNotTrail or ErrNewerSchema (wrapped with the path) rather than creating
// or guessing; a database of a newer schema is refused before anything is
// written to it. One of an older schema is migrated (migrate.go), unless
// the store is read-only (read as it is from readableFrom on, else
// ErrNeedsUpgrade).
func Open(ctx context.Context, path string, opts Options) (*Store, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.CacheSize <= 0 {
		opts.CacheSize = 64 << 20
	}
	if opts.IndexChunk <= 0 {
		opts.IndexChunk = 1 << segBits
	}
	if opts.IndexDelay <= 0 {
		opts.IndexDelay = 250 * time.Millisecond
	}
	if opts.MaxIndexLag <= 0 {
		opts.MaxIndexLag = 100000
	}
	if opts.ReadConns <= 0 {
		opts.ReadConns = 4
	}
	if _, err := os.Stat(path); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%s: %w", path, ErrNoDatabase)
		}
		return nil, err
	}
	if err := checkHeader(path); err != nil {
		return nil, err
	}
	ids, err := statFiles(path)
	if err != nil {
		return nil, err
	}
	s := &Store{path: path, opts: opts, logger: opts.Logger, ids: ids, names: map[int64]string{}}
	s.ix = newIndexer(s)
	s.r, err = sql.Open(DriverName, readerDSN(path))
	if err != nil {
		return nil, err
	}
	s.r.SetMaxOpenConns(opts.ReadConns)
	s.r.SetMaxIdleConns(opts.ReadConns)
	fail := func(err error) (*Store, error) {
		// The indexer is not running yet, so close by hand.
		if s.ins != nil {
			s.ins.close()
		}
		if s.w != nil {
			s.w.Close()
		}
		s.r.Close()
		return nil, err
	}
	ver, err := checkSchema(ctx, s.r, path)
	if err != nil {
		return fail(err)
	}
	if opts.ReadOnly && ver < readableFrom {
		return fail(fmt.Errorf("%s: schema %d: %w", path, ver, ErrNeedsUpgrade))
	}
	if !opts.ReadOnly {
		removeStale(path)
		if s.w, err = openWriter(path, opts); err != nil {
			return fail(err)
		}
		if ver < schemaVersion {
			if err := migrate(ctx, s.w, migrations); err != nil {
				return fail(fmt.Errorf("%s: upgrade from schema %d: %w", path, ver, err))
			}
		}
		if s.ins, err = newInserter(ctx, s.w); err != nil {
			return fail(err)
		}
	}
	if err := s.loadLogs(ctx); err != nil {
		return fail(fmt.Errorf("%s: read logs: %w", path, err))
	}
	if !opts.ReadOnly {
		s.ix.start()
	}
	return s, nil
}

// checkHeader rejects files that are not SQLite databases before the driver
// gets a chance to treat them as empty ones, and other applications'
// databases before the writer's connection switches them to WAL mode. The
// header of a database in rollback-journal mode is current, so its
// application id and schema version are read from it; a database in WAL
// mode, which opening does not change, is checked once open.
func checkHeader(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.IsDir() {
		return fmt.Errorf("%s: %w (a directory, not a database file)", path, ErrNotTrail)
	}
	hdr := make([]byte, 100)
	n, _ := io.ReadFull(f, hdr)
	if n == 0 {
		return fmt.Errorf("%s: %w (empty file)", path, ErrNotTrail)
	}
	if n < len(hdr) || string(hdr[:16]) != "SQLite format 3\x00" {
		return fmt.Errorf("%s: %w (not an SQLite file)", path, ErrNotTrail)
	}
	if hdr[18] == 1 { // rollback journal
		if app := binary.BigEndian.Uint32(hdr[68:]); app != applicationID {
			return fmt.Errorf("%s: %w (application id %#x)", path, ErrNotTrail, app)
		}
		switch ver := int64(int32(binary.BigEndian.Uint32(hdr[60:]))); {
		case ver > schemaVersion:
			return fmt.Errorf("%s: %w (database has schema %d, this build knows up to %d; upgrade trail)", path, ErrNewerSchema, ver, schemaVersion)
		case ver < 1:
			return fmt.Errorf("%s: %w (no schema version)", path, ErrNotTrail)
		}
	}
	return nil
}

func openWriter(path string, opts Options) (*sql.DB, error) {
	cache := opts.CacheSize
	if cache <= 0 {
		cache = 64 << 20
	}
	w, err := sql.Open(DriverName, WriterDSN(path, cache))
	if err != nil {
		return nil, err
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	w.SetConnMaxIdleTime(0)
	return w, nil
}

// checkSchema checks that db is a Trail database this build can open and
// returns its schema version.
func checkSchema(ctx context.Context, db *sql.DB, path string) (int64, error) {
	var app, ver int64
	if err := db.QueryRowContext(ctx, "PRAGMA application_id").Scan(&app); err != nil {
		if strings.Contains(err.Error(), "readonly database") {
			// SQLITE_READONLY_DIRECTORY and the like: a database in WAL
			// mode is read through its shared-memory index, which SQLite
			// creates beside it.
			return 0, fmt.Errorf("%s: cannot be opened: SQLite must create or write its WAL index (%s-shm) beside it, and this user may not (%v); give it write access to %s, or read a copy of the directory", path, filepath.Base(path), err, filepath.Dir(path))
		}
		return 0, fmt.Errorf("%s: %w: %v", path, ErrNotTrail, err)
	}
	if err := db.QueryRowContext(ctx, "PRAGMA user_version").Scan(&ver); err != nil {
		return 0, fmt.Errorf("%s: %w: %v", path, ErrNotTrail, err)
	}
	if app != applicationID {
		return 0, fmt.Errorf("%s: %w (application id %#x)", path, ErrNotTrail, app)
	}
	if ver > schemaVersion {
		return 0, fmt.Errorf("%s: %w (database has schema %d, this build knows up to %d; upgrade trail)", path, ErrNewerSchema, ver, schemaVersion)
	}
	if ver < 1 {
		return 0, fmt.Errorf("%s: %w (no schema version)", path, ErrNotTrail)
	}
	return ver, nil
}

func (s *Store) loadLogs(ctx context.Context) error {
	rows, err := s.r.QueryContext(ctx, "SELECT id, name, indexed_size FROM logs")
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var id, indexed int64
		var name string
		if err := rows.Scan(&id, &name, &indexed); err != nil {
			return err
		}
		s.mu.Lock()
		s.names[id] = name
		s.mu.Unlock()
		s.ix.setIndexed(id, indexed)
	}
	return rows.Err()
}

// logName returns the name of log id, read from the database the first
// time for a log another process created after this store was opened.
func (s *Store) logName(ctx context.Context, id int64) (string, error) {
	s.mu.Lock()
	name, ok := s.names[id]
	s.mu.Unlock()
	if ok {
		return name, nil
	}
	resets := s.ix.resetCount()
	var indexed int64
	err := s.r.QueryRowContext(ctx, "SELECT name, indexed_size FROM logs WHERE id = ?", id).Scan(&name, &indexed)
	if errors.Is(err, sql.ErrNoRows) {
		return "", fmt.Errorf("log %d: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return "", err
	}
	s.mu.Lock()
	_, known := s.names[id]
	if !known {
		s.names[id] = name
	}
	s.mu.Unlock()
	if !known {
		s.ix.learn(id, indexed, resets)
	}
	return name, nil
}

// Close stops the indexer and closes the database.
func (s *Store) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	s.ix.stop()
	var errs []error
	if s.w != nil {
		s.wmu.Lock()
		errs = append(errs, s.ix.flushRollups(context.Background(), true))
		s.wmu.Unlock()
	}
	if s.ins != nil {
		errs = append(errs, s.ins.close())
	}
	if s.r != nil {
		errs = append(errs, s.r.Close())
	}
	if s.w != nil {
		errs = append(errs, s.w.Close())
	}
	return errors.Join(errs...)
}

// CreateLog implements store.Store.
func (s *Store) CreateLog(ctx context.Context, name, origin, verifierKey string) (store.LogInfo, error) {
	if s.w == nil {
		return store.LogInfo{}, ErrReadOnly
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	now := time.Now().UTC()
	if err := s.syncFull(ctx); err != nil {
		return store.LogInfo{}, err
	}
	if err := s.checkFiles(); err != nil {
		return store.LogInfo{}, err
	}
	res, err := s.w.ExecContext(ctx,
		"INSERT INTO logs (name, origin, verifier_key, created_at) VALUES (?, ?, ?, ?) ON CONFLICT (name) DO NOTHING",
		name, origin, verifierKey, now.UnixNano())
	if err != nil {
		return store.LogInfo{}, err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return store.LogInfo{}, fmt.Errorf("log %q: %w", name, store.ErrExists)
	}
	if err := s.checkFiles(); err != nil {
		return store.LogInfo{}, err
	}
	id, err := res.LastInsertId()
	if err != nil {
		return store.LogInfo{}, err
	}
	if id > maxTileLog {
		return store.LogInfo{}, fmt.Errorf("too many logs (limit %d)", maxTileLog)
	}
	s.mu.Lock()
	s.names[id] = name
	s.mu.Unlock()
	s.ix.setIndexed(id, 0)
	return store.LogInfo{ID: id, Name: name, Origin: origin, VerifierKey: verifierKey, CreatedAt: time.Unix(0, now.UnixNano()).UTC()}, nil
}

const logCols = "id, name, origin, verifier_key, created_at"

func scanLog(sc interface{ Scan(...any) error }) (store.LogInfo, error) {
	var li store.LogInfo
	var created int64
	err := sc.Scan(&li.ID, &li.Name, &li.Origin, &li.VerifierKey, &created)
	li.CreatedAt = time.Unix(0, created).UTC()
	return li, err
}

// Log implements store.Store.
func (s *Store) Log(ctx context.Context, name string) (store.LogInfo, error) {
	li, err := scanLog(s.r.QueryRowContext(ctx, "SELECT "+logCols+" FROM logs WHERE name = ?", name))
	if errors.Is(err, sql.ErrNoRows) {
		return li, fmt.Errorf("log %q: %w", name, store.ErrNotFound)
	}
	return li, err
}

// Logs implements store.Store.
func (s *Store) Logs(ctx context.Context) ([]store.LogInfo, error) {
	rows, err := s.r.QueryContext(ctx, "SELECT "+logCols+" FROM logs ORDER BY name")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []store.LogInfo
	for rows.Next() {
		li, err := scanLog(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, li)
	}
	return out, rows.Err()
}

// syncNormal switches the write connection to synchronous=NORMAL, for the
// indexer's transactions. The caller holds wmu.
func (s *Store) syncNormal(ctx context.Context) error {
	s.notFull = true
	_, err := s.w.ExecContext(ctx, "PRAGMA synchronous = NORMAL")
	return err
}

// syncFull switches the write connection back to synchronous=FULL, which
// every commit of events needs. The caller holds wmu.
func (s *Store) syncFull(ctx context.Context) error {
	if !s.notFull {
		return nil
	}
	if _, err := s.w.ExecContext(context.WithoutCancel(ctx), "PRAGMA synchronous = FULL"); err != nil {
		return fmt.Errorf("restore synchronous=FULL: %w", err)
	}
	s.notFull = false
	return nil
}

// placeholders returns "?, ?, ?" with n marks.
func placeholders(n int) string {
	return strings.TrimSuffix(strings.Repeat("?, ", n), ", ")
}
