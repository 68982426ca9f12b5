package requests

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"steward/internal/account"
	"steward/internal/apperr"
	"steward/internal/mail"
	"steward/internal/store"
	"steward/internal/text"
)

// Requests without an account (P-RIGHT-9). A person who cannot or will not log in
// names themselves, the address to be answered at, the address their data is held
// under and the right. Nothing is looked up: the answer is the same whether or not
// anyone is known by those addresses, and the only effect is a confirmation mail to
// the notification address. The request is its own subject: what it says is sealed
// under a key of its own, shredded a day after it closes (the closing mail, sealed
// under that key, has gone by then), or with the request if the link is never opened.
// Staff verify the requester's identity in the queue before acting on anyone's data.

// TidyArgs is the hourly job that deletes unconfirmed requests and shreds the keys of
// closed ones (Tidy).
type TidyArgs struct{}

// Kind names the job.
func (TidyArgs) Kind() string { return "privacy_requests_tidy" }

// ConfirmTTL is how long a confirmation link works; an unconfirmed request is deleted
// after it.
const ConfirmTTL = 24 * time.Hour

// ShredAfter is how long after a visitor's request closes its key is shredded.
const ShredAfter = 24 * time.Hour

// VisitorSubmission is a request made without logging in.
type VisitorSubmission struct {
	Name        string
	NotifyEmail string // where the requester is answered
	HeldEmail   string // the address the data is held under ("" : the notification address)
	Right       string
	Details     string
	// Document is a copy of an identity document (nil: none sent; staff may ask).
	Document *Document
}

var errBadLink = apperr.New(apperr.Invalid, "token_invalid", "this link is invalid, used or expired")

// SubmitVisitor records a request made without logging in, unconfirmed, and mails
// the notification address a link to confirm it. It answers the same for any
// address.
func (s *Service) SubmitVisitor(ctx context.Context, v VisitorSubmission) error {
	v.Name = strings.TrimSpace(v.Name)
	if v.Name == "" {
		return apperr.Field("name", "required", "is required")
	}
	if err := text.Line("name", v.Name, 200); err != nil {
		return err
	}
	notify, err := account.ValidEmail("email", v.NotifyEmail)
	if err != nil {
		return err
	}
	held := notify
	if strings.TrimSpace(v.HeldEmail) != "" {
		if held, err = account.ValidEmail("held_email", v.HeldEmail); err != nil {
			return err
		}
	}
	if err := CheckRight(v.Right); err != nil {
		return err
	}
	v.Details = strings.TrimSpace(v.Details)
	if NeedsDetails(v.Right) && v.Details == "" {
		return apperr.Field("details", "required", "is required: say what the request is about")
	}
	if err := checkText("details", v.Details, maxDetails); err != nil {
		return err
	}
	var doc []byte
	var docType any
	if v.Document != nil {
		var ctype string
		if doc, ctype, err = checkDocument(*v.Document, s.cfg.MaxDocument); err != nil {
			return err
		}
		docType = ctype
	}
	var raw [32]byte
	_, _ = rand.Read(raw[:]) // crypto/rand.Read never fails
	token := base64.RawURLEncoding.EncodeToString(raw[:])
	now := s.now()
	req := Request{ID: newID(), Requester: Visitor, Right: v.Right, State: Unconfirmed, ReceivedAt: now, DueDate: DueDate(now, 0),
		UpdatedAt: now}
	req.SubjectID = req.ID // the request is its own subject
	// The request's key is made, and its document stored, before the transaction: an
	// upload of megabytes must not hold the database's writer (SQLite has one). A
	// transaction that fails deletes the object below; its key was never committed.
	key, keyRow, err := s.vault.NewKey(req.SubjectID)
	if err != nil {
		return err
	}
	var object string
	var objectArg, sizeArg any
	if doc != nil {
		if object, err = s.putDocument(ctx, key, doc); err != nil {
			return err
		}
		objectArg, sizeArg = object, len(doc)
	}
	err = s.db.InTx(ctx, func(tx *store.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO vault_keys (subject_id, wrapped, epoch, created_at) VALUES ($1, $2, $3, $4)`, keyRow...); err != nil {
			return fmt.Errorf("requests: submit: %w", err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO privacy_requests (id, subject_id, requester, kind, state, received_at, due_date,
			extended_months, details, requester_name, notify_email, held_email, confirm_hash, confirm_expires, linked_id, updated_at,
			document_object, document_type, document_size)
			VALUES ($1, $2, $3, $4, $5, $6, $7, 0, $8, $9, $10, $11, $12, $13, NULL, $14, $15, $16, $17)`,
			req.ID, req.SubjectID, req.Requester, req.Right, req.State, store.Millis(now), string(req.DueDate),
			key.SealOptional(labelDetails, v.Details), key.SealText(labelName, v.Name), key.SealText(labelNotify, notify),
			key.SealText(labelHeld, held), tokenHash(token), store.Millis(now.Add(ConfirmTTL)), store.Millis(now),
			objectArg, docType, sizeArg); err != nil {
			return fmt.Errorf("requests: submit: %w", err)
		}
		if err := s.event(ctx, tx, key, req, ActionCreated, "", Unconfirmed, Actor{Kind: ByRequester}, ""); err != nil {
			return err
		}
		return s.mail.Enqueue(ctx, tx, mail.Transactional{SubjectID: req.SubjectID, To: notify, Template: mail.RequestConfirm,
			Data: map[string]string{"Name": v.Name, "Right": RightName(v.Right),
				"ConfirmLink": s.cfg.BaseURL + "/requests/confirm?token=" + token}})
	})
	if err != nil && object != "" {
		cctx := context.WithoutCancel(ctx)
		if derr := s.cfg.Blobs.Delete(cctx, object); derr != nil {
			// Its key was never committed: what is left cannot be opened.
			s.log.Warn("requests: removing the document of a request not recorded", "err", derr)
		}
	}
	return err
}

