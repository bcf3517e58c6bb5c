package server

import (
	"encoding/json"
	"maps"
	"net"
	"net/http"
	"slices"
	"strconv"

	"github.com/trail-audit/trail"
	"github.com/trail-audit/trail/event"
)

// maxAuditParams bounds the query parameters a read's event records, so
// that its metadata stays within an event's 32 KiB (each name is cut to
// 64 bytes, each value to 512).
const maxAuditParams = 32

// auditRead records, in the key's own log, that the key read it (PCI DSS
// 10.2.1.3: access to audit logs is itself audited): actor = the key,
// action = trail.search, trail.get, …, metadata = what was asked for. It
// runs before the answer is sent, and an error fails the request: a read
// that cannot be recorded is not served.
func (s *server) auditRead(r *http.Request, key trail.KeyInfo, l *trail.Log, action string, targets []event.Target) error {
	if s.opts.NoReadAudit {
		return nil
	}
	// The query's parameters, as many as an event's metadata holds: at
	// most maxAuditParams, in name order, and how many more there were.
	query := r.URL.Query()
	names := slices.Sorted(maps.Keys(query))
	params := map[string]string{}
	for i, name := range names {
		if i == maxAuditParams {
			params["more_parameters"] = strconv.Itoa(len(names)-i) + " not recorded"
			break
		}
		if vals := query[name]; name != "" && len(vals) > 0 {
			params[event.Sanitize(name, 64)] = event.Sanitize(vals[0], 512)
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
