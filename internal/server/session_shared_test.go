package server_test

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/trail-audit/trail"
	"github.com/trail-audit/trail/internal/server"
)

// sharedServers are two servers, each with its own DB, on one data
// directory: two nodes of one store.
type sharedServers struct {
	t        *testing.T
	dbA, dbB *trail.DB
	a, b     *httptest.Server
	read     string // a read key of log "acme"
	readID   string
}

func newSharedServers(t *testing.T) *sharedServers {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	s := &sharedServers{t: t}
	var err error
	if s.dbA, err = trail.Init(ctx, dir, trail.Options{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.dbA.Close() })
	var ki trail.KeyInfo
	if s.read, ki, err = s.dbA.CreateKey(ctx, testAdmin, "acme", "auditor", trail.ScopeRead); err != nil {
		t.Fatal(err)
	}
	s.readID = ki.ID
	if s.dbB, err = trail.Open(ctx, dir, trail.Options{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.dbB.Close() })
	s.a = httptest.NewTLSServer(server.New(s.dbA, server.Options{}))
	t.Cleanup(s.a.Close)
	s.b = httptest.NewTLSServer(server.New(s.dbB, server.Options{}))
	t.Cleanup(s.b.Close)
	return s
}

// signIn signs in on srv and returns the session cookie's value.
func (s *sharedServers) signIn(srv *httptest.Server) string {
	s.t.Helper()
	jar, _ := cookiejar.New(nil)
	c := srv.Client()
	c.Jar = jar
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	req, _ := http.NewRequest("POST", srv.URL+"/signin", strings.NewReader(url.Values{"key": {s.read}, "next": {"/"}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", srv.URL)
	resp, err := c.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	resp.Body.Close()
	for _, ck := range resp.Cookies() {
		if ck.Name == "trail_session" && ck.Value != "" {
			return ck.Value
		}
	}
	s.t.Fatalf("sign-in on %s = %s, set no session cookie", srv.URL, resp.Status)
	return ""
}

// do sends method path to srv with the session cookie and returns the
// response, its body read.
func (s *sharedServers) do(srv *httptest.Server, method, path, cookie string) *http.Response {
	s.t.Helper()
	req, _ := http.NewRequest(method, srv.URL+path, nil)
	req.AddCookie(&http.Cookie{Name: "trail_session", Value: cookie})
	if method == "POST" {
		req.Header.Set("Origin", srv.URL)
	}
	c := srv.Client()
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := c.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

// A session started on one server works on another server of the store
// (the page, and the API's reads), and a session cookie it has not signed
// is refused there.
func TestSessionWorksOnEveryServer(t *testing.T) {
	s := newSharedServers(t)
	cookie := s.signIn(s.a)
	for _, path := range []string{"/", "/overview", "/v1/events?limit=1"} {
		if resp := s.do(s.b, "GET", path, cookie); resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s on server B with server A's session = %s, want 200", path, resp.Status)
		}
	}
	i := strings.LastIndex(cookie, ".") + 5 // a character of the mac
	c := byte('A')
	if cookie[i] == c {
		c = 'B'
	}
	tampered := cookie[:i] + string(c) + cookie[i+1:]
	if resp := s.do(s.b, "GET", "/", tampered); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("GET / on server B with a tampered cookie = %s, want 303 to sign in", resp.Status)
	}
	if resp := s.do(s.b, "GET", "/v1/events?limit=1", tampered); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("GET /v1/events on server B with a tampered cookie = %s, want 401", resp.Status)
	}
}

// Signing out on one server ends the session on every server: a copy of
// the cookie kept from before works on neither.
func TestSessionSignOutEndsItEverywhere(t *testing.T) {
	s := newSharedServers(t)
	cookie := s.signIn(s.a)
	other := s.signIn(s.a) // another browser, still signed in after
	if resp := s.do(s.a, "GET", "/", cookie); resp.StatusCode != http.StatusOK {
		t.Fatalf("GET / on server A = %s", resp.Status)
	}
	resp := s.do(s.b, "POST", "/signout", cookie)
	if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusSeeOther || loc != "/signin?why=signed-out" {
		t.Fatalf("sign out on server B = %s → %q", resp.Status, loc)
	}
	for name, srv := range map[string]*httptest.Server{"A": s.a, "B": s.b} {
		if resp := s.do(srv, "GET", "/", cookie); resp.StatusCode != http.StatusSeeOther {
			t.Errorf("GET / on server %s with the signed-out cookie = %s, want 303 to sign in", name, resp.Status)
		}
		if resp := s.do(srv, "GET", "/v1/events?limit=1", cookie); resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("GET /v1/events on server %s with the signed-out cookie = %s, want 401", name, resp.Status)
		}
		if resp := s.do(srv, "GET", "/", other); resp.StatusCode != http.StatusOK {
			t.Errorf("GET / on server %s with another session of the same key = %s, want 200", name, resp.Status)
		}
	}
}

