//go:build race

package sqlite

// raceEnabled reports whether the race detector is on; it slows the SQLite
// engine about tenfold, so tests that fill whole index segments in one
// goroutine are left to runs without it.
const raceEnabled = true
