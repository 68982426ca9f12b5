package app_test

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"steward/internal/app/apptest"
	"steward/internal/blob"
	"steward/internal/cli"
	"steward/internal/config"
	"steward/internal/store"
	"steward/internal/store/storetest"
)

// TestCrashDuringUploads kills the real binary (SIGKILL) while uploads stream in and a
// deletion runs, starts it again, and finds rows and objects in agreement: no object
// without its row, no row without its object, nothing left half-written. On SQLite
// with the disk store the restart itself mends everything (one node: every upload in
// progress is dead); on PostgreSQL with S3, other nodes may be uploading, so the dead
// uploads are reclaimed once their lease runs out, with their unfinished multipart
// uploads.
func TestCrashDuringUploads(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "steward")
	if out, err := exec.Command("go", "build", "-o", bin, "steward/cmd/steward").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	t.Run("sqlite-disk", func(t *testing.T) { crashDuringUploads(t, bin, nil) })
	t.Run("postgres-s3", func(t *testing.T) {
		pg := storetest.PostgresURL(t)
		s3 := s3Flags(t)
		if pg == "" || s3 == nil {
			t.Skip("PostgreSQL or S3 not configured")
		}
		crashDuringUploads(t, bin, append([]string{"--database", pg, "--upload-lease", "2s"}, s3...))
	})
}

