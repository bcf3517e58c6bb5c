package event

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestDecodeRejects(t *testing.T) {
	deep := `{"metadata":` + strings.Repeat("[", decodeDepth+1) + strings.Repeat("]", decodeDepth+1) + `}`
	var manyKeys strings.Builder
	manyKeys.WriteString(`{"metadata":{`)
	for i := range 40 {
		fmt.Fprintf(&manyKeys, `"k%d":1,`, i)
	}
	manyKeys.WriteString(`"k7":2}}`)

	tests := []struct {
		name   string
		in     string
		field  string
		reason string // a substring of the reason
	}{
		{"empty", ``, "", "not a JSON object"},
		{"array", `[]`, "", "not a JSON object"},
		{"string", `"event"`, "", "not a JSON object"},
		{"null", `null`, "", "not a JSON object"},
		{"trailing object", `{"action":"a"} {}`, "", "data after the event"},
		{"trailing garbage", `{"action":"a"}x`, "", "data after the event"},
		{"trailing NUL", "{\"action\":\"a\"}\x00", "", "data after the event"},
		{"NUL in object", "{\"action\":\"a\"\x00}", "", "invalid JSON: unexpected byte 0x00"},
		{"unterminated", `{"action":"a"`, "", "unexpected end of input"},
		{"trailing comma", `{"action":"a",}`, "", "invalid JSON"},
		{"missing colon", `{"action" "a"}`, "action", "invalid JSON"},
		{"single quotes", `{'action':'a'}`, "", "invalid JSON"},

		{"unknown top", `{"foo":1}`, "foo", "unknown field"},
		{"case folded top", `{"Action":"a"}`, "Action", "unknown field"},
		{"unknown actor", `{"actor":{"id":"u","ID":"x"}}`, "actor.ID", "unknown field"},
		{"unknown target", `{"targets":[{"type":"t","id":"1"},{"type":"t","id":"2","x":1}]}`, "targets[1].x", "unknown field"},
		{"unknown source", `{"source":{"ip":"1.2.3.4","port":1}}`, "source.port", "unknown field"},
		{"unknown changes", `{"changes":{"before":1,"during":2}}`, "changes.during", "unknown field"},
		{"odd key quoted in path", `{"a.b\n":1}`, `["a.b\n"]`, "unknown field"},

		{"id", `{"id":"01J"}`, "id", "assigned by Trail"},
		{"seq", `{"seq":1}`, "seq", "assigned by Trail"},
		{"log", `{"log":"x"}`, "log", "assigned by Trail"},
		{"received_at", `{"received_at":"2026-01-01T00:00:00Z"}`, "received_at", "assigned by Trail"},

		{"actor.id number", `{"actor":{"id":1}}`, "actor.id", "must be a string"},
		{"action bool", `{"action":true}`, "action", "must be a string"},
		{"actor string", `{"actor":"u1"}`, "actor", "must be an object"},
		{"targets object", `{"targets":{}}`, "targets", "must be an array"},
		{"target number", `{"targets":[1]}`, "targets[0]", "must be an object"},
		{"target id array", `{"targets":[{"type":"t","id":[]}]}`, "targets[0].id", "must be a string"},
		{"source array", `{"source":[]}`, "source", "must be an object"},
		{"source.ip number", `{"source":{"ip":4}}`, "source.ip", "must be a string"},
		{"outcome number", `{"outcome":1}`, "outcome", "must be a string"},
		{"changes array", `{"changes":[]}`, "changes", "must be an object"},
		{"time number", `{"time":1700000000}`, "time", "must be a string"},
		{"time words", `{"time":"yesterday"}`, "time", "not an RFC 3339 time"},
		{"time empty", `{"time":""}`, "time", "not an RFC 3339 time"},
		{"time space", `{"time":"2026-01-01 00:00:00Z"}`, "time", "not an RFC 3339 time"},
		{"time no zone", `{"time":"2026-01-01T00:00:00"}`, "time", "not an RFC 3339 time"},
		{"time hour 24", `{"time":"2026-01-01T24:00:00Z"}`, "time", "not an RFC 3339 time"},
		{"time offset 24 hours", `{"time":"2026-01-01T00:00:00+24:00"}`, "time", "not an RFC 3339 time"},
		{"time offset -24 hours", `{"time":"2026-01-01T00:00:00-24:00"}`, "time", "not an RFC 3339 time"},
		{"time offset 60 minutes", `{"time":"2026-01-01T00:00:00+23:60"}`, "time", "not an RFC 3339 time"},
		{"byte order mark", "\ufeff{\"action\":\"a.b\"}", "", "starts with a byte order mark"},
		{"time comma fraction", `{"time":"2026-01-01T00:00:00,5Z"}`, "time", "not an RFC 3339 time"},
		{"time past nanoseconds", `{"time":"2026-01-01T00:00:00.123456789999Z"}`, "time", "finer than a nanosecond"},
		{"time past nanoseconds, offset", `{"time":"2026-01-01T00:00:00.0000000001+02:00"}`, "time", "finer than a nanosecond"},
		{"time zero", `{"time":"0001-01-01T00:00:00Z"}`, "time", "must be between 1970-01-01 and 2262-04-11"},
		{"time zero elsewhere", `{"time":"0001-01-01T01:00:00+01:00"}`, "time", "must be between 1970-01-01 and 2262-04-11"},
		{"bad literal", `{"reason":nul}`, "reason", "invalid JSON"},

		{"invalid UTF-8", "{\"actor\":{\"id\":\"\xff\"}}", "actor.id", "invalid UTF-8"},
		{"truncated UTF-8 deep", "{\"metadata\":{\"a\":{\"b\":\"x\xc3\"}}}", "metadata.a.b", "invalid UTF-8"},
		{"UTF-8 surrogate", "{\"targets\":[{\"type\":\"t\",\"id\":\"x\"},{\"name\":\"\xed\xa0\x80\"}]}", "targets[1].name", "invalid UTF-8"},
		{"invalid UTF-8 key", "{\"metadata\":{\"\xff\":1}}", "metadata", "invalid UTF-8"},
		{"invalid UTF-8 outside string", "{\"action\":\"a\"\xff}", "", "invalid JSON"},
		{"lone high surrogate", `{"reason":"\ud800"}`, "reason", "lone UTF-16 surrogate"},
		{"lone low surrogate", `{"reason":"\udc00\ud800"}`, "reason", "lone UTF-16 surrogate"},
		{"high then letter", `{"reason":"\ud800\u0041"}`, "reason", "lone UTF-16 surrogate"},
		{"high at end", `{"reason":"x\uD83D"}`, "reason", "lone UTF-16 surrogate"},
		{"lone surrogate in metadata", `{"metadata":{"k":["ok","\ud83d"]}}`, "metadata.k[1]", "lone UTF-16 surrogate"},
		{"lone surrogate in changes", `{"changes":{"after":{"k":"\udfff"}}}`, "changes.after.k", "lone UTF-16 surrogate"},
		{"raw control character", "{\"reason\":\"a\tb\"}", "reason", "unescaped control character"},
		{"bad escape", `{"metadata":{"a":"x\q"}}`, "metadata.a", "bad escape"},
		{"short u escape", `{"metadata":{"a":"\u12"}}`, "metadata.a", "bad \\u escape"},

		{"duplicate top", `{"action":"a","action":"b"}`, "action", "duplicate key"},
		{"duplicate null top", `{"reason":null,"reason":"x"}`, "reason", "duplicate key"},
		{"duplicate actor", `{"actor":{"id":"a","id":"b"}}`, "actor.id", "duplicate key"},
		{"duplicate source", `{"source":{"ip":"1.1.1.1","ip":"2.2.2.2"}}`, "source.ip", "duplicate key"},
		{"duplicate target", `{"targets":[{"id":"a","id":"b"}]}`, "targets[0].id", "duplicate key"},
		{"duplicate changes", `{"changes":{"before":1,"before":2}}`, "changes.before", "duplicate key"},
		{"duplicate metadata", `{"metadata":{"a":1,"a":2}}`, "metadata.a", "duplicate key"},
		{"duplicate escaped", `{"metadata":{"a":1,"\u0061":2}}`, "metadata.a", "duplicate key"},
		{"duplicate nested", `{"metadata":{"x":{"a":1,"b":2,"a":3}}}`, "metadata.x.a", "duplicate key"},
		{"duplicate in large object", manyKeys.String(), "metadata.k7", "duplicate key"},

		{"leading zero", `{"metadata":{"a":01}}`, "metadata.a", "invalid JSON"},
		{"bare point", `{"metadata":{"a":1.}}`, "metadata.a", "invalid JSON"},
		{"bare minus", `{"metadata":{"a":-}}`, "metadata.a", "invalid JSON"},
		{"bare exponent", `{"metadata":{"a":1e}}`, "metadata.a", "invalid JSON"},
		{"plus sign", `{"metadata":{"a":+1}}`, "metadata.a", "invalid JSON"},
		{"NaN", `{"metadata":{"a":NaN}}`, "metadata.a", "invalid JSON"},
		{"truncated literal", `{"metadata":{"a":tru}}`, "metadata.a", "invalid JSON"},
		{"array trailing comma", `{"metadata":{"a":[1,]}}`, "metadata.a[1]", "invalid JSON"},
		{"too deep", deep, "metadata", "nested deeper than 9000 levels"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Decode([]byte(tt.in))
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("Decode(%q) error = %v, want *Error", tt.in, err)
			}
			field := e.Field
			if tt.name == "too deep" {
				field, _, _ = strings.Cut(field, "[")
			}
			if field != tt.field || !strings.Contains(e.Reason, tt.reason) || e.Index != -1 {
				t.Errorf("Decode(%q) error = %v, want field %q, reason containing %q, index -1", tt.in, err, tt.field, tt.reason)
			}
		})
	}
}

