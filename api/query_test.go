package api

import (
	"errors"
	"net/url"
	"reflect"
	"testing"
	"time"

	"github.com/trail-audit/trail/event"
)

func TestParseQuery(t *testing.T) {
	since := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name      string
		in        string
		want      Query
		wantParam string // the parameter a *ParamError names; "" for success
	}{
		{name: "empty", in: "", want: Query{}},
		{name: "filters", in: "actor=alice&action=user.*&target_type=user&target_id=u1&outcome=failure&ip=192.0.2.1&q=locked&exclude_action=trail.*&cursor=40&limit=5",
			want: Query{Actor: "alice", Action: "user.*", TargetType: "user", TargetID: "u1", Outcome: event.Failure, IP: "192.0.2.1", Text: "locked", ExcludeAction: "trail.*", Cursor: "40", Limit: 5}},
		{name: "times", in: "since=2026-03-01T12:00:00Z&until=2026-03-01T12:00:00Z", want: Query{Since: since, Until: since}},
		{name: "empty values do not filter", in: "actor=&limit=&hide_reads=", want: Query{}},
		{name: "empty name ignored", in: "=x&actor=a", want: Query{Actor: "a"}},
		{name: "hide_reads", in: "hide_reads=true", want: Query{HideReads: true}},
		{name: "hide_reads false", in: "hide_reads=false", want: Query{}},
		{name: "unknown", in: "actr=alice", wantParam: "actr"},
		{name: "twice", in: "actor=a&actor=b", wantParam: "actor"},
		{name: "limit zero", in: "limit=0", wantParam: "limit"},
		{name: "limit text", in: "limit=ten", wantParam: "limit"},
		{name: "since", in: "since=yesterday", wantParam: "since"},
		{name: "hide_reads yes", in: "hide_reads=yes", wantParam: "hide_reads"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v, err := url.ParseQuery(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			got, err := ParseQuery(v)
			checkParsed(t, "ParseQuery("+tc.in+")", got, err, tc.want, tc.wantParam)
		})
	}
}

// checkParsed checks a parse result: want and no error, or a *ParamError
// naming wantParam.
func checkParsed[T any](t *testing.T, call string, got T, err error, want T, wantParam string) {
	t.Helper()
	if wantParam != "" {
		var pe *ParamError
		if !errors.As(err, &pe) || pe.Name != wantParam {
			t.Errorf("%s = %v, want a *ParamError naming %q", call, err, wantParam)
		}
		return
	}
	if err != nil {
		t.Fatalf("%s = %v", call, err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s = %+v, want %+v", call, got, want)
	}
}

func TestParseExport(t *testing.T) {
	for _, tc := range []struct {
		name      string
		in        string
		want      Export
		wantParam string
	}{
		{name: "default", in: "", want: Export{Format: "ndjson"}},
		{name: "csv raw", in: "format=csv&csv_raw=true&actor=a", want: Export{Format: "csv", CSVRaw: true, Query: Query{Actor: "a"}}},
		{name: "csv_raw false", in: "format=csv&csv_raw=false", want: Export{Format: "csv"}},
		{name: "csv_raw other", in: "format=csv&csv_raw=1", wantParam: "csv_raw"},
		{name: "csv_raw twice", in: "format=csv&csv_raw=true&csv_raw=false", wantParam: "csv_raw"},
		{name: "format twice", in: "format=csv&format=ndjson", wantParam: "format"},
		{name: "format", in: "format=xml", wantParam: "format"},
		{name: "limit", in: "limit=5", wantParam: "limit"},
		{name: "cursor", in: "cursor=", wantParam: "cursor"},
		{name: "filter", in: "outcome=failure&ip=192.0.2.1&since=x", wantParam: "since"},
		{name: "unknown", in: "format=csv&page=2", wantParam: "page"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v, _ := url.ParseQuery(tc.in)
			got, err := ParseExport(v)
			checkParsed(t, "ParseExport("+tc.in+")", got, err, tc.want, tc.wantParam)
		})
	}
}

func TestParseTail(t *testing.T) {
	for _, tc := range []struct {
		name      string
		in        string
		want      Query
		wantParam string
	}{
		{name: "filters", in: "action=user.*&hide_reads=true", want: Query{Action: "user.*", HideReads: true}},
		{name: "limit", in: "limit=5", wantParam: "limit"},
		{name: "cursor", in: "cursor=5", wantParam: "cursor"},
		{name: "unknown", in: "from=5", wantParam: "from"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v, _ := url.ParseQuery(tc.in)
			got, err := ParseTail(v)
			checkParsed(t, "ParseTail("+tc.in+")", got, err, tc.want, tc.wantParam)
		})
	}
}

func TestParseStatsQuery(t *testing.T) {
	since := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name      string
		in        string
		want      StatsQuery
		wantParam string
	}{
		{name: "empty", in: "", want: StatsQuery{}},
		{name: "all", in: "since=2026-03-01T00:00:00Z&bucket=day&top=5&hide_reads=true", want: StatsQuery{Since: since, Bucket: 24 * time.Hour, Top: 5, HideReads: true}},
		{name: "hour", in: "bucket=hour", want: StatsQuery{Bucket: time.Hour}},
		{name: "bucket", in: "bucket=week", wantParam: "bucket"},
		{name: "top zero", in: "top=0", wantParam: "top"},
		{name: "top over", in: "top=101", wantParam: "top"},
		{name: "until", in: "until=now", wantParam: "until"},
		{name: "unknown", in: "actor=a", wantParam: "actor"},
		{name: "empty name", in: "=x", wantParam: ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v, _ := url.ParseQuery(tc.in)
			got, err := ParseStatsQuery(v)
			if tc.name == "empty name" {
				var pe *ParamError
				if !errors.As(err, &pe) || pe.Name != "" || pe.Error() != ": unknown parameter" {
					t.Errorf("ParseStatsQuery(%s) = %v, want the unnamed parameter refused", tc.in, err)
				}
				return
			}
			checkParsed(t, "ParseStatsQuery("+tc.in+")", got, err, tc.want, tc.wantParam)
		})
	}
}

func TestValues(t *testing.T) {
	at := time.Date(2026, 3, 1, 13, 0, 0, 5, time.FixedZone("CET", 3600))
	for _, tc := range []struct {
		name string
		got  url.Values
		want string
	}{
		{"zero query", Query{}.Values(), ""},
		{"query", Query{Actor: "a b", Since: at, HideReads: true, Limit: 3}.Values(), "actor=a+b&hide_reads=true&limit=3&since=2026-03-01T12%3A00%3A00.000000005Z"},
		{"export", Export{Format: "csv", Query: Query{Outcome: event.Denied}}.Values(), "format=csv&outcome=denied"},
		{"stats", StatsQuery{Bucket: 24 * time.Hour, Top: 3}.Values(), "bucket=day&top=3"},
		{"stats odd bucket", StatsQuery{Bucket: 30 * time.Minute}.Values(), ""},
	} {
		if got := tc.got.Encode(); got != tc.want {
			t.Errorf("%s: Values().Encode() = %q, want %q", tc.name, got, tc.want)
		}
	}
}
