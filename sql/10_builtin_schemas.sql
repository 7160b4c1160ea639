--
-- 10_builtin_schemas: CREATE EXTENSION registers Campaign's built-in
-- schemas, staged by default as in Campaign (SPEC §2): nms:recipient
-- (email, firstName, lastName, ...), nms:service (name, label) and
-- nms:subscriptionRcp (recipient <-> service).  Only what SPEC §2 fixes is
-- checked, not the full attribute lists.
--
SET search_path = public, campaign;

SELECT namespace || ':' || name AS schema, staging_table IS NOT NULL AS staged,
       to_regclass(format('%I.%I', sql_schema, staging_table)) IS NOT NULL AS staging_table_exists
  FROM campaign.schemas WHERE namespace = 'nms' ORDER BY name COLLATE "C";

SELECT name, attribute FROM campaign.attributes
 WHERE (namespace, name) IN (('nms', 'recipient'), ('nms', 'service'))
   AND attribute IN ('email', 'firstName', 'lastName', 'name', 'label')
 ORDER BY name, attribute COLLATE "C";

-- They are ingested into like any staged schema.
SELECT is_uuid(xtk_ingest('<recipientStg email="ann@example.com" firstName="Ann" lastName="Lee" xtkschema="nms:recipientStg"/>')) AS is_uuid;
SELECT xtk_ingest_ext('<recipientStg _key="@email" email="ann@example.com" lastName="Lee-Smith" xtkschema="nms:recipientStg"/>');
SELECT quote_nullable(xtk_ingest('<serviceStg _key="@name" name="newsletter" label="Newsletter" xtkschema="nms:serviceStg"/>')) AS result;
