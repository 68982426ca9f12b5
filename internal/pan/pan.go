// Package pan finds payment card numbers (primary account numbers) in free text, so
// that Steward can refuse them before they reach storage: card numbers never touch
// Steward (P-ACCT-6).
package pan

// maxSep is how many separator characters may stand between two groups of digits.
const maxSep = 2

// Contains reports whether s holds something shaped like a card number that passes the
// Luhn check: 13 to 19 digits, either in one run, or in groups separated by up to two
// spaces, dashes or dots ("4111 1111 1111 1111", "4111-1111-1111-1111 12/27"). In a run
// of groups, every stretch of consecutive groups that starts at a group and begins
// with a digit 2 to 6 (the card networks' first digits) is checked, so an expiry date
// or a code typed after the number does not hide it.
func Contains(s string) bool {
	var groups [][]byte // the digit groups of the current run
	var cur []byte
	sep := 0
	flushRun := func() bool {
		if len(cur) > 0 {
			groups = append(groups, cur)
			cur = nil
		}
		found := runHasCard(groups)
		groups = groups[:0]
		return found
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= '0' && c <= '9':
			if sep > 0 && len(cur) > 0 {
				groups = append(groups, cur)
				cur = nil
			}
			cur = append(cur, c-'0')
			sep = 0
		case (c == ' ' || c == '-' || c == '.') && (len(cur) > 0 || len(groups) > 0) && sep < maxSep:
			sep++
		default:
			if flushRun() {
				return true
			}
			sep = 0
		}
	}
	return flushRun()
}

// runHasCard checks a run of digit groups.
func runHasCard(groups [][]byte) bool {
	if len(groups) == 1 {
		d := groups[0]
		return len(d) >= 13 && len(d) <= 19 && luhn(d)
	}
	for start := range groups {
		if g := groups[start][0]; g < 2 || g > 6 {
			continue
		}
		var d []byte
		for _, g := range groups[start:] {
			d = append(d, g...)
			if len(d) > 19 {
				break
			}
			if len(d) >= 13 && luhn(d) {
				return true
			}
		}
	}
	return false
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
