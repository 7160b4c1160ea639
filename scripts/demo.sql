-- demo.sql — the SQL of the end-to-end demo (run by scripts/demo.sh with psql -e,
-- with the variables cloud_host and cloud_port naming the cloud cluster).
-- Creates the extension, declares the cloud database, registers and deploys a
-- sample schema, ingests single records (insert, keyed insert, update, delete)
-- and a 10,000-record batch, and shows them staged, then replicated to the cloud.

CREATE EXTENSION campaign CASCADE;   -- pulls in postgres_fdw

-- 0. The cloud database: a postgres_fdw server named ffda (campaign.cloud_server).
CREATE SERVER ffda FOREIGN DATA WRAPPER postgres_fdw
    OPTIONS (host :'cloud_host', port :'cloud_port', dbname 'postgres');
CREATE USER MAPPING FOR PUBLIC SERVER ffda;

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
-- "Deploy FFDA immediately": the cloud table, and a local foreign table over it.
SELECT campaign.deploy('dem:sampleTable');

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

-- 4. What was staged.
SELECT * FROM dem.sampletablestg ORDER BY _stg_seq LIMIT 10;
SELECT _operation, count(*) FROM dem.sampletablestg GROUP BY _operation ORDER BY _operation;

-- 5. The worker replicates continuously (each ingest commit wakes it):
--    wait until nothing is pending.
DO $$
BEGIN
    FOR i IN 1..300 LOOP
        EXIT WHEN (SELECT pending = 0 FROM campaign.staging_status
                    WHERE schema_name = 'dem:sampleTable');
        PERFORM pg_sleep(0.1);
    END LOOP;
END
$$;
SELECT * FROM campaign.staging_status WHERE schema_name = 'dem:sampleTable';
SELECT schema_name, rows, inserts, upserts, updates, deletes, rejected, outcome,
       finished_at - started_at AS duration
  FROM campaign.replication_history ORDER BY id;

-- 6. The rows in the cloud, through the local foreign table dem.sampletable:
--    ABC12345 was inserted, updated and deleted, so it is not there.
SELECT count(*) AS rows_in_cloud FROM dem.sampletable;
SELECT * FROM dem.sampletable ORDER BY id NULLS FIRST LIMIT 5;
SELECT count(*) AS abc12345_in_cloud FROM dem.sampletable WHERE id = 'ABC12345';
