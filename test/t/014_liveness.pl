
# Copyright (c) campaign contributors
#
# 014_liveness.pl — replication keeps its promises in a hostile world (issue
# 11, "What it must show"; SPEC §12).  Every part ends by comparing the cloud
# table with an independent model (test/lib/CampaignModel.pm: the changes
# the test staged, applied in Perl in staging order per key), every column
# of the rows of the part's own keys (so that one part's failure does not
# fail the next ones) or of the whole table.  CAMPAIGN_LIVENESS_ONLY (a
# regex on the parts' names) runs some parts only.
#
#   poison rows:  a CHECK constraint on the cloud rejects changes that later
#                 changes of the same key (update, delete, re-insert)
#                 follow; with discard_errors() the cloud equals the stream
#                 without the rejected changes;
#   synchronous_commit = off (wal_writer_delay 10s): an ingest session runs
#                 while replicating, the local server is stopped immediately;
#                 the changes that survived locally are a prefix of the
#                 session's transactions (each carries a marker row holding
#                 its ordinal), the model takes that prefix, and changes
#                 staged after the restart must all arrive; three rounds;
#   cloud table dropped: a clear failed batch, no crash loop, and deploy()
#                 recovers.

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
my @UTF8 = ('-E', 'UTF8', '--locale=C');
my $XML = model_table_schema();

my $cloud = start_cloud(initdb => \@UTF8);
my $local = start_local(qq{
restart_after_crash = on
campaign.staging_retention = '7d'
}, initdb => \@UTF8);

# CAMPAIGN_LIVENESS_ONLY: a regex; only the parts whose name matches run.
my $ONLY = $ENV{CAMPAIGN_LIVENESS_ONLY};

sub part
{
	my ($name, $code) = @_;
	return note("skipped (CAMPAIGN_LIVENESS_ONLY): $name") if defined $ONLY && $name !~ /$ONLY/;
	return subtest $name => $code;
}

sub lq { return $local->safe_psql('postgres', $_[0]); }
sub cq { return $cloud->safe_psql('postgres', $_[0]); }

my $SCHEMA = setup_replication($local, 'postgres', $cloud, 'postgres', $XML);
my $model = CampaignModel->new;

sub caught_up
{
	my ($what, $timeout) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	return ok(wait_caught_up($local, 'postgres', $SCHEMA, $timeout), "$what: nothing pending, no change in error");
}

