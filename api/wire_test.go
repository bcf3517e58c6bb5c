package api

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/trail-audit/trail/event"
	"github.com/trail-audit/trail/internal/canon"
)

func storedEvent(t *testing.T, seq int64, reason string) *event.Event {
	t.Helper()
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	e, err := event.DecodeStored([]byte(`{"id":"01JNE7ZB00` + strconv.FormatInt(100000+seq, 10) + `XXXXXXXXXX","seq":` + strconv.FormatInt(seq, 10) +
		`,"log":"acme","received_at":"` + at.Format(time.RFC3339Nano) + `","time":"` + at.Format(time.RFC3339Nano) +
		`","actor":{"id":"alice"},"action":"user.login","targets":[],"outcome":"failure","reason":"` + reason + `","metadata":{"b":1,"a":"<&>"}}`))
	if err != nil {
		t.Fatal(err)
	}
	return &e
}

// A page is written as GET /v1/events answers: the canonical events, the
// cursor or null; read back, each event is a stored event again.
func TestPageJSON(t *testing.T) {
	e := storedEvent(t, 3, "bad password")
	for _, tc := range []struct {
		name string
		page Page
		want string
	}{
		{"empty", Page{}, `{"events":[],"next_cursor":null}`},
		{"cursor", Page{Events: []*event.Event{e}, NextCursor: "3"}, `{"events":[` + string(canon.Append(nil, e)) + `],"next_cursor":"3"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.page.MarshalJSON()
			if err != nil || string(got) != tc.want {
				t.Fatalf("MarshalJSON() = %s, %v; want %s", got, err, tc.want)
			}
			var buf bytes.Buffer
			if _, err := tc.page.WriteTo(&buf); err != nil || buf.String() != tc.want+"\n" {
				t.Errorf("WriteTo = %q, %v; want %q", buf.String(), err, tc.want+"\n")
			}
			var back Page
			if err := json.Unmarshal(got, &back); err != nil {
				t.Fatal(err)
			}
			again, _ := back.MarshalJSON()
			if string(again) != tc.want {
				t.Errorf("marshal(unmarshal(%s)) = %s", tc.want, again)
			}
		})
	}
}

// A page larger than WriteTo's buffer is written in pieces that add up to
// the same bytes.
func TestPageWriteToLarge(t *testing.T) {
	var p Page
	for i := range 200 {
		p.Events = append(p.Events, storedEvent(t, int64(i), strings.Repeat("x", 500)))
	}
	var w countingWriter
	n, err := p.WriteTo(&w)
	if err != nil || n != int64(w.buf.Len()) {
		t.Fatalf("WriteTo = %d, %v; wrote %d bytes", n, err, w.buf.Len())
	}
	if w.writes < 2 {
		t.Errorf("WriteTo wrote %d KiB in %d writes, want pieces of about 32 KiB", w.buf.Len()>>10, w.writes)
	}
	want, _ := p.MarshalJSON()
	if !bytes.Equal(w.buf.Bytes(), append(want, '\n')) {
		t.Error("WriteTo and MarshalJSON differ")
	}
}

type countingWriter struct {
	buf    bytes.Buffer
	writes int
}

func (w *countingWriter) Write(b []byte) (int, error) {
	w.writes++
	return w.buf.Write(b)
}

func TestPageUnmarshalRejectsMalformedEvent(t *testing.T) {
	var p Page
	err := json.Unmarshal([]byte(`{"events":[{"actor":{"id":"a"},"action":"x","colour":"red"}],"next_cursor":null}`), &p)
	if err == nil || !strings.Contains(err.Error(), "event 0") {
		t.Errorf("Unmarshal(a page with an event with an unknown field) = %v, want an error naming event 0", err)
	}
}

func TestHashesJSON(t *testing.T) {
	h := Hashes{tlog.Hash{1}, tlog.Hash{2}}
	b, err := json.Marshal(InclusionProof{Seq: 1, TreeSize: 3, Hashes: h})
	want := `{"seq":1,"tree_size":3,"hashes":["AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=","AgAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="]}`
	if err != nil || string(b) != want {
		t.Fatalf("Marshal = %s, %v; want %s", b, err, want)
	}
	var back InclusionProof
	if err := json.Unmarshal(b, &back); err != nil || len(back.Hashes) != 2 || back.Hashes[1] != h[1] {
		t.Errorf("Unmarshal(%s) = %+v, %v", b, back, err)
	}
	if b, _ := json.Marshal(ConsistencyProof{From: 1, To: 1}); string(b) != `{"from":1,"to":1,"hashes":[]}` {
		t.Errorf("an empty proof marshals as %s, want hashes []", b)
	}
	for _, bad := range []string{`["AQ=="]`, `["not base64"]`, `[1]`} {
		var got Hashes
		if err := json.Unmarshal([]byte(bad), &got); err == nil {
			t.Errorf("Unmarshal(%s) = nil error, want one", bad)
		}
	}
}

func TestStatsJSON(t *testing.T) {
	at := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	for _, bucket := range []time.Duration{time.Hour, 24 * time.Hour, 30 * time.Minute} {
		s := Stats{Since: at, Until: at.Add(bucket), Bucket: bucket, Total: 1, ByOutcome: map[string]int64{"success": 1},
			Series: []StatsBucket{{Start: at, Total: 1}}, TopActors: []Count{{"alice", 1}}, TopActions: []Count{{"user.login", 1}}, FailedIPs: []IPCount{}}
		b, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		if want := `"bucket":"` + map[time.Duration]string{time.Hour: "hour", 24 * time.Hour: "day", 30 * time.Minute: "30m0s"}[bucket] + `"`; !strings.Contains(string(b), want) {
			t.Errorf("Marshal(Stats{Bucket: %v}) = %s, want %s", bucket, b, want)
		}
		var back Stats
		if err := json.Unmarshal(b, &back); err != nil || back.Bucket != bucket || back.Total != 1 || back.TopActors[0] != s.TopActors[0] {
			t.Errorf("Unmarshal(%s) = %+v, %v", b, back, err)
		}
	}
}

func TestNewEventInput(t *testing.T) {
	e := storedEvent(t, 1, "r")
	e.Source = event.Source{IP: "192.0.2.1"}
	b, err := json.Marshal(NewEventInput(e))
	want := `{"time":"2026-03-01T12:00:00Z","actor":{"id":"alice"},"action":"user.login","outcome":"failure","reason":"r","source":{"ip":"192.0.2.1"},"metadata":{"a":"\u003c\u0026\u003e","b":1}}`
	if err != nil || string(b) != want {
		t.Errorf("Marshal(NewEventInput(e)) = %s, %v; want %s", b, err, want)
	}
	if _, err := event.Decode(b); err != nil {
		t.Errorf("the server's decoder refuses the input: %v", err)
	}
	b, _ = json.Marshal(NewEventInput(&event.Event{Actor: event.Actor{ID: "a"}, Action: "x"}))
	if want := `{"actor":{"id":"a"},"action":"x"}`; string(b) != want {
		t.Errorf("Marshal(NewEventInput(minimal)) = %s, want %s", b, want)
	}
}
