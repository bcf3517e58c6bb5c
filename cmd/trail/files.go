package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/mod/sumdb/note"
)

// Limits on the files flags name: a key, a checkpoint or a policy is a
// few kilobytes, a receipt with its event at most a few megabytes. A
// larger file (or a device such as /dev/zero) is the wrong file, refused
// before it fills the memory.
const (
	maxSmallFile   = 1 << 20
	maxReceiptFile = 16 << 20
)

// readLimited reads r to its end, failing once it passes limit bytes.
func readLimited(r io.Reader, limit int64) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("over %d bytes: not the file wanted here", limit)
	}
	return b, nil
}

// readFlagFile reads the file path, at most limit bytes.
func readFlagFile(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := readLimited(f, limit)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return b, nil
}

// signerKeyPrefix starts a note signer key: a secret.
const signerKeyPrefix = "PRIVATE+KEY+"

// errSignerKey is the error for a signing key given where a verifier key
// is wanted; it never quotes the key.
var errSignerKey = errors.New("that is a signing key, the log's secret, not its verifier key: give the verifier key trail init and trail logs print (and keep the signing key private: replace it if it was shared)")

// verifierKeyText returns the verifier key given with --verifier-key, as
// itself or as the name of a file holding it. A signing key given
// instead is refused without being quoted.
func verifierKeyText(s string) (string, error) {
	if strings.HasPrefix(strings.TrimSpace(s), signerKeyPrefix) {
		return "", errSignerKey
	}
	if _, err := note.NewVerifier(s); err == nil {
		return s, nil
	}
	if b, err := readFlagFile(s, maxSmallFile); err == nil {
		k := strings.TrimSpace(string(b))
		if strings.HasPrefix(k, signerKeyPrefix) {
			return "", fmt.Errorf("%s: %w", s, errSignerKey)
		}
		if _, err := note.NewVerifier(k); err == nil {
			return k, nil
		}
		return "", fmt.Errorf("%s holds no verifier key (name+hash+base64)", s)
	}
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return "", fmt.Errorf("%q is neither a verifier key (name+hash+base64) nor a file holding one", s)
}

// readVerifier is verifierKeyText, as a verifier.
func readVerifier(s string) (note.Verifier, error) {
	k, err := verifierKeyText(s)
	if err != nil {
		return nil, err
	}
	return note.NewVerifier(k)
}
