package event

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/gowebpki/jcs"
)

var testNow = time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)

// validEvent returns an event that Prepare accepts.
func validEvent() Event {
	return Event{
		Time:      testNow.Add(-time.Minute),
		Actor:     Actor{ID: "usr_1", Type: ActorUser, Name: "Ann", Email: "ann@example.com", Role: "admin"},
		Action:    "user.update",
		Targets:   []Target{{Type: "user", ID: "usr_2", Name: "Bob"}, {Type: "org", ID: "org_1"}, {Type: "team", ID: "t_1"}},
		Outcome:   Success,
		Reason:    "",
		Source:    Source{IP: "192.0.2.1", UserAgent: "curl/8.5.0"},
		RequestID: "req_1",
		TraceID:   "4bf92f3577b34da6a3ce929d0e0e4736",
		Changes:   &Changes{Before: json.RawMessage(`{"plan":"free"}`), After: json.RawMessage(`{"plan":"team"}`)},
		Metadata:  json.RawMessage(`{"client":"web"}`),
	}
}

func nested(depth int) string {
	return strings.Repeat(`{"a":`, depth-1) + `{}` + strings.Repeat(`}`, depth-1)
}

func TestPrepareRules(t *testing.T) {
	s := strings.Repeat
	tests := []struct {
		name   string
		edit   func(e *Event)
		lim    Limits
		field  string // "-" for no error
		reason string // a substring of the reason
	}{
		{"valid", func(e *Event) {}, Limits{}, "-", ""},

		{"actor.id missing", func(e *Event) { e.Actor.ID = "" }, Limits{}, "actor.id", "required"},
		{"actor.id 256", func(e *Event) { e.Actor.ID = s("x", 256) }, Limits{}, "-", ""},
		{"actor.id 257", func(e *Event) { e.Actor.ID = s("x", 257) }, Limits{}, "actor.id", "longer than 256 bytes"},
		{"actor.id NUL", func(e *Event) { e.Actor.ID = "a\x00" }, Limits{}, "actor.id", "control characters"},
		{"actor.id tab", func(e *Event) { e.Actor.ID = "a\tb" }, Limits{}, "actor.id", "control characters"},
		{"actor.id invalid UTF-8", func(e *Event) { e.Actor.ID = "a\xff" }, Limits{}, "actor.id", "invalid UTF-8"},
		{"actor.id DEL and non-ASCII", func(e *Event) { e.Actor.ID = "a\x7fé\u2028" }, Limits{}, "-", ""},
		{"actor.type empty", func(e *Event) { e.Actor.Type = "" }, Limits{}, "-", ""},
		{"actor.type service", func(e *Event) { e.Actor.Type = ActorService }, Limits{}, "-", ""},
		{"actor.type system", func(e *Event) { e.Actor.Type = ActorSystem }, Limits{}, "-", ""},
		{"actor.type anonymous", func(e *Event) { e.Actor.Type = ActorAnonymous }, Limits{}, "-", ""},
		{"actor.type robot", func(e *Event) { e.Actor.Type = "robot" }, Limits{}, "actor.type", "must be one of"},
		{"actor.type User", func(e *Event) { e.Actor.Type = "User" }, Limits{}, "actor.type", "must be one of"},
		{"actor.name 257", func(e *Event) { e.Actor.Name = s("n", 257) }, Limits{}, "actor.name", "longer than 256 bytes"},
		{"actor.name newline", func(e *Event) { e.Actor.Name = "a\nb" }, Limits{}, "actor.name", "control characters"},
		{"actor.email 257", func(e *Event) { e.Actor.Email = s("e", 257) }, Limits{}, "actor.email", "longer than 256 bytes"},
		{"actor.email invalid UTF-8", func(e *Event) { e.Actor.Email = "\xc3" }, Limits{}, "actor.email", "invalid UTF-8"},
		{"actor.role 64", func(e *Event) { e.Actor.Role = s("r", 64) }, Limits{}, "-", ""},
		{"actor.role 65", func(e *Event) { e.Actor.Role = s("r", 65) }, Limits{}, "actor.role", "longer than 64 bytes"},

		{"action missing", func(e *Event) { e.Action = "" }, Limits{}, "action", "required"},
		{"action one word", func(e *Event) { e.Action = "login" }, Limits{}, "-", ""},
		{"action digits underscores", func(e *Event) { e.Action = "api_key2.use_1.x" }, Limits{}, "-", ""},
		{"action 128", func(e *Event) { e.Action = s("a", 64) + "." + s("b", 63) }, Limits{}, "-", ""},
		{"action 129", func(e *Event) { e.Action = s("a", 64) + "." + s("b", 64) }, Limits{}, "action", "longer than 128 bytes"},
		{"action upper", func(e *Event) { e.Action = "User.login" }, Limits{}, "action", "lower-case words"},
		{"action double dot", func(e *Event) { e.Action = "user..login" }, Limits{}, "action", "lower-case words"},
		{"action leading dot", func(e *Event) { e.Action = ".user" }, Limits{}, "action", "lower-case words"},
		{"action trailing dot", func(e *Event) { e.Action = "user." }, Limits{}, "action", "lower-case words"},
		{"action leading digit", func(e *Event) { e.Action = "1user" }, Limits{}, "action", "lower-case words"},
		{"action word leading digit", func(e *Event) { e.Action = "user.2fa" }, Limits{}, "action", "lower-case words"},
		{"action word leading underscore", func(e *Event) { e.Action = "user._x" }, Limits{}, "action", "lower-case words"},
		{"action hyphen", func(e *Event) { e.Action = "user-login" }, Limits{}, "action", "lower-case words"},
		{"action space", func(e *Event) { e.Action = "user login" }, Limits{}, "action", "lower-case words"},

		{"no targets", func(e *Event) { e.Targets = nil }, Limits{}, "-", ""},
		{"100 targets", func(e *Event) { e.Targets = make([]Target, 100); fillTargets(e.Targets) }, Limits{}, "-", ""},
		{"101 targets", func(e *Event) { e.Targets = make([]Target, 101); fillTargets(e.Targets) }, Limits{}, "targets", "more than 100 targets"},
		{"target type missing", func(e *Event) { e.Targets[2].Type = "" }, Limits{}, "targets[2].type", "required"},
		{"target type 64", func(e *Event) { e.Targets[2].Type = s("t", 64) }, Limits{}, "-", ""},
		{"target type 65", func(e *Event) { e.Targets[2].Type = s("t", 65) }, Limits{}, "targets[2].type", "longer than 64 bytes"},
		{"target type free text", func(e *Event) { e.Targets[2].Type = "Billing Account é" }, Limits{}, "-", ""},
		{"target type control", func(e *Event) { e.Targets[1].Type = "a\x1b" }, Limits{}, "targets[1].type", "control characters"},
		{"target id missing", func(e *Event) { e.Targets[0].ID = "" }, Limits{}, "targets[0].id", "required"},
		{"target id 257", func(e *Event) { e.Targets[0].ID = s("i", 257) }, Limits{}, "targets[0].id", "longer than 256 bytes"},
		{"target name 257", func(e *Event) { e.Targets[1].Name = s("n", 257) }, Limits{}, "targets[1].name", "longer than 256 bytes"},
		{"target name invalid UTF-8", func(e *Event) { e.Targets[1].Name = "\xed\xa0\x80" }, Limits{}, "targets[1].name", "invalid UTF-8"},

		{"outcome empty", func(e *Event) { e.Outcome = "" }, Limits{}, "-", ""},
		{"outcome failure", func(e *Event) { e.Outcome = Failure }, Limits{}, "-", ""},
		{"outcome denied", func(e *Event) { e.Outcome = Denied }, Limits{}, "-", ""},
		{"outcome error", func(e *Event) { e.Outcome = Errored }, Limits{}, "-", ""},
		{"outcome ok", func(e *Event) { e.Outcome = "ok" }, Limits{}, "outcome", "must be one of"},
		{"outcome Success", func(e *Event) { e.Outcome = "Success" }, Limits{}, "outcome", "must be one of"},

		{"reason 4096", func(e *Event) { e.Reason = s("r", 4096) }, Limits{}, "-", ""},
		{"reason 4097", func(e *Event) { e.Reason = s("r", 4097) }, Limits{}, "reason", "longer than 4096 bytes"},
		{"reason whitespace", func(e *Event) { e.Reason = "a\tb\nc\r\n" }, Limits{}, "-", ""},
		{"reason NUL", func(e *Event) { e.Reason = "a\x00" }, Limits{}, "reason", "other than tab, newline and carriage return"},
		{"reason escape", func(e *Event) { e.Reason = "\x1b[31m" }, Limits{}, "reason", "control characters"},
		{"reason invalid UTF-8", func(e *Event) { e.Reason = "\xff\n" }, Limits{}, "reason", "invalid UTF-8"},

		{"ip empty", func(e *Event) { e.Source.IP = "" }, Limits{}, "-", ""},
		{"ip v6", func(e *Event) { e.Source.IP = "2001:db8::1" }, Limits{}, "-", ""},
		{"ip 256", func(e *Event) { e.Source.IP = "1.2.3.256" }, Limits{}, "source.ip", "not an IPv4 or IPv6 address"},
		{"ip leading zero", func(e *Event) { e.Source.IP = "1.2.3.04" }, Limits{}, "source.ip", "not an IPv4 or IPv6 address"},
		{"ip host name", func(e *Event) { e.Source.IP = "example.com" }, Limits{}, "source.ip", "not an IPv4 or IPv6 address"},
		{"ip with port", func(e *Event) { e.Source.IP = "1.2.3.4:80" }, Limits{}, "source.ip", "not an IPv4 or IPv6 address"},
		{"ip zone", func(e *Event) { e.Source.IP = "fe80::1%eth0" }, Limits{}, "source.ip", "zone"},
		{"user agent 1024", func(e *Event) { e.Source.UserAgent = s("u", 1024) }, Limits{}, "-", ""},
		{"user agent 1025", func(e *Event) { e.Source.UserAgent = s("u", 1025) }, Limits{}, "source.user_agent", "longer than 1024 bytes"},
		{"user agent control", func(e *Event) { e.Source.UserAgent = "a\rb" }, Limits{}, "source.user_agent", "control characters"},
		{"request_id 257", func(e *Event) { e.RequestID = s("q", 257) }, Limits{}, "request_id", "longer than 256 bytes"},
		{"request_id control", func(e *Event) { e.RequestID = "\x01" }, Limits{}, "request_id", "control characters"},

		{"trace_id empty", func(e *Event) { e.TraceID = "" }, Limits{}, "-", ""},
		{"trace_id upper", func(e *Event) { e.TraceID = "4BF92F3577B34DA6A3CE929D0E0E4736" }, Limits{}, "trace_id", "32 lower-case hex digits"},
		{"trace_id 31", func(e *Event) { e.TraceID = "4bf92f3577b34da6a3ce929d0e0e473" }, Limits{}, "trace_id", "32 lower-case hex digits"},
		{"trace_id 33", func(e *Event) { e.TraceID = "4bf92f3577b34da6a3ce929d0e0e47360" }, Limits{}, "trace_id", "32 lower-case hex digits"},
		{"trace_id zero", func(e *Event) { e.TraceID = s("0", 32) }, Limits{}, "trace_id", "not all zero"},
		{"trace_id not hex", func(e *Event) { e.TraceID = "4bf92f3577b34da6a3ce929d0e0e473g" }, Limits{}, "trace_id", "32 lower-case hex digits"},

		{"time zero", func(e *Event) { e.Time = time.Time{} }, Limits{}, "-", ""},
		{"time at skew", func(e *Event) { e.Time = testNow.Add(5 * time.Minute) }, Limits{}, "-", ""},
		{"time past skew", func(e *Event) { e.Time = testNow.Add(5*time.Minute + 1) }, Limits{}, "time", "more than 5m0s in the future"},
		{"time custom skew", func(e *Event) { e.Time = testNow.Add(30 * time.Minute) }, Limits{MaxFutureSkew: time.Hour}, "-", ""},
		{"time past custom skew", func(e *Event) { e.Time = testNow.Add(61 * time.Minute) }, Limits{MaxFutureSkew: time.Hour}, "time", "more than 1h0m0s in the future"},
		{"time epoch", func(e *Event) { e.Time = time.Unix(0, 0) }, Limits{}, "-", ""},
		{"time before epoch", func(e *Event) { e.Time = time.Unix(0, -1) }, Limits{}, "time", "between 1970-01-01 and 2262-04-11"},
		{"time year 1", func(e *Event) { e.Time = time.Date(1, 1, 1, 0, 0, 0, 1, time.UTC) }, Limits{}, "time", "between 1970-01-01 and 2262-04-11"},
		{"time after 2262", func(e *Event) { e.Time = time.Date(2262, 4, 12, 0, 0, 0, 0, time.UTC) }, Limits{}, "time", "between 1970-01-01 and 2262-04-11"},

		{"metadata nil", func(e *Event) { e.Metadata = nil }, Limits{}, "-", ""},
		{"metadata array", func(e *Event) { e.Metadata = json.RawMessage(`[1]`) }, Limits{}, "metadata", "must be a JSON object"},
		{"metadata string", func(e *Event) { e.Metadata = json.RawMessage(` "x"`) }, Limits{}, "metadata", "must be a JSON object"},
		{"metadata number", func(e *Event) { e.Metadata = json.RawMessage(`1`) }, Limits{}, "metadata", "must be a JSON object"},
		{"metadata bad JSON", func(e *Event) { e.Metadata = json.RawMessage(`{"a":}`) }, Limits{}, "metadata.a", "invalid JSON"},
		{"metadata trailing", func(e *Event) { e.Metadata = json.RawMessage(`{"a":1} {}`) }, Limits{}, "metadata", "data after the value"},
		{"metadata trailing NUL", func(e *Event) { e.Metadata = json.RawMessage("{\"a\":1}\x00") }, Limits{}, "metadata", "data after the value"},
		{"metadata blank", func(e *Event) { e.Metadata = json.RawMessage(` `) }, Limits{}, "metadata", "unexpected end of input"},
		{"metadata nul word", func(e *Event) { e.Metadata = json.RawMessage(`nul`) }, Limits{}, "metadata", "invalid JSON"},
		{"metadata invalid UTF-8", func(e *Event) { e.Metadata = json.RawMessage("{\"a\":[\"\xff\"]}") }, Limits{}, "metadata.a[0]", "invalid UTF-8"},
		{"metadata lone surrogate", func(e *Event) { e.Metadata = json.RawMessage(`{"a":"\udead"}`) }, Limits{}, "metadata.a", "lone UTF-16 surrogate"},
		{"metadata duplicate", func(e *Event) { e.Metadata = json.RawMessage(`{"a":{"b":1,"b":1}}`) }, Limits{}, "metadata.a.b", "duplicate key"},
		{"metadata depth 8", func(e *Event) { e.Metadata = json.RawMessage(nested(8)) }, Limits{}, "-", ""},
		{"metadata depth 9", func(e *Event) { e.Metadata = json.RawMessage(nested(9)) }, Limits{}, "metadata.a.a.a.a.a.a.a.a", "nested deeper than 8 levels"},
		{"metadata depth arrays", func(e *Event) { e.Metadata = json.RawMessage(`{"a":[[1]]}`) }, Limits{MaxDepth: 2}, "metadata.a[0]", "nested deeper than 2 levels"},
		{"metadata depth scalars", func(e *Event) { e.Metadata = json.RawMessage(`{"a":[1,"x",null]}`) }, Limits{MaxDepth: 2}, "-", ""},
		{"metadata size at limit", func(e *Event) { e.Metadata = json.RawMessage(`{"a":"12345678"}`) }, Limits{MaxMetadataSize: 16}, "-", ""},
		{"metadata size over limit", func(e *Event) { e.Metadata = json.RawMessage(`{"a":"123456789"}`) }, Limits{MaxMetadataSize: 16}, "metadata", "17 bytes in canonical form; the limit is 16"},
		{"metadata size counts canonical form", func(e *Event) { e.Metadata = json.RawMessage(`{ "a" : "12345678" }`) }, Limits{MaxMetadataSize: 16}, "-", ""},
		{"metadata default size", func(e *Event) { e.Metadata = json.RawMessage(`{"a":"` + s("x", 32<<10) + `"}`) }, Limits{}, "metadata", "the limit is 32768"},
		{"metadata escaped NUL", func(e *Event) { e.Metadata = json.RawMessage(`{"a":"\u0000"}`) }, Limits{}, "metadata.a", "control characters"},
		{"metadata escaped bell", func(e *Event) { e.Metadata = json.RawMessage(`{"a":"\u0007"}`) }, Limits{}, "metadata.a", "control characters"},
		{"metadata escaped whitespace", func(e *Event) { e.Metadata = json.RawMessage(`{"a":"\t\n\r\u0009"}`) }, Limits{}, "-", ""},
		{"metadata key control", func(e *Event) { e.Metadata = json.RawMessage(`{"a\u0001":1}`) }, Limits{}, `metadata["a\x01"]`, "key must not contain control characters"},
		{"metadata big integer", func(e *Event) { e.Metadata = json.RawMessage(`{"n":12345678901234567890}`) }, Limits{}, "metadata.n", "number cannot be represented exactly; send it as a string"},
		{"metadata long fraction", func(e *Event) { e.Metadata = json.RawMessage(`{"x":{"n":0.1000000000000000000001}}`) }, Limits{}, "metadata.x.n", "cannot be represented exactly"},
		{"metadata 2^53+1", func(e *Event) { e.Metadata = json.RawMessage(`{"n":9007199254740993}`) }, Limits{}, "metadata.n", "cannot be represented exactly"},
		{"metadata out of range", func(e *Event) { e.Metadata = json.RawMessage(`{"n":[1e400]}`) }, Limits{}, "metadata.n[0]", "out of range"},
		{"metadata exact numbers", func(e *Event) {
			e.Metadata = json.RawMessage(`{"n":[1e+21,1.5,0,100,0.1,9007199254740992,1e-7,5e-324,1.7976931348623157e+308,1234567890123456]}`)
		}, Limits{}, "-", ""},
		{"metadata 1.0", func(e *Event) { e.Metadata = json.RawMessage(`{"x":1.0}`) }, Limits{}, "metadata.x", "number 1.0 is not in canonical form (write 1)"},
		{"metadata -0", func(e *Event) { e.Metadata = json.RawMessage(`{"x":[1,-0]}`) }, Limits{}, "metadata.x[1]", "number -0 is not in canonical form (write 0)"},
		{"metadata 1E+2", func(e *Event) { e.Metadata = json.RawMessage(`{"x":{"y":1E+2}}`) }, Limits{}, "metadata.x.y", "number 1E+2 is not in canonical form (write 100)"},
		{"metadata 1e21", func(e *Event) { e.Metadata = json.RawMessage(`{"x":1e21}`) }, Limits{}, "metadata.x", "(write 1e+21)"},
		{"metadata 1.50", func(e *Event) { e.Metadata = json.RawMessage(`{"x":1.50}`) }, Limits{}, "metadata.x", "(write 1.5)"},
		{"metadata 0.0000001", func(e *Event) { e.Metadata = json.RawMessage(`{"x":0.0000001}`) }, Limits{}, "metadata.x", "(write 1e-7)"},
		{"metadata long literal", func(e *Event) { e.Metadata = json.RawMessage(`{"x":1.` + s("0", 100) + `}`) }, Limits{}, "metadata.x", "number 1." + s("0", 35) + "... is not in canonical form (write 1)"},
		{"changes 1.0", func(e *Event) { e.Changes.Before = json.RawMessage(`{"a":[2.50]}`) }, Limits{}, "changes.before.a[0]", "(write 2.5)"},

		{"changes nil", func(e *Event) { e.Changes = nil }, Limits{}, "-", ""},
		{"changes before only", func(e *Event) { e.Changes.After = nil }, Limits{}, "-", ""},
		{"changes null side", func(e *Event) { e.Changes.Before = json.RawMessage(`null`) }, Limits{}, "-", ""},
		{"changes scalar side", func(e *Event) { e.Changes.After = json.RawMessage(`"x"`) }, Limits{}, "-", ""},
		{"changes depth 8", func(e *Event) { e.Changes.Before = json.RawMessage(nested(8)) }, Limits{}, "-", ""},
		{"changes depth 9", func(e *Event) { e.Changes.Before = json.RawMessage(nested(9)) }, Limits{}, "changes.before.a.a.a.a.a.a.a.a", "nested deeper than 8 levels"},
		{"changes inexact", func(e *Event) { e.Changes.After = json.RawMessage(`{"x":[0,18446744073709551615]}`) }, Limits{}, "changes.after.x[1]", "cannot be represented exactly"},
		{"changes bad JSON", func(e *Event) { e.Changes.After = json.RawMessage(`{`) }, Limits{}, "changes.after", "invalid JSON"},
		{"changes control", func(e *Event) { e.Changes.Before = json.RawMessage(`["\b"]`) }, Limits{}, "changes.before[0]", "control characters"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := validEvent()
			tt.edit(&e)
			before := cloneEvent(e)
			err := e.Prepare(testNow, tt.lim)
			if tt.field == "-" {
				if err != nil {
					t.Fatalf("Prepare() error = %v, want nil", err)
				}
				return
			}
			var pe *Error
			if !errors.As(err, &pe) || pe.Field != tt.field || !strings.Contains(pe.Reason, tt.reason) || pe.Index != -1 {
				t.Fatalf("Prepare() error = %v, want field %q, reason containing %q", err, tt.field, tt.reason)
			}
			if !reflect.DeepEqual(e, before) {
				t.Errorf("Prepare() changed the event although it failed:\n got %+v\nwant %+v", e, before)
			}
		})
	}
}

