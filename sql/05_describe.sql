--
-- 05_describe: campaign.describe(schema), the "Documentation" tab of a
-- schema: SQL table, staging table, each field's SQL name, type/length,
-- label and description, keys and indexes.  Uses the schemas registered by
-- 02_types, 03_keys_naming and 04_reregister, and registers dem:sampleTable
-- (SPEC §2's example, used by the next files).
--
SET search_path = public, campaign;
\pset null ''

-- Everything at once: keys (primary first by internal="true"), indexes,
-- required/notNull/default, labels and descriptions.
SELECT * FROM describe('Crm:Customer');

-- The same schema can be named by its staging schema.
SELECT count(*) FROM describe('Crm:CustomerStg');

-- autopk/autouuid, and every type mapping.
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
SELECT * FROM describe('dem:sampleTable');
SELECT item, name, sql_name, type FROM describe('tst:allTypes');

-- A schema without staging has no "staging" line, and its staging name is
-- not known.
SELECT * FROM describe('evo:person');
SELECT count(*) FROM describe('evo:personStg');

-- An unknown schema documents nothing.
SELECT count(*) FROM describe('dem:noSuchSchema');
