/* campaign--1.0.sql: Adobe Campaign v8 staging for PostgreSQL */

\echo Use "CREATE EXTENSION campaign CASCADE" to load this file. \quit

-- Roles (cluster-wide, so created only when missing).
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'campaign_admin') THEN
        CREATE ROLE campaign_admin NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'campaign_ingest') THEN
        CREATE ROLE campaign_ingest NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'campaign_sql_function') THEN
        CREATE ROLE campaign_sql_function NOLOGIN;
    END IF;
END
$$;

GRANT USAGE ON SCHEMA @extschema@ TO campaign_admin, campaign_ingest, campaign_sql_function;

-- The registry: one row per registered source schema ...
CREATE TABLE schemas (
    namespace       text NOT NULL,
    name            text NOT NULL,
    label           text,
    description     text,
    sql_schema      name NOT NULL,
    sql_table       name NOT NULL,
    staging_table   name,
    autopk          boolean NOT NULL DEFAULT false,
    autouuid        boolean NOT NULL DEFAULT false,
    source          xml NOT NULL,
    registered_at   timestamptz NOT NULL DEFAULT now(),
    replicated_upto bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (namespace, name)
);
COMMENT ON TABLE schemas IS 'Registered Campaign source schemas';
COMMENT ON COLUMN schemas.replicated_upto IS 'Staged rows with _stg_seq up to this value have reached the cloud';

-- ... its attributes ...
CREATE TABLE attributes (
    namespace     text NOT NULL,
    name          text NOT NULL,
    position      integer NOT NULL,
    attribute     text NOT NULL,
    sql_name      name NOT NULL,
    type          text NOT NULL,
    length        integer,
    sql_type      text NOT NULL,
    label         text,
    description   text,
    required      boolean NOT NULL DEFAULT false,
    not_null      boolean NOT NULL DEFAULT false,
    default_value text,
    PRIMARY KEY (namespace, name, attribute),
    FOREIGN KEY (namespace, name) REFERENCES schemas ON DELETE CASCADE
);

-- ... its keys (<key>) and indexes (<dbindex>).
CREATE TABLE keys (
    namespace  text NOT NULL,
    name       text NOT NULL,
    key_name   text NOT NULL,
    position   integer NOT NULL,
    is_primary boolean NOT NULL,
    fields     text[] NOT NULL,
    PRIMARY KEY (namespace, name, key_name),
    FOREIGN KEY (namespace, name) REFERENCES schemas ON DELETE CASCADE
);

CREATE TABLE indexes (
    namespace  text NOT NULL,
    name       text NOT NULL,
    index_name text NOT NULL,
    position   integer NOT NULL,
    is_unique  boolean NOT NULL,
    fields     text[] NOT NULL,
    PRIMARY KEY (namespace, name, index_name),
    FOREIGN KEY (namespace, name) REFERENCES schemas ON DELETE CASCADE
);

SELECT pg_catalog.pg_extension_config_dump('schemas', '');
SELECT pg_catalog.pg_extension_config_dump('attributes', '');
SELECT pg_catalog.pg_extension_config_dump('keys', '');
SELECT pg_catalog.pg_extension_config_dump('indexes', '');

GRANT SELECT ON schemas, attributes, keys, indexes TO campaign_admin;

CREATE FUNCTION register_schema(source text, force boolean DEFAULT false)
RETURNS text
AS 'MODULE_PATHNAME', 'register_schema'
LANGUAGE C STRICT VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp;

CREATE FUNCTION register_schema(source xml, force boolean DEFAULT false)
RETURNS text
AS 'MODULE_PATHNAME', 'register_schema'
LANGUAGE C STRICT VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp;

COMMENT ON FUNCTION register_schema(text, boolean) IS 'Register or evolve a Campaign source schema';

