
# Copyright (c) campaign contributors
#
# 014_liveness.pl — replication never hangs, stalls or reorders (issue 11,
# "What it must show"; SPEC §12).  Every part ends by comparing the cloud
# table with an independent model (test/lib/CampaignModel.pm: the changes
# the test staged, applied in Perl in staging order per key), every column
# of the rows of the part's own keys (so that one part's failure does not
# fail the next ones) or of the whole table.  CAMPAIGN_LIVENESS_ONLY (a
# regex on the parts' names) runs some parts only.
#
#   poison rows:  a CHECK constraint on the cloud rejects changes that later
#                 changes of the same key (update, partial upsert, delete,
#                 re-insert) follow; after the fix and retry_errors() the
#                 cloud equals the whole stream in staging order; with
#                 discard_errors() it equals the stream without the rejected
#                 changes;  a LATIN1 cloud database refuses one '日本' value
#                 at COPY: the other 299 rows arrive;
#   hung cloud:   the cloud backend serving the worker is stopped (SIGSTOP)
#                 mid-batch (the batch first waits on a lock of the cloud
#                 table, then the lock is released): with campaign.cloud_timeout
#                 = 3s the batch fails, and a fast stop of the local server
#                 takes < 5 s; SIGCONT, restart, content exact;
#   hung network: the same with a TCP proxy (forked from this test) between
#                 the servers that stops forwarding (SIGUSR1; SIGUSR2 resumes);
#   open transaction: a session stays idle in transaction 30 s after an
#                 ingest; another session's single-record ingests reach the
#                 cloud with p99 lag < 1 s (arrival time = a trigger on the
#                 cloud table stamping clock_timestamp(), against the time
#                 the ingest returned; same clock); after the commit every
#                 row is there once.  Again with kill -9 of the workers in
#                 the middle (which restarts the whole local server: the open
#                 transaction dies, a new one is opened);
#   synchronous_commit = off (wal_writer_delay 10s): an ingest session runs
#                 while replicating, the local server is stopped immediately;
#                 the changes that survived locally are a prefix of the
#                 session's transactions (each carries a marker row holding
#                 its ordinal), the model takes that prefix, and changes
#                 staged after the restart must all arrive; three rounds;
#   schema evolution: the schema is registered again with an extra
#                 attribute while four sessions ingest: no batch fails
#                 before deploy(); after deploy() the attribute flows;
#   cloud lost data: the cloud is restored from a base backup taken before
#                 changes that staging has since purged, and before changes
#                 staging still holds: those arrive again and the purged gap
#                 is reported;  the cloud table is dropped: a clear failed
#                 batch, no crash loop, and deploy() recovers;
#   long batch:   >= 100,000 mixed changes staged while stopped, then one
#                 batch (campaign.batch_size 200000): a fast stop in the
#                 middle takes < 5 s, and nothing is lost or duplicated.
# Shutdown waits use pg_ctl's own timeout (15 s) so that a hang is a failed
# test, not a stuck run; the server is then stopped harder to go on.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::RecursiveCopy;
use FindBin;
use lib "$FindBin::Bin/../lib";
use CampaignNodes;
use CampaignModel;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);
use File::Path qw(rmtree);
use IO::Socket::INET;
use IO::Socket::UNIX;
use IO::Select;
use POSIX ();

my $started = time();
my @UTF8 = ('-E', 'UTF8', '--locale=C');
my $XML = model_table_schema();
my $WORKER = "application_name LIKE 'campaign replication%'";    # its connection on the cloud

