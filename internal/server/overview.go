package server

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/trail-audit/trail"
	"github.com/trail-audit/trail/api"
	"github.com/trail-audit/trail/event"
	"github.com/trail-audit/trail/internal/web"
)

// overviewRanges are the overview's time ranges: how far back each goes
// (zero: the whole log) and its bucket.
var overviewRanges = []struct {
	value, label string
	back, bucket time.Duration
}{
	{"24h", "Last 24 hours", 24 * time.Hour, time.Hour},
	{"7d", "Last 7 days", 7 * 24 * time.Hour, 24 * time.Hour},
	{"30d", "Last 30 days", 30 * 24 * time.Hour, 24 * time.Hour},
	{"all", "All time", 0, 24 * time.Hour},
}

// overviewPage serves GET /overview?range=&trail=: counts over time, top
// actors and actions, failing source IPs, and recent sign-ins. The counts
// come from the log's rollups (trail.Log.Stats), not from reading the
// events. They leave out Trail's own reads (trail.ReadActions) unless
// trail=show.
func (s *server) overviewPage(w http.ResponseWriter, r *http.Request, key trail.KeyInfo, l *trail.Log) error {
	ctx := r.Context()
	p := web.Overview{Base: base(key, "overview"), Range: r.URL.Query().Get("range"), LogSize: l.Size(),
		ShowReads: r.URL.Query().Get("trail") == "show"}
	if p.Range == "" {
		p.Range = "24h"
	}
	q := api.StatsQuery{HideReads: !p.ShowReads}
	found := false
	for _, o := range overviewRanges {
		p.Ranges = append(p.Ranges, web.Option{Value: o.value, Label: o.label})
		if o.value == p.Range {
			found = true
			q.Bucket = o.bucket
			if o.back > 0 {
				q.Since = time.Now().Add(-o.back).Truncate(o.bucket).Add(o.bucket)
			}
		}
	}
	if !found {
		return badParam("range", "must be 24h, 7d, 30d or all")
	}
	// Recorded as the page applies it: it ignores what it does not know.
	applied := url.Values{"range": {p.Range}}
	if p.ShowReads {
		applied.Set("trail", "show")
	}
	if err := s.recordRead(r, key, l, trail.ActionStats, nil, applied); err != nil {
		return err
	}
	st, err := l.Stats(ctx, q)
	if err != nil {
		return err
	}
	p.Stats = st
	p.Chart = web.NewChart(st.Series, st.Bucket)
	p.ActorNames = actorNames(ctx, l, st.TopActors)
	p.AdminSignIns = adminSignIns(ctx, l, 8)
	if page, err := l.Search(ctx, api.Query{Action: trail.ActionSignIn, Limit: 8}); err == nil {
		for _, e := range page.Events {
			p.ViewerSignIns = append(p.ViewerSignIns, web.NewRow(e))
		}
	}
	return renderPage(w, "overview", p)
}

// actorNames looks up the name each actor gave in its latest event: one
// indexed search per actor, for the few of a top list.
func actorNames(ctx context.Context, l *trail.Log, actors []api.Count) map[string]string {
	names := map[string]string{}
	for _, a := range actors {
		page, err := l.Search(ctx, api.Query{Actor: a.Value, Limit: 1})
		if err == nil && len(page.Events) == 1 && page.Events[0].Actor.Name != "" {
			names[a.Value] = page.Events[0].Actor.Name
		}
	}
	return names
}

// adminSignIns finds up to n recent successful user.login events by actors
// whose role names an admin or owner, looking at the latest 2,000
// sign-ins at most.
func adminSignIns(ctx context.Context, l *trail.Log, n int) []web.Row {
	var rows []web.Row
	q := api.Query{Action: "user.login", Outcome: event.Success, Limit: 500}
	for range 4 {
		page, err := l.Search(ctx, q)
		if err != nil {
			return rows
		}
		for _, e := range page.Events {
			role := strings.ToLower(e.Actor.Role)
			if strings.Contains(role, "admin") || strings.Contains(role, "owner") {
				rows = append(rows, web.NewRow(e))
				if len(rows) == n {
					return rows
				}
			}
		}
		if page.NextCursor == "" {
			break
		}
		q.Cursor = page.NextCursor
	}
	return rows
}

// actionOptions lists the log's actions and their dotted prefixes for the
// action filter. A failure here only loses the suggestions.
func (s *server) actionOptions(ctx context.Context, l *trail.Log) []web.Option {
	counts, err := l.Actions(ctx)
	if err != nil {
		s.opts.Logger.WarnContext(ctx, "listing actions", "err", err)
		return nil
	}
	var opts []web.Option
	prefixes := map[string]int64{}
	for _, c := range counts {
		opts = append(opts, web.Option{Value: c.Value, Label: web.Count(c.Count, "event")})
		parts := strings.Split(c.Value, ".")
		for i := 1; i < len(parts); i++ {
			prefixes[strings.Join(parts[:i], ".")+".*"] += c.Count
		}
	}
	for p, n := range prefixes {
		opts = append(opts, web.Option{Value: p, Label: web.FormatInt(n) + " events"})
	}
	return opts
}

// statsEvents serves GET /v1/stats: event counts by when they happened,
// per hour or day and by outcome, with the top actors, actions and the
// source IPs of failed and denied events, Trail's own reads left out with
// hide_reads=true. It reads the log's rollups, so it is fast at any size,
// and it is audited as trail.stats.
func (s *server) statsEvents(w http.ResponseWriter, r *http.Request, key trail.KeyInfo, l *trail.Log) error {
	q, err := api.ParseStatsQuery(r.URL.Query())
	if err != nil {
		return err
	}
	st, err := l.Stats(r.Context(), q)
	if err != nil {
		return err
	}
	if err := s.auditRead(r, key, l, trail.ActionStats, nil); err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, st)
}

// listActions serves GET /v1/actions: every action the log has seen, with
// its count, most frequent first.
func (s *server) listActions(w http.ResponseWriter, r *http.Request, key trail.KeyInfo, l *trail.Log) error {
	if len(r.URL.Query()) > 0 {
		for name := range r.URL.Query() {
			return badParam(name, "unknown parameter")
		}
	}
	counts, err := l.Actions(r.Context())
	if err != nil {
		return err
	}
	if err := s.auditRead(r, key, l, trail.ActionStats, nil); err != nil {
		return err
	}
	if counts == nil {
		counts = []api.Count{}
	}
	return writeJSON(w, http.StatusOK, api.Actions{Actions: counts})
}

func (s *server) statsRoutes(mux *http.ServeMux) {
	mux.Handle("GET /v1/stats", s.auth(trail.ScopeRead, s.statsEvents))
	mux.Handle("GET /v1/actions", s.auth(trail.ScopeRead, s.listActions))
}
