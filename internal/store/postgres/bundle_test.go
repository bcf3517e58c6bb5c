package postgres

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
)

// editRecords stores edit's result in place of the records of the bundle
// of log that holds seq, behind the store's back: an empty record is a
// missing event.
func editRecords(t *testing.T, conn *pgx.Conn, log, seq int64, edit func(recs [][]byte) [][]byte) {
	t.Helper()
	ctx := context.Background()
	var data []byte
	first := bundleStart(seq)
	if err := conn.QueryRow(ctx, "SELECT data FROM event_bundles WHERE log = $1 AND first_seq = $2", log, first).Scan(&data); err != nil {
		t.Fatalf("read the bundle of seq %d: %v", seq, err)
	}
	recs, err := splitBundle(data)
	if err != nil {
		t.Fatalf("bundle of seq %d: %v", seq, err)
	}
	var out []byte
	for _, r := range edit(recs) {
		out = appendRecord(out, r)
	}
	if _, err := conn.Exec(ctx, "UPDATE event_bundles SET data = $1 WHERE log = $2 AND first_seq = $3", out, log, first); err != nil {
		t.Fatalf("store the bundle of seq %d: %v", seq, err)
	}
}
