package storetest

import (
	"slices"
	"strings"
	"unicode"

	"github.com/trail-audit/trail/event"
	"github.com/trail-audit/trail/internal/derive"
	"github.com/trail-audit/trail/internal/store"
)

// Match reports whether e matches every filter of q, ignoring Limit and
// Asc. It is the reference the suite checks Search against, written from
// store.Query's contract rather than from any backend:
//
//   - Actor, IP and Outcome compare for equality;
//   - Actions holds the exact actions allowed, ActionLike a prefix the
//     action must start with; NotActions the actions left out, and
//     NotActionLike a prefix the action must not start with;
//   - TargetType and TargetID match if one target has both (either alone:
//     one target has it);
//   - From and To bound the seq, inclusively, a negative To meaning none;
//   - Text is split into words at spaces; each word is cut into terms at
//     anything that is not a letter or a number, and each term must be,
//     ignoring case, one of the terms of e.SearchText(), or, for the last
//     term of a word ending in '*', the start of one.
func Match(q store.Query, e *event.Event) bool {
	return matchFields(q, e) && matchText(q.Text, terms(derive.SearchText(e)))
}

func matchFields(q store.Query, e *event.Event) bool {
	switch {
	case q.Actor != "" && e.Actor.ID != q.Actor,
		len(q.Actions) > 0 && !slices.Contains(q.Actions, e.Action),
		q.ActionLike != "" && !strings.HasPrefix(e.Action, q.ActionLike),
		slices.Contains(q.NotActions, e.Action),
		q.NotActionLike != "" && strings.HasPrefix(e.Action, q.NotActionLike),
		q.Outcome != "" && e.Outcome != q.Outcome,
		q.IP != "" && e.Source.IP != q.IP,
		e.Seq < q.From,
		q.To >= 0 && e.Seq > q.To:
		return false
	}
	if q.TargetType != "" || q.TargetID != "" {
		return slices.ContainsFunc(e.Targets, func(t event.Target) bool {
			return (q.TargetType == "" || t.Type == q.TargetType) && (q.TargetID == "" || t.ID == q.TargetID)
		})
	}
	return true
}

// matchText reports whether the terms of text, have, hold every term of
// query.
func matchText(query string, have []string) bool {
	for _, w := range strings.Fields(query) {
		ts := terms(w)
		for i, t := range ts {
			prefix := i == len(ts)-1 && strings.HasSuffix(w, "*")
			if !slices.ContainsFunc(have, func(h string) bool {
				return h == t || prefix && strings.HasPrefix(h, t)
			}) {
				return false
			}
		}
	}
	return true
}

func terms(s string) []string {
	return strings.FieldsFunc(strings.ToLower(s), func(r rune) bool {
		return !unicode.IsLetter(r) && !unicode.IsNumber(r)
	})
}

// matching returns the committed events that match q, in ascending seq
// order.
func (w *Writer) matching(q store.Query) []*event.Event {
	var out []*event.Event
	for i, e := range w.Events {
		if !matchFields(q, e) {
			continue
		}
		if q.Text != "" {
			for len(w.terms) <= i {
				w.terms = append(w.terms, terms(derive.SearchText(w.Events[len(w.terms)])))
			}
			if !matchText(q.Text, w.terms[i]) {
				continue
			}
		}
		out = append(out, e)
	}
	return out
}
