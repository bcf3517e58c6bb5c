package trail_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/trail-audit/trail"
)

// An append whose commit lost the store's connection midway may have been
// stored: its error says so and matches ErrOutcomeUnknown, not
// ErrUnavailable, which promises that nothing was stored.
func TestUnavailableErrorOutcomeUnknown(t *testing.T) {
	down := &trail.UnavailableError{Reason: "PostgreSQL is down"}
	if !errors.Is(down, trail.ErrUnavailable) || errors.Is(down, trail.ErrOutcomeUnknown) {
		t.Errorf("%v: want it to match ErrUnavailable only", down)
	}
	if !strings.Contains(down.Error(), "nothing was stored") {
		t.Errorf("%q does not say that nothing was stored", down)
	}
	unknown := &trail.UnavailableError{Reason: "the connection broke while committing", Unknown: true}
	if errors.Is(unknown, trail.ErrUnavailable) || !errors.Is(unknown, trail.ErrOutcomeUnknown) {
		t.Errorf("%v: want it to match ErrOutcomeUnknown only", unknown)
	}
	if msg := unknown.Error(); strings.Contains(msg, "nothing was stored") || !strings.Contains(msg, "may or may not have been stored") {
		t.Errorf("%q: want it to say the append may or may not have been stored", msg)
	}
}

// The store's error is said once: not again when the reason quotes it.
func TestUnavailableErrorSaysCauseOnce(t *testing.T) {
	cause := errors.New("dial tcp 127.0.0.1:5432: connection refused")
	quoted := &trail.UnavailableError{Reason: "postgres: " + cause.Error() + "; is it running?", Err: cause}
	if n := strings.Count(quoted.Error(), "connection refused"); n != 1 {
		t.Errorf("%q says the cause %d times, want once", quoted, n)
	}
	apart := &trail.UnavailableError{Reason: "the database could not commit", Err: cause}
	if got := apart.Detail(); got != "the database could not commit (dial tcp 127.0.0.1:5432: connection refused)" {
		t.Errorf("Detail() = %q, want the reason and the cause", got)
	}
}
