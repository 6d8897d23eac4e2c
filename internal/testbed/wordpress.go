package testbed

import (
	"context"
	"database/sql"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"
)

// WordPressDB is the name of the sample database. Its hyphen means every
// statement must backquote it.
const WordPressDB = "wordpress-db"

// wordpressTables creates the tables of WordPress that matter to CDC, with
// their real column types, and wp_stats, which widens type coverage.
var wordpressTables = []string{
	"CREATE TABLE IF NOT EXISTS {wp_users} (" +
		"`ID` bigint(20) unsigned NOT NULL AUTO_INCREMENT," +
		"`user_login` varchar(60) NOT NULL DEFAULT ''," +
		"`user_pass` varchar(255) NOT NULL DEFAULT ''," +
		"`user_email` varchar(100) NOT NULL DEFAULT ''," +
		"`user_registered` datetime NOT NULL DEFAULT '0000-00-00 00:00:00'," +
		"`user_status` int(11) NOT NULL DEFAULT 0," +
		"`display_name` varchar(250) NOT NULL DEFAULT ''," +
		"PRIMARY KEY (`ID`), KEY `user_login_key` (`user_login`), KEY `user_email` (`user_email`)" +
		") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci",
	"CREATE TABLE IF NOT EXISTS {wp_posts} (" +
		"`ID` bigint(20) unsigned NOT NULL AUTO_INCREMENT," +
		"`post_author` bigint(20) unsigned NOT NULL DEFAULT 0," +
		"`post_date` datetime NOT NULL DEFAULT '0000-00-00 00:00:00'," +
		"`post_date_gmt` datetime NOT NULL DEFAULT '0000-00-00 00:00:00'," +
		"`post_content` longtext NOT NULL," +
		"`post_title` text NOT NULL," +
		"`post_excerpt` text NOT NULL," +
		"`post_status` varchar(20) NOT NULL DEFAULT 'publish'," +
		"`comment_status` varchar(20) NOT NULL DEFAULT 'open'," +
		"`post_name` varchar(200) NOT NULL DEFAULT ''," +
		"`post_modified` datetime NOT NULL DEFAULT '0000-00-00 00:00:00'," +
		"`post_modified_gmt` datetime NOT NULL DEFAULT '0000-00-00 00:00:00'," +
		"`post_parent` bigint(20) unsigned NOT NULL DEFAULT 0," +
		"`guid` varchar(255) NOT NULL DEFAULT ''," +
		"`menu_order` int(11) NOT NULL DEFAULT 0," +
		"`post_type` varchar(20) NOT NULL DEFAULT 'post'," +
		"`comment_count` bigint(20) NOT NULL DEFAULT 0," +
		"PRIMARY KEY (`ID`), KEY `post_name` (`post_name`(191))," +
		"KEY `type_status_date` (`post_type`,`post_status`,`post_date`,`ID`)," +
		"KEY `post_parent` (`post_parent`), KEY `post_author` (`post_author`)" +
		") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci",
	"CREATE TABLE IF NOT EXISTS {wp_postmeta} (" +
		"`meta_id` bigint(20) unsigned NOT NULL AUTO_INCREMENT," +
		"`post_id` bigint(20) unsigned NOT NULL DEFAULT 0," +
		"`meta_key` varchar(255) DEFAULT NULL," +
		"`meta_value` longtext DEFAULT NULL," +
		"PRIMARY KEY (`meta_id`), KEY `post_id` (`post_id`), KEY `meta_key` (`meta_key`(191))" +
		") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci",
	"CREATE TABLE IF NOT EXISTS {wp_comments} (" +
		"`comment_ID` bigint(20) unsigned NOT NULL AUTO_INCREMENT," +
		"`comment_post_ID` bigint(20) unsigned NOT NULL DEFAULT 0," +
		"`comment_author` tinytext NOT NULL," +
		"`comment_author_email` varchar(100) NOT NULL DEFAULT ''," +
		"`comment_date` datetime NOT NULL DEFAULT '0000-00-00 00:00:00'," +
		"`comment_content` text NOT NULL," +
		"`comment_karma` int(11) NOT NULL DEFAULT 0," +
		"`comment_approved` varchar(20) NOT NULL DEFAULT '1'," +
		"`comment_parent` bigint(20) unsigned NOT NULL DEFAULT 0," +
		"PRIMARY KEY (`comment_ID`), KEY `comment_post_ID` (`comment_post_ID`), KEY `comment_parent` (`comment_parent`)" +
		") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci",
	"CREATE TABLE IF NOT EXISTS {wp_options} (" +
		"`option_id` bigint(20) unsigned NOT NULL AUTO_INCREMENT," +
		"`option_name` varchar(191) NOT NULL DEFAULT ''," +
		"`option_value` longtext NOT NULL," +
		"`autoload` varchar(20) NOT NULL DEFAULT 'yes'," +
		"PRIMARY KEY (`option_id`), UNIQUE KEY `option_name` (`option_name`), KEY `autoload` (`autoload`)" +
		") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci",
	"CREATE TABLE IF NOT EXISTS {wp_sessions} (" +
		"`session_id` varchar(64) NOT NULL," +
		"`data` blob," +
		"`expires` int(10) unsigned NOT NULL DEFAULT 0," +
		"PRIMARY KEY (`session_id`)" +
		") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci",
	"CREATE TABLE IF NOT EXISTS {wp_stats} (" +
		"`id` int(11) NOT NULL AUTO_INCREMENT," +
		"`views` bigint(20) unsigned DEFAULT NULL," +
		"`ratio` decimal(10,3) DEFAULT NULL," +
		"`score` double DEFAULT NULL," +
		"`weight` float DEFAULT NULL," +
		"`flag` tinyint(1) DEFAULT NULL," +
		"`day` date DEFAULT NULL," +
		"`at` timestamp(6) NULL DEFAULT NULL," +
		"`dur` time(3) DEFAULT NULL," +
		"`yr` year(4) DEFAULT NULL," +
		"`kind` enum('a','b','c') DEFAULT NULL," +
		"`tags` set('x','y','z') DEFAULT NULL," +
		"`raw` varbinary(16) DEFAULT NULL," +
		"`bits` bit(5) DEFAULT NULL," +
		"`doc` json DEFAULT NULL," +
		"`note` varchar(50) CHARACTER SET latin1 COLLATE latin1_swedish_ci DEFAULT NULL," +
		"PRIMARY KEY (`id`)" +
		") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci",
}

