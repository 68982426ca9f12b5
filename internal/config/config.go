// Package config reads Steward's typed configuration from command-line flags and
// STEWARD_* environment variables (a flag wins over its variable), validates it once
// with messages that name the flag and the variable, and is passed explicitly from
// there on.
package config

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"net/mail"
	"net/url"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"golang.org/x/text/language"
)

// Requirement says whether the registration form asks for a field.
type Requirement string

// The requirements an operator can set per field.
const (
	Required Requirement = "required"
	Optional Requirement = "optional"
	Off      Requirement = "off"
)

// ProfileFields are the registration fields an operator can make mandatory or optional;
// email and password are always mandatory.
var ProfileFields = []string{"name", "phone", "home_address", "business_address"}

// Argon2 holds the password-hash parameters.
type Argon2 struct {
	MemoryKiB uint32
	Time      uint32
	Threads   uint8
}

// Config is the whole configuration.
type Config struct {
	Addr        string
	DataDir     string
	DatabaseURL string
	BaseURL     string
	SiteName    string
	LogLevel    string
	MetricsAddr string // "" : no metrics listener

	MailMode     string // "file" or "smtp"
	MailFrom     string
	SMTPAddr     string
	SMTPUser     string
	SMTPPassword string
	SMTPTLS      string // "none", "starttls", "tls"

	Argon2     Argon2
	SessionTTL time.Duration
	// Sessions that passed the second factor (staff) live shorter, and sensitive
	// actions ask again after ReauthWindow.
	StaffSessionTTL, StaffSessionIdle, ReauthWindow time.Duration
	CookieSecure                                    bool
	TrustProxy                                      bool
	RateLimits                                      bool
	Dev                                             bool // development mode: /_styleguide

	DefaultAgeOfConsent int
	AgeOfConsent        map[string]int
	Fields              map[string]Requirement

	LedgerKeyFile string
	JobWorkers    int

	MasterKeyFile    string
	KeyEpoch         time.Duration // how long a key-encryption key lives
	KeyGrace         time.Duration // how long a rotation waits for every node before the old key goes
	EscrowRecipients string        // age public keys that epoch keys are escrowed to
	BackupRetention  time.Duration // how long escrowed epoch keys are kept
	Files            string        // "disk" or "s3"
	FilesDir         string
	S3               S3
	MaxFileSize      int64
	Quota            int64
	UploadLease      time.Duration
	// MaxRequestDocument is the largest copy of an identity document a request made
	// without logging in may carry; RequestDownloadTTL is how long the one-time link
	// that delivers an access request's export works.
	MaxRequestDocument int64
	RequestDownloadTTL time.Duration
	// Retention are the periods of the retention rules (internal/retention).
	Retention Retention

	InboundAddr       string
	UnsubscribeDomain string

	PurposesFile   string
	PolicyVersion  string
	PolicyFile     string
	ReceiptKeyFile string
	// Region is where the deployment stores personal data (P-SEC-1): its name and the
	// countries it covers. A processor outside it receives data only under a recorded
	// transfer safeguard.
	Region          string
	RegionCountries []string

	// The contacts the privacy center shows (Art. 13(1)(b), 27, 77 GDPR): free text,
	// e.g. "Jane Roe, dpo@example.com".
	DPOContact           string
	EURepresentative     string
	SupervisoryAuthority string

	// GrantApprover is who approves support's access grants: member, dpo or either.
	GrantApprover string
	Analytics     Analytics

	PgDump    string // pg_dump for steward backup on PostgreSQL; "": on PATH
	PgRestore string // pg_restore for steward restore on PostgreSQL; "": on PATH
}

// Retention are the periods of the retention rules.
type Retention struct {
	Unconfirmed time.Duration // registrations and newsletter subscriptions never confirmed
	Sessions    time.Duration // after a session or one-time link expires
	Requests    time.Duration // after a privacy request closes
	FileAccess  time.Duration // entries of the file access log
	Inactive    time.Duration // an account not used for this long (0: the rule is off)
	Warning     time.Duration // from the inactivity warning to the erasure
}

// Analytics configures the request log and the page statistics (internal/analytics).
type Analytics struct {
	DatabaseURL    string   // "": next to the main database (SQLite) or its own schema (PostgreSQL)
	Sites          []string // hosts whose beacons are counted
	Cookieless     bool     // statistics declared cookieless and aggregate-only
	RequestLogDays int
	EventDays      int
	Buffer         int // rows that may wait to be written
	PerMinute      int // beacons per minute from one address (per node)
	// StatsK is the threshold of published figures (below it: suppressed);
	// StatsPublicSites are the sites whose statistics are public.
	StatsK           int
	StatsPublicSites []string
}

// S3 configures S3-compatible object storage for files.
type S3 struct {
	Endpoint  string
	Region    string
	Bucket    string
	AccessKey string
	SecretKey string
	UseTLS    bool
	Prefix    string
}

