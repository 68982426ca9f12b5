// Package app is the one place that knows every part of Steward: it opens the store,
// builds the services, the job queue and the HTTP handler, and runs and closes them.
package app

import (
	"cmp"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"steward/internal/access"
	"steward/internal/account"
	"steward/internal/analytics"
	"steward/internal/api"
	"steward/internal/apperr"
	"steward/internal/backup"
	"steward/internal/blob"
	"steward/internal/breaches"
	"steward/internal/config"
	"steward/internal/consent"
	"steward/internal/datamap"
	"steward/internal/disclosures"
	"steward/internal/files"
	"steward/internal/governance"
	"steward/internal/holds"
	"steward/internal/inbound"
	"steward/internal/jobs"
	"steward/internal/mail"
	"steward/internal/metrics"
	"steward/internal/newsletter"
	"steward/internal/notices"
	"steward/internal/policy"
	"steward/internal/processors"
	"steward/internal/ratelimit"
	"steward/internal/requests"
	"steward/internal/retention"
	"steward/internal/rights"
	"steward/internal/server"
	"steward/internal/store"
	"steward/internal/store/sqlcheck"
	"steward/internal/vault"
	"steward/internal/web"
)

// App is a built Steward. Its services are built once, by New, from what each
// depends on; the command line and tests reach them through its accessors (access.go).
type App struct {
	config     *config.Config
	log        *slog.Logger
	db         *store.DB
	registry   *datamap.Registry
	jobs       *jobs.Queue
	buckets    *ratelimit.Buckets // every rate limit, in the database
	limits     *server.Limits     // the limits of the site and the inbound listener
	outbox     *mail.Outbox
	audit      *governance.Audit
	accounts   *account.Service
	rights     *rights.Service
	vault      *vault.Vault
	blobs      blob.Store
	files      *files.Service
	consent    *consent.Service
	newsletter *newsletter.Service
	notices    *notices.Service
	processors *processors.Service
	staff      *governance.Staff
	requests   *requests.Service
	holds      *holds.Service
	retention  *retention.Service
	policy     *policy.Service
	access     *access.Service
	analytics  *analytics.Service // the request log and page statistics, in their own store
	handler    http.Handler
	patterns   []string // the routes handler serves (Routes)
	inbound    *inbound.Server
	resolver   inbound.Resolver // the inbound checks' DNS (nil: the system's)
	poll       time.Duration
	stop       context.CancelFunc
	now        func() time.Time
	resuming   sync.WaitGroup
	keysBehind error        // the database is at an older key epoch than this node (restored)
	serving    *backup.Lock // held from Start to Close: no restore meanwhile
	metrics    *metrics.Metrics
	ready      *readiness

	// The registers of disclosures to authorities and of breaches.
	disclosures *disclosures.Service
	breaches    *breaches.Service
	// analyticsDown is why the analytics store could not be opened: the commands that do
	// not serve (a residue scan as a reading role) go on without it; Start refuses.
	analyticsDown error
}

// Option changes how the app is built (tests).
type Option func(*options)

type options struct {
	now    func() time.Time
	poll   time.Duration
	sender mail.Sender
	// keyGrace is vault.Config.Grace.
	keyGrace time.Duration
	resolver inbound.Resolver
	// skipReads leaves staff reads unrecorded (the benchmark of what recording costs).
	skipReads bool
}

// WithClock sets the clock every service reads (a test that moves time rather than
// rewriting timestamps).
func WithClock(now func() time.Time) Option { return func(o *options) { o.now = now } }

// WithKeyGrace sets how long a key rotation waits for other nodes before it ends
// (negative: not at all; a single-node test).
func WithKeyGrace(d time.Duration) Option { return func(o *options) { o.keyGrace = d } }

// WithPoll sets how often idle job workers look for work.
func WithPoll(d time.Duration) Option { return func(o *options) { o.poll = d } }

// WithResolver sets the DNS that the inbound listener's SPF and DKIM checks ask.
func WithResolver(r inbound.Resolver) Option { return func(o *options) { o.resolver = r } }

// WithoutStaffReadRecords leaves staff reads of member data unrecorded: only the
// benchmark that measures what recording costs a support page uses it.
func WithoutStaffReadRecords() Option { return func(o *options) { o.skipReads = true } }

// WithSender replaces the configured mail sender.
func WithSender(s mail.Sender) Option { return func(o *options) { o.sender = s } }

// New opens the database, migrates it, and builds every service. It starts nothing.
func New(ctx context.Context, cfg *config.Config, log *slog.Logger, opts ...Option) (*App, error) {
	o := options{now: time.Now, poll: 200 * time.Millisecond}
	for _, f := range opts {
		f(&o)
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("app: data folder: %w", err)
	}
	db, err := store.Open(ctx, cfg.DatabaseURL)
	if err != nil {
		return nil, err
	}
	a := &App{config: cfg, log: log, db: db, now: o.now, poll: o.poll, resolver: o.resolver}
	if err := a.build(ctx, o); err != nil {
		if a.analytics != nil {
			err = errors.Join(err, a.analytics.Close(ctx))
		}
		db.Close()
		return nil, err
	}
	return a, nil
}

