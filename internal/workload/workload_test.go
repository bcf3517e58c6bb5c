package workload

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/trail-audit/trail/event"
)

// builtinLines returns the first n lines of the repository's generator
// for seed, newlines included.
func builtinLines(n int, seed int64) []byte {
	g := newGenerator(seed)
	var out []byte
	for range n {
		out = append(out, g.next()...)
	}
	return out
}

// firstDifference describes the first line where got and want differ.
func firstDifference(got, want []byte) string {
	g, w := bytes.SplitAfter(got, []byte("\n")), bytes.SplitAfter(want, []byte("\n"))
	for i := range min(len(g), len(w)) {
		if !bytes.Equal(g[i], w[i]) {
			return fmt.Sprintf("line %d:\n got %s want %s", i+1, g[i], w[i])
		}
	}
	return fmt.Sprintf("%d lines, want %d", len(g), len(w))
}

// The repository's generator prints, byte for byte, what the shared
// generator printed for event/testdata/workload.ndjson
// (`go run . -n 200 -seed 3`). This runs from a clone too.
func TestBuiltinMatchesRecordedSample(t *testing.T) {
	want, err := os.ReadFile(filepath.Join("..", "..", "event", "testdata", "workload.ndjson"))
	if err != nil {
		t.Fatal(err)
	}
	if got := builtinLines(200, 3); !bytes.Equal(got, want) {
		t.Fatalf("repository generator, seed 3, differs from the shared generator's recorded output at %s", firstDifference(got, want))
	}
}

// The repository's generator prints what the shared one prints, for the
// benchmarks' seed and another, when the shared generator is there.
func TestSharedGenerator(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the shared generator with go run")
	}
	if os.Getenv("TRAIL_WORKLOAD") == Builtin {
		t.Setenv("TRAIL_WORKLOAD", "") // look for the shared generator
	}
	o, err := pick()
	if err != nil {
		t.Fatal(err)
	}
	if o.dir == "" {
		t.Skip("the shared generator (../shared/workload next to the module root, or $TRAIL_WORKLOAD) is not here: nothing to compare the repository's generator with")
	}
	const n = 5000
	for _, seed := range []int64{Seed, 42} {
		cmd := exec.Command("go", "run", ".", "-n", fmt.Sprint(n), "-seed", fmt.Sprint(seed))
		cmd.Dir = o.dir
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		want, err := cmd.Output()
		if err != nil {
			t.Fatalf("go run . in %s: %v\n%s", o.dir, err, stderr.Bytes())
		}
		got := builtinLines(n, seed)
		if !bytes.Equal(got, want) {
			t.Errorf("seed %d: the repository's generator differs from the shared one at %s", seed, firstDifference(got, want))
			gm, wm := mixOf(t, got), mixOf(t, want)
			t.Errorf("mix: repository %+v\nshared %+v", gm, wm)
		}
	}
}

// mix summarises a workload: the share of each action, of failures, of
// brute-force bursts, and of each number of metadata keys.
type mix struct {
	events    int
	actions   map[string]int
	failures  int
	anonymous int
	metaKeys  map[int]int
	actors    map[string]bool
	minBytes  int
	maxBytes  int
	meanBytes float64
}

func mixOf(t *testing.T, ndjson []byte) mix {
	t.Helper()
	m := mix{actions: map[string]int{}, metaKeys: map[int]int{}, actors: map[string]bool{}, minBytes: 1 << 30}
	var total int
	var last time.Time
	for line := range bytes.Lines(ndjson) {
		e, err := event.Decode(line)
		if err != nil {
			t.Fatalf("event %d does not decode: %v\n%s", m.events+1, err, line)
		}
		if err := e.Prepare(e.Time, event.Limits{}); err != nil {
			t.Fatalf("event %d is not valid: %v\n%s", m.events+1, err, line)
		}
		m.events++
		if gap := e.Time.Sub(last); m.events > 1 && (gap < time.Millisecond || gap > 201*time.Millisecond) {
			t.Errorf("event %d is %v after the one before, want 1 ms to 201 ms", m.events, gap)
		}
		last = e.Time
		m.actions[e.Action]++
		m.actors[e.Actor.ID] = true
		switch {
		case e.Outcome == event.Failure && e.Reason != "":
			m.failures++
		case e.Outcome == event.Success && e.Reason == "":
		default:
			t.Errorf("event %d: outcome %q with reason %q, want success without one or failure with one", m.events, e.Outcome, e.Reason)
		}
		if e.Actor.ID == "anonymous" {
			m.anonymous++
			if e.Action != "user.login.failed" || e.Actor.Type != event.ActorAnonymous || !strings.HasPrefix(e.Source.IP, "203.0.113.") && !strings.HasPrefix(e.Source.IP, "198.51.100.") && !strings.HasPrefix(e.Source.IP, "192.0.2.") {
				t.Errorf("event %d: anonymous actor in %s from %s, want a failed login from a documentation address", m.events, e.Action, e.Source.IP)
			}
		}
		if e.Actor.Type == "" || e.Actor.Email == "" || len(e.Targets) != 1 || e.Source.IP == "" || e.Source.UserAgent == "" || e.RequestID == "" {
			t.Errorf("event %d lacks a field every event has (actor type and email, one target, source ip and user agent, request id):\n%s", m.events, line)
		}
		var meta map[string]string
		if err := json.Unmarshal(e.Metadata, &meta); err != nil {
			t.Fatalf("event %d metadata: %v", m.events, err)
		}
		m.metaKeys[len(meta)]++
		total += len(line)
		m.minBytes, m.maxBytes = min(m.minBytes, len(line)), max(m.maxBytes, len(line))
	}
	m.meanBytes = float64(total) / float64(m.events)
	return m
}

