--
-- 01_extension: installation of the extension, and the helpers the rest of
-- the suite uses.  pg_regress runs the files in order in one database, so
-- what is created here is there for the later files.
--

-- postgres_fdw is required by the control file: CASCADE installs it.
CREATE EXTENSION campaign CASCADE;

SELECT e.extname, e.extversion, n.nspname AS schema, e.extrelocatable
  FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
 WHERE e.extname IN ('campaign', 'postgres_fdw')
 ORDER BY 1;

-- The three roles of SPEC §5 exist (cluster-wide, created when missing).
SELECT rolname, rolcanlogin
  FROM pg_roles WHERE rolname IN ('campaign_admin', 'campaign_ingest', 'campaign_sql_function')
 ORDER BY 1;

-- The registry tables are extension configuration tables, so pg_dump keeps
-- their rows (the data model survives dump/restore).
SELECT c::regclass AS config_table
  FROM pg_extension, unnest(extconfig) AS c
 WHERE extname = 'campaign' ORDER BY c::regclass::text COLLATE "C";

-- The functions of the public interface, all in schema campaign, none
-- executable by PUBLIC.
SELECT p.oid::regprocedure AS function,
       p.prosecdef AS security_definer,
       has_function_privilege('public', p.oid, 'EXECUTE') AS public_execute
  FROM pg_proc p
 WHERE p.pronamespace = 'campaign'::regnamespace
   AND p.proname IN ('register_schema', 'describe', 'xtk_ingest', 'xtk_ingest_ext')
 ORDER BY p.proname, p.oid::regprocedure::text;

-- GUCs live under the reserved prefix "campaign.".
SHOW campaign.database;
SHOW campaign.cloud_server;
SET campaign.database = 'other';          -- needs a restart
SET campaign.no_such_setting = 'x';       -- the prefix is reserved
SET campaign.cloud_server = 'other';      -- PGC_SIGHUP: not settable in a session

--
-- Helpers for the rest of the suite (in schema public).
--

-- staged_rows(): total number of rows in every (existing) staging table of
-- the registry.  SECURITY DEFINER so that it can count under SET ROLE too.
CREATE FUNCTION public.staged_rows() RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog AS $$
DECLARE
    t text;
    c bigint;
    n bigint := 0;
BEGIN
    FOR t IN SELECT format('%I.%I', sql_schema, staging_table)
               FROM campaign.schemas
              WHERE staging_table IS NOT NULL
                AND to_regclass(format('%I.%I', sql_schema, staging_table)) IS NOT NULL
    LOOP
        EXECUTE 'SELECT count(*) FROM ' || t INTO c;
        n := n + c;
    END LOOP;
    RETURN n;
END
$$;

-- expect_error(cmd): run cmd, which must fail.  Returns the error as lines:
-- "ERROR <SQLSTATE>: message", then DETAIL, HINT and CONTEXT lines (the
-- context of this helper itself left out), then whether the staging tables
-- are unchanged after the failure.  With detailed => false only the ERROR
-- line is returned.  "no error" when cmd succeeded.
CREATE FUNCTION public.expect_error(cmd text, detailed boolean DEFAULT true)
RETURNS SETOF text LANGUAGE plpgsql AS $$
DECLARE
    before bigint := public.staged_rows();
    st text;
    msg text;
    det text;
    hnt text;
    ctx text;
    line text;
BEGIN
    BEGIN
        EXECUTE cmd;
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT,
            det = PG_EXCEPTION_DETAIL, hnt = PG_EXCEPTION_HINT,
            ctx = PG_EXCEPTION_CONTEXT;
        RETURN NEXT 'ERROR ' || st || ': ' || msg;
        IF NOT detailed THEN
            RETURN;
        END IF;
        FOREACH line IN ARRAY coalesce(string_to_array(nullif(det, ''), E'\n'), '{}') LOOP
            RETURN NEXT 'DETAIL: ' || line;
        END LOOP;
        FOREACH line IN ARRAY coalesce(string_to_array(nullif(hnt, ''), E'\n'), '{}') LOOP
            RETURN NEXT 'HINT: ' || line;
        END LOOP;
        ctx := replace(ctx, format('SQL statement "%s"', cmd), '');
        FOREACH line IN ARRAY coalesce(string_to_array(nullif(ctx, ''), E'\n'), '{}') LOOP
            CONTINUE WHEN line = '' OR line LIKE 'PL/pgSQL function %';
            RETURN NEXT 'CONTEXT: ' || line;
        END LOOP;
        RETURN NEXT CASE WHEN public.staged_rows() = before
                         THEN 'nothing staged'
                         ELSE 'STAGED ROWS CHANGED: ' || before || ' -> ' || public.staged_rows() END;
        RETURN;
    END;
    RETURN NEXT 'no error';
END
$$;

-- is_uuid(text): the text is one UUID in canonical form (the generated
-- UUIDs themselves are random and never printed).
CREATE FUNCTION public.is_uuid(t text) RETURNS boolean
LANGUAGE sql IMMUTABLE AS $$
    SELECT t ~ '^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$'
$$;

-- The helpers themselves.
SELECT * FROM expect_error('SELECT 1/0');
SELECT * FROM expect_error('SELECT 1');
SELECT is_uuid(gen_random_uuid()::text), is_uuid('not-a-uuid'), staged_rows();