func crashDuringUploads(t *testing.T, bin string, extra []string) {
	data := t.TempDir()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	start := func() *exec.Cmd {
		cmd := exec.Command(bin, append([]string{"serve", "--data", data, "--addr", addr, "--base-url", "http://" + addr,
			"--argon2-memory", "1024", "--rate-limits=false", "--log-level", "warn"}, extra...)...)
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(20 * time.Second)
		for {
			resp, err := http.Get("http://" + addr + "/api/v1/members/none")
			if err == nil {
				resp.Body.Close()
				return cmd
			}
			if time.Now().After(deadline) {
				cmd.Process.Kill()
				t.Fatalf("steward did not start: %v", err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	cmd := start()
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	h := &apptest.Harness{T: t, URL: "http://" + addr, Data: data, Client: &http.Client{Timeout: 30 * time.Second}}
	_, token := h.Member("crash@example.org", pw, nil)

	kept := map[string][]byte{}
	var doomed string
	for i := range 4 {
		body := random(200_000 + i)
		r := upload(h, token, "kept.bin", body, i%2 == 0)
		if r.Status != 201 {
			t.Fatalf("upload = %d %s", r.Status, r.Body)
		}
		kept[r.JSON()["id"].(string)] = body
	}
	for id := range kept {
		doomed = id
		break
	}
	// Uploads that never finish: their bodies stall after 1 MiB.
	handed := make(chan struct{}, 3)
	for i := range 3 {
		pr, pw := io.Pipe()
		go func() {
			pw.Write(random(1 << 20)) // returns once the client has sent it all to the server
			handed <- struct{}{}
			// The body stays open: the server dies first.
		}()
		req, _ := http.NewRequest("POST", h.URL+"/api/v1/me/files?name=stalled.bin", pr)
		req.Header.Set("Authorization", "Bearer "+token)
		if i == 0 {
			req.ContentLength = 50 << 20
		}
		go http.DefaultClient.Do(req)
	}
	deleted := make(chan struct{})
	go func() {
		req, _ := http.NewRequest("DELETE", h.URL+"/api/v1/me/files/"+doomed, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		http.DefaultClient.Do(req)
		close(deleted)
	}()
	ctx := context.Background()
	cfg, _, err := config.Load(append([]string{"--data", data}, extra...), func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	db, err := store.Open(ctx, cfg.DatabaseURL)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	stalled := waitUploading(t, db, 3)
	for range 3 {
		select {
		case <-handed: // the kill lands with the MiB sent, mid-stream
		case <-time.After(20 * time.Second):
			t.Fatal("the stalled uploads' first MiB never went out")
		}
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()

	cmd = start()
	if db.Dialect == store.Postgres {
		// The dead uploads' leases run out; the next reconciliation (every 15 minutes,
		// or on demand) takes them.
		time.Sleep(2500 * time.Millisecond)
		var out bytes.Buffer
		if code := cli.Run(ctx, append([]string{"files", "reconcile", "--data", data, "--log-level", "error"}, extra...),
			func(string) string { return "" }, &out, &out); code != 0 {
			t.Fatalf("files reconcile: %d %s", code, out.String())
		}
	}
	// Every file still listed downloads intact; the stalled uploads are gone.
	list := get(h, token, "/api/v1/me/files", nil).JSON()["files"].([]any)
	for _, f := range list {
		id := f.(map[string]any)["id"].(string)
		body, ok := kept[id]
		if !ok {
			t.Errorf("unexpected file %s after restart", id)
			continue
		}
		if d := get(h, token, "/api/v1/me/files/"+id, nil); !bytes.Equal(d.Body, body) {
			t.Errorf("file %s damaged after the crash", id)
		}
	}
	if len(list) < 3 || len(list) > 4 {
		t.Errorf("%d files after restart, want the 3 or 4 kept (the deletion may or may not have finished)", len(list))
	}
	cmd.Process.Signal(syscall.SIGTERM)
	cmd.Wait()

	rows := map[string]string{}
	rs, err := db.QueryContext(ctx, `SELECT object, state FROM files`)
	if err != nil {
		t.Fatal(err)
	}
	for rs.Next() {
		var o, s string
		rs.Scan(&o, &s)
		rows[o] = s
	}
	rs.Close()
	var bs blob.Store
	if cfg.Files == "s3" {
		bs, err = blob.NewS3(ctx, blob.S3Config{Endpoint: cfg.S3.Endpoint, Bucket: cfg.S3.Bucket, AccessKey: cfg.S3.AccessKey,
			SecretKey: cfg.S3.SecretKey, Prefix: cfg.S3.Prefix})
	} else {
		bs, err = blob.NewDisk(cfg.FilesDir)
	}
	if err != nil {
		t.Fatal(err)
	}
	objects := map[string]bool{}
	bs.List(ctx, "files/", func(i blob.Info) error { objects[i.Name] = true; return nil })
	for o, s := range rows {
		if s != "ready" {
			t.Errorf("row of %s left %s", o, s)
		}
		if !objects[o] {
			t.Errorf("row without its object: %s", o)
		}
	}
	for o := range objects {
		if _, ok := rows[o]; !ok {
			t.Errorf("object without its row: %s", o)
		}
	}
	if cfg.Files == "s3" {
		mc, err := minio.New(cfg.S3.Endpoint, &minio.Options{Creds: credentials.NewStaticV4(cfg.S3.AccessKey, cfg.S3.SecretKey, "")})
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range stalled {
			for u := range mc.ListIncompleteUploads(ctx, cfg.S3.Bucket, cfg.S3.Prefix+o, false) {
				if u.Err == nil {
					t.Errorf("unfinished multipart upload left for %s", o)
				}
			}
		}
		return
	}
	var temp []string
	root := filepath.Join(data, "files")
	filepath.Walk(root, func(p string, info os.FileInfo, err error) error {
		rel, _ := filepath.Rel(root, p)
		if err == nil && !info.IsDir() && strings.Contains(rel, "tmp") {
			temp = append(temp, rel)
		}
		return nil
	})
	if len(temp) > 0 {
		t.Errorf("temporary files left: %v", temp)
	}
}

// waitUploading waits until n uploads are in progress, so the kill lands mid-stream,
// and returns their object names.
func waitUploading(t *testing.T, db *store.DB, n int) []string {
	t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		var names []string
		rows, err := db.QueryContext(ctx, `SELECT object FROM files WHERE state = 'uploading'`)
		if err == nil {
			for rows.Next() {
				var o string
				rows.Scan(&o)
				names = append(names, o)
			}
			rows.Close()
		}
		if len(names) >= n {
			return names
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("the uploads never started")
	return nil
}

// The reconciler mends every state a crash can leave.
func TestReconcile(t *testing.T) {
	eachStorage(t, nil, func(t *testing.T, h *apptest.Harness) {
		ctx := context.Background()
		_, token := h.Member("reconcile@example.org", pw, nil)
		var ids []string
		for range 4 {
			ids = append(ids, upload(h, token, "f.bin", random(1000), false).JSON()["id"].(string))
		}
		object := func(id string) string {
			var o string
			h.App.DB().QueryRowContext(ctx, `SELECT object FROM files WHERE id = $1`, id).Scan(&o)
			return o
		}
		// ids[0]: deletion cut short before its object went; ids[1]: after.
		h.App.DB().ExecContext(ctx, `UPDATE files SET state = 'deleting' WHERE id IN ($1, $2)`, ids[0], ids[1])
		h.App.Blobs().Delete(ctx, object(ids[1]))
		// ids[2]: a ready file, uploaded long ago (more than a lease before now), whose
		// object vanished.
		h.App.Blobs().Delete(ctx, object(ids[2]))
		h.Clock.Advance(3 * time.Minute)
		// A file that became ready while the objects were being listed must survive:
		// the reconciler asks storage again and spares files younger than a lease.
		fresh := upload(h, token, "fresh.bin", random(1000), false).JSON()["id"].(string)
		// An upload whose node died long ago, and an orphan object. The row is written
		// as the dead node left it: no clock makes a finished upload's row uploading.
		h.App.DB().ExecContext(ctx, `UPDATE files SET state = 'uploading', lease_until = 1 WHERE id = $1`, ids[3])
		if _, err := h.App.Blobs().Put(ctx, "files/orphan0123456789", strings.NewReader("junk"), 4); err != nil {
			t.Fatal(err)
		}
		rep, err := h.App.Files().Reconcile(ctx, false)
		if err != nil {
			t.Fatal(err)
		}
		if rep.FinishedDeletes != 2 || rep.LostObjects != 1 || rep.DeadUploads != 1 || rep.OrphanObjects != 1 {
			t.Errorf("report = %+v", rep)
		}
		var rows int
		h.App.DB().QueryRowContext(ctx, `SELECT count(*) FROM files`).Scan(&rows)
		objects := 0
		h.App.Blobs().List(ctx, "files/", func(blob.Info) error { objects++; return nil })
		if rows != 1 || objects != 1 {
			t.Errorf("after reconcile: %d rows, %d objects, want only the fresh file's", rows, objects)
		}
		if d := get(h, token, "/api/v1/me/files/"+fresh, nil); d.Status != 200 {
			t.Errorf("the fresh file was reconciled away: %d", d.Status)
		}
	})
}
