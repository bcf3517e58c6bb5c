package server_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/trail-audit/trail/api"
	"github.com/trail-audit/trail/internal/server"
	"github.com/trail-audit/trail/internal/store/storetest"
	"github.com/trail-audit/trail/internal/store/storetest/backends"
)

// tlogClient reads a log through its C2SP tlog-tiles endpoints only, with
// golang.org/x/mod/sumdb/tlog and note: none of Trail's own code.
type tlogClient struct {
	e   *env
	key string // the key's name, for e.do
	// vkey is the log's verifier key.
	vkey string
}

func newTlogClient(e *env, key string) *tlogClient {
	var info struct {
		VerifierKey string `json:"verifier_key"`
	}
	e.ok(200, "GET", "/v1/log", key, "", nil, &info)
	return &tlogClient{e: e, key: key, vkey: info.VerifierKey}
}

// checkpoint fetches /v1/tlog/checkpoint, verifies its signature and
// parses the C2SP checkpoint body: origin, size, root hash.
func (c *tlogClient) checkpoint() tlog.Tree {
	t := c.e.t
	t.Helper()
	r := c.e.ok(200, "GET", "/v1/tlog/checkpoint", c.key, "", nil, nil)
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Errorf("checkpoint Content-Type = %q, want text/plain", ct)
	}
	if cc := r.header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("checkpoint Cache-Control = %q, want no-store", cc)
	}
	v, err := note.NewVerifier(c.vkey)
	if err != nil {
		t.Fatal(err)
	}
	n, err := note.Open(r.body, note.VerifierList(v))
	if err != nil {
		t.Fatalf("note.Open(checkpoint) = %v\n%s", err, r.body)
	}
	lines := strings.Split(n.Text, "\n")
	if len(lines) < 4 {
		t.Fatalf("checkpoint body %q: want origin, size, hash", n.Text)
	}
	size, err := strconv.ParseInt(lines[1], 10, 64)
	if err != nil {
		t.Fatalf("checkpoint size %q: %v", lines[1], err)
	}
	h, err := base64.StdEncoding.DecodeString(lines[2])
	if err != nil || len(h) != tlog.HashSize {
		t.Fatalf("checkpoint hash %q: not base64 of 32 bytes", lines[2])
	}
	return tlog.Tree{N: size, Hash: tlog.Hash(h)}
}

// c2spPath is the tlog-tiles path of a hash tile: tlog's Tile.Path with
// the height left out (tile/8/L/N -> tile/L/N).
func c2spPath(tile tlog.Tile) string {
	return "tile/" + strings.TrimPrefix(tile.Path(), "tile/8/")
}

// Height is the tiles' height, 8 in tlog-tiles.
func (c *tlogClient) Height() int { return 8 }

// ReadTiles fetches each tile over HTTP and checks its Cache-Control.
func (c *tlogClient) ReadTiles(tiles []tlog.Tile) ([][]byte, error) {
	out := make([][]byte, len(tiles))
	for i, tile := range tiles {
		r := c.e.do("GET", "/v1/tlog/"+c2spPath(tile), c.key, "", nil)
		if r.status != 200 {
			return nil, fmt.Errorf("GET %s = %d %s", c2spPath(tile), r.status, r.body)
		}
		// Partial tiles too: tile .p/W never changes.
		if cc, want := r.header.Get("Cache-Control"), "private, max-age=31536000, immutable"; cc != want {
			c.e.t.Errorf("%s: Cache-Control %q, want %q", c2spPath(tile), cc, want)
		}
		// The same tile as tlog names it, height first.
		if g := c.e.do("GET", "/v1/tlog/"+tile.Path(), c.key, "", nil); g.status != 200 || !bytes.Equal(g.body, r.body) {
			c.e.t.Errorf("GET %s = %d %q, want the tile of %s", tile.Path(), g.status, g.body, c2spPath(tile))
		}
		out[i] = r.body
	}
	return out, nil
}

// SaveTiles keeps nothing.
func (c *tlogClient) SaveTiles(tiles []tlog.Tile, data [][]byte) {}

