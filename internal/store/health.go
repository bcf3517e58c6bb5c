package store

import "errors"

// ErrGone: the database files a store has open are no longer the ones at
// its path: they were removed or replaced (with their directory, perhaps)
// while the store had them open. Whatever the store wrote from then on is
// in files nobody will open again, so once it notices it refuses every
// write with ErrGone; the write that noticed (a Commit, say) went to the
// old files, and counts as not stored. Only opening the path again helps.
var ErrGone = errors.New("database files removed or replaced while open")
