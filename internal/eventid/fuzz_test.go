package eventid

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"
)

func FuzzParse(f *testing.F) {
	f.Add("default", Make("default", 7, time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)))
	f.Add("x", "7ZZZZZZZZZZZZZZZZZZZZZZZZZ")
	f.Add("", "01kdnb3j2y0000000001a1b2c3")
	f.Fuzz(func(t *testing.T, log, id string) {
		seq, err := Parse(log, id)
		if err != nil {
			if !errors.Is(err, ErrMalformedID) && !errors.Is(err, ErrForeignID) {
				t.Fatalf("Parse(%q, %q) error = %v", log, id, err)
			}
			return
		}
		u := ulid.MustParse(id)
		if again := Make(log, seq, ulid.Time(u.Time())); again != strings.ToUpper(id) {
			t.Fatalf("Make(Parse(%q, %q)) = %q", log, id, again)
		}
	})
}
