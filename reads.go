package trail

import "slices"

// Actions of the events that record reads of a log, appended to the log
// by the server (see ReadActions).
const (
	ActionSearch = "trail.search" // a search: GET /v1/events, the viewer's events page and its rows
	ActionGet    = "trail.get"    // one event: GET /v1/events/{id}, the viewer's event page
	ActionExport = "trail.export" // GET /v1/export
	ActionTail   = "trail.tail"   // a stream: GET /v1/tail, the viewer's live rows
	ActionStats  = "trail.stats"  // counts: GET /v1/stats, /v1/actions, the viewer's overview
	ActionSignIn = "trail.signin" // a sign-in to the viewer
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
