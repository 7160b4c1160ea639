# Without shared_preload_libraries the extension installs and registers
# schemas, but the functions that need the worker and shared memory fail
# with a clear error and a hint, as pg_stat_statements does.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('plain');
$node->init;
$node->start;

$node->safe_psql('postgres', 'CREATE EXTENSION campaign CASCADE');
is($node->safe_psql('postgres',
		"SELECT count(*) FROM campaign.schemas WHERE namespace = 'nms'"),
	'3', 'CREATE EXTENSION without preload registers the built-in schemas');
is($node->safe_psql('postgres',
		q{SELECT campaign.register_schema('<srcSchema name="t" namespace="np"><element name="t" autoStg="true"><attribute name="a"/></element></srcSchema>')}),
	'np:t', 'register_schema needs no preload');

for my $call (
	q{SELECT campaign.xtk_ingest('<tStg a="1" xtkschema="np:tStg"/>')},
	q{SELECT campaign.xtk_ingest_ext('<tStg _key="@a" a="1" xtkschema="np:tStg"/>')},
	q{SELECT campaign.replicate_now('np:t')})
{
	my ($rc, $out, $err) = $node->psql('postgres', $call);
	isnt($rc, 0, "refused without preload: $call");
	like($err, qr/ERROR:  campaign must be loaded via shared_preload_libraries/,
		'the error says why');
	like($err, qr/HINT:  Add campaign to shared_preload_libraries/, 'and what to do');
}
is($node->safe_psql('postgres', 'SELECT count(*) FROM np.tstg'), '0', 'nothing staged');
is($node->safe_psql('postgres', 'SELECT 1'), '1', 'the server is alive');

$node->stop;
done_testing();
