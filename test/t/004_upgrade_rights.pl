
# Copyright (c) campaign contributors
#
# 004_upgrade_rights.pl — the upgrade from 1.0 keeps the ingest access roles
# had (issue 17: rights per staged schema).
#
# A database gets campaign 1.0, a registered schema, and a role in
# campaign_ingest that ingests everywhere, as 1.0 allowed.  After ALTER
# EXTENSION campaign UPDATE the role still ingests, upserts, deletes and
# subscribes, through explicit grants to campaign_ingest on every staging
# table of the time; a schema registered afterwards grants it nothing, and
# a REVOKE works on the upgraded grants.  pg_dump carries the grants the
# upgrade made (a restore is a fresh install, which makes none of them) and
# the administrator's changes.  A fresh install in another database grants
# campaign_ingest nothing, built-in schemas included.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;
use FindBin;
use lib "$FindBin::RealBin/../lib";
use CampaignNodes;

my $node = start_local();

sub sq
{
	my ($db, $sql) = @_;
	return $node->safe_psql($db, $sql);
}

# Run $sql as $role in $db: 'ok' or "SQLSTATE message" (public.try_sql).
sub try_as
{
	my ($db, $role, $sql) = @_;
	$sql =~ s/'/''/g;
	return $node->safe_psql($db, "SET ROLE $role; SELECT public.try_sql('$sql')");
}

# The grants on the staging tables, other than the owner's.
my $acl_query = q{
SELECT c.oid::regclass || ' ' || a.grantee::regrole || ' '
       || string_agg(a.privilege_type || CASE WHEN a.is_grantable THEN '*' ELSE '' END, ','
                     ORDER BY a.privilege_type)
  FROM campaign.schemas s
  JOIN pg_class c ON c.oid = to_regclass(format('%I.%I', s.sql_schema, s.staging_table))
  CROSS JOIN aclexplode(c.relacl) a
 WHERE s.staging_table IS NOT NULL AND a.grantee <> c.relowner
 GROUP BY c.oid, a.grantee ORDER BY 1};

