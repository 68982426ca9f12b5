package analytics

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"hash/maphash"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/phuslu/iploc"

	"steward/internal/apperr"
	"steward/internal/store"
)

// Config is what the operator sets.
type Config struct {
	// Sites are the hosts whose beacons are taken; any other is refused.
	Sites []string
	// Cookieless declares the statistics cookieless and aggregate-only: beacons count
	// without a visitor's choice (never against Sec-GPC or DNT).
	Cookieless bool
	// RequestLogDays and EventDays are how long the request log and the raw events are
	// kept; the daily rollups stay.
	RequestLogDays int
	EventDays      int
	// Buffer is how many rows may wait to be written; past it beacons are refused
	// (503) and request log lines dropped (counted).
	Buffer int
	// FlushEvery is how often the buffer is written (default 250 ms): what a crash
	// loses is at most this, plus one write.
	FlushEvery time.Duration
	// K is the threshold of the published figures (default 10, at least MinK): see
	// Publish. PublicSites are the sites whose suppressed figures are published on the
	// public statistics page and GET /api/v1/stats (default none).
	K           int
	PublicSites []string
}

// Service records beacons and the request log through one batching buffer, keeps the
// salts of the visitor hash, and rolls events up per day.
type Service struct {
	db    *store.DB
	cfg   Config
	sites map[string]bool
	// public are the sites whose statistics are published.
	public map[string]bool
	now    func() time.Time
	log    *slog.Logger
	buf    *buffer

	agents    [16]agentShard
	agentSeed maphash.Seed

	saltMu  sync.RWMutex
	saltDay int64
	salt    *dayKey // the key of saltDay
}

// ErrFull is the error of a beacon the buffer has no room for: the server sheds load
// instead of growing.
var ErrFull = apperr.New(apperr.Unavailable, "busy", "too many events at once; try again shortly")

// New returns the service over the analytics store db. It writes nothing until Start.
func New(db *store.DB, cfg Config, now func() time.Time, log *slog.Logger) *Service {
	if cfg.Buffer <= 0 {
		cfg.Buffer = 65536
	}
	if cfg.FlushEvery <= 0 {
		cfg.FlushEvery = 250 * time.Millisecond
	}
	if cfg.RequestLogDays <= 0 {
		cfg.RequestLogDays = 14
	}
	if cfg.EventDays <= 0 {
		cfg.EventDays = 31
	}
	if cfg.K <= 0 {
		cfg.K = 10
	}
	cfg.K = max(cfg.K, MinK)
	s := &Service{db: db, cfg: cfg, sites: map[string]bool{}, public: map[string]bool{}, now: now, log: log, agentSeed: maphash.MakeSeed()}
	for i := range s.agents {
		s.agents[i].m = map[string]agentInfo{}
	}
	for _, h := range cfg.Sites {
		s.sites[strings.ToLower(strings.TrimSpace(h))] = true
	}
	for _, h := range cfg.PublicSites {
		if h = strings.ToLower(strings.TrimSpace(h)); s.sites[h] {
			s.public[h] = true
		}
	}
	s.buf = newBuffer(db, cfg.Buffer, cfg.FlushEvery, log)
	return s
}

// DB is the analytics store (tests read its schema).
func (s *Service) DB() *store.DB { return s.db }

// Start writes the buffer every FlushEvery until Close.
func (s *Service) Start() { s.buf.start() }

// Close stops taking rows, writes every row accepted (until ctx ends), and closes the
// store.
func (s *Service) Close(ctx context.Context) error {
	err := s.buf.close(ctx)
	return errors.Join(err, s.db.Close())
}

// Flush writes what the buffer holds now (tests, and the shutdown).
func (s *Service) Flush(ctx context.Context) error { return s.buf.flush(ctx) }

// Dropped is how many request log lines the buffer had no room for since the start.
func (s *Service) Dropped() int64 { return s.buf.dropped.Load() }

