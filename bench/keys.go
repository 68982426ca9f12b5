package main

// The figures of keys and rights (-only keys), each against a baseline measured in the
// same run:
//   - export: a member's portability archive (a full profile, consent decisions, three
//     sessions, two small files) through GET /api/v1/me/export, p50 and p99 latency,
//     against a bare net/http handler writing a zip of the same entries; and, for
//     reference, GET /api/v1/me, the cheapest authenticated request;
//   - rotation: an epoch rotation of -rotation-keys data keys (vault.RotateNow, no
//     grace), written in bulk beforehand: its time and keys/s against one UPDATE of
//     every row of a copy of the table, and the latency of GET /api/v1/me under a
//     steady load (-me-rate) while it runs, against the same load without it;
//   - erasure: members erased through rights.EraseNow in a population of
//     -erasure-members, against one of -erasure-baseline, erasure by erasure in turn so
//     that both see the same load on the machine. The populations are written in bulk,
//     straight into the tables, every sealed field sealed under the member's own key.

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"steward/internal/account"
	"steward/internal/app"
	"steward/internal/newsletter"
	"steward/internal/store"
	"steward/internal/vault"
)

// keysFigures are the figures -only can name one by one.
var keysFigures = []string{"export", "rotation", "erasure"}

// keysOpts are the sizes of the keys figures (flags).
type keysOpts struct {
	dbURL        string
	steward      []string // more settings for every Steward built (after "--")
	figures      map[string]bool
	exports      int           // export requests measured
	rotationKeys int           // data keys rotated
	meRate       int           // GET /api/v1/me per second during the rotation
	meDur        time.Duration // how long the load runs without a rotation
	members      int           // the large population of the erasure figure
	baseMembers  int           // the small one
	erasures     int           // members erased at each scale
	profilePath  string        // CPU profiles go to PATH.FIGURE
}

func (o keysOpts) mail() mailOpts {
	return mailOpts{dbURL: o.dbURL, steward: o.steward, profilePath: o.profilePath}
}

func keysRows(o keysOpts) ([]row, error) {
	ctx := context.Background()
	engine := "SQLite"
	if o.dbURL != "" {
		engine = "PostgreSQL"
	}
	fmt.Printf("Steward keys benchmark: %s\n", engine)
	return runFigures(ctx, o, o.figures, []figure[keysOpts]{
		{"export", exportRows},
		{"rotation", rotationRows},
		{"erasure", erasureRows},
	})
}

// ---- 1. A member's export.

const richPassword = "violet-harbour-73"

// richMember registers a member with every profile field, verifies them, logs in three
// times (three sessions), records consent decisions (some changed since) and uploads
// two small files, all through the API; it returns the last session's token.
func richMember(ctx context.Context, b *benchApp) (string, error) {
	email := "ada.lovelace@example.org"
	profile := map[string]string{
		"email":            email,
		"password":         richPassword,
		"name":             "Ada Lovelace",
		"phone":            "+44 20 7946 0958",
		"home_address":     "12 St James's Square, London SW1Y 4JH",
		"business_address": "Analytical Engines Ltd, 1 Babbage Row, London EC1A 1BB",
		"birthdate":        "1985-12-10",
		"country":          "GB",
	}
	if err := memberWith(ctx, b.App, b.base, profile, b.dir); err != nil {
		return "", err
	}
	client := &http.Client{}
	var token string
	for i, ua := range []string{"Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0", "Mozilla/5.0 (iPhone; CPU iPhone OS 18_0) Safari/605.1",
		"steward-bench/1"} {
		body, _ := json.Marshal(map[string]string{"email": email, "password": richPassword})
		req, _ := http.NewRequest("POST", b.base+"/api/v1/sessions", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("User-Agent", ua)
		var out struct{ Token string }
		if err := doJSON(client, req, http.StatusCreated, &out); err != nil {
			return "", fmt.Errorf("login %d: %w", i, err)
		}
		token = out.Token
	}
	// Consent: everything granted at first, then a few choices changed.
	var reg struct {
		Purposes []struct {
			Key          string `json:"key"`
			NeedsConsent bool   `json:"needs_consent"`
			Objectable   bool   `json:"objectable"`
		} `json:"purposes"`
	}
	req, _ := http.NewRequest("GET", b.base+"/api/v1/purposes", nil)
	if err := doJSON(client, req, http.StatusOK, &reg); err != nil {
		return "", err
	}
	first, later := map[string]bool{}, map[string]bool{}
	for i, p := range reg.Purposes {
		if !p.NeedsConsent && !p.Objectable {
			continue
		}
		first[p.Key] = true
		if i%2 == 1 {
			later[p.Key] = false
		}
	}
	for _, choices := range []map[string]bool{first, later} {
		body, _ := json.Marshal(map[string]any{"choices": choices})
		req, _ := http.NewRequest("PUT", b.base+"/api/v1/me/consents", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+token)
		if err := doJSON(client, req, http.StatusOK, nil); err != nil {
			return "", fmt.Errorf("consents: %w", err)
		}
	}
	for _, f := range []struct {
		name, ctype string
		size        int
	}{{"notes.txt", "text/plain", 3 << 10}, {"portrait.jpg", "image/jpeg", 24 << 10}} {
		data := make([]byte, f.size)
		if f.ctype == "text/plain" {
			copy(data, bytes.Repeat([]byte("The Analytical Engine weaves algebraic patterns. "), f.size/49+1))
		} else {
			_, _ = rand.Read(data) // a photo does not compress
		}
		req, _ := http.NewRequest("POST", b.base+"/api/v1/me/files?name="+f.name, bytes.NewReader(data))
		req.Header.Set("Content-Type", f.ctype)
		req.Header.Set("Authorization", "Bearer "+token)
		if err := doJSON(client, req, http.StatusCreated, nil); err != nil {
			return "", fmt.Errorf("upload: %w", err)
		}
	}
	return token, nil
}

// doJSON sends req, wants the status and decodes the JSON answer into out (if not nil).
func doJSON(client *http.Client, req *http.Request, want int, out any) error {
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		return fmt.Errorf("%s %s: %d %s", req.Method, req.URL.Path, resp.StatusCode, body)
	}
	if out == nil {
		return nil
	}
	return json.Unmarshal(body, out)
}

