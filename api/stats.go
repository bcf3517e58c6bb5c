package api

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strconv"
	"time"
)

const day = 24 * time.Hour

// StatsQuery selects the events counted by GET /v1/stats and
// trail.Log.Stats by when they happened (the event's time, as the client
// gave it or, without one, its receipt time). Unlike Query, which selects
// by receipt time, it can count events that arrived late into the hour
// they happened in.
type StatsQuery struct {
	// Since and Until bound the events' time: Since <= time < Until,
	// widened to whole buckets. A zero Since starts at the first event. A
	// zero Until ends after the last event, and no earlier than now plus
	// the latest time in the future an event may carry.
	Since, Until time.Time
	// Bucket is the width of the series' buckets: time.Hour or 24*time.Hour
	// (UTC days). Zero picks hours for ranges up to 72 hours, days otherwise.
	Bucket time.Duration
	// Top is the length of each top list: default 10, at most 100.
	Top int
	// HideReads leaves out Trail's own reads (see Query.HideReads) and
	// keeps its key administration (trail.key.create and
	// trail.key.revoke). The reads are taken out of Total, ByOutcome,
	// Series and TopActions exactly. The counts by actor do not know
	// actions, so in TopActors the log's API keys, under which the server
	// records reads, count only the keys they created or revoked, and
	// each other caller's listings of keys (trail.key.list at the command
	// line) are taken off its count; an actor other than these keeps any
	// read action it appended itself. FailedIPs are unchanged.
	HideReads bool
}

// statsParams are the parameters of GET /v1/stats.
var statsParams = []param[StatsQuery]{
	timeParam("since", func(q *StatsQuery) *time.Time { return &q.Since }),
	timeParam("until", func(q *StatsQuery) *time.Time { return &q.Until }),
	boolParam("hide_reads", func(q *StatsQuery) *bool { return &q.HideReads }),
	{"bucket", func(q *StatsQuery) string {
		if q.Bucket == time.Hour || q.Bucket == day {
			return bucketName(q.Bucket)
		}
		return ""
	}, func(q *StatsQuery, s string) string {
		switch s {
		case "hour":
			q.Bucket = time.Hour
		case "day":
			q.Bucket = day
		default:
			return "must be hour or day"
		}
		return ""
	}},
	{"top", func(q *StatsQuery) string { return positive(q.Top) }, func(q *StatsQuery, s string) string {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 100 {
			return "must be an integer from 1 to 100"
		}
		q.Top = n
		return ""
	}},
}

// Values returns q as the query parameters of GET /v1/stats. A Bucket
// other than an hour or a day has no parameter, and is left out.
func (q StatsQuery) Values() url.Values { return values(statsParams, &q) }

// ParseStatsQuery reads the query parameters of GET /v1/stats: since and
// until (RFC 3339), bucket (hour or day), top (1 to 100) and hide_reads.
// An unknown parameter, one given twice or a malformed value is a
// *ParamError naming it.
func ParseStatsQuery(v url.Values) (StatsQuery, error) {
	var q StatsQuery
	if err := parse(statsParams, v, &q, false); err != nil {
		return StatsQuery{}, err
	}
	return q, nil
}

// bucketName names a bucket width as the API does: "hour" or "day", and a
// Go duration such as "30m0s" otherwise.
func bucketName(d time.Duration) string {
	switch d {
	case time.Hour:
		return "hour"
	case day:
		return "day"
	}
	return d.String()
}

// Stats counts a log's events by when they happened: over time, by
// outcome, and by actor, action and the source IP of events that did not
// succeed; the answer of GET /v1/stats and trail.Log.Stats. It comes from
// counts the log keeps as it indexes events, not from reading them, so it
// costs the same at any log size; like the search indexes, the counts may
// trail the newest events by a moment (IndexedTo).
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

// Actions is the answer of GET /v1/actions: every action the log has
// seen, with its count, most frequent first.
type Actions struct {
	Actions []Count `json:"actions"`
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
	return json.Marshal(statsJSON{plainStats(s), bucketName(s.Bucket)})
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
