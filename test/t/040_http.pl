
# Copyright (c) campaign contributors
#
# 040_http.pl — the HTTP endpoint (SPEC §11) over real HTTP and HTTPS:
# libmicrohttpd in the extension's own background workers.
#
# Two nodes: "local" (campaign preloaded, campaign.http_port set, 2 HTTP
# workers on 127.0.0.1, max body 64 kB, timeout 3 s) and "cloud".
#
#   workers:  2 "campaign http worker" backends; the GUCs' defaults;
#   SOAP:     Logon (Campaign's and the SDK's forms, SoapAction header and
#             ?soapAction=), Ingest without and with _key, IngestExt,
#             Subscribe, Unsubscribe, Logoff; the session token as first
#             parameter, __sessiontoken cookie, X-Session-Token header and
#             SOAP header entries, with X-Security-Token; Faults with HTTP
#             200 (bad password, unknown method, malformed XML, invalid
#             UTF-8, expired session with XSV-350008); rights of the token's
#             role (no campaign_ingest: 42501 Fault, nothing staged); rate
#             limits as 429 with Retry-After; failed Logons throttled;
#   REST:     POST/GET .../xdmIngestion/{mapping}/ingest: 401 without or with
#             bad credentials (WWW-Authenticate), 403 without
#             campaign_sql_function, Bearer and Basic; POST Failed (not
#             published, not stopped), Success, In Progress; GET Success
#             with numRecords, In Progress (the batch waits for a lock on the
#             cloud table), and the Failed and Aborted
#             bodies (rows set in ingestion_requests: how the worker gets
#             there is 020_ingestion_requests.pl's subject), requestId as
#             query, JSON body or the documented {"requestId"="N"}; 400
#             without it, 404 for an unknown one; requested_by is the role;
#   bad HTTP: unknown path 404, wrong method 405 with Allow, a malformed
#             header 400, HTTP/9.9 505, a garbled request line closed, a
#             declared body over http_max_body 413 before
#             it is sent, a chunked one 413 at its end, one of more than
#             twice the limit cut off, the limit
#             changed by a reload; a slow client cut off after the timeout
#             while others are served; keep-alive (two requests on one
#             connection);
#   restart:  both workers terminated (SIGTERM) come back and serve; a
#             worker killed with SIGKILL (crash, restart of all backends):
#             served again, sessions kept;
#   HTTPS:    the same SOAP and REST calls over TLS with a self-signed
#             certificate made by openssl here; plain HTTP on that port
#             gets no answer.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use FindBin;
use lib "$FindBin::Bin/../lib";
use CampaignNodes;
use PostgreSQL::Test::Utils;
use Test::More;
use HTTP::Tiny;
use IO::Socket::INET;
use JSON::PP;
use MIME::Base64;
use Time::HiRes qw(time usleep);

my $port = PostgreSQL::Test::Cluster::get_free_port();
my $cloud = start_cloud();
my $local = start_local(qq{
campaign.naptime = '200ms'
campaign.http_port = $port
campaign.http_listen_addresses = '127.0.0.1'
campaign.http_max_body = '64kB'
campaign.http_timeout = '3s'
restart_after_crash = on
});

sub lq { return $local->safe_psql('postgres', $_[0]); }

my $base = "http://127.0.0.1:$port";
my $http = HTTP::Tiny->new(keep_alive => 1, timeout => 30);

# ---------------------------------------------------------------- helpers

# POST a SOAP envelope; returns the HTTP::Tiny response.
sub soap
{
	my ($envelope, %headers) = @_;
	my $url = "$base/nl/jsp/soaprouter.jsp";
	$url .= '?soapAction=' . delete $headers{query} if exists $headers{query};
	return $http->request('POST', $url,
		{ headers => { 'Content-Type' => 'text/xml; charset=utf-8', %headers }, content => $envelope });
}

# An envelope calling $urn#$method with the session token as first parameter.
sub envelope
{
	my ($urn, $method, $token, $params, $header) = @_;
	$header //= '';
	return qq{<?xml version="1.0" encoding="UTF-8"?>
<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:urn="$urn">
<soapenv:Header>$header</soapenv:Header>
<soapenv:Body><urn:$method><urn:sessiontoken>$token</urn:sessiontoken>$params</urn:$method></soapenv:Body>
</soapenv:Envelope>};
}

