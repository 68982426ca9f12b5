package main

// The staff-read figure (-only staff-read, part of -only rights): what recording a
// staff read costs a support page. Two Stewards on two fresh databases, alike but for
// one switch (app.WithoutStaffReadRecords: reads go unrecorded, which nothing but this
// benchmark can set), each with a member (profile, choices, a request, files) that a
// support agent reads under an approved grant. The member-view, GET
// /api/v1/staff/members/{id} and the page /staff/members/{id}, is loaded on both in
// turn, batch by batch, so that drift of the machine weighs on both alike; the ratio
// of the mean latencies, with over without, is the cost (target: at most 1.10).

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"steward/internal/app"
	"steward/internal/server"
)

// staffReadApp is one of the two Stewards, ready to be read.
type staffReadApp struct {
	*benchApp
	token, member string
}

func loginAs(base, email string) (string, error) {
	body, _ := json.Marshal(map[string]string{"email": email, "password": richPassword})
	req, _ := http.NewRequest("POST", base+"/api/v1/sessions", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	var out struct{ Token string }
	err := doJSON(&http.Client{}, req, http.StatusCreated, &out)
	return out.Token, err
}

func call(method, url, token string, body any, want int) error {
	var rd *bytes.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	} else {
		rd = bytes.NewReader(nil)
	}
	req, _ := http.NewRequest(method, url, rd)
	req.Header.Set("Authorization", "Bearer "+token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	return doJSON(&http.Client{}, req, want, nil)
}

func newStaffReadApp(ctx context.Context, o rightsOpts, opts ...app.Option) (*staffReadApp, error) {
	b, err := newAppWith(ctx, o.mail(), true, opts)
	if err != nil {
		return nil, err
	}
	s := &staffReadApp{benchApp: b}
	for _, m := range []map[string]string{
		{"email": "sam@example.org", "name": "Sam Support"},
		{"email": "mia@example.org", "name": "Mia Member", "phone": "+49 30 1234567"},
	} {
		m["password"], m["birthdate"], m["country"] = richPassword, "1980-01-01", "DE"
		if err := memberWith(ctx, b.App, b.base, m, b.dir); err != nil {
			b.Close()
			return nil, err
		}
		// The next member's confirmation mail must be the only one left.
		olds, _ := filepath.Glob(filepath.Join(b.dir, "outbox", "*.eml"))
		for _, f := range olds {
			os.Remove(f)
		}
	}
	fail := func(err error) (*staffReadApp, error) { b.Close(); return nil, err }
	sam, err := b.Accounts().Lookup(ctx, "sam@example.org")
	if err != nil {
		return fail(err)
	}
	if err := b.Staff().Grant(ctx, sam.ID, "support"); err != nil {
		return fail(err)
	}
	mia, err := b.Accounts().Lookup(ctx, "mia@example.org")
	if err != nil {
		return fail(err)
	}
	s.member = mia.ID
	if s.token, err = loginAs(b.base, "sam@example.org"); err != nil {
		return fail(err)
	}
	if err := passSecondFactor(b.base, s.token); err != nil {
		return fail(err)
	}
	miaTok, err := loginAs(b.base, "mia@example.org")
	if err != nil {
		return fail(err)
	}
	if err := call("PUT", b.base+"/api/v1/me/consents", miaTok, map[string]any{"choices": map[string]bool{"newsletter": true}}, 200); err != nil {
		return fail(err)
	}
	if err := call("POST", b.base+"/api/v1/me/requests", miaTok, map[string]any{"right": "inquiry", "details": "What do you hold?"}, 201); err != nil {
		return fail(err)
	}
	for i := range 5 {
		req, _ := http.NewRequest("POST", fmt.Sprintf("%s/api/v1/me/files?name=doc-%d.txt", b.base, i), strings.NewReader(strings.Repeat("x", 1000)))
		req.Header.Set("Authorization", "Bearer "+miaTok)
		req.Header.Set("Content-Type", "text/plain")
		if err := doJSON(&http.Client{}, req, http.StatusCreated, nil); err != nil {
			return fail(err)
		}
	}
	var grant struct{ ID string }
	body, _ := json.Marshal(map[string]any{"member": mia.ID, "scopes": []string{"profile", "consents", "requests", "files"},
		"reason": "Ticket #1: benchmark", "hours": 720})
	req, _ := http.NewRequest("POST", b.base+"/api/v1/staff/grants", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+s.token)
	req.Header.Set("Content-Type", "application/json")
	if err := doJSON(&http.Client{}, req, http.StatusCreated, &grant); err != nil {
		return fail(err)
	}
	if err := call("POST", b.base+"/api/v1/me/staff-access/"+grant.ID+"/decision", miaTok, map[string]bool{"approve": true}, 200); err != nil {
		return fail(err)
	}
	return s, nil
}

func (s *staffReadApp) get(client *http.Client, path string, cookie bool) (time.Duration, error) {
	req, _ := http.NewRequest("GET", s.base+path, nil)
	if cookie {
		req.AddCookie(&http.Cookie{Name: server.CookieName, Value: s.token})
	} else {
		req.Header.Set("Authorization", "Bearer "+s.token)
	}
	t := time.Now()
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	var buf bytes.Buffer
	_, err = buf.ReadFrom(resp.Body)
	resp.Body.Close()
	d := time.Since(t)
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("%s: %d %s", path, resp.StatusCode, buf.Bytes()[:min(buf.Len(), 200)])
	}
	return d, err
}

