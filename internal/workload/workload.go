// Package workload gives benchmarks their events: those of the shared
// synthetic audit-event generator when it is there (../shared/workload
// next to the module root, or the directory $TRAIL_WORKLOAD names), and
// otherwise those of the repository's own copy of it, which prints the
// same events byte for byte. Every benchmark, and every system compared,
// then runs on the same events, from a clone too. Source says which
// generator a run used.
package workload

import (
	"bufio"
	"crypto/sha256"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"testing"

	"github.com/trail-audit/trail/event"
)

// Seed is the seed of every benchmark's events: `go run . -n N -seed 1`.
const Seed = 1

// Builtin is the value of $TRAIL_WORKLOAD that picks the repository's own
// generator even when the shared one is there.
const Builtin = "builtin"

// origin is where events come from: the directory of the shared
// generator, or "" for the repository's own.
type origin struct{ dir string }

// pick chooses the generator. $TRAIL_WORKLOAD, when set, must name the
// shared generator's directory (or be Builtin): a run asked for events
// from somewhere and fails rather than quietly using others. Unset, the
// shared generator is used when ../shared/workload holds it.
func pick() (origin, error) {
	switch dir := os.Getenv("TRAIL_WORKLOAD"); dir {
	case Builtin:
		return origin{}, nil
	case "":
		_, file, _, _ := runtime.Caller(0) // .../internal/workload/workload.go
		dir = filepath.Join(filepath.Dir(file), "..", "..", "..", "shared", "workload")
		if _, err := os.Stat(filepath.Join(dir, "main.go")); err != nil {
			return origin{}, nil
		}
		return origin{dir: filepath.Clean(dir)}, nil
	default:
		if _, err := os.Stat(filepath.Join(dir, "main.go")); err != nil {
			return origin{}, fmt.Errorf("TRAIL_WORKLOAD=%s: no workload generator there: %w", dir, err)
		}
		return origin{dir: filepath.Clean(dir)}, nil
	}
}

func (o origin) String() string {
	if o.dir == "" {
		return "the repository's generator (internal/workload)"
	}
	return "the shared generator in " + o.dir
}

// Source says which generator Events and Lines use, for benchmarks to log
// next to their figures.
func Source() string {
	o, err := pick()
	if err != nil {
		return err.Error()
	}
	return fmt.Sprintf("%s, seed %d", o, Seed)
}

var logged sync.Map // of test and benchmark names

// LogSource logs Source on tb, once per test or benchmark name: a
// benchmark's function runs several times, and its log keeps every run's
// lines.
func LogSource(tb testing.TB) {
	tb.Helper()
	if _, done := logged.LoadOrStore(tb.Name(), true); !done {
		tb.Log("events from", Source())
	}
}

type cacheKey struct {
	origin origin
	n      int
}

var cache struct {
	sync.Mutex
	events map[cacheKey][]event.Event
	raw    map[cacheKey]int64
}

// Events returns the first n events of the workload, seed Seed, decoded
// as clients would send them, and the size of their NDJSON in bytes. The
// events are kept for later calls in the same process.
func Events(n int) ([]event.Event, int64, error) {
	o, err := pick()
	if err != nil {
		return nil, 0, err
	}
	cache.Lock()
	defer cache.Unlock()
	k := cacheKey{o, n}
	if evs, ok := cache.events[k]; ok {
		return evs, cache.raw[k], nil
	}
	evs := make([]event.Event, 0, n)
	var raw int64
	err = o.each(n, func(line []byte) error {
		raw += int64(len(line)) + 1
		e, err := event.Decode(line)
		if err != nil {
			return fmt.Errorf("workload line %d: %w", len(evs)+1, err)
		}
		evs = append(evs, e)
		return nil
	})
	if err != nil {
		return nil, 0, err
	}
	if cache.events == nil {
		cache.events, cache.raw = map[cacheKey][]event.Event{}, map[cacheKey]int64{}
	}
	cache.events[k], cache.raw[k] = evs, raw
	return evs, raw, nil
}

// Lines returns the first n events of the workload as NDJSON lines,
// without the newline: request bodies for HTTP benchmarks.
func Lines(n int) ([][]byte, error) {
	o, err := pick()
	if err != nil {
		return nil, err
	}
	var all []byte
	var ends []int
	err = o.each(n, func(line []byte) error {
		all = append(all, line...)
		ends = append(ends, len(all))
		return nil
	})
	if err != nil {
		return nil, err
	}
	lines := make([][]byte, len(ends))
	start := 0
	for i, end := range ends {
		lines[i] = all[start:end:end]
		start = end
	}
	return lines, nil
}

// each calls f with each of the first n lines of the workload, without
// their newline. The line is valid only during the call.
func (o origin) each(n int, f func(line []byte) error) error {
	if o.dir == "" {
		g := newGenerator(Seed)
		for range n {
			line := g.next()
			if err := f(line[:len(line)-1]); err != nil {
				return err
			}
		}
		return nil
	}
	path, err := o.generate(n)
	if err != nil {
		return err
	}
	file, err := os.Open(path)
	if err != nil {
		return err
	}
	defer file.Close()
	sc := bufio.NewScanner(file)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if err := f(sc.Bytes()); err != nil {
			return err
		}
	}
	return sc.Err()
}

// generate runs the shared generator for n events, unless its output is
// already in the temporary directory, and returns the output's path. The
// file name holds a hash of the generator's source, so a changed
// generator is run again.
func (o origin) generate(n int) (string, error) {
	src, err := os.ReadFile(filepath.Join(o.dir, "main.go"))
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(src)
	path := filepath.Join(os.TempDir(), fmt.Sprintf("trail-workload-%x-n%d-seed%d.ndjson", sum[:6], n, Seed))
	if _, err := os.Stat(path); err == nil {
		return path, nil
	}
	out, err := os.CreateTemp(os.TempDir(), "trail-workload-*.tmp")
	if err != nil {
		return "", err
	}
	defer os.Remove(out.Name())
	cmd := exec.Command("go", "run", ".", "-n", fmt.Sprint(n), "-seed", fmt.Sprint(Seed))
	cmd.Dir, cmd.Stdout, cmd.Stderr = o.dir, out, os.Stderr
	err = cmd.Run()
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", fmt.Errorf("workload generator in %s: %w", o.dir, err)
	}
	return path, os.Rename(out.Name(), path)
}
