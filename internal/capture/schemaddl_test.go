package capture

import (
	"strings"
	"testing"
)

// TestApplyDDL applies DDL to a schema history and checks each table's
// columns (name type, in order), primary key, or error afterwards.
func TestApplyDDL(t *testing.T) {
	seed := func() *SchemaHistory {
		return &SchemaHistory{ServerCharset: "utf8mb4", Databases: map[string]string{"db": "latin1"}, Tables: map[string][]TableVersion{
			"db.t": {{Schema: &TableSchema{Charset: "utf8mb4", PrimaryKey: []string{"id"}, Columns: []SchemaColumn{
				{Name: "id", DataType: "int", Type: "int(11)"},
				{Name: "a", DataType: "varchar", Type: "varchar(10)", Charset: "utf8mb4", Nullable: true},
				{Name: "b", DataType: "int", Type: "int(11)", Nullable: true},
			}}}},
		}}
	}
	tests := []struct {
		name  string
		ddl   []string
		table string
		want  string // "id int, a varchar(10) utf8mb4 | pk id", or "error: <substring>", or "gone"
	}{
		{"add after", []string{"ALTER TABLE t ADD COLUMN c VARCHAR(5) AFTER id"}, "db.t", "id int(11), c varchar(5) utf8mb4, a varchar(10) utf8mb4, b int(11) | pk id"},
		{"add first and last", []string{"ALTER TABLE t ADD x INT FIRST, ADD COLUMN (y BLOB, z TEXT CHARACTER SET latin1)"}, "db.t",
			"x int(11), id int(11), a varchar(10) utf8mb4, b int(11), y blob binary, z text latin1 | pk id"},
		{"drop", []string{"ALTER TABLE db.t DROP COLUMN a"}, "db.t", "id int(11), b int(11) | pk id"},
		{"drop case-insensitive", []string{"ALTER TABLE t DROP A"}, "db.t", "id int(11), b int(11) | pk id"},
		{"change renames and moves", []string{"ALTER TABLE t CHANGE a title VARCHAR(30) NOT NULL FIRST"}, "db.t", "title varchar(30) utf8mb4, id int(11), b int(11) | pk id"},
		{"modify in place", []string{"ALTER TABLE t MODIFY b BIGINT UNSIGNED"}, "db.t", "id int(11), a varchar(10) utf8mb4, b bigint(20) unsigned | pk id"},
		{"rename column and key", []string{"ALTER TABLE t RENAME COLUMN id TO pk"}, "db.t", "pk int(11), a varchar(10) utf8mb4, b int(11) | pk pk"},
		{"convert charset", []string{"ALTER TABLE t CONVERT TO CHARACTER SET latin1"}, "db.t", "id int(11), a varchar(10) latin1, b int(11) | pk id"},
		{"primary key change", []string{"ALTER TABLE t DROP PRIMARY KEY, ADD PRIMARY KEY (id, b)"}, "db.t", "id int(11), a varchar(10) utf8mb4, b int(11) | pk id,b"},
		{"index and options change nothing", []string{"ALTER TABLE t ADD INDEX i (a), ENGINE=InnoDB, ALGORITHM=INPLACE", "CREATE INDEX j ON t (b)"}, "db.t", "id int(11), a varchar(10) utf8mb4, b int(11) | pk id"},
		{"create takes the database charset", []string{"CREATE TABLE n (id INT PRIMARY KEY, s CHAR(2), e ENUM('x','y'))"}, "db.n", "id int(11), s char(2) latin1, e enum('x','y') latin1 | pk id"},
		{"create like", []string{"CREATE TABLE c LIKE t"}, "db.c", "id int(11), a varchar(10) utf8mb4, b int(11) | pk id"},
		{"rename table", []string{"RENAME TABLE t TO u"}, "db.u", "id int(11), a varchar(10) utf8mb4, b int(11) | pk id"},
		{"renamed away", []string{"RENAME TABLE t TO u"}, "db.t", "gone"},
		{"pt-osc swap", []string{"CREATE TABLE _t_new LIKE t", "ALTER TABLE _t_new ADD c INT", "RENAME TABLE t TO _t_old, _t_new TO t", "DROP TABLE _t_old"}, "db.t",
			"id int(11), a varchar(10) utf8mb4, b int(11), c int(11) | pk id"},
		{"alter rename to", []string{"ALTER TABLE t RENAME TO other.v, ADD c INT"}, "other.v", "id int(11), a varchar(10) utf8mb4, b int(11), c int(11) | pk id"},
		{"drop", []string{"DROP TABLE IF EXISTS t, nothere"}, "db.t", "gone"},
		{"drop database", []string{"DROP DATABASE db"}, "db.t", "gone"},
		{"parser cannot read", []string{"ALTER TABLE t ADD COLUMN c VARCHAR(10) WAIT 5"}, "db.t", "error: SQL parser cannot read"},
		{"spatial types", []string{"ALTER TABLE t ADD COLUMN g GEOMETRY NOT NULL SRID 4326, ADD p POINT REF_SYSTEM_ID = 4326 AFTER id, MODIFY b GeomCollection",
			"CREATE TABLE s (id INT PRIMARY KEY, `l` LINESTRING REF_SYSTEM_ID=0 COMMENT 'SRID 7', srid INT DEFAULT 5, SPATIAL INDEX (l))"}, "db.t",
			"id int(11), p point, a varchar(10) utf8mb4, b geometrycollection, g geometry | pk id"},
		{"spatial create", []string{"CREATE TABLE s (id INT PRIMARY KEY, `l` LINESTRING NOT NULL REF_SYSTEM_ID=0 COMMENT 'SRID 7', srid INT DEFAULT 5, mp MULTIPOLYGON, SPATIAL INDEX (l))",
			"CREATE SPATIAL INDEX k ON s (mp)", "ALTER TABLE s ADD SPATIAL KEY (l)"}, "db.s",
			"id int(11), l linestring, srid int(11), mp multipolygon | pk id"},
		// MariaDB's own DDL.
		{"mariadb types", []string{"ALTER TABLE t ADD COLUMN ip INET6, ADD uuid UUID NOT NULL, ADD `v4` inet4 AFTER id"}, "db.t",
			"id int(11), v4 inet4, a varchar(10) utf8mb4, b int(11), ip inet6, uuid uuid | pk id"},
		{"mariadb change to uuid", []string{"ALTER TABLE t CHANGE a uuid UUID, MODIFY COLUMN IF EXISTS b INET6"}, "db.t", "id int(11), uuid uuid, b inet6 | pk id"},
		{"create or replace", []string{"CREATE OR REPLACE TABLE t (id UUID PRIMARY KEY, note VARCHAR(5) INVISIBLE, uuid INT)"}, "db.t",
			"id uuid, note varchar(5) latin1, uuid int(11) | pk id"},
		{"alter online", []string{"ALTER ONLINE TABLE t ADD c INT INVISIBLE, ROW_FORMAT=COMPRESSED"}, "db.t", "id int(11), a varchar(10) utf8mb4, b int(11), c int(11) | pk id"},
		{"system versioning stays unknown", []string{"ALTER TABLE t ADD SYSTEM VERSIONING"}, "db.t", "error: SQL parser cannot read"},
		{"compressed column stays unknown", []string{"ALTER TABLE t ADD c VARCHAR(10) COMPRESSED"}, "db.t", "error: SQL parser cannot read"},
		{"names and strings are not types", []string{"CREATE TABLE q (`INET6` INT PRIMARY KEY, s VARCHAR(10) DEFAULT 'UUID' COMMENT 'an INET6 one')"}, "db.q",
			"INET6 int(11), s varchar(10) latin1 | pk INET6"},
		{"unknown column", []string{"ALTER TABLE t DROP COLUMN nope"}, "db.t", "error: no such column"},
		{"create select", []string{"CREATE TABLE s SELECT 1 AS x"}, "db.s", "error: SELECT"},
		{"not DDL", []string{"GRANT SELECT ON *.* TO u", "FLUSH PRIVILEGES"}, "db.t", "id int(11), a varchar(10) utf8mb4, b int(11) | pk id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := seed()
			dp := newDDLParser()
			for i, q := range tt.ddl {
				dp.applyDDL(h, q, "db", positionKey(0, 1, uint64(100+i)))
			}
			v, ok := h.latest(tt.table)
			var got string
			switch {
			case !ok || (v.Schema == nil && v.Error == ""):
				got = "gone"
			case v.Schema == nil:
				got = "error: " + v.Error
			default:
				var cols []string
				for _, c := range v.Schema.Columns {
					cols = append(cols, strings.TrimSpace(c.Name+" "+c.Type+" "+c.Charset))
				}
				got = strings.Join(cols, ", ") + " | pk " + strings.Join(v.Schema.PrimaryKey, ",")
			}
			if strings.HasPrefix(tt.want, "error: ") {
				if !strings.HasPrefix(got, "error: ") || !strings.Contains(got, strings.TrimPrefix(tt.want, "error: ")) {
					t.Errorf("got %q, want an error saying %q", got, tt.want)
				}
				return
			}
			if got != tt.want {
				t.Errorf("got  %q\nwant %q", got, tt.want)
			}
		})
	}
}

