package server_test

import (
	"fmt"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/trail-audit/trail/internal/server"
)

// Paging newest first while other clients append: the pages hold every
// matching event up to the first page's newest, each once, in order; the
// appends land above the cursor and neither shift nor repeat anything.
func TestPagingUnderConcurrentAppends(t *testing.T) {
	e := newEnv(t, server.Options{RateLimit: -1})
	e.appendN("acme-append", 300)
	stop := make(chan struct{})
	var appended atomic.Int64
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				r := e.do("POST", "/v1/events", "acme-append", "application/json", []byte(fmt.Sprintf(`{"actor":{"id":"w%d"},"action":"user.delete"}`, w)))
				if r.status != 201 {
					t.Errorf("concurrent append = %d %s", r.status, r.body)
					return
				}
				appended.Add(1)
			}
		}()
	}
	var seqs []int64
	cursor := ""
	for page := 0; ; page++ {
		q := url.Values{"action": {"user.delete"}, "limit": {"7"}}
		if cursor != "" {
			q.Set("cursor", cursor)
		}
		var p struct {
			Events []struct {
				Seq    int64  `json:"seq"`
				Action string `json:"action"`
			} `json:"events"`
			NextCursor *string `json:"next_cursor"`
		}
		e.ok(200, "GET", "/v1/events?"+q.Encode(), "acme-read", "", nil, &p)
		for _, ev := range p.Events {
			if ev.Action != "user.delete" {
				t.Fatalf("page %d holds a %s event", page, ev.Action)
			}
			seqs = append(seqs, ev.Seq)
		}
		if p.NextCursor == nil {
			break
		}
		cursor = *p.NextCursor
	}
	close(stop)
	wg.Wait()
	if appended.Load() == 0 {
		t.Fatal("no append ran while paging")
	}
	// Strictly decreasing: no repeats, newest first.
	for i := 1; i < len(seqs); i++ {
		if seqs[i] >= seqs[i-1] {
			t.Fatalf("seqs not strictly decreasing at %d: %d then %d", i, seqs[i-1], seqs[i])
		}
	}
	// No gaps: every user.delete at or below the first page's newest seq.
	// After the keys' events, the first 300 events hold one every 3
	// (i%3 == 1); every event above them is a user.delete from the
	// appenders.
	want := 0
	for s := int64(0); s <= seqs[0]; s++ {
		if i := s - e.start["acme"]; i >= 300 || i >= 0 && i%3 == 1 {
			want++
		}
	}
	if len(seqs) != want {
		t.Errorf("paged %d user.delete events up to seq %d, want %d (a gap or an extra)", len(seqs), seqs[0], want)
	}
}
