// Package dirlock takes the exclusive lock of a file that stands for a
// directory, so that two processes do not run on one directory at once
// (trail serve on a data directory, trail witness on its state).
package dirlock

import "errors"

// ErrHeld: another open file description holds the lock.
var ErrHeld = errors.New("lock held")
