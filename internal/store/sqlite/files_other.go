//go:build !unix

package sqlite

// writable cannot ask the system without opening the file here, which
// SQLite's own descriptors forbid: it reports nothing, and the probe file
// alone tells whether the data directory and its disk take writes.
func writable(path string) error { return nil }

// processAlive reports whether a process of that id may run: always, here.
func processAlive(int) bool { return true }
