// Package witnesstest starts real tlog-witness witnesses for tests: the
// witness of package witnessd, in process, with its key and SQLite state in
// a temporary directory, serving HTTP on a loopback port.
package witnesstest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/trail-audit/trail/internal/witnessd"
)

// Start starts a witness of the logs whose checkpoint verifier keys are
// logVKeys and returns its tlog-witness URL prefix (POST url +
// "/add-checkpoint"), its verifier key (Ed25519 cosignature/v1, as a
// tlog-policy witness line takes it) and a function that stops it. The
// witness is stopped at the end of the test too.
//
// It is the witness "trail witness" runs: its state is a real SQLite
// database in t.TempDir(), and it answers on a real listener on
// 127.0.0.1. Its name (the name of its key) is "witness.test/" and random
// hex; see New for one that can be stopped and restarted on its state.
func Start(t testing.TB, logVKeys ...string) (url, vkey string, stop func()) {
	t.Helper()
	w := New(t, "", logVKeys...)
	return w.URL, w.VerifierKey, w.Stop
}

// Witness is a witness started by New.
type Witness struct {
	Name        string // the name of its key
	VerifierKey string // its verifier key, cosignature/v1
	URL         string // its tlog-witness URL prefix, http://127.0.0.1:PORT
	Dir         string // its data directory: key and state
	Logs        []string

	t    testing.TB
	addr string

	mu  sync.Mutex
	srv *http.Server // nil while stopped
	w   *witnessd.Witness
}

// New initializes a witness named name (a random "witness.test/…" name if
// empty) in a new temporary directory and starts it for the logs logVKeys.
// Logs go to t.Log. It is stopped at the end of the test.
func New(t testing.TB, name string, logVKeys ...string) *Witness {
	t.Helper()
	if name == "" {
		b := make([]byte, 4)
		rand.Read(b)
		name = "witness.test/" + hex.EncodeToString(b)
	}
	dir := filepath.Join(t.TempDir(), "witness")
	vkey, err := witnessd.Init(dir, name)
	if err != nil {
		t.Fatalf("witnesstest: %v", err)
	}
	w := &Witness{Name: name, VerifierKey: vkey, Dir: dir, Logs: logVKeys, t: t, addr: "127.0.0.1:0"}
	w.Restart()
	t.Cleanup(w.Stop)
	return w
}

// Stop stops the witness as a crash would: at once, without waiting for
// requests in flight. Its state stays in Dir. Stopping a stopped witness
// does nothing.
func (w *Witness) Stop() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.srv == nil {
		return
	}
	w.srv.Close()
	w.w.Close()
	w.srv, w.w = nil, nil
}

// Restart starts the stopped witness again on its state and on the same
// address as before, so URL stays the same. It fails the test if the
// witness is running or the address is taken.
func (w *Witness) Restart() {
	w.t.Helper()
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.srv != nil {
		w.t.Fatal("witnesstest: Restart of a running witness")
	}
	logger := slog.New(slog.NewTextHandler(tLogWriter{w.t}, nil)).With("witness", w.Name)
	ww, err := witnessd.Open(context.Background(), witnessd.Config{Dir: w.Dir, Logs: w.Logs, Logger: logger})
	if err != nil {
		w.t.Fatalf("witnesstest: %v", err)
	}
	var ln net.Listener
	for i := 0; ; i++ {
		ln, err = net.Listen("tcp", w.addr)
		if err == nil || i == 50 {
			break
		}
		time.Sleep(20 * time.Millisecond) // the old listener may linger a moment
	}
	if err != nil {
		ww.Close()
		w.t.Fatalf("witnesstest: %v", err)
	}
	w.addr = ln.Addr().String()
	w.URL = "http://" + w.addr
	srv := &http.Server{Handler: ww.Handler(), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			w.t.Errorf("witnesstest: serving: %v", err)
		}
	}()
	w.srv, w.w = srv, ww
}

// Latest returns the latest checkpoint of the log origin the witness
// cosigned, or nil; the witness must be running.
func (w *Witness) Latest(origin string) []byte {
	w.t.Helper()
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.w == nil {
		w.t.Fatal("witnesstest: Latest of a stopped witness")
	}
	cp, err := w.w.Latest(context.Background(), origin)
	if err != nil {
		w.t.Fatalf("witnesstest: %v", err)
	}
	return cp
}

// tLogWriter writes to t.Log, until the test ends.
type tLogWriter struct{ t testing.TB }

func (w tLogWriter) Write(p []byte) (int, error) {
	defer func() { recover() }() // a log line after the test ended
	w.t.Log(string(p))
	return len(p), nil
}
