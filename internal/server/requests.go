package server

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"steward/internal/account"
	"steward/internal/apperr"
	"steward/internal/consent"
	"steward/internal/requests"
)

// Contacts are whom the privacy center names (from config): the data protection
// officer, the EU representative and the supervisory authority.
type Contacts struct {
	DPO              string
	EURepresentative string
	Authority        string
}

// Exercise is a right a logged-in member exercises from the privacy center.
type Exercise struct {
	Right   string
	Details string // rectification, complaint, inquiry: what the request is about
	// Restricted turns the restriction of processing on or off (restriction).
	Restricted *bool
	// Purpose is the purpose objected to (objection) or whose consent is withdrawn
	// (withdrawal); "" objects to every purpose based on legitimate interest, or
	// withdraws every consent given.
	Purpose  string
	Password string // erasure asks for the password again, as deleting the account does
}

// Exercised is what exercising a right did: the request recorded (Created false when
// the same request was open already), or for erasure the erasure request started.
type Exercised struct {
	Request   requests.Request
	Created   bool
	ErasureID string
}

// Exercise carries out a right through the flow that already does it, and records it
// as a request of the member's: access and portability are the export (the request
// is done; the archive is downloaded from the export's address); restriction,
// objection and withdrawal are decisions in the consent ledger, recorded as done;
// erasure is the erasure of the account, whose own request tracks it (the account's
// requests are erased with it); rectification of what the profile cannot change, a
// complaint and an inquiry wait for staff. src is the consent source of the front end.
func (s *Services) Exercise(r *http.Request, accountID string, ex Exercise, src consent.Source) (Exercised, error) {
	if err := requests.CheckRight(ex.Right); err != nil {
		return Exercised{}, err
	}
	ctx := r.Context()
	sub := requests.Submission{SubjectID: accountID, Right: ex.Right, Details: ex.Details, Fulfilled: true}
	switch ex.Right {
	case requests.Access, requests.Portability:
		sub.Note = "Your data is ready to download as a ZIP archive (CSV and JSON files, with your files), from your account."
	case requests.Restriction:
		if ex.Restricted == nil {
			return Exercised{}, apperr.Field("restricted", "required", "is required: true to restrict processing, false to lift the restriction")
		}
		// The change names its request, on which each processor's acknowledgment of
		// the notice of it is recorded.
		sub.ID = requests.NewID()
		evidence := s.Evidence(r)
		evidence["request_id"] = sub.ID
		if err := s.Consent.SaveChoices(ctx, accountID, nil, ex.Restricted, nil, src, evidence); err != nil {
			return Exercised{}, err
		}
		sub.Note = "Processing of your data is restricted: it is kept but not used."
		if !*ex.Restricted {
			sub.Note = "The restriction of processing is lifted."
		}
	case requests.Objection, requests.Withdrawal:
		note, err := s.objectOrWithdraw(r, accountID, ex, src)
		if err != nil {
			return Exercised{}, err
		}
		sub.Note = note
	case requests.Erasure:
		return s.exerciseErasure(r, accountID, ex.Password)
	default: // rectification, complaint, inquiry: for staff
		sub.Fulfilled = false
	}
	req, created, err := s.Requests.Submit(ctx, sub)
	return Exercised{Request: req, Created: created}, err
}

// WorkRequest is staff's change of a request (requests.Service.Transition). Closing as
// done a request made without a login for erasure, restriction, objection or
// withdrawal first carries the right out, once the requester's identity was verified,
// on the account that proved the address the data is held under: its erasure begins,
// or its processing is restricted, or it objects to every processing on legitimate
// interest, or every consent it gave is withdrawn (source privacy_request, the request
// in the evidence). What was done, or that no data is held, ends the note the
// requester is mailed.
func (s *Services) WorkRequest(r *http.Request, id string, c requests.Change, by requests.Actor) (requests.Request, error) {
	ctx := r.Context()
	if c.State == requests.Done {
		t, err := s.Requests.TargetOf(ctx, id)
		if err != nil {
			return requests.Request{}, err
		}
		req := t.Request
		if req.Requester == requests.Visitor && req.Open() && slices.Contains(requests.Next(req.State), requests.Done) && staffCarriesOut(req.Right) {
			if !t.Verified {
				return requests.Request{}, requests.ErrUnverified
			}
			// Room for what was done, which ends the note: checked before anything is.
			if len(c.Note) > requests.MaxNote-300 {
				return requests.Request{}, apperr.Field("note", "too_long", fmt.Sprintf("must be at most %d characters here: what was done is added to it", requests.MaxNote-300))
			}
			did := "The request was carried out."
			if req.LinkedID == "" {
				// Claimed once: a second click, or a retry after the state change failed,
				// does not carry the right out again.
				ok, err := s.Requests.ClaimCarryOut(ctx, id)
				if err != nil {
					return requests.Request{}, err
				}
				if !ok {
					return requests.Request{}, apperr.New(apperr.Conflict, "carrying_out", "the request is being carried out: reload the page")
				}
				linked := req.Right
				did = "We hold no personal data under the address given."
				if t.Holder != "" {
					if did, linked, err = s.carryOut(r, t); err != nil {
						if rerr := s.Requests.CarriedOut(ctx, id, ""); rerr != nil {
							err = errors.Join(err, rerr)
						}
						return requests.Request{}, err
					}
				}
				if err := s.Requests.CarriedOut(ctx, id, linked); err != nil {
					return requests.Request{}, err
				}
			}
			c.Note = strings.TrimSpace(c.Note + "\n\n" + did)
		}
	}
	return s.Requests.Transition(ctx, id, c, by)
}

