// Package console_test drives the web console in a real browser (Debian's
// chromium through playwright-core) against a running pipeline and checks
// that the table statistics it shows are the API's.
package console_test

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/binlake/binlake/internal/cli"
	"github.com/binlake/binlake/internal/config"
	"github.com/binlake/binlake/internal/task"
	"github.com/binlake/binlake/internal/testbed"
)

var screenshot = flag.String("screenshot", "", "also save the console's screenshot here (make screenshot: docs/console.png)")

// browserScript opens the console, waits until the table statistics show,
// lets a few polls feed the charts, then prints what the page shows as JSON
// and saves a screenshot.
const browserScript = `
const { chromium } = require(process.env.PW_MODULE);
const fs = require("fs");
(async () => {
  const ctx = await chromium.launchPersistentContext(process.env.USER_DATA_DIR, {
    executablePath: process.env.CHROMIUM, headless: true, args: JSON.parse(process.env.CHROMIUM_ARGS),
    viewport: { width: 1640, height: 860 }, deviceScaleFactor: 1,
  });
  try {
    const page = ctx.pages()[0] || await ctx.newPage();
    const consoleErrors = [];
    page.on("pageerror", (e) => consoleErrors.push(String(e)));
    await page.goto(process.env.URL);
    await page.waitForFunction((n) => document.querySelectorAll("#tables tbody tr").length >= n && document.getElementById("updated").textContent !== "",
      Number(process.env.TABLES), { timeout: 20000 });
    // The test makes its changes while the page watches (so the charts show
    // them), then creates GO_FILE once the API counts all of them; a poll
    // later the page shows them too.
    while (!fs.existsSync(process.env.GO_FILE)) await page.waitForTimeout(100);
    await page.waitForTimeout(Number(process.env.SETTLE_MS));
    const shown = await page.evaluate(() => ({
      status: document.getElementById("status").textContent,
      detail: document.getElementById("detail").textContent,
      error: document.getElementById("error").textContent,
      hash: location.hash,
      rows: [...document.querySelectorAll("#tables tbody tr")].map((tr) => [...tr.children].map((td) => td.textContent)),
    }));
    shown.pageErrors = consoleErrors;
    await page.screenshot({ path: process.env.PNG, fullPage: true });
    process.stdout.write(JSON.stringify(shown));
  } finally {
    await ctx.close();
  }
})().catch((e) => { process.stderr.write(String(e && e.stack || e)); process.exit(1); });
`

