package sqlite

import (
	"context"
	"fmt"
	"strconv"

	"github.com/trail-audit/trail/event"
	"github.com/trail-audit/trail/internal/derive"
	"github.com/trail-audit/trail/internal/store"
)

// The indexer's reads: the committed events of a chunk, made into the
// rows the chunk's transactions write (index_write.go).

// minIndexChunk is the smallest chunk the indexer writes when more are
// waiting: about 10 ms of holding the write lock.
const minIndexChunk = 512

// indexEntry is one key of a background index: a and b are the value
// (b only for targets), k the event key. As a posting row (postings.go),
// ks lists the value's later keys.
type indexEntry struct {
	a, b string
	k    int64
	ks   []byte
}

// chunk is a prepared batch of index entries for events [from, to) of log.
type chunk struct {
	log, from, to int64
	// Posting rows, sorted by key.
	actions, outcomes, actors, ips, targets []indexEntry
	docs                                    []indexDoc
	counts                                  rollupCounts
	actionCounts                            map[string]int64
	// The chunk's tail rows, one per index (nil: none), when it covers
	// only part of its segment (tail.go); nil when it covers all of it.
	tails [][]byte
}

// indexDoc is one event's searchable text, for the full-text index.
type indexDoc struct {
	k    int64
	text string
}

// prepareChunk reads the next chunk of log from its indexed_size
// (readChunk); nil means nothing to do.
func (ix *indexer) prepareChunk(ctx context.Context, log int64) (*chunk, error) {
	var done int64
	if err := ix.s.r.QueryRowContext(ctx, "SELECT indexed_size FROM logs WHERE id = ?", log).Scan(&done); err != nil {
		return nil, err
	}
	return ix.readChunk(ctx, log, done)
}

// readChunk is the indexer's read: it reads the chunk of log that starts
// at seq done, up to the log's size as it finds it, and builds its index
// entries, sorted, its full-text rows and its counts; nil means nothing
// to do. It takes no lock and no transaction: the events below a log's
// size never change once committed, so it reads them through the reader
// pool, or from memory when this process committed them (store.Recent),
// while commits and the writing of the chunk before go on.
func (ix *indexer) readChunk(ctx context.Context, log, done int64) (*chunk, error) {
	var size, posted int64
	if err := ix.s.r.QueryRowContext(ctx, "SELECT size, posted_size FROM logs WHERE id = ?", log).Scan(&size, &posted); err != nil {
		return nil, err
	}
	if done >= size {
		return nil, nil
	}
	// A chunk holds the write lock while it is written, and commits wait:
	// keep chunks small while the indexer keeps up, big when it lags.
	n := min(int64(ix.chunk), max(minIndexChunk, (size-done)/4))
	end := min(size, done+n, (done>>segBits+1)<<segBits)
	if posted > done {
		// A chunk cut off after its posting lists were written: redo the
		// rest of that very chunk.
		end = posted
	}
	var actions, outs, actors, ips, targets []indexEntry
	var docs []indexDoc
	counts, actionCounts := rollupCounts{}, map[string]int64{}
	// What each event adds is derive's to say; here it becomes rows.
	lists := [...]*[]indexEntry{store.IndexAction: &actions, store.IndexOutcome: &outs, store.IndexActor: &actors, store.IndexIP: &ips, store.IndexTarget: &targets}
	add := func(k int64, e *event.Event) {
		counts.add(e)
		actionCounts[e.Action]++
		derive.Postings(e, func(index store.Index, a, b string) {
			if index == store.IndexOutcome {
				a = strconv.FormatInt(outcomeCode(event.Outcome(a)), 10)
			}
			*lists[index] = append(*lists[index], indexEntry{a: a, b: b, k: k})
		})
		docs = append(docs, indexDoc{k, derive.Text(e)})
	}
	if evs := ix.recent.Get(log, done, end); evs != nil {
		// Committed by this process moments ago: no need to read them back.
		for _, e := range evs {
			add(eventKey(log, e.Seq), e)
		}
	} else if err := ix.s.readForIndex(ctx, log, done, end, add); err != nil {
		return nil, err
	}
	if int64(len(docs)) != end-done {
		return nil, fmt.Errorf("log %d: expected %d events in [%d, %d), found %d", log, end-done, done, end, len(docs))
	}
	for _, es := range [][]indexEntry{actions, outs, actors, ips, targets} {
		sortEntries(es)
	}
	c := &chunk{
		log: log, from: done, to: end,
		actions: postings(actions), outcomes: postings(outs), actors: postings(actors), ips: postings(ips), targets: postings(targets),
		docs: docs, counts: counts, actionCounts: actionCounts,
	}
	c.tails = chunkTails(c)
	return c, nil
}

// readForIndex reads events [from, to) of log back from the database.
func (s *Store) readForIndex(ctx context.Context, log, from, to int64, add func(int64, *event.Event)) error {
	for e, err := range s.Scan(ctx, log, from, to) {
		if err != nil {
			return err
		}
		add(eventKey(log, e.Seq), e)
	}
	return nil
}
