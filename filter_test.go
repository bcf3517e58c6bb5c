package trail_test

import (
	"context"
	"errors"
	"testing"

	"github.com/trail-audit/trail"
	"github.com/trail-audit/trail/api"
	"github.com/trail-audit/trail/event"
	"github.com/trail-audit/trail/internal/store/storetest"
	"github.com/trail-audit/trail/internal/store/storetest/backends"
)

// TestFilterNotText: a filter no stored value can hold (invalid UTF-8, a
// NUL) is refused naming its parameter, on every backend, by searches and
// exports alike, rather than failing in the store.
func TestFilterNotText(t *testing.T) {
	backends.Run(t, func(t *testing.T, b backends.Backend) {
		ctx := context.Background()
		db, err := initAt(ctx, b.New(t), trail.Options{})
		must(t, err)
		defer db.Close()
		l, err := db.CreateLog(ctx, tamperLog, tamperOrigin)
		must(t, err)
		_, err = l.Append(ctx, storetest.Events(1, 1)[0])
		must(t, err)
		for _, c := range []struct {
			field string
			q     api.Query
		}{
			{"actor", api.Query{Actor: "\xff"}},
			{"actor", api.Query{Actor: "a\x00b"}},
			{"target_type", api.Query{TargetType: "\xc0\xaf", TargetID: "x"}},
			{"target_id", api.Query{TargetType: "user", TargetID: "a\x00"}},
		} {
			var ve *event.Error
			if _, err := l.Search(ctx, c.q); !errors.As(err, &ve) || ve.Field != c.field {
				t.Errorf("Search(%+v) = %v, want an *event.Error naming %s", c.q, err, c.field)
			}
			n := 0
			for _, err := range l.Events(ctx, c.q) {
				if n++; !errors.As(err, &ve) || ve.Field != c.field {
					t.Errorf("Events(%+v) yielded %v, want an *event.Error naming %s", c.q, err, c.field)
				}
			}
			if n != 1 {
				t.Errorf("Events(%+v) yielded %d times, want once, the error", c.q, n)
			}
		}
	})
}
