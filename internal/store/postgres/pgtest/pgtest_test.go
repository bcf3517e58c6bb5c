package pgtest

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
)

// TestDB checks that DB gives each caller a database of its own, usable
// at once, and drops it when the caller ends.
func TestDB(t *testing.T) {
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, ServerURL())
	if err != nil {
		Unavailable(t, err)
	}
	defer conn.Close(ctx)
	var names []string
	for range 2 {
		t.Run("inner", func(t *testing.T) {
			conn, err := pgx.Connect(ctx, DB(t))
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close(ctx)
			var name string
			if err := conn.QueryRow(ctx, "SELECT current_database()").Scan(&name); err != nil {
				t.Fatal(err)
			}
			if _, err := conn.Exec(ctx, "CREATE TABLE t (x int)"); err != nil {
				t.Fatalf("the new database %s is not usable: %v", name, err)
			}
			names = append(names, name)
		})
	}
	if len(names) != 2 || names[0] == names[1] {
		t.Fatalf("databases of two tests = %q, want two different ones", names)
	}
	var left int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM pg_database WHERE datname = ANY($1)", names).Scan(&left); err != nil || left != 0 {
		t.Errorf("%d of the databases %q are left after their tests ended (%v), want none", left, names, err)
	}
}