sub logon_envelope
{
	my ($login, $password) = @_;
	return envelope('urn:xtk:session', 'Logon', '',
		"<urn:strLogin>$login</urn:strLogin><urn:strPassword>$password</urn:strPassword><urn:elemParameters/>");
}

sub element_text
{
	my ($xml, $name) = @_;
	return $xml =~ m{<$name\b[^>]*>([^<]*)</$name>} ? $1 : undef;
}

# Logon over HTTP: (session token, security token).
sub logon
{
	my ($login, $password) = @_;
	my $r = soap(logon_envelope($login, $password), SoapAction => 'xtk:session#Logon');
	return (element_text($r->{content}, 'pstrSessionToken'),
		element_text($r->{content}, 'pstrSecurityToken'));
}

sub ingest_params
{
	return "<urn:domDoc>$_[0]</urn:domDoc>";
}

sub staged
{
	return lq("SELECT count(*) FROM dem.sampletablestg WHERE id LIKE '$_[0]'");
}

# A REST call; $auth is "Bearer <token>", "Basic <login>:<password>" or undef.
sub rest
{
	my ($method, $mapping, $auth, %opt) = @_;
	my %headers;
	if (defined $auth && $auth =~ /^Basic (.*)$/)
	{
		$headers{Authorization} = 'Basic ' . encode_base64($1, '');
	}
	elsif (defined $auth)
	{
		$headers{Authorization} = $auth;
	}
	my $url = "$base/ACME/campaign/dataIngestion/xdmIngestion/$mapping/ingest";
	$url .= "?$opt{query}" if $opt{query};
	return $http->request($method, $url,
		{ headers => \%headers, (defined $opt{body} ? (content => $opt{body}) : ()) });
}

sub json { return decode_json($_[0]->{content}); }

# A raw request on a new socket; returns what the server sent before closing
# (or until $wait seconds passed).
sub raw
{
	my ($bytes, $wait) = @_;
	my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port, Timeout => 10)
	  or die "connect: $!";
	print $s $bytes;
	my $out = '';
	my $deadline = time() + ($wait // 10);
	$s->blocking(0);
	while (time() < $deadline)
	{
		my $n = sysread($s, my $buf, 65536);
		if (defined $n && $n == 0) { last; }
		$out .= $buf if defined $n;
		usleep(20_000);
	}
	close $s;
	return $out;
}

sub http_workers
{
	return lq("SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'campaign http worker'");
}

# ---------------------------------------------------------------- setup

is(lq(q{SELECT string_agg(concat_ws(' ', name, boot_val, unit, context), ', ' ORDER BY name) FROM pg_settings WHERE name LIKE 'campaign.http%'}),
	'campaign.http_listen_addresses localhost postmaster, campaign.http_max_body 65536 kB sighup, campaign.http_port 0 postmaster, campaign.http_ssl_cert_file  postmaster, campaign.http_ssl_key_file  postmaster, campaign.http_timeout 60 s postmaster, campaign.http_workers 2 postmaster',
	'the GUCs and their defaults (port 0: off)');
ok(wait_for($local, "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'campaign http worker'", '2'),
	'two HTTP workers run');

lq('CREATE EXTENSION campaign CASCADE');
my $cloud_host = $cloud->host;
my $cloud_port = $cloud->port;
lq(qq{CREATE SERVER ffda FOREIGN DATA WRAPPER postgres_fdw
        OPTIONS (host '$cloud_host', port '$cloud_port', dbname 'postgres')});
lq('CREATE USER MAPPING FOR PUBLIC SERVER ffda');
lq(q{CREATE ROLE api LOGIN PASSWORD 'api secret' IN ROLE campaign_ingest, campaign_sql_function;
     CREATE ROLE reader LOGIN PASSWORD 'reader secret';
     CREATE ROLE ingester LOGIN PASSWORD 'ingester secret' IN ROLE campaign_ingest;});
lq('SELECT campaign.register_schema($x$' . sample_table_schema() . '$x$)');
# The roles feed what they ingest (issue 17: rights per staged schema).
lq(q{GRANT INSERT, UPDATE, DELETE ON dem.sampletablestg, nms.recipientstg, nms.subscriptionrcpstg TO api});
for my $s ('dem:sampleTable', 'nms:recipient', 'nms:service', 'nms:subscriptionRcp')
{
	lq("SELECT campaign.deploy('$s')");
}
lq(q{SELECT campaign.xtk_ingest('<serviceStg name="news" label="News" xtkschema="nms:serviceStg"/>')});
ok(wait_for($cloud, "SELECT count(*) FROM nms.service WHERE name = 'news'", '1'), 'service news in the cloud');

