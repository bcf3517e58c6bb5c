package sqlite

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/trail-audit/trail/internal/store/storetest"
)

// While the indexer keeps up, its chunks stay small, so that a commit never
// waits long for the write lock; when it lags, they grow to catch up.
func TestIndexChunksFollowTheLag(t *testing.T) {
	ctx := context.Background()
	s := create(t, filepath.Join(t.TempDir(), "trail.db"), Options{})
	pauseIndexer(s)
	w := storetest.NewWriter(t, s, "audit")
	evs := storetest.Events(1000, 1)
	chunk := func() int64 {
		t.Helper()
		c, err := s.prepareChunk(ctx, w.Info.ID)
		if err != nil || c == nil {
			t.Fatalf("prepareChunk: %v, %v", c, err)
		}
		return c.to - c.from
	}
	w.Append(t, s, t0, evs[:300]...)
	if got := chunk(); got != 300 {
		t.Errorf("300 events waiting: a chunk of %d, want all 300", got)
	}
	w.Append(t, s, t0, evs[300:]...)
	if got := chunk(); got != minIndexChunk {
		t.Errorf("1,000 events waiting: a chunk of %d, want %d", got, minIndexChunk)
	}
	for range 7 {
		w.Append(t, s, t0, evs...)
	}
	if got := chunk(); got != 2000 {
		t.Errorf("8,000 events waiting: a chunk of %d, want a quarter of them", got)
	}
}
