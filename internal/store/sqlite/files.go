package sqlite

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/trail-audit/trail/internal/store"
)

// A store keeps its database open, so when someone removes or replaces the
// file or its directory (rm -rf, a restore from backup, a new trail init in
// its place), SQLite goes on writing happily to files that are no longer
// at the path: everything committed from then on is lost at the next
// restart. So a store remembers the identity (device and inode) of its
// database file and its directory as it opened them, and every write
// checks them after it commits, before it reports success: two stat
// calls.

// fileIDs identify the database file and its directory.
type fileIDs struct {
	dir, db os.FileInfo
}

func statFiles(path string) (fileIDs, error) {
	db, err := os.Stat(path)
	if err != nil {
		return fileIDs{}, err
	}
	dir, err := os.Stat(filepath.Dir(path))
	if err != nil {
		return fileIDs{}, err
	}
	return fileIDs{dir: dir, db: db}, nil
}

// checkFiles returns an error wrapping store.ErrGone if the database file
// or its directory is no longer the one the store opened, and from then on
// returns it without looking again. The caller holds wmu.
func (s *Store) checkFiles() error {
	if s.gone != nil {
		return s.gone
	}
	for _, f := range []struct {
		path, what string
		was        os.FileInfo
	}{
		{filepath.Dir(s.path), "data directory", s.ids.dir},
		{s.path, "database", s.ids.db},
	} {
		fi, err := os.Stat(f.path)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			s.gone = fmt.Errorf("%w: the %s %s was removed", store.ErrGone, f.what, f.path)
		case err != nil:
			// Not known to be gone; not known to be there either.
			return fmt.Errorf("check the %s %s: %w", f.what, f.path, err)
		case !os.SameFile(fi, f.was):
			s.gone = fmt.Errorf("%w: the %s %s was replaced", store.ErrGone, f.what, f.path)
		}
		if s.gone != nil {
			s.logger.Error("the database files were removed or replaced while open; refusing every write", "err", s.gone)
			return s.gone
		}
	}
	return nil
}

// probeInterval is how often Writable writes its probe file at most.
const probeInterval = time.Second

// probe runs writeProbe, at most once per probeInterval: in between it
// returns the last result.
func (s *Store) probe() error {
	s.probeMu.Lock()
	defer s.probeMu.Unlock()
	if !s.probedAt.IsZero() && time.Since(s.probedAt) < probeInterval {
		return s.probeErr
	}
	s.probeErr = writeProbe(s.path)
	s.probedAt = time.Now()
	return s.probeErr
}

// writeProbe checks that the store could still write its files. An open
// connection writes through file descriptors opened long ago, which a
// chmod does not stop, so SQLite would notice only at the next start; and
// a full disk shows only when a commit needs a new block. So it asks the
// kernel whether the database file and its WAL may be written now
// (without opening them: closing a descriptor of the database would drop
// SQLite's locks), then writes a page to a new file beside them, syncs
// and removes it.
func writeProbe(path string) error {
	for _, p := range []string{path, path + "-wal"} {
		if err := writable(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("%s cannot be written: %w", p, err)
		}
	}
	f, err := os.CreateTemp(filepath.Dir(path), ".trail-probe-*")
	if err != nil {
		return fmt.Errorf("cannot create a file in the data directory: %w", err)
	}
	defer os.Remove(f.Name())
	_, err = f.Write(make([]byte, pageSize))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("cannot write a file in the data directory: %w", err)
	}
	return nil
}
