
# Copyright (c) campaign contributors
#
# 016_failover.pl — exactly once across failovers of the local server to its
# streaming standby (issue 16, src/failover.c).
#
# A cloud node and a chain of local nodes: each is a streaming standby
# (pg_basebackup, physical slot) of the one before, with the same
# shared_preload_libraries, so the same origin for the cloud; each failover
# stops the primary (immediate) and promotes the standby, which becomes the
# primary of the next standby.  Every record carries a tag naming its phase
# (A1, A2, ...) and a unique id; the cloud table has a unique index on id,
# so a change applied twice would be rejected (and show in _stg_error).
# After each failover the whole cloud table is compared with the model (the
# records of every phase whose records reached the cloud), and the
# survivor's staging table must hold no rejected row.
#
#   1. standby caught up (node1 -> node2), with rows staged on the primary
#      and not replicated yet (replication stopped): the survivor sends
#      them, and its new changes; nothing lost is reported.
#   2. standby behind (node2 -> node3), the scenario of the issue: the
#      standby is stopped while the primary ingests 100 records and
#      replicates them, the primary dies, the standby is promoted and
#      ingests 20 more: those reach the cloud, and the 100 the cloud holds
#      that the survivor lacks are reported with their exact numbers
#      (campaign.failovers, replication_history, a WARNING).
#   3. with campaign.synchronized_standby_slots (node3 -> node4): while the
#      standby's walreceiver is stopped (SIGSTOP) the cloud gets nothing
#      new and the worker shows its wait; it flows on SIGCONT; with the
#      standby shut down, the batch fails at once (history says why) and
#      the cloud gets nothing; then the primary dies and the standby, which
#      lacks the last records, is promoted: the cloud lacks them too, and
#      nothing lost is reported.
#   4. kill -9 of the worker around the promotion (node4 -> node5): during
#      recovery, and right after the promotion while records are being
#      ingested.
# The standby's worker idles in recovery without errors (checked on each
# standby's log), and takes over at the promotion without a restart.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use FindBin;
use lib "$FindBin::Bin/../lib";
use CampaignNodes;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

my $SCHEMA = 'dem:sampleTable';
my $XML_SCHEMA = sample_table_schema();
my $started = time();

my $cloud = start_cloud();
my $node1 = start_local(qq{
# one replication worker (campaign.max_workers): the test follows it by its pid
campaign.max_workers = 1
restart_after_crash = on
campaign.naptime = '100ms'
campaign.cloud_timeout = '60s'
wal_keep_size = '64MB'
}, name => 'node1', allows_streaming => 1);

sub sq { my ($node, $sql) = @_; return $node->safe_psql('postgres', $sql); }

sq($node1, 'CREATE EXTENSION campaign CASCADE');
my ($cloud_host, $cloud_port) = ($cloud->host, $cloud->port);
sq($node1, qq{CREATE SERVER ffda FOREIGN DATA WRAPPER postgres_fdw
        OPTIONS (host '$cloud_host', port '$cloud_port', dbname 'postgres')});
sq($node1, 'CREATE USER MAPPING FOR PUBLIC SERVER ffda');
sq($node1, "SELECT campaign.register_schema(\$x\$$XML_SCHEMA\$x\$)");
sq($node1, "SELECT campaign.deploy('$SCHEMA')");

# ---------------------------------------------------------------- helpers

my %model;    # id => "tag|score": what the cloud must hold

# Stage records $tag-1 .. $tag-$n (keyless inserts) in one transaction.
sub ingest
{
	my ($node, $tag, $n) = @_;
	sq($node, qq{SELECT campaign.xtk_ingest('<sampleTableStg-collection xtkschema="dem:sampleTableStg">'
        || string_agg(format('<sampleTableStg id="$tag-%s" testcol1="$tag" score="%s"/>', i, i), '' ORDER BY i)
        || '</sampleTableStg-collection>') IS NOT NULL FROM generate_series(1, $n) i});
}

# The records of $tag are expected in the cloud.
sub expect
{
	my ($tag, $n) = @_;
	$model{"$tag-$_"} = "$tag|$_" for 1 .. $n;
}

sub cloud_count
{
	my ($tag) = @_;
	return sq($cloud, "SELECT count(*) FROM dem.sampletable WHERE testcol1 = '$tag'");
}

