CREATE SCHEMA IF NOT EXISTS "hive"."wordpress_db";

-- wordpress-db.wp_stats: the change log, every record (delivery.format: json)
CREATE TABLE IF NOT EXISTS "hive"."wordpress_db"."wp_stats_changes" (
  "data" row("id" bigint, "views" decimal(20,0), "ratio" varchar, "score" double, "weight" double, "flag" bigint, "day" varchar, "at" varchar, "dur" varchar, "yr" bigint, "kind" varchar, "raw" varchar, "bits" decimal(20,0), "doc" varchar, "note" varchar),
  "control" row("statement" varchar),
  "metadata" row("timestamp" varchar, "record-type" varchar, "operation" varchar, "partition-key-type" varchar, "partition-key-value" varchar, "schema-name" varchar, "table-name" varchar, "transaction-id" bigint, "prev-transaction-id" bigint, "transaction-record-id" bigint, "prev-transaction-record-id" bigint, "commit-timestamp" varchar, "stream-position" varchar, "format-version" integer)
) WITH (
  external_location = 's3://my-lake/cdc/lake/wordpress-db/wp_stats/',
  format = 'JSON'
);

-- wordpress-db.wp_stats: the current rows (snapshot table)
-- Trino reads a snapshot table as a Hive table whose input format is SymlinkTextInputFormat, which
-- Trino's CREATE TABLE cannot declare: create it in the metastore (or Glue) with `binlake ddl --engine athena`.
-- Its symlink manifest: s3://my-lake/cdc/lake/_binlake/snapshot/wordpress-db/wp_stats/symlink/manifest

