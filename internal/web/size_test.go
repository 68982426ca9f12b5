package web

import "testing"

func TestHumanSize(t *testing.T) {
	t.Parallel()
	tests := []struct {
		n    int64
		want string
	}{
		{0, "0 bytes"},
		{1, "1 byte"},
		{1023, "1023 bytes"},
		{1024, "1 KB"},
		{1536, "1.5 KB"},
		{3000, "2.9 KB"},
		{10188, "9.9 KB"},
		{10200, "10 KB"},
		{1024*1024 - 1, "1 MB"},
		{1258291, "1.2 MB"},
		{500 << 20, "500 MB"},
		{1536 << 20, "1.5 GB"},
		{4 << 30, "4 GB"},
		{10 << 30, "10 GB"},
		{3 << 40, "3 TB"},
		{1<<63 - 1, "8 EB"},
	}
	for _, tt := range tests {
		if got := humanSize(tt.n); got != tt.want {
			t.Errorf("humanSize(%d) = %q, want %q", tt.n, got, tt.want)
		}
	}
}