// The repository's generator has the shape and mix the shared one is
// documented to have: 25 actions with user.login about a third, about 9 %
// failures (7 % plus the bursts), about 2 % bursts of failed logins,
// 2 to 5 metadata keys, about 480 bytes an event.
func TestBuiltinMix(t *testing.T) {
	const n = 20_000
	m := mixOf(t, builtinLines(n, Seed))
	share := func(k int) float64 { return float64(k) / float64(m.events) }
	for _, c := range []struct {
		name     string
		got      float64
		low, top float64
	}{
		{"user.login share", share(m.actions["user.login"]), 0.30, 0.37},
		{"failure share", share(m.failures), 0.08, 0.105},
		{"burst share", share(m.anonymous), 0.015, 0.025},
		{"distinct actions", float64(len(m.actions)), 25, 25},
		{"distinct actors", float64(len(m.actors)), 2500, 4500},
		{"mean bytes", m.meanBytes, 460, 500},
		{"smallest event bytes", float64(m.minBytes), 360, 420},
		{"largest event bytes", float64(m.maxBytes), 580, 660},
	} {
		if c.got < c.low || c.got > c.top {
			t.Errorf("%s = %v, want %v to %v", c.name, c.got, c.low, c.top)
		}
	}
	for k := range m.metaKeys {
		if k < 2 || k > 5 {
			t.Errorf("%d events have %d metadata keys, want 2 to 5", m.metaKeys[k], k)
		}
	}
	for k := 2; k <= 5; k++ {
		if s := share(m.metaKeys[k]); s < 0.2 || s > 0.3 {
			t.Errorf("share of events with %d metadata keys = %.3f, want about a quarter", k, s)
		}
	}
}

// Events and Lines give the same events, and Events counts the bytes of
// the NDJSON.
func TestEventsAndLinesAgree(t *testing.T) {
	t.Setenv("TRAIL_WORKLOAD", Builtin)
	const n = 3000
	evs, raw, err := Events(n)
	if err != nil {
		t.Fatal(err)
	}
	lines, err := Lines(n)
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != n || len(lines) != n {
		t.Fatalf("Events(%d) = %d events, Lines(%d) = %d lines, want %d", n, len(evs), n, len(lines), n)
	}
	want := builtinLines(n, Seed)
	if got := append(bytes.Join(lines, []byte("\n")), '\n'); !bytes.Equal(got, want) {
		t.Fatalf("Lines differ from the generator's output at %s", firstDifference(got, want))
	}
	if raw != int64(len(want)) {
		t.Errorf("Events NDJSON bytes = %d, want %d", raw, len(want))
	}
	for i, line := range lines {
		e, err := event.Decode(line)
		if err != nil {
			t.Fatal(err)
		}
		a, _ := json.Marshal(e)
		b, _ := json.Marshal(evs[i])
		if !bytes.Equal(a, b) {
			t.Fatalf("Events()[%d] = %s, want the decoded line %s", i, b, a)
		}
	}
	// A line stays as it was after later calls: lines do not share memory.
	first := bytes.Clone(lines[0])
	lines[1] = append(lines[1], "garbage"...)
	if !bytes.Equal(lines[0], first) || !bytes.Equal(lines[2][:1], []byte("{")) {
		t.Error("appending to one line changed another")
	}
}

// $TRAIL_WORKLOAD picks the generator: Builtin the repository's, a
// directory without the generator fails rather than falling back.
func TestPick(t *testing.T) {
	t.Run("builtin", func(t *testing.T) {
		t.Setenv("TRAIL_WORKLOAD", Builtin)
		if o, err := pick(); err != nil || o.dir != "" {
			t.Errorf("pick() = %v, %v; want the repository's generator", o, err)
		}
		if s := Source(); !strings.Contains(s, "repository") {
			t.Errorf("Source() = %q, want it to name the repository's generator", s)
		}
	})
	t.Run("missing directory", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "nowhere")
		t.Setenv("TRAIL_WORKLOAD", dir)
		if _, _, err := Events(10); err == nil || !strings.Contains(err.Error(), dir) {
			t.Errorf("Events with TRAIL_WORKLOAD=%s = %v, want an error naming it", dir, err)
		}
		if _, err := Lines(10); err == nil {
			t.Errorf("Lines with TRAIL_WORKLOAD=%s = nil error, want one", dir)
		}
		if s := Source(); !strings.Contains(s, dir) {
			t.Errorf("Source() = %q, want it to name %s", s, dir)
		}
	})
	t.Run("directory", func(t *testing.T) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte("package main\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		t.Setenv("TRAIL_WORKLOAD", dir)
		if o, err := pick(); err != nil || o.dir != dir {
			t.Errorf("pick() = %v, %v; want the generator in %s", o, err, dir)
		}
		if s := Source(); !strings.Contains(s, "shared") || !strings.Contains(s, dir) {
			t.Errorf("Source() = %q, want the shared generator in %s", s, dir)
		}
	})
}
