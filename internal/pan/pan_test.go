package pan

import "testing"

func TestContains(t *testing.T) {
	tests := []struct {
		in   string
		want bool
	}{
		{"4111 1111 1111 1111", true},
		{"my card is 4111-1111-1111-1111, thanks", true},
		{"5500005555555559", true},
		{"378282246310005", true},      // 15-digit American Express test number
		{"4111 1111 1111 1112", false}, // fails Luhn
		{"+44 20 7946 0958", false},    // a phone number
		{"12 Baker Street, NW1 6XE", false},
		{"", false},
		{"4111  1111 1111 1111", true}, // a double space still joins groups
		{"4111 1111 1111 1111 12/27", true},
		{"4111-1111-1111-1111 cvv 123", true},
		{"4111.1111.1111.1111", true},
		{"card 5500 0055 5555 5559 123", true},
		{"4111   1111 1111 1111", false}, // three spaces: separate numbers
		{"flat 12 3 4 5 6 7 8 9 10 11 12 13", false},
		{"order 0000000000000", true},     // 13 zeros pass Luhn: refused, better safe
		{"x41111111111111111111y", false}, // 20 digits: no card is that long
		{"4111111111111111 and 5500 0055 5555 5559", true},
	}
	for _, tt := range tests {
		if got := Contains(tt.in); got != tt.want {
			t.Errorf("Contains(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func FuzzContains(f *testing.F) {
	f.Add("4111 1111 1111 1111")
	f.Fuzz(func(t *testing.T, s string) { _ = Contains(s) })
}
