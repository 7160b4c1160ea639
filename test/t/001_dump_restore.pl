
# Copyright (c) campaign contributors
#
# 001_dump_restore.pl — pg_dump / pg_restore keeps the data model and the
# staged rows (SPEC §2: the registry lives in extension tables marked with
# pg_extension_config_dump).
#
# A node with shared_preload_libraries=campaign gets the extension, two
# registered schemas (one staged, with many types, evolved once with an
# added and a dropped attribute; one not staged) with keys and dbindexes, and
# staged rows from single records, collections, xtk_ingest and
# xtk_ingest_ext.  The database is dumped in custom format and restored
#   (a) into a fresh database on a second, fresh node, and
#   (b) into a new database on the same node (the roles already exist),
# and each restored database is compared exactly with the source: the four
# registry tables, describe(), the staging table's definition, the staged
# rows, the identity sequence; then ingest (and schema evolution) must work
# in the restored database, and the identity must continue past the
# restored rows.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;

# ---------------------------------------------------------------- helpers

sub new_node
{
	my ($name) = @_;
	my $node = PostgreSQL::Test::Cluster->new($name);
	$node->init;
	$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'campaign'
max_worker_processes = 16
timezone = 'UTC'
datestyle = 'ISO, YMD'
lc_messages = 'C'
});
	$node->start;
	return $node;
}

# A query's whole output (psql -XAtq: unaligned, '|' between columns).
sub sq
{
	my ($node, $db, $sql) = @_;
	return $node->safe_psql($db, $sql);
}

# Run a command, return (exit code, stdout, stderr).
sub run_cmd
{
	my (@cmd) = @_;
	my ($out, $err) = ('', '');
	IPC::Run::run(\@cmd, '>', \$out, '2>', \$err);
	return ($? >> 8, $out, $err);
}

# Exact comparison of one query between two databases.
sub same
{
	my ($src, $srcdb, $dst, $dstdb, $sql, $what) = @_;
	my $want = sq($src, $srcdb, $sql);
	my $got = sq($dst, $dstdb, $sql);
	is($got, $want, $what);
	return $got;
}

# ---------------------------------------------------------------- schemas

my $sample_v1 = <<'XML';
<srcSchema name="sampleTable" namespace="dem" label="Sample table" desc="Rows staged for the cloud">
  <element name="sampleTable" autopk="true" autouuid="true" autoStg="true">
    <key name="id" internal="true"><keyfield xpath="@id"/></key>
    <key name="emailKey"><keyfield xpath="@email"/></key>
    <dbindex name="byName"><keyfield xpath="@lastName"/><keyfield xpath="@firstName"/></dbindex>
    <attribute name="id" type="string" length="20" label="External id" required="true"/>
    <attribute name="email" label="Email" desc="Primary address"/>
    <attribute name="firstName" type="string" length="64" sqlname="first_name" label="First name"/>
    <attribute name="lastName" type="string" length="64" label="Last name"/>
    <attribute name="obsolete" type="string" length="10"/>
    <attribute name="score" type="long" default="10"/>
    <attribute name="big" type="int64"/>
    <attribute name="small" type="short"/>
    <attribute name="tiny" type="byte"/>
    <attribute name="active" type="boolean"/>
    <attribute name="ratio" type="double"/>
    <attribute name="weight" type="float"/>
    <attribute name="birth" type="date"/>
    <attribute name="seen" type="datetime"/>
    <attribute name="localSeen" type="datetimenotz"/>
    <attribute name="atTime" type="time"/>
    <attribute name="span" type="timespan"/>
    <attribute name="ref" type="uuid"/>
    <attribute name="notes" type="memo" label="Notes" desc="Free text"/>
  </element>
</srcSchema>
XML

# v2: "obsolete" removed (DROP COLUMN: attnums differ after restore),
# "segment" added (ADD COLUMN at the end).
(my $sample_v2 = $sample_v1) =~
  s{\s*<attribute name="obsolete"[^>]*/>}{}
  or die "v2 edit failed";