// setting documents one setting: its flag, its variable, its default and its help.
type setting struct {
	flag, env, def, help string
}

// secret settings are taken from their variable without becoming the flag's shown
// default, so that -h never prints a password.
var secret = map[string]bool{"smtp-password": true, "s3-secret-key": true, "database": true, "analytics-database": true}

// settings are every setting Steward reads, in the order -h lists them.
var settings = []setting{
	{"addr", "STEWARD_ADDR", "localhost:8080", "listen address"},
	{"data", "STEWARD_DATA", "./steward-data", "data folder (SQLite database, outbox, keys)"},
	{"database", "STEWARD_DATABASE", "", "database URL: sqlite:PATH or postgres://... (default: SQLite in the data folder)"},
	{"base-url", "STEWARD_BASE_URL", "", "public URL used in links of mails (default: http://ADDR)"},
	{"site-name", "STEWARD_SITE_NAME", "Steward", "name of the site shown on pages and mails"},
	{"log-level", "STEWARD_LOG_LEVEL", "info", "debug, info, warn or error"},
	{"metrics-addr", "STEWARD_METRICS_ADDR", "", "listen address of /metrics (Prometheus), with /healthz and /readyz, apart from the site, e.g. 127.0.0.1:9464 (off when empty)"},
	{"mail", "STEWARD_MAIL", "file", "mail sender: file (.eml files in DATA/outbox) or smtp"},
	{"mail-from", "STEWARD_MAIL_FROM", "Steward <no-reply@steward.localhost>", "From address of mails"},
	{"smtp-addr", "STEWARD_SMTP_ADDR", "", "SMTP server host:port (with --mail=smtp)"},
	{"smtp-user", "STEWARD_SMTP_USER", "", "SMTP user name"},
	{"smtp-password", "STEWARD_SMTP_PASSWORD", "", "SMTP password (prefer the variable to the flag)"},
	{"smtp-tls", "STEWARD_SMTP_TLS", "starttls", "SMTP transport security: none, starttls or tls"},
	{"argon2-memory", "STEWARD_ARGON2_MEMORY", "65536", "argon2id memory in KiB"},
	{"argon2-time", "STEWARD_ARGON2_TIME", "1", "argon2id passes"},
	{"argon2-threads", "STEWARD_ARGON2_THREADS", "2", "argon2id lanes"},
	{"session-ttl", "STEWARD_SESSION_TTL", "336h", "how long an idle-free session lives"},
	{"staff-session-ttl", "STEWARD_STAFF_SESSION_TTL", "12h", "how long a session lives once it passed the second factor (staff)"},
	{"staff-session-idle", "STEWARD_STAFF_SESSION_IDLE", "30m", "a session that passed the second factor ends after this long without a request"},
	{"reauth-window", "STEWARD_REAUTH_WINDOW", "10m", "sensitive staff actions ask for the password or a code again after this long"},
	{"cookie-secure", "STEWARD_COOKIE_SECURE", "auto", "Secure flag on cookies: true, false, or auto (true when the base URL is https)"},
	{"trust-proxy", "STEWARD_TRUST_PROXY", "false", "take the client address from X-Forwarded-For (only behind a proxy you run)"},
	{"rate-limits", "STEWARD_RATE_LIMITS", "true", "rate limits on login, registration and password reset"},
	{"dev", "STEWARD_DEV", "false", "development mode: serves the style guide at /_styleguide"},
	{"age-of-consent", "STEWARD_AGE_OF_CONSENT", "16", "digital age of consent: a default, then COUNTRY=AGE overrides, e.g. 16,FR=15,BE=13"},
	{"fields", "STEWARD_FIELDS", "name=required,phone=optional,home_address=optional,business_address=optional", "registration fields: FIELD=required|optional|off for name, phone, home_address, business_address"},
	{"ledger-key-file", "STEWARD_LEDGER_KEY_FILE", "", "key for the erasure ledger's keyed hashes (default: DATA/ledger.key, made at first start)"},
	{"job-workers", "STEWARD_JOB_WORKERS", "4", "background job workers"},
	{"master-key-file", "STEWARD_MASTER_KEY_FILE", "", "this node's key file: the key-encryption key of the current epoch, which wraps every data key; Steward rewrites it at every epoch (default: DATA/master.key, made at the first start of a deployment; other nodes need a copy)"},
	{"key-epoch", "STEWARD_KEY_EPOCH", "24h", "how long a key-encryption key lives: every epoch, data keys are rewrapped and the old key is destroyed on every node, so an erased member's key in dead rows, WAL and backups opens with nothing a node holds"},
	{"key-grace", "STEWARD_KEY_GRACE", "2m", "how long a key rotation waits, once begun, before the old key is destroyed: every node must have begun wrapping new keys at the new epoch by then (nodes look every 10s); 0 for a single node"},
	{"escrow-recipient", "STEWARD_ESCROW_RECIPIENT", "", "age public keys (age1..., comma-separated) that each epoch's key is escrowed to, for restoring backups; keep the private key offline (make one with: steward keys escrow-keygen)"},
	{"backup-retention", "STEWARD_BACKUP_RETENTION", "840h", "how long backups are kept: escrowed epoch keys older than this are deleted"},
	{"files", "STEWARD_FILES", "disk", "where files are stored: disk (DATA/files) or s3"},
	{"files-dir", "STEWARD_FILES_DIR", "", "folder for --files=disk (default: DATA/files)"},
	{"s3-endpoint", "STEWARD_S3_ENDPOINT", "", "S3 endpoint host:port (with --files=s3)"},
	{"s3-region", "STEWARD_S3_REGION", "", "S3 region"},
	{"s3-bucket", "STEWARD_S3_BUCKET", "", "S3 bucket"},
	{"s3-access-key", "STEWARD_S3_ACCESS_KEY", "", "S3 access key"},
	{"s3-secret-key", "STEWARD_S3_SECRET_KEY", "", "S3 secret key (prefer the variable to the flag)"},
	{"s3-tls", "STEWARD_S3_TLS", "true", "use https for S3"},
	{"s3-prefix", "STEWARD_S3_PREFIX", "", "prefix of every object name in the bucket"},
	{"max-file-size", "STEWARD_MAX_FILE_SIZE", "4GiB", "largest file a member may upload (e.g. 500MiB, 4GiB)"},
	{"quota", "STEWARD_QUOTA", "10GiB", "total size of files per member"},
	{"upload-lease", "STEWARD_UPLOAD_LEASE", "2m", "how long an upload holds its place without renewing it; after it another node may reclaim it as dead"},
	{"max-request-document", "STEWARD_MAX_REQUEST_DOCUMENT", "10MiB", "largest copy of an identity document sent with a request made without logging in"},
	{"request-download-ttl", "STEWARD_REQUEST_DOWNLOAD_TTL", "168h", "how long the one-time link that delivers an access request's data works"},
	{"retention-unconfirmed", "STEWARD_RETENTION_UNCONFIRMED", "168h", "retention: a registration or newsletter subscription never confirmed is erased after this"},
	{"retention-sessions", "STEWARD_RETENTION_SESSIONS", "0s", "retention: expired sessions and one-time links are deleted this long after they expire"},
	{"retention-requests", "STEWARD_RETENTION_REQUESTS", "26280h", "retention: a closed privacy request and its history are deleted this long after it closed (the legal period its evidence serves; default 3 years)"},
	{"retention-file-access", "STEWARD_RETENTION_FILE_ACCESS", "8760h", "retention: entries of the file access log are deleted after this (default 1 year)"},
	{"retention-inactive", "STEWARD_RETENTION_INACTIVE", "0s", "retention: an account not used for this long is warned by mail, then erased (0: off)"},
	{"retention-inactive-warning", "STEWARD_RETENTION_INACTIVE_WARNING", "720h", "retention: how long after the warning an inactive account is erased if the member does not log in"},
	{"inbound-smtp-addr", "STEWARD_INBOUND_SMTP_ADDR", "", "listen address of the inbound SMTP server taking mail to the unsubscribe address (off when empty)"},
	{"unsubscribe-domain", "STEWARD_UNSUBSCRIBE_DOMAIN", "", "domain of the unsubscribe address unsubscribe@DOMAIN (default: the domain of --mail-from)"},
	{"purposes", "STEWARD_PURPOSES", "", "TOML file of the purposes and processors register (default: the built-in one)"},
	{"policy-version", "STEWARD_POLICY_VERSION", "2018.1", "label of the first version of the privacy policy, stored at first start (later versions are published in the console)"},
	{"policy-file", "STEWARD_POLICY_FILE", "", "Markdown text of the first version of the privacy policy, stored at first start (default: a built-in placeholder)"},
	{"region", "STEWARD_REGION", "EEA", "where personal data is stored: EEA, EU, or country codes (e.g. CH, or US,CA); a processor outside it needs a transfer safeguard"},
	{"receipt-key-file", "STEWARD_RECEIPT_KEY_FILE", "", "Ed25519 key signing consent receipts (default: DATA/receipt.key, made at first start)"},
	{"dpo-contact", "STEWARD_DPO_CONTACT", "", "the data protection officer's contact, shown in the privacy center (e.g. \"Jane Roe, dpo@example.com\")"},
	{"eu-representative", "STEWARD_EU_REPRESENTATIVE", "", "the EU representative's contact (Art. 27 GDPR), shown in the privacy center, for a controller outside the EU"},
	{"supervisory-authority", "STEWARD_SUPERVISORY_AUTHORITY", "", "the supervisory authority a member may complain to, with its address or site, shown in the privacy center and in refusals"},
	{"grant-approver", "STEWARD_GRANT_APPROVER", "member", "who approves support's access grants to a member's data: member, dpo or either"},
	{"analytics-database", "STEWARD_ANALYTICS_DATABASE", "", "the analytics store's URL, sqlite:PATH or postgres://... with its own role (default: DATA's analytics.db beside a SQLite database; on PostgreSQL the same server in a schema named analytics)"},
	{"analytics-sites", "STEWARD_ANALYTICS_SITES", "", "hosts whose page beacons are counted, comma-separated, e.g. example.com,www.example.com (beacons of any other host are refused)"},
	{"analytics-cookieless", "STEWARD_ANALYTICS_COOKIELESS", "false", "declare the page statistics cookieless and aggregate-only: beacons count without a visitor's choice (never against Sec-GPC, DNT or a refusal in the cookie banner)"},
	{"request-log-days", "STEWARD_REQUEST_LOG_DAYS", "14", "days the request log is kept before its job purges it"},
	{"analytics-events-days", "STEWARD_ANALYTICS_EVENTS_DAYS", "31", "days raw page events are kept (their daily rollups stay)"},
	{"analytics-buffer", "STEWARD_ANALYTICS_BUFFER", "65536", "events and log lines that may wait in memory to be written; past it beacons get 503"},
	{"analytics-rate", "STEWARD_ANALYTICS_RATE", "600", "page beacons a minute from one address, per node (with --rate-limits)"},
	{"stats-k", "STEWARD_STATS_K", "10", "the statistics' threshold: every figure below it, and every figure that subtracting two shown ones would give below it, is suppressed (at least 2)"},
	{"stats-public-sites", "STEWARD_STATS_PUBLIC_SITES", "", "sites of --analytics-sites whose statistics are public (/statistics, GET /api/v1/stats), comma-separated (default none)"},
	{"pg-dump", "STEWARD_PG_DUMP", "", "pg_dump program for steward backup on PostgreSQL (default: pg_dump on PATH)"},
	{"pg-restore", "STEWARD_PG_RESTORE", "", "pg_restore program for steward restore on PostgreSQL (default: pg_restore on PATH)"},
}

