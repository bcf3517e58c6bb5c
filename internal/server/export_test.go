package server_test

import (
	"bytes"
	"encoding/csv"
	"fmt"
	"strings"
	"testing"

	"github.com/trail-audit/trail"
	"github.com/trail-audit/trail/event"
	"github.com/trail-audit/trail/internal/canon"
	"github.com/trail-audit/trail/internal/server"
)

func TestExport(t *testing.T) {
	e := newEnv(t, server.Options{})
	var body bytes.Buffer
	for i := range 30 {
		action := "user.login"
		if i%3 == 0 {
			action = "user.delete"
		}
		fmt.Fprintf(&body, `{"actor":{"id":"=u%d"},"action":%q}`+"\n", i, action)
	}
	e.ok(201, "POST", "/v1/events", "acme-append", "application/x-ndjson", body.Bytes(), nil)

	// NDJSON: the matches, oldest first, as canonical events.
	r := e.ok(200, "GET", "/v1/export?action=user.delete", "acme-read", "", nil, nil)
	lines := strings.Split(strings.TrimSuffix(string(r.body), "\n"), "\n")
	if len(lines) != 10 || r.header.Get("Content-Type") != "application/x-ndjson" {
		t.Fatalf("NDJSON export = %d lines (%s), want 10", len(lines), r.header.Get("Content-Type"))
	}
	for i, line := range lines {
		ev, err := event.DecodeStored([]byte(line))
		if seq := e.start["acme"] + int64(3*i); err != nil || ev.Seq != seq || string(canon.Append(nil, &ev)) != line {
			t.Fatalf("line %d = %s (%v), want the canonical event at seq %d", i, line, err, seq)
		}
	}
	// CSV, with formula-looking cells guarded unless asked not to.
	r = e.ok(200, "GET", "/v1/export?format=csv&action=user.delete", "acme-read", "", nil, nil)
	rows, err := csv.NewReader(bytes.NewReader(r.body)).ReadAll()
	if err != nil || len(rows) != 11 || strings.Join(rows[0], ",") != strings.Join(trail.CSVHeader, ",") {
		t.Fatalf("CSV export = %d rows (%v), want a header and 10", len(rows), err)
	}
	if rows[1][4] != "'=u0" {
		t.Errorf("CSV actor_id = %q, want the guarded '=u0", rows[1][4])
	}
	r = e.ok(200, "GET", "/v1/export?format=csv&csv_raw=true&actor=%3Du3", "acme-read", "", nil, nil)
	if rows, _ := csv.NewReader(bytes.NewReader(r.body)).ReadAll(); len(rows) != 2 || rows[1][4] != "=u3" {
		t.Errorf("raw CSV export for actor =u3 = %v", rows)
	}
	for _, bad := range []string{"format=xml", "limit=5", "cursor=3", "nosuch=1"} {
		if r := e.do("GET", "/v1/export?"+bad, "acme-read", "", nil); r.status != 400 {
			t.Errorf("GET /v1/export?%s = %d, want 400", bad, r.status)
		}
	}
	if r := e.do("GET", "/v1/export", "acme-append", "", nil); r.status != 403 {
		t.Errorf("export with an append-only key = %d, want 403", r.status)
	}
	// Another tenant exports only its own log: its key's creation.
	r = e.ok(200, "GET", "/v1/export", "globex-admin", "", nil, nil)
	if lines := strings.Split(strings.TrimSuffix(string(r.body), "\n"), "\n"); len(lines) != 1 || !strings.Contains(lines[0], `"action":"trail.key.create"`) || !strings.Contains(lines[0], `"log":"globex"`) {
		t.Errorf("globex export = %q, want its one trail.key.create event", r.body)
	}
}