// Migrate applies Steward's and the job queue's migrations.
func Migrate(ctx context.Context, db *store.DB) error {
	if err := db.Migrate(ctx); err != nil {
		return err
	}
	return jobs.Migrate(ctx, db)
}

// build makes every service from what it depends on, in that order: the vault, then
// the mail and the audit log it seals, the capabilities, the job workers, the routes.
func (a *App) build(ctx context.Context, o options) error {
	cfg := a.config
	if err := Migrate(ctx, a.db); err != nil {
		return err
	}
	// A statement that does not prepare (a typo, a column a migration dropped) fails
	// the start, not a member's request (internal/store/sqlcheck).
	checkStart := time.Now()
	n, err := sqlcheck.Check(ctx, a.db)
	if err != nil {
		return err
	}
	a.log.Debug("app: sql statements prepared", "statements", n, "took", time.Since(checkStart))
	if err := a.openAnalytics(ctx); err != nil {
		a.analyticsDown = err
	}
	key, err := ledgerKey(cfg.LedgerKeyFile, a.log)
	if err != nil {
		return err
	}
	index := vault.NewIndex(key)
	bulk, err := mailSender(cfg, o.sender)
	if err != nil {
		return err
	}
	a.metrics = metrics.New(a.metricSources(), a.log)
	bulk = a.metrics.Sender(bulk) // counts what the outbox and campaigns hand over
	a.jobs = jobs.New(a.db, a.log, cfg.JobWorkers, o.poll)
	a.buckets = ratelimit.New(a.db, a.now, a.log)
	if err := a.openVault(ctx, o.keyGrace); err != nil {
		return err
	}
	// Queued mail and the audit log are sealed under their subjects' data keys: both
	// come after the vault.
	if a.outbox, err = mail.NewOutbox(ctx, a.db, a.vault, bulk, cfg.SiteName, a.now, a.log); err != nil {
		return err
	}
	// The audit log's key signs its checkpoints and MACs its entries: kept apart from
	// the database, like the receipts' key.
	auditKey, created, err := governance.LoadAuditKey(AuditKeyFile(cfg), true)
	if err != nil {
		return err
	}
	if created {
		a.log.Warn("made a new key for the audit log; copy it to every node and back it up apart from the database: steward audit verify checks the log against it",
			"file", AuditKeyFile(cfg))
	}
	a.audit = governance.NewAudit(a.vault, index, auditKey, a.now)
	if err := a.buildCapabilities(ctx, key, index, bulk, o.skipReads); err != nil {
		return err
	}
	a.registerJobs()
	if err := a.jobs.Open(true); err != nil {
		return err
	}
	a.handler, err = a.routes(index)
	return err
}

// openAnalytics opens the analytics store, apart from Steward's own database (its own
// file, or its own schema and maybe role), and the service that writes to it.
func (a *App) openAnalytics(ctx context.Context) error {
	cfg := a.config.Analytics
	u, err := analytics.StoreURL(a.config.DatabaseURL, cfg.DatabaseURL)
	if err != nil {
		return err
	}
	adb, err := analytics.OpenStore(ctx, u)
	if err != nil {
		return err
	}
	if _, err := sqlcheck.CheckAnalytics(ctx, adb); err != nil {
		adb.Close()
		return err
	}
	a.analytics = analytics.New(adb, analytics.Config{Sites: cfg.Sites, Cookieless: cfg.Cookieless, RequestLogDays: cfg.RequestLogDays,
		EventDays: cfg.EventDays, Buffer: cfg.Buffer, K: cfg.StatsK, PublicSites: cfg.StatsPublicSites}, a.now, a.log)
	return nil
}

// mailSender is the sender a test gave, else the configured one (SMTP, or .eml files
// in the data folder), as a bulk sender.
func mailSender(cfg *config.Config, sender mail.Sender) (mail.BulkSender, error) {
	if sender == nil {
		if cfg.MailMode == "smtp" {
			var err error
			if sender, err = mail.NewSMTPSender(cfg.SMTPAddr, cfg.SMTPUser, cfg.SMTPPassword, cfg.SMTPTLS, cfg.MailFrom); err != nil {
				return nil, err
			}
		} else {
			sender = mail.FileSender{Dir: filepath.Join(cfg.DataDir, "outbox"), From: cfg.MailFrom}
		}
	}
	if bulk, ok := sender.(mail.BulkSender); ok {
		return bulk, nil
	}
	return oneByOne{sender}, nil
}

// openVault opens the vault of data keys, making the deployment's key at first start.
// keyGrace is a test's vault.Config.Grace (0: the configured one).
func (a *App) openVault(ctx context.Context, keyGrace time.Duration) error {
	cfg := a.config
	vcfg := vault.Config{KeyFile: cfg.MasterKeyFile, Epoch: cfg.KeyEpoch, Retention: cfg.BackupRetention, Create: true, Grace: keyGrace}
	if keyGrace == 0 {
		vcfg.Grace = graceOf(cfg.KeyGrace)
	}
	var err error
	if cfg.EscrowRecipients != "" {
		if vcfg.Escrow, err = vault.ParseRecipients(cfg.EscrowRecipients); err != nil {
			return fmt.Errorf("--escrow-recipient (STEWARD_ESCROW_RECIPIENT): %w", err)
		}
	}
	if a.vault, err = vault.Open(ctx, a.db, vcfg, a.now, a.log); errors.Is(err, vault.ErrKeysBehind) {
		// A database restored from an older backup: Start replays the erasure ledger,
		// which needs no key, then refuses to serve until the keys are recovered.
		a.keysBehind, err = err, nil
	}
	if err != nil {
		return err
	}
	if a.vault.Created {
		a.log.Warn("made the key of a new deployment; copy it to every node and keep it safe: without it no member's data can be read", "file", cfg.MasterKeyFile)
	}
	if vcfg.Escrow == nil {
		a.log.Warn("no --escrow-recipient: epoch keys are not escrowed, so a backup cannot be restored once its epoch has passed")
	}
	return nil
}

