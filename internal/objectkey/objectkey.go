// Package objectkey names the change log's objects by what they hold,
//
//	<dir><task>-<schema>.<table>-p<partition>-<first position>-<last position><ext>
//
// and reads those names back. Delivery writes by these names; its recovery,
// the lake's readers, the snapshot tables and compaction all go by them:
// a name says which records an object holds without reading it. Within a
// table partition, names sort in stream order.
package objectkey

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/binlake/binlake/internal/change"
)

// Name is what the name of a change-log object says.
type Name struct {
	Key string
	// Head is the base name before the partition: "<task>-<schema>.<table>".
	Head        string
	Partition   int
	First, Last string // the stream-positions of its first and last record
	Ext         string // ".json.gz", ".parquet", ".csv", ...
}

// Format is the key of the object of table ("schema.table") and partition
// holding the records first to last, under dir (a rendered key template,
// "" or ending in '/').
func Format(dir, task, table string, partition int, first, last, ext string) string {
	return fmt.Sprintf("%s%s-%s-p%04d-%s-%s%s", dir, task, table, partition, change.CompactPosition(first), change.CompactPosition(last), ext)
}

var digits = strconv.Itoa(change.PositionLen - 5)

var pattern = regexp.MustCompile(`-p(\d{4})-(\d{` + digits + `})-(\d{` + digits + `})(\.[a-z.]+)$`)

// Parse reads a key back; false when it is not the name of a change-log
// object.
func Parse(key string) (Name, bool) {
	base := key[strings.LastIndexByte(key, '/')+1:]
	loc := pattern.FindStringSubmatchIndex(base)
	if loc == nil || loc[0] == 0 {
		return Name{}, false
	}
	n := Name{Key: key, Head: base[:loc[0]], Ext: base[loc[8]:loc[9]]}
	n.Partition, _ = strconv.Atoi(base[loc[2]:loc[3]])
	var err error
	if n.First, err = change.ExpandPosition(base[loc[4]:loc[5]]); err != nil {
		return Name{}, false
	}
	if n.Last, err = change.ExpandPosition(base[loc[6]:loc[7]]); err != nil || n.Last < n.First {
		return Name{}, false
	}
	return n, true
}

// Dir is the key up to the base name.
func (n Name) Dir() string { return n.Key[:strings.LastIndexByte(n.Key, '/')+1] }

// Table is the "schema.table" of an object written for task; false for
// another task's.
func (n Name) Table(task string) (string, bool) {
	t, ok := strings.CutPrefix(n.Head, task+"-")
	return t, ok && t != ""
}

// Covers reports whether n holds every record other holds and more: same
// table partition, a wider range that contains other's. A compacted
// object covers each of the objects it was made of. (Two objects with the
// same range are not one compacted from the other: a table's object and
// its error output object are named alike.)
func (n Name) Covers(other Name) bool {
	return n.Head == other.Head && n.Partition == other.Partition && n.First <= other.First && other.Last <= n.Last &&
		(n.First != other.First || n.Last != other.Last)
}

// Covered returns the keys of the objects another object of names covers:
// the objects compaction has merged into one and not deleted yet. Readers
// skip them, so a record is read once whether or not the merged-away
// objects are still there.
func Covered(names []Name) map[string]bool {
	sorted := slices.Clone(names)
	slices.SortFunc(sorted, func(a, b Name) int {
		if c := strings.Compare(a.Head, b.Head); c != 0 {
			return c
		}
		if a.Partition != b.Partition {
			return a.Partition - b.Partition
		}
		if c := strings.Compare(a.First, b.First); c != 0 {
			return c
		}
		if c := strings.Compare(b.Last, a.Last); c != 0 {
			return c // the widest first
		}
		return strings.Compare(a.Key, b.Key)
	})
	out := map[string]bool{}
	var keep *Name
	for i := range sorted {
		n := &sorted[i]
		if keep != nil && keep.Covers(*n) {
			out[n.Key] = true
			continue
		}
		if keep == nil || keep.Head != n.Head || keep.Partition != n.Partition || n.Last > keep.Last || n.First > keep.Last {
			keep = n
		}
	}
	return out
}
