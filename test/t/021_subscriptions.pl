
# Copyright (c) campaign contributors
#
# 021_subscriptions.pl — asynchronous subscriptions (SPEC §7):
# campaign.subscribe() / campaign.unsubscribe() stage their changes and
# return a request id at once; the worker's subscription pass, every
# campaign.subscription_interval (sighup) from nms:subscriptionRcp's
# last_run_at, applies them to the cloud in order.
#
# Two nodes: "local" (campaign preloaded, naptime 200 ms) and "cloud".  The
# interval starts at 1 hour, so that nothing is applied behind the test's
# back; a pass is let through by setting it to 1 s (ALTER SYSTEM +
# pg_reload_conf()) and waiting until the pass has replicated the last
# request id, then set back to 1 hour.
#
#   - the GUC: default 1 hour, unit s, sighup; nms:subscriptionRcp stopped;
#   - call-time errors: unknown service (staged then deleted, never
#     existed), unknown recipient without create, a recipient without
#     email, not XML; refused calls stage nothing; the role is needed;
#   - create: the recipient is staged and reaches the cloud, the
#     subscription row only after the pass (asynchronous);
#   - order: subscribe then unsubscribe within one interval ends with no
#     row (one batch covers both), unsubscribe then subscribe ends
#     subscribed, recipients and services found in the cloud only;
#   - request ids are bigints that increase;
#   - unsubscribe of an applied subscription waits for the next pass;
#   - create while nms:recipient's own replication is stopped: the pass
#     still creates the recipient;
#   - the pass runs every campaign.subscription_interval (3 s here) from
#     last_run_at.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use FindBin;
use lib "$FindBin::Bin/../lib";
use CampaignNodes;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

my $S = 'nms:subscriptionRcp';

# ---------------------------------------------------------------- nodes

my $cloud = start_cloud();
my $local = start_local(qq{
campaign.naptime = '200ms'
campaign.subscription_interval = '1h'
campaign.staging_retention = '7d'
});

sub lq { return $local->safe_psql('postgres', $_[0]); }
sub cq { return $cloud->safe_psql('postgres', $_[0]); }

$CampaignNodes::default_wait = 30;

sub set_interval
{
	my ($v) = @_;
	lq("ALTER SYSTEM SET campaign.subscription_interval = '$v'; SELECT pg_reload_conf()");
}

# Let one subscription pass through: interval 1 s until the pass has
# replicated request $upto, then 1 hour again (and the worker has seen it).
sub run_pass
{
	my ($upto, $name) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	set_interval('1s');
	my $ok = wait_for($local,
		"SELECT replicated_upto >= $upto FROM campaign.schemas WHERE namespace = 'nms' AND name = 'subscriptionRcp'",
		't', 20);
	ok($ok, "$name: a subscription pass replicated up to request $upto");
	set_interval('1h');
	usleep(1_000_000);    # the worker reloads at its next loop (naptime 200 ms)
	return $ok;
}

# The subscribe / unsubscribe call as role ing; returns "bigint <id>".
sub subscribe
{
	my ($service, $recipient, $create) = @_;
	my $c = defined $create ? ", $create" : '';
	return as_role($local, 'ing',
		"SELECT pg_typeof(x)::text || ' ' || x FROM campaign.subscribe('$service', '$recipient'$c) x");
}

sub unsubscribe
{
	my ($service, $recipient) = @_;
	return as_role($local, 'ing',
		"SELECT pg_typeof(x)::text || ' ' || x FROM campaign.unsubscribe('$service', '$recipient') x");
}

# The id out of "bigint <id>", checking the type.
sub rid
{
	my ($out, $name) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	like($out, qr/^bigint \d+$/, "$name: returns a bigint request id");
	return ($out =~ /(\d+)$/)[0] // 0;
}

# SQLSTATE and message of a statement run as $role ('ok' when it succeeds).
sub try_as
{
	my ($role, $sql) = @_;
	$sql =~ s/'/''/g;
	return as_role($local, $role, "SELECT public.try_sql('$sql')");
}

sub cloud_subscriptions
{
	return cq("SELECT coalesce(string_agg(email || '/' || service, ',' ORDER BY email, service), '') FROM nms.subscriptionrcp");
}