// bundle fetches the entry bundle at index of width w (256 for a full one)
// and splits it into its entries.
func (c *tlogClient) bundle(index int64, w int) [][]byte {
	t := c.e.t
	t.Helper()
	path := c2spPath(tlog.Tile{H: 8, L: 0, N: index, W: w})
	path = "tile/entries/" + strings.TrimPrefix(path, "tile/0/")
	r := c.e.ok(200, "GET", "/v1/tlog/"+path, c.key, "", nil, nil)
	if cc, want := r.header.Get("Cache-Control"), "private, max-age=31536000, immutable"; cc != want {
		t.Errorf("%s: Cache-Control %q, want %q", path, cc, want)
	}
	var entries [][]byte
	for b := r.body; len(b) > 0; {
		if len(b) < 2 {
			t.Fatalf("%s: truncated length", path)
		}
		n := int(binary.BigEndian.Uint16(b))
		if len(b) < 2+n {
			t.Fatalf("%s: truncated entry", path)
		}
		entries, b = append(entries, b[2:2+n]), b[2+n:]
	}
	if len(entries) != w {
		t.Fatalf("%s holds %d entries, want %d", path, len(entries), w)
	}
	return entries
}

// entry reads the entry at seq from the bundles of a tree of size n.
func (c *tlogClient) entry(seq, n int64) []byte {
	index := seq / 256
	w := 256
	if (index+1)*256 > n {
		w = int(n % 256)
	}
	return c.bundle(index, w)[seq%256]
}

// An independent tlog-tiles client reads a log of 700 events and more:
// the signed checkpoint, hash tiles verified against it, inclusion of
// leaves read from entry bundles, and consistency between two checkpoints.
func TestTlogTiles(t *testing.T) {
	e := newEnvAudit(t, server.Options{})
	rs := e.appendN("acme-append", 700)
	reader := newTlogClient(e, "acme-read")
	tree := reader.checkpoint()
	if tree.N != e.start["acme"]+700 {
		t.Fatalf("checkpoint size %d, want %d", tree.N, e.start["acme"]+700)
	}
	// The append-only key reads the checkpoint and the hash tiles.
	appender := newTlogClient(e, "acme-append")
	if got := appender.checkpoint(); got != tree {
		t.Errorf("checkpoint for the append key %+v, want %+v", got, tree)
	}
	thr := tlog.TileHashReader(tree, appender)
	for _, i := range []int{0, 1, 200, 255, 256, 511, 512, 699} {
		seq := rs.Events[i].Seq
		leaf := reader.entry(seq, tree.N)
		var got struct{ ID string }
		if err := json.Unmarshal(leaf, &got); err != nil || got.ID != rs.Events[i].ID {
			t.Errorf("entry at seq %d = %s (%v), want event %s", seq, leaf, err, rs.Events[i].ID)
		}
		proof, err := tlog.ProveRecord(tree.N, seq, thr)
		if err != nil {
			t.Fatalf("ProveRecord(%d, %d) over the tiles: %v", tree.N, seq, err)
		}
		if err := tlog.CheckRecord(proof, tree.N, tree.Hash, seq, tlog.RecordHash(leaf)); err != nil {
			t.Errorf("seq %d: the entry's leaf is not in the checkpoint's tree: %v", seq, err)
		}
	}
	// A leaf altered by one byte fails.
	leaf := reader.entry(rs.Events[3].Seq, tree.N)
	proof, err := tlog.ProveRecord(tree.N, rs.Events[3].Seq, thr)
	if err != nil {
		t.Fatal(err)
	}
	if tlog.CheckRecord(proof, tree.N, tree.Hash, rs.Events[3].Seq, tlog.RecordHash(append([]byte(" "), leaf...))) == nil {
		t.Error("an altered entry checked against the tree")
	}

	// More appends (and the audited bundle reads): the new tree extends
	// the old one.
	e.appendN("acme-append", 300)
	tree2 := appender.checkpoint()
	if tree2.N < tree.N+300 {
		t.Fatalf("second checkpoint size %d, want at least %d", tree2.N, tree.N+300)
	}
	tproof, err := tlog.ProveTree(tree2.N, tree.N, tlog.TileHashReader(tree2, appender))
	if err != nil {
		t.Fatalf("ProveTree(%d, %d) over the tiles: %v", tree2.N, tree.N, err)
	}
	if err := tlog.CheckTree(tproof, tree2.N, tree2.Hash, tree.N, tree.Hash); err != nil {
		t.Errorf("checkpoint of size %d does not extend the one of size %d: %v", tree2.N, tree.N, err)
	}
	// The whole new tree's entries, bundle by bundle, hash to its root.
	var leaves []tlog.Hash
	for index := int64(0); index*256 < tree2.N; index++ {
		w := 256
		if (index+1)*256 > tree2.N {
			w = int(tree2.N % 256)
		}
		for _, en := range reader.bundle(index, w) {
			leaves = append(leaves, tlog.RecordHash(en))
		}
	}
	if got := rootOf(leaves); got != tree2.Hash {
		t.Errorf("the entries of the bundles hash to %v, the checkpoint says %v", got, tree2.Hash)
	}
}