$sample_v2 =~
  s{(<attribute name="notes"[^>]*/>)}{$1\n    <attribute name="segment" type="string" length="16" label="Segment"/>}
  or die "v2 edit failed";

my $account = <<'XML';
<srcSchema name="account" namespace="crm" label="Account" desc="Customer accounts, not staged">
  <element name="account" sqltable="crmAccount" autopk="true">
    <key name="code" internal="true"><keyfield xpath="@code"/></key>
    <key name="vat"><keyfield xpath="@vatNumber"/><keyfield xpath="@country"/></key>
    <dbindex name="byName" unique="true"><keyfield xpath="@name"/></dbindex>
    <dbindex name="byCountry"><keyfield xpath="@country"/><keyfield xpath="@opened"/></dbindex>
    <attribute name="code" length="32" label="Code" notNull="true"/>
    <attribute name="name" type="string" length="128" label="Name"/>
    <attribute name="vatNumber" sqlname="vat" length="20" label="VAT number"/>
    <attribute name="country" length="2" default="'FR'"/>
    <attribute name="opened" type="date"/>
    <attribute name="balance" type="double"/>
  </element>
</srcSchema>
XML

# ---------------------------------------------------------------- source

my $node1 = new_node('source');
my $db = 'src';
$node1->safe_psql('postgres', "CREATE DATABASE $db");
sq($node1, $db, 'CREATE EXTENSION campaign CASCADE');

is(sq($node1, $db, "SELECT campaign.register_schema(\$x\$$sample_v1\$x\$)"),
	'dem:sampleTable', 'register staged schema v1');
is(sq($node1, $db, "SELECT campaign.register_schema(\$x\$$account\$x\$::xml)"),
	'crm:account', 'register non-staged schema (xml argument)');

