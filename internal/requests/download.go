package requests

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"time"

	"steward/internal/apperr"
	"steward/internal/store"
	"steward/internal/vault"
)

// Access and portability requests that staff fulfil are answered with a one-time
// download link, never an attachment: the mail may be read by others and kept for
// years, the link works once and for DownloadTTL. Only the SHA-256 of its token is
// stored. For a visitor, the data is that of the account that proved the address the
// data is said to be held under (found by its blind index, never said before the
// visitor's identity was verified); when no account did, the answer says that no data
// is held, and no link is sent. The link names no one: whoever opens it gets the
// export of the member found when it is opened (or "no data", if that member was
// erased meanwhile), and its use is an event of the request.

// DefaultDownloadTTL is how long a download link works when the config says nothing.
const DefaultDownloadTTL = 7 * 24 * time.Hour

var (
	errBadDownload     = apperr.New(apperr.Invalid, "download_invalid", "this download link is invalid: open the link from the mail exactly as it is")
	errDownloadUsed    = apperr.New(apperr.Conflict, "download_used", "this download link was used already: it works once. Make a new request if you need another copy")
	errDownloadExpired = apperr.New(apperr.Invalid, "download_expired", "this download link has expired. Make a new request if you still need a copy")
	errUnverified      = apperr.New(apperr.Conflict, "identity_unverified", "verify the requester's identity before you send anyone's data")
)

// DeliversData reports whether fulfilling a request for the right sends the
// requester their data (as a one-time download link).
func DeliversData(right string) bool { return right == Access || right == Portability }

// verified reports whether staff marked the request's identity verified.
func (s *Service) verified(ctx context.Context, q store.Querier, id string) (bool, error) {
	var n int
	if err := q.QueryRowContext(ctx, `SELECT count(*) FROM privacy_request_events WHERE request_id = $1 AND action = $2`, id, ActionIdentity).
		Scan(&n); err != nil {
		return false, fmt.Errorf("requests: verified: %w", err)
	}
	return n > 0, nil
}

// Target is what staff closing a request act on: the request, whether the
// requester's identity was verified, and the account whose data it is about ("" when
// none: no account proved the address a visitor gave).
type Target struct {
	Request  Request
	Verified bool
	Holder   string
}

// TargetOf returns the Target of a request.
func (s *Service) TargetOf(ctx context.Context, id string) (Target, error) {
	req, _, err := s.Get(ctx, id)
	if err != nil {
		return Target{}, err
	}
	t := Target{Request: req}
	if t.Verified, err = s.verified(ctx, s.db, id); err != nil {
		return Target{}, err
	}
	if t.Holder, err = s.holderOf(ctx, req); err != nil {
		return Target{}, err
	}
	return t, nil
}

// ErrUnverified refuses to act on a visitor's request before the identity check.
var ErrUnverified = errUnverified

// holderOf is the account whose data the request is about, or "" when none.
func (s *Service) holderOf(ctx context.Context, req Request) (string, error) {
	if req.Requester == Member {
		return req.SubjectID, nil
	}
	if req.HeldEmail == "" {
		return "", nil
	}
	return s.dir.Member(ctx, req.HeldEmail)
}

