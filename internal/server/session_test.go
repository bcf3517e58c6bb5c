package server

import (
	"context"
	"encoding/base64"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/trail-audit/trail"
	"github.com/trail-audit/trail/event"
)

func TestParseSession(t *testing.T) {
	secret := []byte("0123456789abcdef0123456789abcdef")
	t0 := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	good := session{id: "c2Vzc2lvbi1pZC0xMjM0NQ", keyID: "0123456789abcdef", issued: t0, expires: t0.Add(sessionTTL)}
	value := good.encode(secret)
	payload, mac, _ := cutLast(value, ".")
	for _, tc := range []struct {
		name   string
		value  string
		secret []byte
		now    time.Time
		want   error
	}{
		{"valid", value, secret, t0, nil},
		{"valid just before expiry", value, secret, t0.Add(sessionTTL - time.Second), nil},
		{"at expiry", value, secret, t0.Add(sessionTTL), errNoSession},
		{"another server's secret", value, []byte("another secret of thirty-two by"), t0, errNoSession},
		{"key id changed", strings.Replace(value, good.keyID, "fedcba9876543210", 1), secret, t0, errNoSession},
		{"expiry moved", pushExpiry(value), secret, t0, errNoSession},
		{"mac flipped", payload + "." + flip(mac), secret, t0, errNoSession},
		{"mac not base64", payload + ".!!!", secret, t0, errNoSession},
		{"no mac", payload, secret, t0, errNoSession},
		{"empty", "", secret, t0, errNoSession},
		{"old in-memory session id", "AbCdEfGhIjKlMnOpQrStUvWxYz0123456789-_AbCdE", secret, t0, errNoSession},
		{"signed, wrong version", signed(secret, "v0."+good.id+"."+good.keyID+".1.9999999999"), secret, t0, errNoSession},
		{"signed, missing field", signed(secret, "v1."+good.keyID+".1.9999999999"), secret, t0, errNoSession},
		{"signed, time not a number", signed(secret, "v1."+good.id+"."+good.keyID+".1.soon"), secret, t0, errNoSession},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseSession(tc.value, tc.secret, tc.now)
			if !errors.Is(err, tc.want) {
				t.Fatalf("parseSession(%q) = %+v, %v; want error %v", tc.value, got, err, tc.want)
			}
			if tc.want == nil && (got.id != good.id || got.keyID != good.keyID || !got.issued.Equal(good.issued) || !got.expires.Equal(good.expires)) {
				t.Errorf("parseSession(%q) = %+v, want %+v", tc.value, got, good)
			}
		})
	}
}

func signed(secret []byte, payload string) string {
	return payload + "." + base64.RawURLEncoding.EncodeToString(sessionMAC(secret, payload))
}

// pushExpiry returns the cookie value with its expiry changed to 2286,
// keeping its mac.
func pushExpiry(value string) string {
	payload, mac, _ := cutLast(value, ".")
	payload, _, _ = cutLast(payload, ".")
	return payload + ".9999999999." + mac
}

func flip(s string) string {
	if s[0] == 'A' {
		return "B" + s[1:]
	}
	return "A" + s[1:]
}

// A cookie signed with the store's secret is honoured only until its
// expiry, and one whose fields were changed is not honoured at all: the
// server never extends or trusts what the browser sends.
func TestSessionCookieExpiredOrTamperedRefused(t *testing.T) {
	ctx := context.Background()
	db, err := trail.Init(ctx, t.TempDir(), trail.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	admin := trail.Caller{Actor: event.Actor{ID: "test-admin", Type: event.ActorUser}}
	_, key, err := db.CreateKey(ctx, admin, "acme", "auditor", trail.ScopeRead)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewTLSServer(New(db, Options{}))
	defer srv.Close()
	secret, err := db.SessionSecret(ctx)
	if err != nil {
		t.Fatal(err)
	}
	get := func(value string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest("GET", srv.URL+"/", nil)
		req.AddCookie(&http.Cookie{Name: sessionCookie, Value: value})
		c := srv.Client()
		c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}
	now := time.Now()
	live := session{id: "bGl2ZS1zZXNzaW9uLWlk", keyID: key.ID, issued: now.Add(-time.Hour), expires: now.Add(time.Hour)}
	if resp := get(live.encode(secret)); resp.StatusCode != http.StatusOK {
		t.Fatalf("GET / with a live session's cookie = %s, want 200", resp.Status)
	}
	expired := session{id: "ZXhwaXJlZC1zZXNzaW9u", keyID: key.ID, issued: now.Add(-sessionTTL - time.Minute), expires: now.Add(-time.Minute)}
	for name, value := range map[string]string{
		"expired":                 expired.encode(secret),
		"expired, expiry changed": pushExpiry(expired.encode(secret)),
		"signed with other bytes": live.encode([]byte("not the store's secret, 32 bytes")),
	} {
		resp := get(value)
		if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(loc, "/signin") {
			t.Errorf("GET / with a cookie %s = %s → %q; want 303 to sign in", name, resp.Status, loc)
		}
	}
}

// TestLocalPath: a sign-in sends the browser on only to a path of this
// site, as browsers read it: they take a backslash for a slash and drop
// tabs and line breaks, so those make another site's address.
func TestLocalPath(t *testing.T) {
	for p, want := range map[string]string{
		"/":                     "/",
		"/overview?range=7d":    "/overview?range=7d",
		"/events/01J?x=%09":     "/events/01J?x=%09",
		"":                      "/",
		"overview":              "/",
		"https://evil.example/": "/",
		"//evil.example/x":      "/",
		"/\\evil.example":       "/",
		"/\t/evil.example":      "/",
		"/\n/evil.example":      "/",
		"/\r/evil.example":      "/",
		"/ /evil.example\x00":   "/",
		"/\x7f/evil.example":    "/",
		"/\u2028x":              "/\u2028x",
	} {
		if got := localPath(p); got != want {
			t.Errorf("localPath(%q) = %q, want %q", p, got, want)
		}
	}
}
