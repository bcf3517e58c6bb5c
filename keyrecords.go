package trail

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/trail-audit/trail/api"
	"github.com/trail-audit/trail/event"
	"github.com/trail-audit/trail/internal/store"
)

// An API key in the store is trusted as far as its log's own records of
// it go. Its creation, with its scopes, is recorded in its log before the
// key is stored (CreateKey), and its revocation once the key is revoked
// (RevokeKey). A key added to the keys table outside Trail, given other
// scopes there or revoked and then restored there disagrees with those
// records: Authenticate refuses it (unless those records cannot be read
// for damage, which Verify reports), Verify reports it, and copy leaves
// behind a key whose creation the target's log does not hold yet.

// keyRecords is what a log records of one API key.
type keyRecords struct {
	created     int64    // seq of the first record of its creation, -1 if none
	scopes      []string // the scopes that record gives
	fingerprint string   // and the fingerprint of its secret's hash ("" in records made before it was recorded)
	revoked     int64    // seq of the first record of its revocation, -1 if none
}

// keyFingerprint binds a key's record to the hash of its secret, so that
// a hash replaced in the keys table (a secret of someone else's choosing
// for the key) disagrees with it. It is a hash of that hash: the record,
// which readers of the log see, says nothing more of the secret than the
// keys table does.
func keyFingerprint(hash []byte) string {
	h := sha256.Sum256(append([]byte("trail api key fingerprint\n"), hash...))
	return hex.EncodeToString(h[:16])
}

func newKeyRecords() keyRecords { return keyRecords{created: -1, revoked: -1} }

// add notes e, a record of the key's creation or revocation, unless an
// earlier one of its kind is noted already. A creation whose metadata
// does not parse is not one.
func (r *keyRecords) add(e *event.Event) {
	switch {
	case e.Action == ActionKeyCreate && (r.created < 0 || e.Seq < r.created):
		var md struct {
			Scopes      []string `json:"scopes"`
			Fingerprint string   `json:"fingerprint"`
		}
		if json.Unmarshal(e.Metadata, &md) == nil {
			r.created, r.scopes, r.fingerprint = e.Seq, md.Scopes, md.Fingerprint
		}
	case e.Action == ActionKeyRevoke && (r.revoked < 0 || e.Seq < r.revoked):
		r.revoked = e.Seq
	}
}

// keyRecords reads the log's records of the API key with that id.
func (l *Log) keyRecords(ctx context.Context, id string) (keyRecords, error) {
	r := newKeyRecords()
	q := api.Query{Action: "trail.key.*", TargetType: "api_key", TargetID: id}
	for e, err := range l.Events(ctx, q) {
		if err != nil {
			return r, fmt.Errorf("read the log's records of API key %s: %w", id, err)
		}
		r.add(e)
	}
	return r, nil
}

// disagrees returns how the stored key k disagrees with r, its log's
// records of it, and the seq of the record it contradicts (-1 for none):
// "" if it does not.
func (r keyRecords) disagrees(k store.Key) (int64, string) {
	switch {
	case r.created < 0:
		return -1, fmt.Sprintf("API key %s (%q) is in the keys table, but its log holds no record of its creation: it was added outside Trail", k.ID, k.Name)
	case !sameScopes(k.Scopes, r.scopes):
		return r.created, fmt.Sprintf("API key %s (%q) has the scopes %v in the keys table, but %v were recorded at its creation: they were changed outside Trail", k.ID, k.Name, k.Scopes, r.scopes)
	case r.fingerprint != "" && r.fingerprint != keyFingerprint(k.Hash):
		return r.created, fmt.Sprintf("API key %s (%q) has another secret's hash in the keys table than the one recorded at its creation: it was replaced outside Trail", k.ID, k.Name)
	case r.revoked >= 0 && k.RevokedAt.IsZero():
		return r.revoked, fmt.Sprintf("API key %s (%q) is not revoked in the keys table, but its log records its revocation: it was restored outside Trail", k.ID, k.Name)
	}
	return -1, ""
}

func sameScopes(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(slices.Compact(a), slices.Compact(b))
}

