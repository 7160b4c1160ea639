
# Copyright (c) campaign contributors
#
# 018_read_ahead.pl — reading the next batch while the cloud applies one
# (issue 10, "overlap of local reading and cloud applying"; replicate.c,
# "Reading ahead").  A batch read ahead is the batch a read would return
# once the previous one commits; it must not be applied when that batch
# rejected a change, because the later changes of the rejected change's key
# must then be held behind it:
#   - a backlog of 1,000 keyed upserts drained in batches of 100;
#   - the cloud refuses change 250 (a CHECK constraint), in the third batch;
#   - the same key comes again in the fourth batch (an upsert: applied, it
#     would create the row) and in the fifth (an update);
#   - both must be held ("waiting behind change ..."), the key absent from
#     the cloud, and every other change applied once with its value;
#   - once the constraint is dropped, retry_errors() sends the three in
#     order and the key ends with the last one's values.
# A batch read ahead while the third batch ran would have no key held: if
# it were applied (or if the fourth batch read the fifth ahead with the
# rejected key's hold unknown), the upsert of change 350 would create the
# row.

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
campaign.batch_size = 100
campaign.naptime = '200ms'
});
my ($host, $port) = ($cloud->host, $cloud->port);
sub lq { return $local->safe_psql('postgres', $_[0]); }
sub cq { return $cloud->safe_psql('postgres', $_[0]); }

lq(qq{CREATE EXTENSION campaign CASCADE;
CREATE SERVER ffda FOREIGN DATA WRAPPER postgres_fdw OPTIONS (host '$host', port '$port', dbname 'postgres');
CREATE USER MAPPING FOR PUBLIC SERVER ffda;});
lq("SELECT campaign.register_schema(\$x\$" . sample_table_schema() . "\$x\$)");
lq("SELECT campaign.deploy('dem:sampleTable')");
lq("SELECT campaign.stop_replication('dem:sampleTable')");
cq("ALTER TABLE dem.sampletable ADD CONSTRAINT score_not_minus_one CHECK (score <> -1)");

# Changes 1..1000: upserts of k1..k1000 with score i, except change 250
# (k250, score -1: refused), 350 (k250 again, an upsert) and 450 (k250, an
# update); k350 and k450 never come.
my $records = '';
for my $i (1 .. 1000)
{
	if ($i == 250) { $records .= qq{<sampleTableStg id="k250" score="-1" testcol1="refused"/>}; }
	elsif ($i == 350) { $records .= qq{<sampleTableStg id="k250" score="350" testcol1="upsert"/>}; }
	elsif ($i == 450) { $records .= qq{<sampleTableStg _operation="update" id="k250" testcol2="update"/>}; }
	else { $records .= qq{<sampleTableStg id="k$i" score="$i" testcol1="v$i"/>}; }
}
lq(qq{SELECT campaign.xtk_ingest_ext('<sampleTableStg-collection xtkschema="dem:sampleTableStg" _key="\@id">$records</sampleTableStg-collection>') IS NULL});
my ($first) = lq("SELECT min(_stg_seq) FROM dem.sampletablestg");

is(lq("SELECT campaign.replicate_now('dem:sampleTable')"), '997',
	'replicate_now: 997 changes applied, in batches of 100');
is(lq("SELECT count(*) FROM campaign.replication_history WHERE schema_name = 'dem:sampleTable' AND outcome = 'success'"),
	'10', 'ten batches');
is(cq("SELECT count(*) || ' ' || sum(score) || ' ' || bool_and(testcol1 = 'v' || score) FROM dem.sampletable"),
	'997 ' . (500500 - 250 - 350 - 450) . ' true',
	'every other change applied once, with its values');
is(cq("SELECT count(*) FROM dem.sampletable WHERE id = 'k250'"), '0',
	'the rejected key is not in the cloud: its later upsert was held, not applied');
is(lq("SELECT string_agg((_stg_seq - $first + 1) || ':' || CASE WHEN _stg_error LIKE '%score_not_minus_one%' THEN 'rejected'"
	  . " WHEN _stg_error = 'waiting behind change ' || ($first + 249) || ' of the same key, which the cloud rejected' THEN 'held'"
	  . " ELSE _stg_error END, ',' ORDER BY _stg_seq) FROM dem.sampletablestg WHERE _stg_error IS NOT NULL"),
	'250:rejected,350:held,450:held',
	'change 250 rejected; 350 (next batch) and 450 (the one after) held behind it');

cq("ALTER TABLE dem.sampletable DROP CONSTRAINT score_not_minus_one");
lq("SELECT campaign.retry_errors('dem:sampleTable')");
is(lq("SELECT campaign.replicate_now('dem:sampleTable')"), '3', 'retry_errors: the three changes sent again');
is(cq("SELECT score || ' ' || testcol1 || ' ' || testcol2 FROM dem.sampletable WHERE id = 'k250'"),
	'350 upsert update', 'the key ends with its last changes, applied in order');
is(cq("SELECT count(*) FROM dem.sampletable"), '998', 'and nothing else moved');

$local->stop;
$cloud->stop;
done_testing();
