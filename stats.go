package trail

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/trail-audit/trail/event"
	"github.com/trail-audit/trail/internal/store"
)

// day is the width of daily buckets: a UTC day.
const day = 24 * time.Hour

// MaxStatsBuckets bounds the buckets of one Stats series.
const MaxStatsBuckets = 2000

// StatsQuery selects the events counted by (*Log).Stats by when they
// happened (the event's time, as the client gave it or, without one, its
// receipt time). Unlike Query, which selects by receipt time, it can count
// events that arrived late into the hour they happened in.
type StatsQuery struct {
	// Since and Until bound the events' time: Since <= time < Until,
	// widened to whole buckets. A zero Since starts at the first event. A
	// zero Until ends after the last event, and no earlier than now plus
	// Limits.MaxFutureSkew, the latest time an event may carry.
	Since, Until time.Time
	// Bucket is the width of the series' buckets: time.Hour or 24*time.Hour
	// (UTC days). Zero picks hours for ranges up to 72 hours, days otherwise.
	Bucket time.Duration
	// Top is the length of each top list: default 10, at most 100.
	Top int
	// HideReads leaves out Trail's own reads, the events of ReadActions,
	// and keeps its key administration (trail.key.create and
	// trail.key.revoke). The reads are taken out of Total, ByOutcome,
	// Series and TopActions exactly. The counts by actor do not know
	// actions, so in TopActors the log's API keys, under which the server
	// records reads, count only the keys they created or revoked, and
	// each other caller's listings of keys (trail.key.list at the command
	// line) are taken off its count; an actor other than these keeps any
	// read action it appended itself. FailedIPs are unchanged.
	HideReads bool
}

// Stats counts a log's events by when they happened: over time, by
// outcome, and by actor, action and the source IP of events that did not
// succeed. It comes from counts the log keeps as it indexes events, not
// from reading them, so it costs the same at any log size; like the search
// indexes, the counts may trail the newest events by a moment (IndexedTo).
//
// It marshals to JSON with snake_case names, Bucket as "hour" or "day".
type Stats struct {
	// Since and Until are the range counted, [Since, Until), aligned to
	// bucket boundaries (UTC).
	Since time.Time `json:"since"`
	Until time.Time `json:"until"`
	// Bucket is the width of Series' buckets: time.Hour or 24*time.Hour.
	Bucket time.Duration `json:"bucket"`
	// Total is the number of events in the range.
	Total int64 `json:"total"`
	// ByOutcome counts the events in the range by outcome: "success",
	// "failure", "denied" and "error", all four always present.
	ByOutcome map[string]int64 `json:"by_outcome"`
	// Series has one bucket per Bucket of [Since, Until), oldest first,
	// empty ones included.
	Series []StatsBucket `json:"series"`
	// TopActors and TopActions are the actor ids and actions with the most
	// events in the range, most first, ties in byte order of the value.
	TopActors  []Count `json:"top_actors"`
	TopActions []Count `json:"top_actions"`
	// FailedIPs are the source IPs with the most events in the range that
	// did not succeed (failure, denied or error), most first, ties in byte
	// order: the view of password guessing. Events without a source IP
	// are not counted.
	FailedIPs []IPCount `json:"failed_ips"`
	// IndexedTo says how far the counts go: they cover exactly the events
	// with seq < IndexedTo.
	IndexedTo int64 `json:"indexed_to"`
}

// StatsBucket counts the events in one bucket of a Stats series: Total of
// any outcome, and the failures, denials and errors among them.
type StatsBucket struct {
	Start   time.Time `json:"start"`
	Total   int64     `json:"total"`
	Failure int64     `json:"failure"`
	Denied  int64     `json:"denied"`
	Error   int64     `json:"error"`
}

// Count is how many events have a value: an actor id or an action.
type Count struct {
	Value string `json:"value"`
	Count int64  `json:"count"`
}

