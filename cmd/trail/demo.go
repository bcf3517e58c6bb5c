package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/trail-audit/trail"
	"github.com/trail-audit/trail/api"
	"github.com/trail-audit/trail/event"
)

// demoCommand fills a "demo" log with the admin and security events of a
// made-up web app, then searches and verifies it.
type demoCommand struct {
	env    *env
	db     dbFlags
	events int
}

func (c *demoCommand) flagSet() *flag.FlagSet {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	c.db.register(fs, c.db)
	fs.IntVar(&c.events, "events", 3000, "how many events to append")
	return fs
}

func (c *demoCommand) Usage() string {
	return usage(c.flagSet(), "trail demo [--data DIR] [--events N]", `
Demo creates the data directory if needed and a log named "demo" in it,
appends N realistic events (logins, failed logins from a few guessing
addresses, user edits and deletions, password resets, subscription
changes) spread over the last 24 hours, then shows the latest failed
logins and verifies the whole log. Run it again to append more.`, `
  trail demo
  trail demo --data /tmp/trail-demo --events 10000`)
}

func (c *demoCommand) Run(ctx context.Context, args []string) error {
	if err := noArgs(c.flagSet(), args); err != nil {
		return err
	}
	if err := c.db.storeOnly("demo"); err != nil {
		return err
	}
	if c.events < 1 || c.events > 1_000_000 {
		return usagef("--events %d: must be between 1 and 1000000", c.events)
	}
	c.db.log = "demo"
	clock := &replayClock{}
	db, _, err := c.db.openOrInit(ctx, trail.Options{Now: clock.now})
	if err != nil {
		return err
	}
	defer db.Close()
	l, err := db.Log(ctx, c.db.log)
	if errors.Is(err, trail.ErrNotFound) {
		l, err = db.CreateLog(ctx, c.db.log, "")
	}
	if err != nil {
		return err
	}
	first, last, err := fillDemo(ctx, l, c.events, c.env.now(), clock)
	if err != nil {
		return err
	}
	if err := db.Close(); err != nil {
		return err
	}
	w := c.env.stdout
	fmt.Fprintf(w, "Appended %d events to log %q in %s (seq %d to %d).\n", c.events, c.db.log, c.db.data, first.Seq, last.Seq)
	fmt.Fprintf(w, "Verifier key: %s\n\n", l.VerifierKey())
	// The demo reads what it wrote, not a server $TRAIL_SERVER names;
	// the commands it shows name the data directory it was given.
	local := c.db
	local.server, local.key = "", ""
	where := ""
	if c.db.dataSet {
		where = " --data " + shellQuote(c.db.data)
	}
	fmt.Fprintf(w, "$ trail%s search --log demo --action user.login.failed --limit 8\n", where)
	search := &searchCommand{env: c.env, db: local}
	if err := search.Run(ctx, []string{"--action", "user.login.failed", "--limit", "8"}); err != nil {
		return err
	}
	fmt.Fprintf(w, "\n$ trail%s verify --log demo\n", where)
	verify := &verifyCommand{env: c.env, db: local}
	if err := verify.Run(ctx, nil); err != nil {
		return err
	}
	fmt.Fprintf(w, "\nTry: trail%s search --log demo --ip 203.0.113.7   trail%s get --log demo %s   trail help\n", where, where, last.ID)
	return nil
}

// fillDemo appends n demoEvents to l and returns the receipts of the
// first and last. The events are appended in 100 batches, each when the
// clock (the DB's, see replayClock) reads its last event's time, so that
// their received_at spreads over the day as if they had arrived live.
func fillDemo(ctx context.Context, l *trail.Log, n int, now time.Time, clock *replayClock) (first, last api.Receipt, err error) {
	evs := demoEvents(rand.New(rand.NewPCG(uint64(now.UnixNano()), uint64(l.Size()))), n, now)
	defer clock.set(time.Time{})
	per := max(1, (len(evs)+99)/100)
	for off := 0; off < len(evs); off += per {
		batch := evs[off:min(off+per, len(evs))]
		clock.set(batch[len(batch)-1].Time)
		rs, err := l.AppendBatch(ctx, batch)
		if err != nil {
			return first, last, err
		}
		if off == 0 {
			first = rs[0]
		}
		last = rs[len(rs)-1]
	}
	return first, last, nil
}

// replayClock is the clock of a DB that sample events are appended to as
// if they were arriving over time: while set, it reads the set time, so
// that the events' received_at follows their time; otherwise the real
// time. (received_at never goes back: the sample times are in the past.)
type replayClock struct{ t atomic.Pointer[time.Time] }