my $cloud = start_cloud(initdb => \@UTF8, allows_streaming => 1);
my $local = start_local(qq{
restart_after_crash = on
campaign.staging_retention = '7d'
campaign.cloud_timeout = '3s'
campaign.cloud_connect_timeout = '3s'
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

# A fast stop of the local server: (true, seconds) when it completed within
# pg_ctl's timeout of 15 s; (false, seconds) when not, the server still up.
sub timed_fast_stop
{
	local $ENV{PGCTLTIMEOUT} = 15;
	my $t0 = time();
	my $ok = $local->stop('fast', fail_ok => 1);
	return ($ok, time() - $t0);
}

# After a fast stop that did not complete: stop it for good.
sub force_stop
{
	local $ENV{PGCTLTIMEOUT} = 60;
	$local->stop('fast', fail_ok => 1) or $local->stop('immediate');
}

sub check_fast_stop
{
	my ($what) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	my ($ok, $secs) = timed_fast_stop();
	ok($ok && $secs < 5, sprintf('%s: pg_ctl stop -m fast of the local server took %.1fs (< 5 s)', $what, $secs));
	note(sprintf('%s: fast stop %s after %.1fs', $what, $ok ? 'completed' : 'had not completed', $secs));
	return $ok;
}

# A cloud session holding an ACCESS EXCLUSIVE lock on the cloud table until
# its COMMIT; returns once the worker's batch waits for it.
sub lock_cloud_table
{
	my $s = $cloud->background_psql('postgres', on_error_stop => 0);
	$s->query_safe('BEGIN; LOCK TABLE dem.modeltable IN ACCESS EXCLUSIVE MODE');
	return $s;
}

sub worker_waiting_on_lock
{
	return wait_for($cloud, "SELECT count(*) > 0 FROM pg_stat_activity WHERE $WORKER AND wait_event_type = 'Lock'",
		't', 90);
}

# ================================================================ poison rows

part 'poison rows: rejected, later changes of the key, retry_errors()' => sub {
	my $m = $model;
	ext(map { $m->upsert($_->[0], $_->[1]); $m->record(' _key="@id"', @$_) }
		  [ p1 => { s1 => 'a', n => 1 } ], [ p2 => { s1 => 'b', n => 2 } ], [ p3 => { n => 3 } ],
		  [ p5 => { s2 => 'five' } ]);
	caught_up('poison (retry): keys in place');
	cq('ALTER TABLE dem.modeltable ADD CONSTRAINT no666 CHECK (n IS DISTINCT FROM 666)');
	# each its own transaction, in this staging order
	my @stream = (
		[ upsert => p1 => { n => 666, s1 => 'rejected' } ],
		[ update => p1 => { n => 7 } ],
		[ upsert => p1 => { s2 => 'later' } ],
		[ upsert => p2 => { n => 666 } ],
		[ upsert => p2 => { s1 => 'after' } ],
		[ update => p3 => { n => 666, s2 => 'x' } ],
		[ delete => p3 => undef ],
		[ upsert => p4 => { n => 666, s1 => 'new' } ],
		[ update => p4 => { s2 => 'u' } ],
		[ upsert => p5 => { n => 666 } ],
		[ delete => p5 => undef ],
		[ upsert => p5 => { s1 => 'reborn' } ],
		[ upsert => pz => { s1 => 'sentinel' } ]);
	for my $c (@stream)
	{
		my ($op, $id, $v) = @$c;
		my %meta = (upsert => ' _key="@id"', update => ' _key="@id" _operation="update"',
			delete => ' _key="@id" _operation="delete"');
		ext($m->record($meta{$op}, $id, $v));
		# the model of the retried stream: every change, in staging order
		if ($op eq 'upsert') { $m->upsert($id, $v); }
		elsif ($op eq 'update') { $m->update($id, $v); }
		else { $m->delete_key($id); }
	}
	ok(wait_for($cloud, "SELECT count(*) FROM dem.modeltable WHERE id = 'pz'", '1', 90),
		'poison (retry): a later change of another key arrived');
	ok(wait_for($local, "SELECT errors >= 1 FROM campaign.staging_status WHERE schema_name = '$SCHEMA'", 't', 30),
		'poison (retry): rejected changes are in error');
	note('staging_status: ' . lq("SELECT pending || ' pending, ' || errors || ' errors' FROM campaign.staging_status"));
	cq('ALTER TABLE dem.modeltable DROP CONSTRAINT no666');
	cmp_ok(lq("SELECT campaign.retry_errors('$SCHEMA')"), '>=', 1, 'poison (retry): retry_errors()');
	caught_up('poison (retry): after retry_errors()');
	check('poison (retry): cloud equals the whole stream applied in staging order', qr/^p/);
};

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

part 'poison rows: a value a LATIN1 cloud cannot hold, refused at COPY' => sub {
	$cloud->safe_psql('postgres', q{CREATE DATABASE latin ENCODING 'LATIN1' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0});
	my $ll = start_local("campaign.naptime = '200ms'", name => 'latin_local', initdb => \@UTF8);
	is(setup_replication($ll, 'postgres', $cloud, 'latin', $XML), $SCHEMA, 'schema deployed to a LATIN1 cloud database');
	my $m = CampaignModel->new;
	my @recs;
	for my $i (1 .. 300)
	{
		my $id = sprintf('L%03d', $i);
		my %v = (s1 => $i == 150 ? "\xe6\x97\xa5\xe6\x9c\xac" : "caf\xc3\xa9 $i", n => $i);
		$m->insert($id, \%v) if $i != 150;    # (the returned UUIDs are checked below)
		push @recs, $m->record('', $id, \%v);
	}
	my $uuids = $ll->safe_psql('postgres', 'SELECT campaign.xtk_ingest($cmx$' . $m->collection(@recs) . '$cmx$)');
	my @u = split /,/, $uuids;
	splice(@u, 149, 1);
	${ $m->rows->{ sprintf('L%03d', $_ + ($_ >= 149 ? 2 : 1)) }{_uuid} } = $u[$_] for 0 .. $#u;
	ok(wait_for_in($cloud, 'latin', 'SELECT count(*) FROM dem.modeltable', '299', 60),
		'LATIN1: the 299 other rows arrive');
	is($ll->safe_psql('postgres', "SELECT string_agg(id, ',') FROM dem.modeltablestg WHERE _stg_error IS NOT NULL"),
		'L150', "LATIN1: the refused row alone is in error");
	like($ll->safe_psql('postgres', "SELECT _stg_error FROM dem.modeltablestg WHERE id = 'L150'"),
		qr/LATIN1|encoding|character/i, "LATIN1: its _stg_error holds the cloud's message");
	$ll->safe_psql('postgres', "SELECT campaign.discard_errors('$SCHEMA')");
	ok(wait_caught_up($ll, 'postgres', $SCHEMA, 30), 'LATIN1: nothing pending, no error');
	$m->check_cloud($cloud, 'latin', 'LATIN1: cloud holds the other rows, accents intact');
	$ll->stop('immediate');
};

# ================================================================ hung cloud

part 'hung cloud: SIGSTOP of the cloud backend serving the worker' => sub {
	lq("SELECT campaign.stop_replication('$SCHEMA')");
	ok($model->stream($local, 'postgres', seed => 101, prefix => 'h', changes => 3000, nkeys => 200),
		'hung cloud: backlog staged');
	my $locker = lock_cloud_table();
	lq("SELECT campaign.start_replication('$SCHEMA')");
	ok(worker_waiting_on_lock(), 'hung cloud: the batch waits on the cloud table');
	my $bpid = cq("SELECT pid FROM pg_stat_activity WHERE $WORKER AND wait_event_type = 'Lock' LIMIT 1");
	my $t = lq('SELECT now()');
	kill 'STOP', $bpid;
	$locker->query_safe('COMMIT');
	$locker->quit;
	ok(wait_for($local, failed_since($t), 't', 30),
		'hung cloud: the batch fails (campaign.cloud_timeout = 3s) and is recorded in replication_history');
	my $stopped = check_fast_stop('hung cloud');
	kill 'CONT', $bpid;
	force_stop() unless $stopped;
	$local->start;
	caught_up('hung cloud: after SIGCONT and restart');
	check('hung cloud', qr/^h/);
};

# A TCP proxy to the cloud's Unix socket, in a child process: SIGUSR1 stops
# forwarding (connections stay open, nothing moves), SIGUSR2 resumes.
sub start_proxy
{
	my $target = $cloud->host . '/.s.PGSQL.' . $cloud->port;
	my $listen = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0, Listen => 16, ReuseAddr => 1)
	  or die "proxy: $!";
	my $port = $listen->sockport;
	my $pid = fork();
	die "fork: $!" unless defined $pid;
	if ($pid == 0)
	{
		my $paused = 0;
		$SIG{USR1} = sub { $paused = 1; };
		$SIG{USR2} = sub { $paused = 0; };
		my $sel = IO::Select->new($listen);
		my %peer;
		while (1)
		{
			if ($paused) { select(undef, undef, undef, 0.1); next; }
			for my $s ($sel->can_read(0.1))
			{
				if ($s == $listen)
				{
					my $c = $listen->accept or next;
					my $u = IO::Socket::UNIX->new(Peer => $target) or do { close $c; next; };
					$peer{$c} = $u;
					$peer{$u} = $c;
					$sel->add($c, $u);
					next;
				}
				my $o = $peer{$s} or next;
				my $n = sysread($s, my $buf, 65536);
				if (!$n)
				{
					$sel->remove($s, $o);
					delete @peer{ $s, $o };
					close $s;
					close $o;
					next;
				}
				for (my $off = 0; $off < $n;)
				{
					my $w = syswrite($o, $buf, $n - $off, $off);
					last unless $w;
					$off += $w;
				}
			}
		}
	}
	close $listen;
	return ($pid, $port);
}

part 'hung network: a TCP proxy that stops forwarding' => sub {
	my ($proxy, $pport) = start_proxy();
	lq("ALTER SERVER ffda OPTIONS (SET host '127.0.0.1', SET port '$pport')");
	$local->restart;
	lq("SELECT campaign.stop_replication('$SCHEMA')");
	ok($model->stream($local, 'postgres', seed => 102, prefix => 'w', changes => 3000, nkeys => 200),
		'hung network: backlog staged');
	my $locker = lock_cloud_table();
	lq("SELECT campaign.start_replication('$SCHEMA')");
	ok(worker_waiting_on_lock(), 'hung network: the batch (through the proxy) waits on the cloud table');
	my $t = lq('SELECT now()');
	kill 'USR1', $proxy;
	usleep(300_000);
	$locker->query_safe('COMMIT');
	$locker->quit;
	ok(wait_for($local, failed_since($t), 't', 30),
		'hung network: the batch fails (campaign.cloud_timeout = 3s) and is recorded in replication_history');
	my $stopped = check_fast_stop('hung network');
	kill 'USR2', $proxy;
	force_stop() unless $stopped;
	$local->start;
	caught_up('hung network: after the proxy resumed');
	check('hung network', qr/^w/);
	my ($host, $port) = ($cloud->host, $cloud->port);
	lq("ALTER SERVER ffda OPTIONS (SET host '$host', SET port '$port')");
	$local->restart;
	kill 'KILL', $proxy;
	waitpid($proxy, 0);
};

# ================================================================ a long open transaction

cq(q{
CREATE TABLE arrival (id text, at timestamptz);
CREATE FUNCTION stamp_arrival() RETURNS trigger LANGUAGE plpgsql AS
  $$BEGIN INSERT INTO public.arrival VALUES (NEW.id, clock_timestamp()); RETURN NULL; END$$;
CREATE TRIGGER stamp_arrival AFTER INSERT ON dem.modeltable FOR EACH ROW
  WHEN (NEW.id LIKE 'olag%') EXECUTE FUNCTION stamp_arrival();
});

# One keyless insert in session $s; its UUID goes to the model.
sub insert_in
{
	my ($s, $id, $v) = @_;
	my $slot = $model->insert($id, $v);
	$$slot = $s->query_safe('SELECT campaign.xtk_ingest($cmx$' . $model->collection($model->record('', $id, $v)) . '$cmx$)');
}

sub p99
{
	my @l = sort { $a <=> $b } @_;
	return @l ? $l[ POSIX::ceil(0.99 * @l) - 1 ] : 0;
}

for my $kill (0, 1)
{
	part 'a session idle in transaction for 30 s' . ($kill ? ', kill -9 of the workers meanwhile' : '') => sub {
		my $tag = $kill ? 'olagK' : 'olagI';
		my $open = $local->background_psql('postgres', on_error_stop => 0);
		my $other = $local->background_psql('postgres', on_error_stop => 0);
		my @held;    # the open transaction's changes, for the model at its commit
		my $open_tx = sub {
			my ($n) = @_;
			$open->query_safe('BEGIN');
			my $uuid = $open->query_safe('SELECT campaign.xtk_ingest($cmx$'
				  . $model->collection($model->record('', "oopen$n$tag", { s1 => 'held' })) . '$cmx$)');
			$open->query_safe('SELECT campaign.xtk_ingest_ext($cmx$'
				  . $model->collection($model->record(' _key="@id"', 'o0001', { s2 => "held $tag$n" })) . '$cmx$)');
			@held = ([ "oopen$n$tag", $uuid ]);
		};
		$open_tx->(1);
		my $t0 = time();
		my (%sent, @after);
		my $i = 0;
		my $killed_at;
		while (time() - $t0 < 30)
		{
			my $id = sprintf('%s%03d', $tag, ++$i);
			insert_in($other, $id, { n => $i });
			$sent{$id} = time();
			push @after, $id if !$kill || defined $killed_at;
			if ($kill && !defined $killed_at && time() - $t0 > 10)
			{
				my @victims = worker_pids($local);
				kill 'KILL', @victims;
				note("killed workers @victims: the local server restarts, the open transaction dies");
				ok(scalar(wait_new_workers($local, 120, @victims)), 'workers back after kill -9');
				$killed_at = time();
				eval { $_->quit } for $open, $other;
				$open = $local->background_psql('postgres', on_error_stop => 0);
				$other = $local->background_psql('postgres', on_error_stop => 0);
				$open_tx->(2);
			}
			usleep(250_000);
		}
		sleep(2);
		my %at = split /\s+/, cq("SELECT id || ' ' || extract(epoch FROM at) FROM arrival WHERE id LIKE '$tag%'");
		my $now = time();
		my @lags = map { ($at{$_} // $now) - $sent{$_} } @after;
		my $late = grep { !exists $at{$_} } @after;
		my $p99 = p99(@lags);
		note(sprintf('%d single-record ingests during the open transaction: lag p50 %.2fs, p99 %.2fs, max %.2fs, %d not arrived',
				scalar(@lags), (sort { $a <=> $b } @lags)[ int(@lags / 2) ], $p99, (sort { $a <=> $b } @lags)[-1], $late));
		cmp_ok($p99, '<', 1, sprintf('other sessions\' rows arrive while a transaction stays open: p99 lag %.2fs', $p99));
		$open->query_safe('COMMIT');
		# the open transaction's changes, now committed
		my $slot = $model->insert($held[0][0], { s1 => 'held' });
		$$slot = $held[0][1];
		$model->upsert('o0001', { s2 => "held $tag" . ($kill ? 2 : 1) });
		$open->quit;
		$other->quit;
		caught_up('open transaction: after its commit');
		is(cq("SELECT count(*) || '/' || count(DISTINCT id) FROM arrival WHERE id LIKE '$tag%'"),
			scalar(keys %sent) . '/' . scalar(keys %sent), 'every single-record ingest arrived exactly once');
		check('open transaction' . ($kill ? ' with kill -9' : ''), qr/^o/);
	};
}

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

# ================================================================ schema evolution

part 'schema registered again with an extra attribute under load' => sub {
	my $t = lq('SELECT now()');
	my $runs = $model->start_stream($local, 'postgres', seed => 401, prefix => 'e', changes => 6000, nkeys => 200);
	sleep(1);
	is(lq('SELECT campaign.register_schema($x$'
			  . model_table_schema(undef, qq{\n    <attribute name="extra" type="string" length="40"/>}) . '$x$)'),
		$SCHEMA, 'evolution: registered again with attribute extra while four sessions ingest');
	ok($model->finish_sessions($runs), 'evolution: the sessions ingested their streams');
	caught_up('evolution: before deploy()', 120);
	is(lq("SELECT count(*) FROM campaign.replication_history WHERE outcome = 'failed' AND finished_at > '$t'"), '0',
		'evolution: no batch failed before deploy()');
	check('evolution: before deploy()', qr/^e/);
	lq("SELECT campaign.deploy('$SCHEMA')");
	$model->add_attribute(extra => 'string');
	ok($model->stream($local, 'postgres', seed => 402, prefix => 'e', changes => 2000, nkeys => 200),
		'evolution: changes carrying extra staged');
	caught_up('evolution: after deploy()');
	is(lq("SELECT count(*) FROM campaign.replication_history WHERE outcome = 'failed' AND finished_at > '$t'"), '0',
		'evolution: no batch failed');
	check('evolution: after deploy(), extra flows', qr/^e/);
};

# ================================================================ a cloud that lost data

part 'cloud restored from an earlier base backup, staged rows partly purged' => sub {
	caught_up('restore: before the backup');
	$cloud->backup('before');
	my $snapshot = $model->cloud_rows($cloud, 'postgres');    # what the backup holds
	# S1: replicated, then purged from staging
	ok($model->stream($local, 'postgres', seed => 501, prefix => 'g', changes => 1000, nkeys => 100),
		'restore: S1 staged');
	caught_up('restore: S1 replicated');
	lq("ALTER SYSTEM SET campaign.staging_retention = '1s'");
	lq('SELECT pg_reload_conf()');
	ok(wait_for($local, 'SELECT count(*) FROM dem.modeltablestg WHERE _stg_error IS NULL', '0', 90),
		'restore: S1 purged from staging');
	lq('ALTER SYSTEM RESET campaign.staging_retention');
	lq('SELECT pg_reload_conf()');
	sleep(1);
	# S2: replicated, still staged (fresh keys, its own model)
	my $m2 = CampaignModel->new;
	$m2->add_attribute(extra => 'string') if grep { $_ eq 'extra' } $model->cols;
	ok($m2->stream($local, 'postgres', seed => 502, prefix => 'j', changes => 1000, nkeys => 100),
		'restore: S2 staged');
	caught_up('restore: S2 replicated');
	my $s2_first = lq('SELECT min(_stg_seq) FROM dem.modeltablestg WHERE _stg_error IS NULL');

	$cloud->stop('immediate');
	rmtree($cloud->data_dir);
	PostgreSQL::Test::RecursiveCopy::copypath($cloud->backup_dir . '/before', $cloud->data_dir);
	chmod(0700, $cloud->data_dir);
	$cloud->start;
	my $t = lq('SELECT now()');
	# new changes after the restore (S2's keys)
	ok($m2->stream($local, 'postgres', seed => 503, prefix => 'j', changes => 200, nkeys => 100, sessions => 1),
		'restore: changes staged after the restore');
	caught_up('restore: after the restore');
	$model->set_rows({ %$snapshot, %{ $m2->rows } });
	check('restore: the backup plus every change staging still holds');
	# the worker's own words: replication_history errors and its log lines
	# (not the statements the test sent, which the log shows too)
	my @report = (split(/\n/, lq("SELECT error FROM campaign.replication_history WHERE finished_at > '$t' AND error IS NOT NULL")),
		grep { /campaign: / && !/ statement: / } split /\n/, slurp_file($local->logfile));
	my @gap = grep { /\b(?:gap|purged)\b/i && /\d+/ } @report;
	ok(scalar(@gap), 'restore: the purged gap is reported (replication_history or log), with its range')
	  and note("gap report: $gap[0]");
	note("S2 starts at staged change $s2_first");
};

part 'cloud table dropped, then deployed again' => sub {
	my $signals_before = () = slurp_file($local->logfile) =~ /terminated by signal/g;
	my $t = lq('SELECT now()');
	cq('DROP TABLE dem.modeltable');
	my $m3 = CampaignModel->new;
	$m3->add_attribute(extra => 'string') if grep { $_ eq 'extra' } $model->cols;
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
	$model = $m3;
};

# ================================================================ a long batch

# Mixed changes in blocks of 100 records of one shape (operation and
# carried attributes), keys repeating inside blocks.
sub block_sql
{
	my ($m, $rng, $prefix, $nkeys, $changes) = @_;
	my @sql;
	for (my $done = 0; $done < $changes; $done += 100)
	{
		my $op = (qw(upsert upsert update delete))[ $rng->int(4) ];
		my @carried = grep { $rng->int(2) } $m->cols;
		@carried = ('s1') unless @carried;
		my @recs;
		for (1 .. 100)
		{
			my $id = sprintf('%s%05d', $prefix, $rng->int($nkeys));
			if ($op eq 'delete')
			{
				$m->delete_key($id);
				push @recs, $m->record(' _key="@id" _operation="delete"', $id);
				next;
			}
			my ($sent, $text) = ({}, {});
			for my $c (@carried)
			{
				my ($kind) = map { $_->[1] } grep { $_->[0] eq $c } @{ $m->{atts} };
				$sent->{$c} = CampaignModel::random_value($rng, $kind);
				$text->{$c} = CampaignModel::expected_text($kind, $sent->{$c});
			}
			if ($op eq 'upsert') { $m->upsert($id, $text); }
			else { $m->update($id, $text); }
			push @recs, $m->record($op eq 'update' ? ' _key="@id" _operation="update"' : ' _key="@id"', $id, $sent);
		}
		push @sql, 'SELECT campaign.xtk_ingest_ext($cmx$' . $m->collection(@recs) . '$cmx$);';
	}
	return join("\n", @sql) . "\n";
}

part 'fast shutdown during a long batch' => sub {
	lq("SELECT campaign.stop_replication('$SCHEMA')");
	lq("ALTER SYSTEM SET campaign.batch_size = 200000");
	lq('SELECT pg_reload_conf()');
	my $t0 = time();
	ok($model->run_sessions($local, 'postgres',
			map { block_sql($model, CampaignModel::Stream->new(700 + $_), "z$_", 25000, 25000) } 1 .. 4),
		'long batch: 100,000 mixed changes staged while stopped');
	note(sprintf('long batch: staged in %.1fs', time() - $t0));
	my $pending = lq("SELECT pending FROM campaign.staging_status WHERE schema_name = '$SCHEMA'");
	cmp_ok($pending, '>=', 100000, "long batch: $pending changes pending");
	lq("SELECT campaign.start_replication('$SCHEMA')");
	ok(wait_for($cloud, "SELECT count(*) > 0 FROM pg_stat_activity WHERE $WORKER AND state = 'active'", 't', 60),
		'long batch: the batch runs on the cloud');
	cmp_ok(lq("SELECT pending FROM campaign.staging_status WHERE schema_name = '$SCHEMA'"), '>', 0,
		'long batch: still running when the fast stop is asked');
	my $stopped = check_fast_stop('long batch');
	force_stop() unless $stopped;
	$local->start;
	$t0 = time();
	caught_up('long batch: after the restart', 900);
	note(sprintf('long batch: drained %.1fs after the restart', time() - $t0));
	check('long batch: nothing lost or duplicated', qr/^z/);
};

note(sprintf('total runtime %.0fs', time() - $started));
$local->stop;
$cloud->stop;

done_testing();
