package postgrestest

import (
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
)

// The store keeps events in bundles of bundleSize, each a row of
// event_bundles whose data is the events' canonical forms from first_seq
// on, each preceded by its length as a uvarint; an empty record is a
// missing event (see the store's bundle.go).
const bundleSize = 16

// bundleStart is the first seq of the bundle that holds event seq.
func bundleStart(seq int64) int64 { return seq &^ (bundleSize - 1) }

// textStart is the first seq of the block of 256 events whose words a
// bundle_text row holds: rows of other stores' versions cover a bundle,
// starting at or after it.
func textStart(seq int64) int64 { return seq &^ 255 }

// splitBundle returns the records of a bundle's data.
func splitBundle(data []byte) ([][]byte, error) {
	var recs [][]byte
	for len(data) > 0 {
		n, k := binary.Uvarint(data)
		if k <= 0 || n > uint64(len(data)-k) {
			return nil, errors.New("the bundle's records do not parse")
		}
		recs = append(recs, data[k:k+int(n)])
		data = data[k+int(n):]
	}
	return recs, nil
}

// joinBundle returns the data of a bundle of recs.
func joinBundle(recs [][]byte) []byte {
	var data []byte
	for _, r := range recs {
		data = binary.AppendUvarint(data, uint64(len(r)))
		data = append(data, r...)
	}
	return data
}

// holding reads the row of the bundle that holds event seq: the one
// with the greatest first_seq at or below it, which must have a record
// at seq.
func holding(t tx, id, seq int64) (first int64, data []byte, err error) {
	err = t.QueryRow(t.ctx, "SELECT first_seq, data FROM event_bundles WHERE log = $1 AND first_seq <= $2 ORDER BY first_seq DESC LIMIT 1",
		id, seq).Scan(&first, &data)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil, fmt.Errorf("no stored event at seq %d", seq)
	}
	if err != nil {
		return 0, nil, err
	}
	if recs, err := splitBundle(data); err == nil && (seq-first >= int64(len(recs)) || len(recs[seq-first]) == 0) {
		return 0, nil, fmt.Errorf("no stored event at seq %d", seq)
	}
	return first, data, nil
}

// records reads the records of the bundles of log id whose first_seq is
// in [from, to), by seq, and the first seqs of those bundles.
func records(t tx, id, from, to int64) (map[int64][]byte, []int64, error) {
	rows, err := t.Query(t.ctx, "SELECT first_seq, data FROM event_bundles WHERE log = $1 AND first_seq >= $2 AND first_seq < $3 ORDER BY first_seq", id, from, to)
	if err != nil {
		return nil, nil, err
	}
	out := map[int64][]byte{}
	var firsts []int64
	var first int64
	var data []byte
	_, err = pgx.ForEachRow(rows, []any{&first, &data}, func() error {
		recs, err := splitBundle(data)
		if err != nil {
			return fmt.Errorf("bundle at seq %d: %w", first, err)
		}
		firsts = append(firsts, first)
		for i, r := range recs {
			if len(r) > 0 {
				out[first+int64(i)] = slices.Clone(r)
			}
		}
		return nil
	})
	return out, firsts, err
}

// writeBundles deletes the rows of log id with the first seqs old and
// stores the records recs, by seq, of the bundles that start at each of
// starts, each as its aligned bundle: a seq without a record in it is an
// empty record, and a bundle without any is deleted.
func writeBundles(t tx, id int64, old []int64, starts []int64, recs map[int64][]byte) error {
	if _, err := t.exec("DELETE FROM event_bundles WHERE log = $1 AND first_seq = ANY($2::bigint[])", id, old); err != nil {
		return err
	}
	slices.Sort(starts)
	for _, f := range slices.Compact(starts) {
		var rs [][]byte
		for seq := f; seq < f+bundleSize; seq++ {
			rs = append(rs, recs[seq])
		}
		for len(rs) > 0 && len(rs[len(rs)-1]) == 0 {
			rs = rs[:len(rs)-1]
		}
		var err error
		if len(rs) == 0 {
			_, err = t.exec("DELETE FROM event_bundles WHERE log = $1 AND first_seq = $2", id, f)
		} else {
			_, err = t.exec(`INSERT INTO event_bundles (log, first_seq, data) VALUES ($1, $2, $3)
				ON CONFLICT (log, first_seq) DO UPDATE SET data = excluded.data`, id, f, joinBundle(rs))
		}
		if err != nil {
			return fmt.Errorf("bundle at seq %d: %w", f, err)
		}
	}
	return nil
}

// rewriteText rewrites the bundle_text rows of log id of the blocks
// that hold seqs in [from, to), keeping the words of each event for
// which keep says so; a row left without words is deleted. It returns
// how many (word, seq) pairs it took out.
func rewriteText(t tx, id, from, to int64, keep func(word string, seq int64) bool) (int, error) {
	rows, err := t.Query(t.ctx, `SELECT r.ctid::text, r.first_seq, w.lexeme, w.positions FROM bundle_text r, unnest(r.words) w
		WHERE r.log = $1 AND r.first_seq >= $2 AND r.first_seq < $3`, id, textStart(from), to)
	if err != nil {
		return 0, err
	}
	type lexeme struct {
		word string
		pos  []int16
	}
	docs := map[string][]lexeme{}
	changed := map[string]bool{}
	removed := 0
	var ctid, word string
	var first int64
	var pos []int16
	_, err = pgx.ForEachRow(rows, []any{&ctid, &first, &word, &pos}, func() error {
		var kept []int16
		for _, p := range pos {
			if keep(word, first+int64(p)-1) {
				kept = append(kept, p)
			} else {
				removed++
				changed[ctid] = true
			}
		}
		docs[ctid] = append(docs[ctid], lexeme{word, kept})
		return nil
	})
	if err != nil {
		return 0, err
	}
	for _, ctid := range slices.Sorted(maps.Keys(changed)) {
		var parts []string
		for _, l := range docs[ctid] {
			if len(l.pos) == 0 {
				continue
			}
			ps := make([]string, len(l.pos))
			for i, p := range l.pos {
				ps[i] = strconv.Itoa(int(p))
			}
			parts = append(parts, tsLexeme(l.word)+":"+strings.Join(ps, ","))
		}
		if len(parts) == 0 {
			_, err = t.exec("DELETE FROM bundle_text WHERE ctid = $1::tid", ctid)
		} else {
			_, err = t.exec("UPDATE bundle_text SET words = $1::tsvector WHERE ctid = $2::tid", strings.Join(parts, " "), ctid)
		}
		if err != nil {
			return 0, err
		}
	}
	return removed, nil
}

// tsLexeme quotes w as a lexeme of a tsvector literal.
func tsLexeme(w string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `''`).Replace(w) + "'"
}
