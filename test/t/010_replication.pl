
# Copyright (c) campaign contributors
#
# 010_replication.pl — staged changes reach the cloud database with exactly
# the expected content (SPEC §3, §4, §5).
#
# Two nodes: "local" (shared_preload_libraries = campaign, the replication
# worker serves its database postgres) and "cloud" (plain PostgreSQL, the
# postgres_fdw server "ffda").  The test keeps its own model of what the
# cloud table must hold (a Perl hash, computed from the operations it sends,
# never from what the extension reports) and compares the whole cloud table
# with it after each step:
#   - continuous mode: inserts, a commit wakes the worker (naptime 60 s, rows
#     still arrive within seconds);
#   - upserts carrying some attributes only (the others keep their values),
#     updates of missing keys doing nothing, deletes (of missing keys too);
#   - a mode switch: stopped -> rows stay pending, staging_status shows them,
#     replicate_now() returns their count and they arrive; per-key ordering
#     inside that backlog (insert k, update k, delete k, insert k again, ...,
#     keyless inserts interleaved with keyed deletes of the same id, chains
#     inside one collection); then continuous again;
#   - set-based apply: 1000 upserts of the same shape are not applied with
#     one statement per row on the cloud;
#   - a scheduled mode (every 2 s) that keeps replicating, and an hourly one
#     that keeps rows pending;
#   - poison rows (a CHECK constraint added on the cloud; a duplicate key):
#     isolated, marked with the cloud's message, counted in staging_status,
#     retried after the fix or discarded;
#   - the local foreign table shows the cloud rows, the worker shows in
#     pg_stat_activity, replication_history counts add up, the log has one
#     line per batch, last_success is the time of the last batch;
#   - purge: replicated rows older than campaign.staging_retention go away,
#     unreplicated ones stay.

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

# ---------------------------------------------------------------- nodes

my $cloud = start_cloud();
my $local = start_local(qq{
campaign.staging_retention = '7d'
});

sub lq { return $local->safe_psql('postgres', $_[0]); }
sub cq { return $cloud->safe_psql('postgres', $_[0]); }

# ---------------------------------------------------------------- records

sub xattr
{
	my ($v) = @_;
	$v =~ s/&/&amp;/g;
	$v =~ s/</&lt;/g;
	$v =~ s/"/&quot;/g;
	return $v;
}

# One <sampleTableStg .../> record from a list of (name => value) pairs.
sub rec
{
	my @pairs = @_;
	my $s = '<sampleTableStg';
	while (my ($k, $v) = splice(@pairs, 0, 2))
	{
		$s .= sprintf(' %s="%s"', $k, xattr($v));
	}
	return $s . '/>';
}

sub collection
{
	return qq{<sampleTableStg-collection xtkschema="dem:sampleTableStg">}
	  . join('', @_) . '</sampleTableStg-collection>';
}

sub single
{
	my ($r) = @_;
	$r =~ s{/>$}{ xtkschema="dem:sampleTableStg"/>};
	return $r;
}

sub ingest
{
	my ($doc) = @_;
	return lq("SELECT campaign.xtk_ingest(\$x\$$doc\$x\$)");
}

sub ingest_ext
{
	my ($doc) = @_;
	return lq("SELECT campaign.xtk_ingest_ext(\$x\$$doc\$x\$)");
}

# ---------------------------------------------------------------- the model

# What the cloud table must hold: id => { testcol1, testcol2, score }.
my %model;
my @COLS = qw(testcol1 testcol2 score);
# Operation counts as replication_history reports them (insert = xtk_ingest,
# with or without _key; upsert = xtk_ingest_ext insertOrUpdate).
my %ops = (insert => 0, upsert => 0, update => 0, delete => 0);
my $staged = 0;    # staged changes sent by the test

sub m_insert    # keyless insert: the id must be new
{
	my ($id, %v) = @_;
	die "model: $id exists" if exists $model{$id};
	$model{$id} = { map { $_ => $v{$_} } @COLS };
}

sub m_upsert
{
	my ($id, %v) = @_;
	$model{$id} //= { map { $_ => undef } @COLS };
	$model{$id}{$_} = $v{$_} for grep { $_ ne 'id' } keys %v;
}

sub m_update
{
	my ($id, %v) = @_;
	return unless exists $model{$id};
	$model{$id}{$_} = $v{$_} for grep { $_ ne 'id' } keys %v;
}

