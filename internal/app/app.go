// Package app is the one place that knows every part of Steward: it opens the store,
// builds the services, the job queue and the HTTP handler, and runs and closes them.
package app

import (
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

	"github.com/riverqueue/river"

	"steward/internal/account"
	"steward/internal/api"
	"steward/internal/apperr"
	"steward/internal/backup"
	"steward/internal/blob"
	"steward/internal/config"
	"steward/internal/consent"
	"steward/internal/datamap"
	"steward/internal/files"
	"steward/internal/governance"
	"steward/internal/inbound"
	"steward/internal/jobs"
	"steward/internal/mail"
	"steward/internal/newsletter"
	"steward/internal/rights"
	"steward/internal/server"
	"steward/internal/store"
	"steward/internal/store/sqlcheck"
	"steward/internal/vault"
	"steward/internal/web"
)

// App is a built Steward.
type App struct {
	Config     *config.Config
	Log        *slog.Logger
	DB         *store.DB
	Registry   *datamap.Registry
	Jobs       *jobs.Queue
	Outbox     *mail.Outbox
	Audit      *governance.Audit
	Accounts   *account.Service
	Rights     *rights.Service
	Vault      *vault.Vault
	Blobs      blob.Store
	Files      *files.Service
	Consent    *consent.Service
	Newsletter *newsletter.Service
	Staff      *governance.Staff
	Limits     *server.Limits
	handler    http.Handler
	inbound    *inbound.Server
	poll       time.Duration
	stop       context.CancelFunc
	now        func() time.Time
	resuming   sync.WaitGroup
	keysBehind error        // the database is at an older key epoch than this node (restored)
	serving    *backup.Lock // held from Start to Close: no restore meanwhile
}

// Option changes how the app is built (tests).
type Option func(*options)

type options struct {
	now    func() time.Time
	poll   time.Duration
	sender mail.Sender
	// keyGrace is vault.Config.Grace.
	keyGrace time.Duration
}

// WithClock sets the clock.
func WithClock(now func() time.Time) Option { return func(o *options) { o.now = now } }

// WithKeyGrace sets how long a key rotation waits for other nodes before it ends
// (negative: not at all; a single-node test).
func WithKeyGrace(d time.Duration) Option { return func(o *options) { o.keyGrace = d } }

