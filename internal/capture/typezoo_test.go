package capture_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"

	"github.com/binlake/binlake/internal/config"
	"github.com/binlake/binlake/internal/objstore"
	"github.com/binlake/binlake/internal/task"
	"github.com/binlake/binlake/internal/testbed"
)

// The type zoo writes every MariaDB type at its edge values, once before the
// full load and once during CDC, and asserts the exact JSON of each value in
// every record that carries it: load, insert, update and delete. The rules are
// those of docs/format.md ("Value rules").

// Cases: the rows of values each column is written with. The last case,
// null, writes NULL into every column and is implicit in zooColumn.
const (
	caseMin = iota
	caseMax
	caseZero
	caseTypical
	caseOther
	caseNull
	nCases
)

var caseNames = [nCases]string{"min", "max", "zero", "typical", "other", "null"}

// zooColumn is one column of zoo.types: its definition, the SQL literal
// written in each case but the null one ("" for generated columns, which are
// not written) and the exact JSON expected for it in each case but the null
// one, where every column is null.
type zooColumn struct {
	name string
	def  string
	sql  [caseNull]string
	want [caseNull]string
}

func (c zooColumn) generated() bool { return strings.Contains(c.def, " AS (") }

func (c zooColumn) wantJSON(k int) string {
	if k == caseNull {
		return "null"
	}
	return c.want[k]
}

func (c zooColumn) sqlValue(k int) string {
	if k == caseNull {
		return "NULL"
	}
	return c.sql[k]
}

const (
	d65Max    = "99999999999999999999999999999999999.999999999999999999999999999999"
	hex00FF   = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f606162636465666768696a6b6c6d6e6f707172737475767778797a7b7c7d7e7f808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9fa0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebfc0c1c2c3c4c5c6c7c8c9cacbcccdcecfd0d1d2d3d4d5d6d7d8d9dadbdcdddedfe0e1e2e3e4e5e6e7e8e9eaebecedeeeff0f1f2f3f4f5f6f7f8f9fafbfcfdfeff"
	b64Of00FF = `"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4vMDEyMzQ1Njc4OTo7PD0+P0BBQkNERUZHSElKS0xNTk9QUVJTVFVWV1hZWltcXV5fYGFiY2RlZmdoaWprbG1ub3BxcnN0dXZ3eHl6e3x9fn+AgYKDhIWGh4iJiouMjY6PkJGSk5SVlpeYmZqbnJ2en6ChoqOkpaanqKmqq6ytrq+wsbKztLW2t7i5uru8vb6/wMHCw8TFxsfIycrLzM3Oz9DR0tPU1dbX2Nna29zd3t/g4eLj5OXm5+jp6uvs7e7v8PHy8/T19vf4+fr7/P3+/w=="`
	// latin1High is bytes 0x80..0xff of MariaDB's latin1 (cp1252, whose five
	// undefined bytes are the C1 controls of the same code).
	latin1High = "\"€\u0081‚ƒ„…†‡ˆ‰Š‹Œ\u008dŽ\u008f\u0090‘’“”•–—˜™š›œ\u009džŸ\u00a0¡¢£¤¥¦§¨©ª«¬\u00ad®¯°±²³´µ¶·¸¹º»¼½¾¿ÀÁÂÃÄÅÆÇÈÉÊËÌÍÎÏÐÑÒÓÔÕÖ×ØÙÚÛÜÝÞßàáâãäåæçèéêëìíîïðñòóôõö÷øùúûüýþÿ\""
)

