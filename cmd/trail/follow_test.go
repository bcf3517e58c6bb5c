package main

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// eventually runs trail with args until its stdout holds want, failing t
// if it has not within 2 seconds.
func eventually(t *testing.T, want string, args ...string) {
	t.Helper()
	start := time.Now()
	for {
		r := run(t, "", args...)
		if r.code == 0 && strings.Contains(r.stdout, want) {
			t.Logf("found %s after %v", want, time.Since(start).Round(time.Millisecond))
			return
		}
		if time.Since(start) > 2*time.Second {
			t.Fatalf("trail %s: not %s within 2 s; exit %d, stdout:\n%s\nstderr:\n%s", strings.Join(args, " "), want, r.code, r.stdout, r.stderr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// What trail append stores beside a running trail serve, the server
// serves within 2 seconds, with nothing appended through it: trail logs,
// search and get with --server show it. So does a log that trail keys
// create makes meanwhile, and its events.
func TestServeSeesCommandLineAppends(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	key := lastLine(ok(t, "", "--data", data, "keys", "create", "--log", "acme", "--scope", "read").stdout)
	s := serve(t, data)
	defer s.stop(t)
	remote := []string{"--server", s.url, "--key", key}
	// The server has the log open, its size in memory.
	ok(t, "", append(remote, "search", "--json")...)

	var rc struct {
		ID  string
		Seq int64
	}
	out := ok(t, `{"actor":{"id":"cli-ana"},"action":"user.login"}`+"\n", "--data", data, "--log", "acme", "append", "--json").stdout
	if err := json.Unmarshal([]byte(lastLine(out)), &rc); err != nil || rc.ID == "" {
		t.Fatalf("trail append --json printed %q (%v), want a receipt", out, err)
	}
	// Reads of the log's public facts append no audit event, which
	// would make the server notice.
	eventually(t, fmt.Sprintf(`"size":%d`, rc.Seq+1), append(remote, "logs", "--json")...)
	eventually(t, rc.ID, append(remote, "search", "--actor", "cli-ana", "--json")...)
	var vkey string
	for _, line := range lines(ok(t, "", "--data", data, "logs", "--json").stdout) {
		var l struct{ Name, Verifier_Key string }
		if err := json.Unmarshal([]byte(line), &l); err != nil {
			t.Fatal(err)
		}
		if l.Name == "acme" {
			vkey = l.Verifier_Key
		}
	}
	eventually(t, "cli-ana", append(remote, "get", rc.ID, "--verifier-key", vkey)...)

	newKey := lastLine(ok(t, "", "--data", data, "keys", "create", "--log", "newlog", "--create-log", "--scope", "read").stdout)
	out = ok(t, `{"actor":{"id":"cli-bo"},"action":"user.logout"}`+"\n", "--data", data, "--log", "newlog", "append", "--json").stdout
	if err := json.Unmarshal([]byte(lastLine(out)), &rc); err != nil || rc.ID == "" {
		t.Fatalf("trail append --json printed %q (%v), want a receipt", out, err)
	}
	eventually(t, rc.ID, "--server", s.url, "--key", newKey, "search", "--actor", "cli-bo", "--json")
}
