
# Copyright (c) campaign contributors
#
# 020_ingestion_requests.pl — Campaign Standard's data-ingestion API
# (SPEC §6, seeds/003): every POST and GET response produced for real by
# campaign.ingestion_request() / campaign.ingestion_status(), each field of
# the jsonb checked in SQL (value and JSON type, and the exact set of keys).
#
# Two nodes: "local" (campaign preloaded, the worker serves postgres,
# restart_after_crash on) and "cloud" (plain PostgreSQL, server "ffda").
# Mappings: the built-in nms:recipient and a custom dem:sampleTable.
#
#   POST  Failed "is not published" (registered not deployed, unknown,
#         built-in not deployed, even when stopped), Failed "is not stopped"
#         (continuous, scheduled), Success, In Progress "already in progress"
#         (the same requestId);
#   GET   Success (numRecords = the staged changes, batchId ""), Failed
#         ACP-880056 (nothing staged), In Progress (the worker mid-request:
#         its batch waits for a lock a cloud session holds on the cloud
#         table), Aborted (the
#         worker killed with SIGKILL mid-request, the request marked after
#         the restart), Failed ACP-880096 with batchId = the failed
#         replication_history batch (the cloud table renamed away: the
#         whole batch errors with 42P01 after its rows were sent), Failed
#         ACP-880096 without batchId (cloud down: nothing was sent), rows
#         rejected by the cloud not counted in numRecords;
#   roles: campaign_sql_function needed for both functions;
#   retention: finished requests purged after campaign.history_retention.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use FindBin;
use lib "$FindBin::Bin/../lib";
use CampaignNodes;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

my $R = 'nms:recipient';
my $D = 'dem:sampleTable';

# ---------------------------------------------------------------- nodes

my $cloud = start_cloud();
my $local = start_local(qq{
# one replication worker (campaign.max_workers): the test kills it by its pid
campaign.max_workers = 1
restart_after_crash = on
campaign.naptime = '200ms'
campaign.subscription_interval = '3s'
campaign.staging_retention = '7d'
});

sub lq { return $local->safe_psql('postgres', $_[0]); }
sub cq { return $cloud->safe_psql('postgres', $_[0]); }

# psql as a role; returns (exit code, stdout, stderr)
sub try_as_role
{
	my ($role, $sql) = @_;
	my ($out, $err);
	my $rc = $local->psql('postgres', $sql, stdout => \$out, stderr => \$err,
		extra_params => [ '-U', $role ]);
	return ($rc, $out, $err);
}

# ---------------------------------------------------------------- responses

# The POST, parsed in SQL: status, info, requestId (value and JSON type),
# and the keys of the object.
sub post
{
	my ($mapping, $role) = @_;
	$role //= 'api';
	my $out = as_role($local, $role, qq{
		SELECT concat_ws('|', r->>'status', r->>'info',
		                 coalesce(jsonb_typeof(r->'requestId'), 'absent'),
		                 coalesce((r->>'requestId')::bigint::text, ''),
		                 (SELECT string_agg(k, ',' ORDER BY k) FROM jsonb_object_keys(r) k))
		  FROM campaign.ingestion_request('$mapping') r});
	my @f = split(/\|/, $out, -1);
	die "unexpected POST output: $out" unless @f == 5;
	return {
		status => $f[0],
		info => $f[1],
		id_type => $f[2],
		requestId => $f[3],
		keys => $f[4]
	};
}

# The GET, parsed in SQL.
sub get
{
	my ($mapping, $id, $role) = @_;
	$role //= 'api';
	my $out = as_role($local, $role, qq{
		SELECT concat_ws('|', r->>'status', r->>'info',
		                 jsonb_typeof(r->'batchId'), r->>'batchId',
		                 jsonb_typeof(r->'numRecords'), (r->>'numRecords')::bigint,
		                 jsonb_typeof(r->'requestId'), (r->>'requestId')::bigint,
		                 (SELECT string_agg(k, ',' ORDER BY k) FROM jsonb_object_keys(r) k))
		  FROM campaign.ingestion_status('$mapping', $id) r});
	my @f = split(/\|/, $out, -1);
	die "unexpected GET output: $out" unless @f == 9;
	return {
		status => $f[0],
		info => $f[1],
		batch_type => $f[2],
		batchId => $f[3],
		num_type => $f[4],
		numRecords => $f[5],
		id_type => $f[6],
		requestId => $f[7],
		keys => $f[8]
	};
}

