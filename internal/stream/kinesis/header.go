package kinesis

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// The partition key of a binlake Kinesis record is its header:
//
//	b1|<partition>|<session>|<counter>|<i>/<n>|<commit µs>|<op>|<position>|<table>
//
// numbers in base 36. session identifies the producer (its start time in
// nanoseconds) and counter numbers its records per partition from 1, so the
// consumer can drop the copies that PutRecords accepted after a failed entry
// of the same partition (they are sent again after it). i/n marks chunks.
// The table comes last; when the key would pass Kinesis's 256 characters it
// is left out (written as "~") and read from the record's JSON
// (schema-name, table-name). Routing uses the explicit hash key, not this
// key.
const headerVersion = "b1"

type header struct {
	partition int
	session   int64
	counter   int64
	index     int
	count     int
	commit    time.Time
	op        string
	position  string
	table     string // "" when it must be read from the data
}

func (h header) encode() string {
	var b strings.Builder
	b.Grow(128)
	b.WriteString(headerVersion)
	for _, f := range []string{
		strconv.Itoa(h.partition),
		strconv.FormatInt(h.session, 36),
		strconv.FormatInt(h.counter, 36),
		strconv.Itoa(h.index) + "/" + strconv.Itoa(h.count),
		strconv.FormatInt(h.commit.UnixMicro(), 36),
		h.op,
		h.position,
	} {
		b.WriteByte('|')
		b.WriteString(f)
	}
	b.WriteByte('|')
	if b.Len()+len([]rune(h.table)) <= maxPartitionKey {
		b.WriteString(h.table)
	} else {
		b.WriteByte('~')
	}
	return b.String()
}

func parseHeader(s string) (header, error) {
	f := strings.SplitN(s, "|", 9)
	if len(f) != 9 || f[0] != headerVersion {
		return header{}, fmt.Errorf("partition key %q is not a binlake header", s)
	}
	var h header
	var err error
	bad := func(e error) {
		if err == nil && e != nil {
			err = e
		}
	}
	var e error
	h.partition, e = strconv.Atoi(f[1])
	bad(e)
	h.session, e = strconv.ParseInt(f[2], 36, 64)
	bad(e)
	h.counter, e = strconv.ParseInt(f[3], 36, 64)
	bad(e)
	a, c, _ := strings.Cut(f[4], "/")
	h.index, e = strconv.Atoi(a)
	bad(e)
	h.count, e = strconv.Atoi(c)
	bad(e)
	us, e := strconv.ParseInt(f[5], 36, 64)
	bad(e)
	if err != nil {
		return header{}, fmt.Errorf("partition key %q: %w", s, err)
	}
	h.commit = time.UnixMicro(us).UTC()
	h.op, h.position = f[6], f[7]
	if f[8] != "~" {
		h.table = f[8]
	}
	return h, nil
}

// tableFromJSON reads schema-name.table-name from a DMS record.
func tableFromJSON(data []byte) (string, error) {
	var r struct {
		Metadata struct {
			Schema string `json:"schema-name"`
			Table  string `json:"table-name"`
		} `json:"metadata"`
	}
	if err := json.Unmarshal(data, &r); err != nil {
		return "", fmt.Errorf("reading the table of a record from its JSON: %w", err)
	}
	return r.Metadata.Schema + "." + r.Metadata.Table, nil
}
