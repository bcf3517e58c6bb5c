package server

import (
	"context"
	"crypto/sha256"
	"sync"
	"time"

	"github.com/trail-audit/trail"
)

// keyCacheTTL is how long an authenticated key is trusted without asking
// the database again, and so how long a key revoked by another process
// (trail keys revoke, or another server on the same store) may still
// work: a second, so that such a revocation is refused by every server
// within two. Revocations through the server's own DB take effect at once.
const keyCacheTTL = time.Second

// keyCache remembers recently authenticated keys by the SHA-256 of the
// secret (the secrets themselves are not kept), so that a busy client does
// not cost a database read per request.
type keyCache struct {
	mu      sync.Mutex
	entries map[[sha256.Size]byte]cachedKey
}

type cachedKey struct {
	info    trail.KeyInfo
	expires time.Time
	revoked uint64 // the DB's KeysRevoked when cached
}

func (s *server) authenticate(ctx context.Context, secret string) (trail.KeyInfo, error) {
	h := sha256.Sum256([]byte(secret))
	now := time.Now()
	c := &s.keys
	c.mu.Lock()
	e, ok := c.entries[h]
	c.mu.Unlock()
	if ok && now.Before(e.expires) && e.revoked == s.db.KeysRevoked() {
		return e.info, nil
	}
	revoked := s.db.KeysRevoked()
	info, err := s.db.Authenticate(ctx, secret)
	if err != nil {
		return info, err // failures are not cached: a new key works at once
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.entries == nil || len(c.entries) > 10000 {
		c.entries = map[[sha256.Size]byte]cachedKey{} // bounded: start over
	}
	c.entries[h] = cachedKey{info, now.Add(keyCacheTTL), revoked}
	return info, nil
}