// buildCapabilities builds the capabilities, each from its dependencies. Three pairs
// of them call each other: a verified address joins its subscription to the account
// (accounts to newsletter), and a mail to the unsubscribe address finds its sender's
// account (newsletter to accounts); a decision changes whom the newsletter may mail
// (consent to newsletter), which reads the ledger (newsletter to consent); a guardian's
// refusal erases the child (accounts to rights), and erasure marks the account (rights
// to accounts). The first of each pair is given a function that calls the second,
// which runs only once both are built; nothing is wired after construction.
func (a *App) buildCapabilities(ctx context.Context, key []byte, index *vault.Index, bulk mail.BulkSender, skipReads bool) error {
	cfg := a.config
	var err error
	a.accounts, err = account.New(ctx, a.db, a.outbox, a.audit, a.vault, index, account.Settings{
		BaseURL:         cfg.BaseURL,
		Argon2:          account.Argon2(cfg.Argon2),
		SessionTTL:      cfg.SessionTTL,
		StaffSessionTTL: cfg.StaffSessionTTL, StaffSessionIdle: cfg.StaffSessionIdle, ReauthWindow: cfg.ReauthWindow,
		Fields:       cfg.Fields,
		AgeOfConsent: cfg.AgeOfConsentFor,
	}, account.Hooks{
		// A verified address joins its subscription, if any, to the account: one
		// subject. It runs in the transaction that proves the address.
		Verified: func(ctx context.Context, tx *store.Tx, accountID, email string) error {
			return a.newsletter.LinkAccount(ctx, tx, accountID, email)
		},
		Erase: func(ctx context.Context, subjectID, source string) error {
			return a.rights.EraseNow(ctx, subjectID, source)
		},
		// The processors that hold a rectified field are told, with the change.
		Rectified: func(ctx context.Context, tx *store.Tx, accountID string, fields map[string]string, requestID string) error {
			return a.notices.Changed(ctx, tx, accountID, notices.Change{Event: notices.Rectification, Fields: fields, RequestID: requestID})
		},
		// A new member accepts the privacy policy in effect.
		Registered: func(ctx context.Context, tx *store.Tx, accountID string) error {
			return a.policy.AcceptTx(ctx, tx, accountID, policy.AcceptedAtRegistration)
		},
	}, a.now)
	if err != nil {
		return err
	}

	if a.blobs, err = openBlobs(ctx, cfg, true); err != nil {
		return err
	}
	a.files = files.New(a.db, a.blobs, a.vault, files.Limits{MaxFileSize: cfg.MaxFileSize, Quota: cfg.Quota, UploadLease: cfg.UploadLease},
		a.accounts.Active, a.now, a.log)

	if a.consent, err = a.openConsent(); err != nil {
		return err
	}
	a.staff = governance.NewStaff(a.db, a.audit, a.now)
	a.access = access.New(a.db, a.vault, a.audit, a.staff, a.accounts, access.Config{Approver: cfg.GrantApprover, SkipRecords: skipReads}, a.now)
	a.newsletter = newsletter.New(a.db, a.outbox, a.consent, bulk, newsletter.Config{Key: key, Index: index, Vault: a.vault, BaseURL: cfg.BaseURL,
		SiteName: cfg.SiteName, UnsubscribeDomain: cfg.UnsubscribeDomain, Accounts: a.accounts, Limits: a.buckets, TagSites: cfg.Analytics.Sites}, a.now, a.log)
	// The purposes file seeds the register of processors at first start; staff keep it
	// from then on.
	region := processors.Region{Name: cfg.Region, Countries: cfg.RegionCountries}
	if len(region.Countries) == 0 {
		region = processors.Region{Name: "EEA", Countries: config.EEA}
	}
	a.processors = processors.New(a.db, a.audit, a.consent.Register(), region, a.now)
	if err := a.processors.Seed(ctx, a.consent.Register()); err != nil {
		return err
	}
	a.notices = notices.New(a.db, a.vault, index, a.processors, a.jobs, a.audit, key, notices.Hooks{
		// A processor's acknowledgment of a change a privacy request made is an event of
		// the request.
		Acknowledged: func(ctx context.Context, tx *store.Tx, requestID, processor, event string) error {
			return a.requests.ProcessorAcknowledged(ctx, tx, requestID, processor, event)
		},
	}, a.now, a.log)

	if err := a.openPolicy(ctx); err != nil {
		return err
	}

	if a.registry, err = a.dataMap(index); err != nil {
		return err
	}
	// The erasure ledger is kept in the database and, one object per erasure, in the
	// files' blob store: apart from database backups (Start replays it).
	// Holds ask the ledger (holds to rights) whether a subject was erased; erasure asks
	// the holds what to keep (rights to holds).
	a.holds = holds.New(a.db, a.vault, a.audit, a.registry, a.accounts, func(ctx context.Context, id string) (time.Time, bool, error) {
		return a.rights.Erased(ctx, id)
	}, a.jobs, a.now)
	a.rights = rights.New(a.db, a.registry, a.accounts, a.holds, a.jobs, rights.Ledger{Key: key, Index: index, Blobs: a.blobs}, a.now, a.log)
	a.requests = requests.New(a.db, a.vault, a.outbox, a.audit, directory{a}, requests.Config{BaseURL: cfg.BaseURL,
		Authority: cfg.SupervisoryAuthority, Blobs: a.blobs, MaxDocument: cfg.MaxRequestDocument, DownloadTTL: cfg.RequestDownloadTTL},
		a.now, a.log)
	a.disclosures = disclosures.New(a.db, a.vault, a.audit, a.accounts, a.outbox, disclosures.Config{Blobs: a.blobs, BaseURL: cfg.BaseURL}, a.now, a.log)
	a.breaches = breaches.New(a.db, a.audit, a.accounts, a.consent, a.outbox, cfg.DPOContact, a.now)
	a.retention, err = retention.New(a.db, a.audit, a.retentionRules(), a.now, a.log)
	return err
}

