--
-- 07_collections: batch documents <sampleTableStg-collection>: UUIDs
-- returned in document order, values as attributes and as child elements
-- (CDATA), _key/_operation per record and per collection, all or nothing.
-- Uses dem:sampleTable (registered by 05_describe).
--
SET search_path = public, campaign;
\pset null '(null)'
TRUNCATE dem.sampletablestg;

--
-- Order: xtk_ingest returns the UUIDs comma-separated in document order;
-- joined with the staged rows, they come in the order of _stg_seq.
--
SELECT xtk_ingest('<sampleTableStg-collection xtkschema="dem:sampleTableStg">
  <sampleTableStg id="R1" testcol1="first"/>
  <sampleTableStg id="R2" testcol1="second"/>
  <sampleTableStg id="R3" testcol1="third"/>
  <sampleTableStg id="R4" testcol1="fourth"/>
  <sampleTableStg id="R5" testcol1="fifth"/>
</sampleTableStg-collection>') AS uuids \gset
SELECT cardinality(string_to_array(:'uuids', ',')) AS returned,
       bool_and(is_uuid(u)) AS all_uuids
  FROM unnest(string_to_array(:'uuids', ',')) AS u;
SELECT u.ord AS position_in_result, s.id, s.testcol1,
       rank() OVER (ORDER BY s._stg_seq) AS staging_order, s._operation, s._carried
  FROM unnest(string_to_array(:'uuids', ',')) WITH ORDINALITY AS u(uuid, ord)
  JOIN dem.sampletablestg s ON s._uuid = u.uuid::uuid
 ORDER BY u.ord;
SELECT count(*) AS staged FROM dem.sampletablestg;

-- Whitespace and comments between records are fine; an empty collection
-- stages nothing and returns ''.
SELECT quote_nullable(xtk_ingest('<sampleTableStg-collection xtkschema="dem:sampleTableStg">
  <!-- nothing here -->
</sampleTableStg-collection>')) AS result;
SELECT quote_nullable(xtk_ingest('<sampleTableStg-collection xtkschema="dem:sampleTableStg"/>')) AS result;
SELECT count(*) AS staged FROM dem.sampletablestg;

--
-- Values as attributes or as child elements (memo-like fields), CDATA
-- allowed, mixed with text and entities; comments are ignored.
--
TRUNCATE dem.sampletablestg;
SELECT cardinality(string_to_array(xtk_ingest($$<sampleTableStg-collection xtkschema="dem:sampleTableStg">
  <sampleTableStg id="C1" testcol1="as attribute"><notes>long text</notes></sampleTableStg>
  <sampleTableStg id="C2"><testcol1>as element</testcol1><score>42</score><notes><![CDATA[<b>bold</b> & <i>more</i>]]></notes></sampleTableStg>
  <sampleTableStg id="C3"><notes>text, <![CDATA[<cdata/>]]>, &amp; &lt;entities&gt; &#65;</notes></sampleTableStg>
  <sampleTableStg id="C4"><notes><!-- a comment -->after a comment</notes><testcol2></testcol2></sampleTableStg>
  <sampleTableStg id="C5">
    <notes>line 1
line 2</notes>
    <testcol1>  spaces kept  </testcol1>
  </sampleTableStg>
</sampleTableStg-collection>$$), ',')) AS returned;
SELECT id, testcol1, testcol2, score, notes, _carried
  FROM dem.sampletablestg ORDER BY _stg_seq;

--
-- _key and _operation: on each record, or on the collection as a default
-- for its records.
--
TRUNCATE dem.sampletablestg;

-- Ingest: only the records without a key get a UUID back, still in order.
SELECT xtk_ingest('<sampleTableStg-collection xtkschema="dem:sampleTableStg">
  <sampleTableStg testcol1="no key 1"/>
  <sampleTableStg _key="@id" id="K1" testcol1="keyed"/>
  <sampleTableStg testcol1="no key 2"/>
</sampleTableStg-collection>') AS uuids \gset
SELECT u.ord, s.testcol1
  FROM unnest(string_to_array(:'uuids', ',')) WITH ORDINALITY AS u(uuid, ord)
  JOIN dem.sampletablestg s ON s._uuid = u.uuid::uuid
 ORDER BY u.ord;
-- _key on the collection: every record is keyed, nothing is returned.
SELECT quote_nullable(xtk_ingest('<sampleTableStg-collection xtkschema="dem:sampleTableStg" _key="@id">
  <sampleTableStg id="K2" testcol1="a"/>
  <sampleTableStg id="K3" testcol1="b"/>
</sampleTableStg-collection>')) AS result;

-- IngestExt: per-record operations, the collection's _key as default, a
-- record overriding it.
SELECT xtk_ingest_ext('<sampleTableStg-collection xtkschema="dem:sampleTableStg" _key="@id">
  <sampleTableStg id="K1" testcol1="upserted"/>
  <sampleTableStg id="K2" _operation="update" testcol2="updated"/>
  <sampleTableStg id="K3" _operation="delete"/>
  <sampleTableStg _key="@testcol1" testcol1="by another key" score="1"/>
  <sampleTableStg id="K4" _operation="insert" testcol1="inserted"/>
</sampleTableStg-collection>');
-- _operation on the collection as default.
SELECT xtk_ingest_ext('<sampleTableStg-collection xtkschema="dem:sampleTableStg" _key="@id" _operation="delete">
  <sampleTableStg id="K5"/>
  <sampleTableStg id="K6"/>
  <sampleTableStg id="K7" _operation="insertOrUpdate" score="7"/>
</sampleTableStg-collection>');
SELECT _operation, _key, id, testcol1, testcol2, score, _carried
  FROM dem.sampletablestg ORDER BY _stg_seq;

--
-- All or nothing: an error in record 3 of 5 stages nothing, and the error
-- names the record and the attribute.
--
TRUNCATE dem.sampletablestg;
SELECT * FROM expect_error($$SELECT xtk_ingest('<sampleTableStg-collection xtkschema="dem:sampleTableStg">
  <sampleTableStg id="A1" score="1"/>
  <sampleTableStg id="A2" score="2"/>
  <sampleTableStg id="A3" score="three"/>
  <sampleTableStg id="A4" score="4"/>
  <sampleTableStg id="A5" score="5"/>
</sampleTableStg-collection>')$$);
SELECT * FROM expect_error($$SELECT xtk_ingest_ext('<sampleTableStg-collection xtkschema="dem:sampleTableStg" _key="@id">
  <sampleTableStg id="A1" score="1"/>
  <sampleTableStg id="A2" score="2"/>
  <sampleTableStg id="A3" nosuch="x"/>
  <sampleTableStg id="A4" score="4"/>
  <sampleTableStg id="A5" score="5"/>
</sampleTableStg-collection>')$$);
-- the error is in the last record
SELECT * FROM expect_error($$SELECT xtk_ingest('<sampleTableStg-collection xtkschema="dem:sampleTableStg">
  <sampleTableStg id="A1"/>
  <sampleTableStg id="A2"/>
  <sampleTableStg id="A3"/>
  <sampleTableStg id="A4"/>
  <sampleTableStg id="this id is far too long for its 20 characters"/>
</sampleTableStg-collection>')$$);
SELECT count(*) AS staged FROM dem.sampletablestg;

-- Staging is transactional: rows staged in a transaction that rolls back
-- (or in a subtransaction rolled back to its savepoint) are gone.
BEGIN;
SELECT cardinality(string_to_array(xtk_ingest('<sampleTableStg-collection xtkschema="dem:sampleTableStg">
  <sampleTableStg id="T1"/><sampleTableStg id="T2"/><sampleTableStg id="T3"/></sampleTableStg-collection>'), ',')) AS returned;
SELECT count(*) AS staged_in_transaction FROM dem.sampletablestg;
ROLLBACK;
SELECT count(*) AS staged_after_rollback FROM dem.sampletablestg;
BEGIN;
SAVEPOINT s;
SELECT xtk_ingest_ext('<sampleTableStg _key="@id" id="T4" xtkschema="dem:sampleTableStg"/>');
ROLLBACK TO SAVEPOINT s;
SELECT xtk_ingest_ext('<sampleTableStg _key="@id" id="T5" xtkschema="dem:sampleTableStg"/>');
COMMIT;
SELECT id FROM dem.sampletablestg;
TRUNCATE dem.sampletablestg;

--
-- A large collection (2,500 records: several write chunks): every record
-- staged once, UUIDs distinct and in document order.
--
SELECT '<sampleTableStg-collection xtkschema="dem:sampleTableStg">'
       || string_agg(format('<sampleTableStg id="B%s" score="%s"/>', g, g), '' ORDER BY g)
       || '</sampleTableStg-collection>' AS doc
  FROM generate_series(1, 2500) AS g \gset
SELECT xtk_ingest(:'doc') AS uuids \gset
SELECT count(*) AS returned, count(DISTINCT u.uuid) AS distinct_uuids,
       bool_and(s.score = u.ord) AS document_order,
       bool_and(s.id = 'B' || u.ord) AS ids_match
  FROM unnest(string_to_array(:'uuids', ',')) WITH ORDINALITY AS u(uuid, ord)
  JOIN dem.sampletablestg s ON s._uuid = u.uuid::uuid;
SELECT bool_and(rn = score) AS staging_order_is_document_order
  FROM (SELECT score, row_number() OVER (ORDER BY _stg_seq) AS rn FROM dem.sampletablestg) x;

-- An error in record 2,400, after the first chunks were written, still
-- stages nothing.
TRUNCATE dem.sampletablestg;
SELECT * FROM expect_error(format('SELECT xtk_ingest(%L)',
    replace(:'doc', 'id="B2400" score="2400"', 'id="B2400" score="2400x"')));
SELECT count(*) AS staged FROM dem.sampletablestg;

-- A collection given as xml.
SELECT cardinality(string_to_array(xtk_ingest('<sampleTableStg-collection xtkschema="dem:sampleTableStg">
  <sampleTableStg id="X1"/><sampleTableStg id="X2"/></sampleTableStg-collection>'::xml), ',')) AS returned;

--
-- Collection documents that are refused.
--
-- the collection element does not match xtkschema
SELECT * FROM expect_error($$SELECT xtk_ingest('<otherStg-collection xtkschema="dem:sampleTableStg"><sampleTableStg id="E1"/></otherStg-collection>')$$);
-- a record that is not a <sampleTableStg>
SELECT * FROM expect_error($$SELECT xtk_ingest('<sampleTableStg-collection xtkschema="dem:sampleTableStg"><sampleTableStg id="E1"/><recipientStg id="E2"/></sampleTableStg-collection>')$$);
-- a record naming another xtkschema
SELECT * FROM expect_error($$SELECT xtk_ingest('<sampleTableStg-collection xtkschema="dem:sampleTableStg"><sampleTableStg id="E1" xtkschema="nms:recipientStg"/></sampleTableStg-collection>')$$);
-- text between records
SELECT * FROM expect_error($$SELECT xtk_ingest('<sampleTableStg-collection xtkschema="dem:sampleTableStg"><sampleTableStg id="E1"/>stray text</sampleTableStg-collection>')$$);
-- text inside a record, an element inside a value, a value given twice
SELECT * FROM expect_error($$SELECT xtk_ingest('<sampleTableStg-collection xtkschema="dem:sampleTableStg"><sampleTableStg id="E1">stray text</sampleTableStg></sampleTableStg-collection>')$$);
SELECT * FROM expect_error($$SELECT xtk_ingest('<sampleTableStg-collection xtkschema="dem:sampleTableStg"><sampleTableStg id="E1"><notes><b>bold</b></notes></sampleTableStg></sampleTableStg-collection>')$$);
SELECT * FROM expect_error($$SELECT xtk_ingest('<sampleTableStg-collection xtkschema="dem:sampleTableStg"><sampleTableStg id="E1"><id>E2</id></sampleTableStg></sampleTableStg-collection>')$$);
-- Ingest only inserts, also when the collection says otherwise
SELECT * FROM expect_error($$SELECT xtk_ingest('<sampleTableStg-collection xtkschema="dem:sampleTableStg" _operation="delete"><sampleTableStg _key="@id" id="E1"/></sampleTableStg-collection>')$$);
-- IngestExt: a record without key in a collection without key
SELECT * FROM expect_error($$SELECT xtk_ingest_ext('<sampleTableStg-collection xtkschema="dem:sampleTableStg"><sampleTableStg _key="@id" id="E1"/><sampleTableStg id="E2"/></sampleTableStg-collection>')$$);
SELECT count(*) AS staged FROM dem.sampletablestg;