func fillTargets(ts []Target) {
	for i := range ts {
		ts[i] = Target{Type: "doc", ID: fmt.Sprint(i)}
	}
}

func cloneEvent(e Event) Event {
	e.Targets = append([]Target(nil), e.Targets...)
	e.Metadata = append(json.RawMessage(nil), e.Metadata...)
	if e.Changes != nil {
		c := *e.Changes
		e.Changes = &c
	}
	return e
}

func TestPrepareNormalForm(t *testing.T) {
	e := Event{
		Time:   time.Date(2026, 1, 1, 13, 0, 0, 5, time.FixedZone("CET", 3600)),
		Actor:  Actor{ID: "u"},
		Action: "a",
		Source: Source{IP: "2001:DB8:0:0::1"},
		Changes: &Changes{
			Before: json.RawMessage(` { "b" : 1.5, "a" : [ 100 , "\u00e9" ] } `),
		},
		Metadata: json.RawMessage(`{"z":1,"a":{"y":"\u2028","x":0}}`),
	}
	if err := e.Prepare(testNow, Limits{}); err != nil {
		t.Fatalf("Prepare() error = %v", err)
	}
	if e.Time.Location() != time.UTC || !e.Time.Equal(time.Date(2026, 1, 1, 12, 0, 0, 5, time.UTC)) {
		t.Errorf("Prepare() Time = %v, want 2026-01-01 12:00:00.000000005 UTC", e.Time)
	}
	if e.Outcome != Success {
		t.Errorf("Prepare() Outcome = %q, want %q", e.Outcome, Success)
	}
	if want := "2001:db8::1"; e.Source.IP != want {
		t.Errorf("Prepare() Source.IP = %q, want %q", e.Source.IP, want)
	}
	if want := `{"a":[100,"é"],"b":1.5}`; string(e.Changes.Before) != want {
		t.Errorf("Prepare() Changes.Before = %s, want %s", e.Changes.Before, want)
	}
	if e.Changes.After != nil {
		t.Errorf("Prepare() Changes.After = %q, want nil", e.Changes.After)
	}
	if want := "{\"a\":{\"x\":0,\"y\":\"\u2028\"},\"z\":1}"; string(e.Metadata) != want {
		t.Errorf("Prepare() Metadata = %s, want %s", e.Metadata, want)
	}

	empty := []struct {
		name string
		e    Event
	}{
		{"metadata {}", Event{Metadata: json.RawMessage(` { } `)}},
		{"metadata null", Event{Metadata: json.RawMessage(`null`)}},
		{"metadata empty", Event{Metadata: json.RawMessage{}}},
		{"changes {}", Event{Changes: &Changes{}}},
		{"changes empty sides", Event{Changes: &Changes{Before: json.RawMessage{}, After: json.RawMessage{}}}},
	}
	for _, tt := range empty {
		e := tt.e
		e.Actor.ID, e.Action = "u", "a"
		if err := e.Prepare(testNow, Limits{}); err != nil {
			t.Fatalf("%s: Prepare() error = %v", tt.name, err)
		}
		if e.Metadata != nil || e.Changes != nil {
			t.Errorf("%s: Prepare() Metadata, Changes = %q, %v, want nil, nil", tt.name, e.Metadata, e.Changes)
		}
	}

	zero := Event{Actor: Actor{ID: "u"}, Action: "a", Source: Source{IP: "::ffff:1.2.3.4"}}
	if err := zero.Prepare(testNow, Limits{}); err != nil {
		t.Fatalf("Prepare() error = %v", err)
	}
	if !zero.Time.IsZero() || zero.Source.IP != "::ffff:1.2.3.4" {
		t.Errorf("Prepare() Time, Source.IP = %v, %q, want zero, %q", zero.Time, zero.Source.IP, "::ffff:1.2.3.4")
	}
}

