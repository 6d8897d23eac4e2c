CREATE SCHEMA IF NOT EXISTS "hive"."wordpress_db";

-- wordpress-db.wp_stats: the change log, every record (delivery.format: parquet)
CREATE TABLE IF NOT EXISTS "hive"."wordpress_db"."wp_stats_changes" (
  "_op" varchar,
  "_stream_position" varchar,
  "_commit_timestamp" timestamp,
  "_transaction_id" decimal(20,0),
  "_partition_key" varchar,
  "_zero_dates" varchar,
  "id" bigint,
  "views" decimal(20,0),
  "ratio" decimal(10,3),
  "score" double,
  "weight" real,
  "flag" bigint,
  "day" date,
  "at" timestamp,
  "dur" varchar,
  "yr" bigint,
  "kind" varchar,
  "raw" varbinary,
  "bits" decimal(20,0),
  "doc" varchar,
  "note" varchar
) WITH (
  external_location = 's3://my-lake/cdc/lake/wordpress-db/wp_stats/',
  format = 'PARQUET'
);

-- wordpress-db.wp_stats: the current rows (snapshot table)
-- Trino reads a snapshot table as a Hive table whose input format is SymlinkTextInputFormat, which
-- Trino's CREATE TABLE cannot declare: create it in the metastore (or Glue) with `binlake ddl --engine athena`.
-- Its symlink manifest: s3://my-lake/cdc/lake/_binlake/snapshot/wordpress-db/wp_stats/symlink/manifest