// openConsent loads the purposes register and the receipts' signing key (made at first
// start) and builds the consent capability.
func (a *App) openConsent() (*consent.Service, error) {
	cfg := a.config
	reg, err := consent.LoadRegister(cfg.PurposesFile)
	if err != nil {
		return nil, err
	}
	signer, created, err := consent.LoadSigner(cfg.ReceiptKeyFile, cfg.BaseURL, true)
	if err != nil {
		return nil, err
	}
	if created {
		a.log.Warn("made a new key for signing consent receipts; back it up: receipts already given are checked against it", "file", cfg.ReceiptKeyFile)
	}
	// Each hook runs in the transaction of the change that causes it: what it derives
	// commits with the change, or not at all.
	return consent.New(a.db, reg, cfg.PolicyVersion, signer, a.vault, consent.Hooks{
		// Each decision records the version of the policy in effect (the configured
		// one until the first start has stored it).
		PolicyVersion: func(ctx context.Context, q store.Querier) (string, error) {
			v, err := a.policy.VersionIn(ctx, q)
			if apperr.KindOf(err) == apperr.NotFound {
				return cfg.PolicyVersion, nil
			}
			return v, err
		},
		// Whom the newsletter may mail follows every decision.
		Changed: func(ctx context.Context, tx *store.Tx, subjectID string) error {
			return a.newsletter.Refresh(ctx, tx, subjectID)
		},
		// A member who opts in to marketing mail joins the mailing list.
		Granted: func(ctx context.Context, tx *store.Tx, subjectID string, p consent.Purpose) error {
			if !p.Marketing || p.Sharing {
				return nil
			}
			prof, err := a.accounts.Profile(ctx, subjectID)
			if apperr.KindOf(err) == apperr.NotFound {
				return nil // not an account: a subscriber, already on the list
			}
			if err != nil {
				return err
			}
			return a.newsletter.EnsureMember(ctx, tx, subjectID, prof.Email, prof.Name)
		},
		// The processors that received the subject's data are told of a restriction
		// and of its end.
		Restricted: func(ctx context.Context, tx *store.Tx, subjectID string, on bool, requestID string) error {
			event := notices.RestrictionLifted
			if on {
				event = notices.Restriction
			}
			return a.notices.Changed(ctx, tx, subjectID, notices.Change{Event: event, RequestID: requestID})
		},
	}, a.now), nil
}

// openPolicy builds the policy register and, at first start, stores its first version:
// the configured label and text.
func (a *App) openPolicy(ctx context.Context) error {
	cfg := a.config
	a.policy = policy.New(policy.Config{DB: a.db, Consent: a.consent, Outbox: a.outbox, Audit: a.audit, Jobs: a.jobs, BaseURL: cfg.BaseURL, Now: a.now,
		Members: func(ctx context.Context, after string, limit int) ([]policy.Member, error) {
			list, err := a.accounts.Members(ctx, after, limit)
			out := make([]policy.Member, len(list))
			for i, p := range list {
				out[i] = policy.Member{ID: p.ID, Email: p.Email, Name: p.Name}
			}
			return out, err
		},
		// Whom the newsletter may mail follows the consents asked again.
		AskedAgain: func(ctx context.Context, tx *store.Tx, purposes []string) error {
			return a.newsletter.RefreshPurposes(ctx, tx, purposes...)
		},
	})
	var body string
	if cfg.PolicyFile != "" {
		b, err := os.ReadFile(cfg.PolicyFile)
		if err != nil {
			return fmt.Errorf("--policy-file (STEWARD_POLICY_FILE): %w", err)
		}
		body = string(b)
	}
	seeded, err := a.policy.Seed(ctx, cfg.PolicyVersion, body)
	if seeded {
		a.log.Info("stored the first version of the privacy policy; publish later ones at /staff/policy", "version", cfg.PolicyVersion)
	}
	return err
}