var zooColumns = []zooColumn{
	// Integers: JSON numbers, every digit exact.
	{"ti", "TINYINT", [5]string{"-128", "127", "0", "5", "-1"}, [5]string{"-128", "127", "0", "5", "-1"}},
	{"tiu", "TINYINT UNSIGNED", [5]string{"0", "255", "0", "200", "1"}, [5]string{"0", "255", "0", "200", "1"}},
	{"si", "SMALLINT", [5]string{"-32768", "32767", "0", "-300", "1"}, [5]string{"-32768", "32767", "0", "-300", "1"}},
	{"siu", "SMALLINT UNSIGNED", [5]string{"0", "65535", "0", "40000", "1"}, [5]string{"0", "65535", "0", "40000", "1"}},
	{"mi", "MEDIUMINT", [5]string{"-8388608", "8388607", "0", "-70000", "1"}, [5]string{"-8388608", "8388607", "0", "-70000", "1"}},
	{"miu", "MEDIUMINT UNSIGNED", [5]string{"0", "16777215", "0", "9000000", "1"}, [5]string{"0", "16777215", "0", "9000000", "1"}},
	{"i", "INT", [5]string{"-2147483648", "2147483647", "0", "123456", "-7"}, [5]string{"-2147483648", "2147483647", "0", "123456", "-7"}},
	{"iu", "INT UNSIGNED", [5]string{"0", "4294967295", "0", "3000000000", "1"}, [5]string{"0", "4294967295", "0", "3000000000", "1"}},
	{"bi", "BIGINT", [5]string{"-9223372036854775808", "9223372036854775807", "0", "-1", "1234567890123"}, [5]string{"-9223372036854775808", "9223372036854775807", "0", "-1", "1234567890123"}},
	{"biu", "BIGINT UNSIGNED", [5]string{"0", "18446744073709551615", "0", "9223372036854775808", "1"}, [5]string{"0", "18446744073709551615", "0", "9223372036854775808", "1"}},

	// DECIMAL: a string with the digits MySQL prints, every declared decimal.
	{"d65", "DECIMAL(65,30)", [5]string{"-" + d65Max, d65Max, "0", "-0.000000000000000000000000000001", "12345.6789"},
		[5]string{`"-` + d65Max + `"`, `"` + d65Max + `"`, `"0.000000000000000000000000000000"`, `"-0.000000000000000000000000000001"`, `"12345.678900000000000000000000000000"`}},
	{"d10", "DECIMAL(10,3)", [5]string{"-9999999.999", "9999999.999", "0", "12.34", "-0.5"},
		[5]string{`"-9999999.999"`, `"9999999.999"`, `"0.000"`, `"12.340"`, `"-0.500"`}},
	{"d0", "DECIMAL(20,0)", [5]string{"-99999999999999999999", "99999999999999999999", "0", "10", "-1"},
		[5]string{`"-99999999999999999999"`, `"99999999999999999999"`, `"0"`, `"10"`, `"-1"`}},

	// FLOAT/DOUBLE: the shortest JSON number that reads back as the stored
	// value. MariaDB stores -0 as 0.
	{"f", "FLOAT", [5]string{"-3.4e38", "3.4e38", "-0e0", "0.1", "1e-38"}, [5]string{"-3.4e+38", "3.4e+38", "0", "0.1", "1e-38"}},
	{"dbl", "DOUBLE", [5]string{"-1.7976931348623157e308", "1.7976931348623157e308", "-0e0", "0.1", "5e-324"},
		[5]string{"-1.7976931348623157e+308", "1.7976931348623157e+308", "0", "0.1", "5e-324"}},
	// Exponent form when the decimal exponent is below -4 or at least 6.
	{"dbl2", "DOUBLE", [5]string{"-0.00001", "1e21", "100", "123456", "1234567.5"}, [5]string{"-1e-05", "1e+21", "100", "123456", "1.2345675e+06"}},
	{"f73", "FLOAT(7,3)", [5]string{"-9999.999", "9999.999", "0", "1.1", "0.001"}, [5]string{"-9999.999", "9999.999", "0", "1.1", "0.001"}},
	{"d102", "DOUBLE(10,2)", [5]string{"-99999999.99", "99999999.99", "0", "0.1", "1234567.5"}, [5]string{"-9.999999999e+07", "9.999999999e+07", "0", "0.1", "1.2345675e+06"}},

	// BIT: an unsigned JSON number.
	{"b1", "BIT(1)", [5]string{"b'0'", "b'1'", "b'0'", "b'1'", "b'1'"}, [5]string{"0", "1", "0", "1", "1"}},
	{"b64", "BIT(64)", [5]string{"b'0'", "x'FFFFFFFFFFFFFFFF'", "0", "b'101'", "x'8000000000000000'"},
		[5]string{"0", "18446744073709551615", "0", "5", "9223372036854775808"}},

	// Dates and times: text as MariaDB prints it, with exactly the declared
	// fraction digits; zero dates pass through.
	{"dt", "DATE", [5]string{"'0000-00-00'", "'9999-12-31'", "'1000-01-01'", "'2024-02-29'", "'1970-01-01'"},
		[5]string{`"0000-00-00"`, `"9999-12-31"`, `"1000-01-01"`, `"2024-02-29"`, `"1970-01-01"`}},
	dtColumn(0), dtColumn(1), dtColumn(2), dtColumn(3), dtColumn(4), dtColumn(5), dtColumn(6),
	// TIMESTAMP: written in time zone +05:30, delivered in UTC.
	{"ts", "TIMESTAMP(6) NULL DEFAULT NULL",
		[5]string{"'1970-01-01 05:30:01'", "'2038-01-19 08:44:07.999999'", "'0000-00-00 00:00:00'", "'2024-06-01 12:00:00.123456'", "'2024-01-01 05:00:00'"},
		[5]string{`"1970-01-01 00:00:01.000000"`, `"2038-01-19 03:14:07.999999"`, `"0000-00-00 00:00:00.000000"`, `"2024-06-01 06:30:00.123456"`, `"2023-12-31 23:30:00.000000"`}},
	{"ts0", "TIMESTAMP NULL DEFAULT NULL",
		[5]string{"'1970-01-01 05:30:01'", "'2038-01-19 08:44:07'", "'0000-00-00 00:00:00'", "'2024-06-01 12:00:00.9'", "'2024-01-01 05:00:00'"},
		[5]string{`"1970-01-01 00:00:01"`, `"2038-01-19 03:14:07"`, `"0000-00-00 00:00:00"`, `"2024-06-01 06:30:00"`, `"2023-12-31 23:30:00"`}},
	{"tm0", "TIME", [5]string{"'-838:59:59'", "'838:59:59'", "'00:00:00'", "'100:00:01'", "'-01:02:03'"},
		[5]string{`"-838:59:59"`, `"838:59:59"`, `"00:00:00"`, `"100:00:01"`, `"-01:02:03"`}},
	{"tm2", "TIME(2)", [5]string{"'-838:59:59.99'", "'838:59:59.99'", "'00:00:00'", "'-00:00:01.01'", "'-00:00:00.99'"},
		[5]string{`"-838:59:59.99"`, `"838:59:59.99"`, `"00:00:00.00"`, `"-00:00:01.01"`, `"-00:00:00.99"`}},
	{"tm3", "TIME(3)", [5]string{"'-838:59:59.000'", "'838:59:59'", "'00:00:00'", "'12:34:56.789'", "'-00:00:00.5'"},
		[5]string{`"-838:59:59.000"`, `"838:59:59.000"`, `"00:00:00.000"`, `"12:34:56.789"`, `"-00:00:00.500"`}},
	{"tm6", "TIME(6)", [5]string{"'-838:59:59.999999'", "'838:59:59.999999'", "'00:00:00'", "'-00:00:00.000001'", "'01:00:00.1'"},
		[5]string{`"-838:59:59.999999"`, `"838:59:59.999999"`, `"00:00:00.000000"`, `"-00:00:00.000001"`, `"01:00:00.100000"`}},
	// YEAR: a number; 0000 is 0.
	{"y", "YEAR", [5]string{"1901", "2155", "0", "2024", "1999"}, [5]string{"1901", "2155", "0", "2024", "1999"}},

	// Character data: strings decoded from the column's character set.
	{"c", "CHAR(10)", [5]string{"''", "'ĉĥâŕ😀'", "'ab  '", "'x'", "' lead'"}, [5]string{`""`, `"ĉĥâŕ😀"`, `"ab"`, `"x"`, `" lead"`}},
	{"vc", "VARCHAR(100)", [5]string{"''", "'😀🎉 日本語 café'", "'trail  '", `'tab\there'`, `'quote"back\\slash'`},
		[5]string{`""`, `"😀🎉 日本語 café"`, `"trail  "`, `"tab\there"`, `"quote\"back\\slash"`}},
	{"tx", "TEXT", [5]string{"''", "'line1\\nline2'", "'0'", "'🎉'", "'\\0nul'"}, [5]string{`""`, `"line1\nline2"`, `"0"`, `"🎉"`, `"\u0000nul"`}},
	{"mt", "MEDIUMTEXT", [5]string{"''", "'Ünïcödé'", "' '", "'日本'", "'a'"}, [5]string{`""`, `"Ünïcödé"`, `" "`, `"日本"`, `"a"`}},
	{"lt", "LONGTEXT", [5]string{"''", "REPEAT('ab', 40000)", "'x'", "'🎉🎉'", "'\\r\\n'"}, [5]string{`""`, `"` + strings.Repeat("ab", 40000) + `"`, `"x"`, `"🎉🎉"`, `"\r\n"`}},
	{"l1", "VARCHAR(20) CHARACTER SET latin1", [5]string{"''", "'café'", "'naïve'", "'€uro'", "'x'"}, [5]string{`""`, `"café"`, `"naïve"`, `"€uro"`, `"x"`}},
	{"l1hi", "VARCHAR(200) CHARACTER SET latin1", [5]string{"''", "_latin1 x'" + hex00FF[256:] + "'", "'a'", "'ÿ'", "'b'"}, [5]string{`""`, latin1High, `"a"`, `"ÿ"`, `"b"`}},
	{"cyr", "VARCHAR(20) CHARACTER SET cp1251", [5]string{"''", "'Привет'", "'ё'", "'Ж'", "'x'"}, [5]string{`""`, `"Привет"`, `"ё"`, `"Ж"`, `"x"`}},
	{"koi", "VARCHAR(20) CHARACTER SET koi8r", [5]string{"''", "'Привет'", "'ё'", "'Ж'", "'x'"}, [5]string{`""`, `"Привет"`, `"ё"`, `"Ж"`, `"x"`}},

	// Binary data: base64 of the stored bytes (BINARY(n) padded with zeros).
	{"bn", "BINARY(4)", [5]string{"x''", "x'FFFFFFFF'", "x'00000000'", "x'61620000'", "x'0061'"},
		[5]string{`"AAAAAA=="`, `"/////w=="`, `"AAAAAA=="`, `"YWIAAA=="`, `"AGEAAA=="`}},
	{"vb", "VARBINARY(300)", [5]string{"x''", "x'" + hex00FF + "'", "x'0000'", "x'00ff'", "'abc'"},
		[5]string{`""`, b64Of00FF, `"AAA="`, `"AP8="`, `"YWJj"`}},
	{"bl", "BLOB", [5]string{"x''", "x'" + hex00FF + "'", "x'00'", "'abc'", "x'0000'"}, [5]string{`""`, b64Of00FF, `"AA=="`, `"YWJj"`, `"AAA="`}},

	// ENUM and SET: labels; the empty error value of a non-strict insert is "".
	{"e", "ENUM('a','b','ç')", [5]string{"'nope'", "'ç'", "'a'", "'b'", "''"}, [5]string{`""`, `"ç"`, `"a"`, `"b"`, `""`}},
	{"e1", "ENUM('x','é') CHARACTER SET latin1", [5]string{"'x'", "'é'", "'x'", "'é'", "'bogus'"}, [5]string{`"x"`, `"é"`, `"x"`, `"é"`, `""`}},
	{"st", "SET('x','y','z')", [5]string{"''", "'x,y,z'", "'y'", "'z,x'", "'é'"}, [5]string{`""`, `"x,y,z"`, `"y"`, `"x,z"`, `""`}},
	{"st1", "SET('à','b') CHARACTER SET latin1", [5]string{"''", "'à,b'", "'b'", "'à'", "''"}, [5]string{`""`, `"à,b"`, `"b"`, `"à"`, `""`}},

	// JSON (MariaDB: text, as written).
	{"j", "JSON", [5]string{"'{}'", `'{"a": [1, 2.50, "é😀"], "b": null}'`, "'[]'", `'"text"'`, "'null'"},
		[5]string{`"{}"`, `"{\"a\": [1, 2.50, \"é😀\"], \"b\": null}"`, `"[]"`, `"\"text\""`, `"null"`}},

	// GEOMETRY: base64 of the stored form, a 4-byte SRID and WKB.
	{"g", "GEOMETRY", [5]string{"ST_GeomFromText('POINT(1 2)')", "ST_GeomFromText('POINT(1 2)', 4326)", "ST_GeomFromText('POINT(1 2)')", "ST_GeomFromText('POINT(1 2)')", "ST_GeomFromText('POINT(1 2)')"},
		[5]string{`"AAAAAAEBAAAAAAAAAAAA8D8AAAAAAAAAQA=="`, `"5hAAAAEBAAAAAAAAAAAA8D8AAAAAAAAAQA=="`, `"AAAAAAEBAAAAAAAAAAAA8D8AAAAAAAAAQA=="`, `"AAAAAAEBAAAAAAAAAAAA8D8AAAAAAAAAQA=="`, `"AAAAAAEBAAAAAAAAAAAA8D8AAAAAAAAAQA=="`}},

	// INET6 and UUID (MariaDB 10.7+): text as MariaDB prints it.
	{"ip", "INET6", [5]string{"'::'", "'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff'", "'::1'", "'::ffff:192.0.2.1'", "'2001:db8:0:0:1:0:0:1'"},
		[5]string{`"::"`, `"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"`, `"::1"`, `"::ffff:192.0.2.1"`, `"2001:db8::1:0:0:1"`}},
	{"ip2", "INET6", [5]string{"'::1.2.3.4'", "'1::'", "'FE80::1:2'", "'2001:db8:0:1:1:1:1:1'", "'1:0:0:2:0:0:0:3'"},
		[5]string{`"::1.2.3.4"`, `"1::"`, `"fe80::1:2"`, `"2001:db8::1:1:1:1:1"`, `"1:0:0:2::3"`}},
	{"u", "UUID", [5]string{"'00000000-0000-0000-0000-000000000000'", "'ffffffff-ffff-ffff-ffff-ffffffffffff'", "'6ccd780c-baba-1026-9564-5b8c656024db'", "'123e4567-e89b-42d3-a456-426614174000'", "'01890a5d-ac96-774b-bcce-b302099a8057'"},
		[5]string{`"00000000-0000-0000-0000-000000000000"`, `"ffffffff-ffff-ffff-ffff-ffffffffffff"`, `"6ccd780c-baba-1026-9564-5b8c656024db"`, `"123e4567-e89b-42d3-a456-426614174000"`, `"01890a5d-ac96-774b-bcce-b302099a8057"`}},

	// Generated and invisible columns: delivered like any other column.
	{"gv", "INT AS (i DIV 2) VIRTUAL", [5]string{}, [5]string{"-1073741824", "1073741823", "0", "61728", "-3"}},
	{"gs", "VARCHAR(120) AS (CONCAT('<', vc, '>')) STORED", [5]string{}, [5]string{`"<>"`, `"<😀🎉 日本語 café>"`, `"<trail  >"`, `"<tab\there>"`, `"<quote\"back\\slash>"`}},
	{"inv", "INT INVISIBLE", [5]string{"1", "2", "3", "4", "5"}, [5]string{"1", "2", "3", "4", "5"}},
}

