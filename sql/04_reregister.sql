--
-- 04_reregister: registering a schema again evolves its staging table:
-- added attribute -> column added; removed attribute -> column dropped
-- (refused while unreplicated staged rows carry it, unless force => true);
-- type/length change; sqlname/sqltable change; removing autoStg drops the
-- staging table (refused while it holds unreplicated rows, unless forced);
-- a rolled-back re-registration; rebuilding what was dropped by hand.
--
SET search_path = public, campaign;
\pset null '(null)'

-- The attribute columns of a staging table (after the 7 internal members).
CREATE FUNCTION pg_temp.cols(t regclass)
RETURNS TABLE (col name, type text) LANGUAGE sql AS $$
    SELECT attname, format_type(atttypid, atttypmod)
      FROM pg_attribute
     WHERE attrelid = t AND attnum > 7 AND NOT attisdropped
     ORDER BY attnum
$$;

-- Version 1.
SELECT register_schema($$
<srcSchema name="person" namespace="evo">
  <element name="person" autoStg="true">
    <attribute name="id" type="string" length="20"/>
    <attribute name="name" type="string" length="50"/>
    <attribute name="age" type="short"/>
    <attribute name="code" type="string" length="10"/>
    <attribute name="bio" type="memo"/>
    <attribute name="old" type="string" length="10"/>
  </element>
</srcSchema>$$);
SELECT * FROM pg_temp.cols('evo.personstg');

-- Two staged rows: the first carries "old", the second does not; nobody
-- ever carried "bio".
SELECT xtk_ingest('<personStg xtkschema="evo:personStg" id="P1" name="Alice" age="31" code="42" old="legacy"/>') <> '' AS staged;
SELECT xtk_ingest('<personStg xtkschema="evo:personStg" id="P2" name="Bob" code="7"/>') <> '' AS staged;

-- Registering the same schema again changes nothing.
SELECT register_schema($$
<srcSchema name="person" namespace="evo">
  <element name="person" autoStg="true">
    <attribute name="id" type="string" length="20"/>
    <attribute name="name" type="string" length="50"/>
    <attribute name="age" type="short"/>
    <attribute name="code" type="string" length="10"/>
    <attribute name="bio" type="memo"/>
    <attribute name="old" type="string" length="10"/>
  </element>
</srcSchema>$$);
SELECT * FROM pg_temp.cols('evo.personstg');

--
-- Added attribute -> column added; the new attribute can be ingested at
-- once (the registry cache of this session is invalidated).
--
SELECT register_schema($$
<srcSchema name="person" namespace="evo">
  <element name="person" autoStg="true">
    <attribute name="id" type="string" length="20"/>
    <attribute name="name" type="string" length="50"/>
    <attribute name="age" type="short"/>
    <attribute name="code" type="string" length="10"/>
    <attribute name="bio" type="memo"/>
    <attribute name="old" type="string" length="10"/>
    <attribute name="email" type="string" length="80" label="E-mail"/>
  </element>
</srcSchema>$$);
SELECT * FROM pg_temp.cols('evo.personstg');
SELECT col_description('evo.personstg'::regclass, 14) AS email_comment;
SELECT xtk_ingest('<personStg xtkschema="evo:personStg" id="P3" email="p3@example.com"/>') <> '' AS staged;
SELECT id, name, email, _carried FROM evo.personstg ORDER BY _stg_seq;