// Load reads the configuration from args (flags, without the program and subcommand
// names) and getenv. It returns the remaining positional arguments.
func Load(args []string, getenv func(string) string) (*Config, []string, error) {
	vals, positional, err := parseFlags(args, getenv)
	if err != nil {
		return nil, nil, err
	}
	l := &loader{vals: vals}
	get := l.get
	c := &Config{
		Addr: get("addr"), DataDir: get("data"), DatabaseURL: get("database"), BaseURL: get("base-url"),
		SiteName: get("site-name"), LogLevel: get("log-level"), MetricsAddr: get("metrics-addr"),
		MailMode: get("mail"), MailFrom: get("mail-from"), SMTPAddr: get("smtp-addr"), SMTPUser: get("smtp-user"),
		SMTPPassword: *vals["smtp-password"], SMTPTLS: get("smtp-tls"), LedgerKeyFile: get("ledger-key-file"),
	}
	l.site(c)
	l.mail(c)
	l.accounts(c)
	l.keys(c, getenv)
	l.files(c)
	l.unsubscribe(c)
	l.records(c)
	l.analytics(c)
	if len(l.errs) > 0 {
		return nil, nil, fmt.Errorf("config: %w", errors.Join(l.errs...))
	}
	return c, positional, nil
}

// parseFlags parses args over the defaults that settings and getenv give, and returns
// every setting's value by flag name and the positional arguments.
func parseFlags(args []string, getenv func(string) string) (map[string]*string, []string, error) {
	fs := flag.NewFlagSet("steward", flag.ContinueOnError)
	vals := map[string]*string{}
	secretFromEnv := map[string]string{}
	for _, s := range settings {
		def := s.def
		if v := getenv(s.env); v != "" {
			if secret[s.flag] {
				// Never a flag default: -h would print it.
				secretFromEnv[s.flag] = v
			} else {
				def = v
			}
		}
		if s.flag == "dev" {
			// A switch: --dev alone means --dev=true.
			v := boolFlag(def)
			fs.Var(&v, s.flag, s.help+" ["+s.env+"]")
			vals[s.flag] = (*string)(&v)
			continue
		}
		vals[s.flag] = fs.String(s.flag, def, s.help+" ["+s.env+"]")
	}
	var usage strings.Builder
	fs.SetOutput(&usage)
	// Flags may come before or after the positional arguments.
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				fs.PrintDefaults()
				return nil, nil, fmt.Errorf("%w\n%s", err, usage.String())
			}
			return nil, nil, fmt.Errorf("config: %w", err)
		}
		if fs.NArg() == 0 {
			break
		}
		positional = append(positional, fs.Arg(0))
		args = fs.Args()[1:]
	}
	for name, v := range secretFromEnv {
		if *vals[name] == "" {
			*vals[name] = v
		}
	}
	return vals, positional, nil
}

