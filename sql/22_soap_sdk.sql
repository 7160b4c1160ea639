--
-- 22_soap_sdk: what Adobe's JavaScript SDK (npm @adobe/acc-js-sdk) sends
-- and reads, from SQL (SPEC §11; the SDK itself runs in test/t/041_sdk.pl):
--   - the schema look-up it makes before a method call,
--     xtk:persist#GetEntityIfMoreRecent("xtk:schema|<id>"), answered for
--     xtk:session, nms:subscription and every registered schema, in
--     Campaign's shape;
--   - Ingest and IngestExt in the namespace urn:xtk:persist|xtk:session (the
--     persist interface of xtk:session), which is not a valid URI;
--   - the session and security tokens in the SOAP header's <Cookie> and
--     <X-Security-Token> entries;
--   - Logon's session info (server version and build, user);
--   - failed Logons limited by the API "logon_failure".
--
SET search_path = public, campaign;
SET timezone = 'UTC';

SELECT register_schema($$
<srcSchema name="sdkTable" namespace="dem" label="SDK &amp; table">
  <element name="sdkTable" autopk="true" autouuid="true" autoStg="true">
    <key name="email" internal="true"><keyfield xpath="@email"/></key>
    <attribute name="email" type="string" length="80" label="E-mail &lt;address&gt;"/>
    <attribute name="score" type="long" notNull="true" default="0"/>
  </element>
</srcSchema>$$);
CREATE ROLE regress_sdk_api LOGIN PASSWORD 'sdk secret' IN ROLE campaign_ingest;
GRANT INSERT, UPDATE ON dem.sdktablestg TO regress_sdk_api;
CREATE ROLE regress_sdk_other LOGIN PASSWORD 'other secret' IN ROLE campaign_ingest;
CREATE ROLE regress_sdk_gateway IN ROLE campaign_soap;

-- An envelope as the SDK writes it: prefix m on the method, header entries
-- of its own, the session token as first parameter.
CREATE FUNCTION public.sdk_call(urn text, method text, token text, header text, params text)
RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT format($f$<?xml version='1.0' encoding='UTF-8'?><SOAP-ENV:Envelope xmlns:xsd='http://www.w3.org/2001/XMLSchema' xmlns:xsi='http://www.w3.org/2001/XMLSchema-instance' xmlns:SOAP-ENV='http://schemas.xmlsoap.org/soap/envelope/' xmlns:ns='http://xml.apache.org/xml-soap'><SOAP-ENV:Header>%s</SOAP-ENV:Header><SOAP-ENV:Body><m:%s xmlns:m="%s" SOAP-ENV:encodingStyle="http://schemas.xmlsoap.org/soap/encoding/"><sessiontoken xsi:type="xsd:string">%s</sessiontoken>%s</m:%s></SOAP-ENV:Body></SOAP-ENV:Envelope>$f$,
                  header, method, urn, token, params, method)
$$;

-- The first Fault line (faultcode) and the detail's first line, or 'ok'.
CREATE FUNCTION public.outcome(response text) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN response !~ '<SOAP-ENV:Fault>' THEN 'ok'
           ELSE (xpath('//faultcode/text()', response::xml))[1]::text || ' ' ||
                split_part((xpath('//detail/text()', response::xml))[1]::text, E'\n', 1) END
$$;

-- The returned document of GetEntityIfMoreRecent, pretty enough to read.
CREATE FUNCTION public.entity(response text) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT coalesce((xpath('//*[local-name()="pdomDoc"]/*', response::xml))[1]::text, '(empty)')
$$;

SET ROLE regress_sdk_gateway;

-- Logon as the SDK does it; the session info carries what the SDK reads.
SELECT soap(sdk_call('urn:xtk:session', 'Logon', '', '<X-Security-Token/>',
    '<login xsi:type="xsd:string">regress_sdk_api</login><password xsi:type="xsd:string">sdk secret</password><parameters xsi:type="ns:Element" SOAP-ENV:encodingStyle="http://xml.apache.org/xml-soap/literalxml"/>')) AS r \gset
SELECT (xpath('//*[local-name()="pstrSessionToken"]/text()', :'r'::xml))[1]::text AS token,
       (xpath('//*[local-name()="pstrSecurityToken"]/text()', :'r'::xml))[1]::text AS security \gset
SELECT a AS attribute,
       (xpath(format('//*[local-name()="serverInfo" or local-name()="userInfo"]/@%s', a), :'r'::xml))[1]::text AS value
  FROM unnest(ARRAY['majNumber', 'minNumber', 'servicePack', 'login', 'loginCS']) a;
SELECT (xpath('//*[local-name()="serverInfo"]/@buildNumber', :'r'::xml))[1]::text::int
       = current_setting('server_version_num')::int AS build_is_the_server_version;

--
-- GetEntityIfMoreRecent, in the namespace the SDK uses (urn:xtk:persist).
--
SELECT entity(soap(sdk_call('urn:xtk:persist', 'GetEntityIfMoreRecent', :'token', '',
    '<pk xsi:type="xsd:string">xtk:schema|xtk:session</pk><md5 xsi:type="xsd:string"/><mustExist xsi:type="xsd:boolean">false</mustExist>')))::xml AS xtk_session;