// Signals are what a request says of the visitor's choice about statistics.
type Signals struct {
	GPC, DNT bool // Sec-GPC: 1, DNT: 1
	// Choice is the visitor's recorded choice about statistics (the cookie banner's):
	// Undecided until the banner records one.
	Choice Choice
}

// Choice is a visitor's decision about statistics.
type Choice int

// The choices.
const (
	Undecided Choice = iota
	Granted
	Refused
)

// Counts reports whether a beacon with these signals may be counted: never against
// Sec-GPC or DNT or a refusal; with a grant; otherwise only where the operator declared
// the statistics cookieless and aggregate-only.
func (s *Service) Counts(sig Signals) bool {
	switch {
	case sig.GPC, sig.DNT, sig.Choice == Refused:
		return false
	case sig.Choice == Granted:
		return true
	}
	return s.cfg.Cookieless
}

// Cookieless reports whether the operator declared the statistics cookieless and
// aggregate-only (the cookie page says so).
func (s *Service) Cookieless() bool { return s.cfg.Cookieless }

// KnownSite reports whether host is one of the configured sites.
func (s *Service) KnownSite(host string) bool { return s.sites[strings.ToLower(host)] }

// Event is a beacon as received.
type Event struct {
	Site     string            `json:"site"`
	Kind     string            `json:"kind"`
	Path     string            `json:"path"`
	Referrer string            `json:"referrer"`
	Name     string            `json:"name"`
	Props    map[string]string `json:"props"`
	// Consent is the visitor's choice about statistics as the cookie banner of the
	// sending site recorded it: "granted", "refused", or "" (undecided, or a site
	// without the banner). A beacon from another site cannot carry Steward's own
	// choice cookie; its script reads its site's choice and says it here.
	Consent string `json:"consent"`
}

// ConsentChoice reads an event's consent field: "granted", "refused" or "".
func ConsentChoice(v string) (Choice, error) {
	switch v {
	case "":
		return Undecided, nil
	case "granted":
		return Granted, nil
	case "refused":
		return Refused, nil
	}
	return Undecided, apperr.Field("consent", "invalid", "must be granted, refused or empty")
}

// And is what two choices say together: a refusal by either wins, then a grant.
func (c Choice) And(o Choice) Choice {
	switch {
	case c == Refused || o == Refused:
		return Refused
	case c == Granted || o == Granted:
		return Granted
	}
	return Undecided
}

// Client is who sent a beacon, as far as the hash of the day needs: never stored.
type Client struct {
	IP, UserAgent string
}

// The kinds of event.
const (
	Pageview = "pageview"
	Outbound = "outbound"
	Custom   = "event"
)

// Record checks an event, cleans it and, where the signals let it count (Counts),
// queues it for the store. A field that is wrong is an error naming it, and nothing is
// queued, counted or not; a full buffer is ErrFull.
func (s *Service) Record(ctx context.Context, e Event, c Client, sig Signals) error {
	choice, err := ConsentChoice(e.Consent)
	if err != nil {
		return err
	}
	sig.Choice = sig.Choice.And(choice)
	row, err := s.prepare(ctx, e, c)
	if err != nil || !s.Counts(sig) {
		return err
	}
	return s.buf.addEvent(row)
}

