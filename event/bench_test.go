package event

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"
)

// typicalEvent is a workload event of about 500 bytes with four metadata keys.
func typicalEvent(b *testing.B) []byte {
	for _, line := range workload(b) {
		if len(line) >= 480 && len(line) <= 520 {
			return line
		}
	}
	b.Fatal("no workload event of about 500 bytes")
	return nil
}

func BenchmarkDecode(b *testing.B) {
	line := typicalEvent(b)
	b.SetBytes(int64(len(line)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Decode(line); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodePrepare(b *testing.B) {
	compact := typicalEvent(b)
	// As Python's json.dumps writes it, with spaces after separators, so
	// metadata needs canonicalizing.
	var spaced bytes.Buffer
	if err := json.Indent(&spaced, compact, "", " "); err != nil {
		b.Fatal(err)
	}
	now := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	for _, bc := range []struct {
		name string
		line []byte
	}{{"compact", compact}, {"spaced", spaced.Bytes()}} {
		b.Run(bc.name, func(b *testing.B) {
			b.SetBytes(int64(len(bc.line)))
			b.ReportAllocs()
			for b.Loop() {
				e, err := Decode(bc.line)
				if err != nil {
					b.Fatal(err)
				}
				if err := e.Prepare(now, Limits{}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