sub model_text
{
	return join("\n", map { "$_|$model{$_}" } sort keys %model);
}

# The cloud holds exactly the model, each id once, and the survivor
# rejected nothing (a change applied twice would have been).
sub check_cloud
{
	my ($what, $survivor) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	my $n = scalar keys %model;
	ok(wait_for($cloud, 'SELECT count(*) FROM dem.sampletable', $n, 90),
		"$what: the cloud holds $n records");
	ok(wait_for($survivor, "SELECT pending FROM campaign.staging_status WHERE schema_name = '$SCHEMA'", '0', 60),
		"$what: nothing left pending on the survivor");
	is(sq($cloud, 'SELECT id || \'|\' || testcol1 || \'|\' || score FROM dem.sampletable ORDER BY id COLLATE "C"'),
		model_text(), "$what: the cloud's content is the model's, each record once");
	is(sq($survivor, 'SELECT count(*) FROM dem.sampletablestg WHERE _stg_error IS NOT NULL'), '0',
		"$what: no change rejected by the cloud (none applied twice)");
}

sub worker_pid
{
	my ($node) = @_;
	my ($rc, $out) = $node->psql('postgres',
		"SELECT pid FROM pg_stat_activity WHERE backend_type = 'campaign replication worker'");
	return $rc == 0 && $out =~ /^\d+$/ ? $out : '';
}

# A standby of $primary, streaming through physical slot $slot.
sub make_standby
{
	my ($primary, $name) = @_;
	my $slot = "slot_$name";
	sq($primary, "SELECT pg_create_physical_replication_slot('$slot', true)");
	$primary->backup("backup_$name");
	my $standby = PostgreSQL::Test::Cluster->new($name);
	$standby->init_from_backup($primary, "backup_$name", has_streaming => 1);
	$standby->append_conf('postgresql.conf', "primary_slot_name = '$slot'");
	$standby->start;
	return $standby;
}

# The standby's worker waits for the promotion, and said so, without errors.
sub check_idle_standby
{
	my ($standby) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	my $name = $standby->name;
	ok(wait_for($standby,
			"SELECT query FROM pg_stat_activity WHERE backend_type = 'campaign replication worker'",
			'waiting for the promotion of this standby', 60),
		"$name: the worker idles in recovery");
	my $log = slurp_file($standby->logfile);
	like($log, qr/replication of database "postgres" starts when it is promoted/,
		"$name: the worker logged that it waits for the promotion");
	unlike($log, qr/background worker "campaign replication worker" \(PID \d+\) exited with exit code 1/,
		"$name: the worker did not fail in recovery");
}

sub promote
{
	my ($node) = @_;
	$node->promote;
	ok(wait_for($node, 'SELECT pg_is_in_recovery()', 'f', 60), $node->name . ': promoted');
}

sub timeline
{
	my ($node) = @_;
	return sq($node, "SELECT ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int");
}

sub staged_range
{
	my ($node, $tag) = @_;
	return sq($node, "SELECT min(_stg_seq) || ' ' || max(_stg_seq) FROM dem.sampletablestg WHERE testcol1 = '$tag'");
}

# ---------------------------------------------------------------- 1. caught up

my $node2 = make_standby($node1, 'node2');
check_idle_standby($node2);
my ($rc, $out, $err) = $node2->psql('postgres', "SELECT campaign.replicate_now('$SCHEMA')");
like($err, qr/cannot replicate while the server is in recovery/, 'replicate_now() is refused on a standby');

ingest($node1, 'A1', 40);
expect('A1', 40);
ok(wait_for($cloud, "SELECT count(*) FROM dem.sampletable WHERE testcol1 = 'A1'", '40'), '1: A1 replicated');
sq($node1, "SELECT campaign.stop_replication('$SCHEMA')");
ingest($node1, 'A2', 10);    # staged, not replicated: the survivor sends them
expect('A2', 10);
$node1->wait_for_catchup('node2', 'flush', $node1->lsn('insert'));
$node1->stop('immediate');
promote($node2);
is(timeline($node2), '2', '1: node2 is on timeline 2');
sq($node2, "SELECT campaign.start_replication('$SCHEMA')");
ingest($node2, 'A3', 20);
expect('A3', 20);
check_cloud('1 (standby caught up)', $node2);
my ($a3_min) = split / /, staged_range($node2, 'A3');
cmp_ok($a3_min, '>', 2**48, '1: numbers staged on timeline 2 are above 2^48');
is(sq($node2, "SELECT timeline || ' ' || lost_count || ' ' || coalesce(lost_from::text, '-') FROM campaign.failovers"),
	'2 0 -', '1: the failover was checked: the cloud holds nothing node2 lacks');

