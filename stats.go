package trail

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/trail-audit/trail/api"
	"github.com/trail-audit/trail/event"
	"github.com/trail-audit/trail/internal/store"
)

// day is the width of daily buckets: a UTC day.
const day = 24 * time.Hour

// MaxStatsBuckets bounds the buckets of one api.Stats series.
const MaxStatsBuckets = 2000

// hourTime returns the start of the hour h (as counted by store.HourOf).
func hourTime(h int64) time.Time { return time.Unix(h*3600, 0).UTC() }

// lastStatsEnd is the latest end a stats range may have: bucket starts
// and ends are written as RFC 3339 times, whose years end at 9999, and a
// day's bucket ending later would not be.
var lastStatsEnd = time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC)

// Stats counts the log's events whose time is in q's range; see api.Stats.
// An invalid query gives an *event.Error naming the field: a range of more
// than MaxStatsBuckets buckets names "since" (or "bucket" when days would
// fit).
func (l *Log) Stats(ctx context.Context, q api.StatsQuery) (*api.Stats, error) {
	if l.db.closing.Load() {
		return nil, ErrClosed
	}
	top := q.Top
	switch {
	case top == 0:
		top = 10
	case top < 0 || top > 100:
		return nil, &event.Error{Index: -1, Field: "top", Reason: "must be from 1 to 100"}
	}
	switch q.Bucket {
	case 0, time.Hour, day:
	default:
		return nil, &event.Error{Index: -1, Field: "bucket", Reason: "must be an hour or a day"}
	}
	if !q.Since.IsZero() && !q.Until.IsZero() && !q.Since.Before(q.Until) {
		return nil, &event.Error{Index: -1, Field: "until", Reason: "must be after since"}
	}

	since, until := q.Since, q.Until
	if since.IsZero() || until.IsZero() {
		// The hours of the first and last event.
		b, err := l.db.st.Rollup(ctx, l.info.ID, store.RollupQuery{Bucket: 1})
		if err != nil {
			return nil, err
		}
		if until.IsZero() {
			until = l.db.opts.Now().Add(l.db.opts.Limits.MaxFutureSkew)
			if b.IndexedTo > 0 && until.Before(hourTime(b.Last+1)) {
				until = hourTime(b.Last + 1)
			}
			if until.Before(since) {
				return nil, &event.Error{Index: -1, Field: "since", Reason: "after the last event and now"}
			}
		}
		if since.IsZero() {
			since = until // nothing to count
			if b.IndexedTo > 0 && hourTime(b.First).Before(until) {
				since = hourTime(b.First)
			}
		}
	}
	bucket := q.Bucket
	if bucket == 0 {
		bucket = time.Hour
		if until.Sub(since) > 72*time.Hour {
			bucket = day
		}
	}
	start := since.UTC().Truncate(bucket)
	end := until.UTC().Truncate(bucket)
	if end.Before(until) {
		end = end.Add(bucket)
	}
	if end.After(lastStatsEnd) {
		return nil, &event.Error{Index: -1, Field: "until", Reason: "must be at most " + lastStatsEnd.Format(time.RFC3339)}
	}
	if q.Since.IsZero() && end.Sub(start)/bucket > MaxStatsBuckets {
		// The range runs from the first event, which may be years back
		// (its time is the client's): the last MaxStatsBuckets buckets.
		start = end.Add(-MaxStatsBuckets * bucket)
	}
	// In seconds: a time.Duration stops at 292 years.
	if n := (end.Unix() - start.Unix()) / int64(bucket/time.Second); n > MaxStatsBuckets {
		field, unit := "since", "hour"
		if bucket == day {
			unit = "day"
		} else if end.Sub(start)/day < MaxStatsBuckets {
			field = "bucket"
		}
		how := "narrow since and until, or count by day"
		if bucket == day {
			how = "narrow since and until"
		}
		return nil, &event.Error{Index: -1, Field: field, Reason: fmt.Sprintf(
			"the range holds %d %s buckets, more than %d: %s", n, unit, MaxStatsBuckets, how)}
	}

	bh := int64(bucket / time.Hour)
	from, to := store.HourOf(start), store.HourOf(end)
	rq := store.RollupQuery{From: from, To: to, Bucket: bh, Top: top}
	var own *readers
	if q.HideReads {
		var err error
		if own, err = l.readers(ctx, start, end); err != nil {
			return nil, err
		}
		// Enough more actors that, with the reads taken off the counts
		// of those who made them, the top ones are still there.
		rq.NotActions, rq.Top = ReadActions(), top+len(own.keys)+len(own.reads)
	}
	r, err := l.db.st.Rollup(ctx, l.info.ID, rq)
	if err != nil {
		return nil, err
	}
	if q.HideReads {
		r.Actors = own.remove(r.Actors, r.IndexedTo)
		r.Actors = r.Actors[:min(len(r.Actors), top)]
		r.Actions = r.Actions[:min(len(r.Actions), top)]
		r.FailedIPs = r.FailedIPs[:min(len(r.FailedIPs), top)]
	}
	st := &api.Stats{
		Since: start, Until: end, Bucket: bucket, IndexedTo: r.IndexedTo,
		Series:     make([]api.StatsBucket, 0, (to-from)/bh),
		TopActors:  counts(r.Actors),
		TopActions: counts(r.Actions),
		FailedIPs:  make([]api.IPCount, 0, len(r.FailedIPs)),
	}
	var sum store.Counts
	next := r.Series
	for h := from; h < to; h += bh {
		b := api.StatsBucket{Start: hourTime(h)}
		if len(next) > 0 && next[0].Start == h {
			c := next[0].Counts
			b.Total, b.Failure, b.Denied, b.Error = c.Total, c.Failure, c.Denied, c.Error
			sum.Add(c)
			next = next[1:]
		}
		st.Series = append(st.Series, b)
	}
	st.Total = sum.Total
	st.ByOutcome = map[string]int64{
		string(event.Success): sum.Total - sum.Failure - sum.Denied - sum.Error,
		string(event.Failure): sum.Failure,
		string(event.Denied):  sum.Denied,
		string(event.Errored): sum.Error,
	}
	for _, v := range r.FailedIPs {
		st.FailedIPs = append(st.FailedIPs, api.IPCount{IP: v.Value, Count: v.Count, First: hourTime(v.First), Last: hourTime(v.Last)})
	}
	return st, nil
}

