package stress

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// SoakOptions says how long to load a server, with how many clients, where.
type SoakOptions struct {
	Duration   time.Duration
	Clients    int
	Members    int // accounts the clients share (default Clients/4, at least 8)
	Engine     string
	Bin        string
	Dir        string
	RateLimits bool     // keep the server's rate limits on (every client is 127.0.0.1: expect 429s)
	Args       []string // more flags for serve
	Log        io.Writer
	Progress   io.Writer
}

// Route is one route's figures.
type Route struct {
	Name     string
	Count    int
	Errors   int
	Limited  int // 429
	P50, P99 time.Duration
}

// SoakReport is what the soak measured.
type SoakReport struct {
	Requests, Errors, Limited int
	ErrorSamples              []string
	Routes                    []Route
	IdleRSS, PeakRSS          int64   // bytes
	SlopeMiBPerMin            float64 // least squares over the second half
	Budget                    int64   // argon2id hashes in flight x their memory, plus 64 MiB
	Samples                   []RSSSample
	Elapsed                   time.Duration
}

// RSSSample is the server's resident memory at a moment.
type RSSSample struct {
	At  time.Duration // since the load began
	RSS int64
}

type soakRun struct {
	c       *Client
	out     *Outbox
	members []*crashMember
	mu      sync.Mutex
	lat     map[string][]time.Duration
	errs    map[string]int
	limited map[string]int
	samples []string
	seq     atomic.Int64
}

const soakPassword = "amber quarry whistle 4" // holds no part of a member's name or address

// argon2Memory is the server's default argon2id memory (KiB), the one the soak runs with.
const argon2Memory = 64 << 10

// Soak starts a server with its production settings (argon2id at 64 MiB, rate limits off
// unless asked) and runs a mix of members' requests from opts.Clients clients for
// opts.Duration, sampling the server's resident memory every second.
func Soak(ctx context.Context, opts SoakOptions) (*SoakReport, error) {
	if opts.Members == 0 {
		opts.Members = max(opts.Clients/4, 8)
	}
	if opts.Log == nil {
		opts.Log = io.Discard
	}
	if opts.Bin == "" {
		bin, err := Build(ctx, opts.Dir)
		if err != nil {
			return nil, err
		}
		opts.Bin = bin
	}
	env, err := NewEnv(opts.Engine, filepath.Join(opts.Dir, "data"))
	if err != nil {
		return nil, err
	}
	defer env.Close()
	args := append([]string{"--log-level", "warn", "--rate-limits=" + fmt.Sprint(opts.RateLimits)}, opts.Args...)
	srv, err := NewServer(opts.Bin, env, args...)
	if err != nil {
		return nil, err
	}
	srv.Log = opts.Log
	if err := srv.Start(ctx); err != nil {
		return nil, err
	}
	defer srv.Stop()
	rep := &SoakReport{}
	// Idle: right after start, once the start's work has settled.
	time.Sleep(3 * time.Second)
	if rep.IdleRSS, err = RSS(srv.PID()); err != nil {
		return nil, err
	}
	// The server runs on this machine with GOMAXPROCS = its CPUs: account.New's slots.
	rep.Budget = int64(2*runtime.NumCPU())*argon2Memory<<10 + 64<<20

	tr := &http.Transport{MaxIdleConnsPerHost: opts.Clients, MaxConnsPerHost: 0}
	r := &soakRun{c: &Client{URL: srv.URL(), HTTP: &http.Client{Timeout: 60 * time.Second, Transport: tr}},
		out: &Outbox{Dir: filepath.Join(env.Data, "outbox")}, lat: map[string][]time.Duration{}, errs: map[string]int{}, limited: map[string]int{}}
	if opts.Progress != nil {
		fmt.Fprintf(opts.Progress, "idle RSS %.1f MiB; making %d members\n", mib(rep.IdleRSS), opts.Members)
	}
	if err := r.makeMembers(ctx, opts.Members); err != nil {
		return nil, err
	}
	lctx, stop := context.WithTimeout(ctx, opts.Duration)
	defer stop()
	start := time.Now()
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		// Ten samples a second: the peaks last a fraction of a second (a hash's blocks
		// filled while an ended hash's are not yet freed), and a sample a second
		// reported 297 MiB where the peak was 329.
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-lctx.Done():
				return
			case <-tick.C:
				if v, err := RSS(srv.PID()); err == nil {
					rep.Samples = append(rep.Samples, RSSSample{At: time.Since(start), RSS: v})
					if opts.Progress != nil && len(rep.Samples)%300 == 0 {
						fmt.Fprintf(opts.Progress, "%s: RSS %.1f MiB, %d requests\n", time.Since(start).Round(time.Second), mib(v), r.total())
					}
				}
			}
		}
	}()
	var wg sync.WaitGroup
	for i := range opts.Clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(i), 5))
			// Members are shared by clients; each client downloads and deletes only the
			// files it uploaded, so no answer depends on another client's timing.
			cl := &soakClient{m: r.members[i%len(r.members)], rng: rng}
			for lctx.Err() == nil {
				r.step(lctx, cl)
			}
		}()
	}
	wg.Wait()
	<-sampled
	rep.Elapsed = time.Since(start)
	r.report(rep)
	return rep, nil
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

