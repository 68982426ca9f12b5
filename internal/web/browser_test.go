package web_test

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"steward/internal/app"
	"steward/internal/config"
)

// chromium returns the browser to drive: $STEWARD_TEST_CHROMIUM, else Debian's.
func chromium(t *testing.T) string {
	t.Helper()
	path := os.Getenv("STEWARD_TEST_CHROMIUM")
	if path == "" {
		path = "/usr/bin/chromium"
	}
	if _, err := os.Stat(path); err != nil {
		if os.Getenv("STEWARD_TEST_REQUIRE_SERVICES") == "1" {
			t.Fatalf("no chromium at %s, but STEWARD_TEST_REQUIRE_SERVICES=1", path)
		}
		t.Skipf("no chromium at %s; set STEWARD_TEST_CHROMIUM", path)
	}
	return path
}

// TestBrowser signs up, confirms, logs in, uploads a file and deletes the account in a
// real browser, with the site's CSP and cross-origin protection in force.
func TestBrowser(t *testing.T) {
	t.Parallel()
	exec := chromium(t)

	// The real app on a real listener, so that mailed links point at it.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + ln.Addr().String()
	data := t.TempDir()
	cfg, _, err := config.Load([]string{"--data", data, "--addr", ln.Addr().String(), "--base-url", base,
		"--argon2-memory", "1024", "--rate-limits=false"}, func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	a, err := app.New(t.Context(), cfg, slog.New(slog.NewTextHandler(t.Output(), nil)), app.WithPoll(20*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	if err := a.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	serveCtx, stopServing := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- a.Serve(serveCtx, ln) }()
	t.Cleanup(func() {
		stopServing()
		if err := <-served; err != nil && !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("serve: %v", err)
		}
	})
	s := &site{t: t, url: base, outbox: filepath.Join(data, "outbox")}

	// The browser, with a profile of its own that is removed after it exits.
	profile := t.TempDir()
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), browserFlags(exec, profile)...)
	t.Cleanup(cancelAlloc)
	ctx, cancelBrowser := chromedp.NewContext(allocCtx)
	t.Cleanup(cancelBrowser)
	// The first action starts the browser and must not carry a deadline; the rest do.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	t.Cleanup(cancel)

	const (
		email    = "ada@example.com"
		name     = "Ada Lovelace"
		password = "analytical engine 1843"
	)
	step := func(what string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, steps...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	text := func(what, id string) string {
		t.Helper()
		s, err := chromedp.Run(ctx, chromedp.Text(chromedp.ID(id)))
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		return s
	}

	step("register",
		chromedp.Navigate(base+"/register"),
		chromedp.WaitVisible(chromedp.ID("page-register")),
		chromedp.SendKeys(chromedp.ID("f-name"), name),
		chromedp.SendKeys(chromedp.ID("f-email"), email),
		chromedp.SendKeys(chromedp.ID("f-password"), password),
		chromedp.SetValue(chromedp.ID("f-birthdate"), "1990-12-10"),
		chromedp.SetValue(chromedp.ID("f-country"), "GB"),
		chromedp.Click(chromedp.CSS(`#page-register button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.ID("page-register-sent")),
	)

	step("confirm the address",
		chromedp.Navigate(base+s.link(email, "/verify")),
		chromedp.WaitVisible(chromedp.ID("page-verify")),
		chromedp.Click(chromedp.CSS(`#page-verify button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.ID("page-verify-done")),
	)
	if got := text("confirmed", "page-verify-done"); !strings.Contains(got, "Your account is ready") {
		t.Fatalf("after confirming: %q, want it to say the account is ready", got)
	}

	login := func(pw string) chromedp.Action[chromedp.Void] {
		return chromedp.Steps(
			chromedp.Navigate(base+"/login"),
			chromedp.WaitVisible(chromedp.ID("page-login")),
			chromedp.SendKeys(chromedp.ID("f-email"), email),
			chromedp.SendKeys(chromedp.ID("f-password"), pw),
			chromedp.Click(chromedp.CSS(`#page-login button[type="submit"]`)),
		)
	}
	step("log in", login(password), chromedp.WaitVisible(chromedp.ID("page-account")))
	got, err := chromedp.Run(ctx, chromedp.Value(chromedp.ID("f-name")))
	if err != nil || got != name {
		t.Fatalf("account page name = %q (%v), want %q", got, err, name)
	}

	// Upload a file through the files page.
	upload := filepath.Join(t.TempDir(), "notebook.txt")
	if err := os.WriteFile(upload, []byte("the engine might compose elaborate pieces of music\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	step("upload a file",
		chromedp.Click(chromedp.CSS(`nav.tabs a[href="/account/files"]`)),
		chromedp.WaitVisible(chromedp.ID("page-files")),
		chromedp.SetUploadFiles(chromedp.ID("f-file"), []string{upload}),
		chromedp.Click(chromedp.CSS(`#page-files form[enctype="multipart/form-data"] button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#page-files .notice`)),
	)
	if got := text("files list", "files"); !strings.Contains(got, "notebook.txt") {
		t.Fatalf("after uploading, the list reads %q, want notebook.txt in it", got)
	}

	step("delete the account",
		chromedp.Navigate(base+"/account/delete"),
		chromedp.WaitVisible(chromedp.ID("page-delete")),
		chromedp.SendKeys(chromedp.ID("f-password"), password),
		chromedp.Click(chromedp.CSS(`#page-delete button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.ID("page-erasure")),
	)
	if got := text("erasure page", "page-erasure"); !strings.Contains(got, "Your account is") {
		t.Fatalf("after deleting: %q, want it to say the account is being deleted", got)
	}

	step("log in again", login(password), chromedp.WaitVisible(chromedp.ID("form-error")))
	if got := text("login error", "form-error"); got != "Wrong email or password." {
		t.Fatalf("login after deletion says %q, want %q", got, "Wrong email or password.")
	}
}

// browserFlags start Debian's Chromium headless as root, quiet (no network of its own,
// no updates, no sync), with the profile folder given.
func browserFlags(exec, profile string, extra ...chromedp.ExecAllocatorOption) []chromedp.ExecAllocatorOption {
	return append([]chromedp.ExecAllocatorOption{
		chromedp.ExecPath(exec),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(profile),
	}, extra...)
}
