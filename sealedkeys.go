package trail

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/trail-audit/trail/internal/durable"
	"github.com/trail-audit/trail/internal/merkle"
	"github.com/trail-audit/trail/internal/store"
	"github.com/trail-audit/trail/internal/store/postgres"
)

// sealedKeys keeps the logs' signing keys, and the viewer's session
// secret (SessionSecret), in a store shared by many servers
// (store.Secrets), sealed with a master key that every server is given and
// that the store never sees. Nothing uses it yet: it is for the PostgreSQL
// store, once Open takes it with a master key.
//
// # Master key
//
// The master key is 32 random bytes, in a file of its own given to every
// server (LoadMasterKey reads it), and never stored in the database, nor
// logged. Each log's signing key, in note's signer key form as a sqlite
// store's key file holds it, is sealed with AES-256-GCM under the master
// key, with a random nonce and the secret's name, log/<name>/signer, as
// additional data, so a sealed key moved to another log's name does not
// unseal. The database thus holds only sealed keys: a copy of it (a
// backup, a replica) cannot sign without the master key, and a server
// given another master key refuses the keys with an error saying so. Lose
// the master key and every log's key is lost with it: keep it backed up
// apart from the database's backups.
//
// A sealed secret is a version byte (1), the 12-byte nonce, and the
// ciphertext with its 16-byte tag.
type sealedKeys struct {
	secrets store.Secrets
	aead    cipher.AEAD

	// loaded holds each log's signing key once unsealed (Signer), so that
	// a server keeps the keys it loaded when trail rekey seals them under
	// a new master key.
	mu     sync.Mutex
	loaded map[string]loadedKey
}

// loadedKey is a log's unsealed signing key and its verifier key.
type loadedKey struct {
	signer note.Signer
	vkey   string
}

var (
	_ signerSource  = (*sealedKeys)(nil)
	_ sessionKeeper = (*sealedKeys)(nil)
)

// masterKeySize is the size of a master key in bytes.
const masterKeySize = 32

// sealVersion is the first byte of a sealed secret: AES-256-GCM, 12-byte
// nonce.
const sealVersion = 1

// errWrongMaster is why a sealed secret did not unseal. It says nothing of
// the key or the secret.
var errWrongMaster = errors.New("cannot unseal: sealed with a different master key, or changed in the database")

// newSealedKeys returns a signerSource keeping its keys in secrets, sealed
// with master, which must be masterKeySize bytes.
func newSealedKeys(secrets store.Secrets, master []byte) (*sealedKeys, error) {
	if len(master) != masterKeySize {
		return nil, fmt.Errorf("master key is %d bytes, want %d", len(master), masterKeySize)
	}
	block, err := aes.NewCipher(master)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &sealedKeys{secrets: secrets, aead: aead}, nil
}

// check fails unless the master key opens the secrets already in the
// store: one of them suffices, so that a server given the wrong master
// key file refuses to start, rather than start and fail every append
// and sign-in, while one secret changed in the database fails only its
// own log. A store with no secret yet passes.
func (k *sealedKeys) check(ctx context.Context, logs interface {
	Logs(context.Context) ([]store.LogInfo, error)
}) error {
	names := []string{sessionSecretName}
	infos, err := logs.Logs(ctx)
	if err != nil {
		return err
	}
	for _, l := range infos {
		names = append(names, signerSecret(l.Name))
	}
	var first error
	for _, name := range names {
		sealed, err := k.secrets.Secret(ctx, name)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return fmt.Errorf("read secret %q: %w", name, err)
		}
		_, err = k.unseal(name, sealed)
		if err == nil {
			return nil
		}
		if first == nil {
			first = err
		}
	}
	if first != nil {
		return fmt.Errorf("the master key opens none of the store's secrets (%w): give the master key file trail init made, or the new one of the last trail rekey", first)
	}
	return nil
}

// signerSecret names the secret holding log's signing key.
func signerSecret(log string) string { return "log/" + log + "/signer" }

// seal encrypts plain for the secret name.
func (k *sealedKeys) seal(name string, plain []byte) []byte {
	out := make([]byte, 1+k.aead.NonceSize(), 1+k.aead.NonceSize()+len(plain)+k.aead.Overhead())
	out[0] = sealVersion
	rand.Read(out[1:]) // never fails (crypto/rand)
	return k.aead.Seal(out, out[1:], plain, []byte(name))
}

