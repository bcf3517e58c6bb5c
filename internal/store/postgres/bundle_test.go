package postgres

import (
	"bytes"
	"context"
	"fmt"
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

// TestBundleRows: a commit's bundle rows hold each bundle's records in
// order, a bundle that a later batch of the commit continues included,
// with another log's rows between.
func TestBundleRows(t *testing.T) {
	rec := func(log, seq int64) []byte { return []byte(fmt.Sprintf(`{"log":%d,"seq":%d}`, log, seq)) }
	recs := func(log, from, to int64) [][]byte {
		var out [][]byte
		for seq := from; seq < to; seq++ {
			out = append(out, rec(log, seq))
		}
		return out
	}
	var b bundleRows
	b.add(1, 10, recs(1, 10, 20)) // bundles 0 (10–15) and 16 (16–19)
	b.add(2, 0, recs(2, 0, 3))
	b.add(1, 20, recs(1, 20, 40)) // continues bundle 16, then 32
	want := map[[2]int64][2]int64{{1, 0}: {10, 16}, {1, 16}: {16, 32}, {1, 32}: {32, 40}, {2, 0}: {0, 3}}
	if len(b.logs) != len(want) {
		t.Fatalf("%d rows, want %d", len(b.logs), len(want))
	}
	for i := range b.logs {
		r, ok := want[[2]int64{b.logs[i], b.firsts[i]}]
		if !ok {
			t.Fatalf("row %d: log %d bundle %d, want none", i, b.logs[i], b.firsts[i])
		}
		var data []byte
		for _, x := range recs(b.logs[i], r[0], r[1]) {
			data = appendRecord(data, x)
		}
		if got := b.rowData(i); !bytes.Equal(got, data) {
			t.Errorf("log %d bundle %d holds %q, want %q", b.logs[i], b.firsts[i], got, data)
		}
	}
}
