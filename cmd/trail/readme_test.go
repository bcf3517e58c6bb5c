package main

import (
	"bufio"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// The README says how to get the trail binary, from a checkout and with go
// install of this module's path, and that the first build takes a while.
func TestREADMEInstall(t *testing.T) {
	readme := readFile(t, "../../README.md")
	mod := regexp.MustCompile(`(?m)^module (\S+)$`).FindStringSubmatch(readFile(t, "../../go.mod"))
	if mod == nil {
		t.Fatal("go.mod names no module")
	}
	for _, want := range []string{
		"go install ./cmd/trail",
		"go build -o trail ./cmd/trail",
		"go install " + mod[1] + "/cmd/trail@latest",
		"a few minutes",
	} {
		if !strings.Contains(readme, want) {
			t.Errorf("README.md does not say %q", want)
		}
	}
}

// Every trail command line of the README (in sh blocks and in code spans)
// names a command that exists and only flags that the command takes.
func TestREADMECommands(t *testing.T) {
	readme := readFile(t, "../../README.md")
	var cmdLines []string
	inSh := false
	sc := bufio.NewScanner(strings.NewReader(readme))
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "```"):
			inSh = line == "```sh"
		case inSh:
			cmdLines = append(cmdLines, line)
		default:
			for _, m := range regexp.MustCompile("`(trail [^`]+)`").FindAllStringSubmatch(line, -1) {
				cmdLines = append(cmdLines, strings.ReplaceAll(m[1], `\|`, "|"))
			}
		}
	}
	if n := checkTrailLines(t, "README.md", cmdLines); n < 15 {
		t.Errorf("checked %d trail command lines of README.md, want more: is the parsing broken?", n)
	}
}

// The examples of every command's help name commands and flags that exist.
func TestHelpExamplesFlags(t *testing.T) {
	m := &Main{env: &env{getenv: func(string) string { return "" }}}
	n := 0
	for _, c := range commands {
		_, examples, _ := strings.Cut(m.command(c.name, dbFlags{}).Usage(), "\nExample:\n")
		n += checkTrailLines(t, "trail help "+c.name, lines(examples))
	}
	_, examples, _ := strings.Cut(m.Usage(), "\nExample:\n")
	n += checkTrailLines(t, "trail --help", lines(examples))
	if n < 2*len(commands) {
		t.Errorf("checked %d trail command lines of the help, want more: is the parsing broken?", n)
	}
}

// checkTrailLines checks that each trail command line of where names a
// command that exists, and only flags that the command takes; it returns
// how many lines it checked.
func checkTrailLines(t *testing.T, where string, cmdLines []string) int {
	t.Helper()
	m := &Main{env: &env{getenv: func(string) string { return "" }}}
	checked := 0
	for _, line := range cmdLines {
		line, _, _ = strings.Cut(line, "#")
		// The trail command of the line, also inside $(...).
		i := strings.Index(line, "trail ")
		if i < 0 || i > 0 && !strings.ContainsAny(line[i-1:i], " ($") {
			continue
		}
		rest := line[i+len("trail "):]
		if j := strings.IndexAny(rest, ")|;<>&"); j >= 0 {
			rest = rest[:j] // the end of the command (or of "create|list|revoke")
		}
		fields := strings.Fields(rest)
		name := ""
		for _, f := range fields {
			if !strings.HasPrefix(f, "-") && !strings.HasPrefix(f, "[") {
				name = f
				break
			}
		}
		if name == "" || strings.ContainsAny(name, "/.") || name == "help" || strings.ToUpper(name) == name {
			continue // prose, or "trail help COMMAND"
		}
		cmd := m.command(name, dbFlags{})
		if cmd == nil {
			t.Errorf("%s: %q: trail has no command %q", where, strings.TrimSpace(line), name)
			continue
		}
		usage := cmd.Usage()
		for _, f := range fields {
			f = strings.Trim(f, "[]")
			if !strings.HasPrefix(f, "-") {
				continue
			}
			flagName, _, _ := strings.Cut(strings.TrimLeft(f, "-"), "=")
			if flagName == "" || flagName == "h" || flagName == "help" {
				continue
			}
			if !regexp.MustCompile(`\n  --` + regexp.QuoteMeta(flagName) + `[ \n]`).MatchString(usage) {
				t.Errorf("%s: %q: trail %s takes no --%s", where, strings.TrimSpace(line), name, flagName)
			}
		}
		checked++
	}
	return checked
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// The package map in README's "How Trail is built" lists exactly the
// module's packages, as go list ./... prints them.
func TestREADMEPackageMap(t *testing.T) {
	readme := readFile(t, "../../README.md")
	_, after, ok := strings.Cut(readme, "\n## How Trail is built\n")
	if !ok {
		t.Fatal(`README.md has no "How Trail is built" section`)
	}
	_, block, ok := strings.Cut(after, "\n```\n")
	block, _, ok2 := strings.Cut(block, "\n```\n")
	if !ok || !ok2 {
		t.Fatal(`README.md's "How Trail is built" has no package map (a plain code block)`)
	}
	mod := regexp.MustCompile(`(?m)^module (\S+)$`).FindStringSubmatch(readFile(t, "../../go.mod"))
	if mod == nil {
		t.Fatal("go.mod names no module")
	}
	var inMap []string
	for _, line := range strings.Split(block, "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) == 0:
		case f[0] == "trail" && len(f) > 1 && f[1] == "(root)":
			inMap = append(inMap, mod[1])
		case strings.HasSuffix(f[0], "/"):
			inMap = append(inMap, mod[1]+"/"+strings.TrimSuffix(f[0], "/"))
		}
	}
	cmd := exec.Command("go", "list", "./...")
	cmd.Dir = "../.."
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list ./...: %v", err)
	}
	listed := strings.Fields(string(out))
	slices.Sort(inMap)
	slices.Sort(listed)
	for _, p := range listed {
		if !slices.Contains(inMap, p) {
			t.Errorf("package %s is missing from README's package map", p)
		}
	}
	for _, p := range inMap {
		if !slices.Contains(listed, p) {
			t.Errorf("README's package map lists %s, which go list ./... does not", p)
		}
	}
}
