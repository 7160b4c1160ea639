# Two local databases (two clusters, each with its worker) replicate the
# same schema into one cloud table side by side (SPEC §4 scale-out): each
# keeps its own watermark row on the cloud, neither skips nor repeats the
# other's changes, and a crash of one does not disturb the other.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $schema_xml = q{<srcSchema name="shared" namespace="dem"><element name="shared" autouuid="true" autoStg="true"><key name="id" internal="true"><keyfield xpath="@id"/></key><attribute name="id" type="string" length="20"/><attribute name="origin" type="string" length="10"/><attribute name="n" type="long"/></element></srcSchema>};

my $cloud = PostgreSQL::Test::Cluster->new('cloud');
$cloud->init;
$cloud->start;

my @locals;
for my $name (qw(east west))
{
	my $node = PostgreSQL::Test::Cluster->new($name);
	$node->init;
	$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'campaign'
# one replication worker (campaign.max_workers): the test kills it by its pid
campaign.max_workers = 1
restart_after_crash = on
campaign.naptime = '200ms'
campaign.batch_size = 500
});
	$node->start;
	my $host = $cloud->host;
	my $port = $cloud->port;
	$node->safe_psql('postgres', qq{
CREATE EXTENSION campaign CASCADE;
CREATE SERVER ffda FOREIGN DATA WRAPPER postgres_fdw OPTIONS (host '$host', port '$port', dbname 'postgres');
CREATE USER MAPPING FOR PUBLIC SERVER ffda;
SELECT campaign.register_schema('$schema_xml');
SELECT campaign.deploy('dem:shared');
});
	push @locals, [ $name, $node ];
}

is($cloud->safe_psql('postgres',
		"SELECT count(*) FROM campaign_replication.watermark WHERE schema_name = 'dem:shared'"),
	'2', 'one watermark row per local database');

# Each origin stages 5,000 changes: 4,000 inserts, then upserts of its own
# keys; the seqs of both origins overlap (each starts at 1).
sub stage
{
	my ($name, $node, $from, $to, $n) = @_;
	$node->safe_psql('postgres', qq{
SELECT campaign.xtk_ingest_ext((SELECT '<sharedStg-collection xtkschema="dem:sharedStg" _key="\@id">'
  || string_agg(format('<sharedStg id="$name-%s" origin="$name" n="%s"/>', i, $n), '')
  || '</sharedStg-collection>' FROM generate_series($from, $to) i));
});
}
for my $l (@locals)
{
	stage(@$l, 1, 4000, 1);
}
# Kill one worker (with its cluster, restarted by the postmaster): it must
# resume from its own watermark, not the other origin's.
my $east = $locals[0][1];
my $pid = $east->safe_psql('postgres',
	"SELECT pid FROM pg_stat_activity WHERE backend_type = 'campaign replication worker'");
ok($pid, 'east worker found');
kill 'KILL', $pid;
# the postmaster restarts everything; wait for the new worker
my $deadline = time() + 60;
my $new = '';
while (time() < $deadline)
{
	$new = eval {
		$east->safe_psql('postgres',
			"SELECT pid FROM pg_stat_activity WHERE backend_type = 'campaign replication worker'");
	} // '';
	last if $new =~ /^\d+$/ && $new ne $pid;
	sleep 1;
}
isnt($new, $pid, 'east restarted its worker');
for my $l (@locals)
{
	stage(@$l, 1, 1000, 2);
}

for my $l (@locals)
{
	my ($name, $node) = @$l;
	ok($node->poll_query_until('postgres',
			"SELECT pending = 0 FROM campaign.staging_status WHERE schema_name = 'dem:shared'"),
		"$name: everything replicated");
}

is($cloud->safe_psql('postgres',
		"SELECT string_agg(line, ', ' ORDER BY line) FROM (SELECT format('%s %s %s %s',"
		  . " origin, count(*), count(DISTINCT id), sum(n)) AS line FROM dem.shared GROUP BY origin) s"),
	'east 4000 4000 5000, west 4000 4000 5000',
	'the cloud holds each origin\'s rows once, with the last change of each key');
for my $l (@locals)
{
	my ($name, $node) = @$l;
	my ($origin, $last) = split /\|/, $node->safe_psql('postgres',
		"SELECT system_identifier || ':' || (SELECT oid FROM pg_database WHERE datname = current_database()),"
		  . " (SELECT last_value FROM dem.sharedstg__stg_seq_seq) FROM pg_control_system()");
	is($cloud->safe_psql('postgres',
			"SELECT upto FROM campaign_replication.watermark WHERE origin = '$origin' AND schema_name = 'dem:shared'"),
		$last, "$name: its watermark reached its own last staged change");
}

$_->[1]->stop for @locals;
$cloud->stop;
done_testing();
