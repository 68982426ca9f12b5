package vault

import (
	"bytes"
	"sync"
	"time"
)

// keyCache keeps data keys this node unwrapped recently, so a member's every request
// does not pay for unwrapping their key again. An entry is only ever found by the
// wrapped bytes and epoch read from the database in the same query as the data: a
// shredded key (no row) is never found, a rewrapped one (new bytes) is unwrapped
// anew, and ratchet clears entries of an epoch whose key-encryption key it destroys,
// so the cache opens nothing the node could not open without it. An entry lives
// keyCacheTTL from its unwrapping: an erased member's key leaves the memory of every
// node within that time (Shred drops it at once on the node that erases).
type keyCache struct {
	mu      sync.Mutex
	max     int
	ttl     time.Duration
	entries map[string]cachedKey
}

type cachedKey struct {
	wrapped []byte
	epoch   int64
	at      time.Time
	key     *Key
}

// keyCacheSize bounds the cache: about 250 bytes an entry.
const keyCacheSize = 16384

// keyCacheTTL is how long an unwrapped key is kept.
const keyCacheTTL = 5 * time.Minute

func newKeyCache(max int, ttl time.Duration) *keyCache {
	return &keyCache{max: max, ttl: ttl, entries: make(map[string]cachedKey)}
}

func (c *keyCache) get(subject string, wrapped []byte, epoch int64, now time.Time) *Key {
	c.mu.Lock()
	e, ok := c.entries[subject]
	c.mu.Unlock()
	if ok && e.epoch == epoch && bytes.Equal(e.wrapped, wrapped) && now.Sub(e.at) < c.ttl {
		return e.key
	}
	return nil
}

// sweep forgets the keys unwrapped longer ago than the cache's TTL.
func (c *keyCache) sweep(now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for s, e := range c.entries {
		if now.Sub(e.at) >= c.ttl {
			delete(c.entries, s)
		}
	}
}

func (c *keyCache) put(subject string, wrapped []byte, epoch int64, k *Key, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.entries) >= c.max {
		// Full: drop an arbitrary entry (map order is random), keeping the cost of a
		// put constant; the members active now come back in on their next request.
		for s := range c.entries {
			delete(c.entries, s)
			break
		}
	}
	c.entries[subject] = cachedKey{wrapped: bytes.Clone(wrapped), epoch: epoch, at: now, key: k}
}

func (c *keyCache) drop(subject string) {
	c.mu.Lock()
	delete(c.entries, subject)
	c.mu.Unlock()
}

// dropBefore forgets every key unwrapped under an epoch before the given one.
func (c *keyCache) dropBefore(epoch int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for s, e := range c.entries {
		if e.epoch < epoch {
			delete(c.entries, s)
		}
	}
}
