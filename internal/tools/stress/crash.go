package stress

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/pquerna/otp/totp"

	"steward/internal/blob"
	"steward/internal/store"
)

// CrashOptions says how many cycles to run, and where.
type CrashOptions struct {
	Cycles   int
	Engine   string    // sqlite (files on disk) or postgres (files on S3 when configured)
	Bin      string    // steward binary; built when empty
	Dir      string    // working folder (data folder, binary)
	Seed     uint64    // 0: random
	Log      io.Writer // the server's output
	Progress io.Writer // a line per cycle; nil for none
	// Settle is how long the end waits for every campaign to be sent. A campaign whose
	// send job was running when the server was killed waits for River's rescue of stuck
	// jobs (5 minutes, jobs.Open): with Settle above that, a campaign not sent is a
	// violation; with less, it is counted as pending.
	Settle time.Duration
}

// CrashReport is what the cycles found.
type CrashReport struct {
	Cycles       int
	Seed         uint64
	Acknowledged map[string]int // per kind of write: answers 201/202/200 the checks then hold to
	Kills        int
	Pending      int // campaigns still sending at the end, within a Settle shorter than River's rescue
	Duplicates   int // campaign mails a recipient got more than once: each is a violation (a delivery is handed over once)
	Unconfirmed  int // campaign deliveries a kill left being handed over, settled as unconfirmed (none with the .eml outbox, which is asked)
	Violations   []string
	Elapsed      time.Duration
}

type crashMember struct {
	email, password, id, token string
}

type ackUpload struct {
	owner *crashMember
	id    string
	sum   string
	cycle int
}

type ackErasure struct {
	request string
	m       *crashMember
}

type ackCampaign struct {
	id, subject string
	sendStart   time.Time
}

// crashRun is the state of one run: what was acknowledged, to be checked after every restart.
type crashRun struct {
	opts   CrashOptions
	rng    *rand.Rand
	srv    *Server
	c      *Client
	out    *Outbox
	db     *store.DB
	blobs  blob.Store
	staff  string
	pool   []*crashMember // upload into their files
	doomed []*crashMember // erased in the next cycle

	mu         sync.Mutex
	rep        *CrashReport
	regs       map[string]string // account id -> email
	uploads    []ackUpload
	erasures   []ackErasure
	erased     map[string]bool // account ids whose erasure was answered 202
	asked      map[string]bool // account ids whose erasure was asked: it may have committed unanswered
	imported   []string
	campaigns  []ackCampaign
	withdrawn  map[string]time.Time // address -> when its withdrawal was answered 200
	considered map[string]bool      // campaign mails looked at for a withdrawal
	violated   map[string]bool
	dupSeen    map[string]int // campaign and address -> the cycle after which a duplicate was first seen
	seq        int
}

// rescueStuckJobs is River's RescueStuckJobsAfter in jobs.Open.
const rescueStuckJobs = 5 * time.Minute

const crashPassword = "violet harbour lantern 7" // holds no part of a member's name or address

