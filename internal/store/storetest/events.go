package storetest

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/trail-audit/trail/event"
)

// The values Events draws from, so that tests can query for them.
var (
	actors = []event.Actor{
		{ID: "alice", Type: event.ActorUser, Name: "Alice Martin", Email: "alice@example.com", Role: "admin"},
		{ID: "bob", Type: event.ActorUser, Name: "Bob Ørsted", Email: "bob@example.org"},
		{ID: "svc-billing", Type: event.ActorService, Role: "billing"},
		{ID: "zoë", Name: "Zoë Ἀθηνᾶ"},
		{ID: "cron", Type: event.ActorSystem},
		{ID: "user:42", Type: event.ActorUser, Email: "u42@example.net"},
	}
	// Actions, each repeated by its weight. billing.refund and
	// admin.role.grant are rare (well under 1 in 64 events).
	actions = weighted([]weight[string]{
		{"user.login", 40},
		{"user.login.failed", 12},
		{"user.logout", 20},
		{"user.password.change", 4},
		{"document.read", 50},
		{"document.update", 25},
		{"document.delete", 5},
		{"billing.invoice.paid", 6},
		{"billing.refund", 1},
		{"admin.role.grant", 1},
	})
	targetTypes = []string{"document", "user", "org", "invoice"}
	outcomes    = weighted([]weight[event.Outcome]{
		{event.Success, 14}, {event.Failure, 3}, {event.Denied, 2}, {event.Errored, 1},
	})
	ips     = []string{"", "", "10.0.0.1", "10.0.0.2", "192.168.1.77", "2001:db8::1", "::ffff:10.0.0.9"}
	reasons = []string{
		"", "", "",
		"quarterly review",
		"suspicious login from new device",
		"İstanbul office audit",
		"東京 branch audit",
		"ÉCOLE normale supérieure",
		"Straße gesperrt",
		"ΟΔΟΣ κλειστή",
		"line one\nline two\twith tab",
		"refund approved by finance",
	}
	metadata = []string{
		"",
		"",
		`{"region": "eu-west", "attempt": 3}`,
		`{"tags": ["alpha", "beta"], "note": "Zürich datacenter"}`,
		`{"nested": {"deep": [1, 2.5, "needle"]}, "z": null}`,
		`{}`,
		`null`,
		`{"amount": 1999, "currency": "EUR", "emoji": "🙂"}`,
	}
	changes = []*event.Changes{
		nil,
		nil,
		{Before: json.RawMessage(`{"role": "viewer"}`), After: json.RawMessage(`{"role": "editor"}`)},
		{After: json.RawMessage(`{"title":"Q3 plan"}`)},
		{Before: json.RawMessage(`[1, 2, 3]`)},
		{Before: json.RawMessage(`"old"`), After: json.RawMessage(`"new"`)},
	}
)

type weight[T any] struct {
	v T
	n int
}

// weighted returns each value repeated by its weight.
func weighted[T any](ws []weight[T]) []T {
	var out []T
	for _, w := range ws {
		for range w.n {
			out = append(out, w.v)
		}
	}
	return out
}

// Events returns n varied client events, the same for the same seed: actors
// of every type, common and rare actions, zero to three targets (with and
// without names, nil and empty lists), every outcome, IPv4 and IPv6
// sources, reasons with tabs, newlines and non-ASCII text, metadata and
// changes in non-canonical JSON, request and trace ids, and client times in
// a non-UTC zone with nanoseconds. Their times lie in 2024, so they can be
// received at any time after that.
func Events(n int, seed uint64) []event.Event {
	r := rand.New(rand.NewPCG(seed, seed^0x5452414c))
	zone := time.FixedZone("UTC+5:30", 5*3600+1800)
	base := time.Date(2024, 6, 1, 9, 0, 0, 0, zone)
	out := make([]event.Event, n)
	for i := range out {
		e := &out[i]
		e.Actor = actors[r.IntN(len(actors))]
		e.Action = actions[r.IntN(len(actions))]
		switch k := r.IntN(5); k {
		case 0:
			e.Targets = nil
		case 1:
			e.Targets = []event.Target{}
		default:
			for j := range k - 1 {
				typ := targetTypes[r.IntN(len(targetTypes))]
				t := event.Target{Type: typ, ID: fmt.Sprintf("%s-%d", typ[:3], r.IntN(12))}
				if r.IntN(2) == 0 {
					t.Name = fmt.Sprintf("Ünïcode name %d/%d", i, j)
				}
				e.Targets = append(e.Targets, t)
			}
		}
		e.Outcome = outcomes[r.IntN(len(outcomes))]
		e.Source.IP = ips[r.IntN(len(ips))]
		if r.IntN(3) == 0 {
			e.Source.UserAgent = "Mozilla/5.0 (X11; Linux x86_64) trail-test/1"
		}
		e.Reason = reasons[r.IntN(len(reasons))]
		if m := metadata[r.IntN(len(metadata))]; m != "" {
			e.Metadata = json.RawMessage(m)
		}
		e.Changes = changes[r.IntN(len(changes))]
		if r.IntN(4) == 0 {
			e.RequestID = fmt.Sprintf("req-%d", r.IntN(1000))
		}
		if r.IntN(4) == 0 {
			e.TraceID = fmt.Sprintf("%016x%016x", r.Uint64()|1, r.Uint64())
		}
		if r.IntN(5) != 0 {
			e.Time = base.Add(time.Duration(i)*time.Second + time.Duration(r.IntN(1e9)))
		}
	}
	return out
}
