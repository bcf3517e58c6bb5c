package main

import (
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/trail-audit/trail/event"
	"github.com/trail-audit/trail/internal/store/postgres/pgtest"
	"github.com/trail-audit/trail/internal/store/storetest/backends"
)

// copySummary is what trail copy --json prints.
type copySummary struct {
	Logs []struct {
		Name        string
		Created     bool
		From, Size  int64
		Events      int64
		Checkpoints int
		Keys        int
		Revoked     int
		Done        bool
	}
	Events               int64
	CreatedMasterKeyFile string `json:"created_master_key_file"`
}

// copyJSON runs trail copy with args and --json, and returns its summary.
func copyJSON(t *testing.T, args ...string) copySummary {
	t.Helper()
	r := ok(t, "", append([]string{"copy", "--json"}, args...)...)
	var s copySummary
	if err := json.Unmarshal([]byte(r.stdout), &s); err != nil {
		t.Fatalf("trail copy --json printed %q: %v", r.stdout, err)
	}
	return s
}

// newCopySource makes a data directory with two logs of several commits
// each, and API keys of the log "default", one of them revoked.
func newCopySource(t *testing.T) string {
	t.Helper()
	src, _ := initLog(t)
	ok(t, "", "--data", src, "init", "--log", "second", "--origin", "example.com/trail/second")
	evs := lines(events(t))
	for i := 0; i < len(evs); i += 3 {
		chunk := strings.Join(evs[i:min(i+3, len(evs))], "\n") + "\n"
		ok(t, chunk, "append", "--data", src)
	}
	ok(t, events(t), "append", "--data", src, "--log", "second")
	ok(t, "", "--data", src, "keys", "create", "--log", "default", "--scope", "read", "--name", "reader")
	r := ok(t, "", "--data", src, "keys", "create", "--log", "default", "--scope", "append", "--name", "old")
	id := regexp.MustCompile(`Created key (\S+)`).FindStringSubmatch(r.stdout)
	if id == nil {
		t.Fatalf("trail keys create printed no key id:\n%s", r.stdout)
	}
	ok(t, "", "--data", src, "keys", "revoke", id[1])
	return src
}

// sameLogs fails t unless the logs of the stores given by the flags src
// and dst have the same latest checkpoints, and dst's verify.
func sameLogs(t *testing.T, src, dst []string, logs ...string) {
	t.Helper()
	for _, log := range logs {
		want := ok(t, "", append(src, "--log", log, "checkpoint")...).stdout
		if got := ok(t, "", append(dst, "--log", log, "checkpoint")...).stdout; got != want {
			t.Errorf("log %s: the copy's checkpoint is\n%s\nthe source's\n%s", log, got, want)
		}
		ok(t, "", append(dst, "--log", log, "verify")...)
	}
}

// sameKeys fails t unless the stores given by the flags src and dst hold
// the same API keys, one of them revoked. Listing them appends to every
// log a record of the listing, different on each side: call it last.
func sameKeys(t *testing.T, src, dst []string) {
	t.Helper()
	want := ok(t, "", append(src, "keys", "list", "--json")...).stdout
	if got := ok(t, "", append(dst, "keys", "list", "--json")...).stdout; got != want || !strings.Contains(got, "revoked_at") {
		t.Errorf("the copy's API keys are\n%s\nthe source's\n%s\n(want the same, one revoked)", got, want)
	}
}

func TestCopyCLI(t *testing.T) {
	src := newCopySource(t)
	dst := filepath.Join(t.TempDir(), "copy")
	s := copyJSON(t, "--from", "sqlite:"+src, "--to", "sqlite:"+dst)
	if len(s.Logs) != 2 || s.Logs[0].Name != "default" || s.Logs[1].Name != "second" {
		t.Fatalf("trail copy copied %+v, want the logs default and second", s.Logs)
	}
	for _, l := range s.Logs {
		if !l.Created || !l.Done || l.Events != l.Size || l.Events == 0 {
			t.Errorf("trail copy of log %s: %+v, want it created and copied whole", l.Name, l)
		}
	}
	if d := s.Logs[0]; d.Checkpoints < 5 || d.Keys != 2 || d.Revoked != 1 {
		t.Errorf("trail copy of log default: %d commits, %d keys, %d revoked; want several commits, 2 keys, 1 revoked", d.Checkpoints, d.Keys, d.Revoked)
	}
	sameLogs(t, []string{"--data", src}, []string{"--data", dst}, "default", "second")

	// Run again after more appends: it copies only them, and the text
	// summary says so.
	ok(t, events(t), "append", "--data", src)
	r := ok(t, "", "copy", "--from", "sqlite:"+src, "--to", "sqlite:"+dst, "--log", "default", "--log", "second")
	for _, want := range []string{`Log "default": copied `, `Log "second": already copied`, "Copied "} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("trail copy after appends printed\n%s\nwant it to say %q", r.stdout, want)
		}
	}
	sameLogs(t, []string{"--data", src}, []string{"--data", dst}, "default", "second")
	sameKeys(t, []string{"--data", src}, []string{"--data", dst})

	// The copy took the signing key: it appends, and verifies.
	ok(t, events(t), "append", "--data", dst, "--log", "second")
	ok(t, "", "--data", dst, "--log", "second", "verify")

	// Now the copy's log "second" has events the source's has not: the
	// source gets as many others, and copy refuses.
	ok(t, events(t), "append", "--data", src, "--log", "second")
	r = run(t, "", "copy", "--from", "sqlite:"+src, "--to", "sqlite:"+dst, "--log", "second")
	if r.code != 1 || !strings.Contains(r.stderr, "different histories") {
		t.Errorf("trail copy onto a diverged log: exit %d, stderr %q; want 1 saying the histories differ", r.code, r.stderr)
	}
}

