package eventid

import (
	"crypto/sha256"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"
)

func TestMake(t *testing.T) {
	at := time.Date(2026, 1, 1, 0, 0, 0, 123456789, time.UTC)
	id := Make("default", 0x0102030405, at)
	u, err := ulid.ParseStrict(id)
	if err != nil || len(id) != 26 || id != strings.ToUpper(id) {
		t.Fatalf("Make() = %q, not a canonical ULID: %v", id, err)
	}
	if got, want := u.Time(), uint64(at.UnixMilli()); got != want {
		t.Errorf("Make() time = %d, want %d", got, want)
	}
	fp := sha256.Sum256([]byte("default"))
	want := append([]byte{1, 2, 3, 4, 5}, fp[:5]...)
	if got := u.Entropy(); string(got) != string(want) {
		t.Errorf("Make() entropy = %x, want %x", got, want)
	}
}

func TestMakeOrder(t *testing.T) {
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	prev := ""
	for seq := range int64(3000) {
		// Several events share a millisecond; received_at never goes back.
		id := Make("audit", seq, at.Add(time.Duration(seq/7)*time.Millisecond))
		if id <= prev {
			t.Fatalf("Make(seq %d) = %s, not after %s", seq, id, prev)
		}
		prev = id
	}
	later := at.Add(time.Hour)
	for _, seq := range []int64{MaxSeq - 2, MaxSeq - 1, MaxSeq} {
		id := Make("audit", seq, later)
		if id <= prev {
			t.Fatalf("Make(seq %d) = %s, not after %s", seq, id, prev)
		}
		prev = id
	}
	if a, b := Make("a", 1, at), Make("b", 1, at); a == b {
		t.Errorf("Make gives %s for two logs", a)
	}
}

func TestParse(t *testing.T) {
	at := time.Date(2026, 5, 6, 7, 8, 9, 0, time.UTC)
	for _, seq := range []int64{0, 1, 255, 256, 1 << 32, 123456789012, MaxSeq} {
		id := Make("prod", seq, at)
		got, err := Parse("prod", id)
		if err != nil || got != seq {
			t.Errorf("Parse(%q) = %d, %v, want %d, nil", id, got, err, seq)
		}
		got, err = Parse("prod", strings.ToLower(id))
		if err != nil || got != seq {
			t.Errorf("Parse(%q) = %d, %v, want %d, nil", strings.ToLower(id), got, err, seq)
		}
		if _, err := Parse("staging", id); !errors.Is(err, ErrForeignID) {
			t.Errorf("Parse(staging, %q) error = %v, want ErrForeignID", id, err)
		}
	}
	good := Make("prod", 1, at)
	garbage := []string{
		"",
		"x",
		good[:25],
		good + "0",
		"8ZZZZZZZZZZZZZZZZZZZZZZZZZ", // timestamp overflows 48 bits
		"01KDNB3J2Y0000000001A1B2CU", // U is not Crockford base32
		"01KDNB3J2Y0000000001A1B2C!",
		strings.Repeat("\xff", 26),
	}
	for _, id := range garbage {
		if _, err := Parse("prod", id); !errors.Is(err, ErrMalformedID) {
			t.Errorf("Parse(%q) error = %v, want ErrMalformedID", id, err)
		}
	}
}

func TestMakePanics(t *testing.T) {
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		seq  int64
		at   time.Time
	}{
		{"negative seq", -1, at},
		{"seq too large", MaxSeq + 1, at},
		{"before 1970", 1, time.Unix(-1, 0)},
		{"after ULID range", 1, time.Date(10900, 1, 1, 0, 0, 0, 0, time.UTC)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Errorf("Make(%d, %v) did not panic", tt.seq, tt.at)
				}
			}()
			Make("l", tt.seq, tt.at)
		})
	}
}
