--
-- 09_roles: campaign_ingest may call the ingest functions; with the ingest
-- rights on a staging table (33_schema_rights tests them one by one) it
-- ingests, and still cannot read or write the table or the registry
-- directly; a role without the grant is refused; campaign_admin registers.
-- Uses dem:sampleTable (registered by 05_describe).
--
SET search_path = public, campaign;
\pset null '(null)'

CREATE ROLE regress_campaign_ingester;
CREATE ROLE regress_campaign_admin;
CREATE ROLE regress_campaign_nobody;
GRANT campaign_ingest TO regress_campaign_ingester;
GRANT campaign_admin TO regress_campaign_admin;

TRUNCATE dem.sampletablestg;

-- The ingest role has no right on the staging table, its schema or the
-- registry; it can execute the ingest functions.  campaign_admin holds
-- the ingest rights (to grant them) and USAGE on the schema.
SELECT r AS role,
       has_schema_privilege(r, 'dem', 'USAGE') AS dem_usage,
       has_table_privilege(r, 'dem.sampletablestg', 'SELECT,INSERT,UPDATE,DELETE,TRUNCATE') AS staging_any,
       has_table_privilege(r, 'campaign.schemas', 'SELECT') AS registry_select,
       has_table_privilege(r, 'campaign.schemas', 'INSERT,UPDATE,DELETE') AS registry_write,
       has_function_privilege(r, 'campaign.xtk_ingest(text)', 'EXECUTE') AS ingest,
       has_function_privilege(r, 'campaign.xtk_ingest_ext(xml)', 'EXECUTE') AS ingest_ext,
       has_function_privilege(r, 'campaign.register_schema(text,boolean)', 'EXECUTE') AS register
  FROM unnest(ARRAY['regress_campaign_ingester', 'regress_campaign_admin',
                    'regress_campaign_nobody']) AS r;