// Crash runs the crash cycles: in each, concurrent registrations, uploads, erasures,
// imports, campaigns and withdrawals run against a real steward until it is killed with
// SIGKILL at a random moment; it is started again and every check runs.
func Crash(ctx context.Context, opts CrashOptions) (*CrashReport, error) {
	start := time.Now()
	if opts.Seed == 0 {
		opts.Seed = rand.Uint64()
	}
	if opts.Log == nil {
		opts.Log = io.Discard
	}
	rep := &CrashReport{Seed: opts.Seed, Acknowledged: map[string]int{}}
	r := &crashRun{opts: opts, rng: rand.New(rand.NewPCG(opts.Seed, 11)), rep: rep, regs: map[string]string{},
		erased: map[string]bool{}, asked: map[string]bool{}, withdrawn: map[string]time.Time{}, considered: map[string]bool{}, violated: map[string]bool{}}
	if opts.Bin == "" {
		bin, err := Build(ctx, opts.Dir)
		if err != nil {
			return nil, err
		}
		opts.Bin = bin
	}
	env, err := NewEnv(opts.Engine, filepath.Join(opts.Dir, "data"))
	if err != nil {
		return nil, err
	}
	defer env.Close()
	// Fast hashes (the hashing is not under test), no rate limits (one client address),
	// short upload leases so dead uploads on S3 are reclaimable within a cycle.
	r.srv, err = NewServer(opts.Bin, env, "--argon2-memory", "1024", "--rate-limits=false", "--log-level", "error", "--upload-lease", "2s")
	if err != nil {
		return nil, err
	}
	r.srv.Log = opts.Log
	r.c = &Client{URL: r.srv.URL(), HTTP: &http.Client{Timeout: 30 * time.Second}}
	r.out = &Outbox{Dir: filepath.Join(env.Data, "outbox")}
	if err := r.srv.Start(ctx); err != nil {
		return nil, err
	}
	defer r.srv.Stop()
	if err := r.setup(ctx); err != nil {
		return nil, err
	}
	defer r.db.Close()
	for i := range opts.Cycles {
		if err := r.cycle(ctx, i); err != nil {
			return rep, err
		}
		rep.Cycles++
		if opts.Progress != nil {
			fmt.Fprintf(opts.Progress, "cycle %d: survived; %d acknowledged, %d violations (%s)\n", i+1, r.acked(), len(rep.Violations), time.Since(start).Round(time.Second))
		}
	}
	r.final(ctx)
	rep.Elapsed = time.Since(start)
	return rep, nil
}

func (r *crashRun) acked() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, v := range r.rep.Acknowledged {
		n += v
	}
	return n
}

func (r *crashRun) violation(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	v := fmt.Sprintf(format, args...)
	if !r.violated[v] {
		r.violated[v] = true
		r.rep.Violations = append(r.rep.Violations, v)
		if r.opts.Progress != nil {
			fmt.Fprintln(r.opts.Progress, "violation: "+v)
		}
	}
}

func (r *crashRun) ack(kind string) {
	r.mu.Lock()
	r.rep.Acknowledged[kind]++
	r.mu.Unlock()
}

func (r *crashRun) next() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.seq++
	return r.seq
}

func (r *crashRun) setup(ctx context.Context) error {
	var err error
	dbURL := r.srv.Env.DBURL
	if dbURL == "" {
		dbURL = "sqlite:" + filepath.Join(r.srv.Env.Data, "steward.db")
	}
	if r.db, err = store.Open(ctx, dbURL); err != nil {
		return err
	}
	if s3 := r.srv.Env.S3; s3 != nil {
		r.blobs, err = blob.NewS3(ctx, blob.S3Config{Endpoint: s3.Endpoint, Bucket: s3.Bucket, AccessKey: s3.AccessKey, SecretKey: s3.SecretKey, Prefix: s3.Prefix})
	} else {
		r.blobs, err = blob.NewDisk(filepath.Join(r.srv.Env.Data, "files"))
	}
	if err != nil {
		return err
	}
	staff := "editor@crash.example"
	if _, r.staff, err = Member(ctx, r.c, r.out, staff, crashPassword); err != nil {
		return err
	}
	if _, err := r.srv.Command(ctx, "staff", "grant", staff, "marketing"); err != nil {
		return err
	}
	// A staff role needs the second factor: set one up, which passes it for the session.
	e, err := r.c.Do(ctx, "POST", "/api/v1/me/second-factor", nil, r.staff)
	if err != nil {
		return err
	}
	if e.Status != 201 {
		return fmt.Errorf("second factor: %d %s", e.Status, e.Body)
	}
	code, err := totp.GenerateCode(e.Str("secret"), time.Now())
	if err != nil {
		return err
	}
	if c, err := r.c.Do(ctx, "POST", "/api/v1/me/second-factor/confirm", map[string]string{"totp": code}, r.staff); err != nil {
		return err
	} else if c.Status != 200 {
		return fmt.Errorf("second factor: %d %s", c.Status, c.Body)
	}
	for i := range 4 {
		m := &crashMember{email: fmt.Sprintf("pool%d@crash.example", i), password: crashPassword}
		if m.id, m.token, err = Member(ctx, r.c, r.out, m.email, m.password); err != nil {
			return err
		}
		r.pool = append(r.pool, m)
	}
	return nil
}