// rootOf is the RFC 6962 root of leaf hashes, computed directly.
func rootOf(leaves []tlog.Hash) tlog.Hash {
	if len(leaves) == 1 {
		return leaves[0]
	}
	k := 1
	for k*2 < len(leaves) {
		k *= 2
	}
	return tlog.NodeHash(rootOf(leaves[:k]), rootOf(leaves[k:]))
}

// The tlog-tiles endpoints answer 404 for what the log has not reached or
// paths that are not tlog-tiles', and apply the keys' scopes.
func TestTlogTilesNotFoundAndScopes(t *testing.T) {
	e := newEnvAudit(t, server.Options{})
	e.appendN("acme-append", 300)
	var info struct {
		TreeSize int64 `json:"tree_size"`
	}
	e.ok(200, "GET", "/v1/log", "acme-append", "", nil, &info)
	n := info.TreeSize // between 300 and 511: tile 0/001 is partial
	if n < 300 || n >= 512 {
		t.Fatalf("log size %d, want 300..511", n)
	}
	w := n % 256
	e.ok(200, "GET", fmt.Sprintf("/v1/tlog/tile/0/001.p/%d", w), "acme-append", "", nil, nil)
	e.ok(200, "GET", "/v1/tlog/tile/0/000", "acme-append", "", nil, nil)
	e.ok(200, "GET", "/v1/tlog/tile/0/000.p/17", "acme-append", "", nil, nil)
	e.ok(200, "GET", "/v1/tlog/tile/1/000.p/1", "acme-append", "", nil, nil)
	e.ok(200, "GET", "/v1/tlog/tile/8/0/000", "acme-append", "", nil, nil) // as golang.org/x/mod/sumdb/tlog names it
	for _, p := range []string{"tile/0/1", "tile/-1/000"} {
		if ae := e.fails(404, "not_found", "", "GET", "/v1/tlog/"+p, "acme-append", "", nil); !strings.Contains(ae.Error.Message, "no such tile path") {
			t.Errorf("GET /v1/tlog/%s: %q, want it to say the tile path is not one", p, ae.Error.Message)
		}
	}
	for _, p := range []string{
		"tile/8/000", "tile/8/0/002", "tile/8/100/000", "tile/8/0/x001/000",
		fmt.Sprintf("tile/0/001.p/%d", w+1), // a width not reached
		"tile/0/001",                        // full tile beyond the tree
		"tile/0/002", "tile/0/x001/000", "tile/1/000", "tile/2/000.p/1",
		"tile/0/0", "tile/0/1", "tile/0/x000/000", "tile/0/000.p/256", "tile/0/000.p/0", "tile/0/000.p/01",
		"tile/00/000", "tile/-1/000", "tile/0/abc", "tile/0/000/", "tile/0", "tile/9/000.p/1",
		"tile/0/x999/x999/x999/x999/x999/x999/x999/999",
	} {
		e.fails(404, "not_found", "", "GET", "/v1/tlog/"+p, "acme-append", "", nil)
	}
	for _, p := range []string{
		fmt.Sprintf("tile/entries/001.p/%d", w+1), "tile/entries/001", "tile/entries/002",
		"tile/entries/1", "tile/entries/000.p/256", "tile/entries/x000/000",
	} {
		e.fails(404, "not_found", "", "GET", "/v1/tlog/"+p, "acme-read", "", nil)
	}

	// Scopes: entries need read; hash tiles and the checkpoint any key.
	e.fails(403, "forbidden", "", "GET", "/v1/tlog/tile/entries/000", "acme-append", "", nil)
	e.fails(401, "unauthorized", "", "GET", "/v1/tlog/tile/0/000", "", "", nil)
	e.fails(401, "unauthorized", "", "GET", "/v1/tlog/checkpoint", "", "", nil)
	e.ok(200, "GET", "/v1/tlog/checkpoint", "acme-admin", "", nil, nil)
	before := bundleReads(t, e, "tile/entries/000")
	r := e.ok(200, "GET", "/v1/tlog/tile/entries/000", "acme-read", "", nil, nil)
	if len(r.body) < 256*2 || r.header.Get("Content-Type") != "application/octet-stream" {
		t.Errorf("full bundle: %d bytes, Content-Type %q", len(r.body), r.header.Get("Content-Type"))
	}
	// Each bundle read is recorded once, naming the bundle, under the key.
	if after := bundleReads(t, e, "tile/entries/000"); after != before+1 {
		t.Errorf("reading entries/000 once added %d audit events, want 1", after-before)
	}
	e.ok(200, "GET", fmt.Sprintf("/v1/tlog/tile/entries/001.p/%d", w), "acme-read", "", nil, nil)
	if got := bundleReads(t, e, fmt.Sprintf("tile/entries/001.p/%d", w)); got != 1 {
		t.Errorf("reading a partial bundle added %d audit events naming it, want 1", got)
	}
	// The other tenant's key reads its own log only: globex's first tile
	// differs from acme's.
	a := e.ok(200, "GET", "/v1/tlog/tile/0/000.p/1", "acme-append", "", nil, nil)
	g := e.ok(200, "GET", "/v1/tlog/tile/0/000.p/1", "globex-admin", "", nil, nil)
	if bytes.Equal(a.body, g.body) {
		t.Error("globex's key read acme's first leaf hash")
	}
}

