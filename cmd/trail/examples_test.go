package main

import (
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// The tests in this file run the examples that Trail prints and documents
// exactly as a user would paste them: with the real curl, bash and Python,
// against a real trail serve.

// needTool skips the test when the program name is missing, except in CI
// (CI=true), where every example must run.
func needTool(t *testing.T, name string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is needed to run the examples: %v", name, err)
		}
		t.Skipf("%s is not installed, so the examples that use it cannot run: %v", name, err)
	}
}

// shellEnv is the environment of a pasted example: this one without
// Trail's variables, trail on the PATH, and extra.
func shellEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "TRAIL_") && !strings.HasPrefix(kv, "PATH=") {
			env = append(env, kv)
		}
	}
	env = append(env, "PATH="+filepath.Dir(trailBin)+string(os.PathListSeparator)+os.Getenv("PATH"))
	return append(env, extra...)
}

// curlStatus runs script with bash, its last line a curl command, and
// returns the HTTP status and body of that request and what the script
// wrote on stderr. It adds to the curl command only what reports the
// status.
func curlStatus(t *testing.T, script string, env []string) (status int, body, stderr string) {
	t.Helper()
	cmd := exec.Command("bash", "-c", strings.TrimRight(script, "\n")+` -sS -w '\n%{http_code}'`)
	cmd.Env = env
	var out, errOut strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		t.Errorf("bash -c %q: %v\nstdout: %s\nstderr: %s", script, err, out.String(), errOut.String())
		return 0, out.String(), errOut.String()
	}
	o := strings.TrimRight(out.String(), "\n")
	i := strings.LastIndexByte(o, '\n')
	status, err := strconv.Atoi(o[i+1:])
	if err != nil {
		t.Fatalf("curl printed %q, want the body and then the status", o)
	}
	return status, o[:max(i, 0)], errOut.String()
}

// The curl commands trail serve --demo prints work when pasted into a
// shell, also when it listens on every interface.
func TestServeDemoPrintedCommands(t *testing.T) {
	needTool(t, "curl")
	needTool(t, "bash")
	data := filepath.Join(t.TempDir(), "data")
	for _, addr := range []string{"127.0.0.1:0", ":0"} {
		t.Run(addr, func(t *testing.T) {
			s := serve(t, data, "--demo", "--addr", addr)
			defer s.stop(t)
			var cmds []string
			for _, line := range lines(s.banner) {
				if l := strings.TrimSpace(line); strings.HasPrefix(l, "curl ") {
					cmds = append(cmds, l)
				}
			}
			if len(cmds) != 2 {
				t.Fatalf("trail serve --demo printed\n%s\nwant two curl commands", s.banner)
			}
			// The verifier key, which the viewer's event page asks to
			// compare with, is printed too.
			if m := regexp.MustCompile(`Verifier key of the log[^:]*: (\S+)`).FindStringSubmatch(s.banner); m == nil || !strings.Contains(m[1], "/demo+") {
				t.Errorf("trail serve --demo printed\n%s\nwant the demo log's verifier key", s.banner)
			}
			for _, c := range cmds {
				status, body, stderr := curlStatus(t, c, shellEnv())
				if status/100 != 2 || !strings.Contains(body, `"events"`) {
					t.Errorf("pasted %s\ngot %d %s\n%s\nwant 2xx and events", c, status, body, stderr)
				}
			}
		})
	}
}