func TestDecodeAccepts(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want Event
	}{
		{
			name: "full",
			in: `{"time":"2026-03-04T05:06:07.123456789Z","actor":{"id":"u1","type":"user","name":"Ann","email":"a@example.com","role":"admin"},
				"action":"user.update","targets":[{"type":"user","id":"u2","name":"Bob"},{"type":"org","id":"o1"}],
				"outcome":"failure","reason":"nope","source":{"ip":"10.0.0.1","user_agent":"curl/8"},"request_id":"r1",
				"trace_id":"4bf92f3577b34da6a3ce929d0e0e4736","changes":{"before":{"b":1, "a":2},"after":null},"metadata":{"k": [1, 2.5]}}`,
			want: Event{
				Time:      time.Date(2026, 3, 4, 5, 6, 7, 123456789, time.UTC),
				Actor:     Actor{ID: "u1", Type: "user", Name: "Ann", Email: "a@example.com", Role: "admin"},
				Action:    "user.update",
				Targets:   []Target{{Type: "user", ID: "u2", Name: "Bob"}, {Type: "org", ID: "o1"}},
				Outcome:   Failure,
				Reason:    "nope",
				Source:    Source{IP: "10.0.0.1", UserAgent: "curl/8"},
				RequestID: "r1",
				TraceID:   "4bf92f3577b34da6a3ce929d0e0e4736",
				Changes:   &Changes{Before: json.RawMessage(`{"b":1, "a":2}`), After: json.RawMessage(`null`)},
				Metadata:  json.RawMessage(`{"k": [1, 2.5]}`),
			},
		},
		{
			name: "fraction past nanoseconds, zeros",
			in:   `{"time":"2026-03-04T05:06:07.123456789000Z"}`,
			want: Event{Time: time.Date(2026, 3, 4, 5, 6, 7, 123456789, time.UTC)},
		},
		{
			name: "whitespace",
			in:   " \t\r\n{ \"action\" :\n\"a\" , \"actor\" : { \"id\" : \"u\" } }\n ",
			want: Event{Action: "a", Actor: Actor{ID: "u"}},
		},
		{
			name: "escapes",
			in:   `{"reason":"q\" b\\ s\/ \b\f\n\r\t \u00e9 \ud83d\ude00 \u0000 \u2028"}`,
			want: Event{Reason: "q\" b\\ s/ \b\f\n\r\t é 😀 \x00 \u2028"},
		},
		{
			name: "raw non-ASCII",
			in:   `{"actor":{"name":"Zoë 日本 😀"}}`,
			want: Event{Actor: Actor{Name: "Zoë 日本 😀"}},
		},
		{
			name: "nulls are zero values",
			in:   `{"time":null,"actor":null,"action":null,"targets":null,"outcome":null,"reason":null,"source":null,"request_id":null,"trace_id":null,"changes":null}`,
			want: Event{},
		},
		{
			name: "null target and fields",
			in:   `{"targets":[null,{"type":null,"id":"x","name":null}],"actor":{"id":null},"source":{"ip":null}}`,
			want: Event{Targets: []Target{{}, {ID: "x"}}},
		},
		{
			name: "null metadata kept",
			in:   `{"metadata":null}`,
			want: Event{Metadata: json.RawMessage(`null`)},
		},
		{
			name: "empty changes",
			in:   `{"changes":{}}`,
			want: Event{Changes: &Changes{}},
		},
		{
			name: "time offset kept",
			in:   `{"time":"2026-01-01T02:00:00+02:00"}`,
			want: Event{Time: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)},
		},
		{
			name: "metadata any value",
			in:   `{"metadata":[true,false,null,-0.5e-3,"x",{}]}`,
			want: Event{Metadata: json.RawMessage(`[true,false,null,-0.5e-3,"x",{}]`)},
		},
		{
			name: "same key in different objects",
			in:   `{"metadata":{"a":{"a":1},"b":{"a":1}}}`,
			want: Event{Metadata: json.RawMessage(`{"a":{"a":1},"b":{"a":1}}`)},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Decode([]byte(tt.in))
			if err != nil {
				t.Fatalf("Decode(%q) error = %v, want nil", tt.in, err)
			}
			if !got.Time.Equal(tt.want.Time) {
				t.Errorf("Decode(%q).Time = %v, want %v", tt.in, got.Time, tt.want.Time)
			}
			got.Time, tt.want.Time = time.Time{}, time.Time{}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Decode(%q) = %+v, want %+v", tt.in, got, tt.want)
			}
		})
	}
}