sub cloud_has_recipient
{
	return cq("SELECT count(*) FROM nms.recipient WHERE email = '$_[0]'");
}

sub staged_count
{
	return lq('SELECT (SELECT count(*) FROM nms.subscriptionrcpstg) || \'/\' || (SELECT count(*) FROM nms.recipientstg)');
}

# ---------------------------------------------------------------- setup

is(lq(q{SELECT concat_ws(' ', boot_val, unit, context) FROM pg_settings WHERE name = 'campaign.subscription_interval'}),
	'3600 s sighup', 'campaign.subscription_interval: default 1 hour, in seconds, sighup');

lq('CREATE EXTENSION campaign CASCADE');
my $cloud_host = $cloud->host;
my $cloud_port = $cloud->port;
lq(qq{CREATE SERVER ffda FOREIGN DATA WRAPPER postgres_fdw
        OPTIONS (host '$cloud_host', port '$cloud_port', dbname 'postgres')});
lq('CREATE USER MAPPING FOR PUBLIC SERVER ffda');
lq(q{CREATE ROLE ing LOGIN IN ROLE campaign_ingest;
     GRANT INSERT, UPDATE, DELETE ON nms.recipientstg, nms.subscriptionrcpstg TO ing;
     CREATE ROLE nobody LOGIN;
     GRANT USAGE ON SCHEMA campaign TO nobody;
     CREATE FUNCTION public.try_sql(sql text) RETURNS text LANGUAGE plpgsql AS $$
     BEGIN
         EXECUTE sql;
         RETURN 'ok';
     EXCEPTION WHEN others THEN
         RETURN SQLSTATE || ' ' || SQLERRM;
     END $$;});

is(lq("SELECT mode FROM campaign.schemas WHERE namespace = 'nms' AND name = 'subscriptionRcp'"),
	'stopped', 'nms:subscriptionRcp: automatic replication stopped');
usleep(1_200_000);    # the worker has been running for a while
my $t_deploy = lq('SELECT clock_timestamp()');
for my $s ('nms:recipient', 'nms:service', $S)
{
	like(lq("SELECT campaign.deploy('$s')"), qr/nms/, "$s deployed");
}
ok(wait_for($local,
	"SELECT last_run_at IS NOT NULL FROM campaign.schemas WHERE namespace = 'nms' AND name = 'subscriptionRcp'", 't'),
	'a first subscription pass ran once deployed');
