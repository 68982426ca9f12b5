package main

// The figures of the rights desk (-only rights), each against its target of issue 13:
//   - member-erasure: one member with -erasure-rows rows across the holders (consent
//     decisions, the security log, sessions, the files' access log) and -erasure-files
//     files (uploaded through the files service, so stored and sealed as any), among
//     as many rows of other members, erased through rights.EraseNow: at most 2 s;
//   - queue: the dpo's queue (GET /api/v1/staff/requests?state=open, its first page of
//     200, and the page /staff/requests) with -open-requests open requests: p99 at
//     most 100 ms;
//   - deadlines: the daily deadline job (requests.Service.WarnDue: the counts, and the
//     mail to the dpo) over the same number of requests: at most 1 s;
//   - staff-read: what recording a staff read costs support's member-view, with and
//     without recording (access.go): at most 10% (issue 14).
// The rows are written in bulk, straight into the tables, as Steward stores them.

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/pquerna/otp/totp"

	"steward/internal/app"
	"steward/internal/files"
	"steward/internal/jobs"
	"steward/internal/requests"
	"steward/internal/server"
	"steward/internal/store"
)

// rightsFigures are the figures -only can name one by one.
var rightsFigures = []string{"member-erasure", "queue", "deadlines", "staff-read"}

// rightsOpts are the sizes of the rights figures (flags).
type rightsOpts struct {
	dbURL        string
	steward      []string
	figures      map[string]bool
	erasureRows  int // rows of the erased member across the holders
	erasureFiles int // files of the erased member
	openRequests int // open requests of the queue and deadline figures
	queueN       int // first pages measured
	profilePath  string
}

func (o rightsOpts) mail() mailOpts {
	return mailOpts{dbURL: o.dbURL, steward: o.steward, profilePath: o.profilePath}
}