func tokenHash(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// Confirm opens a visitor's confirmation link: the request is received from now on
// (the legal clock starts when the address is confirmed), and acknowledged by mail
// with its due date. A link used, expired or never made is one error.
func (s *Service) Confirm(ctx context.Context, token string) (Request, error) {
	if token == "" || len(token) > 100 {
		return Request{}, errBadLink
	}
	var req Request
	err := s.db.InTx(ctx, func(tx *store.Tx) error {
		var id string
		var expires int64
		err := tx.QueryRowContext(ctx, `SELECT id, confirm_expires FROM privacy_requests WHERE confirm_hash = $1`, tokenHash(token)).Scan(&id, &expires)
		if errors.Is(err, sql.ErrNoRows) {
			return errBadLink
		}
		if err != nil {
			return fmt.Errorf("requests: confirm: %w", err)
		}
		if store.Millis(s.now()) > expires {
			return errBadLink
		}
		r, key, err := s.load(ctx, tx, id)
		if err != nil {
			return err
		}
		now := s.now()
		r.ReceivedAt, r.DueDate = now, DueDate(now, 0)
		if _, err := tx.ExecContext(ctx, `UPDATE privacy_requests SET confirm_hash = NULL, confirm_expires = NULL, received_at = $1, due_date = $2
			WHERE id = $3`, store.Millis(now), string(r.DueDate), r.ID); err != nil {
			return fmt.Errorf("requests: confirm: %w", err)
		}
		if err := s.setState(ctx, tx, key, &r, Received, Actor{Kind: ByRequester}, ""); err != nil {
			return err
		}
		req = r
		return s.mailRequester(ctx, tx, r, r.NotifyEmail, mail.RequestReceived, nil)
	})
	return req, err
}

// Tidy deletes visitors' requests never confirmed, with their keys and identity
// documents, once their link has expired; deletes the identity document of every
// closed request, and any document object no request names; and shreds the key of every visitor's request closed more than
// ShredAfter ago (and whose download link, if any, is used or expired), keeping what
// the request was and when (its right, states and dates) but nothing that opens. It
// returns how many requests it deleted and shredded.
func (s *Service) Tidy(ctx context.Context) (deleted, shredded int, err error) {
	now := store.Millis(s.now())
	stale, err := store.Strings(ctx, s.db, `SELECT id FROM privacy_requests WHERE requester = 'visitor' AND state = 'unconfirmed' AND confirm_expires < $1`, now)
	if err != nil {
		return 0, 0, fmt.Errorf("requests: tidy: %w", err)
	}
	for _, id := range stale {
		var obj sql.NullString
		if err := s.db.QueryRowContext(ctx, `SELECT document_object FROM privacy_requests WHERE id = $1`, id).Scan(&obj); err != nil &&
			!errors.Is(err, sql.ErrNoRows) {
			return deleted, shredded, fmt.Errorf("requests: tidy: %w", err)
		}
		if obj.Valid {
			if err := s.cfg.Blobs.Delete(ctx, obj.String); err != nil {
				return deleted, shredded, fmt.Errorf("requests: tidy: %w", err)
			}
		}
		if err := s.db.InTx(ctx, func(tx *store.Tx) error {
			if err := s.vault.Shred(ctx, tx, id); err != nil {
				return err
			}
			_, err := tx.ExecContext(ctx, `DELETE FROM privacy_requests WHERE id = $1 AND state = 'unconfirmed'`, id)
			return err
		}); err != nil {
			return deleted, shredded, fmt.Errorf("requests: tidy: %w", err)
		}
		deleted++
	}
	// An object that cannot be deleted now is tried again next time; it must not hold
	// back the shredding below, which is the promise kept in any case.
	var later error
	if _, err := s.dropDocuments(ctx); err != nil {
		later = fmt.Errorf("requests: tidy: %w", err)
	}
	if _, err := s.dropOrphans(ctx); err != nil {
		later = errors.Join(later, fmt.Errorf("requests: tidy: %w", err))
	}
	// A download link still to be used keeps the key it needs (the address the data is
	// held under) until it is used or expires.
	closed, err := store.Strings(ctx, s.db, `SELECT id FROM privacy_requests WHERE requester = 'visitor' AND shredded_at IS NULL AND closed_at < $1
		AND (download_hash IS NULL OR download_used_at IS NOT NULL OR download_expires < $2)`,
		now-ShredAfter.Milliseconds(), now)
	if err != nil {
		return deleted, shredded, fmt.Errorf("requests: tidy: %w", err)
	}
	for _, id := range closed {
		if err := s.db.InTx(ctx, func(tx *store.Tx) error {
			if err := s.vault.Shred(ctx, tx, id); err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, `UPDATE privacy_requests SET details = NULL, requester_name = NULL, notify_email = NULL,
				held_email = NULL, shredded_at = $1 WHERE id = $2`, now, id); err != nil {
				return err
			}
			_, err := tx.ExecContext(ctx, `UPDATE privacy_request_events SET note = NULL WHERE request_id = $1`, id)
			return err
		}); err != nil {
			return deleted, shredded, errors.Join(later, fmt.Errorf("requests: tidy: %w", err))
		}
		shredded++
	}
	return deleted, shredded, later
}