// keyChecks remembers, for a while, the keys Authenticate found to agree
// with their logs' records, so that a request costs no search.
type keyChecks struct {
	mu sync.Mutex
	at map[string]keyCheck
}

type keyCheck struct {
	log    int64
	scopes []string
	hash   string
	until  time.Time
}

// keyCheckFor is how long a key found to agree with its log's records is
// not checked again: a record changed meanwhile (a revocation undone in
// the keys table) is seen after at most that long.
const keyCheckFor = time.Minute

func (c *keyChecks) fresh(k store.Key, now time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	kc, ok := c.at[k.ID]
	return ok && now.Before(kc.until) && kc.log == k.Log && kc.hash == string(k.Hash) && slices.Equal(kc.scopes, k.Scopes)
}

func (c *keyChecks) set(k store.Key, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.at == nil || len(c.at) > 100_000 {
		c.at = map[string]keyCheck{}
	}
	c.at[k.ID] = keyCheck{log: k.Log, scopes: slices.Clone(k.Scopes), hash: string(k.Hash), until: now.Add(keyCheckFor)}
}

// checkKeyRecords returns nil if the stored key k, of log l, agrees with
// the log's records of it (see keyRecords), and an error wrapping
// ErrUnauthorized, logged for the operator, if it does not.
func (db *DB) checkKeyRecords(ctx context.Context, k store.Key, l *Log) error {
	now := time.Now()
	if db.keyChecks.fresh(k, now) {
		return nil
	}
	r, err := l.keyRecords(ctx, k.ID)
	if err == nil && r.created < 0 {
		// The key is stored after its creation is committed, perhaps
		// by another process, which this one may not have read yet.
		if err = l.catchUp(ctx); err == nil {
			r, err = l.keyRecords(ctx, k.ID)
		}
	}
	if errors.Is(err, ErrDamaged) {
		// Reads of a damaged log go on, so that the damage can be
		// examined: the key is taken as the keys table has it, until
		// the records read again.
		db.opts.Logger.Error("API key not checked against its log's records, which cannot be read; run trail verify", "log", l.Name(), "key", k.ID, "err", err)
		return nil
	}
	if err != nil {
		return err
	}
	if _, problem := r.disagrees(k); problem != "" {
		db.opts.Logger.Error("API key refused: the keys table was changed outside Trail; run trail verify", "log", l.Name(), "key", k.ID, "problem", problem)
		return fmt.Errorf("%w: the key does not match its log's records of it", ErrUnauthorized)
	}
	db.keyChecks.set(k, now)
	return nil
}

// seenKeyRecords gathers the records of API keys among the events a
// verification walks: read from the events themselves, not through the
// indexes, which could hide them.
type seenKeyRecords struct {
	mu sync.Mutex
	at map[string]*keyRecords
}

// see notes e if it records a key's creation or revocation. It is called
// from several goroutines at once, in no particular order of seqs.
func (s *seenKeyRecords) see(e *event.Event) {
	if e.Action != ActionKeyCreate && e.Action != ActionKeyRevoke {
		return
	}
	id := ""
	for _, t := range e.Targets {
		if t.Type == "api_key" {
			id = strings.Clone(t.ID)
		}
	}
	if id == "" {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.at == nil {
		s.at = map[string]*keyRecords{}
	}
	r := s.at[id]
	if r == nil {
		nr := newKeyRecords()
		r = &nr
		s.at[id] = r
	}
	r.add(e)
}

// verifyKeys checks every API key of the log against the log's records
// of it, which seen gathered from every event of the log, and returns a
// *VerifyError for the first that disagrees.
func (l *Log) verifyKeys(ctx context.Context, seen *seenKeyRecords) error {
	keys, err := l.db.st.Keys(ctx, l.info.ID)
	if err != nil {
		return fmt.Errorf("list the log's API keys: %w", err)
	}
	for _, k := range keys {
		r := newKeyRecords()
		if p := seen.at[k.ID]; p != nil {
			r = *p
		}
		if seq, problem := r.disagrees(k); problem != "" {
			return &VerifyError{Seq: seq, Problem: problem}
		}
	}
	return nil
}