# ---------------------------------------------------------------- 2. behind

my $node3 = make_standby($node2, 'node3');
check_idle_standby($node3);
ingest($node2, 'B1', 40);
expect('B1', 40);
ok(wait_for($cloud, "SELECT count(*) FROM dem.sampletable WHERE testcol1 = 'B1'", '40'), '2: B1 replicated');
ok(wait_for($node2, "SELECT pending FROM campaign.staging_status WHERE schema_name = '$SCHEMA'", '0'),
	'2: node2 recorded B1 as replicated');
$node2->wait_for_catchup('node3', 'replay', $node2->lsn('insert'));
$node3->stop('fast');
# More than the 32 numbers a sequence logs ahead: the standby's sequence is
# left behind the cloud's watermark.
ingest($node2, 'B2', 100);
expect('B2', 100);    # in the cloud, lost by the survivor
ok(wait_for($cloud, "SELECT count(*) FROM dem.sampletable WHERE testcol1 = 'B2'", '100'),
	'2: B2 replicated while the standby is down');
my ($b2_min, $b2_max) = split / /, staged_range($node2, 'B2');
$node2->stop('immediate');
$node3->start;
promote($node3);
is(timeline($node3), '3', '2: node3 is on timeline 3');
ok(wait_for($node3, "SELECT lost_count FROM campaign.failovers WHERE timeline = 3", '100', 60),
	'2: the loss is reported right after the promotion, before any new change');
ingest($node3, 'B3', 20);
expect('B3', 20);
check_cloud('2 (standby behind)', $node3);
my ($b3_min) = split / /, staged_range($node3, 'B3');
cmp_ok($b3_min, '>', 2 * 2**48, '2: numbers staged on timeline 3 are above 2 * 2^48');
is(sq($node3, 'SELECT lost_count || \' \' || lost_from || \' \' || lost_upto FROM campaign.failovers WHERE timeline = 3'),
	"100 $b2_min $b2_max", '2: campaign.failovers reports the 100 changes the cloud holds and node3 lacks, by number');
like(sq($node3, "SELECT error FROM campaign.replication_history WHERE error LIKE '%does not have%'"),
	qr/the cloud holds 100 changes, numbered $b2_min to $b2_max, that this database does not have/,
	'2: so does replication_history');
like(slurp_file($node3->logfile),
	qr/WARNING:  campaign: dem:sampleTable: the cloud holds 100 changes, numbered $b2_min to $b2_max/,
	'2: and the log, as a WARNING');

# ---------------------------------------------------------------- 3. the wait

my $node4 = make_standby($node3, 'node4');
check_idle_standby($node4);
sq($node3, "ALTER SYSTEM SET campaign.synchronized_standby_slots = 'slot_node4'");
sq($node3, 'SELECT pg_reload_conf()');
ingest($node3, 'C1', 10);
expect('C1', 10);
ok(wait_for($cloud, "SELECT count(*) FROM dem.sampletable WHERE testcol1 = 'C1'", '10'),
	'3: with the wait, C1 replicated (the standby confirms)');

# The standby's walreceiver stalls: the batch waits, the cloud gets nothing.
my $walrcv = sq($node4, 'SELECT pid FROM pg_stat_wal_receiver');
ok($walrcv =~ /^\d+$/, '3: the standby has a walreceiver');
kill 'STOP', $walrcv;
ingest($node3, 'C2', 10);
expect('C2', 10);
ok(wait_for($node3, "SELECT query LIKE 'waiting for the standby of replication slot \"slot_node4\"%'"
		  . " FROM pg_stat_activity WHERE backend_type = 'campaign replication worker'", 't', 30),
	'3: the worker shows it waits for the standby');
