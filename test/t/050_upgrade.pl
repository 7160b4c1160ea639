# ALTER EXTENSION campaign UPDATE on a populated 1.0 database (SPEC §13).
#
# A local cluster installs release 1.0 (CREATE EXTENSION campaign VERSION
# '1.0') and runs it with the current build of the module, as a server does
# between `make install` of a new release and the UPDATE.  It is populated:
# a schema registered and deployed to a cloud cluster, 100 rows replicated,
# a row the cloud rejected (in error), a SOAP session, a rate limit whose
# bucket is empty, and a backlog of 361 changes (inserts, updates carrying
# one attribute, deletes, one record through SOAP) staged while replication
# is stopped.  Then ALTER EXTENSION campaign UPDATE, and:
#   - the version is the control file's default_version, the worker was not
#     restarted, every 1.0 table still exists and holds the same rows (in the
#     columns 1.0 had), staging_status shows the same backlog and error;
#   - the rate limit is still in force (RL429), the SOAP session still
#     ingests;
#   - the backlog replicates exactly once (the cloud's content, the history
#     of the batches after the update, the cloud's watermark), ingest goes
#     on, and the row in error replicates once retried;
#   - an upgraded database and a fresh install of the latest version (on a
#     second cluster, so that roles compare too) have the same objects, once
#     the grants the update gives campaign_ingest for 1.0's sake are
#     revoked (the one deliberate difference, see below): every
#     member of the extension, with its definition (function bodies,
#     settings and ACLs; columns, defaults, constraints, indexes, triggers,
#     comments and ACLs of tables, views and sequences; types, schemas,
#     configuration tables), the roles the extension creates, the built-in
#     schemas' registry, and the staging and foreign tables of a schema
#     registered before the update and of the same schema registered after.
# The comparison reads the catalogs, not a list of expected objects: it
# holds whatever a release's upgrade script adds, as long as a fresh install
# gets the same.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib "$FindBin::RealBin/../lib";
use CampaignNodes;
use SourceTree;

my ($latest) = slurp_file(source_root() . '/campaign.control') =~ /^default_version\s*=\s*'([^']+)'/m;
ok($latest, "campaign.control's default_version is $latest");

my $cloud = start_cloud();
my $local = start_local(qq{
# one replication worker (campaign.max_workers): the test kills it by its pid
campaign.max_workers = 1
campaign.naptime = '200ms'
campaign.batch_size = 100
});

# ---------------------------------------------------------------- helpers

