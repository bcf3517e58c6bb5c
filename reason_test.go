package trail

import (
	"errors"
	"fmt"
	"testing"

	"github.com/trail-audit/trail/internal/store"
)

// A store's unreachable-server error is its own explanation: the reason an
// append was refused names the server and what to check, as the backend
// wrote it, and the refusal still matches ErrUnavailable.
func TestReasonUnreachable(t *testing.T) {
	db := &DB{}
	cause := &unreachableErr{msg: "postgres: PostgreSQL at 127.0.0.1:5432: connection refused; is it running?"}
	err := db.unavailable(fmt.Errorf("commit: %w", cause))
	var ue *UnavailableError
	if !errors.As(err, &ue) || !errors.Is(err, ErrUnavailable) {
		t.Fatalf("unavailable() = %#v, want an *UnavailableError", err)
	}
	if want := "commit: " + cause.msg; ue.Reason != want {
		t.Errorf("Reason = %q, want %q", ue.Reason, want)
	}
	if other := db.reason(errors.New("something else")); other != "the database could not commit" {
		t.Errorf("reason(other) = %q", other)
	}
}

type unreachableErr struct{ msg string }

func (e *unreachableErr) Error() string        { return e.msg }
func (e *unreachableErr) Is(target error) bool { return target == store.ErrUnreachable }
