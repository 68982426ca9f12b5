// Package fakedns is an in-process DNS for tests: it answers the lookups that the
// inbound listener's SPF and DKIM checks make (inbound.Resolver) from maps that a
// test fills, and never asks the network.
package fakedns

import (
	"context"
	"net"
	"strings"
	"sync"
)

// Resolver answers from its records; a name it does not hold is "no such host".
// It is safe for concurrent use; set records with its methods.
type Resolver struct {
	mu  sync.Mutex
	txt map[string][]string
	mx  map[string][]*net.MX
	ip  map[string][]net.IPAddr
}

// New returns an empty Resolver.
func New() *Resolver {
	return &Resolver{txt: map[string][]string{}, mx: map[string][]*net.MX{}, ip: map[string][]net.IPAddr{}}
}

func key(name string) string { return strings.ToLower(strings.TrimSuffix(name, ".")) }

func notFound(name string) error {
	return &net.DNSError{Err: "no such host", Name: name, IsNotFound: true}
}

// TXT publishes TXT records of name (an SPF policy, a DKIM key), replacing its earlier ones.
func (r *Resolver) TXT(name string, records ...string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.txt[key(name)] = records
}

// MX publishes the mail exchangers of name.
func (r *Resolver) MX(name string, hosts ...string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var mx []*net.MX
	for i, h := range hosts {
		mx = append(mx, &net.MX{Host: h, Pref: uint16(10 * (i + 1))})
	}
	r.mx[key(name)] = mx
}

// IP publishes addresses of host.
func (r *Resolver) IP(host string, ips ...string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []net.IPAddr
	for _, s := range ips {
		out = append(out, net.IPAddr{IP: net.ParseIP(s)})
	}
	r.ip[key(host)] = out
}

// LookupTXT implements inbound.Resolver.
func (r *Resolver) LookupTXT(_ context.Context, name string) ([]string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if v, ok := r.txt[key(name)]; ok {
		return v, nil
	}
	return nil, notFound(name)
}

// LookupMX implements inbound.Resolver.
func (r *Resolver) LookupMX(_ context.Context, name string) ([]*net.MX, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if v, ok := r.mx[key(name)]; ok {
		return v, nil
	}
	return nil, notFound(name)
}

// LookupIPAddr implements inbound.Resolver.
func (r *Resolver) LookupIPAddr(_ context.Context, host string) ([]net.IPAddr, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if v, ok := r.ip[key(host)]; ok {
		return v, nil
	}
	return nil, notFound(host)
}

// LookupAddr implements inbound.Resolver: no reverse names.
func (r *Resolver) LookupAddr(_ context.Context, addr string) ([]string, error) {
	return nil, notFound(addr)
}