// loader reads the parsed settings into a Config, collecting every error so that one
// start reports them all.
type loader struct {
	vals map[string]*string
	errs []error
}

// get is a setting's value, trimmed.
func (l *loader) get(name string) string { return strings.TrimSpace(*l.vals[name]) }

// bad records that a setting is wrong, naming its flag and its variable.
func (l *loader) bad(name, msg string) {
	env := ""
	for _, s := range settings {
		if s.flag == name {
			env = s.env
		}
	}
	l.errs = append(l.errs, fmt.Errorf("--%s (%s): %s", name, env, msg))
}

// duration reads a duration of at least lo; wrong, it is bad and 0.
func (l *loader) duration(name string, lo time.Duration, msg string) time.Duration {
	d, err := time.ParseDuration(l.get(name))
	if err != nil || d < lo {
		l.bad(name, msg)
		return 0
	}
	return d
}

// site checks where Steward listens, keeps its data and is reached, and its log level.
func (l *loader) site(c *Config) {
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		l.bad("addr", fmt.Sprintf("%q is not host:port", c.Addr))
	}
	if _, _, err := net.SplitHostPort(c.MetricsAddr); c.MetricsAddr != "" && err != nil {
		l.bad("metrics-addr", fmt.Sprintf("%q is not host:port", c.MetricsAddr))
	}
	if c.DataDir == "" {
		l.bad("data", "must not be empty")
	}
	if c.DatabaseURL == "" {
		c.DatabaseURL = "sqlite:" + filepath.Join(c.DataDir, "steward.db")
	} else if !strings.HasPrefix(c.DatabaseURL, "sqlite:") && !strings.HasPrefix(c.DatabaseURL, "postgres://") &&
		!strings.HasPrefix(c.DatabaseURL, "postgresql://") {
		l.bad("database", "want sqlite:PATH or postgres://...")
	}
	if c.BaseURL == "" {
		c.BaseURL = "http://" + c.Addr
	}
	if u, err := url.Parse(c.BaseURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		l.bad("base-url", fmt.Sprintf("%q is not an http(s) URL", c.BaseURL))
	}
	c.BaseURL = strings.TrimRight(c.BaseURL, "/")
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		l.bad("log-level", "want debug, info, warn or error")
	}
}

