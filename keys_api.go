package trail

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/trail-audit/trail/internal/store"
)

// Scope is a permission of an API key.
type Scope string

// Scopes. ScopeAdmin implies the others.
const (
	ScopeAppend Scope = "append" // append events
	ScopeRead   Scope = "read"   // search, get, checkpoints and proofs
	ScopeAdmin  Scope = "admin"  // everything, including managing keys
)

// ErrUnauthorized: the API key is malformed, unknown or revoked.
var ErrUnauthorized = errors.New("invalid or revoked API key")

// KeyPrefix starts every API key, so that secret scanners and people
// recognise them.
const KeyPrefix = "trail_"

// An API key reads trail_<id>_<secret>: id is 16 hex digits (64 random
// bits, public, the key's name in listings and logs), secret 48 hex digits
// (192 random bits). Only the SHA-256 of the whole key is stored.
const (
	keyIDBytes     = 8
	keySecretBytes = 24
)

// KeyInfo describes an API key; it never holds the secret.
type KeyInfo struct {
	ID        string    `json:"id"`
	Log       string    `json:"log"`
	Name      string    `json:"name"`
	Scopes    []Scope   `json:"scopes"`
	CreatedAt time.Time `json:"created_at"`
	// RevokedAt is zero while the key is valid.
	RevokedAt time.Time `json:"revoked_at,omitzero"`
}

// Allows reports whether the key grants scope s: it holds s or admin.
func (k KeyInfo) Allows(s Scope) bool {
	for _, have := range k.Scopes {
		if have == s || have == ScopeAdmin {
			return true
		}
	}
	return false
}

// ParseScope returns the scope named s.
func ParseScope(s string) (Scope, error) {
	switch sc := Scope(s); sc {
	case ScopeAppend, ScopeRead, ScopeAdmin:
		return sc, nil
	}
	return "", fmt.Errorf("scope %q: must be append, read or admin", s)
}

// CreateKey creates an API key for log, creating the log (with the default
// origin) if it does not exist yet, and returns the key's secret, which is
// shown only this once, and its description. At least one scope is needed.
func (db *DB) CreateKey(ctx context.Context, log, name string, scopes ...Scope) (string, KeyInfo, error) {
	if db.opts.ReadOnly {
		return "", KeyInfo{}, ErrReadOnly
	}
	if len(scopes) == 0 {
		return "", KeyInfo{}, errors.New("a key needs at least one scope")
	}
	if !validKeyName(name) {
		return "", KeyInfo{}, fmt.Errorf("key name %q: at most %d bytes of printable UTF-8", name, maxKeyName)
	}
	var ss []string
	for _, s := range scopes {
		if _, err := ParseScope(string(s)); err != nil {
			return "", KeyInfo{}, err
		}
		if !containsScope(ss, s) {
			ss = append(ss, string(s))
		}
	}
	li, err := db.st.Log(ctx, log)
	if errors.Is(err, ErrNotFound) {
		if _, err = db.CreateLog(ctx, log, ""); err != nil && !errors.Is(err, ErrExists) {
			return "", KeyInfo{}, err
		}
		li, err = db.st.Log(ctx, log)
	}
	if err != nil {
		return "", KeyInfo{}, err
	}
	raw := make([]byte, keyIDBytes+keySecretBytes)
	rand.Read(raw)
	id := hex.EncodeToString(raw[:keyIDBytes])
	secret := KeyPrefix + id + "_" + hex.EncodeToString(raw[keyIDBytes:])
	h := sha256.Sum256([]byte(secret))
	k := store.Key{ID: id, Log: li.ID, Name: name, Scopes: ss, Hash: h[:], CreatedAt: db.opts.Now().UTC()}
	if err := db.st.CreateKey(ctx, k); err != nil {
		return "", KeyInfo{}, err
	}
	return secret, keyInfo(k, li.Name), nil
}

// maxKeyName bounds a key's name, a label for listings.
const maxKeyName = 128

func validKeyName(name string) bool {
	if len(name) > maxKeyName || !utf8.ValidString(name) {
		return false
	}
	for _, r := range name {
		if !unicode.IsPrint(r) {
			return false
		}
	}
	return true
}

func containsScope(ss []string, s Scope) bool {
	for _, x := range ss {
		if x == string(s) {
			return true
		}
	}
	return false
}