// Revoking the key of a session ends it on every server: at once on the
// server whose DB revoked it, and within 2 seconds (the key cache's one
// second, with margin) on the others, as for the key itself.
func TestSessionEndsWhenKeyRevoked(t *testing.T) {
	s := newSharedServers(t)
	cookie := s.signIn(s.a)
	for name, srv := range map[string]*httptest.Server{"A": s.a, "B": s.b} {
		if resp := s.do(srv, "GET", "/", cookie); resp.StatusCode != http.StatusOK {
			t.Fatalf("GET / on server %s = %s", name, resp.Status)
		}
	}
	if err := s.dbB.RevokeKey(context.Background(), testAdmin, s.readID); err != nil {
		t.Fatal(err)
	}
	if resp := s.do(s.b, "GET", "/", cookie); resp.StatusCode != http.StatusSeeOther || !strings.Contains(resp.Header.Get("Location"), "why=revoked") {
		t.Errorf("GET / on server B, whose DB revoked the key = %s → %q; want 303 to sign in, saying revoked", resp.Status, resp.Header.Get("Location"))
	}
	within(t, 2*time.Second, "server A ends the session of the key revoked through server B's DB", func() (bool, string) {
		resp := s.do(s.a, "GET", "/", cookie)
		return resp.StatusCode == http.StatusSeeOther && strings.Contains(resp.Header.Get("Location"), "why=revoked"),
			resp.Status + " → " + resp.Header.Get("Location")
	})
	if resp := s.do(s.a, "GET", "/v1/events?limit=1", cookie); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("GET /v1/events on server A with the revoked key's session = %s, want 401", resp.Status)
	}
}

// Signing out ends the session's streams too, on another server: the
// viewer's live rows and an API tail opened with the session's cookie.
// Within 2 seconds each gets an error event and closes, rather than go on
// streaming the log to a browser that signed out.
func TestSessionSignOutEndsLiveStream(t *testing.T) {
	for _, path := range []string{"/live", "/v1/tail"} {
		t.Run(strings.TrimPrefix(path, "/"), func(t *testing.T) {
			s := newSharedServers(t)
			cookie := s.signIn(s.a)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			req, _ := http.NewRequestWithContext(ctx, "GET", s.a.URL+path, nil)
			req.AddCookie(&http.Cookie{Name: "trail_session", Value: cookie})
			resp, err := s.a.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("GET %s = %s", path, resp.Status)
			}
			lines := make(chan string)
			go func() {
				defer close(lines)
				sc := bufio.NewScanner(resp.Body)
				for sc.Scan() {
					lines <- sc.Text()
				}
			}()
			if r := s.do(s.b, "POST", "/signout", cookie); r.StatusCode != http.StatusSeeOther {
				t.Fatalf("sign out on server B = %s", r.Status)
			}
			signedOut := time.Now()
			var got []string
			for line := range lines {
				got = append(got, line)
			}
			if time.Since(signedOut) > 2*time.Second {
				t.Errorf("the stream ended %v after the sign-out, want within 2s", time.Since(signedOut).Round(time.Millisecond))
			}
			if !slices.Contains(got, "event: error") || !strings.Contains(strings.Join(got, "\n"), "the session has ended") {
				t.Errorf("the stream ended with %q, want an error event saying the session ended", got)
			}
		})
	}
}
