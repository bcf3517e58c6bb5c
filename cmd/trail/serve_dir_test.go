package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// serveRefused runs trail serve with args, which should fail at start: it
// returns the exit status and stderr, and fails the test if the server is
// still running after 20 seconds (it is stopped then).
func serveRefused(t *testing.T, args ...string) (int, string) {
	t.Helper()
	cmd := exec.Command(trailBin, append([]string{"serve", "--addr", "127.0.0.1:0"}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	timer := time.AfterFunc(20*time.Second, func() { cmd.Process.Kill() })
	err := cmd.Wait()
	if !timer.Stop() {
		t.Errorf("trail serve %s was still running after 20 s; stderr:\n%s", strings.Join(args, " "), stderr.String())
		return -1, stderr.String()
	}
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatal(err)
	}
	return cmd.ProcessState.ExitCode(), stderr.String()
}

// After the data directory is removed under a running trail serve, appends
// get 503 saying so, and /readyz too; serve started again does not make a
// new, empty directory, but says to run trail init.
func TestServeDataDirRemoved(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	key := lastLine(ok(t, "", "--data", data, "keys", "create", "--log", "acme", "--scope", "append,read").stdout)
	s := serve(t, data)
	body := `{"actor":{"id":"alice"},"action":"user.login"}`
	if code, b, err := request(t, "POST", s.url+"/v1/events", key, body); err != nil || code != 201 {
		t.Fatalf("POST /v1/events = %d %s %v, want 201", code, b, err)
	}
	if err := os.RemoveAll(data); err != nil {
		t.Fatal(err)
	}
	for _, req := range []struct{ method, path string }{
		{"POST", "/v1/events"},
		{"POST", "/v1/events"},
		{"GET", "/readyz"},
	} {
		code, b, err := request(t, req.method, s.url+req.path, key, body)
		if err != nil || code != 503 || !strings.Contains(string(b), "removed or replaced") {
			t.Errorf("%s %s after rm -rf of the data directory = %d %s %v; want 503 saying it was removed or replaced", req.method, req.path, code, b, err)
		}
	}
	s.stop(t)

	if code, stderr := serveRefused(t, "--data", data); code != 1 || !strings.Contains(stderr, "trail init") {
		t.Errorf("trail serve on a missing data directory: exit %d, stderr %q; want 1 saying to run trail init", code, stderr)
	}
	if _, err := os.Stat(data); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("trail serve on a missing data directory made it (stat: %v)", err)
	}
}

// A second trail serve on a directory in use is refused, naming the
// first; trail append, keys and the readers work beside it, and the
// server's own appends after theirs succeed.
func TestServeOnePerDirectory(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	key := lastLine(ok(t, "", "--data", data, "keys", "create", "--log", "acme", "--scope", "append,read").stdout)
	s := serve(t, data)

	code, stderr := serveRefused(t, "--data", data)
	if pid := fmt.Sprintf("process %d", s.cmd.Process.Pid); code != 1 || !strings.Contains(stderr, pid) {
		t.Errorf("a second trail serve on %s: exit %d, stderr %q; want 1 naming %s", data, code, stderr, pid)
	}

	// Each append, through the CLI or the server, lands after the one
	// before it.
	last := int64(-1)
	for i := range 3 {
		out := ok(t, fmt.Sprintf(`{"actor":{"id":"cli-%d"},"action":"user.login"}`+"\n", i), "--data", data, "--log", "acme", "append").stdout
		var seq int64
		if _, err := fmt.Sscanf(out, "%d\t", &seq); err != nil || seq <= last {
			t.Fatalf("trail append beside the server printed %q, want a seq past %d", out, last)
		}
		last = seq
		body := fmt.Sprintf(`{"events":[{"actor":{"id":"srv-%d"},"action":"user.login"},{"actor":{"id":"srv-%d"},"action":"user.logout"}]}`, i, i)
		code, b, err := request(t, "POST", s.url+"/v1/events", key, body)
		var rs struct{ Events []struct{ Seq int64 } }
		if err != nil || code != 201 || json.Unmarshal(b, &rs) != nil || len(rs.Events) != 2 || rs.Events[0].Seq <= last {
			t.Fatalf("POST /v1/events after trail append = %d %s %v; want 201 with seqs past %d", code, b, err, last)
		}
		last = rs.Events[1].Seq
	}
	ok(t, "", "--data", data, "keys", "create", "--log", "acme", "--scope", "read")
	ok(t, "", "--data", data, "keys", "list")
	if out := ok(t, "", "--data", data, "--log", "acme", "search", "--action", "user.*", "--json").stdout; len(lines(out)) != 9 {
		t.Errorf("trail search beside the server found %d events, want 9:\n%s", len(lines(out)), out)
	}
	if code, b, _ := request(t, "GET", s.url+"/readyz", "", ""); code != 200 {
		t.Errorf("GET /readyz = %d %s, want 200", code, b)
	}
	s.stop(t)

	ok(t, "", "--data", data, "--log", "acme", "verify")
	s = serve(t, data) // the lock went with the process
	s.stop(t)
}
