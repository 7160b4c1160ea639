
# Copyright (c) campaign contributors
#
# 030_throttle.pl — what pg_regress's single session cannot show about rate
# limits and SOAP sessions (SPEC §8):
#
#   - a limit is cluster-wide: sessions of two databases share one bucket,
#     and each sees the same counters;
#   - under concurrent callers a bucket never admits more than it holds:
#     6 clients racing for a burst of 37 tokens get exactly 37 between them;
#   - a restart clears the limits (they live in shared memory) but keeps
#     the SOAP sessions (they live in a table): a token from before the
#     restart still works after it.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;

my $node = PostgreSQL::Test::Cluster->new('throttle');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'campaign'
max_worker_processes = 16
lc_messages = 'C'
});
$node->start;

my $schema = q{<srcSchema name="limited" namespace="thr"><element name="limited" autoStg="true"><attribute name="code" type="string" length="20"/></element></srcSchema>};

# attempts(n): n calls of xtk_ingest; the number accepted.
my $attempts_fn = q{
CREATE FUNCTION attempts(n integer) RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    accepted integer := 0;
BEGIN
    FOR i IN 1..n LOOP
        BEGIN
            PERFORM campaign.xtk_ingest('<limitedStg code="c' || i || '" xtkschema="thr:limitedStg"/>');
            accepted := accepted + 1;
        EXCEPTION WHEN SQLSTATE 'RL429' THEN
            NULL;
        END;
    END LOOP;
    RETURN accepted;
END
$$;
};

for my $db ('postgres', 'other')
{
	$node->safe_psql('postgres', "CREATE DATABASE $db") if $db ne 'postgres';
	$node->safe_psql($db, qq{
SET client_min_messages = warning;
CREATE EXTENSION campaign CASCADE;
SELECT campaign.register_schema('$schema');
$attempts_fn
});
}

# ---------------------------------------------------------------- cluster-wide

$node->safe_psql('postgres', "SELECT campaign.set_rate_limit('xtk_ingest', 0.001, 5)");
is($node->safe_psql('postgres', 'SELECT attempts(3)'), '3', 'database 1: 3 of 3 calls accepted');
is($node->safe_psql('other', 'SELECT attempts(3)'), '2',
	'database 2: 2 of 3 calls accepted, the bucket is shared');
is( $node->safe_psql(
		'other',
		"SELECT per_second, burst, accepted, rejected FROM campaign.rate_limits WHERE api = 'xtk_ingest'"),
	'0.001|5|5|1',
	'both databases see one limit and one set of counters');
my ($rc, $out, $err) = $node->psql('postgres',
	q{SELECT campaign.xtk_ingest('<limitedStg code="x" xtkschema="thr:limitedStg"/>')},
	extra_params => [ '-v', 'VERBOSITY=verbose' ]);
like($err, qr/ERROR:  RL429: API "xtk_ingest" is over its rate limit of 0.001 calls per second/,
	'over the limit: SQLSTATE RL429 names the API and the limit');
like($err, qr/HINT:  Retry in \d+\.\d{3} seconds\./, 'the hint says when to retry');
is( $node->safe_psql('postgres', 'SELECT count(*) FROM thr.limitedstg') +
	  $node->safe_psql('other', 'SELECT count(*) FROM thr.limitedstg'),
	5, 'exactly the accepted calls staged rows');

# ---------------------------------------------------------------- concurrency

$node->safe_psql('postgres', "SELECT campaign.set_rate_limit('xtk_ingest', 0.001, 37)");
my @runs;
for my $i (1 .. 6)
{
	my $db = $i % 2 ? 'postgres' : 'other';
	my %run = (out => '', err => '');
	$run{h} = IPC::Run::start(
		[
			'psql', '-XAtq', '-d', $node->connstr($db),
			'-c', 'SELECT attempts(40)'
		],
		'>', \$run{out}, '2>', \$run{err});
	push @runs, \%run;
}
my $total = 0;
for my $run (@runs)
{
	$run->{h}->finish;
	chomp $run->{out};
	$total += $run->{out};
}
is($total, 37, '6 concurrent clients, 240 attempts: exactly the burst of 37 accepted');
is( $node->safe_psql(
		'postgres',
		"SELECT accepted, rejected FROM campaign.rate_limits WHERE api = 'xtk_ingest'"),
	'37|203', 'the counters agree');

# ---------------------------------------------------------------- restart

$node->safe_psql('postgres', q{
CREATE ROLE api LOGIN PASSWORD 'api secret' IN ROLE campaign_ingest;
GRANT INSERT ON thr.limitedstg TO api;
CREATE ROLE gateway IN ROLE campaign_soap;
});
my $logon = $node->safe_psql('postgres', q{
SET ROLE gateway;
SELECT (xpath('//*[local-name()="pstrSessionToken"]/text()', campaign.soap(
'<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:urn="urn:xtk:session"><soapenv:Body>
<urn:Logon><urn:sessiontoken/><urn:strLogin>api</urn:strLogin><urn:strPassword>api secret</urn:strPassword></urn:Logon>
</soapenv:Body></soapenv:Envelope>')::xml))[1]});
like($logon, qr/^___[0-9a-f-]{36}$/, 'SOAP logon gives a session token');

$node->restart;

is( $node->safe_psql('postgres',
		"SELECT string_agg(api || ' ' || per_second || ' ' || burst, ',') FROM campaign.rate_limits WHERE per_second IS NOT NULL"),
	'logon_failure 1 10', 'a restart clears the limits, back to the default of logon_failure');
is($node->safe_psql('postgres', 'SELECT attempts(50)'), '50', 'and every call passes again');
my $ingest = $node->safe_psql('postgres', qq{
SET ROLE gateway;
SELECT campaign.soap(
'<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:urn="urn:xtk:session"><soapenv:Body>
<urn:Ingest><urn:sessiontoken>$logon</urn:sessiontoken><urn:domDoc><limitedStg code="soap" xtkschema="thr:limitedStg"/></urn:domDoc></urn:Ingest>
</soapenv:Body></soapenv:Envelope>')});
like($ingest, qr{<pstrSUuids xsi:type="xsd:string">[0-9a-f-]{36}</pstrSUuids>},
	'a SOAP session survives the restart');

$node->stop;
done_testing();
