package trail

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/trail-audit/trail/event"
	"github.com/trail-audit/trail/internal/store/sqlite"
)

// TestVerifyOriginChanged: a log's origin changed in the database, so
// that it is no longer its key's name, is reported by Verify, and an
// append refuses it rather than fail to sign.
func TestVerifyOriginChanged(t *testing.T) {
	ctx := context.Background()
	dir := oneEventDir(t, "example.com/acme")
	editDB(t, dir, "UPDATE logs SET origin = 'example.com/other' WHERE name = 'acme'")

	db, err := Open(ctx, dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	l, err := db.Log(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	var ve *VerifyError
	if _, err := l.Verify(ctx, VerifyOptions{}); !errors.As(err, &ve) || !strings.Contains(err.Error(), `stored origin "example.com/other" is not the name of its key`) {
		t.Errorf("Verify = %v, want a VerifyError naming the origin", err)
	}
	if _, err := l.Append(ctx, event.Event{Actor: event.Actor{ID: "a"}, Action: "user.login"}); !errors.Is(err, ErrDamaged) {
		t.Errorf("Append = %v, want ErrDamaged", err)
	}
}

// TestVerifyIndexPastEnd: index progress raised past the log's end is
// reported by VerifyIndex as such, not as events missing from the index.
func TestVerifyIndexPastEnd(t *testing.T) {
	ctx := context.Background()
	dir := oneEventDir(t, "")
	editDB(t, dir, "UPDATE logs SET indexed_size = 500 WHERE name = 'acme'")
	db, err := Open(ctx, dir, Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	l, err := db.Log(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	var ve *VerifyError
	if _, err := l.VerifyIndex(ctx, VerifyIndexOptions{}); !errors.As(err, &ve) || !strings.Contains(err.Error(), "cover 500 events, past the log's 1") {
		t.Errorf("VerifyIndex = %v, want a VerifyError saying the progress is past the end", err)
	}
}

// oneEventDir returns a new data directory holding the log acme, of
// origin, with one event, indexed, and closed.
func oneEventDir(t *testing.T, origin string) string {
	t.Helper()
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "data")
	db, err := Init(ctx, dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	l, err := db.CreateLog(ctx, "acme", origin)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Append(ctx, event.Event{Actor: event.Actor{ID: "a"}, Action: "user.login"}); err != nil {
		t.Fatal(err)
	}
	if err := l.WaitIndexed(ctx); err != nil {
		t.Fatal(err)
	}
	return dir
}

// editDB runs query on the database of the data directory dir, with no
// Trail code in between.
func editDB(t *testing.T, dir, query string) {
	t.Helper()
	raw, err := sql.Open(sqlite.DriverName, filepath.Join(dir, "trail.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	if _, err := raw.Exec(query); err != nil {
		t.Fatal(err)
	}
}