# Single records, values as attributes and as a child element with CDATA.
my $uuid1 = sq($node1, $db, <<'SQL');
SELECT campaign.xtk_ingest($x$<sampleTableStg id="A1" email="a1@example.com" firstName="Ann" lastName="Lee" score="42" big="9007199254740993" small="-32768" tiny="7" active="true" ratio="3.141592653589793" weight="0.1" birth="1990-02-28" seen="2024-05-01T12:34:56.789+02:00" localSeen="2024-05-01 12:34:56" atTime="23:59:59.5" span="1 day 02:03:04" ref="0e2f5a9c-3b1d-4c3a-9f6e-2b7d1c0a4e11" xtkschema="dem:sampleTableStg"><notes><![CDATA[multi
line <b>notes</b> & "quotes" it's]]></notes></sampleTableStg>$x$)
SQL
like($uuid1, qr/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/,
	'single ingest returns a v4 UUID');
my $uuid2 = sq($node1, $db, <<'SQL');
SELECT campaign.xtk_ingest($x$<sampleTableStg id="A2" firstName="Zoë &amp; Œ" lastName="Ñandú" notes="tab&#9;newline&#10;end" score="" active="false" obsolete="x" xtkschema="dem:sampleTableStg"/>$x$::xml)
SQL
like($uuid2, qr/^[0-9a-f-]{36}$/, 'single ingest (xml argument) returns a UUID');
is(sq($node1, $db, <<'SQL'), '', 'single ingest with _key returns empty string');
SELECT campaign.xtk_ingest($x$<sampleTableStg _key="@id" id="A3" email="a3@example.com" xtkschema="dem:sampleTableStg"/>$x$)
SQL

# A collection of 2500 records (more than one 1000-row chunk).
my $coll = qq{<sampleTableStg-collection xtkschema="dem:sampleTableStg">\n};
for my $i (1 .. 2500)
{
	$coll .= sprintf(
		qq{  <sampleTableStg id="C%05d" email="c%d\@example.com" firstName="F%d" lastName="L%d" score="%d" big="%d" small="%d" tiny="%d" active="%s" ratio="%.6f" birth="2000-01-%02d" seen="2024-01-01 00:00:%02d+00" span="%d minutes" notes="note %d"/>\n},
		$i, $i, $i, $i % 97, $i * 3, $i * 1000003, $i % 3000, $i % 100,
		$i % 2 ? 'true' : 'false', $i / 7, 1 + $i % 28, $i % 60, $i, $i);
}
$coll .= "</sampleTableStg-collection>\n";
my $uuids = sq($node1, $db, "SELECT campaign.xtk_ingest(\$x\$$coll\$x\$)");
is(scalar(split /,/, $uuids), 2500, 'collection ingest returns 2500 UUIDs');

# A failing collection (bad value in record 3) stages nothing but burns
# sequence values: the identity must still continue after restore.
my ($rc, $out, $err) = $node1->psql($db, <<'SQL');
SELECT campaign.xtk_ingest($x$<sampleTableStg-collection xtkschema="dem:sampleTableStg"><sampleTableStg id="E1"/><sampleTableStg id="E2"/><sampleTableStg id="E3" score="abc"/></sampleTableStg-collection>$x$)
SQL
isnt($rc, 0, 'bad collection is refused');
like($err, qr/record 3/, 'error names the record');

# Evolve the schema: drop "obsolete" (allowed: only row A2 carries it, so
# force), add "segment".
is(sq($node1, $db, "SELECT campaign.register_schema(\$x\$$sample_v2\$x\$, force => true)"),
	'dem:sampleTable', 'register staged schema v2 (evolution)');

# Updates and deletes by key, one record and a collection.
sq($node1, $db, <<'SQL');
SELECT campaign.xtk_ingest_ext($x$<sampleTableStg _key="@id" id="A1" lastName="Updated" segment="gold" xtkschema="dem:sampleTableStg"/>$x$);
SELECT campaign.xtk_ingest_ext($x$<sampleTableStg-collection xtkschema="dem:sampleTableStg" _key="@id"><sampleTableStg id="C00001" score="1"/><sampleTableStg id="C00002" _operation="delete"/><sampleTableStg id="C00003" _operation="update" notes="u"/><sampleTableStg id="N1" _operation="insert" segment="new"/></sampleTableStg-collection>$x$);
SELECT campaign.xtk_ingest_ext($x$<sampleTableStg _key="@email,@id" id="A3" email="a3@example.com" _operation="delete" xtkschema="dem:sampleTableStg"/>$x$::xml);
SQL
my $uuid4 = sq($node1, $db, <<'SQL');
SELECT campaign.xtk_ingest($x$<sampleTableStg id="A4" segment="silver" xtkschema="dem:sampleTableStg"/>$x$)
SQL
like($uuid4, qr/^[0-9a-f-]{36}$/, 'ingest after evolution returns a UUID');

# Built-in schemas (SPEC §2: nms:recipient, ... registered by CREATE
# EXTENSION) must survive too, registry rows and staged rows alike: stage a
# recipient when the extension provides the schema.
my $has_recipient = sq($node1, $db,
	"SELECT count(*) FROM campaign.schemas WHERE namespace = 'nms' AND name = 'recipient' AND staging_table IS NOT NULL");
if ($has_recipient)
{
	like(sq($node1, $db, <<'SQL'), qr/^[0-9a-f-]{36}$/, 'ingest into built-in nms:recipientStg');
SELECT campaign.xtk_ingest($x$<recipientStg email="builtin@example.com" xtkschema="nms:recipientStg"/>$x$)
SQL
}

# Replication settings live in the registry too: schedule the staged schema.
sq($node1, $db, "SELECT campaign.start_replication('dem:sampleTableStg', '1 hour')");
is(sq($node1, $db, "SELECT mode, every FROM campaign.schemas WHERE name = 'sampleTable'"),
	'scheduled|01:00:00', 'staged schema scheduled hourly');

my $nrows = sq($node1, $db, 'SELECT count(*) FROM dem.sampletablestg');
is($nrows, 2500 + 3 + 1 + 1 + 4 + 1, 'rows staged in the source');
is(sq($node1, $db, "SELECT count(*) FROM pg_attribute WHERE attrelid = 'dem.sampletablestg'::regclass AND attisdropped"),
	'1', 'source staging table has a dropped column');

# ---------------------------------------------------------------- dump

my $dumpfile = $node1->basedir . '/campaign.dump';
($rc, $out, $err) = run_cmd('pg_dump', '-Fc', '-f', $dumpfile, '-d', $node1->connstr($db));
is($rc, 0, 'pg_dump exits 0');
is($err, '', 'pg_dump writes nothing on stderr');

($rc, my $toc, $err) = run_cmd('pg_restore', '-l', $dumpfile);
is($rc, 0, 'pg_restore -l reads the dump');
for my $t (qw(schemas attributes keys indexes))
{
	like($toc, qr/TABLE DATA campaign $t /, "dump holds the data of campaign.$t");
	unlike($toc, qr/ TABLE campaign $t /, "dump does not create campaign.$t itself");
}
like($toc, qr/ EXTENSION - campaign\b/, 'dump creates the extension');
like($toc, qr/ TABLE dem sampletablestg /, 'dump creates the staging table');
like($toc, qr/ TABLE DATA dem sampletablestg /, 'dump holds the staged rows');
like($toc, qr/ SEQUENCE SET dem sampletablestg__stg_seq_seq /, 'dump sets the identity sequence');

# ---------------------------------------------------------------- restore

my $node2 = new_node('target');

my @targets = ([ $node2, 'restored', 'fresh node' ],
			   [ $node1, 'restored_same', 'same node' ]);

for my $target (@targets)
{
	my ($node, $rdb, $where) = @$target;

	$node->safe_psql('postgres', "CREATE DATABASE $rdb");
	($rc, $out, $err) = run_cmd('pg_restore', '-d', $node->connstr($rdb), $dumpfile);
	is($rc, 0, "$where: pg_restore exits 0");
	is($err, '', "$where: pg_restore reports no error");
	diag("$where: pg_restore stderr:\n$err") if $err ne '';

	# Registry: all four tables, full content, in primary key order.  The
	# built-in schemas are registered anew by CREATE EXTENSION, so only
	# their registration time differs.
	same($node1, $db, $node, $rdb,
		"SELECT string_agg((to_jsonb(s) - CASE WHEN s.builtin THEN 'registered_at' ELSE '' END)::text,"
		  . " E'\\n' ORDER BY namespace, name) FROM campaign.schemas s",
		"$where: campaign.schemas identical");
	same($node1, $db, $node, $rdb,
		"SELECT string_agg(a::text, E'\\n' ORDER BY namespace, name, attribute) FROM campaign.attributes a",
		"$where: campaign.attributes identical");
	same($node1, $db, $node, $rdb,
		"SELECT string_agg(k::text, E'\\n' ORDER BY namespace, name, key_name) FROM campaign.keys k",
		"$where: campaign.keys identical");
	same($node1, $db, $node, $rdb,
		"SELECT string_agg(i::text, E'\\n' ORDER BY namespace, name, index_name) FROM campaign.indexes i",
		"$where: campaign.indexes identical");
	is(sq($node, $rdb, "SELECT mode, every FROM campaign.schemas WHERE name = 'sampleTable'"),
		'scheduled|01:00:00', "$where: replication schedule restored");
	is(sq($node, $rdb, 'SELECT count(*) FROM campaign.schemas'),
		sq($node1, $db, 'SELECT count(*) FROM campaign.schemas'),
		"$where: no registry row lost or duplicated");

	# describe(), for the schema, its staging schema and the unstaged one.
	for my $s ('dem:sampleTable', 'dem:sampleTableStg', 'crm:account')
	{
		my $d = same($node1, $db, $node, $rdb,
			"SELECT * FROM campaign.describe('$s')",
			"$where: describe('$s') identical");
		isnt($d, '', "$where: describe('$s') is not empty");
	}

	# The staging table's definition: columns, defaults, identity,
	# comments, indexes, owner, rights; and it is no extension member.
	same($node1, $db, $node, $rdb, <<'SQL', "$where: staging table columns identical");
SELECT string_agg(concat_ws('|', a.attname, format_type(a.atttypid, a.atttypmod),
                            a.attnotnull, a.attidentity, pg_get_expr(d.adbin, d.adrelid),
                            col_description(a.attrelid, a.attnum)), E'\n' ORDER BY a.attnum)
  FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
 WHERE a.attrelid = 'dem.sampletablestg'::regclass AND a.attnum > 0 AND NOT a.attisdropped
SQL
	same($node1, $db, $node, $rdb, <<'SQL', "$where: staging table comment, owner, rights, indexes identical");
SELECT obj_description('dem.sampletablestg'::regclass, 'pg_class'),
       pg_get_userbyid(relowner), relacl,
       (SELECT string_agg(indexdef, E'\n' ORDER BY indexname) FROM pg_indexes
         WHERE schemaname = 'dem' AND tablename = 'sampletablestg')
  FROM pg_class WHERE oid = 'dem.sampletablestg'::regclass
SQL
	is(sq($node, $rdb, <<'SQL'), '0', "$where: staging table is not an extension member");
SELECT count(*) FROM pg_depend
 WHERE classid = 'pg_class'::regclass AND objid = 'dem.sampletablestg'::regclass AND deptype = 'e'
SQL
	same($node1, $db, $node, $rdb, <<'SQL', "$where: extension membership identical");
SELECT string_agg(pg_describe_object(classid, objid, objsubid), E'\n' ORDER BY 1)
  FROM pg_depend
 WHERE refclassid = 'pg_extension'::regclass AND deptype = 'e'
   AND refobjid = (SELECT oid FROM pg_extension WHERE extname = 'campaign')
SQL

	# Staged rows: full content in _stg_seq order.
	my $rows_sql = <<'SQL';
SELECT count(*), max(_stg_seq), md5(string_agg(t::text, E'\n' ORDER BY _stg_seq))
  FROM dem.sampletablestg t
SQL
	my $r = same($node1, $db, $node, $rdb, $rows_sql, "$where: staged rows identical (count, max, md5)");
	like($r, qr/^$nrows\|/, "$where: all $nrows rows restored");
	same($node1, $db, $node, $rdb,
		"SELECT string_agg(t::text, E'\\n' ORDER BY _stg_seq) FROM dem.sampletablestg t WHERE id !~ '^C0[0-9]{3}[1-9]' OR id IS NULL",
		"$where: staged rows identical (text of the hand-written rows)");

	# Every staging table the registry knows (built-in ones included):
	# same rows.
	my @staged = split /\n/, sq($node1, $db,
		"SELECT format('%I.%I', sql_schema, staging_table) FROM campaign.schemas WHERE staging_table IS NOT NULL ORDER BY 1");
	for my $tbl (@staged)
	{
		same($node1, $db, $node, $rdb,
			"SELECT count(*), md5(string_agg(t::text, E'\\n' ORDER BY _stg_seq)) FROM $tbl t",
			"$where: rows of staging table $tbl identical");
	}

	# The identity sequence continues past the restored rows.
	my $seqstate_sql = <<'SQL';
SELECT last_value, is_called FROM dem.sampletablestg__stg_seq_seq
SQL
	same($node1, $db, $node, $rdb, $seqstate_sql, "$where: identity sequence state identical");
	my ($last) = split /\|/, sq($node, $rdb, $seqstate_sql);
	my $max = sq($node, $rdb, 'SELECT max(_stg_seq) FROM dem.sampletablestg');

	# Ingest works in the restored database: single, collection, ext.
	my $u = sq($node, $rdb, <<'SQL');
SELECT campaign.xtk_ingest($x$<sampleTableStg id="R1" email="r1@example.com" score="5" segment="restored" seen="2024-06-01T00:00:00Z" xtkschema="dem:sampleTableStg"/>$x$)
SQL
	like($u, qr/^[0-9a-f-]{36}$/, "$where: ingest after restore returns a UUID");
	my $newseq = sq($node, $rdb, "SELECT _stg_seq FROM dem.sampletablestg WHERE _uuid = '$u'");
	cmp_ok($newseq, '>', $max, "$where: new _stg_seq $newseq above restored max $max");
	is($newseq, $last + 1, "$where: identity continues right after the dumped sequence value");
	is(sq($node, $rdb, "SELECT id, email, score, segment, seen, _operation, _carried FROM dem.sampletablestg WHERE _uuid = '$u'"),
		'R1|r1@example.com|5|restored|2024-06-01 00:00:00+00|insert|{id,email,score,seen,segment}',
		"$where: ingested row content");

	my $cu = sq($node, $rdb, <<'SQL');
SELECT campaign.xtk_ingest($x$<sampleTableStg-collection xtkschema="dem:sampleTableStg"><sampleTableStg id="R2" score="6"/><sampleTableStg id="R3"><notes>child &amp; text</notes></sampleTableStg></sampleTableStg-collection>$x$)
SQL
	is(scalar(split /,/, $cu), 2, "$where: collection ingest after restore returns 2 UUIDs");
	sq($node, $rdb, <<'SQL');
SELECT campaign.xtk_ingest_ext($x$<sampleTableStg _key="@id" id="R1" _operation="delete" xtkschema="dem:sampleTableStg"/>$x$)
SQL
	is(sq($node, $rdb, "SELECT string_agg(concat_ws(',', id, score, notes, _operation, _key::text), ';' ORDER BY _stg_seq) FROM dem.sampletablestg WHERE _stg_seq > $max"),
		'R1,5,insert;R2,6,insert;R3,10,child & text,insert;R1,delete,{id}',
		"$where: rows ingested after restore, defaults applied");
	is(sq($node, $rdb, "SELECT min(_stg_seq) > $max AND count(DISTINCT _stg_seq) = 4 FROM dem.sampletablestg WHERE id LIKE 'R%'"),
		't', "$where: new rows numbered after the restored ones");

	# The unstaged schema is still refused, with the same error.
	my ($rc1, $o1, $e1) = $node1->psql($db, <<'SQL');
SELECT campaign.xtk_ingest($x$<accountStg code="X" xtkschema="crm:accountStg"/>$x$)
SQL
	my ($rc2, $o2, $e2) = $node->psql($rdb, <<'SQL');
SELECT campaign.xtk_ingest($x$<accountStg code="X" xtkschema="crm:accountStg"/>$x$)
SQL
	isnt($rc2, 0, "$where: ingest into unstaged schema refused");
	is($e2, $e1, "$where: same error as in the source");

	# The restored registry drives schema evolution: add an attribute.
	(my $sample_v3 = $sample_v2) =~
	  s{(<attribute name="segment"[^>]*/>)}{$1\n    <attribute name="channel" type="short"/>}
	  or die "v3 edit failed";
	is(sq($node, $rdb, "SELECT campaign.register_schema(\$x\$$sample_v3\$x\$)"),
		'dem:sampleTable', "$where: re-register (evolve) after restore");
	sq($node, $rdb, <<'SQL');
SELECT campaign.xtk_ingest($x$<sampleTableStg id="R4" channel="3" xtkschema="dem:sampleTableStg"/>$x$)
SQL
	is(sq($node, $rdb, "SELECT channel, segment IS NULL FROM dem.sampletablestg WHERE id = 'R4'"),
		'3|t', "$where: ingest into the evolved table after restore");

	# The source is untouched by all this.
	is(sq($node1, $db, 'SELECT count(*) FROM dem.sampletablestg'), $nrows,
		"$where: source row count unchanged");
}

# The source still ingests, with its own identity.
my $u5 = sq($node1, $db, <<'SQL');
SELECT campaign.xtk_ingest($x$<sampleTableStg id="A5" xtkschema="dem:sampleTableStg"/>$x$)
SQL
like($u5, qr/^[0-9a-f-]{36}$/, 'source still ingests');

$node2->stop;
$node1->stop;

done_testing();