func keyInfo(k store.Key, log string) KeyInfo {
	ki := KeyInfo{ID: k.ID, Log: log, Name: k.Name, CreatedAt: k.CreatedAt, RevokedAt: k.RevokedAt}
	for _, s := range k.Scopes {
		ki.Scopes = append(ki.Scopes, Scope(s))
	}
	return ki
}

// parseKey splits a key into its id, or reports that it cannot be one.
func parseKey(secret string) (id string, ok bool) {
	rest, ok := strings.CutPrefix(secret, KeyPrefix)
	if !ok {
		return "", false
	}
	id, sec, ok := strings.Cut(rest, "_")
	if !ok || len(id) != 2*keyIDBytes || len(sec) != 2*keySecretBytes {
		return "", false
	}
	return id, true
}

// Authenticate returns the valid key whose secret is given, or an error
// wrapping ErrUnauthorized. The secret is compared in constant time with
// the stored hash.
func (db *DB) Authenticate(ctx context.Context, secret string) (KeyInfo, error) {
	db.mu.Lock()
	closed := db.closed
	db.mu.Unlock()
	if closed {
		return KeyInfo{}, ErrClosed
	}
	id, ok := parseKey(secret)
	if !ok {
		return KeyInfo{}, ErrUnauthorized
	}
	k, err := db.st.Key(ctx, id)
	if errors.Is(err, ErrNotFound) {
		return KeyInfo{}, ErrUnauthorized
	}
	if err != nil {
		return KeyInfo{}, err
	}
	h := sha256.Sum256([]byte(secret))
	if subtle.ConstantTimeCompare(h[:], k.Hash) != 1 || !k.RevokedAt.IsZero() {
		return KeyInfo{}, ErrUnauthorized
	}
	name, err := db.logName(ctx, k.Log)
	if err != nil {
		return KeyInfo{}, err
	}
	return keyInfo(k, name), nil
}

// Key returns the API key with that id, revoked or not (see
// KeyInfo.RevokedAt), or an error wrapping ErrNotFound. It reads the store,
// so it sees keys created or revoked by other processes at once; it is a
// lookup by id, cheap enough to run every second for each open stream.
func (db *DB) Key(ctx context.Context, id string) (KeyInfo, error) {
	db.mu.Lock()
	closed := db.closed
	db.mu.Unlock()
	if closed {
		return KeyInfo{}, ErrClosed
	}
	k, err := db.st.Key(ctx, id)
	if err != nil {
		return KeyInfo{}, err
	}
	name, err := db.logName(ctx, k.Log)
	if err != nil {
		return KeyInfo{}, err
	}
	return keyInfo(k, name), nil
}

// logName returns the name of the log with the store id.
func (db *DB) logName(ctx context.Context, id int64) (string, error) {
	db.mu.Lock()
	for name, l := range db.logs {
		if l.info.ID == id {
			db.mu.Unlock()
			return name, nil
		}
	}
	db.mu.Unlock()
	infos, err := db.st.Logs(ctx)
	if err != nil {
		return "", err
	}
	for _, li := range infos {
		if li.ID == id {
			return li.Name, nil
		}
	}
	return "", fmt.Errorf("log %d: %w", id, ErrNotFound)
}

// Keys lists every API key of every log, revoked ones included, oldest
// first.
func (db *DB) Keys(ctx context.Context) ([]KeyInfo, error) {
	ks, err := db.st.Keys(ctx, 0)
	if err != nil {
		return nil, err
	}
	infos, err := db.st.Logs(ctx)
	if err != nil {
		return nil, err
	}
	names := map[int64]string{}
	for _, li := range infos {
		names[li.ID] = li.Name
	}
	out := make([]KeyInfo, len(ks))
	for i, k := range ks {
		out[i] = keyInfo(k, names[k.Log])
	}
	return out, nil
}

// RevokeKey revokes the API key with that id; it fails from then on.
// Revoking a revoked key does nothing. An unknown id gives an error
// wrapping ErrNotFound.
func (db *DB) RevokeKey(ctx context.Context, id string) error {
	if db.opts.ReadOnly {
		return ErrReadOnly
	}
	err := db.st.RevokeKey(ctx, id, db.opts.Now().UTC())
	db.keysRevoked.Add(1)
	return err
}

// KeysRevoked counts the RevokeKey calls made through this DB, so that a
// cache of authenticated keys can drop them at once. (Keys revoked by
// another process are not counted; a cache must also expire.)
func (db *DB) KeysRevoked() uint64 { return db.keysRevoked.Load() }