sub sq { my ($node, $sql, $db) = @_; return $node->safe_psql($db // 'postgres', $sql); }

sub setup_cloud_server
{
	my ($node) = @_;
	my ($host, $port) = ($cloud->host, $cloud->port);
	sq($node, qq{
CREATE SERVER ffda FOREIGN DATA WRAPPER postgres_fdw OPTIONS (host '$host', port '$port', dbname 'postgres');
CREATE USER MAPPING FOR PUBLIC SERVER ffda;
SELECT campaign.register_schema(\$x\$${\sample_table_schema()}\$x\$);
SELECT campaign.deploy('dem:sampleTable');
});
}

# One collection of changes by key through xtk_ingest_ext; %s in $attrs is
# the key's number.
sub stage
{
	my ($node, $from, $to, $attrs) = @_;
	sq($node, qq{
SELECT campaign.xtk_ingest_ext((SELECT '<sampleTableStg-collection xtkschema="dem:sampleTableStg" _key="\@id">'
  || string_agg(format('<sampleTableStg id="k%s" $attrs/>', i, i), '')
  || '</sampleTableStg-collection>' FROM generate_series($from, $to) i));
});
}

sub status
{
	my ($node) = @_;
	return sq($node, "SELECT mode || ' pending=' || pending || ' errors=' || errors"
		  . " FROM campaign.staging_status WHERE schema_name = 'dem:sampleTable'");
}

sub soap_envelope
{
	my ($method, $params) = @_;
	return qq{<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:urn="urn:xtk:session"><soapenv:Body><urn:$method>$params</urn:$method></soapenv:Body></soapenv:Envelope>};
}

sub soap
{
	my ($envelope) = @_;
	return sq($local, "SET ROLE upgrade_gateway; SELECT campaign.soap(\$e\$$envelope\$e\$)");
}

sub soap_ingest
{
	my ($token, $id) = @_;
	return soap(soap_envelope('Ingest',
			"<urn:sessiontoken>$token</urn:sessiontoken><urn:domDoc><sampleTableStg id=\"$id\" score=\"3\" testcol1=\"soap\" xtkschema=\"dem:sampleTableStg\"/></urn:domDoc>"));
}

sub worker_pid
{
	return sq($local,
		"SELECT pid FROM pg_stat_activity WHERE backend_type = 'campaign replication worker'");
}

# ---------------------------------------------------------------- release 1.0, populated

sq($local, "CREATE EXTENSION campaign VERSION '1.0' CASCADE");
is(sq($local, "SELECT extversion FROM pg_extension WHERE extname = 'campaign'"),
	'1.0', 'release 1.0 installed');
setup_cloud_server($local);
sq($cloud, 'ALTER TABLE dem.sampletable ADD CONSTRAINT score_not_negative CHECK (score >= 0)');

stage($local, 1, 100, 'testcol1="v%s" testcol2="orig" score="1"');
ok(wait_for($local, 'SELECT pending FROM campaign.staging_status WHERE schema_name = \'dem:sampleTable\'', '0'),
	'1.0: 100 rows replicated');
is(sq($cloud, 'SELECT count(*) FROM dem.sampletable'), '100', '1.0: the cloud has them');

sq($local, q{SELECT campaign.xtk_ingest('<sampleTableStg id="kbad" score="-1" xtkschema="dem:sampleTableStg"/>')});
ok(wait_for($local, "SELECT errors FROM campaign.staging_status WHERE schema_name = 'dem:sampleTable'", '1'),
	'1.0: the row the cloud rejects is in error');
my $stg_error = sq($local, 'SELECT _stg_error FROM dem.sampletablestg WHERE _stg_error IS NOT NULL');
like($stg_error, qr/score_not_negative/, "its error is the cloud's message");

sq($local, "SELECT campaign.stop_replication('dem:sampleTable')");

# A SOAP session, used once before the update.
sq($local, q{
CREATE ROLE upgrade_gateway IN ROLE campaign_soap;
CREATE ROLE upgrade_api LOGIN PASSWORD 'api secret' IN ROLE campaign_ingest;
});
my $logon = soap(soap_envelope('Logon',
		'<urn:sessiontoken/><urn:strLogin>upgrade_api</urn:strLogin><urn:strPassword>api secret</urn:strPassword><urn:elemParameters/>'));
my ($token) = $logon =~ m{<pstrSessionToken[^>]*>([^<]+)</pstrSessionToken>};
ok($token, 'SOAP Logon gave a session token') or diag($logon);
like(soap_ingest($token, 'k500'), qr/<IngestResponse/, 'the session ingests before the update');

# The backlog: 300 inserts, 50 updates carrying testcol2 only, 10 deletes.
stage($local, 101, 400, 'testcol1="v%s" testcol2="orig" score="2"');
stage($local, 1, 50, 'testcol2="upd"');
sq($local, q{
SELECT campaign.xtk_ingest_ext((SELECT '<sampleTableStg-collection xtkschema="dem:sampleTableStg" _key="@id" _operation="delete">'
  || string_agg(format('<sampleTableStg id="k%s"/>', i), '') || '</sampleTableStg-collection>'
  FROM generate_series(91, 100) i));
});

# A rate limit whose bucket is empty: one token, refilled every 1,000 s.
sq($local, "SELECT campaign.set_rate_limit('ingestion_status', 0.001, 1)");
my ($rc, $out, $err) = $local->psql('postgres', "SELECT campaign.ingestion_status('nothing', 1)");
like($err, qr/no ingestion request/, 'the one token of ingestion_status is taken');
($rc, $out, $err) = $local->psql('postgres', "SELECT campaign.ingestion_status('nothing', 1)");
like($err, qr/over its rate limit/, 'and the next call is refused');

is(status($local), 'stopped pending=361 errors=1', 'backlog staged, replication stopped');
is(sq($cloud, 'SELECT count(*) FROM dem.sampletable'), '100', 'nothing of it in the cloud');

# Every table of 1.0 (the extension's and the staging table), its columns
# and rows, as they are before the update.
my @tables = split /\n/, sq($local, q{
SELECT c.oid::regclass FROM pg_class c
 WHERE c.relkind IN ('r', 'p')
   AND (c.oid IN (SELECT objid FROM pg_depend WHERE refclassid = 'pg_extension'::regclass
                     AND refobjid = (SELECT oid FROM pg_extension WHERE extname = 'campaign')
                     AND classid = 'pg_class'::regclass AND deptype = 'e')
        OR c.oid = 'dem.sampletablestg'::regclass)
 ORDER BY c.oid::regclass::text COLLATE "C"});
my %columns = map {
	$_ => sq($local, "SELECT string_agg(quote_ident(attname), ', ' ORDER BY attnum) FROM pg_attribute"
		  . " WHERE attrelid = '$_'::regclass AND attnum > 0 AND NOT attisdropped")
} @tables;
sub table_rows
{
	my ($t) = @_;
	return sq($local, "SELECT $columns{$t} FROM $t ORDER BY ROW($columns{$t})::text COLLATE \"C\"");
}
my %rows_before = map { $_ => table_rows($_) } @tables;
ok(scalar @tables >= 10, scalar(@tables) . ' tables to keep, e.g. ' . join(', ', @tables[ 0 .. 3 ]));

my $pid = worker_pid();
my $objects_before = objects($local, 'postgres');

# ---------------------------------------------------------------- the update

sq($local, 'ALTER EXTENSION campaign UPDATE');
is(sq($local, "SELECT extversion FROM pg_extension WHERE extname = 'campaign'"),
	$latest, "updated to $latest");
is(worker_pid(), $pid, 'the worker was not restarted');

for my $t (@tables)
{
	is(table_rows($t), $rows_before{$t}, "$t: same rows after the update");
}
my %before_members = map { $_ => 1 } grep { /^member / } @$objects_before;
my %after_members = map { $_ => 1 } grep { /^member / } @{ objects($local, 'postgres') };
my @lost = grep { !$after_members{$_} } sort keys %before_members;
is_deeply(\@lost, [], 'every object of 1.0 is still there') or diag(join("\n", @lost));

is(status($local), 'stopped pending=361 errors=1', 'staging_status: the same backlog and error');
is(sq($local, 'SELECT _stg_error FROM dem.sampletablestg WHERE _stg_error IS NOT NULL'),
	$stg_error, 'the row in error keeps its message');
is(sq($local, "SELECT api || ' ' || per_second || ' ' || burst FROM campaign.rate_limits WHERE api = 'ingestion_status'"),
	'ingestion_status 0.001 1', 'the rate limit is still set');
($rc, $out, $err) = $local->psql('postgres', "SELECT campaign.ingestion_status('nothing', 1)");
like($err, qr/over its rate limit/, 'and still in force');
like(soap_ingest($token, 'k501'), qr/<IngestResponse/, 'the SOAP session of 1.0 still ingests');

# ---------------------------------------------------------------- the backlog, exactly once

my $upto_before = sq($local, "SELECT replicated_upto FROM campaign.schemas WHERE namespace = 'dem' AND name = 'sampleTable'");
my $last_history = sq($local, 'SELECT coalesce(max(id), 0) FROM campaign.replication_history');
sq($local, "SELECT campaign.start_replication('dem:sampleTable')");
ok(wait_for($local, "SELECT pending FROM campaign.staging_status WHERE schema_name = 'dem:sampleTable'", '0'),
	'the backlog replicated');
is(sq($cloud, q{SELECT count(*) || ' rows, score ' || sum(score) || ', '
	  || count(*) FILTER (WHERE testcol2 = 'upd') || ' updated, '
	  || count(*) FILTER (WHERE testcol2 = 'upd' AND testcol1 = 'v' || substr(id, 2)) || ' kept testcol1, '
	  || count(*) FILTER (WHERE id IN ('k91', 'k100')) || ' deleted left, '
	  || count(*) FILTER (WHERE testcol1 = 'soap') || ' from SOAP'
	  FROM dem.sampletable}),
	'392 rows, score 696, 50 updated, 50 kept testcol1, 0 deleted left, 2 from SOAP',
	'the cloud holds every change once: inserts, updates of one attribute, deletes');
is(sq($local, "SELECT sum(rows) || ' rows, ' || count(*) FILTER (WHERE outcome <> 'success') || ' failed, up to ' || max(upto_seq)"
		  . " FROM campaign.replication_history WHERE id > $last_history AND schema_name = 'dem:sampleTable'"),
	sq($local, "SELECT count(*) || ' rows, 0 failed, up to ' || max(_stg_seq)"
		  . " FROM dem.sampletablestg WHERE _stg_seq > $upto_before AND _stg_error IS NULL"),
	'the batches after the update sent each staged change once');
my $origin = sq($local,
	"SELECT system_identifier || ':' || (SELECT oid FROM pg_database WHERE datname = current_database()) FROM pg_control_system()");
is(sq($cloud, "SELECT upto FROM campaign_replication.watermark WHERE origin = '$origin' AND schema_name = 'dem:sampleTable'"),
	sq($local, 'SELECT last_value FROM dem.sampletablestg__stg_seq_seq'),
	"the cloud's watermark is the last staged change");

sq($local, q{SELECT campaign.xtk_ingest('<sampleTableStg id="k600" testcol1="after" xtkschema="dem:sampleTableStg"/>')});
ok(wait_for($cloud, "SELECT count(*) FROM dem.sampletable WHERE id = 'k600' AND testcol1 = 'after'", '1'),
	'ingest goes on and replicates');

sq($cloud, 'ALTER TABLE dem.sampletable DROP CONSTRAINT score_not_negative');
is(sq($local, "SELECT campaign.retry_errors('dem:sampleTable')"), '1', 'the row in error is retried');
ok(wait_for($cloud, "SELECT count(*) FROM dem.sampletable WHERE id = 'kbad' AND score = -1", '1'),
	'and replicates once');
is(sq($cloud, 'SELECT count(*) FROM dem.sampletable'), '394', 'the cloud holds nothing else');

# ---------------------------------------------------------------- fresh install = upgraded

my $fresh = start_local('', name => 'fresh');
sq($fresh, 'CREATE EXTENSION campaign CASCADE');
is(sq($fresh, "SELECT extversion FROM pg_extension WHERE extname = 'campaign'"),
	$latest, "a fresh install is $latest");
setup_cloud_server($fresh);
sq($fresh, 'CREATE ROLE upgrade_gateway IN ROLE campaign_soap');
sq($fresh, q{CREATE ROLE upgrade_api LOGIN PASSWORD 'api secret' IN ROLE campaign_ingest});

# The one deliberate difference (README, "Upgrading from 1.0"): the update
# grants campaign_ingest INSERT, UPDATE and DELETE on every staging table
# existing then, so that 1.0's feeds keep working, where a fresh install
# grants it none.  Once an administrator revokes them, as the README shows,
# the upgraded database must be the fresh one.
sq($local, q{
DO $$
DECLARE t text;
BEGIN
    FOR t IN SELECT format('%I.%I', sql_schema, staging_table) FROM campaign.schemas
              WHERE staging_table IS NOT NULL LOOP
        EXECUTE format('REVOKE INSERT, UPDATE, DELETE ON %s FROM campaign_ingest', t);
    END LOOP;
END
$$});
same_lines(objects($local, 'postgres'), objects($fresh, 'postgres'),
	'the extension\'s objects, and those of a schema registered before and after the update');
same_lines(roles($local), roles($fresh), 'the roles the extension creates');
same_lines(registry($local), registry($fresh), 'the registry of the built-in and the registered schemas');

$fresh->stop;
$local->stop;
$cloud->stop;
done_testing();

# ---------------------------------------------------------------- catalog descriptions

# Lines describing every member of the extension and, with the same detail,
# the staging and foreign tables of dem:sampleTable, sorted.
sub objects
{
	my ($node, $db) = @_;
	my $sql = <<'SQL';
WITH ext AS (
    SELECT oid, extversion, extrelocatable, extnamespace::regnamespace::text AS nsp,
           extconfig, extcondition
      FROM pg_extension WHERE extname = 'campaign'),
members AS (
    SELECT d.classid, d.objid, d.objsubid FROM pg_depend d, ext
     WHERE d.refclassid = 'pg_extension'::regclass AND d.refobjid = ext.oid AND d.deptype = 'e'),
base AS (
    SELECT objid AS oid FROM members WHERE classid = 'pg_class'::regclass
    UNION SELECT 'dem.sampletablestg'::regclass
    UNION SELECT 'dem.sampletable'::regclass),
rels AS (
    SELECT oid FROM base
    UNION SELECT d.objid FROM pg_depend d JOIN base b ON d.refobjid = b.oid
     WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass
       AND d.deptype IN ('a', 'i')
       AND (SELECT relkind FROM pg_class WHERE oid = d.objid) = 'S'),
lines AS (
    SELECT format('extension %s in %s relocatable=%s', extversion, nsp, extrelocatable) AS line FROM ext
    UNION ALL
    SELECT format('config %s %s', c::regclass, cond) FROM ext, unnest(extconfig, extcondition) AS u(c, cond)
    UNION ALL
    SELECT 'member ' || pg_describe_object(classid, objid, objsubid) FROM members
    UNION ALL
    SELECT format('function %s acl=%s comment=%s %s', p.oid::regprocedure, p.proacl,
                  obj_description(p.oid, 'pg_proc'),
                  CASE WHEN p.prokind IN ('f', 'p') THEN pg_get_functiondef(p.oid)
                       ELSE 'kind=' || p.prokind::text END)
      FROM members m JOIN pg_proc p ON m.classid = 'pg_proc'::regclass AND p.oid = m.objid
    UNION ALL
    SELECT format('schema %s owner=%s acl=%s comment=%s', n.nspname, pg_get_userbyid(n.nspowner),
                  n.nspacl, obj_description(n.oid, 'pg_namespace'))
      FROM members m JOIN pg_namespace n ON m.classid = 'pg_namespace'::regclass AND n.oid = m.objid
    UNION ALL
    SELECT format('type %s typtype=%s labels=%s', t.oid::regtype, t.typtype,
                  (SELECT string_agg(enumlabel, ',' ORDER BY enumsortorder) FROM pg_enum e
                    WHERE e.enumtypid = t.oid))
      FROM members m JOIN pg_type t ON m.classid = 'pg_type'::regclass AND t.oid = m.objid
    UNION ALL
    SELECT format('relation %s kind=%s persistence=%s rls=%s options=%s acl=%s comment=%s',
                  c.oid::regclass, c.relkind, c.relpersistence, c.relrowsecurity, c.reloptions,
                  c.relacl, obj_description(c.oid, 'pg_class'))
      FROM rels r JOIN pg_class c ON c.oid = r.oid
    UNION ALL
    SELECT format('column %s #%s %s %s notnull=%s default=%s identity=%s generated=%s collation=%s acl=%s options=%s comment=%s',
                  a.attrelid::regclass,
                  row_number() OVER (PARTITION BY a.attrelid ORDER BY a.attnum),
                  a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,
                  pg_get_expr(ad.adbin, ad.adrelid), a.attidentity, a.attgenerated,
                  CASE WHEN a.attcollation <> 0 THEN a.attcollation::regcollation::text END,
                  a.attacl, a.attfdwoptions, col_description(a.attrelid, a.attnum))
      FROM rels r JOIN pg_attribute a ON a.attrelid = r.oid AND a.attnum > 0 AND NOT a.attisdropped
      LEFT JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
    UNION ALL
    SELECT format('constraint %s %s %s', co.conrelid::regclass, co.conname, pg_get_constraintdef(co.oid))
      FROM rels r JOIN pg_constraint co ON co.conrelid = r.oid
    UNION ALL
    SELECT 'index ' || pg_get_indexdef(i.indexrelid) FROM rels r JOIN pg_index i ON i.indrelid = r.oid
    UNION ALL
    SELECT 'trigger ' || pg_get_triggerdef(t.oid)
      FROM rels r JOIN pg_trigger t ON t.tgrelid = r.oid AND NOT t.tgisinternal
    UNION ALL
    SELECT format('policy %s %s %s roles=%s using=%s check=%s', p.polrelid::regclass, p.polname, p.polcmd,
                  p.polroles::regrole[], pg_get_expr(p.polqual, p.polrelid), pg_get_expr(p.polwithcheck, p.polrelid))
      FROM rels r JOIN pg_policy p ON p.polrelid = r.oid
    UNION ALL
    SELECT format('view %s %s', c.oid::regclass, pg_get_viewdef(c.oid))
      FROM rels r JOIN pg_class c ON c.oid = r.oid AND c.relkind IN ('v', 'm')
    UNION ALL
    SELECT format('sequence %s %s start=%s increment=%s min=%s max=%s cache=%s cycle=%s',
                  s.seqrelid::regclass, s.seqtypid::regtype, s.seqstart, s.seqincrement, s.seqmin,
                  s.seqmax, s.seqcache, s.seqcycle)
      FROM rels r JOIN pg_sequence s ON s.seqrelid = r.oid
    UNION ALL
    SELECT format('foreign table %s server=%s options=%s', ft.ftrelid::regclass, fs.srvname, ft.ftoptions)
      FROM rels r JOIN pg_foreign_table ft ON ft.ftrelid = r.oid
      JOIN pg_foreign_server fs ON fs.oid = ft.ftserver
    UNION ALL
    SELECT format('event trigger %s %s %s %s %s', e.evtname, e.evtevent, e.evtfoid::regprocedure,
                  e.evtenabled, e.evttags)
      FROM members m JOIN pg_event_trigger e ON m.classid = 'pg_event_trigger'::regclass AND e.oid = m.objid)
SELECT line FROM lines ORDER BY line COLLATE "C";
SQL
	# one object a record: its lines may hold newlines (function bodies)
	my $out = $node->safe_psql($db, $sql, extra_params => [ '-R', "\x1e" ]);
	return [ split /\x1e/, $out ];
}

# The roles named campaign_*, their attributes and memberships.
sub roles
{
	my ($node) = @_;
	return [ split /\n/, sq($node, q{
SELECT format('%s login=%s super=%s inherit=%s createrole=%s createdb=%s bypassrls=%s member of %s',
              r.rolname, r.rolcanlogin, r.rolsuper, r.rolinherit, r.rolcreaterole, r.rolcreatedb,
              r.rolbypassrls,
              (SELECT string_agg(g.rolname, ',' ORDER BY g.rolname) FROM pg_auth_members m
                 JOIN pg_roles g ON g.oid = m.roleid WHERE m.member = r.oid))
  FROM pg_roles r WHERE r.rolname LIKE 'campaign\_%' ORDER BY 1}) ];
}

# The registry rows of the built-in schemas and of dem:sampleTable, without
# what replication and time change (timestamps, the watermark copy).
sub registry
{
	my ($node) = @_;
	my @lines;
	for my $t (split /\n/, sq($node, q{
SELECT c.oid::regclass FROM pg_class c
  JOIN pg_extension e ON e.extname = 'campaign' AND c.oid = ANY (e.extconfig)
 WHERE EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'namespace')
 ORDER BY c.oid::regclass::text COLLATE "C"}))
	{
		my $volatile = sq($node, qq{
SELECT coalesce(string_agg(' - ' || quote_literal(attname), ''), '') FROM pg_attribute
 WHERE attrelid = '$t'::regclass AND attnum > 0 AND NOT attisdropped
   AND (atttypid IN ('timestamptz'::regtype, 'timestamp'::regtype) OR attname = 'replicated_upto')});
		push @lines, split /\n/, sq($node, qq{
SELECT '$t ' || (to_jsonb(r) $volatile)::text FROM $t r
 WHERE namespace IN ('nms', 'dem')});
	}
	return \@lines;
}

sub same_lines
{
	my ($got, $want, $what) = @_;
	my %in_got = map { $_ => 1 } @$got;
	my %in_want = map { $_ => 1 } @$want;
	my @only_upgraded = grep { !$in_want{$_} } @$got;
	my @only_fresh = grep { !$in_got{$_} } @$want;
	ok(@$want > 0 && !@only_upgraded && !@only_fresh, "upgraded = fresh: $what (" . scalar(@$want) . ' lines)')
	  or diag(join("\n", (map { "only upgraded: $_" } @only_upgraded),
			(map { "only fresh:    $_" } @only_fresh)));
}
