package client_test

import (
	"os/exec"
	"strings"
	"testing"
)

// A program that imports only client or httpaudit carries none of the
// server: not SQLite, the store, the server or the root package (which
// opens stores). .ci/run checks the same.
func TestClientsLinkNoServer(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-f", `{{.ImportPath}} {{join .Imports " "}}`,
		"github.com/trail-audit/trail/client", "github.com/trail-audit/trail/httpaudit").Output()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			t.Fatalf("go list: %v\n%s", err, ee.Stderr)
		}
		t.Fatalf("go list: %v", err)
	}
	importers := map[string][]string{} // package -> the packages that import it
	linked := map[string]bool{}
	for line := range strings.Lines(string(out)) {
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}
		linked[fields[0]] = true
		for _, imp := range fields[1:] {
			importers[imp] = append(importers[imp], fields[0])
		}
	}
	if !linked["github.com/trail-audit/trail/event"] || !linked["github.com/trail-audit/trail/api"] {
		t.Fatalf("go list -deps lists neither event nor api:\n%s", out)
	}
	for _, pkg := range []string{
		"modernc.org/sqlite",
		"github.com/trail-audit/trail/internal/store",
		"github.com/trail-audit/trail/internal/server",
		"github.com/trail-audit/trail",
	} {
		if linked[pkg] {
			t.Errorf("client or httpaudit links %s, imported by %s", pkg, strings.Join(importers[pkg], ", "))
		}
	}
}
