// Package bench holds `make bench` (bench_test.go, built with -tags bench):
// binlake measured side by side with mydumper, mysqldump, mysqlbinlog and a
// bare go-mysql decode loop, written to BENCHMARKS.md.
package bench
