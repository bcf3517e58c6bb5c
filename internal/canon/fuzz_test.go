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

// Seed inputs for FuzzAppend besides the workload and testdata/fuzz: a copy
// of event's seeds for FuzzDecode, which FuzzAppend continues.
var decodeSeeds = []string{
	`{"actor":{"id":"u"},"action":"a","changes":{"before":{"b":[1,2.5,-0,1e21]},"after":null},"metadata":{"k":"\u2028\ud83d\ude00"}}`,
	`{"actor":{"id":"u","name":"\u0000"},"action":"a.b","targets":[null,{"type":"t","id":"i","name":"n"}]}`,
	`{"action":"a","time":"2026-01-01T00:00:00.123+05:30","source":{"ip":"2001:DB8::1"},"trace_id":"4bf92f3577b34da6a3ce929d0e0e4736"}`,
	`{"action":"a","action":"b"}`,
	`{"metadata":{"n":12345678901234567890}}`,
	`{"reason":"\ud800"}`,
	"{\"reason\":\"\xff\"}",
}

// FuzzAppend checks the canonical form of every event that event.Decode and
// Prepare accept: it is valid JSON, RFC 8785 canonicalization leaves it
// unchanged, it matches referenceCanonical, and event.DecodeStored reads it
// back to an event with the same canonical form.
func FuzzAppend(f *testing.F) {
	for _, s := range decodeSeeds {
		f.Add([]byte(s))
	}
	for _, line := range workload(f) {
		f.Add(line)
	}
	now := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, data []byte) {
		e, err := event.Decode(data)
		if err != nil {
			return // event's FuzzDecode checks the errors
		}
		if err := e.Prepare(now, event.Limits{}); err != nil {
			return
		}
		e.Seq = 12345
		e.Log = "fuzz"
		e.ReceivedAt = now
		if e.Time.IsZero() {
			e.Time = e.ReceivedAt
		}
		e.ID = eventid.Make(e.Log, e.Seq, e.ReceivedAt)
		c := Append(nil, &e)
		if !json.Valid(c) {
			t.Fatalf("Append() = %s, not valid JSON", c)
		}
		if jc, err := jcs.Transform(c); err != nil || !bytes.Equal(jc, c) {
			t.Fatalf("jcs.Transform(%s) = %s, %v; want it unchanged", c, jc, err)
		}
		if want := referenceCanonical(t, &e); !bytes.Equal(c, want) {
			t.Fatalf("Append() =\n%s\nwant\n%s", c, want)
		}
		stored, err := event.DecodeStored(c)
		if err != nil {
			t.Fatalf("DecodeStored(%s) error = %v", c, err)
		}
		if again := Append(nil, &stored); !bytes.Equal(again, c) {
			t.Fatalf("Append(DecodeStored(c)) =\n%s\nwant\n%s", again, c)
		}
	})
}

// FuzzAppendStrings checks Append on events whose strings are arbitrary,
// invalid UTF-8 included, against RFC 8785 and referenceCanonical.
func FuzzAppendStrings(f *testing.F) {
	f.Add("user.login", "usr_1", "Ann \"A\" \\ \u2028", "line\nnext\x00\x1f\x7f", "192.0.2.1", "Zoë 😀", "<&>")
	f.Add("", "", "", "", "", "", "")
	f.Add("a", "\xff", "\xed\xa0\x80", "\xf0\x9f", "\b\f\t\r", "日本", "\"")
	f.Fuzz(func(t *testing.T, action, id, name, reason, ip, target, meta string) {
		mj, err := json.Marshal(map[string]string{meta: name, "k": meta})
		if err != nil {
			t.Fatal(err)
		}
		m, err := jcs.Transform(mj)
		if err != nil {
			t.Fatalf("jcs.Transform(%s) error = %v", mj, err)
		}
		e := event.Event{
			ID: id, Seq: int64(len(reason)) << 40, Log: name,
			ReceivedAt: time.Unix(int64(len(action))*1e9, int64(len(id))), Time: time.Unix(1e9, int64(len(ip))),
			Actor:   event.Actor{ID: id, Type: action, Name: name, Email: reason, Role: ip},
			Action:  action,
			Targets: []event.Target{{Type: target, ID: id, Name: name}, {Type: meta, ID: reason}},
			Outcome: event.Outcome(target), Reason: reason,
			Source:    event.Source{IP: ip, UserAgent: target},
			RequestID: meta, TraceID: name,
			Changes:  &event.Changes{Before: m},
			Metadata: m,
		}
		c := Append(nil, &e)
		if !json.Valid(c) {
			t.Fatalf("Append() = %q, not valid JSON", c)
		}
		if jc, err := jcs.Transform(c); err != nil || !bytes.Equal(jc, c) {
			t.Fatalf("jcs.Transform(%q) = %q, %v; want it unchanged", c, jc, err)
		}
		if want := referenceCanonical(t, &e); !bytes.Equal(c, want) {
			t.Fatalf("Append() =\n%q\nwant\n%q", c, want)
		}
	})
}
