package postgres

import (
	"sync"
	"time"
)

// A Store remembers where each log ended after its own last commit to
// it: the size, and the data of the bundle that holds the seq at that
// size (none where the size is a bundle's start). While no other Store has
// committed to the log since, the next commit can be built on that and
// sent with its lock, a guard and its writes in one round trip
// (commitKnown), rather than lock and read first, then write: one round
// trip fewer, and the log's lock held for one.
type tips struct {
	mu   sync.Mutex
	at   map[int64]tip
	skip map[int64]time.Time // no guessing before then (moved)
}

// tip is where a log ends: its size, and the data of the bundle that
// holds the seq at that size (nil where the size is a bundle's start).
// Commits use it too for the logs as they found them under the lock.
type tip struct {
	size   int64
	bundle []byte
}

// guessAfter is how long a Store commits to a log through the lock and
// read after its guess of where the log ended was wrong: other Stores
// commit to it too, and a wrong guess costs a round trip. A variable for
// tests.
var guessAfter = time.Second

// known returns the tips of logs ids if every one of them is where known
// says and none was guessed wrong lately.
func (t *tips) known(ids []int64, known map[int64]int64) (map[int64]tip, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := time.Now()
	out := make(map[int64]tip, len(ids))
	for _, id := range ids {
		tp, ok := t.at[id]
		if !ok || tp.size != known[id] || now.Before(t.skip[id]) {
			return nil, false
		}
		out[id] = tp
	}
	return out, true
}

// set records where log ended after a commit of this Store.
func (t *tips) set(log int64, tp tip) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.at == nil {
		t.at = map[int64]tip{}
	}
	t.at[log] = tp
}

// moved forgets the tips of logs, which other Stores moved or which a
// failed commit may have left anywhere; when wrong is set, a guess was
// wrong, and the next commits to them go through the lock and read for
// guessAfter.
func (t *tips) moved(logs []int64, wrong bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, id := range logs {
		delete(t.at, id)
		if wrong {
			if t.skip == nil {
				t.skip = map[int64]time.Time{}
			}
			t.skip[id] = time.Now().Add(guessAfter)
		}
	}
}