// Usage mistakes exit 2.
func TestCopyUsage(t *testing.T) {
	src := newCopySourceEmpty(t)
	for _, args := range [][]string{
		{"copy", "--to", "sqlite:" + t.TempDir()},
		{"copy", "--from", "sqlite:" + src},
		{"copy", "--from", "sqlite:" + src, "--to", "sqlite:" + src},
		{"copy", "--from", src, "--to", "sqlite:" + t.TempDir()},
		{"copy", "--from", "sqlite:" + src, "--to", "sqlite:" + t.TempDir(), "--log", "Bad Name"},
	} {
		if r := run(t, "", args...); r.code != 2 {
			t.Errorf("trail %s: exit %d, stderr %q; want 2", strings.Join(args, " "), r.code, r.stderr)
		}
	}

	// A log the source lacks: nothing is made at --to, not even the
	// master key file of a PostgreSQL target, which is not reached.
	dst := filepath.Join(t.TempDir(), "copy")
	keyFile := filepath.Join(t.TempDir(), "master.key")
	for _, to := range []string{"sqlite:" + dst, "postgres://postgres@127.0.0.1:1/none?connect_timeout=1"} {
		r := run(t, "", "copy", "--from", "sqlite:"+src, "--to", to, "--master-key-file", keyFile, "--log", "default", "--log", "nope")
		if r.code != 1 || !strings.Contains(r.stderr, `has no log "nope"`) {
			t.Errorf("trail copy --to %s --log nope: exit %d, stderr %q; want 1 saying the source has no log nope", to, r.code, r.stderr)
		}
	}
	// A target that cannot be reached: the master key made for it is
	// removed.
	if r := run(t, "", "copy", "--from", "sqlite:"+src, "--to", "postgres://postgres@127.0.0.1:1/none?connect_timeout=1", "--master-key-file", keyFile); r.code != 1 {
		t.Errorf("trail copy to an unreachable store: exit %d, stderr %q; want 1", r.code, r.stderr)
	}
	for _, p := range []string{dst, keyFile} {
		if _, err := os.Stat(p); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("after copies of a log the source lacks, and to a store that cannot be reached, %s: %v; want it not made", p, err)
		}
	}
}

func newCopySourceEmpty(t *testing.T) string {
	t.Helper()
	src, _ := initLog(t)
	return src
}

// A damaged source event stops the copy, naming its seq; the events
// before its commit are copied.
func TestCopyDamagedCLI(t *testing.T) {
	src := newCopySource(t)
	tamper(t, backends.SQLite, src, "second", 4, func(e *event.Event) { e.Action = "user.delete" })
	dst := filepath.Join(t.TempDir(), "copy")
	r := run(t, "", "copy", "--from", "sqlite:"+src, "--to", "sqlite:"+dst, "--log", "second")
	if r.code != 1 || !strings.Contains(r.stderr, "verification FAILED: seq 4:") {
		t.Fatalf("trail copy of a damaged log: exit %d, stderr %q; want 1, verification FAILED at seq 4", r.code, r.stderr)
	}
	// "second" was appended in one commit: nothing of it is copied.
	if out := ok(t, "", "--data", dst, "logs", "--json").stdout; !strings.Contains(out, `"size":0`) {
		t.Errorf("after the refused copy the target's logs are %s, want log second empty", out)
	}
}

// sqlite -> postgres -> sqlite keeps the checkpoints and the keys.
func TestCopyPostgresCLI(t *testing.T) {
	src := newCopySource(t)
	pg := pgtest.DB(t)
	key := filepath.Join(t.TempDir(), "master.key")
	back := filepath.Join(t.TempDir(), "back")
	if s := copyJSON(t, "--from", "sqlite:"+src, "--to", pg, "--master-key-file", key); s.CreatedMasterKeyFile != key {
		t.Errorf("trail copy --json to a new store: created_master_key_file %q, want %q", s.CreatedMasterKeyFile, key)
	}
	pgFlags := []string{"--store", pg, "--master-key-file", key}
	sameLogs(t, []string{"--data", src}, pgFlags, "default", "second")
	s := copyJSON(t, "--from", pg, "--to", "sqlite:"+back, "--master-key-file", key)
	if len(s.Logs) != 2 || !s.Logs[0].Done || !s.Logs[1].Done {
		t.Fatalf("trail copy from postgres: %+v", s.Logs)
	}
	sameLogs(t, []string{"--data", src}, []string{"--data", back}, "default", "second")
	// The postgres copy takes appends with the moved key.
	sameKeys(t, []string{"--data", src}, pgFlags)
	sameKeys(t, []string{"--data", src}, []string{"--data", back})
	ok(t, events(t), append(pgFlags, "append", "--log", "second")...)
	ok(t, "", append(pgFlags, "--log", "second", "verify")...)

	// The text summary says when it made the master key, and counts.
	key2 := filepath.Join(t.TempDir(), "master2.key")
	r := ok(t, "", "copy", "--from", "sqlite:"+src, "--to", pgtest.DB(t), "--master-key-file", key2, "--log", "second")
	for _, want := range []string{"Created the master key " + key2 + " for --to", " events of 1 log in "} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("trail copy to a new store printed\n%s\nwant it to say %q", r.stdout, want)
		}
	}
}
