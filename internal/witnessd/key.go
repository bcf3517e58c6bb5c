package witnessd

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/trail-audit/trail/internal/durable"
	fnote "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"
)

// The files of a witness's data directory.
const (
	// KeyFile holds the witness's signing key, an Ed25519 signed-note
	// signer key ("PRIVATE+KEY+NAME+HASH+…"), mode 0600.
	KeyFile = "witness.key"
	// DBFile is the SQLite database holding the latest checkpoint the
	// witness cosigned for each log.
	DBFile = "witness.db"
)

// ErrNoKey is returned by Open and LoadKey when the data directory holds no
// witness key.
var ErrNoKey = errors.New("no witness key")

// Init creates the data directory dir if needed, a new witness key named
// name in it (KeyFile, mode 0600) and its empty state (DBFile). It returns
// the witness's verifier key, a C2SP signed-note key of type
// cosignature/v1 (0x04), as a tlog-policy witness line takes it.
//
// Init never replaces a key: if dir holds one already it fails, naming the
// file. The name must be a valid signed-note key name: not empty, with no
// spaces and no '+'.
func Init(dir, name string) (vkey string, err error) {
	if err := checkDir(dir); err != nil {
		return "", err
	}
	if !ValidName(name) {
		return "", fmt.Errorf("invalid witness name %q: it must be non-empty, with no spaces and no '+'", name)
	}
	skey, _, err := note.GenerateKey(rand.Reader, name)
	if err != nil {
		return "", fmt.Errorf("invalid witness name %q: %v", name, err)
	}
	_, vkey, err = parseKey(skey)
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	path := filepath.Join(dir, KeyFile)
	if _, err := os.Lstat(path); err == nil {
		return "", fmt.Errorf("%s exists: this directory has a witness key already, and a new one would not continue its cosignatures; use another directory, or move it away first", path)
	}
	if err := durable.WriteNew(path, []byte(skey+"\n")); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return "", fmt.Errorf("%s exists: this directory has a witness key already", path)
		}
		return "", fmt.Errorf("writing the witness key: %w", err)
	}
	// The state starts empty; creating the database now makes a
	// directory that cannot hold it fail here rather than at the first
	// submission.
	_, closeDB, err := openPersistence(dir)
	if err != nil {
		return "", err
	}
	if err := closeDB(); err != nil {
		return "", err
	}
	return vkey, nil
}

// LoadKey reads the witness key of the data directory dir and returns its
// signer (producing cosignature/v1 signatures) and its verifier key. A key
// file readable by others than its owner is refused.
func LoadKey(dir string) (fnote.Signer, string, error) {
	path := filepath.Join(dir, KeyFile)
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, "", fmt.Errorf("%w in %s: run trail witness init --data %s --name NAME first", ErrNoKey, dir, dir)
	}
	if err != nil {
		return nil, "", err
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, "", fmt.Errorf("%s is mode %04o: a witness key must be readable by its owner only (chmod 600 %s)", path, fi.Mode().Perm(), path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, "", err
	}
	return parseKey(strings.TrimSpace(string(b)))
}

// parseKey returns the cosignature/v1 signer of the Ed25519 signer key skey
// and its verifier key.
func parseKey(skey string) (fnote.Signer, string, error) {
	parts := strings.SplitN(skey, "+", 5)
	if len(parts) != 5 || parts[0] != "PRIVATE" || parts[1] != "KEY" {
		return nil, "", errors.New("malformed witness key")
	}
	raw, err := base64.StdEncoding.DecodeString(parts[4])
	if err != nil || len(raw) != 1+ed25519.SeedSize || raw[0] != 1 {
		return nil, "", errors.New("malformed witness key: not an Ed25519 signer key")
	}
	signer, err := fnote.NewSignerForCosignatureV1(skey)
	if err != nil {
		return nil, "", fmt.Errorf("malformed witness key: %v", err)
	}
	pub := ed25519.NewKeyFromSeed(raw[1:]).Public().(ed25519.PublicKey)
	plain, err := note.NewEd25519VerifierKey(parts[2], pub)
	if err != nil {
		return nil, "", fmt.Errorf("malformed witness key: %v", err)
	}
	vkey, err := fnote.VKeyToCosignatureV1(plain)
	if err != nil {
		return nil, "", fmt.Errorf("malformed witness key: %v", err)
	}
	return signer, vkey, nil
}

// ValidName reports whether name is a valid signed-note key name, as a
// witness's name must be.
func ValidName(name string) bool {
	return name != "" && !strings.ContainsAny(name, "+ \t\r\n") && strings.IndexFunc(name, func(r rune) bool {
		return r < 0x20 || r == 0x7f || r == 0xfffd
	}) < 0
}

// checkDir refuses a data directory path that cannot be handed to the SQLite
// driver as a file name (it takes what follows a '?' as parameters).
func checkDir(dir string) error {
	if dir == "" {
		return errors.New("no data directory")
	}
	if strings.ContainsAny(dir, "?#") {
		return fmt.Errorf("data directory %q: a witness's directory may not contain '?' or '#'", dir)
	}
	return nil
}
