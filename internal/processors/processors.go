// Package processors owns the register of processors (GDPR art. 28 and 30, P-SHARE-1..2)
// and the transfers of personal data outside the deployment's region (P-SEC-1, GDPR
// chapter V). The purposes file seeds the register at first start; admins and the DPO
// keep it from then on, every change kept in its history (who, when, old and new) and
// in the audit log. A processor to which data is sold cannot be added, or marked so,
// until a second admin or DPO approves it. A processor outside the region needs a
// transfer safeguard, and is sent nothing without one. Its tables are processors,
// processor_history and transfers.
package processors

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"steward/internal/apperr"
	"steward/internal/config"
	"steward/internal/consent"
	"steward/internal/governance"
	"steward/internal/store"
)

// Roles are the staff roles that keep the register (admin holds every role).
var Roles = []string{"dpo"}

// States of a processor.
const (
	Active  = "active"
	Pending = "pending" // added as a sale: waits for a second admin's or DPO's approval
	Retired = "retired"
)

// Safeguards are the transfer safeguards (GDPR art. 45-49) a processor outside the
// region may rely on, by key, with their names.
var Safeguards = []Safeguard{
	{"adequacy", "Adequacy decision (GDPR art. 45)"},
	{"scc", "Standard contractual clauses (GDPR art. 46(2)(c))"},
	{"bcr", "Binding corporate rules (GDPR art. 47)"},
	{"code", "Approved code of conduct or certification (GDPR art. 46(2)(e), (f))"},
	{"derogation", "Derogation for a specific situation (GDPR art. 49)"},
}

// Safeguard is one kind of transfer safeguard.
type Safeguard struct{ Key, Name string }

// SafeguardName names a safeguard's key ("" for none).
func SafeguardName(key string) string {
	for _, s := range Safeguards {
		if s.Key == key {
			return s.Name
		}
	}
	return key
}

// Processor is one processor of the register.
type Processor struct {
	Key        string   `json:"key"`
	Name       string   `json:"name"`
	Service    string   `json:"service"`
	Purposes   []string `json:"purposes"`
	Categories []string `json:"categories"`
	Country    string   `json:"country"`
	// Transfer is the safeguard (Safeguards) of a transfer outside the region, "" for
	// none; Safeguard says more in words (the processing agreement, the DPF...).
	Transfer  string `json:"transfer"`
	Safeguard string `json:"safeguard"`
	Contract  string `json:"contract"`
	// NotifyURL is where the processor is sent notices (internal/notices).
	NotifyURL string `json:"notify_url"`
	// Sale: the data is sold to it (P-SHARE-2): added or marked so only with a second
	// approval.
	Sale  bool   `json:"sale"`
	State string `json:"state"`
}

// Entry is a processor with its bookkeeping: a change awaiting approval, and when it
// was made.
type Entry struct {
	Processor
	Proposed   *Processor // a change awaiting approval (for a pending processor: itself)
	ProposedBy string
	ProposedAt time.Time
	CreatedAt  time.Time
	UpdatedAt  time.Time
}

// Change is one entry of the register's history.
type Change struct {
	ID        string
	Processor string
	Action    string // seeded, added, edited, retired, proposed, approved, rejected
	By        string // the staff member's account id; "" for the seed or once they are erased
	Old, New  *Processor
	At        time.Time
}

// Transfer is one kind of transfer outside the region.
type Transfer struct {
	Processor     string    `json:"processor"`
	ProcessorName string    `json:"processor_name"`
	Country       string    `json:"country"`
	Categories    []string  `json:"categories"`
	Safeguard     string    `json:"safeguard"` // the kind's key
	SafeguardName string    `json:"safeguard_name"`
	Details       string    `json:"details"`
	Since         time.Time `json:"since"`
	Until         time.Time `json:"until,omitzero"`
}

// Region is where the deployment stores personal data.
type Region struct {
	Name      string
	Countries []string
}

// Covers reports whether a country is inside the region.
func (r Region) Covers(country string) bool { return slices.Contains(r.Countries, country) }

// Actor is the staff member who changes the register.
type Actor struct {
	ID string
	IP string
}