# ---------------------------------------------------------------- SOAP

# The SOAP scenario, over HTTP and then HTTPS; $tag keeps the ids apart.
sub soap_scenario
{
	my ($tag) = @_;

	my $r = soap(logon_envelope('api', 'api secret'), SoapAction => 'xtk:session#Logon');
	is($r->{status}, 200, "$tag: Logon answers 200");
	like($r->{headers}{'content-type'}, qr{^text/xml; charset=utf-8}, "$tag: as text/xml in UTF-8");
	my $token = element_text($r->{content}, 'pstrSessionToken');
	my $security = element_text($r->{content}, 'pstrSecurityToken');
	like($token, qr/^___[0-9a-f-]{36}$/, "$tag: a session token");
	like($r->{content}, qr/<serverInfo [^>]*buildNumber="\d+"/, "$tag: session info with the build");

	# The SDK's form: ?soapAction=, SOAP header entries.
	$r = soap(envelope('urn:xtk:session', 'Logon', '',
			'<login>api</login><password>api secret</password><parameters/>',
			'<X-Security-Token/>'), query => 'xtk%3Asession%23Logon');
	like(element_text($r->{content}, 'pstrSessionToken'), qr/^___/, "$tag: Logon with ?soapAction=");

	# Ingest without _key: a UUID per record.
	$r = soap(envelope('urn:xtk:session', 'Ingest', $token,
			ingest_params(qq{<sampleTableStg id="${tag}1" testcol1="v" xtkschema="dem:sampleTableStg"/>})),
		SoapAction => 'xtk:session#Ingest');
	is($r->{status}, 200, "$tag: Ingest answers 200");
	like(element_text($r->{content}, 'pstrSUuids'), qr/^[0-9a-f]{8}-[0-9a-f-]{27}$/, "$tag: Ingest returns the UUID");
	# With _key: an empty pstrSUuids, in the SDK's namespace form.
	$r = soap(envelope('urn:xtk:persist|xtk:session', 'Ingest', $token,
			ingest_params(qq{<sampleTableStg _key="\@id" id="${tag}2" testcol1="k" xtkschema="dem:sampleTableStg"/>})));
	like($r->{content}, qr{<pstrSUuids xsi:type="xsd:string"/>}, "$tag: Ingest with _key returns no UUID");
	# IngestExt, the token as cookie with the security token header.
	$r = soap(envelope('urn:xtk:session', 'IngestExt', '',
			ingest_params(qq{<sampleTableStg _key="\@id" _operation="update" id="${tag}2" testcol1="ext" xtkschema="dem:sampleTableStg"/>})),
		Cookie => "lang=fr; __sessiontoken=$token", 'X-Security-Token' => $security);
	like($r->{content}, qr{<IngestExtResponse[^>]*/>}, "$tag: IngestExt with the cookie and X-Security-Token");
	# X-Session-Token header.
	$r = soap(envelope('urn:xtk:session', 'Ingest', '',
			ingest_params(qq{<sampleTableStg id="${tag}3" xtkschema="dem:sampleTableStg"/>})),
		'X-Session-Token' => $token, 'X-Security-Token' => $security);
	like($r->{content}, qr{<pstrSUuids xsi:type="xsd:string">[0-9a-f-]{36}<}, "$tag: Ingest with X-Session-Token");
	# The cookie without its security token is refused.
	$r = soap(envelope('urn:xtk:session', 'Ingest', '',
			ingest_params(qq{<sampleTableStg id="${tag}4" xtkschema="dem:sampleTableStg"/>})),
		Cookie => "__sessiontoken=$token");
	like($r->{content}, qr/needs its security token.*XSV-350008/s, "$tag: a cookie alone is refused");
	# SOAP header entries, as the SDK writes them.
	$r = soap(envelope('urn:xtk:session', 'Ingest', '',
			ingest_params(qq{<sampleTableStg id="${tag}5" xtkschema="dem:sampleTableStg"/>}),
			"<Cookie>__sessiontoken=$token</Cookie><X-Security-Token>$security</X-Security-Token>"));
	like($r->{content}, qr{<pstrSUuids xsi:type="xsd:string">[0-9a-f-]{36}<}, "$tag: Ingest with the SOAP header's tokens");
	is(staged("${tag}%"), '5', "$tag: five changes staged (1, 2 and its update, 3, 5; 4 refused)");
	is(lq("SELECT testcol1 FROM dem.sampletablestg WHERE id = '${tag}2' ORDER BY _stg_seq DESC LIMIT 1"), 'ext',
		"$tag: the IngestExt update is staged");

	# Subscribe and Unsubscribe.
	$r = soap(envelope('urn:nms:subscription', 'Subscribe', $token,
			"<urn:serviceName>news</urn:serviceName><urn:recipient><recipient email=\"$tag\@example.com\"/></urn:recipient><urn:create>true</urn:create>"));
	like($r->{content}, qr{<SubscribeResponse[^>]*/>}, "$tag: Subscribe");
	$r = soap(envelope('urn:nms:subscription', 'Unsubscribe', $token,
			"<urn:serviceName>news</urn:serviceName><urn:recipient><recipient email=\"$tag\@example.com\"/></urn:recipient>"));
	like($r->{content}, qr{<UnsubscribeResponse[^>]*/>}, "$tag: Unsubscribe");
	is(lq("SELECT count(*) FROM nms.subscriptionrcpstg WHERE email = '$tag\@example.com'"), '2',
		"$tag: both staged");

	# Faults come with HTTP 200, which the SDK parses.
	$r = soap(logon_envelope('api', 'wrong'));
	is($r->{status}, 200, "$tag: a failed Logon is a Fault with 200");
	like($r->{content}, qr{<faultcode>SOAP-ENV:Client</faultcode>.*28P01: password authentication failed}s,
		"$tag: the Fault says why");
	$r = soap(envelope('urn:xtk:session', 'Write', $token, ''));
	like($r->{content}, qr/42883: unknown method "Write"/, "$tag: unknown method Fault");
	$r = soap('<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body>');
	like($r->{content}, qr/2200M: SOAP envelope is not well-formed XML/, "$tag: malformed XML Fault");
	$r = soap("<a>\xff\xfe</a>");
	is($r->{status}, 400, "$tag: a body that is not UTF-8 is 400");

	# Rights of the token's role: reader has no campaign_ingest.
	my ($rtoken) = logon('reader', 'reader secret');
	$r = soap(envelope('urn:xtk:session', 'Ingest', $rtoken,
			ingest_params(qq{<sampleTableStg id="${tag}R" xtkschema="dem:sampleTableStg"/>})));
	like($r->{content}, qr/42501: permission denied/, "$tag: a role without campaign_ingest is refused");
	is(staged("${tag}R"), '0', "$tag: nothing staged for it");

	# Logoff ends the session.
	$r = soap(envelope('urn:xtk:session', 'Logoff', $token, ''));
	like($r->{content}, qr{<LogoffResponse[^>]*/>}, "$tag: Logoff");
	$r = soap(envelope('urn:xtk:session', 'Ingest', $token,
			ingest_params(qq{<sampleTableStg id="${tag}6" xtkschema="dem:sampleTableStg"/>})));
	like($r->{content}, qr/XSV-350008/, "$tag: the token is dead after Logoff");

	# The workers cache the sessions they have checked: a session the
	# administrator deletes or expires (from another backend) ends at once,
	# on the connection (so the worker) that used it just before.
	my ($killed) = logon('api', 'api secret');
	my ($stale) = logon('api', 'api secret');
	for my $t ($killed, $stale)
	{
		$r = soap(envelope('urn:xtk:session', 'Ingest', $t,
				ingest_params(qq{<sampleTableStg id="K${tag}1" xtkschema="dem:sampleTableStg"/>})));
		like($r->{content}, qr{<pstrSUuids xsi:type="xsd:string">[0-9a-f-]{36}<}, "$tag: a second session ingests");
	}
	lq("DELETE FROM campaign.soap_sessions WHERE token_hash = sha256(convert_to('$killed', 'UTF8'))");
	lq("UPDATE campaign.soap_sessions SET expires_at = clock_timestamp() WHERE token_hash = sha256(convert_to('$stale', 'UTF8'))");
	$r = soap(envelope('urn:xtk:session', 'Ingest', $killed,
			ingest_params(qq{<sampleTableStg id="K${tag}2" xtkschema="dem:sampleTableStg"/>})));
	like($r->{content}, qr/unknown session token.*XSV-350008/s, "$tag: a session deleted by SQL is dead at once");
	$r = soap(envelope('urn:xtk:session', 'Ingest', $stale,
			ingest_params(qq{<sampleTableStg id="K${tag}2" xtkschema="dem:sampleTableStg"/>})));
	like($r->{content}, qr/session token has expired.*XSV-350008/s, "$tag: a session expired by SQL is dead at once");
	is(staged("K${tag}%"), '2', "$tag: nothing staged for the dead sessions");
	return;
}