func (r *soakRun) total() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, l := range r.lat {
		n += len(l)
	}
	return n
}

func (r *soakRun) makeMembers(ctx context.Context, n int) error {
	r.members = make([]*crashMember, n)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	sem := make(chan struct{}, 8)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			m := &crashMember{email: fmt.Sprintf("soak%d@soak.example", i), password: soakPassword}
			var err error
			if m.id, m.token, err = Member(ctx, r.c, r.out, m.email, m.password); err != nil {
				errs <- err
				return
			}
			r.members[i] = m
		}()
	}
	wg.Wait()
	close(errs)
	return <-errs
}

// call sends one request and records its latency under route; want is the answer expected.
func (r *soakRun) call(ctx context.Context, route string, want int, method, path string, body any, token string, header ...string) (Answer, bool) {
	t := time.Now()
	a, err := r.c.Do(ctx, method, path, body, token, header...)
	d := time.Since(t)
	if ctx.Err() != nil {
		return a, false // the soak ended under it: not counted
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lat[route] = append(r.lat[route], d)
	switch {
	case err == nil && a.Status == want:
		return a, true
	case err == nil && a.Status == http.StatusTooManyRequests:
		r.limited[route]++
	default:
		r.errs[route]++
		if len(r.samples) < 20 {
			r.samples = append(r.samples, fmt.Sprintf("%s: %d %.200s %v", route, a.Status, a.Body, err))
		}
	}
	return a, false
}

type soakClient struct {
	m     *crashMember
	rng   *rand.Rand
	files []string // uploaded by this client
}

// step is one scenario, drawn by weight.
func (r *soakRun) step(ctx context.Context, cl *soakClient) {
	m, rng := cl.m, cl.rng
	switch n := rng.IntN(100); {
	case n < 8: // log in
		r.call(ctx, "POST /api/v1/sessions", 201, "POST", "/api/v1/sessions", map[string]string{"email": m.email, "password": m.password}, "")
	case n < 40:
		r.call(ctx, "GET /api/v1/me", 200, "GET", "/api/v1/me", nil, m.token)
	case n < 48:
		body := make([]byte, 16<<10+rng.IntN(512<<10))
		for i := range body {
			body[i] = byte(rng.Uint32())
		}
		if a, ok := r.call(ctx, "POST /api/v1/me/files", 201, "POST", "/api/v1/me/files?name=soak.bin", body, m.token, "Content-Type", "application/octet-stream"); ok {
			cl.files = append(cl.files, a.Str("id"))
		}
		if len(cl.files) > 3 { // keep each client's files few
			r.call(ctx, "DELETE /api/v1/me/files/{id}", 204, "DELETE", "/api/v1/me/files/"+cl.files[0], nil, m.token)
			cl.files = cl.files[1:]
		}
	case n < 63:
		if _, ok := r.call(ctx, "GET /api/v1/me/files", 200, "GET", "/api/v1/me/files", nil, m.token); !ok || len(cl.files) == 0 {
			return
		}
		id := cl.files[rng.IntN(len(cl.files))]
		r.call(ctx, "GET /api/v1/me/files/{id}", 200, "GET", "/api/v1/me/files/"+id, nil, m.token)
	case n < 78:
		r.call(ctx, "PUT /api/v1/me/consents", 200, "PUT", "/api/v1/me/consents", map[string]any{"choices": map[string]bool{"newsletter": rng.IntN(2) == 0}}, m.token)
	case n < 85:
		r.call(ctx, "GET /api/v1/me/consents", 200, "GET", "/api/v1/me/consents", nil, m.token)
	case n < 92:
		r.call(ctx, "POST /api/v1/newsletter", 202, "POST", "/api/v1/newsletter",
			map[string]string{"first_name": "Soak", "last_name": "Reader", "email": fmt.Sprintf("reader%d@soak.example", r.seq.Add(1))}, "")
	case n < 97:
		r.call(ctx, "GET /api/v1/me/export", 200, "GET", "/api/v1/me/export", nil, m.token)
	default: // erasure: a new member comes, uploads, and goes
		r.erasure(ctx, rng)
	}
}

func (r *soakRun) erasure(ctx context.Context, rng *rand.Rand) {
	email := fmt.Sprintf("gone%d@soak.example", r.seq.Add(1))
	a, ok := r.call(ctx, "POST /api/v1/accounts", 201, "POST", "/api/v1/accounts", map[string]string{"email": email, "password": soakPassword,
		"name": "Soak Leaver", "birthdate": "1985-03-02", "country": "DE"}, "")
	if !ok {
		return
	}
	_ = a
	tok, err := r.out.WaitLink(ctx, email, "/verify?token=")
	if err != nil {
		if ctx.Err() == nil {
			r.mu.Lock()
			r.errs["mail: verification link"]++
			r.samples = append(r.samples, err.Error())
			r.mu.Unlock()
		}
		return
	}
	if _, ok := r.call(ctx, "POST /api/v1/verifications", 200, "POST", "/api/v1/verifications", map[string]string{"token": tok}, ""); !ok {
		return
	}
	l, ok := r.call(ctx, "POST /api/v1/sessions", 201, "POST", "/api/v1/sessions", map[string]string{"email": email, "password": soakPassword}, "")
	if !ok {
		return
	}
	token := l.Str("token")
	r.call(ctx, "POST /api/v1/me/files", 201, "POST", "/api/v1/me/files?name=last.bin", make([]byte, 4096+rng.IntN(4096)), token, "Content-Type", "application/octet-stream")
	r.call(ctx, "DELETE /api/v1/me", 202, "DELETE", "/api/v1/me", map[string]string{"password": soakPassword}, token)
}

func (r *soakRun) report(rep *SoakReport) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for name, l := range r.lat {
		slices.Sort(l)
		rt := Route{Name: name, Count: len(l), Errors: r.errs[name], Limited: r.limited[name]}
		if len(l) > 0 {
			rt.P50 = l[len(l)*50/100]
			rt.P99 = l[min(len(l)*99/100, len(l)-1)]
		}
		rep.Routes = append(rep.Routes, rt)
		rep.Requests += rt.Count
		rep.Errors += rt.Errors
		rep.Limited += rt.Limited
	}
	if n := r.errs["mail: verification link"]; n > 0 {
		rep.Errors += n
	}
	rep.ErrorSamples = r.samples
	sort.Slice(rep.Routes, func(i, j int) bool { return rep.Routes[i].Count > rep.Routes[j].Count })
	for _, s := range rep.Samples {
		rep.PeakRSS = max(rep.PeakRSS, s.RSS)
	}
	rep.SlopeMiBPerMin = slope(rep.Samples[len(rep.Samples)/2:])
}

