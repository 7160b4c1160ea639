
# Copyright (c) campaign contributors
#
# 011_crash_recovery.pl — exactly once, whatever dies when (SPEC §4 "Exactly
# once", §10 robustness).
#
# Two nodes, "local" (campaign preloaded, campaign.batch_size = 2000) and
# "cloud".  The test keeps its own model of the cloud table (a Perl hash
# fed by the same formulas that generate the staged changes) and, after each
# scenario, once everything is replicated, compares the whole cloud table
# with it: row count, distinct ids, md5 of the ordered content (and a diff
# when they differ).  Staged changes mix keyless inserts (applied twice, they
# would be rejected as duplicates, so rejected rows are checked too), upserts
# carrying some attributes, updates (some of missing keys), deletes, and
# chains of changes to one key, so that order matters.
#
#   (a) a backlog of > 100,000 changes staged while replication is stopped,
#       then drained while the worker is killed with SIGKILL at 12 moments:
#       right after a batch commits, at random delays, blocked at the start
#       of a batch (cloud watermark row locked), blocked waiting for
#       in-flight ingest transactions, blocked in the middle of applying a
#       batch (cloud table locked), and blocked after the cloud commit but
#       before the local bookkeeping (local history table locked);
#   (b) immediate shutdown of the local server mid-batch, three times;
#   (c) the cloud server shut down (immediate) while a batch runs, ingest
#       going on while it is down (history shows failed batches), then
#       started again: catch-up;
#   (d) the worker terminated (SIGTERM) after the cloud committed the last
#       batch and before the local bookkeeping: staging_status must not
#       report pending changes that are in the cloud.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use FindBin;
use lib "$FindBin::Bin/../lib";
use CampaignNodes;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);
use Digest::MD5 qw(md5_hex);

my $SCHEMA = 'dem:sampleTable';
my $XML_SCHEMA = sample_table_schema();

my $started = time();

# ---------------------------------------------------------------- nodes

my $cloud = start_cloud();
my $local = start_local(qq{
campaign.batch_size = 2000
campaign.staging_retention = '7d'
# one replication worker (campaign.max_workers): the test kills it by its pid
campaign.max_workers = 1
restart_after_crash = on
});

sub lq { return $local->safe_psql('postgres', $_[0]); }
sub cq { return $cloud->safe_psql('postgres', $_[0]); }

sub worker_pid
{
	my ($rc, $out) = $local->psql('postgres',
		"SELECT pid FROM pg_stat_activity WHERE backend_type = 'campaign replication worker'");
	return $rc == 0 ? $out : '';
}

# Wait for a worker other than $old (the postmaster restarts it).
sub wait_new_worker
{
	my ($old) = @_;
	my $deadline = time() + 120;
	while (time() < $deadline)
	{
		my $pid = worker_pid();
		return $pid if $pid =~ /^\d+$/ && $pid ne $old;
		usleep(100_000);
	}
	return undef;
}

sub watermark
{
	return cq("SELECT upto FROM campaign_replication.watermark WHERE schema_name = '$SCHEMA'");
}

sub max_staged
{
	return lq('SELECT coalesce(max(_stg_seq), 0) FROM dem.sampletablestg');
}

# ---------------------------------------------------------------- model

my %model;    # id => [testcol1, testcol2, score]
my $staged = 0;

sub m_insert
{
	my ($id, $t1, $t2, $sc) = @_;
	die "model: $id exists" if exists $model{$id};
	$model{$id} = [ $t1, $t2, $sc ];
}

# %v: column index => value, only the carried attributes
sub m_upsert
{
	my ($id, %v) = @_;
	$model{$id} //= [ undef, undef, undef ];
	$model{$id}[$_] = $v{$_} for keys %v;
}

sub m_update
{
	my ($id, %v) = @_;
	return unless exists $model{$id};
	$model{$id}[$_] = $v{$_} for keys %v;
}

sub m_delete { delete $model{ $_[0] }; }

