package trail_test

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/trail-audit/trail"
	"github.com/trail-audit/trail/api"
	"github.com/trail-audit/trail/event"
)

// statsNow is the clock of the Stats tests.
var statsNow = time.Date(2026, 3, 10, 12, 34, 0, 0, time.UTC)

func at(day, hour, min, sec, nsec int) time.Time {
	return time.Date(2026, 3, day, hour, min, sec, nsec, time.UTC)
}

// statsEvents happened over three days before statsNow, at and next to
// hour and day boundaries, with every outcome, from two source IPs and
// none. Their times are given in a zone half an hour off UTC, which must
// not shift them into other buckets.
func statsEvents() []event.Event {
	zone := time.FixedZone("UTC+5:30", 5*3600+1800)
	ev := func(t time.Time, actor, action string, o event.Outcome, ip string) event.Event {
		return event.Event{Time: t.In(zone), Actor: event.Actor{ID: actor}, Action: action, Outcome: o, Source: event.Source{IP: ip}}
	}
	const a, b = "198.51.100.7", "2001:db8::9"
	return []event.Event{
		ev(at(8, 23, 59, 59, 999999999), "mallory", "user.login.failed", event.Failure, a),
		ev(at(9, 0, 0, 0, 0), "alice", "user.login", event.Success, a),
		ev(at(10, 2, 15, 0, 0), "alice", "user.login", event.Success, ""),
		ev(at(10, 2, 20, 0, 0), "bob", "document.read", event.Success, b),
		ev(at(10, 2, 59, 0, 0), "mallory", "user.login.failed", event.Failure, a),
		ev(at(10, 5, 59, 59, 999999999), "mallory", "document.read", event.Denied, a),
		ev(at(10, 5, 30, 0, 0), "bob", "document.update", event.Errored, ""),
		ev(at(10, 6, 0, 0, 0), "carol", "user.login", event.Success, b),
		ev(at(10, 12, 38, 0, 0), "bob", "document.read", event.Errored, b), // within the clock skew
	}
}

