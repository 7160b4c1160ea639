
# Copyright (c) campaign contributors
#
# 013_random_model.pl — randomized model of replication (issue 10, "What it
# must show"): seeded streams of keyed and keyless changes, ingested by
# concurrent sessions, must leave the cloud table exactly as an independent
# model computed in Perl says (test/lib/CampaignModel.pm: per key, its final
# existence and every attribute as text; partial changes never null the
# attributes they do not carry; updates and deletes of absent keys do
# nothing; keyless inserts keep the UUID xtk_ingest returned).
#
# Each stream mixes xtk_ingest_ext collections of upserts, partial updates
# and deletes (a key several times in one collection too), single records,
# keyless xtk_ingest collections (new ids, and re-inserts of deleted keys),
# xtk_ingest with _key (reconciling inserts), and explicit transactions of
# several calls, a quarter of them rolled back.  Four sessions ingest at
# once, each owning its keys, so a key's staging order is its session's.
# Values carry tabs, newlines, backslashes, "\N", quotes, XML specials and
# 2-4 byte UTF-8; a few memo values are kilobytes long; empty non-string
# values are NULL.  Servers are UTF8.
#
#   seeds:        three seeds, replicated continuously while they are
#                 ingested (batch_size 3000: several batches, cut anywhere);
#   kill -9:      a backlog drained with campaign.batch_size 500 while every
#                 replication worker is killed with SIGKILL until 10 kills
#                 happened with changes pending (the postmaster restarts
#                 them): every other kill while a batch waits on a lock of
#                 the cloud table, the others at random moments after a
#                 batch committed; more backlog staged when the drain
#                 outruns the kills;
#   cloud stop:   the cloud server stopped with -m immediate while a batch
#                 runs (held on a lock of the cloud table), ingest going on
#                 while it is down, then started;
#   two databases: campaign.database = 'postgres, second' (the pool serves
#                 both from the start, so the kills above hit the workers of
#                 both): streams ingested into both at once, each database
#                 replicating into its own cloud database, each checked
#                 against its own model;
# Together the streams stage more than 50,000 committed changes (run time
# on main at the time of writing: see the closing note of issue 10;
# CAMPAIGN_MODEL_SCALE=0.05 runs the same scenarios on 1/20 of the volume).

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use FindBin;
use lib "$FindBin::Bin/../lib";
use CampaignNodes;
use CampaignModel;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

my $started = time();
# CAMPAIGN_MODEL_SCALE scales every stream (e.g. 0.05 for a quick look);
# below 1 the file stages fewer than 50,000 changes and says so.
my $SCALE = $ENV{CAMPAIGN_MODEL_SCALE} // 1;
sub scaled { return int($_[0] * $SCALE); }
my @UTF8 = ('-E', 'UTF8', '--locale=C');
my $XML = model_table_schema();

my $cloud = start_cloud(initdb => \@UTF8);
my $local = start_local(qq{
restart_after_crash = on
campaign.database = 'postgres, second'
campaign.batch_size = 3000
campaign.staging_retention = '7d'
}, initdb => \@UTF8);
$local->safe_psql('postgres', 'CREATE DATABASE second');
$cloud->safe_psql('postgres', 'CREATE DATABASE second');

sub lq { return $local->safe_psql('postgres', $_[0]); }

my $SCHEMA = setup_replication($local, 'postgres', $cloud, 'postgres', $XML);
is($SCHEMA, 'dem:modelTable', 'schema registered and deployed');
my $model = CampaignModel->new;
my $total_changes = 0;

sub pending
{
	return lq("SELECT pending FROM campaign.staging_status WHERE schema_name = '$SCHEMA'");
}

# ---------------------------------------------------------------- seeds

subtest 'three seeds, four concurrent sessions, continuous replication' => sub {
	for my $seed (1 .. 3)
	{
		my $t0 = time();
		my $before = $model->changes;
		ok($model->stream($local, 'postgres', seed => $seed, prefix => chr(ord('a') + $seed - 1),
				changes => scaled(13000), nkeys => 300),
			"seed $seed: four sessions ingested their streams");
		my $n = $model->changes - $before;
		my $t1 = time();
		ok(wait_caught_up($local, 'postgres', $SCHEMA), "seed $seed: nothing pending, no change in error");
		note(sprintf('seed %d: %d changes, ingest %.1fs, caught up %.1fs later', $seed, $n, $t1 - $t0,
				time() - $t1));
		$model->check_cloud($cloud, 'postgres', "seed $seed");
	}
};

# ---------------------------------------------------------------- kill -9

