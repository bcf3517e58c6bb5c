package server

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/trail-audit/trail"
)

// The viewer signs in with an API key once and then carries a session
// cookie instead of the key. The cookie names the key (its id, not its
// secret) and says when the session began and when it ends, signed with
// HMAC-SHA256 under the store's session secret (trail.DB.SessionSecret):
// every server on the store accepts the sessions of the others, and a
// restart ends none. A session ends when it expires, when the user signs
// out (the sign-out is recorded in the store, trail.DB.EndSession, where
// every server checks it), and when its key is revoked: the key is looked
// up on every request, as the API authenticates a key (see sessionKey).
//
// The cookie reads v1.<session id>.<key id>.<issued>.<expires>.<mac>:
// the session id is 16 random bytes and the mac 32, in unpadded base64url;
// the times are Unix seconds; the mac is over everything before it.
const (
	sessionCookie = "trail_session"
	// sessionTTL is how long a session lasts from sign-in, active or not.
	sessionTTL = 8 * time.Hour
	// sessionVersion starts the cookie, so that its form can change.
	sessionVersion = "v1"
)

// signInReasons are what the sign-in page says for its why parameter. The
// URL carries only the key, so that a link cannot make the page say
// anything else.
var signInReasons = map[string]string{
	"ended":      "Your session ended (it expired or was signed out, or its key was revoked); sign in again.",
	"revoked":    "The key of this session was revoked. Sign in with another read key.",
	"no-read":    "This key lacks the read scope.",
	"signed-out": "You have signed out.",
}

// errNoSession: the request carries no cookie of a live session: none, or
// one that is malformed, forged, expired or signed out.
var errNoSession = errors.New("no live session")

// session is what a valid session cookie says.
type session struct {
	id      string // random, names the session for EndSession
	keyID   string
	issued  time.Time
	expires time.Time
}

// sessions holds what the server caches of the store's sessions: the
// session secret, and the keys of sessions recently looked up.
type sessions struct {
	// secret is the store's session secret, read on first use.
	secretMu sync.Mutex
	secret   []byte

	// keys are the keys recently looked up by id (see sessionKey).
	keysMu sync.Mutex
	keys   map[string]cachedKey
}

// sessionSecret returns the store's session secret, reading it (or making
// it) on first use.
func (s *server) sessionSecret(ctx context.Context) ([]byte, error) {
	ss := &s.sessions
	ss.secretMu.Lock()
	defer ss.secretMu.Unlock()
	if ss.secret == nil {
		secret, err := s.db.SessionSecret(ctx)
		if err != nil {
			return nil, err
		}
		ss.secret = secret
	}
	return ss.secret, nil
}

// sessionMAC returns the mac of a cookie's payload (all before ".<mac>").
func sessionMAC(secret []byte, payload string) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(payload))
	return m.Sum(nil)
}

// encode returns the cookie value of ss, signed with secret.
func (ss session) encode(secret []byte) string {
	payload := strings.Join([]string{sessionVersion, ss.id, ss.keyID,
		strconv.FormatInt(ss.issued.Unix(), 10), strconv.FormatInt(ss.expires.Unix(), 10)}, ".")
	return payload + "." + base64.RawURLEncoding.EncodeToString(sessionMAC(secret, payload))
}

// parseSession returns the session of a cookie value signed with secret
// that has not expired at now, or errNoSession.
func parseSession(value string, secret []byte, now time.Time) (session, error) {
	payload, mac, ok := cutLast(value, ".")
	if !ok {
		return session{}, errNoSession
	}
	got, err := base64.RawURLEncoding.Strict().DecodeString(mac)
	if err != nil || !hmac.Equal(got, sessionMAC(secret, payload)) {
		return session{}, errNoSession
	}
	f := strings.Split(payload, ".")
	if len(f) != 5 || f[0] != sessionVersion {
		return session{}, errNoSession
	}
	issued, err1 := strconv.ParseInt(f[3], 10, 64)
	expires, err2 := strconv.ParseInt(f[4], 10, 64)
	if err1 != nil || err2 != nil || f[1] == "" || f[2] == "" {
		return session{}, errNoSession
	}
	ss := session{id: f[1], keyID: f[2], issued: time.Unix(issued, 0), expires: time.Unix(expires, 0)}
	if !now.Before(ss.expires) {
		return session{}, errNoSession
	}
	return ss, nil
}