// newStatsLog returns a log holding statsEvents, indexed, in a DB whose
// clock reads statsNow.
func newStatsLog(t *testing.T) (*trail.DB, *trail.Log) {
	t.Helper()
	ctx := context.Background()
	db, err := trail.Init(ctx, t.TempDir(), trail.Options{Now: func() time.Time { return statsNow }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	l, err := db.CreateLog(ctx, "audit", "example.com/audit")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.AppendBatch(ctx, statsEvents()); err != nil {
		t.Fatal(err)
	}
	if err := l.WaitIndexed(ctx); err != nil {
		t.Fatal(err)
	}
	return db, l
}

// bk is a series bucket.
func bk(start time.Time, total, failure, denied, errs int64) api.StatsBucket {
	return api.StatsBucket{Start: start, Total: total, Failure: failure, Denied: denied, Error: errs}
}

// emptyBuckets returns zero buckets from start, step apart.
func emptyBuckets(start time.Time, step time.Duration, n int) []api.StatsBucket {
	var out []api.StatsBucket
	for i := range n {
		out = append(out, bk(start.Add(time.Duration(i)*step), 0, 0, 0, 0))
	}
	return out
}

func TestStats(t *testing.T) {
	_, l := newStatsLog(t)
	ctx := context.Background()
	const ipA, ipB = "198.51.100.7", "2001:db8::9"
	tests := []struct {
		name        string
		q           api.StatsQuery
		wantSince   time.Time
		wantUntil   time.Time
		wantBucket  time.Duration
		wantSeries  []api.StatsBucket
		wantOutcome map[string]int64
		wantActors  []api.Count
		wantActions []api.Count
		wantIPs     []api.IPCount
	}{
		{
			name:       "hours, the range widened to whole hours",
			q:          api.StatsQuery{Since: at(10, 1, 30, 0, 0), Until: at(10, 7, 10, 0, 0)},
			wantSince:  at(10, 1, 0, 0, 0),
			wantUntil:  at(10, 8, 0, 0, 0),
			wantBucket: time.Hour,
			wantSeries: slices.Concat(
				emptyBuckets(at(10, 1, 0, 0, 0), time.Hour, 1),
				[]api.StatsBucket{bk(at(10, 2, 0, 0, 0), 3, 1, 0, 0)},
				emptyBuckets(at(10, 3, 0, 0, 0), time.Hour, 2),
				[]api.StatsBucket{bk(at(10, 5, 0, 0, 0), 2, 0, 1, 1), bk(at(10, 6, 0, 0, 0), 1, 0, 0, 0)},
				emptyBuckets(at(10, 7, 0, 0, 0), time.Hour, 1)),
			wantOutcome: map[string]int64{"success": 3, "failure": 1, "denied": 1, "error": 1},
			wantActors:  []api.Count{{Value: "bob", Count: 2}, {Value: "mallory", Count: 2}, {Value: "alice", Count: 1}, {Value: "carol", Count: 1}},
			wantActions: []api.Count{{Value: "document.read", Count: 2}, {Value: "user.login", Count: 2}, {Value: "document.update", Count: 1}, {Value: "user.login.failed", Count: 1}},
			wantIPs:     []api.IPCount{{IP: ipA, Count: 2, First: at(10, 2, 0, 0, 0), Last: at(10, 5, 0, 0, 0)}},
		},
		{
			name:        "one hour, its last nanosecond included",
			q:           api.StatsQuery{Since: at(10, 5, 0, 0, 0), Until: at(10, 6, 0, 0, 0), Top: 1},
			wantSince:   at(10, 5, 0, 0, 0),
			wantUntil:   at(10, 6, 0, 0, 0),
			wantBucket:  time.Hour,
			wantSeries:  []api.StatsBucket{bk(at(10, 5, 0, 0, 0), 2, 0, 1, 1)},
			wantOutcome: map[string]int64{"success": 0, "failure": 0, "denied": 1, "error": 1},
			wantActors:  []api.Count{{Value: "bob", Count: 1}},
			wantActions: []api.Count{{Value: "document.read", Count: 1}},
			wantIPs:     []api.IPCount{{IP: ipA, Count: 1, First: at(10, 5, 0, 0, 0), Last: at(10, 5, 0, 0, 0)}},
		},
		{
			name:       "days",
			q:          api.StatsQuery{Since: at(8, 23, 0, 0, 0), Until: at(10, 3, 0, 0, 0), Bucket: 24 * time.Hour, Top: 2},
			wantSince:  at(8, 0, 0, 0, 0),
			wantUntil:  at(11, 0, 0, 0, 0),
			wantBucket: 24 * time.Hour,
			wantSeries: []api.StatsBucket{
				bk(at(8, 0, 0, 0, 0), 1, 1, 0, 0),
				bk(at(9, 0, 0, 0, 0), 1, 0, 0, 0),
				bk(at(10, 0, 0, 0, 0), 7, 1, 1, 2),
			},
			wantOutcome: map[string]int64{"success": 4, "failure": 2, "denied": 1, "error": 2},
			wantActors:  []api.Count{{Value: "bob", Count: 3}, {Value: "mallory", Count: 3}},
			wantActions: []api.Count{{Value: "document.read", Count: 3}, {Value: "user.login", Count: 3}},
			wantIPs: []api.IPCount{
				{IP: ipA, Count: 3, First: at(8, 0, 0, 0, 0), Last: at(10, 0, 0, 0, 0)},
				{IP: ipB, Count: 1, First: at(10, 0, 0, 0, 0), Last: at(10, 0, 0, 0, 0)},
			},
		},
		{
			name:       "the whole log: from the first event to now and the clock skew, in hours",
			q:          api.StatsQuery{},
			wantSince:  at(8, 23, 0, 0, 0),
			wantUntil:  at(10, 13, 0, 0, 0),
			wantBucket: time.Hour,
			wantSeries: slices.Concat(
				[]api.StatsBucket{bk(at(8, 23, 0, 0, 0), 1, 1, 0, 0), bk(at(9, 0, 0, 0, 0), 1, 0, 0, 0)},
				emptyBuckets(at(9, 1, 0, 0, 0), time.Hour, 25),
				[]api.StatsBucket{bk(at(10, 2, 0, 0, 0), 3, 1, 0, 0)},
				emptyBuckets(at(10, 3, 0, 0, 0), time.Hour, 2),
				[]api.StatsBucket{bk(at(10, 5, 0, 0, 0), 2, 0, 1, 1), bk(at(10, 6, 0, 0, 0), 1, 0, 0, 0)},
				emptyBuckets(at(10, 7, 0, 0, 0), time.Hour, 5),
				[]api.StatsBucket{bk(at(10, 12, 0, 0, 0), 1, 0, 0, 1)}),
			wantOutcome: map[string]int64{"success": 4, "failure": 2, "denied": 1, "error": 2},
			wantActors:  []api.Count{{Value: "bob", Count: 3}, {Value: "mallory", Count: 3}, {Value: "alice", Count: 2}, {Value: "carol", Count: 1}},
			wantActions: []api.Count{{Value: "document.read", Count: 3}, {Value: "user.login", Count: 3}, {Value: "user.login.failed", Count: 2}, {Value: "document.update", Count: 1}},
			wantIPs: []api.IPCount{
				{IP: ipA, Count: 3, First: at(8, 23, 0, 0, 0), Last: at(10, 5, 0, 0, 0)},
				{IP: ipB, Count: 1, First: at(10, 12, 0, 0, 0), Last: at(10, 12, 0, 0, 0)},
			},
		},
		{
			name:        "more than 72 hours: days",
			q:           api.StatsQuery{Since: at(7, 12, 0, 0, 0), Top: 1},
			wantSince:   at(7, 0, 0, 0, 0),
			wantUntil:   at(11, 0, 0, 0, 0),
			wantBucket:  24 * time.Hour,
			wantSeries:  []api.StatsBucket{bk(at(7, 0, 0, 0, 0), 0, 0, 0, 0), bk(at(8, 0, 0, 0, 0), 1, 1, 0, 0), bk(at(9, 0, 0, 0, 0), 1, 0, 0, 0), bk(at(10, 0, 0, 0, 0), 7, 1, 1, 2)},
			wantOutcome: map[string]int64{"success": 4, "failure": 2, "denied": 1, "error": 2},
			wantActors:  []api.Count{{Value: "bob", Count: 3}},
			wantActions: []api.Count{{Value: "document.read", Count: 3}},
			wantIPs:     []api.IPCount{{IP: ipA, Count: 3, First: at(8, 0, 0, 0, 0), Last: at(10, 0, 0, 0, 0)}},
		},
		{
			name:        "72 hours: hours",
			q:           api.StatsQuery{Since: at(7, 13, 0, 0, 0), Until: at(10, 13, 0, 0, 0), Top: 1},
			wantSince:   at(7, 13, 0, 0, 0),
			wantUntil:   at(10, 13, 0, 0, 0),
			wantBucket:  time.Hour,
			wantOutcome: map[string]int64{"success": 4, "failure": 2, "denied": 1, "error": 2},
			wantActors:  []api.Count{{Value: "bob", Count: 3}},
			wantActions: []api.Count{{Value: "document.read", Count: 3}},
			wantIPs:     []api.IPCount{{IP: ipA, Count: 3, First: at(8, 23, 0, 0, 0), Last: at(10, 5, 0, 0, 0)}},
		},
		{
			name:        "no events in range",
			q:           api.StatsQuery{Since: at(1, 0, 0, 0, 0), Until: at(2, 0, 0, 0, 0)},
			wantSince:   at(1, 0, 0, 0, 0),
			wantUntil:   at(2, 0, 0, 0, 0),
			wantBucket:  time.Hour,
			wantSeries:  emptyBuckets(at(1, 0, 0, 0, 0), time.Hour, 24),
			wantOutcome: map[string]int64{"success": 0, "failure": 0, "denied": 0, "error": 0},
			wantActors:  []api.Count{},
			wantActions: []api.Count{},
			wantIPs:     []api.IPCount{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, err := l.Stats(ctx, tt.q)
			if err != nil {
				t.Fatalf("Stats(%+v) = %v", tt.q, err)
			}
			if !st.Since.Equal(tt.wantSince) || !st.Until.Equal(tt.wantUntil) || st.Bucket != tt.wantBucket {
				t.Errorf("Stats(%+v) range = [%v, %v) by %v, want [%v, %v) by %v", tt.q, st.Since, st.Until, st.Bucket, tt.wantSince, tt.wantUntil, tt.wantBucket)
			}
			if st.Since.Location() != time.UTC || st.Until.Location() != time.UTC {
				t.Errorf("Stats(%+v) range in %v and %v, want UTC", tt.q, st.Since.Location(), st.Until.Location())
			}
			if tt.wantSeries != nil && !reflect.DeepEqual(st.Series, tt.wantSeries) {
				t.Errorf("Stats(%+v).Series =\n%v\nwant\n%v", tt.q, st.Series, tt.wantSeries)
			}
			if n := int(st.Until.Sub(st.Since) / st.Bucket); len(st.Series) != n {
				t.Errorf("Stats(%+v) has %d buckets, want %d", tt.q, len(st.Series), n)
			}
			var total int64
			for i, b := range st.Series {
				total += b.Total
				if want := st.Since.Add(time.Duration(i) * st.Bucket); !b.Start.Equal(want) {
					t.Errorf("Stats(%+v).Series[%d].Start = %v, want %v", tt.q, i, b.Start, want)
				}
			}
			if st.Total != total {
				t.Errorf("Stats(%+v).Total = %d, the series adds up to %d", tt.q, st.Total, total)
			}
			if !reflect.DeepEqual(st.ByOutcome, tt.wantOutcome) {
				t.Errorf("Stats(%+v).ByOutcome = %v, want %v", tt.q, st.ByOutcome, tt.wantOutcome)
			}
			if !reflect.DeepEqual(st.TopActors, tt.wantActors) {
				t.Errorf("Stats(%+v).TopActors = %v, want %v", tt.q, st.TopActors, tt.wantActors)
			}
			if !reflect.DeepEqual(st.TopActions, tt.wantActions) {
				t.Errorf("Stats(%+v).TopActions = %v, want %v", tt.q, st.TopActions, tt.wantActions)
			}
			if !reflect.DeepEqual(st.FailedIPs, tt.wantIPs) {
				t.Errorf("Stats(%+v).FailedIPs = %v, want %v", tt.q, st.FailedIPs, tt.wantIPs)
			}
			if st.IndexedTo != l.Size() {
				t.Errorf("Stats(%+v).IndexedTo = %d, want %d", tt.q, st.IndexedTo, l.Size())
			}
		})
	}
}

func TestStatsInvalid(t *testing.T) {
	_, l := newStatsLog(t)
	tests := []struct {
		name      string
		q         api.StatsQuery
		wantField string
	}{
		{"top over 100", api.StatsQuery{Top: 101}, "top"},
		{"negative top", api.StatsQuery{Top: -1}, "top"},
		{"bucket of two hours", api.StatsQuery{Bucket: 2 * time.Hour}, "bucket"},
		{"until before since", api.StatsQuery{Since: at(10, 0, 0, 0, 0), Until: at(9, 0, 0, 0, 0)}, "until"},
		{"until at since", api.StatsQuery{Since: at(10, 0, 0, 0, 0), Until: at(10, 0, 0, 0, 0)}, "until"},
		{"since after now", api.StatsQuery{Since: statsNow.Add(time.Hour)}, "since"},
		{"2001 hours", api.StatsQuery{Since: at(10, 0, 0, 0, 0).Add(-2001 * time.Hour), Until: at(10, 0, 0, 0, 0), Bucket: time.Hour}, "bucket"},
		{"2001 days", api.StatsQuery{Since: at(10, 0, 0, 0, 0).Add(-2001 * 24 * time.Hour), Until: at(10, 0, 0, 0, 0)}, "since"},
		// Buckets that would end in year 10000, which RFC 3339 cannot write.
		{"until at the end of 9999", api.StatsQuery{Until: time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC)}, "until"},
		{"a day bucket into 10000", api.StatsQuery{Since: time.Date(9999, 12, 20, 0, 0, 0, 0, time.UTC), Until: time.Date(9999, 12, 31, 0, 0, 1, 0, time.UTC), Bucket: 24 * time.Hour}, "until"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, err := l.Stats(context.Background(), tt.q)
			var ve *event.Error
			if !errors.As(err, &ve) || ve.Field != tt.wantField {
				t.Fatalf("Stats(%+v) = %+v, %v; want a *event.Error for field %q", tt.q, st, err, tt.wantField)
			}
		})
	}
	// A range longer than a time.Duration holds is counted all the same.
	wide := api.StatsQuery{Since: time.Unix(0, 0).UTC(), Until: time.Date(9999, 12, 30, 0, 0, 0, 0, time.UTC)}
	if _, err := l.Stats(context.Background(), wide); err == nil || !strings.Contains(err.Error(), "holds 2932895 day buckets") {
		t.Errorf("Stats(1970 to 9999 by day) = %v, want it to count 2932895 day buckets", err)
	}
	// The last day of 9999 that a bucket can end at is allowed, and its
	// answer marshals.
	last := api.StatsQuery{Since: time.Date(9999, 12, 20, 0, 0, 0, 0, time.UTC), Until: time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC), Bucket: 24 * time.Hour}
	if st, err := l.Stats(context.Background(), last); err != nil {
		t.Errorf("Stats(to 9999-12-31) = %v", err)
	} else if _, err := json.Marshal(st); err != nil {
		t.Errorf("Stats(to 9999-12-31) does not marshal: %v", err)
	}
	// The limit itself is allowed.
	q := api.StatsQuery{Since: at(10, 0, 0, 0, 0).Add(-2000 * time.Hour), Until: at(10, 0, 0, 0, 0), Bucket: time.Hour}
	if st, err := l.Stats(context.Background(), q); err != nil || len(st.Series) != 2000 {
		t.Errorf("Stats(2000 hours) = %d buckets, %v; want 2000", len(st.Series), err)
	}
	// Without since, the range starts at the first event, which may lie
	// further back than the limit (its time is the client's): the counts
	// are those of the last buckets the limit allows, not an error about
	// a since the caller never gave.
	for _, bucket := range []time.Duration{time.Hour, 24 * time.Hour} {
		until := at(8, 23, 0, 0, 0).Add(2001 * bucket)
		st, err := l.Stats(context.Background(), api.StatsQuery{Until: until, Bucket: bucket})
		if err != nil {
			t.Errorf("Stats(no since, 2001 %v buckets from the first event) = %v; want the last %d buckets", bucket, err, trail.MaxStatsBuckets)
		} else if n := len(st.Series); n != trail.MaxStatsBuckets || st.Series[n-1].Start.Add(bucket).Before(until) {
			t.Errorf("Stats(no since, 2001 %v buckets from the first event) = %d buckets, the last at %v; want the last %d, to %v", bucket, n, st.Series[n-1].Start, trail.MaxStatsBuckets, until)
		}
	}
}

