//go:build unix

package sqlite

import "syscall"

// wOK is access(2)'s W_OK, the same on every Unix.
const wOK = 2

// writable asks whether this process may write the file at path now.
func writable(path string) error {
	return syscall.Access(path, wOK)
}

// processAlive reports whether a process of that id runs.
func processAlive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || err == syscall.EPERM
}