func (s *Service) prepare(ctx context.Context, e Event, c Client) (eventRow, error) {
	site := strings.ToLower(strings.TrimSpace(e.Site))
	if site == "" {
		return eventRow{}, apperr.Field("site", "required", "is required")
	}
	if !s.sites[site] {
		return eventRow{}, apperr.Field("site", "unknown_site", "is not a site this server counts")
	}
	kind := e.Kind
	if kind == "" {
		kind = Pageview
	}
	if kind != Pageview && kind != Outbound && kind != Custom {
		return eventRow{}, apperr.Field("kind", "invalid", "must be pageview, outbound or event")
	}
	if e.Path == "" || e.Path[0] != '/' || len(e.Path) > MaxInputURL {
		return eventRow{}, apperr.Field("path", "invalid", fmt.Sprintf("must be a path starting with / of at most %d bytes", MaxInputURL))
	}
	ref, ok := CleanURL(e.Referrer)
	if !ok {
		return eventRow{}, apperr.Field("referrer", "invalid", "must be an absolute http(s) URL, or empty")
	}
	name := ""
	switch kind {
	case Outbound:
		if name, ok = CleanURL(e.Name); !ok || name == "" {
			return eventRow{}, apperr.Field("name", "invalid", "must be the link's absolute http(s) URL")
		}
	case Custom:
		if e.Name == "" || len(e.Name) > MaxName {
			return eventRow{}, apperr.Field("name", "invalid", fmt.Sprintf("must be the event's name, of 1 to %d bytes", MaxName))
		}
		name = cleanValue(e.Name, MaxName)
	default:
		if e.Name != "" {
			return eventRow{}, apperr.Field("name", "invalid", "is only for outbound links and events")
		}
	}
	props, err := cleanProps(e.Props)
	if err != nil {
		return eventRow{}, err
	}
	now := s.now()
	day := DayOf(now)
	key, err := s.saltFor(ctx, day)
	if err != nil {
		return eventRow{}, err
	}
	browser, bot := s.agent(c.UserAgent)
	return eventRow{
		at: store.Millis(now), day: day, site: site, kind: kind, path: CleanPath(e.Path), referrer: ref, name: name,
		props: props, campaign: campaignOf(e.Path), visitor: key.visitor(site, c.IP, c.UserAgent),
		browser: browser, bot: bot, country: Country(c.IP),
	}, nil
}

// cleanProps checks an event's properties and returns them as stored: a JSON object of
// cleaned values with sorted keys, or "".
func cleanProps(p map[string]string) (string, error) {
	if len(p) == 0 {
		return "", nil
	}
	if len(p) > MaxProps {
		return "", apperr.Field("props", "too_many", fmt.Sprintf("at most %d properties", MaxProps))
	}
	keys := make([]string, 0, len(p))
	for k, v := range p {
		if k == "" || len(k) > MaxPropKey || strings.ContainsFunc(k, func(r rune) bool {
			return !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_')
		}) {
			return "", apperr.Field("props", "invalid_key", fmt.Sprintf("keys are 1 to %d of a-z, 0-9 and _", MaxPropKey))
		}
		if len(v) > MaxPropValue {
			return "", apperr.Field("props."+k, "too_long", fmt.Sprintf("at most %d bytes", MaxPropValue))
		}
		keys = append(keys, k)
	}
	slices.Sort(keys)
	out := make(map[string]string, len(p))
	for _, k := range keys {
		out[k] = cleanValue(p[k], MaxPropValue)
	}
	b, err := json.Marshal(out) // sorts the keys
	if err != nil {
		return "", fmt.Errorf("analytics: props: %w", err)
	}
	return string(b), nil
}

// agent is the browser's family ("" when unknown) and whether it is a robot. Answers
// are kept for the user agents seen most (a site's visitors share a few hundred): a
// beacon and its request log line parse once, and most parse never.
func (s *Service) agent(ua string) (browser string, bot bool) {
	if len(ua) > 512 {
		return parseAgent(ua)
	}
	sh := &s.agents[maphash.String(s.agentSeed, ua)%uint64(len(s.agents))]
	sh.mu.Lock()
	v, ok := sh.m[ua]
	sh.mu.Unlock()
	if ok {
		return v.browser, v.bot
	}
	v.browser, v.bot = parseAgent(ua)
	sh.mu.Lock()
	if len(sh.m) >= 256 {
		clear(sh.m) // bounded: a flood of distinct agents costs parses, not memory
	}
	sh.m[ua] = v
	sh.mu.Unlock()
	return v.browser, v.bot
}

type agentInfo struct {
	browser string
	bot     bool
}

type agentShard struct {
	mu sync.Mutex
	m  map[string]agentInfo
}

// Country is the ISO 3166-1 code of the country of ip, from the table embedded in
// github.com/phuslu/iploc (no lookup service is asked); "ZZ" when unknown (a private,
// reserved or unparsable address). Only the code is kept, never the address.
func Country(ip string) string {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return "ZZ"
	}
	c := iploc.IPCountry(a.Unmap())
	if len(c) != 2 || c == "ZZ" {
		return "ZZ"
	}
	return c // points into the embedded table: no copy needed
}

