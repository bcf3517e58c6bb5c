package main

import (
	"os/user"
	"path/filepath"
	"strings"
	"testing"
)

// trail keys create, list and revoke are recorded in the key's log as
// trail.key.* events whose actor is the operating system's user; the
// secret is in none of them.
func TestKeysAudited(t *testing.T) {
	u, err := user.Current()
	if err != nil {
		t.Skipf("no current user: %v", err)
	}
	data := filepath.Join(t.TempDir(), "data")
	key := lastLine(ok(t, "", "--data", data, "keys", "create", "--log", "acme", "--scope", "append,read", "--name", "billing").stdout)
	id := strings.Split(key, "_")[1]
	ok(t, "", "--data", data, "keys", "create", "--log", "globex", "--create-log", "--scope", "read")
	ok(t, "", "--data", data, "keys", "list", "--log", "acme")
	ok(t, "", "--data", data, "keys", "revoke", id)

	var got []string
	for _, e := range searchJSON(t, data, "--log", "acme", "--action", "trail.key.*") {
		actor := e["actor"].(map[string]any)
		line := e["action"].(string) + " by " + actor["id"].(string) + "/" + actor["type"].(string)
		if ts, _ := e["targets"].([]any); len(ts) == 1 {
			tg := ts[0].(map[string]any)
			line += " " + tg["type"].(string) + ":" + tg["id"].(string) + ":" + tg["name"].(string)
		}
		if md, ok := e["metadata"].(map[string]any); ok {
			line += " scopes " + joinStrings(md["scopes"])
		}
		got = append(got, line)
	}
	by := "cli:" + u.Username + "/user"
	want := []string{
		"trail.key.revoke by " + by + " api_key:" + id + ":billing scopes append,read",
		"trail.key.list by " + by,
		"trail.key.create by " + by + " api_key:" + id + ":billing scopes append,read",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("acme's trail.key.* events, newest first:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	export := ok(t, "", "--data", data, "--log", "acme", "export").stdout
	if strings.Contains(export, key[len(key)-48:]) {
		t.Error("the log holds the key's secret")
	}
	// Listing every log records the listing in each of them.
	ok(t, "", "--data", data, "keys", "list")
	for _, log := range []string{"acme", "globex"} {
		if n := len(searchJSON(t, data, "--log", log, "--action", "trail.key.list")); n != map[string]int{"acme": 2, "globex": 1}[log] {
			t.Errorf("%s holds %d trail.key.list events after listing it, then every log", log, n)
		}
	}
}

// joinStrings joins a JSON array of strings with commas.
func joinStrings(v any) string {
	var parts []string
	for _, x := range v.([]any) {
		parts = append(parts, x.(string))
	}
	return strings.Join(parts, ",")
}