// zipEntry is one file of an archive.
type zipEntry struct {
	name   string
	method uint16
	data   []byte
}

func readZip(b []byte) ([]zipEntry, error) {
	zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		return nil, err
	}
	var out []zipEntry
	for _, f := range zr.File {
		rc, err := f.Open()
		if err != nil {
			return nil, err
		}
		data, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			return nil, err
		}
		out = append(out, zipEntry{f.Name, f.Method, data})
	}
	return out, nil
}

func exportRows(ctx context.Context, o keysOpts) ([]row, error) {
	b, err := newApp(ctx, o.mail(), true)
	if err != nil {
		return nil, err
	}
	defer b.Close()
	token, err := richMember(ctx, b)
	if err != nil {
		return nil, err
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
	get := func(url string) ([]byte, error) {
		req, _ := http.NewRequest("GET", url, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := client.Do(req)
		if err != nil {
			return nil, err
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err == nil && resp.StatusCode != http.StatusOK {
			err = fmt.Errorf("GET %s: %d %s", url, resp.StatusCode, body)
		}
		return body, err
	}
	archive, err := get(b.base + "/api/v1/me/export")
	if err != nil {
		return nil, err
	}
	entries, err := readZip(archive)
	if err != nil {
		return nil, fmt.Errorf("the export is not a zip: %w", err)
	}
	var files, events int
	for _, e := range entries {
		if strings.Contains(e.name, "/files/") {
			files++
		}
		if strings.HasSuffix(e.name, "consent_events.csv") {
			events = bytes.Count(e.data, []byte("\n")) - 1
		}
	}
	if files != 2 || events < 2 {
		return nil, fmt.Errorf("the export holds %d files and %d consent events, want 2 and more than 1", files, events)
	}

	// Baseline: a bare handler that writes an archive of the same entries (names,
	// contents, compression) on every request: the floor of building and sending it.
	bare := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/zip")
		zw := zip.NewWriter(w)
		for _, e := range entries {
			f, err := zw.CreateHeader(&zip.FileHeader{Name: e.name, Method: e.method, Modified: time.Now()})
			if err == nil {
				_, err = f.Write(e.data)
			}
			if err != nil {
				panic(http.ErrAbortHandler)
			}
		}
		if err := zw.Close(); err != nil {
			panic(http.ErrAbortHandler)
		}
	})}
	bareURL, stop, err := serveBare(bare)
	if err != nil {
		return nil, err
	}
	defer stop()

	// One client, one request at a time, the three requests in turn, so that each
	// series sees the same machine.
	var ours, base, me []time.Duration
	err = profiled(o.mail(), "export", func() error {
		for i := range o.exports + 20 {
			for _, m := range []struct {
				url string
				out *[]time.Duration
			}{{b.base + "/api/v1/me/export", &ours}, {bareURL, &base}, {b.base + "/api/v1/me", &me}} {
				t := time.Now()
				if _, err := get(m.url); err != nil {
					return err
				}
				if i >= 20 { // the first 20 warm up
					*m.out = append(*m.out, time.Since(t))
				}
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	for _, s := range [][]time.Duration{ours, base, me} {
		slices.Sort(s)
	}
	label := fmt.Sprintf("%.0f KiB, %d entries", float64(len(archive))/1024, len(entries))
	fmt.Printf("  export: %s; p50 %.2f ms, p90 %.2f ms, p99 %.2f ms, max %.2f ms\n", label,
		ms(pct(ours, 0.5)), ms(pct(ours, 0.9)), ms(pct(ours, 0.99)), ms(ours[len(ours)-1]))
	return []row{
		{fmt.Sprintf("export p50 ms (%s) vs bare handler, same zip", label),
			fmt.Sprintf("%.2f", ms(pct(ours, 0.5))), fmt.Sprintf("%.2f", ms(pct(base, 0.5))), ratio(ms(pct(ours, 0.5)), ms(pct(base, 0.5))), "<= 5 ms"},
		{fmt.Sprintf("export p99 ms (%d requests, one at a time) vs bare handler", o.exports),
			fmt.Sprintf("%.2f", ms(pct(ours, 0.99))), fmt.Sprintf("%.2f", ms(pct(base, 0.99))), ratio(ms(pct(ours, 0.99)), ms(pct(base, 0.99))), "(lower is better)"},
		{"  export p50 ms vs GET /api/v1/me p50 (the same member)",
			fmt.Sprintf("%.2f", ms(pct(ours, 0.5))), fmt.Sprintf("%.2f", ms(pct(me, 0.5))), ratio(ms(pct(ours, 0.5)), ms(pct(me, 0.5))), "(reference)"},
	}, nil
}

// serveBare serves srv on a port of its own and returns its URL and how to stop it.
func serveBare(srv *http.Server) (string, func(), error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	go srv.Serve(ln)
	return "http://" + ln.Addr().String() + "/", func() { srv.Close() }, nil
}

// ---- 2. An epoch rotation.

func rotationRows(ctx context.Context, o keysOpts) ([]row, error) {
	// The app answers HTTP and sends its mail, but its own key schedule (vault.Run) is
	// not started: the rotation is RotateNow's alone, as one node's scheduled rotation
	// is one walker. (A second process running `steward keys rotate` beside a node
	// shares the walk with it.)
	b, err := newAppWith(ctx, o.mail(), false, []app.Option{app.WithKeyGrace(-1)})
	if err != nil {
		return nil, err
	}
	defer b.Close()
	sctx, stopServing := context.WithCancel(ctx)
	defer stopServing()
	go b.Outbox().Dispatch(sctx, 100*time.Millisecond)
	go b.Serve(sctx, b.ln)
	token, err := richMember(ctx, b)
	if err != nil {
		return nil, err
	}

	t := time.Now()
	if err := bulkKeys(ctx, b, o.rotationKeys); err != nil {
		return nil, err
	}
	if b.DB().Dialect == store.Postgres {
		if _, err := b.DB().ExecContext(ctx, `VACUUM ANALYZE vault_keys`); err != nil {
			return nil, err
		}
	}
	fmt.Printf("  rotation: %d keys written in %.1f s\n", o.rotationKeys, time.Since(t).Seconds())

	// Baselines: the engine rewriting every row of a copy of the table in one UPDATE
	// (no batches, no crypto), and the crypto alone (unwrap and wrap every key, one core).
	plain, err := plainRewrite(ctx, b.DB())
	if err != nil {
		return nil, err
	}
	crypto := cryptoAlone(o.rotationKeys)

	// The load without a rotation runs before it and after it, as long each time.
	url := b.base + "/api/v1/me"
	quiet, qerrs := paced(url, token, o.meRate, 16, o.meDur)
	if qerrs > 0 {
		return nil, fmt.Errorf("GET /api/v1/me without a rotation: %d errors", qerrs)
	}

	from, _ := b.Vault().Epoch()
	var during []time.Duration
	var derrs int
	var rotating atomic.Bool
	rotating.Store(true)
	done := make(chan struct{})
	go func() {
		defer close(done)
		during, derrs = pacedUntil(sctx, url, token, o.meRate, 16, rotating.Load)
	}()
	var to int64
	var took time.Duration
	err = profiled(o.mail(), "rotation", func() error {
		t := time.Now()
		to, err = b.Vault().RotateNow(ctx)
		took = time.Since(t)
		return err
	})
	rotating.Store(false)
	<-done
	if err != nil {
		return nil, err
	}
	var left int
	if err := b.DB().QueryRowContext(ctx, `SELECT count(*) FROM vault_keys WHERE epoch <> $1`, to).Scan(&left); err != nil {
		return nil, err
	}
	if to != from+1 || left != 0 {
		return nil, fmt.Errorf("rotation from epoch %d ended at %d with %d keys elsewhere", from, to, left)
	}
	if derrs > 0 {
		return nil, fmt.Errorf("GET /api/v1/me during the rotation: %d errors", derrs)
	}
	after, qerrs := paced(url, token, o.meRate, 16, o.meDur)
	if qerrs > 0 {
		return nil, fmt.Errorf("GET /api/v1/me after the rotation: %d errors", qerrs)
	}
	quiet = append(quiet, after...)
	slices.Sort(quiet)
	for _, l := range []struct {
		name string
		d    []time.Duration
	}{{"during", during}, {"without", quiet}} {
		fmt.Printf("  rotation: GET /api/v1/me %s: %d requests, p50 %.2f ms, p90 %.2f ms, p99 %.2f ms, max %.1f ms\n", l.name, len(l.d),
			ms(pct(l.d, 0.5)), ms(pct(l.d, 0.9)), ms(pct(l.d, 0.99)), ms(l.d[len(l.d)-1]))
	}
	n := float64(o.rotationKeys)
	fmt.Printf("  rotation: %.1f s (%.0f keys/s); one UPDATE of a copy %.1f s; crypto alone %.2f s\n",
		took.Seconds(), n/took.Seconds(), plain.Seconds(), crypto.Seconds())
	lat := func(q float64) (string, string, string) {
		d, w := ms(pct(during, q)), ms(pct(quiet, q))
		return fmt.Sprintf("%.2f", d), fmt.Sprintf("%.2f", w), ratio(d, w)
	}
	p50o, p50b, p50r := lat(0.5)
	p99o, p99b, p99r := lat(0.99)
	return []row{
		{fmt.Sprintf("key rotation s (%d keys, no grace) vs one UPDATE of a copy", o.rotationKeys),
			fmt.Sprintf("%.1f", took.Seconds()), fmt.Sprintf("%.1f", plain.Seconds()), ratio(took.Seconds(), plain.Seconds()), "(lower is better)"},
		{"  keys/s rewrapped vs rows/s of the one UPDATE", f0(n / took.Seconds()), f0(n / plain.Seconds()), ratio(plain.Seconds(), took.Seconds()), "(reference)"},
		{"  the same rotation vs unwrap and wrap alone (one core)", fmt.Sprintf("%.1f", took.Seconds()), fmt.Sprintf("%.2f", crypto.Seconds()),
			ratio(took.Seconds(), crypto.Seconds()), "(reference)"},
		{fmt.Sprintf("GET /api/v1/me p50 ms during the rotation vs without (%d/s)", o.meRate), p50o, p50b, p50r, "(lower is better)"},
		{fmt.Sprintf("GET /api/v1/me p99 ms during the rotation vs without (%d/s)", o.meRate), p99o, p99b, p99r, "(lower is better)"},
	}, nil
}

// bulkKeys writes n data keys made by the vault (vault.NewKey) in multi-row INSERTs,
// in key order, 50,000 a transaction.
func bulkKeys(ctx context.Context, b *benchApp, n int) error {
	ids := make([]string, n)
	for i := range ids {
		h := splitmix(uint64(i) ^ 0x6b657973)
		ids[i] = fmt.Sprintf("%016x%016x", h, splitmix(h))
	}
	sort.Strings(ids)
	for lo := 0; lo < n; lo += 50_000 {
		err := b.DB().InTx(ctx, func(tx *store.Tx) error {
			ins := tx.Bulk("vault_keys", []string{"subject_id", "wrapped", "epoch", "created_at"}, 1000, "").OrIgnore()
			defer ins.Close(ctx)
			for _, id := range ids[lo:min(lo+50_000, n)] {
				_, r, err := b.Vault().NewKey(id)
				if err != nil {
					return err
				}
				if err := ins.Add(ctx, r...); err != nil {
					return err
				}
			}
			return ins.Close(ctx)
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// plainRewrite copies vault_keys to a table of the same shape and times one UPDATE of
// every row of the copy (new bytes in the key's column, the epoch one up), then drops it.
func plainRewrite(ctx context.Context, db *store.DB) (time.Duration, error) {
	create := []string{`CREATE TABLE bench_keys (subject_id TEXT PRIMARY KEY, wrapped BLOB NOT NULL, epoch INTEGER NOT NULL,
		created_at INTEGER NOT NULL) STRICT`,
		`INSERT INTO bench_keys SELECT subject_id, wrapped, epoch, created_at FROM vault_keys`,
		`PRAGMA wal_checkpoint(TRUNCATE)`}
	update := `UPDATE bench_keys SET wrapped = randomblob(60), epoch = epoch + 1`
	if db.Dialect == store.Postgres {
		create = []string{`CREATE TABLE bench_keys (LIKE vault_keys INCLUDING ALL)`,
			`INSERT INTO bench_keys SELECT * FROM vault_keys`, `VACUUM ANALYZE bench_keys`}
		update = `UPDATE bench_keys SET wrapped = substring(wrapped FROM 2) || substring(wrapped FROM 1 FOR 1), epoch = epoch + 1`
	}
	for _, q := range create {
		if _, err := db.ExecContext(ctx, q); err != nil {
			return 0, fmt.Errorf("%s: %w", q, err)
		}
	}
	defer db.ExecContext(ctx, `DROP TABLE bench_keys`)
	t := time.Now()
	if _, err := db.ExecContext(ctx, update); err != nil {
		return 0, err
	}
	return time.Since(t), nil
}

// cryptoAlone times what a rotation computes for n keys: open each wrapped key under
// one key-encryption key and seal it under another (AES-256-GCM, the subject as
// associated data), in one goroutine.
func cryptoAlone(n int) time.Duration {
	newGCM := func() cipher.AEAD {
		k := make([]byte, 32)
		_, _ = rand.Read(k)
		blk, _ := aes.NewCipher(k)
		a, _ := cipher.NewGCM(blk)
		return a
	}
	from, to := newGCM(), newGCM()
	subject := []byte("0123456789abcdef0123456789abcdef")
	data := make([]byte, 32)
	_, _ = rand.Read(data)
	nonce := make([]byte, 12)
	wrapped := from.Seal(append([]byte(nil), nonce...), nonce, data, subject)
	t := time.Now()
	for range n {
		plain, err := from.Open(nil, wrapped[:12], wrapped[12:], subject)
		if err != nil {
			panic(err)
		}
		out := make([]byte, 12, 12+32+16)
		_, _ = rand.Read(out)
		_ = to.Seal(out, out[:12], plain, subject)
		clear(plain)
	}
	return time.Since(t)
}

// paced loads url for d at rps requests a second from conns connections and returns each
// request's latency, sorted, and how many failed.
func paced(url, token string, rps, conns int, d time.Duration) ([]time.Duration, int) {
	end := time.Now().Add(d)
	return pacedUntil(context.Background(), url, token, rps, conns, func() bool { return time.Now().Before(end) })
}

// pacedUntil is paced while more() holds. Each connection sends its requests on a fixed
// schedule, and a request's latency counts from when it was due: one held up delays
// those after it on its connection, and they count the wait (no coordinated omission).
func pacedUntil(ctx context.Context, url, token string, rps, conns int, more func() bool) ([]time.Duration, int) {
	interval := time.Duration(float64(time.Second) * float64(conns) / float64(rps))
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: conns}}
	var mu sync.Mutex
	var all []time.Duration
	var errs atomic.Int64
	var wg sync.WaitGroup
	t0 := time.Now()
	for w := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []time.Duration
			due := t0.Add(interval * time.Duration(w) / time.Duration(conns))
			for more() && ctx.Err() == nil {
				if wait := time.Until(due); wait > 0 {
					time.Sleep(wait)
				}
				req, _ := http.NewRequest("GET", url, nil)
				req.Header.Set("Authorization", "Bearer "+token)
				resp, err := client.Do(req)
				if err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != http.StatusOK {
						err = fmt.Errorf("%d", resp.StatusCode)
					}
				}
				if err != nil {
					errs.Add(1)
				}
				mine = append(mine, time.Since(due))
				due = due.Add(interval)
			}
			mu.Lock()
			all = append(all, mine...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	slices.Sort(all)
	return all, int(errs.Load())
}

// ---- 3. Erasure in a large population.

// population is a database of generated members and whom the figure erases.
type population struct {
	b       *benchApp
	n       int
	plain   []string // members with one address
	moved   []string // members who changed address once
	erased  []time.Duration
	movedT  []time.Duration
	exports []time.Duration
}

func erasureRows(ctx context.Context, o keysOpts) ([]row, error) {
	moved := max(o.erasures/4, 1)
	var pops []*population
	defer func() {
		for _, p := range pops {
			p.b.Close()
		}
	}()
	for _, n := range []int{o.baseMembers, o.members} {
		b, err := newApp(ctx, o.mail(), false)
		if err != nil {
			return nil, err
		}
		p := &population{b: b, n: n}
		pops = append(pops, p)
		t := time.Now()
		if err := populate(ctx, p, o.erasures, moved); err != nil {
			return nil, err
		}
		fmt.Printf("  erasure: %d members written in %.1f s%s\n", n, time.Since(t).Seconds(), dbSize(ctx, b))
	}
	if explain {
		for _, p := range pops {
			if err := explainErasure(ctx, p); err != nil {
				return nil, err
			}
		}
	}
	// Each member to be erased is exported first (in-process: Subject and the archive
	// written to nowhere), one in each population in turn.
	for i := range o.erasures {
		for _, p := range pops {
			t := time.Now()
			subj, err := p.b.Accounts().Subject(ctx, p.plain[i])
			if err == nil {
				err = p.b.Rights().Export(ctx, subj, io.Discard)
			}
			if err != nil {
				return nil, fmt.Errorf("export at %d members: %w", p.n, err)
			}
			p.exports = append(p.exports, time.Since(t))
		}
	}
	// In turn: one erasure in each population, so that both meet the same machine.
	for i := range o.erasures + moved {
		for _, p := range pops {
			id, out := "", &p.erased
			if i < o.erasures {
				id = p.plain[i]
			} else {
				id, out = p.moved[i-o.erasures], &p.movedT
			}
			t := time.Now()
			if err := p.b.Rights().EraseNow(ctx, id, "bench"); err != nil {
				return nil, fmt.Errorf("erase at %d members: %w", p.n, err)
			}
			*out = append(*out, time.Since(t))
		}
	}
	for _, p := range pops {
		var left int
		ids := append(append([]string(nil), p.plain...), p.moved...)
		in, args := p.b.DB().In("id", 1, ids)
		if err := p.b.DB().QueryRowContext(ctx, `SELECT count(*) FROM accounts WHERE `+in, args...).Scan(&left); err != nil {
			return nil, err
		}
		if left != 0 {
			return nil, fmt.Errorf("%d erased accounts remain at %d members", left, p.n)
		}
		slices.Sort(p.erased)
		slices.Sort(p.movedT)
		fmt.Printf("  erasure at %d members: median %.1f ms, max %.1f ms; changed address: median %.1f ms, max %.1f ms\n",
			p.n, ms(medianD(p.erased)), ms(p.erased[len(p.erased)-1]), ms(medianD(p.movedT)), ms(p.movedT[len(p.movedT)-1]))
	}
	small, large := pops[0], pops[1]
	a, c := ms(medianD(large.erased)), ms(medianD(small.erased))
	d, e := ms(medianD(large.movedT)), ms(medianD(small.movedT))
	f, g := ms(medianD(large.exports)), ms(medianD(small.exports))
	return []row{
		{fmt.Sprintf("erasure ms at %d members vs at %d (median of %d)", large.n, small.n, o.erasures),
			fmt.Sprintf("%.1f", a), fmt.Sprintf("%.1f", c), ratio(a, c), "<= 1.20"},
		{fmt.Sprintf("  members who changed address (median of %d)", moved),
			fmt.Sprintf("%.1f", d), fmt.Sprintf("%.1f", e), ratio(d, e), "<= 1.20"},
		{"  their exports before (in-process, no HTTP, no files)", fmt.Sprintf("%.2f", f), fmt.Sprintf("%.2f", g), ratio(f, g), "(reference)"},
	}, nil
}

func medianD(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}

// dbSize describes how large the database is, for the log.
func dbSize(ctx context.Context, b *benchApp) string {
	var size int64
	if b.DB().Dialect == store.Postgres {
		if err := b.DB().QueryRowContext(ctx, `SELECT sum(pg_total_relation_size(c.oid)) FROM pg_class c
			JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = current_schema() AND c.relkind = 'r'`).Scan(&size); err != nil {
			return ""
		}
	} else {
		st, err := os.Stat(b.DB().Path())
		if err != nil {
			return ""
		}
		size = st.Size()
	}
	return fmt.Sprintf(" (%.0f MiB)", float64(size)/(1<<20))
}

// populate writes p.n members straight into the tables, as many as the holders keep for
// a member who has used Steward for a while: the account (every sealed field sealed
// under the member's data key, made by the vault), a session or two, the proven
// address (and for 3% an earlier one), three audit entries, consent decisions with their
// state, processing flags for 1%; a subscription for 40% with whom-to-mail, a delivery of
// one campaign, and an open for some; and the requests and ledger of 0.5% erased
// before. It picks members to erase: with one address, and who changed address.
func populate(ctx context.Context, p *population, nPlain, nMoved int) (err error) {
	b, n := p.b, p.n
	key, err := app.LedgerKey(b.Config().LedgerKeyFile)
	if err != nil {
		return err
	}
	index := vault.NewIndex(key)
	pwHash := account.HashPassword(account.Argon2(b.Config().Argon2), richPassword)
	ids := make([]string, n)
	for i := range ids {
		h := splitmix(uint64(i) ^ 0x6d656d62)
		ids[i] = fmt.Sprintf("%016x%016x", h, splitmix(h))
	}
	sort.Strings(ids)

	tables := []string{"accounts", "sessions", "account_addresses", "audit_log", "consent_events", "consent_state",
		"processing_flags", "subscribers", "mailable", "campaign_deliveries", "campaign_opens", "erasure_requests",
		"erasure_ledger", "suppressions", "vault_keys"}
	restore, err := dropIndexes(ctx, b.DB(), tables...)
	if err != nil {
		return err
	}
	defer func() {
		if rerr := restore(); err == nil {
			err = rerr
		}
	}()
	if b.DB().Dialect == store.SQLite {
		// As for the audience figure: the writer's cache holds the database while it
		// is made, then gets its usual size back, and the log is checkpointed.
		for _, q := range []string{`PRAGMA cache_size = -1048576`} {
			if _, err := b.DB().ExecContext(ctx, q); err != nil {
				return err
			}
		}
		defer func() {
			if _, cerr := b.DB().ExecContext(ctx, `PRAGMA cache_size = -16384`); err == nil {
				err = cerr
			}
			if cerr := b.DB().Compact(ctx); err == nil {
				err = cerr
			}
		}()
	}
	now := time.Now()
	ms0 := store.Millis(now)
	const campaign = "0000000000000000bench-campaign-01"
	if _, err := b.DB().ExecContext(ctx, `INSERT INTO campaigns (id, purpose, subject, body, status, created_by, created_at, sent_at)
		VALUES ($1, $2, 'Spring news', 'Hello', 'sent', 'staff', $3, $3)`, campaign, newsletter.Purpose, ms0-30*86400_000); err != nil {
		return err
	}

	// The rows of a chunk of members are made on one core while the other writes the
	// chunk before.
	type chunk struct{ rows map[string][][]any }
	cols := map[string][]string{
		"vault_keys": {"subject_id", "wrapped", "epoch", "created_at"},
		"accounts": {"id", "email", "email_idx", "password_hash", "status", "name", "phone", "home_address", "business_address",
			"birthdate", "country", "email_verified_at", "created_at", "updated_at"},
		"sessions":            {"id", "account_id", "created_at", "last_seen_at", "expires_at", "ip", "user_agent"},
		"account_addresses":   {"account_id", "address_hash", "proven_at"},
		"audit_log":           {"at", "event", "account_id", "ip", "detail", "sealed"},
		"consent_events":      {"id", "subject_id", "purpose", "decision", "source", "policy_version", "evidence", "at"},
		"consent_state":       {"subject_id", "purpose", "decision", "event_id", "at"},
		"processing_flags":    {"subject_id", "restricted", "objected", "updated_at"},
		"subscribers":         {"id", "subject_id", "email", "email_hash", "first_name", "last_name", "company", "status", "account_id", "source", "created_at", "confirmed_at"},
		"mailable":            {"purpose", "subject_id", "email", "first_name"},
		"campaign_deliveries": {"campaign_id", "subject_id", "token_id", "state", "at"},
		"campaign_opens":      {"campaign_id", "subject_id", "at"},
		"erasure_requests":    {"id", "state", "steps_done", "source", "created_at", "completed_at"},
		"erasure_ledger":      {"hash", "kind", "request_id", "erased_at"},
		"suppressions":        {"hash", "purpose", "reason", "at"},
	}
	const per = 10_000
	chunks := make(chan chunk, 2)
	genErr := make(chan error, 1)
	var eventID int64
	go func() {
		defer close(chunks)
		rnd := func() string {
			var x [32]byte
			_, _ = rand.Read(x[:])
			return hex.EncodeToString(x[:])
		}
		for lo := 0; lo < n; lo += per {
			c := chunk{rows: map[string][][]any{}}
			add := func(t string, vals ...any) { c.rows[t] = append(c.rows[t], vals) }
			for i := lo; i < min(lo+per, n); i++ {
				id := ids[i]
				h := splitmix(uint64(i) ^ 0x706f70)
				pct := func(shift uint) uint64 { return (h >> shift) % 100 }
				created := ms0 - int64(h%(700*86400_000)) - 86400_000
				if i%200 == 199 {
					// One member in 200 has a predecessor erased before: only the
					// request, done, and the ledger's hashes remain of them.
					req := rnd()
					add("erasure_requests", req, "done", "account,vault", "member", created, created+5000)
					add("erasure_ledger", rnd(), "id", req, created+5000)
					add("erasure_ledger", rnd(), "address", req, created+5000)
					add("suppressions", rnd(), "*", "erased", created+5000)
				}
				k, kr, err := b.Vault().NewKey(id)
				if err != nil {
					genErr <- err
					return
				}
				kr[3] = created
				add("vault_keys", kr...)
				first, last := firstNames[h%12], lastNames[(h>>8)%12]
				email := fmt.Sprintf("%s.%s.%s@example.com", strings.ToLower(first), strings.ToLower(last), id[:16])
				opt := func(label, v string, shift uint, below uint64) any {
					if pct(shift) >= below {
						return nil
					}
					return k.SealText(label, v)
				}
				add("accounts", id, k.SealText("accounts.email", email), index.Address(email), pwHash, "active",
					k.SealText("accounts.name", first+" "+last), opt("accounts.phone", "+49 30 1234567", 8, 50),
					opt("accounts.home_address", "Hauptstrasse 12, 10115 Berlin", 16, 50),
					opt("accounts.business_address", "Example Works GmbH, Ring 1, 20095 Hamburg", 24, 20),
					k.SealText("accounts.birthdate", fmt.Sprintf("19%02d-%02d-%02d", 40+h%60, 1+(h>>4)%12, 1+(h>>8)%28)),
					k.SealText("accounts.country", "DE"), created+60_000, created, created)
				for s := range 1 + int(pct(32)/70) {
					seen := ms0 - int64((h>>s)%(20*86400_000))
					add("sessions", rnd(), id, seen-3600_000, seen, seen+30*86400_000,
						k.SealText("sessions.ip", fmt.Sprintf("198.51.100.%d", (h>>s)%250+1)),
						k.SealText("sessions.user_agent", "Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0"))
				}
				add("account_addresses", id, index.Address(email), created+60_000)
				if pct(40) < 3 {
					// Changed address once: the earlier one was proven first.
					add("account_addresses", id, index.Address("old."+email), created-86400_000)
				}
				// Stored as Steward stores them: sealed under the member's key.
				audit := func(at int64, event, ip, detail string) {
					add("audit_log", at, event, id, k.SealText("audit_log.ip", ip), k.SealText("audit_log.detail", detail), 1)
				}
				audit(created, "registered", "198.51.100.7", "pending_verification")
				audit(created+60_000, "email_verified", "198.51.100.7", "")
				audit(ms0-int64(h%(20*86400_000)), "login", "198.51.100.8", "")
				decide := func(purpose, decision string, at int64) {
					eventID++
					add("consent_events", eventID, id, purpose, decision, "api", "2026.1",
						k.SealText("consent_events.evidence", `{"ip":"198.51.100.7"}`), at)
				}
				c, d := pct(48), pct(56)
				subscribed := c < 40
				if c < 50 {
					decide(newsletter.Purpose, "granted", created+120_000)
					dec := "granted"
					if !subscribed {
						decide(newsletter.Purpose, "withdrawn", created+86400_000)
						dec = "withdrawn"
					}
					add("consent_state", id, newsletter.Purpose, dec, eventID, created+120_000)
				}
				if d < 30 {
					dec := "granted"
					if d >= 20 {
						dec = "withdrawn"
					}
					decide("own_offers", dec, created+180_000)
					add("consent_state", id, "own_offers", dec, eventID, created+180_000)
				}
				if pct(2) == 99 {
					add("processing_flags", id, 1, 0, created+240_000)
				}
				if subscribed {
					sealedEmail, sealedFirst := k.SealText("subscribers.email", email), k.SealText("subscribers.first_name", first)
					add("subscribers", fmt.Sprintf("%016x", uint64(created))+id[:16], id, sealedEmail, index.Address(email), sealedFirst,
						k.SealText("subscribers.last_name", last), "", newsletter.StatusConfirmed, id, "account", created+120_000, created+120_000)
					add("mailable", newsletter.Purpose, id, sealedEmail, sealedFirst)
					add("campaign_deliveries", campaign, id, rnd(), "sent", ms0-30*86400_000)
					if d%5 == 0 {
						add("campaign_opens", campaign, id, ms0-29*86400_000)
					}
				}
				switch {
				case subscribed && len(p.plain) < nPlain && pct(40) >= 3 && i%(n/(4*nPlain)+1) == 0:
					p.plain = append(p.plain, id)
				case subscribed && len(p.moved) < nMoved && pct(40) < 3 && i > n/3:
					p.moved = append(p.moved, id)
				}
			}
			chunks <- c
		}
		genErr <- nil
	}()
	perTx := 50_000 / per
	if b.DB().Dialect == store.SQLite {
		perTx = n // one transaction, as for the audience figure
	}
	var werr error
	for closed := false; !closed && werr == nil; {
		werr = b.DB().InTx(ctx, func(tx *store.Tx) error {
			for range perTx {
				c, ok := <-chunks
				if !ok {
					closed = true
					return nil
				}
				for _, t := range tables {
					bk := tx.Bulk(t, cols[t], 500, "").OrIgnore()
					for _, r := range c.rows[t] {
						if err := bk.Add(ctx, r...); err != nil {
							bk.Close(ctx)
							return fmt.Errorf("%s: %w", t, err)
						}
					}
					if err := bk.Close(ctx); err != nil {
						return fmt.Errorf("%s: %w", t, err)
					}
				}
			}
			return nil
		})
	}
	for range chunks { // drain after a failure, so the generator ends
	}
	if gerr := <-genErr; werr == nil {
		werr = gerr
	}
	if werr != nil {
		return werr
	}
	if len(p.plain) < nPlain || len(p.moved) < nMoved {
		return fmt.Errorf("picked %d and %d members to erase, want %d and %d", len(p.plain), len(p.moved), nPlain, nMoved)
	}
	if b.DB().Dialect == store.Postgres {
		if _, err := b.DB().ExecContext(ctx, `SELECT setval(pg_get_serial_sequence('consent_events', 'id'), $1)`, eventID); err != nil {
			return err
		}
	}
	if err := restore(); err != nil {
		return err
	}
	restore = func() error { return nil }
	if b.DB().Dialect == store.Postgres {
		// Autovacuum would have vacuumed and analyzed such tables long ago: the figure
		// is the steady state.
		if _, err := b.DB().ExecContext(ctx, `VACUUM ANALYZE`); err != nil {
			return err
		}
	}
	return nil
}

// explainErasure prints the plans of the statements an erasure runs that read by a
// subject column, for one member of the population.
func explainErasure(ctx context.Context, p *population) error {
	id := p.moved[len(p.moved)-1]
	prefix := "EXPLAIN QUERY PLAN "
	if p.b.DB().Dialect == store.Postgres {
		prefix = "EXPLAIN "
	}
	var proven string
	if err := p.b.DB().QueryRowContext(ctx, `SELECT address_hash FROM account_addresses WHERE account_id = $1 ORDER BY proven_at LIMIT 1`, id).Scan(&proven); err != nil {
		return err
	}
	fmt.Printf("  erasure plans at %d members:\n", p.n)
	for _, q := range []struct {
		sql string
		arg string
	}{
		{`SELECT * FROM vault_keys WHERE subject_id = $1`, id},
		{`SELECT * FROM files WHERE owner_id = $1`, id},
		{`SELECT * FROM file_access_log WHERE actor_id = $1`, id},
		{`SELECT * FROM staff_roles WHERE account_id = $1`, id},
		{`SELECT * FROM subscribers WHERE subject_id = $1`, id},
		{`SELECT * FROM subscribers WHERE email_hash = $1`, proven},
		{`SELECT * FROM campaign_deliveries WHERE subject_id = $1`, id},
		{`SELECT * FROM campaign_opens WHERE subject_id = $1`, id},
		{`SELECT * FROM mailable WHERE subject_id = $1`, id},
		{`SELECT * FROM campaigns WHERE created_by = $1`, id},
		{`SELECT * FROM consent_conflicts WHERE subject_id = $1`, id},
		{`SELECT * FROM consent_events WHERE subject_id = $1`, id},
		{`SELECT * FROM consent_state WHERE subject_id = $1`, id},
		{`SELECT * FROM processing_flags WHERE subject_id = $1`, id},
		{`SELECT * FROM erasure_requests WHERE subject_id = $1`, id},
		{`SELECT * FROM mail_outbox WHERE recipient = $1`, id},
		{`SELECT * FROM audit_log WHERE account_id = $1`, id},
		{`SELECT * FROM account_tokens WHERE account_id = $1`, id},
		{`SELECT * FROM sessions WHERE account_id = $1`, id},
		{`SELECT * FROM account_addresses WHERE address_hash = $1`, proven},
	} {
		rows, err := p.b.DB().QueryContext(ctx, prefix+q.sql, q.arg)
		if err != nil {
			return fmt.Errorf("%s: %w", q.sql, err)
		}
		cols, _ := rows.Columns()
		var plan []string
		for rows.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				rows.Close()
				return err
			}
			plan = append(plan, fmt.Sprint(vals[len(vals)-1]))
		}
		rows.Close()
		fmt.Printf("    %-62s %s\n", q.sql, strings.Join(plan, " / "))
	}
	return nil
}
