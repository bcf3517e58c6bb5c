//go:build !(darwin || dragonfly || freebsd || illumos || linux || netbsd || openbsd)

package dirlock

import "os"

// TryLock does not lock on systems without flock: there a lock file only
// records who opened it last.
func TryLock(f *os.File) error { return nil }

// Open opens (creating it, mode 0600) the lock file path.
func Open(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
}