my $POST_KEYS = 'info,requestId,status';
my $POST_FAILED_KEYS = 'info,status';
my $GET_KEYS = 'batchId,info,numRecords,requestId,status';

sub submitted_ok
{
	my ($p, $mapping, $name) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	is($p->{status}, 'Success', "$name: POST status Success");
	is($p->{info}, "Ingestion request submitted successfully for the Mapping ID: $mapping",
		"$name: POST info");
	is($p->{id_type}, 'number', "$name: POST requestId is a number");
	like($p->{requestId}, qr/^\d+$/, "$name: POST requestId");
	is($p->{keys}, $POST_KEYS, "$name: POST keys");
}

sub refused_ok
{
	my ($p, $mapping, $why, $name) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	is($p->{status}, 'Failed', "$name: POST status Failed");
	is($p->{info},
		"Unable to submit data ingestion request, XDM Mapping ID: $mapping is $why",
		"$name: POST info");
	is($p->{keys}, $POST_FAILED_KEYS, "$name: POST has no requestId");
}

# Check a whole GET response.
sub get_ok
{
	my ($g, $exp, $name) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	is($g->{status}, $exp->{status}, "$name: GET status");
	is($g->{info}, $exp->{info}, "$name: GET info");
	is($g->{batch_type}, 'string', "$name: GET batchId is a string");
	is($g->{batchId}, $exp->{batchId}, "$name: GET batchId");
	is($g->{num_type}, 'number', "$name: GET numRecords is a number");
	is($g->{numRecords}, $exp->{numRecords}, "$name: GET numRecords");
	is($g->{id_type}, 'number', "$name: GET requestId is a number");
	is($g->{requestId}, $exp->{requestId}, "$name: GET requestId");
	is($g->{keys}, $GET_KEYS, "$name: GET keys");
}

# Wait until the request has left In Progress.
sub wait_finished
{
	my ($id) = @_;
	return $local->poll_query_until('postgres',
		"SELECT status <> 'In Progress' FROM campaign.ingestion_requests WHERE id = $id");
}

sub worker_pid
{
	my ($rc, $out) = $local->psql('postgres',
		"SELECT pid FROM pg_stat_activity WHERE backend_type = 'campaign replication worker'");
	return $rc == 0 ? $out : '';
}

# A cloud session locking nms.recipient: the batch of a request waits for
# it on the cloud, mid-request.
sub hold_cloud
{
	my $s = $cloud->background_psql('postgres', on_error_stop => 0);
	$s->query_safe('BEGIN; LOCK TABLE nms.recipient IN SHARE MODE');
	return $s;
}

# The worker started request $id and its batch now waits for the cloud lock.
sub wait_mid_request
{
	my ($id) = @_;
	return $local->poll_query_until('postgres', qq{
		SELECT started_at IS NOT NULL AND status = 'In Progress'
		  FROM campaign.ingestion_requests WHERE id = $id})
	  && $cloud->poll_query_until('postgres', q{
		SELECT EXISTS (SELECT 1 FROM pg_stat_activity
		                WHERE application_name LIKE 'campaign replication%'
		                  AND wait_event_type = 'Lock')});
}

sub recipients
{
	my ($prefix, $n) = @_;
	my $doc = '<recipientStg-collection xtkschema="nms:recipientStg">';
	$doc .= sprintf('<recipientStg email="%s%02d@example.com" firstName="F%d" lastName="L%d"/>',
		$prefix, $_, $_, $_)
	  for 1 .. $n;
	return $doc . '</recipientStg-collection>';
}

# Stage a document; returns the number of UUIDs generated.
sub ingest
{
	return lq("SELECT cardinality(string_to_array(campaign.xtk_ingest(\$x\$$_[0]\$x\$), ','))");
}

