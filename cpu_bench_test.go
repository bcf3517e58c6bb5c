package trail_test

import (
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// machineCPU returns the CPU time, in seconds, that the machine's
// processors have spent busy since boot (every field of /proc/stat's cpu
// line but idle and iowait), and false where /proc/stat cannot be read.
// The PostgreSQL benchmarks share the machine with the server they
// measure, so the time busy, server included, says what an event costs
// more steadily than events per second on a noisy machine.
func machineCPU() (float64, bool) {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, false
	}
	line, _, _ := strings.Cut(string(data), "\n")
	f := strings.Fields(line)
	if len(f) < 8 || f[0] != "cpu" {
		return 0, false
	}
	var busy float64
	for i, v := range f[1:] {
		if i == 3 || i == 4 { // idle, iowait
			continue
		}
		if i >= 7 { // guest times are within user time
			break
		}
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return 0, false
		}
		busy += float64(n)
	}
	return busy / 100, true // USER_HZ
}

// processCPU returns the CPU time, in seconds, that this process has
// spent, user and system.
func processCPU() float64 {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

// cpuMeter reports the machine's busy CPU time per event between its
// start and report, as cpu-µs/event, and the share of it this process
// spent (the client's, or Trail's when it runs in the benchmark), as
// proc-µs/event.
type cpuMeter struct {
	start, proc float64
	ok          bool
}

func startCPU() cpuMeter {
	s, ok := machineCPU()
	return cpuMeter{s, processCPU(), ok}
}

func (m cpuMeter) report(b *testing.B, events int) {
	end, ok := machineCPU()
	if !m.ok || !ok || events == 0 {
		return
	}
	b.ReportMetric((end-m.start)*1e6/float64(events), "cpu-µs/event")
	b.ReportMetric((processCPU()-m.proc)*1e6/float64(events), "proc-µs/event")
}
