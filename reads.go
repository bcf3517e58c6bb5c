package trail

import (
	"slices"
	"strings"

	"github.com/trail-audit/trail/event"
)

// OwnActionPrefix begins the actions of the events Trail appends itself:
// its reads (ReadActions), viewer sign-ins and key changes. Apps may not
// use it: the HTTP API and trail append refuse such events
// (CheckAppAction), so that a key that may append cannot forge them. The
// library's Append takes them, for the program that embeds Trail.
const OwnActionPrefix = "trail."

// CheckAppAction returns an *event.Error naming the action (Index -1)
// when action is in Trail's own namespace (OwnActionPrefix), else nil.
func CheckAppAction(action string) error {
	if !strings.HasPrefix(action, OwnActionPrefix) {
		return nil
	}
	return &event.Error{Index: -1, Field: "action", Reason: `actions starting with "trail." are Trail's own records (its reads, sign-ins and key changes); use a prefix of the app's own`}
}

// Actions of the events that record reads of a log, appended to the log
// by the server (see ReadActions).
const (
	ActionSearch = "trail.search" // a search: GET /v1/events, the viewer's events page and its rows
	ActionGet    = "trail.get"    // one event: GET /v1/events/{id}, the viewer's event page
	ActionExport = "trail.export" // GET /v1/export
	ActionTail   = "trail.tail"   // a stream: GET /v1/tail, the viewer's live rows
	ActionStats  = "trail.stats"  // counts: GET /v1/stats, /v1/actions, the viewer's overview
	ActionSignIn = "trail.signin" // a sign-in to the viewer
	// ActionAccess records a request a valid key of the log made and was
	// denied (outcome denied): it lacks the route's scope. Not a read: it
	// always shows.
	ActionAccess = "trail.access"
)

// readActions are the actions of ReadActions.
var readActions = []string{ActionSearch, ActionGet, ActionExport, ActionTail, ActionStats, ActionSignIn, ActionKeyList}

// ReadActions returns the actions Trail records for reads of the log:
// each search, get, export, tail, stats request and viewer sign-in, under
// the reading key, and each listing of the log's keys (ActionKeyList),
// under its caller. They are what Query.HideReads and StatsQuery.HideReads
// leave out, as the viewer does by default. Trail's other events, the
// creation and revocation of keys (ActionKeyCreate, ActionKeyRevoke),
// change who may use the log: they are not reads.
func ReadActions() []string { return slices.Clone(readActions) }

// IsReadAction reports whether action is one of ReadActions.
func IsReadAction(action string) bool { return slices.Contains(readActions, action) }
