package main

import (
	"errors"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/trail-audit/trail"
)

// storeFlags parses a command line's global flags, then a command's, as
// Main and the commands do, with vars as the environment, and returns the
// store they name.
func storeFlags(vars map[string]string, global, cmd []string) (trail.StoreURL, error) {
	e := &env{getenv: func(k string) string { return vars[k] }}
	var g dbFlags
	fs := flag.NewFlagSet("trail", flag.ContinueOnError)
	g.register(fs, dbFlags{
		data: envOr(e, "TRAIL_DATA", "./trail-data"), store: envOr(e, "TRAIL_STORE", ""),
		dataEnv: e.getenv("TRAIL_DATA") != "",
	})
	if err := fs.Parse(global); err != nil {
		return trail.StoreURL{}, err
	}
	d := g
	fs = flag.NewFlagSet("logs", flag.ContinueOnError)
	d.register(fs, d)
	if err := fs.Parse(cmd); err != nil {
		return trail.StoreURL{}, err
	}
	return d.storeURL()
}

func TestStoreURLFromFlags(t *testing.T) {
	sqlite := func(dir string) trail.StoreURL { return trail.StoreURL{Scheme: "sqlite", Dir: dir} }
	abs, err := filepath.Abs("d")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name        string
		env         map[string]string
		global, cmd []string
		want        trail.StoreURL
		wantErr     []string // what the usage error names; nil for none
	}{
		{name: "default", want: sqlite("./trail-data")},
		{name: "--data", global: []string{"--data", "d"}, want: sqlite("d")},
		{name: "--data after the command", cmd: []string{"--data", "d"}, want: sqlite("d")},
		{name: "--store", global: []string{"--store", "sqlite:d"}, want: sqlite("d")},
		{name: "--store after the command", cmd: []string{"--store", "sqlite:///var/lib/trail"}, want: sqlite("/var/lib/trail")},
		{name: "$TRAIL_DATA", env: map[string]string{"TRAIL_DATA": "d"}, want: sqlite("d")},
		{name: "$TRAIL_STORE", env: map[string]string{"TRAIL_STORE": "sqlite:d"}, want: sqlite("d")},
		{name: "--data and --store the same", global: []string{"--data", "d"}, cmd: []string{"--store", "sqlite:" + abs}, want: sqlite(abs)},
		{name: "$TRAIL_DATA and $TRAIL_STORE the same", env: map[string]string{"TRAIL_DATA": "./d", "TRAIL_STORE": "sqlite:d"}, want: sqlite("d")},
		{name: "--data over $TRAIL_STORE", env: map[string]string{"TRAIL_STORE": "sqlite:e"}, global: []string{"--data", "d"}, want: sqlite("d")},
		{name: "--store over $TRAIL_DATA", env: map[string]string{"TRAIL_DATA": "e"}, cmd: []string{"--store", "sqlite:d"}, want: sqlite("d")},

		{name: "--data and --store differ", global: []string{"--data", "d"}, cmd: []string{"--store", "sqlite:e"}, wantErr: []string{"--store sqlite:e", "--data d", "different stores"}},
		{name: "$TRAIL_DATA and $TRAIL_STORE differ", env: map[string]string{"TRAIL_DATA": "d", "TRAIL_STORE": "sqlite:e"}, wantErr: []string{"$TRAIL_STORE sqlite:e", "$TRAIL_DATA d"}},
		{name: "--store of a PostgreSQL database", global: []string{"--store", "postgres://u:pw@db.example.com/trail"}, want: trail.StoreURL{Scheme: "postgres", URL: "postgres://u:pw@db.example.com/trail"}},
		{name: "--store of a PostgreSQL server without a database", global: []string{"--store", "postgres://u:pw@db.example.com"}, wantErr: []string{"--store", "names no database"}},
		{name: "--data and --store of a PostgreSQL database", global: []string{"--data", "d"}, cmd: []string{"--store", "postgres://db.example.com/trail"}, wantErr: []string{"different stores"}},
		{name: "--data and --store of a PostgreSQL database with passwords", global: []string{"--data", "d"}, cmd: []string{"--store", "postgres://u:hunter2@db.example.com/trail?password=hunter2"}, wantErr: []string{"different stores", "u:xxxxx@", "password=xxxxx"}},
		{name: "$TRAIL_DATA and a $TRAIL_STORE with a password", env: map[string]string{"TRAIL_DATA": "d", "TRAIL_STORE": "postgres://u:hunter2@db.example.com/trail"}, wantErr: []string{"different stores", "u:xxxxx@"}},
		{name: "--store of an unknown scheme", global: []string{"--store", "mongodb://db.example.com/trail"}, wantErr: []string{"--store", `no "mongodb" store`, "supports postgres://", "sqlite:"}},
		{name: "$TRAIL_STORE of an unknown scheme", env: map[string]string{"TRAIL_STORE": "mysql://x"}, wantErr: []string{"$TRAIL_STORE", `no "mysql" store`}},
		{name: "--store without a scheme", global: []string{"--store", "./d"}, wantErr: []string{"--store", "no scheme", "sqlite:./d"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := storeFlags(tc.env, tc.global, tc.cmd)
			if tc.wantErr == nil {
				if err != nil || got != tc.want {
					t.Fatalf("store of %v %v with %v = %+v, %v; want %+v", tc.global, tc.cmd, tc.env, got, err, tc.want)
				}
				return
			}
			if ue := (*usageError)(nil); !errors.As(err, &ue) {
				t.Fatalf("store of %v %v with %v = %+v, %v; want a usage error", tc.global, tc.cmd, tc.env, got, err)
			}
			for _, w := range tc.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("error %q shows the password", err)
			}
		})
	}
}