// DayOf is the UTC day of t, in days since 1970-01-01.
func DayOf(t time.Time) int64 { return t.UTC().Unix() / 86400 }

// dayKey is a day's salt, with HMAC states keyed by it for reuse: keying an HMAC
// hashes a block of the salt twice, and a beacon needs only the hash of its own bytes.
type dayKey struct {
	pool sync.Pool // *visitorHasher, keyed by the salt
}

type visitorHasher struct {
	mac hash.Hash
	buf []byte // site, 0, address, 0, user agent; then the sum
}

func newDayKey(salt []byte) *dayKey {
	k := &dayKey{}
	k.pool.New = func() any { return &visitorHasher{mac: hmac.New(sha256.New, salt)} }
	return k
}

// visitor is 64 bits of HMAC-SHA-256 under the day's salt of the site, the client's
// full address and its user agent: the same visitor is one number for a day, and
// another the next day, which nobody can link once the salt is gone.
func (k *dayKey) visitor(site, ip, ua string) int64 {
	h := k.pool.Get().(*visitorHasher)
	h.mac.Reset()
	h.buf = append(append(append(append(append(h.buf[:0], site...), 0), ip...), 0), ua...)
	h.mac.Write(h.buf)
	h.buf = h.mac.Sum(h.buf[:0])
	v := int64(binary.BigEndian.Uint64(h.buf[:8]))
	if cap(h.buf) <= 1024 { // a long user agent's buffer is not kept
		k.pool.Put(h)
	}
	return v
}

// saltFor is the key of day: from memory, else the store's salt (made by the first
// node that needs it, so every node of a deployment hashes alike).
func (s *Service) saltFor(ctx context.Context, day int64) (*dayKey, error) {
	s.saltMu.RLock()
	if s.saltDay == day && s.salt != nil {
		salt := s.salt
		s.saltMu.RUnlock()
		return salt, nil
	}
	s.saltMu.RUnlock()
	s.saltMu.Lock()
	defer s.saltMu.Unlock()
	if s.saltDay == day && s.salt != nil {
		return s.salt, nil
	}
	fresh := make([]byte, 32)
	_, _ = rand.Read(fresh)
	if _, err := s.db.ExecContext(ctx, `INSERT INTO salts (day, salt) VALUES ($1, $2) ON CONFLICT (day) DO NOTHING`, day, fresh); err != nil {
		return nil, fmt.Errorf("analytics: salt: %w", err)
	}
	var salt []byte
	if err := s.db.QueryRowContext(ctx, `SELECT salt FROM salts WHERE day = $1`, day).Scan(&salt); err != nil {
		return nil, fmt.Errorf("analytics: salt: %w", err)
	}
	clear(fresh)
	// The day before's key is let go, not overwritten: a request may still be hashing
	// with it (Go does not promise that freed bytes are gone from memory either). Its
	// pooled states go with it.
	k := newDayKey(salt)
	if day >= s.saltDay {
		s.salt, s.saltDay = k, day
	}
	return k, nil
}

// Request is one request the site answered, for the request log.
type Request struct {
	At        time.Time
	Method    string
	Path      string // without the query
	Status    int
	Bytes     int64
	Duration  time.Duration
	IP        string // truncated before it is kept
	UserAgent string // only its browser's family is kept
}

// LogRequest queues a line of the request log; it never blocks: when the buffer is
// full the line is dropped and counted (Dropped).
func (s *Service) LogRequest(r Request) {
	method := r.Method
	if len(method) > 10 {
		method = "OTHER"
	}
	browser, _ := s.agent(r.UserAgent)
	s.buf.addLog(logRow{
		at: store.Millis(r.At), method: method, path: CleanPath(r.Path), status: r.Status, bytes: r.Bytes,
		micros: r.Duration.Microseconds(), browser: browser, net: Network(r.IP),
	})
}