func TestDecodeDoesNotAliasInput(t *testing.T) {
	in := []byte(`{"action":"a","metadata":{"k":"v"}}`)
	e, err := Decode(in)
	if err != nil {
		t.Fatal(err)
	}
	for i := range in {
		in[i] = ' '
	}
	if e.Action != "a" || string(e.Metadata) != `{"k":"v"}` {
		t.Errorf("Decode result changed with its input: %+v", e)
	}
}

func TestDecodeStored(t *testing.T) {
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
	e, err := DecodeStored([]byte(in))
	if err != nil {
		t.Fatalf("DecodeStored(%q) error = %v", in, err)
	}
	if e.ID != "01KDNB3J2Y0000000001A1B2C3" || e.Seq != 42 || e.Log != "default" ||
		!e.ReceivedAt.Equal(time.Date(2025, 12, 31, 23, 0, 1, 5e8, time.UTC)) {
		t.Errorf("DecodeStored(%q) assigned fields = %q %d %q %v", in, e.ID, e.Seq, e.Log, e.ReceivedAt)
	}
	if got, want := string(e.Metadata), `{"a":1e+21,"b":"é"}`; got != want {
		t.Errorf("DecodeStored(%q).Metadata = %s, want %s", in, got, want)
	}
	if got, want := string(e.Changes.After), `{"a":[100],"z":1.5}`; got != want {
		t.Errorf("DecodeStored(%q).Changes.After = %s, want %s", in, got, want)
	}
	// That DecodeStored's result writes back to its canonical form is tested
	// in internal/canon (TestAppendDecodeStored).

	rejects := []struct {
		in    string
		field string
	}{
		{`{"seq":1.5}`, "seq"},
		{`{"seq":1e3}`, "seq"},
		{`{"seq":"1"}`, "seq"},
		{`{"seq":99999999999999999999}`, "seq"},
		{`{"id":1}`, "id"},
		{`{"received_at":"now"}`, "received_at"},
		{`{"seq":1,"seq":2}`, "seq"},
		{`{"hash":"x"}`, "hash"},
		{`{"metadata":{"a":1e400}}`, "metadata"},
	}
	for _, tt := range rejects {
		_, err := DecodeStored([]byte(tt.in))
		var e *Error
		if !errors.As(err, &e) || e.Field != tt.field {
			t.Errorf("DecodeStored(%q) error = %v, want field %q", tt.in, err, tt.field)
		}
	}
}

func TestErrorPathBounded(t *testing.T) {
	key := strings.Repeat("k", 100)
	in := `{"metadata":{"` + key + `":` + strings.Repeat("[", 500) + `"\ud800"` + strings.Repeat("]", 500) + `}}`
	_, err := Decode([]byte(in))
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("Decode error = %v, want *Error", err)
	}
	if want := `metadata["` + key[:maxKeyInPath] + `"...][0][0]`; !strings.HasPrefix(e.Field, want) || len(e.Field) > maxPathLen {
		t.Errorf("Decode error field = %q (%d bytes), want prefix %q and at most %d bytes", e.Field, len(e.Field), want, maxPathLen)
	}
}
