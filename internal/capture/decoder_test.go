package capture

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-mysql-org/go-mysql/replication"

	"github.com/binlake/binlake/internal/config"
	"github.com/binlake/binlake/internal/stream"
	"github.com/binlake/binlake/internal/testbed"
)

// The decoder's golden test: a binlog file recorded once from MariaDB
// (testdata/decoder/mysql-bin.000001, with the server's collations) is
// read with go-mysql's BinlogParser.ParseFile and decoded by the binlog
// reader; the records must be exactly testdata/decoder/records.golden.
//
//	go test ./internal/capture -run TestDecoderGolden -record   # new binlog file (needs MariaDB)
//	go test ./internal/capture -run TestDecoderGolden -update   # new golden records

var (
	recordBinlog = flag.Bool("record", false, "record the decoder test's binlog file from a new MariaDB")
	updateGolden = flag.Bool("update", false, "write the decoder test's golden records")
)

const decoderDir = "testdata/decoder"

// decoderScript is what the recorded binlog holds: every kind of event the
// reader handles, on tables of several shapes, through DDL.
var decoderScript = []string{
	"SET SESSION time_zone = '+05:30'",
	"CREATE DATABASE golden",
	"CREATE TABLE golden.t (id INT PRIMARY KEY, name VARCHAR(20) CHARACTER SET latin1, price DECIMAL(10,2), seen DATETIME(3), at TIMESTAMP(6) NULL, doc JSON, flags SET('a','b','c'), kind ENUM('x','y'), blobby BLOB, bits BIT(10), f FLOAT, d DOUBLE, y YEAR, u BIGINT UNSIGNED)",
	"CREATE TABLE golden.nokey (a INT, b VARCHAR(10))",
	"CREATE TABLE golden.ck (region CHAR(2), seq INT, v INT, PRIMARY KEY (region, seq))",
	"INSERT INTO golden.t VALUES (1, 'café', 12.50, '2024-02-29 23:59:59.999', '2024-01-01 00:00:00.000001', '{\"a\": [1, 2.5, \"x\"], \"b\": null}', 'a,c', 'y', x'00ff10', b'1010101010', 1.5, -2.25e-300, 2024, 18446744073709551615)",
	"INSERT INTO golden.t (id) VALUES (2), (3)",
	"INSERT INTO golden.nokey VALUES (1, 'one'), (1, 'one'), (2, 'two')",
	"INSERT INTO golden.ck VALUES ('eu', 1, 10), ('us', 1, 20)",
	"UPDATE golden.t SET price = price * 2, doc = JSON_SET(doc, '$.b', 'set') WHERE id = 1",
	"UPDATE golden.nokey SET b = 'uno' WHERE a = 1",
	"UPDATE golden.ck SET region = 'ap' WHERE seq = 1 AND region = 'eu'",
	"DELETE FROM golden.t WHERE id = 3",
	"BEGIN",
	"INSERT INTO golden.t (id, name) VALUES (10, 'in a transaction')",
	"SAVEPOINT s1",
	"INSERT INTO golden.t (id, name) VALUES (11, 'rolled back')",
	"ROLLBACK TO SAVEPOINT s1",
	"UPDATE golden.ck SET v = v + 1",
	"COMMIT",
	"ALTER TABLE golden.t ADD COLUMN extra VARCHAR(5) DEFAULT 'new' AFTER name",
	"INSERT INTO golden.t (id, extra) VALUES (4, 'four')",
	"ALTER TABLE golden.t DROP COLUMN blobby, RENAME COLUMN name TO title",
	"UPDATE golden.t SET title = 'renamed' WHERE id = 2",
	"XA START 'x1'",
	"INSERT INTO golden.t (id) VALUES (20)",
	"XA END 'x1'",
	"XA PREPARE 'x1'",
	"XA COMMIT 'x1'",
	"TRUNCATE TABLE golden.nokey",
	"RENAME TABLE golden.ck TO golden.ck2",
	"INSERT INTO golden.ck2 VALUES ('zz', 9, 90)",
	"DROP TABLE golden.ck2",
}