// dtColumn is DATETIME(n): MariaDB truncates extra fraction digits.
func dtColumn(n int) zooColumn {
	frac := func(digits string) string {
		if n == 0 {
			return ""
		}
		return "." + digits[:n]
	}
	c := zooColumn{name: fmt.Sprintf("dt%d", n), def: fmt.Sprintf("DATETIME(%d)", n)}
	c.sql = [5]string{"'0000-00-00 00:00:00'", "'9999-12-31 23:59:59.999999'", "'1000-01-01 00:00:00'", "'2038-01-19 03:14:07.999999'", "'2024-02-29 12:00:00.5'"}
	c.want = [5]string{
		`"0000-00-00 00:00:00` + frac("000000") + `"`,
		`"9999-12-31 23:59:59` + frac("999999") + `"`,
		`"1000-01-01 00:00:00` + frac("000000") + `"`,
		`"2038-01-19 03:14:07` + frac("999999") + `"`,
		`"2024-02-29 12:00:00` + frac("500000") + `"`,
	}
	return c
}

// Row ids: case k (0-based) is written as id base+k+1, where base is
// 0 loaded by the full load,
// 100 inserted during CDC,
// 200 loaded with the values of case k+1, then updated to case k during CDC,
// 300 loaded, then deleted during CDC.
const (
	baseLoad   = 0
	baseInsert = 100
	baseUpdate = 200
	baseDelete = 300
)

