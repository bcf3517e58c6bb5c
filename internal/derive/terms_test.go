package derive

import (
	"reflect"
	"testing"
)

func TestTerms(t *testing.T) {
	tests := []struct {
		q    string
		want []Term
	}{
		{"", nil},
		{"login", []Term{{Text: "login"}}},
		{"user.login fail*", []Term{{Text: "user"}, {Text: "login"}, {Text: "fail", Prefix: true}}},
		{"a.b*", []Term{{Text: "a"}, {Text: "b", Prefix: true}}},
	}
	for _, tt := range tests {
		got := Terms(tt.q)
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("Terms(%q) = %+v, want %+v", tt.q, got, tt.want)
		}
	}
	text := "user login failed for alice"
	for q, want := range map[string]bool{
		"login":       true,
		"fail*":       true,
		"fail":        false,
		"login alice": true,
		"login bob":   false,
		"user.login":  true,
		"failed ali*": true,
		"nothing*":    false,
		"":            true,
	} {
		if got := MatchTerms(Terms(q), text); got != want {
			t.Errorf("MatchTerms(Terms(%q), %q) = %v, want %v", q, text, got, want)
		}
	}
}
