package trail

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/trail-audit/trail/internal/canon"
	"github.com/trail-audit/trail/internal/merkle"
	"github.com/trail-audit/trail/internal/store"
)

// TileWidth is the number of hashes in a full hash tile, and of entries in a
// full entry bundle, of the C2SP tlog-tiles layout (tiles of height 8).
const TileWidth = 1 << merkle.TileHeight

// tileEnd is the tree size a tile (or bundle) of width w at level, index
// needs, or false if it would overflow (no log is that big).
func tileEnd(level int, index int64, width int) (int64, bool) {
	if level < 0 || level > 6 || index < 0 || width < 1 || width > TileWidth {
		return 0, false
	}
	shift := uint(merkle.TileHeight * level)
	if index > (math.MaxInt64>>(shift+merkle.TileHeight))-1 {
		return 0, false
	}
	return (index*TileWidth + int64(width)) << shift, true
}

// HashTile returns the data of the C2SP tlog-tiles hash tile at level and
// index with width hashes (TileWidth for a full tile): the hashes of
// width consecutive subtrees of 256^level leaves, each 32 bytes. A tile
// the log has not reached (its tree is smaller than the tile's last
// subtree) is an error wrapping ErrNotFound. The data of a tile of a given
// width never changes.
func (l *Log) HashTile(ctx context.Context, level int, index int64, width int) ([]byte, error) {
	end, ok := tileEnd(level, index, width)
	if ok {
		l.followPast(ctx, end)
	}
	if !ok || end > l.Size() {
		return nil, fmt.Errorf("hash tile %d/%d of width %d: %w (log has %d events)", level, index, width, ErrNotFound, l.Size())
	}
	t := tlog.Tile{H: merkle.TileHeight, L: level, N: index, W: width}
	data, err := tlog.ReadTileData(t, l.hashReader(ctx))
	if errors.Is(err, ErrNotFound) || errors.Is(err, store.ErrNotFound) {
		// The log has reached the tile: its hashes should be stored.
		return nil, missingTile(level, index)
	}
	if err != nil {
		return nil, fmt.Errorf("hash tile %d/%d: %w", level, index, shortTile(err))
	}
	return data, nil
}

// missingTile is the damage of a stored hash tile, at level and index,
// missing though the log has reached it: named at its first event.
func missingTile(level int, index int64) *DamagedError {
	first := index * TileWidth << uint(merkle.TileHeight*level)
	return &DamagedError{Seq: first, Problem: fmt.Sprintf("the stored Merkle hashes of tile %d/%d, which the log has reached, are missing", level, index)}
}

// EntryBundle returns the C2SP tlog-tiles entry bundle at index with
// width entries (TileWidth for a full bundle): the canonical JSON of the
// events at seqs index*256 onwards, each preceded by its length as a
// big-endian uint16. Each entry is checked against its leaf in the stored
// tree: a stored event that is missing, cannot be decoded or does not hash
// to its leaf is a *DamagedError, never served. A bundle the log has not
// reached is an error wrapping ErrNotFound.
func (l *Log) EntryBundle(ctx context.Context, index int64, width int) ([]byte, error) {
	leaves, err := l.HashTile(ctx, 0, index, width)
	if err != nil {
		return nil, fmt.Errorf("entry bundle %d of width %d: %w", index, width, err)
	}
	from := index * TileWidth
	evs, err := l.db.st.Search(ctx, l.info.ID, store.Query{From: from, To: from + int64(width) - 1, Limit: width, Asc: true})
	if err != nil {
		return nil, damaged(err)
	}
	var out []byte
	var buf []byte
	for i := range width {
		seq := from + int64(i)
		if i >= len(evs) || evs[i].Seq != seq {
			return nil, &DamagedError{Seq: seq, Problem: store.ProblemMissing}
		}
		buf = canon.Append(buf[:0], evs[i])
		if len(buf) > math.MaxUint16 {
			return nil, fmt.Errorf("entry bundle %d: the event at seq %d is %d bytes of canonical JSON, over the 65535 an entry bundle can hold", index, seq, len(buf))
		}
		h := tlog.RecordHash(buf)
		if !bytes.Equal(h[:], leaves[i*tlog.HashSize:(i+1)*tlog.HashSize]) {
			return nil, &DamagedError{Seq: seq, Problem: "it does not hash to its leaf in the stored tree (the event or the stored Merkle hashes were altered)"}
		}
		out = binary.BigEndian.AppendUint16(out, uint16(len(buf)))
		out = append(out, buf...)
	}
	return out, nil
}