// Rectification is staff's correction of a member's profile answering a rectification
// request: the fields to set (nil: unchanged). The address is not among them: a new
// address is proven by its owner's link.
type Rectification struct {
	Name, Phone, HomeAddress, BusinessAddress, Birthdate, Country *string
}

// Rectify applies staff's correction for an open rectification request to the account
// it is about (a visitor's only once the identity is verified): the profile changes as
// the member's own edit would (the processors that hold a changed field are told, the
// request named), a minor's birthdate and country included, and the fields changed are
// an event of the request.
func (s *Services) Rectify(r *http.Request, id string, c Rectification, by requests.Actor) (requests.Request, error) {
	ctx := r.Context()
	t, err := s.Requests.TargetOf(ctx, id)
	if err != nil {
		return requests.Request{}, err
	}
	req := t.Request
	switch {
	case req.Right != requests.Rectification:
		return req, apperr.New(apperr.Conflict, "not_rectification", "only a rectification request is answered with a correction")
	case !req.Open():
		return req, apperr.New(apperr.Conflict, "request_closed", "the request is closed")
	case req.Requester == requests.Visitor && !t.Verified:
		return req, requests.ErrUnverified
	case t.Holder == "":
		return req, apperr.New(apperr.Conflict, "no_data_held", "no account proved the address the data is said to be held under")
	}
	before, err := s.Accounts.Profile(ctx, t.Holder)
	if err != nil {
		return req, err
	}
	patch := account.Patch{Name: c.Name, Phone: c.Phone, HomeAddress: c.HomeAddress, BusinessAddress: c.BusinessAddress,
		Birthdate: c.Birthdate, Country: c.Country, RequestID: id, Staff: true}
	after, err := s.Accounts.Update(ctx, t.Holder, patch, s.Meta(r))
	if err != nil {
		return req, err
	}
	changed := account.Rectified(before, after)
	if len(changed) == 0 {
		return req, apperr.New(apperr.Invalid, "nothing_changed", "the correction changes nothing: give at least one field's new value")
	}
	if err := s.Requests.Rectified(ctx, id, changed, by); err != nil {
		return req, err
	}
	req, _, err = s.Requests.Get(ctx, id)
	return req, err
}

// staffCarriesOut are the rights a visitor's request carries out when it is done.
func staffCarriesOut(right string) bool {
	switch right {
	case requests.Erasure, requests.Restriction, requests.Objection, requests.Withdrawal:
		return true
	}
	return false
}

// carryOut carries a visitor's right out on the account t is about and says what it
// did, and what carried it out (the erasure's id, or the right).
func (s *Services) carryOut(r *http.Request, t requests.Target) (did, linked string, err error) {
	ctx := r.Context()
	ev := s.Evidence(r)
	ev["request_id"] = t.Request.ID
	switch t.Request.Right {
	case requests.Erasure:
		subj, err := s.Accounts.Subject(ctx, t.Holder)
		if err != nil {
			return "", "", err
		}
		id, err := s.Rights.RequestErasure(ctx, subj, "privacy_request")
		if err != nil {
			return "", "", err
		}
		return "The erasure of the account and of everything we hold about it has begun (erasure " + id + ").", id, nil
	case requests.Restriction:
		yes := true
		if err := s.Consent.SaveChoices(ctx, t.Holder, nil, &yes, nil, consent.SourceRequest, ev); err != nil {
			return "", "", err
		}
		return "Processing of the data is restricted: it is kept but not used.", t.Request.Right, nil
	case requests.Objection:
		yes := true
		if err := s.Consent.SaveChoices(ctx, t.Holder, nil, nil, &yes, consent.SourceRequest, ev); err != nil {
			return "", "", err
		}
		return "The objection to every processing based on legitimate interest, and to all marketing, is recorded.", t.Request.Right, nil
	default: // withdrawal
		list, _, err := s.Consent.Choices(ctx, t.Holder)
		if err != nil {
			return "", "", err
		}
		choices := map[string]bool{}
		for _, c := range list {
			if c.Purpose.NeedsConsent() && c.Decision == consent.Granted {
				choices[c.Purpose.Key] = false
			}
		}
		if len(choices) == 0 {
			return "No consent was given: there was none to withdraw.", t.Request.Right, nil
		}
		if err := s.Consent.SaveChoices(ctx, t.Holder, choices, nil, nil, consent.SourceRequest, ev); err != nil {
			return "", "", err
		}
		return "Every consent given is withdrawn. What was done before stays lawful.", t.Request.Right, nil
	}
}

