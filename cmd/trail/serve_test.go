package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/trail-audit/trail"
)

// syncBuffer is a bytes.Buffer safe for a process writing while the test
// reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

type served struct {
	cmd    *exec.Cmd
	url    string
	stderr *syncBuffer
	done   chan struct{}
}

var listeningRE = regexp.MustCompile(`listening on (http://\S+)`)

// serve starts trail serve on a free port and waits until it listens.
func serve(t *testing.T, data string) *served {
	t.Helper()
	s := &served{cmd: exec.Command(trailBin, "serve", "--data", data, "--addr", "127.0.0.1:0"), stderr: &syncBuffer{}, done: make(chan struct{})}
	s.cmd.Stderr = s.stderr
	stdout, err := s.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		select {
		case <-s.done:
		default:
			s.cmd.Process.Kill()
			s.cmd.Wait()
		}
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	m := listeningRE.FindStringSubmatch(line)
	if m == nil {
		s.cmd.Process.Kill()
		s.cmd.Wait()
		t.Fatalf("trail serve printed %q (%v), want its address; stderr:\n%s", line, err, s.stderr)
	}
	go io.Copy(io.Discard, stdout)
	s.url = m[1]
	return s
}

// stop sends SIGTERM and checks that trail serve exits 0.
func (s *served) stop(t *testing.T) {
	t.Helper()
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	err := s.cmd.Wait()
	close(s.done)
	if err != nil {
		t.Fatalf("trail serve after SIGTERM: %v; stderr:\n%s", err, s.stderr)
	}
}

func request(t *testing.T, method, url, key, body string) (int, []byte, error) {
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

func TestServe(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")

	// serve creates a missing data directory.
	s := serve(t, data)
	if code, _, err := request(t, "GET", s.url+"/readyz", "", ""); err != nil || code != 200 {
		t.Errorf("GET /readyz = %d, %v; want 200", code, err)
	}
	s.stop(t)
	if _, err := os.Stat(filepath.Join(data, trail.DatabaseFile)); err != nil {
		t.Fatalf("trail serve did not create the data directory: %v", err)
	}

	r := ok(t, "", "keys", "create", "--data", data, "--log", "acme", "--scope", "append,read", "--name", "e2e")
	out := lines(r.stdout)
	key := out[len(out)-1]
	if !strings.HasPrefix(key, "trail_") || strings.Contains(key, " ") {
		t.Fatalf("trail keys create: last line %q, want the key alone", key)
	}
	id := strings.Split(key, "_")[1]
	list := ok(t, "", "keys", "list", "--data", data).stdout
	if !strings.Contains(list, id) || !strings.Contains(list, "acme") || strings.Contains(list, key) {
		t.Errorf("trail keys list =\n%s\nwant key %s of acme, without its secret", list, id)
	}

	// Append from 8 clients until SIGTERM: whatever was acknowledged
	// must be durable.
	s = serve(t, data)
	var (
		mu    sync.Mutex
		acked []string
		wg    sync.WaitGroup
	)
	for c := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				body := fmt.Sprintf(`{"actor":{"id":"client-%d"},"action":"user.login","metadata":{"i":%d}}`, c, i)
				code, b, err := request(t, "POST", s.url+"/v1/events", key, body)
				if err != nil {
					return // the server stopped
				}
				if code != 201 {
					if code != 503 {
						t.Errorf("POST /v1/events = %d %s", code, b)
					}
					return
				}
				var rs struct{ Events []struct{ ID string } }
				if err := json.Unmarshal(b, &rs); err != nil || len(rs.Events) != 1 {
					t.Errorf("POST /v1/events answered %s", b)
					return
				}
				mu.Lock()
				acked = append(acked, rs.Events[0].ID)
				mu.Unlock()
			}
		}()
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		mu.Lock()
		n := len(acked)
		mu.Unlock()
		if n >= 200 || time.Now().After(deadline) {
			break
		}
	}
	s.stop(t)
	wg.Wait()
	if len(acked) == 0 {
		t.Fatal("no event was acknowledged")
	}
	t.Logf("%d events acknowledged before SIGTERM", len(acked))
	logs := s.stderr.String()
	if strings.Contains(logs, key) || strings.Contains(logs, "Bearer") {
		t.Errorf("trail serve logged the key:\n%s", logs)
	}
	if !strings.Contains(logs, `"key":"`+id+`"`) {
		t.Errorf("trail serve's access log does not name key %s:\n%.2000s", id, logs)
	}

	// After a restart every acknowledged event is there.
	s = serve(t, data)
	for _, eid := range acked {
		code, b, err := request(t, "GET", s.url+"/v1/events/"+eid, key, "")
		if err != nil || code != 200 {
			t.Fatalf("GET /v1/events/%s after restart = %d %s %v; want 200", eid, code, b, err)
		}
	}
	s.stop(t)

	ok(t, "", "keys", "revoke", "--data", data, id)
	s = serve(t, data)
	if code, _, _ := request(t, "GET", s.url+"/v1/log", key, ""); code != 401 {
		t.Errorf("GET /v1/log with a revoked key = %d, want 401", code)
	}
	s.stop(t)

	db, err := trail.Open(context.Background(), data, trail.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	l, err := db.Log(context.Background(), "acme")
	if err != nil {
		t.Fatal(err)
	}
	if l.Size() < int64(len(acked)) {
		t.Errorf("log holds %d events, %d were acknowledged", l.Size(), len(acked))
	}
}

func TestKeysUsage(t *testing.T) {
	data, _ := initLog(t)
	for _, args := range [][]string{
		{"keys"},
		{"keys", "create", "--data", data},
		{"keys", "create", "--data", data, "--scope", "write"},
		{"keys", "create", "--data", data, "--log", "Bad Name", "--scope", "read"},
		{"keys", "revoke", "--data", data},
		{"keys", "list", "--data", data, "--scope", "read"},
		{"keys", "rotate", "--data", data},
	} {
		if r := run(t, "", args...); r.code != 2 {
			t.Errorf("trail %s: exit %d, want 2\n%s", strings.Join(args, " "), r.code, r.stderr)
		}
	}
	if r := run(t, "", "keys", "revoke", "--data", data, "0123456789abcdef"); r.code != 1 || !strings.Contains(r.stderr, "not found") {
		t.Errorf("trail keys revoke of an unknown key: exit %d, %s", r.code, r.stderr)
	}
}