func zooDDL() string {
	var b strings.Builder
	b.WriteString("CREATE TABLE zoo.types (id INT NOT NULL PRIMARY KEY")
	for _, c := range zooColumns {
		fmt.Fprintf(&b, ", `%s` %s", c.name, c.def)
	}
	b.WriteString(") CHARACTER SET utf8mb4")
	return b.String()
}

func zooInsert(id, k int) string {
	names, vals := []string{"id"}, []string{fmt.Sprint(id)}
	for _, c := range zooColumns {
		if c.generated() {
			continue
		}
		names = append(names, "`"+c.name+"`")
		vals = append(vals, c.sqlValue(k))
	}
	return fmt.Sprintf("INSERT INTO zoo.types (%s) VALUES (%s)", strings.Join(names, ", "), strings.Join(vals, ", "))
}

// zooCopy sets every written column of the rows base+1.. to the values of
// rows 1.. (the same values, copied by the server).
func zooCopy(base int) string {
	var sets []string
	for _, c := range zooColumns {
		if !c.generated() {
			sets = append(sets, fmt.Sprintf("d.`%s` = s.`%s`", c.name, c.name))
		}
	}
	return fmt.Sprintf("UPDATE zoo.types d JOIN zoo.types s ON s.id = d.id - %d SET %s WHERE d.id > %d AND d.id <= %d",
		base, strings.Join(sets, ", "), base, base+nCases)
}

