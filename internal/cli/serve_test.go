package cli

import (
	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestServeBusyPort: serve on a port in use fails before it makes the data folder or
// any key (issue 12, finding 18).
func TestServeBusyPort(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	data := filepath.Join(t.TempDir(), "data")
	var out, errb bytes.Buffer
	code := Run(context.Background(), []string{"serve", "--data", data, "--addr", ln.Addr().String(), "--log-level", "error"},
		func(string) string { return "" }, &out, &errb)
	if code == 0 || !strings.Contains(errb.String(), "listen on "+ln.Addr().String()) {
		t.Fatalf("serve on a busy port: exit %d, %s%s", code, out.String(), errb.String())
	}
	if _, err := os.Stat(data); !os.IsNotExist(err) {
		t.Errorf("the data folder was made before the port was found busy: %v", err)
	}
}
