package web

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/trail-audit/trail/api"
	"github.com/trail-audit/trail/event"
)

// The view models: what the server hands the templates.

// Base is what every page shows: who is signed in, on which log.
type Base struct {
	// Log and KeyName say who is signed in; empty on the sign-in page.
	Log, KeyName string
	// Nav is the current section: "events" or "overview".
	Nav string
}

// SignIn is the sign-in page.
type SignIn struct {
	Base
	// Next is where to go after signing in (a local path).
	Next string
	// Error says why the last attempt failed, or why the user is here
	// (an expired session).
	Error string
}

// Filters are the events page's filters, as the user typed them; the page
// URL holds them (so a view can be shared and reloaded).
type Filters struct {
	Actor, Action, Target, Outcome, IP, Q string
	// Range is "", "1h", "24h", "7d" or "custom"; Since and Until (RFC
	// 3339, UTC) apply when it is "custom".
	Range, Since, Until string
	// ShowReads shows Trail's own reads (trail.ReadActions), which the
	// page hides unless the action filter asks for them. Trail's key
	// administration shows either way.
	ShowReads bool
}

// HideReads reports whether the page leaves Trail's own reads out: unless
// asked to show them, or the action filter names Trail's actions
// (trail.…).
func (f Filters) HideReads() bool {
	return !f.ShowReads && !strings.HasPrefix(f.Action, "trail.")
}

// Any reports whether any filter is set.
func (f Filters) Any() bool { return f != Filters{} }

// Option is one choice of a filter's list.
type Option struct{ Value, Label string }

// Events is the events page.
type Events struct {
	Base
	F Filters
	// Actions are the actions seen in the log (and their prefixes), for
	// the action filter's suggestions.
	Actions []Option
	Rows    []Row
	// Error names a filter that could not be used and why.
	Error string
	// ShowReadsURL is this page with Trail's own reads shown, when they
	// are hidden.
	ShowReadsURL string
	// LogSize is the log's size when the page was made: live updates
	// start there.
	LogSize int64
	// NextURL is the next page (for a browser without script), RowsURL
	// the same page's rows alone (for "load more"); empty at the end.
	NextURL, RowsURL string
	// LiveURL streams new matching rows; ExportCSV and ExportNDJSON
	// download every matching event.
	LiveURL, ExportCSV, ExportNDJSON string
}

// Row is one event in the events table.
type Row struct {
	ID      string
	Seq     int64
	Time    time.Time
	Actor   event.Actor
	Action  string
	Targets []event.Target
	Outcome string
	IP      string
	Reason  string
}

// NewRow is the row of e.
func NewRow(e *event.Event) Row {
	return Row{
		ID: e.ID, Seq: e.Seq, Time: e.Time, Actor: e.Actor, Action: e.Action,
		Targets: e.Targets, Outcome: string(e.Outcome), IP: e.Source.IP, Reason: e.Reason,
	}
}

// Field is one labelled value of the event detail page. Time is set for
// times (Value is then the time in UTC), which the page's script shows in
// the viewer's time zone with UTC beside it.
type Field struct {
	Name, Value string
	Time        time.Time
}

// Detail is one event's page, with what the browser needs to verify it.
type Detail struct {
	Base
	Row    Row
	Fields []Field
	// JSON is the stored event exactly as committed (its RFC 8785 form):
	// the bytes the browser hashes. Pretty is the same, indented.
	JSON, Pretty string
	// Proof is the inclusion proof as JSON: {"seq","tree_size","hashes"}.
	Proof string
	// Checkpoint is the signed checkpoint the proof leads to, with its
	// witnesses' cosignatures, and VerifierKey the log's note verifier key.
	Checkpoint, VerifierKey string
	// WitnessPolicy is the server's witness policy for the log, in
	// tlog-policy syntax (as GET /v1/witness-policy answers it), which the
	// browser checks the checkpoint's cosignatures against; "" for none.
	WitnessPolicy string
}

// Overview is the overview page.
type Overview struct {
	Base
	// Range is "24h", "7d", "30d" or "all"; Ranges are the choices.
	Range  string
	Ranges []Option
	// ShowReads says the counts include Trail's own reads
	// (trail.ReadActions, mostly by the log's API keys), which are left
	// out by default (api.StatsQuery.HideReads).
	ShowReads bool
	Stats     *api.Stats
	// LogSize is the log's size: the counts may trail it while indexing.
	LogSize int64
	// Chart is the events-over-time chart.
	Chart Chart
	// ActorNames are the names of the top actors, by id, from their
	// latest event (for those that have one).
	ActorNames map[string]string
	// AdminSignIns are recent successful sign-ins by admins of the app;
	// ViewerSignIns those into this viewer.
	AdminSignIns, ViewerSignIns []Row
	// Error says why the numbers could not be had.
	Error string
}

// EventFields lists e's fields, labelled, for the event detail page.
func EventFields(e *event.Event) []Field {
	var fs []Field
	add := func(name, value string) {
		if value != "" {
			fs = append(fs, Field{Name: name, Value: value})
		}
	}
	addTime := func(name string, t time.Time) {
		fs = append(fs, Field{Name: name, Value: t.UTC().Format(time.RFC3339Nano), Time: t})
	}
	add("ID", e.ID)
	add("Seq", strconv.FormatInt(e.Seq, 10))
	add("Log", e.Log)
	addTime("Time", e.Time)
	addTime("Received at", e.ReceivedAt)
	add("Actor id", e.Actor.ID)
	add("Actor type", string(e.Actor.Type))
	add("Actor name", e.Actor.Name)
	add("Actor email", e.Actor.Email)
	add("Actor role", e.Actor.Role)
	add("Action", e.Action)
	add("Outcome", string(e.Outcome))
	add("Reason", e.Reason)
	for i, t := range e.Targets {
		v := t.Type + ":" + t.ID
		if t.Name != "" {
			v += " (" + t.Name + ")"
		}
		add(fmt.Sprintf("Target %d", i+1), v)
	}
	add("Source IP", e.Source.IP)
	add("User agent", e.Source.UserAgent)
	add("Request id", e.RequestID)
	add("Trace id", e.TraceID)
	if e.Changes != nil {
		add("Before", indent(e.Changes.Before))
		add("After", indent(e.Changes.After))
	}
	add("Metadata", indent(e.Metadata))
	return fs
}

// indent pretty-prints a JSON value; "" for none.
func indent(raw json.RawMessage) string {
	if len(raw) == 0 {
		return ""
	}
	var b bytes.Buffer
	if json.Indent(&b, raw, "", "  ") != nil {
		return string(raw)
	}
	return b.String()
}
