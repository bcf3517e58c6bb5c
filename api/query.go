package api

import (
	"net/url"
	"strconv"
	"time"

	"github.com/trail-audit/trail/event"
)

// Query selects events: the filters of GET /v1/events, /v1/export and
// /v1/tail, and of trail.Log.Search. Empty fields do not filter.
type Query struct {
	Actor string // actor id
	// Action is an exact action ("user.login") or a prefix ending in ".*"
	// ("user.*" matches user.login, user.login.failed, …).
	Action     string
	TargetType string
	TargetID   string
	Outcome    event.Outcome
	IP         string
	// Since and Until bound received_at: Since <= received_at < Until.
	// They select by Trail's own receipt clock, which is monotonic along the
	// log, rather than the client-supplied time.
	Since, Until time.Time
	// Text is free text: every word must occur in the action, reason, actor
	// or target names, ids or emails, or metadata values. A trailing '*'
	// makes a word a prefix.
	Text string
	// ExcludeAction leaves out the events whose action it names, written
	// like Action: "trail.*" leaves out all of Trail's own events, its
	// reads and its key administration. A search that leaves out most of
	// a log is driven by the index of the actions that remain, so it
	// stays fast.
	ExcludeAction string
	// HideReads leaves out Trail's own reads (trail.search, trail.get,
	// trail.export, trail.tail, trail.stats, trail.signin and
	// trail.key.list), as the viewer does by default, and keeps its key
	// administration (trail.key.create, trail.key.revoke). It combines
	// with ExcludeAction, and stays fast the same way.
	HideReads bool
	// Limit is the page size: default 100, at most 10000.
	Limit int
	// Cursor continues from a previous Page.NextCursor.
	Cursor string
}

// ParamError is a query parameter that a request cannot take: unknown,
// given more than once, or malformed.
type ParamError struct {
	Name   string // the parameter
	Reason string // what is wrong, e.g. "must be true or false"
}

func (e *ParamError) Error() string { return e.Name + ": " + e.Reason }

// param maps one query parameter to a field of T: get returns the field as
// the parameter's value ("" leaves the parameter out), set parses a
// non-empty value into it or returns why it cannot.
type param[T any] struct {
	name string
	get  func(*T) string
	set  func(*T, string) string
}

// queryParams are the parameters of GET /v1/events, in the order they are
// checked. Export and tail take all but limit and cursor.
var queryParams = []param[Query]{
	stringParam("actor", func(q *Query) *string { return &q.Actor }),
	stringParam("action", func(q *Query) *string { return &q.Action }),
	stringParam("exclude_action", func(q *Query) *string { return &q.ExcludeAction }),
	boolParam("hide_reads", func(q *Query) *bool { return &q.HideReads }),
	stringParam("target_type", func(q *Query) *string { return &q.TargetType }),
	stringParam("target_id", func(q *Query) *string { return &q.TargetID }),
	{"outcome", func(q *Query) string { return string(q.Outcome) }, func(q *Query, s string) string {
		q.Outcome = event.Outcome(s)
		return ""
	}},
	stringParam("ip", func(q *Query) *string { return &q.IP }),
	timeParam("since", func(q *Query) *time.Time { return &q.Since }),
	timeParam("until", func(q *Query) *time.Time { return &q.Until }),
	stringParam("q", func(q *Query) *string { return &q.Text }),
	{"limit", func(q *Query) string { return positive(q.Limit) }, func(q *Query, s string) string {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			return "must be a positive integer"
		}
		q.Limit = n
		return ""
	}},
	stringParam("cursor", func(q *Query) *string { return &q.Cursor }),
}

// Values returns q as the query parameters of GET /v1/events: each field
// that is set, times in RFC 3339 (UTC). For /v1/export and /v1/tail, leave
// Limit and Cursor zero.
func (q Query) Values() url.Values { return values(queryParams, &q) }

// ParseQuery reads the query parameters of GET /v1/events. A parameter
// with an empty value does not filter; one with an empty name is ignored.
// An unknown parameter, one given twice or a malformed value is a
// *ParamError naming it; values are checked only for their form (an
// action's syntax, an outcome or an IP address are checked by the search).
func ParseQuery(v url.Values) (Query, error) {
	var q Query
	if err := parse(queryParams, v, &q, true); err != nil {
		return Query{}, err
	}
	return q, nil
}

// Export is what GET /v1/export streams: every event matching Query
// (whose Limit and Cursor must be zero), as Format.
type Export struct {
	Query Query
	// Format is "ndjson" (the default) or "csv".
	Format string
	// CSVRaw leaves CSV cells that look like spreadsheet formulas
	// unguarded.
	CSVRaw bool
}

