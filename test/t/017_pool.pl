
# Copyright (c) campaign contributors
#
# 017_pool.pl — the pool of replication workers (issue 10, SPEC §12):
#   - campaign.database is a list (here with a quoted name holding a space
#     and capitals): each database gets campaign.max_workers workers, shown
#     in pg_stat_activity with their database and number;
#   - a schema is served by one worker at a time while different schemas
#     drain in parallel: with the cloud table of one schema locked, its
#     worker waits (pg_stat_activity says which schema, pg_locks shows its
#     claim) while the other schemas' backlogs arrive in full;
#   - every row arrives exactly once, keyed upserts with their last value;
#   - the second database replicates to its own cloud database, and
#     replicate_now() works there; a database not listed gets a clear error.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use FindBin;
use lib "$FindBin::Bin/../lib";
use CampaignNodes;
use PostgreSQL::Test::Utils;
use Test::More;

my $N = 4000;          # keyless rows per schema
my $K = 500;           # keys upserted twice per schema
my $LOCK_CLASS = 1128353104;    # 'CAMP': first key of the workers' claims

my $cloud = start_cloud();
$cloud->safe_psql('postgres', 'CREATE DATABASE other');
my $local = start_local(qq{
campaign.database = 'postgres, "Other Db"'
campaign.max_workers = 2
campaign.naptime = '200ms'
campaign.batch_size = 1000
});
$local->safe_psql('postgres', 'CREATE DATABASE "Other Db"');
$local->safe_psql('postgres', 'CREATE DATABASE unlisted');

sub lq { my ($db, $sql) = @_; return $local->safe_psql($db, $sql); }
sub cq { my ($db, $sql) = @_; return $cloud->safe_psql($db, $sql); }

# The workers of "Other Db" fail to connect until it exists, and are
# started again (bgw_restart_time).
ok( wait_for($local,
		"SELECT string_agg(datname || ':' || application_name, ',' ORDER BY datname, application_name)"
		  . " FROM pg_stat_activity WHERE backend_type = 'campaign replication worker'",
		'Other Db:campaign replication worker 1 of Other Db,Other Db:campaign replication worker 2 of Other Db,'
		  . 'postgres:campaign replication worker 1 of postgres,postgres:campaign replication worker 2 of postgres',
		120),
	'two workers for each database of campaign.database, with their database and number');

sub schema_xml
{
	my ($name) = @_;
	return qq{<srcSchema name="$name" namespace="dem">
  <element name="$name" autopk="true" autouuid="true" autoStg="true">
    <key name="id" internal="true"><keyfield xpath="\@id"/></key>
    <attribute name="id" type="string" length="20"/>
    <attribute name="score" type="long"/>
  </element>
</srcSchema>};
}

sub setup
{
	my ($db, $cloud_db, @names) = @_;
	my ($host, $port) = ($cloud->host, $cloud->port);
	lq($db, qq{CREATE EXTENSION campaign CASCADE;
CREATE SERVER ffda FOREIGN DATA WRAPPER postgres_fdw OPTIONS (host '$host', port '$port', dbname '$cloud_db');
CREATE USER MAPPING FOR PUBLIC SERVER ffda;});
	for my $name (@names)
	{
		lq($db, "SELECT campaign.register_schema(\$x\$" . schema_xml($name) . "\$x\$)");
		lq($db, "SELECT campaign.deploy('dem:$name')");
	}
}

# $n keyless rows "k1".."k$n", then keys "u1".."u$k" upserted with score 1
# and again with score 2, in one statement each.
sub stage
{
	my ($db, $name, $n, $k) = @_;
	lq($db, qq{SELECT campaign.xtk_ingest((SELECT '<${name}Stg-collection xtkschema="dem:${name}Stg">'
	  || string_agg(format('<${name}Stg id="k%s" score="%s"/>', g, g), '') || '</${name}Stg-collection>'
	  FROM generate_series(1, $n) g))});
	for my $score (1, 2)
	{
		lq($db, qq{SELECT campaign.xtk_ingest_ext((SELECT '<${name}Stg-collection xtkschema="dem:${name}Stg">'
		  || string_agg(format('<${name}Stg _key="\@id" id="u%s" score="%s"/>', g, $score), '')
		  || '</${name}Stg-collection>' FROM generate_series(1, $k) g))});
	}
}

# What the cloud table of a schema must hold: every row once.
my $EXPECTED = ($N + $K) . '|' . ($N + $K) . '|' . ($N * ($N + 1) / 2 + 2 * $K);