subtest 'kill -9 of the replication workers while they drain' => sub {
	lq("SELECT campaign.stop_replication('$SCHEMA')");
	ok($model->stream($local, 'postgres', seed => 4, prefix => 'a', changes => scaled(14000), nkeys => 300),
		'backlog staged while replication is stopped');
	lq("ALTER SYSTEM SET campaign.batch_size = 500");
	lq('SELECT pg_reload_conf()');
	lq("SELECT campaign.start_replication('$SCHEMA')");

	my ($kills, $mid_drain, $restaged) = (0, 0, 0);
	my $rng = CampaignModel::Stream->new(4);
	# Odd kills: while a batch waits on a lock of the cloud table (mid-batch
	# whatever the engine's speed); even kills: at a random moment after a
	# batch committed.  Until 10 kills happened with changes pending.
	while ($mid_drain < 10 && $kills < 30)
	{
		# the backlog is topped up, and the lock taken, while replication
		# is stopped, so that a fast worker cannot drain it in between
		my $lock_kill = $kills % 2 == 0;
		lq("SELECT campaign.stop_replication('$SCHEMA')");
		# a worker ends the turn it was in (up to 20 batches) before it
		# sees the stop
		wait_for($local,
			"SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'campaign replication worker'"
			  . " AND state = 'active' AND query LIKE 'replicating %'", '0', 120);
		if (pending() < scaled(1000))
		{
			$restaged++;
			$model->stream($local, 'postgres', seed => 40 + $restaged, prefix => 'b', changes => scaled(4000), nkeys => 300)
			  or last;
		}
		my $pending = pending();
		my $locker;
		if ($lock_kill)
		{
			$locker = $cloud->background_psql('postgres', on_error_stop => 0);
			$locker->query_safe('BEGIN; LOCK TABLE dem.modeltable IN ACCESS EXCLUSIVE MODE');
		}
		lq("SELECT campaign.start_replication('$SCHEMA')");
		if ($lock_kill)
		{
			wait_for($cloud,
				"SELECT count(*) > 0 FROM pg_stat_activity WHERE application_name LIKE 'campaign replication%' AND wait_event_type = 'Lock'",
				't', 120);
		}
		else
		{
			wait_for($local, "SELECT pending < $pending FROM campaign.staging_status WHERE schema_name = '$SCHEMA'",
				't', 120);
			usleep($rng->int(300_000));
		}
		my @victims = worker_pids($local);
		if (!@victims)
		{
			diag('no replication worker to kill');
			last;
		}
		$mid_drain++ if pending() > 0;
		kill 'KILL', @victims;
		$kills++;
		note("kill $kills: workers @victims" . ($locker ? ' (batch waiting on a cloud lock)' : ''));
		if ($locker)
		{
			$locker->query_safe('COMMIT');
			$locker->quit;
		}
		ok(scalar(wait_new_workers($local, 120, @victims)), "workers back after kill $kills");
	}
	cmp_ok($kills, '>=', 10, "$kills kills of the workers");
	cmp_ok($mid_drain, '>=', 10, "$mid_drain kills with changes pending (backlog restaged $restaged times)");
	ok(wait_caught_up($local, 'postgres', $SCHEMA), 'after the kills: nothing pending, no change in error');
	$model->check_cloud($cloud, 'postgres', 'after kill -9 of the workers');
	lq("ALTER SYSTEM RESET campaign.batch_size");
	lq('SELECT pg_reload_conf()');
};

# ---------------------------------------------------------------- cloud stopped mid-batch

subtest 'immediate shutdown of the cloud mid-batch' => sub {
	for my $round (1 .. 2)
	{
		lq("SELECT campaign.stop_replication('$SCHEMA')");
		ok($model->stream($local, 'postgres', seed => 50 + $round, prefix => 'c', changes => scaled(6000), nkeys => 300),
			"round $round: backlog staged");
		# mid-batch: the batch waits on a lock of the cloud table
		my $locker = $cloud->background_psql('postgres', on_error_stop => 0);
		$locker->query_safe('BEGIN; LOCK TABLE dem.modeltable IN ACCESS EXCLUSIVE MODE');
		lq("SELECT campaign.start_replication('$SCHEMA')");
		ok( wait_for($cloud,
				"SELECT count(*) > 0 FROM pg_stat_activity WHERE application_name LIKE 'campaign replication%' AND wait_event_type = 'Lock'",
				't', 120),
			"round $round: a batch runs on the cloud (waiting on the table lock)");
		my $at = pending();
		my $down_at = lq('SELECT now()');
		$cloud->stop('immediate');
		eval { $locker->quit };
		note("round $round: cloud stopped with $at changes pending");
		cmp_ok($at, '>', 0, "round $round: changes were pending when the cloud stopped");
		ok($model->stream($local, 'postgres', seed => 60 + $round, prefix => 'd', changes => scaled(2000), nkeys => 100),
			"round $round: ingest goes on while the cloud is down");
		ok( wait_for($local,
				"SELECT count(*) > 0 FROM campaign.replication_history WHERE outcome = 'failed' AND finished_at > '$down_at'",
				't', 60),
			"round $round: a failed batch is recorded");
		$cloud->start;
		ok(wait_caught_up($local, 'postgres', $SCHEMA), "round $round: caught up after the cloud came back");
		$model->check_cloud($cloud, 'postgres', "round $round: after the cloud's immediate shutdown");
	}
};

# ---------------------------------------------------------------- two databases

subtest 'two databases served by one cluster' => sub {
	my $schema2 = setup_replication($local, 'second', $cloud, 'second', $XML);
	is($schema2, 'dem:modelTable', 'second database: schema registered and deployed');
	my $model2 = CampaignModel->new;
	my $runs = $model->start_stream($local, 'postgres', seed => 70, prefix => 'e', changes => scaled(6000),
		nkeys => 300);
	ok($model2->stream($local, 'second', seed => 71, prefix => 'f', changes => scaled(6000), nkeys => 300),
		'second database: four sessions ingested their streams');
	ok($model->finish_sessions($runs), 'postgres: four sessions ingested theirs at the same time');
	ok(wait_caught_up($local, 'postgres', $SCHEMA), 'postgres: nothing pending, no change in error');
	ok(wait_caught_up($local, 'second', $schema2), 'second: nothing pending, no change in error');
	$model->check_cloud($cloud, 'postgres', 'two databases: postgres');
	$model2->check_cloud($cloud, 'second', 'two databases: second');
	$total_changes += $model2->changes;
};

$total_changes += $model->changes;

cmp_ok($total_changes, '>=', 50000, "$total_changes committed changes modelled in this file");
note(sprintf('total runtime %.0fs', time() - $started));

$local->stop;
$cloud->stop;

done_testing();
