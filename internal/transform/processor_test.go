package transform

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/binlake/binlake/internal/config"
)

// helperEnv makes the test binary act as an external processor (see
// TestMain): its value is the processor's mode.
const helperEnv = "BINLAKE_TEST_PROCESSOR"

func TestMain(m *testing.M) {
	if mode := os.Getenv(helperEnv); mode != "" {
		os.Exit(helperProcessor(mode, os.Stdin, os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// helperProcessor is a Firehose-style transformation "Lambda" as a
// command: it upper-cases data.post_title, drops drafts and fails trashed
// posts. Modes: ok; exit (fails every call); missing (loses a recordId);
// slow (answers after 10 s); newline (appends "\n" to each record, as many
// Firehose Lambdas do); rename (changes metadata.table-name).
func helperProcessor(mode string, stdin io.Reader, stdout, stderr io.Writer) int {
	var req procRequest
	if err := json.NewDecoder(stdin).Decode(&req); err != nil {
		fmt.Fprintln(stderr, "bad request:", err)
		return 2
	}
	switch mode {
	case "exit":
		fmt.Fprintln(stderr, "boom: the enrichment service is down")
		return 1
	case "slow":
		time.Sleep(10 * time.Second)
	}
	resp, err := lambda(mode, &req)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	json.NewEncoder(stdout).Encode(resp)
	return 0
}

// lambda is the processing logic shared by the command and HTTP helpers.
func lambda(mode string, req *procRequest) (*procResponse, error) {
	resp := &procResponse{}
	for i, r := range req.Records {
		if mode == "missing" && i == 1 {
			continue
		}
		raw, err := base64.StdEncoding.DecodeString(r.Data)
		if err != nil {
			return nil, err
		}
		var rec map[string]json.RawMessage
		dec := json.NewDecoder(strings.NewReader(string(raw)))
		dec.UseNumber()
		if err := dec.Decode(&rec); err != nil {
			return nil, err
		}
		var data map[string]any
		json.Unmarshal(rec["data"], &data)
		out := procOutRecord{RecordID: r.RecordID, Result: "Ok", Data: r.Data}
		switch data["post_status"] {
		case "draft":
			out.Result = "Dropped"
		case "trash":
			out.Result = "ProcessingFailed"
		default:
			if title, ok := data["post_title"].(string); ok {
				// Keep the record's bytes but for the title, so the test
				// can compare exactly.
				s := strings.Replace(string(raw), `"post_title":"`+title+`"`, `"post_title":"`+strings.ToUpper(title)+`"`, 1)
				if mode == "newline" {
					s += "\n"
				}
				if mode == "rename" {
					s = strings.Replace(s, `"table-name":"wp_posts"`, `"table-name":"elsewhere"`, 1)
				}
				out.Data = base64.StdEncoding.EncodeToString([]byte(s))
			}
		}
		resp.Records = append(resp.Records, out)
	}
	return resp, nil
}

func post(id int, status, title string) string {
	m := strings.Replace(meta("insert", "wordpress", "wp_posts"), "0000000001/0000000000\"", fmt.Sprintf("0000000001/%010d\"", id), 1)
	return dmsRecord(fmt.Sprintf(`{"ID":%d,"post_status":"%s","post_title":"%s","price":"12.340"}`, id, status, title), "", m)
}

// processorConfig is the transforms section of a test processor.
func processorConfig(proc string) string {
	return "transforms:\n  processor:\n    " + proc + "\n    timeout: 2s\n    retries: 1\n    backoff: 10ms\n    batch_size: 2\n"
}

// TestProcessorCommand runs the test binary as the external processor:
// titles come back upper-cased, drafts dropped, trashed posts failed with
// Firehose's error fields, in order, over batches of two.
func TestProcessorCommand(t *testing.T) {
	t.Setenv(helperEnv, "ok")
	p := newPipeline(t, processorConfig(fmt.Sprintf("command: [%q]", os.Args[0])))
	checkProcessed(t, p)
}

// TestProcessorHTTP is the same with an HTTP endpoint.
func TestProcessorHTTP(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req procRequest
		if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" {
			http.Error(w, "want a JSON POST", http.StatusBadRequest)
			return
		}
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		resp, err := lambda("ok", &req)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		json.NewEncoder(w).Encode(resp)
	}))
	defer srv.Close()
	p := newPipeline(t, processorConfig("url: "+srv.URL))
	checkProcessed(t, p)
}

