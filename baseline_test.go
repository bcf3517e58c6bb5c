package trail_test

import (
	"context"
	"database/sql"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/trail-audit/trail"
	"github.com/trail-audit/trail/internal/store/sqlite"
)

// The baseline is what an app does without Trail: one plain SQLite table
// (same driver and connection settings as Trail's writer: WAL,
// synchronous=FULL, same page cache) with the same
// secondary indexes Trail keeps (actor, action, ip, failed outcomes,
// target), no hashing, no signing, no full-text index.

const baselineSchema = `
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

func openBaseline(b testing.TB) (*sql.DB, *sql.Stmt) {
	path := filepath.Join(b.TempDir(), "baseline.db")
	db, err := sql.Open(sqlite.DriverName, sqlite.WriterDSN(path, 64<<20))
	if err != nil {
		b.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	if _, err := db.Exec(baselineSchema); err != nil {
		b.Fatal(err)
	}
	ins, err := db.Prepare("INSERT INTO audit (time, actor_id, actor_type, actor_email, actor_role, action, target_type, target_id, outcome, reason, ip, user_agent, request_id, metadata) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)")
	if err != nil {
		b.Fatal(err)
	}
	return db, ins
}

func baselineInsert(ctx context.Context, st *sql.Stmt, e *trail.Event) error {
	var tt, tid string
	if len(e.Targets) > 0 {
		tt, tid = e.Targets[0].Type, e.Targets[0].ID
	}
	_, err := st.ExecContext(ctx, e.Time.Format("2006-01-02T15:04:05.999999999Z07:00"), e.Actor.ID, e.Actor.Type, e.Actor.Email, e.Actor.Role,
		e.Action, tt, tid, string(e.Outcome), e.Reason, e.Source.IP, e.Source.UserAgent, e.RequestID, string(e.Metadata))
	return err
}

// BenchmarkBaselineBatch1000 inserts 1000 rows per transaction.
func BenchmarkBaselineBatch1000(b *testing.B) {
	evs, _ := workloadEvents(b, 200_000)
	db, ins := openBaseline(b)
	defer db.Close()
	ctx := context.Background()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			b.Fatal(err)
		}
		st := tx.StmtContext(ctx, ins)
		off := (i * 1000) % len(evs)
		for j := range 1000 {
			if err := baselineInsert(ctx, st, &evs[off+j]); err != nil {
				b.Fatal(err)
			}
		}
		if err := tx.Commit(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*1000)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkBaselineSingle commits one row per transaction from one caller.
func BenchmarkBaselineSingle(b *testing.B) {
	evs, _ := workloadEvents(b, 200_000)
	db, ins := openBaseline(b)
	defer db.Close()
	ctx := context.Background()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := baselineInsert(ctx, ins, &evs[i%len(evs)]); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkBaselineParallel32 commits one row per transaction from 32
// goroutines sharing the one write connection.
func BenchmarkBaselineParallel32(b *testing.B) {
	evs, _ := workloadEvents(b, 200_000)
	db, ins := openBaseline(b)
	defer db.Close()
	ctx := context.Background()
	var next atomic.Int64
	b.SetParallelism(32 / max(1, runtimeProcs()))
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := baselineInsert(ctx, ins, &evs[int(next.Add(1))%len(evs)]); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}