// readers are the actors of Trail's own events in a range, which Stats
// needs to take the reads off the counts by actor: the log's API keys,
// under which the server records reads and the key administration done
// through the API, with the seqs of their key creations and revocations;
// and the other callers (a person at the command line) who listed keys,
// with the seqs of those listings.
type readers struct {
	keys  map[string][]int64
	reads map[string][]int64
}

// readers finds, among the events whose time is in [start, end), the
// keys' creations and revocations of keys and the other callers' listings
// of keys. Key administration is the only one of Trail's events that a
// caller other than a key makes, and the only one a key makes that is not
// a read; it is rare, so its events are found through the action index.
func (l *Log) readers(ctx context.Context, start, end time.Time) (*readers, error) {
	ks, err := l.db.st.Keys(ctx, l.info.ID)
	if err != nil {
		return nil, err
	}
	t := &readers{keys: make(map[string][]int64, len(ks)), reads: map[string][]int64{}}
	for _, k := range ks {
		t.keys[k.ID] = nil
	}
	// Trail gives its events their receipt time, a moment before they are
	// received: an hour either side finds them all by receipt time.
	q := api.Query{Action: "trail.key.*", Since: start.Add(-time.Hour), Until: end.Add(time.Hour)}
	for e, err := range l.Events(ctx, q) {
		if err != nil {
			return nil, err
		}
		if e.Time.Before(start) || !e.Time.Before(end) {
			continue
		}
		seqs, key := t.keys[e.Actor.ID]
		switch read := IsReadAction(e.Action); {
		case key && !read:
			t.keys[e.Actor.ID] = append(seqs, e.Seq)
		case !key && read:
			t.reads[e.Actor.ID] = append(t.reads[e.Actor.ID], e.Seq)
		}
	}
	return t, nil
}

// remove takes the reads out of actors, the top actors counted over the
// events below indexedTo: a key keeps the count of its key creations and
// revocations, another caller loses its listings of keys; the list is
// sorted again.
func (t *readers) remove(actors []store.ValueCount, indexedTo int64) []store.ValueCount {
	below := func(seqs []int64) int64 {
		var n int64
		for _, seq := range seqs {
			if seq < indexedTo {
				n++
			}
		}
		return n
	}
	out := actors[:0]
	for _, a := range actors {
		if kept, key := t.keys[a.Value]; key {
			a.Count = below(kept)
		} else {
			a.Count -= below(t.reads[a.Value])
		}
		if a.Count > 0 {
			out = append(out, a)
		}
	}
	slices.SortStableFunc(out, func(a, b store.ValueCount) int {
		return cmp.Or(cmp.Compare(b.Count, a.Count), strings.Compare(a.Value, b.Value))
	})
	return out
}

func counts(vs []store.ValueCount) []api.Count {
	out := make([]api.Count, len(vs))
	for i, v := range vs {
		out[i] = api.Count{Value: v.Value, Count: v.Count}
	}
	return out
}

// Actions lists every action the log has seen with its event count, most
// frequent first, ties in byte order (for the viewer's action filter).
// Unlike Stats it counts every committed event at once.
func (l *Log) Actions(ctx context.Context) ([]api.Count, error) {
	as, err := l.db.st.Actions(ctx, l.info.ID)
	if err != nil {
		return nil, err
	}
	out := make([]api.Count, len(as))
	for i, a := range as {
		out[i] = api.Count{Value: a.Value, Count: a.Count}
	}
	return out, nil
}
