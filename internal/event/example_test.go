package event_test

import (
	"errors"
	"fmt"
	"time"

	"github.com/trail-audit/trail/internal/event"
)

func Example() {
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
	e.ID = event.MakeID(e.Log, e.Seq, e.ReceivedAt)
	if e.Time.IsZero() {
		e.Time = e.ReceivedAt
	}
	fmt.Printf("%s\n", e.AppendCanonical(nil))
	// Output:
	// {"action":"user.update","actor":{"id":"usr_42","type":"user"},"id":"01KDWPVNG0000000006YMEXGEE","log":"default","metadata":{"plan":"team","seats":10},"outcome":"success","received_at":"2026-01-01T12:00:00Z","seq":0,"targets":[{"id":"usr_7","type":"user"}],"time":"2026-01-01T12:00:00Z"}
}

func ExampleError() {
	_, err := event.Decode([]byte(`{"actor": {"id": "u", "id": "v"}, "action": "user.login"}`))
	var ee *event.Error
	if errors.As(err, &ee) {
		fmt.Printf("field %q: %s\n", ee.Field, ee.Reason)
	}

	e := event.Event{Actor: event.Actor{ID: "u"}, Action: "user.login", Metadata: []byte(`{"n": 12345678901234567890}`)}
	fmt.Println(e.Prepare(time.Now(), event.Limits{}))
	// Output:
	// field "actor.id": duplicate key
	// metadata.n: number cannot be represented exactly; send it as a string
}