// WithPoll sets how often idle job workers look for work.
func WithPoll(d time.Duration) Option { return func(o *options) { o.poll = d } }

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
	a := &App{Config: cfg, Log: log, DB: db, now: o.now}
	if err := a.build(ctx, o); err != nil {
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

func (a *App) build(ctx context.Context, o options) error {
	cfg := a.Config
	if err := Migrate(ctx, a.DB); err != nil {
		return err
	}
	// A statement that does not prepare (a typo, a column a migration dropped) fails
	// the start, not a member's request (internal/store/sqlcheck).
	checkStart := time.Now()
	n, err := sqlcheck.Check(ctx, a.DB)
	if err != nil {
		return err
	}
	a.Log.Debug("app: sql statements prepared", "statements", n, "took", time.Since(checkStart))
	key, err := ledgerKey(cfg.LedgerKeyFile, a.Log)
	if err != nil {
		return err
	}
	index := vault.NewIndex(key)
	sender := o.sender
	if sender == nil {
		if cfg.MailMode == "smtp" {
			if sender, err = mail.NewSMTPSender(cfg.SMTPAddr, cfg.SMTPUser, cfg.SMTPPassword, cfg.SMTPTLS, cfg.MailFrom); err != nil {
				return err
			}
		} else {
			sender = mail.FileSender{Dir: filepath.Join(cfg.DataDir, "outbox"), From: cfg.MailFrom}
		}
	}
	a.Jobs = jobs.New(a.DB, a.Log, cfg.JobWorkers, o.poll)
	a.poll = o.poll
	bulk, ok := sender.(mail.BulkSender)
	if !ok {
		bulk = oneByOne{sender}
	}
	vcfg := vault.Config{KeyFile: cfg.MasterKeyFile, Epoch: cfg.KeyEpoch, Retention: cfg.BackupRetention, Create: true, Grace: o.keyGrace}
	if o.keyGrace == 0 {
		vcfg.Grace = graceOf(cfg.KeyGrace)
	}
	if cfg.EscrowRecipients != "" {
		if vcfg.Escrow, err = vault.ParseRecipients(cfg.EscrowRecipients); err != nil {
			return fmt.Errorf("--escrow-recipient (STEWARD_ESCROW_RECIPIENT): %w", err)
		}
	}
	if a.Vault, err = vault.Open(ctx, a.DB, vcfg, a.now, a.Log); errors.Is(err, vault.ErrKeysBehind) {
		// A database restored from an older backup: Start replays the erasure ledger,
		// which needs no key, then refuses to serve until the keys are recovered.
		a.keysBehind, err = err, nil
	}
	if err != nil {
		return err
	}
	if a.Vault.Created {
		a.Log.Warn("made the key of a new deployment; copy it to every node and keep it safe: without it no member's data can be read", "file", cfg.MasterKeyFile)
	}
	if vcfg.Escrow == nil {
		a.Log.Warn("no --escrow-recipient: epoch keys are not escrowed, so a backup cannot be restored once its epoch has passed")
	}
	// Queued mail and the audit log are sealed under their subjects' data keys: both
	// come after the vault.
	if a.Outbox, err = mail.NewOutbox(ctx, a.DB, a.Vault, bulk, cfg.SiteName, a.now, a.Log); err != nil {
		return err
	}
	a.Audit = governance.NewAudit(a.Vault, index, a.now)
	a.Accounts, err = account.New(ctx, a.DB, a.Outbox, a.Audit, a.Vault, index, account.Settings{
		BaseURL:      cfg.BaseURL,
		Argon2:       account.Argon2(cfg.Argon2),
		SessionTTL:   cfg.SessionTTL,
		Fields:       cfg.Fields,
		AgeOfConsent: cfg.AgeOfConsentFor,
	}, a.now)
	if err != nil {
		return err
	}

	if a.Blobs, err = openBlobs(ctx, cfg, true); err != nil {
		return err
	}
	a.Files = files.New(a.DB, a.Blobs, a.Vault, files.Limits{MaxFileSize: cfg.MaxFileSize, Quota: cfg.Quota, UploadLease: cfg.UploadLease}, a.now, a.Log)
	a.Files.SetActiveCheck(a.Accounts.Active)

	reg, err := consent.LoadRegister(cfg.PurposesFile)
	if err != nil {
		return err
	}
	signer, created, err := consent.LoadSigner(cfg.ReceiptKeyFile, cfg.BaseURL, true)
	if err != nil {
		return err
	}
	if created {
		a.Log.Warn("made a new key for signing consent receipts; back it up: receipts already given are checked against it", "file", cfg.ReceiptKeyFile)
	}
	a.Consent = consent.New(a.DB, reg, cfg.PolicyVersion, signer, a.Vault, a.now)
	a.Staff = governance.NewStaff(a.DB, a.now)
	a.Newsletter = newsletter.New(a.DB, a.Outbox, a.Consent, bulk, newsletter.Config{Key: key, Index: index, Vault: a.Vault, BaseURL: cfg.BaseURL,
		UnsubscribeDomain: cfg.UnsubscribeDomain}, a.now, a.Log)
	// Each hook runs in the transaction of the change that causes it: what it derives
	// commits with the change, or not at all.
	// A verified address joins its subscription, if any, to the account: one subject.
	a.Accounts.SetOnVerified(a.Newsletter.LinkAccount)
	// Whom the newsletter may mail follows every decision.
	a.Consent.SetOnChanged(func(ctx context.Context, tx *store.Tx, subjectID string) error {
		return a.Newsletter.Refresh(ctx, tx, subjectID)
	})
	// A member who opts in to marketing mail joins the mailing list.
	a.Consent.SetOnGranted(func(ctx context.Context, tx *store.Tx, subjectID string, p consent.Purpose) error {
		if !p.Marketing || p.Sharing {
			return nil
		}
		prof, err := a.Accounts.Profile(ctx, subjectID)
		if apperr.KindOf(err) == apperr.NotFound {
			return nil // not an account: a subscriber, already on the list
		}
		if err != nil {
			return err
		}
		return a.Newsletter.EnsureMember(ctx, tx, subjectID, prof.Email, prof.Name)
	})

	// The data map. Erasure runs holders in reverse order: the vault shreds the data key
	// before anything else, so every copy of the member's files is unreadable at once,
	// and the account goes last.
	a.Registry = datamap.NewRegistry()
	a.Registry.Register(account.Holder{})
	a.Registry.Register(governance.AuditHolder{})
	outboxDir := ""
	if cfg.MailMode == "file" {
		outboxDir = filepath.Join(cfg.DataDir, "outbox")
	}
	a.Registry.Register(mail.Holder{Dir: outboxDir, Index: index})
	a.Registry.Register(rights.Holder{})
	a.Registry.Register(consent.Holder{S: a.Consent})
	a.Registry.Register(newsletter.Holder{S: a.Newsletter})
	a.Registry.Register(governance.StaffHolder{})
	a.Registry.Register(files.Holder{S: a.Files})
	a.Registry.Register(vault.Holder{})
	// Erasure: the data key goes first, so every copy of what it sealed (files, fields,
	// in dead rows and backups too) is unreadable at once; then what references the
	// member; the account last, so the member stays unable to log in throughout.
	if err := a.Registry.SetErasureOrder("vault", "files", "staff", "newsletter", "consent", "erasure", "mail_outbox",
		"audit_log", "account"); err != nil {
		return err
	}
	a.Registry.DeclareNonPersonal("goose_db_version", "migration bookkeeping")
	a.Registry.DeclareNonPersonal("change_counters", "how many changes of a kind were made, by kind")
	a.Registry.DeclareNonPersonal("river_*", "job queue: job arguments carry only random ids of outbox rows and requests")

	// The erasure ledger is kept in the database and, one object per erasure, in the
	// files' blob store: apart from database backups (Start replays it).
	a.Rights = rights.New(a.DB, a.Registry, a.Accounts, a.Jobs, rights.Ledger{Key: key, Index: index, Blobs: a.Blobs}, a.now, a.Log)
	a.Accounts.SetEraser(a.Rights)

	jobs.Register(a.Jobs, func(ctx context.Context, args rights.ErasureArgs) error { return a.Rights.Run(ctx, args.RequestID) })
	jobs.Register(a.Jobs, func(ctx context.Context, _ rights.PurgeArgs) error {
		return a.Rights.PurgeAbandoned(ctx, a.Accounts.Abandoned)
	})
	a.Jobs.Every(time.Hour, rights.PurgeArgs{})
	jobs.Register(a.Jobs, func(ctx context.Context, args newsletter.SendArgs) error {
		err := a.Newsletter.Send(ctx, args.CampaignID)
		if errors.Is(err, newsletter.ErrMoreToSend) {
			return river.JobSnooze(0) // runs again at once; a snooze costs no attempt
		}
		return err
	})
	jobs.Register(a.Jobs, func(ctx context.Context, _ files.ReconcileArgs) error {
		rep, err := a.Files.Reconcile(ctx, false)
		a.logReconcile(rep)
		return err
	})
	a.Jobs.Every(15*time.Minute, files.ReconcileArgs{})
	if err := a.Jobs.Open(true); err != nil {
		return err
	}

	a.Limits = server.NewLimits(!cfg.RateLimits, a.now)
	mux := http.NewServeMux()
	(&api.API{Accounts: a.Accounts, Rights: a.Rights, Files: a.Files, Consent: a.Consent, Newsletter: a.Newsletter, Staff: a.Staff, Jobs: a.Jobs, Limits: a.Limits, Log: a.Log, TrustProxy: cfg.TrustProxy, Now: a.now}).Register(mux)
	pages, err := web.New(web.Options{
		Accounts: a.Accounts, Rights: a.Rights, Files: a.Files, Consent: a.Consent, Newsletter: a.Newsletter, Jobs: a.Jobs, Staff: a.Staff, Limits: a.Limits, Log: a.Log, SiteName: cfg.SiteName, Fields: cfg.Fields,
		TrustProxy: cfg.TrustProxy, CookieSecure: cfg.CookieSecure, Now: a.now, DefaultAgeOfConsent: cfg.DefaultAgeOfConsent,
	})
	if err != nil {
		return err
	}
	pages.Register(mux)
	a.handler = server.Middleware(mux, a.Log, cfg.CookieSecure)
	return nil
}

// startInbound starts the SMTP listener for the unsubscribe address: a mail to it opts
// the sender out of every marketing purpose.
func (a *App) startInbound() error {
	srv, err := inbound.New(inbound.Config{Addr: a.Config.InboundAddr, Domain: a.Config.UnsubscribeDomain, Log: a.Log},
		func(ctx context.Context, r inbound.Request) error { return a.UnsubscribeByMail(ctx, r) })
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", a.Config.InboundAddr)
	if err != nil {
		return fmt.Errorf("app: inbound smtp on %s (--inbound-smtp-addr): %w", a.Config.InboundAddr, err)
	}
	a.inbound = srv
	go func() {
		if err := srv.Serve(ln); err != nil {
			a.Log.Error("inbound smtp stopped", "err", err)
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

// UnsubscribeByMail honours a mail to the unsubscribe address. With a token (from a
// campaign's List-Unsubscribe) it withdraws that campaign's purpose; without, every
// marketing consent of the member or subscriber whose address sent the mail (envelope
// sender and From: header). An unknown address or a bad token is no error: the sender
// must not retry. A failure to look the address up is: the sender tries again later.
func (a *App) UnsubscribeByMail(ctx context.Context, r inbound.Request) error {
	if r.Token != "" {
		_, err := a.Newsletter.Unsubscribe(ctx, r.Token, consent.SourceInboundEmail, map[string]string{"sender": r.Sender, "ip": r.RemoteIP})
		if apperr.KindOf(err) != "" {
			return nil // a forged or expired token: nothing to retry
		}
		return err
	}
	decisions := map[string]consent.Decision{}
	for _, p := range a.Consent.Register().Purposes {
		if p.Marketing {
			decisions[p.Key] = consent.Withdrawn
		}
	}
	seen := map[string]bool{}
	for _, addr := range []string{r.Sender, r.From} {
		if addr == "" || seen[addr] {
			continue
		}
		seen[addr] = true
		subject, err := a.mailSubject(ctx, addr)
		if err != nil {
			return err // the sender retries later
		}
		if subject == "" {
			continue // nobody we know
		}
		if err := a.Consent.Apply(ctx, subject, decisions, nil, consent.SourceInboundEmail,
			map[string]string{"sender": addr, "ip": r.RemoteIP}); err != nil {
			return err
		}
		for p := range decisions {
			if err := a.DB.InTx(ctx, func(tx *store.Tx) error {
				return a.Newsletter.Suppress(ctx, tx, addr, p, "unsubscribed by mail")
			}); err != nil {
				return err
			}
		}
	}
	return nil
}

// mailSubject is the member, or else the subscriber, whose address addr is; "" when
// neither is known.
func (a *App) mailSubject(ctx context.Context, addr string) (string, error) {
	subj, err := a.Accounts.Lookup(ctx, addr)
	if err == nil {
		return subj.ID, nil
	}
	if apperr.KindOf(err) != apperr.NotFound {
		return "", err
	}
	id, err := a.Newsletter.Lookup(ctx, addr)
	if apperr.KindOf(err) == apperr.NotFound {
		return "", nil
	}
	return id, err
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
		a.Log.Warn("files reconciled", "objects", rep.Objects, "orphans_deleted", rep.OrphanObjects,
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
	if a.serving, err = backup.HoldServing(ctx, a.DB); err != nil {
		return err
	}
	defer func() {
		if err != nil {
			a.releaseServing()
		}
	}()
	if _, err := a.Rights.Replay(ctx, false); err != nil {
		return err
	}
	if a.keysBehind != nil {
		return a.keysBehind
	}
	// Accounts an earlier release kept in plain text are sealed before anything else,
	// then the consent ledger's evidence and the files' names and access log.
	if n, err := a.Accounts.SealLegacy(ctx); err != nil {
		return err
	} else if n > 0 {
		a.Log.Warn("sealed accounts kept in plain text by an earlier release; their old bytes remain in the database's files until overwritten",
			"accounts", n)
	}
	// And so are the subscribers (after the accounts: a member's subscription is
	// sealed under the account's key).
	if n, err := a.Newsletter.SealLegacy(ctx); err != nil {
		return err
	} else if n > 0 {
		a.Log.Warn("sealed subscribers kept in plain text by an earlier release; their old bytes remain in the database's files until overwritten",
			"subscribers", n)
	}
	// Then the audit log of an earlier release: its accounts have their keys now.
	if n, err := a.Audit.SealLegacy(ctx, a.DB); err != nil {
		return err
	} else if n > 0 {
		a.Log.Warn("sealed audit log entries kept in plain text by an earlier release; their old bytes remain in the database's files until overwritten",
			"entries", n)
	}
	if n, err := a.Consent.SealLegacy(ctx); err != nil {
		return err
	} else if n > 0 {
		a.Log.Warn("sealed consent evidence kept in plain text by an earlier release; their old bytes remain in the database's files until overwritten",
			"events", n)
	}
	if n, err := a.Files.SealLegacy(ctx); err != nil {
		return err
	} else if n > 0 {
		a.Log.Warn("sealed file names and access addresses kept in plain text by an earlier release; their old bytes remain in the database's files until overwritten",
			"rows", n)
	}
	// The table of whom the newsletter may mail, built once after an upgrade.
	if err := a.Newsletter.RefreshIfEmpty(ctx); err != nil {
		return err
	}
	// Before serving: uploads and deletions a crash cut short are mended. On SQLite this
	// process is the only node, so every upload still marked in progress is dead.
	rep, err := a.Files.Reconcile(ctx, a.DB.Dialect == store.SQLite)
	if err != nil {
		return err
	}
	a.logReconcile(rep)
	if err := a.Jobs.Start(ctx); err != nil {
		return err
	}
	// The outbox's dispatcher: until Close. A mail queued on this node wakes it at
	// once; it looks for the rest (queued by another node, or left by one that died)
	// every 20 job polls: every 4 seconds by default.
	dctx, stop := context.WithCancel(context.WithoutCancel(ctx))
	a.stop = stop
	a.resuming.Add(1)
	go func() {
		defer a.resuming.Done()
		a.Outbox.Dispatch(dctx, 20*a.poll)
	}()
	// Key epochs: this node follows (or begins) every rotation of the key-encryption key.
	a.resuming.Add(1)
	go func() {
		defer a.resuming.Done()
		a.Vault.Run(dctx)
	}()
	if a.Config.InboundAddr != "" {
		if err := a.startInbound(); err != nil {
			return err
		}
	}
	pending, err := a.Rights.Pending(ctx)
	if err != nil {
		return err
	}
	if len(pending) > 0 {
		a.resuming.Add(1)
		go func() {
			defer a.resuming.Done()
			for _, id := range pending {
				if err := a.Rights.Run(ctx, id); err != nil {
					a.Log.Warn("resuming erasure", "request", id, "err", err)
				}
			}
		}()
	}
	return nil
}

// Serve answers HTTP on ln until ctx ends, then shuts down gracefully.
func (a *App) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           a.handler,
		ReadHeaderTimeout: server.ReadHeaderTimeout,
		IdleTimeout:       server.IdleTimeout,
		ErrorLog:          slog.NewLogLogger(a.Log.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return srv.Shutdown(sctx)
}

// Close stops the jobs and closes the database.
func (a *App) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := a.Jobs.Stop(ctx)
	if a.stop != nil {
		a.stop()
	}
	if a.inbound != nil {
		err = errors.Join(err, a.inbound.Close())
	}
	a.resuming.Wait()
	a.releaseServing()
	return errors.Join(err, a.DB.Close())
}

func (a *App) releaseServing() {
	if err := a.serving.Release(); err != nil {
		// Safe to go on: the lock's session is closed with it, which releases it too.
		a.Log.Warn("releasing the serving lock", "err", err)
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