CREATE FUNCTION describe(schema text)
RETURNS TABLE (item text, name text, sql_name text, type text, label text, description text)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    WITH s AS (
        SELECT * FROM campaign.schemas
         WHERE namespace || ':' || name = $1
            OR (staging_table IS NOT NULL AND namespace || ':' || name || 'Stg' = $1)
    )
    SELECT 'schema', s.namespace || ':' || s.name,
           quote_ident(s.sql_schema) || '.' || quote_ident(s.sql_table),
           concat_ws(', ', CASE WHEN s.autopk THEN 'autopk' END,
                           CASE WHEN s.autouuid THEN 'autouuid' END),
           s.label, s.description
      FROM s
    UNION ALL
    SELECT 'staging', s.namespace || ':' || s.name || 'Stg',
           quote_ident(s.sql_schema) || '.' || quote_ident(s.staging_table),
           'autoStg', NULL, NULL
      FROM s WHERE s.staging_table IS NOT NULL
    UNION ALL
    SELECT * FROM (
        SELECT 'attribute', '@' || a.attribute, a.sql_name::text,
               CASE WHEN a.type = 'string' THEN 'string(' || a.length || ')' ELSE a.type END
               || ' -> ' || a.sql_type
               || CASE WHEN a.required THEN ', required' ELSE '' END
               || CASE WHEN a.not_null THEN ', notNull' ELSE '' END
               || CASE WHEN a.default_value IS NOT NULL
                       THEN ', default ' || quote_literal(a.default_value) ELSE '' END,
               a.label, a.description
          FROM s JOIN campaign.attributes a USING (namespace, name)
         ORDER BY a.position) attrs
    UNION ALL
    SELECT * FROM (
        SELECT 'key', k.key_name,
               (SELECT string_agg(quote_ident(a.sql_name), ', ' ORDER BY f.ord)
                  FROM unnest(k.fields) WITH ORDINALITY f(attr, ord)
                  JOIN campaign.attributes a
                    ON a.namespace = k.namespace AND a.name = k.name AND a.attribute = f.attr),
               CASE WHEN k.is_primary THEN 'primary key' ELSE 'unique key' END,
               (SELECT string_agg('@' || f, ', ') FROM unnest(k.fields) f), NULL
          FROM s JOIN campaign.keys k USING (namespace, name)
         ORDER BY k.position) ks
    UNION ALL
    SELECT * FROM (
        SELECT 'index', i.index_name,
               (SELECT string_agg(quote_ident(a.sql_name), ', ' ORDER BY f.ord)
                  FROM unnest(i.fields) WITH ORDINALITY f(attr, ord)
                  JOIN campaign.attributes a
                    ON a.namespace = i.namespace AND a.name = i.name AND a.attribute = f.attr),
               CASE WHEN i.is_unique THEN 'unique index' ELSE 'index' END,
               (SELECT string_agg('@' || f, ', ') FROM unnest(i.fields) f), NULL
          FROM s JOIN campaign.indexes i USING (namespace, name)
         ORDER BY i.position) idx
$$;

COMMENT ON FUNCTION describe(text) IS 'Documentation of a registered schema: SQL table, fields, keys, indexes';

CREATE FUNCTION xtk_ingest(doc text) RETURNS text
AS 'MODULE_PATHNAME', 'xtk_ingest' LANGUAGE C STRICT VOLATILE;
CREATE FUNCTION xtk_ingest(doc xml) RETURNS text
AS 'MODULE_PATHNAME', 'xtk_ingest' LANGUAGE C STRICT VOLATILE;
CREATE FUNCTION xtk_ingest_ext(doc text) RETURNS void
AS 'MODULE_PATHNAME', 'xtk_ingest_ext' LANGUAGE C STRICT VOLATILE;
CREATE FUNCTION xtk_ingest_ext(doc xml) RETURNS void
AS 'MODULE_PATHNAME', 'xtk_ingest_ext' LANGUAGE C STRICT VOLATILE;

COMMENT ON FUNCTION xtk_ingest(text) IS 'xtk.session.Ingest: stage records for insertion; returns the generated UUIDs';
COMMENT ON FUNCTION xtk_ingest_ext(text) IS 'xtk.session.IngestExt: stage updates and deletes by reconciliation key';

REVOKE ALL ON FUNCTION register_schema(text, boolean), register_schema(xml, boolean),
    describe(text), xtk_ingest(text), xtk_ingest(xml),
    xtk_ingest_ext(text), xtk_ingest_ext(xml) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION register_schema(text, boolean), register_schema(xml, boolean),
    describe(text) TO campaign_admin;
GRANT EXECUTE ON FUNCTION xtk_ingest(text), xtk_ingest(xml),
    xtk_ingest_ext(text), xtk_ingest_ext(xml) TO campaign_ingest;
GRANT EXECUTE ON FUNCTION describe(text) TO campaign_ingest;