sub cloud_count
{
	my ($prefix) = @_;
	return cq("SELECT count(*) FROM nms.recipient WHERE email LIKE '$prefix%'");
}

# ---------------------------------------------------------------- setup

lq('CREATE EXTENSION campaign CASCADE');
my $cloud_host = $cloud->host;
my $cloud_port = $cloud->port;
lq(qq{CREATE SERVER ffda FOREIGN DATA WRAPPER postgres_fdw
        OPTIONS (host '$cloud_host', port '$cloud_port', dbname 'postgres')});
lq('CREATE USER MAPPING FOR PUBLIC SERVER ffda');
lq(q{CREATE ROLE api LOGIN IN ROLE campaign_sql_function;
     CREATE ROLE nobody LOGIN;
     CREATE ROLE ingester LOGIN IN ROLE campaign_ingest;
     CREATE ROLE admin LOGIN IN ROLE campaign_admin;});

is(lq("SELECT campaign.register_schema(\$x\$
<srcSchema name=\"sampleTable\" namespace=\"dem\">
  <element name=\"sampleTable\" autopk=\"true\" autouuid=\"true\" autoStg=\"true\">
    <key name=\"id\" internal=\"true\"><keyfield xpath=\"\@id\"/></key>
    <attribute name=\"id\" type=\"string\" length=\"20\"/>
    <attribute name=\"score\" type=\"long\"/>
  </element>
</srcSchema>\$x\$)"), $D, 'custom schema registered');
is(lq("SELECT campaign.register_schema(\$x\$
<srcSchema name=\"other\" namespace=\"dem\">
  <element name=\"other\" autopk=\"true\" autoStg=\"true\">
    <attribute name=\"id\" type=\"string\" length=\"20\"/>
  </element>
</srcSchema>\$x\$)"), 'dem:other', 'second custom schema registered, never deployed');
is(lq("SELECT campaign.register_schema(\$x\$
<srcSchema name=\"plain\" namespace=\"dem\">
  <element name=\"plain\" autopk=\"true\">
    <attribute name=\"id\" type=\"string\" length=\"20\"/>
  </element>
</srcSchema>\$x\$)"), 'dem:plain', 'schema without staging registered');

# The request API's role feeds the mappings it requests (issue 17).
lq(q{GRANT INSERT ON nms.recipientstg, nms.servicestg, dem.sampletablestg, dem.otherstg TO api});

like(lq("SELECT campaign.deploy('$R')"), qr/recipient/, 'nms:recipient deployed');
like(lq("SELECT campaign.deploy('$D')"), qr/sampletable/, 'dem:sampleTable deployed');
like(lq("SELECT campaign.deploy('dem:plain')"), qr/plain/, 'dem:plain deployed');
ok($local->poll_query_until('postgres',
	"SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'campaign replication worker'"),
	'the worker runs');

# ================================================================ roles

{
	my ($rc, $out, $err) = try_as_role('nobody', "SELECT campaign.ingestion_request('$R')");
	isnt($rc, 0, 'role without campaign_sql_function: POST refused');
	like($err, qr/permission denied for schema campaign/, '... permission denied (schema)');
	($rc, $out, $err) = try_as_role('nobody', "SELECT campaign.ingestion_status('$R', 1)");
	isnt($rc, 0, 'role without campaign_sql_function: GET refused');
	like($err, qr/permission denied for schema campaign/, '... permission denied (schema)');
	lq('GRANT USAGE ON SCHEMA campaign TO nobody');
	($rc, $out, $err) = try_as_role('nobody', "SELECT campaign.ingestion_request('$R')");
	like($err, qr/permission denied for function ingestion_request/,
		'with USAGE on the schema but without the role: POST denied');
	($rc, $out, $err) = try_as_role('nobody', "SELECT campaign.ingestion_status('$R', 1)");
	like($err, qr/permission denied for function ingestion_status/,
		'with USAGE on the schema but without the role: GET denied');
	($rc, $out, $err) = try_as_role('nobody', 'SELECT count(*) FROM campaign.ingestion_requests');
	like($err, qr/permission denied for table ingestion_requests/,
		'the request table is not readable without campaign_admin');
	($rc, $out, $err) = try_as_role('ingester', "SELECT campaign.ingestion_request('$R')");
	like($err, qr/permission denied for function ingestion_request/,
		'campaign_ingest alone is not enough for the POST');
	($rc, $out, $err) = try_as_role('admin', "SELECT campaign.ingestion_request('$R')");
	like($err, qr/permission denied for function ingestion_request/,
		'campaign_admin alone is not enough for the POST');
	is(lq('SELECT count(*) FROM campaign.ingestion_requests'), '0', 'refused calls left no request');
}

# ================================================================ POST refusals

refused_ok(post('dem:other'), 'dem:other', 'not published', 'registered, not deployed');
refused_ok(post('dem:nothing'), 'dem:nothing', 'not published', 'unknown mapping');
refused_ok(post('nms:service'), 'nms:service', 'not published', 'built-in, not deployed');
refused_ok(post('dem:plain'), 'dem:plain', 'not published', 'deployed schema without staging');
lq("SELECT campaign.stop_replication('dem:other')");
refused_ok(post('dem:other'), 'dem:other', 'not published', 'not deployed but stopped: still not published');

is(lq("SELECT mode FROM campaign.schemas WHERE namespace = 'nms' AND name = 'recipient'"),
	'continuous', 'nms:recipient replicates continuously');
refused_ok(post($R), $R, 'not stopped', 'continuous mapping');
lq("SELECT campaign.start_replication('$D', '1 hour')");
refused_ok(post($D), $D, 'not stopped', 'scheduled mapping');
is(lq('SELECT count(*) FROM campaign.ingestion_requests'), '0', 'refused POSTs left no request');

# ================================================================ Success

lq("SELECT campaign.stop_replication('$R'), campaign.stop_replication('$D')");
is(ingest(recipients('a', 15)), '15', '15 recipients staged while nms:recipient is stopped');
usleep(600_000);
is(cloud_count('a'), '0', 'stopped: nothing replicated');

my $p = post($R);
submitted_ok($p, $R, 'success');
my $id1 = $p->{requestId};
ok(wait_finished($id1), 'request served');
get_ok(get($R, $id1),
	{ status => 'Success', info => "Mapping Id: $R. ", batchId => '', numRecords => 15, requestId => $id1 },
	'success');
is(cloud_count('a'), '15', 'the 15 recipients are in the cloud');
is(lq("SELECT count(*) FROM campaign.ingestion_requests WHERE id = $id1 AND requested_by = 'api' AND started_at IS NOT NULL AND finished_at >= started_at"),
	'1', 'ingestion_requests: requested by api, started, finished');
# The worker's now() must follow the clock: a request is started and
# finished after it was requested (retention depends on finished_at).
is(lq("SELECT concat_ws(' ', started_at >= requested_at, finished_at >= requested_at, finished_at > now() - interval '1 minute') FROM campaign.ingestion_requests WHERE id = $id1"),
	't t t', 'the request was started and finished after it was requested, at the current time')
  or diag(lq("SELECT concat_ws(' ', 'requested_at', requested_at, 'started_at', started_at, 'finished_at', finished_at, 'now', now()) FROM campaign.ingestion_requests WHERE id = $id1"));
is(lq("SELECT mode FROM campaign.schemas WHERE namespace = 'nms' AND name = 'recipient'"),
	'stopped', 'the mapping stays stopped');

# A custom mapping, changes of several kinds (numRecords counts changes).
lq(q{SELECT campaign.xtk_ingest('<sampleTableStg-collection xtkschema="dem:sampleTableStg"><sampleTableStg id="d1" score="1"/><sampleTableStg id="d2" score="2"/><sampleTableStg id="d3" score="3"/></sampleTableStg-collection>')});
lq(q{SELECT campaign.xtk_ingest_ext('<sampleTableStg _key="@id" _operation="update" id="d1" score="10" xtkschema="dem:sampleTableStg"/>')});
lq(q{SELECT campaign.xtk_ingest_ext('<sampleTableStg _key="@id" _operation="delete" id="d2" xtkschema="dem:sampleTableStg"/>')});
$p = post($D);
submitted_ok($p, $D, 'custom mapping');
my $idd = $p->{requestId};
cmp_ok($idd, '>', $id1, 'request ids increase');
ok(wait_finished($idd), 'custom mapping request served');
get_ok(get($D, $idd),
	{ status => 'Success', info => "Mapping Id: $D. ", batchId => '', numRecords => 5, requestId => $idd },
	'custom mapping success');
is(cq('SELECT string_agg(id || score, \',\' ORDER BY id) FROM dem.sampletable'), 'd110,d33',
	'custom mapping: the cloud table has the changes applied in order');

# GET of a request under another mapping, or of no request
{
	my ($rc, $out, $err) = try_as_role('api', "SELECT campaign.ingestion_status('$D', $id1)");
	like($err, qr/no ingestion request $id1 for the Mapping ID: $D/, 'GET under another mapping: error');
	($rc, $out, $err) = try_as_role('api', "SELECT campaign.ingestion_status('$R', 999999)");
	like($err, qr/no ingestion request 999999/, 'GET of an unknown request: error');
}

# ================================================================ Failed: nothing staged

$p = post($R);
submitted_ok($p, $R, 'nothing staged');
my $id2 = $p->{requestId};
ok(wait_finished($id2), 'request served');
get_ok(get($R, $id2),
	{
		status => 'Failed',
		info => "Mapping Id: $R. ACP-880056 Failed to fetch the record from the database.",
		batchId => '',
		numRecords => 0,
		requestId => $id2
	},
	'nothing staged');

# ================================================================ In Progress

{
	ingest(recipients('held', 1));
	my $s = hold_cloud();
	$p = post($R);
	submitted_ok($p, $R, 'in progress');
	my $id3 = $p->{requestId};
	ok(wait_mid_request($id3), 'the worker started the request and its batch waits for the cloud');
	get_ok(get($R, $id3),
		{ status => 'In Progress', info => "Mapping Id: $R.", batchId => '', numRecords => 0, requestId => $id3 },
		'in progress');

	my $again = post($R);
	is($again->{status}, 'In Progress', 'second POST: status In Progress');
	is($again->{info}, "Ingestion request already in progress for the Mapping ID: $R",
		'second POST: info');
	is($again->{id_type}, 'number', 'second POST: requestId is a number');
	is($again->{requestId}, $id3, 'second POST: the running request\'s id');
	is($again->{keys}, $POST_KEYS, 'second POST: keys');
	is(lq("SELECT count(*) FROM campaign.ingestion_requests WHERE mapping = '$R' AND status = 'In Progress'"),
		'1', 'no second request recorded');
	# another mapping is not blocked by it
	my $other = post($D);
	submitted_ok($other, $D, 'other mapping while one is in progress');
	isnt($other->{requestId}, $id3, 'other mapping: its own request');

	$s->query_safe('COMMIT');
	$s->quit;
	ok(wait_finished($id3), 'request finished after the cloud lock was released');
	get_ok(get($R, $id3),
		{ status => 'Success', info => "Mapping Id: $R. ", batchId => '', numRecords => 1, requestId => $id3 },
		'in progress, then success');
	is(cloud_count('held'), '1', 'the held recipient reached the cloud');
	ok(wait_finished($other->{requestId}), 'other mapping request served');
	is(get($D, $other->{requestId})->{status}, 'Failed', 'other mapping: nothing staged, Failed');
}

# ================================================================ Aborted

{
	ingest(recipients('k', 2));
	# an ingest left uncommitted: it dies with the crash
	my $open = $local->background_psql('postgres', on_error_stop => 0);
	$open->query_safe(q{BEGIN; SELECT campaign.xtk_ingest('<recipientStg email="killed@example.com" xtkschema="nms:recipientStg"/>')});
	my $s = hold_cloud();
	$p = post($R);
	submitted_ok($p, $R, 'aborted');
	my $id4 = $p->{requestId};
	ok(wait_mid_request($id4), 'the worker is mid-request');
	is(get($R, $id4)->{status}, 'In Progress', 'GET: In Progress before the kill');

	my $victim = worker_pid();
	like($victim, qr/^\d+$/, 'worker pid found');
	kill 'KILL', $victim;
	eval { $open->{run}->kill_kill; 1 };    # dies with the crash anyway
	$s->query_safe('COMMIT');
	$s->quit;

	ok($local->poll_query_until('postgres', qq{
		SELECT EXISTS (SELECT 1 FROM pg_stat_activity
		                WHERE backend_type = 'campaign replication worker' AND pid <> $victim)}),
		'the worker restarted');
	ok(wait_finished($id4), 'the request left In Progress after the restart');
	get_ok(get($R, $id4),
		{
			status => 'Aborted',
			info => "Mapping Id: $R. Ingestion request aborted due to some issue with data ingestion service. Please submit a new request",
			batchId => '',
			numRecords => 0,
			requestId => $id4
		},
		'aborted');
	like(slurp_file($local->logfile),
		qr/campaign replication worker" \(PID $victim\) was terminated by signal 9/,
		'server log: the worker was killed by signal 9');
	is(cloud_count('k'), '0', 'aborted request: nothing replicated');
	is(cloud_count('killed'), '0', 'the uncommitted ingest died with the crash');

	# a new request is accepted and replicates what was staged
	$p = post($R);
	submitted_ok($p, $R, 'resubmitted after abort');
	my $id5 = $p->{requestId};
	cmp_ok($id5, '>', $id4, 'a new request id');
	ok(wait_finished($id5), 'resubmitted request served');
	get_ok(get($R, $id5),
		{ status => 'Success', info => "Mapping Id: $R. ", batchId => '', numRecords => 2, requestId => $id5 },
		'resubmitted after abort');
	is(cloud_count('k'), '2', 'the 2 recipients are in the cloud');
}

# ================================================================ Failed with a batchId

{
	ingest(recipients('b', 3));
	cq('ALTER TABLE nms.recipient RENAME TO recipient_gone');
	my $hist = lq('SELECT coalesce(max(id), 0) FROM campaign.replication_history');
	$p = post($R);
	submitted_ok($p, $R, 'batch failed');
	my $id6 = $p->{requestId};
	ok(wait_finished($id6), 'request served');
	my $failed = lq(qq{SELECT id FROM campaign.replication_history
	                    WHERE id > $hist AND schema_name = '$R' AND outcome = 'failed'});
	like($failed, qr/^\d+$/, 'one failed batch in replication_history');
	like(lq("SELECT error FROM campaign.replication_history WHERE id = " . ($failed =~ /^\d+$/ ? $failed : 0)),
		qr/recipient.*does not exist/, 'its error is the cloud\'s');
	# The batch checks the cloud table before it sends anything: no batch
	# was sent, so no batchId (SPEC §6: set only once a batch was sent).
	get_ok(get($R, $id6),
		{
			status => 'Failed',
			info => "Mapping Id: $R. ACP-880096 Sync Job failed to upload. Please check the error in the Platform UI.",
			batchId => '',
			numRecords => 0,
			requestId => $id6
		},
		'batch failed');
	is(lq("SELECT pg_typeof(batch_id)::text FROM campaign.ingestion_requests WHERE id = $id6"), 'text',
		'batch_id column');
	like(slurp_file($local->logfile), qr/replication of $R failed: cloud server: relation "nms.recipient" does not exist/,
		'server log: the failed batch');

	cq('ALTER TABLE nms.recipient_gone RENAME TO recipient');
	$p = post($R);
	submitted_ok($p, $R, 'after the cloud is fixed');
	my $id7 = $p->{requestId};
	ok(wait_finished($id7), 'request served');
	get_ok(get($R, $id7),
		{ status => 'Success', info => "Mapping Id: $R. ", batchId => '', numRecords => 3, requestId => $id7 },
		'after the cloud is fixed');
	is(cloud_count('b'), '3', 'the 3 recipients of the failed batch are in the cloud');
}

# ================================================================ Failed before anything was sent

{
	ingest(recipients('c', 2));
	$cloud->stop('fast');
	my $hist = lq('SELECT coalesce(max(id), 0) FROM campaign.replication_history');
	$p = post($R);
	submitted_ok($p, $R, 'cloud down');
	my $id8 = $p->{requestId};
	ok(wait_finished($id8), 'request served');
	get_ok(get($R, $id8),
		{
			status => 'Failed',
			info => "Mapping Id: $R. ACP-880096 Sync Job failed to upload. Please check the error in the Platform UI.",
			batchId => '',
			numRecords => 0,
			requestId => $id8
		},
		'cloud down: no batch was sent, no batchId');
	like(lq("SELECT string_agg(outcome || ' ' || error, ',') FROM campaign.replication_history WHERE id > $hist"),
		qr/^failed \S/, 'replication_history: the failed attempt (no batchId for it: nothing was sent)');
	$cloud->start;
	$p = post($R);
	my $id9 = $p->{requestId};
	ok(wait_finished($id9), 'request served once the cloud is back');
	get_ok(get($R, $id9),
		{ status => 'Success', info => "Mapping Id: $R. ", batchId => '', numRecords => 2, requestId => $id9 },
		'cloud back');
}

# ================================================================ rows rejected by the cloud

{
	cq(q{ALTER TABLE nms.recipient ADD CONSTRAINT no_bad CHECK (lastname IS DISTINCT FROM 'BAD')});
	ingest('<recipientStg-collection xtkschema="nms:recipientStg">'
		  . '<recipientStg email="r1@example.com" lastName="ok"/>'
		  . '<recipientStg email="r2@example.com" lastName="BAD"/>'
		  . '<recipientStg email="r3@example.com" lastName="ok"/>'
		  . '</recipientStg-collection>');
	$p = post($R);
	my $id10 = $p->{requestId};
	ok(wait_finished($id10), 'request with a rejected row served');
	get_ok(get($R, $id10),
		{ status => 'Success', info => "Mapping Id: $R. ", batchId => '', numRecords => 2, requestId => $id10 },
		'one row of three rejected: numRecords counts the ingested ones');
	is(cloud_count('r'), '2', 'two rows in the cloud');

	ingest('<recipientStg email="r4@example.com" lastName="BAD" xtkschema="nms:recipientStg"/>');
	$p = post($R);
	my $id11 = $p->{requestId};
	ok(wait_finished($id11), 'request whose only row is rejected served');
	my $g = get($R, $id11);
	is($g->{status}, 'Failed', 'every row rejected: Failed');
	is($g->{numRecords}, '0', 'every row rejected: numRecords 0');
	note("every row rejected: info '$g->{info}', batchId '$g->{batchId}'");
	lq("SELECT campaign.discard_errors('$R')");
	cq('ALTER TABLE nms.recipient DROP CONSTRAINT no_bad');
}

# ================================================================ retention

{
	my $finished = lq("SELECT count(*) FROM campaign.ingestion_requests WHERE status <> 'In Progress'");
	cmp_ok($finished, '>=', 10, "$finished finished requests kept");
	lq("ALTER SYSTEM SET campaign.history_retention = '1s'; SELECT pg_reload_conf()");
	my $deadline = time() + 40;
	my $left;
	while (time() < $deadline)
	{
		$left = lq('SELECT count(*) FROM campaign.ingestion_requests');
		last if $left eq '0';
		usleep(200_000);
	}
	is($left, '0', 'finished requests purged after campaign.history_retention (purge every 10 s)')
	  or diag(lq("SELECT now(), string_agg(concat_ws(' ', id, mapping, status, requested_at, started_at, finished_at), E'\n' ORDER BY id) FROM campaign.ingestion_requests"));
	my ($rc, $out, $err) = try_as_role('api', "SELECT campaign.ingestion_status('$R', $id1)");
	like($err, qr/no ingestion request $id1/, 'GET of a purged request: error');
	lq("ALTER SYSTEM RESET campaign.history_retention; SELECT pg_reload_conf()");
}

$local->stop;
$cloud->stop;
done_testing();