// prepare makes the members the next cycle erases, each with a file, while no kill is due.
func (r *crashRun) prepare(ctx context.Context, cycle int) error {
	r.doomed = r.doomed[:0]
	for i := range 2 {
		m := &crashMember{email: fmt.Sprintf("doomed%d-%d@crash.example", cycle, i), password: crashPassword}
		var err error
		if m.id, m.token, err = Member(ctx, r.c, r.out, m.email, m.password); err != nil {
			return err
		}
		if _, err := r.upload(ctx, m, cycle); err != nil {
			return err
		}
		r.doomed = append(r.doomed, m)
	}
	return nil
}

func (r *crashRun) upload(ctx context.Context, m *crashMember, cycle int) (bool, error) {
	r.mu.Lock()
	body := make([]byte, 1024+r.rng.IntN(256<<10))
	for i := range body {
		body[i] = byte(r.rng.Uint32())
	}
	r.mu.Unlock()
	a, err := r.c.Do(ctx, "POST", "/api/v1/me/files?name=crash.bin", body, m.token, "Content-Type", "application/octet-stream")
	if err != nil {
		return false, err
	}
	if a.Status != 201 {
		return false, fmt.Errorf("upload: %d %s", a.Status, a.Body)
	}
	sum := sha256.Sum256(body)
	r.mu.Lock()
	r.uploads = append(r.uploads, ackUpload{owner: m, id: a.Str("id"), sum: hex.EncodeToString(sum[:]), cycle: cycle})
	r.mu.Unlock()
	r.ack("uploads")
	return true, nil
}

func (r *crashRun) cycle(ctx context.Context, cycle int) error {
	if err := r.prepare(ctx, cycle); err != nil {
		return fmt.Errorf("cycle %d: prepare: %w", cycle+1, err)
	}
	wctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	work := func(f func(context.Context) error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for wctx.Err() == nil {
				if err := f(wctx); err != nil {
					if wctx.Err() == nil && !dead(err) {
						// An answer the run did not expect while the server lives is no crash
						// artefact: count it.
						r.violation("cycle %d: %v", cycle+1, err)
					}
					// Connection refused or reset: the server died; wait for the end.
					<-wctx.Done()
					return
				}
			}
		}()
	}
	work(func(ctx context.Context) error { return r.register(ctx, cycle) })
	for range 2 {
		work(func(ctx context.Context) error {
			r.mu.Lock()
			m := r.pool[r.rng.IntN(len(r.pool))]
			r.mu.Unlock()
			_, err := r.upload(ctx, m, cycle)
			return err
		})
	}
	doomed := append([]*crashMember(nil), r.doomed...)
	work(func(ctx context.Context) error {
		if len(doomed) == 0 {
			<-ctx.Done()
			return nil
		}
		m := doomed[0]
		doomed = doomed[1:]
		return r.erase(ctx, m)
	})
	work(func(ctx context.Context) error { return r.importBatch(ctx, cycle) })
	work(func(ctx context.Context) error { return r.campaign(ctx, cycle) })
	work(func(ctx context.Context) error { return r.withdraw(ctx) })

	r.mu.Lock()
	delay := time.Duration(150+r.rng.IntN(1500)) * time.Millisecond
	r.mu.Unlock()
	select {
	case <-time.After(delay):
	case <-ctx.Done():
	}
	r.srv.Kill()
	r.rep.Kills++
	stop()
	wg.Wait()
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if err := r.srv.Start(ctx); err != nil {
		return fmt.Errorf("cycle %d: restart: %w", cycle+1, err)
	}
	r.check(ctx, cycle)
	return nil
}

// dead says whether err is the server going away under a request.
func dead(err error) bool {
	s := err.Error()
	return strings.Contains(s, "connection refused") || strings.Contains(s, "connection reset") || strings.Contains(s, "EOF") ||
		strings.Contains(s, "broken pipe") || strings.Contains(s, "context canceled")
}

