package canon

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/gowebpki/jcs"
	"github.com/trail-audit/trail/event"
	"github.com/trail-audit/trail/internal/eventid"
)

// mapForm returns e as generic JSON values, following the shape rules of
// Append, for an independent encoder to serialize.
func mapForm(e *event.Event) map[string]any {
	str := func(m map[string]any, k, v string) {
		if v != "" {
			m[k] = v
		}
	}
	actor := map[string]any{"id": e.Actor.ID}
	str(actor, "type", e.Actor.Type)
	str(actor, "name", e.Actor.Name)
	str(actor, "email", e.Actor.Email)
	str(actor, "role", e.Actor.Role)
	targets := []any{}
	for _, t := range e.Targets {
		m := map[string]any{"type": t.Type, "id": t.ID}
		str(m, "name", t.Name)
		targets = append(targets, m)
	}
	m := map[string]any{
		"id":          e.ID,
		"seq":         e.Seq,
		"log":         e.Log,
		"received_at": e.ReceivedAt.UTC().Format(time.RFC3339Nano),
		"time":        e.Time.UTC().Format(time.RFC3339Nano),
		"actor":       actor,
		"action":      e.Action,
		"targets":     targets,
		"outcome":     string(e.Outcome),
	}
	str(m, "reason", e.Reason)
	str(m, "request_id", e.RequestID)
	str(m, "trace_id", e.TraceID)
	if e.Source.IP != "" || e.Source.UserAgent != "" {
		src := map[string]any{}
		str(src, "ip", e.Source.IP)
		str(src, "user_agent", e.Source.UserAgent)
		m["source"] = src
	}
	if c := e.Changes; c != nil && (c.Before != nil || c.After != nil) {
		ch := map[string]any{}
		if c.Before != nil {
			ch["before"] = c.Before
		}
		if c.After != nil {
			ch["after"] = c.After
		}
		m["changes"] = ch
	}
	if e.Metadata != nil {
		m["metadata"] = e.Metadata
	}
	return m
}

// referenceCanonical serializes e with encoding/json and canonicalizes the
// result with the jcs package.
func referenceCanonical(t testing.TB, e *event.Event) []byte {
	t.Helper()
	j, err := json.Marshal(mapForm(e))
	if err != nil {
		t.Fatalf("json.Marshal(mapForm(%+v)) error = %v", e, err)
	}
	c, err := jcs.Transform(j)
	if err != nil {
		t.Fatalf("jcs.Transform(%s) error = %v", j, err)
	}
	return c
}

// tricky edits event i of the workload to exercise strings, numbers and
// the optional parts of the canonical shape.
var tricky = []func(e *event.Event){
	func(e *event.Event) {},
	func(e *event.Event) {
		e.Actor.Name = "Zoë \"Q\" \\ <script>&amp; \u2028\u2029 \x7f 😀 日本語"
		e.Reason = "line one\nline two\ttab\r\n"
	},
	func(e *event.Event) {
		e.Metadata = json.RawMessage(`{"n":[1e+21,1.5,0,100,0.1,1e-7,5e-324,123456789012345],"nested":{"s":"\u2028<>&","t":"\t","z":{"deep":[true,false,null]}},"é":1,"😀":"\ud83d\ude00","\uffff":"bmp","":"empty key"}`)
	},
	func(e *event.Event) {
		e.Source = event.Source{}
		e.Targets = nil
		e.Actor = event.Actor{ID: "svc"}
		e.Outcome = ""
	},
	func(e *event.Event) {
		e.Source = event.Source{UserAgent: "ua only"}
		e.Changes = &event.Changes{Before: json.RawMessage(`{"plan":"free","seats":5}`), After: json.RawMessage(`{"plan":"team","seats":100}`)}
		e.TraceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	},
	func(e *event.Event) {
		e.Source = event.Source{IP: "2001:DB8::1"}
		e.Changes = &event.Changes{After: json.RawMessage(`null`)}
		e.Targets = append(e.Targets, event.Target{Type: "document", ID: "d/\"1\"", Name: "Ünïcode ☃ \U0001F600"})
	},
	func(e *event.Event) {
		e.Changes = &event.Changes{Before: json.RawMessage(`"only before"`)}
		e.Metadata = json.RawMessage(`{}`)
		e.Time = time.Time{}
	},
}

