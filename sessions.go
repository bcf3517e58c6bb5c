package trail

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/trail-audit/trail/internal/durable"
)

// What the web viewer's sessions need from the store (see sessionKeeper):
// the viewer signs its session cookies with the store's session secret,
// so that every server on the store accepts them, and a sign-out is
// recorded in the store, so that every server refuses the cookie after.

// SessionSecret returns the secret that signs the web viewer's session
// cookies: 32 random bytes kept by the store and made on first use, the
// same for every DB on the store, so that each server accepts the cookies
// of the others. A sqlite store keeps it in DIR/session.key (mode 0600);
// removing that file and restarting the server signs every viewer out. A
// read-only DB gives ErrReadOnly.
func (db *DB) SessionSecret(ctx context.Context) ([]byte, error) {
	if err := db.usable(); err != nil {
		return nil, err
	}
	return db.sessions.SessionSecret(ctx)
}

// EndSession records that the viewer session id (1 to 64 of A-Z a-z 0-9
// '-' '_') was signed out: SessionEnded then reports it, on every DB on the
// store, at least until expires, when the session ends anyway. A sqlite
// store keeps one small file per session in DIR/signed-out/, removing
// those past their expiry. A read-only DB gives ErrReadOnly.
func (db *DB) EndSession(ctx context.Context, id string, expires time.Time) error {
	if err := db.usable(); err != nil {
		return err
	}
	if !validSessionID(id) {
		return fmt.Errorf("session id %q: must be 1 to 64 of A-Z, a-z, 0-9, '-' and '_'", id)
	}
	return db.sessions.EndSession(ctx, id, expires)
}

// SessionEnded reports whether the viewer session id was signed out
// (EndSession) through any DB on the store. An id that EndSession would
// refuse was never signed out.
func (db *DB) SessionEnded(ctx context.Context, id string) (bool, error) {
	db.mu.Lock()
	closed := db.closed
	db.mu.Unlock()
	if closed {
		return false, ErrClosed
	}
	if !validSessionID(id) {
		return false, nil
	}
	return db.sessions.SessionEnded(ctx, id)
}

// usable returns ErrClosed or ErrReadOnly if the DB cannot write.
func (db *DB) usable() error {
	db.mu.Lock()
	closed := db.closed
	db.mu.Unlock()
	switch {
	case closed:
		return ErrClosed
	case db.opts.ReadOnly:
		return ErrReadOnly
	}
	return nil
}

func validSessionID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for _, c := range []byte(id) {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// In a data directory, the session secret is session.key, mode 0600,
// holding the secret in standard base64 and a newline; signed-out/ holds
// a file per signed-out session, named by its id, holding its expiry in
// Unix seconds.
const (
	sessionKeyFile  = "session.key"
	signedOutDir    = "signed-out"
	sessionKeyBytes = 32
)

// SessionSecret reads DIR/session.key, making it if there is none. A new
// secret is written to a temporary file that is then linked to its name,
// which fails if the name exists: racing first uses all end up reading
// the one that was linked first, never a file half written.
func (k dirKeys) SessionSecret(ctx context.Context) ([]byte, error) {
	path := filepath.Join(k.dir, sessionKeyFile)
	b, err := os.ReadFile(path)
	if err == nil {
		return parseSessionSecret(path, b)
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("read the session secret: %w", err)
	}
	secret := make([]byte, sessionKeyBytes)
	rand.Read(secret)
	tmp, err := os.CreateTemp(k.dir, "."+sessionKeyFile+"-*") // mode 0600
	if err != nil {
		return nil, fmt.Errorf("write the session secret: %w", err)
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.WriteString(base64.StdEncoding.EncodeToString(secret) + "\n")
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Link(tmp.Name(), path)
	}
	switch {
	case err == nil:
		durable.SyncDir(k.dir)
		return secret, nil
	case errors.Is(err, fs.ErrExist):
		b, err := os.ReadFile(path) // made by another process meanwhile
		if err != nil {
			return nil, fmt.Errorf("read the session secret: %w", err)
		}
		return parseSessionSecret(path, b)
	}
	return nil, fmt.Errorf("write the session secret: %w", err)
}

func parseSessionSecret(path string, b []byte) ([]byte, error) {
	secret, err := base64.StdEncoding.DecodeString(string(bytes.TrimSpace(b)))
	if err != nil || len(secret) != sessionKeyBytes {
		return nil, fmt.Errorf("%s is not a session secret (remove it to make a new one, which signs every viewer out)", path)
	}
	return secret, nil
}

// EndSession writes DIR/signed-out/<id>, and removes the files of
// sessions past their expiry.
func (k dirKeys) EndSession(ctx context.Context, id string, expires time.Time) error {
	dir := filepath.Join(k.dir, signedOutDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("record the sign-out: %w", err)
	}
	tmp, err := os.CreateTemp(dir, ".end-*")
	if err != nil {
		return fmt.Errorf("record the sign-out: %w", err)
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.WriteString(strconv.FormatInt(expires.Unix(), 10) + "\n")
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), filepath.Join(dir, id))
	}
	if err != nil {
		return fmt.Errorf("record the sign-out: %w", err)
	}
	durable.SyncDir(dir)
	k.pruneSignedOut(dir, time.Now())
	return nil
}

// pruneGrace is how long past its expiry a sign-out is kept, for servers
// whose clocks are behind.
const pruneGrace = time.Hour

// pruneSignedOut removes the records of sessions that expired more than
// pruneGrace before now. It is tidying: what it cannot read or remove
// stays.
func (k dirKeys) pruneSignedOut(dir string, now time.Time) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		if !validSessionID(e.Name()) {
			continue
		}
		p := filepath.Join(dir, e.Name())
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		exp, err := strconv.ParseInt(string(bytes.TrimSpace(b)), 10, 64)
		if err == nil && exp < now.Add(-pruneGrace).Unix() {
			os.Remove(p)
		}
	}
}

// SessionEnded reports whether DIR/signed-out/<id> exists.
func (k dirKeys) SessionEnded(ctx context.Context, id string) (bool, error) {
	_, err := os.Stat(filepath.Join(k.dir, signedOutDir, id))
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, fs.ErrNotExist):
		return false, nil
	}
	return false, fmt.Errorf("read the signed-out sessions: %w", err)
}