// objectOrWithdraw records an objection or a withdrawal in the consent ledger and says
// what it did.
func (s *Services) objectOrWithdraw(r *http.Request, accountID string, ex Exercise, src consent.Source) (string, error) {
	if ex.Purpose == "" && ex.Right == requests.Objection {
		yes := true
		if err := s.SaveChoices(r, accountID, nil, nil, &yes, src); err != nil {
			return "", err
		}
		return "You object to every processing of your data based on legitimate interest.", nil
	}
	choices := map[string]bool{}
	var names []string
	if ex.Purpose != "" {
		p, ok := s.Consent.Register().Purpose(ex.Purpose)
		if !ok {
			return "", apperr.Field("purpose", "purpose_unknown", "is not a purpose of the register")
		}
		if ex.Right == requests.Objection && !p.Objectable() {
			return "", apperr.Field("purpose", "not_objectable", "is not based on legitimate interest: withdraw consent instead, or ask us in an inquiry")
		}
		if ex.Right == requests.Withdrawal && !p.NeedsConsent() {
			return "", apperr.Field("purpose", "not_consent", "is not based on consent: object to it instead")
		}
		choices[p.Key], names = false, []string{p.Name}
	} else {
		list, _, err := s.Consent.Choices(r.Context(), accountID)
		if err != nil {
			return "", err
		}
		for _, c := range list {
			if c.Purpose.NeedsConsent() && c.Decision == consent.Granted {
				choices[c.Purpose.Key] = false
				names = append(names, c.Purpose.Name)
			}
		}
		if len(choices) == 0 {
			return "", apperr.New(apperr.Conflict, "nothing_to_withdraw", "you have given no consent to withdraw")
		}
	}
	if err := s.SaveChoices(r, accountID, choices, nil, nil, src); err != nil {
		return "", err
	}
	if ex.Right == requests.Objection {
		return "You object to: " + strings.Join(names, ", ") + ".", nil
	}
	return "Consent withdrawn for: " + strings.Join(names, ", ") + ". What was done before stays lawful.", nil
}

// exerciseErasure starts the erasure of the account after checking the password
// again, as deleting the account does.
func (s *Services) exerciseErasure(r *http.Request, accountID, password string) (Exercised, error) {
	ctx := r.Context()
	if password == "" {
		return Exercised{}, apperr.Field("password", "required", "is required to erase your account")
	}
	if err := s.Limits.PasswordCheck(ctx, accountID); err != nil {
		return Exercised{}, err
	}
	if err := s.Accounts.CheckPassword(ctx, accountID, "password", password); err != nil {
		return Exercised{}, err
	}
	subj, err := s.Accounts.Subject(ctx, accountID)
	if err != nil {
		return Exercised{}, err
	}
	id, err := s.Rights.RequestErasure(ctx, subj, "member")
	if err != nil {
		return Exercised{}, err
	}
	now := s.Now()
	return Exercised{ErasureID: id, Created: true, Request: requests.Request{ID: id, SubjectID: accountID, Requester: requests.Member,
		Right: requests.Erasure, State: requests.InProgress, ReceivedAt: now, DueDate: requests.DueDate(now, 0), UpdatedAt: now}}, nil
}

// SubmitVisitorLimited records a request made without logging in, under its rate
// limits (per IP and per notification address): a confirmation mail goes out, nothing
// else, and the answer is the same for any address.
func (s *Services) SubmitVisitorLimited(r *http.Request, v requests.VisitorSubmission) error {
	if err := s.Limits.Request(r.Context(), s.ClientIP(r), v.NotifyEmail); err != nil {
		return err
	}
	return s.Requests.SubmitVisitor(r.Context(), v)
}

// maxVisitorField bounds each text field of a visitor's multipart request.
const maxVisitorField = 64 << 10

