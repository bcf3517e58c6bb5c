package trail

import (
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/maphash"
	"slices"
	"strings"
	"time"

	"github.com/trail-audit/trail/event"
	"github.com/trail-audit/trail/internal/derive"
	"github.com/trail-audit/trail/internal/store"
	"github.com/trail-audit/trail/internal/tally"
)

// ErrIndexMismatch: Log.VerifyIndex found the log's indexes or counts
// differ from what its events say; the IndexReport lists how.
var ErrIndexMismatch = errors.New("indexes do not match the events")

// VerifyIndexOptions tune Log.VerifyIndex.
type VerifyIndexOptions struct {
	// MaxDiffs bounds the differences listed (default 100); the others
	// are only counted.
	MaxDiffs int
	// MaxSeqs bounds the seqs listed per difference and side (default
	// 10); all are counted.
	MaxSeqs int
	// Progress, if set, is called now and then with the number of events
	// checked so far and how many there are to check.
	Progress func(done, total int64)
}

// IndexReport is what Log.VerifyIndex compared and found.
type IndexReport struct {
	Log  string `json:"log"`
	Size int64  `json:"size"` // the log's size when the check began
	// IndexedTo is how far the search indexes (and the per-action
	// counts) went, and were compared: the events with seq < IndexedTo.
	// Searches read the others (at most the indexer's lag) directly.
	IndexedTo int64 `json:"indexed_to"`
	// CountedTo is how far the hourly and daily counts went, and were
	// compared (<= IndexedTo).
	CountedTo int64 `json:"counted_to"`
	// Diffs are the differences found, at most MaxDiffs, by index and
	// value; Unlisted counts those left out (a posting list that differs
	// in several segments, once per segment).
	Diffs    []IndexDiff `json:"differences"`
	Unlisted int64       `json:"unlisted,omitempty"`
}

// IndexDiff is one difference between what an index or count holds for a
// value and what the log's events say.
type IndexDiff struct {
	// Index is "action", "outcome", "actor", "ip", "target" (Value is
	// type:id) or "text" (Value is a word) for a search index; "counts
	// by hour", "counts by day" or "action counts" for a count.
	Index string `json:"index"`
	// Value is the value filed or counted under.
	Value string `json:"value"`
	// Missing are seqs of events with the value that the index does not
	// list under it (they do not show in a search for it), the first
	// MaxSeqs of MissingCount.
	Missing      []int64 `json:"missing,omitempty"`
	MissingCount int64   `json:"missing_count,omitempty"`
	// Extra are seqs the index lists under the value whose events do not
	// have it, the first MaxSeqs of ExtraCount.
	Extra      []int64 `json:"extra,omitempty"`
	ExtraCount int64   `json:"extra_count,omitempty"`
	// Damaged: part of what the index stores under the value cannot be
	// decoded (Value is empty when it could not be read either).
	Damaged bool `json:"damaged,omitempty"`
	// Stored and Derived are, for a count, what is stored and what the
	// events add up to.
	Stored  *IndexCounts `json:"stored,omitempty"`
	Derived *IndexCounts `json:"derived,omitempty"`
}

// IndexCounts are the numbers of one stored count: events, and the
// failures, denials and errors among them.
type IndexCounts struct {
	Total   int64 `json:"total"`
	Failure int64 `json:"failure"`
	Denied  int64 `json:"denied"`
	Error   int64 `json:"error"`
}

func (c IndexCounts) String() string {
	s := fmt.Sprintf("%d events", c.Total)
	if c.Failure+c.Denied+c.Error > 0 {
		s += fmt.Sprintf(" (%d failed, %d denied, %d errors)", c.Failure, c.Denied, c.Error)
	}
	return s
}

