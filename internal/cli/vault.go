package cli

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"steward/internal/account"
	"steward/internal/app"
	"steward/internal/apperr"
	"steward/internal/config"
	"steward/internal/governance"
	"steward/internal/store"
	"steward/internal/vault"
)

// keysCommand runs "steward keys rotate|recover|escrow-keygen|status".
func keysCommand(ctx context.Context, cfg *config.Config, log *slog.Logger, pos []string, file string, stdout io.Writer) error {
	const usageKeys = "usage: steward keys rotate | recover --identity FILE | escrow-keygen --out FILE | status"
	if len(pos) != 1 {
		return apperr.New(apperr.Invalid, "usage", usageKeys)
	}
	if pos[0] == "escrow-keygen" {
		return escrowKeygen(file, stdout)
	}
	db, err := store.Open(ctx, cfg.DatabaseURL)
	if err != nil {
		return err
	}
	defer db.Close()
	if err := app.Migrate(ctx, db); err != nil {
		return err
	}
	vcfg := vault.Config{KeyFile: cfg.MasterKeyFile, Epoch: cfg.KeyEpoch, Retention: cfg.BackupRetention, Grace: app.KeyGrace(cfg)}
	if cfg.EscrowRecipients != "" {
		if vcfg.Escrow, err = vault.ParseRecipients(cfg.EscrowRecipients); err != nil {
			return fmt.Errorf("--escrow-recipient (STEWARD_ESCROW_RECIPIENT): %w", err)
		}
	}
	switch pos[0] {
	case "rotate":
		v, err := vault.Open(ctx, db, vcfg, time.Now, log)
		if err != nil {
			return err
		}
		from, _ := v.Epoch()
		to, err := v.RotateNow(ctx)
		if err != nil {
			return fmt.Errorf("rotate (run it again, or start the server, to resume): %w", err)
		}
		fmt.Fprintf(stdout, "every data key is rewrapped from epoch %d to %d; epoch %d's key is destroyed on this node (other nodes follow within a minute)\n", from, to, from)
		return nil
	case "recover":
		if file == "" {
			return apperr.Field("identity", "required", "is required: the age identity file (the offline private key) the epoch keys were escrowed to")
		}
		ids, err := vault.ReadIdentities(file)
		if err != nil {
			return err
		}
		n, err := vault.Recover(ctx, db, cfg.MasterKeyFile, ids, time.Now)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "rewrapped %d data key(s) from escrow under this node's key\n", n)
		return nil
	case "status":
		v, err := vault.Open(ctx, db, vcfg, time.Now, log)
		if err != nil {
			return err
		}
		e, rotating := v.Epoch()
		fmt.Fprintf(stdout, "epoch %d, rotating: %v\n", e, rotating)
		epochs, err := store.Strings(ctx, db, `SELECT CAST(epoch AS TEXT) FROM kek_escrow ORDER BY epoch`)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "escrowed epochs: %s\n", strings.Join(epochs, " "))
		return nil
	}
	return apperr.New(apperr.Invalid, "usage", usageKeys)
}