// TestSchemaHistoryVersions checks lookups by position, a DDL read again
// after a restart, and pruning up to the checkpoint.
func TestSchemaHistoryVersions(t *testing.T) {
	h := &SchemaHistory{Tables: map[string][]TableVersion{"db.t": {{Schema: &TableSchema{Columns: []SchemaColumn{{Name: "id", DataType: "int", Type: "int"}}}}}}}
	dp := newDDLParser()
	p := func(off uint64) string { return positionKey(0, 2, off) }
	dp.applyDDL(h, "ALTER TABLE t ADD a INT", "db", p(100))
	dp.applyDDL(h, "ALTER TABLE t ADD b INT", "db", p(200))
	dp.applyDDL(h, "ALTER TABLE t ADD a INT", "db", p(100)) // read again after a restart
	cols := func(off uint64) int {
		v, ok := h.at(TableName{"db", "t"}, p(off))
		if !ok || v.Schema == nil {
			t.Fatalf("no schema at %d: %+v", off, v)
		}
		return len(v.Schema.Columns)
	}
	for off, want := range map[uint64]int{50: 1, 100: 2, 150: 2, 250: 3} {
		if got := cols(off); got != want {
			t.Errorf("at %d: %d columns, want %d", off, got, want)
		}
	}
	if n := len(h.Tables["db.t"]); n != 3 {
		t.Errorf("%d versions, want 3 (the repeated DDL is not applied twice)", n)
	}
	h.prune(p(150))
	if n := len(h.Tables["db.t"]); n != 2 || cols(150) != 2 || cols(250) != 3 {
		t.Errorf("after pruning to 150: %d versions, want 2 (the one in force there and the later one)", n)
	}
	dp.applyDDL(h, "DROP TABLE t", "db", p(300))
	h.prune(p(400))
	if _, ok := h.Tables["db.t"]; ok {
		t.Errorf("a dropped table is still in the history after the checkpoint passed its drop")
	}
}