// zooSession is how every row is written: non-strict (zero dates, the enum
// error value) and in a time zone that is not UTC.
var zooSession = []string{"SET SESSION sql_mode = ''", "SET SESSION time_zone = '+05:30'"}

// rawRecord is one record of the lake: its JSON line, and its top-level
// fields, data and metadata with each value's exact JSON.
type rawRecord struct {
	line     string
	fields   map[string]json.RawMessage
	data     map[string]json.RawMessage
	metadata map[string]json.RawMessage
}

func (r rawRecord) meta(key string) string {
	var s string
	json.Unmarshal(r.metadata[key], &s)
	return s
}

func (r rawRecord) id(t *testing.T) int {
	var id int
	if err := json.Unmarshal(r.data["id"], &id); err != nil {
		t.Fatalf("record without a numeric id: %s", r.line)
	}
	return id
}

// readLakeLines returns the records of the lake in dir, data and control,
// in stream-position order.
func readLakeLines(t *testing.T, dir, prefix string) []rawRecord {
	t.Helper()
	b, err := objstore.NewFile(dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var recs []rawRecord
	err = b.List(ctx, prefix, func(key string, size int64) error {
		if strings.Contains(key, "/_binlake/") || !strings.HasSuffix(key, ".json.gz") && !strings.HasSuffix(key, ".json") {
			return nil // not a batch of records
		}
		body, err := b.Get(ctx, key)
		if err != nil {
			return err
		}
		var r io.Reader = bytes.NewReader(body)
		if strings.HasSuffix(key, ".gz") {
			zr, err := gzip.NewReader(r)
			if err != nil {
				return fmt.Errorf("%s: %w", key, err)
			}
			r = zr
		}
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 64<<10), 64<<20)
		for sc.Scan() {
			rec := rawRecord{line: sc.Text()}
			if err := json.Unmarshal(sc.Bytes(), &rec.fields); err != nil {
				return fmt.Errorf("%s: %w: %s", key, err, sc.Bytes())
			}
			json.Unmarshal(rec.fields["data"], &rec.data)
			json.Unmarshal(rec.fields["metadata"], &rec.metadata)
			recs = append(recs, rec)
		}
		return sc.Err()
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.SliceStable(recs, func(i, j int) bool { return recs[i].meta("stream-position") < recs[j].meta("stream-position") })
	return recs
}

// zooTask runs a full-load-and-cdc task on the zoo: it writes the rows the
// full load reads, starts the task, writes the CDC rows once the load is
// complete, drains and returns the lake's data records.
func zooTask(t *testing.T, extraConfig string, serverArgs ...string) ([]rawRecord, *testbed.MariaDB) {
	t.Helper()
	m := testbed.NewMariaDBWith(t, serverArgs...)
	ctx := t.Context()
	stmts := append([]string{"CREATE DATABASE zoo", zooDDL()}, zooSession...)
	for k := range nCases {
		stmts = append(stmts,
			zooInsert(baseLoad+k+1, k),
			zooInsert(baseUpdate+k+1, (k+1)%nCases),
			zooInsert(baseDelete+k+1, k))
	}
	if err := m.Exec(ctx, stmts...); err != nil {
		t.Fatal(err)
	}

	lakeDir := t.TempDir()
	yml := fmt.Sprintf(`task: zoo
source:
  mysql: {host: 127.0.0.1, port: %d, user: root, password: ""}
migration: full-load-and-cdc
tables:
  - include: "zoo.%%"
delivery:
  buffer: {size: 256KiB, interval: 1s}
  prefix: "zoo/"
target: file://%s
state_dir: %s
%s`, m.Port, lakeDir, filepath.Join(t.TempDir(), "state"), extraConfig)
	cfg, err := config.Parse([]byte(yml))
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	tk := task.New(cfg, slog.New(slog.NewTextHandler(testLog{t}, nil)))
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- tk.Run(runCtx) }()
	waitUntil(t, 60*time.Second, func() bool {
		return tk.Status().Detail == "Load complete, replication ongoing" || tk.Status().Status == task.StatusFailed
	})
	if st := tk.Status(); st.Status == task.StatusFailed {
		t.Fatalf("task failed: %s", st.Reason)
	}

	stmts = append([]string(nil), zooSession...)
	for k := range nCases {
		stmts = append(stmts, zooInsert(baseInsert+k+1, k))
	}
	stmts = append(stmts, zooCopy(baseUpdate), fmt.Sprintf("DELETE FROM zoo.types WHERE id > %d", baseDelete))
	if err := m.Exec(ctx, stmts...); err != nil {
		t.Fatal(err)
	}
	want := m.BinlogEnd(t)
	waitUntil(t, 60*time.Second, func() bool { return tk.Status().SourcePosition == want || tk.Status().Status == task.StatusFailed })
	stop()
	if err := <-done; err != nil {
		t.Fatalf("task: %v", err)
	}
	return readLakeLines(t, lakeDir, "zoo/"), m
}