// Auditor records governance actions.
type Auditor interface {
	Record(ctx context.Context, q store.Querier, e governance.Event) error
}

// Service keeps the register.
type Service struct {
	db       *store.DB
	audit    Auditor
	purposes *consent.Register
	region   Region
	now      func() time.Time
}

// New returns the register. purposes are the purposes a processor may serve.
func New(db *store.DB, audit Auditor, purposes *consent.Register, region Region, now func() time.Time) *Service {
	return &Service{db: db, audit: audit, purposes: purposes, region: region, now: now}
}

// Region is the deployment's storage region.
func (s *Service) Region() Region { return s.region }

// Outside reports whether a processor is outside the region.
func (s *Service) Outside(p Processor) bool { return !s.region.Covers(p.Country) }

// MaySend says whether data may be sent to the processor now: an active processor,
// inside the region or with a recorded transfer safeguard.
func (s *Service) MaySend(p Processor) error {
	if p.State != Active {
		return apperr.New(apperr.Conflict, "processor_inactive", fmt.Sprintf("the processor %s is %s", p.Key, p.State))
	}
	if s.Outside(p) && p.Transfer == "" {
		return apperr.New(apperr.Conflict, "transfer_without_safeguard",
			fmt.Sprintf("the processor %s is in %s, outside the region (%s), without a recorded transfer safeguard", p.Key, p.Country, s.region.Name))
	}
	return nil
}

var (
	keyRE      = regexp.MustCompile(`^[a-z][a-z0-9_]{1,47}$`)
	categoryRE = regexp.MustCompile(`^[a-z][a-z_]*(\.[a-z][a-z_]*)*$`)
)

// clean trims a processor's fields and checks them, naming the field at fault. The
// purposes file's processors (seed) may name no category, as the file allows.
func (s *Service) clean(p *Processor, seed ...bool) error {
	p.Key, p.Name, p.Service = strings.TrimSpace(p.Key), strings.TrimSpace(p.Name), strings.TrimSpace(p.Service)
	p.Country, p.Transfer = strings.ToUpper(strings.TrimSpace(p.Country)), strings.TrimSpace(p.Transfer)
	p.Safeguard, p.Contract, p.NotifyURL = strings.TrimSpace(p.Safeguard), strings.TrimSpace(p.Contract), strings.TrimSpace(p.NotifyURL)
	p.Purposes, p.Categories = list(p.Purposes), list(p.Categories)
	if !keyRE.MatchString(p.Key) {
		return apperr.Field("key", "key_invalid", "must be 2 to 48 lower case letters, digits and _, starting with a letter")
	}
	for _, f := range []struct{ name, v string }{{"name", p.Name}, {"service", p.Service}, {"safeguard", p.Safeguard}, {"contract", p.Contract}} {
		if utf8.RuneCountInString(f.v) > 500 || strings.ContainsAny(f.v, "\r\n") {
			return apperr.Field(f.name, "too_long", "must be one line of at most 500 characters")
		}
	}
	if p.Name == "" {
		return apperr.Field("name", "required", "is required")
	}
	for _, k := range p.Purposes {
		if _, ok := s.purposes.Purpose(k); !ok {
			return apperr.Field("purposes", "purpose_unknown", fmt.Sprintf("%q is not a purpose of the register", k))
		}
	}
	if len(p.Categories) == 0 && len(seed) == 0 {
		return apperr.Field("categories", "required", "name at least one data category, e.g. user.contact.email")
	}
	for _, c := range p.Categories {
		if !categoryRE.MatchString(c) || len(c) > 100 {
			return apperr.Field("categories", "category_invalid", fmt.Sprintf("%q is not a data category such as user.contact.email", c))
		}
	}
	if !config.ValidCountry(p.Country) {
		return apperr.Field("country", "country_invalid", "must be an ISO 3166 country code, e.g. DE or US")
	}
	if p.Transfer != "" && SafeguardName(p.Transfer) == p.Transfer {
		keys := make([]string, len(Safeguards))
		for i, g := range Safeguards {
			keys[i] = g.Key
		}
		return apperr.Field("transfer", "safeguard_unknown", "must be one of "+strings.Join(keys, ", "))
	}
	if s.Outside(*p) && p.Transfer == "" {
		return apperr.Field("transfer", "safeguard_required", fmt.Sprintf("%s is outside the region where data is stored (%s): a transfer there needs a safeguard (adequacy decision, standard contractual clauses, binding corporate rules...)",
			p.Country, s.region.Name))
	}
	if err := consent.CheckNotifyURL(p.NotifyURL); err != nil {
		return apperr.Field("notify_url", "url_invalid", err.Error())
	}
	return nil
}

