package store

import (
	"sync"

	"github.com/trail-audit/trail/event"
)

// Recent keeps, per log, the events committed by this process that its
// indexer has not reached yet, so that the indexer need not read them
// back from the database. It is bounded (MaxRecent events, all logs
// together); past the bound, and for events other processes committed,
// the indexer reads from the database. The zero Recent is empty and ready
// to use; it is safe for concurrent use.
type Recent struct {
	mu    sync.Mutex
	logs  map[int64]*recentLog
	total int // events held, all logs
}

type recentLog struct {
	first int64 // seq of evs[0]
	evs   []*event.Event
}

// MaxRecent bounds the events a Recent holds, all logs together.
const MaxRecent = 50000

// Add records events committed at seqs evs[0].Seq, evs[0].Seq+1, …. Events
// that do not follow those held for the log replace them.
func (r *Recent) Add(log int64, evs []*event.Event) {
	if len(evs) == 0 {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.logs == nil {
		r.logs = map[int64]*recentLog{}
	}
	l := r.logs[log]
	if l != nil && l.first+int64(len(l.evs)) != evs[0].Seq {
		r.total -= len(l.evs) // not contiguous: start over
		l = nil
	}
	if l == nil {
		l = &recentLog{first: evs[0].Seq}
		r.logs[log] = l
	}
	if r.total+len(evs) > MaxRecent {
		// Too many held: this log's indexer reads from the database
		// until it catches up.
		r.total -= len(l.evs)
		delete(r.logs, log)
		return
	}
	l.evs = append(l.evs, evs...)
	r.total += len(evs)
}

// Get returns the events [from, to) of log if they are all held, else nil.
func (r *Recent) Get(log, from, to int64) []*event.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	l := r.logs[log]
	if l == nil || from < l.first || to > l.first+int64(len(l.evs)) || from > to {
		return nil // from > to: a caller's bounds read from a damaged database
	}
	return l.evs[from-l.first : to-l.first]
}

// Held returns the seqs [from, to) of log's events held; from == to when
// there are none.
func (r *Recent) Held(log int64) (from, to int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	l := r.logs[log]
	if l == nil {
		return 0, 0
	}
	return l.first, l.first + int64(len(l.evs))
}

// Drop forgets the events of log below seq.
func (r *Recent) Drop(log, seq int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	l := r.logs[log]
	if l == nil {
		return
	}
	n := min(max(seq-l.first, 0), int64(len(l.evs)))
	l.evs = append([]*event.Event(nil), l.evs[n:]...)
	l.first += n
	r.total -= int(n)
}
