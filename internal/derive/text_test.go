package derive

import (
	"bytes"
	"encoding/json"
	"os"
	"testing"

	"github.com/trail-audit/trail/event"
)

func TestSearchText(t *testing.T) {
	tests := []struct {
		name string
		e    event.Event
		want string
	}{
		{
			name: "all fields",
			e: event.Event{
				Actor:    event.Actor{ID: "usr_1", Type: "user", Name: "Ann Lee", Email: "ann@example.com", Role: "admin"},
				Action:   "user.login.failed",
				Reason:   "invalid_credentials",
				Targets:  []event.Target{{Type: "user", ID: "usr_2", Name: "Bob"}, {Type: "org", ID: "o1"}},
				Source:   event.Source{IP: "192.0.2.1", UserAgent: "curl"},
				Metadata: json.RawMessage(`{"a":{"deep":["x y",2.5,true,null]},"b":"é\n","c":1e+21,"key_only":{}}`),
			},
			want: "user.login.failed user login failed invalid_credentials usr_1 Ann Lee ann@example.com admin user usr_2 Bob org o1 x y 2.5 é\n 1e+21",
		},
		{
			name: "no dots, no optional fields",
			e:    event.Event{Actor: event.Actor{ID: "u"}, Action: "login"},
			want: "login u",
		},
		{
			name: "escaped metadata strings are decoded",
			e:    event.Event{Actor: event.Actor{ID: "u"}, Action: "a", Metadata: json.RawMessage(`{"k":"\"q\" \u00e9"}`)},
			want: `a u "q" é`,
		},
		{
			name: "empty",
			e:    event.Event{},
			want: "",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := SearchText(&tt.e); got != tt.want {
				t.Errorf("SearchText() = %q, want %q", got, tt.want)
			}
		})
	}
}

// typicalEvent returns a workload event of about 500 bytes with four
// metadata keys, from the file the event package's tests decode.
func typicalEvent(b *testing.B) event.Event {
	data, err := os.ReadFile("../../event/testdata/workload.ndjson")
	if err != nil {
		b.Fatal(err)
	}
	for line := range bytes.Lines(data) {
		line = bytes.TrimSuffix(line, []byte("\n"))
		if len(line) >= 480 && len(line) <= 520 {
			e, err := event.Decode(line)
			if err != nil {
				b.Fatal(err)
			}
			return e
		}
	}
	b.Fatal("no workload event of about 500 bytes")
	return event.Event{}
}

func BenchmarkSearchText(b *testing.B) {
	e := typicalEvent(b)
	b.ReportAllocs()
	for b.Loop() {
		SearchText(&e)
	}
}

// BenchmarkWords measures the words the indexes file an event under.
func BenchmarkWords(b *testing.B) {
	e := typicalEvent(b)
	b.ReportAllocs()
	for b.Loop() {
		Words(&e)
	}
}