func TestAppendMatchesReference(t *testing.T) {
	received := time.Date(2026, 1, 2, 3, 4, 5, 600000000, time.UTC)
	for i, line := range workload(t) {
		e, err := event.Decode(line)
		if err != nil {
			t.Fatalf("event %d: Decode() error = %v", i, err)
		}
		tricky[i%len(tricky)](&e)
		if err := e.Prepare(received, event.Limits{}); err != nil {
			t.Fatalf("event %d: Prepare() error = %v", i, err)
		}
		e.Seq = int64(i) * 1e9
		e.Log = "log-\u00e9"
		e.ReceivedAt = received.Add(time.Duration(i) * 123456789)
		if e.Time.IsZero() {
			e.Time = e.ReceivedAt
		}
		e.ID = eventid.Make(e.Log, e.Seq, e.ReceivedAt)

		got := Append(nil, &e)
		if want := referenceCanonical(t, &e); !bytes.Equal(got, want) {
			t.Fatalf("event %d: Append() =\n%s\nwant\n%s", i, got, want)
		}
		stored, err := event.DecodeStored(got)
		if err != nil {
			t.Fatalf("event %d: DecodeStored(%s) error = %v", i, got, err)
		}
		if again := Append(nil, &stored); !bytes.Equal(again, got) {
			t.Fatalf("event %d: Append(DecodeStored(c)) =\n%s\nwant\n%s", i, again, got)
		}
		pretty, err := json.MarshalIndent(json.RawMessage(got), "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		stored, err = event.DecodeStored(pretty)
		if err != nil {
			t.Fatalf("event %d: DecodeStored(%s) error = %v", i, pretty, err)
		}
		if again := Append(nil, &stored); !bytes.Equal(again, got) {
			t.Fatalf("event %d: Append(DecodeStored(indented)) =\n%s\nwant\n%s", i, again, got)
		}
	}
}

func TestAppendShape(t *testing.T) {
	e := event.Event{
		ID:         "01J",
		Seq:        7,
		Log:        "l",
		ReceivedAt: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
		Time:       time.Date(2025, 12, 31, 23, 59, 59, 100, time.FixedZone("", -3600)),
		Actor:      event.Actor{ID: "u"},
		Action:     "a",
		Outcome:    event.Success,
	}
	want := `{"action":"a","actor":{"id":"u"},"id":"01J","log":"l","outcome":"success","received_at":"2026-01-01T00:00:00Z",` +
		`"seq":7,"targets":[],"time":"2026-01-01T00:59:59.0000001Z"}`
	if got := string(Append(nil, &e)); got != want {
		t.Errorf("Append() = %s, want %s", got, want)
	}
	e.Source.IP = "192.0.2.1"
	e.Changes = &event.Changes{After: json.RawMessage(`1`)}
	want = `{"action":"a","actor":{"id":"u"},"changes":{"after":1},"id":"01J","log":"l","outcome":"success","received_at":"2026-01-01T00:00:00Z",` +
		`"seq":7,"source":{"ip":"192.0.2.1"},"targets":[],"time":"2026-01-01T00:59:59.0000001Z"}`
	if got := string(Append([]byte("prefix"), &e)); got != "prefix"+want {
		t.Errorf("Append(prefix) = %s, want prefix%s", got, want)
	}
}

// TestAppendDecodeStored checks that an event as event.DecodeStored reads it,
// with metadata and changes put into canonical form, writes the expected
// canonical text.
func TestAppendDecodeStored(t *testing.T) {
	in := `{
	  "id": "01KDNB3J2Y0000000001A1B2C3",
	  "seq": 42,
	  "log": "default",
	  "received_at": "2026-01-01T00:00:01.5+01:00",
	  "time": "2026-01-01T00:00:00Z",
	  "actor": {"id": "u"},
	  "action": "a",
	  "outcome": "success",
	  "targets": [],
	  "changes": {"after": {"z": 1.50, "a": [1E2]}},
	  "metadata": {"b": "\u00e9", "a": 1e21}
	}`
	e, err := event.DecodeStored([]byte(in))
	if err != nil {
		t.Fatalf("DecodeStored(%q) error = %v", in, err)
	}
	want := `{"action":"a","actor":{"id":"u"},"changes":{"after":{"a":[100],"z":1.5}},"id":"01KDNB3J2Y0000000001A1B2C3","log":"default",` +
		`"metadata":{"a":1e+21,"b":"é"},"outcome":"success","received_at":"2025-12-31T23:00:01.5Z","seq":42,"targets":[],"time":"2026-01-01T00:00:00Z"}`
	if got := string(Append(nil, &e)); got != want {
		t.Errorf("Append(DecodeStored(%q)) = %s, want %s", in, got, want)
	}
}

func TestAppendString(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		{"", `""`},
		{"plain", `"plain"`},
		{`q"b\s/`, `"q\"b\\s/"`},
		{"\b\f\n\r\t", `"\b\f\n\r\t"`},
		{"\x00\x01\x1f\x7f", `"\u0000\u0001\u001f` + "\x7f\""},
		{"\x0b\x1a", `"\u000b\u001a"`},
		{"<>&\u2028\u2029", "\"<>&\u2028\u2029\""},
		{"é日😀", "\"é日😀\""},
		{"a\xffb", "\"a\ufffdb\""},
		{"\xed\xa0\x80", "\"\ufffd\ufffd\ufffd\""},
		{"\xf0\x9f\x98", "\"\ufffd\ufffd\ufffd\""},
	}
	for _, tt := range tests {
		if got := string(appendString(nil, tt.in)); got != tt.want {
			t.Errorf("appendString(%q) = %s, want %s", tt.in, got, tt.want)
		}
	}
	// Every byte value, against encoding/json and jcs.
	var all []byte
	for c := range 256 {
		all = append(all, byte(c), 'x')
	}
	got := appendString(nil, string(all))
	j, _ := json.Marshal(string(all))
	want, err := jcs.Transform(j)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("appendString(all bytes) =\n%q\nwant\n%q", got, want)
	}
}