// String describes the difference in a line, such as `actor "alice": 2
// events missing from the index: seqs 17, 912`.
func (d IndexDiff) String() string {
	var b strings.Builder
	b.WriteString(d.Index)
	if d.Value != "" {
		fmt.Fprintf(&b, " %q", d.Value)
	}
	b.WriteString(":")
	var parts []string
	if d.Damaged {
		parts = append(parts, "stored entries cannot be decoded")
	}
	if d.MissingCount > 0 {
		parts = append(parts, fmt.Sprintf("%s missing from the index: %s", events(d.MissingCount), seqList(d.Missing, d.MissingCount)))
	}
	if d.ExtraCount > 0 {
		verb := "do"
		if d.ExtraCount == 1 {
			verb = "does"
		}
		parts = append(parts, fmt.Sprintf("%s listed that %s not have it: %s", events(d.ExtraCount), verb, seqList(d.Extra, d.ExtraCount)))
	}
	if d.Stored != nil && d.Derived != nil {
		parts = append(parts, fmt.Sprintf("stored %s, the events add up to %s", d.Stored, d.Derived))
	}
	b.WriteString(" " + strings.Join(parts, "; "))
	return b.String()
}

func events(n int64) string {
	if n == 1 {
		return "1 event"
	}
	return fmt.Sprintf("%d events", n)
}

// seqList lists seqs, saying how many more there are than listed.
func seqList(seqs []int64, n int64) string {
	s := make([]string, len(seqs))
	for i, q := range seqs {
		s[i] = fmt.Sprint(q)
	}
	word := "seqs "
	if n == 1 {
		word = "seq "
	}
	out := word + strings.Join(s, ", ")
	if more := n - int64(len(seqs)); more > 0 {
		out += fmt.Sprintf(" and %d more", more)
	}
	return out
}

// indexSegment is how many events VerifyIndex derives and compares at a
// time: a segment of the SQLite store's indexes.
const indexSegment = 1 << 14

// indexTallyKeys bounds the keys each of VerifyIndex's tallies holds in
// memory before it writes them to a temporary file.
var indexTallyKeys = 1 << 17