// unseal decrypts the secret name.
func (k *sealedKeys) unseal(name string, sealed []byte) ([]byte, error) {
	n := k.aead.NonceSize()
	if len(sealed) < 1+n+k.aead.Overhead() || sealed[0] != sealVersion {
		return nil, fmt.Errorf("secret %q: not a sealed secret of this version of Trail", name)
	}
	plain, err := k.aead.Open(nil, sealed[1:1+n], sealed[1+n:], []byte(name))
	if err != nil {
		return nil, fmt.Errorf("secret %q: %w", name, errWrongMaster)
	}
	return plain, nil
}

// Create implements signerSource. Of servers racing to create one log's
// key, the first to store it wins, and the others return its verifier key.
func (k *sealedKeys) Create(ctx context.Context, log logRef) (string, error) {
	skey, vkey, err := merkle.NewKey(log.Origin)
	if err != nil {
		return "", err
	}
	name := signerSecret(log.Name)
	err = k.secrets.PutSecret(ctx, name, k.seal(name, []byte(skey)))
	if err == nil {
		return vkey, nil
	}
	if !errors.Is(err, store.ErrExists) {
		return "", fmt.Errorf("store signing key: %w", err)
	}
	// Another server won, or a CreateLog stopped before storing its log:
	// that key never signed anything.
	_, vkey, err = k.load(ctx, log.Name)
	if err != nil {
		return "", err
	}
	if origin, _, _ := strings.Cut(vkey, "+"); origin != log.Origin {
		return "", fmt.Errorf("log %q: the database holds a signing key for another origin (%s)", log.Name, origin)
	}
	return vkey, nil
}

// Signer implements signerSource.
//
// A key once unsealed is kept: trail rekey seals the same keys under a
// new master key, and servers still running with the old one go on
// signing with them until restarted with the new one. A key this
// server's master key does not open is an *UnavailableError saying so.
func (k *sealedKeys) Signer(ctx context.Context, log logRef) (note.Signer, error) {
	k.mu.Lock()
	lk, ok := k.loaded[log.Name]
	k.mu.Unlock()
	if ok && lk.vkey == log.VerifierKey {
		return lk.signer, nil
	}
	signer, vkey, err := k.load(ctx, log.Name)
	if errors.Is(err, errWrongMaster) {
		return nil, &UnavailableError{Err: err, Reason: sealedElsewhere(log.Name)}
	}
	if err != nil {
		return nil, err
	}
	if vkey != log.VerifierKey {
		return nil, keyMismatch(log, fmt.Sprintf("in secret %q", signerSecret(log.Name)))
	}
	k.mu.Lock()
	if k.loaded == nil {
		k.loaded = map[string]loadedKey{}
	}
	k.loaded[log.Name] = loadedKey{signer, vkey}
	k.mu.Unlock()
	return signer, nil
}

// sealedElsewhere is why log's signing key is not served: this server's
// master key does not open it.
func sealedElsewhere(log string) string {
	return fmt.Sprintf("log %s is not served: its signing key is sealed under another master key than this server's; if trail rekey ran, restart this server with the new master key (otherwise the sealed key was changed in the database)", log)
}

// keySealedElsewhere reports whether err is the Signer's error for a
// signing key this server's master key does not open.
func keySealedElsewhere(err error) bool {
	var ue *UnavailableError
	return errors.As(err, &ue) && errors.Is(ue.Err, errWrongMaster)
}

// load reads and unseals a log's signing key and derives its verifier key.
func (k *sealedKeys) load(ctx context.Context, log string) (note.Signer, string, error) {
	name := signerSecret(log)
	sealed, err := k.secrets.Secret(ctx, name)
	if errors.Is(err, store.ErrNotFound) {
		return nil, "", fmt.Errorf("log %q: %w: the database holds no secret %q (restore it from backup; a new key cannot continue this log)", log, ErrMissingKey, name)
	}
	if err != nil {
		return nil, "", fmt.Errorf("log %q: read signing key: %w", log, err)
	}
	plain, err := k.unseal(name, sealed)
	if err != nil {
		return nil, "", fmt.Errorf("log %q: signing key: %w", log, err)
	}
	skey := string(plain)
	// The errors below do not wrap note's, which might quote the key.
	signer, err := note.NewSigner(skey)
	if err != nil {
		return nil, "", fmt.Errorf("log %q: secret %q is not a signing key", log, name)
	}
	vkey, err := verifierKeyOf(skey)
	if err != nil {
		return nil, "", fmt.Errorf("log %q: secret %q: %w", log, name, err)
	}
	return signer, vkey, nil
}