// mail checks how mail goes out.
func (l *loader) mail(c *Config) {
	switch c.MailMode {
	case "file":
	case "smtp":
		if _, _, err := net.SplitHostPort(c.SMTPAddr); err != nil {
			l.bad("smtp-addr", "with --mail=smtp, want the SMTP server as host:port")
		}
	default:
		l.bad("mail", "want file or smtp")
	}
	switch c.SMTPTLS {
	case "none", "starttls", "tls":
	default:
		l.bad("smtp-tls", "want none, starttls or tls")
	}
}

// accounts reads password hashing, the job workers, sessions and cookies, the rate
// limits, the ages of consent and which profile fields are asked.
func (l *loader) accounts(c *Config) {
	get, bad := l.get, l.bad
	c.Argon2.MemoryKiB = uint32(positive(get("argon2-memory"), 8, 4<<20, "argon2-memory", bad))
	c.Argon2.Time = uint32(positive(get("argon2-time"), 1, 100, "argon2-time", bad))
	c.Argon2.Threads = uint8(positive(get("argon2-threads"), 1, 64, "argon2-threads", bad))
	c.JobWorkers = positive(get("job-workers"), 1, 1000, "job-workers", bad)
	c.SessionTTL = l.duration("session-ttl", time.Minute, "want a duration of at least 1m, e.g. 336h")
	c.StaffSessionTTL = l.duration("staff-session-ttl", time.Minute, "want a duration of at least 1m, e.g. 12h")
	c.StaffSessionIdle = l.duration("staff-session-idle", time.Minute, "want a duration of at least 1m, e.g. 30m")
	c.ReauthWindow = l.duration("reauth-window", time.Minute, "want a duration of at least 1m, e.g. 10m")
	switch get("cookie-secure") {
	case "auto":
		c.CookieSecure = strings.HasPrefix(c.BaseURL, "https://")
	case "true":
		c.CookieSecure = true
	case "false":
	default:
		bad("cookie-secure", "want true, false or auto")
	}
	c.TrustProxy = boolean(get("trust-proxy"), "trust-proxy", bad)
	c.RateLimits = boolean(get("rate-limits"), "rate-limits", bad)
	c.Dev = boolean(get("dev"), "dev", bad)
	c.DefaultAgeOfConsent, c.AgeOfConsent = ageOfConsent(get("age-of-consent"), bad)
	c.Fields = fields(get("fields"), bad)
}

