package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/trail-audit/trail"
	"github.com/trail-audit/trail/internal/store"
	"github.com/trail-audit/trail/internal/store/storetest/backends"
)

// indexedLog makes the store at loc, a location b gave, whose log
// "default" holds n events, of the actors u0 to u6 in turn, all indexed,
// and returns the flags that name it (storeOn).
func indexedLog(t *testing.T, b backends.Backend, loc string, n int) []string {
	t.Helper()
	st := storeOn(t, b, loc)
	initLogOn(t, st)
	var in strings.Builder
	actions := []string{"user.login", "user.login.failed", "document.read", "document.update"}
	for i := range n {
		fmt.Fprintf(&in, `{"actor":{"id":"u%d"},"action":%q,"targets":[{"type":"document","id":"doc-%d"}],"source":{"ip":"192.0.2.%d"},"reason":"batch %d"}`+"\n",
			i%7, actions[i%len(actions)], i%50, i%200, i%13)
	}
	ok(t, in.String(), at(st, "append")...)
	// trail append leaves indexing to the next process that stays open
	// long enough, as trail serve does.
	ctx := context.Background()
	db, err := openOn(ctx, b, loc, trail.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	l, err := db.Log(ctx, "default")
	if err != nil {
		t.Fatal(err)
	}
	if err := l.WaitIndexed(ctx); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	return st
}

// TestVerifyIndexAndReindex damages the indexes of a real data directory
// as the issue found it done (one actor's posting row deleted: a search
// for the actor finds a fraction of the events, and verify passes), with
// a count changed and a posting inserted besides: verify --index names
// each, exits 1, and trail reindex, refused while a server holds the data
// directory, repairs them.
func TestVerifyIndexAndReindex(t *testing.T) {
	t.Parallel()
	backends.Run(t, testVerifyIndexAndReindex)
}

func testVerifyIndexAndReindex(t *testing.T, b backends.Backend) {
	// The first 16,384 events' postings in the SQLite store's index
	// tables, the rest in its posting tail.
	const n = 20000
	loc := b.New(t)
	st := indexedLog(t, b, loc, n)
	u3 := (n + 6 - 3) / 7

	r := ok(t, "", at(st, "verify", "--index")...)
	if want := `Indexes and counts of log "default" match its events: all 20,000 events compared.`; !strings.Contains(r.stdout, want) {
		t.Errorf("trail verify --index of an untouched log printed:\n%s\nwant %q", r.stdout, want)
	}

	// u3's postings of the first 16,384 events; the hourly count of all
	// events by outcome of the first hour; a posting of seq 5 under an ip
	// it does not have.
	ctx := context.Background()
	tp := b.Tamper(t, loc)
	if err := tp.DeletePostings(ctx, "default", store.IndexActor, "u3", 0, 1<<14); err != nil {
		t.Fatal(err)
	}
	first := int64(math.MaxInt64)
	counts := func(edit func(r *store.CountRow)) {
		t.Helper()
		err := tp.EditCounts(ctx, "default", func(r *store.CountRow) bool {
			if r.Dim == store.CountOutcome && r.Span == store.SpanHour {
				edit(r)
			}
			return true
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	counts(func(r *store.CountRow) { first = min(first, r.Hour) })
	counts(func(r *store.CountRow) {
		if r.Hour == first {
			r.Total++
		}
	})
	if err := tp.AddPosting(ctx, "default", store.Posting{Index: store.IndexIP, Value: "203.0.113.99", Seqs: []int64{5}}); err != nil {
		t.Fatal(err)
	}
	tp.Close()
	if got := len(searchJSONOn(t, st, "--actor", "u3")); got >= u3 {
		t.Fatalf("trail search --actor u3 finds %d events after its posting row was deleted, want fewer than %d", got, u3)
	} else {
		t.Logf("trail search --actor u3 finds %d of its %d events", got, u3)
	}
	if r := run(t, "", at(st, "verify")...); r.code != 0 {
		t.Errorf("trail verify (without --index) exit %d: the events are intact\n%s", r.code, r.stderr)
	}

	// PostgreSQL files an event under one ip, and indexes events in the
	// commit that stores them: the posting added takes seq 5 from under
	// its own ip, a fourth difference, and no event waits for an indexer.
	pg := b.Name == backends.Postgres.Name
	diffs := 3
	wants := []*regexp.Regexp{
		regexp.MustCompile(`(?m)^Indexes and counts of log "default" DIFFER from its events \(all 20,000 events compared\):$`),
		regexp.MustCompile(`(?m)^  actor "u3": 234[0-9] events missing from the index: seqs 3, 10, 17, 24, 31, 38, 45, 52, 59, 66 and 23[0-9]{2} more$`),
		regexp.MustCompile(`(?m)^  ip "203\.0\.113\.99": 1 event listed that does not have it: seq 5$`),
		regexp.MustCompile(`(?m)^  counts by hour "all events, [0-9-]+ [0-9]{2}:00 UTC": stored ([0-9]+) events, the events add up to [0-9]+ events$`),
	}
	if pg {
		diffs++
		wants = append(wants, regexp.MustCompile(`(?m)^  ip "192\.0\.2\.5": 1 event missing from the index: seq 5$`))
	}
	r = run(t, "", at(st, "verify", "--index")...)
	if r.code != 1 || !strings.Contains(r.stderr, fmt.Sprintf("index check FAILED: %d differences", diffs)) || !strings.Contains(r.stderr, "trail reindex") {
		t.Errorf("trail verify --index of damaged indexes: exit %d, stderr %q; want 1, %d differences and the hint", r.code, r.stderr, diffs)
	}
	for _, want := range wants {
		if !want.MatchString(r.stdout) {
			t.Errorf("trail verify --index printed:\n%s\nwant a line matching %s", r.stdout, want)
		}
	}
	r = run(t, "", at(st, "verify", "--index", "--json")...)
	var res struct {
		Verified bool
		Index    struct {
			Matches     bool
			IndexedTo   int64 `json:"indexed_to"`
			Differences []trail.IndexDiff
		}
	}
	if err := json.Unmarshal([]byte(r.stdout), &res); err != nil || r.code != 1 || !res.Verified || res.Index.Matches || res.Index.IndexedTo != n || len(res.Index.Differences) != diffs {
		t.Errorf("trail verify --index --json: exit %d, %v\n%s\nwant 1, verified, index not matching, up to %d, %d differences", r.code, err, r.stdout, n, diffs)
	}

	// A server holds the data directory: reindex is refused, naming it.
	// (A PostgreSQL store, shared by many servers, has no such lock.)
	if b.MasterKey == nil {
		server, err := trail.Open(ctx, loc, trail.Options{Lock: true})
		if err != nil {
			t.Fatal(err)
		}
		r = run(t, "", at(st, "reindex")...)
		if r.code != 1 || !strings.Contains(r.stderr, fmt.Sprintf("process %d", os.Getpid())) || !strings.Contains(r.stderr, "stop it first") {
			t.Errorf("trail reindex beside a server: exit %d, stderr %q; want 1, naming process %d", r.code, r.stderr, os.Getpid())
		}
		server.Close()
	}

	r = ok(t, "", at(st, "reindex")...)
	if want := `Rebuilt the indexes and counts of log "default" from its 20,000 events.`; !strings.Contains(r.stdout, want) {
		t.Errorf("trail reindex printed %q, want %q", r.stdout, want)
	}
	r = ok(t, "", at(st, "verify", "--index")...)
	if !strings.Contains(r.stdout, "match its events") {
		t.Errorf("trail verify --index after reindex printed:\n%s", r.stdout)
	}
	if got := len(searchJSONOn(t, st, "--actor", "u3")); got != u3 {
		t.Errorf("after reindex, trail search --actor u3 finds %d events, want %d", got, u3)
	}
	if got := len(searchJSONOn(t, st, "--ip", "203.0.113.99")); got != 0 {
		t.Errorf("after reindex, trail search --ip 203.0.113.99 finds %d events, want none", got)
	}

	// Events the indexer has not reached (trail append does not stay to
	// index them) are not compared, and verify says so. PostgreSQL's
	// counter, which trail append runs too until it exits, may have
	// counted them.
	ok(t, `{"actor":{"id":"u3"},"action":"user.login"}`+"\n"+`{"actor":{"id":"u4"},"action":"user.login"}`+"\n", at(st, "append")...)
	r = ok(t, "", at(st, "verify", "--index")...)
	want := "match its events: events 0 to 19,999 compared; the indexer had not reached the last 2, which searches read from the events themselves."
	if !strings.Contains(r.stdout, want) && !(pg && strings.Contains(r.stdout, "match its events: all 20,002 events compared.")) {
		t.Errorf("trail verify --index with 2 events not indexed printed:\n%s\nwant %q", r.stdout, want)
	}

	if r := run(t, "", "verify", "--index", "--server", "http://127.0.0.1:1", "--key", "k", "--verifier-key", "x"); r.code != 2 {
		t.Errorf("trail verify --index --server: exit %d, want 2 (usage)\n%s", r.code, r.stderr)
	}
	if r := run(t, "", at(st, "reindex", "--log", "nope")...); r.code != 1 || !strings.Contains(r.stderr, `no log "nope"`) {
		t.Errorf("trail reindex --log nope: exit %d, stderr %q", r.code, r.stderr)
	}
	for cmd, want := range map[string]string{"verify": "--index", "reindex": "serve.lock"} {
		if r := ok(t, "", "help", cmd); !strings.Contains(r.stdout, want) {
			t.Errorf("trail help %s does not mention %s", cmd, want)
		}
	}
}

// TestVerifyIndexNothingIndexed: on a data directory only the CLI has
// written, nothing is indexed yet, and verify --index says so plainly
// rather than "events 0 to -1 compared".
func TestVerifyIndexNothingIndexed(t *testing.T) {
	t.Parallel()
	data, _ := initLog(t)
	ok(t, `{"actor":{"id":"a"},"action":"user.login"}`+"\n"+`{"actor":{"id":"b"},"action":"user.login"}`+"\n", "append", "--data", data)
	r := ok(t, "", "verify", "--data", data, "--index")
	if !strings.Contains(r.stdout, "none of its 2 events indexed yet") || strings.Contains(r.stdout, "-1") {
		t.Errorf("trail verify --index on a log nothing indexed printed:\n%s", r.stdout)
	}
}

// Every command that takes --log refuses one that cannot name a log, as
// a usage error, before it opens anything.
func TestBadLogName(t *testing.T) {
	t.Parallel()
	data, _ := initLog(t)
	for _, args := range [][]string{
		{"reindex", "--data", data, "--log", "A b"},
		{"keys", "list", "--data", data, "--log", "A b"},
		{"keys", "create", "--data", data, "--log", "../x", "--scope", "read"},
		{"search", "--data", data, "--log", ""},
		{"init", "--data", data, "--log", "-x"},
	} {
		r := run(t, "", args...)
		if r.code != 2 || !strings.Contains(r.stderr, "is not a log name") {
			t.Errorf("trail %s: exit %d, stderr %q; want 2 and the log name refused", strings.Join(args, " "), r.code, r.stderr)
		}
	}
}
