package change

import (
	"math/rand/v2"
	"testing"
	"time"
)

// TestAppendTime checks the hand-written timestamp digits against
// time.AppendFormat, in UTC and other zones, at the edges of four-digit
// years and outside them.
func TestAppendTime(t *testing.T) {
	zone := time.FixedZone("UTC-9:30", -(9*3600 + 1800))
	times := []time.Time{
		{},
		time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC),
		time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(-1, 12, 31, 23, 59, 59, 0, time.UTC),
		time.Date(2024, 2, 29, 12, 34, 56, 7000, zone),
		time.Date(1970, 1, 1, 0, 0, 0, 0, zone),
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 10000 {
		times = append(times, time.Unix(r.Int64N(400e9)-200e9, r.Int64N(1e9)).In(zone))
	}
	for _, tm := range times {
		want := `"` + tm.UTC().Format(tsLayout) + `"`
		if got := string(appendTime([]byte("x"), tm)); got != "x"+want {
			t.Fatalf("appendTime(%v) = %s, want x%s", tm, got, want)
		}
	}
}

// TestPlain8 checks the 8-byte test of AppendString against the byte-wise
// rule: every byte value in every lane of plain text, and random bytes.
func TestPlain8(t *testing.T) {
	plain := func(c byte) bool { return c >= 0x20 && c < 0x80 && c != '"' && c != '\\' }
	for lane := range 8 {
		for c := range 256 {
			s := []byte("abcdefgh")
			s[lane] = byte(c)
			if got := plain8(string(s)); got != plain(byte(c)) {
				t.Fatalf("plain8(%q) = %v", s, got)
			}
		}
	}
	r := rand.New(rand.NewPCG(5, 6))
	for range 200000 {
		var s [8]byte
		want := true
		for i := range s {
			s[i] = byte(r.UintN(256))
			if r.UintN(2) == 0 { // mostly printable, to reach the all-plain case
				s[i] = byte(0x20 + r.UintN(0x60))
			}
			want = want && plain(s[i])
		}
		if got := plain8(string(s[:])); got != want {
			t.Fatalf("plain8(%q) = %v, want %v", s, got, want)
		}
	}
}
