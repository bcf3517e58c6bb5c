package api_test

import (
	"fmt"
	"net/url"
	"time"

	"github.com/trail-audit/trail/api"
	"github.com/trail-audit/trail/event"
)

// A search as the URL of GET /v1/events, and back.
func ExampleQuery_Values() {
	q := api.Query{
		Action:  "user.login.*",
		Outcome: event.Failure,
		Since:   time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC),
		Limit:   50,
	}
	v := q.Values()
	fmt.Println("/v1/events?" + v.Encode())

	back, err := api.ParseQuery(v)
	fmt.Println(back.Action, back.Outcome, back.Since.Equal(q.Since), back.Limit, err)
	// Output:
	// /v1/events?action=user.login.%2A&limit=50&outcome=failure&since=2026-03-01T12%3A00%3A00Z
	// user.login.* failure true 50 <nil>
}

// A parameter the API does not take is an error naming it.
func ExampleParseQuery() {
	v, _ := url.ParseQuery("actor=alice&limit=ten")
	_, err := api.ParseQuery(v)
	fmt.Println(err)
	// Output:
	// limit: must be a positive integer
}