// keys reads the master key's file, the key epochs, the escrow and how long backups
// are kept.
func (l *loader) keys(c *Config, getenv func(string) string) {
	c.MasterKeyFile = l.get("master-key-file")
	if c.MasterKeyFile == "" {
		c.MasterKeyFile = filepath.Join(c.DataDir, "master.key")
	}
	if getenv("STEWARD_MASTER_KEY") != "" {
		l.bad("master-key-file", "STEWARD_MASTER_KEY is no longer read: keys rotate every epoch and live in a file Steward rewrites; write the key (base64) to the key file instead")
	}
	c.KeyEpoch = l.duration("key-epoch", time.Minute, "want a duration of at least 1m, e.g. 24h")
	c.KeyGrace = l.duration("key-grace", 0, "want a duration, e.g. 2m, or 0 for a single node")
	c.EscrowRecipients = l.get("escrow-recipient")
	c.BackupRetention = l.duration("backup-retention", time.Hour, "want a duration of at least 1h, e.g. 840h")
}

// files reads where members' files are kept (a folder or S3) and their limits.
func (l *loader) files(c *Config) {
	get, bad := l.get, l.bad
	c.Files = get("files")
	c.FilesDir = get("files-dir")
	if c.FilesDir == "" {
		c.FilesDir = filepath.Join(c.DataDir, "files")
	}
	c.S3 = S3{Endpoint: get("s3-endpoint"), Region: get("s3-region"), Bucket: get("s3-bucket"), AccessKey: get("s3-access-key"),
		SecretKey: *l.vals["s3-secret-key"], Prefix: get("s3-prefix")}
	c.S3.UseTLS = boolean(get("s3-tls"), "s3-tls", bad)
	switch c.Files {
	case "disk":
	case "s3":
		if c.S3.Endpoint == "" {
			bad("s3-endpoint", "with --files=s3, want the S3 endpoint as host:port")
		}
		if c.S3.Bucket == "" {
			bad("s3-bucket", "with --files=s3, want a bucket name")
		}
	default:
		bad("files", "want disk or s3")
	}
	c.MaxFileSize = size(get("max-file-size"), "max-file-size", bad)
	c.Quota = size(get("quota"), "quota", bad)
	c.UploadLease = l.duration("upload-lease", time.Second, "want a duration of at least 1s, e.g. 2m")
	c.MaxRequestDocument = size(get("max-request-document"), "max-request-document", bad)
	c.RequestDownloadTTL = l.duration("request-download-ttl", time.Minute, "want a duration of at least 1m, e.g. 168h")
	c.Retention = Retention{
		Unconfirmed: l.duration("retention-unconfirmed", time.Hour, "want a duration of at least 1h, e.g. 168h"),
		Sessions:    l.duration("retention-sessions", 0, "want a duration, e.g. 0s or 24h"),
		Requests:    l.duration("retention-requests", 24*time.Hour, "want a duration of at least 24h, e.g. 26280h"),
		FileAccess:  l.duration("retention-file-access", 24*time.Hour, "want a duration of at least 24h, e.g. 8760h"),
		Inactive:    l.duration("retention-inactive", 0, "want a duration, e.g. 17520h, or 0 for off"),
		Warning:     l.duration("retention-inactive-warning", time.Hour, "want a duration of at least 1h, e.g. 720h"),
	}
}

// unsubscribe reads the inbound SMTP listener and the unsubscribe address's domain.
func (l *loader) unsubscribe(c *Config) {
	get, bad := l.get, l.bad
	c.InboundAddr = get("inbound-smtp-addr")
	if c.InboundAddr != "" {
		if _, _, err := net.SplitHostPort(c.InboundAddr); err != nil {
			bad("inbound-smtp-addr", fmt.Sprintf("%q is not host:port", c.InboundAddr))
		}
	}
	c.UnsubscribeDomain = get("unsubscribe-domain")
	if c.UnsubscribeDomain == "" {
		if a, err := mail.ParseAddress(c.MailFrom); err == nil {
			c.UnsubscribeDomain = a.Address[strings.LastIndexByte(a.Address, '@')+1:]
		} else {
			bad("mail-from", fmt.Sprintf("%q is not an address", c.MailFrom))
		}
	}
}