sub m_delete { delete $model{ $_[0] }; }

# Build the records and apply them to the model in the same breath.
sub r_insert       # xtk_ingest, no key
{
	my ($id, @v) = @_;
	m_insert($id, @v);
	$ops{insert}++;
	$staged++;
	return rec(id => $id, @v);
}

sub r_insert_key    # xtk_ingest with _key="@id": insert with reconciliation
{
	my ($id, @v) = @_;
	m_upsert($id, @v);
	$ops{insert}++;
	$staged++;
	return rec(_key => '@id', id => $id, @v);
}

sub r_upsert        # xtk_ingest_ext, default insertOrUpdate
{
	my ($id, @v) = @_;
	m_upsert($id, @v);
	$ops{upsert}++;
	$staged++;
	return rec(_key => '@id', id => $id, @v);
}

sub r_update
{
	my ($id, @v) = @_;
	m_update($id, @v);
	$ops{update}++;
	$staged++;
	return rec(_key => '@id', _operation => 'update', id => $id, @v);
}

sub r_delete
{
	my ($id) = @_;
	m_delete($id);
	$ops{delete}++;
	$staged++;
	return rec(_key => '@id', _operation => 'delete', id => $id);
}

sub model_text
{
	return join("\n",
		map {
			my $r = $model{$_};
			join('|', $_, map { defined $r->{$_} ? $r->{$_} : '~' } @COLS)
		} sort keys %model);
}

my $CONTENT_SQL = <<'SQL';
SELECT coalesce(string_agg(concat_ws('|', id, coalesce(testcol1, '~'), coalesce(testcol2, '~'),
                                     coalesce(score::text, '~')), E'\n' ORDER BY id COLLATE "C"), '')
  FROM dem.sampletable
SQL