func checkProcessed(t *testing.T, p *Pipeline) {
	t.Helper()
	recs := []string{post(1, "publish", "Hello"), post(2, "draft", "Wip"), post(3, "trash", "Old"), post(4, "publish", "Bye"), post(5, "publish", "Again")}
	out := apply(t, p, "wordpress.wp_posts", recs...)
	want := []struct {
		result Result
		data   string
	}{
		{Ok, strings.Replace(recs[0], `"Hello"`, `"HELLO"`, 1)},
		{Dropped, ""},
		{Failed, ""},
		{Ok, strings.Replace(recs[3], `"Bye"`, `"BYE"`, 1)},
		{Ok, strings.Replace(recs[4], `"Again"`, `"AGAIN"`, 1)},
	}
	for i, w := range want {
		o := out[i]
		if o.Result != w.result || o.Table != "wordpress.wp_posts" || (w.data != "" && string(o.Data) != w.data) {
			t.Errorf("record %d: %s %s %s\nwant %s %s", i, o.Result, o.Table, o.Data, w.result, w.data)
		}
	}
	e := decodeErrorLine(t, out[2].Data)
	if out[2].Kind != config.ErrorProcessingFailed || e.AttemptsMade != 1 || e.ErrorCode != "Processor.ProcessingFailed" ||
		string(e.RawData) != recs[2] || e.Schema != "wordpress" || e.Table != "wp_posts" || e.StreamPosition != position {
		t.Errorf("error line %+v", e)
	}
}

// TestProcessorBroken: a processor that fails, loses records, answers too
// late or breaks the contract is retried, then its records go to the
// error output; nothing is lost.
func TestProcessorBroken(t *testing.T) {
	tests := []struct {
		mode, code, msg string
		attempts        int
		failed          int // records failed; the rest (a second batch) are Ok
	}{
		{"exit", "Processor.FunctionError", "boom: the enrichment service is down", 2, 3},
		// The helper loses the second record of each call; the third
		// record is alone in the second batch of two.
		{"missing", "Processor.MissingRecordId", `the response lacks recordId "1"`, 2, 2},
		{"slow", "Processor.Timeout", "no answer within 300ms", 2, 3},
	}
	for _, tt := range tests {
		t.Run(tt.mode, func(t *testing.T) {
			t.Setenv(helperEnv, tt.mode)
			p := newPipeline(t, strings.Replace(processorConfig(fmt.Sprintf("command: [%q]", os.Args[0])), "timeout: 2s", "timeout: 300ms", 1))
			recs := []string{post(1, "publish", "a"), post(2, "publish", "b"), post(3, "publish", "c")}
			start := time.Now()
			out := apply(t, p, "wordpress.wp_posts", recs...)
			if tt.mode == "slow" && time.Since(start) > 5*time.Second {
				t.Errorf("a slow processor was not cut off: %s", time.Since(start))
			}
			for i, o := range out {
				if i >= tt.failed {
					if o.Result != Ok {
						t.Errorf("record %d: %s, want Ok", i, o.Result)
					}
					continue
				}
				if o.Result != Failed || o.Kind != config.ErrorProcessingFailed {
					t.Fatalf("record %d: %s %s", i, o.Result, o.Kind)
				}
				e := decodeErrorLine(t, o.Data)
				if e.ErrorCode != tt.code || !strings.Contains(e.ErrorMessage, tt.msg) || e.AttemptsMade != tt.attempts || string(e.RawData) != recs[i] {
					t.Errorf("record %d: %+v", i, e)
				}
			}
		})
	}
}

// TestProcessorOutput: what an Ok record must look like.
func TestProcessorOutput(t *testing.T) {
	t.Run("newline", func(t *testing.T) {
		t.Setenv(helperEnv, "newline")
		p := newPipeline(t, processorConfig(fmt.Sprintf("command: [%q]", os.Args[0])))
		rec := post(1, "publish", "x")
		o := apply(t, p, "wordpress.wp_posts", rec)[0]
		if want := strings.Replace(rec, `"x"`, `"X"`, 1); o.Result != Ok || string(o.Data) != want {
			t.Errorf("got %s %s, want %s", o.Result, o.Data, want)
		}
	})
	t.Run("rename", func(t *testing.T) {
		t.Setenv(helperEnv, "rename")
		p := newPipeline(t, processorConfig(fmt.Sprintf("command: [%q]", os.Args[0])))
		o := apply(t, p, "wordpress.wp_posts", post(1, "publish", "x"))[0]
		if e := decodeErrorLine(t, o.Data); o.Result != Failed || e.ErrorCode != "Processor.RoutingChanged" {
			t.Errorf("got %s %+v", o.Result, e)
		}
	})
	for _, tc := range []struct{ data, code, kind string }{
		{"not base64!", "Processor.InvalidData", config.ErrorProcessingFailed},
		{base64.StdEncoding.EncodeToString([]byte("a,b,c\n")), "Format.InvalidJSON", config.ErrorFormatConversionFailed},
		{base64.StdEncoding.EncodeToString([]byte(`[1]`)), "Format.NotAnObject", config.ErrorFormatConversionFailed},
	} {
		t.Run(tc.code, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				fmt.Fprintf(w, `{"records":[{"recordId":"0","result":"Ok","data":%q}]}`, tc.data)
			}))
			defer srv.Close()
			p := newPipeline(t, processorConfig("url: "+srv.URL))
			o := apply(t, p, "wordpress.wp_posts", post(1, "publish", "x"))[0]
			if e := decodeErrorLine(t, o.Data); o.Result != Failed || o.Kind != tc.kind || e.ErrorCode != tc.code {
				t.Errorf("got %s %s %+v", o.Result, o.Kind, e)
			}
		})
	}
}

