package testbed

import (
	"context"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/go-sql-driver/mysql"
)

// Workload writes to a seeded WordPress database the way a busy site does,
// in small random transactions. The same seed on the same data makes the same
// changes. A Workload is not safe for concurrent use.
type Workload struct {
	db   *sql.DB
	sqlf func(string) string
	g    *gen
	now  time.Time // logical clock for dates written, advanced by each step
}

// NewWorkload returns a workload on database, reached through db, whose
// connections it leaves with an empty sql_mode and time_zone '+00:00'.
func NewWorkload(db *sql.DB, database string, seed int64) *Workload {
	return &Workload{
		db:   db,
		sqlf: tableNames(database),
		g:    newGen(seed),
		now:  time.Date(2024, 6, 1, 0, 0, 0, 0, time.UTC),
	}
}

// workloadAction is one kind of change, drawn with probability weight/Σweight.
type workloadAction struct {
	name   string
	weight int
	run    func(w *Workload, ctx context.Context, c *sql.Conn) error
}

var workloadActions = []workloadAction{
	{"insert post", 18, (*Workload).insertPost},
	{"update post", 20, (*Workload).updatePost},
	{"delete post", 5, (*Workload).deletePost},
	{"insert comment", 15, (*Workload).insertComment},
	{"delete comment", 5, (*Workload).deleteComment},
	{"update option", 10, (*Workload).updateOption},
	{"update session", 10, (*Workload).updateSession},
	{"update stats", 6, (*Workload).updateStats},
	{"multi-row update", 5, (*Workload).multiRowUpdate},
	{"multi-table transaction", 5, (*Workload).multiTable},
	{"primary key change", 1, (*Workload).changeOptionID},
}

// Step makes one random change in its own transaction.
func (w *Workload) Step(ctx context.Context) error {
	total := 0
	for _, a := range workloadActions {
		total += a.weight
	}
	n := w.g.r.IntN(total)
	a := workloadActions[0]
	for _, a = range workloadActions {
		if n -= a.weight; n < 0 {
			break
		}
	}
	return w.do(ctx, a)
}

func (w *Workload) do(ctx context.Context, a workloadAction) error {
	w.now = w.now.Add(time.Duration(1+w.g.r.IntN(120)) * time.Second)
	if err := withConn(ctx, w.db, func(c *sql.Conn) error { return a.run(w, ctx, c) }); err != nil {
		return fmt.Errorf("workload %s: %w", a.name, err)
	}
	return nil
}

// Run calls Step about rate times a second, or back to back if rate is not
// positive, until ctx ends, when it returns nil, or a step fails.
func (w *Workload) Run(ctx context.Context, rate int) error {
	var tick <-chan time.Time
	if rate > 0 {
		t := time.NewTicker(time.Second / time.Duration(rate))
		defer t.Stop()
		tick = t.C
	}
	for {
		if tick == nil {
			if ctx.Err() != nil {
				return nil
			}
		} else {
			select {
			case <-ctx.Done():
				return nil
			case <-tick:
			}
		}
		if err := w.step(ctx); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if transient(err) {
				continue // rolled back: the next step goes on
			}
			return err
		}
	}
}

// transient tells whether err is an error a busy site's application
// retries: a deadlock, a lock wait timeout, or a table whose definition a
// concurrent DDL changed under the transaction. A test's DDL beside the
// workload makes them now and then; a workload that stopped on them would
// leave the test waiting for changes that never come.
func transient(err error) bool {
	var me *mysql.MySQLError
	if !errors.As(err, &me) {
		return false
	}
	switch me.Number {
	case 1205, 1213, 1412: // ER_LOCK_WAIT_TIMEOUT, ER_LOCK_DEADLOCK, ER_TABLE_DEF_CHANGED
		return true
	}
	return false
}

// step runs one Step to its end even if ctx ends meanwhile: a statement
// cut off by a cancelled context may still commit on the server after Run
// returned, behind the binlog end a test reads once the workload stopped.
func (w *Workload) step(ctx context.Context) error {
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	return w.Step(sctx)
}

func (w *Workload) insertPost(ctx context.Context, c *sql.Conn) error {
	return inTx(ctx, c, func(tx *sql.Tx) error {
		return w.g.insertPost(ctx, tx, w.sqlf, w.now, 0, 0)
	})
}

func (w *Workload) updatePost(ctx context.Context, c *sql.Conn) error {
	id, ok, err := w.pickID(ctx, c, "{wp_posts}", "ID")
	if err != nil || !ok {
		return err
	}
	stmt := "UPDATE {wp_posts} SET post_title = ?, post_name = ?, post_status = ?, post_modified = ?, post_modified_gmt = ? WHERE ID = ?"
	title := w.g.title()
	args := []any{title, slug(title), pick(w.g.r, "publish", "publish", "draft", "private"),
		w.now.Format(time.DateTime), w.now.Add(-2 * time.Hour).Format(time.DateTime), id}
	if w.g.r.IntN(4) == 0 {
		stmt = "UPDATE {wp_posts} SET post_title = ?, post_name = ?, post_status = ?, post_modified = ?, post_modified_gmt = ?," +
			" post_content = CONCAT(post_content, ?) WHERE ID = ?"
		args = append(args[:5], w.g.content(0), id)
	}
	_, err = c.ExecContext(ctx, w.sqlf(stmt), args...)
	return err
}

