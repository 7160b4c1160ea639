--
-- 21_soap: campaign.soap(envelope, session_token, security_token), the SOAP
-- router (SPEC §8).  The payloads of seeds/004 give back the documented
-- response envelopes (compared tag by tag, the UUID checked as a UUID);
-- Logon checks PostgreSQL passwords and returns a session token; calls run
-- with the rights of the token's role; expired or unknown tokens, bad
-- logins, malformed envelopes and unknown methods give SOAP Faults, never
-- SQL errors; rate limits give a Fault a gateway maps to HTTP 429.
--
-- The calls are made as a gateway role that has campaign_soap and no other
-- right, as an HTTP gateway would.
--
SET search_path = public, campaign;
SET timezone = 'UTC';
\pset null '(null)'

-- The schema of the seeds (SPEC §2), as the earlier tests registered it.
SELECT register_schema($$
<srcSchema name="sampleTable" namespace="dem" label="Sample table">
  <element name="sampleTable" autopk="true" autouuid="true" autoStg="true">
    <key name="id" internal="true"><keyfield xpath="@id"/></key>
    <attribute name="id" type="string" length="20" label="External id"/>
    <attribute name="testcol1" type="string" length="255"/>
    <attribute name="testcol2" type="string" length="255"/>
    <attribute name="score" type="long"/>
    <attribute name="notes" type="memo"/>
  </element>
</srcSchema>$$);
TRUNCATE dem.sampletablestg;

CREATE ROLE regress_soap_gateway IN ROLE campaign_soap;
CREATE ROLE regress_soap_api LOGIN PASSWORD 'api secret' IN ROLE campaign_ingest;
CREATE ROLE regress_soap_reader LOGIN PASSWORD 'reader secret';
CREATE ROLE regress_soap_nologin NOLOGIN PASSWORD 'nologin secret' IN ROLE campaign_ingest;
CREATE ROLE regress_soap_expired LOGIN PASSWORD 'expired secret' VALID UNTIL '2001-01-01' IN ROLE campaign_ingest;
CREATE ROLE regress_soap_super SUPERUSER LOGIN PASSWORD 'super secret';
SET password_encryption = 'md5';
CREATE ROLE regress_soap_md5 LOGIN PASSWORD 'md5 secret' IN ROLE campaign_ingest;
RESET password_encryption;
-- The ingest rights the methods below need (33_schema_rights tests them).
GRANT INSERT, UPDATE, DELETE ON dem.sampletablestg, nms.servicestg, nms.recipientstg,
    nms.subscriptionrcpstg TO regress_soap_api;
GRANT INSERT, UPDATE, DELETE ON dem.sampletablestg TO regress_soap_md5;
SELECT rolname, left(rolpassword, 13) AS secret_kind FROM pg_authid
 WHERE rolname IN ('regress_soap_api', 'regress_soap_md5') ORDER BY 1;

--
-- Helpers (in schema public).
--

-- masked(response): the response with what changes from run to run
-- replaced: session and security tokens, UUIDs, the role's OID, the time of
-- a retry.
CREATE FUNCTION public.masked(response text) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT regexp_replace(regexp_replace(regexp_replace(regexp_replace(regexp_replace(regexp_replace(
           response,
           '___[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}', '___SESSION-TOKEN', 'g'),
           '@[A-Za-z0-9+/]{43}=', '@SECURITY-TOKEN', 'g'),
           '[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}', 'UUID', 'g'),
           'loginId="[0-9]+"', 'loginId="OID"', 'g'),
           'buildNumber="[0-9]+"', 'buildNumber="PG_VERSION_NUM"', 'g'),
           'Retry in [0-9.]+ seconds', 'Retry in N seconds', 'g')
$$;

-- shape(envelope): the envelope as a tree, whitespace between tags
-- removed, masked; two envelopes of the same shape have the same elements,
-- attributes and texts.
CREATE FUNCTION public.shape(envelope text) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT regexp_replace(regexp_replace(public.masked(envelope), '>\s+<', '><', 'g'), '\s+', ' ', 'g')
$$;

-- fault(response): a Fault as lines "faultcode", "faultstring", "detail".
CREATE FUNCTION public.fault(response text) RETURNS SETOF text
LANGUAGE sql IMMUTABLE AS $$
    SELECT line FROM (
        SELECT 1 AS o, 'faultcode: ' || (xpath('//faultcode/text()', x))[1]::text AS line,
               0 AS n FROM (SELECT public.masked(response)::xml) t(x)
        UNION ALL
        SELECT 2, 'faultstring: ' || (xpath('//faultstring/text()', x))[1]::text, 0
          FROM (SELECT public.masked(response)::xml) t(x)
        UNION ALL
        SELECT 3, 'detail: ' || d, n
          FROM (SELECT public.masked(response)::xml) t(x),
               regexp_split_to_table(
                   replace(replace(replace((xpath('//detail/text()', x))[1]::text,
                                           '&lt;', '<'), '&gt;', '>'), '&quot;', '"'),
                   E'\n') WITH ORDINALITY AS s(d, n)
    ) f WHERE line IS NOT NULL ORDER BY o, n
