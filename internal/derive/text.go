package derive

import (
	"strings"

	"github.com/trail-audit/trail/event"
)

// SearchText returns the text Trail indexes for free-text search, words
// joined by single spaces: the action (and, if it has dots, the action with
// spaces for dots), the reason, the actor's id, name, email and role, each
// target's type, id and name, and every string and number inside metadata
// (values, not keys). Empty fields are left out.
func SearchText(e *event.Event) string {
	return string(appendSearchText(nil, e))
}

// appendSearchText appends SearchText(e) to b[:0].
func appendSearchText(b []byte, e *event.Event) []byte {
	b = b[:0]
	add := func(s string) {
		if s == "" {
			return
		}
		if len(b) > 0 {
			b = append(b, ' ')
		}
		b = append(b, s...)
	}
	add(e.Action)
	if strings.Contains(e.Action, ".") {
		b = append(b, ' ')
		for i := 0; i < len(e.Action); i++ {
			if c := e.Action[i]; c == '.' {
				b = append(b, ' ')
			} else {
				b = append(b, c)
			}
		}
	}
	add(e.Reason)
	add(e.Actor.ID)
	add(e.Actor.Name)
	add(e.Actor.Email)
	add(e.Actor.Role)
	for _, t := range e.Targets {
		add(t.Type)
		add(t.ID)
		add(t.Name)
	}
	if len(e.Metadata) > 0 {
		b, _ = appendValues(b, string(e.Metadata))
	}
	return b
}
