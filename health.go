package trail

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/trail-audit/trail/internal/store"
)

// UnavailableError says why the DB cannot store appends now; it matches
// ErrUnavailable, and nothing of the append that got it was stored, unless
// Unknown is set: then it matches ErrOutcomeUnknown instead.
type UnavailableError struct {
	// Reason says what failed and, where it helps, what to do, such as
	// "the disk is full". It is written for people, and safe to show to
	// API clients: it holds no event data, key or secret.
	Reason string
	// Err is the store's error behind it, for logs; may be nil.
	Err error
	// Unknown says that the store lost its connection while committing
	// the append, which may thus have been stored (ErrOutcomeUnknown).
	Unknown bool
}

func (e *UnavailableError) Error() string {
	return e.Summary() + ": " + e.Detail()
}

// Detail is Reason, followed by the store's error when Reason does not
// already say it.
func (e *UnavailableError) Detail() string {
	if e.Err != nil && !strings.Contains(e.Reason, e.Err.Error()) {
		return e.Reason + " (" + e.Err.Error() + ")"
	}
	return e.Reason
}

// Summary is what the error says of the append: the text of
// ErrOutcomeUnknown when Unknown is set, else of ErrUnavailable.
func (e *UnavailableError) Summary() string {
	if e.Unknown {
		return ErrOutcomeUnknown.Error()
	}
	return ErrUnavailable.Error()
}

// Is makes an UnavailableError match ErrUnavailable, or ErrOutcomeUnknown
// when Unknown is set. Err is deliberately not unwrapped: callers branch
// on what the DB says, not on the store's internals.
func (e *UnavailableError) Is(target error) bool {
	if e.Unknown {
		return target == ErrOutcomeUnknown
	}
	return target == ErrUnavailable
}

// ErrIndexing: the background indexer's latest attempt failed. Appends
// still work and searches stay complete (they scan what is not indexed),
// but slower; Ready reports it, wrapped with the cause. The indexer
// retries by itself.
var ErrIndexing = errors.New("search indexing is failing")

// unavailable turns a store's failure to commit into an
// *UnavailableError giving its reason.
func (db *DB) unavailable(err error) error {
	if de := appendDamaged(err); de != nil {
		return de // the stored events need repair, not a retry
	}
	if ue := (*UnavailableError)(nil); errors.As(err, &ue) {
		return err
	}
	return &UnavailableError{Reason: db.reason(err), Err: err, Unknown: errors.Is(err, store.ErrCommitUnknown)}
}

// reason says in a few words why err kept a commit from happening. The
// drivers do not share error types, so SQLite's errors are recognised by
// their standard messages (sqlite3_errstr), the system's by errno.
func (db *DB) reason(err error) string {
	msg := err.Error()
	switch {
	case errors.Is(err, store.ErrGone):
		dir := db.dir
		if abs, err := filepath.Abs(dir); err == nil {
			dir = abs
		}
		return fmt.Sprintf("data directory %s was removed or replaced while Trail had it open; nothing more can be stored until Trail is restarted on it", dir)
	case errors.Is(err, syscall.ENOSPC), strings.Contains(msg, "database or disk is full"):
		return "the disk is full"
	case errors.Is(err, syscall.EROFS):
		return "the file system holding the data directory is read-only"
	case errors.Is(err, fs.ErrPermission), strings.Contains(msg, "readonly database"):
		return "the database files cannot be written (check their permissions)"
	case strings.Contains(msg, "disk I/O error"):
		return "the disk failed a read or write (is it full, or are the files read-only?)"
	case strings.Contains(msg, "database is locked"), errors.Is(err, context.DeadlineExceeded):
		return "the database stayed locked by another process"
	case errors.Is(err, store.ErrConflict):
		return "other processes kept appending to the log meanwhile"
	case errors.Is(err, store.ErrUnreachable):
		return msg // the backend's own words: which server, what to check
	}
	return "the database could not commit"
}

// commitHealth remembers the last group commit that failed, so that Ready
// reports it even when no append comes to fail again.
type commitHealth struct {
	mu       sync.Mutex
	failed   error // nil after a commit succeeds
	failedAt time.Time
}

func (h *commitHealth) record(err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.failed = err
	if err != nil {
		h.failedAt = time.Now()
	}
}

// recentFailure is how long Ready reports a failed commit for: after it,
// the store's probe decides, which runs about as often.
const recentFailure = time.Second

// recent returns the last commit's error if it failed lately.
func (h *commitHealth) recent() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.failed != nil && time.Since(h.failedAt) < recentFailure {
		return h.failed
	}
	return nil
}

// IndexStatus is how far the background indexer of a DB has got.
type IndexStatus struct {
	// Lag is, per log name, how many committed events the search indexes
	// do not cover yet. Searches scan them, so they are found, slower.
	Lag map[string]int64
	// Failures counts the indexer's failed attempts since the DB was
	// opened.
	Failures int64
	// Err is why the indexer's latest attempt failed; nil once one has
	// succeeded since. The indexer retries by itself.
	Err error
}

// IndexStatus reports the background indexer's progress and failures.
func (db *DB) IndexStatus(ctx context.Context) (IndexStatus, error) {
	st, err := db.st.IndexStatus(ctx)
	if err != nil {
		return IndexStatus{}, err
	}
	infos, err := db.st.Logs(ctx)
	if err != nil {
		return IndexStatus{}, err
	}
	out := IndexStatus{Lag: make(map[string]int64, len(infos)), Failures: st.Failures, Err: st.Err}
	for _, li := range infos {
		out.Lag[li.Name] = st.Lag[li.ID]
	}
	return out, nil
}
