// Package derive says what Trail's derived data holds for each event: the
// entries of a log's search indexes and the counts it keeps (see
// store.Derived). A store's indexer builds its indexes with it, and
// Log.VerifyIndex derives them again with it from the events to check
// what is stored, so the two cannot disagree about what an event adds.
// It does no I/O.
package derive

import (
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/trail-audit/trail/event"
	"github.com/trail-audit/trail/internal/store"
)

// Postings calls add for each entry e has in the posting-list indexes: its
// action (IndexAction), its outcome unless it succeeded (IndexOutcome), its
// actor id (IndexActor), its source IP if it has one (IndexIP), and the
// type and id of each of its targets (IndexTarget; id is empty for the
// others). A target named twice is passed twice.
func Postings(e *event.Event, add func(ix store.Index, value, id string)) {
	add(store.IndexAction, e.Action, "")
	if failed(e.Outcome) {
		add(store.IndexOutcome, string(e.Outcome), "")
	}
	add(store.IndexActor, e.Actor.ID, "")
	if e.Source.IP != "" {
		add(store.IndexIP, e.Source.IP, "")
	}
	for _, t := range e.Targets {
		add(store.IndexTarget, t.Type, t.ID)
	}
}

// failed reports whether o is an outcome other than success, the ones the
// outcome index and the failed IP counts hold.
func failed(o event.Outcome) bool {
	return o == event.Failure || o == event.Denied || o == event.Errored
}

// Text returns the document the free-text index holds for e: the distinct
// words of Tokens(SearchText(e)), in order of first appearance, joined by
// spaces. An index that records only which events hold a word would only
// spend time on a repeated one.
func Text(e *event.Event) string {
	return strings.Join(Words(e), " ")
}

// Words returns the words of Text(e), which it joins: the distinct words
// of Tokens(SearchText(e)), in order of first appearance.
func Words(e *event.Event) []string {
	return words(SearchText(e))
}

// EachWord calls fn with each word of Words(e), perhaps more than once,
// for callers that collect them into a set: the words of an ASCII text
// are found in place, in buf (which it returns, grown, to be passed
// again), without the allocations of Words. fn must not keep w.
func EachWord(buf []byte, e *event.Event, fn func(w []byte)) []byte {
	buf = appendSearchText(buf, e)
	if !splitASCII(buf, func(i, j int) { fn(buf[i:j]) }) {
		for _, w := range Tokens(string(buf)) {
			fn([]byte(w))
		}
	}
	return buf
}

// words is Words for the searchable text s, split in one pass when s is
// ASCII.
func words(s string) []string {
	b := []byte(s)
	var spans [][2]int
	if !splitASCII(b, func(i, j int) { spans = append(spans, [2]int{i, j}) }) {
		return distinct(Tokens(s))
	}
	lower := string(b)
	out := make([]string, len(spans))
	for k, sp := range spans {
		out[k] = lower[sp[0]:sp[1]]
	}
	return distinct(out)
}

// splitASCII lower-cases b in place and calls fn with the bounds of each
// word of Tokens(string(b)), in order, if b is ASCII. It returns false at
// b's first other byte, having called fn for some of the words before it.
func splitASCII(b []byte, fn func(i, j int)) bool {
	start := -1
	for i := 0; i < len(b); i++ {
		c := b[i]
		switch {
		case c >= utf8.RuneSelf:
			return false
		case 'A' <= c && c <= 'Z':
			b[i] = c + 'a' - 'A'
		case 'a' <= c && c <= 'z', '0' <= c && c <= '9':
		default:
			if start >= 0 {
				fn(start, i)
				start = -1
			}
			continue
		}
		if start < 0 {
			start = i
		}
	}
	if start >= 0 {
		fn(start, len(b))
	}
	return true
}

// distinct returns words, each only at its first appearance, reusing
// their slice.
func distinct(words []string) []string {
	var seen map[string]bool
	if len(words) > 32 {
		seen = make(map[string]bool, len(words))
	}
	out := words[:0]
	for _, w := range words {
		if seen != nil {
			if seen[w] {
				continue
			}
			seen[w] = true
		} else if slices.Contains(out, w) {
			continue
		}
		out = append(out, w)
	}
	return out
}

// Tokens splits text into the words free-text search knows: runs of
// letters, marks, digits and private-use characters, lower-cased rune by
// rune. Text stores exactly these words, and a search splits its query
// and the events it scans with it too, so that the index and the scan of
// events not indexed yet agree on every word.
func Tokens(text string) []string {
	return strings.FieldsFunc(strings.Map(unicode.ToLower, text), func(r rune) bool {
		return !unicode.In(r, unicode.L, unicode.M, unicode.N, unicode.Co)
	})
}

// Tally is what e adds to each count it is in (see Counts): one event,
// and one failure, denial or error by its outcome.
func Tally(e *event.Event) store.Counts {
	c := store.Counts{Total: 1}
	switch e.Outcome {
	case event.Failure:
		c.Failure = 1
	case event.Denied:
		c.Denied = 1
	case event.Errored:
		c.Error = 1
	}
	return c
}

// HourCounts calls add with the key of each hourly count e adds Tally(e)
// to, all in the hour of its time (store.HourOf): every event's
// (CountOutcome, value ""), its action's, its actor id's, and, if it did
// not succeed and has a source IP, that IP's (CountFailedIP).
func HourCounts(e *event.Event, add func(store.CountKey)) {
	h := store.HourOf(e.Time)
	add(store.CountKey{Dim: store.CountOutcome, Hour: h})
	add(store.CountKey{Dim: store.CountAction, Hour: h, Value: e.Action})
	add(store.CountKey{Dim: store.CountActor, Hour: h, Value: e.Actor.ID})
	if failed(e.Outcome) && e.Source.IP != "" {
		add(store.CountKey{Dim: store.CountFailedIP, Hour: h, Value: e.Source.IP})
	}
}

// DayOf returns the key of the daily count that the hourly count k is
// summed into: the same value over the UTC day holding the hour. Counts of
// every dimension but CountOutcome are kept by day too, so that top lists
// over whole days read a day's rows rather than its hours'; it returns
// false for CountOutcome.
func DayOf(k store.CountKey) (store.CountKey, bool) {
	if k.Dim == store.CountOutcome {
		return store.CountKey{}, false
	}
	k.Span, k.Hour = store.SpanDay, floorDiv(k.Hour, 24)*24
	return k, true
}

// Counts calls add with the key of every hourly and daily count e adds
// Tally(e) to: HourCounts, and DayOf each of them.
func Counts(e *event.Event, add func(store.CountKey)) {
	HourCounts(e, func(k store.CountKey) {
		add(k)
		if d, ok := DayOf(k); ok {
			add(d)
		}
	})
}

// ActionCount is the key of the count of e's action over all time
// (store.SpanAll), the count Store.Actions returns.
func ActionCount(e *event.Event) store.CountKey {
	return store.CountKey{Dim: store.CountAction, Span: store.SpanAll, Value: e.Action}
}

// floorDiv is a / b rounded down, for b > 0.
func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b < 0 {
		q--
	}
	return q
}
