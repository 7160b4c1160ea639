--
-- 06_seeds_workflow: every example of seeds/004 (Campaign v8's new APIs,
-- xtk.session.Ingest and IngestExt, in a workflow and inside SOAP calls)
-- and of SPEC §3, with the documented result and the staged rows
-- (_operation, _key, _carried, values) checked.
--
SET search_path = public, campaign;
\pset null '(null)'

-- The schema of the examples (SPEC §2), as 05_describe registered it:
-- registering it again changes nothing.
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

-- The staged rows, in staging order.
CREATE TEMP VIEW staged AS
    SELECT row_number() OVER (ORDER BY _stg_seq) AS n, _operation, _key, _carried,
           id, testcol1, testcol2
      FROM dem.sampletablestg;

--
-- "Insert without reconciliation", in a workflow:
--   strUuid = xtk.session.Ingest(<sampleTableStg testcol1="testValue1" ...>);
-- returns the UUID of the staged row.
--
SELECT xtk_ingest('<sampleTableStg
                                testcol1="testValue1"
                                testcol2="testValue2"
                                xtkschema="dem:sampleTableStg">
                            </sampleTableStg>') AS uuid \gset
SELECT is_uuid(:'uuid') AS is_uuid,
       (SELECT _uuid FROM dem.sampletablestg ORDER BY _stg_seq DESC LIMIT 1) = :'uuid'::uuid
           AS is_the_staged_uuid;
SELECT * FROM staged ORDER BY n DESC LIMIT 1;

-- The same from a SOAP call (the domDoc of the Ingest payload); the
-- response's pstrSUuids is that UUID.
SELECT xtk_ingest('<sampleTableStg
                   testcol1="Test Value 1 (from SOAP)"
                   testcol2="Test Value 2 (from SOAP)"
                   xtkschema="dem:sampleTableStg">
               </sampleTableStg>') AS uuid \gset
SELECT is_uuid(:'uuid') AS is_uuid,
       (SELECT _uuid FROM dem.sampletablestg ORDER BY _stg_seq DESC LIMIT 1) = :'uuid'::uuid
           AS is_the_staged_uuid;
SELECT * FROM staged ORDER BY n DESC LIMIT 1;

--
-- "Insert with reconciliation": _key="@id" is given, so no UUID is sent
-- back (pstrSUuids is empty).  The staged row still has its internal UUID.
--
SELECT quote_nullable(xtk_ingest('<sampleTableStg  _key="@id" id="ABC12345"
                              testcol1="testValue1"
                              testcol2="testValue2"
                              xtkschema="dem:sampleTableStg">
                            </sampleTableStg>')) AS result;
SELECT * FROM staged ORDER BY n DESC LIMIT 1;
SELECT _uuid IS NOT NULL AS has_uuid FROM dem.sampletablestg ORDER BY _stg_seq DESC LIMIT 1;

-- Its SOAP form.
SELECT quote_nullable(xtk_ingest('<sampleTableStg  _key="@id" id="ABDCD321"
                testcol1="Test Value 1 (from SOAP)"
                testcol2="Test Value 2 (from SOAP)"
                xtkschema="dem:sampleTableStg">
            </sampleTableStg>')) AS result;
SELECT * FROM staged ORDER BY n DESC LIMIT 1;

-- "Insert works whether or not the record key exists in the staging
-- table": the same key again is staged again, in order.
SELECT quote_nullable(xtk_ingest('<sampleTableStg _key="@id" id="ABC12345" testcol1="testValue1 again" xtkschema="dem:sampleTableStg"/>')) AS result;

--
-- "Update" with IngestExt, in a workflow:
--   xtk.session.IngestExt(<sampleTableStg _key="@id" id="ABC12345" ...>);
-- IngestExt returns nothing (empty IngestExtResponse).
--
SELECT xtk_ingest_ext('<sampleTableStg  _key="@id" id="ABC12345"
                              testcol1="testValue A (updated)"
                              testcol2="testValue B (updated)"
                              xtkschema="dem:sampleTableStg">
                            </sampleTableStg>');
SELECT * FROM staged ORDER BY n DESC LIMIT 1;

-- Its SOAP form.
SELECT xtk_ingest_ext('<sampleTableStg  _key="@id" id="ABDCD321"
                   testcol1="Test Value E (from SOAP)"
                   testcol2="Test Value F (from SOAP)"
                   xtkschema="dem:sampleTableStg">
               </sampleTableStg>');
SELECT * FROM staged ORDER BY n DESC LIMIT 1;

--
-- SPEC §3: an update carries only the attributes present (testcol2 is not
-- carried, so it will stay unchanged in the cloud), then a delete by key.
--
SELECT xtk_ingest_ext('<sampleTableStg _key="@id" id="ABC12345" testcol1="updated" xtkschema="dem:sampleTableStg"/>');
SELECT * FROM staged ORDER BY n DESC LIMIT 1;
SELECT xtk_ingest_ext('<sampleTableStg _key="@id" id="ABC12345" _operation="delete" xtkschema="dem:sampleTableStg"/>');
SELECT * FROM staged ORDER BY n DESC LIMIT 1;

-- The other operations of IngestExt: insert and update; and an explicit
-- _operation="insert" is accepted by Ingest.
SELECT xtk_ingest_ext('<sampleTableStg _key="@id" id="NEW1" _operation="insert" testcol1="new" xtkschema="dem:sampleTableStg"/>');
SELECT xtk_ingest_ext('<sampleTableStg _key="@id" id="NEW1" _operation="update" testcol2="upd" xtkschema="dem:sampleTableStg"/>');
SELECT xtk_ingest_ext('<sampleTableStg _key="@id" id="NEW1" _operation="insertOrUpdate" testcol2="ups" xtkschema="dem:sampleTableStg"/>');
SELECT is_uuid(xtk_ingest('<sampleTableStg _operation="insert" testcol1="explicit insert" xtkschema="dem:sampleTableStg"/>')) AS is_uuid;

-- Every change staged so far, in order: the changes of one key keep the
-- order they were ingested in.
SELECT * FROM staged ORDER BY n;
SELECT n, _operation, _carried FROM staged WHERE id = 'ABC12345' ORDER BY n;

-- Every staged row has its own UUID, a _lastmodified set at ingest, and no
-- replication error.
SELECT count(*) AS rows, count(DISTINCT _uuid) AS distinct_uuids,
       bool_and(_lastmodified BETWEEN now() - interval '1 hour' AND clock_timestamp()) AS lastmodified_ok,
       count(_stg_error) AS errors
  FROM dem.sampletablestg;

--
-- Both functions take xml as well as text.
--
SELECT is_uuid(xtk_ingest('<sampleTableStg testcol1="as xml" xtkschema="dem:sampleTableStg"/>'::xml)) AS is_uuid;
SELECT quote_nullable(xtk_ingest('<sampleTableStg _key="@id" id="X1" testcol1="as xml, keyed" xtkschema="dem:sampleTableStg"/>'::xml)) AS result;
SELECT xtk_ingest_ext(XMLPARSE(DOCUMENT '<sampleTableStg _key="@id" id="X1" _operation="delete" xtkschema="dem:sampleTableStg"/>'));
SELECT xtk_ingest_ext(xmlelement(name "sampleTableStg",
                                 xmlattributes('@id' AS "_key", 'X2' AS id, 'built with xmlelement' AS testcol1,
                                               'dem:sampleTableStg' AS xtkschema)));
SELECT * FROM staged ORDER BY n DESC LIMIT 4;
