package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/trail-audit/trail/api"
	"github.com/trail-audit/trail/client"
	"github.com/trail-audit/trail/event"
	"github.com/trail-audit/trail/internal/canon"
)

// searchCommand prints one page of matching events, newest first.
type searchCommand struct {
	env    *env
	db     dbFlags
	q      queryFlags
	limit  int
	cursor string
	json   bool
}

// queryFlags are the filters of search and export.
type queryFlags struct {
	actor, action, target, outcome, ip, since, until, text string
}

func (q *queryFlags) register(fs *flag.FlagSet) {
	q.registerFilters(fs)
	fs.StringVar(&q.since, "since", "", "only events received at or after `TIME`: RFC 3339, a date, or an age such as 1h or 7d")
	fs.StringVar(&q.until, "until", "", "only events received before `TIME` (same forms as --since)")
}

// registerFilters adds the filters other than times (tail's).
func (q *queryFlags) registerFilters(fs *flag.FlagSet) {
	fs.StringVar(&q.actor, "actor", "", "only events by the actor with this `ID`")
	fs.StringVar(&q.action, "action", "", "only this `ACTION`, or actions under a prefix such as 'user.*'")
	fs.StringVar(&q.target, "target", "", "only events acting on `TYPE:ID`, or on any entity of TYPE")
	fs.StringVar(&q.outcome, "outcome", "", "only this `OUTCOME`: success, failure, denied or error")
	fs.StringVar(&q.ip, "ip", "", "only events from this source `IP`")
	fs.StringVar(&q.text, "q", "", "free `TEXT`: every word must occur in the action, reason, actor, targets\nor metadata values; a trailing * makes a word a prefix")
}

// query returns the api.Query of the flags; relative times count back
// from now.
func (q *queryFlags) query(now time.Time) (api.Query, error) {
	tq := api.Query{Actor: q.actor, Action: q.action, Outcome: event.Outcome(q.outcome), IP: q.ip, Text: q.text}
	if q.target != "" {
		tq.TargetType, tq.TargetID, _ = strings.Cut(q.target, ":")
		if tq.TargetType == "" {
			return tq, usagef("--target %q: want TYPE:ID or TYPE", q.target)
		}
	}
	var err error
	if tq.Since, err = parseTime(q.since, now); err != nil {
		return tq, usagef("--since: %v", err)
	}
	if tq.Until, err = parseTime(q.until, now); err != nil {
		return tq, usagef("--until: %v", err)
	}
	return tq, nil
}

// queryError turns an invalid query, which the library reports as a
// *event.Error naming the field, and a server as a 400 naming it, into a
// usage error naming the flag.
func queryError(err error) error {
	var ve *event.Error
	if errors.As(err, &ve) && ve.Field != "" {
		return usagef("--%s: %s", queryFlag(ve.Field), ve.Reason)
	}
	var ae *client.APIError
	if errors.As(err, &ae) && ae.Status == http.StatusBadRequest && ae.Field != "" {
		return usagef("--%s: %s", queryFlag(ae.Field), strings.TrimPrefix(ae.Message, ae.Field+": "))
	}
	return err
}

// queryFlag returns the flag that sets the query's field named, which is
// the API's parameter: --target sets both halves of the target.
func queryFlag(field string) string {
	switch field {
	case "target_type", "target_id":
		return "target"
	}
	return field
}

// parseTime reads a time given as RFC 3339 ("2026-03-01T09:00:00Z"), as a
// local date or date and time ("2026-03-01", "2026-03-01 09:00"), or as an
// age counted back from now: a Go duration ("90m", "1h30m") or a whole
// number of days or weeks ("7d", "2w"). "" is the zero time.
func parseTime(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return sinceEpoch(t), nil
	}
	for _, layout := range []string{"2006-01-02", "2006-01-02 15:04", "2006-01-02 15:04:05", "2006-01-02T15:04", "2006-01-02T15:04:05"} {
		if t, err := time.ParseInLocation(layout, s, time.Local); err == nil {
			return sinceEpoch(t), nil
		}
	}
	if n, err := strconv.ParseUint(s[:len(s)-1], 10, 32); err == nil && (strings.HasSuffix(s, "d") || strings.HasSuffix(s, "w")) {
		days := int(n)
		if strings.HasSuffix(s, "w") {
			days *= 7
		}
		// AddDate, as a Duration of so many days would overflow.
		return sinceEpoch(now.UTC().AddDate(0, 0, -days)), nil
	} else if d, err := time.ParseDuration(s); err == nil && d >= 0 {
		return sinceEpoch(now.Add(-d)), nil
	}
	return time.Time{}, fmt.Errorf("%q is not a time: use RFC 3339 (2026-03-01T09:00:00Z), a date (2026-03-01), or an age (30m, 24h, 7d, 2w)", s)
}