// dataMap registers every holder of personal data and declares the rest.
func (a *App) dataMap(index *vault.Index) (*datamap.Registry, error) {
	reg := datamap.NewRegistry()
	reg.Register(account.Holder{})
	reg.Register(governance.AuditHolder{Index: index})
	outboxDir := ""
	if a.config.MailMode == "file" {
		outboxDir = filepath.Join(a.config.DataDir, "outbox")
	}
	reg.Register(mail.Holder{Dir: outboxDir, Index: index})
	reg.Register(rights.Holder{})
	reg.Register(requests.Holder{})
	reg.Register(consent.Holder{S: a.consent})
	reg.Register(newsletter.Holder{S: a.newsletter})
	reg.Register(governance.StaffHolder{})
	reg.Register(files.Holder{S: a.files})
	reg.Register(vault.Holder{})
	reg.Register(notices.Holder{S: a.notices})
	reg.Register(holds.Holder{})
	reg.Register(policy.Holder{})
	reg.Register(disclosures.Holder{})
	reg.Register(breaches.Holder{})
	reg.Register(processors.Holder{S: a.processors})
	reg.Register(access.Holder{})
	// Erasure: the processors' notices are recorded first, while the member's address
	// and ledger still tell what to send and to whom; then the data key goes, so every
	// copy of what it sealed (files, fields, in dead rows and backups too) is unreadable
	// at once; then what references the member; the account last, so the member stays
	// unable to log in throughout. While a legal hold is in force, what it keeps, the
	// data key and the holds are passed over, and erased in this order when it ends.
	if err := reg.SetErasureOrder("processor_notices", "vault", "files", "staff", "staff_access", "newsletter", "consent", "policy", "erasure", "requests", "disclosures", "breaches", "mail_outbox",
		"audit_log", "legal_holds", processors.Name, "account"); err != nil {
		return nil, err
	}
	reg.DeclareNonPersonal("goose_db_version", "migration bookkeeping")
	reg.DeclareNonPersonal("policy_versions", "the privacy policy's versions: their text, dates and summaries (who published one is in the audit log)")
	reg.DeclareNonPersonal("consent_reconfirm", "the purposes a material change of the policy asked again, and since when")
	reg.DeclareNonPersonal("change_counters", "how many changes of a kind were made, by kind")
	reg.DeclareNonPersonal("rate_limits", "rate limit buckets: keyed hashes of IPs, addresses and account ids (never the values), each deleted once full again (hours at most)")
	reg.DeclareNonPersonal("retention_runs", "what each retention rule removed at each run: counts and times, never whom")
	reg.DeclareNonPersonal("river_*", "job queue: job arguments carry only random ids of outbox rows and requests")
	return reg, nil
}

// registerJobs gives each kind of job its worker, and schedules the periodic ones.
func (a *App) registerJobs() {
	jobs.Register(a.jobs, func(ctx context.Context, args rights.ErasureArgs) error { return a.rights.Run(ctx, args.RequestID) })
	jobs.Register(a.jobs, func(ctx context.Context, _ rights.PurgeArgs) error { return a.rights.ResumeStale(ctx) })
	a.jobs.Every(time.Hour, rights.PurgeArgs{})
	jobs.Register(a.jobs, func(ctx context.Context, _ retention.Args) error {
		_, err := a.retention.Run(ctx, retention.Actor{Source: retention.Scheduled})
		return err
	})
	a.jobs.Every(retention.Every, retention.Args{})
	jobs.Register(a.jobs, func(ctx context.Context, args newsletter.SendArgs) error {
		err := a.newsletter.Send(ctx, args.CampaignID)
		if errors.Is(err, newsletter.ErrMoreToSend) {
			return jobs.RunAgain()
		}
		return err
	})
	jobs.Register(a.jobs, func(ctx context.Context, args notices.Args) error { return a.notices.Deliver(ctx, args.ID) })
	jobs.Register(a.jobs, func(ctx context.Context, args notices.AckArgs) error { return a.notices.RecordAck(ctx, args.ID) })
	jobs.Register(a.jobs, func(ctx context.Context, _ files.ReconcileArgs) error {
		rep, err := a.files.Reconcile(ctx, false)
		a.logReconcile(rep)
		return err
	})
	a.jobs.Every(15*time.Minute, files.ReconcileArgs{})
	jobs.Register(a.jobs, func(ctx context.Context, _ requests.WarnArgs) error {
		_, _, err := a.requests.WarnDue(ctx)
		return err
	})
	a.jobs.Every(24*time.Hour, requests.WarnArgs{})
	jobs.Register(a.jobs, func(ctx context.Context, _ requests.TidyArgs) error {
		_, _, err := a.requests.Tidy(ctx)
		return err
	})
	a.jobs.Every(time.Hour, requests.TidyArgs{})
	jobs.Register(a.jobs, func(ctx context.Context, _ holds.EndedArgs) error { return a.rights.HoldsEnded(ctx) })
	a.jobs.Every(time.Hour, holds.EndedArgs{})
	jobs.Register(a.jobs, func(ctx context.Context, _ governance.ChainArgs) error {
		_, err := a.audit.Chain(ctx, a.db)
		return err
	})
	a.jobs.Every(time.Minute, governance.ChainArgs{})
	jobs.Register(a.jobs, func(ctx context.Context, args governance.VerifyArgs) error {
		rep, err := a.audit.VerifyAndKeep(ctx, a.db, cmp.Or(args.Source, governance.VerifySchedule))
		if err == nil && !rep.Intact() {
			a.log.ErrorContext(ctx, "audit: the chain does not verify", "broken_at", rep.BrokenAt, "problem", rep.Problem)
		}
		return err
	})
	a.jobs.Every(time.Hour, governance.VerifyArgs{Source: governance.VerifySchedule})
	jobs.Register(a.jobs, func(ctx context.Context, _ policy.ApplyArgs) error {
		_, err := a.policy.ApplyDue(ctx)
		return err
	})
	a.jobs.Every(time.Minute, policy.ApplyArgs{})
	jobs.Register(a.jobs, func(ctx context.Context, args policy.MailArgs) error {
		more, err := a.policy.MailBatch(ctx, args.Version)
		if err == nil && more {
			return jobs.RunAgain()
		}
		return err
	})
	if a.analytics != nil {
		jobs.Register(a.jobs, func(ctx context.Context, _ analytics.MaintainArgs) error { return a.analytics.Maintain(ctx) })
		a.jobs.Every(time.Hour, analytics.MaintainArgs{})
	}
}