// Seeded row counts other than those that follow from the number of posts.
const (
	seedUsers    = 5
	seedSessions = 8
)

// wordpressOptions are the seeded options, in insertion order.
var wordpressOptions = []struct{ name, value, autoload string }{
	{"siteurl", "https://example.com", "yes"},
	{"home", "https://example.com", "yes"},
	{"blogname", "Binlake Demo", "yes"},
	{"blogdescription", "Just another WordPress site — café, 日本, 🎉", "yes"},
	{"users_can_register", "0", "yes"},
	{"admin_email", "admin@example.com", "yes"},
	{"start_of_week", "1", "yes"},
	{"default_category", "1", "yes"},
	{"default_comment_status", "open", "yes"},
	{"posts_per_page", "10", "yes"},
	{"date_format", "F j, Y", "yes"},
	{"time_format", "g:i a", "yes"},
	{"permalink_structure", "/%year%/%monthnum%/%postname%/", "yes"},
	{"timezone_string", "Europe/Paris", "yes"},
	{"WPLANG", "", "yes"},
	{"template", "twentytwentyfour", "yes"},
	{"stylesheet", "twentytwentyfour", "yes"},
	{"active_plugins", phpList("akismet/akismet.php", "hello.php"), "yes"},
	{"cron", `a:1:{i:1546300800;a:1:{s:16:"wp_version_check";a:0:{}}}`, "yes"},
	{"rewrite_rules", rewriteRules(), "yes"},
}

// zeroDate is MySQL's zero DATETIME, which WordPress stores for unset dates.
const zeroDate = "0000-00-00 00:00:00"

// seedEpoch is the date of the first seeded post.
var seedEpoch = time.Date(2019, 1, 1, 8, 0, 0, 0, time.UTC)

// CreateWordPress creates database, if missing, and the sample tables in it,
// if missing, with the column types of WordPress.
func CreateWordPress(ctx context.Context, db *sql.DB, database string) error {
	sqlf := tableNames(database)
	return withConn(ctx, db, func(c *sql.Conn) error {
		stmts := append([]string{"CREATE DATABASE IF NOT EXISTS " + quoteIdent(database) +
			" CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"}, wordpressTables...)
		for _, stmt := range stmts {
			if _, err := c.ExecContext(ctx, sqlf(stmt)); err != nil {
				return fmt.Errorf("creating WordPress schema: executing %q: %w", abbrev(stmt), err)
			}
		}
		return nil
	})
}

