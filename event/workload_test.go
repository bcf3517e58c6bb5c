package event

import (
	"bufio"
	"bytes"
	"os"
	"testing"
)

// workload returns the events in testdata/workload.ndjson, made with
// `go run . -n 200 -seed 3` in /work/shared/workload.
func workload(t testing.TB) [][]byte {
	t.Helper()
	data, err := os.ReadFile("testdata/workload.ndjson")
	if err != nil {
		t.Fatal(err)
	}
	var lines [][]byte
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		lines = append(lines, bytes.Clone(sc.Bytes()))
	}
	if len(lines) < 100 {
		t.Fatalf("testdata/workload.ndjson has %d lines, want 200", len(lines))
	}
	return lines
}
