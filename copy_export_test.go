package trail

import (
	"context"

	"github.com/trail-audit/trail/internal/store"
)

// StoredCheckpoints returns every checkpoint stored for the named log of
// db, in ascending size, as the store keeps them.
func StoredCheckpoints(ctx context.Context, db *DB, name string) ([]store.Checkpoint, error) {
	info, err := db.st.Log(ctx, name)
	if err != nil {
		return nil, err
	}
	var out []store.Checkpoint
	for c, err := range db.st.Checkpoints(ctx, info.ID) {
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}
