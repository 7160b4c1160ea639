
# Copyright (c) campaign contributors
#
# 041_sdk.pl — Adobe's official JavaScript SDK (npm @adobe/acc-js-sdk),
# unmodified, against the HTTP endpoint (SPEC §11): test/sdk/sdk_client.js
# logs on with a login and password, calls client.NLWS.xtkSession.ingest
# (without and with _key) and ingestExt, client.NLWS.nmsSubscription
# subscribe and unsubscribe, reads the message of a Fault, and logs off.
# What the SDK reports is checked, and what reached the staging tables.
#
# The SDK is installed from the npm registry (pinned version) into
# ~/.cache/campaign-acc-js-sdk-<version> once, and reused by later runs.
# Without node, npm or the registry the test fails: it does not skip.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use FindBin;
use lib "$FindBin::Bin/../lib";
use CampaignNodes;
use PostgreSQL::Test::Utils;
use Test::More;
use File::Path qw(make_path remove_tree);

my $sdk_version = '1.2.0';

# ---------------------------------------------------------------- the SDK

my $cache_root = (defined $ENV{HOME} && -w $ENV{HOME}) ? "$ENV{HOME}/.cache" : PostgreSQL::Test::Utils::tempdir();
my $cache = "$cache_root/campaign-acc-js-sdk-$sdk_version";
my $module = "$cache/node_modules/\@adobe/acc-js-sdk";
unless (-f "$module/package.json")
{
	my $tmp = "$cache.tmp.$$";
	make_path($tmp);
	my ($stdout, $stderr);
	my $ok = IPC::Run::run([ 'npm', 'install', '--no-audit', '--no-fund', '--prefix', $tmp,
			"\@adobe/acc-js-sdk\@$sdk_version" ], '>', \$stdout, '2>', \$stderr);
	if (!$ok)
	{
		remove_tree($tmp);
		BAIL_OUT("npm install \@adobe/acc-js-sdk\@$sdk_version failed (is npm installed and the registry reachable?): $stderr");
	}
	# Another run may have made it meanwhile: keep the first.
	rename($tmp, $cache) or remove_tree($tmp);
}
ok(-f "$module/package.json", "\@adobe/acc-js-sdk $sdk_version installed from npm");

# ---------------------------------------------------------------- nodes

my $port = PostgreSQL::Test::Cluster::get_free_port();
my $cloud = start_cloud();
my $local = start_local(qq{
campaign.naptime = '200ms'
campaign.http_port = $port
campaign.http_listen_addresses = '127.0.0.1'
});

sub lq { return $local->safe_psql('postgres', $_[0]); }

lq('CREATE EXTENSION campaign CASCADE');
my $cloud_host = $cloud->host;
my $cloud_port = $cloud->port;
lq(qq{CREATE SERVER ffda FOREIGN DATA WRAPPER postgres_fdw
        OPTIONS (host '$cloud_host', port '$cloud_port', dbname 'postgres')});
lq('CREATE USER MAPPING FOR PUBLIC SERVER ffda');
lq(q{CREATE ROLE sdk LOGIN PASSWORD 'sdk secret' IN ROLE campaign_ingest});
lq('SELECT campaign.register_schema($x$' . sample_table_schema() . '$x$)');
lq(q{GRANT INSERT, UPDATE, DELETE ON dem.sampletablestg, nms.recipientstg, nms.subscriptionrcpstg TO sdk});
lq("SELECT campaign.deploy('$_')") for ('nms:recipient', 'nms:service', 'nms:subscriptionRcp');
lq(q{SELECT campaign.xtk_ingest('<serviceStg name="news" label="News" xtkschema="nms:serviceStg"/>')});
ok(wait_for($cloud, "SELECT count(*) FROM nms.service WHERE name = 'news'", '1'), 'service news in the cloud');
ok(wait_for($local, "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'campaign http worker'", '2'),
	'the HTTP workers run');

# ---------------------------------------------------------------- the client

my ($stdout, $stderr);
IPC::Run::run([ 'node', "$FindBin::Bin/../sdk/sdk_client.js", $module, "http://127.0.0.1:$port",
		'sdk', 'sdk secret', 'js' ], '>', \$stdout, '2>', \$stderr, IPC::Run::timeout(120))
  or diag("node: $stderr");
my %got = map { /^(\w+): (.*)$/ ? ($1 => $2) : () } split /\n/, $stdout;
note($stdout);

is($got{logon}, 'logged', 'client.logon() with login and password');
like($got{server}, qr/^postgres 1\.1\.0 build \d+ operator sdk$/,
	'the SDK read the server and operator from the session info');
like($got{ingest}, qr/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/,
	'client.NLWS.xtkSession.ingest returns the UUID');
is($got{ingest_key}, '', 'ingest with _key returns no UUID');
is($got{ingestExt}, 'null', 'client.NLWS.xtkSession.ingestExt');
is($got{subscribe}, 'null', 'client.NLWS.nmsSubscription.subscribe');
is($got{unsubscribe}, 'null', 'client.NLWS.nmsSubscription.unsubscribe');
like($got{fault}, qr/^ERROR .*\| Error while executing the method 'Ingest' of service 'xtk:session'\. \| 42703: attribute "nosuch" is not defined in schema "dem:sampleTableStg"/,
	"the SDK reads the Fault's message and detail");
is($got{logoff}, 'logged off', 'client.logoff()');

is(lq(q{SELECT string_agg(concat_ws('/', id, testcol1, _operation, _uuid IS NOT NULL), ', ' ORDER BY _stg_seq) FROM dem.sampletablestg}),
	'js1/from the SDK/insert/t, js2/keyed/insert/t, js2/updated/update/t',
	'what the SDK sent is staged; the Fault staged nothing');
is(lq(q{SELECT string_agg(_operation || ' ' || email || ' ' || service, ', ' ORDER BY _stg_seq) FROM nms.subscriptionrcpstg}),
	'insertOrUpdate js@example.com news, delete js@example.com news',
	'the subscription and unsubscription are staged');
is(lq(q{SELECT count(*) FROM campaign.soap_sessions}), '0', 'the session ended with the logoff');

$local->stop;
$cloud->stop;
done_testing();