func TestStatsJSON(t *testing.T) {
	_, l := newStatsLog(t)
	st, err := l.Stats(context.Background(), api.StatsQuery{Since: at(10, 2, 0, 0, 0), Until: at(10, 6, 0, 0, 0)})
	if err != nil {
		t.Fatal(err)
	}
	data, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"since":      "2026-03-10T02:00:00Z",
		"until":      "2026-03-10T06:00:00Z",
		"bucket":     "hour",
		"total":      5.0,
		"by_outcome": map[string]any{"success": 2.0, "failure": 1.0, "denied": 1.0, "error": 1.0},
		"series": []any{
			map[string]any{"start": "2026-03-10T02:00:00Z", "total": 3.0, "failure": 1.0, "denied": 0.0, "error": 0.0},
			map[string]any{"start": "2026-03-10T03:00:00Z", "total": 0.0, "failure": 0.0, "denied": 0.0, "error": 0.0},
			map[string]any{"start": "2026-03-10T04:00:00Z", "total": 0.0, "failure": 0.0, "denied": 0.0, "error": 0.0},
			map[string]any{"start": "2026-03-10T05:00:00Z", "total": 2.0, "failure": 0.0, "denied": 1.0, "error": 1.0},
		},
		"top_actors": []any{
			map[string]any{"value": "bob", "count": 2.0},
			map[string]any{"value": "mallory", "count": 2.0},
			map[string]any{"value": "alice", "count": 1.0},
		},
		"top_actions": []any{
			map[string]any{"value": "document.read", "count": 2.0},
			map[string]any{"value": "document.update", "count": 1.0},
			map[string]any{"value": "user.login", "count": 1.0},
			map[string]any{"value": "user.login.failed", "count": 1.0},
		},
		"failed_ips": []any{
			map[string]any{"ip": "198.51.100.7", "count": 2.0, "first": "2026-03-10T02:00:00Z", "last": "2026-03-10T05:00:00Z"},
		},
		"indexed_to": 9.0,
	}
	if !reflect.DeepEqual(m, want) {
		t.Errorf("json.Marshal(Stats) =\n%s\nwant the fields of\n%v", data, want)
	}
	var back api.Stats
	if err := json.Unmarshal(data, &back); err != nil {
		t.Fatalf("json.Unmarshal(%s) = %v", data, err)
	}
	if !reflect.DeepEqual(&back, st) {
		t.Errorf("Stats after a JSON round trip =\n%+v\nwant\n%+v", back, *st)
	}

	// An empty log gives empty lists, not nulls.
	db, _ := newStatsLog(t)
	empty, err := db.CreateLog(context.Background(), "empty", "")
	if err != nil {
		t.Fatal(err)
	}
	st, err = empty.Stats(context.Background(), api.StatsQuery{})
	if err != nil {
		t.Fatalf("Stats(empty log) = %v", err)
	}
	if st.Total != 0 || st.IndexedTo != 0 {
		t.Errorf("Stats(empty log) = %+v, want nothing counted", st)
	}
	data, err = json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	m = nil
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"series", "top_actors", "top_actions", "failed_ips"} {
		if _, ok := m[k].([]any); !ok {
			t.Errorf("json.Marshal(Stats(empty log)) %s = %v, want a list", k, m[k])
		}
	}
}