# last_run_at is the time of that pass: the next one is due one interval
# after it (a worker whose now() stayed at its start would never run again)
is(lq("SELECT last_run_at >= '$t_deploy' AND last_run_at <= clock_timestamp() FROM campaign.schemas WHERE namespace = 'nms' AND name = 'subscriptionRcp'"),
	't', 'last_run_at is the time of the pass (after the deploy)')
  or diag(lq("SELECT concat_ws(' ', 'last_run_at', s.last_run_at, 'deployed', '$t_deploy', 'worker started', a.backend_start)
                FROM campaign.schemas s, pg_stat_activity a
               WHERE s.namespace = 'nms' AND s.name = 'subscriptionRcp' AND a.backend_type = 'campaign replication worker'"));

lq(q{SELECT campaign.xtk_ingest('<serviceStg-collection xtkschema="nms:serviceStg"><serviceStg name="news" label="News"/><serviceStg name="sports" label="Sports"/><serviceStg name="gone" label="Gone"/></serviceStg-collection>')});
lq(q{SELECT campaign.xtk_ingest_ext('<serviceStg _key="@name" _operation="delete" name="gone" xtkschema="nms:serviceStg"/>')});
ok(wait_for($cloud, "SELECT string_agg(name, ',' ORDER BY name) FROM nms.service", 'news,sports'),
	'services staged and replicated (nms:service continuous)');
cq(q{INSERT INTO nms.service (name, label) VALUES ('cloudonly', 'In the cloud only')});
cq(q{INSERT INTO nms.recipient (email, firstname) VALUES ('dave@example.com', 'Dave')});

# ================================================================ call-time errors

like(try_as('ing', q{SELECT campaign.subscribe('nope', '<recipient email="x@example.com"/>', true)}),
	qr/^42704 service "nope" does not exist$/, 'subscribe: unknown service, 42704 at call time');
like(try_as('ing', q{SELECT campaign.unsubscribe('nope', '<recipient email="x@example.com"/>')}),
	qr/^42704 service "nope" does not exist$/, 'unsubscribe: unknown service, 42704 at call time');
like(try_as('ing', q{SELECT campaign.subscribe('gone', '<recipient email="x@example.com"/>', true)}),
	qr/^42704 service "gone" does not exist$/, 'subscribe: a service deleted in staging is unknown');
like(try_as('ing', q{SELECT campaign.subscribe('news', '<recipient email="ghost@example.com"/>')}),
	qr/^P0002 recipient "ghost\@example.com" does not exist$/,
	'subscribe without create: unknown recipient, P0002 at call time');
like(try_as('ing', q{SELECT campaign.subscribe('news', '<recipient email="ghost@example.com"/>', false)}),
	qr/^P0002 /, 'subscribe with create => false: same');
like(try_as('ing', q{SELECT campaign.subscribe('news', '<recipient firstName="x"/>', true)}),
	qr/^23502 recipient has no email$/, 'a recipient without email');
like(try_as('ing', q{SELECT campaign.subscribe('news', 'not xml', true)}),
	qr/^2200M /, 'a recipient that is not XML');
like(try_as('nobody', q{SELECT campaign.subscribe('news', '<recipient email="x@example.com"/>', true)}),
	qr/^42501 permission denied for function subscribe$/, 'subscribe needs campaign_ingest');
like(try_as('nobody', q{SELECT campaign.unsubscribe('news', '<recipient email="x@example.com"/>')}),
	qr/^42501 permission denied for function unsubscribe$/, 'unsubscribe needs campaign_ingest');
lq(q{CREATE ROLE bare LOGIN IN ROLE campaign_ingest});
like(try_as('bare', q{SELECT campaign.subscribe('news', '<recipient email="x@example.com"/>', true)}),
	qr/^42501 permission denied to upsert into schema "nms:subscriptionRcpStg"$/,
	'campaign_ingest alone: subscribe needs INSERT and UPDATE on nms.subscriptionrcpstg');
like(try_as('bare', q{SELECT campaign.unsubscribe('news', '<recipient email="x@example.com"/>')}),
	qr/^42501 permission denied to delete from schema "nms:subscriptionRcpStg"$/,
	'campaign_ingest alone: unsubscribe needs DELETE on nms.subscriptionrcpstg');
is(staged_count(), '0/0', 'refused calls staged nothing');

# ================================================================ create, asynchronous

my $r1 = rid(subscribe('news', '<recipient email="ann@example.com" firstName="Ann" lastName="Lee"/>', 'true'),
	'subscribe with create');
is(cloud_subscriptions(), '', 'right after subscribe: no subscription row in the cloud');
ok(wait_for($cloud, "SELECT firstname || ' ' || lastname FROM nms.recipient WHERE email = 'ann\@example.com'",
	'Ann Lee'), 'the created recipient reaches the cloud (nms:recipient continuous)');
usleep(1_500_000);
is(cloud_subscriptions(), '', 'within the interval: still no subscription row in the cloud');
is(lq("SELECT pending FROM campaign.staging_status WHERE schema_name = '$S'"), '1',
	'staging_status: the subscription is pending');

run_pass($r1, 'create');
is(cloud_subscriptions(), 'ann@example.com/news', 'after the pass: the subscription row is in the cloud');
is(cq(q{SELECT created IS NOT NULL AND created > now() - interval '1 hour' FROM nms.subscriptionrcp WHERE email = 'ann@example.com'}),
	't', 'its created date is set');

# ================================================================ order within one interval

my @ids;
push @ids, rid(subscribe('news', '<recipient email="bob@example.com" firstName="Bob"/>', 'true'), 'bob subscribe');
push @ids, rid(unsubscribe('news', '<recipient email="bob@example.com"/>'), 'bob unsubscribe');
push @ids, rid(subscribe('sports', '<recipient email="carol@example.com"/>', 'true'), 'carol subscribe');
push @ids, rid(unsubscribe('news', '<recipient email="ann@example.com"/>'), 'ann unsubscribe');
push @ids, rid(subscribe('news', '<recipient email="ann@example.com"/>'), 'ann subscribe again (no create: staged)');
push @ids, rid(subscribe('sports', '<recipient email="dave@example.com"/>'), 'dave (in the cloud only) subscribe');
push @ids, rid(subscribe('cloudonly', '<recipient email="dave@example.com"/>'), 'service in the cloud only');
push @ids, rid(subscribe('news', '<recipient email="bob@example.com"/>'), 'bob (created in this interval: found in staging) subscribe again');
push @ids, rid(unsubscribe('news', '<recipient email="bob@example.com"/>'), 'bob unsubscribe again');
my @sorted = sort { $a <=> $b } @ids;
is("@ids", "@sorted", 'request ids increase');
cmp_ok($ids[0], '>', $r1, 'after the first request');
is(scalar(keys %{ { map { $_ => 1 } @ids } }), scalar(@ids), 'request ids are distinct');
usleep(1_000_000);
is(cloud_subscriptions(), 'ann@example.com/news', 'before the pass: the cloud is unchanged');

my $before = lq('SELECT coalesce(max(id), 0) FROM campaign.replication_history');
run_pass($ids[-1], 'order');
is(cloud_subscriptions(), 'ann@example.com/news,carol@example.com/sports,dave@example.com/cloudonly,dave@example.com/sports',
	'after the pass: bob unsubscribed, ann subscribed again, carol and dave subscribed');
is(cloud_has_recipient('bob@example.com'), '1', 'bob was created all the same');
is(cloud_has_recipient('carol@example.com'), '1', 'carol was created');
is(lq(qq{SELECT count(*) FROM campaign.replication_history
          WHERE id > $before AND schema_name = '$S' AND outcome = 'success'
            AND from_seq < $ids[0] AND upto_seq >= $ids[-1] AND rows = ${\ scalar(@ids)}}),
	'1', 'one batch applied the whole interval, in order');

# ================================================================ unsubscribe waits for the next pass

my $r = rid(unsubscribe('sports', '<recipient email="carol@example.com"/>'), 'carol unsubscribe');
usleep(1_500_000);
like(cloud_subscriptions(), qr{carol\@example.com/sports}, 'before the pass: still subscribed in the cloud');
run_pass($r, 'unsubscribe');
unlike(cloud_subscriptions(), qr{carol}, 'after the pass: unsubscribed');

# ================================================================ create while nms:recipient is stopped

lq("SELECT campaign.stop_replication('nms:recipient')");
$r = rid(subscribe('news', '<recipient email="erin@example.com" firstName="Erin"/>', 'true'), 'erin subscribe with create');
run_pass($r, 'create, nms:recipient stopped');
like(cloud_subscriptions(), qr{erin\@example.com/news}, 'erin subscribed in the cloud');
is(cloud_has_recipient('erin@example.com'), '1',
	'the pass created the recipient too (no subscription of a recipient missing from the cloud)');
lq("SELECT campaign.start_replication('nms:recipient')");

# ================================================================ the interval, from last_run_at

{
	set_interval('3s');
	my @runs;
	my $last = '';
	my $deadline = time() + 15;
	while (time() < $deadline && @runs < 3)
	{
		my $v = lq("SELECT extract(epoch FROM last_run_at) FROM campaign.schemas WHERE namespace = 'nms' AND name = 'subscriptionRcp'");
		push @runs, $v if $v ne $last;
		$last = $v;
		usleep(50_000);
	}
	# the first value seen may be an older run
	is(scalar(@runs), 3, 'interval 3 s: new passes seen');
	if (@runs == 3)
	{
		my $gap = $runs[2] - $runs[1];
		cmp_ok($gap, '>=', 3.0, "interval 3 s: passes $gap s apart (at least the interval)");
		cmp_ok($gap, '<', 4.5, "interval 3 s: passes $gap s apart (not much more)");
	}
	$r = rid(subscribe('sports', '<recipient email="fred@example.com"/>', 'true'), 'fred subscribe');
	ok(wait_for($cloud, "SELECT count(*) FROM nms.subscriptionrcp WHERE email = 'fred\@example.com'", '1', 10),
		'interval 3 s: applied by the next pass');
	set_interval('1h');
}

$local->stop;
$cloud->stop;
done_testing();
