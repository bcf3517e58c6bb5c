//go:build race

package storetest

// raceEnabled reports whether the race detector is on. It slows the SQLite
// engine (C compiled to Go) about tenfold, so the largest test is left to
// runs without it.
const raceEnabled = true
