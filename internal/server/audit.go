package server

import (
	"encoding/json"
	"fmt"
	"maps"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/trail-audit/trail"
	"github.com/trail-audit/trail/event"
)

// maxAuditParams bounds the query parameters a read's event records, so
// that its metadata stays within an event's 32 KiB (each name is cut to
// maxAuditName bytes, each value to maxAuditValue).
const maxAuditParams = 32

// auditRead records, in the key's own log, that the key read it (PCI DSS
// 10.2.1.3: access to audit logs is itself audited): actor = the key,
// action = trail.search, trail.get, …, metadata = the request's query
// parameters (see recordRead). It runs before the answer is sent, and an
// error fails the request: a read that cannot be recorded is not served.
func (s *server) auditRead(r *http.Request, key trail.KeyInfo, l *trail.Log, action string, targets []event.Target) error {
	return s.recordRead(r, key, l, action, targets, r.URL.Query())
}

// recordRead is auditRead with the parameters the read was made with, as
// the route took them (a page's filters, say, rather than its query,
// where the page ignores what it does not know): the first value of each,
// at most maxAuditParams, in name order, and how many more there were
// (moreParams; a client's parameter of that name is recorded as
// "more%5Fparameters"). A name or value holding a control character,
// invalid UTF-8 or a "%" is recorded URL-escaped, so that it reads as what
// was sent and not as another parameter or value; a value over
// maxAuditValue bytes is cut and says so.
func (s *server) recordRead(r *http.Request, key trail.KeyInfo, l *trail.Log, action string, targets []event.Target, query url.Values) error {
	if s.opts.NoReadAudit {
		return nil
	}
	names := slices.Sorted(maps.Keys(query))
	params := map[string]string{}
	for i, name := range names {
		if i == maxAuditParams {
			params[moreParams] = strconv.Itoa(len(names)-i) + " not recorded"
			break
		}
		if vals := query[name]; name != "" && len(vals) > 0 {
			rn := recorded(name, maxAuditName)
			if rn == moreParams {
				rn = "more%5Fparameters" // the client's, not the record's own
			}
			params[rn] = recorded(vals[0], maxAuditValue)
		}
	}
	md, err := json.Marshal(params)
	if err != nil {
		return err
	}
	by := caller(r, key)
	e := event.Event{Actor: by.Actor, Action: action, Targets: targets, Source: by.Source}
	if len(params) > 0 {
		e.Metadata = md
	}
	_, err = l.Append(r.Context(), e)
	return err
}

// recordDenied records in the key's log that the key was denied the
// request (trail.ActionAccess, outcome denied), for why: an invalid
// access attempt on the audit log, which PCI DSS asks to be recorded.
// The answer does not wait on it to be the denial: a record that cannot
// be stored is logged.
func (s *server) recordDenied(r *http.Request, key trail.KeyInfo, why string) {
	if s.opts.NoReadAudit {
		return
	}
	l, err := s.db.Log(r.Context(), key.Log)
	if err == nil {
		by := caller(r, key)
		_, err = l.Append(r.Context(), event.Event{
			Actor: by.Actor, Action: trail.ActionAccess, Outcome: event.Denied, Reason: why, Source: by.Source,
			Targets: []event.Target{{Type: "route", ID: recorded(r.Method+" "+r.URL.Path, 200)}},
		})
	}
	if err != nil {
		s.opts.Logger.WarnContext(r.Context(), "a denied request could not be recorded", "key", key.ID, "log", key.Log, "err", err)
	}
}

// Bounds of a recorded parameter's name and value, in bytes.
const (
	maxAuditName  = 64
	maxAuditValue = 512
)

// moreParams names, in a read's record, how many parameters it leaves out.
const moreParams = "more_parameters"

// recorded is s as a read's record keeps it: URL-escaped if it holds a
// control character, invalid UTF-8 or a "%" (so that a recorded "%" always
// starts an escape, and "a%0D" sent as such is told from a, CR), and cut
// to at most n bytes, with its length, if longer.
func recorded(s string, n int) string {
	if strings.Contains(s, "%") || event.Sanitize(s, len(s)) != s {
		s = url.QueryEscape(s)
	}
	if len(s) <= n {
		return s
	}
	suffix := fmt.Sprintf("… (%d bytes)", len(s))
	return strings.ToValidUTF8(s[:n-len(suffix)], "") + suffix
}

// caller is who makes the request, as the events that record it name
// them: the key, as a service, from the request's address and user agent.
func caller(r *http.Request, key trail.KeyInfo) trail.Caller {
	return trail.Caller{
		Actor:  event.Actor{ID: key.ID, Type: event.ActorService, Name: event.Sanitize(key.Name, 256)},
		Source: event.Source{IP: peerIP(r), UserAgent: event.Sanitize(r.UserAgent(), 1024)},
	}
}

// peerIP is the address the request came from.
func peerIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return ""
	}
	return host
}
