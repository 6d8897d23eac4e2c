CREATE DATABASE IF NOT EXISTS `wordpress_db`;

-- wordpress-db.wp_stats: the change log, every record (delivery.format: csv)
CREATE EXTERNAL TABLE IF NOT EXISTS `wordpress_db`.`wp_stats_changes` (
  `op` string,
  `_stream_position` string,
  `_commit_timestamp` string,
  `_transaction_id` string,
  `_partition_key` string,
  `id` string,
  `views` string,
  `ratio` string,
  `score` string,
  `weight` string,
  `flag` string,
  `day` string,
  `at` string,
  `dur` string,
  `yr` string,
  `kind` string,
  `raw` string,
  `bits` string,
  `doc` string,
  `note` string
)
ROW FORMAT SERDE 'org.apache.hadoop.hive.serde2.OpenCSVSerde'
WITH SERDEPROPERTIES ('separatorChar' = ',', 'quoteChar' = '"', 'escapeChar' = '"')
LOCATION 's3://my-lake/cdc/lake/wordpress-db/wp_stats/'
TBLPROPERTIES ('skip.header.line.count' = '1');

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

