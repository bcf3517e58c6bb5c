package server_test

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"
	"time"

	_ "modernc.org/sqlite"

	"github.com/trail-audit/trail"
	"github.com/trail-audit/trail/internal/server"
)

// /readyz says whether appends could commit now: not while another
// connection holds the database's write lock, again once it lets go.
func TestReadyzChecksWritable(t *testing.T) {
	e := newEnv(t, server.Options{})
	e.ok(200, "GET", "/readyz", "", "", nil, nil)

	other, err := sql.Open("sqlite", "file:"+filepath.Join(e.db.Dir(), trail.DatabaseFile))
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	ctx := context.Background()
	conn, err := other.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.ExecContext(ctx, "BEGIN EXCLUSIVE"); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	e.fails(503, "unavailable", "", "GET", "/readyz", "", "", nil)
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("/readyz took %v to say not ready", d)
	}
	e.ok(200, "GET", "/healthz", "", "", nil, nil) // the process is up all the same
	if _, err := conn.ExecContext(ctx, "ROLLBACK"); err != nil {
		t.Fatal(err)
	}
	conn.Close()
	e.ok(200, "GET", "/readyz", "", "", nil, nil)
}
