package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
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
	banner string // what serve printed before its address
	stderr *syncBuffer
	done   chan struct{}
}

var listeningRE = regexp.MustCompile(`listening on (https?://\S+)`)

// serve starts trail serve, with extra arguments, on a free port and waits
// until it listens.
func serve(t *testing.T, data string, extra ...string) *served {
	t.Helper()
	return serveOn(t, []string{"--data", data}, extra...)
}

// serveOn is serve of the store the flags st name (see storeOn).
func serveOn(t *testing.T, st []string, extra ...string) *served {
	t.Helper()
	return startProcess(t, append(append(append([]string{"serve"}, st...), "--addr", "127.0.0.1:0"), extra...)...)
}

// startProcess starts trail with args, a command that serves HTTP (trail
// serve, trail witness), and waits until it prints the URL it listens on.
// The process is killed at the end of the test unless it was stopped.
func startProcess(t *testing.T, args ...string) *served {
	t.Helper()
	s := &served{cmd: exec.Command(trailBin, args...), stderr: &syncBuffer{}, done: make(chan struct{})}
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
	out := bufio.NewReader(stdout)
	var banner strings.Builder
	for {
		line, err := out.ReadString('\n')
		if m := listeningRE.FindStringSubmatch(line); m != nil {
			s.url = m[1]
			break
		}
		banner.WriteString(line)
		if err != nil {
			s.cmd.Process.Kill()
			s.cmd.Wait()
			t.Fatalf("trail %s printed %q (%v), want its address; stderr:\n%s", args[0], banner.String(), err, s.stderr)
		}
	}
	s.banner = banner.String()
	go io.Copy(io.Discard, out)
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

	// serve does not create a missing data directory; keys create does.
	if r := run(t, "", "serve", "--data", data, "--addr", "127.0.0.1:0"); r.code != 1 || !strings.Contains(r.stderr, "trail init") {
		t.Errorf("trail serve on a missing data directory: exit %d, stderr %q; want 1 saying to run trail init", r.code, r.stderr)
	}
	r := ok(t, "", "keys", "create", "--data", data, "--log", "acme", "--scope", "append,read", "--name", "e2e")
	if _, err := os.Stat(filepath.Join(data, trail.DatabaseFile)); err != nil {
		t.Fatalf("trail keys create did not create the data directory: %v", err)
	}
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
	s := serve(t, data, "--rate-limit", "0") // 8 clients as fast as they can
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

	if r := ok(t, "", "keys", "revoke", "--data", data, id); r.stdout != "Revoked key "+id+".\n" {
		t.Errorf("trail keys revoke printed %q", r.stdout)
	}
	// Again: recorded again, and said so.
	if r := ok(t, "", "keys", "revoke", "--data", data, id); !strings.Contains(r.stdout, "was already revoked, at ") {
		t.Errorf("trail keys revoke of a revoked key printed %q, want it to say it was revoked already", r.stdout)
	}
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

// serve --demo fills a demo log and prints a read key and an append key
// that work as their scopes say; a second start keeps the log and makes
// new keys.
func TestServeDemo(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	s := serve(t, data, "--demo")
	keyRE := regexp.MustCompile(`(?m)^(Read|Append) key .*:\s+(trail_\S+)$`)
	keys := map[string]string{}
	for _, m := range keyRE.FindAllStringSubmatch(s.banner, -1) {
		keys[m[1]] = m[2]
	}
	read, appd := keys["Read"], keys["Append"]
	if read == "" || appd == "" || !strings.Contains(s.banner, "3000 sample events") {
		t.Fatalf("trail serve --demo printed\n%s\nwant 3000 sample events, a read key and an append key", s.banner)
	}
	if !strings.Contains(s.banner, s.url+"/v1/events") {
		t.Errorf("trail serve --demo printed\n%s\nwant example requests to %s", s.banner, s.url)
	}

	code, b, err := request(t, "GET", s.url+"/v1/events?action=user.login.failed&outcome=failure&limit=50", read, "")
	var page struct {
		Events []struct {
			Log    string
			Action string
			Source struct{ IP string }
		}
	}
	if err != nil || code != 200 || json.Unmarshal(b, &page) != nil {
		t.Fatalf("search with the read key = %d %s %v", code, b, err)
	}
	if len(page.Events) != 50 || page.Events[0].Log != "demo" || page.Events[0].Action != "user.login.failed" {
		t.Errorf("search for failed logins found %d events, first %+v; want 50 demo failed logins", len(page.Events), page.Events)
	}

	// The two keys' creation is recorded (seqs 3000, 3001), and so is the
	// search above (seq 3002): reads are audited.
	body := `{"actor":{"id":"alice"},"action":"user.login"}`
	if code, b, _ := request(t, "POST", s.url+"/v1/events", appd, body); code != 201 || !strings.Contains(string(b), `"seq":3003`) {
		t.Errorf("append with the append key = %d %s, want 201 and seq 3003", code, b)
	}
	if code, b, _ := request(t, "POST", s.url+"/v1/events", read, body); code != 403 {
		t.Errorf("append with the read key = %d %s, want 403", code, b)
	}
	if code, b, _ := request(t, "GET", s.url+"/v1/events", appd, ""); code != 403 {
		t.Errorf("search with the append key = %d %s, want 403", code, b)
	}
	s.stop(t)

	// The two denied requests are recorded too (trail.access).
	s = serve(t, data, "--demo")
	if !strings.Contains(s.banner, "holds 3006 events") || strings.Contains(s.banner, read) {
		t.Errorf("second trail serve --demo printed\n%s\nwant the existing log of 3006 events and new keys", s.banner)
	}
	s.stop(t)
}

// --rate-limit and --rate-burst reach the server: past the burst, a key
// gets 429 with Retry-After.
func TestServeRateLimit(t *testing.T) {
	s := serve(t, filepath.Join(t.TempDir(), "data"), "--demo", "--rate-limit", "0.5", "--rate-burst", "2")
	read := regexp.MustCompile(`Read key .*:\s+(trail_\S+)`).FindStringSubmatch(s.banner)
	if read == nil {
		t.Fatalf("no read key in\n%s", s.banner)
	}
	for i := range 3 {
		req, _ := http.NewRequest("GET", s.url+"/v1/log", nil)
		req.Header.Set("Authorization", "Bearer "+read[1])
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		want, wantRetry := 200, []string{""}
		if i == 2 { // a token every 2 s
			want, wantRetry = 429, []string{"1", "2"}
		}
		if resp.StatusCode != want || !slices.Contains(wantRetry, resp.Header.Get("Retry-After")) {
			t.Errorf("request %d: GET /v1/log = %d, Retry-After %q; want %d, %q", i+1, resp.StatusCode, resp.Header.Get("Retry-After"), want, wantRetry)
		}
	}
	s.stop(t)
}

// --metrics-addr moves /metrics off the API's address.
func TestServeMetricsAddr(t *testing.T) {
	s := serve(t, filepath.Join(t.TempDir(), "data"), "--demo", "--metrics-addr", "127.0.0.1:0")
	m := regexp.MustCompile(`Metrics are on (http://\S+/metrics)`).FindStringSubmatch(s.banner)
	read := regexp.MustCompile(`Read key .*:\s+(trail_\S+)`).FindStringSubmatch(s.banner)
	if m == nil || read == nil {
		t.Fatalf("trail serve --metrics-addr printed\n%s\nwant the metrics URL and a read key", s.banner)
	}
	if code, _, _ := request(t, "GET", s.url+"/v1/log", read[1], ""); code != 200 {
		t.Errorf("GET /v1/log = %d, want 200", code)
	}
	if code, _, _ := request(t, "GET", s.url+"/metrics", "", ""); code != 404 {
		t.Errorf("GET /metrics on the API address = %d, want 404", code)
	}
	code, b, err := request(t, "GET", m[1], "", "")
	for _, want := range []string{`trail_http_requests_total{code="200",route="GET /v1/log"} 1`, `trail_log_tree_size{log="demo"} 3002`} {
		if code != 200 || err != nil || !strings.Contains(string(b), want) {
			t.Errorf("GET %s = %d, %v; want 200 with %s in\n%.3000s", m[1], code, err, want, b)
		}
	}
	s.stop(t)
}

// selfSigned writes a self-signed certificate for 127.0.0.1 and its key
// as PEM files and returns their paths and the certificate.
func selfSigned(t *testing.T) (certFile, keyFile string, cert *x509.Certificate) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "trail test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		IsCA:         true,

		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	if cert, err = x509.ParseCertificate(der); err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile, cert
}

