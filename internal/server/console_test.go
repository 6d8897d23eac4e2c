package server_test

import (
	"encoding/json"
	"os/exec"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/binlake/binlake/internal/task"
)

// consoleHarness runs the console's script in node with just enough of a
// DOM for it, its fetch pointed at the test server; after the first poll it
// prints what the page shows as JSON.
const consoleHarness = `
"use strict";
class El {
  constructor(tag, id) {
    this.tagName = tag; this.id = id || ""; this.children = []; this._text = ""; this.className = "";
    this.dataset = {}; this.style = {}; this.hidden = false; this.title = ""; this.value = "";
    this.clientWidth = 300; this.clientHeight = 120; this.listeners = {};
    const self = this;
    this.classList = {
      add(c) { self.className = (self.className + " " + c).trim(); },
      toggle(c, on) { const cs = self.className.split(" ").filter((x) => x && x !== c); if (on) cs.push(c); self.className = cs.join(" "); },
    };
  }
  get textContent() { return this.children.length ? this.children.map((c) => typeof c === "string" ? c : c.textContent).join("") : this._text; }
  set textContent(v) { this._text = String(v); this.children = []; }
  appendChild(c) { this.children.push(c); return c; }
  append(...cs) { this.children.push(...cs.map((c) => typeof c === "string" ? c : c)); }
  replaceChildren(...cs) { this.children = cs; this._text = ""; }
  get firstElementChild() { return this.children.find((c) => typeof c !== "string"); }
  addEventListener(t, f) { this.listeners[t] = f; }
  getContext() { return new Proxy({}, { get: () => () => {}, set: () => true }); }
}
const byId = {};
byId.loadbar = new El("div", "loadbar");
byId.loadbar.appendChild(new El("div")); // the page's bar has its fill inside
const tbody = new El("tbody");
globalThis.Node = El;
globalThis.window = { devicePixelRatio: 1 };
globalThis.document = {
  getElementById(id) { return byId[id] || (byId[id] = new El("div", id)); },
  createElement(tag) { return new El(tag); },
  querySelector(sel) { if (sel === "#tables tbody") return tbody; throw new Error("unexpected selector " + sel); },
};
const realFetch = globalThis.fetch;
globalThis.fetch = (url, opts) => realFetch(process.env.BASE + "/" + url, opts);
const realSetTimeout = globalThis.setTimeout;
globalThis.setTimeout = (fn, ms, ...args) => {
  if (fn.name !== "poll") return realSetTimeout(fn, ms, ...args);
  const text = (id) => document.getElementById(id).textContent;
  const rows = tbody.children.map((tr) => tr.children.map((td) => td.textContent));
  console.log(JSON.stringify({
    status: text("status"), detail: text("detail"), reason: text("reason"), loadpct: text("loadpct"), lag: text("lag"), dlag: text("dlag"),
    pos: text("pos"), buffered: text("buffered"), dups: text("dups"), warningsHidden: document.getElementById("warnings").hidden,
    warnings: document.getElementById("warninglist").children.map((li) => li.textContent), error: text("error"), rows, poll: ms,
  }));
};
`

func TestConsoleShowsTheAPI(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is not installed")
	}
	st := fixedStatus()
	dlag, pct := 0.25, 37.5
	st.DeliveryLagSeconds = &dlag
	st.Warnings = []task.Warning{{Code: task.WarnTargetRefusing, Message: "the target has refused 2 write(s)"}}
	st.Tables[0].FullLoadPercent, st.Tables[0].EstimatedRows = &pct, 267
	last := time.Date(2024, 1, 2, 4, 0, 0, 0, time.UTC)
	st.Tables[0].LastUpdateTime, st.Tables[0].LagSeconds = &last, &dlag
	base := startServer(t, &fakeSource{st: st})
	page := get(t, base+"/").body
	start, end := strings.Index(page, "<script>"), strings.LastIndex(page, "</script>")
	cmd := exec.CommandContext(t.Context(), node, "-")
	cmd.Env = append(cmd.Environ(), "BASE="+base)
	cmd.Stdin = strings.NewReader(consoleHarness + page[start+len("<script>"):end])
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("node: %v\n%s", err, out)
	}
	var got struct {
		Status, Detail, Reason, Loadpct, Lag, Dlag, Pos, Buffered, Dups, Error string
		WarningsHidden                                                         bool
		Warnings                                                               []string
		Rows                                                                   [][]string
		Poll                                                                   int
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("harness output: %v\n%s", err, out)
	}
	if got.Error != "" {
		t.Fatalf("the console reports: %s", got.Error)
	}
	if got.Status != "Running" || got.Detail != "(Load complete, replication ongoing)" || got.Loadpct != "50 %" || got.Lag != "1.5 s" ||
		got.Dlag != "0.3 s" || got.Pos != "mysql-bin.000010:4294967301" || got.Buffered != "1.0 KiB" || got.Dups != "3" || got.Poll != 2000 {
		t.Errorf("task summary = %+v", got)
	}
	if got.WarningsHidden || !reflect.DeepEqual(got.Warnings, []string{"target_refusing_writes the target has refused 2 write(s)"}) {
		t.Errorf("warnings hidden %v: %q", got.WarningsHidden, got.Warnings)
	}
	want := [][]string{
		{"wordpress-db.wp_posts", "Table completed", "37.5 %", "100", "5", "6", "7", "1", "2024-01-02 03:04:05Z", "2024-01-02 03:14:05Z", "2024-01-02 04:00:00Z", "0.3 s", "2", "2.0 KiB", "wordpress-db/wp_posts/0001.json.gz"},
		{"my db.odd.name", "Before load", "–", "0", "0", "0", "0", "0", "–", "–", "–", "–", "0", "0 B", "–"},
		{"wordpress-db.wp_users", "Table error: column count mismatch", "–", "0", "0", "0", "0", "0", "–", "–", "–", "–", "0", "0 B", "–"},
	}
	if !reflect.DeepEqual(got.Rows, want) {
		t.Errorf("table statistics:\n%q\nwant:\n%q", got.Rows, want)
	}
}
