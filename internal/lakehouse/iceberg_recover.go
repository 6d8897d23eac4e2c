package lakehouse

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"path"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/apache/iceberg-go/catalog/hadoop"
	icebergio "github.com/apache/iceberg-go/io"
)

// iceberg-go's file catalog commits version N of a table's metadata in
// steps: it writes the metadata to a temporary file, claims the version by
// hard-linking that file to vN.metadata.json.claim (refused when the claim
// exists), publishes it by hard-linking the claim to vN.metadata.json
// (refused when the version exists), removes the claim, and then rewrites
// version-hint.text. A process killed between the claim and its removal
// leaves the claim behind; the catalog honours a claim for a minute, so
// every commit of the table fails meanwhile (and a task stopped within that
// minute leaves the table behind the change log until its next start). A
// process killed before the hint is rewritten leaves the hint naming the
// previous version: iceberg-go and Spark find the newest version by its
// file, but readers that follow the hint (DuckDB's iceberg_scan) see the
// previous commit until the table's next one.

var metadataVersion = regexp.MustCompile(`^v([0-9]+)(?:\.gz)?\.metadata\.json$`)

// recoverKilledCommit removes the version claims in a table's metadata
// directory and brings its version hint to the newest version, before a
// run loads the table. binlake is the only writer of its tables and its
// runs never overlap, and a commit of its own removes its claim before it
// returns, so a claim found then was left by a killed commit. Removing a
// claim never lets two commits publish one version: publication itself is
// a link that fails when the version exists.
func (ic *icebergSink) recoverKilledCommit(ctx context.Context, schema, tbl string, log *slog.Logger) error {
	fsys, err := icebergio.LoadFS(ctx, ic.loc.Props, ic.loc.Warehouse)
	if err != nil {
		return fmt.Errorf("the Iceberg warehouse %s: %w", ic.loc.Warehouse, err)
	}
	cfs, ok := fsys.(hadoop.HadoopCatalogFS)
	if !ok {
		return fmt.Errorf("the Iceberg warehouse %s: %T lists, renames or writes no files", ic.loc.Warehouse, fsys)
	}
	dir := ic.loc.Warehouse + "/" + schema + "/" + tbl + "/metadata"
	var files []string
	err = cfs.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return fs.SkipAll
		case err != nil:
			return err
		case d.IsDir() && strings.TrimSuffix(p, "/") != dir:
			return fs.SkipDir
		case !d.IsDir():
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("reading the Iceberg metadata of %s.%s: %w", schema, tbl, err)
	}
	newest := 0
	for _, p := range files {
		name := path.Base(p)
		if m := metadataVersion.FindStringSubmatch(name); m != nil {
			v, _ := strconv.Atoi(m[1])
			newest = max(newest, v)
		}
		if !strings.HasSuffix(name, ".metadata.json.claim") {
			continue
		}
		if err := cfs.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("removing %s, a version claim a killed commit of %s.%s left: %w", name, schema, tbl, err)
		}
		log.Info("removed a version claim a killed Iceberg commit left", "table", schema+"."+tbl, "claim", name)
	}
	if newest == 0 {
		return nil
	}
	hint := dir + "/version-hint.text"
	if b, err := cfs.ReadFile(hint); err == nil && strings.TrimSpace(string(b)) == strconv.Itoa(newest) {
		return nil
	}
	// Written as the catalog writes it: a temporary file renamed over it.
	tmp := dir + "/binlake-" + strconv.FormatInt(time.Now().UnixNano(), 36) + "-version-hint.temp"
	err = cfs.WriteFile(tmp, []byte(strconv.Itoa(newest)))
	if err == nil {
		err = cfs.Rename(tmp, hint)
	}
	if err != nil {
		cfs.Remove(tmp)
		return fmt.Errorf("writing the Iceberg version hint of %s.%s: %w", schema, tbl, err)
	}
	log.Info("brought an Iceberg version hint a killed commit left behind to the newest version", "table", schema+"."+tbl, "version", newest)
	return nil
}