soap_scenario('h');

# Rate limits: 429 with Retry-After, the Fault as body.
my ($token, $security) = logon('api', 'api secret');
lq("SELECT campaign.set_rate_limit('xtk_ingest', 0.01, 1)");
my $r = soap(envelope('urn:xtk:session', 'Ingest', $token,
		ingest_params('<sampleTableStg id="L1" xtkschema="dem:sampleTableStg"/>')));
is($r->{status}, 200, 'within the limit: 200');
$r = soap(envelope('urn:xtk:session', 'Ingest', $token,
		ingest_params('<sampleTableStg id="L2" xtkschema="dem:sampleTableStg"/>')));
is($r->{status}, 429, 'over the limit: 429');
like($r->{headers}{'retry-after'}, qr/^\d+$/, 'with Retry-After in seconds');
cmp_ok($r->{headers}{'retry-after'}, '>=', 90, 'Retry-After is the time to the next token (100 s)');
like($r->{content}, qr{<faultcode>SOAP-ENV:Client.TooManyRequests</faultcode>}, 'and the Fault');
lq("SELECT campaign.set_rate_limit('xtk_ingest', NULL)");

# Failed Logons are throttled: with 2 allowed, the third Logon is 429 even
# with the right password.
lq("SELECT campaign.set_rate_limit('logon_failure', 0.001, 2)");
is(soap(logon_envelope('api', 'bad1'))->{status}, 200, 'failed logon 1: a Fault');
is(soap(logon_envelope('api', 'bad2'))->{status}, 200, 'failed logon 2: a Fault');
$r = soap(logon_envelope('api', 'api secret'));
is($r->{status}, 429, 'then every Logon is throttled: 429');
like($r->{content}, qr/logon_failure/, 'naming logon_failure');
$r = rest('POST', 'dem:sampleTable', 'Basic api:api secret');
is($r->{status}, 429, 'Basic authentication is throttled too');
lq("SELECT campaign.set_rate_limit('logon_failure', 1, 10)");