// Values returns x as the query parameters of GET /v1/export.
func (x Export) Values() url.Values {
	v := x.Query.Values()
	if x.Format != "" {
		v.Set("format", x.Format)
	}
	if x.CSVRaw {
		v.Set("csv_raw", "true")
	}
	return v
}

// ParseExport reads the query parameters of GET /v1/export: format
// (ndjson, the default, or csv), csv_raw (true or false, the default),
// each at most once, and the filters of ParseQuery but limit and cursor,
// which an export does not take.
func ParseExport(v url.Values) (Export, error) {
	for _, name := range []string{"format", "csv_raw"} {
		if len(v[name]) > 1 {
			return Export{}, &ParamError{name, "given more than once"}
		}
	}
	x := Export{Format: v.Get("format")}
	switch raw := v.Get("csv_raw"); raw {
	case "", "false":
	case "true":
		x.CSVRaw = true
	default:
		return Export{}, &ParamError{"csv_raw", "must be true or false"}
	}
	switch x.Format {
	case "":
		x.Format = "ndjson"
	case "ndjson", "csv":
	default:
		return Export{}, &ParamError{"format", "must be ndjson or csv"}
	}
	for _, name := range []string{"limit", "cursor"} {
		if v.Has(name) {
			return Export{}, &ParamError{name, "export takes every match; use GET /v1/events to page"}
		}
	}
	rest := url.Values{}
	for name, vals := range v {
		if name != "format" && name != "csv_raw" {
			rest[name] = vals
		}
	}
	q, err := ParseQuery(rest)
	if err != nil {
		return Export{}, err
	}
	x.Query = q
	return x, nil
}

// ParseTail reads the query parameters of GET /v1/tail: the filters of
// ParseQuery but limit and cursor, which a tail does not take.
func ParseTail(v url.Values) (Query, error) {
	q, err := ParseQuery(v)
	if err != nil {
		return Query{}, err
	}
	switch {
	case q.Limit != 0:
		return Query{}, &ParamError{"limit", "tail takes no limit"}
	case q.Cursor != "":
		return Query{}, &ParamError{"cursor", "tail takes no cursor: it resumes after the seq in a Last-Event-ID header"}
	}
	return q, nil
}

// values returns the parameters of the fields of x that are set.
func values[T any](params []param[T], x *T) url.Values {
	v := url.Values{}
	for _, p := range params {
		if s := p.get(x); s != "" {
			v.Set(p.name, s)
		}
	}
	return v
}

// parse sets the fields of x from v. Unknown parameters and repeated ones
// are errors; so are parameters with an empty name unless skipEmpty.
func parse[T any](params []param[T], v url.Values, x *T, skipEmpty bool) error {
	known := make(map[string]bool, len(params))
	for _, p := range params {
		known[p.name] = true
	}
	for name, vals := range v {
		switch {
		case name == "" && skipEmpty:
		case !known[name]:
			// A mistyped filter must not silently match everything.
			return &ParamError{name, "unknown parameter"}
		case len(vals) > 1:
			return &ParamError{name, "given more than once"}
		}
	}
	for _, p := range params {
		if s := v.Get(p.name); s != "" {
			if reason := p.set(x, s); reason != "" {
				return &ParamError{p.name, reason}
			}
		}
	}
	return nil
}

func stringParam[T any](name string, field func(*T) *string) param[T] {
	return param[T]{
		name,
		func(x *T) string { return *field(x) },
		func(x *T, s string) string { *field(x) = s; return "" },
	}
}

// boolParam is true, false, or absent (false).
func boolParam[T any](name string, field func(*T) *bool) param[T] {
	return param[T]{
		name,
		func(x *T) string {
			if *field(x) {
				return "true"
			}
			return ""
		},
		func(x *T, s string) string {
			switch s {
			case "true":
				*field(x) = true
			case "false":
				*field(x) = false
			default:
				return "must be true or false"
			}
			return ""
		},
	}
}

// timeParam is an RFC 3339 time.
func timeParam[T any](name string, field func(*T) *time.Time) param[T] {
	return param[T]{
		name,
		func(x *T) string {
			if t := *field(x); !t.IsZero() {
				return t.UTC().Format(time.RFC3339Nano)
			}
			return ""
		},
		func(x *T, s string) string {
			t, err := time.Parse(time.RFC3339Nano, s)
			if err != nil {
				return "must be an RFC 3339 time like 2026-03-01T12:00:00Z"
			}
			*field(x) = t
			return ""
		},
	}
}

// positive formats n, or returns "" for n <= 0.
func positive(n int) string {
	if n <= 0 {
		return ""
	}
	return strconv.Itoa(n)
}