sub cloud_state
{
	my ($db, $name) = @_;
	return cq($db, "SELECT count(*), count(DISTINCT id), sum(score) FROM dem.\"$name\"");
}

my @names = map { "pool$_" } 1 .. 4;
setup('postgres', 'postgres', @names);
setup('Other Db', 'other', 'other1');

# ---------------------------------------------------------------- parallel drains

lq('postgres', "SELECT campaign.stop_replication('dem:$_')") for @names;
stage('postgres', $_, $N, $K) for @names;
is(lq('postgres', "SELECT sum(pending) FROM campaign.staging_status WHERE schema_name LIKE 'dem:pool%'"),
	4 * ($N + 2 * $K), 'backlogs staged in four schemas');

my $cloud_table = lc($names[0]);
my $locker = $cloud->background_psql('postgres');
$locker->query_safe("BEGIN; LOCK TABLE dem.$cloud_table IN ACCESS EXCLUSIVE MODE");
lq('postgres', "SELECT campaign.start_replication('dem:$_')") for @names;

ok( wait_for($cloud,
		"SELECT count(*) FROM pg_stat_activity WHERE application_name = 'campaign replication worker'"
		  . " AND wait_event_type = 'Lock'", '1', 60),
	'a batch of dem:pool1 waits on the locked cloud table');
my $holder = lq('postgres',
	"SELECT pid FROM pg_stat_activity WHERE backend_type = 'campaign replication worker' AND query LIKE 'replicating dem:pool1%'");
like($holder, qr/^\d+$/, 'pg_stat_activity: one worker replicates dem:pool1');
is(lq('postgres', "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND classid = $LOCK_CLASS"
		  . " AND pid = $holder AND granted"),
	'1', 'pg_locks: that worker holds its claim on the schema');
for my $name (@names[1 .. 3])
{
	ok(wait_for_in($cloud, 'postgres', "SELECT count(*), count(DISTINCT id), sum(score) FROM dem.$name",
			$EXPECTED, 120),
		"dem:$name drained by the other worker while dem:pool1 is held, every row once");
}
is(lq('postgres', "SELECT pending > 0 FROM campaign.staging_status WHERE schema_name = 'dem:pool1'"),
	't', 'dem:pool1 still pending');

$locker->query_safe('COMMIT');
$locker->quit;
ok(wait_for_in($cloud, 'postgres', "SELECT count(*), count(DISTINCT id), sum(score) FROM dem.$cloud_table",
		$EXPECTED, 120),
	'dem:pool1 drained once its table is unlocked, every row once');
ok(wait_for($local, "SELECT sum(pending) FROM campaign.staging_status WHERE schema_name LIKE 'dem:pool%'", '0'),
	'nothing pending');
is(lq('postgres', "SELECT count(*) FROM campaign.replication_history WHERE outcome <> 'success'"),
	'0', 'every batch succeeded');
is(lq('postgres', "SELECT count(DISTINCT schema_name) FROM campaign.replication_history WHERE rows > 0"),
	'4', 'the history has batches of the four schemas');

# ---------------------------------------------------------------- the second database

lq('Other Db', "SELECT campaign.stop_replication('dem:other1')");
stage('Other Db', 'other1', $N, $K);
is(lq('Other Db', "SELECT campaign.replicate_now('dem:other1')"), $N + 2 * $K,
	'"Other Db": replicate_now() served by its own workers');
is(cloud_state('other', 'other1'), $EXPECTED, '"Other Db" replicated to its own cloud database, every row once');
lq('Other Db', "SELECT campaign.start_replication('dem:other1')");
lq('Other Db', q{SELECT campaign.xtk_ingest('<other1Stg id="late" score="7" xtkschema="dem:other1Stg"/>')});
ok(wait_for_in($cloud, 'other', "SELECT score FROM dem.other1 WHERE id = 'late'", '7'),
	'"Other Db": continuous replication after an ingest');
is(cq('postgres', "SELECT count(*) FROM information_schema.tables WHERE table_name = 'other1'"), '0',
	'nothing of "Other Db" went to the first database\'s cloud');

# ---------------------------------------------------------------- a database not listed

lq('unlisted', 'CREATE EXTENSION campaign CASCADE');
my ($rc, $out, $err) = $local->psql('unlisted', "SELECT campaign.replicate_now('dem:pool1')");
isnt($rc, 0, 'replicate_now() in a database campaign.database does not list fails');
like($err, qr/database "unlisted" is not served by campaign's replication workers/,
	'... saying the database is not served');
like($err, qr/campaign\.database is "postgres, "Other Db""/, '... with campaign.database');

$local->stop;
$cloud->stop;

done_testing();
