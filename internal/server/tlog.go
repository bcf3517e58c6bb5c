package server

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/trail-audit/trail"
	"github.com/trail-audit/trail/event"
)

// The C2SP tlog-tiles layout (https://c2sp.org/tlog-tiles) of the key's
// log, under /v1/tlog/:
//
//	GET /v1/tlog/checkpoint                  the latest signed checkpoint (any scope)
//	GET /v1/tlog/tile/<L>/<N>[.p/<W>]        hash tiles of height 8 (any scope)
//	GET /v1/tlog/tile/entries/<N>[.p/<W>]    entry bundles, the canonical events (scope read, audited)
//
// Tiles and bundles never change, partial ones included (tile .p/W is
// the first W entries, which a later size only adds to): they may be kept
// by the client (Cache-Control: private, immutable; private because they
// are behind an API key), as tlog-tiles asks. The checkpoint is not to be
// stored.

// Cache-Control values of the tlog-tiles responses.
const (
	cacheImmutable = "private, max-age=31536000, immutable"
	cacheNoStore   = "no-store"
)

// tlogRoutes adds the tlog-tiles routes to mux.
func (s *server) tlogRoutes(mux *http.ServeMux) {
	mux.Handle("GET /v1/tlog/checkpoint", s.auth(anyScope, s.checkpoint))
	mux.Handle("GET /v1/tlog/tile/entries/{path...}", s.auth(trail.ScopeRead, s.entryBundle))
	mux.Handle("GET /v1/tlog/tile/{path...}", s.auth(anyScope, s.hashTile))
}

// tilePath is a parsed tlog-tiles tile path: the index and the width
// (trail.TileWidth for a full tile).
type tilePath struct {
	index int64
	width int
}

// parseTileIndex parses "<N>[.p/<W>]", N in groups of three digits all but
// the last prefixed with "x" (x001/x234/067 is 1234067), W 1 to 255. Only
// the one canonical spelling of each tile is accepted.
func parseTileIndex(p string) (tilePath, bool) {
	t := tilePath{width: trail.TileWidth}
	parts := strings.Split(p, "/")
	if n := len(parts); n >= 2 && strings.HasSuffix(parts[n-2], ".p") {
		w, err := strconv.Atoi(parts[n-1])
		if err != nil || w < 1 || w >= trail.TileWidth || strconv.Itoa(w) != parts[n-1] {
			return t, false
		}
		t.width = w
		parts[n-2] = strings.TrimSuffix(parts[n-2], ".p")
		parts = parts[:n-1]
	}
	var n int64
	for i, part := range parts {
		if i < len(parts)-1 {
			if !strings.HasPrefix(part, "x") {
				return t, false
			}
			part = part[1:]
		}
		if len(part) != 3 || strings.Trim(part, "0123456789") != "" {
			return t, false
		}
		d, _ := strconv.Atoi(part)
		if n > (1<<62)/1000 {
			return t, false
		}
		n = n*1000 + int64(d)
	}
	t.index = n
	return t, tileIndexPath(n) == strings.Join(parts, "/")
}

// tileIndexPath spells index as tlog-tiles does: x001/x234/067.
func tileIndexPath(n int64) string {
	s := fmt.Sprintf("%03d", n%1000)
	for n >= 1000 {
		n /= 1000
		s = fmt.Sprintf("x%03d/%s", n%1000, s)
	}
	return s
}

// String is the tile's path below tile/ or tile/entries/.
func (t tilePath) String() string {
	s := tileIndexPath(t.index)
	if t.width < trail.TileWidth {
		s += ".p/" + strconv.Itoa(t.width)
	}
	return s
}

// acceptsGzip reports whether the request's Accept-Encoding lists gzip
// without q=0.
func acceptsGzip(r *http.Request) bool {
	for _, v := range r.Header.Values("Accept-Encoding") {
		for _, item := range strings.Split(v, ",") {
			name, params, _ := strings.Cut(item, ";")
			if !strings.EqualFold(strings.TrimSpace(name), "gzip") {
				continue
			}
			q := 1.0
			for _, param := range strings.Split(params, ";") {
				if k, v, ok := strings.Cut(strings.TrimSpace(param), "="); ok && strings.EqualFold(k, "q") {
					if f, err := strconv.ParseFloat(v, 64); err == nil {
						q = f
					}
				}
			}
			return q > 0
		}
	}
	return false
}

// gzipped compresses data.
func gzipped(data []byte) []byte {
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	zw.Write(data) // writes to a bytes.Buffer do not fail
	zw.Close()
	return b.Bytes()
}

// writeTile sends a tile or bundle, marked immutable.
func writeTile(w http.ResponseWriter, t tilePath, data []byte) {
	w.Header().Set("Cache-Control", cacheImmutable)
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", strconv.Itoa(len(data)))
	w.WriteHeader(http.StatusOK)
	w.Write(data)
}

// hashTile serves GET /v1/tlog/tile/<L>/<N>[.p/<W>].
//
// golang.org/x/mod/sumdb/tlog names a tile with its height first,
// tile/8/<L>/<N> (Tile.Path): that is the same tile. It cannot be taken
// for tile/8/<N>, level 8, since N starts with three digits or an x.
func (s *server) hashTile(w http.ResponseWriter, r *http.Request, key trail.KeyInfo, l *trail.Log) error {
	p := r.PathValue("path")
	if h, rest, ok := strings.Cut(p, "/"); ok && h == "8" {
		if lv, _, ok := strings.Cut(rest, "/"); ok && len(lv) <= 2 {
			p = rest
		}
	}
	lv, rest, ok := strings.Cut(p, "/")
	level, err := strconv.Atoi(lv)
	if !ok || err != nil || strconv.Itoa(level) != lv || level < 0 {
		return errNoTile
	}
	t, ok := parseTileIndex(rest)
	if !ok {
		return errNoTile
	}
	data, err := l.HashTile(r.Context(), level, t.index, t.width)
	if err != nil {
		return err
	}
	writeTile(w, t, data)
	return nil
}

// entryBundle serves GET /v1/tlog/tile/entries/<N>[.p/<W>], and records the
// read (trail.export, naming the bundle) before it answers.
func (s *server) entryBundle(w http.ResponseWriter, r *http.Request, key trail.KeyInfo, l *trail.Log) error {
	t, ok := parseTileIndex(r.PathValue("path"))
	if !ok {
		return errNoTile
	}
	data, err := l.EntryBundle(r.Context(), t.index, t.width)
	if err != nil {
		return err
	}
	target := event.Target{Type: "tlog_entry_bundle", ID: "tile/entries/" + t.String()}
	if err := s.auditRead(r, key, l, trail.ActionExport, []event.Target{target}); err != nil {
		return err
	}
	// Bundles are JSON text: tlog-tiles asks that they be compressed.
	w.Header().Set("Vary", "Accept-Encoding")
	if acceptsGzip(r) {
		w.Header().Set("Content-Encoding", "gzip")
		data = gzipped(data)
	}
	writeTile(w, t, data)
	return nil
}