my $try_sql = q{CREATE FUNCTION public.try_sql(sql text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE sql;
    RETURN 'ok';
EXCEPTION WHEN others THEN
    RETURN SQLSTATE || ' ' || SQLERRM;
END $$};

# ---------------------------------------------------------------- 1.0

sq('postgres', 'CREATE DATABASE upgraded');
sq('upgraded', "CREATE EXTENSION campaign VERSION '1.0' CASCADE");
sq('upgraded', $try_sql);
sq('upgraded', 'SELECT campaign.register_schema($x$' . sample_table_schema() . '$x$)');
sq('upgraded', q{SELECT campaign.xtk_ingest('<serviceStg _key="@name" name="news" xtkschema="nms:serviceStg"/>')});
sq('postgres', 'CREATE ROLE feeder LOGIN IN ROLE campaign_ingest');
is(sq('upgraded', "SELECT extversion FROM pg_extension WHERE extname = 'campaign'"), '1.0', 'installed 1.0');
is(try_as('upgraded', 'feeder',
		q{SELECT campaign.xtk_ingest('<recipientStg email="a@example.com" xtkschema="nms:recipientStg"/>')}),
	'ok', '1.0: campaign_ingest writes customer profiles');

# ---------------------------------------------------------------- upgrade

sq('upgraded', 'ALTER EXTENSION campaign UPDATE');
is(sq('upgraded', "SELECT extversion FROM pg_extension WHERE extname = 'campaign'"), '1.1', 'updated to 1.1');
is(sq('upgraded', $acl_query), join("\n",
		'dem.sampletablestg campaign_admin DELETE*,INSERT*,UPDATE*',
		'dem.sampletablestg campaign_ingest DELETE,INSERT,UPDATE',
		'nms.recipientstg campaign_admin DELETE*,INSERT*,UPDATE*',
		'nms.recipientstg campaign_ingest DELETE,INSERT,UPDATE',
		'nms.servicestg campaign_admin DELETE*,INSERT*,UPDATE*',
		'nms.servicestg campaign_ingest DELETE,INSERT,UPDATE',
		'nms.subscriptionrcpstg campaign_admin DELETE*,INSERT*,UPDATE*',
		'nms.subscriptionrcpstg campaign_ingest DELETE,INSERT,UPDATE'),
	'the upgrade grants campaign_ingest what it had, explicitly, on every staging table');
is(sq('upgraded', q{SELECT string_agg(relname, ',' ORDER BY relname) FROM pg_class
                     WHERE relname IN ('sampletablestg', 'recipientstg', 'servicestg', 'subscriptionrcpstg')
                       AND relrowsecurity}),
	'recipientstg,sampletablestg,servicestg,subscriptionrcpstg', 'row-level security on every staging table');

for my $case (
	[ 'insert', q{SELECT campaign.xtk_ingest('<sampleTableStg testcol1="x" xtkschema="dem:sampleTableStg"/>')} ],
	[ 'upsert', q{SELECT campaign.xtk_ingest_ext('<sampleTableStg _key="@id" id="K1" xtkschema="dem:sampleTableStg"/>')} ],
	[ 'delete', q{SELECT campaign.xtk_ingest_ext('<sampleTableStg _key="@id" id="K1" _operation="delete" xtkschema="dem:sampleTableStg"/>')} ],
	[ 'recipient', q{SELECT campaign.xtk_ingest('<recipientStg email="b@example.com" xtkschema="nms:recipientStg"/>')} ],
	[ 'subscribe', q{SELECT campaign.subscribe('news', '<recipient email="c@example.com"/>', true)} ],
	[ 'unsubscribe', q{SELECT campaign.unsubscribe('news', '<recipient email="c@example.com"/>')} ],
	[ 'describe', q{SELECT count(*) FROM campaign.describe('dem:sampleTable') HAVING count(*) > 0} ])
{
	is(try_as('upgraded', 'feeder', $case->[1]), 'ok', "after the upgrade, the 1.0 role still may: $case->[0]");
}

sq('upgraded', q{SELECT campaign.register_schema('<srcSchema name="later" namespace="dem"><element name="later" autoStg="true"><attribute name="a"/></element></srcSchema>')});
like(try_as('upgraded', 'feeder', q{SELECT campaign.xtk_ingest('<laterStg a="x" xtkschema="dem:laterStg"/>')}),
	qr/^42501 permission denied to insert into schema "dem:laterStg"$/,
	'a schema registered after the upgrade grants campaign_ingest nothing');

# The administrator tightens: customer profiles no longer for campaign_ingest.
sq('upgraded', 'REVOKE ALL ON nms.recipientstg FROM campaign_ingest');
sq('upgraded', 'GRANT INSERT ON dem.laterstg TO feeder');
like(try_as('upgraded', 'feeder', q{SELECT campaign.xtk_ingest('<recipientStg email="d@example.com" xtkschema="nms:recipientStg"/>')}),
	qr/^42501 permission denied to insert into schema "nms:recipientStg"$/,
	'a REVOKE of the upgraded grant takes effect');

# ---------------------------------------------------------------- dump and restore

my $acl_before = sq('upgraded', $acl_query);
my $dumpfile = $node->basedir . '/upgraded.dump';
my ($out, $err) = ('', '');
IPC::Run::run([ 'pg_dump', '-Fc', '-f', $dumpfile, '-d', $node->connstr('upgraded') ], '>', \$out, '2>', \$err);
is($?, 0, 'pg_dump of the upgraded database');
sq('postgres', 'CREATE DATABASE restored');
IPC::Run::run([ 'pg_restore', '-d', $node->connstr('restored'), $dumpfile ], '>', \$out, '2>', \$err);
is($?, 0, 'pg_restore into a new database') or diag($err);
is(sq('restored', $acl_query), $acl_before,
	'the restored database has the same grants (upgraded ones and the administrator\'s)');
is(try_as('restored', 'feeder', q{SELECT campaign.xtk_ingest_ext('<sampleTableStg _key="@id" id="K2" xtkschema="dem:sampleTableStg"/>')}),
	'ok', 'after the restore, the 1.0 role still upserts');
like(try_as('restored', 'feeder', q{SELECT campaign.xtk_ingest('<recipientStg email="e@example.com" xtkschema="nms:recipientStg"/>')}),
	qr/^42501 /, 'after the restore, the revoked right stays revoked');

# ---------------------------------------------------------------- fresh install

sq('postgres', 'CREATE DATABASE fresh');
sq('fresh', 'CREATE EXTENSION campaign CASCADE');
sq('fresh', $try_sql);
is(sq('fresh', $acl_query), join("\n",
		'nms.recipientstg campaign_admin DELETE*,INSERT*,UPDATE*',
		'nms.servicestg campaign_admin DELETE*,INSERT*,UPDATE*',
		'nms.subscriptionrcpstg campaign_admin DELETE*,INSERT*,UPDATE*'),
	'a fresh install grants campaign_ingest nothing, built-in schemas included');
like(try_as('fresh', 'feeder', q{SELECT campaign.xtk_ingest('<recipientStg email="f@example.com" xtkschema="nms:recipientStg"/>')}),
	qr/^42501 permission denied to insert into schema "nms:recipientStg"$/,
	'fresh install: campaign_ingest alone writes no customer profile');

$node->stop;
done_testing();