// routes is the whole site: the API and the pages, on the services they share.
// Its rate limits are kept in the database, keyed by blind indexes: every node spends
// from the same buckets.
func (a *App) routes(index *vault.Index) (http.Handler, error) {
	cfg := a.config
	limits := server.NewLimits(a.buckets, index, !cfg.RateLimits, cfg.CookieSecure, a.now)
	a.limits = limits
	shared := server.Services{Accounts: a.accounts, Rights: a.rights, Files: a.files, Consent: a.consent, Newsletter: a.newsletter,
		Notices: a.notices, Staff: a.staff, Jobs: a.jobs, Limits: limits, Log: a.log, TrustProxy: cfg.TrustProxy, CookieSecure: cfg.CookieSecure, Now: a.now,
		Requests: a.requests, Holds: a.holds, Retention: a.retention, Policy: a.policy,
		Disclosures: a.disclosures, Breaches: a.breaches, Processors: a.processors, Records: a.records(), Access: a.access,
		Analytics: a.analytics, BeaconLimit: beaconLimit(cfg, a.now), Audit: a.audit, DB: a.db, Contacts: server.Contacts{DPO: cfg.DPOContact, EURepresentative: cfg.EURepresentative, Authority: cfg.SupervisoryAuthority}}
	mux := server.NewRoutes()
	(&api.API{Services: shared}).Register(mux)
	pages, err := web.New(web.Options{Services: shared, SiteName: cfg.SiteName, Fields: cfg.Fields,
		CookieSecure: cfg.CookieSecure, DefaultAgeOfConsent: cfg.DefaultAgeOfConsent, Dev: cfg.Dev})
	if err != nil {
		return nil, err
	}
	pages.Register(mux)
	a.ready = &readiness{checks: a.readinessChecks(), log: a.log}
	a.registerHealth(mux)
	a.patterns = mux.Patterns()
	// Counted outside the middleware, which answers a panic with 500 first.
	return a.metrics.Instrument(server.RequestLog(server.Middleware(mux, a.log, cfg.CookieSecure), a.analytics, cfg.TrustProxy, a.now)), nil
}

// beaconLimit is the limit of page beacons per address, in this node's memory (a row
// per beacon would cost more than the beacon), or nil without --rate-limits.
func beaconLimit(cfg *config.Config, now func() time.Time) *ratelimit.Local {
	if !cfg.RateLimits {
		return nil
	}
	per := cfg.Analytics.PerMinute
	return ratelimit.NewLocal(ratelimit.Rule{Burst: max(per/10, 10), Every: time.Minute / time.Duration(per)}, 1<<17, now)
}

// startInbound starts the SMTP listener for the unsubscribe address: a mail to it opts
// its From: address out of every marketing purpose once authenticated or confirmed
// (newsletter.UnsubscribeByMail).
func (a *App) startInbound() error {
	// Every node spends from the same bucket per client, kept in the database under a
	// blind index of the client's IP (or /64).
	limit := func(ctx context.Context, client string) (bool, error) {
		return a.limits.InboundMail(ctx, client, inbound.DefaultRatePerMinute)
	}
	srv, err := inbound.New(inbound.Config{Addr: a.config.InboundAddr, Domain: a.config.UnsubscribeDomain, Log: a.log, Resolver: a.resolver,
		Limit: limit},
		func(ctx context.Context, r inbound.Request) error {
			return a.newsletter.UnsubscribeByMail(ctx, newsletter.MailedUnsubscribe{Sender: r.Sender, From: r.From, Token: r.Token,
				RemoteIP: r.RemoteIP, Authenticated: r.Authenticated})
		})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", a.config.InboundAddr)
	if err != nil {
		return fmt.Errorf("app: inbound smtp on %s (--inbound-smtp-addr): %w", a.config.InboundAddr, err)
	}
	a.inbound = srv
	go func() {
		if err := srv.Serve(ln); err != nil {
			a.log.Error("inbound smtp stopped", "err", err)
		}
	}()
	return nil
}