func TestStatsTrailsIngest(t *testing.T) {
	ctx := context.Background()
	db, err := trail.Init(ctx, t.TempDir(), trail.Options{Now: func() time.Time { return statsNow }})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	l, err := db.CreateLog(ctx, "audit", "")
	if err != nil {
		t.Fatal(err)
	}
	evs := statsEvents()
	for _, e := range evs {
		if _, err := l.Append(ctx, e); err != nil {
			t.Fatal(err)
		}
		st, err := l.Stats(ctx, api.StatsQuery{})
		if err != nil {
			t.Fatal(err)
		}
		if st.IndexedTo < 0 || st.IndexedTo > l.Size() || st.Total != st.IndexedTo {
			t.Fatalf("Stats after %d appends counts %d events up to seq %d", l.Size(), st.Total, st.IndexedTo)
		}
	}
	if err := l.WaitIndexed(ctx); err != nil {
		t.Fatal(err)
	}
	st, err := l.Stats(ctx, api.StatsQuery{})
	if err != nil || st.Total != int64(len(evs)) || st.IndexedTo != int64(len(evs)) {
		t.Fatalf("Stats after WaitIndexed = %+v, %v; want %d events", st, err, len(evs))
	}
}

func TestStatsReadOnly(t *testing.T) {
	db, l := newStatsLog(t)
	want, err := l.Stats(context.Background(), api.StatsQuery{})
	if err != nil {
		t.Fatal(err)
	}
	dir := db.Dir()
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	ro, err := trail.Open(context.Background(), dir, trail.Options{ReadOnly: true, Now: func() time.Time { return statsNow }})
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	rl, err := ro.Log(context.Background(), "audit")
	if err != nil {
		t.Fatal(err)
	}
	got, err := rl.Stats(context.Background(), api.StatsQuery{})
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("read-only Stats = %+v, %v; want %+v", got, err, want)
	}
}

