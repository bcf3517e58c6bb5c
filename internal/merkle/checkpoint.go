package merkle

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// ErrMalformedCheckpoint is returned by [ParseCheckpoint], [Sign] and [Open]
// for a checkpoint body that does not follow the tlog-checkpoint format.
var ErrMalformedCheckpoint = errors.New("malformed checkpoint")

// ErrOriginMismatch is returned by [Sign] and [Open] when a checkpoint's
// origin is not the name of the key that signs it.
var ErrOriginMismatch = errors.New("checkpoint origin does not match key name")

// Checkpoint is the body of a tlog-checkpoint: the log's origin, and the size
// and root hash of its tree. Extensions holds any extension lines, without
// their newlines; it is nil when there are none.
//
// See https://c2sp.org/tlog-checkpoint.
type Checkpoint struct {
	Origin     string
	Size       int64
	Hash       tlog.Hash
	Extensions []string
}

// Marshal returns the checkpoint body: the origin, the decimal size and the
// base64 hash, then the extension lines, each ending in a newline. It does not
// check c; [Sign] does.
func (c Checkpoint) Marshal() []byte {
	b := fmt.Appendf(nil, "%s\n%d\n%s\n", c.Origin, c.Size, base64.StdEncoding.EncodeToString(c.Hash[:]))
	for _, e := range c.Extensions {
		b = append(b, e...)
		b = append(b, '\n')
	}
	return b
}

// ParseCheckpoint parses a checkpoint body strictly. The body must be valid
// UTF-8 and be at least three non-empty lines, each ending in a newline and
// free of control characters. The origin line is not checked further; the
// size line is a decimal int64 without sign or leading zeros; the hash line
// is the canonical standard base64 encoding of 32 bytes. Every accepted body
// is exactly what Marshal returns for the result. Any error is
// [ErrMalformedCheckpoint].
func ParseCheckpoint(text []byte) (Checkpoint, error) {
	if len(text) == 0 || text[len(text)-1] != '\n' {
		return Checkpoint{}, ErrMalformedCheckpoint
	}
	lines := strings.Split(string(text[:len(text)-1]), "\n")
	if len(lines) < 3 {
		return Checkpoint{}, ErrMalformedCheckpoint
	}
	for _, l := range lines {
		if !validLine(l) {
			return Checkpoint{}, ErrMalformedCheckpoint
		}
	}
	c := Checkpoint{Origin: lines[0]}

	sizeLine := lines[1]
	if strings.TrimLeft(sizeLine, "0123456789") != "" || len(sizeLine) > 1 && sizeLine[0] == '0' {
		return Checkpoint{}, ErrMalformedCheckpoint
	}
	size, err := strconv.ParseInt(sizeLine, 10, 64)
	if err != nil {
		return Checkpoint{}, ErrMalformedCheckpoint
	}
	c.Size = size

	hash, err := base64.StdEncoding.DecodeString(lines[2])
	if err != nil || len(hash) != tlog.HashSize || base64.StdEncoding.EncodeToString(hash) != lines[2] {
		return Checkpoint{}, ErrMalformedCheckpoint
	}
	copy(c.Hash[:], hash)

	if len(lines) > 3 {
		c.Extensions = lines[3:]
	}
	return c, nil
}

// validLine reports whether l may be a line of a checkpoint body: non-empty
// UTF-8 with no control characters.
func validLine(l string) bool {
	return l != "" && utf8.ValidString(l) && strings.IndexFunc(l, unicode.IsControl) < 0
}

// Sign returns c as a signed note, signed by signer. It returns
// [ErrMalformedCheckpoint] if c's body would not parse back to c (an empty
// origin, a negative size, a line with a newline or other control character,
// an empty extension line), and [ErrOriginMismatch] if c's origin is not
// signer's name, since [Open] would reject such a note.
func Sign(c Checkpoint, signer note.Signer) ([]byte, error) {
	if !validLine(c.Origin) || c.Size < 0 {
		return nil, ErrMalformedCheckpoint
	}
	for _, e := range c.Extensions {
		if !validLine(e) {
			return nil, ErrMalformedCheckpoint
		}
	}
	if c.Origin != signer.Name() {
		return nil, ErrOriginMismatch
	}
	return note.Sign(&note.Note{Text: string(c.Marshal())}, signer)
}

// Open verifies a signed checkpoint with verifier and parses it. It returns
// the checkpoint and the note, whose Sigs hold verifier's signature and whose
// UnverifiedSigs hold any others, such as witness cosignatures.
//
// Errors from [note.Open] are wrapped with %w; among them are
// [*note.UnverifiedNoteError] when verifier did not sign the note and
// [*note.InvalidSignatureError] when its signature is wrong. A body that is
// not a checkpoint is [ErrMalformedCheckpoint], and a checkpoint whose origin
// is not verifier's name is [ErrOriginMismatch].
func Open(signed []byte, verifier note.Verifier) (Checkpoint, *note.Note, error) {
	n, err := note.Open(signed, note.VerifierList(verifier))
	if err != nil {
		return Checkpoint{}, nil, fmt.Errorf("merkle: opening checkpoint: %w", err)
	}
	c, err := ParseCheckpoint([]byte(n.Text))
	if err != nil {
		return Checkpoint{}, nil, err
	}
	if c.Origin != verifier.Name() {
		return Checkpoint{}, nil, ErrOriginMismatch
	}
	return c, n, nil
}

// NewKey generates an Ed25519 signed-note key pair for name, which is also
// the origin of the checkpoints it signs. The name must be a valid key name
// (non-empty, with no spaces or '+') and a valid origin (no control
// characters).
func NewKey(name string) (signerKey, verifierKey string, err error) {
	if !validLine(name) {
		return "", "", fmt.Errorf("merkle: invalid key name %q", name)
	}
	signerKey, verifierKey, err = note.GenerateKey(rand.Reader, name)
	if err != nil {
		return "", "", err
	}
	if _, err := note.NewVerifier(verifierKey); err != nil {
		return "", "", fmt.Errorf("merkle: invalid key name %q", name)
	}
	return signerKey, verifierKey, nil
}
