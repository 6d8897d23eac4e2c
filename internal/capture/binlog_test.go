package capture_test

import (
	"testing"

	"github.com/binlake/binlake/internal/testbed"
)

// TestSavepointInsideTransaction checks that a SAVEPOINT and a ROLLBACK TO
// SAVEPOINT, which the binlog holds as statements inside the transaction,
// do not end it: its records share one transaction-id, numbered on.
func TestSavepointInsideTransaction(t *testing.T) {
	m := testbed.NewMariaDB(t)
	if err := m.Exec(t.Context(), "CREATE DATABASE shop", "CREATE TABLE shop.t (id INT PRIMARY KEY)"); err != nil {
		t.Fatal(err)
	}
	lt := newLakeTask(t, m, "")
	lt.start(t)
	if err := m.Exec(t.Context(), "BEGIN", "INSERT INTO shop.t VALUES (1)", "SAVEPOINT a", "INSERT INTO shop.t VALUES (2)",
		"ROLLBACK TO SAVEPOINT a", "INSERT INTO shop.t VALUES (3)", "RELEASE SAVEPOINT a", "INSERT INTO shop.t VALUES (4)", "COMMIT"); err != nil {
		t.Fatal(err)
	}
	lt.drain(t)
	var got []rawRecord
	for _, r := range lt.records(t, "t") {
		if r.meta("operation") == "insert" {
			got = append(got, r)
		}
	}
	if len(got) != 3 {
		t.Fatalf("%d inserts, want 3:\n%s", len(got), joinLines(got))
	}
	for i, r := range got {
		if string(r.metadata["transaction-id"]) != string(got[0].metadata["transaction-id"]) || string(r.metadata["transaction-id"]) == "0" {
			t.Errorf("insert %d has transaction-id %s, the first %s", i, r.metadata["transaction-id"], got[0].metadata["transaction-id"])
		}
		if want := []string{"1", "2", "3"}[i]; string(r.metadata["transaction-record-id"]) != want {
			t.Errorf("insert %d has transaction-record-id %s, want %s", i, r.metadata["transaction-record-id"], want)
		}
	}
}
