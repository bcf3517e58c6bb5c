package main

import (
	"context"
	"strconv"
	"strings"
	"testing"

	"github.com/trail-audit/trail/event"
	"github.com/trail-audit/trail/internal/store/storetest/backends"
)

// tamper changes event seq of log in the store at loc, a location b gave,
// behind Trail's back, waiting for a server's commits on it.
func tamper(t *testing.T, b backends.Backend, loc, log string, seq int64, edit func(*event.Event)) {
	t.Helper()
	tp := b.Tamper(t, loc)
	defer tp.Close()
	err := tp.EditEvents(context.Background(), log, seq, seq+1, func(evs []*event.Event) []*event.Event {
		if len(evs) != 1 {
			t.Fatalf("log %s holds no event %d", log, seq)
		}
		edit(evs[0])
		return evs
	})
	if err != nil {
		t.Fatal(err)
	}
}

// failsDamaged runs trail and checks that it exits 1 saying the event at
// seq is damaged and to run trail verify.
func failsDamaged(t *testing.T, seq string, args ...string) {
	t.Helper()
	r := run(t, "", args...)
	if r.code != 1 || !strings.Contains(r.stderr, "stored event at seq "+seq+" is damaged") || !strings.Contains(r.stderr, "run trail verify") {
		t.Errorf("trail %s: exit %d, stderr %q; want 1 saying the stored event at seq %s is damaged, and to run trail verify",
			strings.Join(args, " "), r.code, r.stderr, seq)
	}
}

// A damaged event is reported as damaged by get, search and export, on a
// data directory and through a server.
func TestDamagedEventCLI(t *testing.T) {
	backends.Run(t, testDamagedEventCLI)
}

func testDamagedEventCLI(t *testing.T, b backends.Backend) {
	loc := b.New(t)
	st := storeOn(t, b, loc)
	vkey := initLogOn(t, st)
	rs := appendAllOn(t, st)
	key := lastLine(ok(t, "", at(st, "keys", "create", "--log", "default", "--scope", "read")...).stdout)
	seq, id := rs[5][0], rs[5][1]
	n, err := strconv.ParseInt(seq, 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	tp := b.Tamper(t, loc)
	if err := tp.BreakEvent(context.Background(), "default", n); err != nil {
		t.Fatal(err)
	}
	tp.Close()

	failsDamaged(t, seq, at(st, "get", id)...)
	failsDamaged(t, seq, at(st, "search", "--limit", "1000")...)
	failsDamaged(t, seq, at(st, "export")...)
	ok(t, "", at(st, "search", "--limit", "10")...)

	s := serveOn(t, st, "--rate-limit", "0")
	defer s.stop(t)
	remote := []string{"--server", s.url, "--key", key}
	failsDamaged(t, seq, append(remote, "get", "--verifier-key", vkey, id)...)
	failsDamaged(t, seq, append(remote, "search", "--limit", "1000")...)
	failsDamaged(t, seq, append(remote, "export")...)
}

// An event stored past the end of the log fails verify and append, both
// naming its seq.
func TestStrayEventCLI(t *testing.T) {
	backends.Run(t, testStrayEventCLI)
}

func testStrayEventCLI(t *testing.T, b backends.Backend) {
	loc := b.New(t)
	st := storeOn(t, b, loc)
	initLogOn(t, st)
	rs := appendAllOn(t, st)
	size, err := strconv.ParseInt(rs[len(rs)-1][0], 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	size++
	tp := b.Tamper(t, loc)
	if err := tp.CopyRecord(context.Background(), "default", size-1, size); err != nil {
		t.Fatal(err)
	}
	tp.Close()
	stray := strconv.FormatInt(size, 10)
	r := run(t, "", at(st, "verify")...)
	if r.code != 1 || !strings.Contains(r.stderr, "verification FAILED: seq "+stray+": an event is stored past the end of the log") {
		t.Errorf("trail verify: exit %d, stderr %q; want 1 naming seq %s, past the end of the log", r.code, r.stderr, stray)
	}
	r = run(t, "", at(st, "append", "--actor", "alice", "--action", "user.login")...)
	if r.code != 1 || !strings.Contains(r.stderr, "stored event at seq "+stray+" is damaged") || !strings.Contains(r.stderr, "nothing was stored") {
		t.Errorf("trail append: exit %d, stderr %q; want 1 saying the stored event at seq %s is damaged and nothing was stored", r.code, r.stderr, stray)
	}
}
