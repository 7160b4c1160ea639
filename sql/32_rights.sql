--
-- 32_rights: a role without grants is refused everywhere; campaign_ingest
-- cannot read or change the staging, registry, history, request or
-- foreign tables directly; every SECURITY DEFINER function pins its
-- search_path (SPEC §5, §10).  09_roles covers the ingest path itself.
--
SET search_path = public, campaign;
\pset null '(null)'

CREATE ROLE regress_rights_nobody;
CREATE ROLE regress_rights_ingest;
GRANT campaign_ingest TO regress_rights_ingest;

-- Functions of schema campaign that a role without any grant may execute.
-- None is meant to be (a function of the extension is granted to one of
-- its roles, never to PUBLIC).
SELECT p.oid::regprocedure AS executable_without_grant
  FROM pg_proc p
 WHERE p.pronamespace = 'campaign'::regnamespace
   AND has_function_privilege('regress_rights_nobody', p.oid, 'EXECUTE')
 ORDER BY p.oid::regprocedure::text COLLATE "C";

-- What each role of the extension may execute.
SELECT r AS role, string_agg(p.proname, ', ' ORDER BY p.proname COLLATE "C", p.oid::regprocedure::text COLLATE "C") AS functions
  FROM unnest(ARRAY['campaign_ingest', 'campaign_sql_function', 'campaign_soap']) AS r,
       pg_proc p
 WHERE p.pronamespace = 'campaign'::regnamespace
   AND has_function_privilege(r, p.oid, 'EXECUTE')
 GROUP BY r ORDER BY r;

-- Tables, views, sequences and foreign tables the roles may touch
-- directly: in schema campaign and in every registered SQL schema.
SELECT r AS role, c.oid::regclass AS relation,
       array_to_string(array_remove(ARRAY[
         CASE WHEN has_table_privilege(r, c.oid, 'SELECT') THEN 'SELECT' END,
         CASE WHEN has_table_privilege(r, c.oid, 'INSERT') THEN 'INSERT' END,
         CASE WHEN has_table_privilege(r, c.oid, 'UPDATE') THEN 'UPDATE' END,
         CASE WHEN has_table_privilege(r, c.oid, 'DELETE') THEN 'DELETE' END,
         CASE WHEN has_table_privilege(r, c.oid, 'TRUNCATE') THEN 'TRUNCATE' END], NULL), ',') AS rights
  FROM unnest(ARRAY['regress_rights_nobody', 'regress_rights_ingest', 'campaign_sql_function']) AS r,
       pg_class c
 WHERE c.relkind IN ('r', 'v', 'f', 'p', 'm')
   AND (c.relnamespace = 'campaign'::regnamespace
        OR c.relnamespace::regnamespace::text IN (SELECT DISTINCT sql_schema::text FROM campaign.schemas
                                                   WHERE sql_schema NOT IN ('pg_catalog', 'information_schema')))
   AND has_table_privilege(r, c.oid, 'SELECT,INSERT,UPDATE,DELETE,TRUNCATE')
 ORDER BY 1, c.oid::regclass::text COLLATE "C";
SELECT r AS role, count(*) AS sequences_usable
  FROM unnest(ARRAY['regress_rights_nobody', 'regress_rights_ingest']) AS r, pg_class c
 WHERE c.relkind = 'S'
   AND (c.relnamespace = 'campaign'::regnamespace
        OR c.relnamespace::regnamespace::text IN (SELECT DISTINCT sql_schema::text FROM campaign.schemas
                                                   WHERE sql_schema NOT IN ('pg_catalog', 'information_schema')))
   AND has_sequence_privilege(r, c.oid, 'USAGE,SELECT,UPDATE')
 GROUP BY r ORDER BY r;

