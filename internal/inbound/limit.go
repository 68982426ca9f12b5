package inbound

import (
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// clientKey returns the client's IP and the key it is limited by: the IP
// itself, or its /64 for IPv6, where one host commonly holds a whole /64.
func clientKey(a net.Addr) (ip, key string) {
	var addr netip.Addr
	switch a := a.(type) {
	case *net.TCPAddr:
		addr = a.AddrPort().Addr()
	default:
		host, _, err := net.SplitHostPort(a.String())
		if err != nil {
			return a.String(), a.String()
		}
		p, err := netip.ParseAddr(host)
		if err != nil {
			return host, host
		}
		addr = p
	}
	addr = addr.Unmap().WithZone("")
	if addr.Is6() {
		return addr.String(), netip.PrefixFrom(addr, 64).Masked().String()
	}
	return addr.String(), addr.String()
}

// rateLimiter is a token bucket per client key, refilled at perMinute a
// minute with a burst of perMinute.
type rateLimiter struct {
	perMinute int

	mu        sync.Mutex
	buckets   map[string]*bucket
	lastSweep time.Time
}

type bucket struct {
	lim  *rate.Limiter
	last time.Time
}

func newRateLimiter(perMinute int) *rateLimiter {
	return &rateLimiter{perMinute: perMinute, buckets: make(map[string]*bucket)}
}

func (r *rateLimiter) allow(key string, now time.Time) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	// A bucket left alone for a minute is full again, so forgetting it loses
	// nothing; this bounds the map by the clients of the last minute or two.
	if now.Sub(r.lastSweep) >= time.Minute {
		for k, b := range r.buckets {
			if now.Sub(b.last) >= time.Minute {
				delete(r.buckets, k)
			}
		}
		r.lastSweep = now
	}
	b := r.buckets[key]
	if b == nil {
		b = &bucket{lim: rate.NewLimiter(rate.Limit(float64(r.perMinute)/60), r.perMinute)}
		r.buckets[key] = b
	}
	b.last = now
	return b.lim.AllowN(now, 1)
}

// connLimiter counts open connections, in total and per client key.
type connLimiter struct {
	maxTotal, perKey int

	mu    sync.Mutex
	total int
	byKey map[string]int
}

func newConnLimiter(maxTotal, perKey int) *connLimiter {
	return &connLimiter{maxTotal: maxTotal, perKey: perKey, byKey: make(map[string]int)}
}

func (l *connLimiter) acquire(key string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.total >= l.maxTotal || l.byKey[key] >= l.perKey {
		return false
	}
	l.total++
	l.byKey[key]++
	return true
}

func (l *connLimiter) release(key string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.total--
	if l.byKey[key]--; l.byKey[key] <= 0 {
		delete(l.byKey, key)
	}
}

// limitListener refuses connections over the limits before go-smtp sees them,
// and wraps the others so that their slot is freed on Close and their
// session cannot outlive MaxSessionDuration.
type limitListener struct {
	net.Listener
	s *Server
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		ip, key := clientKey(c.RemoteAddr())
		if !l.s.conns.acquire(key) {
			l.s.log.Warn("inbound connection refused: too many connections")
			l.s.log.Debug("inbound connection refused: too many connections", "remote_ip", ip)
			// A fresh socket's send buffer takes this line at once; the
			// deadline only guards against the unexpected.
			c.SetWriteDeadline(time.Now().Add(time.Second))
			fmt.Fprintf(c, "421 4.7.0 %s too many connections, try again later\r\n", l.s.domain)
			c.Close()
			continue
		}
		tc := &limitedConn{Conn: c, hard: time.Now().Add(l.s.cfg.MaxSessionDuration)}
		tc.release = func() { l.s.conns.release(key) }
		tc.Conn.SetDeadline(tc.hard)
		return tc, nil
	}
}

// limitedConn frees its connection slot once, on the first Close, and keeps
// every deadline go-smtp sets at or before the session's hard deadline.
type limitedConn struct {
	net.Conn
	hard    time.Time
	once    sync.Once
	release func()
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}

func (c *limitedConn) clamp(t time.Time) time.Time {
	if t.IsZero() || t.After(c.hard) {
		return c.hard
	}
	return t
}

func (c *limitedConn) SetDeadline(t time.Time) error      { return c.Conn.SetDeadline(c.clamp(t)) }
func (c *limitedConn) SetReadDeadline(t time.Time) error  { return c.Conn.SetReadDeadline(c.clamp(t)) }
func (c *limitedConn) SetWriteDeadline(t time.Time) error { return c.Conn.SetWriteDeadline(c.clamp(t)) }