func TestActions(t *testing.T) {
	ctx := context.Background()
	db, l := newStatsLog(t)
	got, err := l.Actions(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := []api.Count{{Value: "document.read", Count: 3}, {Value: "user.login", Count: 3}, {Value: "user.login.failed", Count: 2}, {Value: "document.update", Count: 1}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Actions() = %v, want %v", got, want)
	}
	empty, err := db.CreateLog(ctx, "empty", "")
	if err != nil {
		t.Fatal(err)
	}
	if got, err := empty.Actions(ctx); err != nil || len(got) != 0 {
		t.Errorf("Actions(empty log) = %v, %v; want none", got, err)
	}
}

// BenchmarkStats answers the overview of the 1M-event log (see
// BENCHMARKS.md): a day by hour, and the whole log by day (up to now) and
// by hour.
func BenchmarkStats(b *testing.B) {
	l, evs := bigLog(b)
	ctx := context.Background()
	first, last := evs[0].Time, evs[len(evs)-1].Time
	cases := []struct {
		name string
		q    api.StatsQuery
	}{
		{"24h", api.StatsQuery{Since: first.Add(2 * time.Hour), Until: first.Add(26 * time.Hour)}},
		{"all", api.StatsQuery{}},
		{"all-hours", api.StatsQuery{Until: last.Add(time.Hour), Bucket: time.Hour}},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				st, err := l.Stats(ctx, c.q)
				if err != nil {
					b.Fatal(err)
				}
				if st.IndexedTo != bigSize {
					b.Fatalf("Stats counts %d events, want %d", st.IndexedTo, bigSize)
				}
			}
		})
	}
}