// fulfil answers an access or portability request being closed as done in tx: a
// download link is made and its mail data returned, or the answer that no data is
// held. It records what it did as an event.
func (s *Service) fulfil(ctx context.Context, tx *store.Tx, key *vault.Key, req Request, by Actor) (map[string]string, error) {
	if req.Requester == Visitor {
		ok, err := s.verified(ctx, tx, req.ID)
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, errUnverified
		}
	}
	holder, err := s.holderOf(ctx, req)
	if err != nil {
		return nil, err
	}
	if holder == "" {
		const note = "We hold no personal data under the address given."
		if err := s.event(ctx, tx, key, req, ActionNoData, req.State, req.State, by, note); err != nil {
			return nil, err
		}
		return map[string]string{"NoData": note}, nil
	}
	var raw [32]byte
	_, _ = rand.Read(raw[:]) // crypto/rand.Read never fails
	token := base64.RawURLEncoding.EncodeToString(raw[:])
	expires := s.now().Add(s.cfg.DownloadTTL)
	// The account found now, after the identity check, is the one the link delivers:
	// not whoever holds the address when the link is opened.
	if _, err := tx.ExecContext(ctx, `UPDATE privacy_requests SET download_hash = $1, download_expires = $2, download_used_at = NULL, linked_id = $3
		WHERE id = $4`, tokenHash(token), store.Millis(expires), holder, req.ID); err != nil {
		return nil, fmt.Errorf("requests: download link: %w", err)
	}
	until := DateOf(expires).Long()
	if err := s.event(ctx, tx, key, req, ActionLinkSent, req.State, req.State, by, "A one-time download link, valid until "+until+", was mailed."); err != nil {
		return nil, err
	}
	return map[string]string{"Download": s.cfg.BaseURL + "/requests/download?token=" + url.QueryEscape(token), "Expires": until}, nil
}

// Redeemed is a download link used: the request, and the account whose data it
// delivers ("" when none is held any more).
type Redeemed struct {
	Request   Request
	AccountID string
}

// Redeem uses a download link: once, before it expires. The use is an event of the
// request, recorded before the data is sent (a download that breaks half-way has used
// the link: a second one is a new request).
func (s *Service) Redeem(ctx context.Context, token string) (Redeemed, error) {
	if token == "" || len(token) > 100 {
		return Redeemed{}, errBadDownload
	}
	var out Redeemed
	err := s.db.InTx(ctx, func(tx *store.Tx) error {
		var id string
		var expires int64
		var used sql.NullInt64
		err := tx.QueryRowContext(ctx, `SELECT id, download_expires, download_used_at FROM privacy_requests WHERE download_hash = $1`,
			tokenHash(token)).Scan(&id, &expires, &used)
		if errors.Is(err, sql.ErrNoRows) {
			return errBadDownload
		}
		if err != nil {
			return fmt.Errorf("requests: download: %w", err)
		}
		now := store.Millis(s.now())
		switch {
		case used.Valid:
			return errDownloadUsed
		case now > expires:
			return errDownloadExpired
		}
		res, err := tx.ExecContext(ctx, `UPDATE privacy_requests SET download_used_at = $1 WHERE id = $2 AND download_used_at IS NULL`, now, id)
		if err != nil {
			return fmt.Errorf("requests: download: %w", err)
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return errDownloadUsed // another use came first
		}
		req, key, err := s.load(ctx, tx, id)
		if errors.Is(err, errClosed) {
			return errDownloadExpired // its key is gone: nothing can be sent
		}
		if err != nil {
			return err
		}
		holder, err := s.holderOf(ctx, req)
		if err != nil {
			return err
		}
		// Only the account staff verified the requester against, and only while it
		// still holds the address: another account that proved the address since is
		// someone else.
		if req.LinkedID == "" || holder == req.LinkedID {
			out.AccountID = holder
		}
		out.Request = req
		return s.event(ctx, tx, key, req, ActionDownloaded, req.State, req.State, Actor{Kind: ByRequester}, "")
	})
	return out, err
}

// CheckDownload reports whether a download link can still be used, without using it
// (the page that shows the button says so at once).
func (s *Service) CheckDownload(ctx context.Context, token string) error {
	if token == "" || len(token) > 100 {
		return errBadDownload
	}
	var expires int64
	var used sql.NullInt64
	err := s.db.QueryRowContext(ctx, `SELECT download_expires, download_used_at FROM privacy_requests WHERE download_hash = $1`,
		tokenHash(token)).Scan(&expires, &used)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return errBadDownload
	case err != nil:
		return fmt.Errorf("requests: download: %w", err)
	case used.Valid:
		return errDownloadUsed
	case store.Millis(s.now()) > expires:
		return errDownloadExpired
	}
	return nil
}