// InboundAddr is where the inbound SMTP listener listens, or nil.
func (a *App) InboundAddr() net.Addr {
	if a.inbound == nil {
		return nil
	}
	return a.inbound.Addr()
}

// openBlobs opens the configured object store for files; clean removes what Puts cut
// short by a crash left on disk (only where no server can be using the store).
func openBlobs(ctx context.Context, cfg *config.Config, clean bool) (blob.Store, error) {
	if cfg.Files == "s3" {
		return blob.NewS3(ctx, blob.S3Config{Endpoint: cfg.S3.Endpoint, Region: cfg.S3.Region, Bucket: cfg.S3.Bucket,
			AccessKey: cfg.S3.AccessKey, SecretKey: cfg.S3.SecretKey, UseTLS: cfg.S3.UseTLS, Prefix: cfg.S3.Prefix})
	}
	d, err := blob.NewDisk(cfg.FilesDir)
	if err != nil {
		return nil, err
	}
	if !clean {
		return d, nil
	}
	if err := d.CleanTemp(); err != nil {
		return nil, err
	}
	return d, nil
}

func (a *App) logReconcile(rep files.Report) {
	if rep.OrphanObjects+rep.DeadUploads+rep.FinishedDeletes+rep.LostObjects > 0 {
		a.log.Warn("files reconciled", "objects", rep.Objects, "orphans_deleted", rep.OrphanObjects,
			"dead_uploads_removed", rep.DeadUploads, "deletions_finished", rep.FinishedDeletes, "lost_objects", rep.LostObjects)
	}
}

// LedgerKey reads the erasure ledger's key, which must exist: backups are tied to it,
// and a restore must not make a new one.
func LedgerKey(path string) ([]byte, error) {
	key, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("app: no erasure ledger key at %s (--ledger-key-file): put back the deployment's key first", path)
	}
	if err != nil {
		return nil, fmt.Errorf("app: ledger key: %w", err)
	}
	if len(key) < 32 {
		return nil, fmt.Errorf("app: ledger key %s: want at least 32 bytes, got %d", path, len(key))
	}
	return key, nil
}

// ledgerKey reads the erasure ledger's key, making one at first start.
func ledgerKey(path string, log *slog.Logger) ([]byte, error) {
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		return LedgerKey(path)
	}
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("app: ledger key: %w", err)
	}
	if err := os.WriteFile(path, key, 0o600); err != nil {
		return nil, fmt.Errorf("app: ledger key: %w", err)
	}
	log.Warn("made a new erasure ledger key; keep a copy apart from database backups: backups and the erasure ledger's objects are tied to it", "file", path)
	return key, nil
}

// AuditKeyFile is where the audit log's key is kept: in the data folder.
func AuditKeyFile(cfg *config.Config) string { return filepath.Join(cfg.DataDir, "audit.key") }

// graceOf turns --key-grace into vault.Config.Grace, whose zero means the default.
func graceOf(d time.Duration) time.Duration {
	if d == 0 {
		return -1
	}
	return d
}

// KeyGrace is the grace of key rotations the configuration sets, for vault.Config.
func KeyGrace(cfg *config.Config) time.Duration { return graceOf(cfg.KeyGrace) }

// Handler is the whole site.
func (a *App) Handler() http.Handler { return a.handler }