sleep 2;
is(cloud_count('C2'), '0', '3: nothing reaches the cloud while the standby does not confirm');
kill 'CONT', $walrcv;
ok(wait_for($cloud, "SELECT count(*) FROM dem.sampletable WHERE testcol1 = 'C2'", '10'),
	'3: C2 reaches the cloud once the standby confirms');

# The standby is shut down: batches fail at once, the cloud gets nothing.
$node4->stop('fast');
ingest($node3, 'C3', 10);    # lost with node3: never in the cloud
ok(wait_for($node3, "SELECT count(*) > 0 FROM campaign.replication_history WHERE outcome = 'failed'"
		  . " AND error LIKE 'the standby of replication slot \"slot_node4\" is not connected%'", 't', 30),
	'3: with the standby down, the batch fails and history says why');
sleep 2;
is(cloud_count('C3'), '0', '3: nothing reaches the cloud while the standby is down');
$node3->stop('immediate');
$node4->start;
promote($node4);
# Inherited from node3: node4 has no such slot (its batches would fail).
sq($node4, 'ALTER SYSTEM RESET campaign.synchronized_standby_slots');
sq($node4, 'SELECT pg_reload_conf()');
ingest($node4, 'C4', 10);
expect('C4', 10);
check_cloud('3 (standby wait)', $node4);
is(sq($node4, 'SELECT lost_count FROM campaign.failovers WHERE timeline = 4'), '0',
	'3: with the wait, the promoted standby lacks nothing the cloud has');
is(sq($node4, "SELECT count(*) FROM dem.sampletablestg WHERE testcol1 = 'C3'"), '0',
	'3: (the records the cloud never got are not on the survivor either)');

# ---------------------------------------------------------------- 4. kill -9

my $node5 = make_standby($node4, 'node5');
check_idle_standby($node5);
ingest($node4, 'D1', 30);
expect('D1', 30);
ok(wait_for($cloud, "SELECT count(*) FROM dem.sampletable WHERE testcol1 = 'D1'", '30'), '4: D1 replicated');
$node4->wait_for_catchup('node5', 'replay', $node4->lsn('insert'));
$node4->stop('immediate');

# In recovery: the postmaster restarts the standby, which resumes recovery.
my $pid = worker_pid($node5);
ok($pid, '4: the standby has its worker');
kill 'KILL', $pid;
my $deadline = time() + 60;
my $new = '';
while (time() < $deadline)
{
	$new = worker_pid($node5);
	last if $new && $new ne $pid;
	usleep(100_000);
}
ok($new && $new ne $pid, '4: a new worker after kill -9 in recovery');
ok(wait_for($node5, 'SELECT pg_is_in_recovery()', 't', 60), '4: the standby is still in recovery');

# Right after the promotion, while ingesting.
promote($node5);
$pid = worker_pid($node5);
kill 'KILL', $pid if $pid;
my $ingested = 0;
$deadline = time() + 60;
while (time() < $deadline && $ingested < 2)
{
	my ($rc) = $node5->psql('postgres',
		qq{SELECT campaign.xtk_ingest('<sampleTableStg-collection xtkschema="dem:sampleTableStg">'
        || string_agg(format('<sampleTableStg id="D2-$ingested-%s" testcol1="D2" score="%s"/>', i, i), '' ORDER BY i)
        || '</sampleTableStg-collection>') IS NOT NULL FROM generate_series(1, 10) i});
	if ($rc == 0)
	{
		$model{"D2-$ingested-$_"} = "D2|$_" for 1 .. 10;
		$ingested++;
	}
	else
	{
		usleep(100_000);
	}
}
is($ingested, 2, '4: ingest goes on on the promoted server');
check_cloud('4 (kill -9 around the promotion)', $node5);
is(sq($node5, "SELECT count(*) || ' ' || sum(lost_count) FROM campaign.failovers WHERE timeline = 5"), '1 0',
	'4: one check of the failover, nothing lost');

# Every change staged on the survivor is in the cloud.
is(sq($node5, "SELECT count(*) FROM dem.sampletablestg WHERE _stg_seq > (SELECT replicated_upto FROM campaign.schemas"
		  . " WHERE namespace = 'dem' AND name = 'sampleTable')"), '0',
	'4: the survivor has nothing beyond its copy of the watermark');

$node5->stop;
$cloud->stop;
note(sprintf('016_failover ran in %.0f s', time() - $started));
done_testing();
