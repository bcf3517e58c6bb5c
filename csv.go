package trail

import (
	"strconv"
	"strings"
	"time"

	"github.com/trail-audit/trail/event"
)

// CSVHeader names the columns of CSVRecord, the CSV form of an event
// that `trail export` and the server's /v1/export write.
var CSVHeader = []string{
	"seq", "id", "received_at", "time", "actor_id", "actor_type", "actor_name", "actor_email", "actor_role",
	"action", "outcome", "reason", "targets", "ip", "user_agent", "request_id", "trace_id", "metadata", "changes",
}

// CSVRecord fills row with the CSV cells of e (see CSVHeader) and returns
// it. Targets are type:id joined by ';'; metadata and changes are their
// canonical JSON. With guard, a cell that a spreadsheet would read as a
// formula (starting with = + - @, tab or CR) gets a leading ', as OWASP
// advises against CSV injection.
func CSVRecord(row []string, e *event.Event, guard bool) []string {
	targets := make([]string, len(e.Targets))
	for i, t := range e.Targets {
		targets[i] = t.Type + ":" + t.ID
	}
	var changes string
	if ch := e.Changes; ch != nil && (len(ch.Before) > 0 || len(ch.After) > 0) {
		// The sides are canonical JSON already; keys in RFC 8785 order.
		var parts []string
		if len(ch.After) > 0 {
			parts = append(parts, `"after":`+string(ch.After))
		}
		if len(ch.Before) > 0 {
			parts = append(parts, `"before":`+string(ch.Before))
		}
		changes = "{" + strings.Join(parts, ",") + "}"
	}
	row = append(row[:0],
		strconv.FormatInt(e.Seq, 10), e.ID,
		e.ReceivedAt.UTC().Format(time.RFC3339Nano), e.Time.UTC().Format(time.RFC3339Nano),
		e.Actor.ID, e.Actor.Type, e.Actor.Name, e.Actor.Email, e.Actor.Role,
		e.Action, string(e.Outcome), e.Reason, strings.Join(targets, ";"),
		e.Source.IP, e.Source.UserAgent, e.RequestID, e.TraceID, string(e.Metadata), changes)
	if guard {
		for i, cell := range row {
			if cell != "" && strings.IndexByte("=+-@\t\r", cell[0]) >= 0 {
				row[i] = "'" + cell
			}
		}
	}
	return row
}
