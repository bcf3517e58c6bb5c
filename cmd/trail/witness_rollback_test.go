package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/trail-audit/trail/client"
	"github.com/trail-audit/trail/internal/witnessd/witnesstest"
	"github.com/trail-audit/trail/policy"
)

// TestWitnessedRollback runs one log under a quorum of two witnesses, a
// trail witness process and an in-process one, with real trail serve
// processes: the witness process is killed with SIGKILL mid-run and
// restarted on its state, and the log catches up. Then the operator
// restores a backup of the data directory taken earlier and grows it
// again with other events: both witnesses refuse the regrown history (the
// witness process because it kept what it cosigned across its crash), the
// server never serves it as witnessed, and the client, trail verify and
// receipts all flag it.
func TestWitnessedRollback(t *testing.T) {
	ctx := context.Background()
	data, vkey := initLog(t)
	key := lastLine(ok(t, "", "--data", data, "keys", "create", "--log", "default", "--scope", "append,read").stdout)

	wdata := filepath.Join(t.TempDir(), "witness")
	w1key, _ := witnessInit(t, wdata, "witness.example/w1")
	w1 := startWitness(t, false, wdata, vkey)
	w2 := witnesstest.New(t, "", vkey)
	text := fmt.Sprintf("log %s\nwitness w1 %s %s\nwitness w2 %s %s\ngroup both all w1 w2\nquorum both\n", vkey, w1key, w1.url, w2.VerifierKey, w2.URL)
	pfile := writePolicy(t, text)
	pol, err := policy.Parse([]byte(text))
	if err != nil {
		t.Fatal(err)
	}
	witnessedAt := func(s *served, size int64) []byte {
		t.Helper()
		var cp []byte
		within(t, 40*time.Second, fmt.Sprintf("the checkpoint of %d events is witnessed", size), func() (bool, string) {
			var code int
			var wit string
			code, wit, cp = get(t, s.url+"/v1/checkpoint", key)
			return code == 200 && wit == "met" && sizeOf(t, cp) == size, fmt.Sprintf("%d %s %q", code, wit, cp)
		})
		return cp
	}

	s := serve(t, data, "--witness-policy", pfile)
	size := postEvents(t, s.url, key, 20, "user.login")
	witnessedAt(s, size)
	s.stop(t)
	backup := filepath.Join(t.TempDir(), "backup")
	if err := os.CopyFS(backup, os.DirFS(data)); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(backup, "keys", "default.key"), 0o600); err != nil {
		t.Fatal(err)
	}

	// The witness process dies mid-run: ingest goes on, /readyz says
	// degraded; restarted on its data directory, it cosigns again.
	s = serve(t, data, "--witness-policy", pfile)
	size = postEvents(t, s.url, key, 10, "user.logout")
	witnessedAt(s, size)
	if err := w1.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	w1.cmd.Wait()
	close(w1.done)
	size = postEvents(t, s.url, key, 5, "user.logout")
	within(t, 15*time.Second, "/readyz says degraded", func() (bool, string) {
		code, _, body := get(t, s.url+"/readyz", "")
		return code == 200 && strings.HasPrefix(string(body), "degraded: ") && strings.Contains(string(body), "witness w1"), fmt.Sprintf("%d %q", code, body)
	})
	startWitnessAt(t, wdata, w1.url, vkey)
	grown := witnessedAt(s, size)
	cosigned := filepath.Join(t.TempDir(), "cosigned.txt")
	if err := os.WriteFile(cosigned, grown, 0o600); err != nil {
		t.Fatal(err)
	}
	s.stop(t)

	// The rollback: the backup restored, grown past what the witnesses
	// cosigned with other events.
	if err := os.RemoveAll(data); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(backup, data); err != nil {
		t.Fatal(err)
	}
	s = serve(t, data, "--witness-policy", pfile)
	defer s.stop(t)
	regrown := postEvents(t, s.url, key, int(size)+5, "regrown.event")
	within(t, 20*time.Second, "both witnesses refuse the regrown history", func() (bool, string) {
		_, _, body := get(t, s.url+"/readyz", "")
		return strings.Contains(string(body), "witness w1") && strings.Contains(string(body), "witness w2") && strings.Count(string(body), "422") == 2, string(body)
	})
	// What the server serves as witnessed is at most the backup's, never
	// the regrown history.
	_, wit, served := get(t, s.url+"/v1/checkpoint", key)
	if wit != "met" || sizeOf(t, served) >= regrown || !pol.Check(served).Met {
		t.Fatalf("the rolled-back server's /v1/checkpoint = %s, size %d (regrown to %d)", wit, sizeOf(t, served), regrown)
	}
	_, wit, latest := get(t, s.url+"/v1/checkpoint?witnessed=false", key)
	if wit != "unmet" || sizeOf(t, latest) != regrown || pol.Check(latest).Met {
		t.Fatalf("the rolled-back server's newest checkpoint = %s, size %d, %v; want unmet at %d", wit, sizeOf(t, latest), pol.Check(latest), regrown)
	}

	// The client, holding the cosigned checkpoint it saw before, sees
	// the log shrink: a fork.
	cl, err := client.New(s.url, key, client.Options{Policy: pol})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cl.Verify(ctx, vkey, grown, nil); !errors.Is(err, client.ErrFork) {
		t.Errorf("client.Verify against the cosigned checkpoint of %d events = %v, want a fork", size, err)
	}
	// trail verify too, exit 1.
	r := run(t, "", "--server", s.url, "--key", key, "verify", "--verifier-key", vkey, "--witness-policy", pfile, "--against", cosigned)
	if r.code != 1 || !strings.Contains(r.stderr, "verification FAILED") {
		t.Errorf("trail verify --against the cosigned checkpoint = exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	// A regrown event has no receipt: none of its checkpoints is
	// witnessed.
	var ev struct{ ID string }
	found := ok(t, "", "--server", s.url, "--key", key, "search", "--action", "regrown.event", "--limit", "1", "--json").stdout
	if err := json.Unmarshal([]byte(found), &ev); err != nil || ev.ID == "" {
		t.Fatalf("search --json printed %q: %v", found, err)
	}
	if code, _, body := get(t, s.url+"/v1/events/"+ev.ID+"/receipt", key); code != 409 || !strings.Contains(string(body), "not_witnessed") {
		t.Errorf("receipt of a regrown event = %d %s, want 409 not_witnessed", code, body)
	}
}

// startWitnessAt restarts trail witness on its data directory data, at
// the address of url, so that the policy's URL still reaches it.
func startWitnessAt(t *testing.T, data, url string, vkeys ...string) *served {
	t.Helper()
	args := []string{"witness", "--data", data, "--addr", strings.TrimPrefix(url, "http://")}
	for _, k := range vkeys {
		args = append(args, "--log", k)
	}
	return startProcess(t, args...)
}
