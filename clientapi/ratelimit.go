package clientapi

import (
	"net/http"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"myelin/mxhttp"
)

// RateLimitConfig is a token bucket: PerSecond requests per second on average, bursts of Burst.
type RateLimitConfig struct {
	Enabled   bool
	PerSecond float64
	Burst     int
}

// bucketIdle is how long an unused bucket is kept; by then it has refilled and forgetting it
// changes nothing (and keeps no trace of who asked, which may be an IP address).
const bucketIdle = 10 * time.Minute

// RateLimiter keeps one token bucket per key: a user id for authenticated requests, the client's
// address otherwise, prefixed by the action ("login:", "register:") so that actions do not share
// a budget. Buckets live in memory only.
type RateLimiter struct {
	cfg       RateLimitConfig
	mu        sync.Mutex
	buckets   map[string]*bucket
	lastSweep time.Time
	now       func() time.Time
}

type bucket struct {
	limiter *rate.Limiter
	used    time.Time
}

// NewRateLimiter returns a limiter; a disabled one allows everything.
func NewRateLimiter(cfg RateLimitConfig) *RateLimiter {
	return &RateLimiter{cfg: cfg, buckets: map[string]*bucket{}, now: time.Now}
}

// Allow takes a token from key's bucket, or returns M_LIMIT_EXCEEDED saying when to retry.
func (l *RateLimiter) Allow(key string) error {
	if l == nil || !l.cfg.Enabled {
		return nil
	}
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.lastSweep) > bucketIdle {
		for k, b := range l.buckets {
			if now.Sub(b.used) > bucketIdle {
				delete(l.buckets, k)
			}
		}
		l.lastSweep = now
	}
	b := l.buckets[key]
	if b == nil {
		b = &bucket{limiter: rate.NewLimiter(rate.Limit(l.cfg.PerSecond), max(l.cfg.Burst, 1))}
		l.buckets[key] = b
	}
	b.used = now
	res := b.limiter.ReserveN(now, 1)
	if !res.OK() {
		return mxhttp.LimitExceeded(time.Second)
	}
	if d := res.DelayFrom(now); d > 0 {
		res.CancelAt(now)
		return mxhttp.LimitExceeded(d)
	}
	return nil
}

// allowIP limits an unauthenticated action by the client's address.
func (a *API) allowIP(action string, r *http.Request) error {
	return a.limiter.Allow(action + ":ip:" + remoteHost(r))
}

// allowUser limits an action by the user attempting it.
func (a *API) allowUser(action, localpart string) error {
	return a.limiter.Allow(action + ":user:" + localpart)
}
