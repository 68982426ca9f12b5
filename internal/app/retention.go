package app

import (
	"context"
	"errors"
	"slices"
	"time"

	"steward/internal/datamap"
	"steward/internal/retention"
)

// The retention rules, one per time-limited retention the data map declares (a test
// holds the two together: internal/app/retention_test.go). Each removes through its
// capability; a person is removed through the erasure service, which leaves of them
// what a member's own erasure leaves: nothing. A legal hold in force stops a rule for
// the subjects it keeps, as it stops an erasure.

// Sources of erasures retention starts, as the erasure requests record them.
const (
	sourceAbandoned    = "abandoned_registration"
	sourceUnconfirmed  = "unconfirmed_subscription"
	sourceInactive     = "inactive_account"
	ruleInactive       = "inactive_accounts"
	ruleRegistrations  = "unconfirmed_registrations"
	ruleSubscriptions  = "unconfirmed_subscriptions"
	ruleExpired        = "expired_sessions"
	ruleClosedRequests = "closed_requests"
	ruleFileAccess     = "file_access_log"
)

func (a *App) retentionRules() []retention.Rule {
	p := a.config.Retention
	return []retention.Rule{
		{Name: ruleRegistrations, Holder: "account", Period: p.Unconfirmed, Flag: "--retention-unconfirmed",
			Removes: "Registrations whose address was never confirmed (and children's whose guardian never answered within the link's 14 days): the account is erased.",
			Apply: func(ctx context.Context, before time.Time) (retention.Result, error) {
				ids, err := a.accounts.Abandoned(ctx, before)
				if err != nil {
					return retention.Result{}, err
				}
				ids, held, err := a.notHeld(ctx, ids)
				if err != nil {
					return retention.Result{}, err
				}
				n, err := a.rights.EraseAll(ctx, ids, sourceAbandoned)
				return retention.Result{Removed: n, Held: held}, err
			}},
		{Name: ruleSubscriptions, Holder: "newsletter", Period: p.Unconfirmed, Flag: "--retention-unconfirmed",
			Removes: "Newsletter subscriptions made without an account and never confirmed (no link still working): the subscriber is erased; the unproven address is not suppressed.",
			Apply: func(ctx context.Context, before time.Time) (retention.Result, error) {
				ids, err := a.newsletter.Unconfirmed(ctx, before)
				if err != nil {
					return retention.Result{}, err
				}
				ids, held, err := a.notHeld(ctx, ids)
				if err != nil {
					return retention.Result{}, err
				}
				var res retention.Result
				res.Held = held
				var errs []error
				for _, id := range ids {
					// A subscriber without an account: erased as a subject given whole, with
					// no proven address (an unconfirmed one may be someone else's).
					if err := a.rights.EraseSubject(ctx, datamap.Subject{ID: id}, sourceUnconfirmed); err != nil {
						errs = append(errs, err)
						continue
					}
					res.Removed++
				}
				return res, errors.Join(errs...)
			}},
		{Name: ruleExpired, Holder: "account", Period: p.Sessions, Flag: "--retention-sessions",
			Removes: "Sessions and one-time links (verification, reset, guardian) past their expiry.",
			Apply: func(ctx context.Context, before time.Time) (retention.Result, error) {
				n, err := a.accounts.DeleteExpired(ctx, before)
				return retention.Result{Removed: n}, err
			}},
		{Name: ruleClosedRequests, Holder: "requests", Period: p.Requests, Flag: "--retention-requests",
			Removes: "Privacy requests closed longer ago than the period, with their history and any identity document left.",
			Apply: func(ctx context.Context, before time.Time) (retention.Result, error) {
				list, err := a.requests.ClosedBefore(ctx, before)
				if err != nil {
					return retention.Result{}, err
				}
				kept, err := a.holds.Held(ctx, "requests")
				if err != nil {
					return retention.Result{}, err
				}
				var res retention.Result
				var errs []error
				for _, c := range list {
					if slices.Contains(kept, c.SubjectID) {
						res.Held++
						continue
					}
					if err := a.requests.DeleteClosed(ctx, c.ID); err != nil {
						errs = append(errs, err)
						continue
					}
					res.Removed++
				}
				return res, errors.Join(errs...)
			}},
		{Name: ruleFileAccess, Holder: "files", Period: p.FileAccess, Flag: "--retention-file-access",
			Removes: "Entries of the file access log (uploads, downloads, deletions, refusals) older than the period.",
			Apply: func(ctx context.Context, before time.Time) (retention.Result, error) {
				kept, err := a.holds.Held(ctx, "files")
				if err != nil {
					return retention.Result{}, err
				}
				n, err := a.files.DeleteAccessBefore(ctx, before, kept)
				return retention.Result{Removed: n, Held: len(kept)}, err
			}},
		{Name: ruleInactive, Holder: "account", Period: p.Inactive, Off: p.Inactive == 0, Flag: "--retention-inactive",
			Removes: "Accounts not used (no login, no session used) for the period: the member is mailed a warning; an account still unused " +
				p.Warning.String() + " after it (--retention-inactive-warning) is erased. A legal hold in force stops both.",
			Apply: func(ctx context.Context, before time.Time) (retention.Result, error) {
				return a.applyInactive(ctx, before, p.Warning)
			}},
	}
}

// applyInactive warns the accounts inactive since before, and erases those warned
// longer than warning ago that did not come back. A member under a legal hold in force
// is neither warned nor erased.
func (a *App) applyInactive(ctx context.Context, before time.Time, warning time.Duration) (retention.Result, error) {
	var res retention.Result
	if _, err := a.accounts.ClearReturned(ctx); err != nil {
		return res, err
	}
	now := a.now()
	due, err := a.accounts.WarnedBefore(ctx, now.Add(-warning))
	if err != nil {
		return res, err
	}
	due, held, err := a.notHeld(ctx, due)
	if err != nil {
		return res, err
	}
	res.Held += held
	var errs []error
	res.Removed, err = a.rights.EraseAll(ctx, due, sourceInactive)
	errs = append(errs, err)
	idle, err := a.accounts.Inactive(ctx, before)
	if err != nil {
		return res, errors.Join(append(errs, err)...)
	}
	idle, held, err = a.notHeld(ctx, idle)
	if err != nil {
		return res, errors.Join(append(errs, err)...)
	}
	res.Held += held
	for _, id := range idle {
		if err := a.accounts.WarnInactive(ctx, id, now.Add(warning)); err != nil {
			errs = append(errs, err)
			continue
		}
		res.Warned++
	}
	return res, errors.Join(errs...)
}

// notHeld keeps the subjects without a legal hold in force, and counts the others:
// retention erases no one a hold is on, whatever the hold keeps.
func (a *App) notHeld(ctx context.Context, ids []string) ([]string, int, error) {
	if len(ids) == 0 {
		return ids, 0, nil
	}
	kept, err := a.holds.Held(ctx, "")
	if err != nil || len(kept) == 0 {
		return ids, 0, err
	}
	out := slices.DeleteFunc(slices.Clone(ids), func(id string) bool { return slices.Contains(kept, id) })
	return out, len(ids) - len(out), nil
}
