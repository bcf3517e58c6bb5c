package canon

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/trail-audit/trail/event"
)

var testNow = time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)

// validEvent returns an event that Prepare accepts.
func validEvent() event.Event {
	return event.Event{
		Time:      testNow.Add(-time.Minute),
		Actor:     event.Actor{ID: "usr_1", Type: event.ActorUser, Name: "Ann", Email: "ann@example.com", Role: "admin"},
		Action:    "user.update",
		Targets:   []event.Target{{Type: "user", ID: "usr_2", Name: "Bob"}, {Type: "org", ID: "org_1"}, {Type: "team", ID: "t_1"}},
		Outcome:   event.Success,
		Reason:    "",
		Source:    event.Source{IP: "192.0.2.1", UserAgent: "curl/8.5.0"},
		RequestID: "req_1",
		TraceID:   "4bf92f3577b34da6a3ce929d0e0e4736",
		Changes:   &event.Changes{Before: json.RawMessage(`{"plan":"free"}`), After: json.RawMessage(`{"plan":"team"}`)},
		Metadata:  json.RawMessage(`{"client":"web"}`),
	}
}

func cloneEvent(e event.Event) event.Event {
	e.Targets = append([]event.Target(nil), e.Targets...)
	e.Metadata = append(json.RawMessage(nil), e.Metadata...)
	if e.Changes != nil {
		c := *e.Changes
		e.Changes = &c
	}
	return e
}

func TestCheckSize(t *testing.T) {
	e := validEvent()
	e.Time = time.Time{}
	if err := e.Prepare(testNow, event.Limits{}); err != nil {
		t.Fatal(err)
	}
	// The canonical size with the assigned fields at their longest, computed
	// here independently of CheckSize.
	longest := cloneEvent(e)
	longest.ID = "7ZZZZZZZZZZZZZZZZZZZZZZZZZ"
	longest.Seq = 9007199254740991
	longest.Log = strings.Repeat("x", 64)
	longest.ReceivedAt = time.Date(2006, 1, 2, 15, 4, 5, 999999999, time.UTC)
	longest.Time = longest.ReceivedAt
	size := len(Append(nil, &longest))

	if err := CheckSize(&e, event.Limits{MaxEventSize: size}); err != nil {
		t.Errorf("CheckSize(MaxEventSize: %d) error = %v, want nil", size, err)
	}
	err := CheckSize(&e, event.Limits{MaxEventSize: size - 1})
	want := fmt.Sprintf("event would be up to %d bytes in canonical form once Trail assigns its id, seq, log and received_at (each counted at its longest); the limit is %d", size, size-1)
	var pe *event.Error
	if !errors.As(err, &pe) || pe.Index != -1 || pe.Field != "" || pe.Reason != want {
		t.Errorf("CheckSize(MaxEventSize: %d) error = %#v, want Index -1, no field, reason %q", size-1, err, want)
	}

	// Under the default limit, fields each within their own limits, which
	// Prepare accepts, can add up to too much.
	big := validEvent()
	big.Reason = strings.Repeat("r", 4096)
	big.Source.UserAgent = strings.Repeat("u", 1024)
	big.Targets = make([]event.Target, 100)
	for i := range big.Targets {
		big.Targets[i] = event.Target{Type: strings.Repeat("t", 64), ID: strings.Repeat("i", 256), Name: strings.Repeat("n", 256)}
	}
	if err := big.Prepare(testNow, event.Limits{}); err != nil {
		t.Fatalf("Prepare(100 large targets, long reason) error = %v", err)
	}
	err = CheckSize(&big, event.Limits{})
	if !errors.As(err, &pe) || pe.Index != -1 || pe.Field != "" || !strings.HasSuffix(pe.Reason, "the limit is 65535") {
		t.Errorf("CheckSize(100 large targets, long reason) error = %v, want event size error", err)
	}
}

// TestCheckSizeEntryLimit: no limit lets an event past event.MaxEntrySize,
// the most a tlog-tiles entry bundle holds: a larger configured limit
// counts as the default.
func TestCheckSizeEntryLimit(t *testing.T) {
	e := validEvent()
	e.Reason = strings.Repeat("r", 4096)
	e.Source.UserAgent = strings.Repeat("u", 1024)
	e.Targets = make([]event.Target, 100)
	for i := range e.Targets {
		e.Targets[i] = event.Target{Type: strings.Repeat("t", 64), ID: strings.Repeat("i", 256), Name: strings.Repeat("n", 256)}
	}
	if err := e.Prepare(testNow, event.Limits{}); err != nil {
		t.Fatal(err)
	}
	err := CheckSize(&e, event.Limits{MaxEventSize: 1 << 20})
	var pe *event.Error
	if !errors.As(err, &pe) || !strings.HasSuffix(pe.Reason, fmt.Sprintf("the limit is %d", event.MaxEntrySize)) {
		t.Errorf("CheckSize(an event past MaxEntrySize, MaxEventSize 1 MiB) = %v, want it refused at %d", err, event.MaxEntrySize)
	}
}