# Compare a table's content with the model; on mismatch, show the
# differences rather than the whole table.
sub check_content
{
	my ($node, $what) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	my $got = $node->safe_psql('postgres', $CONTENT_SQL);
	my $exp = model_text();
	return 1 if ok($got eq $exp, $what);
	my %g = map { (split /\|/)[0] => $_ } split /\n/, $got;
	my %e = map { (split /\|/)[0] => $_ } split /\n/, $exp;
	my @d;
	for my $id (sort keys %{ { %g, %e } })
	{
		if (!exists $g{$id}) { push @d, "missing:    $e{$id}"; }
		elsif (!exists $e{$id}) { push @d, "unexpected: $g{$id}"; }
		elsif ($g{$id} ne $e{$id}) { push @d, "expected:   $e{$id}\n#   got:        $g{$id}"; }
	}
	diag(join("\n", scalar(@d) . ' rows differ:', @d[ 0 .. ($#d < 19 ? $#d : 19) ]));
	return 0;
}

sub check_cloud
{
	my ($what) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	return check_content($cloud, "$what: cloud table holds exactly the expected rows");
}

# Everything staged and not in error is on the cloud: the cloud's watermark
# has passed the last staged change (checked on the cloud, not locally).
sub wait_replicated
{
	my ($what, $timeout) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	my $max = lq('SELECT coalesce(max(_stg_seq), 0) FROM dem.sampletablestg WHERE _stg_error IS NULL');
	ok( wait_for(
			$cloud,
			"SELECT upto >= $max FROM campaign_replication.watermark WHERE schema_name = '$SCHEMA'",
			't', $timeout),
		"$what: cloud watermark reaches staged change $max");
}

sub status
{
	my ($cols) = @_;
	return lq("SELECT $cols FROM campaign.staging_status WHERE schema_name = '$SCHEMA'");
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
is(cq("SELECT count(*) FROM information_schema.tables WHERE table_schema = 'dem' AND table_name = 'sampletable'"),
	'1', 'cloud table created');

# The cloud table's fillfactor: set by deploy(schema, fillfactor), kept by a
# later deploy without one (or with NULL); an out-of-range value is refused
# before anything changes.  The rest of the test replicates into the table
# with fillfactor 70.
sub cloud_reloptions
{
	return cq("SELECT coalesce(array_to_string(reloptions, ','), '') FROM pg_class WHERE oid = 'dem.sampletable'::regclass");
}
is(cloud_reloptions(), '', 'a deploy without fillfactor leaves the storage options alone');
like(lq("SELECT campaign.deploy('$SCHEMA', fillfactor => 70)"), qr/sampletable/, 'deploy with a fillfactor');
is(cloud_reloptions(), 'fillfactor=70', 'the cloud table has fillfactor 70');
lq("SELECT campaign.deploy('$SCHEMA')");
lq("SELECT campaign.deploy('$SCHEMA', NULL)");
is(cloud_reloptions(), 'fillfactor=70', 'a later deploy without a fillfactor (or with NULL) keeps it');
foreach my $bad (5, 101, -1)
{
	my ($rc, $out, $err) = $local->psql('postgres',
		"\\set VERBOSITY verbose\nSELECT campaign.deploy('$SCHEMA', $bad)");
	like($err, qr/22023: fillfactor \Q$bad\E is out of range for the cloud table of "dem:sampleTable"/,
		"fillfactor $bad refused with 22023, naming the value");
}
is(cloud_reloptions(), 'fillfactor=70', 'the refused fillfactors changed nothing');
is(cq("SELECT upto FROM campaign_replication.watermark WHERE schema_name = '$SCHEMA'"),
	'0', 'cloud watermark starts at 0');
is(lq("SELECT relkind FROM pg_class WHERE oid = 'dem.sampletable'::regclass"),
	'f', 'local foreign table over the cloud table');
is(status('mode, deployed, pending, errors'), 'continuous|t|0|0',
	'staging_status: continuous, deployed, nothing pending');

# The worker, with its own backend type.
ok( wait_for(
		$local,
		"SELECT string_agg(application_name, ',' ORDER BY application_name) FROM pg_stat_activity"
		  . " WHERE backend_type = 'campaign replication worker' AND datname = 'postgres'",
		'campaign replication worker 1 of postgres,campaign replication worker 2 of postgres', 30),
	'the pool (campaign.max_workers = 2) shows in pg_stat_activity: backend_type, database, number');

# ---------------------------------------------------------------- continuous: inserts

my %uuid;
for my $i (1 .. 5)
{
	my $id = sprintf('k%02d', $i);
	$uuid{$id} = ingest(single(r_insert($id, testcol1 => "one$i", testcol2 => "two$i", score => $i * 10)));
	like($uuid{$id}, qr/^[0-9a-f-]{36}$/, "single insert $id returns a UUID");
}
my $uuids = ingest(collection(map {
	r_insert(sprintf('k%02d', $_), testcol1 => "one$_", testcol2 => "two$_", score => $_ * 10)
} 6 .. 20));
is(scalar(split(/,/, $uuids)), 15, 'collection of 15 inserts returns 15 UUIDs');
wait_replicated('inserts');
check_cloud('inserts');
is(cq("SELECT _uuid FROM dem.sampletable WHERE id = 'k01'"), $uuid{k01},
	'cloud row carries the UUID xtk_ingest returned');
ok(wait_for($local, "SELECT pending FROM campaign.staging_status WHERE schema_name = '$SCHEMA'", '0', 10),
	'staging_status: nothing pending after replication');

# A commit of staged rows wakes the worker: with a naptime of 60 s the rows
# still arrive within seconds.
lq("ALTER SYSTEM SET campaign.naptime = '60s'");
lq('SELECT pg_reload_conf()');
sleep(1);    # the worker takes the SIGHUP and goes to sleep for 60 s
my $t0 = time();
ingest(single(r_insert('k21', testcol1 => 'woken', score => 21)));
wait_replicated('wake on commit', 30);
my $lag = time() - $t0;
cmp_ok($lag, '<', 5, sprintf('continuous: change on the cloud %.2fs after commit (naptime 60s)', $lag));
lq('ALTER SYSTEM RESET campaign.naptime');
lq('SELECT pg_reload_conf()');
check_cloud('wake on commit');

# ---------------------------------------------------------------- continuous: upserts, updates, deletes

my $before_batch = lq('SELECT now()');
ingest(single(r_insert_key('k01', testcol1 => 'K1new')));          # existing: only testcol1
ingest(single(r_insert_key('k50', testcol2 => 'fifty')));          # new: only testcol2
ingest_ext(single(r_upsert('k02', testcol2 => 'partial2')));       # existing: only testcol2
ingest_ext(single(r_upsert('k51', score => 51)));                  # new: only score
ingest_ext(single(r_update('k03', testcol1 => 'upd3')));           # existing: only testcol1
ingest_ext(single(r_update('k99', testcol1 => 'ghost', score => 9)));    # missing: nothing
ingest_ext(single(r_delete('k04')));
ingest_ext(single(r_delete('k98')));                                # missing: nothing
ingest_ext(collection(
	r_upsert('k05', score => 500),
	r_update('k06', testcol2 => 'upd6', score => 600),
	r_update('k97', testcol2 => 'ghost'),
	r_delete('k07'),
	r_upsert('k52', testcol1 => 'new52', testcol2 => 'new52b')));
wait_replicated('upserts/updates/deletes');
check_cloud('upserts/updates/deletes');
is(cq("SELECT testcol1, testcol2, score FROM dem.sampletable WHERE id = 'k01'"), 'K1new|two1|10',
	'upsert carrying testcol1 only leaves testcol2 and score untouched');
is(cq("SELECT coalesce(testcol1, 'NULL'), testcol2, coalesce(score::text, 'NULL') FROM dem.sampletable WHERE id = 'k50'"),
	'NULL|fifty|NULL', 'upsert of a new key inserts the carried attributes only');
is(cq("SELECT count(*) FROM dem.sampletable WHERE id IN ('k99', 'k97', 'k98')"), '0',
	'updates of missing keys insert nothing');
ok(wait_for($local, "SELECT pending FROM campaign.staging_status WHERE schema_name = '$SCHEMA'", '0', 10),
	'staging_status: nothing pending');
my $ls = lq("SELECT last_success >= '$before_batch'::timestamptz FROM campaign.staging_status WHERE schema_name = '$SCHEMA'");
is($ls, 't', 'staging_status.last_success is the time of the last batch (not older than its changes)')
  or diag(lq("SELECT now(), last_success FROM campaign.staging_status WHERE schema_name = '$SCHEMA'"));

# ---------------------------------------------------------------- stopped: a backlog with per-key ordering

is(lq("SELECT campaign.stop_replication('$SCHEMA')"), 'stopped', 'stop_replication');
is(status('mode'), 'stopped', 'staging_status: stopped');
my $cloud_before = cq($CONTENT_SQL);
%ops = (insert => 0, upsert => 0, update => 0, delete => 0);
my $staged_before = $staged;

# insert k, update k, delete k, insert k again (keyless inserts).
ingest(single(r_insert('n1', testcol1 => 'a', score => 1)));
ingest_ext(single(r_update('n1', testcol2 => 'b')));
ingest_ext(single(r_delete('n1')));
ingest(single(r_insert('n1', testcol1 => 'c', score => 3)));
# the same with reconciliation keys everywhere.
ingest_ext(single(r_upsert('n2', testcol1 => '1')));
ingest_ext(single(r_upsert('n2', testcol2 => '2')));
ingest_ext(single(r_update('n2', score => 3)));
ingest_ext(single(r_delete('n2')));
ingest(single(r_insert_key('n2', testcol1 => 'x')));
# an existing row: update, delete, update (nothing), upsert (new row).
ingest_ext(single(r_update('k08', score => 800)));
ingest_ext(single(r_delete('k08')));
ingest_ext(single(r_update('k08', testcol1 => 'dead')));
ingest_ext(single(r_upsert('k08', testcol2 => 'reborn')));
# chains on several keys inside one collection.
ingest_ext(collection(
	r_upsert('n3', testcol1 => 'a'),
	r_upsert('n4', testcol1 => 'b'),
	r_update('n3', testcol2 => 'c'),
	r_delete('n3'),
	r_update('n4', score => 4),
	r_upsert('n3', score => 5),
	r_delete('n4'),
	r_upsert('n4', testcol2 => 'n4again'),
	r_update('n4', score => 44)));
# keyless insert, keyed delete, keyless insert again of one id.
ingest(single(r_insert('n7', testcol1 => 'seven')));
ingest_ext(single(r_delete('n7')));
ingest(single(r_insert('n7', testcol1 => 'seven again', score => 7)));
ingest_ext(single(r_upsert('k11', testcol1 => 'eleven')));
ingest_ext(single(r_upsert('k11', testcol2 => 'eleven b')));
# keyless inserts interleaved with keyed deletes of the same id, a keyed
# delete of another key first (the changes to n5 are: insert, then delete;
# nothing in this stretch conflicts on the cloud).
ingest_ext(single(r_delete('k09')));
ingest(single(r_insert('n5', testcol1 => 'short-lived')));
ingest_ext(single(r_delete('n5')));
ingest(single(r_insert('n6', testcol1 => 'kept')));
ingest_ext(single(r_delete('k10')));
ingest_ext(single(r_update('n6', testcol2 => 'updated')));
# many keys, operation after operation, in one collection: upsert all,
# update the odd ones, delete every third, upsert every sixth again.
my @m = map { sprintf('m%03d', $_) } 1 .. 300;
ingest_ext(collection(
	(map { r_upsert($m[$_], testcol1 => "m$_", score => $_) } 0 .. $#m),
	(map { r_update($m[$_], testcol2 => "odd$_") } grep { $_ % 2 } 0 .. $#m),
	(map { r_delete($m[$_]) } grep { $_ % 3 == 0 } 0 .. $#m),
	(map { r_upsert($m[$_], testcol2 => "again$_") } grep { $_ % 6 == 0 } 0 .. $#m)));
my $backlog = $staged - $staged_before;

sleep(2);    # two naptimes: a stopped schema must not replicate
is(cq($CONTENT_SQL), $cloud_before, 'stopped: nothing reaches the cloud');
is(status('pending'), $backlog, "staging_status: $backlog changes pending while stopped");
is(status("oldest_pending_age > interval '1 second' AND lag > interval '1 second'"), 't',
	'staging_status: oldest pending age and lag show the wait');

my $history_before = lq('SELECT coalesce(max(id), 0) FROM campaign.replication_history');
is(lq("SELECT campaign.replicate_now('$SCHEMA')"), $backlog,
	"replicate_now returns the count of changes replicated ($backlog)");
check_cloud('replicate_now');
is(status('mode, pending'), 'stopped|0', 'staging_status: still stopped, nothing pending');
is(lq("SELECT count(*), sum(rows), sum(inserts), sum(upserts), sum(updates), sum(deletes), sum(rejected)
         FROM campaign.replication_history WHERE id > $history_before AND outcome = 'success'"),
	"1|$backlog|$ops{insert}|$ops{upsert}|$ops{update}|$ops{delete}|0",
	'replication_history: one batch with the counts by operation');
ok($local->log_contains(qr/replicated $backlog staged changes/),
	'log: one line for the batch with its count');
is(cq("SELECT testcol1, score FROM dem.sampletable WHERE id = 'n1'"), 'c|3',
	'insert, update, delete, insert again: the last insert wins');
is(cq("SELECT count(*) FROM dem.sampletable WHERE id IN ('n5', 'k09', 'k10')"), '0',
	'keyless insert followed by a keyed delete of the same id: deleted');
# (a plain delete of n5, which the model has not: whatever happened above,
# the next checks start from the same state)
ingest_ext(single(r_delete('n5')));
is(lq("SELECT campaign.replicate_now('$SCHEMA')"), '1', 'replicate_now: one more delete');

# Set-based apply: a batch of 1000 upserts of the same shape (same
# operation, key and carried attributes) is not applied row by row; count
# the statements naming the cloud table that the cloud server runs.
$cloud->append_conf('postgresql.conf', "log_statement = 'all'");
$cloud->reload;
my $log_offset = -s $cloud->logfile;
my $pre = $staged;
ingest_ext(collection(map { r_upsert(sprintf('b%04d', $_), testcol1 => "bulk$_") } 1 .. 1000));
is(lq("SELECT campaign.replicate_now('$SCHEMA')"), $staged - $pre, 'replicate_now: 1000 upserts');
$cloud->append_conf('postgresql.conf', "log_statement = 'none'");
$cloud->reload;
my $statements = () = slurp_file($cloud->logfile, $log_offset) =~
  /(?:statement|execute [^:]*): (?:(?:WITH|INSERT|UPDATE|DELETE|COPY)\b[^\n]*\bdem\.sampletable\b)/g;
cmp_ok($statements, '<=', 10,
	"1000 upserts of the same shape applied with $statements statements on the cloud table (set-based, not row by row)");
check_cloud('bulk upserts');

# Continuous again.
is(lq("SELECT campaign.start_replication('$SCHEMA')"), 'continuous', 'start_replication: continuous');
is(status('mode'), 'continuous', 'staging_status: continuous');
ingest(single(r_insert('k22', testcol1 => 'after restart', score => 22)));
wait_replicated('continuous again');
check_cloud('continuous again');

# ---------------------------------------------------------------- scheduled

is(lq("SELECT campaign.start_replication('$SCHEMA', interval '2 seconds')"),
	'scheduled every 00:00:02', 'start_replication every 2 seconds');
is(status('mode, every'), 'scheduled|00:00:02', 'staging_status: scheduled every 2 s');
ok(wait_for($local, "SELECT last_run_at IS NOT NULL FROM campaign.schemas WHERE namespace = 'dem' AND name = 'sampleTable'",
		't', 20), 'a first scheduled run happened');
ingest(single(r_insert('s1', testcol1 => 'scheduled', score => 1)));
wait_replicated('scheduled every 2 s: next run', 20);
ingest(single(r_insert('s2', testcol1 => 'scheduled', score => 2)));
wait_replicated('scheduled every 2 s: the run after', 20);
check_cloud('scheduled');
# (whatever the scheduled runs did, start the next part from a clean state)
lq("SELECT campaign.replicate_now('$SCHEMA')");

is(lq("SELECT campaign.start_replication('$SCHEMA', interval '1 hour')"),
	'scheduled every 01:00:00', 'start_replication hourly');
ingest(single(r_insert('s3', testcol1 => 'hourly', score => 3)));
sleep(2);
is(status('pending'), '1', 'scheduled hourly: the change waits for its run');
is(lq("SELECT campaign.replicate_now('$SCHEMA')"), '1', 'replicate_now works in scheduled mode');
check_cloud('hourly + replicate_now');
is(lq("SELECT campaign.start_replication('$SCHEMA')"), 'continuous', 'back to continuous');

# ---------------------------------------------------------------- poison rows

cq('ALTER TABLE dem.sampletable ADD CONSTRAINT score_pos CHECK (score >= 0)');
my $seq_before = lq('SELECT max(_stg_seq) FROM dem.sampletablestg');
my @good = map { "g$_" } 1 .. 6;
# keyless inserts, the bad one in the middle (not applied to the model yet)
ingest(collection(
	(map { r_insert($good[$_], testcol1 => 'good', score => $_) } 0 .. 2),
	rec(id => 'p1', testcol1 => 'poison', score => -1),
	(map { r_insert($good[$_], testcol1 => 'good', score => $_) } 3 .. 5)));
# an upsert of an existing row that the cloud refuses, between good ones
ingest_ext(collection(
	r_upsert('k12', testcol1 => 'fine'),
	rec(_key => '@id', id => 'k13', score => -5),
	r_upsert('k14', testcol2 => 'fine')));
$staged += 2;
ok(wait_for($local, 'SELECT count(*) FROM dem.sampletablestg WHERE _stg_error IS NOT NULL', '2', 30),
	'the two rejected changes are marked in error');
wait_replicated('poison rows');
check_cloud('poison rows isolated (good rows arrived, the bad ones did not)');
is(lq("SELECT string_agg(id || ':' || (_stg_error ~ 'score_pos')::text, ',' ORDER BY _stg_seq)
         FROM dem.sampletablestg WHERE _stg_error IS NOT NULL"),
	'p1:true,k13:true', "_stg_error holds the cloud's message (constraint score_pos)");
like(lq("SELECT _stg_error FROM dem.sampletablestg WHERE id = 'p1'"),
	qr/violates check constraint "score_pos"/, '_stg_error is the cloud error text');
is(lq("SELECT count(*) FROM dem.sampletablestg WHERE _stg_seq > $seq_before AND _stg_error IS NULL"),
	'8', 'the 8 good changes are not in error');
ok(wait_for($local, "SELECT errors || '|' || pending FROM campaign.staging_status WHERE schema_name = '$SCHEMA'", '2|0', 10),
	'staging_status: errors=2, pending=0');
is(lq("SELECT sum(rejected) FROM campaign.replication_history WHERE outcome = 'success'"), '2',
	'replication_history counts the rejected rows');
ok($local->log_contains(qr/WARNING:  campaign: cloud rejected .*dem:sampleTableStg/),
	'log: warning for the rejected changes');

# Fix on the cloud, retry.
cq('ALTER TABLE dem.sampletable DROP CONSTRAINT score_pos');
is(lq("SELECT campaign.retry_errors('$SCHEMA')"), '2', 'retry_errors re-queues the 2 rows');
m_insert('p1', testcol1 => 'poison', score => -1);
m_upsert('k13', score => -5);
$ops{insert}++;
$ops{upsert}++;
ok(wait_for($local, "SELECT errors || '|' || pending FROM campaign.staging_status WHERE schema_name = '$SCHEMA'", '0|0', 30),
	'after retry: no error, nothing pending');
wait_replicated('retry');
check_cloud('retried rows arrived');

# A duplicate: keyless insert of an existing id; discarded.
ingest(single(rec(id => 'k15', testcol1 => 'duplicate')));
$staged++;
ok(wait_for($local, "SELECT errors FROM campaign.staging_status WHERE schema_name = '$SCHEMA'", '1', 30),
	'duplicate keyless insert rejected');
like(lq("SELECT _stg_error FROM dem.sampletablestg WHERE _stg_error IS NOT NULL"),
	qr/duplicate key value violates unique constraint/, 'its _stg_error is the unique violation');
is(lq("SELECT campaign.discard_errors('$SCHEMA')"), '1', 'discard_errors deletes it');
is(status('errors, pending'), '0|0', 'staging_status: no error left');
check_cloud('after discard');

# ---------------------------------------------------------------- foreign table, history, log

check_content($local, 'local foreign table dem.sampletable shows the expected rows');
is(lq($CONTENT_SQL), cq($CONTENT_SQL), 'local foreign table dem.sampletable shows the cloud rows');
is(lq("SELECT count(*) FROM dem.sampletable"), cq("SELECT count(*) FROM dem.sampletable"), 'foreign table row count');

my $retried = 2;
is(lq("SELECT sum(rows) FROM campaign.replication_history WHERE outcome = 'success'"),
	$staged + $retried, 'replication_history: every staged change in exactly one batch (retried ones twice)');
is(lq("SELECT count(*) FROM campaign.replication_history
        WHERE outcome = 'success' AND rows <> inserts + upserts + updates + deletes + rejected"),
	'0', 'replication_history: rows = sum of the counts by operation + rejected, for every batch');
is(lq("SELECT count(*) FROM campaign.replication_history WHERE outcome = 'success' AND rows > 0 AND bytes <= 0"),
	'0', 'replication_history: bytes counted');
is(lq("SELECT count(*) FROM campaign.replication_history WHERE outcome = 'failed'"), '0',
	'replication_history: no failed batch');
cmp_ok(lq("SELECT count(*) FROM campaign.replication_history"), '>=', 8, 'replication_history has the batches');
ok($local->log_contains(
		qr/campaign: dem:sampleTable: replicated \d+ staged changes \(\d+ inserts, \d+ upserts, \d+ updates, \d+ deletes, \d+ rejected, \d+ held\)/),
	'log: per-batch line with counts');
is(lq("SELECT count(*) FROM dem.sampletablestg"), $staged - 1,
	'staging keeps the replicated rows (retention 7d), the discarded one is gone');

# ---------------------------------------------------------------- purge

is(lq("SELECT campaign.stop_replication('$SCHEMA')"), 'stopped', 'stopped before purge test');
ingest(single(r_insert('u1', testcol1 => 'unreplicated')));
lq("ALTER SYSTEM SET campaign.staging_retention = '1s'");
lq('SELECT pg_reload_conf()');
ok(wait_for($local, "SELECT count(*) FROM dem.sampletablestg", '1', 60),
	'replicated staging rows older than campaign.staging_retention are purged')
  or diag(lq("SELECT now(), (SELECT replicated_upto FROM campaign.schemas WHERE namespace = 'dem'), min(_lastmodified), max(_lastmodified), count(*) FROM dem.sampletablestg"));
is(lq("SELECT count(*) FROM dem.sampletablestg WHERE id = 'u1'"), '1', 'the unreplicated row is never purged');
is(status('pending'), '1', 'and still pending');
is(lq("SELECT campaign.replicate_now('$SCHEMA')"), '1', 'replicate_now after purge');
check_cloud('final');

$local->stop;
$cloud->stop;

done_testing();
