package trail

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/mod/sumdb/note"

	"github.com/trail-audit/trail/internal/durable"
	"github.com/trail-audit/trail/internal/merkle"
)

// dirKeys keeps the secrets of a sqlite store as files in its data
// directory: each log's signing key in keys/<log>.key, mode 0600, holding
// the key in note's signer key form (PRIVATE+KEY+<origin>+<hash>+<key>)
// and a newline; and the viewer's session secret and signed-out sessions
// (sessions.go).
type dirKeys struct{ dir string }

// keysDir holds one signing key per log, <name>.key, mode 0600.
const keysDir = "keys"

func (k dirKeys) keyPath(log string) string { return filepath.Join(k.dir, keysDir, log+".key") }

// Create makes the signing key of a new log and returns its verifier key.
// A key file left by an interrupted CreateLog is reused: it never signed
// anything.
func (k dirKeys) Create(ctx context.Context, log logRef) (string, error) {
	path := k.keyPath(log.Name)
	if _, err := os.Stat(path); err == nil {
		_, vkey, err := k.load(log.Name)
		if err != nil {
			return "", err
		}
		if name, _, _ := strings.Cut(vkey, "+"); name != log.Origin {
			return "", fmt.Errorf("%s exists for another origin (%s); move it away first", path, name)
		}
		return vkey, nil
	}
	skey, vkey, err := merkle.NewKey(log.Origin)
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", err
	}
	if err := durable.WriteNew(path, []byte(skey+"\n")); err != nil {
		return "", fmt.Errorf("write signing key: %w", err)
	}
	return vkey, nil
}

// Signer reads the signing key of log and checks it against the log's
// verifier key.
func (k dirKeys) Signer(ctx context.Context, log logRef) (note.Signer, error) {
	signer, vkey, err := k.load(log.Name)
	if err != nil {
		return nil, err
	}
	if vkey != log.VerifierKey {
		return nil, keyMismatch(log, k.keyPath(log.Name))
	}
	return signer, nil
}

// load reads a log's signing key and derives its verifier key.
func (k dirKeys) load(log string) (note.Signer, string, error) {
	path := k.keyPath(log)
	b, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, "", fmt.Errorf("log %q: %w: %s does not exist (restore it from backup; a new key cannot continue this log)", log, ErrMissingKey, path)
		}
		return nil, "", err
	}
	skey := strings.TrimSpace(string(b))
	signer, err := note.NewSigner(skey)
	if err != nil {
		return nil, "", fmt.Errorf("%s: not a signing key: %w", path, err)
	}
	vkey, err := verifierKeyOf(skey)
	if err != nil {
		return nil, "", fmt.Errorf("%s: %w", path, err)
	}
	return signer, vkey, nil
}

// verifierKeyOf derives the verifier key from an Ed25519 signer key of the
// form PRIVATE+KEY+<name>+<hash>+<base64(0x01 || seed)>.
func verifierKeyOf(skey string) (string, error) {
	parts := strings.SplitN(skey, "+", 5)
	if len(parts) != 5 || parts[0] != "PRIVATE" || parts[1] != "KEY" {
		return "", errors.New("malformed signing key")
	}
	raw, err := base64.StdEncoding.DecodeString(parts[4])
	if err != nil || len(raw) != 1+ed25519.SeedSize || raw[0] != 1 {
		return "", errors.New("malformed or non-Ed25519 signing key")
	}
	pub := ed25519.NewKeyFromSeed(raw[1:]).Public().(ed25519.PublicKey)
	return note.NewEd25519VerifierKey(parts[2], pub)
}
