package app

import (
	"steward/internal/access"
	"time"

	"steward/internal/account"
	"steward/internal/analytics"
	"steward/internal/blob"
	"steward/internal/breaches"
	"steward/internal/config"
	"steward/internal/consent"
	"steward/internal/datamap"
	"steward/internal/disclosures"
	"steward/internal/files"
	"steward/internal/governance"
	"steward/internal/holds"
	"steward/internal/jobs"
	"steward/internal/mail"
	"steward/internal/newsletter"
	"steward/internal/notices"
	"steward/internal/policy"
	"steward/internal/processors"
	"steward/internal/requests"
	"steward/internal/retention"
	"steward/internal/rights"
	"steward/internal/ropa"
	"steward/internal/store"
	"steward/internal/vault"
)

// The command line and the tests reach the app's parts through these accessors;
// nothing outside New can replace one.

// Config is the configuration the app was built with.
func (a *App) Config() *config.Config { return a.config }

// Analytics is the request log and page statistics, in their own store.
func (a *App) Analytics() *analytics.Service { return a.analytics }

// DB is the database.
func (a *App) DB() *store.DB { return a.db }

// Registry is the data map.
func (a *App) Registry() *datamap.Registry { return a.registry }

// Jobs is the job queue.
func (a *App) Jobs() *jobs.Queue { return a.jobs }

// Audit is the audit log.
func (a *App) Audit() *governance.Audit { return a.audit }

// Accounts is the account capability.
func (a *App) Accounts() *account.Service { return a.accounts }

// Rights is the erasure and export capability.
func (a *App) Rights() *rights.Service { return a.rights }

// Vault holds the data keys.
func (a *App) Vault() *vault.Vault { return a.vault }

// Blobs is the object store of members' files.
func (a *App) Blobs() blob.Store { return a.blobs }

// Files is the files capability.
func (a *App) Files() *files.Service { return a.files }

// Consent is the consent capability.
func (a *App) Consent() *consent.Service { return a.consent }

// Newsletter is the newsletter capability.
func (a *App) Newsletter() *newsletter.Service { return a.newsletter }

// Notices tells processors of erasures.
func (a *App) Notices() *notices.Service { return a.notices }

// Outbox is the queue of transactional mail.
func (a *App) Outbox() *mail.Outbox { return a.outbox }

// Staff says who is staff.
func (a *App) Staff() *governance.Staff { return a.staff }

// Routes are the patterns of every route the site serves, API and pages.
func (a *App) Routes() []string { return append([]string(nil), a.patterns...) }

// Requests is the rights desk.
func (a *App) Requests() *requests.Service { return a.requests }

// Holds is the legal holds service.
func (a *App) Holds() *holds.Service { return a.holds }

// Retention is the retention rules and their runs.
func (a *App) Retention() *retention.Service { return a.retention }

// Policy is the privacy policy's versions and the members' acceptances.
func (a *App) Policy() *policy.Service { return a.policy }

// Disclosures is the register of disclosures to authorities.
func (a *App) Disclosures() *disclosures.Service { return a.disclosures }

// Breaches is the register of personal data breaches.
func (a *App) Breaches() *breaches.Service { return a.breaches }

// Processors is the register of processors and transfers.
func (a *App) Processors() *processors.Service { return a.processors }

// Records are the records of processing activities (GDPR art. 30), built on demand.
func (a *App) Records() ropa.Sources { return a.records() }

func (a *App) records() ropa.Sources {
	cfg := a.config
	return ropa.Sources{DataMap: a.registry, Purposes: a.consent.Register(), Processors: a.processors, DB: a.db, Now: a.now,
		Controller: ropa.Controller{Name: cfg.SiteName, DPO: cfg.DPOContact, EURepresentative: cfg.EURepresentative,
			SupervisoryAuthority: cfg.SupervisoryAuthority}}
}

// Access is the access grants and staff reads capability.
func (a *App) Access() *access.Service { return a.access }

// Now is the app's clock.
func (a *App) Now() time.Time { return a.now() }