func rightsRows(o rightsOpts) ([]row, error) {
	ctx := context.Background()
	engine := "SQLite"
	if o.dbURL != "" {
		engine = "PostgreSQL"
	}
	fmt.Printf("Steward rights benchmark: %s\n", engine)
	return runFigures(ctx, o, o.figures, []figure[rightsOpts]{
		{"member-erasure", memberErasureRows},
		{"queue", queueRows},
		{"deadlines", deadlineRows},
		{"staff-read", staffReadRows},
	})
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// bulkRows writes rows into table in tx, 500 to a statement.
func bulkRows(ctx context.Context, tx *store.Tx, table string, cols []string, rows [][]any) error {
	bk := tx.Bulk(table, cols, 500, "")
	for _, r := range rows {
		if err := bk.Add(ctx, r...); err != nil {
			bk.Close(ctx)
			return fmt.Errorf("%s: %w", table, err)
		}
	}
	if err := bk.Close(ctx); err != nil {
		return fmt.Errorf("%s: %w", table, err)
	}
	return nil
}

// analyze brings the planner's statistics up to date after a bulk write, as
// autovacuum (PostgreSQL) or the start's optimize (SQLite) would.
func analyze(ctx context.Context, b *benchApp) error {
	q := `ANALYZE`
	if b.DB().Dialect == store.Postgres {
		q = `VACUUM ANALYZE`
	}
	_, err := b.DB().ExecContext(ctx, q)
	return err
}

// ---- 1. One member with many rows and files, erased.

func memberErasureRows(ctx context.Context, o rightsOpts) ([]row, error) {
	b, err := newApp(ctx, o.mail(), true)
	if err != nil {
		return nil, err
	}
	defer b.Close()
	const email = "heavy.user@example.org"
	if err := memberWith(ctx, b.App, b.base, map[string]string{"email": email, "password": richPassword, "name": "Heavy User",
		"birthdate": "1980-01-01", "country": "DE"}, b.dir); err != nil {
		return nil, err
	}
	subj, err := b.Accounts().Lookup(ctx, email)
	if err != nil {
		return nil, err
	}
	id := subj.ID
	t := time.Now()
	for i := range o.erasureFiles {
		body := bytes.Repeat([]byte(fmt.Sprintf("file %d of the heavy user\n", i)), 40)
		if _, err := b.Files().Upload(ctx, id, files.Upload{Name: fmt.Sprintf("note-%04d.txt", i), ContentType: "text/plain",
			Size: int64(len(body)), Body: bytes.NewReader(body), IP: "198.51.100.7"}); err != nil {
			return nil, fmt.Errorf("upload %d: %w", i, err)
		}
	}
	key, err := b.Vault().DataKey(ctx, id, false)
	if err != nil {
		return nil, err
	}
	// The member's rows, spread across the holders as a long-used account has them,
	// and as many of others' (so that every statement finds the member's among them;
	// sessions, which need an account, excepted).
	n := o.erasureRows
	nConsent, nAudit, nSessions := n*45/100, n*30/100, n*10/100
	nAccess := n - nConsent - nAudit - nSessions - 2*o.erasureFiles // uploads made one access row each, and a file row
	now := store.Millis(time.Now())
	mine := map[string][][]any{}
	others := map[string][][]any{}
	for i := range nConsent {
		d := "granted"
		if i%2 == 1 {
			d = "withdrawn"
		}
		mine["consent_events"] = append(mine["consent_events"], []any{int64(10_000_000 + i), id, "newsletter", d, "api", "2026.1",
			key.SealText("consent_events.evidence", `{"ip":"198.51.100.7"}`), now - int64(nConsent-i)*1000})
		others["consent_events"] = append(others["consent_events"], []any{int64(20_000_000 + i), randomHex(16), "newsletter", d, "api",
			"2026.1", "sealed", now - int64(i)*1000})
	}
	for i := range nAudit {
		mine["audit_log"] = append(mine["audit_log"], []any{now - int64(i)*1000, "login", id, key.SealText("audit_log.ip", "198.51.100.8"),
			key.SealText("audit_log.detail", ""), 1})
		others["audit_log"] = append(others["audit_log"], []any{now - int64(i)*1000, "login", randomHex(16), "sealed", "sealed", 1})
	}
	for i := range nSessions {
		seen := now - int64(i)*60_000
		mine["sessions"] = append(mine["sessions"], []any{randomHex(32), id, seen - 3600_000, seen, seen + 30*86400_000,
			key.SealText("sessions.ip", "198.51.100.9"), key.SealText("sessions.user_agent", "Mozilla/5.0 Firefox/140.0")})
	}
	for i := range max(nAccess, 0) {
		mine["file_access_log"] = append(mine["file_access_log"], []any{randomHex(16), id, id, "download",
			key.SealText("file_access_log.ip", "198.51.100.7"), now - int64(i)*1000})
		others["file_access_log"] = append(others["file_access_log"], []any{randomHex(16), randomHex(16), nil, "download", "sealed",
			now - int64(i)*1000})
	}
	cols := map[string][]string{
		"consent_events":  {"id", "subject_id", "purpose", "decision", "source", "policy_version", "evidence", "at"},
		"audit_log":       {"at", "event", "account_id", "ip", "detail", "sealed"},
		"sessions":        {"id", "account_id", "created_at", "last_seen_at", "expires_at", "ip", "user_agent"},
		"file_access_log": {"file_id", "owner_id", "actor_id", "action", "ip", "at"},
	}
	tables := []string{"consent_events", "audit_log", "sessions", "file_access_log"}
	if err := b.DB().InTx(ctx, func(tx *store.Tx) error {
		for _, tb := range tables {
			if err := bulkRows(ctx, tx, tb, cols[tb], mine[tb]); err != nil {
				return err
			}
			if err := bulkRows(ctx, tx, tb, cols[tb], others[tb]); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		return nil, err
	}
	if err := analyze(ctx, b); err != nil {
		return nil, err
	}
	count := func() (int, error) {
		total := 0
		for _, q := range []string{`SELECT count(*) FROM consent_events WHERE subject_id = $1`, `SELECT count(*) FROM audit_log WHERE account_id = $1`,
			`SELECT count(*) FROM sessions WHERE account_id = $1`, `SELECT count(*) FROM file_access_log WHERE owner_id = $1`,
			`SELECT count(*) FROM files WHERE owner_id = $1`} {
			var c int
			if err := b.DB().QueryRowContext(ctx, q, id).Scan(&c); err != nil {
				return 0, err
			}
			total += c
		}
		return total, nil
	}
	before, err := count()
	if err != nil {
		return nil, err
	}
	fmt.Printf("  member-erasure: %d rows (%d files) of the member, and %d of others, written in %.1f s%s\n",
		before, o.erasureFiles, len(others["consent_events"])+len(others["audit_log"])+len(others["file_access_log"]),
		time.Since(t).Seconds(), dbSize(ctx, b))
	// The baseline: deleting as many objects of the same size from the file store
	// alone, each made durable as the erasure makes it (the store's Delete).
	body := bytes.Repeat([]byte("x"), 1000)
	for i := range o.erasureFiles {
		if _, err := b.Blobs().Put(ctx, fmt.Sprintf("bench/%04d", i), bytes.NewReader(body), int64(len(body))); err != nil {
			return nil, err
		}
	}
	t = time.Now()
	for i := range o.erasureFiles {
		if err := b.Blobs().Delete(ctx, fmt.Sprintf("bench/%04d", i)); err != nil {
			return nil, err
		}
	}
	deletes := time.Since(t)
	var took time.Duration
	err = profiled(o.mail(), "member-erasure", func() error {
		t := time.Now()
		err := b.Rights().EraseNow(ctx, id, "bench")
		took = time.Since(t)
		return err
	})
	if err != nil {
		return nil, err
	}
	left, err := count()
	if err != nil {
		return nil, err
	}
	if left != 0 {
		return nil, fmt.Errorf("%d rows of the erased member remain", left)
	}
	return []row{{fmt.Sprintf("erasure of a member, %d rows, %d files, s (base: deletes)", before, o.erasureFiles),
		fmt.Sprintf("%.2f", took.Seconds()), fmt.Sprintf("%.2f", deletes.Seconds()), ratio(took.Seconds(), deletes.Seconds()), "<= 2 s"}}, nil
}

// ---- 2 and 3. The queue, and the daily deadline job.

// requestsApp builds a Steward served with n open requests (and their first events),
// received over the last 40 days, some overdue, and a dpo; it returns the dpo's token.
func requestsApp(ctx context.Context, o rightsOpts, opts ...app.Option) (*benchApp, string, error) {
	b, err := newAppWith(ctx, o.mail(), true, opts)
	if err != nil {
		return nil, "", err
	}
	const email = "dpo@example.org"
	if err := memberWith(ctx, b.App, b.base, map[string]string{"email": email, "password": richPassword, "name": "Dana Dpo",
		"birthdate": "1980-01-01", "country": "DE"}, b.dir); err != nil {
		b.Close()
		return nil, "", err
	}
	subj, err := b.Accounts().Lookup(ctx, email)
	if err == nil {
		err = b.Staff().Grant(ctx, subj.ID, requests.WarnRole)
	}
	if err != nil {
		b.Close()
		return nil, "", err
	}
	body, _ := json.Marshal(map[string]string{"email": email, "password": richPassword})
	req, _ := http.NewRequest("POST", b.base+"/api/v1/sessions", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	var out struct{ Token string }
	if err := doJSON(&http.Client{}, req, http.StatusCreated, &out); err != nil {
		b.Close()
		return nil, "", err
	}
	if err := passSecondFactor(b.base, out.Token); err != nil {
		b.Close()
		return nil, "", err
	}
	// The deadline job runs at the start: it ran (on no request) before any is written,
	// so that it does not run on them while a figure is measured.
	for deadline := time.Now().Add(30 * time.Second); !slices.ContainsFunc(b.Jobs().Runs(), func(r jobs.Run) bool {
		return r.Kind == (requests.WarnArgs{}).Kind()
	}); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			b.Close()
			return nil, "", fmt.Errorf("the deadline job did not run at the start")
		}
	}
	t := time.Now()
	states := []string{requests.Received, requests.Received, requests.Verifying, requests.InProgress}
	rights := []string{requests.Access, requests.Erasure, requests.Rectification, requests.Objection, requests.Complaint}
	var reqRows, evRows [][]any
	now := time.Now()
	for i := range o.openRequests {
		received := now.Add(-time.Duration(splitmix(uint64(i))%(40*86400)) * time.Second)
		rid, subject := randomHex(16), randomHex(16)
		st := states[i%len(states)]
		reqRows = append(reqRows, []any{rid, subject, requests.Member, rights[i%len(rights)], st, store.Millis(received),
			string(requests.DueDate(received, 0)), 0, store.Millis(received)})
		evRows = append(evRows, []any{rid, subject, store.Millis(received), requests.ActionCreated, "", requests.Received, requests.ByRequester})
	}
	if err := b.DB().InTx(ctx, func(tx *store.Tx) error {
		if err := bulkRows(ctx, tx, "privacy_requests", []string{"id", "subject_id", "requester", "kind", "state", "received_at", "due_date",
			"extended_months", "updated_at"}, reqRows); err != nil {
			return err
		}
		return bulkRows(ctx, tx, "privacy_request_events", []string{"request_id", "subject_id", "at", "action", "from_state", "to_state", "actor"}, evRows)
	}); err != nil {
		b.Close()
		return nil, "", err
	}
	if err := analyze(ctx, b); err != nil {
		b.Close()
		return nil, "", err
	}
	fmt.Printf("  %d open requests written in %.1f s%s\n", o.openRequests, time.Since(t).Seconds(), dbSize(ctx, b))
	return b, out.Token, nil
}

func queueRows(ctx context.Context, o rightsOpts) ([]row, error) {
	b, token, err := requestsApp(ctx, o)
	if err != nil {
		return nil, err
	}
	defer b.Close()
	client := &http.Client{}
	get := func(path string, cookie bool) error {
		req, _ := http.NewRequest("GET", b.base+path, nil)
		if cookie {
			req.AddCookie(&http.Cookie{Name: server.CookieName, Value: token})
		} else {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		var buf bytes.Buffer
		_, err = buf.ReadFrom(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s: %d %s", path, resp.StatusCode, buf.Bytes()[:min(buf.Len(), 200)])
		}
		if !cookie && strings.Count(buf.String(), `"due_date"`) != 200 {
			return fmt.Errorf("%s: the first page does not hold 200 requests", path)
		}
		return err
	}
	measure := func(path string, cookie bool) ([]time.Duration, error) {
		for range 10 { // warm up
			if err := get(path, cookie); err != nil {
				return nil, err
			}
		}
		var d []time.Duration
		err := profiled(o.mail(), "queue", func() error {
			for range o.queueN {
				t := time.Now()
				if err := get(path, cookie); err != nil {
					return err
				}
				d = append(d, time.Since(t))
			}
			return nil
		})
		slices.Sort(d)
		return d, err
	}
	api, err := measure("/api/v1/staff/requests?state=open", false)
	if err != nil {
		return nil, err
	}
	page, err := measure("/staff/requests", true)
	if err != nil {
		return nil, err
	}
	if explain {
		prefix := "EXPLAIN QUERY PLAN "
		if b.DB().Dialect == store.Postgres {
			prefix = "EXPLAIN "
		}
		for _, q := range []string{
			fmt.Sprintf(`SELECT (SELECT count(*) FROM privacy_requests WHERE state NOT IN ('done', 'refused', 'withdrawn') AND due_date < '%s'),
			(SELECT count(*) FROM privacy_requests WHERE state NOT IN ('done', 'refused', 'withdrawn') AND due_date >= '%[1]s' AND due_date <= '%s')`,
				requests.DateOf(time.Now()), requests.DateOf(time.Now()).AddDays(requests.WarnWithin)),
			`SELECT id FROM privacy_requests WHERE state NOT IN ('done', 'refused', 'withdrawn') AND due_date < '9999-12-31' ORDER BY due_date, received_at, id LIMIT 200`,
		} {
			plan, err := store.Strings(ctx, b.DB(), prefix+q)
			if err != nil {
				// SQLite's plan has four columns: the detail is the last.
				rows, qerr := b.DB().QueryContext(ctx, prefix+q)
				if qerr != nil {
					return nil, qerr
				}
				plan = nil
				for rows.Next() {
					var a, c, d any
					var detail string
					if err := rows.Scan(&a, &c, &d, &detail); err != nil {
						rows.Close()
						return nil, err
					}
					plan = append(plan, detail)
				}
				rows.Close()
			}
			fmt.Printf("    %s\n      %s\n", q, strings.Join(plan, " / "))
		}
	}
	if explain {
		today := requests.DateOf(time.Now())
		soon := today.AddDays(requests.WarnWithin)
		for _, q := range []string{
			`SELECT SUM(CASE WHEN due_date < $1 THEN 1 ELSE 0 END), SUM(CASE WHEN due_date >= $1 THEN 1 ELSE 0 END)
			FROM privacy_requests WHERE state NOT IN ('done', 'refused', 'withdrawn') AND due_date <= $2`,
			`SELECT (SELECT count(*) FROM privacy_requests WHERE state NOT IN ('done', 'refused', 'withdrawn') AND due_date < $1),
			(SELECT count(*) FROM privacy_requests WHERE state NOT IN ('done', 'refused', 'withdrawn') AND due_date >= $1 AND due_date <= $2)`,
		} {
			var d []time.Duration
			for range 50 {
				t := time.Now()
				var a, c any
				if err := b.DB().QueryRowContext(ctx, q, string(today), string(soon)).Scan(&a, &c); err != nil {
					return nil, err
				}
				d = append(d, time.Since(t))
			}
			slices.Sort(d)
			fmt.Printf("    p50 %.1f ms: %s\n", ms(pct(d, 0.5)), strings.Join(strings.Fields(q), " "))
		}
	}
	// What of it is the database's: the two statements the first page runs.
	var queue, due []time.Duration
	for range o.queueN {
		t := time.Now()
		if _, err := b.Requests().Queue(ctx, requests.Filter{State: requests.StateOpen}); err != nil {
			return nil, err
		}
		queue = append(queue, time.Since(t))
		t = time.Now()
		if _, err := b.Requests().Due(ctx); err != nil {
			return nil, err
		}
		due = append(due, time.Since(t))
	}
	slices.Sort(queue)
	slices.Sort(due)
	fmt.Printf("  queue: API p50 %.1f ms, p99 %.1f ms; page p50 %.1f ms, p99 %.1f ms (%d each); of which Queue p50 %.1f ms, p99 %.1f ms, Due p50 %.1f ms, p99 %.1f ms\n",
		ms(pct(api, 0.5)), ms(pct(api, 0.99)), ms(pct(page, 0.5)), ms(pct(page, 0.99)), o.queueN,
		ms(pct(queue, 0.5)), ms(pct(queue, 0.99)), ms(pct(due, 0.5)), ms(pct(due, 0.99)))
	return []row{
		{fmt.Sprintf("staff queue API, first page of 200, %d open, p99 ms", o.openRequests), fmt.Sprintf("%.1f", ms(pct(api, 0.99))), "", "", "<= 100 ms"},
		{fmt.Sprintf("staff queue page /staff/requests, %d open, p99 ms", o.openRequests), fmt.Sprintf("%.1f", ms(pct(page, 0.99))), "", "", "<= 100 ms"},
	}, nil
}

func deadlineRows(ctx context.Context, o rightsOpts) ([]row, error) {
	// The job runs at the start, and River may run it again while the requests are
	// written: the run measured is the next day's, the first of its day.
	var later atomic.Int64
	clock := func() time.Time { return time.Now().Add(time.Duration(later.Load())) }
	b, _, err := requestsApp(ctx, o, app.WithClock(clock))
	if err != nil {
		return nil, err
	}
	defer b.Close()
	later.Store(int64(24 * time.Hour))
	var took time.Duration
	var sum requests.Summary
	var sent bool
	err = profiled(o.mail(), "deadlines", func() error {
		t := time.Now()
		var err error
		sum, sent, err = b.Requests().WarnDue(ctx)
		took = time.Since(t)
		return err
	})
	if err != nil {
		return nil, err
	}
	if !sent || sum.Overdue == 0 || sum.Soon == 0 {
		return nil, fmt.Errorf("the deadline job: %+v, mailed %v; want both counts and a mail", sum, sent)
	}
	fmt.Printf("  deadlines: %d overdue, %d due within %d days, the dpo mailed\n", sum.Overdue, sum.Soon, requests.WarnWithin)
	return []row{{fmt.Sprintf("daily deadline job over %d open requests, ms", o.openRequests), fmt.Sprintf("%.1f", ms(took)), "", "", "<= 1000 ms"}}, nil
}

// passSecondFactor sets up a second factor for the staff session of token, which
// passes it for that session: staff roles need it.
func passSecondFactor(base, token string) error {
	req, _ := http.NewRequest("POST", base+"/api/v1/me/second-factor", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	var enr struct{ Secret string }
	if err := doJSON(&http.Client{}, req, http.StatusCreated, &enr); err != nil {
		return err
	}
	code, err := totp.GenerateCode(enr.Secret, time.Now())
	if err != nil {
		return err
	}
	body, _ := json.Marshal(map[string]string{"totp": code})
	req, _ = http.NewRequest("POST", base+"/api/v1/me/second-factor/confirm", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	return doJSON(&http.Client{}, req, http.StatusOK, nil)
}
