package policy

import (
	"strings"
	"testing"
)

// render writes a diff as lines prefixed "+", "-" or " ".
func render(lines []Line) string {
	var b strings.Builder
	for _, l := range lines {
		switch l.Op {
		case Added:
			b.WriteString("+")
		case Removed:
			b.WriteString("-")
		default:
			b.WriteString(" ")
		}
		b.WriteString(l.Text + "\n")
	}
	return b.String()
}

func TestDiff(t *testing.T) {
	tests := []struct {
		name, a, b, want string
	}{
		{"same", "a\nb\n", "a\nb", " a\n b\n"},
		{"empty to text", "", "a\nb", "+a\n+b\n"},
		{"text to empty", "a\n", "", "-a\n"},
		{"line added in the middle", "a\nc\n", "a\nb\nc\n", " a\n+b\n c\n"},
		{"line changed", "a\nb\nc", "a\nB\nc", " a\n-b\n+B\n c\n"},
		{"moved lines keep the longest run", "x\na\nb\nc", "a\nb\nc\nx", "-x\n a\n b\n c\n+x\n"},
		{"CRLF is a line end", "a\r\nb\r\n", "a\nb\n", " a\n b\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := render(Diff(tt.a, tt.b)); got != tt.want {
				t.Errorf("Diff(%q, %q) =\n%s\nwant\n%s", tt.a, tt.b, got, tt.want)
			}
		})
	}
}

// TestDiffNumbersLines: each line carries its number in the text it is in.
func TestDiffNumbersLines(t *testing.T) {
	d := Diff("a\nb\nc\nd", "a\nx\nc\nd\ne")
	want := []Line{{Same, "a", 1, 1}, {Removed, "b", 2, 0}, {Added, "x", 0, 2}, {Same, "c", 3, 3}, {Same, "d", 4, 4}, {Added, "e", 0, 5}}
	if len(d) != len(want) {
		t.Fatalf("Diff = %+v, want %+v", d, want)
	}
	for i := range want {
		if d[i] != want[i] {
			t.Errorf("line %d = %+v, want %+v", i, d[i], want[i])
		}
	}
}

// TestDiffLarge: beyond the bound, the differing middle is all removed then all added,
// and the common beginning and end stay lines in common; the texts are rebuilt from it.
func TestDiffLarge(t *testing.T) {
	var a, b []string
	for i := range 3000 {
		a = append(a, "old line "+strings.Repeat("x", i%7)+string(rune('a'+i%26)))
		b = append(b, "new line "+strings.Repeat("y", i%5)+string(rune('a'+i%26)))
	}
	ta := "head\n" + strings.Join(a, "\n") + "\ntail\n"
	tb := "head\n" + strings.Join(b, "\n") + "\ntail\n"
	d := Diff(ta, tb)
	var olds, news []string
	for _, l := range d {
		if l.Op != Added {
			olds = append(olds, l.Text)
		}
		if l.Op != Removed {
			news = append(news, l.Text)
		}
	}
	if strings.Join(olds, "\n")+"\n" != ta || strings.Join(news, "\n")+"\n" != tb {
		t.Fatal("the diff does not rebuild both texts")
	}
	if d[0] != (Line{Same, "head", 1, 1}) || d[len(d)-1] != (Line{Same, "tail", 3002, 3002}) {
		t.Errorf("first and last lines: %+v, %+v", d[0], d[len(d)-1])
	}
}

func TestCheckLabel(t *testing.T) {
	for _, ok := range []string{"2018.1", "v2", "2026-01_b"} {
		if err := CheckLabel("label", ok); err != nil {
			t.Errorf("CheckLabel(%q) = %v", ok, err)
		}
	}
	for _, bad := range []string{"", "versions", "diff", ".hidden", "a/b", "with space", strings.Repeat("1", 41)} {
		if err := CheckLabel("label", bad); err == nil {
			t.Errorf("CheckLabel(%q) accepted", bad)
		}
	}
}

func TestBefore(t *testing.T) {
	for in, want := range map[string]string{
		"00000000000000000000000000000001": "00000000000000000000000000000000",
		"0000000000000000000000000000a000": "00000000000000000000000000009fff",
		"00000000000000000000000000000000": "",
		"not-hex":                          "not-he",
	} {
		if got := before(in); got != want || (got != "" && got >= in) {
			t.Errorf("before(%q) = %q, want %q", in, got, want)
		}
	}
}
