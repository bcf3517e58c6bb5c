package main

import (
	"bytes"
	"encoding/base64"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
	_ "modernc.org/sqlite"

	"github.com/trail-audit/trail"
	"github.com/trail-audit/trail/event"
	"github.com/trail-audit/trail/internal/store/storetest/backends"
)

// The tests in this file run the trail binary, built once by TestMain, as a
// user would: with arguments, stdin and a data directory, reading its exit
// status, stdout and stderr.

var trailBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "trail-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	trailBin = filepath.Join(dir, "trail")
	build := exec.Command("go", "build", "-o", trailBin, ".")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build trail:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

type result struct {
	stdout, stderr string
	code           int
}

// run runs trail with args. stdin is a string or an *os.File.
func run(t *testing.T, stdin any, args ...string) result {
	t.Helper()
	cmd := exec.Command(trailBin, args...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "TRAIL_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	switch in := stdin.(type) {
	case string:
		cmd.Stdin = strings.NewReader(in)
	case *os.File:
		cmd.Stdin = in
	}
	return runCmd(t, cmd)
}

// runCmd runs cmd, a trail command, and returns what it did; it fails the
// test if trail could not start or panicked.
func runCmd(t *testing.T, cmd *exec.Cmd) result {
	t.Helper()
	args := cmd.Args[1:]
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := result{stdout: stdout.String(), stderr: stderr.String()}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	case err != nil:
		t.Fatalf("trail %s: %v", strings.Join(args, " "), err)
	}
	if strings.Contains(r.stderr, "panic:") || strings.Contains(r.stderr, "goroutine ") {
		t.Fatalf("trail %s panicked:\n%s", strings.Join(args, " "), r.stderr)
	}
	return r
}

// ok runs trail and fails the test unless it exits 0.
func ok(t *testing.T, stdin any, args ...string) result {
	t.Helper()
	r := run(t, stdin, args...)
	if r.code != 0 {
		t.Fatalf("trail %s: exit status %d, want 0\nstderr:\n%s", strings.Join(args, " "), r.code, r.stderr)
	}
	return r
}