// records reads the purposes register and the policy in force, the keys of consent
// receipts and of the erasure ledger, and the PostgreSQL backup programs.
func (l *loader) records(c *Config) {
	get, bad := l.get, l.bad
	c.PurposesFile = get("purposes")
	c.PolicyVersion = get("policy-version")
	if c.PolicyVersion == "" || len(c.PolicyVersion) > 40 {
		bad("policy-version", "want a short version label such as 2018.1")
	}
	c.PolicyFile = get("policy-file")
	c.ReceiptKeyFile = get("receipt-key-file")
	if c.ReceiptKeyFile == "" {
		c.ReceiptKeyFile = filepath.Join(c.DataDir, "receipt.key")
	}
	if c.LedgerKeyFile == "" {
		c.LedgerKeyFile = filepath.Join(c.DataDir, "ledger.key")
	}
	for _, v := range []struct {
		name string
		to   *string
	}{{"dpo-contact", &c.DPOContact}, {"eu-representative", &c.EURepresentative}, {"supervisory-authority", &c.SupervisoryAuthority}} {
		*v.to = get(v.name)
		if len(*v.to) > 500 || strings.ContainsAny(*v.to, "\r\n") {
			bad(v.name, "want one line of at most 500 characters")
		}
	}
	switch c.GrantApprover = get("grant-approver"); c.GrantApprover {
	case "member", "dpo", "either":
	default:
		bad("grant-approver", "want member, dpo or either")
	}
	c.PgDump = get("pg-dump")
	c.PgRestore = get("pg-restore")
	c.Region, c.RegionCountries = region(get("region"), bad)
}

// EU are the member states of the European Union; the EEA adds Iceland,
// Liechtenstein and Norway.
var (
	EU  = []string{"AT", "BE", "BG", "CY", "CZ", "DE", "DK", "EE", "ES", "FI", "FR", "GR", "HR", "HU", "IE", "IT", "LT", "LU", "LV", "MT", "NL", "PL", "PT", "RO", "SE", "SI", "SK"}
	EEA = sorted(append(append([]string{}, EU...), "IS", "LI", "NO"))
)