// slope fits RSS = a + b*t by least squares and returns b in MiB per minute.
func slope(s []RSSSample) float64 {
	if len(s) < 2 {
		return 0
	}
	var sx, sy, sxx, sxy float64
	for _, p := range s {
		x, y := p.At.Minutes(), mib(p.RSS)
		sx += x
		sy += y
		sxx += x * x
		sxy += x * y
	}
	n := float64(len(s))
	d := n*sxx - sx*sx
	if d == 0 {
		return 0
	}
	return (n*sxy - sx*sy) / d
}

// FormatSoak prints the report as scripts/soak shows it.
func FormatSoak(rep *SoakReport, engine string, clients int) string {
	var b strings.Builder
	load, _ := os.ReadFile("/proc/loadavg")
	fmt.Fprintf(&b, "engine: %s, clients: %d, time: %s, load average: %s", engine, clients, rep.Elapsed.Round(time.Second), load)
	fmt.Fprintf(&b, "requests served: %d (%.0f/s)\n", rep.Requests, float64(rep.Requests)/rep.Elapsed.Seconds())
	fmt.Fprintf(&b, "errors: %d\n", rep.Errors)
	for _, s := range rep.ErrorSamples {
		fmt.Fprintf(&b, "  %s\n", s)
	}
	fmt.Fprintf(&b, "429 (rate limits, by design): %d\n", rep.Limited)
	fmt.Fprintf(&b, "%-32s %8s %10s %10s\n", "route", "requests", "p50", "p99")
	for _, r := range rep.Routes {
		fmt.Fprintf(&b, "%-32s %8d %10s %10s\n", r.Name, r.Count, r.P50.Round(100*time.Microsecond), r.P99.Round(100*time.Microsecond))
	}
	verdict := func(ok bool) string {
		if ok {
			return "met"
		}
		return "NOT met"
	}
	fmt.Fprintf(&b, "idle RSS: %.1f MiB (target 40 MiB: %s)\n", mib(rep.IdleRSS), verdict(rep.IdleRSS <= 40<<20))
	fmt.Fprintf(&b, "peak RSS: %.1f MiB (target: argon2id budget + 64 MiB = %.0f MiB: %s)\n", mib(rep.PeakRSS), mib(rep.Budget), verdict(rep.PeakRSS <= rep.Budget))
	fmt.Fprintf(&b, "RSS slope over the second half: %+.2f MiB/min\n", rep.SlopeMiBPerMin)
	return b.String()
}