// With --tls-cert and --tls-key, serve speaks HTTPS only, with the given
// certificate.
func TestServeTLS(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	certFile, keyFile, cert := selfSigned(t)
	s := serve(t, data, "--demo", "--tls-cert", certFile, "--tls-key", keyFile)
	if !strings.HasPrefix(s.url, "https://127.0.0.1:") || !strings.Contains(s.banner, s.url+"/v1/events") {
		t.Fatalf("trail serve with TLS printed\n%s\nand URL %s, want https://127.0.0.1:PORT", s.banner, s.url)
	}
	read := regexp.MustCompile(`Read key .*:\s+(trail_\S+)`).FindStringSubmatch(s.banner)
	if read == nil {
		t.Fatalf("no read key in\n%s", s.banner)
	}
	roots := x509.NewCertPool()
	roots.AddCert(cert)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}}
	req, _ := http.NewRequest("GET", s.url+"/v1/log", nil)
	req.Header.Set("Authorization", "Bearer "+read[1])
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("GET /v1/log over HTTPS: %v", err)
	}
	var info struct {
		TreeSize int64 `json:"tree_size"`
	}
	err = json.NewDecoder(resp.Body).Decode(&info)
	resp.Body.Close()
	if resp.StatusCode != 200 || err != nil || info.TreeSize != 3002 || resp.TLS == nil { // the demo events and its keys' creation
		t.Errorf("GET /v1/log over HTTPS = %d, tree size %d, %v; want 200 and 3002 over TLS", resp.StatusCode, info.TreeSize, err)
	}
	// A client that does not trust the certificate is refused, and so is
	// plain HTTP.
	if _, err := http.Get(s.url + "/healthz"); err == nil {
		t.Errorf("GET /healthz trusting only the system roots succeeded")
	}
	if resp, err := http.Get("http://" + strings.TrimPrefix(s.url, "https://") + "/healthz"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == 200 {
			t.Errorf("plain HTTP GET /healthz = 200 on the HTTPS port")
		}
	}
	s.stop(t)

	for _, args := range [][]string{
		{"serve", "--data", data, "--tls-cert", certFile},
		{"serve", "--data", data, "--tls-key", keyFile},
		{"serve", "--data", data, "--rate-limit", "-1"},
		{"serve", "--data", data, "--rate-burst", "-1"},
		{"serve", "--data", data, "--witness-interval", "1ms"},
		{"serve", "--data", data, "--witness-interval", "2h"},
	} {
		if r := run(t, "", args...); r.code != 2 {
			t.Errorf("trail %s: exit %d, want 2\n%s", strings.Join(args, " "), r.code, r.stderr)
		}
	}
	// Where there is nothing to serve, so that a server started would stop.
	for _, args := range [][]string{
		{"serve", "--data", filepath.Join(data, "none"), "--server", "http://127.0.0.1:1"},
		{"serve", "--data", filepath.Join(data, "none"), "--witness-interval", "1s"},
	} {
		if r := run(t, "", args...); r.code != 2 || !strings.Contains(r.stderr, strings.TrimLeft(args[3], "-")) {
			t.Errorf("trail %s: exit %d, stderr %q; want 2 naming %s", strings.Join(args, " "), r.code, r.stderr, args[3])
		}
	}
	if r := ok(t, "", "help", "serve"); strings.Contains(r.stdout, "\n  --server") || strings.Contains(r.stdout, "\n  --key") || strings.Contains(r.stdout, "\n  --log") {
		t.Errorf("trail help serve lists --server or --key, which serve does not take:\n%s", r.stdout)
	}
	for _, args := range [][]string{
		{"serve", "--data", filepath.Join(data, "none"), "--shutdown-timeout", "-5s"},
		{"witness", "serve", "--data", filepath.Join(data, "none"), "--shutdown-timeout", "-1s"},
	} {
		if r := run(t, "", args...); r.code != 2 || !strings.Contains(r.stderr, "--shutdown-timeout") {
			t.Errorf("trail %s: exit %d, stderr %q; want 2 naming --shutdown-timeout", strings.Join(args, " "), r.code, r.stderr)
		}
	}
	if r := run(t, "", "serve", "--data", data, "--addr", "127.0.0.1:0", "--tls-cert", keyFile, "--tls-key", keyFile); r.code != 1 || !strings.Contains(r.stderr, "certificate") {
		t.Errorf("trail serve with a key as certificate: exit %d, stderr %q; want 1 naming the certificate", r.code, r.stderr)
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

// An open stream does not hold a graceful shutdown to its timeout: the
// server ends it and exits 0 at once.
func TestServeStopsWithOpenStream(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	ok(t, "", "--data", data, "init", "--log", "acme")
	key := lastLine(ok(t, "", "--data", data, "keys", "create", "--log", "acme", "--scope", "read").stdout)
	s := serve(t, data, "--shutdown-timeout", "20s")
	req, _ := http.NewRequest("GET", s.url+"/v1/tail", nil)
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET /v1/tail = %d", resp.StatusCode)
	}
	ended := make(chan error, 1)
	go func() { _, err := io.Copy(io.Discard, resp.Body); ended <- err }()
	start := time.Now()
	s.stop(t)
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("SIGTERM with a stream open took %v to exit", d)
	}
	select {
	case <-ended:
	case <-time.After(5 * time.Second):
		t.Error("the stream did not end with the server")
	}
}