// sessionSecretName names the secret holding the viewer's session secret.
const sessionSecretName = "session"

// endedSessionSecret names the record that the session id was signed out.
func endedSessionSecret(id string) string { return "session/" + id + "/ended" }

// EndSession implements sessionKeeper: the record is a secret of its own,
// sealed like the others, holding when the session expires. Records are
// never removed: each is a few dozen bytes, one per sign-out.
func (k *sealedKeys) EndSession(ctx context.Context, id string, expires time.Time) error {
	name := endedSessionSecret(id)
	b, _ := expires.UTC().MarshalBinary()
	err := k.secrets.PutSecret(ctx, name, k.seal(name, b))
	if errors.Is(err, store.ErrExists) {
		return nil // signed out twice
	}
	return err
}

// SessionEnded implements sessionKeeper.
func (k *sealedKeys) SessionEnded(ctx context.Context, id string) (bool, error) {
	_, err := k.secrets.Secret(ctx, endedSessionSecret(id))
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, store.ErrNotFound):
		return false, nil
	}
	return false, err
}

// SessionSecret implements sessionKeeper: it returns the store's session
// secret, 32 random bytes, sealed like the signing keys and made on first
// use; servers racing to make it all get the one stored first.
func (k *sealedKeys) SessionSecret(ctx context.Context) ([]byte, error) {
	for range 2 {
		sealed, err := k.secrets.Secret(ctx, sessionSecretName)
		if err == nil {
			secret, err := k.unseal(sessionSecretName, sealed)
			if err != nil {
				// Unavailable, not a failure of the server: the viewer
				// says so, and its operator knows what to run.
				return nil, &UnavailableError{Err: err, Reason: "the viewer's session secret is sealed under another master key; if a server ran with the old master key after trail rekey, restart every server with the new one and run the same trail rekey again"}
			}
			if len(secret) != 32 {
				return nil, fmt.Errorf("secret %q: %d bytes, want 32", sessionSecretName, len(secret))
			}
			return secret, nil
		}
		if !errors.Is(err, store.ErrNotFound) {
			return nil, fmt.Errorf("read session secret: %w", err)
		}
		secret := make([]byte, 32)
		rand.Read(secret)
		err = k.secrets.PutSecret(ctx, sessionSecretName, k.seal(sessionSecretName, secret))
		if err == nil {
			return secret, nil
		}
		if !errors.Is(err, store.ErrExists) {
			return nil, fmt.Errorf("store session secret: %w", err)
		}
		// Another server stored it first: read theirs.
	}
	return nil, fmt.Errorf("secret %q: stored and yet not found", sessionSecretName)
}