func TestPrepareIsIdempotent(t *testing.T) {
	for i, line := range workload(t) {
		e, err := Decode(line)
		if err != nil {
			t.Fatal(err)
		}
		if err := e.Prepare(testNow.AddDate(1, 0, 0), Limits{}); err != nil {
			t.Fatalf("event %d: Prepare() error = %v", i, err)
		}
		again := cloneEvent(e)
		if err := again.Prepare(testNow.AddDate(1, 0, 0), Limits{}); err != nil || !reflect.DeepEqual(again, e) {
			t.Fatalf("event %d: second Prepare() = %+v, %v; want %+v, nil", i, again, err, e)
		}
	}
}

func TestDefaultLimits(t *testing.T) {
	want := Limits{MaxFutureSkew: 5 * time.Minute, MaxMetadataSize: 32 << 10, MaxDepth: 8, MaxEventSize: 1<<16 - 1}
	if got := DefaultLimits(); got != want {
		t.Errorf("DefaultLimits() = %+v, want %+v", got, want)
	}
	if got := (Limits{MaxDepth: 3}).withDefaults(); got.MaxDepth != 3 || got.MaxEventSize != want.MaxEventSize {
		t.Errorf("Limits{MaxDepth: 3}.withDefaults() = %+v, want MaxDepth 3 and defaults elsewhere", got)
	}
}

