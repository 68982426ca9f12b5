// Package pan finds payment card numbers (primary account numbers) in free text, so
// that Steward can refuse them before they reach storage: card numbers never touch
// Steward (P-ACCT-6).
package pan

// Contains reports whether s holds a run of exactly 13 to 19 digits, optionally separated by
// single spaces or dashes, that passes the Luhn check: what a card number typed into a
// form looks like.
func Contains(s string) bool {
	digits := make([]byte, 0, 19)
	lastSep := false
	flush := func() bool {
		found := hasCard(digits)
		digits = digits[:0]
		return found
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= '0' && c <= '9':
			digits = append(digits, c-'0')
			lastSep = false
		case (c == ' ' || c == '-') && len(digits) > 0 && !lastSep:
			lastSep = true
		default:
			if flush() {
				return true
			}
			lastSep = false
		}
	}
	return flush()
}

// hasCard reports whether a whole run of digits is card-shaped: 13 to 19 digits that
// pass the Luhn check. Windows inside longer runs are not tried: one run in ten passes
// Luhn by chance, and a reference number would be refused for nothing.
func hasCard(d []byte) bool {
	return len(d) >= 13 && len(d) <= 19 && luhn(d)
}

func luhn(d []byte) bool {
	sum := 0
	double := false
	for i := len(d) - 1; i >= 0; i-- {
		v := int(d[i])
		if double {
			v *= 2
			if v > 9 {
				v -= 9
			}
		}
		sum += v
		double = !double
	}
	return sum%10 == 0
}
