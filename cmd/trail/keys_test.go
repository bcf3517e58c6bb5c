package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// logNames returns the names of the logs of data.
func logNames(t *testing.T, data string) []string {
	t.Helper()
	var names []string
	for _, line := range lines(ok(t, "", "--data", data, "logs", "--json").stdout) {
		var l struct{ Name string }
		if err := json.Unmarshal([]byte(line), &l); err != nil {
			t.Fatalf("trail logs --json printed %q: %v", line, err)
		}
		names = append(names, l.Name)
	}
	return names
}

// keys create refuses a log the data directory does not hold, unless
// --create-log says to make it; a new data directory gets its first log.
func TestKeysCreateUnknownLog(t *testing.T) {
	t.Parallel()
	fresh := filepath.Join(t.TempDir(), "fresh")
	r := ok(t, "", "--data", fresh, "keys", "create", "--log", "acme", "--scope", "read")
	if got := logNames(t, fresh); !slices.Equal(got, []string{"acme"}) {
		t.Errorf("keys create in a new data directory made logs %v, want [acme]", got)
	}
	// It says it made the log, with its verifier key; the API key stays
	// on the last line.
	vkey := strings.Fields(lastLine(ok(t, "", "--data", fresh, "logs").stdout))[2]
	if !strings.Contains(r.stdout, `Created log "acme"`) || !strings.Contains(r.stdout, "  "+vkey+"\n") || !strings.HasPrefix(lastLine(r.stdout), "trail_") {
		t.Errorf("keys create of a new log printed\n%s\nwant it to name the log and its verifier key %s, and the key last", r.stdout, vkey)
	}
	if r := ok(t, "", "--data", fresh, "keys", "create", "--log", "acme", "--scope", "read"); strings.Contains(r.stdout, "Created log") {
		t.Errorf("keys create of an existing log printed\n%s\nwant no Created log", r.stdout)
	}

	data := filepath.Join(t.TempDir(), "data")
	ok(t, "", "--data", data, "init", "--log", "acme")
	ok(t, "", "--data", data, "init", "--log", "billing")
	for _, c := range []struct {
		args []string
		env  []string
	}{
		{args: []string{"--data", data, "keys", "create", "--log", "acmee", "--scope", "read"}},
		{args: []string{"--data", data, "--log", "acmee", "keys", "create", "--scope", "read"}},
		{args: []string{"--data", data, "keys", "create", "--scope", "read"}, env: []string{"TRAIL_LOG=acmee"}},
		{args: []string{"--data", data, "keys", "create", "--scope", "read"}}, // the default log, "default"
	} {
		r := runWith(t, c.env, c.args...)
		if r.code != 2 || !strings.Contains(r.stderr, "acme, billing") || !strings.Contains(r.stderr, "--create-log") || r.stdout != "" {
			t.Errorf("%s trail %s: exit %d, stdout %q, stderr %q; want 2, the logs and the --create-log hint",
				strings.Join(c.env, " "), strings.Join(c.args, " "), r.code, r.stdout, r.stderr)
		}
	}
	if got := logNames(t, data); !slices.Equal(got, []string{"acme", "billing"}) {
		t.Errorf("after refused keys create, the logs are %v, want [acme billing]", got)
	}
	if _, err := os.Stat(filepath.Join(data, "keys", "acmee.key")); err == nil {
		t.Errorf("a refused keys create made a signing key for acmee")
	}

	ok(t, "", "--data", data, "keys", "create", "--log", "acme", "--scope", "read")
	ok(t, "", "--data", data, "keys", "create", "--log", "acme", "--create-log", "--scope", "read")
	ok(t, "", "--data", data, "keys", "create", "--log", "audit", "--create-log", "--scope", "read")
	if got := logNames(t, data); !slices.Equal(got, []string{"acme", "audit", "billing"}) {
		t.Errorf("after keys create --create-log, the logs are %v, want [acme audit billing]", got)
	}
}