// Start starts the background jobs, and resumes at once any erasure that a crash or
// a stop left unfinished (its job would otherwise wait for the queue's stuck-job rescue).
// Erasure steps are idempotent, so a run that overlaps the job's own is harmless.
//
// First it takes the serving lock (no restore while it runs; on SQLite, no second
// server) and replays the erasure ledger: whoever the ledger objects say was erased
// and the database still holds (it was restored from an older backup, by hand or by
// steward restore) is erased again before anything else runs or any request is taken.
// A ledger object that does not verify stops the start.
func (a *App) Start(ctx context.Context) (err error) {
	if a.serving, err = backup.HoldServing(ctx, a.db); err != nil {
		return err
	}
	defer func() {
		if err != nil {
			a.releaseServing()
		}
	}()
	if _, err := a.rights.Replay(ctx, false); err != nil {
		return err
	}
	if a.keysBehind != nil {
		return a.keysBehind
	}
	if a.analyticsDown != nil {
		return fmt.Errorf("app: the analytics store (--analytics-database): %w", a.analyticsDown)
	}
	if err := a.sealLegacy(ctx); err != nil {
		return err
	}
	// The audit log's entries written before this start join the chain (then every
	// minute, by its job). A chain that cannot go on (its head was tampered with) is
	// reported, not a reason to stop serving: entries are still recorded, unchained,
	// and steward audit verify says where it broke.
	if _, err := a.audit.Chain(ctx, a.db); err != nil {
		a.log.Error("the audit log could not be chained; run steward audit verify", "err", err)
	}
	// Purposes of the register that name a version of the policy already applied are
	// asked again (a register changed after the version took effect).
	if err := a.policy.SyncRegister(ctx); err != nil {
		return err
	}
	// The table of whom the newsletter may mail, built once after an upgrade.
	if err := a.newsletter.RefreshIfEmpty(ctx); err != nil {
		return err
	}
	// Before serving: uploads and deletions a crash cut short are mended. On SQLite this
	// process is the only node, so every upload still marked in progress is dead.
	rep, err := a.files.Reconcile(ctx, a.db.Dialect == store.SQLite)
	if err != nil {
		return err
	}
	a.logReconcile(rep)
	if err := a.jobs.Start(ctx); err != nil {
		return err
	}
	a.analytics.Start()
	// The outbox's dispatcher: until Close. A mail queued on this node wakes it at
	// once; it looks for the rest (queued by another node, or left by one that died)
	// every 20 job polls: every 4 seconds by default.
	dctx, stop := context.WithCancel(context.WithoutCancel(ctx))
	a.stop = stop
	a.resuming.Add(1)
	go func() {
		defer a.resuming.Done()
		a.outbox.Dispatch(dctx, 20*a.poll)
	}()
	// Key epochs: this node follows (or begins) every rotation of the key-encryption key.
	a.resuming.Add(1)
	go func() {
		defer a.resuming.Done()
		a.vault.Run(dctx)
	}()
	if a.config.InboundAddr != "" {
		if err := a.startInbound(); err != nil {
			return err
		}
	}
	pending, err := a.rights.Pending(ctx)
	if err != nil {
		return err
	}
	if len(pending) > 0 {
		a.resuming.Add(1)
		go func() {
			defer a.resuming.Done()
			for _, id := range pending {
				if err := a.rights.Run(ctx, id); err != nil {
					a.log.Warn("resuming erasure", "request", id, "err", err)
				}
			}
		}()
	}
	// The start's writes (migrations, sealing, the ledger's replay) fill the SQLite
	// writers' page caches with pages a node serving nothing yet does not need: given
	// back (issue 11's idle memory). Failing to is only memory kept.
	if a.db.Dialect == store.SQLite {
		_, _ = a.db.Writer().ExecContext(ctx, `PRAGMA shrink_memory`)
	}
	if adb := a.analytics.DB(); adb.Dialect == store.SQLite {
		_, _ = adb.Writer().ExecContext(ctx, `PRAGMA shrink_memory`)
	}
	return nil
}

// sealLegacy seals what an earlier release kept in plain text, before anything else
// runs: the accounts first, then the subscribers (a member's subscription is sealed
// under the account's key), the audit log (its accounts have their keys now), the
// consent ledger's evidence, and the files' names and access log.
func (a *App) sealLegacy(ctx context.Context) error {
	for _, step := range []struct {
		what, unit string
		seal       func(context.Context) (int, error)
	}{
		{"accounts", "accounts", a.accounts.SealLegacy},
		{"subscribers", "subscribers", a.newsletter.SealLegacy},
		{"audit log entries", "entries", func(ctx context.Context) (int, error) { return a.audit.SealLegacy(ctx, a.db) }},
		{"consent evidence", "events", a.consent.SealLegacy},
		{"file names and access addresses", "rows", a.files.SealLegacy},
	} {
		n, err := step.seal(ctx)
		if err != nil {
			return err
		}
		if n > 0 {
			a.log.Warn("sealed "+step.what+" kept in plain text by an earlier release; their old bytes remain in the database's files until overwritten",
				step.unit, n)
		}
	}
	n, err := a.accounts.IndexGuardians(ctx)
	if n > 0 {
		a.log.Info("indexed the guardians' addresses of children registered before the index", "accounts", n)
	}
	return err
}

// Serve answers HTTP on ln until ctx ends, then shuts down gracefully.
func (a *App) Serve(ctx context.Context, ln net.Listener) error {
	return serveUntil(ctx, ln, &http.Server{
		Handler:           a.handler,
		ReadHeaderTimeout: server.ReadHeaderTimeout,
		IdleTimeout:       server.IdleTimeout,
		ErrorLog:          slog.NewLogLogger(a.log.Handler(), slog.LevelWarn),
	}, 10*time.Second)
}

// serveUntil runs srv on ln until it fails or ctx ends, then shuts it down, giving
// requests in flight up to grace to finish.
func serveUntil(ctx context.Context, ln net.Listener, srv *http.Server, grace time.Duration) error {
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	return srv.Shutdown(sctx)
}

// Close stops the jobs and closes the database.
func (a *App) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := a.jobs.Stop(ctx)
	if a.stop != nil {
		a.stop()
	}
	if a.inbound != nil {
		err = errors.Join(err, a.inbound.Close())
	}
	a.resuming.Wait()
	// Every beacon and log line accepted is written before the store closes (the
	// server has stopped taking requests by now).
	if a.analytics != nil {
		err = errors.Join(err, a.analytics.Close(ctx))
	}
	a.releaseServing()
	return errors.Join(err, a.db.Close())
}

func (a *App) releaseServing() {
	if err := a.serving.Release(); err != nil {
		// Safe to go on: the lock's session is closed with it, which releases it too.
		a.log.Warn("releasing the serving lock", "err", err)
	}
	a.serving = nil
}

// oneByOne makes any sender a bulk sender (a test's).
type oneByOne struct{ mail.Sender }

func (o oneByOne) SendAll(ctx context.Context, msgs []mail.Message) error {
	for _, m := range msgs {
		if err := o.Send(ctx, m); err != nil {
			return err
		}
	}
	return nil
}
