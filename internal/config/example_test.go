package config_test

import (
	"fmt"

	"github.com/binlake/binlake/internal/config"
)

func ExampleParse() {
	c, err := config.Parse([]byte(`
task: wordpress
source:
  mysql:
    host: 127.0.0.1
    user: root
tables:
  - include: "wordpress-db.%"
  - exclude: "wordpress-db.wp_sessions"
delivery:
  buffer: {size: 1MiB, interval: 60s}
target: s3://lake/wordpress
`))
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(c.Migration, c.Stream.Type, c.Delivery.Compression)
	fmt.Println(c.Delivery.Buffer.Size, c.Delivery.Buffer.Interval.D())
	fmt.Println(c.Selected("wordpress-db", "wp_posts"), c.Selected("wordpress-db", "wp_sessions"))
	// Output:
	// full-load-and-cdc embedded gzip
	// 1MiB 1m0s
	// true false
}

func ExampleParse_errors() {
	_, err := config.Parse([]byte(`
task: word press
source:
  mysql:
    host: 127.0.0.1
tables:
  - include: "wordpress-db"
delivery:
  buffr: {size: 1MiB}
target: file:///var/lib/lake
`))
	fmt.Println(err)
	// Output:
	// delivery.buffr: unknown key 'buffr' at line 9, did you mean 'buffer'?
	// task: "word press" may only contain letters, digits, '_' and '-' (e.g. task: word-press)
	// source.mysql.user: must be set (e.g. user: binlake; it needs SELECT, REPLICATION SLAVE and REPLICATION CLIENT)
	// tables[0].include: "wordpress-db" has no '.'; write "schema.table", e.g. "wordpress-db.%" for every table of schema wordpress-db
}
