package event

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/gowebpki/jcs"
)

func TestAppendCanonicalShape(t *testing.T) {
	e := Event{
		ID:         "01J",
		Seq:        7,
		Log:        "l",
		ReceivedAt: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
		Time:       time.Date(2025, 12, 31, 23, 59, 59, 100, time.FixedZone("", -3600)),
		Actor:      Actor{ID: "u"},
		Action:     "a",
		Outcome:    Success,
	}
	want := `{"action":"a","actor":{"id":"u"},"id":"01J","log":"l","outcome":"success","received_at":"2026-01-01T00:00:00Z",` +
		`"seq":7,"targets":[],"time":"2026-01-01T00:59:59.0000001Z"}`
	if got := string(e.AppendCanonical(nil)); got != want {
		t.Errorf("AppendCanonical() = %s, want %s", got, want)
	}
	e.Source.IP = "192.0.2.1"
	e.Changes = &Changes{After: json.RawMessage(`1`)}
	want = `{"action":"a","actor":{"id":"u"},"changes":{"after":1},"id":"01J","log":"l","outcome":"success","received_at":"2026-01-01T00:00:00Z",` +
		`"seq":7,"source":{"ip":"192.0.2.1"},"targets":[],"time":"2026-01-01T00:59:59.0000001Z"}`
	if got := string(e.AppendCanonical([]byte("prefix"))); got != "prefix"+want {
		t.Errorf("AppendCanonical(prefix) = %s, want prefix%s", got, want)
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