sub model_text
{
	return join("\n",
		map {
			my $r = $model{$_};
			join('|', $_, map { defined $_ ? $_ : '~' } @$r)
		} sort keys %model);
}

my $ROW_SQL = q{concat_ws('|', id, coalesce(testcol1, '~'), coalesce(testcol2, '~'), coalesce(score::text, '~'))};

# Stage the records of one phase, 10,000 values of i per call.  $func is
# xtk_ingest or xtk_ingest_ext, $cond a SQL condition on i, $fmt the SQL
# expression of the record(s) for i; $apply(i) applies them to the model
# and returns how many changes they are.
sub stage
{
	my ($func, $from, $to, $cond, $fmt, $perl_cond, $apply) = @_;
	for (my $lo = $from; $lo <= $to; $lo += 10000)
	{
		my $hi = $lo + 9999 > $to ? $to : $lo + 9999;
		lq(qq{SELECT campaign.$func('<sampleTableStg-collection xtkschema="dem:sampleTableStg">'
                 || string_agg($fmt, '' ORDER BY i) || '</sampleTableStg-collection>') IS NOT NULL
                FROM generate_series($lo, $hi) i WHERE $cond});
		for my $i ($lo .. $hi)
		{
			$staged += $apply->($i) if $perl_cond->($i);
		}
	}
}

sub cid { return sprintf('c%06d', $_[0]); }
my $ID = q{'id="c' || lpad(i::text, 6, '0') || '"'};

# ---------------------------------------------------------------- checks

