package server

import (
	"math"
	"net/http"
	"strconv"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// errRateLimited answers a key that sent more than Options.RateLimit
// allows, with a Retry-After header.
var errRateLimited = &apiError{status: http.StatusTooManyRequests, code: "rate_limited", msg: "too many requests with this key; retry after the Retry-After seconds"}

// keyLimiter is a token bucket per API key id.
type keyLimiter struct {
	limit rate.Limit
	burst int

	mu   sync.Mutex
	keys map[string]*rate.Limiter
}

// maxIdleLimiters is how many buckets keyLimiter keeps before it drops the
// full ones, which are the same as new ones.
const maxIdleLimiters = 10000

func newKeyLimiter(perSecond float64, burst int) *keyLimiter {
	return &keyLimiter{limit: rate.Limit(perSecond), burst: burst, keys: map[string]*rate.Limiter{}}
}

// allow takes a token from key's bucket. When there is none, it returns
// false and how long until there will be one.
func (kl *keyLimiter) allow(key string, now time.Time) (bool, time.Duration) {
	kl.mu.Lock()
	lim, ok := kl.keys[key]
	if !ok {
		if len(kl.keys) >= maxIdleLimiters {
			for k, l := range kl.keys {
				if l.TokensAt(now) >= float64(kl.burst) {
					delete(kl.keys, k)
				}
			}
		}
		lim = rate.NewLimiter(kl.limit, kl.burst)
		kl.keys[key] = lim
	}
	kl.mu.Unlock()
	r := lim.ReserveN(now, 1)
	if !r.OK() {
		return false, time.Second
	}
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return false, d
	}
	return true, 0
}

// retryAfter is the Retry-After value for a wait of d: whole seconds,
// rounded up, at least 1.
func retryAfter(d time.Duration) string {
	return strconv.Itoa(max(1, int(math.Ceil(d.Seconds()))))
}