// TestTypeZoo checks the JSON of every MariaDB type at its edge values, in
// the records of the full load and of the binlog alike.
func TestTypeZoo(t *testing.T) {
	recs, _ := zooTask(t, "")
	checkZoo(t, recs)
}

// TestTypeZooCompressedBinlog runs the zoo on a MariaDB that compresses
// its binlog events (log_bin_compress): its rows and query events are the
// *_COMPRESSED_EVENT kinds, and the records must be the very same.
func TestTypeZooCompressedBinlog(t *testing.T) {
	recs, m := zooTask(t, "", "--log-bin-compress", "--log-bin-compress-min-len=10")
	db, err := m.Open("")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.QueryContext(t.Context(), "SHOW BINLOG EVENTS")
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]int{}
	for rows.Next() {
		var logName, eventType, info string
		var pos, serverID, end any
		if err := rows.Scan(&logName, &pos, &eventType, &serverID, &end, &info); err != nil {
			t.Fatal(err)
		}
		kinds[eventType]++
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"Write_rows_compressed_v1", "Update_rows_compressed_v1", "Delete_rows_compressed_v1", "Query_compressed"} {
		if kinds[k] == 0 {
			t.Errorf("the binlog holds no %s event (event kinds: %v): the test proves nothing", k, kinds)
		}
	}
	checkZoo(t, recs)
}

