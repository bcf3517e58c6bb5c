//go:build race

package trail_test

// raceEnabled reports whether the race detector is on; it slows the SQLite
// engine about tenfold, so the largest tests are left to runs without it.
const raceEnabled = true
