// Package stress drives a real steward binary from outside, as an operator's traffic and
// an operator's accidents do: crash cycles (SIGKILL at random moments, then checks that
// nothing acknowledged was lost and nothing was left half done) and a load soak (a mix of
// members' requests with latencies and resident memory measured). scripts/crash-cycles and
// scripts/soak run it through cmd/crashcycles and cmd/soak; its tests run short versions.
package stress

import (
	"bufio"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // the PostgreSQL driver for the fresh schema
)

// Build compiles steward/cmd/steward into dir and returns the binary's path.
func Build(ctx context.Context, dir string) (string, error) {
	bin := filepath.Join(dir, "steward")
	out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, "steward/cmd/steward").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("stress: build: %w\n%s", err, out)
	}
	return bin, nil
}

// Env is where a run keeps its state: a data folder, and on PostgreSQL a fresh schema, on S3
// a fresh prefix.
type Env struct {
	Engine string // sqlite or postgres
	Data   string
	DBURL  string   // "" on SQLite: the data folder's database
	Extra  []string // flags for the database and the file store
	S3     *S3
	drop   func()
}

// S3 is the bucket a postgres run keeps files in, when one is configured.
type S3 struct{ Endpoint, Bucket, AccessKey, SecretKey, Prefix string }

// NewEnv prepares a run on engine: PostgreSQL comes from STEWARD_TEST_POSTGRES_URL (a fresh
// schema in it) and S3 from STEWARD_TEST_S3_* when set (a fresh prefix), else files on disk.
func NewEnv(engine, data string) (*Env, error) {
	e := &Env{Engine: engine, Data: data, drop: func() {}}
	switch engine {
	case "sqlite":
		return e, nil
	case "postgres":
	default:
		return nil, fmt.Errorf("stress: engine %q: want sqlite or postgres", engine)
	}
	base := os.Getenv("STEWARD_TEST_POSTGRES_URL")
	if base == "" {
		return nil, errors.New("stress: postgres: set STEWARD_TEST_POSTGRES_URL (scripts/test-services.sh start prints it)")
	}
	schema := "stress_" + randomHex(6)
	admin, err := sql.Open("pgx", base)
	if err != nil {
		return nil, fmt.Errorf("stress: postgres: %w", err)
	}
	defer admin.Close()
	if _, err := admin.Exec("CREATE SCHEMA " + schema); err != nil {
		return nil, fmt.Errorf("stress: postgres: create schema: %w", err)
	}
	e.drop = func() {
		admin, err := sql.Open("pgx", base)
		if err != nil {
			return
		}
		defer admin.Close()
		_, _ = admin.Exec("DROP SCHEMA " + schema + " CASCADE")
	}
	u, err := url.Parse(base)
	if err != nil {
		return nil, fmt.Errorf("stress: postgres url: %w", err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	e.DBURL = u.String()
	e.Extra = append(e.Extra, "--database", e.DBURL)
	if ep := os.Getenv("STEWARD_TEST_S3_ENDPOINT"); ep != "" {
		e.S3 = &S3{Endpoint: ep, Bucket: os.Getenv("STEWARD_TEST_S3_BUCKET"), AccessKey: os.Getenv("STEWARD_TEST_S3_ACCESS_KEY"),
			SecretKey: os.Getenv("STEWARD_TEST_S3_SECRET_KEY"), Prefix: "stress" + randomHex(6) + "/"}
		e.Extra = append(e.Extra, "--files", "s3", "--s3-endpoint", e.S3.Endpoint, "--s3-bucket", e.S3.Bucket,
			"--s3-access-key", e.S3.AccessKey, "--s3-secret-key", e.S3.SecretKey, "--s3-tls=false", "--s3-prefix", e.S3.Prefix)
	}
	return e, nil
}

// Close drops the PostgreSQL schema.
func (e *Env) Close() { e.drop() }

// Server is one steward serve process.
type Server struct {
	Bin  string
	Env  *Env
	Addr string
	Args []string // more flags for serve
	Log  io.Writer
	cmd  *exec.Cmd
	done chan struct{}
}

// NewServer picks a free loopback port for a server on env.
func NewServer(bin string, env *Env, args ...string) (*Server, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := ln.Addr().String()
	ln.Close()
	return &Server{Bin: bin, Env: env, Addr: addr, Args: args, Log: os.Stderr}, nil
}

// URL is the server's base URL.
func (s *Server) URL() string { return "http://" + s.Addr }

// Flags are the flags every command on this server's data takes.
func (s *Server) Flags() []string { return append([]string{"--data", s.Env.Data}, s.Env.Extra...) }

// Start starts the process and waits until it answers.
func (s *Server) Start(ctx context.Context) error {
	args := append([]string{"serve", "--addr", s.Addr, "--base-url", s.URL()}, s.Flags()...)
	s.cmd = exec.Command(s.Bin, append(args, s.Args...)...)
	s.cmd.Stderr = s.Log
	s.cmd.Stdout = s.Log
	if err := s.cmd.Start(); err != nil {
		return fmt.Errorf("stress: start: %w", err)
	}
	s.done = make(chan struct{})
	go func() { _ = s.cmd.Wait(); close(s.done) }()
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get(s.URL() + "/api/v1/purposes")
		if err == nil {
			resp.Body.Close()
			return nil
		}
		select {
		case <-s.done:
			return fmt.Errorf("stress: steward exited at start: %v", s.cmd.ProcessState)
		case <-ctx.Done():
			s.Kill()
			return ctx.Err()
		case <-time.After(30 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			s.Kill()
			return fmt.Errorf("stress: steward did not start: %w", err)
		}
	}
}

// PID is the running process's id.
func (s *Server) PID() int { return s.cmd.Process.Pid }

// Kill sends SIGKILL and waits for the process to end.
func (s *Server) Kill() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGKILL)
	<-s.done
}

// Stop asks the process to end (SIGTERM) and waits, killing it after 20 s.
func (s *Server) Stop() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(20 * time.Second):
		s.Kill()
	}
}

// Command runs another steward command (staff, files ...) on the server's data.
func (s *Server) Command(ctx context.Context, args ...string) (string, error) {
	out, err := exec.CommandContext(ctx, s.Bin, append(append(args, s.Flags()...), "--log-level", "error")...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("stress: steward %s: %w: %s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// RSS is the resident memory of process pid in bytes, from /proc/PID/status (VmRSS).
func RSS(pid int) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10, err
		}
	}
	return 0, errors.New("stress: no VmRSS")
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
