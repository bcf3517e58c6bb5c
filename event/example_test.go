package event_test

import (
	"errors"
	"fmt"
	"time"

	"github.com/trail-audit/trail/event"
)

func Example() {
	body := []byte(`{
		"actor": {"id": "usr_42", "type": "user"},
		"action": "user.update",
		"targets": [{"type": "user", "id": "usr_7"}],
		"metadata": {"seats": 10, "plan": "team"}
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
	// In normal form the outcome defaults to success, metadata is in RFC 8785
	// canonical form, and an absent time stays zero until Trail sets it.
	fmt.Println(e.Actor.Type, e.Actor.ID, e.Action)
	for _, t := range e.Targets {
		fmt.Println("target:", t.Type, t.ID)
	}
	fmt.Println("outcome:", e.Outcome)
	fmt.Printf("metadata: %s\n", e.Metadata)
	fmt.Println("time set:", !e.Time.IsZero())
	// Output:
	// user usr_42 user.update
	// target: user usr_7
	// outcome: success
	// metadata: {"plan":"team","seats":10}
	// time set: false
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