// SeedWordPress fills the freshly created tables of database with 5 users,
// posts posts each with 2 meta rows and 0 to 3 comments, 20 options, 8
// sessions and 10 wp_stats rows, 4 of them edge values (NULLs, maxima,
// minima, zero dates). The same seed gives the same rows. Some text is
// accented, Japanese or emoji; two of the posts, if there are three or more,
// have bodies of 2 to 3 MiB. Posts are committed 100 at a time.
//
// Like CreateWordPress and the Workload, it sets an empty sql_mode (zero
// dates are allowed) and time_zone '+00:00' on the connection of db it uses.
func SeedWordPress(ctx context.Context, db *sql.DB, database string, posts int, seed int64) error {
	g := newGen(seed)
	sqlf := tableNames(database)
	err := withConn(ctx, db, func(c *sql.Conn) error {
		if err := inTx(ctx, c, func(tx *sql.Tx) error { return seedSite(ctx, tx, sqlf, g) }); err != nil {
			return err
		}
		big := map[int]bool{}
		if posts >= 3 {
			big[posts/3], big[2*posts/3] = true, true
		}
		const chunk = 100
		for start := 0; start < posts; start += chunk {
			err := inTx(ctx, c, func(tx *sql.Tx) error {
				for i := start; i < min(start+chunk, posts); i++ {
					size := 0
					if big[i] {
						size = 2<<20 + g.r.IntN(1<<20-8<<10) // a paragraph's margin below 3 MiB
					}
					at := seedEpoch.Add(time.Duration(i)*6*time.Hour + time.Duration(g.r.IntN(21600))*time.Second)
					if err := g.insertPost(ctx, tx, sqlf, at, size, g.r.IntN(4)); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				return err
			}
		}
		return inTx(ctx, c, func(tx *sql.Tx) error { return seedStats(ctx, tx, sqlf, g) })
	})
	if err != nil {
		return fmt.Errorf("seeding WordPress: %w", err)
	}
	return nil
}

// seedSite inserts the users, options and sessions.
func seedSite(ctx context.Context, tx *sql.Tx, sqlf func(string) string, g *gen) error {
	users := []struct{ login, email, name, registered string }{
		{"admin", "admin@example.com", "Admin", "2018-12-01 09:00:00"},
		{"elodie", "elodie@example.fr", "Élodie Lefèvre", "2019-02-14 18:30:00"},
		{"yamada", "yamada@example.jp", "山田太郎", "2019-04-01 00:00:00"},
		{"legacy", "legacy@example.com", "Legacy Import", ""}, // keeps the zero-date default
		{"party", "party@example.com", "Party 🎉 Person", "2020-12-31 23:59:59"},
	}
	for _, u := range users {
		stmt := "INSERT INTO {wp_users} (user_login, user_pass, user_email, display_name, user_registered) VALUES (?, ?, ?, ?, ?)"
		args := []any{u.login, g.passwordHash(), u.email, u.name, u.registered}
		if u.registered == "" {
			stmt = "INSERT INTO {wp_users} (user_login, user_pass, user_email, display_name) VALUES (?, ?, ?, ?)"
			args = args[:4]
		}
		if _, err := tx.ExecContext(ctx, sqlf(stmt), args...); err != nil {
			return fmt.Errorf("inserting user %s: %w", u.login, err)
		}
	}
	for _, o := range wordpressOptions {
		if _, err := tx.ExecContext(ctx, sqlf("INSERT INTO {wp_options} (option_name, option_value, autoload) VALUES (?, ?, ?)"),
			o.name, o.value, o.autoload); err != nil {
			return fmt.Errorf("inserting option %s: %w", o.name, err)
		}
	}
	for range seedSessions {
		if err := g.insertSession(ctx, tx, sqlf, seedEpoch); err != nil {
			return err
		}
	}
	return nil
}

// seedStats inserts 4 rows of edge values (all NULL; maxima; minima; zero
// dates and tiny values) and 6 random rows.
func seedStats(ctx context.Context, tx *sql.Tx, sqlf func(string) string, g *gen) error {
	const cols = "(views, ratio, score, weight, flag, day, `at`, dur, yr, kind, tags, raw, bits, doc, note)"
	edges := []string{
		"INSERT INTO {wp_stats} () VALUES ()",
		"INSERT INTO {wp_stats} " + cols + " VALUES (18446744073709551615, 9999999.999, 1.7976931348623157e308, 3.40282e38, 127," +
			" '9999-12-31', '2038-01-19 03:14:07.999999', '838:59:59.000', 2155, 'c', 'x,y,z', 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF, b'11111'," +
			` '{"emoji":"🎉","jp":"日本","nested":{"a":[1,2.5,true,null]}}', 'ÿ café')`,
		"INSERT INTO {wp_stats} " + cols + " VALUES (0, -9999999.999, -1.7976931348623157e308, -3.40282e38, -128," +
			" '1000-01-01', '1970-01-01 00:00:01.000000', '-838:59:59.000', 1901, 'a', '', '', b'00000', '[]', '')",
		"INSERT INTO {wp_stats} " + cols + " VALUES (1, 0.001, 5e-324, 1.17549e-38, 0," +
			` '0000-00-00', '0000-00-00 00:00:00', '00:00:00.001', 0, NULL, 'y', 0x00, b'00001', '"just a string"', 'naïve')`,
	}
	for _, stmt := range edges {
		if _, err := tx.ExecContext(ctx, sqlf(stmt)); err != nil {
			return fmt.Errorf("inserting wp_stats edge row: %w", err)
		}
	}
	for range 6 {
		if err := g.insertStats(ctx, tx, sqlf, seedEpoch.Add(time.Duration(g.r.IntN(4*365*24))*time.Hour)); err != nil {
			return err
		}
	}
	return nil
}

// querier is what *sql.Conn and *sql.Tx have in common.
type querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// gen makes sample rows from a deterministic random source.
type gen struct{ r *rand.Rand }

func newGen(seed int64) *gen {
	return &gen{r: rand.New(rand.NewPCG(uint64(seed), 0x62696e6c616b65))}
}

// insertPost inserts a post dated at, with 2 meta rows and comments
// comments. A positive size makes the body that many bytes.
func (g *gen) insertPost(ctx context.Context, q querier, sqlf func(string) string, at time.Time, size, comments int) error {
	title := g.title()
	status := pick(g.r, "publish", "publish", "publish", "publish", "publish", "publish", "publish", "draft", "draft", "pending", "private")
	gmt := at.Add(-2 * time.Hour).Format(time.DateTime)
	if status == "draft" || status == "pending" {
		gmt = zeroDate // as WordPress stores unpublished posts
	}
	modified := at.Add(time.Duration(g.r.IntN(30*24*3600)) * time.Second)
	res, err := q.ExecContext(ctx, sqlf("INSERT INTO {wp_posts} (post_author, post_date, post_date_gmt, post_content,"+
		" post_title, post_excerpt, post_status, comment_status, post_name, post_modified, post_modified_gmt,"+
		" post_parent, guid, menu_order, post_type, comment_count) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, 0, ?, ?)"),
		1+g.r.IntN(seedUsers), at.Format(time.DateTime), gmt, g.content(size),
		title, g.excerpt(), status, pick(g.r, "open", "open", "closed"), slug(title), modified.Format(time.DateTime),
		modified.Add(-2*time.Hour).Format(time.DateTime), "https://example.com/"+slug(title)+"/",
		pick(g.r, "post", "post", "post", "post", "post", "post", "post", "post", "post", "page"), comments)
	if err != nil {
		return fmt.Errorf("inserting post: %w", err)
	}
	id, err := res.LastInsertId()
	if err != nil {
		return fmt.Errorf("inserting post: %w", err)
	}
	var thumbnail any = strconv.Itoa(g.r.IntN(1000))
	if g.r.IntN(10) == 0 {
		thumbnail = nil
	}
	if _, err := q.ExecContext(ctx, sqlf("INSERT INTO {wp_postmeta} (post_id, meta_key, meta_value) VALUES (?, '_edit_lock', ?), (?, '_thumbnail_id', ?)"),
		id, fmt.Sprintf("%d:%d", modified.Unix(), 1+g.r.IntN(seedUsers)), id, thumbnail); err != nil {
		return fmt.Errorf("inserting meta of post %d: %w", id, err)
	}
	var first int64
	for i := range comments {
		parent := int64(0)
		if i > 0 && g.r.IntN(3) == 0 {
			parent = first
		}
		cid, err := g.insertComment(ctx, q, sqlf, id, parent, at.Add(time.Duration(i+1)*time.Hour))
		if err != nil {
			return err
		}
		if i == 0 {
			first = cid
		}
	}
	return nil
}

// insertComment inserts a comment on post but does not count it in the post.
func (g *gen) insertComment(ctx context.Context, q querier, sqlf func(string) string, post, parent int64, at time.Time) (int64, error) {
	author := pick(g.r, "Alice", "Bob", "José Müller", "山田花子", "Zoë 🎉", "Anonymous")
	res, err := q.ExecContext(ctx, sqlf("INSERT INTO {wp_comments} (comment_post_ID, comment_author, comment_author_email,"+
		" comment_date, comment_content, comment_karma, comment_approved, comment_parent) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"),
		post, author, fmt.Sprintf("user%d@example.org", g.r.IntN(100)), at.Format(time.DateTime),
		g.sentence(5+g.r.IntN(30)), g.r.IntN(5)-2, pick(g.r, "1", "1", "1", "0", "spam"), parent)
	if err != nil {
		return 0, fmt.Errorf("inserting comment on post %d: %w", post, err)
	}
	return res.LastInsertId()
}

// insertSession inserts a session that expires within a day of now.
func (g *gen) insertSession(ctx context.Context, q querier, sqlf func(string) string, now time.Time) error {
	if _, err := q.ExecContext(ctx, sqlf("INSERT INTO {wp_sessions} (session_id, data, expires) VALUES (?, ?, ?)"),
		hex.EncodeToString(g.bytes(16)), g.bytes(16+g.r.IntN(240)), now.Unix()+int64(g.r.IntN(86400))); err != nil {
		return fmt.Errorf("inserting session: %w", err)
	}
	return nil
}

// insertStats inserts a wp_stats row of random values, some NULL.
func (g *gen) insertStats(ctx context.Context, q querier, sqlf func(string) string, at time.Time) error {
	vals := []any{
		g.r.Uint64(),
		fmt.Sprintf("%.3f", g.r.Float64()*2e6-1e6),
		g.r.NormFloat64() * 1e3,
		float32(g.r.Float64() * 100),
		g.r.IntN(2),
		at.Format(time.DateOnly),
		at.Add(time.Duration(g.r.IntN(1e6)) * time.Microsecond).Format("2006-01-02 15:04:05.000000"),
		fmt.Sprintf("%d:%02d:%02d.%03d", g.r.IntN(839), g.r.IntN(60), g.r.IntN(60), g.r.IntN(1000)),
		1901 + g.r.IntN(255),
		pick(g.r, "a", "b", "c"),
		pick(g.r, "", "x", "y,z", "x,y,z"),
		g.bytes(g.r.IntN(17)),
		g.r.IntN(32),
		fmt.Sprintf(`{"n":%d,"tags":["%s"],"ok":%t}`, g.r.IntN(1000), pick(g.r, "café", "日本", "🎉", "plain"), g.r.IntN(2) == 0),
		pick(g.r, "plain", "café", "Ümlaut", "naïve", "£5"),
	}
	vals[g.r.IntN(len(vals))] = nil
	if _, err := q.ExecContext(ctx, sqlf("INSERT INTO {wp_stats} (views, ratio, score, weight, flag, day, `at`, dur, yr,"+
		" kind, tags, raw, bits, doc, note) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"), vals...); err != nil {
		return fmt.Errorf("inserting wp_stats row: %w", err)
	}
	return nil
}

var (
	words = strings.Fields("the a of and lorem ipsum dolor sit amet consectetur adipiscing elit sed do" +
		" eiusmod tempor incididunt ut labore et dolore magna aliqua enim ad minim veniam quis nostrud" +
		" exercitation ullamco laboris nisi aliquip ex ea commodo consequat database binlog stream lake")
	intlWords = strings.Fields("café déjà vu naïve résumé Ñandú über Ελλάδα привет 日本 東京の夜 🎉 🚀 😀")
	intlTitle = []string{"Café crème et résumé", "日本の夏祭り", "Party time 🎉", "Ñandú über alles", "Emoji 🎉🚀 roundup"}
)

func (g *gen) sentence(n int) string {
	var b strings.Builder
	for i := range n {
		if i > 0 {
			b.WriteByte(' ')
		}
		if g.r.IntN(12) == 0 {
			b.WriteString(intlWords[g.r.IntN(len(intlWords))])
		} else {
			b.WriteString(words[g.r.IntN(len(words))])
		}
	}
	return b.String()
}

func (g *gen) title() string {
	if g.r.IntN(5) == 0 {
		return intlTitle[g.r.IntN(len(intlTitle))]
	}
	s := g.sentence(3 + g.r.IntN(6))
	first, size := utf8.DecodeRuneInString(s)
	return string(unicode.ToUpper(first)) + s[size:]
}

func (g *gen) excerpt() string {
	if g.r.IntN(4) == 0 {
		return g.sentence(10 + g.r.IntN(20))
	}
	return ""
}

// content returns 1 to 5 Gutenberg paragraphs, and more up to size bytes.
func (g *gen) content(size int) string {
	var b strings.Builder
	n := 1 + g.r.IntN(5)
	for i := 0; i < n || b.Len() < size; i++ {
		b.WriteString("<!-- wp:paragraph -->\n<p>" + g.sentence(20+g.r.IntN(60)) + ".</p>\n<!-- /wp:paragraph -->\n\n")
	}
	return b.String()
}

// passwordHash returns a phpass-style hash, as WordPress stores.
func (g *gen) passwordHash() string {
	const alphabet = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	b := []byte("$P$B")
	for range 30 {
		b = append(b, alphabet[g.r.IntN(len(alphabet))])
	}
	return string(b)
}

func (g *gen) bytes(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(g.r.IntN(256))
	}
	return b
}

func pick[T any](r *rand.Rand, choices ...T) T { return choices[r.IntN(len(choices))] }

// slug returns the URL name WordPress would derive from an ASCII title;
// other titles get a generic one.
func slug(title string) string {
	var b strings.Builder
	for _, c := range strings.ToLower(title) {
		switch {
		case c >= 'a' && c <= 'z' || c >= '0' && c <= '9':
			b.WriteRune(c)
		case c == ' ' && b.Len() > 0:
			b.WriteByte('-')
		}
	}
	if s := strings.Trim(b.String(), "-"); s != "" {
		return s
	}
	return "post"
}

// phpList returns a PHP-serialized array of strings, as options store them.
func phpList(items ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "a:%d:{", len(items))
	for i, s := range items {
		fmt.Fprintf(&b, `i:%d;s:%d:"%s";`, i, len(s), s)
	}
	return b.String() + "}"
}