--
-- campaign_ingest with the rights on dem:sampleTableStg: ingest works, text
-- and xml, single records and collections, Ingest and IngestExt.
--
GRANT INSERT, UPDATE, DELETE ON dem.sampletablestg TO regress_campaign_ingester;
SET ROLE regress_campaign_ingester;
SELECT current_user;
SELECT is_uuid(xtk_ingest('<sampleTableStg testcol1="by the ingest role" xtkschema="dem:sampleTableStg"/>')) AS is_uuid;
SELECT is_uuid(xtk_ingest('<sampleTableStg testcol1="as xml" xtkschema="dem:sampleTableStg"/>'::xml)) AS is_uuid;
SELECT cardinality(string_to_array(xtk_ingest('<sampleTableStg-collection xtkschema="dem:sampleTableStg">
  <sampleTableStg testcol1="c1"/><sampleTableStg testcol1="c2"/></sampleTableStg-collection>'), ',')) AS returned;
SELECT xtk_ingest_ext('<sampleTableStg _key="@id" id="R1" testcol1="upsert" xtkschema="dem:sampleTableStg"/>');
SELECT xtk_ingest_ext('<sampleTableStg _key="@id" id="R1" _operation="delete" xtkschema="dem:sampleTableStg"/>'::xml);
-- Bad input gets the same errors as for anyone (the registry is read on
-- its behalf).
SELECT * FROM expect_error($$SELECT xtk_ingest('<sampleTableStg nosuch="1" xtkschema="dem:sampleTableStg"/>')$$);
SELECT * FROM expect_error($$SELECT xtk_ingest('<noSuchStg xtkschema="dem:noSuchStg"/>')$$);
-- describe() is allowed.
SELECT count(*) AS described FROM describe('dem:sampleTable');

-- It cannot read or write the staging table ...
SELECT * FROM expect_error('SELECT count(*) FROM dem.sampletablestg');
SELECT * FROM expect_error($$INSERT INTO dem.sampletablestg (_carried, testcol1) VALUES ('{testcol1}', 'direct')$$);
-- ... nor the registry ...
SELECT * FROM expect_error('SELECT * FROM campaign.schemas');
SELECT * FROM expect_error('SELECT * FROM campaign.attributes');
SELECT * FROM expect_error($$UPDATE campaign.schemas SET replicated_upto = 1000000$$);
SELECT * FROM expect_error($$INSERT INTO campaign.attributes VALUES ('dem', 'sampleTable', 99, 'x', 'x', 'string', 10, 'varchar(10)', NULL, NULL, false, false, NULL)$$);
-- ... and cannot register schemas.
SELECT * FROM expect_error($$SELECT register_schema('<srcSchema name="x" namespace="roles"><element name="x" autoStg="true"/></srcSchema>')$$);
RESET ROLE;

-- Even with USAGE on the schema dem, the table itself stays closed to it:
-- its INSERT, UPDATE and DELETE privileges meet row-level security
-- without policy, so a direct INSERT fails and UPDATE and DELETE find no
-- row.
GRANT USAGE ON SCHEMA dem TO regress_campaign_ingester;
SET ROLE regress_campaign_ingester;
SELECT * FROM expect_error('SELECT count(*) FROM dem.sampletablestg');
SELECT * FROM expect_error($$INSERT INTO dem.sampletablestg (_carried, testcol1) VALUES ('{testcol1}', 'direct')$$);
UPDATE dem.sampletablestg SET testcol1 = 'changed';
DELETE FROM dem.sampletablestg;
SELECT * FROM expect_error('TRUNCATE dem.sampletablestg');
RESET ROLE;
REVOKE USAGE ON SCHEMA dem FROM regress_campaign_ingester;

-- What the ingest role staged is there (and nothing else).
SELECT _operation, _key, id, testcol1 FROM dem.sampletablestg ORDER BY _stg_seq;

--
-- A role without the grant is refused.
--
SET ROLE regress_campaign_nobody;
-- not even the schema campaign is visible to it
SELECT * FROM expect_error($$SELECT campaign.xtk_ingest('<sampleTableStg testcol1="x" xtkschema="dem:sampleTableStg"/>')$$);
SELECT * FROM expect_error($$SELECT campaign.xtk_ingest_ext('<sampleTableStg _key="@id" id="x" xtkschema="dem:sampleTableStg"/>')$$);
SELECT * FROM expect_error($$SELECT campaign.register_schema('<srcSchema name="x" namespace="roles"><element name="x"/></srcSchema>')$$);
RESET ROLE;
-- with USAGE on the schema campaign, it is the function that is refused
GRANT USAGE ON SCHEMA campaign TO regress_campaign_nobody;
SET ROLE regress_campaign_nobody;
SELECT * FROM expect_error($$SELECT xtk_ingest('<sampleTableStg testcol1="x" xtkschema="dem:sampleTableStg"/>')$$);
SELECT * FROM expect_error($$SELECT xtk_ingest('<sampleTableStg testcol1="x" xtkschema="dem:sampleTableStg"/>'::xml)$$);
SELECT * FROM expect_error($$SELECT xtk_ingest_ext('<sampleTableStg _key="@id" id="x" xtkschema="dem:sampleTableStg"/>')$$);
SELECT * FROM expect_error($$SELECT xtk_ingest_ext('<sampleTableStg _key="@id" id="x" xtkschema="dem:sampleTableStg"/>'::xml)$$);
SELECT * FROM expect_error($$SELECT register_schema('<srcSchema name="x" namespace="roles"><element name="x"/></srcSchema>')$$);
SELECT * FROM expect_error($$SELECT * FROM describe('dem:sampleTable')$$);
RESET ROLE;
REVOKE USAGE ON SCHEMA campaign FROM regress_campaign_nobody;

--
-- campaign_admin registers schemas (the staging table belongs to the
-- extension's owner, not to the caller), reads the registry, and does not
-- ingest unless also granted campaign_ingest.
--
SET ROLE regress_campaign_admin;
SELECT register_schema($$
<srcSchema name="adminMade" namespace="roles" label="Registered by campaign_admin">
  <element name="adminMade" autoStg="true">
    <attribute name="code" type="string" length="10"/>
  </element>
</srcSchema>$$);
SELECT namespace, name, sql_schema, staging_table FROM campaign.schemas WHERE namespace = 'roles';
SELECT item, name, sql_name, type FROM describe('roles:adminMade');
SELECT * FROM expect_error($$SELECT xtk_ingest('<adminMadeStg code="x" xtkschema="roles:adminMadeStg"/>')$$);
SELECT * FROM expect_error($$UPDATE campaign.schemas SET replicated_upto = 0$$);
SELECT * FROM expect_error('SELECT count(*) FROM roles.adminmadestg');
RESET ROLE;
SELECT c.relowner = e.extowner AS owned_by_extension_owner,
       c.relowner <> 'regress_campaign_admin'::regrole AS not_owned_by_caller
  FROM pg_class c, pg_extension e
 WHERE c.oid = 'roles.adminmadestg'::regclass AND e.extname = 'campaign';

-- A new schema grants nothing to the ingest role ...
SET ROLE regress_campaign_ingester;
SELECT * FROM expect_error($$SELECT xtk_ingest('<adminMadeStg code="x" xtkschema="roles:adminMadeStg"/>')$$);
RESET ROLE;
-- ... until campaign_admin grants it (it holds the grant option).
SET ROLE regress_campaign_admin;
GRANT INSERT ON roles.adminmadestg TO regress_campaign_ingester;
RESET ROLE;
SET ROLE regress_campaign_ingester;
SELECT is_uuid(xtk_ingest('<adminMadeStg code="x" xtkschema="roles:adminMadeStg"/>')) AS is_uuid;
RESET ROLE;
SELECT code, _carried FROM roles.adminmadestg;
SET ROLE regress_campaign_admin;
REVOKE INSERT ON roles.adminmadestg FROM regress_campaign_ingester;
RESET ROLE;

-- Clean up the roles of this test.
REVOKE ALL ON dem.sampletablestg FROM regress_campaign_ingester;
DROP ROLE regress_campaign_ingester;
DROP ROLE regress_campaign_admin;
DROP ROLE regress_campaign_nobody;
