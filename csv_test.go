package trail_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/trail-audit/trail"
	"github.com/trail-audit/trail/event"
)

func TestCSVRecordGuard(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"", ""},
		{"alice", "alice"},
		{"=HYPERLINK(\"http://evil\")", "'=HYPERLINK(\"http://evil\")"},
		{"+1", "'+1"},
		{"-2+3", "'-2+3"},
		{"@SUM(A1)", "'@SUM(A1)"},
		{"\tx", "'\tx"},
		{"\rx", "'\rx"},
		{"a=b", "a=b"},
	} {
		e := &event.Event{Actor: event.Actor{ID: tt.in}}
		if got := trail.CSVRecord(nil, e, true)[4]; got != tt.want {
			t.Errorf("CSVRecord(actor %q, guard) actor_id = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestCSVRecord(t *testing.T) {
	at := time.Date(2026, 3, 1, 9, 0, 0, 123000000, time.UTC)
	e := &event.Event{
		ID: "01ID", Seq: 7, Log: "default", ReceivedAt: at, Time: at.Add(-time.Second),
		Actor:   event.Actor{ID: "=cmd", Type: "user", Name: "Al", Email: "al@example.com", Role: "admin"},
		Action:  "user.update",
		Targets: []event.Target{{Type: "user", ID: "bob"}, {Type: "team", ID: "ops"}},
		Outcome: event.Success, Source: event.Source{IP: "192.0.2.1", UserAgent: "curl/8"},
		Changes:  &event.Changes{Before: json.RawMessage(`{"role":"member"}`), After: json.RawMessage(`{"role":"admin"}`)},
		Metadata: json.RawMessage(`{"a":1}`),
	}
	got := trail.CSVRecord(make([]string, len(trail.CSVHeader)), e, true)
	want := []string{"7", "01ID", "2026-03-01T09:00:00.123Z", "2026-03-01T08:59:59.123Z", "'=cmd", "user", "Al",
		"al@example.com", "admin", "user.update", "success", "", "user:bob;team:ops", "192.0.2.1", "curl/8", "", "",
		`{"a":1}`, `{"after":{"role":"admin"},"before":{"role":"member"}}`}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("CSVRecord =\n%q\nwant\n%q", got, want)
	}
	if len(got) != len(trail.CSVHeader) {
		t.Errorf("CSVRecord has %d cells, header %d", len(got), len(trail.CSVHeader))
	}
	if got := trail.CSVRecord(nil, e, false); got[4] != "=cmd" {
		t.Errorf("CSVRecord without guard: actor_id = %q, want =cmd", got[4])
	}
}
