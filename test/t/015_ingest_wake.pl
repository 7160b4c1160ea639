
# Copyright (c) campaign contributors
#
# 015_ingest_wake.pl — an ingest commit wakes the replication worker only
# for a schema that is deployed and replicated continuously, and a backend
# that cached a schema's state sees a later deploy or change of mode at its
# next ingest (issue 14).
#
# campaign.naptime is 1 h, so a row reaches the cloud within the test's
# waits only if a commit (or a call that notifies the worker) woke the
# worker.  One session ingests throughout, so its cached entry of the schema
# is what decides whether its commits wake the worker: it must follow the
# deploy and the mode changes made by another session.  Ingests into a
# schema that wakes nobody still release their staging-number claims at
# commit (campaign.open_ingest_transactions() is empty afterwards).

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use FindBin;
use lib "$FindBin::Bin/../lib";
use CampaignNodes;
use PostgreSQL::Test::Utils;
use Test::More;

my $cloud = start_cloud();
my $local = start_local(qq{
campaign.naptime = '1h'
});
my ($host, $port) = ($cloud->host, $cloud->port);
my $schema_xml = sample_table_schema();
$local->safe_psql('postgres', qq{
SET client_min_messages = warning;
CREATE EXTENSION campaign CASCADE;
CREATE SERVER ffda FOREIGN DATA WRAPPER postgres_fdw OPTIONS (host '$host', port '$port', dbname 'postgres');
CREATE USER MAPPING FOR PUBLIC SERVER ffda;
SELECT campaign.register_schema(\$x\$$schema_xml\$x\$);
});

my $session = $local->background_psql('postgres', on_error_stop => 1);
sub ingest
{
	my ($id) = @_;
	$session->query_safe(
		qq{SELECT campaign.xtk_ingest('<sampleTableStg xtkschema="dem:sampleTableStg" id="$id" testcol1="wake"/>')});
}
sub cloud_ids
{
	return $cloud->safe_psql('postgres', 'SELECT string_agg(id, \',\' ORDER BY id) FROM dem.sampletable');
}

# Not deployed: the session caches the schema as one that wakes nobody.
ingest('a');
is($local->safe_psql('postgres', 'SELECT count(*) FROM campaign.open_ingest_transactions()'),
	'0', 'an ingest into an undeployed schema released its claim at commit');
is($local->safe_psql('postgres', 'SELECT count(*) FROM dem.sampletablestg'), '1', 'the row is staged');

# Deployed by another session: the session's next commit wakes the worker,
# whose pass replicates both rows.
$local->safe_psql('postgres', q{SELECT campaign.deploy('dem:sampleTable')});
ingest('b');
ok(wait_for($cloud, 'SELECT string_agg(id, \',\' ORDER BY id) FROM dem.sampletable', 'a,b', 60),
	'after deploy, the commit of a session that cached the undeployed schema woke the worker');

# Stopped: the row stays; start_replication() notifies the worker.
$local->safe_psql('postgres', q{SELECT campaign.stop_replication('dem:sampleTable')});
ingest('c');
is($local->safe_psql('postgres', 'SELECT count(*) FROM campaign.open_ingest_transactions()'),
	'0', 'an ingest into a stopped schema released its claim at commit');
is(cloud_ids(), 'a,b', 'a stopped schema is not replicated');
$local->safe_psql('postgres', q{SELECT campaign.start_replication('dem:sampleTable')});
ok(wait_for($cloud, 'SELECT string_agg(id, \',\' ORDER BY id) FROM dem.sampletable', 'a,b,c', 60),
	'start_replication() replicates what was staged while stopped');

# Continuous again: the session, which cached the stopped state, wakes the
# worker again.
ingest('d');
ok(wait_for($cloud, 'SELECT string_agg(id, \',\' ORDER BY id) FROM dem.sampletable', 'a,b,c,d', 60),
	'after start_replication(), the commit of a session that cached the stopped schema woke the worker');

# Scheduled hourly: nothing wakes the worker for it, and nothing is lost:
# replicate_now() sends the row.
$local->safe_psql('postgres', q{SELECT campaign.start_replication('dem:sampleTable', '1 hour')});
ingest('e');
is($local->safe_psql('postgres', q{SELECT campaign.replicate_now('dem:sampleTable')}), '1',
	'replicate_now() sends what a scheduled schema staged');
is(cloud_ids(), 'a,b,c,d,e', 'the cloud has every row');

$session->quit;
$local->stop;
$cloud->stop;
done_testing();