$$;

-- logon(login, password): the session token, or the Fault.
CREATE FUNCTION public.logon(login text, password text) RETURNS text
LANGUAGE sql AS $$
    SELECT coalesce((xpath('//*[local-name()="pstrSessionToken"]/text()', r::xml))[1]::text,
                    (SELECT string_agg(f, E'\n') FROM public.fault(r) f))
      FROM campaign.soap(format(
'<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:urn="urn:xtk:session">
<soapenv:Header/>
<soapenv:Body>
  <urn:Logon><urn:sessiontoken/><urn:strLogin>%s</urn:strLogin><urn:strPassword>%s</urn:strPassword><urn:elemParameters/></urn:Logon>
</soapenv:Body>
</soapenv:Envelope>', login, password)) r
$$;

-- call(method, token, params): an envelope calling urn:xtk:session's
-- method with the token as first parameter and params after it.
CREATE FUNCTION public.call(method text, token text, params text,
                            service text DEFAULT 'urn:xtk:session') RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT format(
'<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:urn="%s">
<soapenv:Body><urn:%s><urn:sessiontoken>%s</urn:sessiontoken>%s</urn:%s></soapenv:Body>
</soapenv:Envelope>', service, method, token, params, method)
$$;

-- The gateway role may call soap() and nothing else of ours.
SELECT r AS role,
       has_function_privilege(r, 'campaign.soap(text,text,text)', 'EXECUTE') AS soap,
       has_function_privilege(r, 'campaign.xtk_ingest(text)', 'EXECUTE') AS xtk_ingest,
       has_table_privilege(r, 'campaign.soap_sessions', 'SELECT,INSERT,UPDATE,DELETE') AS sessions
  FROM unnest(ARRAY['public', 'regress_soap_gateway', 'regress_soap_api']) r;

SET ROLE regress_soap_gateway;

--
-- Logon (Campaign's form, SPEC §8): a session token "___<uuid>", the
-- session info and a security token.
--
SELECT masked(soap($$<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:urn="urn:xtk:session">
<soapenv:Header/>
<soapenv:Body>
  <urn:Logon><urn:sessiontoken/><urn:strLogin>regress_soap_api</urn:strLogin><urn:strPassword>api secret</urn:strPassword><urn:elemParameters/></urn:Logon>
</soapenv:Body>
</soapenv:Envelope>$$)) AS response;

SELECT logon('regress_soap_api', 'api secret') AS token \gset
SELECT :'token' ~ '^___[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$' AS token_is_campaign_like;

-- Parameters are read by position: Adobe's SDK names them login and
-- password, with a prefix on the method and SOAP headers of its own;
-- Campaign's client uses a default namespace and __sessiontoken.
SELECT masked(r) ~ '<pstrSessionToken xsi:type="xsd:string">___SESSION-TOKEN</pstrSessionToken>' AS sdk_logon
  FROM soap($$<?xml version='1.0' encoding='UTF-8'?><SOAP-ENV:Envelope xmlns:xsd='http://www.w3.org/2001/XMLSchema' xmlns:xsi='http://www.w3.org/2001/XMLSchema-instance' xmlns:SOAP-ENV='http://schemas.xmlsoap.org/soap/envelope/' xmlns:ns='http://xml.apache.org/xml-soap'><SOAP-ENV:Header><X-Security-Token></X-Security-Token></SOAP-ENV:Header><SOAP-ENV:Body><m:Logon xmlns:m="urn:xtk:session" SOAP-ENV:encodingStyle="http://schemas.xmlsoap.org/soap/encoding/"><sessiontoken xsi:type="xsd:string"></sessiontoken><login xsi:type="xsd:string">regress_soap_api</login><password xsi:type="xsd:string">api secret</password><parameters xsi:type="ns:Element" SOAP-ENV:encodingStyle="http://xml.apache.org/xml-soap/literalxml"/></m:Logon></SOAP-ENV:Body></SOAP-ENV:Envelope>$$) r;
SELECT masked(r) ~ '<pstrSessionToken xsi:type="xsd:string">___SESSION-TOKEN</pstrSessionToken>' AS campaign_client_logon
  FROM soap($$<?xml version='1.0'?>
<SOAP-ENV:Envelope xmlns:xsd='http://www.w3.org/2001/XMLSchema' xmlns:xsi='http://www.w3.org/2001/XMLSchema-instance' xmlns:ns='urn:xtk:session' xmlns:SOAP-ENV='http://schemas.xmlsoap.org/soap/envelope/'>
  <SOAP-ENV:Body>
    <Logon xmlns='urn:xtk:session' SOAP-ENV:encodingStyle='http://schemas.xmlsoap.org/soap/encoding/'>
      <__sessiontoken xsi:type='xsd:string'></__sessiontoken>
      <strLogin xsi:type='xsd:string'>regress_soap_api</strLogin>
      <strPassword xsi:type='xsd:string'>api secret</strPassword>
      <elemParameters xsi:type='ns:Element' SOAP-ENV:encodingStyle='http://xml.apache.org/xml-soap/literalxml'><client build="9364"/></elemParameters>
    </Logon>
  </SOAP-ENV:Body>
</SOAP-ENV:Envelope>$$) r;
-- An MD5 secret is checked too.
SELECT logon('regress_soap_md5', 'md5 secret') ~ '^___' AS md5_logon;

-- Failed logons are Faults; an unknown login and a wrong password fail
-- alike.
SELECT logon('regress_soap_api', 'wrong') AS wrong_password;
SELECT logon('regress_soap_nosuchrole', 'api secret') AS unknown_login;
SELECT logon('regress_soap_api', '') AS empty_password;
SELECT logon('regress_soap_expired', 'expired secret') AS expired_password;
SELECT logon('regress_soap_nologin', 'nologin secret') AS nologin_role;
SELECT logon('regress_soap_super', 'super secret') AS superuser;
SELECT logon(repeat('x', 100), 'api secret') AS long_login;

--
-- seeds/004, "Insert without reconciliation" from a SOAP call: the payload
-- as documented (its placeholder token replaced by ours); the response is
-- the documented one, with the UUID of the staged row.
--
SELECT soap(replace($$<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:urn="urn:xtk:session">
   <soapenv:Header/>
   <soapenv:Body>
       <urn:Ingest>
           <urn:sessiontoken>___xxxxxxx-xxxx-xxx-xxx-xxxxxxxxxxx</urn:sessiontoken>
           <urn:domDoc>
               <sampleTableStg
                   testcol1="Test Value 1 (from SOAP)"
                   testcol2="Test Value 2 (from SOAP)"
                   xtkschema="dem:sampleTableStg">
               </sampleTableStg>
           </urn:domDoc>
       </urn:Ingest>
   </soapenv:Body>
   </soapenv:Envelope>$$, '___xxxxxxx-xxxx-xxx-xxx-xxxxxxxxxxx', :'token')) AS response \gset
SELECT masked(:'response') AS response;
SELECT shape(:'response') = shape($$<SOAP-ENV:Envelope xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:ns="urn:wpp:default" xmlns:SOAP-ENV="http://schemas.xmlsoap.org/soap/envelope/">
   <SOAP-ENV:Body>
       <IngestResponse SOAP-ENV:encodingStyle="http://schemas.xmlsoap.org/soap/encoding/" xmlns="urn:wpp:default">
           <pstrSUuids xsi:type="xsd:string">e1e7c8b3-6f79-44da-a72d-49ed0f73db2c</pstrSUuids>
       </IngestResponse>
   </SOAP-ENV:Body>
   </SOAP-ENV:Envelope>$$) AS documented_response;
SELECT (xpath('/SOAP-ENV:Envelope/SOAP-ENV:Body/w:IngestResponse/w:pstrSUuids/text()', :'response'::xml,
              ARRAY[ARRAY['SOAP-ENV', 'http://schemas.xmlsoap.org/soap/envelope/'],
                    ARRAY['w', 'urn:wpp:default']]))[1]::text AS uuid \gset
RESET ROLE;
SELECT is_uuid(:'uuid') AS is_uuid,
       (SELECT _uuid FROM dem.sampletablestg ORDER BY _stg_seq DESC LIMIT 1) = :'uuid'::uuid AS is_the_staged_uuid;
SELECT _operation, _key, _carried, id, testcol1, testcol2 FROM dem.sampletablestg ORDER BY _stg_seq;
SET ROLE regress_soap_gateway;

--
-- seeds/004, "Insert with reconciliation": no UUID comes back.
--
SELECT soap(replace($$<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:urn="urn:xtk:session">
   <soapenv:Header/>
   <soapenv:Body>
     <urn:Ingest>
        <urn:sessiontoken>___5e71f4bf-d38a-4ba8-ac15-35a958f7f138</urn:sessiontoken>
        <urn:domDoc>
           <sampleTableStg  _key="@id" id="ABDCD321"
                testcol1="Test Value 1 (from SOAP)"
                testcol2="Test Value 2 (from SOAP)"
                xtkschema="dem:sampleTableStg">
            </sampleTableStg>
        </urn:domDoc>
     </urn:Ingest>
    </soapenv:Body>
   </soapenv:Envelope>$$, '___5e71f4bf-d38a-4ba8-ac15-35a958f7f138', :'token')) AS response \gset
SELECT :'response' AS response;
SELECT shape(:'response') = shape($$<SOAP-ENV:Envelope xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:ns="urn:wpp:default" xmlns:SOAP-ENV="http://schemas.xmlsoap.org/soap/envelope/">
   <SOAP-ENV:Body>
       <IngestResponse SOAP-ENV:encodingStyle="http://schemas.xmlsoap.org/soap/encoding/" xmlns="urn:wpp:default">
           <pstrSUuids xsi:type="xsd:string"/>
       </IngestResponse>
   </SOAP-ENV:Body>
   </SOAP-ENV:Envelope>$$) AS documented_response;

--
-- seeds/004, "Insert/update" (IngestExt): the empty IngestExtResponse.
--
SELECT soap(replace($$<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:urn="urn:xtk:session">
   <soapenv:Header/>
   <soapenv:Body>
       <urn:IngestExt>
           <urn:sessiontoken>___444cd168-a1e2-4fb6-a2a8-73be9f133489</urn:sessiontoken>
           <urn:domDoc>
           <sampleTableStg  _key="@id" id="ABDCD321"
                   testcol1="Test Value E (from SOAP)"
                   testcol2="Test Value F (from SOAP)"
                   xtkschema="dem:sampleTableStg">
               </sampleTableStg>
           </urn:domDoc>
       </urn:IngestExt>
   </soapenv:Body>
   </soapenv:Envelope>$$, '___444cd168-a1e2-4fb6-a2a8-73be9f133489', :'token')) AS response \gset
SELECT :'response' AS response;
SELECT shape(:'response') = shape($$<SOAP-ENV:Envelope xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:ns="urn:wpp:default" xmlns:SOAP-ENV="http://schemas.xmlsoap.org/soap/envelope/">
   <SOAP-ENV:Body>
       <IngestExtResponse SOAP-ENV:encodingStyle="http://schemas.xmlsoap.org/soap/encoding/" xmlns="urn:wpp:default"/>
   </SOAP-ENV:Body>
   </SOAP-ENV:Envelope>$$) AS documented_response;
RESET ROLE;
SELECT _operation, _key, _carried, id, testcol1, testcol2 FROM dem.sampletablestg ORDER BY _stg_seq;
SET ROLE regress_soap_gateway;

-- A collection: the UUIDs in document order, comma-separated; comments
-- and blanks between the records are nothing.
SELECT masked(soap(call('Ingest', :'token', $$<urn:domDoc><sampleTableStg-collection xtkschema="dem:sampleTableStg">
  <sampleTableStg id="S1" testcol1="one"/><!-- two --><sampleTableStg _key="@id" id="S2" testcol1="two"/>
  <?pi three?><sampleTableStg id="S3" testcol1="three"/>
</sampleTableStg-collection></urn:domDoc>$$))) AS response;
-- Campaign's client puts the method in a default namespace, which the
-- record then inherits: it is ingested all the same.
SELECT masked(soap($$<SOAP-ENV:Envelope xmlns:xsi='http://www.w3.org/2001/XMLSchema-instance' xmlns:SOAP-ENV='http://schemas.xmlsoap.org/soap/envelope/'><SOAP-ENV:Body><Ingest xmlns='urn:xtk:session'><__sessiontoken xsi:type='xsd:string'>$$ || :'token' || $$</__sessiontoken><domDoc xsi:type='ns:Element'><sampleTableStg id="S4" testcol1="four" xtkschema="dem:sampleTableStg"/></domDoc></Ingest></SOAP-ENV:Body></SOAP-ENV:Envelope>$$)) AS response;

-- A bad document is a Client Fault naming the record and attribute, and
-- stages nothing.
RESET ROLE;
SELECT count(*) AS staged_before FROM dem.sampletablestg \gset
SET ROLE regress_soap_gateway;
SELECT fault(soap(call('Ingest', :'token', $$<urn:domDoc><sampleTableStg-collection xtkschema="dem:sampleTableStg">
  <sampleTableStg id="S5"/><sampleTableStg id="S6" score="many"/></sampleTableStg-collection></urn:domDoc>$$)));
SELECT fault(soap(call('Ingest', :'token', $$<urn:domDoc><sampleTableStg nosuch="1" xtkschema="dem:sampleTableStg"/></urn:domDoc>$$)));
SELECT fault(soap(call('IngestExt', :'token', $$<urn:domDoc><sampleTableStg id="S7" xtkschema="dem:sampleTableStg"/></urn:domDoc>$$)));
SELECT fault(soap(call('Ingest', :'token', '<urn:domDoc>&lt;sampleTableStg id="S8" xtkschema="dem:sampleTableStg"/&gt;</urn:domDoc>')));
SELECT fault(soap(call('Ingest', :'token', '<urn:domDoc><a/><b/></urn:domDoc>')));
SELECT fault(soap(call('Ingest', :'token', '')));
SELECT fault(soap(call('Ingest', :'token', '<urn:domDoc><x/></urn:domDoc><urn:extra/>')));
-- The record is staged from the envelope's own parse, unless libxml2
-- reported a flaw on the envelope that only a namespace-aware parse
-- refuses; then the record is parsed again as xtk_ingest() parses it, and
-- refused as xtk_ingest() refuses it.  Text between a collection's records
-- is refused either way.
SELECT fault(soap(call('Ingest', :'token', $$<urn:domDoc><x:sampleTableStg id="S9" xtkschema="dem:sampleTableStg"/></urn:domDoc>$$)));
SELECT fault(soap(call('Ingest', :'token', $$<urn:domDoc><sampleTableStg y:id="S10" xtkschema="dem:sampleTableStg"/></urn:domDoc>$$)));
SELECT fault(soap(call('Ingest', :'token', $$<urn:domDoc><sampleTableStg-collection xtkschema="dem:sampleTableStg">
  <sampleTableStg id="S11"/> stray text <sampleTableStg id="S12"/></sampleTableStg-collection></urn:domDoc>$$)));
SELECT fault(soap(call('Ingest', :'token', $$<urn:domDoc><sampleTableStg-collection xtkschema="dem:sampleTableStg">
  <sampleTableStg id="S13"/><![CDATA[data]]><sampleTableStg id="S14"/></sampleTableStg-collection></urn:domDoc>$$)));
RESET ROLE;
SELECT count(*) = :staged_before AS nothing_staged FROM dem.sampletablestg;
SELECT xtk_ingest('<x:sampleTableStg id="S9" xtkschema="dem:sampleTableStg"/>');

--
-- The session token: as first parameter, or as the cookie (session_token)
-- with the security token (X-Security-Token) from the gateway.
--
SET ROLE regress_soap_gateway;
SELECT soap($$<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:urn="urn:xtk:session"><soapenv:Body>
  <urn:Logon><urn:sessiontoken/><urn:strLogin>regress_soap_api</urn:strLogin><urn:strPassword>api secret</urn:strPassword></urn:Logon>
</soapenv:Body></soapenv:Envelope>$$) AS response \gset
SELECT (xpath('//*[local-name()="pstrSessionToken"]/text()', :'response'::xml))[1]::text AS cookie,
       (xpath('//*[local-name()="pstrSecurityToken"]/text()', :'response'::xml))[1]::text AS security \gset
SELECT masked(soap(call('Ingest', '', '<urn:domDoc><sampleTableStg id="C1" xtkschema="dem:sampleTableStg"/></urn:domDoc>'),
                   :'cookie', :'security')) ~ 'pstrSUuids xsi:type="xsd:string">UUID<' AS cookie_and_security_token;
-- a cookie alone is refused (a browser sends cookies by itself)
SELECT fault(soap(call('Ingest', '', '<urn:domDoc><sampleTableStg id="C2" xtkschema="dem:sampleTableStg"/></urn:domDoc>'),
                  :'cookie'));
-- a security token of another session is refused, wherever the token is
SELECT fault(soap(call('Ingest', '', '<urn:domDoc><sampleTableStg id="C3" xtkschema="dem:sampleTableStg"/></urn:domDoc>'),
                  :'cookie', '@not-the-security-token'));
SELECT fault(soap(call('Ingest', :'token', '<urn:domDoc><sampleTableStg id="C4" xtkschema="dem:sampleTableStg"/></urn:domDoc>'),
                  NULL, :'security'));
-- no token at all; an unknown token
SELECT fault(soap(call('Ingest', '', '<urn:domDoc><sampleTableStg id="C5" xtkschema="dem:sampleTableStg"/></urn:domDoc>')));
SELECT fault(soap(call('Ingest', '___00000000-0000-4000-8000-000000000000', '<urn:domDoc><sampleTableStg id="C6" xtkschema="dem:sampleTableStg"/></urn:domDoc>')));
RESET ROLE;

-- Only hashes of the tokens are stored; the administrator sees who holds
-- a session and until when, not the hashes.
SELECT count(*) AS sessions_of_token,
       bool_and(token_hash <> convert_to(:'token', 'UTF8')) AS token_not_stored,
       bool_and(r.rolname = 'regress_soap_api') AS role,
       bool_and(expires_at - logon_at BETWEEN interval '59 min' AND interval '61 min') AS one_hour
  FROM campaign.soap_sessions s JOIN pg_roles r ON r.oid = s.role
 WHERE token_hash = sha256(convert_to(:'token', 'UTF8'));
CREATE ROLE regress_soap_admin IN ROLE campaign_admin;
SET ROLE regress_soap_admin;
SELECT count(*) > 0 AS admin_sees_sessions FROM campaign.soap_sessions
 WHERE role = 'regress_soap_api'::regrole AND expires_at > now();
SELECT * FROM expect_error('SELECT token_hash FROM campaign.soap_sessions', false);
RESET ROLE;

--
-- Rights: a call runs with the rights of the token's role, as they are at
-- the time of the call.
--
SET ROLE regress_soap_gateway;
SELECT logon('regress_soap_reader', 'reader secret') AS reader_token \gset
SELECT fault(soap(call('Ingest', :'reader_token', '<urn:domDoc><sampleTableStg id="R1" xtkschema="dem:sampleTableStg"/></urn:domDoc>')));
SELECT logon('regress_soap_md5', 'md5 secret') AS md5_token \gset
SELECT masked(soap(call('IngestExt', :'md5_token', '<urn:domDoc><sampleTableStg _key="@id" id="R2" xtkschema="dem:sampleTableStg"/></urn:domDoc>'))) ~ 'IngestExtResponse' AS md5_ingests;
RESET ROLE;
REVOKE campaign_ingest FROM regress_soap_md5;
SET ROLE regress_soap_gateway;
SELECT fault(soap(call('IngestExt', :'md5_token', '<urn:domDoc><sampleTableStg _key="@id" id="R3" xtkschema="dem:sampleTableStg"/></urn:domDoc>')));
RESET ROLE;
-- A role that may no longer log in loses its sessions.
ALTER ROLE regress_soap_reader NOLOGIN;
SET ROLE regress_soap_gateway;
SELECT fault(soap(call('Ingest', :'reader_token', '<urn:domDoc><sampleTableStg id="R4" xtkschema="dem:sampleTableStg"/></urn:domDoc>')));
RESET ROLE;
SELECT id FROM dem.sampletablestg WHERE id LIKE 'R%' ORDER BY id;

--
-- Expiry: campaign.session_timeout after the Logon; then XSV-350008, on
-- which Campaign clients log on again.  Logoff ends a session at once.
--
SET campaign.session_timeout = '1s';
SET ROLE regress_soap_gateway;
SELECT logon('regress_soap_api', 'api secret') AS short_token \gset
SELECT masked(soap(call('Ingest', :'short_token', '<urn:domDoc><sampleTableStg id="E1" xtkschema="dem:sampleTableStg"/></urn:domDoc>'))) ~ 'pstrSUuids' AS live;
SELECT pg_sleep(1.2);
SELECT fault(soap(call('Ingest', :'short_token', '<urn:domDoc><sampleTableStg id="E2" xtkschema="dem:sampleTableStg"/></urn:domDoc>')));
RESET ROLE;
RESET campaign.session_timeout;
-- an expired session is removed by the next Logon
SELECT count(*) AS expired_sessions_left FROM campaign.soap_sessions
 WHERE token_hash = sha256(convert_to(:'short_token', 'UTF8'));
SET ROLE regress_soap_gateway;
SELECT logon('regress_soap_api', 'api secret') IS NOT NULL AS logged_on;
RESET ROLE;
SELECT count(*) AS expired_sessions_left FROM campaign.soap_sessions
 WHERE token_hash = sha256(convert_to(:'short_token', 'UTF8'));

SET ROLE regress_soap_gateway;
SELECT logon('regress_soap_api', 'api secret') AS bye_token \gset
SELECT soap(call('Logoff', :'bye_token', '')) AS response;
SELECT fault(soap(call('Ingest', :'bye_token', '<urn:domDoc><sampleTableStg id="E3" xtkschema="dem:sampleTableStg"/></urn:domDoc>')));
SELECT fault(soap(call('Logoff', :'bye_token', '')));

-- Each backend caches the sessions it has checked: a session the
-- administrator deletes or expires ends at once all the same, in this
-- backend that used it just before, and in the same transaction too.
SELECT logon('regress_soap_api', 'api secret') AS killed_token \gset
SELECT logon('regress_soap_api', 'api secret') AS stale_token \gset
SELECT masked(soap(call('Ingest', :'killed_token', '<urn:domDoc><sampleTableStg id="E4" xtkschema="dem:sampleTableStg"/></urn:domDoc>'))) ~ 'pstrSUuids' AS killed_live,
       masked(soap(call('Ingest', :'stale_token', '<urn:domDoc><sampleTableStg id="E5" xtkschema="dem:sampleTableStg"/></urn:domDoc>'))) ~ 'pstrSUuids' AS stale_live;
RESET ROLE;
DELETE FROM campaign.soap_sessions WHERE token_hash = sha256(convert_to(:'killed_token', 'UTF8'));
UPDATE campaign.soap_sessions SET expires_at = clock_timestamp()
 WHERE token_hash = sha256(convert_to(:'stale_token', 'UTF8'));
SET ROLE regress_soap_gateway;
SELECT fault(soap(call('Ingest', :'killed_token', '<urn:domDoc><sampleTableStg id="E6" xtkschema="dem:sampleTableStg"/></urn:domDoc>')));
SELECT fault(soap(call('Ingest', :'stale_token', '<urn:domDoc><sampleTableStg id="E7" xtkschema="dem:sampleTableStg"/></urn:domDoc>')));
SELECT logon('regress_soap_api', 'api secret') AS txn_token \gset
BEGIN;
SELECT masked(soap(call('Ingest', :'txn_token', '<urn:domDoc><sampleTableStg id="E8" xtkschema="dem:sampleTableStg"/></urn:domDoc>'))) ~ 'pstrSUuids' AS txn_live;
RESET ROLE;
TRUNCATE campaign.soap_sessions;
SET ROLE regress_soap_gateway;
SELECT fault(soap(call('Ingest', :'txn_token', '<urn:domDoc><sampleTableStg id="E9" xtkschema="dem:sampleTableStg"/></urn:domDoc>')));
ROLLBACK;
-- the TRUNCATE rolled back: the session is live again
SELECT masked(soap(call('Ingest', :'txn_token', '<urn:domDoc><sampleTableStg id="E10" xtkschema="dem:sampleTableStg"/></urn:domDoc>'))) ~ 'pstrSUuids' AS txn_live_again;
SELECT soap(call('Logoff', :'txn_token', '')) ~ 'LogoffResponse' AS txn_logoff;
RESET ROLE;
SELECT id FROM dem.sampletablestg WHERE id ~ '^E([4-9]|10)$' ORDER BY id;
SET ROLE regress_soap_gateway;
-- Many sessions ended in one backend, each emptying its cache.
DO $$
DECLARE
    t text;
    ingested int := 0;
    logged_off int := 0;
BEGIN
    FOR i IN 1..30 LOOP
        t := logon('regress_soap_api', 'api secret');
        IF soap(call('Ingest', t, format('<urn:domDoc><sampleTableStg id="M%s" xtkschema="dem:sampleTableStg"/></urn:domDoc>', i))) ~ 'pstrSUuids' THEN
            ingested := ingested + 1;
        END IF;
        IF soap(call('Logoff', t, '')) ~ 'LogoffResponse' THEN
            logged_off := logged_off + 1;
        END IF;
    END LOOP;
    RAISE NOTICE 'ingested %, logged off %', ingested, logged_off;
END
$$;

--
-- Subscriptions (urn:nms:subscription), through campaign.subscribe() and
-- unsubscribe() with the rights of the token's role.
--
SELECT soap(call('Ingest', :'token', '<urn:domDoc><serviceStg _key="@name" name="soapNews" label="SOAP news" xtkschema="nms:serviceStg"/></urn:domDoc>')) ~ 'pstrSUuids xsi:type="xsd:string"/>' AS service_staged;
SELECT soap(call('Subscribe', :'token',
    '<urn:strServiceName>soapNews</urn:strServiceName><urn:elemRecipient><recipient email="sue@example.com" firstName="Sue"/></urn:elemRecipient><urn:bCreate>true</urn:bCreate>',
    'urn:nms:subscription')) AS response;
SELECT soap(call('Unsubscribe', :'token',
    '<urn:strServiceName>soapNews</urn:strServiceName><urn:elemRecipient><recipient email="sue@example.com"/></urn:elemRecipient>',
    'urn:nms:subscription')) AS response;
SELECT fault(soap(call('Subscribe', :'token',
    '<urn:strServiceName>noSuchService</urn:strServiceName><urn:elemRecipient><recipient email="sue@example.com"/></urn:elemRecipient>',
    'urn:nms:subscription')));
SELECT fault(soap(call('Subscribe', :'token',
    '<urn:strServiceName>soapNews</urn:strServiceName><urn:elemRecipient><recipient email="sue@example.com"/></urn:elemRecipient><urn:bCreate>perhaps</urn:bCreate>',
    'urn:nms:subscription')));
RESET ROLE;
SELECT _operation, email, service FROM nms.subscriptionrcpstg WHERE service = 'soapNews' ORDER BY _stg_seq;

--
-- Malformed and hostile envelopes, unknown methods: Faults.
--
SET ROLE regress_soap_gateway;
SELECT soap(NULL) IS NULL AS null_envelope;
SELECT fault(soap('<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body>'));
SELECT fault(soap('<!DOCTYPE e [<!ENTITY x SYSTEM "file:///etc/passwd">]><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body>&x;</soapenv:Body></soapenv:Envelope>'));
SELECT fault(soap('<Envelope><Body/></Envelope>'));
SELECT fault(soap('<env:Envelope xmlns:env="http://www.w3.org/2003/05/soap-envelope"><env:Body/></env:Envelope>'));
SELECT fault(soap('<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Header/></soapenv:Envelope>'));
SELECT fault(soap('<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body/></soapenv:Envelope>'));
SELECT fault(soap('<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:urn="urn:xtk:session"><soapenv:Body><urn:Logoff/><urn:Logoff/></soapenv:Body></soapenv:Envelope>'));
SELECT fault(soap('<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:h="urn:h"><soapenv:Header><h:tx soapenv:mustUnderstand="1"/></soapenv:Header><soapenv:Body/></soapenv:Envelope>'));
SELECT fault(soap(call('Write', :'token', '')));
SELECT fault(soap(call('Ingest', :'token', '', 'urn:xtk:queryDef')));
SELECT fault(soap(call('Logon', '', '<urn:strLogin><b>regress_soap_api</b></urn:strLogin><urn:strPassword>api secret</urn:strPassword>')));
-- SQL-looking and markup-looking input is just data
SELECT logon('regress_soap_api''; DROP TABLE campaign.soap_sessions; --', 'x') AS injection;
RESET ROLE;
SELECT count(*) > 0 AS sessions_table_intact FROM campaign.soap_sessions;

--
-- Rate limits: over the limit of soap itself, or of the API a method
-- calls, a Fault with faultcode SOAP-ENV:Client.TooManyRequests (HTTP 429)
-- whose detail says when to retry.
--
SELECT set_rate_limit('soap', 0.001, 1);
SET ROLE regress_soap_gateway;
SELECT masked(soap(call('Ingest', :'token', '<urn:domDoc><sampleTableStg id="T1" xtkschema="dem:sampleTableStg"/></urn:domDoc>'))) ~ 'pstrSUuids' AS within_limit;
SELECT fault(soap(call('Ingest', :'token', '<urn:domDoc><sampleTableStg id="T2" xtkschema="dem:sampleTableStg"/></urn:domDoc>')));
RESET ROLE;
SELECT set_rate_limit('soap', NULL);
SELECT set_rate_limit('xtk_ingest', 0.001, 1);
SET ROLE regress_soap_gateway;
SELECT masked(soap(call('Ingest', :'token', '<urn:domDoc><sampleTableStg id="T3" xtkschema="dem:sampleTableStg"/></urn:domDoc>'))) ~ 'pstrSUuids' AS within_limit;
SELECT fault(soap(call('Ingest', :'token', '<urn:domDoc><sampleTableStg id="T4" xtkschema="dem:sampleTableStg"/></urn:domDoc>')));
-- IngestExt is another API
SELECT soap(call('IngestExt', :'token', '<urn:domDoc><sampleTableStg _key="@id" id="T5" xtkschema="dem:sampleTableStg"/></urn:domDoc>')) ~ 'IngestExtResponse' AS other_api;
RESET ROLE;
SELECT api, accepted, rejected FROM rate_limits WHERE per_second IS NOT NULL AND api <> 'logon_failure';
SELECT set_rate_limit('xtk_ingest', NULL);
SELECT id FROM dem.sampletablestg WHERE id LIKE 'T%' ORDER BY id;

-- Clean up.
DELETE FROM campaign.soap_sessions;
REVOKE ALL ON dem.sampletablestg, nms.servicestg, nms.recipientstg, nms.subscriptionrcpstg
    FROM regress_soap_api, regress_soap_md5;
DROP ROLE regress_soap_gateway, regress_soap_api, regress_soap_reader, regress_soap_nologin,
    regress_soap_expired, regress_soap_super, regress_soap_md5, regress_soap_admin;
