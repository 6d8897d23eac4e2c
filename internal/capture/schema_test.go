package capture_test

import (
	"strings"
	"testing"

	"github.com/binlake/binlake/internal/capture"
	"github.com/binlake/binlake/internal/lake"
	"github.com/binlake/binlake/internal/testbed"
)

// TestSchemaHistoryMinimalMetadata runs on a MariaDB whose table maps name
// no columns (binlog_row_metadata=MINIMAL). binlake runs once (its
// checkpoint holds the schema history seeded then), stops, and while it is
// stopped the tables are changed between inserts: ADD, DROP, CHANGE
// (rename and retype), RENAME COLUMN and MODIFY ... FIRST (reorder). Started
// again after all of it, binlake must decode each old event with the schema
// in force at its position: every record carries its values under the
// column names of its time, and the lake replays to the source. Meanwhile a
// table made system-versioned (DDL the SQL parser does not read), one with a
// compressed column (a binlog type go-mysql does not decode), and one
// altered outside the binlog (sql_log_bin=0) go to "Table error" with the
// reason, and the others keep flowing. MariaDB's own DDL (CREATE OR
// REPLACE, ALTER ONLINE, the UUID, INET6 and INET4 types, an INVISIBLE
// column) is read, and its table's values come out as the SELECT's.
//
// It runs with MINIMAL and with NO_LOG (MariaDB's default), whose table
// maps carry neither signedness nor character sets nor enum labels.
func TestSchemaHistoryMinimalMetadata(t *testing.T) {
	for _, metadata := range []string{"MINIMAL", "NO_LOG"} {
		t.Run(metadata, func(t *testing.T) {
			t.Parallel()
			schemaHistory(t, metadata)
		})
	}
}

