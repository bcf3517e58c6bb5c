//go:build darwin || dragonfly || freebsd || illumos || linux || netbsd || openbsd

package dirlock

import (
	"errors"
	"os"
	"syscall"
)

// TryLock takes an exclusive flock on f without waiting: ErrHeld if
// another open file description holds it. The lock goes with the file: it
// is released when f is closed, or the process ends however it ends.
func TryLock(f *os.File) error {
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		switch {
		case err == nil:
			return nil
		case errors.Is(err, syscall.EINTR):
			continue
		case errors.Is(err, syscall.EWOULDBLOCK):
			return ErrHeld
		}
		return err
	}
}
