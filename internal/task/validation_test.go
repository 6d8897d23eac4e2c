package task_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/binlake/binlake/internal/task"
	"github.com/binlake/binlake/internal/validate"
)

// TestContinuousValidation runs a task with validation enabled: every table
// becomes Validated in the status; then an object of wp_users disappears
// from the lake behind the task's back and its state turns to Mismatched
// records.
func TestContinuousValidation(t *testing.T) {
	m := startWordPress(t, 40)
	dir := t.TempDir()
	cfg := testConfig(t, m, "file://"+dir, "validation: {enabled: true, interval: 1s, rounds: 1, wait: 10ms}\n")
	tk := task.New(cfg, logger(t))
	ctx, stop := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- tk.Run(ctx) }()
	defer func() { stop(); <-done }()

	states := func() map[string]task.TableStatus {
		out := map[string]task.TableStatus{}
		for _, ts := range tk.Status().Tables {
			out[ts.Table] = ts
		}
		return out
	}
	waitFor(t, 60*time.Second, func() bool {
		st := states()
		for _, name := range wordpressTables {
			if st[name].ValidationState != validate.StateValidated || st[name].ValidatedAt == nil {
				return false
			}
		}
		return true
	})
	if st := states()["wp_sessions"]; st.Table != "" {
		t.Errorf("the excluded wp_sessions has a status line: %+v", st)
	}

	var victim string
	filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.Contains(d.Name(), "wordpress-db.wp_users-p") && strings.HasSuffix(d.Name(), ".json.gz") {
			victim = path
		}
		return nil
	})
	if victim == "" {
		t.Fatal("no wp_users object in the lake")
	}
	if err := os.Remove(victim); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 60*time.Second, func() bool {
		st := states()["wp_users"]
		return st.ValidationState == validate.StateMismatched && st.ValidationDiffers > 0
	})
	if st := states()["wp_posts"]; st.ValidationState != validate.StateValidated {
		t.Errorf("wp_posts: %s, want still Validated", st.ValidationState)
	}
}