// VerifyIndex derives the log's search indexes (action, outcome, actor,
// ip, target, free text) and counts (by hour and by UTC day, behind Stats;
// per action, behind Actions) again from its events, the way the indexer
// does, and compares them with the stored ones. It compares what the
// indexer had reached when it began (IndexReport.IndexedTo, CountedTo):
// searches read the rest from the events themselves.
//
// It reads the events a segment of 16,384 at a time, comparing that
// segment's posting lists, and sums the counts and the free-text words in
// bounded memory (spilling to temporary files on a large log), to compare
// them at the end. It reads only, and may run beside a server.
//
// If anything differs it returns the report with an error wrapping
// ErrIndexMismatch. Other errors mean it could not finish: the store could
// not be read, or holds damaged events (Verify names them).
func (l *Log) VerifyIndex(ctx context.Context, opts VerifyIndexOptions) (IndexReport, error) {
	rep := IndexReport{Log: l.Name()}
	d, ok := l.db.st.(store.Derived)
	if !ok {
		return rep, errors.New("this store cannot check its indexes")
	}
	if opts.MaxDiffs <= 0 {
		opts.MaxDiffs = 100
	}
	if opts.MaxSeqs <= 0 {
		opts.MaxSeqs = 10
	}
	log := l.info.ID
	st, err := l.db.st.State(ctx, log)
	if err != nil {
		return rep, fmt.Errorf("read log state: %w", err)
	}
	rep.Size = st.Size

	// The stored counts first: their watermarks say how far to compare.
	storedCounts := tally.New(indexTallyKeys)
	defer storedCounts.Close()
	var key []byte
	to, err := d.Counts(ctx, log, func(r store.CountRow) error {
		key = countKey(key[:0], r.CountKey)
		return storedCounts.Add(key, sums(r.Counts))
	})
	if err != nil {
		return rep, fmt.Errorf("read stored counts: %w", err)
	}
	rep.IndexedTo, rep.CountedTo = to.Indexed, to.Rolled
	if high := max(to.Indexed, to.Rolled); high > st.Size {
		// The log may have grown, and been indexed, since its size was
		// read: the progress is past its end only past its size now.
		if size, err := l.db.st.Size(ctx, log); err != nil {
			return rep, fmt.Errorf("read log size: %w", err)
		} else if high > size {
			return rep, &VerifyError{Seq: size, Problem: fmt.Sprintf("the search indexes and counts say they cover %d events, past the log's %d: their progress was changed outside Trail, and searches fail until trail reindex rebuilds them", high, size)}
		}
	}

	// The stored words are read meanwhile, on a connection of their own.
	seed := maphash.MakeSeed()
	storedWords := tally.New(indexTallyKeys)
	defer storedWords.Close()
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	wordsRead := make(chan error, 1)
	go func() {
		// A store may well list a word's events together: they are
		// summed before they go to the tally.
		var word string
		var sum tally.Sums
		err := d.Words(wctx, log, to.Indexed, func(w string, seq int64) error {
			if w != word {
				if sum[0] > 0 {
					if err := storedWords.AddString(word, sum); err != nil {
						return err
					}
				}
				word, sum = w, tally.Sums{}
			}
			sum.Add(tally.Sums{1, mix(seed, seq)})
			return nil
		})
		if err == nil && sum[0] > 0 {
			err = storedWords.AddString(word, sum)
		}
		wordsRead <- err
	}()
	waitWords := func() error {
		err := <-wordsRead
		close(wordsRead)
		return err
	}
	defer func() {
		cancel()
		if _, open := <-wordsRead; open {
			close(wordsRead)
		}
	}()

	v := &indexCheck{l: l, d: d, opts: opts, diffs: map[diffKey]*IndexDiff{}}
	wantCounts := tally.New(indexTallyKeys)
	defer wantCounts.Close()
	wantWords := tally.New(indexTallyKeys)
	defer wantWords.Close()
	total := to.Indexed
	// A segment's words and counts are summed in memory first: most of
	// its events share most of their words and hours.
	segWords, segCounts := batch{}, batch{}
	for from := int64(0); from < to.Indexed; from += indexSegment {
		end := min(from+indexSegment, to.Indexed)
		err := v.segment(ctx, from, end, nil, func(e *event.Event) error {
			for _, w := range derive.Words(e) {
				segWords.add(w, tally.Sums{1, mix(seed, e.Seq)})
			}
			if e.Seq < to.Rolled {
				one := sums(derive.Tally(e))
				derive.Counts(e, func(k store.CountKey) {
					key = countKey(key[:0], k)
					segCounts.addBytes(key, one)
				})
			}
			key = countKey(key[:0], derive.ActionCount(e))
			segCounts.addBytes(key, tally.Sums{1})
			return nil
		})
		if err == nil {
			err = segWords.flush(wantWords)
		}
		if err == nil {
			err = segCounts.flush(wantCounts)
		}
		if err != nil {
			return rep, err
		}
		if opts.Progress != nil {
			opts.Progress(end, total)
		}
	}
	if err := waitWords(); err != nil {
		return rep, fmt.Errorf("read stored words: %w", err)
	}

	// Words whose events differ are looked up again, segment by segment,
	// to name the events.
	var words []string
	wordSums := map[string][2]tally.Sums{}
	var unlistedWords int64
	err = tally.Diff(wantWords, storedWords, func(w string, want, got tally.Sums) error {
		if len(words) < opts.MaxDiffs {
			words = append(words, w)
			wordSums[w] = [2]tally.Sums{want, got}
		} else {
			unlistedWords++
		}
		return nil
	})
	if err != nil {
		return rep, err
	}
	if len(words) > 0 {
		want := map[string]bool{}
		for _, w := range words {
			want[w] = true
		}
		total += to.Indexed
		for from := int64(0); from < to.Indexed; from += indexSegment {
			end := min(from+indexSegment, to.Indexed)
			if err := v.segment(ctx, from, end, want, nil); err != nil {
				return rep, err
			}
			if opts.Progress != nil {
				opts.Progress(to.Indexed+end, total)
			}
		}
		for _, w := range words {
			// The events listed changed between the two reads (another
			// process reset the index meanwhile): say what the first
			// read found.
			if k := (diffKey{store.IndexText, w, ""}); v.diffs[k] == nil {
				want, got := indexCounts(wordSums[w][0]), indexCounts(wordSums[w][1])
				want.Failure, got.Failure = 0, 0
				v.add(k, IndexDiff{Stored: &got, Derived: &want})
			}
		}
	}
	v.unlisted += unlistedWords

	err = tally.Diff(wantCounts, storedCounts, func(k string, want, got tally.Sums) error {
		ck := parseCountKey(k)
		v.addCount(ck, got, want)
		return nil
	})
	if err != nil {
		return rep, err
	}

	rep.Diffs, rep.Unlisted = v.list(), v.unlisted
	if n := int64(len(rep.Diffs)) + rep.Unlisted; n > 0 {
		return rep, fmt.Errorf("%w: %d differences, the first: %s", ErrIndexMismatch, n, rep.Diffs[0])
	}
	return rep, nil
}