// keys list --log NAME lists that log's keys; without --log on the
// command line it lists every key, whatever $TRAIL_LOG says.
func TestKeysListLog(t *testing.T) {
	t.Parallel()
	data := filepath.Join(t.TempDir(), "data")
	id := func(r result) string { return strings.Split(lastLine(r.stdout), "_")[1] }
	acme := []string{
		id(ok(t, "", "--data", data, "keys", "create", "--log", "acme", "--scope", "read")),
		id(ok(t, "", "--data", data, "keys", "create", "--log", "acme", "--scope", "append")),
	}
	ok(t, "", "--data", data, "init", "--log", "billing")
	billing := id(ok(t, "", "--data", data, "keys", "create", "--log", "billing", "--scope", "read"))
	ok(t, "", "--data", data, "init", "--log", "empty")

	listed := func(r result) []string {
		var ids []string
		for _, line := range lines(r.stdout) {
			if f := strings.Fields(line); len(f) > 0 && f[0] != "ID" {
				ids = append(ids, f[0])
			}
		}
		slices.Sort(ids)
		return ids
	}
	all := append([]string{billing}, acme...)
	slices.Sort(all)
	slices.Sort(acme)
	for _, c := range []struct {
		args []string
		env  []string
		want []string
	}{
		{args: []string{"--data", data, "keys", "list"}, want: all},
		{args: []string{"--data", data, "keys", "list"}, env: []string{"TRAIL_LOG=billing"}, want: all},
		{args: []string{"--data", data, "keys", "list", "--log", "acme"}, want: acme},
		{args: []string{"--data", data, "--log", "billing", "keys", "list"}, want: []string{billing}},
		{args: []string{"--data", data, "keys", "list", "--log", "billing"}, env: []string{"TRAIL_LOG=acme"}, want: []string{billing}},
	} {
		r := runWith(t, c.env, c.args...)
		if got := listed(r); r.code != 0 || !slices.Equal(got, c.want) {
			t.Errorf("%s trail %s: exit %d, listed %v, stderr %q; want %v", strings.Join(c.env, " "), strings.Join(c.args, " "), r.code, got, r.stderr, c.want)
		}
	}
	r := ok(t, "", "--data", data, "keys", "list", "--log", "billing", "--json")
	if l := lines(r.stdout); len(l) != 1 || !strings.Contains(l[0], `"`+billing+`"`) {
		t.Errorf("keys list --log billing --json = %q, want billing's one key", r.stdout)
	}
	r = ok(t, "", "--data", data, "keys", "list", "--log", "empty")
	if r.stdout != "" || !strings.Contains(r.stderr, "no API keys") {
		t.Errorf("keys list --log of a log without keys: stdout %q, stderr %q; want nothing listed and a note", r.stdout, r.stderr)
	}
	r = run(t, "", "--data", data, "keys", "list", "--log", "acmee")
	if r.code != 1 || !strings.Contains(r.stderr, `no log "acmee"`) || !strings.Contains(r.stderr, "acme, billing, empty") {
		t.Errorf("keys list --log of an unknown log: exit %d, stderr %q; want 1 and the logs", r.code, r.stderr)
	}
}

// keys create takes --scope repeated as it takes a comma-separated list:
// the key gets every scope named, not only the last one.
func TestKeysCreateScopes(t *testing.T) {
	t.Parallel()
	data := filepath.Join(t.TempDir(), "data")
	for _, args := range [][]string{
		{"--scope", "append", "--scope", "read"},
		{"--scope", "append,read"},
		{"--scope", "read", "--scope", "append,read"},
	} {
		r := ok(t, "", append([]string{"--data", data, "keys", "create", "--log", "acme", "--create-log"}, args...)...)
		_, after, _ := strings.Cut(r.stdout, "with scopes ")
		list, _, _ := strings.Cut(after, ".")
		got := strings.Split(list, ",")
		slices.Sort(got)
		if !slices.Equal(got, []string{"append", "read"}) {
			t.Errorf("keys create %s: stdout %q, want a key with scopes append and read, once each", strings.Join(args, " "), r.stdout)
		}
	}
}