// checkZoo checks the zoo's data records in the lake: each expected one
// once, with the exact JSON of every column.
func checkZoo(t *testing.T, recs []rawRecord) {
	t.Helper()

	type key struct {
		op string
		id int
	}
	expected := map[key]int{} // record → case it must hold
	for k := range nCases {
		expected[key{"load", baseLoad + k + 1}] = k
		expected[key{"load", baseUpdate + k + 1}] = (k + 1) % nCases
		expected[key{"load", baseDelete + k + 1}] = k
		expected[key{"insert", baseInsert + k + 1}] = k
		expected[key{"update", baseUpdate + k + 1}] = k
		expected[key{"delete", baseDelete + k + 1}] = k
	}
	seen := map[key]bool{}
	for _, r := range recs {
		if r.meta("record-type") != "data" || r.meta("schema-name") != "zoo" || r.meta("table-name") != "types" {
			continue
		}
		kk := key{r.meta("operation"), r.id(t)}
		k, ok := expected[kk]
		if !ok {
			t.Errorf("unexpected %s record of id %d", kk.op, kk.id)
			continue
		}
		if seen[kk] {
			t.Errorf("%s record of id %d delivered twice", kk.op, kk.id)
		}
		seen[kk] = true
		checkZooRow(t, fmt.Sprintf("%s id %d (%s)", kk.op, kk.id, caseNames[k]), r.data, k)
	}
	for kk := range expected {
		if !seen[kk] {
			t.Errorf("no %s record of id %d in the lake", kk.op, kk.id)
		}
	}
}