--
-- Removed attribute -> column dropped.  "old" is carried by a staged row
-- that is not replicated yet: refused, and nothing changes.
--
SELECT * FROM expect_error($$SELECT register_schema('
<srcSchema name="person" namespace="evo">
  <element name="person" autoStg="true">
    <attribute name="id" type="string" length="20"/>
    <attribute name="name" type="string" length="50"/>
    <attribute name="age" type="short"/>
    <attribute name="code" type="string" length="10"/>
    <attribute name="bio" type="memo"/>
    <attribute name="email" type="string" length="80" label="E-mail"/>
  </element>
</srcSchema>')$$);
SELECT * FROM pg_temp.cols('evo.personstg');
SELECT count(*) AS registered_attributes FROM campaign.attributes WHERE namespace = 'evo';

-- "bio" is carried by no staged row: dropped without force.
SELECT register_schema($$
<srcSchema name="person" namespace="evo">
  <element name="person" autoStg="true">
    <attribute name="id" type="string" length="20"/>
    <attribute name="name" type="string" length="50"/>
    <attribute name="age" type="short"/>
    <attribute name="code" type="string" length="10"/>
    <attribute name="old" type="string" length="10"/>
    <attribute name="email" type="string" length="80" label="E-mail"/>
  </element>
</srcSchema>$$);
SELECT * FROM pg_temp.cols('evo.personstg');

-- force => true drops "old" and its staged values.
SELECT register_schema($$
<srcSchema name="person" namespace="evo">
  <element name="person" autoStg="true">
    <attribute name="id" type="string" length="20"/>
    <attribute name="name" type="string" length="50"/>
    <attribute name="age" type="short"/>
    <attribute name="code" type="string" length="10"/>
    <attribute name="email" type="string" length="80" label="E-mail"/>
  </element>
</srcSchema>$$, force => true);
SELECT * FROM pg_temp.cols('evo.personstg');
SELECT count(*) AS staged_rows_kept FROM evo.personstg;
-- The dropped attribute is no longer accepted.
SELECT * FROM expect_error($$SELECT xtk_ingest('<personStg xtkschema="evo:personStg" id="P4" old="x"/>')$$);

--
-- Type and length changes: the column changes type, staged values are
-- converted.  string(50) -> string(100), short -> long, string -> int64.
--
SELECT register_schema($$
<srcSchema name="person" namespace="evo">
  <element name="person" autoStg="true">
    <attribute name="id" type="string" length="20"/>
    <attribute name="name" type="string" length="100"/>
    <attribute name="age" type="long"/>
    <attribute name="code" type="int64"/>
    <attribute name="email" type="string" length="80" label="E-mail"/>
  </element>
</srcSchema>$$);
SELECT * FROM pg_temp.cols('evo.personstg');
SELECT id, name, age, code, pg_typeof(code) FROM evo.personstg ORDER BY _stg_seq;
SELECT attribute, type, length, sql_type FROM campaign.attributes
 WHERE namespace = 'evo' ORDER BY position;
-- New values are checked against the new types.
SELECT xtk_ingest(format('<personStg xtkschema="evo:personStg" id="P5" name="%s" code="9000000000"/>',
                         repeat('n', 100))) <> '' AS staged;
SELECT * FROM expect_error($$SELECT xtk_ingest('<personStg xtkschema="evo:personStg" id="P6" code="x"/>')$$);

-- A type change the staged values cannot take is refused as a whole: the
-- column and the registry keep the old type.
SELECT xtk_ingest('<personStg xtkschema="evo:personStg" id="P7" email="not a number"/>') <> '' AS staged;
SELECT * FROM expect_error($$SELECT register_schema('
<srcSchema name="person" namespace="evo">
  <element name="person" autoStg="true">
    <attribute name="id" type="string" length="20"/>
    <attribute name="name" type="string" length="100"/>
    <attribute name="age" type="long"/>
    <attribute name="code" type="int64"/>
    <attribute name="email" type="long"/>
  </element>
</srcSchema>')$$, false);
SELECT * FROM pg_temp.cols('evo.personstg');
SELECT type, sql_type FROM campaign.attributes WHERE namespace = 'evo' AND attribute = 'email';

-- Shrinking a string below the length of staged values must not truncate
-- them: the re-registration is refused and the values are kept.  (Only
-- whether it is refused is shown, not the wording of the error.)
SELECT e LIKE 'ERROR %' AS refused FROM expect_error($$SELECT register_schema('
<srcSchema name="person" namespace="evo">
  <element name="person" autoStg="true">
    <attribute name="id" type="string" length="20"/>
    <attribute name="name" type="string" length="3"/>
    <attribute name="age" type="long"/>
    <attribute name="code" type="int64"/>
    <attribute name="email" type="string" length="80" label="E-mail"/>
  </element>
</srcSchema>')$$, false) AS e;
SELECT format_type(atttypid, atttypmod) AS name_type
  FROM pg_attribute WHERE attrelid = 'evo.personstg'::regclass AND attname = 'name';
SELECT id, name FROM evo.personstg WHERE id IN ('P1', 'P2') ORDER BY _stg_seq;

--
-- sqlname and sqltable changes rename the column and the table; the staged
-- rows stay, and ingest follows the new names.
--
SELECT register_schema($$
<srcSchema name="person" namespace="evo">
  <element name="person" autoStg="true" sqltable="people">
    <attribute name="id" type="string" length="20" sqlname="personId"/>
    <attribute name="name" type="string" length="100"/>
    <attribute name="age" type="long"/>
    <attribute name="code" type="int64"/>
    <attribute name="email" type="string" length="80" label="E-mail"/>
  </element>
</srcSchema>$$);
SELECT to_regclass('evo.personstg') AS old_table, to_regclass('evo.peoplestg') AS new_table;
SELECT * FROM pg_temp.cols('evo.peoplestg');
SELECT xtk_ingest('<personStg xtkschema="evo:personStg" id="P8" name="renamed"/>') <> '' AS staged;
SELECT personid, left(name, 10) AS name, length(name) FROM evo.peoplestg ORDER BY _stg_seq;

--
-- A required attribute or a default added by re-registration applies at
-- once, although the table itself does not change.
--
SELECT register_schema($$
<srcSchema name="person" namespace="evo">
  <element name="person" autoStg="true" sqltable="people">
    <attribute name="id" type="string" length="20" sqlname="personId" required="true"/>
    <attribute name="name" type="string" length="100" default="'anonymous'"/>
    <attribute name="age" type="long"/>
    <attribute name="code" type="int64"/>
    <attribute name="email" type="string" length="80" label="E-mail"/>
  </element>
</srcSchema>$$);
SELECT * FROM expect_error($$SELECT xtk_ingest('<personStg xtkschema="evo:personStg" age="1"/>')$$);
SELECT xtk_ingest('<personStg xtkschema="evo:personStg" id="P9"/>') <> '' AS staged;
SELECT personid, name, _carried FROM evo.peoplestg ORDER BY _stg_seq DESC LIMIT 1;

--
-- The watermark: rows up to campaign.schemas.replicated_upto have reached
-- the cloud (the replication worker advances it; here it is set by hand).
-- Removing an attribute carried only by replicated rows needs no force.
--
UPDATE campaign.schemas SET replicated_upto = (SELECT max(_stg_seq) FROM evo.peoplestg)
 WHERE namespace = 'evo' AND name = 'person';
SELECT register_schema($$
<srcSchema name="person" namespace="evo">
  <element name="person" autoStg="true" sqltable="people">
    <attribute name="id" type="string" length="20" sqlname="personId" required="true"/>
    <attribute name="name" type="string" length="100" default="'anonymous'"/>
    <attribute name="code" type="int64"/>
    <attribute name="email" type="string" length="80" label="E-mail"/>
  </element>
</srcSchema>$$);
SELECT * FROM pg_temp.cols('evo.peoplestg');

--
-- Removing autoStg drops the staging table, but not while it holds rows
-- not replicated yet.
--
SELECT xtk_ingest('<personStg xtkschema="evo:personStg" id="P10"/>') <> '' AS staged;
SELECT * FROM expect_error($$SELECT register_schema('
<srcSchema name="person" namespace="evo">
  <element name="person">
    <attribute name="id" type="string" length="20" sqlname="personId" required="true"/>
    <attribute name="name" type="string" length="100" default="''anonymous''"/>
    <attribute name="code" type="int64"/>
    <attribute name="email" type="string" length="80" label="E-mail"/>
  </element>
</srcSchema>')$$);
SELECT to_regclass('evo.peoplestg') AS still_there, count(*) AS rows_kept FROM evo.peoplestg;

-- With force => true (xml argument here), it is dropped; ingest then fails.
SELECT register_schema($$
<srcSchema name="person" namespace="evo">
  <element name="person">
    <attribute name="id" type="string" length="20" sqlname="personId" required="true"/>
    <attribute name="name" type="string" length="100" default="'anonymous'"/>
    <attribute name="code" type="int64"/>
    <attribute name="email" type="string" length="80" label="E-mail"/>
  </element>
</srcSchema>$$::xml, force => true);
SELECT to_regclass('evo.peoplestg') AS dropped;
SELECT sql_table, staging_table FROM campaign.schemas WHERE namespace = 'evo';
SELECT * FROM expect_error($$SELECT xtk_ingest('<personStg xtkschema="evo:personStg" id="P11"/>')$$);

-- autoStg again: a new, empty staging table.
SELECT register_schema($$
<srcSchema name="person" namespace="evo">
  <element name="person" autoStg="true" sqltable="people">
    <attribute name="id" type="string" length="20" sqlname="personId" required="true"/>
    <attribute name="name" type="string" length="100" default="'anonymous'"/>
    <attribute name="code" type="int64"/>
    <attribute name="email" type="string" length="80" label="E-mail"/>
  </element>
</srcSchema>$$);
SELECT count(*) AS rows_in_new_table FROM evo.peoplestg;
SELECT * FROM pg_temp.cols('evo.peoplestg');

-- A row staged in the new table has not reached the cloud: the watermark of
-- the dropped table must not count it as replicated, so removing autoStg is
-- refused again.
SELECT xtk_ingest('<personStg xtkschema="evo:personStg" id="P12"/>') <> '' AS staged;
SELECT * FROM expect_error($$SELECT register_schema('
<srcSchema name="person" namespace="evo">
  <element name="person">
    <attribute name="id" type="string" length="20" sqlname="personId" required="true"/>
  </element>
</srcSchema>')$$, false);
SELECT to_regclass('evo.peoplestg') AS still_there;

-- An empty staging table is dropped without force.
TRUNCATE evo.peoplestg;
SELECT register_schema($$
<srcSchema name="person" namespace="evo">
  <element name="person">
    <attribute name="id" type="string" length="20" sqlname="personId" required="true"/>
  </element>
</srcSchema>$$);
SELECT to_regclass('evo.peoplestg') AS dropped;

--
-- Transactions: a re-registration that is rolled back leaves no trace, not
-- even in this session's registry cache.
--
SELECT register_schema($$
<srcSchema name="tx" namespace="evo">
  <element name="tx" autoStg="true"><attribute name="a"/></element>
</srcSchema>$$);
SELECT xtk_ingest('<txStg xtkschema="evo:txStg" a="1"/>') <> '' AS staged;
BEGIN;
SELECT register_schema($$
<srcSchema name="tx" namespace="evo">
  <element name="tx" autoStg="true"><attribute name="a"/><attribute name="b" type="long"/></element>
</srcSchema>$$);
SELECT xtk_ingest('<txStg xtkschema="evo:txStg" a="2" b="2"/>') <> '' AS staged_with_new_attribute;
ROLLBACK;
SELECT * FROM pg_temp.cols('evo.txstg');
SELECT * FROM expect_error($$SELECT xtk_ingest('<txStg xtkschema="evo:txStg" a="3" b="3"/>')$$);
SELECT a, _carried FROM evo.txstg;

--
-- A staging table, or a column of it, dropped by hand: ingest says so and
-- hints to register the schema again, and registering it again rebuilds
-- what is missing.  (NOTICEs of CREATE SCHEMA IF NOT EXISTS are left out.)
--
SET client_min_messages = warning;
SELECT register_schema($$
<srcSchema name="repair" namespace="evo">
  <element name="repair" autoStg="true"><attribute name="a"/><attribute name="b"/></element>
</srcSchema>$$);
DROP TABLE evo.repairstg;
SELECT * FROM expect_error($$SELECT xtk_ingest('<repairStg xtkschema="evo:repairStg" a="1"/>')$$);
SELECT register_schema($$
<srcSchema name="repair" namespace="evo">
  <element name="repair" autoStg="true"><attribute name="a"/><attribute name="b"/></element>
</srcSchema>$$);
SELECT to_regclass('evo.repairstg') AS rebuilt;
SELECT xtk_ingest('<repairStg xtkschema="evo:repairStg" a="1" b="1"/>') <> '' AS staged;

ALTER TABLE evo.repairstg DROP COLUMN b;
SELECT * FROM expect_error($$SELECT xtk_ingest('<repairStg xtkschema="evo:repairStg" a="2"/>')$$);
SELECT register_schema($$
<srcSchema name="repair" namespace="evo">
  <element name="repair" autoStg="true"><attribute name="a"/><attribute name="b"/></element>
</srcSchema>$$);
SELECT * FROM pg_temp.cols('evo.repairstg');
SELECT xtk_ingest('<repairStg xtkschema="evo:repairStg" a="2" b="2"/>') <> '' AS staged;
RESET client_min_messages;
