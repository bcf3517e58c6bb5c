package trail

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
)

// The file signer source keeps each log's key in keys/<log>.key, mode
// 0600, as a note signer key: the key it makes is the one it loads back,
// it signs notes its verifier key opens, and a missing, foreign or
// damaged file is refused, never replaced.
func TestDirKeysSigners(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	k := dirKeys{dir}
	log := logRef{Name: "audit", Origin: "example.com/trail/audit"}
	vkey, err := k.Create(ctx, log)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "keys", "audit.key")
	info, err := os.Stat(path)
	if err != nil {
		t.Fatalf("Create made no %s: %v", path, err)
	}
	if info.Mode().Perm() != 0o600 {
		t.Errorf("%s has mode %#o, want 0600", path, info.Mode().Perm())
	}
	b, _ := os.ReadFile(path)
	if !strings.HasPrefix(string(b), "PRIVATE+KEY+example.com/trail/audit+") || !strings.HasSuffix(string(b), "\n") || strings.Count(string(b), "\n") != 1 {
		t.Errorf("%s holds %q, want a note signer key named by the origin and a newline", path, b)
	}
	if name, _, _ := strings.Cut(vkey, "+"); name != log.Origin {
		t.Errorf("Create = verifier key %q, want one named %q", vkey, log.Origin)
	}

	log.VerifierKey = vkey
	signer, err := k.Signer(ctx, log)
	if err != nil {
		t.Fatalf("Signer of the key just made: %v", err)
	}
	msg, err := note.Sign(&note.Note{Text: "example.com/trail/audit\n1\nAAAA\n"}, signer)
	if err != nil {
		t.Fatal(err)
	}
	v, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := note.Open(msg, note.VerifierList(v)); err != nil {
		t.Errorf("a note signed by Signer does not open with Create's verifier key: %v", err)
	}

	// A key left by an interrupted CreateLog is reused for its origin, and
	// refused for another one.
	if again, err := k.Create(ctx, logRef{Name: "audit", Origin: log.Origin}); err != nil || again != vkey {
		t.Errorf("Create again for the same origin = %q, %v; want the same key %q", again, err, vkey)
	}
	if _, err := k.Create(ctx, logRef{Name: "audit", Origin: "other.example/audit"}); err == nil || !strings.Contains(err.Error(), "another origin") {
		t.Errorf("Create for another origin over an existing key = %v, want an error saying so", err)
	}
	if b2, _ := os.ReadFile(path); string(b2) != string(b) {
		t.Error("a refused Create changed the key file")
	}

	// The key of another log is not this log's.
	other := logRef{Name: "billing", Origin: "example.com/trail/billing"}
	if other.VerifierKey, err = k.Create(ctx, other); err != nil {
		t.Fatal(err)
	}
	if _, err := k.Signer(ctx, logRef{Name: "audit", Origin: log.Origin, VerifierKey: other.VerifierKey}); err == nil || !strings.Contains(err.Error(), "does not match") {
		t.Errorf("Signer with another log's verifier key = %v, want an error saying the key does not match", err)
	}

	// A damaged file is an error naming it; a missing one ErrMissingKey,
	// and no new key is made in its place.
	if err := os.WriteFile(path, []byte("not a key\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := k.Signer(ctx, log); err == nil || errors.Is(err, ErrMissingKey) || !strings.Contains(err.Error(), path) {
		t.Errorf("Signer of a damaged key file = %v, want an error naming %s", err, path)
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if _, err := k.Signer(ctx, log); !errors.Is(err, ErrMissingKey) || !strings.Contains(err.Error(), path) {
		t.Errorf("Signer without the key file = %v, want an error wrapping ErrMissingKey naming %s", err, path)
	}
	if _, err := os.Stat(path); err == nil {
		t.Error("Signer made a key file in place of the missing one")
	}
}

// The session secret is made once, mode 0600, and is the same for every
// caller on the data directory, also when first uses race.
func TestDirKeysSessionSecret(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	const n = 8
	secrets := make([][]byte, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { secrets[i], errs[i] = dirKeys{dir}.SessionSecret(ctx) })
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("SessionSecret %d: %v", i, errs[i])
		}
		if len(secrets[i]) != 32 || string(secrets[i]) != string(secrets[0]) {
			t.Fatalf("racing SessionSecret calls got different secrets: %x and %x", secrets[0], secrets[i])
		}
	}
	path := filepath.Join(dir, "session.key")
	info, err := os.Stat(path)
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("session.key: %v %v, want mode 0600", info, err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("the data directory holds %d entries after SessionSecret, want only session.key (no temporary files left)", len(entries))
	}
	if again, err := (dirKeys{dir}).SessionSecret(ctx); err != nil || string(again) != string(secrets[0]) {
		t.Errorf("SessionSecret later = %x, %v; want the same secret", again, err)
	}
	if err := os.WriteFile(path, []byte("short\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if s, err := (dirKeys{dir}).SessionSecret(ctx); err == nil || !strings.Contains(err.Error(), path) {
		t.Errorf("SessionSecret of a damaged session.key = %x, %v; want an error naming it", s, err)
	}
}

// A sign-out recorded through one DB is seen through another on the same
// data directory; records past their expiry (and the grace for slow
// clocks) are removed by the next sign-out.
func TestDirKeysSignedOut(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	a, b := dirKeys{dir}, dirKeys{dir}
	now := time.Now()
	if ended, err := b.SessionEnded(ctx, "s1"); err != nil || ended {
		t.Fatalf("SessionEnded before any sign-out = %v, %v", ended, err)
	}
	if err := a.EndSession(ctx, "s2", now.Add(-time.Minute)); err != nil {
		t.Fatal(err)
	}
	if err := a.EndSession(ctx, "s3", now.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"s2", "s3"} {
		if ended, err := b.SessionEnded(ctx, id); err != nil || !ended {
			t.Errorf("SessionEnded(%s) through another DB after EndSession = %v, %v; want true", id, ended, err)
		}
	}
	// s1 expired before the grace: its own EndSession prunes it.
	if err := a.EndSession(ctx, "s1", now.Add(-pruneGrace-time.Minute)); err != nil {
		t.Fatal(err)
	}
	for id, want := range map[string]bool{"s1": false, "s2": true, "s3": true, "s4": false} {
		if ended, err := b.SessionEnded(ctx, id); err != nil || ended != want {
			t.Errorf("SessionEnded(%s) = %v, %v; want %v", id, ended, err, want)
		}
	}
	if info, err := os.Stat(filepath.Join(dir, "signed-out", "s3")); err != nil || info.Mode().Perm() != 0o600 {
		t.Errorf("signed-out/s3: %v %v, want mode 0600", info, err)
	}
}
