//go:build !(darwin || dragonfly || freebsd || illumos || linux || netbsd || openbsd)

package trail

import (
	"errors"
	"os"
)

// errLockHeld: another open file description holds the lock.
var errLockHeld = errors.New("lock held")

// tryLock does not lock on systems without flock: there Options.Lock
// only records who opened the directory last.
func tryLock(f *os.File) error { return nil }