# ---------------------------------------------------------------- REST

sub rest_scenario
{
	my ($tag) = @_;
	my ($tok) = logon('api', 'api secret');
	my ($itok) = logon('ingester', 'ingester secret');

	my $r = rest('POST', 'dem:sampleTable', undef);
	is($r->{status}, 401, "$tag: no Authorization: 401");
	like($r->{headers}{'www-authenticate'}, qr/Basic realm="campaign"/, "$tag: with WWW-Authenticate");
	is(rest('POST', 'dem:sampleTable', 'Bearer ___nope')->{status}, 401, "$tag: unknown token: 401");
	is(rest('POST', 'dem:sampleTable', 'Basic api:wrong')->{status}, 401, "$tag: wrong password: 401");
	$r = rest('POST', 'dem:sampleTable', "Bearer $itok");
	is($r->{status}, 403, "$tag: a role without campaign_sql_function: 403");
	is(json($r)->{sqlstate}, '42501', "$tag: permission denied");

	lq("SELECT campaign.start_replication('dem:sampleTable')");
	$r = rest('POST', 'dem:sampleTable', "Bearer $tok");
	is($r->{status}, 200, "$tag: POST on a running mapping: 200");
	is_deeply(json($r), { info => 'Unable to submit data ingestion request, XDM Mapping ID: dem:sampleTable is not stopped', status => 'Failed' },
		"$tag: Failed, not stopped");
	is_deeply(json(rest('POST', 'dem:noSuch', 'Basic api:api secret')),
		{ info => 'Unable to submit data ingestion request, XDM Mapping ID: dem:noSuch is not published', status => 'Failed' },
		"$tag: Failed, not published (Basic)");

	lq("SELECT campaign.stop_replication('dem:sampleTable')");
	lq(qq{SELECT campaign.xtk_ingest('<sampleTableStg id="${tag}Q1" xtkschema="dem:sampleTableStg"/>')});
	lq(qq{SELECT campaign.xtk_ingest('<sampleTableStg id="${tag}Q2" xtkschema="dem:sampleTableStg"/>')});
	$r = rest('POST', 'dem%3AsampleTable', "Bearer $tok");
	my $post = json($r);
	is($post->{status}, 'Success', "$tag: POST Success (the mapping percent-encoded)");
	is($post->{info}, 'Ingestion request submitted successfully for the Mapping ID: dem:sampleTable', "$tag: its info");
	my $id = $post->{requestId};
	like($id, qr/^\d+$/, "$tag: a requestId");
	is(lq("SELECT requested_by FROM campaign.ingestion_requests WHERE id = $id"), 'api',
		"$tag: requested by the token's role");
	ok($local->poll_query_until('postgres',
			"SELECT status <> 'In Progress' FROM campaign.ingestion_requests WHERE id = $id"), "$tag: the request is served");
	$r = rest('GET', 'dem:sampleTable', "Bearer $tok", body => qq{{"requestId": $id}});
	is($r->{status}, 200, "$tag: GET 200");
	my $got = json($r);
	is($got->{status}, 'Success', "$tag: GET Success");
	cmp_ok($got->{numRecords}, '>=', 2, "$tag: numRecords counts the staged records");
	is($got->{requestId}, $id, "$tag: requestId");
	is($got->{batchId}, '', "$tag: empty batchId");
	is($got->{info}, 'Mapping Id: dem:sampleTable. ', "$tag: info");
	is(json(rest('GET', 'dem:sampleTable', "Bearer $tok", body => qq{{"requestId"="$id"}}))->{status},
		'Success', "$tag: the documented body {\"requestId\"=\"N\"}");
	is(json(rest('GET', 'dem:sampleTable', 'Basic api:api secret', query => "requestId=$id"))->{status},
		'Success', "$tag: ?requestId=");
	$r = rest('GET', 'dem:sampleTable', "Bearer $tok");
	is($r->{status}, 400, "$tag: GET without requestId: 400");
	is(rest('GET', 'dem:sampleTable', "Bearer $tok", query => "requestId=${id}abc")->{status}, 400,
		"$tag: a requestId that is not a number: 400");
	$r = rest('GET', 'dem:sampleTable', "Bearer $tok", query => 'requestId=999999');
	is($r->{status}, 404, "$tag: an unknown request: 404");
	is(rest('GET', 'dem:other', "Bearer $tok", query => "requestId=$id")->{status}, 404,
		"$tag: a request of another mapping: 404");

	# In Progress: POST while a request of the mapping is in progress (its
	# batch waits for a lock held on the cloud table).
	lq(qq{SELECT campaign.xtk_ingest('<sampleTableStg id="${tag}H" xtkschema="dem:sampleTableStg"/>')});
	my $s = $cloud->background_psql('postgres', on_error_stop => 0);
	$s->query_safe('BEGIN; LOCK TABLE dem.sampletable IN SHARE MODE');
	$r = rest('POST', 'dem:sampleTable', "Bearer $tok");
	my $id2 = json($r)->{requestId};
	is(json($r)->{status}, 'Success', "$tag: a second request submitted");
	$r = rest('POST', 'dem:sampleTable', "Bearer $tok");
	is_deeply(json($r), { requestId => $id2, info => 'Ingestion request already in progress for the Mapping ID: dem:sampleTable', status => 'In Progress' },
		"$tag: POST In Progress, same requestId");
	is_deeply(json(rest('GET', 'dem:sampleTable', "Bearer $tok", query => "requestId=$id2")),
		{ batchId => '', info => 'Mapping Id: dem:sampleTable.', numRecords => 0, requestId => $id2, status => 'In Progress' },
		"$tag: GET In Progress");
	$s->query_safe('COMMIT');
	$s->quit;
	ok($local->poll_query_until('postgres',
			"SELECT status <> 'In Progress' FROM campaign.ingestion_requests WHERE id = $id2"), "$tag: second request served");

	# The Failed and Aborted bodies as GET returns them.
	lq(qq{UPDATE campaign.ingestion_requests SET status = 'Failed', batch_id = '17', num_records = 0,
	        info = 'ACP-880096 Sync Job failed to upload. Please check the error in the Platform UI.' WHERE id = $id2});
	is_deeply(json(rest('GET', 'dem:sampleTable', "Bearer $tok", query => "requestId=$id2")),
		{ batchId => '17', info => 'Mapping Id: dem:sampleTable. ACP-880096 Sync Job failed to upload. Please check the error in the Platform UI.', numRecords => 0, requestId => $id2, status => 'Failed' },
		"$tag: GET Failed with batchId");
	lq(qq{UPDATE campaign.ingestion_requests SET status = 'Aborted', batch_id = '',
	        info = 'Ingestion request aborted due to some issue with data ingestion service. Please submit a new request' WHERE id = $id2});
	is(json(rest('GET', 'dem:sampleTable', "Bearer $tok", query => "requestId=$id2"))->{status}, 'Aborted',
		"$tag: GET Aborted");
	return;
}

