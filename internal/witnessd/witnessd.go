// Package witnessd runs a transparency log witness: it cosigns the
// checkpoints of the logs it is given, each only after checking that it is
// consistent with the last checkpoint of that log it cosigned, and keeps that
// checkpoint durably. It speaks the C2SP tlog-witness protocol
// (https://c2sp.org/tlog-witness) over HTTP, POST /add-checkpoint, and
// signs C2SP tlog-cosignature cosignature/v1 Ed25519 cosignatures
// (https://c2sp.org/tlog-cosignature).
//
// The checks and the state are those of github.com/transparency-dev/witness
// (its witness core and SQLite persistence, opened in WAL mode with
// synchronous=FULL, so a cosigned checkpoint is on disk before the answer);
// this package adds the key and directory handling and its own HTTP edge,
// which reads requests strictly and answers every refusal with the status
// the protocol names (see Handler).
package witnessd

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"

	flog "github.com/transparency-dev/formats/log"
	fnote "github.com/transparency-dev/formats/note"
	"github.com/transparency-dev/witness/persistence/sqlite"
	"github.com/transparency-dev/witness/witness"
	"golang.org/x/mod/sumdb/note"

	"github.com/trail-audit/trail/internal/dirlock"
)

// MaxBodyBytes is the largest add-checkpoint request body a witness reads.
const MaxBodyBytes = 16 << 10

// maxProofLines is the most consistency proof lines tlog-witness allows.
const maxProofLines = 63

// Config is what a witness serves.
type Config struct {
	// Dir is the data directory Init made: the key and the state.
	Dir string
	// Logs are the checkpoint verifier keys (signed-note vkeys) of the
	// logs to witness. Each key's name is the log's checkpoint origin, as
	// for every Trail log; two keys may not name the same origin.
	Logs []string
	// Logger receives a line per submission; nil discards them.
	Logger *slog.Logger
}

// Witness is a running witness: its key, its logs and its state. It is safe
// for concurrent use; submissions for one log are serialized by the state's
// transactions.
type Witness struct {
	name, vkey string
	logs       map[string]note.Verifier // by origin
	core       *witness.Witness
	logger     *slog.Logger

	closeOnce sync.Once
	closeDB   func() error
	lock      *os.File // LockFile, held while open
	closeErr  error
}

// LockFile is the file in a witness's directory that an open Witness
// holds locked: a second witness on the directory is refused, as two
// would sign from one state without seeing each other's updates.
const LockFile = "witness.lock"

