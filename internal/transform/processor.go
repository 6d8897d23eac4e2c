package transform

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os/exec"
	"strconv"
	"time"

	"github.com/binlake/binlake/internal/config"
)

// processor calls the external processor: a command (request on stdin,
// response on stdout) or an HTTP endpoint (POST), with Firehose's data
// transformation contract.
type processor struct {
	command []string
	url     string
	timeout time.Duration
	retries int
	backoff time.Duration
	batch   int
	task    string
	log     *slog.Logger
	client  *http.Client
}

func newProcessor(c config.Processor, task string, log *slog.Logger) *processor {
	return &processor{
		command: c.Command, url: c.URL,
		timeout: c.Timeout.D(), retries: c.Retries, backoff: c.Backoff.D(), batch: c.BatchSize,
		task: task, log: log, client: &http.Client{},
	}
}

// The request and response, as a Firehose Lambda receives and returns them.
type (
	procRequest struct {
		InvocationID      string         `json:"invocationId"`
		DeliveryStreamArn string         `json:"deliveryStreamArn"`
		Region            string         `json:"region"`
		Records           []procInRecord `json:"records"`
	}
	procInRecord struct {
		RecordID                    string `json:"recordId"`
		ApproximateArrivalTimestamp int64  `json:"approximateArrivalTimestamp"`
		Data                        string `json:"data"`
	}
	procResponse struct {
		Records []procOutRecord `json:"records"`
	}
	procOutRecord struct {
		RecordID string `json:"recordId"`
		Result   string `json:"result"`
		Data     string `json:"data"`
	}
)

// callError is a failed call: the whole batch is retried, then failed.
type callError struct {
	code, msg string
}

func (e *callError) Error() string { return e.code + ": " + e.msg }

// process sends the records at idx (Ok after the rules) to the processor
// in batches and replaces their outputs with its results.
func (p *Pipeline) process(ctx context.Context, in []Input, out []Output, idx []int, sent []*record) error {
	pr := p.proc
	for len(idx) > 0 {
		n := min(len(idx), pr.batch)
		chunk := idx[:n]
		idx = idx[n:]
		req := procRequest{InvocationID: newID(), DeliveryStreamArn: "binlake:" + pr.task, Records: make([]procInRecord, n)}
		for j, i := range chunk {
			req.Records[j] = procInRecord{
				RecordID:                    strconv.Itoa(j),
				ApproximateArrivalTimestamp: in[i].CommitTime.UnixMilli(),
				Data:                        base64.StdEncoding.EncodeToString(out[i].Data),
			}
		}
		body, err := json.Marshal(&req)
		if err != nil {
			return err
		}
		results, attempts, cerr := pr.callWithRetries(ctx, body, n)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		for j, i := range chunk {
			raw := out[i].Data
			schema, table := sent[i].meta.str("schema-name"), sent[i].meta.str("table-name")
			newSchema, newTable := sent[i].meta.current("schema-name"), sent[i].meta.current("table-name")
			if cerr != nil {
				out[i] = p.failure(&in[i], out[i].Table, config.ErrorProcessingFailed, attempts, cerr.code, cerr.msg, raw, schema, table)
				continue
			}
			res := results[j]
			switch res.Result {
			case "Ok":
				data, err := base64.StdEncoding.DecodeString(res.Data)
				if err != nil {
					out[i] = p.failure(&in[i], out[i].Table, config.ErrorProcessingFailed, attempts, "Processor.InvalidData", "the processor returned data that is not base64: "+err.Error(), raw, schema, table)
					continue
				}
				line, code, msg := checkOutput(data, newSchema, newTable)
				if code != "" {
					kind := config.ErrorFormatConversionFailed
					if code == "Processor.RoutingChanged" {
						kind = config.ErrorProcessingFailed
					}
					out[i] = p.failure(&in[i], out[i].Table, kind, attempts, code, msg, raw, schema, table)
					continue
				}
				out[i].Data = line
			case "Dropped":
				out[i] = Output{Result: Dropped, Table: out[i].Table}
			case "ProcessingFailed":
				out[i] = p.failure(&in[i], out[i].Table, config.ErrorProcessingFailed, attempts, "Processor.ProcessingFailed", "the processor returned result ProcessingFailed", raw, schema, table)
			default:
				out[i] = p.failure(&in[i], out[i].Table, config.ErrorProcessingFailed, attempts, "Processor.InvalidResult", fmt.Sprintf("the processor returned result %q (want Ok, Dropped or ProcessingFailed)", res.Result), raw, schema, table)
			}
		}
	}
	return nil
}

// checkOutput checks a record the processor returned Ok: it must be one
// JSON object, and must keep the schema-name and table-name the rules gave
// it (they decide where it is delivered). It returns the object on one
// line (a newline a Firehose Lambda appends is dropped), or an error code
// and message.
func checkOutput(data []byte, schema, table string) ([]byte, string, string) {
	var buf bytes.Buffer
	if err := json.Compact(&buf, data); err != nil {
		return nil, "Format.InvalidJSON", "the processor returned data that is not JSON: " + err.Error()
	}
	line := buf.Bytes()
	if len(line) == 0 || line[0] != '{' {
		return nil, "Format.NotAnObject", "the processor returned data that is not a JSON object; each line of a json object must be one"
	}
	var names struct {
		Metadata *struct {
			Schema *string `json:"schema-name"`
			Table  *string `json:"table-name"`
		} `json:"metadata"`
	}
	if err := json.Unmarshal(line, &names); err == nil && names.Metadata != nil {
		if s := names.Metadata.Schema; s != nil && *s != schema {
			return nil, "Processor.RoutingChanged", fmt.Sprintf("the processor changed metadata.schema-name from %q to %q; rename schemas with rules, which decide where records go", schema, *s)
		}
		if t := names.Metadata.Table; t != nil && *t != table {
			return nil, "Processor.RoutingChanged", fmt.Sprintf("the processor changed metadata.table-name from %q to %q; rename tables with rules, which decide where records go", table, *t)
		}
	}
	return bytes.Clone(line), "", ""
}

