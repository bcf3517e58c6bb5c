package main

import (
	"database/sql"
	"encoding/binary"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// rawStore opens the database of data directly, as someone with access to
// the file would, and returns it with the id of the log "default".
func rawStore(t *testing.T, data string) (*sql.DB, int64) {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(data, "trail.db")+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	t.Cleanup(func() { db.Close() })
	var id int64
	if err := db.QueryRow("SELECT id FROM logs WHERE name = 'default'").Scan(&id); err != nil {
		t.Fatal(err)
	}
	return db, id
}

// breakRecord changes one byte of the stored record of event seq of the
// log "default", its outcome code, so that it no longer decodes (see
// bundle.go in internal/store/sqlite for the layout).
func breakRecord(t *testing.T, data string, seq int64) {
	t.Helper()
	db, id := rawStore(t, data)
	var k int64
	var b []byte
	if err := db.QueryRow("SELECT k, data FROM events WHERE k >= ? AND k <= ? ORDER BY k DESC LIMIT 1", id<<40, id<<40|seq).Scan(&k, &b); err != nil {
		t.Fatal(err)
	}
	off := 1
	_, w := binary.Uvarint(b[off:])
	off += w
	for i := k - id<<40; ; i++ {
		n, w := binary.Uvarint(b[off:])
		off += w
		if i == seq {
			break
		}
		off += int(n)
	}
	_, w1 := binary.Varint(b[off:])
	_, w2 := binary.Varint(b[off+w1:])
	b[off+w1+w2] = 9
	if _, err := db.Exec("UPDATE events SET data = ? WHERE k = ?", b, k); err != nil {
		t.Fatal(err)
	}
}

// failsDamaged runs trail and checks that it exits 1 saying the event at
// seq is damaged and to run trail verify.
func failsDamaged(t *testing.T, seq string, args ...string) {
	t.Helper()
	r := run(t, "", args...)
	if r.code != 1 || !strings.Contains(r.stderr, "stored event at seq "+seq+" is damaged") || !strings.Contains(r.stderr, "run trail verify") {
		t.Errorf("trail %s: exit %d, stderr %q; want 1 saying the stored event at seq %s is damaged, and to run trail verify",
			strings.Join(args, " "), r.code, r.stderr, seq)
	}
}

// A damaged event is reported as damaged by get, search and export, on a
// data directory and through a server.
func TestDamagedEventCLI(t *testing.T) {
	data, vkey := initLog(t)
	rs := appendAll(t, data)
	key := lastLine(ok(t, "", "--data", data, "keys", "create", "--log", "default", "--scope", "read").stdout)
	seq, id := rs[5][0], rs[5][1]
	n, err := strconv.ParseInt(seq, 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	breakRecord(t, data, n)

	failsDamaged(t, seq, "get", "--data", data, id)
	failsDamaged(t, seq, "search", "--data", data, "--limit", "1000")
	failsDamaged(t, seq, "export", "--data", data)
	ok(t, "", "search", "--data", data, "--limit", "10")

	s := serve(t, data, "--rate-limit", "0")
	defer s.stop(t)
	remote := []string{"--server", s.url, "--key", key}
	failsDamaged(t, seq, append(remote, "get", "--verifier-key", vkey, id)...)
	failsDamaged(t, seq, append(remote, "search", "--limit", "1000")...)
	failsDamaged(t, seq, append(remote, "export")...)
}

// An event stored past the end of the log fails verify and append, both
// naming its seq.
func TestStrayEventCLI(t *testing.T) {
	data, _ := initLog(t)
	appendAll(t, data)
	db, id := rawStore(t, data)
	var size int64
	if err := db.QueryRow("SELECT size FROM logs WHERE id = ?", id).Scan(&size); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec("INSERT INTO events (k, data) SELECT ?, data FROM events WHERE k = (SELECT max(k) FROM events WHERE k < ?)", id<<40|size, id<<40|size); err != nil {
		t.Fatal(err)
	}
	db.Close()
	stray := strconv.FormatInt(size, 10)
	r := run(t, "", "verify", "--data", data)
	if r.code != 1 || !strings.Contains(r.stderr, "verification FAILED: seq "+stray+": an event is stored past the end of the log") {
		t.Errorf("trail verify: exit %d, stderr %q; want 1 naming seq %s, past the end of the log", r.code, r.stderr, stray)
	}
	r = run(t, "", "append", "--data", data, "--actor", "alice", "--action", "user.login")
	if r.code != 1 || !strings.Contains(r.stderr, "stored event at seq "+stray+" is damaged") || !strings.Contains(r.stderr, "nothing was stored") {
		t.Errorf("trail append: exit %d, stderr %q; want 1 saying the stored event at seq %s is damaged and nothing was stored", r.code, r.stderr, stray)
	}
}