func schemaHistory(t *testing.T, metadata string) {
	m := testbed.NewMariaDBWith(t, "--binlog-row-metadata="+metadata)
	ctx := t.Context()
	if err := m.Exec(ctx, "CREATE DATABASE shop",
		"CREATE TABLE shop.a (id INT PRIMARY KEY, name VARCHAR(20), qty INT UNSIGNED, price DECIMAL(6,2)) DEFAULT CHARSET=utf8mb4",
		"CREATE TABLE shop.d (id INT PRIMARY KEY, v VARCHAR(10) CHARACTER SET latin1, e ENUM('x','y','z'))",
		"CREATE TABLE shop.bad1 (id INT PRIMARY KEY, v INT)",
		"CREATE TABLE shop.bad2 (id INT PRIMARY KEY, v INT)",
		"CREATE TABLE shop.bad3 (id INT PRIMARY KEY, v INT)",
		"INSERT INTO shop.a VALUES (1, 'one', 10, 1.50)",
		"INSERT INTO shop.d VALUES (1, 'café', 'y')",
		"INSERT INTO shop.bad1 VALUES (1, 1)",
		"INSERT INTO shop.bad2 VALUES (1, 1)",
		"INSERT INTO shop.bad3 VALUES (1, 1)"); err != nil {
		t.Fatal(err)
	}
	lt := newLakeTask(t, m, "")
	lt.start(t)
	lt.drain(t)

	// binlake is stopped.
	if err := m.Exec(ctx,
		"INSERT INTO shop.a VALUES (2, 'two', 20, 2.50)",
		"ALTER TABLE shop.a ADD COLUMN note VARCHAR(10) AFTER name",
		"INSERT INTO shop.a VALUES (3, 'three', 'n3', 30, 3.50)",
		"ALTER TABLE shop.a DROP COLUMN qty",
		"INSERT INTO shop.a VALUES (4, 'four', 'n4', 4.50)",
		"ALTER TABLE shop.a CHANGE name title VARCHAR(30) NOT NULL, RENAME COLUMN note TO remark",
		"INSERT INTO shop.a VALUES (5, 'five', 'r5', 5.50)",
		"ALTER TABLE shop.a MODIFY COLUMN price DECIMAL(8,3) FIRST",
		"INSERT INTO shop.a VALUES (6.125, 6, 'six', 'r6')",
		"UPDATE shop.a SET title = CONCAT(title, '!') WHERE id = 1",
		"DELETE FROM shop.a WHERE id = 2",
		"INSERT INTO shop.d VALUES (2, 'naïve', 'z')",
		"ALTER TABLE shop.bad1 ADD SYSTEM VERSIONING",
		"INSERT INTO shop.bad1 VALUES (2, 2)",
		// A column type go-mysql does not decode (MYSQL_TYPE_VARCHAR_COMPRESSED).
		"ALTER TABLE shop.bad3 ADD COLUMN c VARCHAR(10) COMPRESSED",
		"INSERT INTO shop.bad3 VALUES (2, 2, 'x')",
		// MariaDB's own DDL, which the parser reads once rewritten.
		"CREATE OR REPLACE TABLE shop.m (id INT PRIMARY KEY, u UUID, ip INET6, v4 INET4, hid INT INVISIBLE DEFAULT 7)",
		"INSERT INTO shop.m (id, u, ip, v4) VALUES (1, '123e4567-e89b-12d3-a456-426614174000', '2001:db8::1', '10.0.0.1')",
		"ALTER ONLINE TABLE shop.m CHANGE u uuid UUID",
		"INSERT INTO shop.m (id, uuid, ip, v4, hid) VALUES (2, '00000000-0000-0000-0000-000000000001', '::1', '127.0.0.1', 8)",
		"SET SESSION sql_log_bin = 0",
		"ALTER TABLE shop.bad2 ADD COLUMN w INT",
		"SET SESSION sql_log_bin = 1",
		"INSERT INTO shop.bad2 VALUES (2, 2, 2)",
		"INSERT INTO shop.d VALUES (3, 'über', 'x')",
		"UPDATE shop.d SET v = 'déjà' WHERE id = 1"); err != nil {
		t.Fatal(err)
	}
	lt.start(t)
	// Live, with binlake running: one more change of each kind.
	if err := m.Exec(ctx,
		// Spatial columns, which the parser reads once rewritten, in a
		// table created while binlake runs (captured from the binlog).
		"CREATE TABLE shop.geo (id INT PRIMARY KEY, g GEOMETRY REF_SYSTEM_ID=4326 NOT NULL, p POINT, SPATIAL INDEX (g))",
		"INSERT INTO shop.geo VALUES (1, ST_GeomFromText('LINESTRING(0 0, 1 1, 2 1)', 4326), ST_GeomFromText('POINT(1.5 -2)'))",
		"ALTER TABLE shop.geo ADD COLUMN area MULTIPOLYGON AFTER id",
		"INSERT INTO shop.geo VALUES (2, ST_GeomFromText('MULTIPOLYGON(((0 0, 0 1, 1 1, 0 0)))'), ST_GeomFromText('POINT(0 0)', 4326), NULL)",
		"UPDATE shop.geo SET area = ST_GeomFromText('MULTIPOLYGON(((0 0, 0 2, 2 2, 0 0)))') WHERE id = 1",
		"ALTER TABLE shop.a ADD COLUMN tag CHAR(2) DEFAULT 'zz'",
		"INSERT INTO shop.a (id, title, remark, price) VALUES (7, 'seven', 'r7', 7.000)",
		"INSERT INTO shop.d VALUES (4, 'fin', 'y')",
		"UPDATE shop.a SET tag = 'ok'"); err != nil { // every row of a is last written with today's columns
		t.Fatal(err)
	}
	lt.drain(t)

	// a: each record with the columns of its time, in order.
	var got []string
	for _, r := range lt.records(t, "a") {
		if r.meta("record-type") == "data" && r.meta("operation") != "update" || r.meta("operation") == "update" && r.id(t) == 1 && !strings.Contains(r.line, `"tag"`) {
			got = append(got, r.meta("operation")+" "+string(r.fields["data"]))
		}
	}
	want := []string{
		`load {"id":1,"name":"one","qty":10,"price":"1.50"}`,
		`insert {"id":2,"name":"two","qty":20,"price":"2.50"}`,
		`insert {"id":3,"name":"three","note":"n3","qty":30,"price":"3.50"}`,
		`insert {"id":4,"name":"four","note":"n4","price":"4.50"}`,
		`insert {"id":5,"title":"five","remark":"r5","price":"5.50"}`,
		`insert {"price":"6.125","id":6,"title":"six","remark":"r6"}`,
		`update {"price":"1.500","id":1,"title":"one!","remark":null}`,
		`delete {"price":"2.500","id":2,"title":"two","remark":null}`,
		`insert {"price":"7.000","id":7,"title":"seven","remark":"r7","tag":"zz"}`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("shop.a records:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	st := captureState(t, lt.cfg.StateDir)
	for table, wantErr := range map[string]string{"bad1": "SQL parser", "bad2": "table map has 3 columns, the schema history 2",
		"bad3": "cannot be decoded: unsupport type 141"} {
		p := st.Tables["shop."+table]
		if p == nil || p.State != capture.StateError || !strings.Contains(p.Error, wantErr) {
			t.Errorf("shop.%s: %+v, want Table error saying %q", table, p, wantErr)
		}
	}
	for _, table := range []string{"a", "d", "m", "geo"} {
		if p := st.Tables["shop."+table]; p == nil || p.State != capture.StateCompleted {
			t.Errorf("shop.%s: %+v, want Table completed", table, p)
		}
	}
	if st.Schemas == nil || len(st.Schemas.Tables["shop.a"]) != 1 {
		t.Errorf("the checkpoint's schema history of shop.a: %+v, want its one version in force", st.Schemas)
	}

	// The lake replays to the source for the tables not in error; the
	// errored ones hold nothing after their error.
	rp := lt.replay(t)
	if len(rp.Duplicates) > 0 {
		t.Errorf("%d records are in the lake twice, e.g. %s", len(rp.Duplicates), rp.Duplicates[0])
	}
	for _, table := range []string{"a", "d", "m", "geo"} {
		src, err := capture.ReadTable(ctx, lt.cfg.Source.MySQL, "shop", table)
		if err != nil {
			t.Fatal(err)
		}
		for _, x := range lake.Compare(rp.Tables["shop."+table], src) {
			t.Errorf("%s: %s", table, x)
		}
	}
	for _, table := range []string{"bad1", "bad2", "bad3"} {
		if rows := rp.Tables["shop."+table]; len(rows) != 1 {
			t.Errorf("shop.%s: %d rows in the lake, want only the loaded one: %v", table, len(rows), rows)
		}
	}
}