func (r *crashRun) register(ctx context.Context, cycle int) error {
	email := fmt.Sprintf("reg%d-%d@crash.example", cycle, r.next())
	a, err := r.c.Do(ctx, "POST", "/api/v1/accounts", map[string]string{"email": email, "password": crashPassword, "name": "Crash Member",
		"birthdate": "1980-01-01", "country": "DE"}, "")
	if err != nil {
		return err
	}
	if a.Status != 201 {
		return fmt.Errorf("register: %d %s", a.Status, a.Body)
	}
	r.mu.Lock()
	r.regs[a.Str("id")] = email
	r.mu.Unlock()
	r.ack("registrations")
	return nil
}

func (r *crashRun) erase(ctx context.Context, m *crashMember) error {
	r.mu.Lock()
	r.asked[m.id] = true
	r.mu.Unlock()
	a, err := r.c.Do(ctx, "DELETE", "/api/v1/me", map[string]string{"password": m.password}, m.token)
	if err != nil {
		return err
	}
	if a.Status != 202 {
		return fmt.Errorf("erase: %d %s", a.Status, a.Body)
	}
	r.mu.Lock()
	r.erasures = append(r.erasures, ackErasure{request: a.Str("request_id"), m: m})
	r.erased[m.id] = true
	r.mu.Unlock()
	r.ack("erasures")
	return nil
}

func (r *crashRun) importBatch(ctx context.Context, cycle int) error {
	var csv strings.Builder
	csv.WriteString("email,first_name,last_name,consented_at,source,evidence\n")
	var addrs []string
	for range 5 {
		a := fmt.Sprintf("imp%d-%d@crash.example", cycle, r.next())
		addrs = append(addrs, a)
		fmt.Fprintf(&csv, "%s,Imp,Orted,2024-01-01,old shop,checkbox\n", a)
	}
	a, err := r.c.Do(ctx, "POST", "/api/v1/staff/subscribers/import", []byte(csv.String()), r.staff, "Content-Type", "text/csv")
	if err != nil {
		return err
	}
	if a.Status != 200 || a.JSON()["imported"] != float64(5) {
		return fmt.Errorf("import: %d %s", a.Status, a.Body)
	}
	r.mu.Lock()
	r.imported = append(r.imported, addrs...)
	r.mu.Unlock()
	r.ack("imported addresses")
	time.Sleep(100 * time.Millisecond) // a few batches a cycle, not hundreds
	return nil
}

func (r *crashRun) campaign(ctx context.Context, cycle int) error {
	if cycle%3 != 0 { // campaigns reach every address imported so far: every third cycle is plenty
		<-ctx.Done()
		return nil
	}
	subject := fmt.Sprintf("Crash news %d-%d", cycle, r.next())
	c, err := r.c.Do(ctx, "POST", "/api/v1/staff/campaigns", map[string]string{"purpose": "newsletter", "subject": subject, "body": "Hello."}, r.staff)
	if err != nil {
		return err
	}
	if c.Status != 201 {
		return fmt.Errorf("create campaign: %d %s", c.Status, c.Body)
	}
	// Sending is sensitive: the password again (the run may outlast the window).
	if a, err := r.c.Do(ctx, "POST", "/api/v1/sessions/current/reauth", map[string]string{"password": crashPassword}, r.staff); err != nil {
		return err
	} else if a.Status != 204 {
		return fmt.Errorf("reauth: %d %s", a.Status, a.Body)
	}
	start := time.Now()
	s, err := r.c.Do(ctx, "POST", "/api/v1/staff/campaigns/"+c.Str("id")+"/send", nil, r.staff)
	if err != nil {
		return err
	}
	if s.Status != 202 {
		return fmt.Errorf("send campaign: %d %s", s.Status, s.Body)
	}
	r.mu.Lock()
	r.campaigns = append(r.campaigns, ackCampaign{id: c.Str("id"), subject: subject, sendStart: start})
	r.mu.Unlock()
	r.ack("campaigns")
	<-ctx.Done() // one a cycle
	return nil
}

var optOutRE = regexp.MustCompile(`/unsubscribe/one-click\?t=([a-z2-7]{42})`)

