-- demo.sql — the SQL of the end-to-end demo (run by scripts/demo.sh with psql -e).
-- Creates the extension, registers a sample schema with staging, ingests single
-- records (insert, keyed insert, update, delete) and a 10,000-record batch, and
-- shows what is staged.

CREATE EXTENSION campaign CASCADE;   -- pulls in postgres_fdw

-- 1. The data model: a source schema with autoStg="true" gets a staging table.
SELECT campaign.register_schema($$<srcSchema name="sampleTable" namespace="dem" label="Sample table">
  <element name="sampleTable" autopk="true" autouuid="true" autoStg="true">
    <key name="id" internal="true"><keyfield xpath="@id"/></key>
    <attribute name="id" type="string" length="20" label="External id"/>
    <attribute name="testcol1" type="string" length="255"/>
    <attribute name="testcol2" type="string" length="255"/>
  </element>
</srcSchema>$$);
SELECT * FROM campaign.describe('dem:sampleTable');
\d dem.sampletablestg

-- 2. Single-record ingest (xtk.session.Ingest / IngestExt).
SET search_path = campaign, public;
-- no key: returns the generated UUID
SELECT xtk_ingest('<sampleTableStg testcol1="testValue1" testcol2="testValue2" xtkschema="dem:sampleTableStg"/>');
-- reconciliation key given: returns ''
SELECT xtk_ingest('<sampleTableStg _key="@id" id="ABC12345" testcol1="testValue A" testcol2="testValue B" xtkschema="dem:sampleTableStg"/>');
-- update by key: only testcol1 is carried, testcol2 stays unchanged
SELECT xtk_ingest_ext('<sampleTableStg _key="@id" id="ABC12345" testcol1="testValue A (updated)" xtkschema="dem:sampleTableStg"/>');
-- delete by key
SELECT xtk_ingest_ext('<sampleTableStg _key="@id" id="ABC12345" _operation="delete" xtkschema="dem:sampleTableStg"/>');

-- 3. Batch: one collection document of 10,000 records, ingested all or nothing.
CREATE TEMP TABLE batch AS
SELECT '<sampleTableStg-collection xtkschema="dem:sampleTableStg">'
       || string_agg(format('<sampleTableStg id="REC%s" testcol1="value %s" testcol2="batch"/>',
                            lpad(g::text, 5, '0'), g), '' ORDER BY g)
       || '</sampleTableStg-collection>' AS doc
FROM generate_series(1, 10000) AS g;
SELECT length(doc) AS document_bytes FROM batch;
\timing on
-- xtk_ingest returns the UUIDs in document order, comma-separated
SELECT cardinality(string_to_array(xtk_ingest(doc), ',')) AS uuids_returned FROM batch;
\timing off

-- 4. What is staged, waiting for replication to the cloud database.
SELECT * FROM dem.sampletablestg ORDER BY _stg_seq LIMIT 10;
SELECT _operation, count(*) FROM dem.sampletablestg GROUP BY _operation ORDER BY _operation;
SELECT count(*) AS staged_rows FROM dem.sampletablestg;
