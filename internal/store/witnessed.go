package store

import "context"

// Witnessed keeps the cosigned checkpoints of each log: its signed
// checkpoint notes with the cosignature lines of witnesses appended
// (https://c2sp.org/tlog-cosignature), stored once the cosignatures meet
// the log's witness policy. The caller checks the cosignatures and the
// policy; the store keeps what it is given.
//
// Its methods are safe for concurrent use, also by other Stores sharing
// the database (every node of a cluster witnesses its logs): cosigned
// checkpoints of one log are kept one per size, and storing one never
// replaces one of another size, so a node that stores an older one than
// another node did leaves the newest where it is.
type Witnessed interface {
	// PutCosigned durably stores c, a cosigned checkpoint of the log, when
	// it returns nil. If the log has one of that size already, it keeps
	// the one it has (both met the policy when stored) and returns nil.
	// ErrNotFound if there is no such log.
	PutCosigned(ctx context.Context, log int64, c Checkpoint) error
	// Cosigned returns the log's stored cosigned checkpoint of the largest
	// size, or an error wrapping ErrNotFound if it has none.
	Cosigned(ctx context.Context, log int64) (Checkpoint, error)
	// CosignedAt returns the log's cosigned checkpoint of exactly that
	// size, or an error wrapping ErrNotFound.
	CosignedAt(ctx context.Context, log int64, size int64) (Checkpoint, error)
}