func (w *Workload) deletePost(ctx context.Context, c *sql.Conn) error {
	id, ok, err := w.pickID(ctx, c, "{wp_posts}", "ID")
	if err != nil || !ok {
		return err
	}
	return inTx(ctx, c, func(tx *sql.Tx) error {
		for _, stmt := range []string{
			"DELETE FROM {wp_comments} WHERE comment_post_ID = ?",
			"DELETE FROM {wp_postmeta} WHERE post_id = ?",
			"DELETE FROM {wp_posts} WHERE ID = ?",
		} {
			if _, err := tx.ExecContext(ctx, w.sqlf(stmt), id); err != nil {
				return err
			}
		}
		return nil
	})
}

func (w *Workload) insertComment(ctx context.Context, c *sql.Conn) error {
	post, ok, err := w.pickID(ctx, c, "{wp_posts}", "ID")
	if err != nil || !ok {
		return err
	}
	return inTx(ctx, c, func(tx *sql.Tx) error { return w.addComment(ctx, tx, post) })
}

// addComment comments on post and counts the comment in it.
func (w *Workload) addComment(ctx context.Context, tx *sql.Tx, post int64) error {
	if _, err := w.g.insertComment(ctx, tx, w.sqlf, post, 0, w.now); err != nil {
		return err
	}
	_, err := tx.ExecContext(ctx, w.sqlf("UPDATE {wp_posts} SET comment_count = comment_count + 1 WHERE ID = ?"), post)
	return err
}

func (w *Workload) deleteComment(ctx context.Context, c *sql.Conn) error {
	id, ok, err := w.pickID(ctx, c, "{wp_comments}", "comment_ID")
	if err != nil || !ok {
		return err
	}
	return inTx(ctx, c, func(tx *sql.Tx) error {
		var post, parent int64
		if err := tx.QueryRowContext(ctx, w.sqlf("SELECT comment_post_ID, comment_parent FROM {wp_comments} WHERE comment_ID = ? FOR UPDATE"),
			id).Scan(&post, &parent); err != nil {
			return err
		}
		for _, s := range []struct {
			stmt string
			args []any
		}{
			{"UPDATE {wp_comments} SET comment_parent = ? WHERE comment_parent = ?", []any{parent, id}},
			{"DELETE FROM {wp_comments} WHERE comment_ID = ?", []any{id}},
			{"UPDATE {wp_posts} SET comment_count = comment_count - 1 WHERE ID = ? AND comment_count > 0", []any{post}},
		} {
			if _, err := tx.ExecContext(ctx, w.sqlf(s.stmt), s.args...); err != nil {
				return err
			}
		}
		return nil
	})
}

func (w *Workload) updateOption(ctx context.Context, c *sql.Conn) error {
	value, name := w.optionUpdate()
	_, err := c.ExecContext(ctx, w.sqlf("UPDATE {wp_options} SET option_value = ? WHERE option_name = ?"), value, name)
	return err
}

// optionUpdate returns the value and name of an option to update.
func (w *Workload) optionUpdate() (string, string) {
	switch name := pick(w.g.r, "blogdescription", "posts_per_page", "cron", "active_plugins"); name {
	case "posts_per_page":
		return strconv.Itoa(5 + w.g.r.IntN(20)), name
	case "cron":
		return fmt.Sprintf(`a:1:{i:%d;a:1:{s:16:"wp_version_check";a:0:{}}}`, w.now.Unix()+43200), name
	case "active_plugins":
		return phpList(pick(w.g.r, "akismet/akismet.php", "jetpack/jetpack.php"), "hello.php"), name
	default:
		return w.g.sentence(4 + w.g.r.IntN(8)), name
	}
}

// updateSession mostly refreshes a session, sometimes starts or ends one.
func (w *Workload) updateSession(ctx context.Context, c *sql.Conn) error {
	if w.g.r.IntN(5) == 0 {
		return w.g.insertSession(ctx, c, w.sqlf, w.now)
	}
	var id string
	err := c.QueryRowContext(ctx, w.sqlf("SELECT session_id FROM {wp_sessions} WHERE session_id >= ? ORDER BY session_id LIMIT 1"),
		hex.EncodeToString(w.g.bytes(2))).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		err = c.QueryRowContext(ctx, w.sqlf("SELECT session_id FROM {wp_sessions} ORDER BY session_id LIMIT 1")).Scan(&id)
	}
	if errors.Is(err, sql.ErrNoRows) {
		return w.g.insertSession(ctx, c, w.sqlf, w.now)
	}
	if err != nil {
		return err
	}
	if w.g.r.IntN(8) == 0 {
		_, err = c.ExecContext(ctx, w.sqlf("DELETE FROM {wp_sessions} WHERE session_id = ?"), id)
		return err
	}
	_, err = c.ExecContext(ctx, w.sqlf("UPDATE {wp_sessions} SET data = ?, expires = ? WHERE session_id = ?"),
		w.g.bytes(16+w.g.r.IntN(240)), w.now.Unix()+86400, id)
	return err
}

