package app

import (
	"context"

	"steward/internal/apperr"
)

// directory is what the rights desk knows of accounts and staff: where to write to a
// member, and who holds a staff role.
type directory struct{ a *App }

// Address is the member's address if it is proven theirs, else "": a request is never
// acknowledged to an address the member did not confirm. An account erased since is "".
func (d directory) Address(ctx context.Context, accountID string) (string, error) {
	p, err := d.a.accounts.Profile(ctx, accountID)
	if apperr.KindOf(err) == apperr.NotFound {
		return "", nil
	}
	if err != nil || !p.EmailVerified {
		return "", err
	}
	return p.Email, nil
}

// Staff returns the accounts holding the role.
func (d directory) Staff(ctx context.Context, role string) ([]string, error) {
	return d.a.staff.Members(ctx, role)
}

// Member is the account whose verified address is email, found by its blind index,
// or "" when none: a visitor's access request delivers only data held under an
// address its account proved.
func (d directory) Member(ctx context.Context, email string) (string, error) {
	subj, err := d.a.accounts.Lookup(ctx, email)
	if apperr.KindOf(err) == apperr.NotFound {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	if subj.Email == "" {
		return "", nil // the address is not proven the account's
	}
	return subj.ID, nil
}