func TestConsoleInBrowser(t *testing.T) {
	b := testbed.NewBrowser(t)
	m := testbed.NewMariaDB(t)
	db, err := m.Open("")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := testbed.CreateWordPress(t.Context(), db, testbed.WordPressDB); err != nil {
		t.Fatal(err)
	}
	if err := testbed.SeedWordPress(t.Context(), db, testbed.WordPressDB, 300, 7); err != nil {
		t.Fatal(err)
	}
	port, err := testbed.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	const token = "console-test-token"
	cfg, err := config.Parse(fmt.Appendf(nil, `task: wordpress
source:
  mysql: {host: 127.0.0.1, port: %d, user: root, password: ""}
tables:
  - include: "wordpress-db.%%"
  - exclude: "wordpress-db.wp_sessions"
delivery: {buffer: {size: 256KiB, interval: 1s}, prefix: "wordpress-db/"}
target: file://%s
state_dir: %s
http: {listen: "127.0.0.1:%d", token: %s}
`, m.Port, t.TempDir(), filepath.Join(t.TempDir(), "state"), port, token))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- cli.RunTask(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil))) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("task: %v", err)
		}
	})
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	status := func() (task.Status, bool) {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, base+"/api/v1/status", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return task.Status{}, false
		}
		defer resp.Body.Close()
		var st task.Status
		return st, resp.StatusCode == http.StatusOK && json.NewDecoder(resp.Body).Decode(&st) == nil
	}
	waitFor := func(what string, cond func(task.Status) bool) task.Status {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			st, ok := status()
			if ok && cond(st) {
				return st
			}
			if ok && st.Status == task.StatusFailed {
				t.Fatalf("task failed: %s", st.Reason)
			}
			if time.Now().After(deadline) {
				t.Fatalf("waiting for %s; status: %+v", what, st)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	table := func(st task.Status, name string) task.TableStatus {
		for _, ts := range st.Tables {
			if ts.Schema+"."+ts.Table == name {
				return ts
			}
		}
		return task.TableStatus{}
	}
	want := waitFor("the full load", func(st task.Status) bool { return st.Detail == "Load complete, replication ongoing" })

	png := filepath.Join(t.TempDir(), "console.png")
	goFile := filepath.Join(t.TempDir(), "go")
	cmd := exec.CommandContext(t.Context(), b.Node, "-")
	args, _ := json.Marshal(testbed.ChromiumArgs)
	cmd.Env = append(os.Environ(),
		"PW_MODULE="+b.Module, "CHROMIUM="+b.Chromium, "CHROMIUM_ARGS="+string(args), "USER_DATA_DIR="+t.TempDir(),
		// The token arrives in the fragment, which never reaches the server.
		"URL="+base+"/#token="+token, "TABLES="+strconv.Itoa(len(want.Tables)), "PNG="+png, "GO_FILE="+goFile, "SETTLE_MS=3000")
	cmd.Stdin = strings.NewReader(browserScript)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second) // the browser starts and polls once or twice

	// Changes after the load, spread over a few seconds so the charts show
	// them, and so inserts, updates and deletes are not zero.
	for i := range 10 {
		if err := m.Exec(t.Context(), fmt.Sprintf("INSERT INTO `wordpress-db`.wp_postmeta (post_id, meta_key, meta_value) "+
			"SELECT ID, 'console_%d', 'x' FROM `wordpress-db`.wp_posts WHERE ID <= 40", i)); err != nil {
			t.Fatal(err)
		}
		time.Sleep(300 * time.Millisecond)
	}
	if err := m.Exec(t.Context(),
		"INSERT INTO `wordpress-db`.wp_options (option_name, option_value) VALUES ('console_a', 'x'), ('console_b', 'y'), ('console_c', 'z')",
		"UPDATE `wordpress-db`.wp_posts SET post_title = CONCAT(post_title, ' (edited)') WHERE ID <= 5",
		"DELETE FROM `wordpress-db`.wp_comments ORDER BY comment_ID LIMIT 2",
	); err != nil {
		t.Fatal(err)
	}
	waitFor("the changes", func(st task.Status) bool {
		return table(st, "wordpress-db.wp_options").Inserts == 3 && table(st, "wordpress-db.wp_posts").Updates == 5 &&
			table(st, "wordpress-db.wp_comments").Deletes == 2 && table(st, "wordpress-db.wp_postmeta").Inserts == 400
	})
	if err := os.WriteFile(goFile, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("browser: %v\n%s", err, stderr.String())
	}
	out := stdout.String()
	t.Logf("browser: %s", time.Since(start).Round(time.Millisecond))
	var shown struct {
		Status, Detail, Error, Hash string
		Rows                        [][]string
		PageErrors                  []string
	}
	if err := json.Unmarshal([]byte(out), &shown); err != nil {
		t.Fatalf("browser output: %v\n%s", err, out)
	}
	if shown.Error != "" || len(shown.PageErrors) > 0 {
		t.Errorf("the console shows the error %q; page errors %q", shown.Error, shown.PageErrors)
	}
	if shown.Hash != "" {
		t.Errorf("the token stays in the address bar: %q", shown.Hash)
	}
	api, ok := status()
	if !ok {
		t.Fatal("status after the browser: not readable")
	}
	if shown.Status != api.Status || shown.Detail != "("+api.Detail+")" {
		t.Errorf("console shows %s %s, API %s (%s)", shown.Status, shown.Detail, api.Status, api.Detail)
	}
	// Columns: Table, State, Load progress, Full load rows, Inserts, Updates, Deletes, ...
	num := func(s string) uint64 {
		n, err := strconv.ParseUint(strings.ReplaceAll(s, ",", ""), 10, 64)
		if err != nil {
			t.Errorf("not a number in the console: %q", s)
		}
		return n
	}
	seen := map[string]bool{}
	for _, row := range shown.Rows {
		if len(row) < 7 {
			t.Fatalf("row %q", row)
		}
		ts := table(api, row[0])
		if ts.Table == "" {
			t.Errorf("the console shows table %s, which the API does not", row[0])
			continue
		}
		seen[row[0]] = true
		got := [4]uint64{num(row[3]), num(row[4]), num(row[5]), num(row[6])}
		if w := [4]uint64{ts.FullLoadRows, ts.Inserts, ts.Updates, ts.Deletes}; got != w {
			t.Errorf("%s: console shows full load rows, inserts, updates, deletes %v, API %v", row[0], got, w)
		}
		if row[1] != ts.State {
			t.Errorf("%s: console shows state %q, API %q", row[0], row[1], ts.State)
		}
	}
	for _, ts := range api.Tables {
		if !seen[ts.Schema+"."+ts.Table] {
			t.Errorf("the console does not show %s.%s", ts.Schema, ts.Table)
		}
	}
	if ts := table(api, "wordpress-db.wp_posts"); ts.FullLoadRows != 300 {
		t.Errorf("wp_posts full load rows %d, want 300", ts.FullLoadRows)
	}
	if *screenshot != "" {
		data, err := os.ReadFile(png)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(*screenshot, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