rest_scenario('h');

# ---------------------------------------------------------------- bad HTTP

$r = $http->request('GET', "$base/nope");
is($r->{status}, 404, 'unknown path: 404');
$r = $http->request('GET', "$base/nl/jsp/soaprouter.jsp");
is($r->{status}, 405, 'GET on the SOAP router: 405');
is($r->{headers}{allow}, 'POST', 'with Allow: POST');
$r = $http->request('DELETE', "$base/ACME/campaign/dataIngestion/xdmIngestion/dem:sampleTable/ingest");
is($r->{status}, 405, 'DELETE on the ingestion API: 405');
is($r->{headers}{allow}, 'GET, POST', 'with Allow: GET, POST');
is($http->request('POST', "$base/ACME/campaign/dataIngestion/xdmIngestion/dem:sampleTable/ingest/more")->{status},
	404, 'a longer path: 404');

like(raw("GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n", 5), qr{^HTTP/1\.1 400}, 'a malformed header line: 400');
like(raw("GET /nope HTTP/9.9\r\nHost: x\r\n\r\n", 5), qr{^HTTP/1\.1 505}, 'an unknown HTTP version: 505');
is(raw("GARBAGE\r\n\r\n", 5), '', 'a garbled request line: the connection is closed');
like(raw("POST /nl/jsp/soaprouter.jsp HTTP/1.1\r\nHost: x\r\nContent-Length: 70000\r\n\r\n", 5),
	qr{^HTTP/1\.1 413}, 'a declared body over http_max_body: 413 before it is sent');
