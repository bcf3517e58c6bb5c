// Package baseline is what an app does without Trail, for benchmarks to
// compare with: one plain SQLite table of audit rows (same driver and
// connection settings as Trail's writer: WAL, synchronous=FULL, same page
// cache) with the secondary indexes Trail keeps (actor, action, ip, failed
// outcomes, target), one writer connection, no hashing, no signing, no
// full-text index. PGTable is its PostgreSQL counterpart, for the
// PostgreSQL benchmarks.
package baseline

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"

	"github.com/trail-audit/trail/event"
	"github.com/trail-audit/trail/internal/store/sqlite"
)

const schema = `
CREATE TABLE audit (
	id INTEGER PRIMARY KEY, time TEXT, actor_id TEXT, actor_type TEXT, actor_email TEXT, actor_role TEXT,
	action TEXT, target_type TEXT, target_id TEXT, outcome TEXT, reason TEXT, ip TEXT, user_agent TEXT,
	request_id TEXT, metadata TEXT);
CREATE INDEX audit_actor ON audit (actor_id);
CREATE INDEX audit_action ON audit (action);
CREATE INDEX audit_ip ON audit (ip);
CREATE INDEX audit_failed ON audit (outcome) WHERE outcome <> 'success';
CREATE INDEX audit_target ON audit (target_type, target_id);
`

// Table is the plain table in a database of its own.
type Table struct {
	DB  *sql.DB
	ins *sql.Stmt
}

// Create makes the table in a new database file in dir.
func Create(dir string) (*Table, error) {
	db, err := sql.Open(sqlite.DriverName, sqlite.WriterDSN(filepath.Join(dir, "baseline.db"), 64<<20))
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(1)
	if _, err := db.Exec(schema); err != nil {
		db.Close()
		return nil, fmt.Errorf("baseline schema: %w", err)
	}
	ins, err := db.Prepare("INSERT INTO audit (time, actor_id, actor_type, actor_email, actor_role, action, target_type, target_id, outcome, reason, ip, user_agent, request_id, metadata) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)")
	if err != nil {
		db.Close()
		return nil, err
	}
	return &Table{DB: db, ins: ins}, nil
}

// Close closes the database.
func (t *Table) Close() error {
	t.ins.Close()
	return t.DB.Close()
}

// Insert adds e as a row, in tx if it is not nil, else in a transaction of
// its own, and returns the row's id.
func (t *Table) Insert(ctx context.Context, tx *sql.Tx, e *event.Event) (int64, error) {
	st := t.ins
	if tx != nil {
		st = tx.StmtContext(ctx, t.ins)
	}
	var tt, tid string
	if len(e.Targets) > 0 {
		tt, tid = e.Targets[0].Type, e.Targets[0].ID
	}
	res, err := st.ExecContext(ctx, e.Time.Format("2006-01-02T15:04:05.999999999Z07:00"), e.Actor.ID, e.Actor.Type, e.Actor.Email, e.Actor.Role,
		e.Action, tt, tid, string(e.Outcome), e.Reason, e.Source.IP, e.Source.UserAgent, e.RequestID, string(e.Metadata))
	if err != nil {
		return 0, err
	}
	return res.LastInsertId()
}