func events(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("testdata/events.ndjson")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func lines(s string) []string {
	return strings.Split(strings.TrimSuffix(s, "\n"), "\n")
}

var verifierKeyRE = regexp.MustCompile(`(?m)^\s*verifier key:\s+(\S+)$`)

// initLog initializes a data directory and returns it and the verifier key
// that init printed.
func initLog(t *testing.T) (data, vkey string) {
	t.Helper()
	return initLogAt(t, filepath.Join(t.TempDir(), "data"))
}

// initLogAt is initLog of the data directory data.
func initLogAt(t *testing.T, data string) (string, string) {
	t.Helper()
	return data, initLogOn(t, []string{"--data", data})
}

// initLogOn is initLog of the store the flags st name (see storeOn), and
// returns the log's verifier key.
func initLogOn(t *testing.T, st []string) string {
	t.Helper()
	r := ok(t, "", at(st, "init", "--origin", "example.com/trail/test")...)
	m := verifierKeyRE.FindStringSubmatch(r.stdout)
	if m == nil {
		t.Fatalf("trail init printed no verifier key:\n%s", r.stdout)
	}
	return m[1]
}

// appendAll appends the test events and returns their receipts: seq, id.
func appendAll(t *testing.T, data string) [][2]string {
	t.Helper()
	return appendAllOn(t, []string{"--data", data})
}

// appendAllOn is appendAll on the store the flags st name.
func appendAllOn(t *testing.T, st []string) [][2]string {
	t.Helper()
	r := ok(t, events(t), at(st, "append")...)
	var rs [][2]string
	for _, l := range lines(r.stdout) {
		seq, id, found := strings.Cut(l, "\t")
		if !found {
			t.Fatalf("trail append printed %q, want seq<TAB>id", l)
		}
		rs = append(rs, [2]string{seq, id})
	}
	return rs
}

// searchJSON runs trail search --json and returns the events it printed.
func searchJSON(t *testing.T, data string, args ...string) []map[string]any {
	t.Helper()
	return searchJSONOn(t, []string{"--data", data}, args...)
}

// searchJSONOn is searchJSON on the store the flags st name.
func searchJSONOn(t *testing.T, st []string, args ...string) []map[string]any {
	t.Helper()
	r := ok(t, "", at(st, append([]string{"search", "--json", "--limit", "10000"}, args...)...)...)
	var evs []map[string]any
	if r.stdout == "" {
		return nil
	}
	for _, l := range lines(r.stdout) {
		var e map[string]any
		if err := json.Unmarshal([]byte(l), &e); err != nil {
			t.Fatalf("trail search --json printed a line that is not JSON: %v\n%s", err, l)
		}
		evs = append(evs, e)
	}
	return evs
}

func TestInit(t *testing.T) {
	t.Parallel()
	data, vkey := initLog(t)
	if _, err := note.NewVerifier(vkey); err != nil {
		t.Fatalf("init printed verifier key %q: %v", vkey, err)
	}
	for path, want := range map[string]os.FileMode{data: 0o700, filepath.Join(data, "keys", "default.key"): 0o600} {
		info, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if got := info.Mode().Perm(); got != want {
			t.Errorf("mode of %s = %#o, want %#o", path, got, want)
		}
	}

	r := run(t, "", "init", "--data", data)
	if r.code != 1 || !strings.Contains(r.stderr, `already has a log "default"`) {
		t.Errorf("second trail init: exit %d, stderr %q; want 1 and the log exists", r.code, r.stderr)
	}
	r = ok(t, "", "init", "--data", data, "--log", "billing", "--json")
	var res struct {
		Log         string
		VerifierKey string `json:"verifier_key"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &res); err != nil || res.Log != "billing" || !strings.Contains(res.VerifierKey, "/trail/billing+") {
		t.Fatalf("trail init --json = %q: %v", r.stdout, err)
	}
	r = ok(t, "", "logs", "--data", data)
	if !strings.Contains(r.stdout, "default") || !strings.Contains(r.stdout, "billing") || !strings.Contains(r.stdout, vkey) {
		t.Errorf("trail logs = %q, want both logs and the verifier key %s", r.stdout, vkey)
	}
	if r := run(t, "", "init", "--data", data, "--log", "Bad Name"); r.code != 2 {
		t.Errorf("trail init --log 'Bad Name': exit %d, want 2", r.code)
	}
}

func TestAppendAndSearch(t *testing.T) {
	t.Parallel()
	data, _ := initLog(t)
	rs := appendAll(t, data)
	if len(rs) != 300 {
		t.Fatalf("trail append printed %d receipts, want 300", len(rs))
	}
	for i, r := range rs {
		if r[0] != strconv.Itoa(i) {
			t.Fatalf("receipt %d has seq %s", i, r[0])
		}
	}

	evs := searchJSON(t, data)
	if len(evs) != 300 {
		t.Fatalf("trail search found %d events, want 300", len(evs))
	}
	if evs[0]["id"] != rs[299][1] || evs[299]["id"] != rs[0][1] {
		t.Errorf("trail search is not newest first: first %v, last %v", evs[0]["id"], evs[299]["id"])
	}

	// Filters match what the input holds.
	actors := map[string]int{}
	logins := 0
	for _, l := range lines(events(t)) {
		var e struct {
			Actor  struct{ ID string }
			Action string
		}
		json.Unmarshal([]byte(l), &e)
		actors[e.Actor.ID]++
		if strings.HasPrefix(e.Action, "user.login") {
			logins++
		}
	}
	busiest := ""
	for a, n := range actors {
		if busiest == "" || n > actors[busiest] {
			busiest = a
		}
	}
	if got := searchJSON(t, data, "--actor", busiest); len(got) != actors[busiest] {
		t.Errorf("trail search --actor %s found %d events, want %d", busiest, len(got), actors[busiest])
	}
	if got := searchJSON(t, data, "--action", "user.login.*", "--since", "1h"); len(got) == 0 {
		t.Errorf("trail search --action user.login.* --since 1h found nothing")
	}
	if got := searchJSON(t, data, "--until", "1h"); len(got) != 0 {
		t.Errorf("trail search --until 1h found %d events received more than an hour ago, want 0", len(got))
	}

	// Pages: --limit and the cursor printed on stderr.
	r := ok(t, "", "search", "--data", data, "--limit", "10")
	if n := len(lines(r.stdout)); n != 11 {
		t.Errorf("trail search --limit 10 printed %d lines, want a header and 10 rows", n)
	}
	if !strings.HasPrefix(r.stdout, "TIME") || !strings.Contains(r.stdout, "ACTION") {
		t.Errorf("trail search table header = %q", lines(r.stdout)[0])
	}
	m := regexp.MustCompile(`next cursor: (\d+)`).FindStringSubmatch(r.stderr)
	if m == nil {
		t.Fatalf("trail search --limit 10 stderr = %q, want a next cursor", r.stderr)
	}
	page2 := searchJSON(t, data, "--limit", "10", "--cursor", m[1])
	if len(page2) != 10 || page2[0]["id"] != rs[289][1] {
		t.Errorf("second page starts at %v, want %s", page2[0]["id"], rs[289][1])
	}

	if r := run(t, "", "search", "--data", data, "--action", "Not An Action"); r.code != 2 || !strings.Contains(r.stderr, "--action") {
		t.Errorf("trail search with a bad --action: exit %d, stderr %q; want 2 naming --action", r.code, r.stderr)
	}
}

func TestAppendBadLine(t *testing.T) {
	t.Parallel()
	data, _ := initLog(t)
	in := lines(events(t))
	in[2] = strings.Replace(in[2], `"id":"`, `"name":"`, 1) // line 3: actor without id
	r := run(t, strings.Join(in, "\n")+"\n", "append", "--data", data)
	if r.code == 0 {
		t.Fatalf("trail append with a bad line 3 exited 0")
	}
	if !strings.Contains(r.stderr, "line 3") || !strings.Contains(r.stderr, "actor.id") {
		t.Errorf("trail append stderr = %q, want it to name line 3 and actor.id", r.stderr)
	}
	if evs := searchJSON(t, data); len(evs) != 0 {
		t.Errorf("after a failed append, search finds %d events, want 0", len(evs))
	}

	// Trail's own actions are not for apps to write.
	in = lines(events(t))
	in[1] = `{"actor":{"id":"alice"},"action":"trail.key.revoke"}`
	r = run(t, strings.Join(in, "\n")+"\n", "append", "--data", data)
	if r.code == 0 || !strings.Contains(r.stderr, "line 2") || !strings.Contains(r.stderr, `action: actions starting with "trail."`) {
		t.Errorf("trail append with trail.key.revoke on line 2: exit %d, stderr %q; want it refused, naming line 2 and the action", r.code, r.stderr)
	}
	if evs := searchJSON(t, data); len(evs) != 0 {
		t.Errorf("after a refused append, search finds %d events, want 0", len(evs))
	}
}

// TestAppendBadLineLaterBatch checks that a bad line beyond the first
// batch of 10,000 still stores nothing, with stdin a pipe (kept in memory)
// and a file (read twice).
func TestAppendBadLineLaterBatch(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("appends 10,000 events")
	}
	data, _ := initLog(t)
	ev := lines(events(t))
	var in []string
	for len(in) < batchSize+5 {
		in = append(in, ev...)
	}
	in = in[:batchSize+5]
	in[batchSize+2] = `{"actor":{"id":"alice"},"action":"user.login","outcome":"maybe"}`
	text := strings.Join(in, "\n") + "\n"
	file := filepath.Join(t.TempDir(), "events.ndjson")
	if err := os.WriteFile(file, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for name, stdin := range map[string]any{"pipe": text, "file": f} {
		r := run(t, stdin, "append", "--data", data)
		if want := fmt.Sprintf("line %d: outcome", batchSize+3); r.code != 1 || !strings.Contains(r.stderr, want) {
			t.Errorf("%s: trail append: exit %d, stderr %q; want 1 and %q", name, r.code, r.stderr, want)
		}
	}
	if evs := searchJSON(t, data); len(evs) != 0 {
		t.Errorf("after failed appends, search finds %d events, want 0", len(evs))
	}

	// Without the bad line, both batches are stored.
	in[batchSize+2] = in[0]
	if err := os.WriteFile(file, []byte(strings.Join(in, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	f2, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f2.Close()
	r := ok(t, f2, "append", "--data", data)
	if n := len(lines(r.stdout)); n != batchSize+5 {
		t.Errorf("trail append printed %d receipts, want %d", n, batchSize+5)
	}
}

func TestAppendFlags(t *testing.T) {
	t.Parallel()
	data, _ := initLog(t)
	r := ok(t, "", "append", "--data", data, "--json", "--actor", "alice", "--action", "user.delete",
		"--target", "user:bob", "--target", "team:ops", "--outcome", "denied", "--reason", "not an admin",
		"--ip", "192.0.2.7", "--metadata", `{"ticket":"T-1"}`)
	var rc struct {
		ID  string
		Seq int64
	}
	if err := json.Unmarshal([]byte(r.stdout), &rc); err != nil || rc.ID == "" {
		t.Fatalf("trail append --json = %q: %v", r.stdout, err)
	}
	evs := searchJSON(t, data, "--target", "team:ops")
	if len(evs) != 1 || evs[0]["id"] != rc.ID || evs[0]["outcome"] != "denied" || evs[0]["reason"] != "not an admin" {
		t.Errorf("search --target team:ops = %v, want the appended event %s", evs, rc.ID)
	}

	for _, args := range [][]string{
		{"--actor", "alice"},                                                 // no action
		{"--actor", "alice", "--action", "Not Valid"},                        // bad action
		{"--action", "user.login", "--target", "bob"},                        // target without type
		{"--action", "user.login", "--metadata", "{"},                        // bad JSON
		{"--actor", "alice", "--action", "x", "extra"},                       // stray argument
		{"--actor", "alice", "--action", "trail.search"},                     // Trail's own action
		{"--log", "../../etc/passwd", "--actor", "alice", "--action", "x.y"}, // not a log name
		{"--log", "", "--actor", "alice", "--action", "x.y"},                 // nor is nothing
	} {
		r := run(t, "", append([]string{"append", "--data", data}, args...)...)
		if r.code != 2 || !strings.Contains(r.stderr, "trail help append") {
			t.Errorf("trail append %s: exit %d, stderr %q; want 2 and a hint", strings.Join(args, " "), r.code, r.stderr)
		}
	}
}

func TestGet(t *testing.T) {
	t.Parallel()
	data, vkey := initLog(t)
	rs := appendAll(t, data)
	id := rs[42][1]

	r := ok(t, "", "get", "--data", data, "--json", id)
	var res struct {
		Event json.RawMessage
		Proof struct {
			Seq      int64
			TreeSize int64 `json:"tree_size"`
			Hashes   []string
		}
		Checkpoint string
		Verified   bool
	}
	if err := json.Unmarshal([]byte(r.stdout), &res); err != nil {
		t.Fatalf("trail get --json = %q: %v", r.stdout, err)
	}
	if !res.Verified || res.Proof.Seq != 42 || res.Proof.TreeSize != 300 {
		t.Errorf("trail get --json: verified %v, seq %d, tree size %d; want true, 42, 300", res.Verified, res.Proof.Seq, res.Proof.TreeSize)
	}

	// Check the proof independently: the checkpoint's signature with the
	// key init printed, then the path from the event's bytes to its root.
	v, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	n, err := note.Open([]byte(res.Checkpoint), note.VerifierList(v))
	if err != nil {
		t.Fatalf("checkpoint does not open with the verifier key: %v", err)
	}
	body := strings.Split(n.Text, "\n")
	size, _ := strconv.ParseInt(body[1], 10, 64)
	rootBytes, err := base64.StdEncoding.DecodeString(body[2])
	if err != nil || len(rootBytes) != tlog.HashSize || size != res.Proof.TreeSize {
		t.Fatalf("checkpoint body %q does not match the proof", n.Text)
	}
	var proof tlog.RecordProof
	for _, h := range res.Proof.Hashes {
		b, err := base64.StdEncoding.DecodeString(h)
		if err != nil || len(b) != tlog.HashSize {
			t.Fatalf("proof hash %q: %v", h, err)
		}
		proof = append(proof, tlog.Hash(b))
	}
	if err := tlog.CheckRecord(proof, size, tlog.Hash(rootBytes), 42, tlog.RecordHash(res.Event)); err != nil {
		t.Errorf("tlog.CheckRecord: %v", err)
	}
	var ev map[string]any
	if err := json.Unmarshal(res.Event, &ev); err != nil || ev["id"] != id {
		t.Errorf("event = %s, want id %s", res.Event, id)
	}

	r = ok(t, "", "get", "--data", data, id, "--verifier-key", vkey)
	if !strings.Contains(r.stdout, "Verified") || !strings.Contains(r.stdout, `"id": "`+id+`"`) {
		t.Errorf("trail get %s = %q, want the indented event and Verified", id, r.stdout)
	}

	if r := run(t, "", "get", "--data", data, "01ARZ3NDEKTSV4RRFFQ69G5FAV"); r.code != 1 || !strings.Contains(r.stderr, "not found") {
		t.Errorf("trail get of an unknown id: exit %d, stderr %q; want 1 and not found", r.code, r.stderr)
	}
	if r := run(t, "", "get", "--data", data); r.code != 2 {
		t.Errorf("trail get without an id: exit %d, want 2", r.code)
	}

	// An id of another log of the store is found there when no --log is
	// given; with --log default, the error names the log; one of no log of
	// it (a typo in its last characters) says so.
	ok(t, "", "--data", data, "init", "--log", "other", "--origin", "example.com/trail/other")
	other := strings.Fields(lastLine(ok(t, `{"actor":{"id":"a"},"action":"x.y"}`, "append", "--data", data, "--log", "other").stdout))
	otherID := other[len(other)-1]
	if r := run(t, "", "get", "--data", data, "--json", otherID); r.code != 0 || !strings.Contains(r.stdout, `"action":"x.y"`) {
		t.Errorf("trail get of log other's event %s without --log: exit %d, stdout %q, stderr %q; want its event", otherID, r.code, r.stdout, r.stderr)
	}
	if r := run(t, "", "get", "--data", data, "--log", "default", otherID); r.code != 1 || !strings.Contains(r.stderr, `made for the log "other" (pick it with --log other)`) {
		t.Errorf("trail get of log other's event %s in log default: exit %d, stderr %q; want 1 naming log other", otherID, r.code, r.stderr)
	}
	typo := id[:25] + map[bool]string{true: "A", false: "B"}[id[25] != 'A']
	if r := run(t, "", "get", "--data", data, typo); r.code != 1 || !strings.Contains(r.stderr, "no log here made this id") {
		t.Errorf("trail get of %s, a typo of %s: exit %d, stderr %q; want 1 saying no log made it", typo, id, r.code, r.stderr)
	}
}

func TestCheckpoint(t *testing.T) {
	t.Parallel()
	data, vkey := initLog(t)
	v, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	// An empty log stores no checkpoint; trail checkpoint signs the
	// empty tree's, which verify --against then takes.
	empty := ok(t, "", "checkpoint", "--data", data).stdout
	n, err := note.Open([]byte(empty), note.VerifierList(v))
	if err != nil {
		t.Fatalf("note.Open(trail checkpoint of an empty log): %v\n%s", err, empty)
	}
	if want := "example.com/trail/test\n0\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n"; n.Text != want {
		t.Errorf("empty log's checkpoint body = %q, want %q", n.Text, want)
	}
	saved := filepath.Join(t.TempDir(), "empty.txt")
	if err := os.WriteFile(saved, []byte(empty), 0o644); err != nil {
		t.Fatal(err)
	}
	appendAll(t, data)
	r := ok(t, "", "checkpoint", "--data", data)
	n, err = note.Open([]byte(r.stdout), note.VerifierList(v))
	if err != nil {
		t.Fatalf("note.Open(trail checkpoint): %v\n%s", err, r.stdout)
	}
	if want := "example.com/trail/test\n300\n"; !strings.HasPrefix(n.Text, want) {
		t.Errorf("checkpoint body = %q, want it to begin %q", n.Text, want)
	}
	ok(t, "", "verify", "--data", data, "--verifier-key", vkey, "--against", saved)
}

func TestExport(t *testing.T) {
	t.Parallel()
	data, _ := initLog(t)
	appendAll(t, data)

	r := ok(t, "", "export", "--data", data)
	nd := lines(r.stdout)
	if len(nd) != 300 {
		t.Fatalf("trail export printed %d NDJSON lines, want 300", len(nd))
	}
	var first map[string]any
	if err := json.Unmarshal([]byte(nd[0]), &first); err != nil || first["seq"] != 0.0 {
		t.Errorf("first exported line = %s (%v), want seq 0", nd[0], err)
	}

	out := filepath.Join(t.TempDir(), "events.csv")
	ok(t, "", "export", "--data", data, "--out", out)
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatalf("export --out %s is not CSV: %v", out, err)
	}
	if len(rows) != 301 || strings.Join(rows[0], ",") != strings.Join(trail.CSVHeader, ",") {
		t.Fatalf("CSV has %d rows, header %v; want 301 and %v", len(rows), rows[0], trail.CSVHeader)
	}
	if rows[1][0] != "0" || rows[300][0] != "299" || rows[1][1] != first["id"] {
		t.Errorf("CSV rows run from seq %s to %s, want 0 to 299", rows[1][0], rows[300][0])
	}

	// Filters select what search selects.
	want := len(searchJSON(t, data, "--outcome", "failure"))
	r = ok(t, "", "export", "--data", data, "--format", "csv", "--outcome", "failure")
	if got := len(lines(r.stdout)) - 1; got != want || want == 0 {
		t.Errorf("export --outcome failure gave %d rows, search found %d", got, want)
	}
	if r := run(t, "", "export", "--data", data, "--format", "xml"); r.code != 2 {
		t.Errorf("trail export --format xml: exit %d, want 2", r.code)
	}
}

func TestVerify(t *testing.T) {
	t.Parallel()
	backends.Run(t, testVerify)
}

func testVerify(t *testing.T, b backends.Backend) {
	loc := b.New(t)
	st := storeOn(t, b, loc)
	vkey := initLogOn(t, st)
	rs := appendAllOn(t, st)
	r := ok(t, "", at(st, "verify")...)
	if !strings.Contains(r.stdout, "300 events") || !strings.Contains(r.stderr, "--verifier-key") {
		t.Errorf("trail verify: stdout %q, stderr %q; want the event count and a warning to pin the key", r.stdout, r.stderr)
	}

	// A checkpoint saved before more appends still verifies.
	cp := filepath.Join(t.TempDir(), "cp.txt")
	saved := ok(t, "", at(st, "checkpoint")...)
	if err := os.WriteFile(cp, []byte(saved.stdout), 0o600); err != nil {
		t.Fatal(err)
	}
	appendAllOn(t, st)
	r = ok(t, "", at(st, "verify", "--against", cp, "--verifier-key", vkey, "--json")...)
	var res struct {
		Verified bool
		Events   int64
		Against  struct{ Size int64 }
	}
	if err := json.Unmarshal([]byte(r.stdout), &res); err != nil || !res.Verified || res.Events != 600 || res.Against.Size != 300 {
		t.Errorf("trail verify --against --json = %q (%v); want verified, 600 events, against size 300", r.stdout, err)
	}
	if strings.Contains(r.stderr, "warning") {
		t.Errorf("trail verify --verifier-key warned: %q", r.stderr)
	}

	// Another log's key does not verify the signatures.
	other := ok(t, "", at(st, "init", "--log", "other")...)
	otherKey := verifierKeyRE.FindStringSubmatch(other.stdout)[1]
	if r := run(t, "", at(st, "verify", "--verifier-key", otherKey)...); r.code != 1 || !strings.Contains(r.stderr, "verification FAILED") {
		t.Errorf("trail verify with another log's key: exit %d, stderr %q; want 1 and FAILED", r.code, r.stderr)
	}

	tamper(t, b, loc, "default", 5, func(e *event.Event) { e.Actor.ID = "mallory" })
	r = run(t, "", at(st, "verify")...)
	if r.code != 1 || !strings.Contains(r.stderr, "verification FAILED: seq 5:") {
		t.Errorf("trail verify after altering seq 5: exit %d, stderr %q; want 1 and verification FAILED: seq 5", r.code, r.stderr)
	}
	r = run(t, "", at(st, "verify", "--json")...)
	if r.code != 1 || !strings.Contains(r.stdout, `"verified":false`) {
		t.Errorf("trail verify --json after tampering: exit %d, stdout %q", r.code, r.stdout)
	}

	// get checks the altered event against the signed root too.
	r = run(t, "", at(st, "get", rs[5][1])...)
	if r.code != 1 || !strings.Contains(r.stdout, `"id": "mallory"`) || !strings.Contains(r.stdout, "NOT VERIFIED") {
		t.Errorf("trail get of the altered event: exit %d, stdout %q; want 1 and NOT VERIFIED", r.code, r.stdout)
	}
}

func TestHelp(t *testing.T) {
	t.Parallel()
	r := ok(t, "", "--help")
	for _, c := range commands {
		if !strings.Contains(r.stdout, "  "+c.name+" ") {
			t.Errorf("trail --help does not list %s", c.name)
		}
		for _, args := range [][]string{{c.name, "--help"}, {"help", c.name}, {c.name, "-h"}} {
			r := ok(t, "", args...)
			if !strings.Contains(r.stdout, "Usage: trail "+c.name) || !strings.Contains(r.stdout, "Example:\n  trail "+c.name) {
				t.Errorf("trail %s printed no usage with an example:\n%s", strings.Join(args, " "), r.stdout)
			}
		}
	}
	for _, args := range [][]string{{}, {"frobnicate"}, {"search", "--frobnicate"}, {"help", "frobnicate"}} {
		if r := run(t, "", args...); r.code != 2 || r.stderr == "" {
			t.Errorf("trail %s: exit %d, stderr %q; want 2 and a hint", strings.Join(args, " "), r.code, r.stderr)
		}
	}
}

func TestNotATrailDirectory(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	garbage := t.TempDir()
	if err := os.WriteFile(filepath.Join(garbage, "trail.db"), []byte("not a database at all"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		data, want string
	}{
		{dir, "not a Trail data directory"},
		{filepath.Join(dir, "missing"), "not a Trail data directory"},
		{garbage, "not a Trail database"},
	} {
		for _, cmd := range []string{"search", "verify", "checkpoint", "export", "logs", "append"} {
			r := run(t, "", cmd, "--data", c.data)
			if r.code != 1 || !strings.Contains(r.stderr, c.want) {
				t.Errorf("trail %s --data %s: exit %d, stderr %q; want 1 and %q", cmd, c.data, r.code, r.stderr, c.want)
			}
		}
	}

	data, _ := initLog(t)
	if r := run(t, "", "search", "--data", data, "--log", "nope"); r.code != 1 || !strings.Contains(r.stderr, `no log "nope"`) {
		t.Errorf("trail search --log nope: exit %d, stderr %q", r.code, r.stderr)
	}
}

func TestEnvironment(t *testing.T) {
	t.Parallel()
	data, _ := initLog(t)
	ok(t, "", "init", "--data", data, "--log", "second")
	cmd := exec.Command(trailBin, "append", "--actor", "alice", "--action", "user.login")
	cmd.Env = append(os.Environ(), "TRAIL_DATA="+data, "TRAIL_LOG=second")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("trail append with TRAIL_DATA and TRAIL_LOG: %v\n%s", err, out)
	}
	if evs := searchJSON(t, data, "--log", "second"); len(evs) != 1 {
		t.Errorf("log second has %d events, want 1", len(evs))
	}
	if evs := searchJSON(t, data); len(evs) != 0 {
		t.Errorf("log default has %d events, want 0", len(evs))
	}
	// The global flags go before the command too.
	if r := ok(t, "", "--data", data, "--log", "second", "search", "--json"); len(lines(r.stdout)) != 1 {
		t.Errorf("trail --data D --log second search = %q", r.stdout)
	}
}

// TestInitPrintsVerify: the command trail init tells auditors to run
// works as printed, for a log that is not the default one, in a data
// directory whose path needs quoting.
func TestInitPrintsVerify(t *testing.T) {
	t.Parallel()
	data := filepath.Join(t.TempDir(), "audit data")
	r := ok(t, "", "init", "--data", data, "--log", "app")
	_, cmd, found := strings.Cut(r.stdout, "they check the log with\n  trail ")
	if !found {
		t.Fatalf("trail init printed no verify command:\n%s", r.stdout)
	}
	cmd, _, _ = strings.Cut(cmd, "\n")
	want := fmt.Sprintf("verify --data '%s' --log app --verifier-key ", data)
	if !strings.HasPrefix(cmd, want) {
		t.Fatalf("trail init prints %q, want it to start %q", cmd, want)
	}
	vkey := strings.TrimPrefix(cmd, want)
	if r := run(t, "", "verify", "--data", data, "--log", "app", "--verifier-key", vkey); r.code != 0 {
		t.Errorf("the printed command exited %d: %s", r.code, r.stderr)
	}
}

// TestInitKilled kills trail init at moments spread over its run: a run
// of init on the same directory afterwards must make, or find, a data
// directory every command takes, never one they all refuse.
func TestInitKilled(t *testing.T) {
	for i := range 24 {
		dir := filepath.Join(t.TempDir(), "data")
		cmd := exec.Command(trailBin, "init", "--data", dir)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(i) * 3 * time.Millisecond)
		cmd.Process.Kill()
		cmd.Wait()
		if r := run(t, "", "init", "--data", dir); r.code != 0 && !strings.Contains(r.stderr, "already") {
			t.Fatalf("after init was killed at %d ms: init again = exit %d: %s", i*3, r.code, r.stderr)
		}
		if r := run(t, "", "keys", "create", "--data", dir, "--log", "default", "--scope", "read"); r.code != 0 {
			t.Fatalf("after init was killed at %d ms: keys create = exit %d: %s", i*3, r.code, r.stderr)
		}
		ok(t, "", "verify", "--data", dir)
		if stale, _ := filepath.Glob(filepath.Join(dir, "*.init-*")); len(stale) > 0 {
			t.Errorf("after init was killed at %d ms and run again, %v are left", i*3, stale)
		}
	}
}

// Help shows the defaults it takes from the environment without the
// store's password or the API key.
func TestHelpHidesSecretsFromEnv(t *testing.T) {
	for _, args := range [][]string{{"help", "serve"}, {"help", "search"}, {"serve", "--help"}, {"keys", "--help"}} {
		cmd := exec.Command(trailBin, args...)
		for _, kv := range os.Environ() {
			if !strings.HasPrefix(kv, "TRAIL_") {
				cmd.Env = append(cmd.Env, kv)
			}
		}
		cmd.Env = append(cmd.Env, "TRAIL_STORE=postgres://trail:S3cretPw@127.0.0.1:5432/trail", "TRAIL_KEY=trail_s3cretkey")
		r := runCmd(t, cmd)
		out := r.stdout + r.stderr
		if strings.Contains(out, "S3cretPw") || strings.Contains(out, "s3cretkey") {
			t.Errorf("trail %s shows a secret from the environment:\n%s", strings.Join(args, " "), out)
		}
		if !strings.Contains(out, "trail:xxxxx@127.0.0.1") {
			t.Errorf("trail %s does not show the store's default without its password:\n%s", strings.Join(args, " "), out)
		}
	}
}

// runToFull runs trail with args, stdin and its stdout on /dev/full, as
// on a full disk, and returns its stderr and error; it skips t where
// there is no /dev/full.
func runToFull(t *testing.T, stdin string, args ...string) (string, error) {
	t.Helper()
	full, err := os.OpenFile("/dev/full", os.O_WRONLY, 0)
	if err != nil {
		t.Skipf("no /dev/full here: %v", err)
	}
	defer full.Close()
	cmd := exec.Command(trailBin, args...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	cmd.Stdin = strings.NewReader(stdin)
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = full, &stderr
	err = cmd.Run()
	return stderr.String(), err
}

// An append whose receipts cannot be written says which lines are stored
// all the same, so that they are not appended again.
func TestAppendReceiptsUnwritable(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	ok(t, "", "--data", data, "init", "--log", "acme")
	stderr, err := runToFull(t, events(t), "--data", data, "--log", "acme", "append")
	if err == nil || !strings.Contains(stderr, "are stored (seq 0-") {
		t.Errorf("append with receipts to /dev/full = %v, %q; want a failure saying which lines are stored", err, stderr)
	}
}

// verify whose verdict cannot be written fails: silence is no pass.
func TestVerifyResultUnwritable(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	ok(t, "", "--data", data, "init", "--log", "acme")
	ok(t, events(t), "--data", data, "--log", "acme", "append")
	if stderr, err := runToFull(t, "", "--data", data, "--log", "acme", "verify"); err == nil || !strings.Contains(stderr, "write the result") {
		t.Errorf("verify with its output to /dev/full = %v, %q; want a failure", err, stderr)
	}
}

// rekey on a data directory says what it is for before it asks for keys,
// and makes no key file.
func TestRekeyDataDirectory(t *testing.T) {
	t.Parallel()
	data, _ := initLog(t)
	newKey := filepath.Join(t.TempDir(), "new.key")
	for _, args := range [][]string{
		{"rekey", "--data", data, "--new-master-key-file", newKey},
		{"rekey", "--data", data},
	} {
		if r := run(t, "", args...); r.code != 2 || !strings.Contains(r.stderr, "rekey is for a PostgreSQL store") {
			t.Errorf("trail %s: exit %d, stderr %q; want 2 saying rekey is for PostgreSQL", strings.Join(args, " "), r.code, r.stderr)
		}
	}
	if _, err := os.Stat(newKey); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("after trail rekey on a data directory, %s: %v; want it not made", newKey, err)
	}
}
