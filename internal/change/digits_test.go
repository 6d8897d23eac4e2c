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