// list trims, drops empty and duplicate items, and sorts.
func list(in []string) []string {
	out := []string{}
	for _, v := range in {
		for _, w := range strings.Split(v, ",") {
			if w = strings.TrimSpace(w); w != "" && !slices.Contains(out, w) {
				out = append(out, w)
			}
		}
	}
	sort.Strings(out)
	return out
}

// Seed imports the purposes file's processors at first start (when the register has
// no history); later starts leave the register as staff keep it.
func (s *Service) Seed(ctx context.Context, reg *consent.Register) error {
	err := s.db.InTx(ctx, func(tx *store.Tx) error {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM processor_history`).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			return nil
		}
		for _, c := range reg.Processors {
			p := Processor{Key: c.Key, Name: c.Name, Service: c.Service, Categories: c.Categories, Country: c.Country, Transfer: c.Transfer,
				Safeguard: c.Safeguard, Contract: c.Contract, NotifyURL: c.NotifyURL, State: Active}
			for _, pu := range reg.Purposes {
				if slices.Contains(pu.Processors, c.Key) {
					p.Purposes = append(p.Purposes, pu.Key)
				}
			}
			if err := s.clean(&p, true); err != nil {
				return fmt.Errorf("processor %q of the purposes file: %w", c.Key, err)
			}
			if err := s.insert(ctx, tx, p); err != nil {
				return err
			}
			if err := s.history(ctx, tx, p.Key, "seeded", "", nil, &p); err != nil {
				return err
			}
		}
		// The marker that the seed ran, even of no processor.
		return s.history(ctx, tx, "*", "seeded", "", nil, nil)
	})
	if err != nil {
		return fmt.Errorf("processors: seed: %w", err)
	}
	return s.SyncTransfers(ctx)
}

const columns = `key, name, service, purposes, categories, country, transfer, safeguard, contract, notify_url, sale, state,
	COALESCE(proposed, ''), COALESCE(proposed_by, ''), COALESCE(proposed_at, 0), created_at, updated_at`

func (s *Service) insert(ctx context.Context, tx *store.Tx, p Processor) error {
	now := store.Millis(s.now())
	_, err := tx.ExecContext(ctx, `INSERT INTO processors (key, name, service, purposes, categories, country, transfer, safeguard, contract,
		notify_url, sale, state, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $13)`,
		p.Key, p.Name, p.Service, strings.Join(p.Purposes, ","), strings.Join(p.Categories, ","), p.Country, p.Transfer, p.Safeguard,
		p.Contract, p.NotifyURL, boolInt(p.Sale), p.State, now)
	if store.IsUniqueViolation(err) {
		return apperr.Field("key", "key_taken", "another processor has this key")
	}
	return err
}

func (s *Service) update(ctx context.Context, tx *store.Tx, p Processor) error {
	_, err := tx.ExecContext(ctx, `UPDATE processors SET name = $1, service = $2, purposes = $3, categories = $4, country = $5, transfer = $6,
		safeguard = $7, contract = $8, notify_url = $9, sale = $10, state = $11, proposed = NULL, proposed_by = NULL, proposed_at = NULL,
		updated_at = $12 WHERE key = $13`,
		p.Name, p.Service, strings.Join(p.Purposes, ","), strings.Join(p.Categories, ","), p.Country, p.Transfer, p.Safeguard, p.Contract,
		p.NotifyURL, boolInt(p.Sale), p.State, store.Millis(s.now()), p.Key)
	return err
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// history records a change in the register's history.
func (s *Service) history(ctx context.Context, tx *store.Tx, key, action, by string, old, new *Processor) error {
	enc := func(p *Processor) (string, error) {
		if p == nil {
			return "", nil
		}
		b, err := json.Marshal(p)
		return string(b), err
	}
	o, err := enc(old)
	if err != nil {
		return err
	}
	n, err := enc(new)
	if err != nil {
		return err
	}
	var who any
	if by != "" {
		who = by
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO processor_history (id, processor, action, changed_by, old_value, new_value, at)
		VALUES ($1, $2, $3, $4, $5, $6, $7)`, store.SortedID(s.now()), key, action, who, o, n, store.Millis(s.now()))
	return err
}

// record writes the change's history and audit entry, and brings the transfers up
// to date, in the change's transaction.
func (s *Service) record(ctx context.Context, tx *store.Tx, by Actor, action string, old, new *Processor) error {
	key := ""
	if new != nil {
		key = new.Key
	} else if old != nil {
		key = old.Key
	}
	if err := s.history(ctx, tx, key, action, by.ID, old, new); err != nil {
		return err
	}
	if err := s.audit.Record(ctx, tx, governance.Event{Name: "processor_" + action, AccountID: by.ID, IP: by.IP,
		Detail: "processor " + key}); err != nil {
		return err
	}
	return s.syncTransfer(ctx, tx, key)
}

// Add adds a processor. One to which data is sold waits, pending, for a second
// admin's or DPO's approval.
func (s *Service) Add(ctx context.Context, by Actor, p Processor) (Entry, error) {
	if err := s.clean(&p); err != nil {
		return Entry{}, err
	}
	p.State = Active
	if p.Sale {
		p.State = Pending
	}
	err := s.db.InTx(ctx, func(tx *store.Tx) error {
		if err := s.insert(ctx, tx, p); err != nil {
			return err
		}
		if p.Sale {
			if err := s.propose(ctx, tx, by, p); err != nil {
				return err
			}
			return s.record(ctx, tx, by, "proposed", nil, &p)
		}
		return s.record(ctx, tx, by, "added", nil, &p)
	})
	if err != nil {
		return Entry{}, err
	}
	return s.Get(ctx, p.Key)
}

func (s *Service) propose(ctx context.Context, tx *store.Tx, by Actor, p Processor) error {
	b, err := json.Marshal(p)
	if err != nil {
		return err
	}
	_, err = tx.ExecContext(ctx, `UPDATE processors SET proposed = $1, proposed_by = $2, proposed_at = $3 WHERE key = $4`,
		string(b), by.ID, store.Millis(s.now()), p.Key)
	return err
}

// Edit changes a processor (not its key). A change that marks it a sale waits for a
// second approval: until then the processor stays as it was.
func (s *Service) Edit(ctx context.Context, by Actor, key string, p Processor) (Entry, error) {
	p.Key = key
	if err := s.clean(&p); err != nil {
		return Entry{}, err
	}
	err := s.db.InTx(ctx, func(tx *store.Tx) error {
		old, err := s.get(ctx, tx, key)
		if err != nil {
			return err
		}
		if old.State == Retired {
			return apperr.New(apperr.Conflict, "processor_retired", "the processor is retired")
		}
		if old.Proposed != nil {
			return apperr.New(apperr.Conflict, "approval_pending", "a change of the processor awaits approval: approve or reject it first")
		}
		p.State = old.State
		if p.Sale && !old.Sale {
			if err := s.propose(ctx, tx, by, p); err != nil {
				return err
			}
			return s.record(ctx, tx, by, "proposed", &old.Processor, &p)
		}
		if err := s.update(ctx, tx, p); err != nil {
			return err
		}
		return s.record(ctx, tx, by, "edited", &old.Processor, &p)
	})
	if err != nil {
		return Entry{}, err
	}
	return s.Get(ctx, key)
}

// Approve applies a change awaiting approval (a sale), by an admin or DPO other than
// the one who proposed it.
func (s *Service) Approve(ctx context.Context, by Actor, key string) (Entry, error) {
	err := s.db.InTx(ctx, func(tx *store.Tx) error {
		old, err := s.get(ctx, tx, key)
		if err != nil {
			return err
		}
		if old.Proposed == nil {
			return apperr.New(apperr.Conflict, "nothing_to_approve", "no change of the processor awaits approval")
		}
		if old.ProposedBy == by.ID {
			return apperr.New(apperr.Forbidden, "second_approval", "a second admin or DPO must approve a change you proposed")
		}
		p := *old.Proposed
		p.State = Active
		// The region may have changed since the proposal: check it again.
		if err := s.clean(&p); err != nil {
			return err
		}
		if err := s.update(ctx, tx, p); err != nil {
			return err
		}
		return s.record(ctx, tx, by, "approved", &old.Processor, &p)
	})
	if err != nil {
		return Entry{}, err
	}
	return s.Get(ctx, key)
}

// Reject drops a change awaiting approval; a processor added as a sale is retired.
func (s *Service) Reject(ctx context.Context, by Actor, key string) (Entry, error) {
	err := s.db.InTx(ctx, func(tx *store.Tx) error {
		old, err := s.get(ctx, tx, key)
		if err != nil {
			return err
		}
		if old.Proposed == nil {
			return apperr.New(apperr.Conflict, "nothing_to_approve", "no change of the processor awaits approval")
		}
		p := old.Processor
		if p.State == Pending {
			p.State = Retired
		}
		if err := s.update(ctx, tx, p); err != nil {
			return err
		}
		return s.record(ctx, tx, by, "rejected", old.Proposed, &p)
	})
	if err != nil {
		return Entry{}, err
	}
	return s.Get(ctx, key)
}

// Retire ends a processor's engagement: it is sent nothing more and leaves the
// public list; its record and history stay.
func (s *Service) Retire(ctx context.Context, by Actor, key string) (Entry, error) {
	err := s.db.InTx(ctx, func(tx *store.Tx) error {
		old, err := s.get(ctx, tx, key)
		if err != nil {
			return err
		}
		if old.State == Retired {
			return apperr.New(apperr.Conflict, "processor_retired", "the processor is already retired")
		}
		p := old.Processor
		p.State = Retired
		if err := s.update(ctx, tx, p); err != nil {
			return err
		}
		return s.record(ctx, tx, by, "retired", &old.Processor, &p)
	})
	if err != nil {
		return Entry{}, err
	}
	return s.Get(ctx, key)
}

// Get returns a processor, whatever its state.
func (s *Service) Get(ctx context.Context, key string) (Entry, error) { return s.get(ctx, s.db, key) }

func (s *Service) get(ctx context.Context, q store.Querier, key string) (Entry, error) {
	list, err := s.scan(ctx, q, `SELECT `+columns+` FROM processors WHERE key = $1`, key)
	if err != nil {
		return Entry{}, err
	}
	if len(list) == 0 {
		return Entry{}, apperr.New(apperr.NotFound, "processor_not_found", "no such processor")
	}
	return list[0], nil
}

// Lookup returns a processor by key, whatever its state, in q.
func (s *Service) Lookup(ctx context.Context, q store.Querier, key string) (Processor, bool, error) {
	e, err := s.get(ctx, q, key)
	if apperr.KindOf(err) == apperr.NotFound {
		return Processor{}, false, nil
	}
	return e.Processor, err == nil, err
}

// List returns every processor (retired too), by name.
func (s *Service) List(ctx context.Context) ([]Entry, error) {
	return s.scan(ctx, s.db, `SELECT `+columns+` FROM processors ORDER BY name, key`)
}

// Active returns the processors in force, by name.
func (s *Service) Active(ctx context.Context, q store.Querier) ([]Processor, error) {
	list, err := s.scan(ctx, q, `SELECT `+columns+` FROM processors WHERE state = $1 ORDER BY name, key`, Active)
	out := make([]Processor, len(list))
	for i, e := range list {
		out[i] = e.Processor
	}
	return out, err
}

// Current returns the processors in force, by name: the public list.
func (s *Service) Current(ctx context.Context) ([]Processor, error) { return s.Active(ctx, s.db) }

// Names maps every processor's key to its name.
func (s *Service) Names(ctx context.Context, q store.Querier) (map[string]string, error) {
	rows, err := q.QueryContext(ctx, `SELECT key, name FROM processors`)
	if err != nil {
		return nil, fmt.Errorf("processors: %w", err)
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var k, n string
		if err := rows.Scan(&k, &n); err != nil {
			return nil, err
		}
		out[k] = n
	}
	return out, rows.Err()
}

// OfPurpose returns the active processors that serve a purpose.
func (s *Service) OfPurpose(ctx context.Context, q store.Querier, purpose string) ([]Processor, error) {
	all, err := s.Active(ctx, q)
	return slices.DeleteFunc(all, func(p Processor) bool { return !slices.Contains(p.Purposes, purpose) }), err
}

func (s *Service) scan(ctx context.Context, q store.Querier, query string, args ...any) ([]Entry, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("processors: %w", err)
	}
	defer rows.Close()
	var out []Entry
	for rows.Next() {
		var e Entry
		var purposes, categories, proposed string
		var sale int
		var proposedAt, created, updated int64
		if err := rows.Scan(&e.Key, &e.Name, &e.Service, &purposes, &categories, &e.Country, &e.Transfer, &e.Safeguard, &e.Contract,
			&e.NotifyURL, &sale, &e.State, &proposed, &e.ProposedBy, &proposedAt, &created, &updated); err != nil {
			return nil, fmt.Errorf("processors: %w", err)
		}
		e.Purposes, e.Categories, e.Sale = list([]string{purposes}), list([]string{categories}), sale == 1
		if proposed != "" {
			e.Proposed = &Processor{}
			if err := json.Unmarshal([]byte(proposed), e.Proposed); err != nil {
				return nil, fmt.Errorf("processors: proposal of %s: %w", e.Key, err)
			}
			e.ProposedAt = store.FromMillis(proposedAt)
		}
		e.CreatedAt, e.UpdatedAt = store.FromMillis(created), store.FromMillis(updated)
		out = append(out, e)
	}
	return out, rows.Err()
}

