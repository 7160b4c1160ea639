
# Copyright (c) campaign contributors
#
# 070_settings_matrix.pl — exact values and exactly-once whatever the
# servers' settings (issue 15).
#
# A DBA's postgresql.conf is not ours.  Both servers run with settings that
# change how values are printed and read, and how transactions see rows:
#   local: DateStyle 'SQL, DMY', IntervalStyle sql_standard,
#          extra_float_digits -3, TimeZone Pacific/Chatham (+13:45),
#          default_transaction_isolation serializable, search_path nowhere
#   cloud: DateStyle German, IntervalStyle iso_8601, extra_float_digits -3,
#          TimeZone Pacific/Chatham, default_transaction_isolation
#          serializable, search_path nowhere, statement_timeout 100ms
# and:
#   (1) the open-transaction race, under serializable and then repeatable
#       read: one session ingests a row and commits 3 s later while another
#       session's ingest wakes the worker, which starts a batch; no row may
#       be lost, also when the worker is killed with SIGKILL right after the
#       slow session commits;
#   (2) a schema with every Campaign type ingests edge values (dates before
#       year 1 and after 9999, infinity, NaN and -0 doubles, intervals with
#       months and microseconds, 24:00:00, the longest strings, non-ASCII
#       text) and a 100k-row collection whose batches take longer than the
#       cloud's statement_timeout; once replicated, the cloud holds exactly
#       the staging table's values: both sides print every column as text in
#       one fixed format (DateStyle ISO, IntervalStyle postgres,
#       extra_float_digits 3, TimeZone UTC) and the texts must be equal, and
#       a few values are checked against what the document said.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use FindBin;
use lib "$FindBin::Bin/../lib";
use CampaignNodes;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);

my $SCHEMA = 'mtx:allTypes';

my $unusual = qq{
extra_float_digits = -3
timezone = 'Pacific/Chatham'
default_transaction_isolation = 'serializable'
search_path = 'nowhere'
};

my $cloud = start_cloud();
$cloud->append_conf('postgresql.conf', $unusual . qq{
datestyle = 'German'
intervalstyle = 'iso_8601'
statement_timeout = '100ms'
});
$cloud->restart;
my $local = start_local($unusual . qq{
# one replication worker (campaign.max_workers): the test kills it by its pid
campaign.max_workers = 1
datestyle = 'SQL, DMY'
intervalstyle = 'sql_standard'
campaign.naptime = '60s'
restart_after_crash = on
});

sub lq { return $local->safe_psql('postgres', $_[0]); }
sub cq { return $cloud->safe_psql('postgres', "SET statement_timeout = 0; $_[0]"); }

is(lq('SHOW DateStyle') . ' ' . lq('SHOW IntervalStyle') . ' ' . lq('SHOW extra_float_digits'),
	'SQL, DMY sql_standard -3', 'local server: unusual settings');
is(join(' ', map { $cloud->safe_psql('postgres', "SHOW $_") } qw(DateStyle IntervalStyle statement_timeout)),
	'German, DMY iso_8601 100ms', 'cloud server: unusual settings');

# ---------------------------------------------------------------- setup

lq('SET search_path = public; CREATE EXTENSION campaign CASCADE');
my ($cloud_host, $cloud_port) = ($cloud->host, $cloud->port);
lq(qq{CREATE SERVER ffda FOREIGN DATA WRAPPER postgres_fdw
        OPTIONS (host '$cloud_host', port '$cloud_port', dbname 'postgres')});
lq('CREATE USER MAPPING FOR PUBLIC SERVER ffda');

is(lq(q{SELECT campaign.register_schema($x$
<srcSchema name="allTypes" namespace="mtx">
  <element name="allTypes" autoStg="true">
    <key name="id" internal="true"><keyfield xpath="@id"/></key>
    <attribute name="id" type="string" length="20"/>
    <attribute name="aString" type="string" length="10"/>
    <attribute name="aMemo" type="memo"/>
    <attribute name="aBoolean" type="boolean"/>
    <attribute name="aByte" type="byte"/>
    <attribute name="aShort" type="short"/>
    <attribute name="aLong" type="long"/>
    <attribute name="aInt64" type="int64"/>
    <attribute name="aFloat" type="float"/>
    <attribute name="aDouble" type="double"/>
    <attribute name="aDate" type="date"/>
    <attribute name="aDatetime" type="datetime"/>
    <attribute name="aDatetimenotz" type="datetimenotz"/>
    <attribute name="aTime" type="time"/>
    <attribute name="aTimespan" type="timespan"/>
    <attribute name="aUuid" type="uuid"/>
  </element>
</srcSchema>$x$)}), $SCHEMA, 'schema with every Campaign type registered');
like(lq("SELECT campaign.deploy('$SCHEMA')"), qr/alltypes/, 'deployed to the cloud');