-- The SDK finds Ingest in the persist interface, so calls it in
-- urn:xtk:persist|xtk:session; Logon and Logoff in the schema's methods.
SELECT p AS parent, (xpath('/*/@name', m))[1]::text AS method,
       (xpath('/*/@static', m))[1]::text AS static,
       array_to_string(xpath('/*/*[local-name()="parameters"]/*/@name', m)::text[], ',') AS params
  FROM (SELECT entity(soap(sdk_call('urn:xtk:persist', 'GetEntityIfMoreRecent', :'token', '',
    '<pk>xtk:schema|xtk:session</pk><md5/><mustExist>false</mustExist>')))::xml) e(d),
       unnest(ARRAY['interface', 'methods']) p,
       unnest(xpath(format('//*[local-name()="%s"]/*[local-name()="method"]', p), d)) m;
SELECT (xpath('/*/@name', m))[1]::text AS method,
       array_to_string(xpath('/*/*[local-name()="parameters"]/*/@type', m)::text[], ',') AS types
  FROM unnest(xpath('//*[local-name()="method"]', entity(soap(sdk_call('urn:xtk:persist', 'GetEntityIfMoreRecent', :'token', '',
    '<pk>xtk:schema|nms:subscription</pk><md5/><mustExist>false</mustExist>')))::xml)) m;
-- A registered schema and its staging schema, names and labels escaped.
SELECT entity(soap(sdk_call('urn:xtk:persist', 'GetEntityIfMoreRecent', :'token', '',
    '<pk>xtk:schema|dem:sdkTable</pk><md5/><mustExist>true</mustExist>'))) AS registered;
SELECT entity(soap(sdk_call('urn:xtk:persist|xtk:session', 'GetEntityIfMoreRecent', :'token', '',
    '<pk>xtk:schema|dem:sdkTableStg</pk><md5/><mustExist>true</mustExist>'))) AS staging;
-- A role that does not feed the schema does not see it (as describe()).
SELECT (xpath('//*[local-name()="pstrSessionToken"]/text()', soap(sdk_call('urn:xtk:session', 'Logon', '', '',
    '<login>regress_sdk_other</login><password>other secret</password>'))::xml))[1]::text AS other_token \gset
SELECT entity(soap(sdk_call('urn:xtk:persist', 'GetEntityIfMoreRecent', :'other_token', '',
    '<pk>xtk:schema|dem:sdkTableStg</pk><md5/><mustExist>false</mustExist>'))) AS hidden;
-- Unknown: an empty document, or a Fault when it must exist.
SELECT entity(soap(sdk_call('urn:xtk:persist', 'GetEntityIfMoreRecent', :'token', '',
    '<pk>xtk:schema|dem:noSuchTable</pk><md5/><mustExist>false</mustExist>'))) AS unknown;
SELECT outcome(soap(sdk_call('urn:xtk:persist', 'GetEntityIfMoreRecent', :'token', '',
    '<pk>xtk:schema|dem:noSuchTable</pk><md5/><mustExist>true</mustExist>'))) AS unknown_must_exist;
SELECT outcome(soap(sdk_call('urn:xtk:persist', 'GetEntityIfMoreRecent', :'token', '',
    '<pk>xtk:srcSchema|dem:sdkTable</pk><md5/><mustExist>false</mustExist>'))) AS source_schema;
SELECT entity(soap(sdk_call('urn:xtk:persist', 'GetEntityIfMoreRecent', :'token', '',
    '<pk>xtk:schema|x'' OR 1=1 --</pk><md5/><mustExist>false</mustExist>'))) AS injection;
SELECT outcome(soap(sdk_call('urn:xtk:persist', 'GetEntityIfMoreRecent', :'token', '',
    '<pk>xtk:schema|xtk:session</pk><md5/><mustExist>maybe</mustExist>'))) AS bad_boolean;
-- It needs a session.
SELECT outcome(soap(sdk_call('urn:xtk:persist', 'GetEntityIfMoreRecent', '', '',
    '<pk>xtk:schema|xtk:session</pk><md5/><mustExist>false</mustExist>'))) AS no_session;

--
-- Ingest and IngestExt in both namespace forms.
--
SELECT outcome(soap(sdk_call('urn:xtk:persist|xtk:session', 'Ingest', :'token', '',
    '<domDoc xsi:type="" SOAP-ENV:encodingStyle="http://xml.apache.org/xml-soap/literalxml"><sdkTableStg xtkschema="dem:sdkTableStg" email="a@example.com" score="1"/></domDoc>'))) AS persist_form;
SELECT outcome(soap(sdk_call('urn:xtk:session', 'Ingest', :'token', '',
    '<domDoc><sdkTableStg xtkschema="dem:sdkTableStg" email="b@example.com" score="2"/></domDoc>'))) AS session_form;
