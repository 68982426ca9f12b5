package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"mime/quotedprintable"
)

// fileRows measures files through a separate steward process (so its peak memory can
// be read from /proc): upload and download throughput against a plain copy of the same
// bytes on the same disk, and the server's peak resident memory during a large upload.
func fileRows(size, bigSize int64, extra []string) ([]row, error) {
	dir, err := os.MkdirTemp("", "steward-bench-files-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	data := filepath.Join(dir, "data")
	cmd, base, err := startSteward(dir, append([]string{"--rate-limits=false", "--max-file-size", "8GiB", "--quota", "64GiB",
		// A small password hash: its 64 MiB would otherwise stand in the peak memory
		// figure, which is about files.
		"--argon2-memory", "8192"}, extra...))
	if err != nil {
		return nil, err
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	token, err := login(base, data)
	if err != nil {
		return nil, err
	}

	// Baselines: a plain copy of a file of the same size on the same disk, synced (the
	// kernel copies it: copy_file_range), and a bare net/http server receiving and
	// sending the same bytes to and from disk, without encryption, hashing or
	// accounting: the ceiling of any HTTP upload over loopback on this machine.
	src := filepath.Join(dir, "src.bin")
	if err := writePattern(src, size); err != nil {
		return nil, err
	}
	bare, bareURL := bareServer(dir, src)
	defer bare.Close()
	client := &http.Client{}
	var copyT, upT, bareUpT, downT, bareDownT []float64
	var id string
	for range 3 {
		syscall.Sync()
		t := time.Now()
		if err := copyFile(src, filepath.Join(dir, "dst.bin")); err != nil {
			return nil, err
		}
		copyT = append(copyT, float64(size)/time.Since(t).Seconds())
		os.Remove(filepath.Join(dir, "dst.bin"))

		syscall.Sync()
		f, _ := os.Open(src)
		t = time.Now()
		id, err = uploadBody(client, base, token, f, size)
		f.Close()
		if err != nil {
			return nil, err
		}
		upT = append(upT, float64(size)/time.Since(t).Seconds())

		syscall.Sync()
		f, _ = os.Open(src)
		t = time.Now()
		if _, err := uploadTo(client, bareURL, f, size); err != nil {
			return nil, err
		}
		f.Close()
		bareUpT = append(bareUpT, float64(size)/time.Since(t).Seconds())

		syscall.Sync()
		t = time.Now()
		if err := download(client, base+"/api/v1/me/files/"+id, token, filepath.Join(dir, "down.bin"), size); err != nil {
			return nil, err
		}
		downT = append(downT, float64(size)/time.Since(t).Seconds())

		syscall.Sync()
		t = time.Now()
		if err := download(client, bareURL, "", filepath.Join(dir, "down.bin"), size); err != nil {
			return nil, err
		}
		bareDownT = append(bareDownT, float64(size)/time.Since(t).Seconds())
	}
	copyRate, upRate, bareUp, downRate, bareDown := median(copyT), median(upT), median(bareUpT), median(downT), median(bareDownT)

	// Peak memory during a large upload, streamed from a generator: the peak is reset
	// (clear_refs 5) just before, so it is the upload's own.
	before, _ := vmRSS(cmd.Process.Pid)
	if err := os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", cmd.Process.Pid), []byte("5"), 0); err != nil {
		return nil, fmt.Errorf("reset peak memory: %w", err)
	}
	if _, err := uploadBody(client, base, token, &pattern{left: bigSize}, bigSize); err != nil {
		return nil, err
	}
	peak, err := vmHWM(cmd.Process.Pid)
	if err != nil {
		return nil, err
	}
	// And during a download of it.
	big, err := latestFile(client, base, token)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", cmd.Process.Pid), []byte("5"), 0); err != nil {
		return nil, err
	}
	if err := download(client, base+"/api/v1/me/files/"+big, token, os.DevNull, bigSize); err != nil {
		return nil, err
	}
	downPeak, err := vmHWM(cmd.Process.Pid)
	if err != nil {
		return nil, err
	}
	mib := func(v float64) string { return fmt.Sprintf("%.0f", v/(1<<20)) }
	return []row{
		{fmt.Sprintf("upload MiB/s (%d MiB, encrypted) vs plain file copy", size>>20), mib(upRate), mib(copyRate), ratio(upRate, copyRate), ">= 0.70"},
		{"  the same upload vs a bare net/http handler writing to disk", mib(upRate), mib(bareUp), ratio(upRate, bareUp), "(reference)"},
		{fmt.Sprintf("download MiB/s (%d MiB, decrypted) vs plain file copy", size>>20), mib(downRate), mib(copyRate), ratio(downRate, copyRate), ">= 0.70"},
		{"  the same download vs a bare net/http file server", mib(downRate), mib(bareDown), ratio(downRate, bareDown), "(reference)"},
		{fmt.Sprintf("server peak RSS MiB during a %d MiB upload vs RSS before", bigSize>>20), fmt.Sprintf("%.0f", float64(peak)/1024), fmt.Sprintf("%.0f", float64(before)/1024), "-", "< 64 MiB"},
		{fmt.Sprintf("server peak RSS MiB during a %d MiB download vs RSS before", bigSize>>20), fmt.Sprintf("%.0f", float64(downPeak)/1024), fmt.Sprintf("%.0f", float64(before)/1024), "-", "< 64 MiB"},
	}, nil
}

