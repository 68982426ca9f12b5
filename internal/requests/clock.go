package requests

import (
	"fmt"
	"time"
)

// The legal clock (Art. 12(3) GDPR): a request is answered "within one month of
// receipt", extendable "by two further months". A period in months ends on the day of
// the last month that has the same number as the day of receipt, or, where that month
// has no such day, on its last day (Regulation 1182/71, Art. 3(2)(c)): received on
// 31 January, due on 28 February (29 in a leap year); received on 15 March, due on
// 15 April. The period is counted in calendar days of UTC.
//
// Regulation 1182/71 also moves a period that ends on a Saturday, Sunday or public
// holiday to the next working day. Holidays differ by country; Steward does not
// apply that rule, so its due date is never later than the law's.

// Date is a calendar day, written YYYY-MM-DD (so that dates sort as text, in SQL too).
type Date string

// dateLayout is how a Date is written.
const dateLayout = "2006-01-02"

// DateOf is the calendar day of t, in UTC.
func DateOf(t time.Time) Date { return Date(t.UTC().Format(dateLayout)) }

// ParseDate reads a date written YYYY-MM-DD.
func ParseDate(s string) (Date, error) {
	t, err := time.Parse(dateLayout, s)
	if err != nil {
		return "", fmt.Errorf("requests: %q is not a date (YYYY-MM-DD)", s)
	}
	return Date(t.Format(dateLayout)), nil
}

// Time is the start of the day, in UTC.
func (d Date) Time() time.Time {
	t, _ := time.Parse(dateLayout, string(d)) // a Date is only made by this file
	return t
}

// AddDays is the day n days later (earlier, for n < 0).
func (d Date) AddDays(n int) Date { return DateOf(d.Time().AddDate(0, 0, n)) }

// String is the date as YYYY-MM-DD.
func (d Date) String() string { return string(d) }

// Long is the date for people: "28 February 2027".
func (d Date) Long() string { return d.Time().Format("2 January 2006") }

// AddMonths is the day a period of n months that begins on the day of receipt ends:
// the same day of the month, n months later, or the last day of that month where it
// has no such day. time.AddDate would normalise 31 January + 1 month to 3 March.
func AddMonths(received time.Time, n int) Date {
	y, m, d := received.UTC().Date()
	first := time.Date(y, m+time.Month(n), 1, 0, 0, 0, 0, time.UTC)
	last := first.AddDate(0, 1, -1).Day()
	return DateOf(first.AddDate(0, 0, min(d, last)-1))
}

// DueDate is when a request received at received is due, extended by extended months.
func DueDate(received time.Time, extended int) Date { return AddMonths(received, 1+extended) }