// IPCount is how many events from a source IP did not succeed. First and
// Last are the starts of the first and last bucket of the range with such
// events.
type IPCount struct {
	IP    string    `json:"ip"`
	Count int64     `json:"count"`
	First time.Time `json:"first"`
	Last  time.Time `json:"last"`
}

// statsJSON is Stats as it is marshaled, with the bucket by name.
type statsJSON struct {
	plainStats
	Bucket string `json:"bucket"`
}

type plainStats Stats

// MarshalJSON encodes s with Bucket as "hour" or "day" (another width as
// a Go duration such as "30m0s").
func (s Stats) MarshalJSON() ([]byte, error) {
	name := s.Bucket.String()
	switch s.Bucket {
	case time.Hour:
		name = "hour"
	case day:
		name = "day"
	}
	return json.Marshal(statsJSON{plainStats(s), name})
}

// UnmarshalJSON decodes what MarshalJSON encodes.
func (s *Stats) UnmarshalJSON(data []byte) error {
	var j statsJSON
	if err := json.Unmarshal(data, &j); err != nil {
		return err
	}
	*s = Stats(j.plainStats)
	switch j.Bucket {
	case "hour":
		s.Bucket = time.Hour
	case "day":
		s.Bucket = day
	default:
		d, err := time.ParseDuration(j.Bucket)
		if err != nil {
			return fmt.Errorf("stats bucket %q: not hour, day or a duration", j.Bucket)
		}
		s.Bucket = d
	}
	return nil
}

// hourTime returns the start of the hour h (as counted by store.HourOf).
func hourTime(h int64) time.Time { return time.Unix(h*3600, 0).UTC() }

// Stats counts the log's events whose time is in q's range; see Stats. An
// invalid query gives a *ValidationError naming the field: a range of more
// than MaxStatsBuckets buckets names "since" (or "bucket" when days would
// fit).
func (l *Log) Stats(ctx context.Context, q StatsQuery) (*Stats, error) {
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
	if n := end.Sub(start) / bucket; n > MaxStatsBuckets {
		field, unit := "since", "hour"
		if bucket == day {
			unit = "day"
		} else if end.Sub(start)/day < MaxStatsBuckets {
			field = "bucket"
		}
		return nil, &event.Error{Index: -1, Field: field, Reason: fmt.Sprintf(
			"the range holds %d %s buckets, more than %d: narrow since and until, or count by day", n, unit, MaxStatsBuckets)}
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
	st := &Stats{
		Since: start, Until: end, Bucket: bucket, IndexedTo: r.IndexedTo,
		Series:     make([]StatsBucket, 0, (to-from)/bh),
		TopActors:  counts(r.Actors),
		TopActions: counts(r.Actions),
		FailedIPs:  make([]IPCount, 0, len(r.FailedIPs)),
	}
	var sum store.Counts
	next := r.Series
	for h := from; h < to; h += bh {
		b := StatsBucket{Start: hourTime(h)}
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
		st.FailedIPs = append(st.FailedIPs, IPCount{IP: v.Value, Count: v.Count, First: hourTime(v.First), Last: hourTime(v.Last)})
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
	q := Query{Action: "trail.key.*", Since: start.Add(-time.Hour), Until: end.Add(time.Hour)}
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

func counts(vs []store.ValueCount) []Count {
	out := make([]Count, len(vs))
	for i, v := range vs {
		out[i] = Count{Value: v.Value, Count: v.Count}
	}
	return out
}

// Actions lists every action the log has seen with its event count, most
// frequent first, ties in byte order (for the viewer's action filter).
// Unlike Stats it counts every committed event at once.
func (l *Log) Actions(ctx context.Context) ([]Count, error) {
	as, err := l.db.st.Actions(ctx, l.info.ID)
	if err != nil {
		return nil, err
	}
	out := make([]Count, len(as))
	for i, a := range as {
		out[i] = Count{Value: a.Value, Count: a.Count}
	}
	return out, nil
}