SELECT outcome(soap(sdk_call('urn:xtk:persist|xtk:session', 'IngestExt', :'token', '',
    '<domDoc><sdkTableStg xtkschema="dem:sdkTableStg" _key="@email" email="a@example.com" score="3"/></domDoc>'))) AS persist_form_ext;
-- Other interfaces, and Logon through the persist interface, are unknown.
SELECT outcome(soap(sdk_call('urn:xtk:persist|xtk:queryDef', 'Ingest', :'token', '', '<domDoc/>'))) AS other_schema;
SELECT outcome(soap(sdk_call('urn:xtk:persist|xtk:session', 'Logon', '', '', '<l>regress_sdk_api</l><p>sdk secret</p>'))) AS logon_in_persist;

--
-- Tokens from the SOAP header: <Cookie>__sessiontoken=...</Cookie> with
-- <X-Security-Token>, as the SDK writes them; the header's session token
-- needs the security token, which must match.
--
SELECT outcome(soap(sdk_call('urn:xtk:session', 'Ingest', '',
    format('<Cookie>lang=en; __sessiontoken=%s</Cookie><X-Security-Token>%s</X-Security-Token>', :'token', :'security'),
    '<domDoc><sdkTableStg xtkschema="dem:sdkTableStg" email="c@example.com"/></domDoc>'))) AS header_tokens;
SELECT outcome(soap(sdk_call('urn:xtk:session', 'Ingest', '',
    format('<Cookie>__sessiontoken=%s</Cookie>', :'token'),
    '<domDoc><sdkTableStg xtkschema="dem:sdkTableStg" email="d@example.com"/></domDoc>'))) AS header_token_alone;
SELECT outcome(soap(sdk_call('urn:xtk:session', 'Ingest', '',
    format('<Cookie>__sessiontoken=%s</Cookie><X-Security-Token>@wrong</X-Security-Token>', :'token'),
    '<domDoc><sdkTableStg xtkschema="dem:sdkTableStg" email="e@example.com"/></domDoc>'))) AS header_wrong_security;
-- A security token in the header is checked also when the session token
-- is the first parameter.
SELECT outcome(soap(sdk_call('urn:xtk:session', 'Ingest', :'token',
    '<X-Security-Token>@wrong</X-Security-Token>',
    '<domDoc><sdkTableStg xtkschema="dem:sdkTableStg" email="f@example.com"/></domDoc>'))) AS param_wrong_security;
-- Cookies of other names are no session token.
SELECT outcome(soap(sdk_call('urn:xtk:session', 'Ingest', '',
    format('<Cookie>x__sessiontoken=%s</Cookie><X-Security-Token>%s</X-Security-Token>', :'token', :'security'),
    '<domDoc><sdkTableStg xtkschema="dem:sdkTableStg" email="g@example.com"/></domDoc>'))) AS other_cookie;
RESET ROLE;
SELECT email, score FROM dem.sdktablestg ORDER BY _stg_seq;

--
-- Failed Logons: each takes a token of "logon_failure"; with none left,
-- every Logon (even with the right password) is refused at once with the
-- rate-limit Fault, until the bucket refills.
--
SELECT per_second, burst FROM rate_limits WHERE api = 'logon_failure';
SELECT set_rate_limit('logon_failure', 0.001, 2);
SET ROLE regress_sdk_gateway;
SELECT outcome(soap(sdk_call('urn:xtk:session', 'Logon', '', '', format('<login>%s</login><password>%s</password>', l, p)))) AS logon
  FROM (VALUES (1, 'regress_sdk_api', 'wrong'), (2, 'regress_sdk_nobody', 'x'),
               (3, 'regress_sdk_api', 'sdk secret'), (4, 'regress_sdk_api', 'wrong')) v(n, l, p)
 ORDER BY n;
RESET ROLE;
SELECT accepted, rejected FROM rate_limits WHERE api = 'logon_failure';
-- Back to the default.
SELECT set_rate_limit('logon_failure', 1, 10);
SET ROLE regress_sdk_gateway;
SELECT outcome(soap(sdk_call('urn:xtk:session', 'Logon', '', '', '<login>regress_sdk_api</login><password>sdk secret</password>'))) AS logon_again;

-- Logoff with the header's tokens only.
SELECT outcome(soap(sdk_call('urn:xtk:session', 'Logoff', '',
    format('<Cookie>__sessiontoken=%s</Cookie><X-Security-Token>%s</X-Security-Token>', :'token', :'security'), ''))) AS logoff;
SELECT outcome(soap(sdk_call('urn:xtk:session', 'Ingest', :'token', '',
    '<domDoc><sdkTableStg xtkschema="dem:sdkTableStg" email="h@example.com"/></domDoc>'))) AS after_logoff;
RESET ROLE;

-- Clean up.
DELETE FROM campaign.soap_sessions;
DROP FUNCTION public.sdk_call(text, text, text, text, text), public.outcome(text), public.entity(text);
REVOKE ALL ON dem.sdktablestg FROM regress_sdk_api;
DROP ROLE regress_sdk_api, regress_sdk_other, regress_sdk_gateway;