-- And in practice: the ingest role is refused on the registry, the
-- history, the requests, the built-in staging tables.
SET ROLE regress_rights_ingest;
SELECT * FROM expect_error('SELECT count(*) FROM campaign.keys');
SELECT * FROM expect_error('SELECT count(*) FROM campaign.indexes');
SELECT * FROM expect_error('DELETE FROM campaign.attributes');
SELECT * FROM expect_error('SELECT count(*) FROM campaign.replication_history');
SELECT * FROM expect_error($$INSERT INTO campaign.replication_history (schema_name, started_at, from_seq, upto_seq, rows, inserts, upserts, updates, deletes, rejected, bytes, outcome) VALUES ('x', now(), 0, 0, 0, 0, 0, 0, 0, 0, 0, 'success')$$);
SELECT * FROM expect_error('SELECT count(*) FROM campaign.ingestion_requests');
SELECT * FROM expect_error('DELETE FROM campaign.ingestion_requests');
SELECT * FROM expect_error('SELECT * FROM campaign.staging_status');
SELECT * FROM expect_error('SELECT count(*) FROM campaign.soap_sessions');
SELECT * FROM expect_error('SELECT count(*) FROM nms.recipientstg');
SELECT * FROM expect_error($$UPDATE nms.recipientstg SET _stg_error = 'x'$$);
SELECT * FROM expect_error('TRUNCATE nms.subscriptionrcpstg');
-- the administration functions are not its own
SELECT * FROM expect_error($$SELECT campaign.replicate_now('nms:recipient')$$);
SELECT * FROM expect_error($$SELECT campaign.stop_replication('nms:recipient')$$);
SELECT * FROM expect_error($$SELECT campaign.discard_errors('nms:recipient')$$);
SELECT * FROM expect_error($$SELECT campaign.deploy('nms:recipient')$$);
SELECT * FROM expect_error($$SELECT campaign.resolve_schema('nms:recipient')$$);
SELECT * FROM expect_error($$SELECT campaign.ingestion_request('nms:recipient')$$);
SELECT * FROM expect_error($$SELECT campaign.set_rate_limit('xtk_ingest', 1000)$$);
SELECT * FROM expect_error($$SELECT campaign.soap('<x/>')$$);
RESET ROLE;

-- A role with no grant at all: every function of schema campaign refuses
-- it, even with USAGE on the schema (one call per function, arguments
-- NULL in a subquery so that the planner cannot fold the call away: the
-- privilege check comes first).
GRANT USAGE ON SCHEMA campaign TO regress_rights_nobody;
SET ROLE regress_rights_nobody;
DO $$
DECLARE
    f record;
    refused int := 0;
    other text := '';
BEGIN
    FOR f IN SELECT p.oid, p.proname,
                    (SELECT string_agg(format('(SELECT NULL::%s)', format_type(t, NULL)), ', ')
                       FROM unnest(p.proargtypes) AS t) AS args
               FROM pg_proc p
              WHERE p.pronamespace = 'campaign'::regnamespace AND p.prokind = 'f'
              ORDER BY p.oid::regprocedure::text COLLATE "C"
    LOOP
        BEGIN
            EXECUTE format('SELECT %s(%s)', f.oid::regproc, coalesce(f.args, ''));
            other := other || ' ' || f.oid::regprocedure::text || '=allowed';
        EXCEPTION
            WHEN insufficient_privilege THEN refused := refused + 1;
            WHEN OTHERS THEN other := other || ' ' || f.oid::regprocedure::text || '=' || SQLSTATE;
        END;
    END LOOP;
    RAISE NOTICE 'refused: % functions; not refused:%', refused, coalesce(nullif(other, ''), ' none');
END
$$;
SELECT * FROM expect_error('SELECT count(*) FROM campaign.schemas');
SELECT * FROM expect_error('SELECT count(*) FROM campaign.rate_limits');
RESET ROLE;
REVOKE USAGE ON SCHEMA campaign FROM regress_rights_nobody;

-- Every SECURITY DEFINER function of schema campaign pins search_path.
SELECT p.oid::regprocedure AS security_definer_function,
       (SELECT c FROM unnest(p.proconfig) AS c WHERE c LIKE 'search_path=%') AS pinned
  FROM pg_proc p
 WHERE p.pronamespace = 'campaign'::regnamespace AND p.prosecdef
 ORDER BY p.oid::regprocedure::text COLLATE "C";
SELECT count(*) AS security_definer_without_search_path
  FROM pg_proc p
 WHERE p.pronamespace = 'campaign'::regnamespace AND p.prosecdef
   AND NOT EXISTS (SELECT 1 FROM unnest(p.proconfig) AS c WHERE c LIKE 'search_path=%');
-- and the pinned path puts pg_catalog first and pg_temp last
SELECT count(*) AS unsafe_search_path
  FROM pg_proc p, unnest(p.proconfig) AS c
 WHERE p.pronamespace = 'campaign'::regnamespace AND p.prosecdef
   AND c LIKE 'search_path=%' AND c <> 'search_path=pg_catalog, pg_temp';

DROP ROLE regress_rights_nobody;
DROP ROLE regress_rights_ingest;