# Compare the cloud table with the model: the rows whose ids match
# $only (each part has its own keys, so that one part's failure does not
# fail the next ones), or the whole table.
sub check
{
	my ($what, $only, $m) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	return ($m // $model)->check_cloud($cloud, 'postgres', $what, $only ? (only => $only) : ());
}

# Ingest one collection of records with xtk_ingest_ext.
sub ext
{
	my (@records) = @_;
	lq('SELECT campaign.xtk_ingest_ext($cmx$' . $model->collection(@records) . '$cmx$)');
}

sub failed_since
{
	my ($t) = @_;
	return "SELECT count(*) > 0 FROM campaign.replication_history WHERE outcome = 'failed' AND finished_at > '$t'";
}

# ================================================================ poison rows

part 'poison rows: rejected, later changes of the key, discard_errors()' => sub {
	my $m = $model;
	ext(map { $m->upsert($_->[0], $_->[1]); $m->record(' _key="@id"', @$_) }
		  [ q1 => { s1 => 'a', n => 1 } ], [ q2 => { s1 => 'b', n => 2 } ], [ q3 => { n => 3 } ]);
	caught_up('poison (discard): keys in place');
	cq('ALTER TABLE dem.modeltable ADD CONSTRAINT no777 CHECK (n IS DISTINCT FROM 777) NOT VALID');
	my @stream = (
		[ upsert => q1 => { n => 777, s1 => 'rejected' }, 'rejected' ],
		[ update => q1 => { s2 => 'later' } ],
		[ upsert => q2 => { n => 777 }, 'rejected' ],
		[ update => q2 => { n => 22 } ],
		[ update => q3 => { n => 777 }, 'rejected' ],
		[ delete => q3 => undef ],
		[ upsert => q4 => { n => 777, s1 => 'new' }, 'rejected' ],
		[ update => q4 => { s2 => 'absent key: nothing' } ],
		[ upsert => q4 => { s2 => 'created' } ],
		[ upsert => qz => { s1 => 'sentinel' } ]);
	for my $c (@stream)
	{
		my ($op, $id, $v, $rejected) = @$c;
		my %meta = (upsert => ' _key="@id"', update => ' _key="@id" _operation="update"',
			delete => ' _key="@id" _operation="delete"');
		ext($m->record($meta{$op}, $id, $v));
		next if $rejected;    # the model of the stream without the discarded changes
		if ($op eq 'upsert') { $m->upsert($id, $v); }
		elsif ($op eq 'update') { $m->update($id, $v); }
		else { $m->delete_key($id); }
	}
	ok(wait_for($cloud, "SELECT count(*) FROM dem.modeltable WHERE id = 'qz'", '1', 90),
		'poison (discard): a later change of another key arrived');
	ok( wait_for($local, "SELECT errors FROM campaign.staging_status WHERE schema_name = '$SCHEMA'", '4', 30),
		'poison (discard): the 4 rejected changes are in error');
	is(lq("SELECT campaign.discard_errors('$SCHEMA')"), '4', 'poison (discard): discard_errors() deletes 4 changes');
	caught_up('poison (discard): after discard_errors()');
	check('poison (discard): cloud equals the stream without the discarded changes', qr/^q/);
	cq('ALTER TABLE dem.modeltable DROP CONSTRAINT no777');
};

# ================================================================ synchronous_commit = off

part 'synchronous_commit = off: immediate stops mid-batch' => sub {
	lq("ALTER SYSTEM SET synchronous_commit = off");
	lq("ALTER SYSTEM SET wal_writer_delay = '10s'");
	lq('SELECT pg_reload_conf()');
	my $rng = CampaignModel::Stream->new(301);
	for my $round (1 .. 3)
	{
		# transactions: keyed changes + a marker row holding the ordinal
		my (@sql, @ops);
		for my $i (1 .. 300)
		{
			my (@recs, @apply);
			for (1 .. 1 + $rng->int(5))
			{
				my ($rec, $apply) = $model->keyed_change($rng, sprintf('s%04d', $rng->int(200)));
				push @recs, $rec;
				push @apply, $apply;
			}
			my $mark = "smk$round";
			push @recs, $model->record(' _key="@id"', $mark, { n => $i });
			push @apply, sub { $model->upsert($mark, { n => $i }) };
			push @sql, 'SELECT campaign.xtk_ingest_ext($cmx$' . $model->collection(@recs) . '$cmx$);';
			push @ops, \@apply;
		}
		my $runs = $model->start_sessions($local, 'postgres', join("\n", @sql) . "\n");
		ok(wait_for($cloud, "SELECT count(*) > 0 FROM dem.modeltable WHERE id = 'smk$round'", 't', 120),
			"round $round: batches replicate while the session ingests");
		usleep(200_000 + $rng->int(1_000_000));
		$local->stop('immediate');
		{
			local $SIG{__WARN__} = sub { };
			$_->[0]->finish for @$runs;    # the session died with the server
		}
		$local->start;
		my $k = lq("SELECT coalesce(max(n), 0) FROM dem.modeltablestg WHERE id = 'smk$round'");
		note("round $round: $k of 300 transactions survived the immediate stop");
		$_->() for map { @$_ } @ops[ 0 .. $k - 1 ];
		# new changes staged after the restart
		ok($model->stream($local, 'postgres', seed => 310 + $round, prefix => 'st', changes => 200, nkeys => 100,
				sessions => 1),
			"round $round: changes staged after the restart");
		caught_up("round $round");
		check("synchronous_commit = off, round $round", qr/^s/);
	}
	lq('ALTER SYSTEM RESET synchronous_commit');
	lq('ALTER SYSTEM RESET wal_writer_delay');
	lq('SELECT pg_reload_conf()');
};

# ================================================================ a cloud that lost data

part 'cloud table dropped, then deployed again' => sub {
	my $signals_before = () = slurp_file($local->logfile) =~ /terminated by signal/g;
	my $t = lq('SELECT now()');
	cq('DROP TABLE dem.modeltable');
	my $m3 = CampaignModel->new;
	ok($m3->stream($local, 'postgres', seed => 601, prefix => 'k', changes => 600, nkeys => 100),
		'dropped: changes staged');
	ok(wait_for($local, failed_since($t), 't', 60), 'dropped: a failed batch in replication_history');
	like(lq("SELECT error FROM campaign.replication_history WHERE outcome = 'failed' AND finished_at > '$t' ORDER BY id LIMIT 1"),
		qr/modeltable/, 'dropped: its error names the cloud table');
	sleep(5);
	my $signals_after = () = slurp_file($local->logfile) =~ /terminated by signal/g;
	is($signals_after, $signals_before, 'dropped: no worker crash');
	cmp_ok(lq("SELECT pending FROM campaign.staging_status WHERE schema_name = '$SCHEMA'"), '>', 0,
		'dropped: the changes stay pending');
	like(lq("SELECT campaign.deploy('$SCHEMA')"), qr/modeltable/, 'dropped: deploy() again');
	caught_up('dropped: after deploy()');
	check('dropped: the table holds the changes staged since', undef, $m3);
};

note(sprintf('total runtime %.0fs', time() - $started));
$local->stop;
$cloud->stop;

done_testing();