// trailEnv runs trail with args and the environment env added to this
// process's, less its own TRAIL_ variables.
func trailEnv(t *testing.T, env []string, args ...string) result {
	t.Helper()
	cmd := exec.Command(trailBin, args...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "TRAIL_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, env...)
	return runCmd(t, cmd)
}

// The commands open the store that --store or $TRAIL_STORE names, the
// same data directory as --data; conflicting or unknown stores are usage
// errors (exit 2) saying why.
func TestStoreFlag(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "data")
	ok(t, "", "--store", "sqlite:"+dir, "init", "--origin", "example.com/trail/test")
	if _, err := os.Stat(filepath.Join(dir, trail.DatabaseFile)); err != nil {
		t.Fatalf("trail --store sqlite:DIR init made no database in DIR: %v", err)
	}
	ok(t, "", "init", "--store", "sqlite:"+dir, "--log", "second")
	ok(t, events(t), "append", "--store", "sqlite:"+dir)
	if evs := searchJSON(t, dir); len(evs) == 0 {
		t.Fatal("events appended through --store are not in --data's log")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"--store", "sqlite:" + dir, "logs"},
		{"logs", "--store", "sqlite://" + abs},
		{"--data", dir, "logs", "--store", "sqlite:" + abs},
	} {
		r := ok(t, "", args...)
		if !strings.Contains(r.stdout, "default") || !strings.Contains(r.stdout, "second") {
			t.Errorf("trail %s lists %q, want both logs", strings.Join(args, " "), r.stdout)
		}
	}
	for _, args := range [][]string{
		{"search", "--limit", "1"}, {"verify"}, {"verify", "--index"}, {"checkpoint"}, {"export"},
		{"keys", "create", "--scope", "read", "--name", "auditor"}, {"keys", "list"},
	} {
		ok(t, "", append(args, "--store", "sqlite:"+dir)...)
	}
	if r := ok(t, "", "keys", "list", "--data", dir); !strings.Contains(r.stdout, "auditor") {
		t.Errorf("trail keys list --data DIR = %q, want the key created with --store", r.stdout)
	}
	r := trailEnv(t, []string{"TRAIL_STORE=sqlite:" + dir}, "logs")
	if r.code != 0 || !strings.Contains(r.stdout, "second") {
		t.Errorf("trail logs with TRAIL_STORE=sqlite:DIR: exit %d, stdout %q, stderr %q; want DIR's logs", r.code, r.stdout, r.stderr)
	}
	r = trailEnv(t, []string{"TRAIL_STORE=sqlite:" + dir}, "search", "--json", "--limit", "1")
	if r.code != 0 || len(lines(r.stdout)) != 1 {
		t.Errorf("trail search with TRAIL_STORE=sqlite:DIR: exit %d, stdout %q, stderr %q; want one event", r.code, r.stdout, r.stderr)
	}

	other := t.TempDir()
	for _, tc := range []struct {
		env  []string
		args []string
		want []string
	}{
		{nil, []string{"--data", other, "logs", "--store", "sqlite:" + dir}, []string{"--store sqlite:" + dir, "--data " + other, "different stores"}},
		{nil, []string{"--store", "sqlite:" + dir, "--data", other, "search"}, []string{"--store", "--data", "different stores"}},
		{[]string{"TRAIL_STORE=sqlite:" + dir, "TRAIL_DATA=" + other}, []string{"logs"}, []string{"$TRAIL_STORE", "$TRAIL_DATA"}},
		{nil, []string{"--store", "mongodb://trail:pw@db.example.com/trail", "logs"}, []string{`no "mongodb" store`, "supports postgres://", "sqlite:"}},
		{nil, []string{"--store", "postgres://trail:pw@db.example.com", "logs"}, []string{"--store", "names no database"}},
		{[]string{"TRAIL_STORE=mysql://db.example.com/trail"}, []string{"serve"}, []string{"$TRAIL_STORE", `no "mysql" store`}},
		{nil, []string{"--store", dir, "logs"}, []string{"no scheme", "sqlite:" + dir}},
	} {
		r := trailEnv(t, tc.env, tc.args...)
		if r.code != 2 {
			t.Errorf("trail %s with %v: exit %d, stderr %q; want 2", strings.Join(tc.args, " "), tc.env, r.code, r.stderr)
		}
		for _, w := range tc.want {
			if !strings.Contains(r.stderr, w) {
				t.Errorf("trail %s with %v: stderr %q does not say %q", strings.Join(tc.args, " "), tc.env, r.stderr, w)
			}
		}
		if strings.Contains(r.stderr, ":pw@") {
			t.Errorf("trail %s: stderr %q shows the password", strings.Join(tc.args, " "), r.stderr)
		}
	}
	// The command line goes before the environment.
	r = trailEnv(t, []string{"TRAIL_STORE=sqlite:" + other}, "logs", "--data", dir)
	if r.code != 0 || !strings.Contains(r.stdout, "second") {
		t.Errorf("trail logs --data DIR with TRAIL_STORE naming another: exit %d, stdout %q, stderr %q; want DIR's logs", r.code, r.stdout, r.stderr)
	}
	if entries, _ := os.ReadDir(other); len(entries) != 0 {
		t.Errorf("the refused commands made %d entries in the other directory", len(entries))
	}
}
