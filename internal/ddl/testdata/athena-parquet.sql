CREATE DATABASE IF NOT EXISTS `wordpress_db`;

-- wordpress-db.wp_stats: the change log, every record (delivery.format: parquet)
CREATE EXTERNAL TABLE IF NOT EXISTS `wordpress_db`.`wp_stats_changes` (
  `_op` string,
  `_stream_position` string,
  `_commit_timestamp` timestamp,
  `_transaction_id` decimal(20,0),
  `_partition_key` string,
  `_zero_dates` string,
  `id` bigint,
  `views` decimal(20,0),
  `ratio` decimal(10,3),
  `score` double,
  `weight` float,
  `flag` bigint,
  `day` date,
  `at` timestamp,
  `dur` string,
  `yr` bigint,
  `kind` string,
  `raw` binary,
  `bits` decimal(20,0),
  `doc` string,
  `note` string
)
STORED AS PARQUET
LOCATION 's3://my-lake/cdc/lake/wordpress-db/wp_stats/';

-- wordpress-db.wp_stats: the current rows (snapshot table)
CREATE EXTERNAL TABLE IF NOT EXISTS `wordpress_db`.`wp_stats` (
  `_op` string,
  `_stream_position` string,
  `_commit_timestamp` timestamp,
  `_transaction_id` decimal(20,0),
  `_partition_key` string,
  `_zero_dates` string,
  `id` bigint,
  `views` decimal(20,0),
  `ratio` decimal(10,3),
  `score` double,
  `weight` float,
  `flag` bigint,
  `day` date,
  `at` timestamp,
  `dur` string,
  `yr` bigint,
  `kind` string,
  `raw` binary,
  `bits` decimal(20,0),
  `doc` string,
  `note` string
)
ROW FORMAT SERDE 'org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe'
STORED AS INPUTFORMAT 'org.apache.hadoop.hive.ql.io.SymlinkTextInputFormat'
OUTPUTFORMAT 'org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat'
LOCATION 's3://my-lake/cdc/lake/_binlake/snapshot/wordpress-db/wp_stats/symlink/';

