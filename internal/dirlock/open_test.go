//go:build darwin || dragonfly || freebsd || illumos || linux || netbsd || openbsd

package dirlock_test

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/trail-audit/trail/internal/dirlock"
)

// Open makes a lock file, reopens it, and refuses a symbolic link (whose
// target would be written) and anything but a regular file.
func TestOpen(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "serve.lock")
	for range 2 {
		f, err := dirlock.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := dirlock.TryLock(f); err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("lock file: %v, %v; want mode 0600", fi, err)
	}

	victim := filepath.Join(dir, "victim.txt")
	os.WriteFile(victim, []byte("keep"), 0o644)
	link := filepath.Join(dir, "link.lock")
	os.Symlink(victim, link)
	if f, err := dirlock.Open(link); err == nil || !strings.Contains(err.Error(), "symbolic link") {
		if f != nil {
			f.Close()
		}
		t.Errorf("Open of a symbolic link = %v, want it refused as one", err)
	}
	if b, _ := os.ReadFile(victim); string(b) != "keep" {
		t.Errorf("the link's target holds %q", b)
	}

	fifo := filepath.Join(dir, "fifo.lock")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	if f, err := dirlock.Open(fifo); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		if f != nil {
			f.Close()
		}
		t.Errorf("Open of a FIFO = %v, want it refused", err)
	}
}