my $chunk = ('x' x 16000);
my $chunked = "POST /nl/jsp/soaprouter.jsp HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
  . join('', map { sprintf("%x\r\n%s\r\n", length $chunk, $chunk) } 1 .. 5) . "0\r\n\r\n";
like(raw($chunked, 5), qr{^HTTP/1\.1 413}, 'a chunked body over http_max_body: 413');
my $huge = "POST /nl/jsp/soaprouter.jsp HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
  . join('', map { sprintf("%x\r\n%s\r\n", length $chunk, $chunk) } 1 .. 10);
unlike(raw($huge, 5), qr{^HTTP/1\.1 200}, 'a chunked body over twice the limit is cut off');
$r = soap(logon_envelope('api', 'api secret') . (' ' x 60000));
is($r->{status}, 200, 'a body under the limit is served');

# The limit follows a reload.
lq("ALTER SYSTEM SET campaign.http_max_body = '16kB'; SELECT pg_reload_conf()");
ok( wait_for(
		$local, 'SELECT 1',
		'1'),
	'reloaded');
my $deadline = time() + 30;
my $status;
do { usleep(100_000); $status = soap(logon_envelope('api', 'api secret') . (' ' x 30000))->{status}; }
  while ($status != 413 && time() < $deadline);
is($status, 413, 'after a reload to 16kB, a 30 kB body is 413');
lq("ALTER SYSTEM RESET campaign.http_max_body; SELECT pg_reload_conf()");