// withdraw unsubscribes about a third of the recipients of campaign mails, by the one-click
// link of their mail.
func (r *crashRun) withdraw(ctx context.Context) error {
	for _, m := range r.out.Scan() {
		if !strings.HasPrefix(m.Subject, "Crash news") {
			continue
		}
		r.mu.Lock()
		skip := r.considered[m.To] || r.rng.IntN(3) != 0
		r.considered[m.To] = true
		r.mu.Unlock()
		if skip {
			continue
		}
		sub := optOutRE.FindStringSubmatch(m.ListUnsubscribe)
		if sub == nil {
			return fmt.Errorf("no one-click link in %s", m.File)
		}
		a, err := r.c.Do(ctx, "POST", "/unsubscribe/one-click?t="+sub[1], []byte("List-Unsubscribe=One-Click"), "",
			"Content-Type", "application/x-www-form-urlencoded")
		if err != nil {
			return err
		}
		if a.Status != 200 {
			return fmt.Errorf("one-click %s: %d %s", m.To, a.Status, a.Body)
		}
		r.mu.Lock()
		r.withdrawn[m.To] = time.Now()
		r.mu.Unlock()
		r.ack("withdrawals")
	}
	select {
	case <-ctx.Done():
	case <-time.After(100 * time.Millisecond):
	}
	return nil
}