// The examples of trail help serve that talk to a server work when pasted,
// on the data directory of trail serve --demo (the first example).
func TestHelpServeExamples(t *testing.T) {
	needTool(t, "curl")
	needTool(t, "bash")
	data := filepath.Join(t.TempDir(), "data")
	s := serve(t, data, "--demo")
	defer s.stop(t)
	help := ok(t, "", "help", "serve").stdout
	_, examples, _ := strings.Cut(help, "\nExample:\n")
	if !strings.Contains(examples, "trail serve --demo") {
		t.Fatalf("trail help serve examples:\n%s\nwant trail serve --demo first", examples)
	}
	var script []string
	for _, line := range lines(examples) {
		l := strings.TrimSpace(line)
		if strings.HasPrefix(l, "KEY=") || strings.HasPrefix(l, "curl ") {
			script = append(script, strings.ReplaceAll(l, "http://127.0.0.1:8080", s.url))
		}
	}
	if len(script) == 0 || !strings.HasPrefix(script[len(script)-1], "curl ") {
		t.Fatalf("trail help serve examples:\n%s\nwant requests ending with curl", examples)
	}
	status, body, stderr := curlStatus(t, strings.Join(script, "\n"), shellEnv("TRAIL_DATA="+data))
	if status/100 != 2 {
		t.Errorf("pasted\n%s\ngot %d %s\n%s\nwant 2xx", strings.Join(script, "\n"), status, body, stderr)
	}
}

// Each example of examples/ says which scopes its key needs, runs with
// such a key, and with a key that lacks one it stops with the server's
// error message.
func TestExamples(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	both := lastLine(ok(t, "", "--data", data, "keys", "create", "--log", "examples", "--scope", "append,read").stdout)
	appendOnly := lastLine(ok(t, "", "--data", data, "keys", "create", "--log", "examples", "--scope", "append").stdout)
	readOnly := lastLine(ok(t, "", "--data", data, "keys", "create", "--log", "examples", "--scope", "read").stdout)
	s := serve(t, data, "--rate-limit", "0")
	defer s.stop(t)
	// What the server says to a key without the scope a request needs.
	message := func(method, path, key, body string) string {
		code, b, err := request(t, method, s.url+path, key, body)
		var e struct{ Error struct{ Message string } }
		if err != nil || code != 403 || json.Unmarshal(b, &e) != nil || e.Error.Message == "" {
			t.Fatalf("%s %s = %d %s %v; want 403 with a message", method, path, code, b, err)
		}
		return e.Error.Message
	}
	noRead := message("GET", "/v1/events", appendOnly, "")
	noAppend := message("POST", "/v1/events", readOnly, `{"actor":{"id":"a"},"action":"user.login"}`)

	for _, ex := range []struct{ tool, path string }{
		{"bash", "../../examples/curl/failed-logins.sh"},
		{"python3", "../../examples/python/trail_client.py"},
	} {
		t.Run(filepath.Base(ex.path), func(t *testing.T) {
			needTool(t, ex.tool)
			if ex.tool == "bash" {
				needTool(t, "curl")
			}
			src, err := os.ReadFile(ex.path)
			if err != nil {
				t.Fatal(err)
			}
			head := string(src[:min(len(src), 800)])
			if !regexp.MustCompile(`append and read scopes`).MatchString(head) {
				t.Errorf("%s does not say at its top which scopes its key needs:\n%s", ex.path, head)
			}
			runIt := func(key string) (string, string, error) {
				cmd := exec.Command(ex.tool, ex.path)
				cmd.Env = shellEnv("TRAIL_SERVER="+s.url, "TRAIL_KEY="+key)
				var out, errOut strings.Builder
				cmd.Stdout, cmd.Stderr = &out, &errOut
				err := cmd.Run()
				return out.String(), errOut.String(), err
			}
			if out, stderr, err := runIt(both); err != nil {
				t.Errorf("%s with an append,read key: %v\nstdout: %s\nstderr: %s", ex.path, err, out, stderr)
			}
			for _, c := range []struct{ key, scopes, want string }{
				{appendOnly, "append", noRead},
				{readOnly, "read", noAppend},
			} {
				out, stderr, err := runIt(c.key)
				var ee *exec.ExitError
				if !errors.As(err, &ee) || !strings.Contains(stderr, c.want) || !strings.Contains(stderr, "403") ||
					!strings.Contains(stderr, "append and read scopes") || strings.Contains(stderr, "Traceback") {
					t.Errorf("%s with a key of scope %s: %v\nstdout: %s\nstderr: %s\nwant a failure with the server's message %q and the scopes needed",
						ex.path, c.scopes, err, out, stderr, c.want)
				}
			}
		})
	}
}