// lockDir takes dir's LockFile, or says which directory another witness
// holds.
func lockDir(dir string) (*os.File, error) {
	path := filepath.Join(dir, LockFile)
	f, err := dirlock.Open(path)
	if err != nil {
		return nil, fmt.Errorf("lock the witness's directory: %w", err)
	}
	if err := dirlock.TryLock(f); err != nil {
		f.Close()
		if errors.Is(err, dirlock.ErrHeld) {
			return nil, fmt.Errorf("%s: another trail witness runs on this directory (it holds %s): stop it first", dir, LockFile)
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return f, nil
}

// Open opens the witness of cfg.Dir for the logs of cfg.Logs. Close it when
// done.
func Open(ctx context.Context, cfg Config) (*Witness, error) {
	if err := checkDir(cfg.Dir); err != nil {
		return nil, err
	}
	logs, err := ParseLogKeys(cfg.Logs)
	if err != nil {
		return nil, err
	}
	signer, vkey, err := LoadKey(cfg.Dir)
	if err != nil {
		return nil, err
	}
	lock, err := lockDir(cfg.Dir)
	if err != nil {
		return nil, err
	}
	p, closeDB, err := openPersistence(cfg.Dir)
	if err != nil {
		lock.Close()
		return nil, err
	}
	core, err := witness.New(ctx, witness.Opts{
		Persistence: statePersistence{p},
		Signers:     []note.Signer{signer},
		VerifierForLog: func(_ context.Context, origin string) (note.Verifier, bool, error) {
			v, ok := logs[origin]
			return v, ok, nil
		},
	})
	if err != nil {
		closeDB()
		lock.Close()
		return nil, err
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Witness{name: signer.Name(), vkey: vkey, logs: logs, core: core, closeDB: closeDB, lock: lock, logger: logger}, nil
}

// ParseLogKeys parses log verifier keys and returns them by origin (the
// key's name). It fails on a malformed key, naming it, and on two keys for
// one origin.
func ParseLogKeys(vkeys []string) (map[string]note.Verifier, error) {
	if len(vkeys) == 0 {
		return nil, errors.New("no logs to witness: give each log's verifier key")
	}
	logs := make(map[string]note.Verifier, len(vkeys))
	for _, k := range vkeys {
		if strings.HasPrefix(k, "PRIVATE+KEY+") {
			// Never quoted: it is a secret.
			return nil, errors.New("a log verifier key given is a signing key, a log's secret: give the verifier key trail init and trail logs print (and replace the signing key if it was shared)")
		}
		if isCosignatureKey(k) {
			return nil, fmt.Errorf("log verifier key %q is a witness's cosignature key, not the key of a log's checkpoints", k)
		}
		v, err := fnote.NewVerifier(k)
		if err != nil {
			return nil, fmt.Errorf("log verifier key %q: %v", k, err)
		}
		if _, dup := logs[v.Name()]; dup {
			return nil, fmt.Errorf("log verifier key %q: another key names the same log origin %q", k, v.Name())
		}
		logs[v.Name()] = v
	}
	return logs, nil
}

// isCosignatureKey reports whether vkey is a cosignature/v1 key (Ed25519,
// type 0x04, or ML-DSA-44, type 0x06), which signs cosignatures rather
// than checkpoints.
func isCosignatureKey(vkey string) bool {
	parts := strings.SplitN(vkey, "+", 3)
	if len(parts) != 3 {
		return false
	}
	raw, err := base64.StdEncoding.DecodeString(parts[2])
	return err == nil && len(raw) > 0 && (raw[0] == 0x04 || raw[0] == 0x06)
}

// openPersistence opens (creating if needed) the state of the witness in
// dir with transparency-dev/witness's SQLite persistence, which opens its
// database in WAL mode with synchronous=FULL: a cosigned checkpoint is
// durable, power loss included, before the witness answers. One connection
// serializes the submissions of this process, which the checks need anyway;
// two processes on one directory stay correct (each update is one
// serializable transaction) and the loser of a race answers 429.
func openPersistence(dir string) (*sqlite.Persistence, func() error, error) {
	p, closeDB, err := sqlite.New(context.Background(), sqlite.Opts{Path: filepath.Join(dir, DBFile), MaxOpenConns: 1})
	if err != nil {
		return nil, nil, fmt.Errorf("opening the witness state %s: %v", filepath.Join(dir, DBFile), err)
	}
	return p, closeDB, nil
}

// Name returns the witness's name, the name of its key.
func (w *Witness) Name() string { return w.name }

// VerifierKey returns the witness's verifier key (cosignature/v1).
func (w *Witness) VerifierKey() string { return w.vkey }

// Origins returns the origins of the logs the witness cosigns, sorted.
func (w *Witness) Origins() []string {
	return slices.Sorted(maps.Keys(w.logs))
}

// Latest returns the latest checkpoint of the log origin the witness
// cosigned, with its cosignature, or nil if it has cosigned none.
func (w *Witness) Latest(ctx context.Context, origin string) ([]byte, error) {
	return w.core.GetCheckpoint(ctx, origin)
}

// Close closes the witness's state. Closing it again does nothing.
func (w *Witness) Close() error {
	w.closeOnce.Do(func() { w.closeErr = errors.Join(w.closeDB(), w.lock.Close()) })
	return w.closeErr
}

// Handler returns the witness's HTTP API: POST /add-checkpoint, as
// tlog-witness says, answering
//
//   - 200 with the cosignature lines when the checkpoint is cosigned;
//   - 400 for a body that is not an old size line, at most 63 proof lines of
//     base64 SHA-256 hashes, an empty line and a signed checkpoint, or whose
//     old size is larger than the checkpoint's;
//   - 404 when the checkpoint's origin is not a log of the witness, 403 when
//     it carries no valid signature of that log's key;
//   - 409 when the old size is not the size of the latest checkpoint the
//     witness cosigned for the log (0 if none): the body is that size and a
//     newline, Content-Type text/x.tlog.size;
//   - 422 when the consistency proof does not verify, is not empty for an
//     old size of 0, when a checkpoint of the witness's size has another root
//     hash (a fork), or a checkpoint of size 0 is not the empty tree;
//   - 429 when the state is busy; 413 for a body over MaxBodyBytes.
func (w *Witness) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /add-checkpoint", w.addCheckpoint)
	return mux
}

func (w *Witness) addCheckpoint(rw http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	body, err := io.ReadAll(http.MaxBytesReader(rw, r.Body, MaxBodyBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			w.refuse(ctx, rw, http.StatusRequestEntityTooLarge, "", fmt.Sprintf("request body over %d bytes", MaxBodyBytes))
			return
		}
		w.refuse(ctx, rw, http.StatusBadRequest, "", "reading the request body: "+err.Error())
		return
	}
	req, err := parseRequest(body)
	if err != nil {
		w.refuse(ctx, rw, http.StatusBadRequest, "", err.Error())
		return
	}
	origin, _, _ := bytes.Cut(req.checkpoint, []byte("\n"))
	v, ok := w.logs[string(origin)]
	if !ok {
		w.refuse(ctx, rw, http.StatusNotFound, string(origin), "unknown log origin")
		return
	}
	// The core checks the signature too, but answers every failure of it
	// as an internal error; tell them apart here first.
	n, err := note.Open(req.checkpoint, note.VerifierList(v))
	if err != nil {
		var unverified *note.UnverifiedNoteError
		var invalid *note.InvalidSignatureError
		if errors.As(err, &unverified) || errors.As(err, &invalid) {
			w.refuse(ctx, rw, http.StatusForbidden, string(origin), "no valid signature of the log's key: "+err.Error())
			return
		}
		w.refuse(ctx, rw, http.StatusBadRequest, string(origin), "malformed checkpoint: "+err.Error())
		return
	}
	var cp flog.Checkpoint
	if _, err := cp.Unmarshal([]byte(n.Text)); err != nil {
		w.refuse(ctx, rw, http.StatusBadRequest, string(origin), "malformed checkpoint: "+err.Error())
		return
	}
	if req.oldSize > cp.Size {
		w.refuse(ctx, rw, http.StatusBadRequest, cp.Origin, fmt.Sprintf("old size %d is larger than the checkpoint's size %d", req.oldSize, cp.Size))
		return
	}

	sigs, size, err := w.core.Update(context.WithValue(ctx, submissionKey{}, req), req.oldSize, req.checkpoint, req.proof)
	switch {
	case err == nil:
		w.logger.InfoContext(ctx, "cosigned", "origin", cp.Origin, "size", cp.Size, "old", req.oldSize)
		rw.Header().Set("Content-Type", "text/plain; charset=utf-8")
		rw.WriteHeader(http.StatusOK)
		rw.Write(sigs)
	case errors.Is(err, witness.ErrCheckpointStale):
		w.logger.InfoContext(ctx, "refused", "origin", cp.Origin, "size", cp.Size, "old", req.oldSize, "status", http.StatusConflict, "witness_size", size)
		rw.Header().Set("Content-Type", "text/x.tlog.size")
		rw.WriteHeader(http.StatusConflict)
		fmt.Fprintf(rw, "%d\n", size)
	case errors.Is(err, witness.ErrOldSizeInvalid):
		w.refuse(ctx, rw, http.StatusBadRequest, cp.Origin, "old size larger than the checkpoint's size")
	case errors.Is(err, witness.ErrRootMismatch):
		// A checkpoint signed by the log that no history the witness
		// cosigned can become is evidence: log it whole.
		w.refuse(ctx, rw, http.StatusUnprocessableEntity, cp.Origin, fmt.Sprintf("checkpoint of size %d has another root hash than the one this witness cosigned (or is not the empty tree): a fork", cp.Size), "checkpoint", string(req.checkpoint))
	case errors.Is(err, witness.ErrInvalidProof):
		w.refuse(ctx, rw, http.StatusUnprocessableEntity, cp.Origin, fmt.Sprintf("consistency proof from size %d to %d does not verify", req.oldSize, cp.Size), "checkpoint", string(req.checkpoint))
	case errors.Is(err, witness.ErrUnknownLog):
		w.refuse(ctx, rw, http.StatusNotFound, cp.Origin, "unknown log origin")
	case errors.Is(err, witness.ErrNoValidSignature):
		w.refuse(ctx, rw, http.StatusForbidden, cp.Origin, "no valid signature of the log's key")
	case errors.Is(err, witness.ErrPushback):
		rw.Header().Set("Retry-After", "1")
		w.refuse(ctx, rw, http.StatusTooManyRequests, cp.Origin, "busy, retry")
	default:
		w.logger.ErrorContext(ctx, "add-checkpoint failed", "origin", cp.Origin, "size", cp.Size, "err", err)
		http.Error(rw, "internal error", http.StatusInternalServerError)
	}
}

// refuse answers status with a one-line reason and logs it, with attrs.
func (w *Witness) refuse(ctx context.Context, rw http.ResponseWriter, status int, origin, reason string, attrs ...any) {
	level := slog.LevelInfo
	if status == http.StatusUnprocessableEntity || status == http.StatusForbidden {
		level = slog.LevelWarn // possible misbehaviour of a log
	}
	w.logger.Log(ctx, level, "refused", append([]any{"origin", origin, "status", status, "reason", reason}, attrs...)...)
	http.Error(rw, reason, status)
}

// submission is an add-checkpoint request body.
type submission struct {
	oldSize    uint64
	proof      [][]byte
	checkpoint []byte
}

// submissionKey is the context key of the submission being checked.
type submissionKey struct{}

// parseRequest reads an add-checkpoint body strictly: "old N" with N in
// decimal without leading zeroes, at most 63 base64 SHA-256 hashes, an empty
// line and a checkpoint, each line ending in a newline.
func parseRequest(body []byte) (submission, error) {
	var s submission
	line, rest, ok := bytes.Cut(body, []byte("\n"))
	if !ok {
		return s, errors.New("malformed request: no old size line")
	}
	num, ok := bytes.CutPrefix(line, []byte("old "))
	if !ok || len(num) == 0 || len(num) > 1 && num[0] == '0' {
		return s, fmt.Errorf("malformed request: %q is not an old size line (\"old N\")", line)
	}
	for _, c := range num {
		if c < '0' || c > '9' {
			return s, fmt.Errorf("malformed request: %q is not an old size line (\"old N\")", line)
		}
	}
	size, err := strconv.ParseUint(string(num), 10, 64)
	if err != nil {
		return s, fmt.Errorf("malformed request: old size %q: %v", num, err)
	}
	s.oldSize = size
	for {
		line, rest, ok = bytes.Cut(rest, []byte("\n"))
		if !ok {
			return s, errors.New("malformed request: no empty line before the checkpoint")
		}
		if len(line) == 0 {
			break
		}
		if len(s.proof) == maxProofLines {
			return s, fmt.Errorf("malformed request: more than %d consistency proof lines", maxProofLines)
		}
		h, err := base64.StdEncoding.Strict().DecodeString(string(line))
		if err != nil || len(h) != 32 {
			return s, fmt.Errorf("malformed request: proof line %d is not a base64 SHA-256 hash", len(s.proof)+1)
		}
		s.proof = append(s.proof, h)
	}
	if len(rest) == 0 {
		return s, errors.New("malformed request: no checkpoint")
	}
	s.checkpoint = rest
	return s, nil
}

// statePersistence is the SQLite persistence with the checks of
// tlog-witness that the core makes only once it holds a checkpoint of the
// log: before the first, the old size must be 0 and the proof empty.
// They run inside the update's transaction, so they see the state the
// update changes.
type statePersistence struct {
	witness.LogStatePersistence
}

func (p statePersistence) Update(ctx context.Context, origin string, f func([]byte) ([]byte, error)) error {
	return p.LogStatePersistence.Update(ctx, origin, func(current []byte) ([]byte, error) {
		if s, ok := ctx.Value(submissionKey{}).(submission); ok && current == nil {
			if s.oldSize != 0 {
				return nil, fmt.Errorf("%w (%d != 0)", witness.ErrCheckpointStale, s.oldSize)
			}
			if len(s.proof) != 0 {
				return nil, witness.ErrInvalidProof
			}
		}
		return f(current)
	})
}