func mean(d []time.Duration) time.Duration {
	var sum time.Duration
	for _, x := range d {
		sum += x
	}
	return sum / time.Duration(max(len(d), 1))
}

func staffReadRows(ctx context.Context, o rightsOpts) ([]row, error) {
	with, err := newStaffReadApp(ctx, o)
	if err != nil {
		return nil, err
	}
	defer with.Close()
	without, err := newStaffReadApp(ctx, o, app.WithoutStaffReadRecords())
	if err != nil {
		return nil, err
	}
	defer without.Close()
	var lat [][2][]time.Duration
	err = profiled(mailOpts{profilePath: o.profilePath}, "staff-read", func() (err error) {
		lat, err = staffReadLoad(o, with, without)
		return err
	})
	if err != nil {
		return nil, err
	}
	return staffReadReport(ctx, with, lat[0][0], lat[0][1], lat[1][0], lat[1][1])
}

// staffReadLoad loads the member-view of each app in turn, one request at a time
// (the API, then the page, of each app), so that the load of the machine weighs on
// both alike; the first 50 rounds warm up. It returns, per app, the sorted latencies
// of the API and of the page.
func staffReadLoad(o rightsOpts, apps ...*staffReadApp) ([][2][]time.Duration, error) {
	client := &http.Client{}
	lat := make([][2][]time.Duration, len(apps))
	const warm = 50
	for round := range max(o.queueN, 100) + warm {
		for i, s := range apps {
			for k, path := range []string{"/api/v1/staff/members/" + s.member, "/staff/members/" + s.member} {
				d, err := s.get(client, path, k == 1)
				if err != nil {
					return nil, err
				}
				if round >= warm {
					lat[i][k] = append(lat[i][k], d)
				}
			}
		}
	}
	for i := range lat {
		slices.Sort(lat[i][0])
		slices.Sort(lat[i][1])
	}
	return lat, nil
}

func staffReadReport(ctx context.Context, with *staffReadApp, wAPI, wPage, oAPI, oPage []time.Duration) ([]row, error) {
	n, err := with.Access().Count(ctx, with.member)
	if err != nil {
		return nil, err
	}
	fmt.Printf("  staff-read: API p50 %.2f ms with recording, %.2f ms without (mean %.2f, %.2f); page p50 %.2f ms with, %.2f ms without (mean %.2f, %.2f); %d each, %d reads recorded\n",
		ms(pct(wAPI, 0.5)), ms(pct(oAPI, 0.5)), ms(mean(wAPI)), ms(mean(oAPI)), ms(pct(wPage, 0.5)), ms(pct(oPage, 0.5)), ms(mean(wPage)), ms(mean(oPage)),
		len(wAPI), n)
	ratio := func(a, b time.Duration) string { return fmt.Sprintf("%.2f", float64(a)/float64(b)) }
	return []row{
		{"support member-view API, p50 ms with / without recording", fmt.Sprintf("%.2f", ms(pct(wAPI, 0.5))), fmt.Sprintf("%.2f", ms(pct(oAPI, 0.5))),
			ratio(pct(wAPI, 0.5), pct(oAPI, 0.5)), "<= 1.10"},
		{"support member-view API, mean ms with / without recording", fmt.Sprintf("%.2f", ms(mean(wAPI))), fmt.Sprintf("%.2f", ms(mean(oAPI))),
			ratio(mean(wAPI), mean(oAPI)), "<= 1.10"},
		{"support member-view page, p50 ms with / without recording", fmt.Sprintf("%.2f", ms(pct(wPage, 0.5))), fmt.Sprintf("%.2f", ms(pct(oPage, 0.5))),
			ratio(pct(wPage, 0.5), pct(oPage, 0.5)), "<= 1.10"},
		{"support member-view page, mean ms with / without recording", fmt.Sprintf("%.2f", ms(mean(wPage))), fmt.Sprintf("%.2f", ms(mean(oPage))),
			ratio(mean(wPage), mean(oPage)), "<= 1.10"},
	}, nil
}
