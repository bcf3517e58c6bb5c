package trail

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/trail-audit/trail/internal/dirlock"
)

// LockFile is the file in a data directory that a DB opened with
// Options.Lock holds locked, with who holds it written inside.
const LockFile = "serve.lock"

// ErrLocked: another DB opened with Options.Lock (trail serve, trail reindex)
// holds the data directory. The error wrapping it names that process.
var ErrLocked = errors.New("data directory in use by another trail serve or trail reindex")

// lockHolder is what a lock file says about the process holding it.
type lockHolder struct {
	PID     int       `json:"pid"`
	Host    string    `json:"host"`
	Started time.Time `json:"started"`
}

// dirLock is a held lock file. The lock goes with the process: it is
// released when the file is closed, or the process ends however it ends,
// so a crash leaves no stale lock behind (the file stays, unlocked).
type dirLock struct {
	f *os.File
}

// lockDir takes dir's lock file, or fails with an error wrapping ErrLocked
// that names the holder.
func lockDir(dir string) (*dirLock, error) {
	path := filepath.Join(dir, LockFile)
	f, err := dirlock.Open(path)
	if err != nil {
		return nil, fmt.Errorf("lock the data directory: %w", err)
	}
	if err := dirlock.TryLock(f); err != nil {
		defer f.Close()
		if !errors.Is(err, dirlock.ErrHeld) {
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		return nil, fmt.Errorf("%s: %w: %s holds %s; stop it first (trail append, trail keys and the commands that read work beside it)", dir, ErrLocked, describeHolder(f), LockFile)
	}
	host, _ := os.Hostname()
	info, _ := json.Marshal(lockHolder{PID: os.Getpid(), Host: host, Started: time.Now().UTC().Truncate(time.Second)})
	// Who holds it is a courtesy to whoever is refused: the lock holds
	// without it.
	if f.Truncate(0) == nil {
		f.WriteAt(append(info, '\n'), 0)
	}
	return &dirLock{f: f}, nil
}

// describeHolder names the process that wrote the lock file f.
func describeHolder(f *os.File) string {
	b, err := io.ReadAll(io.LimitReader(f, 4096))
	var h lockHolder
	if err != nil || json.Unmarshal(b, &h) != nil || h.PID == 0 {
		return "another process"
	}
	s := fmt.Sprintf("process %d", h.PID)
	if h.Host != "" {
		s += " on " + h.Host
	}
	if !h.Started.IsZero() {
		s += ", started " + h.Started.Format(time.RFC3339) + ","
	}
	return s
}

func (l *dirLock) release() error {
	if l == nil {
		return nil
	}
	return l.f.Close()
}
