package server

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"sync"
	"time"
)

// The viewer signs in with an API key once and then carries a session
// cookie instead of the key. The cookie holds only a random session id;
// the server keeps, in memory, what the id stands for. Sessions end when
// they expire, when the user signs out, when their key is revoked (the key
// is authenticated again on every request, see auth) and when the server
// restarts.
const (
	sessionCookie = "trail_session"
	// sessionTTL is how long a session lasts from sign-in, active or not.
	sessionTTL = 8 * time.Hour
	// maxSessions bounds the sessions kept; beyond it the oldest go first.
	maxSessions = 10000
)

// signInReasons are what the sign-in page says for its why parameter. The
// URL carries only the key, so that a link cannot make the page say
// anything else.
var signInReasons = map[string]string{
	"ended":      "Your session ended (the server restarted or the key was revoked); sign in again.",
	"revoked":    "The key of this session was revoked. Sign in with another read key.",
	"no-read":    "This key lacks the read scope.",
	"signed-out": "You have signed out.",
}

type session struct {
	secret  string // the API key signed in with
	expires time.Time
}

// sessions maps the SHA-256 of session ids to sessions, so that the ids
// themselves are not kept.
type sessions struct {
	mu sync.Mutex
	m  map[[sha256.Size]byte]session
}

// create starts a session for the key secret and returns its id.
func (ss *sessions) create(secret string, now time.Time) string {
	var b [32]byte
	rand.Read(b[:])
	id := base64.RawURLEncoding.EncodeToString(b[:])
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.m == nil {
		ss.m = map[[sha256.Size]byte]session{}
	}
	if len(ss.m) >= maxSessions {
		ss.evict(now)
	}
	ss.m[sha256.Sum256([]byte(id))] = session{secret, now.Add(sessionTTL)}
	return id
}

// evict drops expired sessions, and if none had expired, the one closest
// to expiry.
func (ss *sessions) evict(now time.Time) {
	var oldest [sha256.Size]byte
	var oldestExp time.Time
	n := len(ss.m)
	for h, s := range ss.m {
		if !now.Before(s.expires) {
			delete(ss.m, h)
		} else if oldestExp.IsZero() || s.expires.Before(oldestExp) {
			oldest, oldestExp = h, s.expires
		}
	}
	if len(ss.m) == n {
		delete(ss.m, oldest)
	}
}

// get returns the key secret of a live session.
func (ss *sessions) get(id string, now time.Time) (string, bool) {
	h := sha256.Sum256([]byte(id))
	ss.mu.Lock()
	defer ss.mu.Unlock()
	s, ok := ss.m[h]
	if !ok {
		return "", false
	}
	if !now.Before(s.expires) {
		delete(ss.m, h)
		return "", false
	}
	return s.secret, true
}

func (ss *sessions) end(id string) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	delete(ss.m, sha256.Sum256([]byte(id)))
}

// sessionSecret returns the key secret of the request's session cookie.
func (s *server) sessionSecret(r *http.Request) (string, bool) {
	c, err := r.Cookie(sessionCookie)
	if err != nil || c.Value == "" {
		return "", false
	}
	return s.sessions.get(c.Value, time.Now())
}

// hasSessionCookie reports whether the request carries a session cookie.
// Once its session is known not to be live, the cookie is stale: the
// server restarted (sessions live in its memory), or the session expired
// or was ended.
func hasSessionCookie(r *http.Request) bool {
	c, err := r.Cookie(sessionCookie)
	return err == nil && c.Value != ""
}

// setSessionCookie sends the session cookie: not readable by scripts, not
// sent by other sites, Secure under TLS; an empty id clears it.
func setSessionCookie(w http.ResponseWriter, r *http.Request, id string) {
	c := &http.Cookie{
		Name:     sessionCookie,
		Value:    id,
		Path:     "/",
		HttpOnly: true,
		SameSite: http.SameSiteStrictMode,
		Secure:   r.TLS != nil,
		MaxAge:   int(sessionTTL / time.Second),
	}
	if id == "" {
		c.MaxAge = -1
	}
	http.SetCookie(w, c)
}