# Everything staged is applied: the cloud watermark passed the last staged
# change, the local view agrees, nothing was rejected, and the cloud table
# equals the model.
sub check_all
{
	my ($what, $timeout) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	my $max = max_staged();
	ok( wait_for(
			$cloud,
			"SELECT upto >= $max FROM campaign_replication.watermark WHERE schema_name = '$SCHEMA'",
			't', $timeout // 240),
		"$what: cloud watermark reaches the last staged change ($max)");
	ok(wait_for($local, "SELECT pending FROM campaign.staging_status WHERE schema_name = '$SCHEMA'", '0', 30),
		"$what: staging_status shows nothing pending");
	is(lq('SELECT count(*) FROM dem.sampletablestg WHERE _stg_error IS NOT NULL'), '0',
		"$what: no staged change rejected (none applied twice)");

	my $text = model_text();
	my $expected = join('|', scalar(keys %model), scalar(keys %model), md5_hex($text));
	my $got = cq(qq{SELECT count(*), count(DISTINCT id),
                           md5(coalesce(string_agg($ROW_SQL, E'\\n' ORDER BY id COLLATE "C"), ''))
                      FROM dem.sampletable});
	is($got, $expected, "$what: cloud content equals the expected state (count|distinct ids|md5)")
	  or diff_cloud();
}

sub diff_cloud
{
	my %cloud_rows;
	for my $line (split /\n/, cq("SELECT $ROW_SQL FROM dem.sampletable"))
	{
		my ($id) = split /\|/, $line;
		$cloud_rows{$id} .= $line;
	}
	my (@missing, @extra, @diff);
	for my $id (sort keys %model)
	{
		my $exp = join('|', $id, map { defined $_ ? $_ : '~' } @{ $model{$id} });
		if (!exists $cloud_rows{$id}) { push @missing, $exp; }
		elsif ($cloud_rows{$id} ne $exp) { push @diff, "expected $exp, got $cloud_rows{$id}"; }
	}
	@extra = grep { !exists $model{$_} } sort keys %cloud_rows;
	diag(sprintf("cloud vs expected: %d missing, %d unexpected, %d different\n", scalar @missing,
			scalar @extra, scalar @diff)
		  . join("\n", (map { "missing: $_" } @missing[ 0 .. ($#missing < 9 ? $#missing : 9) ]),
			(map { "unexpected: $cloud_rows{$_}" } @extra[ 0 .. ($#extra < 9 ? $#extra : 9) ]),
			@diff[ 0 .. ($#diff < 9 ? $#diff : 9) ]));
}

# ---------------------------------------------------------------- setup

lq('CREATE EXTENSION campaign CASCADE');
my $cloud_host = $cloud->host;
my $cloud_port = $cloud->port;
lq(qq{CREATE SERVER ffda FOREIGN DATA WRAPPER postgres_fdw
        OPTIONS (host '$cloud_host', port '$cloud_port', dbname 'postgres')});
lq('CREATE USER MAPPING FOR PUBLIC SERVER ffda');
is(lq("SELECT campaign.register_schema(\$x\$$XML_SCHEMA\$x\$)"), $SCHEMA, 'schema registered');
like(lq("SELECT campaign.deploy('$SCHEMA')"), qr/sampletable/, 'schema deployed');
my $pid = wait_new_worker('');
ok(defined $pid, 'replication worker running');

# ================================================================ (a) kill -9

is(lq("SELECT campaign.stop_replication('$SCHEMA')"), 'stopped', '(a) replication stopped');

my $N = 60000;
# P1: keyless inserts of every key.
stage('xtk_ingest', 1, $N, 'true',
	qq{format('<sampleTableStg %s testcol1="a%s" testcol2="b%s" score="%s"/>', $ID, i, i, i)},
	sub { 1 }, sub { m_insert(cid($_[0]), "a$_[0]", "b$_[0]", $_[0]); 1 });
# P2: upserts of a third of them carrying testcol2 only.
stage('xtk_ingest_ext', 1, $N, 'i % 3 = 0',
	qq{format('<sampleTableStg _key="\@id" %s testcol2="u%s"/>', $ID, i)},
	sub { $_[0] % 3 == 0 }, sub { m_upsert(cid($_[0]), 1 => "u$_[0]"); 1 });
# P3: deletes of a fifth.
stage('xtk_ingest_ext', 1, $N, 'i % 5 = 0',
	qq{format('<sampleTableStg _key="\@id" _operation="delete" %s/>', $ID)},
	sub { $_[0] % 5 == 0 }, sub { m_delete(cid($_[0])); 1 });
# P4: inserts with reconciliation key of a tenth (half of the deleted ones
# come back with testcol1 only).
stage('xtk_ingest', 1, $N, 'i % 10 = 0',
	qq{format('<sampleTableStg _key="\@id" %s testcol1="r%s"/>', $ID, i)},
	sub { $_[0] % 10 == 0 }, sub { m_upsert(cid($_[0]), 0 => "r$_[0]"); 1 });
# P5: updates of a seventh (some deleted: nothing).
stage('xtk_ingest_ext', 1, $N, 'i % 7 = 0',
	qq{format('<sampleTableStg _key="\@id" _operation="update" %s score="%s"/>', $ID, 2 * i)},
	sub { $_[0] % 7 == 0 }, sub { m_update(cid($_[0]), 2 => 2 * $_[0]); 1 });
# P6: updates of keys that never existed.
stage('xtk_ingest_ext', $N + 1, $N + 2000, 'true',
	qq{format('<sampleTableStg _key="\@id" _operation="update" %s testcol1="ghost"/>', $ID)},
	sub { 1 }, sub { m_update(cid($_[0]), 0 => 'ghost'); 1 });
# P7: per key, in one collection: upsert, update, delete, upsert again.
stage('xtk_ingest_ext', 1, $N, 'i % 50 = 0',
	qq{format('<sampleTableStg _key="\@id" %1\$s score="1"/><sampleTableStg _key="\@id" _operation="update" %1\$s testcol1="q%2\$s"/><sampleTableStg _key="\@id" _operation="delete" %1\$s/><sampleTableStg _key="\@id" %1\$s testcol2="z%2\$s"/>', $ID, i)},
	sub { $_[0] % 50 == 0 },
	sub {
		my $id = cid($_[0]);
		m_upsert($id, 2 => 1);
		m_update($id, 0 => "q$_[0]");
		m_delete($id);
		m_upsert($id, 1 => "z$_[0]");
		4;
	});
# P8: upserts of new keys.
stage('xtk_ingest_ext', $N + 2001, $N + 3000, 'true',
	qq{format('<sampleTableStg _key="\@id" %s testcol1="n%s" score="%s"/>', $ID, i, i)},
	sub { 1 }, sub { m_upsert(cid($_[0]), 0 => "n$_[0]", 2 => $_[0]); 1 });

cmp_ok($staged, '>=', 100000, "(a) $staged changes staged");
is(lq("SELECT pending FROM campaign.staging_status WHERE schema_name = '$SCHEMA'"), $staged,
	'(a) staging_status: all pending while stopped');
is(watermark(), '0', '(a) nothing replicated while stopped');

# More backlog when the worker drains faster than we kill it.
my $extra_round = 0;
# One more round of staged upserts (replication state left as it is).
sub stage_round
{
	$extra_round++;
	my $r = $extra_round;
	stage('xtk_ingest_ext', 1, $N, "i % 6 = $r % 6",
		qq{format('<sampleTableStg _key="\@id" %s testcol1="x${r}_%s"/>', $ID, i)},
		sub { $_[0] % 6 == $r % 6 }, sub { m_upsert(cid($_[0]), 0 => "x${r}_$_[0]"); 1 });
	note("added backlog round $r");
}

# Keep at least $min changes to drain: each kill or shutdown must happen
# while the worker is draining, however fast it is.  Replication stops while
# the backlog is built, or a fast worker would drain it as it grows.
sub ensure_backlog
{
	my ($min) = @_;
	return if max_staged() - watermark() >= $min;
	lq("SELECT campaign.stop_replication('$SCHEMA')");
	stage_round() while max_staged() - watermark() < $min;
	lq("SELECT campaign.start_replication('$SCHEMA')");
}

# Sessions that hold a lock to stop the worker at a given point.
sub cloud_session { return $cloud->background_psql('postgres', on_error_stop => 0); }
sub local_session { return $local->background_psql('postgres', on_error_stop => 0); }
sub end_session
{
	my ($s) = @_;
	eval { $s->{run}->kill_kill; 1 };
}

# Wait until the worker waits on a lock, on the cloud (its connection) or
# locally (the worker itself).
sub wait_worker_blocked
{
	my ($where, $event) = @_;
	my $cond = $event ? "wait_event = '$event'" : "wait_event_type = 'Lock'";
	return $where eq 'cloud'
	  ? wait_for($cloud,
		"SELECT count(*) > 0 FROM pg_stat_activity WHERE application_name = 'campaign replication worker' AND $cond",
		't', 60)
	  : wait_for($local,
		"SELECT count(*) > 0 FROM pg_stat_activity WHERE backend_type = 'campaign replication worker' AND $cond",
		't', 60);
}

is(lq("SELECT campaign.start_replication('$SCHEMA')"), 'continuous', '(a) replication started');

my @moments = qw(moved cloud_table_locked moved_delay after_cloud_commit moved
  ingest_left_open moved_delay watermark_locked moved cloud_table_locked
  moved_delay after_cloud_commit);
my $kills = 0;
my $mid_drain = 0;    # kills with changes left to replicate
my $wm_prev = 0;
my %seen_moment;
for my $moment (@moments)
{
	# As in (b): a kill that waits only for the watermark to move (and a
	# random delay) must still find a backlog, and a worker drains 30,000
	# keyed upserts in about a second; the blocked moments hold it anyway.
	ensure_backlog($moment =~ /^moved/ ? 100000 : 30000);
	# progress since the last kill
	wait_for($cloud,
		"SELECT upto > $wm_prev FROM campaign_replication.watermark WHERE schema_name = '$SCHEMA'",
		't', 120);

	my ($session, $release);
	if ($moment eq 'moved_delay')
	{
		usleep(20_000 + int(rand(200_000)));
	}
	elsif ($moment eq 'cloud_table_locked')
	{
		$session = cloud_session();
		$session->query_safe('BEGIN; LOCK TABLE dem.sampletable IN SHARE MODE');
		wait_worker_blocked('cloud') or diag("worker not seen blocked on the cloud table");
		$release = sub { $session->query_safe('COMMIT'); $session->quit; };
	}
	elsif ($moment eq 'watermark_locked')
	{
		$session = cloud_session();
		$session->query_safe("BEGIN; SELECT upto FROM campaign_replication.watermark WHERE schema_name = '$SCHEMA' FOR UPDATE");
		wait_worker_blocked('cloud') or diag("worker not seen blocked on the watermark");
		$release = sub { $session->query_safe('COMMIT'); $session->quit; };
	}
	elsif ($moment eq 'after_cloud_commit')
	{
		$session = local_session();
		$session->query_safe('BEGIN; LOCK TABLE campaign.replication_history IN EXCLUSIVE MODE');
		wait_worker_blocked('local') or diag("worker not seen blocked on replication_history");
		$release = sub { end_session($session); };
	}
	elsif ($moment eq 'ingest_left_open')
	{
		# an ingest transaction left open (it dies with the crash: an update
		# of a missing key anyway); the worker replicates around it
		$session = local_session();
		$session->query_safe(q{BEGIN; SELECT campaign.xtk_ingest_ext('<sampleTableStg _key="@id" _operation="update" id="never" testcol1="x" xtkschema="dem:sampleTableStg"/>')});
		wait_for($local, 'SELECT count(*) > 0 FROM campaign.open_ingest_transactions()', 't', 30)
		  or diag("the open ingest transaction is not listed by campaign.open_ingest_transactions()");
		$release = sub { end_session($session); };
	}

	my $victim = worker_pid();
	my $wm_at_kill = watermark();
	$mid_drain++ if $wm_at_kill < max_staged();
	if ($victim =~ /^\d+$/)
	{
		kill 'KILL', $victim;
		$kills++;
		$seen_moment{$moment}++;
		note("(a) kill $kills ($moment): worker $victim, cloud watermark $wm_at_kill");
	}
	else
	{
		diag("(a) no worker to kill at moment $moment");
	}
	$release->() if $release;
	$wm_prev = $wm_at_kill;
	my $new = wait_new_worker($victim);
	ok(defined $new, "(a) worker restarted after kill $kills ($moment)");
}
cmp_ok($kills, '>=', 10, "(a) worker killed $kills times while draining");
is(scalar(keys %seen_moment), 6, '(a) at 6 kinds of moments');
my $sigkills = () = slurp_file($local->logfile) =~
  /campaign replication worker" \(PID \d+\) was terminated by signal 9/g;
cmp_ok($sigkills, '>=', 10, "(a) the server log shows $sigkills workers killed by signal 9");
is($mid_drain, scalar(@moments), '(a) every kill happened with changes left to replicate');

check_all('(a) after 12 kills');
# (compared as md5 of each side: a join over the foreign table would not be
# planned well)
my $NEVER_DELETED = "substr(id, 2)::int % 5 <> 0 AND substr(id, 2)::int <= $N";
my $uuid_local = lq(qq{SELECT count(*) || '|' || md5(string_agg(id || ' ' || _uuid, ',' ORDER BY id COLLATE "C"))
                         FROM dem.sampletablestg
                        WHERE _key IS NULL AND _operation = 'insert' AND id LIKE 'c%' AND $NEVER_DELETED});
like($uuid_local, qr/^48000\|/, '(a) 48000 rows never deleted');
is(cq(qq{SELECT count(*) || '|' || md5(string_agg(id || ' ' || _uuid, ',' ORDER BY id COLLATE "C"))
           FROM dem.sampletable WHERE id LIKE 'c%' AND $NEVER_DELETED}),
	$uuid_local, '(a) rows never deleted keep the UUID of their keyless insert');
is(lq("SELECT coalesce(sum(rejected), 0) FROM campaign.replication_history"), '0',
	'(a) replication_history: nothing rejected');

# ================================================================ (b) immediate shutdown of the local server

lq("SELECT campaign.stop_replication('$SCHEMA')");
stage('xtk_ingest_ext', 1, $N, 'i % 8 = 0',
	qq{format('<sampleTableStg _key="\@id" %s testcol1="B%s"/>', $ID, i)},
	sub { $_[0] % 8 == 0 }, sub { m_upsert(cid($_[0]), 0 => "B$_[0]"); 1 });
stage('xtk_ingest_ext', 1, $N, 'i % 17 = 0',
	qq{format('<sampleTableStg _key="\@id" _operation="delete" %s/>', $ID)},
	sub { $_[0] % 17 == 0 }, sub { m_delete(cid($_[0])); 1 });
stage('xtk_ingest', 70001, 73000, 'true',
	qq{format('<sampleTableStg %s testcol1="b%s" score="%s"/>', $ID, i, i)},
	sub { 1 }, sub { m_insert(cid($_[0]), "b$_[0]", undef, $_[0]); 1 });
lq("SELECT campaign.start_replication('$SCHEMA')");

my $shutdowns = 0;
my $b_mid_drain = 0;
for my $how (qw(moved cloud_table_locked moved_delay))
{
	# The drain must outlast the test's reaction (the watermark seen moving,
	# then the shutdown) and the random delay, whatever its speed: a worker
	# drains 30,000 changes in about a second, so only the blocked case
	# does with less.
	ensure_backlog($how eq 'cloud_table_locked' ? 30000 : 100000);
	my $wm = watermark();
	wait_for($cloud,
		"SELECT upto > $wm FROM campaign_replication.watermark WHERE schema_name = '$SCHEMA'",
		't', 120);
	my $session;
	if ($how eq 'moved_delay')
	{
		usleep(20_000 + int(rand(200_000)));
	}
	elsif ($how eq 'cloud_table_locked')
	{
		$session = cloud_session();
		$session->query_safe('BEGIN; LOCK TABLE dem.sampletable IN SHARE MODE');
		wait_worker_blocked('cloud') or diag("worker not seen blocked on the cloud table");
	}
	my $wm_now = watermark();
	$b_mid_drain++ if $wm_now < max_staged();
	note("(b) immediate shutdown ($how) at cloud watermark $wm_now");
	$local->stop('immediate');
	if ($session)
	{
		$session->query_safe('COMMIT');
		$session->quit;
	}
	$local->start;
	$shutdowns++;
	ok(defined wait_new_worker(''), "(b) worker back after immediate shutdown $shutdowns ($how)");
}
is($b_mid_drain, 3, '(b) every shutdown happened with changes left to replicate');
check_all('(b) after 3 immediate shutdowns');

# ================================================================ (c) cloud down under ingest

lq("SELECT campaign.stop_replication('$SCHEMA')");
stage('xtk_ingest_ext', 1, 18000, 'i % 3 = 1',
	qq{format('<sampleTableStg _key="\@id" %s testcol2="pre%s"/>', $ID, i)},
	sub { $_[0] % 3 == 1 }, sub { m_upsert(cid($_[0]), 1 => "pre$_[0]"); 1 });
# The watermark before the drain starts: the drain may end at once.
my $wm = watermark();
lq("SELECT campaign.start_replication('$SCHEMA')");
wait_for($cloud,
	"SELECT upto > $wm FROM campaign_replication.watermark WHERE schema_name = '$SCHEMA'",
	't', 120);
my $down_at = lq('SELECT now()');
$cloud->stop('immediate');

# Ingest goes on while the cloud is down.
my $ok_ingests = 0;
for my $k (1 .. 6)
{
	my $lo = 20000 + ($k - 1) * 1000 + 1;
	my $hi = $lo + 999;
	my ($rc, $out, $err) = $local->psql('postgres', qq{
SELECT campaign.xtk_ingest_ext('<sampleTableStg-collection xtkschema="dem:sampleTableStg">'
         || string_agg(format('<sampleTableStg _key="\@id" %s testcol2="down$k"/>', $ID), '' ORDER BY i)
         || '</sampleTableStg-collection>')
  FROM generate_series($lo, $hi) i;
SELECT campaign.xtk_ingest('<sampleTableStg id="d$k" testcol1="while down" score="$k" xtkschema="dem:sampleTableStg"/>') IS NOT NULL;});
	if ($rc == 0)
	{
		$ok_ingests++;
		for my $i ($lo .. $hi) { m_upsert(cid($i), 1 => "down$k"); $staged++; }
		m_insert("d$k", 'while down', undef, $k);
		$staged++;
	}
	else
	{
		diag("ingest while the cloud is down failed: $err");
	}
	usleep(500_000);
}
is($ok_ingests, 6, '(c) ingest keeps succeeding while the cloud is down');
ok( wait_for($local,
		"SELECT count(*) >= 2 FROM campaign.replication_history WHERE outcome = 'failed' AND finished_at > '$down_at'",
		't', 60),
	'(c) replication_history shows failed batches');
is(lq("SELECT count(*) FROM campaign.replication_history
        WHERE outcome = 'failed' AND finished_at > '$down_at' AND coalesce(error, '') = ''"),
	'0', '(c) failed batches carry an error message');
cmp_ok(lq("SELECT pending FROM campaign.staging_status WHERE schema_name = '$SCHEMA'"), '>', 0,
	'(c) staging_status: changes pending while the cloud is down');
ok($local->log_contains(qr/campaign: replication of dem:sampleTable failed/),
	'(c) the worker logs the failure');

$cloud->start;
check_all('(c) after the cloud came back', 240);
is(lq("SELECT count(*) > 0 FROM campaign.replication_history WHERE outcome = 'success' AND finished_at > '$down_at'"),
	't', '(c) successful batches after the cloud came back');

# ================================================================ (d) stopped between the cloud commit and the local bookkeeping

# Nothing pending now.  Hold the local history table so that the worker
# stops right after the cloud committed the batch, then terminate it.
my $session = local_session();
$session->query_safe('BEGIN; LOCK TABLE campaign.replication_history IN EXCLUSIVE MODE');
lq(q{SELECT campaign.xtk_ingest_ext('<sampleTableStg _key="@id" id="c000001" testcol2="last" xtkschema="dem:sampleTableStg"/>')});
m_upsert('c000001', 1 => 'last');
$staged++;
my $last = max_staged();
ok( wait_for($cloud,
		"SELECT upto >= $last FROM campaign_replication.watermark WHERE schema_name = '$SCHEMA'",
		't', 60),
	'(d) the cloud committed the last change');
ok(wait_worker_blocked('local'), '(d) the worker waits for the local bookkeeping');
my $victim = worker_pid();
is(lq("SELECT pg_terminate_backend($victim)"), 't', '(d) worker terminated (SIGTERM)');
ok(defined wait_new_worker($victim), '(d) worker restarted');
$session->query_safe('COMMIT');
$session->quit;
ok( wait_for($local,
		"SELECT pending FROM campaign.staging_status WHERE schema_name = '$SCHEMA'", '0', 30),
	'(d) staging_status: nothing pending (the change is in the cloud)')
  or diag(lq("SELECT replicated_upto FROM campaign.schemas WHERE namespace = 'dem'") . ' local vs cloud ' . watermark());
check_all('(d) final', 60);

note(sprintf('total runtime %.0fs, %d changes staged', time() - $started, $staged));

$local->stop;
$cloud->stop;

done_testing();