// rewriteRules returns a PHP-serialized map of about 8 KiB, like the
// rewrite_rules option.
func rewriteRules() string {
	var b strings.Builder
	const n = 100
	fmt.Fprintf(&b, "a:%d:{", n)
	for i := range n {
		k := fmt.Sprintf("section-%d/(.+?)/page/?([0-9]{1,})/?$", i)
		v := fmt.Sprintf("index.php?section=%d&name=$matches[1]&paged=$matches[2]", i)
		fmt.Fprintf(&b, `s:%d:"%s";s:%d:"%s";`, len(k), k, len(v), v)
	}
	return b.String() + "}"
}

// quoteIdent backquotes a MariaDB identifier.
func quoteIdent(name string) string {
	return "`" + strings.ReplaceAll(name, "`", "``") + "`"
}

// tableNames returns a function replacing {table} in a statement by the
// qualified, quoted name of the table in database.
func tableNames(database string) func(string) string {
	var pairs []string
	for _, t := range []string{"wp_users", "wp_posts", "wp_postmeta", "wp_comments", "wp_options", "wp_sessions", "wp_stats"} {
		pairs = append(pairs, "{"+t+"}", quoteIdent(database)+"."+quoteIdent(t))
	}
	return strings.NewReplacer(pairs...).Replace
}

// withConn runs fn on one connection of db whose session allows zero dates
// and reads and writes TIMESTAMPs in UTC.
func withConn(ctx context.Context, db *sql.DB, fn func(*sql.Conn) error) error {
	c, err := db.Conn(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	if _, err := c.ExecContext(ctx, "SET SESSION sql_mode = '', time_zone = '+00:00'"); err != nil {
		return fmt.Errorf("setting session: %w", err)
	}
	return fn(c)
}

// inTx runs fn in a transaction on c, committing if it succeeds.
func inTx(ctx context.Context, c *sql.Conn, fn func(*sql.Tx) error) error {
	tx, err := c.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	return tx.Commit()
}

// NewWordPress starts a MariaDB server holding the sample WordPress
// database with posts posts (seeded with seed), and returns it with a
// connection that is closed when the test ends.
func NewWordPress(t testing.TB, posts int, seed int64) (*MariaDB, *sql.DB) {
	t.Helper()
	m := NewMariaDB(t)
	db, err := m.Open("")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := CreateWordPress(t.Context(), db, WordPressDB); err != nil {
		t.Fatal(err)
	}
	if err := SeedWordPress(t.Context(), db, WordPressDB, posts, seed); err != nil {
		t.Fatal(err)
	}
	return m, db
}
