package canon_test

import (
	"fmt"
	"time"

	"github.com/trail-audit/trail/event"
	"github.com/trail-audit/trail/internal/canon"
	"github.com/trail-audit/trail/internal/eventid"
)

func ExampleAppend() {
	body := []byte(`{
		"actor": {"id": "usr_42", "type": "user"},
		"action": "user.update",
		"targets": [{"type": "user", "id": "usr_7"}],
		"metadata": {"plan": "team", "seats": 10}
	}`)
	received := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)

	e, err := event.Decode(body)
	if err != nil {
		fmt.Println(err)
		return
	}
	if err := e.Prepare(received, event.Limits{}); err != nil {
		fmt.Println(err)
		return
	}
	// Trail assigns these when it appends the event to a log.
	e.Log, e.Seq, e.ReceivedAt = "default", 0, received
	e.ID = eventid.Make(e.Log, e.Seq, e.ReceivedAt)
	if e.Time.IsZero() {
		e.Time = e.ReceivedAt
	}
	fmt.Printf("%s\n", canon.Append(nil, &e))
	// Output:
	// {"action":"user.update","actor":{"id":"usr_42","type":"user"},"id":"01KDWPVNG0000000006YMEXGEE","log":"default","metadata":{"plan":"team","seats":10},"outcome":"success","received_at":"2026-01-01T12:00:00Z","seq":0,"targets":[{"id":"usr_7","type":"user"}],"time":"2026-01-01T12:00:00Z"}
}