// checkZooRow asserts the exact JSON of every column of a row holding case k.
func checkZooRow(t *testing.T, what string, data map[string]json.RawMessage, k int) {
	t.Helper()
	if len(data) != len(zooColumns)+1 {
		var names []string
		for n := range data {
			names = append(names, n)
		}
		sort.Strings(names)
		t.Errorf("%s: %d columns, want %d: %s", what, len(data), len(zooColumns)+1, strings.Join(names, ","))
	}
	for _, c := range zooColumns {
		got, ok := data[c.name]
		want := c.wantJSON(k)
		switch {
		case !ok:
			t.Errorf("%s: column %s missing", what, c.name)
		case string(got) != want:
			t.Errorf("%s: %s %s = %s, want %s", what, c.name, c.def, abbrev(string(got)), abbrev(want))
		}
	}
}

func abbrev(s string) string {
	if r := []rune(s); len(r) > 120 {
		return string(r[:100]) + fmt.Sprintf("…(%d bytes)", len(s))
	}
	return s
}

func waitUntil(t *testing.T, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %s", d)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

type testLog struct{ t *testing.T }

func (w testLog) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// TestTypeZooWithoutRowMetadata runs the zoo on a MariaDB on its default
// binlog_row_metadata=NO_LOG: the table maps carry no names, signedness,
// character sets or enum labels, so the binlog's records are decoded with
// the schema history, and must be the very same.
func TestTypeZooWithoutRowMetadata(t *testing.T) {
	recs, _ := zooTask(t, "", "--binlog-row-metadata=NO_LOG")
	checkZoo(t, recs)
}
