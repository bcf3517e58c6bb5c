// Package workload loads the events of the shared synthetic audit-event
// generator (../shared/workload from the module root, or $TRAIL_WORKLOAD)
// for benchmarks, so that every benchmark and every system compared runs
// on the same events.
package workload

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"

	"github.com/trail-audit/trail/event"
)

// ErrNoGenerator: the generator was not found; benchmarks skip.
var ErrNoGenerator = errors.New("workload generator not found (set TRAIL_WORKLOAD to its directory)")

var cache struct {
	sync.Mutex
	events map[int][]event.Event
	raw    map[int]int64
}

// Events returns the first n events of `go run . -n n -seed 1`, decoded
// as clients would send them, and the size of their NDJSON in bytes. The
// generator's output is cached in the temporary directory.
func Events(n int) ([]event.Event, int64, error) {
	cache.Lock()
	defer cache.Unlock()
	if evs, ok := cache.events[n]; ok {
		return evs, cache.raw[n], nil
	}
	path, err := generate(n)
	if err != nil {
		return nil, 0, err
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	evs := make([]event.Event, 0, n)
	var raw int64
	for sc.Scan() {
		raw += int64(len(sc.Bytes())) + 1
		e, err := event.Decode(sc.Bytes())
		if err != nil {
			return nil, 0, fmt.Errorf("workload line %d: %w", len(evs)+1, err)
		}
		evs = append(evs, e)
	}
	if err := sc.Err(); err != nil {
		return nil, 0, err
	}
	if cache.events == nil {
		cache.events, cache.raw = map[int][]event.Event{}, map[int]int64{}
	}
	cache.events[n], cache.raw[n] = evs, raw
	return evs, raw, nil
}

// generate runs the generator for n events once and returns the path of
// its cached output.
func generate(n int) (string, error) {
	gen := os.Getenv("TRAIL_WORKLOAD")
	if gen == "" {
		_, file, _, _ := runtime.Caller(0) // .../internal/workload/workload.go
		gen = filepath.Join(filepath.Dir(file), "..", "..", "..", "shared", "workload")
	}
	if _, err := os.Stat(filepath.Join(gen, "main.go")); err != nil {
		return "", fmt.Errorf("%w: %v", ErrNoGenerator, err)
	}
	path := filepath.Join(os.TempDir(), fmt.Sprintf("trail-workload-n%d-seed1.ndjson", n))
	if _, err := os.Stat(path); err != nil {
		out, err := os.Create(path + ".tmp")
		if err != nil {
			return "", err
		}
		cmd := exec.Command("go", "run", ".", "-n", fmt.Sprint(n), "-seed", "1")
		cmd.Dir, cmd.Stdout, cmd.Stderr = gen, out, os.Stderr
		err = cmd.Run()
		out.Close()
		if err != nil {
			return "", fmt.Errorf("workload generator: %w", err)
		}
		if err := os.Rename(path+".tmp", path); err != nil {
			return "", err
		}
	}
	return path, nil
}

// Lines returns the first n events of the generator as the NDJSON lines it
// printed, without the newline: request bodies for HTTP benchmarks.
func Lines(n int) ([][]byte, error) {
	cache.Lock()
	path, err := generate(n)
	cache.Unlock()
	if err != nil {
		return nil, err
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	lines := bytes.Split(bytes.TrimSuffix(b, []byte("\n")), []byte("\n"))
	return lines, nil
}
