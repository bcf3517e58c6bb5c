package trail

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/trail-audit/trail/api"
	"github.com/trail-audit/trail/event"
	"github.com/trail-audit/trail/internal/canon"
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

// KeyInfo describes an API key; it never holds the secret. Its JSON form
// is api.KeyInfo (see Wire).
type KeyInfo struct {
	ID        string
	Log       string
	Name      string
	Scopes    []Scope
	CreatedAt time.Time
	// RevokedAt is zero while the key is valid.
	RevokedAt time.Time
}

// Wire returns k as the HTTP API (GET /v1/keys) and trail keys list
// --json show it.
func (k KeyInfo) Wire() api.KeyInfo {
	out := api.KeyInfo{ID: k.ID, Log: k.Log, Name: k.Name, CreatedAt: k.CreatedAt, RevokedAt: k.RevokedAt}
	if k.Scopes != nil {
		out.Scopes = make([]string, len(k.Scopes))
		for i, s := range k.Scopes {
			out.Scopes[i] = string(s)
		}
	}
	return out
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

// A Caller is who administers API keys: the trail.key.create,
// trail.key.revoke and trail.key.list events that record each call name
// its Actor (an admin key as a service actor, or a person at the command
// line, say {ID: "cli:alice", Type: "user"}) and its Source. Actor.ID is
// required.
type Caller struct {
	Actor  event.Actor
	Source event.Source
}

// Actions of the events that record key administration. A listing is a
// read, one of ReadActions; a creation or revocation is not.
const (
	ActionKeyCreate = "trail.key.create"
	ActionKeyRevoke = "trail.key.revoke"
	ActionKeyList   = "trail.key.list"
)

// keyEvent is the event that records by's action on key k: the key is its
// target (id and name), and its scopes are in the metadata, with extra
// fields. It is checked, so that a bad Caller fails before anything is
// done.
func (db *DB) keyEvent(by Caller, action string, k *store.Key, extra map[string]any) (event.Event, error) {
	e := event.Event{Actor: by.Actor, Action: action, Source: by.Source}
	if k != nil {
		e.Targets = []event.Target{{Type: "api_key", ID: k.ID, Name: k.Name}}
		md := map[string]any{"scopes": k.Scopes}
		for name, v := range extra {
			md[name] = v
		}
		b, err := json.Marshal(md)
		if err != nil {
			return event.Event{}, err
		}
		e.Metadata = b
	}
	if by.Actor.ID == "" {
		return event.Event{}, errors.New("key administration needs a caller: Caller.Actor.ID is empty")
	}
	check := e
	err := check.Prepare(db.opts.Now(), db.opts.Limits)
	if err == nil {
		err = canon.CheckSize(&check, db.opts.Limits)
	}
	if err != nil {
		return event.Event{}, fmt.Errorf("caller: %w", err)
	}
	return e, nil
}

// CreateKey creates an API key for log, creating the log (with the default
// origin) if it does not exist yet, and returns the key's secret, which is
// shown only this once, and its description. At least one scope is needed.
//
// The creation is recorded in the key's log as a trail.key.create event
// naming by as its actor, the key (id and name) as its target, and its
// scopes and fingerprint (keyFingerprint) in the metadata; never the
// secret. The event is committed before
// the key is stored, so no key works unrecorded; if storing the key then
// fails, the log holds the record of a key that never worked.
func (db *DB) CreateKey(ctx context.Context, by Caller, log, name string, scopes ...Scope) (string, KeyInfo, error) {
	if db.opts.ReadOnly {
		return "", KeyInfo{}, ErrReadOnly
	}
	if len(scopes) == 0 {
		return "", KeyInfo{}, errors.New("a key needs at least one scope")
	}
	if !ValidKeyName(name) {
		shown := name
		if len(shown) > 40 {
			shown = strings.ToValidUTF8(shown[:40], "") + "…"
		}
		return "", KeyInfo{}, fmt.Errorf("key name %q (%d bytes): at most %d bytes of printable UTF-8", shown, len(name), maxKeyName)
	}
	ss := []string{}
	for _, s := range scopes {
		if _, err := ParseScope(string(s)); err != nil {
			return "", KeyInfo{}, err
		}
		if !containsScope(ss, s) {
			ss = append(ss, string(s))
		}
	}
	raw := make([]byte, keyIDBytes+keySecretBytes)
	rand.Read(raw)
	id := hex.EncodeToString(raw[:keyIDBytes])
	secret := KeyPrefix + id + "_" + hex.EncodeToString(raw[keyIDBytes:])
	h := sha256.Sum256([]byte(secret))
	k := store.Key{ID: id, Name: name, Scopes: ss, Hash: h[:], CreatedAt: db.opts.Now().UTC()}
	ev, err := db.keyEvent(by, ActionKeyCreate, &k, map[string]any{"fingerprint": keyFingerprint(k.Hash)})
	if err != nil {
		return "", KeyInfo{}, err
	}
	l, err := db.Log(ctx, log)
	if errors.Is(err, ErrNotFound) {
		l, err = db.CreateLog(ctx, log, "")
		if errors.Is(err, ErrExists) {
			l, err = db.Log(ctx, log)
		}
	}
	if err != nil {
		return "", KeyInfo{}, err
	}
	k.Log = l.info.ID
	if _, err := l.Append(ctx, ev); err != nil {
		return "", KeyInfo{}, fmt.Errorf("recording the new key: %w", err)
	}
	if err := db.st.CreateKey(ctx, k); err != nil {
		return "", KeyInfo{}, db.keyWriteErr(err)
	}
	return secret, keyInfo(k, l.Name()), nil
}

// maxKeyName bounds a key's name, a label for listings.
const maxKeyName = 128

// ValidKeyName reports whether name can name an API key: at most 128
// bytes of printable UTF-8 (it may be empty).
func ValidKeyName(name string) bool {
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
	if errors.Is(err, store.ErrUnreachable) {
		// The database server is down or restarting: the caller may
		// retry (a server answers 503), unlike for a store that fails.
		return KeyInfo{}, &UnavailableError{Reason: db.reason(err)}
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
	l, err := db.Log(ctx, name)
	if err != nil {
		return KeyInfo{}, err
	}
	if err := db.checkKeyRecords(ctx, k, l); err != nil {
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
// first. It records nothing; ListKeys is the listing an admin asks for.
func (db *DB) Keys(ctx context.Context) ([]KeyInfo, error) {
	if db.closing.Load() {
		return nil, ErrClosed
	}
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

// ListKeys lists the API keys of log, revoked ones included, oldest first,
// and records the listing in log as a trail.key.list event naming by, as
// reads are recorded: before it answers, and failing if the record cannot
// be committed. An unknown log gives an error wrapping ErrNotFound.
func (db *DB) ListKeys(ctx context.Context, by Caller, log string) ([]KeyInfo, error) {
	if db.opts.ReadOnly {
		return nil, ErrReadOnly
	}
	ev, err := db.keyEvent(by, ActionKeyList, nil, nil)
	if err != nil {
		return nil, err
	}
	l, err := db.Log(ctx, log)
	if err != nil {
		return nil, err
	}
	ks, err := db.st.Keys(ctx, l.info.ID)
	if err != nil {
		return nil, err
	}
	out := make([]KeyInfo, len(ks))
	for i, k := range ks {
		out[i] = keyInfo(k, l.Name())
	}
	if _, err := l.Append(ctx, ev); err != nil {
		return nil, fmt.Errorf("recording the listing: %w", err)
	}
	return out, nil
}

// RevokeKey revokes the API key with that id; it fails from then on. An
// unknown id gives an error wrapping ErrNotFound.
//
// The revocation is recorded in the key's log as a trail.key.revoke event
// naming by as its actor and the key as its target, after the key is
// revoked, so a key is never recorded as revoked while it still works.
// Revoking a revoked key changes nothing but is recorded again (its
// metadata then holds already_revoked_at), so that a call whose record
// failed can be repeated.
func (db *DB) RevokeKey(ctx context.Context, by Caller, id string) error {
	if db.opts.ReadOnly {
		return ErrReadOnly
	}
	k, err := db.st.Key(ctx, id)
	if err != nil {
		return err
	}
	var extra map[string]any
	if !k.RevokedAt.IsZero() {
		extra = map[string]any{"already_revoked_at": k.RevokedAt.UTC().Format(time.RFC3339Nano)}
	}
	ev, err := db.keyEvent(by, ActionKeyRevoke, &k, extra)
	if err != nil {
		return err
	}
	name, err := db.logName(ctx, k.Log)
	if err != nil {
		return err
	}
	l, err := db.Log(ctx, name)
	if err != nil {
		return err
	}
	err = db.st.RevokeKey(ctx, id, db.opts.Now().UTC())
	db.keysRevoked.Add(1)
	if err != nil {
		return db.keyWriteErr(err)
	}
	if _, err := l.Append(ctx, ev); err != nil {
		return fmt.Errorf("key %s is revoked, but recording it failed (revoke it again to record it): %w", id, err)
	}
	return nil
}

// KeysRevoked counts the RevokeKey calls made through this DB, so that a
// cache of authenticated keys can drop them at once. (Keys revoked by
// another process are not counted; a cache must also expire.)
func (db *DB) KeysRevoked() uint64 { return db.keysRevoked.Load() }

// keyWriteErr is the error of a key write the store refused: ErrNotFound
// and ErrExists as they are, anything else (the files gone, the disk full)
// as an UnavailableError saying why, like a failed commit.
func (db *DB) keyWriteErr(err error) error {
	if errors.Is(err, ErrNotFound) || errors.Is(err, ErrExists) {
		return err
	}
	return db.unavailable(err)
}
