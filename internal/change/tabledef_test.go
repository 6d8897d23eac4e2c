package change_test

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/binlake/binlake/internal/change"
)

// TestParseTableDef reads back the definition a control record carries.
func TestParseTableDef(t *testing.T) {
	def := &change.TableDef{
		Columns: []change.ColumnDef{
			{Name: "id", Type: "bigint(20) unsigned", DataType: "bigint"},
			{Name: "d", Type: "decimal(10,3)", DataType: "decimal", Nullable: true},
			{Name: "ünï \"q\"", Type: "varchar(5)", DataType: "varchar", Nullable: true},
		},
		PrimaryKey: []string{"id"},
	}
	r := &change.Record{Op: change.OpCreateTable, Schema: "s", Table: "t", Statement: "CREATE TABLE t", TableDef: def}
	var w struct {
		Control struct {
			TableDef json.RawMessage `json:"table-def"`
		} `json:"control"`
	}
	if err := json.Unmarshal(r.AppendJSON(nil), &w); err != nil {
		t.Fatal(err)
	}
	got, err := change.ParseTableDef(w.Control.TableDef)
	if err != nil || !reflect.DeepEqual(got, def) {
		t.Errorf("ParseTableDef = %+v, %v; want %+v", got, err, def)
	}
	for _, tc := range []struct{ in, want string }{
		{`{"columns":{},"column-order":[]}`, "0 columns in column-order, 0 described"},
		{`{"columns":{"a":{}},"column-order":["a","a"]}`, "2 columns in column-order, 1 described"},
		{`{"columns":{"a":{},"b":{}},"column-order":["a","a"]}`, `column "a" is listed twice or not described`},
		{`{"columns":{"a":{},"b":{}},"column-order":["a","c"]}`, `column "c" is listed twice or not described`},
		{`[]`, "table definition: json: cannot unmarshal"},
	} {
		if _, err := change.ParseTableDef([]byte(tc.in)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("change.ParseTableDef(%s): error %v, want %q", tc.in, err, tc.want)
		}
	}
}