// LoadMasterKey reads the master key that seals the signing keys kept in a
// database shared by many servers (see sealedKeys).
// The file holds the key's 32 random bytes as one line of standard base64
// (44 characters, as made by "openssl rand -base64 32") or of hex (64
// characters, "openssl rand -hex 32"); whitespace around it is ignored.
// Like an SSH private key, the file must not be readable or writable by
// group or others (chmod 600 or 400); this is not checked on Windows.
// Errors name the file but never quote what it holds.
func LoadMasterKey(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("master key: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("master key: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("master key %s: not a regular file", path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 && runtime.GOOS != "windows" {
		return nil, fmt.Errorf("master key %s: mode %#o lets group or others access it; chmod 600 it", path, perm)
	}
	// A valid file is under 100 bytes; read a little more to tell.
	b, err := io.ReadAll(io.LimitReader(f, 1024))
	if err != nil {
		return nil, fmt.Errorf("master key %s: read: %w", path, err)
	}
	key, ok := parseMasterKey(strings.TrimSpace(string(b)))
	clear(b)
	if !ok {
		return nil, fmt.Errorf("master key %s: want %d random bytes as one line of base64 (44 characters) or hex (64 characters)", path, masterKeySize)
	}
	return key, nil
}

// parseMasterKey decodes a master key in base64 or hex, told apart by
// length.
func parseMasterKey(s string) ([]byte, bool) {
	var key []byte
	var err error
	switch len(s) {
	case base64.StdEncoding.EncodedLen(masterKeySize):
		key, err = base64.StdEncoding.DecodeString(s)
	case hex.EncodedLen(masterKeySize):
		key, err = hex.DecodeString(s)
	default:
		return nil, false
	}
	if err != nil || len(key) != masterKeySize {
		return nil, false
	}
	return key, true
}

// CreateMasterKey makes a new master key (32 random bytes) and writes it
// to the new file path, as one line of base64, mode 0600, synced: the form
// LoadMasterKey reads. It fails if the file exists.
func CreateMasterKey(path string) error {
	key := make([]byte, masterKeySize)
	rand.Read(key)
	text := base64.StdEncoding.EncodeToString(key) + "\n"
	clear(key)
	if err := durable.WriteNew(path, []byte(text)); err != nil {
		if dir := filepath.Dir(path); errors.Is(err, fs.ErrNotExist) {
			if _, serr := os.Stat(dir); errors.Is(serr, fs.ErrNotExist) {
				return fmt.Errorf("master key: cannot create %s: the directory %s does not exist (create it, private: mkdir -m 700)", path, dir)
			}
		}
		return fmt.Errorf("master key: %w", err)
	}
	return nil
}

// RotateMasterKey seals every secret of the store that url names (the
// logs' signing keys, the session secret, the signed-out sessions) again
// under newKey, in one transaction: all of them, or, if a signing key
// unseals with neither oldKey nor newKey, none. One sealed under newKey
// already is left as it is, so the same rotation may run again; viewer
// secrets that unseal with neither are remade. It returns how many it
// resealed or remade. Servers
// running with oldKey keep the keys they have loaded; each must be
// restarted with newKey, since a server given oldKey no longer unseals
// a key it has not loaded. A sqlite store has no master key.
func RotateMasterKey(ctx context.Context, storeURL string, oldKey, newKey []byte) (int, error) {
	u, err := ParseStoreURL(storeURL)
	if err != nil {
		return 0, err
	}
	if u.Scheme == "sqlite" {
		return 0, fmt.Errorf("%s: a sqlite store keeps its keys as files in the data directory, under no master key", u.Dir)
	}
	if bytes.Equal(oldKey, newKey) {
		return 0, errors.New("the new master key is the old one")
	}
	st, err := postgres.Open(ctx, u.URL, postgres.Options{NoIndexer: true})
	if err != nil {
		return 0, err
	}
	defer st.Close()
	from, err := newSealedKeys(st, oldKey)
	if err != nil {
		return 0, fmt.Errorf("old %w", err)
	}
	to, err := newSealedKeys(st, newKey)
	if err != nil {
		return 0, fmt.Errorf("new %w", err)
	}
	now := time.Now()
	changed := 0
	_, err = st.ResealSecrets(ctx, func(name string, sealed []byte) ([]byte, error) {
		plain, err := from.unseal(name, sealed)
		if err == nil {
			defer clear(plain)
			changed++
			return to.seal(name, plain), nil
		}
		if plain, nerr := to.unseal(name, sealed); nerr == nil {
			// Sealed under the new key already: by an earlier run of
			// this rekey, which a server still running with the old
			// key made necessary again (below), or which stopped.
			clear(plain)
			return sealed, nil
		}
		// A server still running with another master key after an
		// earlier rekey seals what the viewer makes (a sign-out, the
		// first session secret) under that key. Those are remade rather
		// than block every rekey to come; signing keys never are.
		viewer := name == sessionSecretName || strings.HasPrefix(name, "session/") && strings.HasSuffix(name, "/ended")
		if !viewer {
			return nil, err
		}
		changed++
		switch {
		case name == sessionSecretName:
			// A new session secret: viewers sign in again.
			secret := make([]byte, 32)
			rand.Read(secret)
			return to.seal(name, secret), nil
		default:
			// The sign-out stands; no session outlives a day.
			b, _ := now.Add(24 * time.Hour).UTC().MarshalBinary()
			return to.seal(name, b), nil
		}
	})
	if err != nil {
		return 0, err
	}
	return changed, nil
}