// updateStats changes a wp_stats row but not its views, so the edge values
// seeded there survive in before and after images; sometimes it adds a row.
func (w *Workload) updateStats(ctx context.Context, c *sql.Conn) error {
	id, ok, err := w.pickID(ctx, c, "{wp_stats}", "id")
	if err != nil {
		return err
	}
	if !ok || w.g.r.IntN(5) == 0 {
		return w.g.insertStats(ctx, c, w.sqlf, w.now)
	}
	_, err = c.ExecContext(ctx, w.sqlf("UPDATE {wp_stats} SET score = ?, flag = NOT flag, `at` = ?, tags = ?,"+
		" doc = JSON_SET(COALESCE(doc, '{}'), '$.step', ?), note = ? WHERE id = ?"),
		w.g.r.NormFloat64(), w.now.Format("2006-01-02 15:04:05.000000"), pick(w.g.r, "", "x", "x,z"),
		w.now.Unix(), pick[any](w.g.r, "updated", "modifié", nil), id)
	return err
}

// multiRowUpdate changes up to 20 adjacent rows in one statement.
func (w *Workload) multiRowUpdate(ctx context.Context, c *sql.Conn) error {
	id, ok, err := w.pickID(ctx, c, "{wp_posts}", "ID")
	if err != nil || !ok {
		return err
	}
	stmt := "UPDATE {wp_postmeta} SET meta_value = ? WHERE meta_key = '_edit_lock' AND post_id BETWEEN ? AND ?"
	arg := any(fmt.Sprintf("%d:1", w.now.Unix()))
	if w.g.r.IntN(2) == 0 {
		stmt = "UPDATE {wp_posts} SET comment_status = IF(comment_status = 'open', 'closed', 'open'), post_modified = ? WHERE ID BETWEEN ? AND ?"
		arg = w.now.Format(time.DateTime)
	}
	_, err = c.ExecContext(ctx, w.sqlf(stmt), arg, id, id+int64(w.g.r.IntN(20)))
	return err
}

// multiTable publishes a post, comments on another and updates an option
// and a wp_stats row, all in one transaction.
func (w *Workload) multiTable(ctx context.Context, c *sql.Conn) error {
	post, ok, err := w.pickID(ctx, c, "{wp_posts}", "ID")
	if err != nil {
		return err
	}
	stats, _, err := w.pickID(ctx, c, "{wp_stats}", "id")
	if err != nil {
		return err
	}
	return inTx(ctx, c, func(tx *sql.Tx) error {
		if err := w.g.insertPost(ctx, tx, w.sqlf, w.now, 0, 0); err != nil {
			return err
		}
		if ok {
			if err := w.addComment(ctx, tx, post); err != nil {
				return err
			}
		}
		value, name := w.optionUpdate()
		if _, err := tx.ExecContext(ctx, w.sqlf("UPDATE {wp_options} SET option_value = ? WHERE option_name = ?"), value, name); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, w.sqlf("UPDATE {wp_stats} SET ratio = ?, dur = ? WHERE id = ?"),
			fmt.Sprintf("%.3f", w.g.r.Float64()*1000), fmt.Sprintf("%02d:%02d:00.500", w.g.r.IntN(24), w.g.r.IntN(60)), stats)
		return err
	})
}

// changeOptionID moves an option to a new primary key. Keys only grow by
// 100000, so they never collide.
func (w *Workload) changeOptionID(ctx context.Context, c *sql.Conn) error {
	_, err := c.ExecContext(ctx, w.sqlf("UPDATE {wp_options} SET option_id = option_id + 100000 WHERE option_name = ?"),
		wordpressOptions[w.g.r.IntN(len(wordpressOptions))].name)
	return err
}

// pickID returns a random existing value of the integer key column of table,
// and false if the table is empty.
func (w *Workload) pickID(ctx context.Context, c *sql.Conn, table, column string) (int64, bool, error) {
	var lo, hi sql.NullInt64
	if err := c.QueryRowContext(ctx, w.sqlf(fmt.Sprintf("SELECT MIN(%[1]s), MAX(%[1]s) FROM %s", column, table))).Scan(&lo, &hi); err != nil {
		return 0, false, err
	}
	if !lo.Valid {
		return 0, false, nil
	}
	var id int64
	err := c.QueryRowContext(ctx, w.sqlf(fmt.Sprintf("SELECT %[1]s FROM %s WHERE %[1]s >= ? ORDER BY %[1]s LIMIT 1", column, table)),
		lo.Int64+w.g.r.Int64N(hi.Int64-lo.Int64+1)).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, false, nil
	}
	return id, err == nil, err
}