// recordDecoderBinlog runs decoderScript on a new MariaDB and keeps its
// binlog file and collations in testdata.
func recordDecoderBinlog(t *testing.T) {
	m := testbed.NewMariaDB(t)
	ctx := t.Context()
	conn, err := m.Open("")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	c, err := conn.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.ExecContext(ctx, "RESET MASTER"); err != nil {
		t.Fatal(err)
	}
	for _, s := range decoderScript {
		if _, err := c.ExecContext(ctx, s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
	if _, err := c.ExecContext(ctx, "FLUSH BINARY LOGS"); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse([]byte(fmt.Sprintf("task: rec\nsource:\n  mysql: {host: 127.0.0.1, port: %d, user: root}\ntables: [{include: \"golden.%%\"}]\ntarget: file:///nonexistent\n", m.Port)))
	if err != nil {
		t.Fatal(err)
	}
	src, err := openSource(ctx, cfg.Source.MySQL)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	if err := os.MkdirAll(decoderDir, 0o755); err != nil {
		t.Fatal(err)
	}
	body, err := os.ReadFile(filepath.Join(m.DataDir, "mysql-bin.000001"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(decoderDir, "mysql-bin.000001"), body, 0o644); err != nil {
		t.Fatal(err)
	}
	cs, _ := json.MarshalIndent(src.charsets, "", " ")
	if err := os.WriteFile(filepath.Join(decoderDir, "charsets.json"), cs, 0o644); err != nil {
		t.Fatal(err)
	}
}

// collector is a stream.Producer keeping what is published.
type collector struct {
	mu   sync.Mutex
	msgs []stream.Message
}

func (c *collector) Publish(_ context.Context, m *stream.Message) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.msgs = append(c.msgs, *m)
	return nil
}
func (c *collector) Flush(context.Context) error { return nil }
func (c *collector) Close() error                { return nil }

// decodeEvents feeds events to a binlog reader of a CDC task selecting
// golden.% and returns the records it published, one JSON line each
// without the capture-time "timestamp", prefixed with their partition.
func decodeEvents(t *testing.T, events func(handle func(*replication.BinlogEvent) error) error) []string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(decoderDir, "charsets.json"))
	if err != nil {
		t.Fatal(err)
	}
	charsets := map[uint64]string{}
	if err := json.Unmarshal(raw, &charsets); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse([]byte(`task: golden
source:
  mysql: {host: 127.0.0.1, port: 3306, user: root}
migration: cdc
tables:
  - include: "golden.%"
before_image: all
include_transaction_details: true
stream: {partitions: 3}
target: file:///nonexistent
`))
	if err != nil {
		t.Fatal(err)
	}
	prod := &collector{}
	c := New(Options{Config: cfg, Producer: prod, StateDir: t.TempDir(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	c.src = &source{flavor: "mariadb", charsets: charsets}
	c.fullMetadata = true
	c.out = newEmitter(prod)
	r := &binlogReader{c: c, cols: map[*replication.TableMapEvent][]binlogColumn{}, fixed: map[TableName]map[string]colKind{},
		hist: map[*replication.TableMapEvent]*TableSchema{}, ddlp: newDDLParser(), file: "mysql-bin.000001", fileNum: 1}
	ctx := t.Context()
	if err := events(func(ev *replication.BinlogEvent) error {
		_, err := r.handle(ctx, ev)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if err := c.out.dispatch(ctx); err != nil {
		t.Fatal(err)
	}
	c.out.close()
	var out []string
	for _, m := range prod.msgs {
		var rec map[string]any
		d := json.NewDecoder(bytes.NewReader(m.Data))
		d.UseNumber()
		if err := d.Decode(&rec); err != nil {
			t.Fatalf("record %s: %v", m.Position, err)
		}
		if md, ok := rec["metadata"].(map[string]any); ok {
			delete(md, "timestamp")
		}
		line, err := json.Marshal(rec)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, fmt.Sprintf("p%d %s", m.Partition, line))
	}
	return out
}

func parseFile(handle func(*replication.BinlogEvent) error) error {
	p := replication.NewBinlogParser()
	p.SetFlavor("mariadb")
	p.SetTimestampStringLocation(time.UTC)
	p.SetRenderJSONAsMySQLText(true)
	return p.ParseFile(filepath.Join(decoderDir, "mysql-bin.000001"), 0, handle)
}

func TestDecoderGolden(t *testing.T) {
	if *recordBinlog {
		recordDecoderBinlog(t)
	}
	got := decodeEvents(t, parseFile)
	golden := filepath.Join(decoderDir, "records.golden")
	if *updateGolden {
		if err := os.WriteFile(golden, []byte(strings.Join(got, "\n")+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	raw, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (write it with -update)", err)
	}
	want := strings.Split(strings.TrimSuffix(string(raw), "\n"), "\n")
	for i := range max(len(got), len(want)) {
		var g, w string
		if i < len(got) {
			g = got[i]
		}
		if i < len(want) {
			w = want[i]
		}
		if g != w {
			t.Errorf("record %d:\n got %s\nwant %s", i+1, g, w)
		}
	}
	if len(got) != len(want) {
		t.Errorf("%d records, want %d", len(got), len(want))
	}
}

// TestCompressedTransactionPayload wraps each transaction of the recorded
// binlog, from the event after its GTID to its XID, into a transaction
// payload event, as MySQL 8 writes with binlog_transaction_compression=ON
// (go-mysql decompresses it and parses the events it holds): the reader
// must publish the very same records, each at the payload's position, in
// the payload's order.
func TestCompressedTransactionPayload(t *testing.T) {
	plain := decodeEvents(t, parseFile)
	var inner []*replication.BinlogEvent
	wrapped := decodeEvents(t, func(handle func(*replication.BinlogEvent) error) error {
		// A transaction without an XID (DDL, XA) goes as it is.
		plainly := func() error {
			for _, ev := range inner {
				if err := handle(ev); err != nil {
					return err
				}
			}
			inner = nil
			return nil
		}
		err := parseFile(func(ev *replication.BinlogEvent) error {
			switch ev.Event.(type) {
			case *replication.MariadbGTIDEvent:
				if err := plainly(); err != nil {
					return err
				}
				if err := handle(ev); err != nil {
					return err
				}
				inner = []*replication.BinlogEvent{}
				return nil
			case *replication.XIDEvent:
				if inner == nil {
					return handle(ev)
				}
				inner = append(inner, ev)
				first := inner[0].Header
				h := *ev.Header
				h.EventType = replication.TRANSACTION_PAYLOAD_EVENT
				h.EventSize = h.LogPos - (first.LogPos - first.EventSize)
				payload := &replication.TransactionPayloadEvent{Events: inner, UncompressedSize: uint64(h.EventSize)}
				inner = nil
				return handle(&replication.BinlogEvent{Header: &h, Event: payload})
			}
			if inner != nil {
				inner = append(inner, ev)
				return nil
			}
			return handle(ev)
		})
		if err != nil {
			return err
		}
		return plainly()
	})
	if len(wrapped) != len(plain) {
		t.Fatalf("%d records from payloads, %d from the plain binlog", len(wrapped), len(plain))
	}
	payloads := 0
	prev := ""
	for i := range plain {
		p, w := recordWithout(t, plain[i]), recordWithout(t, wrapped[i])
		if p != w {
			t.Errorf("record %d:\nplain   %s\npayload %s", i+1, p, w)
		}
		pos := position(t, wrapped[i])
		if pos <= prev {
			t.Errorf("record %d at %s, after %s: positions must increase", i+1, pos, prev)
		}
		prev = pos
		if pos != position(t, plain[i]) {
			payloads++ // at its payload's offset, not its rows event's
		}
	}
	if payloads == 0 {
		t.Errorf("no record took its position from a payload: the test proves nothing")
	}
}

// recordWithout returns a decoded record line without its stream-position.
func recordWithout(t *testing.T, line string) string {
	t.Helper()
	part, js, _ := strings.Cut(line, " ")
	var rec map[string]any
	d := json.NewDecoder(strings.NewReader(js))
	d.UseNumber()
	if err := d.Decode(&rec); err != nil {
		t.Fatal(err)
	}
	delete(rec["metadata"].(map[string]any), "stream-position")
	b, _ := json.Marshal(rec)
	return part + " " + string(b)
}

func position(t *testing.T, line string) string {
	t.Helper()
	_, js, _ := strings.Cut(line, " ")
	var rec struct {
		Metadata struct {
			Position string `json:"stream-position"`
		} `json:"metadata"`
	}
	if err := json.Unmarshal([]byte(js), &rec); err != nil {
		t.Fatal(err)
	}
	return rec.Metadata.Position
}
