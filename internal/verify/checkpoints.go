package verify

import (
	"context"
	"fmt"
	"runtime"
	"sync"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/trail-audit/trail/internal/merkle"
)

// point is a tree size whose root the replay checks: a stored checkpoint's,
// or the one of Options.Against (saved).
type point struct {
	size  int64
	root  tlog.Hash
	saved bool
}

// signBatch is how many checkpoints have their signatures checked at once,
// on every CPU: a log fed one event per commit has as many checkpoints as
// events.
const signBatch = 4096

// checkCheckpoints reads every checkpoint of src and checks its signature,
// its origin, the size it is kept under, and that it is not for more than
// the size events of the log. It returns their sizes and roots.
func checkCheckpoints(ctx context.Context, src Source, size int64, v note.Verifier) ([]point, error) {
	var points []point
	batch := make([]Checkpoint, 0, signBatch)
	for c, err := range src.Checkpoints(ctx) {
		if err != nil {
			return nil, fmt.Errorf("read checkpoints: %w", err)
		}
		if batch = append(batch, c); len(batch) == signBatch {
			if points, err = checkBatch(points, batch, size, v); err != nil {
				return nil, err
			}
			batch = batch[:0]
		}
	}
	return checkBatch(points, batch, size, v)
}

// CheckStored checks stored checkpoints as Check does those of a log of
// size events: each must verify with v, be signed for the size it is
// stored under, and not exceed size. It returns an *Error for the first
// that does not hold.
func CheckStored(batch []Checkpoint, size int64, v note.Verifier) error {
	_, err := checkBatch(nil, batch, size, v)
	return err
}

// checkBatch checks the signatures of batch on every CPU, then each
// checkpoint in order, and appends them to points.
func checkBatch(points []point, batch []Checkpoint, size int64, v note.Verifier) ([]point, error) {
	parsed := make([]merkle.Checkpoint, len(batch))
	errs := make([]error, len(batch))
	var wg sync.WaitGroup
	workers := runtime.GOMAXPROCS(0)
	for w := range workers {
		wg.Go(func() {
			for i := w; i < len(batch); i += workers {
				parsed[i], _, errs[i] = merkle.Open(batch[i].Note, v)
			}
		})
	}
	wg.Wait()
	for i, c := range batch {
		if errs[i] != nil {
			return nil, errorf(-1, "checkpoint of size %d: signature or format does not verify: %v", c.Size, errs[i])
		}
		if parsed[i].Size != c.Size {
			return nil, errorf(-1, "checkpoint stored as size %d is signed for size %d", c.Size, parsed[i].Size)
		}
		if parsed[i].Size > size {
			return nil, errorf(size, "log holds %d events but a checkpoint was signed for %d: events were deleted (truncated)", size, parsed[i].Size)
		}
		points = append(points, point{size: parsed[i].Size, root: parsed[i].Hash})
	}
	return points, nil
}

// openAgainst checks the signature of the checkpoint to verify against,
// and that the log, of size events, is not smaller.
func openAgainst(signed []byte, v note.Verifier, size int64) (merkle.Checkpoint, error) {
	c, _, err := merkle.Open(signed, v)
	if err != nil {
		return c, errorf(-1, "checkpoint to verify against: %v", err)
	}
	if c.Size > size {
		return c, errorf(size, "log holds %d events, fewer than the %d of the checkpoint verified against: the log was truncated or forked", size, c.Size)
	}
	return c, nil
}