// bundleReads counts the audit events of the acme-read key naming the
// bundle at path.
func bundleReads(t *testing.T, e *env, path string) int {
	t.Helper()
	l, err := e.db.Log(context.Background(), "acme")
	if err != nil {
		t.Fatal(err)
	}
	page, err := l.Search(context.Background(), api.Query{Action: "trail.export", Actor: e.ids["acme-read"], TargetType: "tlog_entry_bundle", TargetID: path, Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	return len(page.Events)
}

// A damaged event, or one altered so that it still decodes, fails the
// bundle that holds it (500 damaged, naming it); others are served.
func TestTlogTilesDamagedEvent(t *testing.T) {
	backends.Run(t, testTlogTilesDamagedEvent)
}

func testTlogTilesDamagedEvent(t *testing.T, b backends.Backend) {
	e := newEnvOn(t, b, server.Options{})
	tp := b.Tamper(t, e.loc)
	ctx := context.Background()
	l, err := e.db.Log(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	rs, err := l.AppendBatch(ctx, storetest.Events(800, 5))
	if err != nil {
		t.Fatal(err)
	}
	broken, altered := rs[300].Seq, rs[600].Seq
	breakEvent(t, tp, "acme", broken)
	alterEvent(t, tp, "acme", altered)
	path := func(seq int64) string { return fmt.Sprintf("/v1/tlog/tile/entries/%03d", seq/256) }
	wantDamaged(t, "GET "+path(broken), e.do("GET", path(broken), "acme-read", "", nil), broken)
	wantDamaged(t, "GET "+path(altered), e.do("GET", path(altered), "acme-read", "", nil), altered)
	e.ok(200, "GET", "/v1/tlog/tile/entries/000", "acme-read", "", nil, nil)
	e.ok(200, "GET", "/v1/tlog/tile/0/001", "acme-read", "", nil, nil)
}

// Entry bundles are gzipped for a client that accepts gzip, and sent as
// they are to one that does not.
func TestTlogTilesGzip(t *testing.T) {
	e := newEnv(t, server.Options{})
	e.appendN("acme-append", 300)
	get := func(accept string) (*http.Response, []byte) {
		req, err := http.NewRequest("GET", e.url+"/v1/tlog/tile/entries/000", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+e.keys["acme-read"])
		if accept != "" {
			req.Header.Set("Accept-Encoding", accept)
		}
		// A transport of its own, that does not ask for gzip by itself
		// nor undo it.
		resp, err := (&http.Client{Transport: &http.Transport{DisableCompression: true}}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("GET entries/000 (Accept-Encoding %q) = %d %s %v", accept, resp.StatusCode, b, err)
		}
		return resp, b
	}
	plainResp, plain := get("")
	if ce := plainResp.Header.Get("Content-Encoding"); ce != "" {
		t.Errorf("without Accept-Encoding: Content-Encoding %q", ce)
	}
	if n := binary.BigEndian.Uint16(plain); plain[2] != '{' || int(n) > len(plain) {
		t.Errorf("uncompressed bundle starts %q", plain[:min(len(plain), 16)])
	}
	for _, accept := range []string{"gzip", "br, gzip;q=0.5", "identity, GZIP"} {
		resp, b := get(accept)
		if ce := resp.Header.Get("Content-Encoding"); ce != "gzip" {
			t.Errorf("Accept-Encoding %q: Content-Encoding %q, want gzip", accept, ce)
			continue
		}
		zr, err := gzip.NewReader(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		unz, err := io.ReadAll(zr)
		if err != nil || !bytes.Equal(unz, plain) {
			t.Errorf("Accept-Encoding %q: the gzipped bundle is not the bundle (%v)", accept, err)
		}
	}
	if resp, b := get("gzip;q=0, identity"); resp.Header.Get("Content-Encoding") != "" || !bytes.Equal(b, plain) {
		t.Errorf("gzip;q=0: Content-Encoding %q", resp.Header.Get("Content-Encoding"))
	}
}

// TestTlogEmptyCheckpoint: an empty log has a checkpoint, as C2SP
// tlog-tiles asks of every log: size 0, RFC 6962's empty tree hash, signed
// with the log's key, the same bytes each time.
func TestTlogEmptyCheckpoint(t *testing.T) {
	e := newEnv(t, server.Options{PublicTiles: true})
	l, err := e.db.CreateLog(context.Background(), "empty", "")
	if err != nil {
		t.Fatal(err)
	}
	r := e.do("GET", "/tlog/empty/checkpoint", "", "", nil)
	if r.status != 200 {
		t.Fatalf("GET /tlog/empty/checkpoint = %d %s, want 200", r.status, r.body)
	}
	v, err := note.NewVerifier(l.VerifierKey())
	if err != nil {
		t.Fatal(err)
	}
	n, err := note.Open(r.body, note.VerifierList(v))
	if err != nil {
		t.Fatalf("the empty log's checkpoint does not verify: %v\n%s", err, r.body)
	}
	empty := sha256.Sum256(nil)
	if want := l.Origin() + "\n0\n" + base64.StdEncoding.EncodeToString(empty[:]) + "\n"; n.Text != want {
		t.Errorf("the empty log's checkpoint says %q, want %q", n.Text, want)
	}
	if again := e.do("GET", "/tlog/empty/checkpoint", "", "", nil); !bytes.Equal(again.body, r.body) {
		t.Errorf("the empty log's checkpoint changed between two reads:\n%s\n%s", r.body, again.body)
	}
	if r := e.do("GET", "/tlog/empty/tile/0/000.p/1", "", "", nil); r.status != 404 {
		t.Errorf("a tile of the empty log = %d, want 404", r.status)
	}
}