// region reads --region: EEA, EU, or a list of country codes.
func region(s string, bad func(string, string)) (string, []string) {
	switch strings.ToUpper(s) {
	case "EEA", "":
		return "EEA", EEA
	case "EU":
		return "EU", EU
	}
	var out []string
	for _, c := range listItems(s) {
		c = strings.ToUpper(c)
		if !ValidCountry(c) {
			bad("region", fmt.Sprintf("%q is not EEA, EU or an ISO 3166 country code", c))
			return "", nil
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		bad("region", "want EEA, EU or country codes")
		return "", nil
	}
	out = sorted(out)
	return strings.Join(out, ", "), out
}

// analytics reads the analytics store, the sites counted and what is kept how long.
func (l *loader) analytics(c *Config) {
	get, bad := l.get, l.bad
	a := &c.Analytics
	a.DatabaseURL = strings.TrimSpace(*l.vals["analytics-database"])
	if a.DatabaseURL != "" && !strings.HasPrefix(a.DatabaseURL, "sqlite:") && !strings.HasPrefix(a.DatabaseURL, "postgres://") &&
		!strings.HasPrefix(a.DatabaseURL, "postgresql://") {
		bad("analytics-database", "want sqlite:PATH or postgres://...")
	}
	for _, h := range listItems(get("analytics-sites")) {
		h = strings.ToLower(h)
		if strings.ContainsAny(h, "/:@ ") {
			bad("analytics-sites", fmt.Sprintf("%q is not a host name (no scheme, port or path)", h))
			continue
		}
		a.Sites = append(a.Sites, h)
	}
	a.Cookieless = boolean(get("analytics-cookieless"), "analytics-cookieless", bad)
	a.RequestLogDays = positive(get("request-log-days"), 1, 3650, "request-log-days", bad)
	a.EventDays = positive(get("analytics-events-days"), 1, 3650, "analytics-events-days", bad)
	a.Buffer = positive(get("analytics-buffer"), 16, 1<<24, "analytics-buffer", bad)
	a.PerMinute = positive(get("analytics-rate"), 1, 1<<30, "analytics-rate", bad)
	a.StatsK = positive(get("stats-k"), 2, 1<<30, "stats-k", bad)
	for _, h := range listItems(get("stats-public-sites")) {
		h = strings.ToLower(h)
		if !slices.Contains(a.Sites, h) {
			bad("stats-public-sites", fmt.Sprintf("%q is not one of --analytics-sites", h))
			continue
		}
		a.StatsPublicSites = append(a.StatsPublicSites, h)
	}
}

func positive(s string, lo, hi int, name string, bad func(string, string)) int {
	n, err := strconv.Atoi(s)
	if err != nil || n < lo || n > hi {
		bad(name, fmt.Sprintf("want a whole number from %d to %d, got %q", lo, hi, s))
		return lo
	}
	return n
}

func boolean(s, name string, bad func(string, string)) bool {
	b, err := strconv.ParseBool(s)
	if err != nil {
		bad(name, fmt.Sprintf("want true or false, got %q", s))
	}
	return b
}

// EUAgesOfConsent are the digital ages of consent under GDPR article 8 as the member
// states set them; the operator's --age-of-consent overrides any of them.
var EUAgesOfConsent = map[string]int{
	"AT": 14, "BE": 13, "BG": 14, "HR": 16, "CY": 14, "CZ": 15, "DK": 13, "EE": 13, "FI": 13,
	"FR": 15, "DE": 16, "GR": 15, "HU": 16, "IE": 16, "IT": 14, "LV": 13, "LT": 14, "LU": 16,
	"MT": 13, "NL": 16, "PL": 16, "PT": 13, "RO": 16, "SK": 16, "SI": 15, "ES": 14, "SE": 13,
	"GB": 13, "NO": 13, "IS": 13, "LI": 16, "US": 13,
}

// listItems returns the items of a comma-separated setting, trimmed, without empty ones.
func listItems(s string) []string {
	var out []string
	for _, part := range strings.Split(s, ",") {
		if part = strings.TrimSpace(part); part != "" {
			out = append(out, part)
		}
	}
	return out
}

func ageOfConsent(s string, bad func(string, string)) (int, map[string]int) {
	def := 16
	table := map[string]int{}
	for k, v := range EUAgesOfConsent {
		table[k] = v
	}
	for i, part := range listItems(s) {
		country, age, found := strings.Cut(part, "=")
		if !found {
			if i != 0 {
				bad("age-of-consent", fmt.Sprintf("%q: only the first item may be a bare default age", part))
				continue
			}
			age, country = country, ""
		}
		n, err := strconv.Atoi(strings.TrimSpace(age))
		if err != nil || n < 13 || n > 16 {
			bad("age-of-consent", fmt.Sprintf("%q: an age of consent is from 13 to 16", part))
			continue
		}
		if country == "" {
			def = n
			continue
		}
		country = strings.ToUpper(strings.TrimSpace(country))
		if !ValidCountry(country) {
			bad("age-of-consent", fmt.Sprintf("%q: unknown country code", country))
			continue
		}
		table[country] = n
	}
	return def, table
}

// ValidCountry reports whether code is a current ISO 3166-1 alpha-2 country code:
// withdrawn codes (UK, SU, YU, ...) and exceptional reservations (EU, UN, AC, EZ, ...)
// are refused, and XK (Kosovo, user-assigned but in general use) is accepted.
func ValidCountry(code string) bool {
	if code == "XK" {
		return true
	}
	if len(code) != 2 || strings.ToUpper(code) != code || exceptional[code] {
		return false
	}
	r, err := language.ParseRegion(code)
	if err != nil || !r.IsCountry() || r.String() != code {
		return false
	}
	// A withdrawn code canonicalizes to its successor.
	canon, _ := language.All.Canonicalize(language.Make("und-" + code))
	got, _ := canon.Region()
	return got.String() == code
}

// exceptional are codes ISO 3166 reserves without naming a country, and withdrawn
// codes split between several successors (so they do not canonicalize to one).
var exceptional = map[string]bool{"AC": true, "CP": true, "DG": true, "EA": true, "EU": true, "EZ": true, "FX": true,
	"IC": true, "SU": true, "TA": true, "UK": true, "UN": true, "YU": true, "CS": true, "AN": true}

func fields(s string, bad func(string, string)) map[string]Requirement {
	out := map[string]Requirement{}
	for _, f := range ProfileFields {
		out[f] = Optional
	}
	for _, part := range listItems(s) {
		name, req, _ := strings.Cut(part, "=")
		if _, ok := out[name]; !ok {
			bad("fields", fmt.Sprintf("unknown field %q; known: %s", name, strings.Join(sorted(ProfileFields), ", ")))
			continue
		}
		switch r := Requirement(req); r {
		case Required, Optional, Off:
			out[name] = r
		default:
			bad("fields", fmt.Sprintf("field %s: want required, optional or off, got %q", name, req))
		}
	}
	return out
}

func sorted(s []string) []string {
	out := append([]string(nil), s...)
	sort.Strings(out)
	return out
}

// AgeOfConsentFor returns the digital age of consent in a country.
func (c *Config) AgeOfConsentFor(country string) int {
	if n, ok := c.AgeOfConsent[country]; ok {
		return n
	}
	return c.DefaultAgeOfConsent
}

// size parses a byte size: a whole number with an optional unit B, KB, MB, GB, TB (powers
// of 1000) or KiB, MiB, GiB, TiB (powers of 1024).
func size(s, name string, bad func(string, string)) int64 {
	units := []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40},
		{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12}, {"B", 1}}
	num, mult := strings.TrimSpace(s), int64(1)
	for _, u := range units {
		if strings.HasSuffix(num, u.suffix) {
			num, mult = strings.TrimSpace(strings.TrimSuffix(num, u.suffix)), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n <= 0 || n > (1<<62)/mult {
		bad(name, fmt.Sprintf("want a size such as 500MiB or 4GiB, got %q", s))
		return 1
	}
	return n * mult
}

// boolFlag is a setting given as a switch: --NAME alone sets it to "true".
type boolFlag string

func (b *boolFlag) String() string     { return string(*b) }
func (b *boolFlag) Set(v string) error { *b = boolFlag(v); return nil }
func (b *boolFlag) IsBoolFlag() bool   { return true }
