package requests

import (
	"testing"
	"time"
)

func TestDueDate(t *testing.T) {
	at := func(s string) time.Time {
		t.Helper()
		v, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	for _, c := range []struct {
		name     string
		received string
		extended int
		want     Date
	}{
		{"same day next month", "2027-03-15T10:00:00Z", 0, "2027-04-15"},
		{"first of the month", "2027-02-01T00:00:00Z", 0, "2027-03-01"},
		{"31 January, common year", "2027-01-31T12:00:00Z", 0, "2027-02-28"},
		{"31 January, leap year", "2028-01-31T12:00:00Z", 0, "2028-02-29"},
		{"30 January, leap year", "2028-01-30T12:00:00Z", 0, "2028-02-29"},
		{"29 January, common year", "2027-01-29T12:00:00Z", 0, "2027-02-28"},
		{"28 January, common year", "2027-01-28T12:00:00Z", 0, "2027-02-28"},
		{"29 February, leap year", "2028-02-29T12:00:00Z", 0, "2028-03-29"},
		{"28 February, common year", "2027-02-28T12:00:00Z", 0, "2027-03-28"},
		{"31 March to April's last day", "2027-03-31T08:00:00Z", 0, "2027-04-30"},
		{"31 May to June 30", "2027-05-31T08:00:00Z", 0, "2027-06-30"},
		{"30 April to 30 May", "2027-04-30T08:00:00Z", 0, "2027-05-30"},
		{"31 July to 31 August", "2027-07-31T08:00:00Z", 0, "2027-08-31"},
		{"31 August to 30 September", "2027-08-31T08:00:00Z", 0, "2027-09-30"},
		{"across the year", "2027-12-31T23:59:59Z", 0, "2028-01-31"},
		{"15 December to 15 January", "2026-12-15T00:00:00Z", 0, "2027-01-15"},
		{"late in the UTC day", "2027-01-31T23:30:00+00:00", 0, "2027-02-28"},
		{"a local time is counted in UTC", "2027-02-01T00:30:00+01:00", 0, "2027-02-28"},
		{"extended by one month from 31 January", "2027-01-31T12:00:00Z", 1, "2027-03-31"},
		{"extended by two months from 31 January", "2027-01-31T12:00:00Z", 2, "2027-04-30"},
		{"extended by two months from 30 November, leap", "2027-11-30T12:00:00Z", 2, "2028-02-29"},
		{"extended by two months from 31 December, common", "2026-12-31T12:00:00Z", 2, "2027-03-31"},
		{"extended by one month from 31 December to February", "2026-12-31T12:00:00Z", 1, "2027-02-28"},
		{"century year 2100 is not a leap year", "2100-01-31T12:00:00Z", 0, "2100-02-28"},
		{"2400 is a leap year", "2400-01-31T12:00:00Z", 0, "2400-02-29"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := DueDate(at(c.received), c.extended); got != c.want {
				t.Errorf("DueDate(%s, %d) = %s, want %s", c.received, c.extended, got, c.want)
			}
		})
	}
}

func TestDates(t *testing.T) {
	d, err := ParseDate("2028-02-28")
	if err != nil {
		t.Fatal(err)
	}
	if got := d.AddDays(1); got != "2028-02-29" {
		t.Errorf("AddDays(1) = %s, want 2028-02-29", got)
	}
	if got := d.AddDays(2); got != "2028-03-01" {
		t.Errorf("AddDays(2) = %s, want 2028-03-01", got)
	}
	if got := d.Long(); got != "28 February 2028" {
		t.Errorf("Long() = %q", got)
	}
	for _, bad := range []string{"", "2027-02-30", "28/02/2027", "2027-2-3", "2027-02-28T00:00:00Z"} {
		if _, err := ParseDate(bad); err == nil {
			t.Errorf("ParseDate(%q) accepted", bad)
		}
	}
}

func TestStateMachine(t *testing.T) {
	for _, s := range []string{Done, Refused, Withdrawn} {
		if len(Next(s)) != 0 {
			t.Errorf("closed state %s has next states %v", s, Next(s))
		}
	}
	for from, tos := range next {
		for _, to := range tos {
			if from == to {
				t.Errorf("%s moves to itself", from)
			}
		}
		if Closed(from) {
			t.Errorf("closed state %s in the machine", from)
		}
	}
	if contains(Next(Unconfirmed), InProgress) {
		t.Error("an unconfirmed request can be worked before its address is confirmed")
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
