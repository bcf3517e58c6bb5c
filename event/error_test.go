package event

import "testing"

func TestErrorString(t *testing.T) {
	tests := []struct {
		err  Error
		want string
	}{
		{Error{Index: 3, Field: "actor.id", Reason: "required"}, "event 3: actor.id: required"},
		{Error{Index: -1, Field: "actor.id", Reason: "required"}, "actor.id: required"},
		{Error{Index: 3, Reason: "not a JSON object"}, "event 3: not a JSON object"},
		{Error{Index: 0, Field: "time", Reason: "x"}, "event 0: time: x"},
	}
	for _, tt := range tests {
		if got := tt.err.Error(); got != tt.want {
			t.Errorf("%#v.Error() = %q, want %q", tt.err, got, tt.want)
		}
	}
}