// callWithRetries calls the processor until it answers a whole batch of n
// records or the retries run out. It returns the results in request
// order, or the last call error and the number of attempts made.
func (pr *processor) callWithRetries(ctx context.Context, body []byte, n int) ([]procOutRecord, int, *callError) {
	wait := pr.backoff
	for attempt := 1; ; attempt++ {
		results, err := pr.callOnce(ctx, body, n)
		if err == nil {
			return results, attempt, nil
		}
		if ctx.Err() != nil || attempt > pr.retries {
			return nil, attempt, err
		}
		pr.log.Warn("the transform processor failed; retrying", "attempt", attempt, "retry_in", wait, "err", err)
		select {
		case <-ctx.Done():
			return nil, attempt, err
		case <-time.After(wait):
		}
		wait = min(2*wait, time.Minute)
	}
}

// maxResponse bounds a processor's response.
const maxResponse = 256 << 20

func (pr *processor) callOnce(ctx context.Context, body []byte, n int) ([]procOutRecord, *callError) {
	cctx, cancel := context.WithTimeout(ctx, pr.timeout)
	defer cancel()
	var resp []byte
	var err *callError
	if pr.url != "" {
		resp, err = pr.post(cctx, body)
	} else {
		resp, err = pr.run(cctx, body)
	}
	if err == nil && cctx.Err() == context.DeadlineExceeded {
		err = &callError{"Processor.Timeout", fmt.Sprintf("no answer within %s", pr.timeout)}
	}
	if err != nil {
		return nil, err
	}
	return parseResponse(resp, n)
}

// parseResponse reads a processor's answer to a batch of n records: every
// record must come back once, by its recordId.
func parseResponse(resp []byte, n int) ([]procOutRecord, *callError) {
	var r procResponse
	if jerr := json.Unmarshal(resp, &r); jerr != nil {
		return nil, &callError{"Processor.InvalidResponse", "the response is not {\"records\": [...]}: " + jerr.Error()}
	}
	results := make([]procOutRecord, n)
	seen := make([]bool, n)
	for _, rec := range r.Records {
		j, perr := strconv.Atoi(rec.RecordID)
		switch {
		case perr != nil || j < 0 || j >= n || strconv.Itoa(j) != rec.RecordID:
			return nil, &callError{"Processor.UnknownRecordId", fmt.Sprintf("the response has recordId %q, which the request did not", rec.RecordID)}
		case seen[j]:
			return nil, &callError{"Processor.DuplicatedRecordId", fmt.Sprintf("the response has recordId %q twice", rec.RecordID)}
		}
		seen[j] = true
		results[j] = rec
	}
	for j, ok := range seen {
		if !ok {
			return nil, &callError{"Processor.MissingRecordId", fmt.Sprintf("the response lacks recordId %q (every record must come back, with result Ok, Dropped or ProcessingFailed)", strconv.Itoa(j))}
		}
	}
	return results, nil
}

func (pr *processor) post(ctx context.Context, body []byte) ([]byte, *callError) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, pr.url, bytes.NewReader(body))
	if err != nil {
		return nil, &callError{"Processor.FunctionError", err.Error()}
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := pr.client.Do(req)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return nil, &callError{"Processor.Timeout", fmt.Sprintf("no answer within %s", pr.timeout)}
		}
		return nil, &callError{"Processor.FunctionError", err.Error()}
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	if err != nil {
		return nil, &callError{"Processor.FunctionError", "reading the response: " + err.Error()}
	}
	if resp.StatusCode/100 != 2 {
		return nil, &callError{"Processor.FunctionError", fmt.Sprintf("HTTP %s: %s", resp.Status, tail(data))}
	}
	return data, nil
}

func (pr *processor) run(ctx context.Context, body []byte) ([]byte, *callError) {
	cmd := exec.CommandContext(ctx, pr.command[0], pr.command[1:]...)
	cmd.Stdin = bytes.NewReader(body)
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	cmd.WaitDelay = time.Second
	if err := cmd.Run(); err != nil {
		if ctx.Err() == context.DeadlineExceeded {
			return nil, &callError{"Processor.Timeout", fmt.Sprintf("no answer within %s", pr.timeout)}
		}
		msg := err.Error()
		if s := tail(stderr.Bytes()); s != "" {
			msg += ": " + s
		}
		return nil, &callError{"Processor.FunctionError", fmt.Sprintf("%s: %s", pr.command[0], msg)}
	}
	return stdout.Bytes(), nil
}

// tail is the end of a command's or server's output, for messages.
func tail(b []byte) string {
	b = bytes.TrimSpace(b)
	if len(b) > 512 {
		b = append([]byte("…"), b[len(b)-512:]...)
	}
	return string(b)
}

func newID() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