func TestNumberProblem(t *testing.T) {
	tests := []struct {
		lit  string
		want string // "" or a substring of the problem
	}{
		{"0", ""},
		{"-0", ""},
		{"0.000", ""},
		{"0e999999999999", ""},
		{"100", ""},
		{"1.5", ""},
		{"1.50000000000000000000000", ""},
		{"0.1", ""},
		{"-0.3", ""},
		{"1e21", ""},
		{"1E+21", ""},
		{"1e-7", ""},
		{"123456789012345", ""},
		{"999999999999999", ""},
		{"9007199254740992", ""},
		{"9007199254740993", "exactly"},
		{"12345678901234567890", "exactly"},
		{"18446744073709551616", "exactly"},
		{"0.1000000000000000000001", "exactly"},
		{"0.1000000000000000055511151231257827021181583404541015625", "exactly"},
		{"3.141592653589793", ""},
		{"3.1415926535897932", "exactly"},
		{"1.7976931348623157e308", ""},
		{"1.7976931348623159e308", "out of range"},
		{"1e309", "out of range"},
		{"-1e400", "out of range"},
		{"5e-324", ""},
		{"4.9e-324", "exactly"},
		{"1e-400", "exactly"},
		{"2.2250738585072014e-308", ""},
		{"1e-310", ""},
		{"123e-2", ""},
		{"0.00000000000000000000000000012", ""},
		{"1" + strings.Repeat("0", 300), ""},
		{"1" + strings.Repeat("0", 300) + "1", "exactly"},
		{"0." + strings.Repeat("0", 500) + "1e500", ""},
	}
	for _, tt := range tests {
		got := numberProblem(tt.lit)
		if tt.want == "" && got != "" || tt.want != "" && !strings.Contains(got, tt.want) {
			t.Errorf("numberProblem(%q) = %q, want %q", tt.lit, got, tt.want)
		}
	}
}

