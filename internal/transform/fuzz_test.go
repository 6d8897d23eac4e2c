package transform

import (
	"strconv"
	"testing"
)

// FuzzProcessorResponse: whatever an external processor answers, the
// response parser either returns exactly one result per record of the
// batch, each under its own recordId, or an error code; it never panics.
func FuzzProcessorResponse(f *testing.F) {
	f.Add([]byte(`{"records":[{"recordId":"0","result":"Ok","data":"e30="},{"recordId":"1","result":"Dropped"}]}`), 2)
	f.Add([]byte(`{"records":[{"recordId":"00","result":"Ok"}]}`), 1)
	f.Add([]byte(`{"records":[{"recordId":"-1"}]}`), 1)
	f.Add([]byte(`{"records":[{"recordId":"0"},{"recordId":"0"}]}`), 1)
	f.Add([]byte(`{"records":null}`), 0)
	f.Add([]byte(`[]`), 3)
	f.Add([]byte(``), 1)
	f.Fuzz(func(t *testing.T, resp []byte, n int) {
		if n < 0 || n > 1000 {
			return
		}
		results, err := parseResponse(resp, n)
		if err != nil {
			if err.code == "" {
				t.Fatalf("an error without a code: %+v", err)
			}
			return
		}
		if len(results) != n {
			t.Fatalf("%d results for %d records", len(results), n)
		}
		for i, r := range results {
			if r.RecordID != strconv.Itoa(i) {
				t.Fatalf("result %d has recordId %q", i, r.RecordID)
			}
		}
	})
}
