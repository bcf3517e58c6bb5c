package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// get of an argument that is not an event id is a usage error that points
// to --seq; --seq N gets the event at seq N, locally and from a server.
func TestGetSeq(t *testing.T) {
	t.Parallel()
	data, vkey := initLog(t)
	rs := appendAll(t, data)

	for _, arg := range []string{"2", "user.login", "01KAXY2D8M"} {
		r := run(t, "", "--data", data, "get", arg)
		if r.code != 2 || !strings.Contains(r.stderr, "not an event id") || !strings.Contains(r.stderr, "--seq") {
			t.Errorf("trail get %s: exit %d, stderr %q; want 2, not an event id, and the --seq hint", arg, r.code, r.stderr)
		}
	}
	if r := run(t, "", "--data", data, "get", "2"); !strings.Contains(r.stderr, "trail get --seq 2") {
		t.Errorf("trail get 2: stderr %q, want the command to get seq 2", r.stderr)
	}
	if r := run(t, "", "--data", data, "get", "--seq", "2", rs[2][1]); r.code != 2 {
		t.Errorf("trail get --seq 2 ID: exit %d, want 2", r.code)
	}
	for _, bad := range []string{"-1", "two"} {
		if r := run(t, "", "--data", data, "get", "--seq", bad); r.code != 2 {
			t.Errorf("trail get --seq %s: exit %d, want 2", bad, r.code)
		}
	}

	key := lastLine(ok(t, "", "--data", data, "keys", "create", "--log", "default", "--scope", "read").stdout)
	s := serve(t, data, "--rate-limit", "0")
	defer s.stop(t)
	for _, where := range []struct {
		name string
		args []string
	}{
		{"local", []string{"--data", data, "get", "--json"}},
		{"remote", []string{"--server", s.url, "--key", key, "get", "--json", "--verifier-key", vkey}},
	} {
		for _, seq := range []int{0, 2, 299} {
			r := ok(t, "", append(where.args, "--seq", strconv.Itoa(seq))...)
			var res struct {
				Event    struct{ ID string }
				Proof    struct{ Seq int64 }
				Verified bool
			}
			if err := json.Unmarshal([]byte(r.stdout), &res); err != nil || !res.Verified || res.Event.ID != rs[seq][1] || res.Proof.Seq != int64(seq) {
				t.Errorf("%s trail get --seq %d = %q (%v); want event %s, verified", where.name, seq, r.stdout, err, rs[seq][1])
			}
		}
		// The server's log grows by its own audit records of the reads
		// above; no log here reaches seq 100000.
		r := run(t, "", append(where.args, "--seq", "100000")...)
		if r.code != 1 || !strings.Contains(r.stderr, "no event at seq 100000") {
			t.Errorf("%s trail get --seq past the end: exit %d, stderr %q; want 1 and no event at seq 100000", where.name, r.code, r.stderr)
		}
	}
	// The same hint against a server.
	if r := run(t, "", "--server", s.url, "--key", key, "get", "2", "--verifier-key", vkey); r.code != 2 || !strings.Contains(r.stderr, "--seq 2") {
		t.Errorf("remote trail get 2: exit %d, stderr %q; want 2 and the --seq hint", r.code, r.stderr)
	}
}

// get of an id with no --log reads the event from the log the id names,
// in a store whose logs are not "default"; a --log that names another log
// still says which log made the id.
func TestGetFindsTheLog(t *testing.T) {
	t.Parallel()
	data := filepath.Join(t.TempDir(), "data")
	ids := map[string]string{}
	for _, name := range []string{"acme", "globex"} {
		ok(t, "", "init", "--data", data, "--log", name)
		r := ok(t, `{"actor":{"id":"u-`+name+`"},"action":"user.login"}`+"\n", "append", "--data", data, "--log", name, "--json")
		var rec struct{ ID string }
		if err := json.Unmarshal([]byte(lastLine(r.stdout)), &rec); err != nil || rec.ID == "" {
			t.Fatalf("trail append --json = %q: %v", r.stdout, err)
		}
		ids[name] = rec.ID
	}
	for name, id := range ids {
		proof := filepath.Join(t.TempDir(), "receipt.txt")
		r := ok(t, "", "get", "--data", data, "--json", "--proof-file", proof, id)
		if !strings.Contains(r.stdout, `"u-`+name+`"`) {
			t.Errorf("trail get %s (log %s) = %q, want its event", id, name, r.stdout)
		}
		if _, err := os.Stat(proof); err != nil {
			t.Errorf("trail get --proof-file wrote no receipt: %v", err)
		}
	}
	r := run(t, "", "get", "--data", data, "--log", "globex", ids["acme"])
	if r.code != 1 || !strings.Contains(r.stderr, `made for the log "acme"`) {
		t.Errorf("trail get --log globex ID-of-acme: exit %d, stderr %q; want 1, naming log acme", r.code, r.stderr)
	}
}
