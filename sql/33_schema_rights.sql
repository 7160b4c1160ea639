--
-- 33_schema_rights: ingest rights per staged schema (issue 17).  The rights
-- are privileges on the staging table: INSERT for inserts, INSERT and
-- UPDATE for upserts (IngestExt's default, and an insert with _key),
-- UPDATE for updates, DELETE for deletes.  Checked on every path (SQL,
-- SOAP, subscriptions, ingestion requests, describe()), at every call.
-- Uses the SOAP helpers of 21_soap.
--
SET search_path = public, campaign;
\pset null '(null)'

SELECT register_schema($$
<srcSchema name="feedA" namespace="rights">
  <element name="feedA" autoStg="true">
    <key name="code" internal="true"><keyfield xpath="@code"/></key>
    <attribute name="code" type="string" length="20"/>
    <attribute name="label" type="string" length="80"/>
  </element>
</srcSchema>$$);
SELECT register_schema($$
<srcSchema name="feedB" namespace="rights">
  <element name="feedB" autoStg="true">
    <key name="code" internal="true"><keyfield xpath="@code"/></key>
    <attribute name="code" type="string" length="20"/>
  </element>
</srcSchema>$$);

-- Secure by default: a new staging table grants nothing but to
-- campaign_admin (which may grant on), and has row-level security.  The
-- built-in tables, on a fresh install, the same: campaign_ingest alone
-- writes nothing.
SELECT c.oid::regclass AS staging_table, c.relrowsecurity AS row_security,
       string_agg(a.grantee::regrole || ' ' || a.privilege_type
                  || CASE WHEN a.is_grantable THEN ' (grantable)' ELSE '' END,
                  ', ' ORDER BY a.grantee::regrole::text, a.privilege_type) AS granted
  FROM pg_class c LEFT JOIN aclexplode(c.relacl) a ON a.grantee <> c.relowner
 WHERE c.oid IN ('rights.feedastg'::regclass, 'rights.feedbstg'::regclass, 'nms.recipientstg'::regclass,
                 'nms.servicestg'::regclass, 'nms.subscriptionrcpstg'::regclass)
 GROUP BY c.oid ORDER BY c.oid::regclass::text COLLATE "C";
SELECT has_table_privilege('campaign_ingest', c.oid, 'INSERT, UPDATE, DELETE') AS campaign_ingest_writes
  FROM campaign.schemas s
  JOIN pg_class c ON c.oid = to_regclass(format('%I.%I', s.sql_schema, s.staging_table))
 WHERE s.staging_table IS NOT NULL
 GROUP BY 1;

-- try_changes(xtkschema): one change of each kind, as the current role;
-- 'staged' or the refusal.
CREATE FUNCTION public.try_changes(xtkschema text) RETURNS TABLE (change text, outcome text)
LANGUAGE plpgsql AS $$
DECLARE
    el text := split_part(xtkschema, ':', 2);
    c record;
BEGIN
    FOR c IN SELECT * FROM (VALUES
        (1, 'insert', 'xtk_ingest', ''),
        (2, 'insert with _key', 'xtk_ingest', '_key="@code"'),
        (3, 'insertOrUpdate', 'xtk_ingest_ext', '_key="@code"'),
        (4, 'update', 'xtk_ingest_ext', '_key="@code" _operation="update"'),
        (5, 'delete', 'xtk_ingest_ext', '_key="@code" _operation="delete"')) v(n, kind, fn, attrs)
        ORDER BY n
    LOOP
        change := c.kind;
        BEGIN
            EXECUTE format('SELECT campaign.%s($1)', c.fn)
              USING format('<%s %s code="c%s" xtkschema="%s"/>', el, c.attrs, c.n, xtkschema);
            outcome := 'staged';
        EXCEPTION WHEN insufficient_privilege THEN
            outcome := SQLERRM;
        END;
        RETURN NEXT;
    END LOOP;
END
$$;

CREATE ROLE regress_rights_partner IN ROLE campaign_ingest;
CREATE ROLE regress_rights_admin IN ROLE campaign_admin;

--
-- A role allowed on one schema is refused on another, naming the schema.
--
GRANT INSERT ON rights.feedastg TO regress_rights_partner;
SET ROLE regress_rights_partner;
SELECT is_uuid(xtk_ingest('<feedAStg code="a1" xtkschema="rights:feedAStg"/>')) AS staged;
SELECT * FROM expect_error($$SELECT xtk_ingest('<feedBStg code="b1" xtkschema="rights:feedBStg"/>')$$);
-- the customer profiles (the built-in nms:recipient) are closed to it
SELECT * FROM expect_error($$SELECT xtk_ingest('<recipientStg email="victim@example.com" firstName="Evil" xtkschema="nms:recipientStg"/>')$$);
-- refused before any record is read: no error tells it the schema's
-- attributes, and an empty collection is refused as well
SELECT * FROM expect_error($$SELECT xtk_ingest('<feedBStg nosuch="1" xtkschema="rights:feedBStg"/>')$$, false);
SELECT * FROM expect_error($$SELECT xtk_ingest('<feedBStg-collection xtkschema="rights:feedBStg"/>')$$, false);
SELECT * FROM expect_error($$SELECT xtk_ingest_ext('<feedBStg-collection xtkschema="rights:feedBStg"/>')$$);
RESET ROLE;

--
-- Insert, upsert, update and delete rights.
--
SET ROLE regress_rights_partner;
SELECT * FROM try_changes('rights:feedAStg');
-- The errors in full: the missing privilege and the GRANT that gives it.
SELECT * FROM expect_error($$SELECT xtk_ingest('<feedAStg _key="@code" code="a2" xtkschema="rights:feedAStg"/>')$$);
SELECT * FROM expect_error($$SELECT xtk_ingest_ext('<feedAStg _key="@code" code="a2" _operation="delete" xtkschema="rights:feedAStg"/>')$$);
-- In a collection, the first record it may not stage is named, and nothing
-- of the document is staged.
SELECT * FROM expect_error($$SELECT xtk_ingest_ext('<feedAStg-collection xtkschema="rights:feedAStg" _key="@code">
  <feedAStg code="a3" _operation="insert"/><feedAStg code="a4" _operation="update"/></feedAStg-collection>')$$);
RESET ROLE;

GRANT UPDATE ON rights.feedastg TO regress_rights_partner;
SET ROLE regress_rights_partner;
SELECT * FROM try_changes('rights:feedAStg');
RESET ROLE;
REVOKE INSERT ON rights.feedastg FROM regress_rights_partner;
SET ROLE regress_rights_partner;
SELECT * FROM try_changes('rights:feedAStg');
RESET ROLE;
REVOKE UPDATE ON rights.feedastg FROM regress_rights_partner;
GRANT DELETE ON rights.feedastg TO regress_rights_partner;
SET ROLE regress_rights_partner;
SELECT * FROM try_changes('rights:feedAStg');
RESET ROLE;
REVOKE DELETE ON rights.feedastg FROM regress_rights_partner;
SET ROLE regress_rights_partner;
SELECT * FROM try_changes('rights:feedAStg');
RESET ROLE;
-- Rights of a role it is a member of count, as in SQL.
CREATE ROLE regress_rights_feeders;
GRANT INSERT, UPDATE, DELETE ON rights.feedastg TO regress_rights_feeders;
GRANT regress_rights_feeders TO regress_rights_partner;
SET ROLE regress_rights_partner;
SELECT * FROM try_changes('rights:feedAStg');
RESET ROLE;
REVOKE regress_rights_feeders FROM regress_rights_partner;

-- What was staged, by kind: exactly the changes reported 'staged'.
SELECT _operation, _key, code FROM rights.feedastg ORDER BY _stg_seq;

--
-- The privileges open no direct access to the table: row-level security
-- without policy.  Even with USAGE on its schema and every privilege, a
-- direct INSERT fails and UPDATE and DELETE find no row.
--
GRANT USAGE ON SCHEMA rights TO regress_rights_partner;
GRANT INSERT, UPDATE, DELETE ON rights.feedastg TO regress_rights_partner;
SET ROLE regress_rights_partner;
SELECT * FROM expect_error($$INSERT INTO rights.feedastg (_carried, code) VALUES ('{code}', 'direct')$$);
UPDATE rights.feedastg SET code = 'changed';
DELETE FROM rights.feedastg;
SELECT * FROM expect_error('SELECT count(*) FROM rights.feedastg', false);
SET row_security = off;
SELECT * FROM expect_error($$UPDATE rights.feedastg SET code = 'changed'$$, false);
RESET row_security;
RESET ROLE;
REVOKE USAGE ON SCHEMA rights FROM regress_rights_partner;
SELECT count(*) AS rows_kept, count(*) FILTER (WHERE code = 'changed') AS changed FROM rights.feedastg;

--
-- The registry is read as its owner with search_path pinned: a role cannot
-- have a function of its own run there by shadowing one of pg_catalog's.
--
SELECT register_schema('<srcSchema name="shadowed" namespace="rights"><element name="shadowed" autoStg="true"><attribute name="code"/></element></srcSchema>');
GRANT INSERT ON rights.shadowedstg TO regress_rights_partner;
CREATE SCHEMA regress_rights_shadow;
GRANT USAGE, CREATE ON SCHEMA regress_rights_shadow TO regress_rights_partner;
SET ROLE regress_rights_partner;
CREATE FUNCTION regress_rights_shadow.quote_ident(text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    RAISE NOTICE 'the shadowing function ran as %', current_user;
    RETURN pg_catalog.quote_ident($1);
END $$;
SET search_path = regress_rights_shadow, pg_catalog;
SELECT campaign.xtk_ingest('<shadowedStg code="x" xtkschema="rights:shadowedStg"/>') <> '' AS staged;
RESET search_path;
RESET ROLE;
SET search_path = public, campaign;
DROP SCHEMA regress_rights_shadow CASCADE;

--
-- A REVOKE takes effect for the next call of the session, prepared
-- statements included.
--
SET ROLE regress_rights_partner;
PREPARE stage_a AS SELECT xtk_ingest('<feedAStg code="p1" xtkschema="rights:feedAStg"/>') <> '' AS staged;
EXECUTE stage_a;
RESET ROLE;
REVOKE INSERT ON rights.feedastg FROM regress_rights_partner;
SET ROLE regress_rights_partner;
SELECT * FROM expect_error('EXECUTE stage_a', false);
RESET ROLE;
GRANT INSERT ON rights.feedastg TO regress_rights_partner;
SET ROLE regress_rights_partner;
EXECUTE stage_a;
DEALLOCATE stage_a;
RESET ROLE;

--
-- Subscriptions need the rights of the changes they stage: INSERT and
-- UPDATE on nms.subscriptionrcpstg to subscribe (and on nms.recipientstg
-- with create), DELETE on nms.subscriptionrcpstg to unsubscribe.
--
SELECT xtk_ingest('<serviceStg _key="@name" name="rightsNews" xtkschema="nms:serviceStg"/>');
SELECT xtk_ingest('<recipientStg _key="@email" email="known@example.com" xtkschema="nms:recipientStg"/>');
SET ROLE regress_rights_partner;
SELECT * FROM expect_error($$SELECT subscribe('rightsNews', '<recipient email="known@example.com"/>')$$);
SELECT * FROM expect_error($$SELECT unsubscribe('rightsNews', '<recipient email="known@example.com"/>')$$);
RESET ROLE;
GRANT INSERT, UPDATE ON nms.subscriptionrcpstg TO regress_rights_partner;
SET ROLE regress_rights_partner;
SELECT subscribe('rightsNews', '<recipient email="known@example.com"/>') > 0 AS subscribed;
SELECT * FROM expect_error($$SELECT subscribe('rightsNews', '<recipient email="new@example.com"/>', true)$$);
SELECT * FROM expect_error($$SELECT unsubscribe('rightsNews', '<recipient email="known@example.com"/>')$$);
RESET ROLE;
GRANT INSERT, UPDATE ON nms.recipientstg TO regress_rights_partner;
GRANT DELETE ON nms.subscriptionrcpstg TO regress_rights_partner;
SET ROLE regress_rights_partner;
SELECT subscribe('rightsNews', '<recipient email="new@example.com"/>', true) > 0 AS subscribed_and_created;
SELECT unsubscribe('rightsNews', '<recipient email="known@example.com"/>') > 0 AS unsubscribed;
-- the rights on recipients are those of an upsert, not of a delete
SELECT * FROM expect_error($$SELECT xtk_ingest_ext('<recipientStg _key="@email" email="known@example.com" _operation="delete" xtkschema="nms:recipientStg"/>')$$, false);
RESET ROLE;
SELECT _operation, email, service FROM nms.subscriptionrcpstg WHERE service = 'rightsNews' ORDER BY _stg_seq;
SELECT _operation, email FROM nms.recipientstg WHERE email IN ('known@example.com', 'new@example.com') ORDER BY _stg_seq;

--
-- describe() shows a role the schemas it feeds (any of INSERT, UPDATE,
-- DELETE on the staging table); others describe as unregistered ones.
-- campaign_admin sees them all.
--
SET ROLE regress_rights_partner;
SELECT s AS schema, (SELECT count(*) FROM describe(s)) AS rows_described
  FROM unnest(ARRAY['rights:feedA', 'rights:feedAStg', 'rights:feedB', 'rights:feedBStg',
                    'nms:recipient', 'nms:service', 'nms:subscriptionRcp', 'rights:noSuch']) AS s;
RESET ROLE;
SET ROLE regress_rights_admin;
SELECT s AS schema, (SELECT count(*) FROM describe(s)) AS rows_described
  FROM unnest(ARRAY['rights:feedB', 'nms:service']) AS s;
RESET ROLE;

--
-- Ingestion requests per mapping: the role must feed the mapping.
--
CREATE ROLE regress_rights_etl IN ROLE campaign_sql_function;
SET ROLE regress_rights_etl;
SELECT * FROM expect_error($$SELECT ingestion_request('rights:feedA')$$);
SELECT * FROM expect_error($$SELECT ingestion_status('rights:feedA', 1)$$, false);
-- an unknown mapping gets the API's own answer
SELECT ingestion_request('rights:noSuch') ->> 'info' AS info;
RESET ROLE;
GRANT INSERT ON rights.feedastg TO regress_rights_etl;
SET ROLE regress_rights_etl;
-- allowed: the API answers (the mapping is not deployed here)
SELECT ingestion_request('rights:feedA') ->> 'info' AS info;
SELECT * FROM expect_error($$SELECT ingestion_status('rights:feedA', 0)$$, false);
SELECT * FROM expect_error($$SELECT ingestion_request('rights:feedB')$$, false);
RESET ROLE;

--
-- The same over SOAP, with the session's role, checked at every call: a
-- REVOKE counts for a session already open.
--
CREATE ROLE regress_rights_gateway IN ROLE campaign_soap;
CREATE ROLE regress_rights_soap LOGIN PASSWORD 'soap secret' IN ROLE campaign_ingest;
GRANT INSERT ON rights.feedastg TO regress_rights_soap;
SET ROLE regress_rights_gateway;
SELECT logon('regress_rights_soap', 'soap secret') AS token \gset
SELECT masked(soap(call('Ingest', :'token', '<urn:domDoc><feedAStg code="s1" xtkschema="rights:feedAStg"/></urn:domDoc>'))) ~ 'pstrSUuids xsi:type="xsd:string">UUID<' AS ingested;
SELECT fault(soap(call('Ingest', :'token', '<urn:domDoc><feedBStg code="s2" xtkschema="rights:feedBStg"/></urn:domDoc>')));
SELECT fault(soap(call('IngestExt', :'token', '<urn:domDoc><feedAStg _key="@code" code="s3" xtkschema="rights:feedAStg"/></urn:domDoc>')));
SELECT fault(soap(call('IngestExt', :'token', '<urn:domDoc><feedAStg _key="@code" code="s1" _operation="delete" xtkschema="rights:feedAStg"/></urn:domDoc>')));
SELECT fault(soap(call('Subscribe', :'token',
    '<urn:service>rightsNews</urn:service><urn:recipient><recipient email="known@example.com"/></urn:recipient>',
    'urn:nms:subscription')));
RESET ROLE;
REVOKE INSERT ON rights.feedastg FROM regress_rights_soap;
SET ROLE regress_rights_gateway;
SELECT fault(soap(call('Ingest', :'token', '<urn:domDoc><feedAStg code="s4" xtkschema="rights:feedAStg"/></urn:domDoc>')));
RESET ROLE;
GRANT INSERT, UPDATE, DELETE ON rights.feedastg TO regress_rights_soap;
GRANT INSERT, UPDATE ON nms.subscriptionrcpstg TO regress_rights_soap;
SET ROLE regress_rights_gateway;
SELECT masked(soap(call('IngestExt', :'token', '<urn:domDoc><feedAStg _key="@code" code="s1" _operation="delete" xtkschema="rights:feedAStg"/></urn:domDoc>'))) ~ 'IngestExtResponse' AS deleted;
SELECT masked(soap(call('Subscribe', :'token',
    '<urn:service>rightsNews</urn:service><urn:recipient><recipient email="known@example.com"/></urn:recipient>',
    'urn:nms:subscription'))) ~ 'SubscribeResponse' AS subscribed;
RESET ROLE;
SELECT _operation, code FROM rights.feedastg WHERE code LIKE 's%' ORDER BY _stg_seq;

-- Clean up.
DELETE FROM campaign.soap_sessions;
DROP OWNED BY regress_rights_partner, regress_rights_admin, regress_rights_feeders,
    regress_rights_etl, regress_rights_gateway, regress_rights_soap;
DROP ROLE regress_rights_partner, regress_rights_admin, regress_rights_feeders,
    regress_rights_etl, regress_rights_gateway, regress_rights_soap;
DROP FUNCTION public.try_changes(text);