func cutLast(s, sep string) (before, after string, ok bool) {
	i := strings.LastIndex(s, sep)
	if i < 0 {
		return s, "", false
	}
	return s[:i], s[i+len(sep):], true
}

// startSession signs the browser in as key: it sets the cookie of a new
// session.
func (s *server) startSession(w http.ResponseWriter, r *http.Request, key trail.KeyInfo) error {
	secret, err := s.sessionSecret(r.Context())
	if err != nil {
		return err
	}
	var id [16]byte
	rand.Read(id[:])
	now := time.Now()
	ss := session{id: base64.RawURLEncoding.EncodeToString(id[:]), keyID: key.ID, issued: now, expires: now.Add(sessionTTL)}
	setSessionCookie(w, r, ss.encode(secret))
	return nil
}

// requestSession returns the live session of the request's cookie, or
// errNoSession; or the error that kept it from being checked.
func (s *server) requestSession(r *http.Request) (session, error) {
	c, err := r.Cookie(sessionCookie)
	if err != nil || c.Value == "" {
		return session{}, errNoSession
	}
	ctx := r.Context()
	secret, err := s.sessionSecret(ctx)
	if err != nil {
		return session{}, err
	}
	ss, err := parseSession(c.Value, secret, time.Now())
	if err != nil {
		return session{}, err
	}
	ended, err := s.db.SessionEnded(ctx, ss.id)
	if err != nil {
		return session{}, err
	}
	if ended {
		return session{}, errNoSession
	}
	return ss, nil
}

// sessionKey returns the key of the request's live session. It fails with
// errNoSession if there is none, with an error wrapping
// trail.ErrUnauthorized if the session's key was revoked (or is gone),
// and with the store's error if it cannot say.
//
// Like authenticate, it trusts a key looked up in the last keyCacheTTL,
// unless a key was revoked through this server's DB since: a key revoked
// by another process or server ends its sessions within keyCacheTTL.
func (s *server) sessionKey(r *http.Request) (trail.KeyInfo, error) {
	ss, err := s.requestSession(r)
	if err != nil {
		return trail.KeyInfo{}, err
	}
	now := time.Now()
	c := &s.sessions
	c.keysMu.Lock()
	e, ok := c.keys[ss.keyID]
	c.keysMu.Unlock()
	if ok && now.Before(e.expires) && e.revoked == s.db.KeysRevoked() {
		return e.info, nil
	}
	revoked := s.db.KeysRevoked()
	key, err := s.db.Key(r.Context(), ss.keyID)
	switch {
	case errors.Is(err, trail.ErrNotFound):
		return trail.KeyInfo{}, trail.ErrUnauthorized
	case err != nil:
		return trail.KeyInfo{}, err
	case !key.RevokedAt.IsZero():
		return trail.KeyInfo{}, trail.ErrUnauthorized
	}
	c.keysMu.Lock()
	defer c.keysMu.Unlock()
	if c.keys == nil || len(c.keys) > 10000 {
		c.keys = map[string]cachedKey{} // bounded: start over
	}
	c.keys[ss.keyID] = cachedKey{key, now.Add(keyCacheTTL), revoked}
	return key, nil
}

// endSession signs the request's session out, on every server of the
// store, if it has a live one.
func (s *server) endSession(r *http.Request) error {
	ss, err := s.requestSession(r)
	if errors.Is(err, errNoSession) {
		return nil
	}
	if err != nil {
		return err
	}
	return s.db.EndSession(r.Context(), ss.id, ss.expires)
}

// hasSessionCookie reports whether the request carries a session cookie.
// Once its session is known not to be live, the cookie is stale: the
// session expired or was signed out, or the store's session secret
// changed.
func hasSessionCookie(r *http.Request) bool {
	c, err := r.Cookie(sessionCookie)
	return err == nil && c.Value != ""
}

// setSessionCookie sends the session cookie: not readable by scripts, not
// sent by other sites, Secure under TLS; an empty value clears it.
func setSessionCookie(w http.ResponseWriter, r *http.Request, value string) {
	c := &http.Cookie{
		Name:     sessionCookie,
		Value:    value,
		Path:     "/",
		HttpOnly: true,
		SameSite: http.SameSiteStrictMode,
		Secure:   r.TLS != nil,
		MaxAge:   int(sessionTTL / time.Second),
	}
	if value == "" {
		c.MaxAge = -1
	}
	http.SetCookie(w, c)
}