func TestCanonicalNumber(t *testing.T) {
	tests := []struct {
		lit  string
		want bool
	}{
		{"0", true},
		{"-0", false},
		{"0.0", false},
		{"7", true},
		{"-7", true},
		{"100", true},
		{"123456789012345", true},
		{"1234567890123456", false}, // canonical, but past what canonicalNumber knows
		{"100000000000000000000", true},
		{"1000000000000000000000", false},
		{"1.5", true},
		{"-0.25", true},
		{"1.50", false},
		{"0.000001", true},
		{"0.0000001", false},
		{"1e2", false},
		{"1E-7", false},
	}
	for _, tt := range tests {
		if got := canonicalNumber(tt.lit); got != tt.want {
			t.Errorf("canonicalNumber(%q) = %v, want %v", tt.lit, got, tt.want)
		}
		if c, err := jcs.Transform([]byte(tt.lit)); tt.want && (err != nil || string(c) != tt.lit) {
			t.Errorf("canonicalNumber(%q) = true, but RFC 8785 writes %s (%v)", tt.lit, c, err)
		}
	}
}

func TestNumberNotCanonical(t *testing.T) {
	tests := []struct {
		lit  string
		want string // "" or what to write instead
	}{
		{"0", ""},
		{"-0", "0"},
		{"0.0", "0"},
		{"1.0", "1"},
		{"1E+2", "100"},
		{"1e2", "100"},
		{"1.50", "1.5"},
		{"-7", ""},
		{"1234567890123456", ""},
		{"1e21", "1e+21"},
		{"1e+21", ""},
		{"1E-7", "1e-7"},
		{"1e-7", ""},
		{"0.0000001", "1e-7"},
		{"5e-324", ""},
		{"1.7976931348623157e308", "1.7976931348623157e+308"},
		{"1.7976931348623157e+308", ""},
	}
	for _, tt := range tests {
		got := numberNotCanonical(tt.lit)
		if tt.want == "" && got != "" || tt.want != "" && !strings.HasSuffix(got, "(write "+tt.want+")") {
			t.Errorf("numberNotCanonical(%q) = %q, want %q", tt.lit, got, tt.want)
		}
		if c, err := jcs.Transform([]byte(tt.lit)); err != nil || (string(c) == tt.lit) != (tt.want == "") {
			t.Errorf("jcs.Transform(%q) = %s, %v; the test's want %q disagrees", tt.lit, c, err, tt.want)
		}
	}
}

func TestUTF16Less(t *testing.T) {
	tests := []struct {
		a, b string
		want bool
	}{
		{"", "a", true},
		{"a", "", false},
		{"a", "a", false},
		{"a", "b", true},
		{"ab", "b", true},
		{"a", "ab", true},
		{"Z", "a", true},
		{"é", "z", false},
		{"\ue000", "😀", false}, // U+E000 sorts after the high surrogate D83D
		{"😀", "\ue000", true},
		{"😀", "😁", true},
		{"\uffff", "\U00010000", false},
	}
	for _, tt := range tests {
		if got := utf16Less(tt.a, tt.b); got != tt.want {
			t.Errorf("utf16Less(%q, %q) = %v, want %v", tt.a, tt.b, got, tt.want)
		}
	}
}
