package ratelimit

import (
	"hash/maphash"
	"sync"
	"time"
)

// Local is a set of token buckets kept in this node's memory, for limits taken on
// every request of a hot path (page beacons) where a row per attempt would cost more
// than what it protects: each node of a deployment limits on its own, so N nodes let
// N times the rate through. Keys are never written anywhere. Memory is bounded: a
// shard that grows past its share forgets the buckets that are full again, and if all
// are still in use, forgets them all (the limit opens for a moment; it never grows).
type Local struct {
	rule   Rule
	now    func() time.Time
	seed   maphash.Seed
	shards [64]localShard
	max    int // buckets per shard
}

type localShard struct {
	mu  sync.Mutex
	tat map[string]int64 // theoretical arrival time, Unix nanoseconds (GCRA)
}

// NewLocal returns in-memory buckets of rule for up to about maxKeys keys.
func NewLocal(rule Rule, maxKeys int, now func() time.Time) *Local {
	l := &Local{rule: rule, now: now, seed: maphash.MakeSeed(), max: max(maxKeys/64, 16)}
	for i := range l.shards {
		l.shards[i].tat = map[string]int64{}
	}
	return l
}

// Take spends a token of key's bucket, reporting whether one was left.
func (l *Local) Take(key string) bool {
	every := l.rule.Every.Nanoseconds()
	burst := int64(l.rule.Burst) * every
	now := l.now().UnixNano()
	s := &l.shards[maphash.String(l.seed, key)%uint64(len(l.shards))]
	s.mu.Lock()
	defer s.mu.Unlock()
	tat, ok := s.tat[key]
	if !ok || tat < now {
		tat = now
	}
	if tat+every-now > burst {
		return false
	}
	if !ok && len(s.tat) >= l.max {
		for k, t := range s.tat {
			if t < now {
				delete(s.tat, k)
			}
		}
		if len(s.tat) >= l.max {
			clear(s.tat)
		}
	}
	s.tat[key] = tat + every
	return true
}
