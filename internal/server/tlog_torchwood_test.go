package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"filippo.io/torchwood"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/trail-audit/trail/internal/server"
)

// bearerTransport adds a key's Authorization header to each request and,
// when tamper is set, flips one byte of the entry bundle at that path
// (relative to /v1/tlog/) in the response.
type bearerTransport struct {
	secret string
	// tamper is a tlog-tiles path such as "tile/entries/001", or "".
	tamper string
}

// RoundTrip sends req with the key and alters the tampered bundle's body.
func (b *bearerTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	req = req.Clone(req.Context())
	req.Header.Set("Authorization", "Bearer "+b.secret)
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil || b.tamper == "" || resp.StatusCode != 200 || !strings.HasSuffix(req.URL.Path, "/v1/tlog/"+b.tamper) {
		return resp, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	if len(body) > 10 {
		body[10] ^= 0x01 // inside the first entry, past its length prefix
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	resp.ContentLength = int64(len(body))
	resp.Header.Del("Content-Length")
	return resp, nil
}

// torchwoodFetcher is a torchwood tile fetcher for the server's /v1/tlog/
// prefix that sends the named key, tampering as bearerTransport does.
func torchwoodFetcher(t *testing.T, e *env, key, tamper string) *torchwood.TileFetcher {
	t.Helper()
	hc := &http.Client{Transport: &bearerTransport{secret: e.keys[key], tamper: tamper}, Timeout: 30 * time.Second}
	f, err := torchwood.NewTileFetcher(e.url+"/v1/tlog/", torchwood.WithHTTPClient(hc))
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// torchwoodEntries reads every entry of tree through torchwood's client,
// which checks each against the tree, resuming where Entries stops (it
// leaves a trailing partial bundle to a later call). It returns the entries
// read and the client's error, if any.
func torchwoodEntries(ctx context.Context, f *torchwood.TileFetcher, tree tlog.Tree) ([][]byte, error) {
	c, err := torchwood.NewClient(f, torchwood.WithTimeout(time.Minute))
	if err != nil {
		return nil, err
	}
	var entries [][]byte
	for next := int64(0); next < tree.N; {
		from := next
		for i, entry := range c.Entries(ctx, tree, next) {
			if i != next {
				return entries, fmt.Errorf("torchwood's client yielded index %d, want %d", i, next)
			}
			entries = append(entries, bytes.Clone(entry))
			next = i + 1
		}
		if err := c.Err(); err != nil {
			return entries, err
		}
		if next == from {
			return entries, fmt.Errorf("torchwood's client yielded no entry from index %d", next)
		}
	}
	return entries, nil
}

// An independent tlog-tiles client, filippo.io/torchwood, reads a log of
// 700 events and more through the /v1/tlog/ endpoints with an API key: it
// verifies the signed checkpoint, reads every entry of the full and the
// partial entry bundles checked against the tree, and the entries are the
// events' canonical JSON as GET /v1/events/{id} returns it. A bundle
// altered by one byte in transit makes torchwood report an error.
func TestTlogTorchwood(t *testing.T) {
	e := newEnv(t, server.Options{})
	rs := e.appendN("acme-append", 700)
	ctx := context.Background()

	var info struct {
		VerifierKey string `json:"verifier_key"`
		Origin      string
	}
	e.ok(200, "GET", "/v1/log", "acme-read", "", nil, &info)
	v, err := note.NewVerifier(info.VerifierKey)
	if err != nil {
		t.Fatalf("verifier key %q: %v", info.VerifierKey, err)
	}

	f := torchwoodFetcher(t, e, "acme-read", "")
	signed, err := f.ReadEndpoint(ctx, "checkpoint")
	if err != nil {
		t.Fatalf("torchwood reading the checkpoint: %v", err)
	}
	n, err := note.Open(signed, note.VerifierList(v))
	if err != nil {
		t.Fatalf("note.Open(checkpoint) = %v\n%s", err, signed)
	}
	cp, err := torchwood.ParseCheckpoint(n.Text)
	if err != nil {
		t.Fatalf("torchwood.ParseCheckpoint: %v\n%s", err, n.Text)
	}
	if cp.Origin != info.Origin {
		t.Errorf("checkpoint origin %q, want %q", cp.Origin, info.Origin)
	}
	want := e.start["acme"] + 700
	if cp.N != want {
		t.Fatalf("checkpoint size %d, want %d", cp.N, want)
	}
	if cp.N%torchwood.TileWidth == 0 || cp.N < 2*torchwood.TileWidth {
		t.Fatalf("checkpoint size %d: want full bundles and a partial one", cp.N)
	}

	entries, err := torchwoodEntries(ctx, f, cp.Tree)
	if err != nil {
		t.Fatalf("torchwood reading the entries: %v", err)
	}
	if int64(len(entries)) != cp.N {
		t.Fatalf("torchwood read %d entries, want %d", len(entries), cp.N)
	}
	for i, r := range rs.Events {
		if r.Seq != e.start["acme"]+int64(i) {
			t.Fatalf("event %d at seq %d, want %d", i, r.Seq, e.start["acme"]+int64(i))
		}
		var got struct{ Event json.RawMessage }
		e.ok(200, "GET", "/v1/events/"+r.ID, "acme-read", "", nil, &got)
		if !bytes.Equal(entries[r.Seq], got.Event) {
			t.Errorf("entry %d = %s\nGET /v1/events/%s has event %s", r.Seq, entries[r.Seq], r.ID, got.Event)
		}
	}

	// One byte flipped in a full bundle, then in the partial one: torchwood
	// finds the entry does not hash to the tree's leaf.
	last := cp.N / torchwood.TileWidth
	for _, path := range []string{
		"tile/entries/001",
		torchwood.TilePath(tlog.Tile{H: torchwood.TileHeight, L: -1, N: last, W: int(cp.N % torchwood.TileWidth)}),
	} {
		bad := torchwoodFetcher(t, e, "acme-read", path)
		got, err := torchwoodEntries(ctx, bad, cp.Tree)
		if err == nil {
			t.Errorf("%s altered: torchwood read %d entries and no error", path, len(got))
			continue
		}
		if !strings.Contains(err.Error(), "hash mismatch") {
			t.Errorf("%s altered: torchwood error %q, want a hash mismatch", path, err)
		}
	}
}