// History returns the register's history of one processor ("" for all), newest first.
func (s *Service) History(ctx context.Context, key string) ([]Change, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT id, processor, action, COALESCE(changed_by, ''), old_value, new_value, at FROM processor_history
		WHERE processor <> '*' AND ($1 = '' OR processor = $1) ORDER BY id DESC`, key)
	if err != nil {
		return nil, fmt.Errorf("processors: %w", err)
	}
	defer rows.Close()
	var out []Change
	for rows.Next() {
		var c Change
		var o, n string
		var at int64
		if err := rows.Scan(&c.ID, &c.Processor, &c.Action, &c.By, &o, &n, &at); err != nil {
			return nil, fmt.Errorf("processors: %w", err)
		}
		for _, v := range []struct {
			s  string
			to **Processor
		}{{o, &c.Old}, {n, &c.New}} {
			if v.s != "" {
				*v.to = &Processor{}
				if err := json.Unmarshal([]byte(v.s), *v.to); err != nil {
					return nil, fmt.Errorf("processors: history: %w", err)
				}
			}
		}
		c.At = store.FromMillis(at)
		out = append(out, c)
	}
	return out, rows.Err()
}

// SyncTransfers brings the recorded transfers in line with the register and the
// region (which a restart may have changed): run at start.
func (s *Service) SyncTransfers(ctx context.Context) error {
	keys, err := store.Strings(ctx, s.db, `SELECT key FROM processors ORDER BY key`)
	if err != nil {
		return fmt.Errorf("processors: %w", err)
	}
	for _, k := range keys {
		if err := s.db.InTx(ctx, func(tx *store.Tx) error { return s.syncTransfer(ctx, tx, k) }); err != nil {
			return fmt.Errorf("processors: transfers: %w", err)
		}
	}
	return nil
}

// syncTransfer records the processor's kind of transfer: an active processor outside
// the region, under a safeguard, has one open transfer that says what goes where
// under which safeguard; a change of any of these ends it and opens another.
func (s *Service) syncTransfer(ctx context.Context, tx *store.Tx, key string) error {
	p, ok, err := s.Lookup(ctx, tx, key)
	if err != nil {
		return err
	}
	want := ok && p.State == Active && s.Outside(p) && p.Transfer != ""
	var id, country, categories, transfer, safeguard string
	err = tx.QueryRowContext(ctx, `SELECT id, country, categories, transfer, safeguard FROM transfers WHERE processor = $1 AND until_at IS NULL`, key).
		Scan(&id, &country, &categories, &transfer, &safeguard)
	open := err == nil
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return err
	}
	same := open && want && country == p.Country && categories == strings.Join(p.Categories, ",") && transfer == p.Transfer &&
		safeguard == p.Safeguard
	if same {
		return nil
	}
	now := store.Millis(s.now())
	if open {
		if _, err := tx.ExecContext(ctx, `UPDATE transfers SET until_at = $1 WHERE id = $2`, now, id); err != nil {
			return err
		}
	}
	if want {
		_, err := tx.ExecContext(ctx, `INSERT INTO transfers (id, processor, country, categories, transfer, safeguard, since)
			VALUES ($1, $2, $3, $4, $5, $6, $7)`, store.SortedID(s.now()), key, p.Country, strings.Join(p.Categories, ","), p.Transfer,
			p.Safeguard, now)
		return err
	}
	return nil
}

// Transfers returns the transfers recorded, of the processors given (nil: all), open
// and ended, oldest first.
func (s *Service) Transfers(ctx context.Context, q store.Querier, only []string) ([]Transfer, error) {
	names, err := s.Names(ctx, q)
	if err != nil {
		return nil, err
	}
	rows, err := q.QueryContext(ctx, `SELECT processor, country, categories, transfer, safeguard, since, COALESCE(until_at, 0) FROM transfers
		ORDER BY since, until_at IS NULL, until_at, id`) // a transfer ended in the same millisecond as the next began comes first
	if err != nil {
		return nil, fmt.Errorf("processors: %w", err)
	}
	defer rows.Close()
	out := []Transfer{}
	for rows.Next() {
		var t Transfer
		var categories string
		var since, until int64
		if err := rows.Scan(&t.Processor, &t.Country, &categories, &t.Safeguard, &t.Details, &since, &until); err != nil {
			return nil, fmt.Errorf("processors: %w", err)
		}
		if only != nil && !slices.Contains(only, t.Processor) {
			continue
		}
		t.ProcessorName, t.SafeguardName, t.Categories = names[t.Processor], SafeguardName(t.Safeguard), list([]string{categories})
		t.Since = store.FromMillis(since)
		if until > 0 {
			t.Until = store.FromMillis(until)
		}
		out = append(out, t)
	}
	return out, rows.Err()
}

// AllTransfers returns every transfer recorded, oldest first.
func (s *Service) AllTransfers(ctx context.Context) ([]Transfer, error) {
	return s.Transfers(ctx, s.db, nil)
}

// Recipients returns the active processors that receive the subject's data: those of
// every purpose the subject consented to at some time, and, for a member with an
// account, those of every purpose that needs no consent.
func (s *Service) Recipients(ctx context.Context, q store.Querier, subjectID string) ([]Processor, error) {
	granted, err := store.Strings(ctx, q, `SELECT DISTINCT purpose FROM consent_events WHERE subject_id = $1 AND decision = $2`,
		subjectID, consent.Granted)
	if err != nil {
		return nil, err
	}
	var member int
	if err := q.QueryRowContext(ctx, `SELECT count(*) FROM accounts WHERE id = $1`, subjectID).Scan(&member); err != nil {
		return nil, err
	}
	all, err := s.Active(ctx, q)
	if err != nil {
		return nil, err
	}
	var out []Processor
	for _, p := range all {
		for _, k := range p.Purposes {
			pu, ok := s.purposes.Purpose(k)
			if ok && (slices.Contains(granted, k) || (!pu.NeedsConsent() && member > 0)) {
				out = append(out, p)
				break
			}
		}
	}
	return out, nil
}