# A slow client is cut off after campaign.http_timeout; others are served
# meanwhile.
my $slow = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port) or die "connect: $!";
print $slow "POST /nl/jsp/soaprouter.jsp HTTP/1.1\r\nHost: x\r\n";
my $t0 = time();
is(soap(logon_envelope('api', 'api secret'))->{status}, 200, 'another client is served while a slow one hangs');
$slow->blocking(1);
my $n = sysread($slow, my $buf, 100);
my $waited = time() - $t0;
ok(defined $n && $n == 0 || !defined $n, 'the slow client is disconnected');
cmp_ok($waited, '>=', 2, "after the timeout (${\ sprintf('%.1f', $waited)} s)");
cmp_ok($waited, '<', 30, 'not much later');

# Keep-alive: two requests on one connection.
my $body = logon_envelope('api', 'api secret');
my $req = "POST /nl/jsp/soaprouter.jsp HTTP/1.1\r\nHost: x\r\nContent-Type: text/xml\r\nContent-Length: " . length($body) . "\r\n\r\n$body";
my $ka = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port) or die "connect: $!";
my $answers = 0;
for (1 .. 2)
{
	print $ka $req;
	my $resp = '';
	while ($resp !~ /\r\n\r\n/ || length($resp) < index($resp, "\r\n\r\n") + 4 + (($resp =~ /Content-Length: (\d+)/i)[0] // 0))
	{
		my $got = sysread($ka, my $b, 65536);
		last unless $got;
		$resp .= $b;
	}
	$answers++ if $resp =~ m{^HTTP/1\.1 200} && $resp =~ /pstrSessionToken/;
}
close $ka;
is($answers, 2, 'keep-alive: two requests answered on one connection');

is(http_workers(), '2', 'both workers still up after the bad requests');

# ---------------------------------------------------------------- restart

my $old = lq("SELECT string_agg(pid::text, ',') FROM pg_stat_activity WHERE backend_type = 'campaign http worker'");
lq("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE backend_type = 'campaign http worker'");
ok( wait_for(
		$local,
		"SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'campaign http worker' AND pid <> ALL ('{$old}'::int[])",
		'2'),
	'terminated HTTP workers are restarted');
($token, $security) = logon('api', 'api secret');
like($token, qr/^___/, 'and serve again');

my $victim = lq("SELECT pid FROM pg_stat_activity WHERE backend_type = 'campaign http worker' LIMIT 1");
kill 'KILL', $victim;
ok( wait_for(
		$local,
		"SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'campaign http worker' AND pid <> $victim",
		'2'),
	'after a worker is killed with SIGKILL, the server restarts and so do the workers');
$deadline = time() + 60;
do { usleep(200_000); $r = soap(envelope('urn:xtk:session', 'Ingest', $token,
			ingest_params('<sampleTableStg id="K1" xtkschema="dem:sampleTableStg"/>'))); }
  while ($r->{status} != 200 && time() < $deadline);
like($r->{content}, qr/pstrSUuids/, 'served again, the session kept');

# ---------------------------------------------------------------- HTTPS

my $dir = PostgreSQL::Test::Utils::tempdir();
system_or_bail('openssl', 'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1',
	'-subj', '/CN=localhost', '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost',
	'-keyout', "$dir/key.pem", '-out', "$dir/cert.pem");
$local->append_conf('postgresql.conf', qq{
campaign.http_ssl_cert_file = '$dir/cert.pem'
campaign.http_ssl_key_file = '$dir/key.pem'
});
$local->restart;
ok(wait_for($local, "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'campaign http worker'", '2'),
	'HTTPS workers run');
$base = "https://127.0.0.1:$port";
$http = HTTP::Tiny->new(keep_alive => 1, timeout => 30, verify_SSL => 1,
	SSL_options => { SSL_ca_file => "$dir/cert.pem" });
$deadline = time() + 30;
do { usleep(200_000); $r = soap(logon_envelope('api', 'api secret')); }
  while ($r->{status} != 200 && time() < $deadline);
is($r->{status}, 200, 'HTTPS: Logon, the certificate verified')
  or diag("$r->{status} $r->{content}");
soap_scenario('s');
rest_scenario('s');
unlike(raw("POST /nl/jsp/soaprouter.jsp HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", 4),
	qr{^HTTP/1\.1 200}, 'plain HTTP on the HTTPS port is not served');

$local->stop;
$cloud->stop;
done_testing();
