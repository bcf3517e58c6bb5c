package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// trail demo (mentioned in the Quick start) creates the data directory, appends
// events, and a second run appends more to the same log, which still
// verifies.
func TestDemo(t *testing.T) {
	data := filepath.Join(t.TempDir(), "trail-data")
	r := ok(t, nil, "--data", data, "demo", "--events", "400")
	for _, want := range []string{"Appended 400 events", "seq 0 to 399", "user.login.failed", `Log "demo" verified: 400 events`} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("trail demo output lacks %q:\n%s", want, r.stdout)
		}
	}
	r = ok(t, nil, "--data", data, "demo", "--events", "100")
	if !strings.Contains(r.stdout, "seq 400 to 499") || !strings.Contains(r.stdout, "verified: 500 events") {
		t.Errorf("second trail demo did not append to the same log:\n%s", r.stdout)
	}
	// The demo log has the failed logins from guessing addresses that the
	// demo promises.
	r = ok(t, nil, "--data", data, "--log", "demo", "search", "--action", "user.login.failed", "--outcome", "failure", "--limit", "1000", "--json")
	fromAttackers := 0
	for _, line := range lines(r.stdout) {
		var e struct {
			Source struct{ IP string } `json:"source"`
		}
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("search --json line %q: %v", line, err)
		}
		if strings.HasPrefix(e.Source.IP, "203.0.113.") || strings.HasPrefix(e.Source.IP, "198.51.100.") {
			fromAttackers++
		}
	}
	if fromAttackers == 0 {
		t.Errorf("demo log has no failed logins from the guessing addresses")
	}
	if r := run(t, nil, "--data", data, "demo", "--events", "0"); r.code != 2 {
		t.Errorf("trail demo --events 0: exit status %d, want 2", r.code)
	}
}

// The demo searches and verifies what it wrote, whatever server
// $TRAIL_SERVER names, and the commands it shows name its data directory.
func TestDemoIgnoresServerEnv(t *testing.T) {
	data := filepath.Join(t.TempDir(), "demo data")
	cmd := exec.Command(trailBin, "demo", "--data", data, "--events", "40")
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "TRAIL_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, "TRAIL_SERVER=http://127.0.0.1:1", "TRAIL_KEY=trail_none")
	r := runCmd(t, cmd)
	if r.code != 0 || !strings.Contains(r.stdout, `Log "demo" verified`) {
		t.Fatalf("demo with $TRAIL_SERVER set: exit %d, %q, %q; want it to verify its own log", r.code, r.stdout, r.stderr)
	}
	if !strings.Contains(r.stdout, "Try: trail --data '"+data+"' search") {
		t.Errorf("demo's hints do not name its data directory:\n%s", r.stdout)
	}
}