// check runs every check against the restarted server.
func (r *crashRun) check(ctx context.Context, cycle int) {
	c := cycle + 1
	r.integrity(ctx, c)
	// Every acknowledged erasure finishes, and leaves nothing of the member.
	for _, e := range r.erasures {
		deadline := time.Now().Add(60 * time.Second)
		for {
			a, err := r.c.Do(ctx, "GET", "/api/v1/erasures/"+e.request, nil, "")
			if err == nil && a.Status == 200 && a.Str("state") == "done" {
				break
			}
			if time.Now().After(deadline) {
				r.violation("cycle %d: erasure %s not done a minute after restart: %d %s %v", c, e.request, a.Status, a.Body, err)
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		var n int
		if err := r.db.QueryRowContext(ctx, `SELECT (SELECT count(*) FROM accounts WHERE id = $1) + (SELECT count(*) FROM files WHERE owner_id = $1)`, e.m.id).Scan(&n); err != nil {
			r.violation("cycle %d: %v", c, err)
		} else if n != 0 {
			r.violation("cycle %d: erased member %s came back (%d rows of account and files)", c, e.m.email, n)
		}
		if a, err := r.c.Do(ctx, "POST", "/api/v1/sessions", map[string]string{"email": e.m.email, "password": e.m.password}, ""); err != nil || a.Status == 201 {
			r.violation("cycle %d: erased member %s can log in: %d %v", c, e.m.email, a.Status, err)
		}
	}
	// Every registration answered 201 is there.
	ids := map[string]bool{}
	rows, err := r.db.QueryContext(ctx, `SELECT id FROM accounts`)
	if err == nil {
		for rows.Next() {
			var id string
			if rows.Scan(&id) == nil {
				ids[id] = true
			}
		}
		rows.Close()
	}
	for id, email := range r.regs {
		if !ids[id] {
			r.violation("cycle %d: registration of %s (answered 201) lost", c, email)
		}
	}
	// Every upload answered 201 is there, unless its owner was erased; this cycle's download intact.
	ready := map[string]string{}
	rows, err = r.db.QueryContext(ctx, `SELECT id, state FROM files`)
	if err == nil {
		for rows.Next() {
			var id, st string
			if rows.Scan(&id, &st) == nil {
				ready[id] = st
			}
		}
		rows.Close()
	}
	for _, u := range r.uploads {
		if r.asked[u.owner.id] {
			continue // erased, or maybe erased: the kill may have cut the answer off
		}
		if ready[u.id] != "ready" {
			r.violation("cycle %d: upload %s (answered 201) lost: state %q", c, u.id, ready[u.id])
			continue
		}
		if u.cycle == cycle {
			a, err := r.c.Do(ctx, "GET", "/api/v1/me/files/"+u.id, nil, u.owner.token)
			sum := sha256.Sum256(a.Body)
			if err != nil || a.Status != 200 || hex.EncodeToString(sum[:]) != u.sum {
				r.violation("cycle %d: upload %s damaged: %d %v", c, u.id, a.Status, err)
			}
		}
	}
	// Every imported address is on the list: importing them again adds none.
	if len(r.imported) > 0 {
		var csv strings.Builder
		csv.WriteString("email,first_name,last_name,consented_at,source,evidence\n")
		for _, a := range r.imported {
			fmt.Fprintf(&csv, "%s,Imp,Orted,2024-01-01,old shop,checkbox\n", a)
		}
		a, err := r.c.Do(ctx, "POST", "/api/v1/staff/subscribers/import", []byte(csv.String()), r.staff, "Content-Type", "text/csv")
		if err != nil || a.Status != 200 || a.JSON()["imported"] != float64(0) {
			r.violation("cycle %d: imported addresses (answered 200) lost: re-import = %d %s %v", c, a.Status, a.Body, err)
		}
	}
	r.objects(ctx, c)
	r.mails(c)
}

// integrity checks the database: SQLite's own check, and on both engines that every
// foreign key points at a row.
func (r *crashRun) integrity(ctx context.Context, c int) {
	if r.db.Dialect == store.SQLite {
		var res string
		if err := r.db.QueryRowContext(ctx, `PRAGMA integrity_check`).Scan(&res); err != nil || res != "ok" {
			r.violation("cycle %d: integrity_check: %s %v", c, res, err)
		}
		rows, err := r.db.QueryContext(ctx, `PRAGMA foreign_key_check`)
		if err != nil {
			r.violation("cycle %d: foreign_key_check: %v", c, err)
			return
		}
		defer rows.Close()
		for rows.Next() {
			var table, parent string
			var rowid, fk any
			rows.Scan(&table, &rowid, &parent, &fk)
			r.violation("cycle %d: orphan row in %s (no %s)", c, table, parent)
		}
		return
	}
	// Every single-column foreign key, from the catalogue: rows whose parent is missing.
	rows, err := r.db.QueryContext(ctx, `SELECT cl.relname, a.attname, pcl.relname, pa.attname
		FROM pg_constraint co
		JOIN pg_class cl ON cl.oid = co.conrelid JOIN pg_namespace n ON n.oid = cl.relnamespace
		JOIN pg_attribute a ON a.attrelid = co.conrelid AND a.attnum = co.conkey[1]
		JOIN pg_class pcl ON pcl.oid = co.confrelid
		JOIN pg_attribute pa ON pa.attrelid = co.confrelid AND pa.attnum = co.confkey[1]
		WHERE co.contype = 'f' AND n.nspname = current_schema() AND array_length(co.conkey, 1) = 1`)
	if err != nil {
		r.violation("cycle %d: foreign keys: %v", c, err)
		return
	}
	type fk struct{ table, col, parent, pcol string }
	var fks []fk
	for rows.Next() {
		var f fk
		if rows.Scan(&f.table, &f.col, &f.parent, &f.pcol) == nil {
			fks = append(fks, f)
		}
	}
	rows.Close()
	if len(fks) == 0 {
		r.violation("cycle %d: no foreign keys found in the catalogue", c)
	}
	for _, f := range fks {
		var n int
		q := fmt.Sprintf(`SELECT count(*) FROM %q c WHERE c.%q IS NOT NULL AND NOT EXISTS (SELECT 1 FROM %q p WHERE p.%q = c.%q)`, f.table, f.col, f.parent, f.pcol, f.col)
		if err := r.db.QueryRowContext(ctx, q).Scan(&n); err != nil || n != 0 {
			r.violation("cycle %d: %d rows of %s.%s without their %s: %v", c, n, f.table, f.col, f.parent, err)
		}
	}
}

// objects compares the store's objects with the files' rows. Uploads the kill cut short
// are mended by the restart (one node on disk) or, on S3 where other nodes may be
// uploading, once their lease runs out, by the reconciler: run it then.
func (r *crashRun) objects(ctx context.Context, c int) {
	diff := func() []string {
		rows := map[string]string{}
		rs, err := r.db.QueryContext(ctx, `SELECT object, state FROM files`)
		if err != nil {
			return []string{err.Error()}
		}
		for rs.Next() {
			var o, s string
			if rs.Scan(&o, &s) == nil {
				rows[o] = s
			}
		}
		rs.Close()
		objects := map[string]bool{}
		if err := r.blobs.List(ctx, "files/", func(i blob.Info) error { objects[i.Name] = true; return nil }); err != nil {
			return []string{err.Error()}
		}
		var out []string
		for o, s := range rows {
			if s != "ready" {
				out = append(out, fmt.Sprintf("row of %s left %s", o, s))
			} else if !objects[o] {
				out = append(out, "row without its object: "+o)
			}
		}
		for o := range objects {
			if _, ok := rows[o]; !ok {
				out = append(out, "orphaned object: "+o)
			}
		}
		return out
	}
	d := diff()
	if len(d) > 0 && r.blobs != nil && r.srv.Env.S3 != nil {
		time.Sleep(2100 * time.Millisecond) // the upload lease
		if _, err := r.srv.Command(ctx, "files", "reconcile"); err != nil {
			r.violation("cycle %d: %v", c, err)
		}
		d = diff()
	}
	for _, v := range d {
		r.violation("cycle %d: %s", c, v)
	}
	if r.srv.Env.S3 == nil {
		var temp []string
		root := filepath.Join(r.srv.Env.Data, "files")
		filepath.Walk(root, func(p string, info os.FileInfo, err error) error {
			rel, _ := filepath.Rel(root, p)
			if err == nil && !info.IsDir() && strings.Contains(rel, "tmp") {
				temp = append(temp, rel)
			}
			return nil
		})
		for _, t := range temp {
			r.violation("cycle %d: temporary file left: %s", c, t)
		}
	}
}

// mails counts the campaign mails per campaign and recipient: none to whoever withdrew
// before the campaign was sent, never two to anyone.
func (r *crashRun) mails(c int) {
	count := map[[2]string]int{}
	for _, m := range r.out.Scan() {
		if strings.HasPrefix(m.Subject, "Crash news") {
			count[[2]string{m.Subject, m.To}]++
		}
	}
	sent := map[string]time.Time{}
	for _, cp := range r.campaigns {
		sent[cp.subject] = cp.sendStart
	}
	dups := 0
	for k, n := range count {
		w, withdrew := r.withdrawn[k[1]]
		start, ok := sent[k[0]]
		switch {
		case withdrew && ok && w.Before(start):
			r.violation("cycle %d: %s withdrew before %q was sent, and got it %d time(s)", c, k[1], k[0], n)
		case n > 1:
			dups += n - 1
			r.violation("%s got %q more than once (first seen after cycle %d)", k[1], k[0], r.firstSeen(k, c))
		}
	}
	r.mu.Lock()
	r.rep.Duplicates = dups
	r.mu.Unlock()
}

// firstSeen is the first cycle after which a campaign mail was seen twice: a
// duplicate is one violation, however many cycles see it.
func (r *crashRun) firstSeen(k [2]string, c int) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	key := "dup\x00" + k[0] + "\x00" + k[1]
	if first, ok := r.dupSeen[key]; ok {
		return first
	}
	if r.dupSeen == nil {
		r.dupSeen = map[string]int{}
	}
	r.dupSeen[key] = c
	return c
}

// final waits for every campaign to be sent, then counts the mails once more.
func (r *crashRun) final(ctx context.Context) {
	deadline := time.Now().Add(max(r.opts.Settle, 10*time.Second))
	for _, cp := range r.campaigns {
		for {
			a, err := r.c.Do(ctx, "GET", "/api/v1/staff/campaigns/"+cp.id, nil, r.staff)
			if err == nil && a.Str("status") == "sent" {
				if n, ok := a.JSON()["unconfirmed"].(float64); ok {
					r.mu.Lock()
					r.rep.Unconfirmed += int(n)
					r.mu.Unlock()
				} else {
					r.violation("campaign %q: no count of unconfirmed deliveries in its answer", cp.subject)
				}
				break
			}
			if time.Now().After(deadline) {
				if r.opts.Settle > rescueStuckJobs {
					r.violation("campaign %q (answered 202) not sent %s after the last restart: %s %v", cp.subject, r.opts.Settle, a.Str("status"), err)
				} else {
					r.rep.Pending++
				}
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	time.Sleep(time.Second) // the last mails leave the outbox table for the folder
	r.mails(r.rep.Cycles)
}