// batch sums what some events add to a tally, which then takes each key
// once.
type batch map[string]*tally.Sums

func (b batch) add(key string, s tally.Sums) {
	if p := b[key]; p != nil {
		p.Add(s)
		return
	}
	b[strings.Clone(key)] = &s
}

func (b batch) addBytes(key []byte, s tally.Sums) {
	if p := b[string(key)]; p != nil {
		p.Add(s)
		return
	}
	b[string(key)] = &s
}

// flush adds b's sums to t and empties b.
func (b batch) flush(t *tally.Tally) error {
	for k, s := range b {
		if err := t.AddString(k, *s); err != nil {
			return err
		}
	}
	clear(b)
	return nil
}

// indexCheck gathers the differences VerifyIndex finds.
type indexCheck struct {
	l        *Log
	d        store.Derived
	opts     VerifyIndexOptions
	diffs    map[diffKey]*IndexDiff
	order    []diffKey
	unlisted int64
}

// diffKey is an index and a value, or a count.
type diffKey struct {
	ix        store.Index
	value, id string
}

// countIndex is the diffKey index of counts, after the search indexes.
const countIndex = store.IndexText + 1

// segment compares the posting lists of events [from, to) with what those
// events say, and passes each event to each (if not nil). With words, it
// compares only the free-text index, for those words.
func (v *indexCheck) segment(ctx context.Context, from, to int64, words map[string]bool, each func(*event.Event) error) error {
	log := v.l.info.ID
	var ws []string
	for w := range words {
		ws = append(ws, w)
	}
	stored, err := v.d.Postings(ctx, log, from, to, ws)
	if err != nil {
		return fmt.Errorf("read the indexes of events %d to %d: %w", from, to-1, err)
	}
	want := map[diffKey][]int64{}
	file := func(k diffKey, seq int64) {
		s, ok := want[k]
		if !ok {
			// The event's strings live only as long as the call.
			k.value, k.id = strings.Clone(k.value), strings.Clone(k.id)
		} else if s[len(s)-1] == seq {
			return // a target named twice
		}
		want[k] = append(s, seq)
	}
	next := from
	err = v.l.db.st.Walk(ctx, log, from, to, func(e *event.Event) error {
		if e.Seq != next {
			return fmt.Errorf("seq %d: event missing (trail verify says more)", next)
		}
		next++
		if words == nil {
			derive.Postings(e, func(ix store.Index, value, id string) {
				file(diffKey{ix, value, id}, e.Seq)
			})
		} else {
			for _, w := range derive.Words(e) {
				if words[w] {
					file(diffKey{store.IndexText, w, ""}, e.Seq)
				}
			}
		}
		if each != nil {
			return each(e)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("read events %d to %d: %w", from, to-1, err)
	}
	if next != to {
		return fmt.Errorf("seq %d: event missing (trail verify says more)", next)
	}
	for _, p := range stored {
		k := diffKey{p.Index, p.Value, p.ID}
		if (words == nil) == (p.Index == store.IndexText) {
			continue
		}
		missing, extra := setDiff(want[k], p.Seqs)
		delete(want, k)
		if len(missing)+len(extra) > 0 || p.Damaged {
			v.add(k, IndexDiff{Missing: missing, Extra: extra, Damaged: p.Damaged})
		}
	}
	for k, seqs := range want {
		v.add(k, IndexDiff{Missing: seqs})
	}
	return nil
}

// setDiff returns the seqs of want not in got, and of got not in want,
// both ascending.
func setDiff(want, got []int64) (missing, extra []int64) {
	for len(want) > 0 || len(got) > 0 {
		switch {
		case len(got) == 0 || len(want) > 0 && want[0] < got[0]:
			missing, want = append(missing, want[0]), want[1:]
		case len(want) == 0 || got[0] < want[0]:
			extra, got = append(extra, got[0]), got[1:]
		default:
			want, got = want[1:], got[1:]
		}
	}
	return missing, extra
}

// add records a difference d of k, found in one segment (Missing and
// Extra hold all of that segment's seqs): added to k's, or listed if
// there is room, or counted. d's Index and Value, if set, name k in the
// report.
func (v *indexCheck) add(k diffKey, d IndexDiff) {
	have := v.diffs[k]
	if have == nil {
		if len(v.diffs) >= v.opts.MaxDiffs {
			v.unlisted++
			return
		}
		have = &IndexDiff{Index: d.Index, Value: d.Value, Stored: d.Stored, Derived: d.Derived}
		switch {
		case have.Index != "":
		case k.ix == store.IndexTarget:
			have.Index, have.Value = k.ix.String(), k.value+":"+k.id
		default:
			have.Index, have.Value = k.ix.String(), k.value
		}
		v.diffs[k] = have
		v.order = append(v.order, k)
	}
	have.Damaged = have.Damaged || d.Damaged
	have.MissingCount += int64(len(d.Missing))
	have.ExtraCount += int64(len(d.Extra))
	have.Missing = append(have.Missing, d.Missing[:min(len(d.Missing), v.opts.MaxSeqs-len(have.Missing))]...)
	have.Extra = append(have.Extra, d.Extra[:min(len(d.Extra), v.opts.MaxSeqs-len(have.Extra))]...)
}

// addCount records that the count k holds got where the events add up to
// want.
func (v *indexCheck) addCount(k store.CountKey, got, want tally.Sums) {
	index := "counts by hour"
	switch k.Span {
	case store.SpanDay:
		index = "counts by day"
	case store.SpanAll:
		index = "action counts"
	}
	var value string
	switch {
	case k.Span == store.SpanAll:
		value = k.Value
	case k.Dim == store.CountOutcome:
		value = "all events, " + spanName(k)
	default:
		value = fmt.Sprintf("%s %s, %s", k.Dim, k.Value, spanName(k))
	}
	stored, derived := indexCounts(got), indexCounts(want)
	v.add(diffKey{countIndex, index, value}, IndexDiff{Index: index, Value: value, Stored: &stored, Derived: &derived})
}

// spanName names the hour or day of a count.
func spanName(k store.CountKey) string {
	t := time.Unix(k.Hour*3600, 0).UTC()
	if k.Span == store.SpanDay {
		return t.Format("2006-01-02") + " (UTC)"
	}
	return t.Format("2006-01-02 15:04") + " UTC"
}

// list returns the differences listed, by index, then value.
func (v *indexCheck) list() []IndexDiff {
	slices.SortStableFunc(v.order, func(a, b diffKey) int {
		return cmp.Or(cmp.Compare(a.ix, b.ix), strings.Compare(a.value, b.value), strings.Compare(a.id, b.id))
	})
	out := make([]IndexDiff, len(v.order))
	for i, k := range v.order {
		out[i] = *v.diffs[k]
	}
	return out
}

// mix is a seq's share of the sum that stands for a set of seqs in the
// word tallies: with a seed drawn for each check, sets that differ have
// different sums (but for a chance of about 2^-64), even sets chosen to
// collide by someone who can write the database.
func mix(seed maphash.Seed, seq int64) int64 {
	return int64(maphash.Comparable(seed, seq))
}

func sums(c store.Counts) tally.Sums {
	return tally.Sums{c.Total, c.Failure, c.Denied, c.Error}
}

func indexCounts(s tally.Sums) IndexCounts {
	return IndexCounts{Total: s[0], Failure: s[1], Denied: s[2], Error: s[3]}
}

// countKey appends to b the tally key of k: its span, dim and hour, then
// its value, so that keys sort by hour within a dimension.
func countKey(b []byte, k store.CountKey) []byte {
	b = append(b, byte(k.Span), byte(k.Dim))
	b = binary.BigEndian.AppendUint64(b, uint64(k.Hour)^1<<63)
	return append(b, k.Value...)
}

// parseCountKey reverses countKey.
func parseCountKey(s string) store.CountKey {
	return store.CountKey{
		Span:  store.Span(s[0]),
		Dim:   store.CountDim(s[1]),
		Hour:  int64(binary.BigEndian.Uint64([]byte(s[2:10])) ^ 1<<63),
		Value: s[10:],
	}
}