func median(v []float64) float64 {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	return s[len(s)/2]
}

// bareServer receives uploads into a synced file and serves src, with nothing else.
func bareServer(dir, src string) (*http.Server, string) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet {
			http.ServeFile(w, r, src)
			return
		}
		f, err := os.Create(filepath.Join(dir, "bare.bin"))
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		defer os.Remove(f.Name())
		buf := make([]byte, 256<<10)
		_, err = io.CopyBuffer(struct{ io.Writer }{f}, struct{ io.Reader }{r.Body}, buf)
		if err == nil {
			err = f.Sync()
		}
		f.Close()
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		w.WriteHeader(http.StatusCreated)
	})}
	go srv.Serve(ln)
	return srv, "http://" + ln.Addr().String() + "/"
}

func uploadTo(client *http.Client, url string, body io.Reader, size int64) (int, error) {
	req, _ := http.NewRequest("POST", url, body)
	req.ContentLength = size
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		return resp.StatusCode, fmt.Errorf("bare upload: %d", resp.StatusCode)
	}
	return resp.StatusCode, nil
}

// download fetches url into a synced file (the client side of a download writes to
// disk, as the plain copy does).
func download(client *http.Client, url, token, path string, size int64) error {
	req, _ := http.NewRequest("GET", url, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	out, err := os.Create(path)
	if err != nil {
		return err
	}
	n, err := io.Copy(out, resp.Body)
	if err == nil && path != os.DevNull {
		err = out.Sync()
	}
	out.Close()
	if path != os.DevNull {
		os.Remove(path)
	}
	if err != nil || n != size {
		return fmt.Errorf("download %s: %d of %d bytes, %v", url, n, size, err)
	}
	return nil
}

func latestFile(client *http.Client, base, token string) (string, error) {
	req, _ := http.NewRequest("GET", base+"/api/v1/me/files", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var l struct{ Files []struct{ ID string } }
	if err := json.NewDecoder(resp.Body).Decode(&l); err != nil || len(l.Files) == 0 {
		return "", fmt.Errorf("list files: %v", err)
	}
	return l.Files[0].ID, nil
}

func waitUp(base string) error {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := http.Get(base + "/api/v1/members/none"); err == nil {
			resp.Body.Close()
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("steward did not start")
}

// login registers a member, confirms it from the outbox and logs in.
func login(base, data string) (string, error) {
	email, pw := "files.bench@example.org", "violet-harbour-73"
	b, _ := json.Marshal(map[string]string{"email": email, "password": pw, "name": "Bench", "birthdate": "1980-01-01", "country": "DE"})
	resp, err := http.Post(base+"/api/v1/accounts", "application/json", bytes.NewReader(b))
	if err != nil {
		return "", err
	}
	resp.Body.Close()
	re := regexp.MustCompile(`token=([A-Za-z0-9_-]+)`)
	var token string
	for deadline := time.Now().Add(10 * time.Second); token == "" && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		files, _ := filepath.Glob(filepath.Join(data, "outbox", "*.eml"))
		for _, f := range files {
			enc, _ := os.ReadFile(f)
			raw, _ := io.ReadAll(quotedprintable.NewReader(bytes.NewReader(enc)))
			if m := re.FindSubmatch(raw); m != nil {
				token = string(m[1])
			}
		}
	}
	if token == "" {
		return "", fmt.Errorf("no confirmation mail")
	}
	vb, _ := json.Marshal(map[string]string{"token": token})
	if resp, err = http.Post(base+"/api/v1/verifications", "application/json", bytes.NewReader(vb)); err != nil {
		return "", err
	}
	resp.Body.Close()
	lb, _ := json.Marshal(map[string]string{"email": email, "password": pw})
	resp, err = http.Post(base+"/api/v1/sessions", "application/json", bytes.NewReader(lb))
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var lr struct{ Token string }
	json.NewDecoder(resp.Body).Decode(&lr)
	if lr.Token == "" {
		return "", fmt.Errorf("login failed: %d", resp.StatusCode)
	}
	return lr.Token, nil
}

func uploadBody(client *http.Client, base, token string, body io.Reader, size int64) (string, error) {
	req, _ := http.NewRequest("POST", base+"/api/v1/me/files?name=bench.bin", body)
	req.ContentLength = size
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var fr struct{ ID string }
	b, _ := io.ReadAll(resp.Body)
	json.Unmarshal(b, &fr)
	if resp.StatusCode != 201 {
		return "", fmt.Errorf("upload: %d %s", resp.StatusCode, b)
	}
	return fr.ID, nil
}

// pattern is a reader of size bytes of a cheap, non-repeating-looking pattern.
type pattern struct {
	left int64
	ctr  uint64
}

func (p *pattern) Read(b []byte) (int, error) {
	if p.left <= 0 {
		return 0, io.EOF
	}
	if int64(len(b)) > p.left {
		b = b[:p.left]
	}
	for i := 0; i+8 <= len(b); i += 8 {
		p.ctr = p.ctr*6364136223846793005 + 1442695040888963407
		v := p.ctr
		b[i], b[i+1], b[i+2], b[i+3], b[i+4], b[i+5], b[i+6], b[i+7] = byte(v), byte(v>>8), byte(v>>16), byte(v>>24), byte(v>>32), byte(v>>40), byte(v>>48), byte(v>>56)
	}
	p.left -= int64(len(b))
	return len(b), nil
}

func writePattern(path string, size int64) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, &pattern{left: size}); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// startSteward builds steward into dir and serves it there (data in dir/data) on a free
// port of the loopback with args, until it answers; the caller kills the process.
func startSteward(dir string, args []string) (*exec.Cmd, string, error) {
	bin := filepath.Join(dir, "steward")
	if out, err := exec.Command("go", "build", "-o", bin, "./cmd/steward").CombinedOutput(); err != nil {
		return nil, "", fmt.Errorf("build: %v: %s", err, out)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, "", err
	}
	addr := ln.Addr().String()
	ln.Close()
	base := "http://" + addr
	cmd := exec.Command(bin, append([]string{"serve", "--data", filepath.Join(dir, "data"), "--addr", addr, "--base-url", base,
		"--log-level", "error"}, args...)...)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, "", err
	}
	if err := waitUp(base); err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		return nil, "", err
	}
	return cmd, base, nil
}

// vmHWM returns the peak resident set size of a process in KiB.
func vmHWM(pid int) (int64, error) { return procStatus(pid, "VmHWM:") }

// vmRSS returns the resident set size of a process in KiB.
func vmRSS(pid int) (int64, error) { return procStatus(pid, "VmRSS:") }

func procStatus(pid int, field string) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, field) {
			return strconv.ParseInt(strings.Fields(line)[1], 10, 64)
		}
	}
	return 0, fmt.Errorf("no %s in /proc/%d/status", field, pid)
}