// sinceEpoch returns t, or the Unix epoch if t is before it: no event is
// older, and the zero time would mean no bound at all.
func sinceEpoch(t time.Time) time.Time {
	if epoch := time.Unix(0, 0); t.Before(epoch) {
		return epoch.UTC()
	}
	return t
}

func (c *searchCommand) flagSet() *flag.FlagSet {
	fs := flag.NewFlagSet("search", flag.ContinueOnError)
	c.db.register(fs, c.db)
	c.q.register(fs)
	fs.IntVar(&c.limit, "limit", 50, "at most `N` events (1 to 10000)")
	fs.StringVar(&c.cursor, "cursor", "", "continue from the `CURSOR` that the previous page printed")
	fs.BoolVar(&c.json, "json", false, "print events as NDJSON, each line the event's canonical JSON")
	return fs
}

func (c *searchCommand) Usage() string {
	return usage(c.flagSet(), "trail search [flags]", `
Search prints the events that match every filter given, newest first, one
page at a time. On a terminal the table is cut to the terminal's width;
TIME is when the event happened, in the local time zone. If more events
match, "next cursor: N" follows on stderr; pass it to --cursor for the
next page.

--since and --until select by when Trail received an event, which only
grows along the log, not by the event's own time.

With --json, stdout holds only NDJSON: each line is the canonical JSON of an
event, the exact bytes hashed into the log.`, `
  trail search --actor alice --since 24h
  trail search --action 'user.login.*' --outcome failure --ip 203.0.113.9
  trail search --target user:bob --limit 10
  trail search --q 'delete invoice*' --json | jq .reason
  trail search --limit 100 --cursor 5120`)
}

func (c *searchCommand) Run(ctx context.Context, args []string) error {
	if err := noArgs(c.flagSet(), args); err != nil {
		return err
	}
	q, err := c.q.query(c.env.now())
	if err != nil {
		return err
	}
	if c.limit < 1 || c.limit > 10000 {
		return usagef("--limit %d: must be 1 to 10000", c.limit)
	}
	q.Limit, q.Cursor = c.limit, c.cursor
	page, err := c.page(ctx, q)
	if err != nil {
		return err
	}

	w := bufio.NewWriter(c.env.stdout)
	if c.json {
		var buf []byte
		for _, e := range page.Events {
			buf = append(canon.Append(buf[:0], e), '\n')
			w.Write(buf)
		}
	} else if len(page.Events) > 0 {
		t := eventTable(page.Events)
		width := 0
		if c.env.stdoutTTY {
			width = c.env.width
		}
		t.write(w, width)
	}
	if err := w.Flush(); err != nil {
		return err
	}
	if len(page.Events) == 0 && !c.json {
		fmt.Fprintln(c.env.stderr, "no matching events")
	}
	if page.NextCursor != "" {
		fmt.Fprintf(c.env.stderr, "next cursor: %s\n", page.NextCursor)
	}
	return nil
}

// eventTable lays events out as search shows them.
func eventTable(evs []*event.Event) *table {
	t := &table{
		header: []string{"TIME", "SEQ", "ACTOR", "ACTION", "TARGETS", "OUTCOME", "IP", "REASON"},
		shrink: []int{0, 0, 2, 2, 1, 0, 0, 1}, // reason and targets first, then actor and action
	}
	for _, e := range evs {
		targets := make([]string, len(e.Targets))
		for i, tg := range e.Targets {
			targets[i] = tg.Type + ":" + tg.ID
		}
		t.add(e.Time.Local().Format("2006-01-02 15:04:05"), strconv.FormatInt(e.Seq, 10), e.Actor.ID,
			e.Action, strings.Join(targets, ","), string(e.Outcome), e.Source.IP, e.Reason)
	}
	return t
}

// page runs the search on the server of --server, or on the data
// directory.
func (c *searchCommand) page(ctx context.Context, q api.Query) (api.Page, error) {
	cl, err := c.db.client()
	if err != nil {
		return api.Page{}, err
	}
	if cl != nil {
		page, err := cl.SearchPage(ctx, q)
		return page, queryError(err)
	}
	db, l, err := c.db.open(ctx, true)
	if err != nil {
		return api.Page{}, err
	}
	defer db.Close()
	page, err := l.Search(ctx, q)
	if err != nil {
		return api.Page{}, queryError(err)
	}
	return page, nil
}
