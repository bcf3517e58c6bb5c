package canon

import (
	"bufio"
	"bytes"
	"os"
	"testing"
)

// workloadFile holds the events that event's tests use, made with
// `go run . -n 200 -seed 3` in /work/shared/workload. The tests here read
// the same file rather than a copy of it.
const workloadFile = "../../event/testdata/workload.ndjson"

// workload returns the events in workloadFile, one JSON object each.
func workload(t testing.TB) [][]byte {
	t.Helper()
	data, err := os.ReadFile(workloadFile)
	if err != nil {
		t.Fatal(err)
	}
	var lines [][]byte
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		lines = append(lines, bytes.Clone(sc.Bytes()))
	}
	if len(lines) < 100 {
		t.Fatalf("%s has %d lines, want 200", workloadFile, len(lines))
	}
	return lines
}