// escrowKeygen makes the operator's escrow key pair: the identity goes to a new file
// (to be kept offline), the public key is printed for --escrow-recipient.
func escrowKeygen(out string, stdout io.Writer) error {
	if out == "" {
		return apperr.Field("out", "required", "is required: where to write the private key (keep it offline, not on the servers)")
	}
	id, recipient, err := vault.GenerateIdentity()
	if err != nil {
		return err
	}
	f, err := os.OpenFile(out, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(f, "# steward escrow identity: keep offline; it opens every escrowed epoch key\n# public key: %s\n%s\n", recipient, id)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s\n", recipient)
	return nil
}

// filesCommand runs "steward files reconcile".
func filesCommand(ctx context.Context, cfg *config.Config, log *slog.Logger, pos []string, stdout io.Writer) error {
	if len(pos) != 1 || pos[0] != "reconcile" {
		return apperr.New(apperr.Invalid, "usage", "usage: steward files reconcile")
	}
	a, err := app.New(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer a.Close()
	rep, err := a.Files().Reconcile(ctx, false)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "objects %d: orphans deleted %d, dead uploads removed %d, deletions finished %d, lost objects %d\n",
		rep.Objects, rep.OrphanObjects, rep.DeadUploads, rep.FinishedDeletes, rep.LostObjects)
	return nil
}

// staffCommand runs "steward staff grant|revoke EMAIL ROLE", "steward staff list" and
// "steward staff reset-mfa EMAIL". Every change is recorded in the audit log, made
// "by the command line".
func staffCommand(ctx context.Context, cfg *config.Config, log *slog.Logger, pos []string, stdout io.Writer) error {
	ok := len(pos) == 3 && (pos[0] == "grant" || pos[0] == "revoke") || len(pos) == 1 && pos[0] == "list" ||
		len(pos) == 2 && pos[0] == "reset-mfa"
	if !ok {
		return apperr.New(apperr.Invalid, "usage", "usage: steward staff grant|revoke EMAIL ROLE | list | reset-mfa EMAIL")
	}
	a, err := app.New(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer a.Close()
	if pos[0] == "list" {
		return listStaff(ctx, a, stdout)
	}
	s, err := a.Accounts().Lookup(ctx, pos[1])
	if err != nil {
		return err
	}
	// The address the operator knows the member by; the id of one without a proven
	// address (looked up by id).
	who := s.Email
	if who == "" {
		who = s.ID
	}
	switch pos[0] {
	case "reset-mfa":
		if err := a.Accounts().ResetSecondFactor(ctx, s.ID, "", account.Meta{}); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "reset the second factor of %s: they set up a new one at their next staff page\n", who)
		return nil
	case "grant":
		err = a.Staff().Change(ctx, governance.Change{AccountID: s.ID, Role: pos[2], Grant: true})
	default:
		err = a.Staff().Change(ctx, governance.Change{AccountID: s.ID, Role: pos[2]})
	}
	if err != nil {
		return err
	}
	if pos[0] == "grant" {
		fmt.Fprintf(stdout, "granted %s to %s\n", pos[2], who)
	} else {
		fmt.Fprintf(stdout, "revoked %s from %s\n", pos[2], who)
	}
	return nil
}

// listStaff prints every staff account: address, roles, whether it has a second factor.
func listStaff(ctx context.Context, a *app.App, stdout io.Writer) error {
	people, err := a.Staff().People(ctx)
	if err != nil {
		return err
	}
	for _, p := range people {
		email := "(erased)"
		if prof, err := a.Accounts().Profile(ctx, p.AccountID); err == nil {
			email = prof.Email
		} else if apperr.KindOf(err) != apperr.NotFound {
			return err
		}
		st, err := a.Accounts().SecondFactor(ctx, p.AccountID)
		if err != nil {
			return err
		}
		factor := "no second factor"
		if st.Enrolled {
			factor = "second factor set up"
		}
		fmt.Fprintf(stdout, "%s\t%s\t%s\t%s\n", email, p.AccountID, strings.Join(p.Roles, ","), factor)
	}
	return nil
}

// newsletterCommand runs "steward newsletter import FILE".
func newsletterCommand(ctx context.Context, cfg *config.Config, log *slog.Logger, pos []string, purpose string, stdout io.Writer) error {
	if len(pos) != 2 || pos[0] != "import" {
		return apperr.New(apperr.Invalid, "usage", "usage: steward newsletter import FILE [--purpose P]")
	}
	f, err := os.Open(pos[1])
	if err != nil {
		return err
	}
	defer f.Close()
	a, err := app.New(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer a.Close()
	start := time.Now()
	rep, err := a.Newsletter().Import(ctx, f, purpose, "operator")
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%d rows in %s: %d imported, %d already subscribed, %d suppressed, %d invalid\n",
		rep.Rows, time.Since(start).Round(time.Millisecond), rep.Imported, rep.Existing, rep.Suppressed, rep.Invalid)
	for _, e := range rep.Errors {
		fmt.Fprintln(stdout, " ", e)
	}
	return nil
}