func (c *replayClock) set(t time.Time) {
	if t.IsZero() {
		c.t.Store(nil)
	} else {
		c.t.Store(&t)
	}
}

func (c *replayClock) now() time.Time {
	if t := c.t.Load(); t != nil {
		return *t
	}
	return time.Now()
}

// demoEvents makes n events of a made-up SaaS admin side, time-ordered over
// the 24 hours before now.
func demoEvents(r *rand.Rand, n int, now time.Time) []event.Event {
	type person struct{ id, name, email, role string }
	var people []person
	for i, name := range []string{"Ana Lima", "Bo Chen", "Chidi Okafor", "Dana Weiss", "Emil Berg", "Farah Khan", "Goran Ilic", "Hana Sato", "Ivo Rossi", "Jun Park", "Kaia Moe", "Lars Nyberg"} {
		role := "member"
		switch {
		case i < 2:
			role = "admin"
		case i < 4:
			role = "support"
		}
		people = append(people, person{fmt.Sprintf("usr_%04d", 1001+i), name, fmt.Sprintf("user%d@example.com", 1001+i), role})
	}
	attackers := []string{"203.0.113.7", "203.0.113.66", "198.51.100.23"}
	agents := []string{
		"Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15",
		"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36",
		"Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0",
	}
	plans := []string{"free", "team", "business"}
	start := now.Add(-24 * time.Hour)
	step := 24 * time.Hour / time.Duration(n+1)
	evs := make([]event.Event, n)
	for i := range evs {
		p := people[r.IntN(len(people))]
		e := event.Event{
			Time:      start.Add(time.Duration(i+1) * step).Add(-time.Duration(r.Int64N(int64(step)))),
			Actor:     event.Actor{ID: p.id, Type: "user", Name: p.name, Email: p.email, Role: p.role},
			Source:    event.Source{IP: fmt.Sprintf("10.0.%d.%d", 1+r.IntN(3), 10+r.IntN(40)), UserAgent: agents[r.IntN(len(agents))]},
			RequestID: fmt.Sprintf("req_%016x", r.Uint64()),
		}
		victim := people[r.IntN(len(people))]
		victimTarget := []event.Target{{Type: "user", ID: victim.id, Name: victim.name}}
		switch k := r.IntN(100); {
		case k < 40:
			e.Action = "user.login"
			e.Targets = []event.Target{{Type: "user", ID: p.id, Name: p.name}}
		case k < 55: // password guessing from a few addresses
			e.Action, e.Outcome, e.Reason = "user.login.failed", event.Failure, "invalid_credentials"
			e.Actor = event.Actor{ID: "anonymous", Type: "anonymous"}
			e.Targets = victimTarget
			e.Source = event.Source{IP: attackers[r.IntN(len(attackers))], UserAgent: "python-requests/2.31.0"}
			e.Metadata = []byte(fmt.Sprintf(`{"attempted_email":%q}`, victim.email))
		case k < 60:
			e.Action, e.Outcome, e.Reason = "user.login.failed", event.Failure, "mfa_failed"
			e.Targets = []event.Target{{Type: "user", ID: p.id, Name: p.name}}
		case k < 72:
			e.Action, e.Targets = "user.update", victimTarget
			e.Changes = &event.Changes{Before: []byte(`{"role":"member"}`), After: []byte(`{"role":"support"}`)}
			if p.role != "admin" {
				e.Outcome, e.Reason = event.Denied, "requires admin role"
			}
		case k < 78:
			e.Action, e.Targets = "password.reset", victimTarget
			if p.role == "member" && p.id != victim.id {
				e.Outcome, e.Reason = event.Denied, "support or admin role required"
			}
		case k < 82:
			e.Action, e.Targets = "user.delete", victimTarget
			if p.role != "admin" {
				e.Outcome, e.Reason = event.Denied, "requires admin role"
			}
		case k < 92:
			sub := fmt.Sprintf("sub_%05d", 100+r.IntN(60))
			from, to := plans[r.IntN(len(plans))], plans[r.IntN(len(plans))]
			e.Action = "subscription.toggle"
			e.Targets = []event.Target{{Type: "subscription", ID: sub}}
			e.Changes = &event.Changes{Before: []byte(fmt.Sprintf(`{"plan":%q}`, from)), After: []byte(fmt.Sprintf(`{"plan":%q}`, to))}
			if r.IntN(20) == 0 {
				e.Outcome, e.Reason = event.Errored, "payment provider timeout"
			}
		default:
			e.Action = "user.logout"
			e.Targets = []event.Target{{Type: "user", ID: p.id, Name: p.name}}
		}
		evs[i] = e
	}
	return evs
}
