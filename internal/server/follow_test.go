package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/trail-audit/trail"
	"github.com/trail-audit/trail/api"
	"github.com/trail-audit/trail/event"
	"github.com/trail-audit/trail/internal/server"
)

// within calls ok until it reports true, failing t if it has not within
// d; what it says last is the failure's message.
func within(t *testing.T, d time.Duration, what string, ok func() (bool, string)) {
	t.Helper()
	start := time.Now()
	for {
		done, msg := ok()
		if done {
			t.Logf("%s after %v", what, time.Since(start).Round(time.Millisecond))
			return
		}
		if time.Since(start) > d {
			t.Fatalf("%s: not within %v: %s", what, d, msg)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// What another DB on the server's data directory appends (trail append
// beside trail serve), the server serves within 2 seconds, with no
// append through it: its tails stream it, and GET /v1/log,
// /v1/checkpoint, /v1/events/{id}, searches and proofs show it, each of
// them alone after another such append.
func TestServesOtherProcessAppends(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, server.Options{})
	msgs, stop := sse(t, e, "/v1/tail?action=cli.append", "")
	defer stop()
	cli, err := trail.Open(ctx, e.db.Dir(), trail.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	l, err := cli.Log(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	// cliAppend appends n events of actor cli-<round> through the other
	// DB and returns the receipts.
	cliAppend := func(round, n int) []api.Receipt {
		t.Helper()
		evs := make([]event.Event, n)
		for i := range evs {
			evs[i] = event.Event{Actor: event.Actor{ID: fmt.Sprintf("cli-%d", round)}, Action: "cli.append"}
		}
		rs, err := l.AppendBatch(ctx, evs)
		if err != nil {
			t.Fatal(err)
		}
		return rs
	}

	start := time.Now()
	for _, r := range cliAppend(0, 3) {
		m := next(t, msgs)
		if m[0] != strconv.FormatInt(r.Seq, 10) {
			t.Fatalf("tail message id %s, want seq %d", m[0], r.Seq)
		}
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("the tail streamed the other DB's events after %v, want within 2 s", d)
	} else {
		t.Logf("the tail streamed the other DB's events after %v", d.Round(time.Millisecond))
	}

	for round, read := range []struct {
		name string
		ok   func(last api.Receipt, size int64, round int) (bool, string)
	}{
		{"GET /v1/log", func(_ api.Receipt, size int64, _ int) (bool, string) {
			var info struct {
				TreeSize int64 `json:"tree_size"`
			}
			r := e.ok(200, "GET", "/v1/log", "acme-read", "", nil, &info)
			return info.TreeSize == size, fmt.Sprintf("%s, want tree_size %d", r.body, size)
		}},
		{"GET /v1/checkpoint", func(_ api.Receipt, size int64, _ int) (bool, string) {
			c, _ := e.checkpointOf("acme-append")
			return c.Size == size, fmt.Sprintf("checkpoint of size %d, want %d", c.Size, size)
		}},
		{"GET /v1/events/{id}", func(last api.Receipt, _ int64, _ int) (bool, string) {
			r := e.do("GET", "/v1/events/"+last.ID, "acme-read", "", nil)
			return r.status == 200, fmt.Sprintf("%d %s", r.status, r.body)
		}},
		{"GET /v1/events?actor=", func(last api.Receipt, _ int64, round int) (bool, string) {
			var page struct {
				Events []struct{ ID string }
			}
			r := e.ok(200, "GET", fmt.Sprintf("/v1/events?actor=cli-%d&limit=1", round), "acme-read", "", nil, &page)
			return len(page.Events) == 1 && page.Events[0].ID == last.ID, fmt.Sprintf("%s, want %s", r.body, last.ID)
		}},
		{"GET /v1/proof/inclusion", func(last api.Receipt, size int64, _ int) (bool, string) {
			r := e.do("GET", fmt.Sprintf("/v1/proof/inclusion?seq=%d&size=%d", last.Seq, size), "acme-read", "", nil)
			var p struct{ Hashes []string }
			return r.status == 200 && json.Unmarshal(r.body, &p) == nil && len(p.Hashes) > 0, fmt.Sprintf("%d %s", r.status, r.body)
		}},
	} {
		round++
		rs := cliAppend(round, 100*round)
		last := rs[len(rs)-1]
		within(t, 2*time.Second, read.name+" shows the other DB's appends", func() (bool, string) { return read.ok(last, last.Seq+1, round) })
		for i := range rs { // the tail streamed them too
			if m := next(t, msgs); m[0] != strconv.FormatInt(rs[i].Seq, 10) {
				t.Fatalf("tail message id %s, want seq %d", m[0], rs[i].Seq)
			}
		}
	}
}