my @COLS = qw(id astring amemo aboolean abyte ashort along aint64 afloat
  adouble adate adatetime adatetimenotz atime atimespan auuid);

# Every column as text, in one fixed output format, one line per row.
my $FIXED = q{SET DateStyle = 'ISO, YMD'; SET IntervalStyle = 'postgres';
SET extra_float_digits = 3; SET TimeZone = 'UTC'; SET statement_timeout = 0;};

sub content
{
	my ($node, $table, $where) = @_;
	my $row = 'ROW(' . join(', ', @COLS) . ')::text';
	return $node->safe_psql('postgres', qq{$FIXED
SELECT coalesce(string_agg($row, E'\\n' ORDER BY id COLLATE "C"), '')
  FROM $table WHERE $where});
}

# Staging rows (every test row is an insert of a new id) against the cloud.
sub compare
{
	my ($what) = @_;
	my $staged = content($local, 'mtx.alltypesstg', 'true');
	my $cloud_rows = content($cloud, 'mtx.alltypes', 'true');
	my $ok = ok($cloud_rows eq $staged, "$what: the cloud holds exactly the staged values");
	if (!$ok)
	{
		my %c = map { (split /,/, $_, 2)[0] => $_ } split /\n/, $cloud_rows;
		my @diff;
		for my $s (split /\n/, $staged)
		{
			my $id = (split /,/, $s, 2)[0];
			push @diff, "staged: $s\n cloud: " . ($c{$id} // '(missing)')
			  if !defined $c{$id} || $c{$id} ne $s;
			last if @diff >= 10;
		}
		diag(join("\n", @diff));
	}
	return $ok;
}

sub replicated
{
	my ($schema, $what) = @_;
	my $ok = ok(wait_for($local, "SELECT pending FROM campaign.staging_status WHERE schema_name = '$schema'",
			'0', 120),
		"$what: nothing pending");
	diag(lq("SELECT outcome, error FROM campaign.replication_history ORDER BY id DESC LIMIT 3"))
	  unless $ok;
	return $ok;
}

# ================================================================ (1) race

# One session ingests and commits 3 s later; meanwhile another session's
# ingest wakes the worker, whose batch starts while the first is open (the
# slow row has the lower staging sequence).  The race has its own schema, of
# a string and a long only, so that what it shows does not depend on how the
# worker carries the other types.
is(lq(q{SELECT campaign.register_schema('<srcSchema name="race" namespace="mtx"><element name="race" autoStg="true"><key name="id" internal="true"><keyfield xpath="@id"/></key><attribute name="id" type="string" length="40"/><attribute name="n" type="long"/></element></srcSchema>')}),
	'mtx:race', 'race schema registered');
like(lq("SELECT campaign.deploy('mtx:race')"), qr/race/, 'race schema deployed');

sub race
{
	my ($isolation, $kill) = @_;
	my $tag = ($isolation =~ s/ /-/r) . ($kill ? '-k' : '');
	my $what = "race under $isolation" . ($kill ? ', worker killed' : '');

	lq("ALTER SYSTEM SET default_transaction_isolation = '$isolation'");
	lq('SELECT pg_reload_conf()');
	ok(wait_for($local, "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'campaign replication worker'",
			'1', 120),
		"$what: the worker runs");
	my $worker = lq("SELECT pid FROM pg_stat_activity WHERE backend_type = 'campaign replication worker'");

	my $slow = $local->background_psql('postgres', on_error_stop => 0);
	$slow->query_safe(qq{BEGIN; SELECT campaign.xtk_ingest_ext('<raceStg _key="\@id" id="$tag-slow" n="1" xtkschema="mtx:raceStg"/>')});
	is($slow->query_safe('SHOW transaction_isolation'), $isolation, "$what: the slow session runs $isolation");
	lq(qq{SELECT campaign.xtk_ingest_ext('<raceStg _key="\@id" id="$tag-fast" n="2" xtkschema="mtx:raceStg"/>')});
	sleep 3;
	$slow->query_safe('COMMIT');
	$slow->quit;
	if ($kill)
	{
		kill 'KILL', $worker;
		ok(wait_for($local,
				"SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'campaign replication worker' AND pid <> $worker",
				'1', 120),
			"$what: the worker is back after kill -9");
	}
	replicated('mtx:race', $what);
	is(cq("SELECT string_agg(id || '=' || n, ',' ORDER BY id) FROM mtx.race WHERE id LIKE '$tag-%'"),
		"$tag-fast=2,$tag-slow=1", "$what: no row lost");
}

race('serializable', 0);
race('serializable', 1);
race('repeatable read', 0);
race('repeatable read', 1);
lq('ALTER SYSTEM RESET default_transaction_isolation');
lq('SELECT pg_reload_conf()');

# ================================================================ (2) values

# Edge values; the longest string is 10 two-byte characters.
my $doc = <<'XML';
<allTypesStg-collection xtkschema="mtx:allTypesStg" _key="@id">
 <allTypesStg id="e1" aString="plain" aMemo="tab&#9;nl&#10;end" aBoolean="true" aByte="127" aShort="-32768" aLong="2147483647" aInt64="-9223372036854775808" aFloat="1.5" aDouble="0.12345678901234566" aDate="2026-11-05" aDatetime="2026-11-05 10:20:30.123+01:00" aDatetimenotz="2026-11-05T10:20:30" aTime="10:20:30.5" aTimespan="3600" aUuid="a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"/>
 <allTypesStg id="e2" aString="ÀÉÎÕÜñçßøå" aMemo="Zoë, Ñandú, 東京, 🎉 'quote' \back" aBoolean="0" aDouble="NaN" aFloat="-0" aDate="-0043-03-15" aDatetime="2026-11-05T10:20:30" aDatetimenotz="0000-01-01T00:00:00" aTime="24:00:00" aTimespan="P1Y2M3DT4H5M6.789012S"/>
 <allTypesStg id="e3" aBoolean="1" aDouble="-0" aFloat="Infinity" aDate="+12345-06-07" aDatetime="infinity" aDatetimenotz="-infinity" aTime="23:59:59.999999" aTimespan="-1.5"/>
 <allTypesStg id="e4" aBoolean="false" aDouble="-Infinity" aFloat="1.7976931348623157e308" aDate="infinity" aDatetime="-4713-11-24T00:00:00Z" aDatetimenotz="12345-06-07T08:09:10.000001" aTime="00:00" aTimespan="-1 day 02:00:00"/>
 <allTypesStg id="e5" aDouble="4.9e-324" aFloat="-2.25e-10" aDate="-infinity" aDatetime="2026-11-05T10:20:30.000001-09:30" aDatetimenotz="9999-12-31T23:59:59.999999" aTime="12:00:00" aTimespan="P0.5D"/>
</allTypesStg-collection>
XML
lq("SELECT campaign.xtk_ingest_ext(\$x\$$doc\$x\$)");

# A bulk of 100k rows: its batches take longer than the cloud's 100ms
# statement_timeout.
lq(q{SELECT campaign.xtk_ingest_ext('<allTypesStg-collection xtkschema="mtx:allTypesStg" _key="@id">'
  || string_agg(format('<allTypesStg id="bulk-%s" aLong="%s" aDouble="%s" aDate="2026-11-%s" aDatetime="2026-01-02T03:04:%s.5Z" aTimespan="%s"/>',
                       i, i, i / 7.0, lpad((i % 28 + 1)::text, 2, '0'), lpad((i % 60)::text, 2, '0'), i), '')
  || '</allTypesStg-collection>') FROM generate_series(1, 100000) i});

# What the document said, read back from staging in the fixed format.
is(content($local, 'mtx.alltypesstg', "id IN ('e1', 'e2', 'e3', 'e4', 'e5')"),
	join("\n",
		q{(e1,plain,"tab	nl
end",t,127,-32768,2147483647,-9223372036854775808,1.5,0.12345678901234566,2026-11-05,"2026-11-05 09:20:30.123+00","2026-11-05 10:20:30",10:20:30.5,01:00:00,a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11)},
		q{(e2,ÀÉÎÕÜñçßøå,"Zoë, Ñandú, 東京, 🎉 'quote' \\\\back",f,,,,,-0,NaN,"0044-03-15 BC","2026-11-05 10:20:30+00","0001-01-01 00:00:00 BC",24:00:00,"1 year 2 mons 3 days 04:05:06.789012",)},
		q{(e3,,,t,,,,,Infinity,-0,12345-06-07,infinity,-infinity,23:59:59.999999,-00:00:01.5,)},
		q{(e4,,,f,,,,,1.7976931348623157e+308,-Infinity,infinity,"4714-11-24 00:00:00+00 BC","12345-06-07 08:09:10.000001",00:00:00,"-1 days +02:00:00",)},
		q{(e5,,,,,,,,-2.25e-10,5e-324,-infinity,"2026-11-05 19:50:30.000001+00","9999-12-31 23:59:59.999999",12:00:00,12:00:00,)}),
	'staged values are what the document said, under the local server\'s settings');

replicated($SCHEMA, 'edge values and bulk');
is(cq('SELECT count(*) FROM mtx.alltypes'), '100005', 'every row in the cloud');
compare('edge values and bulk');

$local->stop;
$cloud->stop;

done_testing();