// VisitorFrom reads a request made without logging in from a multipart form: the
// fields name, email, held_email, right and details, and the file document (a copy of
// an identity document, optional). The document is read into memory, at most the
// desk's limit and never to a temporary file, so that its type is checked from its
// content and nothing is stored before the whole request is good.
func (s *Services) VisitorFrom(w http.ResponseWriter, r *http.Request) (requests.VisitorSubmission, error) {
	var v requests.VisitorSubmission
	// The body may be megabytes: its own budget per IP is spent before it is read
	// (the address's budget needs the body, and is spent after).
	if err := s.Limits.RequestUpload(r.Context(), s.ClientIP(r)); err != nil {
		return v, err
	}
	limit := s.Requests.MaxDocument()
	r.Body = http.MaxBytesReader(w, r.Body, limit+1<<20)
	mr, err := r.MultipartReader()
	if err != nil {
		return v, apperr.New(apperr.Invalid, "multipart_invalid", "the form cannot be read: "+err.Error())
	}
	fields := map[string]*string{"name": &v.Name, "email": &v.NotifyEmail, "held_email": &v.HeldEmail, "right": &v.Right, "details": &v.Details}
	for range 32 {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			return v, nil
		}
		if err != nil {
			return v, partError(err, "the form cannot be read")
		}
		name := part.FormName()
		if name == "document" {
			if part.FileName() == "" && v.Document == nil {
				continue // the file input left empty
			}
			data, err := io.ReadAll(io.LimitReader(part, limit+1))
			if err != nil {
				return v, partError(err, "the document cannot be read")
			}
			if int64(len(data)) > limit {
				return v, &apperr.Error{Kind: apperr.TooLarge, Code: "document_too_large", Field: "document",
					Message: "is too large: " + requests.DocumentLimit(limit)}
			}
			v.Document = &requests.Document{Name: part.FileName(), ContentType: part.Header.Get("Content-Type"), Body: bytes.NewReader(data)}
			continue
		}
		dst, ok := fields[name]
		if !ok {
			continue
		}
		b, err := io.ReadAll(io.LimitReader(part, maxVisitorField+1))
		if err != nil {
			return v, partError(err, "the form cannot be read")
		}
		if len(b) > maxVisitorField {
			return v, apperr.Field(name, "too_long", "is too long")
		}
		*dst = string(b)
	}
	return v, apperr.New(apperr.Invalid, "multipart_invalid", "the form has too many parts")
}

// partError words a failure to read a multipart body: too large, or broken.
func partError(err error, what string) error {
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return apperr.New(apperr.TooLarge, "body_too_large", "the form is too large")
	}
	return apperr.New(apperr.Invalid, "multipart_invalid", what+": "+err.Error())
}

// ErrNoDataHeld answers a download link whose member is gone.
var ErrNoDataHeld = apperr.New(apperr.NotFound, "no_data_held", "we hold no personal data under the address given (any account there has been erased)")

// WriteRequestDownload uses a one-time download link and answers with the export of
// the member it delivers, as the member's own export.
func (s *Services) WriteRequestDownload(w http.ResponseWriter, r *http.Request, token string, fail FailFunc) {
	got, err := s.Requests.Redeem(r.Context(), token)
	if err != nil {
		fail(w, r, err)
		return
	}
	if got.AccountID == "" {
		fail(w, r, ErrNoDataHeld)
		return
	}
	subj, err := s.Accounts.Subject(r.Context(), got.AccountID)
	if apperr.KindOf(err) == apperr.NotFound {
		err = ErrNoDataHeld
	}
	if err != nil {
		fail(w, r, err)
		return
	}
	s.WriteExport(w, r, subj, fail)
}

// ServeRequestDocument answers with a visitor's identity document as an attachment,
// never rendered by the browser; staff opening it is recorded on the request and in
// the audit log.
func (s *Services) ServeRequestDocument(w http.ResponseWriter, r *http.Request, by requests.Actor, fail FailFunc) {
	// Opening it is recorded: a link from another site (which a Lax session cookie
	// follows) must not open it in the DPO's name.
	if r.Header.Get("Sec-Fetch-Site") == "cross-site" {
		fail(w, r, apperr.New(apperr.Forbidden, "cross_site", "open the document from its request's page"))
		return
	}
	id := r.PathValue("id")
	info, rc, err := s.Requests.Document(r.Context(), id, by)
	if err != nil {
		fail(w, r, err)
		return
	}
	defer rc.Close()
	req, _, err := s.Requests.Get(r.Context(), id)
	if err != nil {
		fail(w, r, err)
		return
	}
	if err := s.RecordRequestReads(r, StaffSession(by.ID), "identity document of a privacy request", req); err != nil {
		fail(w, r, err)
		return
	}
	h := w.Header()
	h.Set("Content-Type", info.ContentType)
	h.Set("Content-Disposition", ContentDisposition("identity-document-"+id+info.Extension()))
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Security-Policy", "sandbox; default-src 'none'")
	h.Set("Cache-Control", "private, no-store")
	h.Set("Content-Length", strconv.FormatInt(info.Size, 10))
	if _, err := io.Copy(w, rc); err != nil {
		// The headers are gone: a broken download, not a truncated file that looks whole.
		s.Log.Warn("requests: sending an identity document", "request", id, "err", err)
		panic(http.ErrAbortHandler)
	}
}