// Trail's own reads (ReadActions: by the log's API keys, and listings of
// keys by whoever lists them) are left out of the counts with HideReads,
// and of a search with HideReads; its key administration, creations and
// revocations of keys, by a person or an admin key, stays in. A search
// with ExcludeAction leaves out what it names, trail.* all of Trail's own.
func TestHideReads(t *testing.T) {
	ctx := context.Background()
	db, l := newStatsLog(t)
	// Key administration, at statsNow (10 March, 12:34): test-admin
	// creates four keys, lists them and revokes one; the admin key
	// creates one and lists them.
	var viewer, backup, admin trail.KeyInfo
	for _, name := range []string{"viewer", "app", "backup", "admin"} {
		scope := trail.ScopeRead
		if name == "admin" {
			scope = trail.ScopeAdmin
		}
		_, k, err := db.CreateKey(ctx, testAdmin, "audit", name, scope)
		if err != nil {
			t.Fatal(err)
		}
		switch name {
		case "viewer":
			viewer = k
		case "admin":
			admin = k
		case "backup":
			backup = k
		}
	}
	if _, err := db.ListKeys(ctx, testAdmin, "audit"); err != nil {
		t.Fatal(err)
	}
	byKey := trail.Caller{Actor: event.Actor{ID: admin.ID, Type: event.ActorService}}
	if _, _, err := db.CreateKey(ctx, byKey, "audit", "ci", trail.ScopeAppend); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ListKeys(ctx, byKey, "audit"); err != nil {
		t.Fatal(err)
	}
	if err := db.RevokeKey(ctx, testAdmin, backup.ID); err != nil {
		t.Fatal(err)
	}
	// Reads, as the server records them under the reading key.
	var reads []event.Event
	for i := range 6 {
		reads = append(reads, event.Event{Time: at(10, 2+i%2, 30, 0, 0), Actor: event.Actor{ID: viewer.ID}, Action: trail.ActionSearch})
	}
	reads = append(reads,
		event.Event{Time: at(10, 2, 45, 0, 0), Actor: event.Actor{ID: viewer.ID}, Action: trail.ActionSignIn},
		event.Event{Time: at(10, 12, 20, 0, 0), Actor: event.Actor{ID: admin.ID}, Action: trail.ActionSearch},
		event.Event{Time: at(10, 12, 20, 0, 0), Actor: event.Actor{ID: admin.ID}, Action: trail.ActionExport},
		// An app that appends a read action keeps it under its actor.
		event.Event{Time: at(10, 3, 40, 0, 0), Actor: event.Actor{ID: "carol"}, Action: trail.ActionGet, Outcome: event.Failure, Source: event.Source{IP: "192.0.2.5"}},
	)
	if _, err := l.AppendBatch(ctx, reads); err != nil {
		t.Fatal(err)
	}
	if err := l.WaitIndexed(ctx); err != nil {
		t.Fatal(err)
	}

	q := api.StatsQuery{Since: at(8, 0, 0, 0, 0), Until: at(11, 0, 0, 0, 0), Bucket: time.Hour, Top: 6}
	all, err := l.Stats(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	wantAll := []api.Count{{Value: viewer.ID, Count: 7}, {Value: testAdmin.Actor.ID, Count: 6}, {Value: admin.ID, Count: 4}, {Value: "bob", Count: 3}, {Value: "mallory", Count: 3}, {Value: "alice", Count: 2}}
	if all.Total != 27 || !reflect.DeepEqual(all.TopActors, wantAll) || all.TopActions[0] != (api.Count{Value: trail.ActionSearch, Count: 7}) {
		t.Fatalf("Stats() = total %d, actors %v, actions %v; want 27 events, actors %v and trail.search first", all.Total, all.TopActors, all.TopActions, wantAll)
	}
	q.HideReads = true
	st, err := l.Stats(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	if st.Total != 15 {
		t.Errorf("Stats(HideReads).Total = %d, want the 9 app events and the 6 creations and revocations of keys", st.Total)
	}
	want := map[string]int64{"success": 10, "failure": 2, "denied": 1, "error": 2}
	if !reflect.DeepEqual(st.ByOutcome, want) {
		t.Errorf("Stats(HideReads).ByOutcome = %v, want %v", st.ByOutcome, want)
	}
	var sum int64
	for _, b := range st.Series {
		sum += b.Total
		if b.Start.Equal(at(10, 3, 0, 0, 0)) && b.Total != 0 {
			t.Errorf("Stats(HideReads) counts %d events at 03:00, which holds only reads", b.Total)
		}
		if b.Start.Equal(at(10, 12, 0, 0, 0)) && b.Total != 7 {
			t.Errorf("Stats(HideReads) counts %d events at 12:00, want the 6 creations and revocations of keys and bob's read", b.Total)
		}
	}
	if sum != st.Total {
		t.Errorf("Stats(HideReads).Series adds up to %d, want %d", sum, st.Total)
	}
	if w := []api.Count{{Value: testAdmin.Actor.ID, Count: 5}, {Value: "bob", Count: 3}, {Value: "mallory", Count: 3}, {Value: "alice", Count: 2}, {Value: "carol", Count: 2}, {Value: admin.ID, Count: 1}}; !reflect.DeepEqual(st.TopActors, w) {
		t.Errorf("Stats(HideReads).TopActors = %v, want %v (the viewer key left out, the admin key with its one creation, test-admin without its listing; carol keeps her trail.get)", st.TopActors, w)
	}
	if w := []api.Count{{Value: trail.ActionKeyCreate, Count: 5}, {Value: "document.read", Count: 3}, {Value: "user.login", Count: 3}, {Value: "user.login.failed", Count: 2}, {Value: "document.update", Count: 1}, {Value: trail.ActionKeyRevoke, Count: 1}}; !reflect.DeepEqual(st.TopActions, w) {
		t.Errorf("Stats(HideReads).TopActions = %v, want %v", st.TopActions, w)
	}
	if len(st.FailedIPs) != 3 || len(st.FailedIPs) != len(all.FailedIPs) {
		t.Errorf("Stats(HideReads).FailedIPs = %v, want them unchanged: %v", st.FailedIPs, all.FailedIPs)
	}
	// Fewer top actors than the keys and readers: the ones left are
	// still the top ones.
	q.Top = 2
	if st, err := l.Stats(ctx, q); err != nil || !reflect.DeepEqual(st.TopActors, []api.Count{{Value: testAdmin.Actor.ID, Count: 5}, {Value: "bob", Count: 3}}) {
		t.Errorf("Stats(HideReads, Top 2).TopActors = %v, %v; want test-admin 5, bob 3", st.TopActors, err)
	}

	actions := func(q api.Query) []string {
		t.Helper()
		var out []string
		for e, err := range l.Events(ctx, q) {
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, e.Action)
		}
		return out
	}
	got := actions(api.Query{HideReads: true})
	if len(got) != 15 || slices.ContainsFunc(got, trail.IsReadAction) || !slices.Contains(got, trail.ActionKeyCreate) || !slices.Contains(got, trail.ActionKeyRevoke) {
		t.Errorf("Events(HideReads) = %v; want the 15 events that are not reads, key creations and revocations among them", got)
	}
	page, err := l.Search(ctx, api.Query{HideReads: true, Limit: 3})
	if err != nil || len(page.Events) != 3 || page.Events[0].Action != trail.ActionKeyRevoke || page.NextCursor == "" {
		t.Errorf("Search(HideReads, Limit 3) = %v, %v; want the newest 3 that are not reads, the revocation first, and more", page, err)
	}
	if got := actions(api.Query{Action: "trail.*", HideReads: true}); len(got) != 6 || slices.ContainsFunc(got, trail.IsReadAction) {
		t.Errorf("Events(Action trail.*, HideReads) = %v; want the 6 creations and revocations of keys", got)
	}
	if got := actions(api.Query{ExcludeAction: "trail.key.*", HideReads: true}); len(got) != 9 || slices.ContainsFunc(got, func(a string) bool { return strings.HasPrefix(a, "trail.") }) {
		t.Errorf("Events(ExcludeAction trail.key.*, HideReads) = %v; want the 9 app events", got)
	}
	if got := actions(api.Query{ExcludeAction: "trail.*"}); len(got) != 9 || slices.ContainsFunc(got, func(a string) bool { return strings.HasPrefix(a, "trail.") }) {
		t.Errorf("Events(ExcludeAction trail.*) = %v; want the 9 app events", got)
	}
	if got := actions(api.Query{Action: "trail.*", ExcludeAction: "trail.key.*"}); len(got) != 10 || slices.ContainsFunc(got, func(a string) bool { return strings.HasPrefix(a, "trail.key.") }) {
		t.Errorf("Events(Action trail.*, ExcludeAction trail.key.*) = %v; want the 10 other reads", got)
	}
	var ve *event.Error
	if _, err := l.Search(ctx, api.Query{ExcludeAction: "Trail Reads"}); !errors.As(err, &ve) || ve.Field != "exclude_action" {
		t.Errorf("Search(ExcludeAction %q) = %v, want an *event.Error naming exclude_action", "Trail Reads", err)
	}
}
