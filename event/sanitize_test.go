package event

import (
	"testing"
	"unicode/utf8"
)

func TestSanitize(t *testing.T) {
	for _, tt := range []struct {
		in   string
		n    int
		want string
	}{
		{"plain", 10, "plain"},
		{"a\x00b\x1fc\x7fd\te", 10, "abcde"},
		{"bad\xffbyte", 20, "bad\uFFFDbyte"},
		{"héllo", 2, "h"}, // é is 2 bytes: cut before it, not through it
		{"héllo", 3, "hé"},
	} {
		got := Sanitize(tt.in, tt.n)
		if got != tt.want || !utf8.ValidString(got) || len(got) > tt.n {
			t.Errorf("Sanitize(%q, %d) = %q, want %q", tt.in, tt.n, got, tt.want)
		}
	}
}