// TestProcessorHTTPErrors: HTTP failures are retried; a flaky endpoint
// that recovers loses nothing.
func TestProcessorHTTPErrors(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req procRequest
		json.NewDecoder(r.Body).Decode(&req)
		switch calls.Add(1) {
		case 1:
			http.Error(w, "overloaded", http.StatusServiceUnavailable)
		case 2:
			fmt.Fprint(w, `{"records":[{"recordId":"0","result":"Ok","data":""},{"recordId":"0","result":"Ok","data":""}]}`)
		default:
			resp, _ := lambda("ok", &req)
			json.NewEncoder(w).Encode(resp)
		}
	}))
	defer srv.Close()
	p := newPipeline(t, strings.Replace(processorConfig("url: "+srv.URL), "retries: 1", "retries: 2", 1))
	out := apply(t, p, "wordpress.wp_posts", post(1, "publish", "a"), post(2, "publish", "b"))
	for i, o := range out {
		if o.Result != Ok || !strings.Contains(string(o.Data), `"post_title":"`+strings.ToUpper(string(rune('a'+i)))+`"`) {
			t.Errorf("record %d: %s %s", i, o.Result, o.Data)
		}
	}
	if n := calls.Load(); n != 3 {
		t.Errorf("%d calls, want 3 (503, duplicated recordId, ok)", n)
	}

	dup := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `{"records":[{"recordId":"0","result":"Ok","data":""},{"recordId":"0","result":"Ok","data":""}]}`)
	}))
	defer dup.Close()
	p = newPipeline(t, processorConfig("url: "+dup.URL))
	o := apply(t, p, "wordpress.wp_posts", post(1, "publish", "a"), post(2, "publish", "b"))[0]
	if e := decodeErrorLine(t, o.Data); e.ErrorCode != "Processor.DuplicatedRecordId" || e.AttemptsMade != 2 {
		t.Errorf("got %+v", e)
	}
}

// TestProcessorCancel: a shutdown during a call returns the context's
// error instead of failing the records.
func TestProcessorCancel(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	defer srv.Close()
	defer close(release)
	p := newPipeline(t, processorConfig("url: "+srv.URL))
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	out, err := p.Apply(ctx, []Input{{Data: []byte(post(1, "publish", "a")), Table: "wordpress.wp_posts"}})
	if err == nil {
		t.Fatalf("no error; got %+v", out)
	}
}

// TestProcessorAfterRename: the processor gets the record as the rules
// left it and may keep its (new) names; error lines name the source.
func TestProcessorAfterRename(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req procRequest
		json.NewDecoder(r.Body).Decode(&req)
		resp, _ := lambda("ok", &req)
		json.NewEncoder(w).Encode(resp)
	}))
	defer srv.Close()
	p := newPipeline(t, processorConfig("url: "+srv.URL)+"  rules:\n    - {action: rename, target: table, table: wp_posts, value: posts}\n")
	recs := []string{post(1, "publish", "a"), post(2, "trash", "b")}
	out := apply(t, p, "wordpress.wp_posts", recs...)
	want := strings.Replace(strings.Replace(recs[0], `"a"`, `"A"`, 1), `"table-name":"wp_posts"`, `"table-name":"posts"`, 1)
	if out[0].Result != Ok || out[0].Table != "wordpress.posts" || string(out[0].Data) != want {
		t.Errorf("got %s %s %s\nwant %s", out[0].Result, out[0].Table, out[0].Data, want)
	}
	e := decodeErrorLine(t, out[1].Data)
	if out[1].Result != Failed || out[1].Table != "wordpress.posts" || e.Table != "wp_posts" ||
		string(e.RawData) != strings.Replace(recs[1], `"table-name":"wp_posts"`, `"table-name":"posts"`, 1) {
		t.Errorf("got %s %s %+v %s", out[1].Result, out[1].Table, e, e.RawData)
	}
}
