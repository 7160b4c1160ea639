/* campaign--1.0--1.1.sql — upgrade of a 1.0 installation to 1.1.
 *
 * `campaign--1.0.sql` is released and never edited again: every SQL change
 * of release 1.1 goes here, in one section per change, each saying which
 * issue made it. `CREATE EXTENSION campaign` installs 1.0 and applies this
 * script, so a fresh install and an upgraded one run the same statements.
 */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION campaign UPDATE TO '1.1'" to load this file. \quit

/* Issue 17: ingest rights per staged schema (src/rights.c).
 *
 * The rights are privileges on each schema's staging table: INSERT for
 * inserts, INSERT and UPDATE for upserts, UPDATE for updates, DELETE for
 * deletes.  campaign_ingest still grants the right to call the functions,
 * no longer the right to write every schema.
 */

-- The checks: for the APIs written in SQL, which get their caller from the
-- entry points below.  Executable by no role.
CREATE FUNCTION require_ingest_rights(role oid, schema text, operation text)
RETURNS void
AS 'MODULE_PATHNAME', 'require_ingest_rights' LANGUAGE C STABLE;
COMMENT ON FUNCTION require_ingest_rights(oid, text, text) IS 'Refuse (42501) unless the role may stage that operation (NULL: any) into the staging schema';

-- May the role see the schema ('ns:name' or 'ns:nameStg')?  campaign_admin
-- sees every schema, any other role those it feeds (holds INSERT, UPDATE or
-- DELETE on their staging table).
CREATE FUNCTION schema_visible_to(role oid, schema text) RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT pg_has_role(role, 'campaign_admin', 'USAGE')
        OR EXISTS (SELECT 1 FROM campaign.schemas s
                    WHERE (s.namespace || ':' || s.name = schema
                           OR s.namespace || ':' || s.name || 'Stg' = schema)
                      AND s.staging_table IS NOT NULL
                      AND has_table_privilege(role,
                              to_regclass(format('%I.%I', s.sql_schema, s.staging_table)),
                              'INSERT, UPDATE, DELETE'))
$$;

-- A mapping ('dem:sampleTable') is requested by the roles that feed it; an
-- unknown or unstaged mapping is left to the API's own answer.
CREATE FUNCTION require_mapping_rights(role oid, mapping text) RETURNS void
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM campaign.schemas s
                WHERE s.namespace || ':' || s.name = mapping AND s.staging_table IS NOT NULL) THEN
        PERFORM campaign.require_ingest_rights(role, mapping || 'Stg', NULL);
    END IF;
END
$$;

-- The APIs written in SQL run as the extension's owner, where the caller is
-- no longer known.  Each becomes: an entry point in C (SECURITY INVOKER)
-- that passes its caller to <api>_as(caller, ...), which checks the
-- caller's rights and calls the 1.0 function, renamed <api>_unchecked.
-- Neither is executable by any role.
ALTER FUNCTION describe(text) RENAME TO describe_unchecked;
ALTER FUNCTION subscribe(text, text, boolean) RENAME TO subscribe_unchecked;
ALTER FUNCTION unsubscribe(text, text) RENAME TO unsubscribe_unchecked;
ALTER FUNCTION ingestion_request(text) RENAME TO ingestion_request_unchecked;
ALTER FUNCTION ingestion_status(text, bigint) RENAME TO ingestion_status_unchecked;
-- Their bodies name their parameter after the function: renamed, they
-- must say so.
CREATE OR REPLACE FUNCTION ingestion_request_unchecked(mapping text) RETURNS jsonb
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    s campaign.schemas;
    rid bigint;
BEGIN
    PERFORM campaign.check_rate_limit('ingestion_request');
    SELECT * INTO s FROM campaign.schemas r
     WHERE (r.namespace || ':' || r.name = mapping) AND r.staging_table IS NOT NULL;
    IF NOT FOUND OR s.deployed_at IS NULL THEN
        RETURN jsonb_build_object(
            'info', format('Unable to submit data ingestion request, XDM Mapping ID: %s is not published', mapping),
            'status', 'Failed');
    END IF;
    IF s.mode <> 'stopped' THEN
        RETURN jsonb_build_object(
            'info', format('Unable to submit data ingestion request, XDM Mapping ID: %s is not stopped', mapping),
            'status', 'Failed');
    END IF;
    -- one request at a time per mapping
    PERFORM 1 FROM campaign.schemas r WHERE r.namespace = s.namespace AND r.name = s.name FOR UPDATE;
    SELECT id INTO rid FROM campaign.ingestion_requests q
     WHERE q.mapping = ingestion_request_unchecked.mapping AND q.status = 'In Progress';
    IF FOUND THEN
        RETURN jsonb_build_object(
            'requestId', rid,
            'info', format('Ingestion request already in progress for the Mapping ID: %s', mapping),
            'status', 'In Progress');
    END IF;
    INSERT INTO campaign.ingestion_requests (mapping) VALUES (mapping) RETURNING id INTO rid;
    PERFORM campaign.notify_worker();
    RETURN jsonb_build_object(
        'requestId', rid,
        'info', format('Ingestion request submitted successfully for the Mapping ID: %s', mapping),
        'status', 'Success');
END
$$;

CREATE OR REPLACE FUNCTION ingestion_status_unchecked(mapping text, request_id bigint) RETURNS jsonb
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    q campaign.ingestion_requests;
BEGIN
    PERFORM campaign.check_rate_limit('ingestion_status');
    SELECT * INTO q FROM campaign.ingestion_requests r
     WHERE r.id = request_id AND r.mapping = ingestion_status_unchecked.mapping;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no ingestion request % for the Mapping ID: %', request_id, mapping
              USING ERRCODE = 'undefined_object';
    END IF;
    RETURN jsonb_build_object(
        'batchId', q.batch_id,
        'info', format('Mapping Id: %s.', q.mapping)
                || CASE WHEN q.status = 'In Progress' THEN '' ELSE ' ' || q.info END,
        'numRecords', q.num_records,
        'requestId', q.id,
        'status', q.status);
END
$$;

REVOKE ALL ON FUNCTION describe_unchecked(text) FROM campaign_admin, campaign_ingest;
REVOKE ALL ON FUNCTION subscribe_unchecked(text, text, boolean), unsubscribe_unchecked(text, text)
    FROM campaign_ingest;
REVOKE ALL ON FUNCTION ingestion_request_unchecked(text), ingestion_status_unchecked(text, bigint)
    FROM campaign_sql_function;

CREATE FUNCTION describe_as(caller oid, schema text)
RETURNS TABLE (item text, name text, sql_name text, type text, label text, description text)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    -- a schema the caller may not see describes as an unregistered one
    IF campaign.schema_visible_to(caller, schema) THEN
        RETURN QUERY SELECT * FROM campaign.describe_unchecked(schema);
    END IF;
END
$$;

CREATE FUNCTION subscribe_as(caller oid, service text, recipient text, "create" boolean)
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM campaign.require_ingest_rights(caller, 'nms:subscriptionRcpStg', 'insertOrUpdate');
    IF "create" THEN
        PERFORM campaign.require_ingest_rights(caller, 'nms:recipientStg', 'insertOrUpdate');
    END IF;
    RETURN campaign.subscribe_unchecked(service, recipient, "create");
END
$$;

CREATE FUNCTION unsubscribe_as(caller oid, service text, recipient text)
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM campaign.require_ingest_rights(caller, 'nms:subscriptionRcpStg', 'delete');
    RETURN campaign.unsubscribe_unchecked(service, recipient);
END
$$;

CREATE FUNCTION ingestion_request_as(caller oid, mapping text) RETURNS jsonb
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM campaign.require_mapping_rights(caller, mapping);
    RETURN campaign.ingestion_request_unchecked(mapping);
END
$$;

CREATE FUNCTION ingestion_status_as(caller oid, mapping text, request_id bigint) RETURNS jsonb
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM campaign.require_mapping_rights(caller, mapping);
    RETURN campaign.ingestion_status_unchecked(mapping, request_id);
END
$$;

CREATE FUNCTION describe(schema text)
RETURNS TABLE (item text, name text, sql_name text, type text, label text, description text)
AS 'MODULE_PATHNAME', 'describe_as_caller' LANGUAGE C STABLE;
CREATE FUNCTION subscribe(service text, recipient text, "create" boolean DEFAULT false)
RETURNS bigint
AS 'MODULE_PATHNAME', 'subscribe_as_caller' LANGUAGE C VOLATILE;
CREATE FUNCTION unsubscribe(service text, recipient text) RETURNS bigint
AS 'MODULE_PATHNAME', 'unsubscribe_as_caller' LANGUAGE C VOLATILE;
CREATE FUNCTION ingestion_request(mapping text) RETURNS jsonb
AS 'MODULE_PATHNAME', 'ingestion_request_as_caller' LANGUAGE C VOLATILE;
CREATE FUNCTION ingestion_status(mapping text, request_id bigint) RETURNS jsonb
AS 'MODULE_PATHNAME', 'ingestion_status_as_caller' LANGUAGE C VOLATILE;

COMMENT ON FUNCTION describe(text) IS 'Documentation of a registered schema the caller may see: SQL table, fields, keys, indexes';
COMMENT ON FUNCTION subscribe(text, text, boolean) IS 'nms:subscription Subscribe: stage a subscription, applied by the next subscription pass; returns the request id';
COMMENT ON FUNCTION unsubscribe(text, text) IS 'nms:subscription Unsubscribe: stage an unsubscription, applied by the next subscription pass; returns the request id';
COMMENT ON FUNCTION ingestion_request(text) IS 'POST .../xdmIngestion/<mapping>/ingest: replicate a stopped mapping now';
COMMENT ON FUNCTION ingestion_status(text, bigint) IS 'GET .../xdmIngestion/<mapping>/ingest: the status of a request';

REVOKE ALL ON FUNCTION require_ingest_rights(oid, text, text), schema_visible_to(oid, text),
    require_mapping_rights(oid, text), describe_as(oid, text),
    subscribe_as(oid, text, text, boolean), unsubscribe_as(oid, text, text),
    ingestion_request_as(oid, text), ingestion_status_as(oid, text, bigint),
    describe(text), subscribe(text, text, boolean), unsubscribe(text, text),
    ingestion_request(text), ingestion_status(text, bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION describe(text) TO campaign_admin, campaign_ingest;
GRANT EXECUTE ON FUNCTION subscribe(text, text, boolean), unsubscribe(text, text) TO campaign_ingest;
GRANT EXECUTE ON FUNCTION ingestion_request(text), ingestion_status(text, bigint) TO campaign_sql_function;

-- Every staging table: row-level security without any policy, so that the
-- privileges only serve the checks (a non-owner's direct INSERT fails,
-- UPDATE, DELETE and SELECT see no row), and campaign_admin may grant
-- them.  register_schema() does the same for the tables it creates.
--
-- Upgrade from 1.0 only: campaign_ingest keeps what it had, INSERT, UPDATE
-- and DELETE on every staging table existing then, explicitly (README: the
-- administrator revokes what is not wanted).  A fresh install grants
-- campaign_ingest nothing: CREATE EXTENSION ran the 1.0 script in this
-- same transaction, so every member of the extension was made by it.
--
-- pg_dump dumps a table's privileges as a difference from its
-- pg_init_privs row, which PostgreSQL 15 writes for every GRANT made by an
-- extension script, member of the extension or not.  So that a restore
-- (a fresh install) gets them back: the built-in tables keep as initial
-- privileges what a fresh install has, without campaign_ingest's; the
-- tables registered by users, and their SQL schemas, get no initial
-- privileges, as any table of theirs.
DO $$
DECLARE
    ext oid := (SELECT e.oid FROM pg_catalog.pg_extension e WHERE e.extname = 'campaign');
    upgrading boolean;
    t record;
    fresh_acl aclitem[];
BEGIN
    upgrading := EXISTS (SELECT 1 FROM pg_catalog.pg_depend d
                          WHERE d.refclassid = 'pg_catalog.pg_extension'::regclass
                            AND d.refobjid = ext AND d.deptype = 'e'
                            AND pg_catalog.age(d.xmin) > 0);
    FOR t IN
        SELECT c.oid AS rel, c.relnamespace AS nsp,
               format('%I.%I', s.sql_schema, s.staging_table) AS qualified,
               EXISTS (SELECT 1 FROM pg_catalog.pg_depend d
                        WHERE d.classid = 'pg_catalog.pg_class'::regclass AND d.objid = c.oid
                          AND d.refobjid = ext AND d.deptype = 'e') AS member,
               EXISTS (SELECT 1 FROM pg_catalog.pg_depend d
                        WHERE d.classid = 'pg_catalog.pg_namespace'::regclass AND d.objid = c.relnamespace
                          AND d.refobjid = ext AND d.deptype = 'e') AS nsp_member
          FROM campaign.schemas s
          JOIN pg_catalog.pg_class c
            ON c.oid = pg_catalog.to_regclass(format('%I.%I', s.sql_schema, s.staging_table))
         WHERE s.staging_table IS NOT NULL
    LOOP
        EXECUTE format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY', t.qualified);
        EXECUTE format('GRANT USAGE ON SCHEMA %s TO campaign_admin', t.nsp::regnamespace);
        EXECUTE format('GRANT INSERT, UPDATE, DELETE ON %s TO campaign_admin WITH GRANT OPTION',
                       t.qualified);
        SELECT p.initprivs INTO fresh_acl FROM pg_catalog.pg_init_privs p
         WHERE p.classoid = 'pg_catalog.pg_class'::regclass AND p.objoid = t.rel AND p.objsubid = 0;
        IF upgrading THEN
            EXECUTE format('GRANT INSERT, UPDATE, DELETE ON %s TO campaign_ingest', t.qualified);
        END IF;
        IF t.member THEN
            UPDATE pg_catalog.pg_init_privs p SET initprivs = fresh_acl
             WHERE p.classoid = 'pg_catalog.pg_class'::regclass AND p.objoid = t.rel AND p.objsubid = 0;
        ELSE
            DELETE FROM pg_catalog.pg_init_privs p
             WHERE p.classoid = 'pg_catalog.pg_class'::regclass AND p.objoid = t.rel;
        END IF;
        IF NOT t.nsp_member THEN
            DELETE FROM pg_catalog.pg_init_privs p
             WHERE p.classoid = 'pg_catalog.pg_namespace'::regclass AND p.objoid = t.nsp;
        END IF;
    END LOOP;
END
$$;

-- ---------------------------------------------------------------------------
-- Replication engine (issues 10 and 11): rows the cloud rejected hold the
-- later changes of their keys behind them.  Such a held row carries
-- _stg_error = 'waiting behind change N of the same key, ...'.
--   * every staging table gets a partial index on its rows in error, through
--     which the worker finds the keys to hold (new staging tables get it from
--     register_schema);
--   * retry_errors() re-stages the rejected and the held rows, in their order;
--   * discard_errors() drops the rejected rows and re-stages the held ones;
--   * staging_status counts the held rows apart from the rejected ones, and
--     reads only the pending rows and the rows in error, through indexes.
-- ---------------------------------------------------------------------------
-- Numbers at or below replicated_upto that open ingest transactions may
-- still commit: replicated once they do (our copy of the cloud's).
ALTER TABLE schemas ADD COLUMN replicated_pending bigint[] NOT NULL DEFAULT '{}';
COMMENT ON COLUMN schemas.replicated_pending IS 'Staging numbers at or below replicated_upto not replicated yet: their transactions were open at the last batch';

DO $$
DECLARE
    s record;
BEGIN
    FOR s IN SELECT sql_schema, staging_table FROM @extschema@.schemas
              WHERE staging_table IS NOT NULL LOOP
        -- (a table registered by the 1.1 library before this update has it)
        IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_index i
                        WHERE i.indrelid = format('%I.%I', s.sql_schema, s.staging_table)::regclass
                          AND pg_catalog.pg_get_expr(i.indpred, i.indrelid) = '(_stg_error IS NOT NULL)') THEN
            EXECUTE format('CREATE INDEX ON %I.%I (_stg_seq) WHERE _stg_error IS NOT NULL',
                           s.sql_schema, s.staging_table);
        END IF;
    END LOOP;
END
$$;

CREATE OR REPLACE FUNCTION discard_errors(schema text) RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    s campaign.schemas := campaign.staged_schema($1);
    tbl text := format('%I.%I', s.sql_schema, s.staging_table);
    cols text;
    n bigint;
BEGIN
    EXECUTE format('DELETE FROM %s WHERE _stg_error IS NOT NULL'
                   ' AND _stg_error NOT LIKE ''waiting behind change %%''', tbl);
    GET DIAGNOSTICS n = ROW_COUNT;
    -- The held rows go back to staging, after everything else, in their order.
    SELECT string_agg(quote_ident(attname), ', ' ORDER BY attnum) INTO cols
      FROM pg_attribute
     WHERE attrelid = tbl::regclass AND attnum > 0 AND NOT attisdropped
       AND attname NOT IN ('_stg_seq', '_stg_error');
    EXECUTE format('WITH moved AS (DELETE FROM %s WHERE _stg_error IS NOT NULL RETURNING *)'
                   ' INSERT INTO %s (%s) SELECT %s FROM moved ORDER BY _stg_seq',
                   tbl, tbl, cols, cols);
    PERFORM campaign.notify_worker();
    RETURN n;
END
$$;
COMMENT ON FUNCTION discard_errors(text) IS 'Drop the staged changes the cloud rejected; the changes held behind them are staged again, in their order';
COMMENT ON FUNCTION retry_errors(text) IS 'Stage again, in their order, the changes the cloud rejected and those held behind them';

CREATE FUNCTION open_ingest_transactions(OUT pid integer, OUT staging_table regclass,
                                         OUT first_seq bigint)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'open_ingest_transactions'
LANGUAGE C VOLATILE STRICT;
COMMENT ON FUNCTION open_ingest_transactions() IS 'Ingest transactions still open, per staging table, with the first staging number each took: their rows replicate when they commit';
REVOKE ALL ON FUNCTION open_ingest_transactions() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION open_ingest_transactions() TO campaign_admin;

DROP VIEW staging_status;
DROP FUNCTION staging_counts();
CREATE FUNCTION staging_counts()
RETURNS TABLE (namespace text, name text, pending bigint, oldest_pending timestamptz,
               errors bigint, held bigint)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    s campaign.schemas;
    first_seq constant bigint := -9223372036854775808;
    last_seq constant bigint := 9223372036854775807;
BEGIN
    FOR s IN SELECT * FROM campaign.schemas WHERE staging_table IS NOT NULL ORDER BY 1, 2 LOOP
        namespace := s.namespace;
        name := s.name;
        -- Index range scans only, whatever the statistics.  The rows above
        -- the watermark and the pending numbers at or below it are read
        -- apart (an OR of the two is a filter over the whole table when the
        -- planner does not see the range is small), and each range has two
        -- bounds, the ends of bigint where it has no other: a staging table
        -- filled since its last ANALYZE has no statistics, and the planner
        -- then estimates an open range at a third of the table, and reads
        -- it with a sequential scan of every replicated row staging keeps,
        -- where it estimates a closed one small.
        EXECUTE format('SELECT a.n + b.n, least(a.oldest, b.oldest) FROM'
                       ' (SELECT count(*) AS n, min(_lastmodified) AS oldest FROM %1$I.%2$I'
                       '   WHERE _stg_seq > $1 AND _stg_seq <= $3 AND _stg_error IS NULL) a,'
                       ' (SELECT count(*) AS n, min(_lastmodified) AS oldest FROM %1$I.%2$I'
                       '   WHERE _stg_seq = ANY ($2) AND _stg_seq <= $1 AND _stg_error IS NULL) b',
                       s.sql_schema, s.staging_table)
           INTO pending, oldest_pending USING s.replicated_upto, s.replicated_pending, last_seq;
        -- Through the partial index on the rows in error.
        EXECUTE format('SELECT count(*) FILTER (WHERE _stg_error NOT LIKE ''waiting behind change %%''),'
                       '       count(*) FILTER (WHERE _stg_error LIKE ''waiting behind change %%'')'
                       '  FROM %I.%I WHERE _stg_error IS NOT NULL AND _stg_seq BETWEEN $1 AND $2',
                       s.sql_schema, s.staging_table)
           INTO errors, held USING first_seq, last_seq;
        RETURN NEXT;
    END LOOP;
END
$$;

CREATE VIEW staging_status AS
SELECT s.namespace || ':' || s.name AS schema_name,
       s.mode,
       s.every,
       s.deployed_at IS NOT NULL AS deployed,
       c.pending,
       now() - c.oldest_pending AS oldest_pending_age,
       c.errors,
       s.last_replicated_at AS last_success,
       s.replicated_upto,
       CASE WHEN c.pending > 0 THEN now() - c.oldest_pending ELSE interval '0' END AS lag,
       c.held,
       o.pid AS open_ingest_pid,
       o.age AS open_ingest_age
  FROM campaign.schemas s
  JOIN campaign.staging_counts() c USING (namespace, name)
  LEFT JOIN LATERAL (
       SELECT t.pid, now() - a.xact_start AS age
         FROM campaign.open_ingest_transactions() t
         LEFT JOIN pg_catalog.pg_stat_activity a ON a.pid = t.pid
        WHERE t.staging_table = format('%I.%I', s.sql_schema, s.staging_table)::regclass
        ORDER BY t.first_seq LIMIT 1) o ON true;
COMMENT ON VIEW staging_status IS 'Per staged schema: mode, pending rows, rows in error and held behind them, last success, lag, the oldest ingest transaction still open';
REVOKE ALL ON FUNCTION staging_counts() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION staging_counts() TO campaign_admin;
GRANT SELECT ON staging_status TO campaign_admin;

-- Issue 12 (HTTP endpoint): the SOAP router also answers
-- xtk:persist#GetEntityIfMoreRecent, the schema look-up of Adobe's SDK.
COMMENT ON FUNCTION soap(text, text, text) IS 'Campaign''s SOAP router: xtk:session Logon, Logoff, Ingest, IngestExt; xtk:persist GetEntityIfMoreRecent; nms:subscription Subscribe, Unsubscribe';

-- Issue 12 (HTTP endpoint): each backend caches the SOAP sessions it has
-- checked (soap.c).  A change to soap_sessions other than a Logon's INSERT
-- (Logoff, an administrator's DELETE or UPDATE, TRUNCATE) makes every
-- backend forget them when it commits.  Executable by no role.
CREATE FUNCTION soap_sessions_changed() RETURNS trigger
AS 'MODULE_PATHNAME', 'soap_sessions_changed' LANGUAGE C;
REVOKE ALL ON FUNCTION soap_sessions_changed() FROM PUBLIC;
CREATE TRIGGER soap_sessions_changed AFTER UPDATE OR DELETE ON soap_sessions
    FOR EACH ROW EXECUTE FUNCTION soap_sessions_changed();
CREATE TRIGGER soap_sessions_truncated AFTER TRUNCATE ON soap_sessions
    FOR EACH STATEMENT EXECUTE FUNCTION soap_sessions_changed();

-- Issue 10 (replication speed): deploy(schema, fillfactor) also sets the
-- cloud table's fillfactor, so that the replication's updates of attributes
-- no index covers can stay HOT.  The same C function as deploy(schema); a
-- NULL fillfactor leaves the table's as it is (so not STRICT).
CREATE FUNCTION deploy(schema text, fillfactor integer) RETURNS text
AS 'MODULE_PATHNAME', 'deploy'
LANGUAGE C VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION deploy(text, integer) IS 'Create or evolve the cloud table and the local foreign table over it, and set the cloud table''s fillfactor';
REVOKE ALL ON FUNCTION deploy(text, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION deploy(text, integer) TO campaign_admin;

-- Issue 14 (ingest under concurrency): an ingest commit wakes the
-- replication worker only for a schema that is deployed and replicated
-- continuously.  Each backend caches that with the schema (registry.c);
-- this trigger makes a change of deployment or mode invalidate the cache
-- entries of the schema's staging table.
CREATE FUNCTION registry_changed() RETURNS trigger
AS 'MODULE_PATHNAME', 'registry_changed' LANGUAGE C;
REVOKE ALL ON FUNCTION registry_changed() FROM PUBLIC;
COMMENT ON FUNCTION registry_changed() IS 'Trigger on campaign.schemas: a schema''s deployment or mode changed, the backends'' cached entries of its staging table are stale';
CREATE TRIGGER wake_on_ingest_changed AFTER UPDATE OF mode, deployed_at ON schemas
    FOR EACH ROW
    WHEN (OLD.mode IS DISTINCT FROM NEW.mode OR OLD.deployed_at IS DISTINCT FROM NEW.deployed_at)
    EXECUTE FUNCTION registry_changed();

-- ---------------------------------------------------------------------------
-- Issue 16: exactly once across a failover to a streaming standby
-- (src/failover.c).  The worker checks the cloud's watermark of each schema
-- against this database before its first batch on a new timeline (a
-- promotion, a point-in-time recovery), or whenever the watermark is ahead
-- of the staging sequence, and records each check here: what the cloud
-- holds that this database no longer has, and whether the sequence had to
-- move.
-- ---------------------------------------------------------------------------
CREATE TABLE failovers (
    id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    checked_at        timestamptz NOT NULL DEFAULT now(),
    timeline          integer NOT NULL,
    schema_name       text NOT NULL,
    cloud_upto        bigint NOT NULL,
    cloud_pending     bigint[] NOT NULL,
    local_upto        bigint NOT NULL,
    sequence_last     bigint NOT NULL,
    sequence_moved_to bigint,
    lost_count        bigint NOT NULL,
    lost_from         bigint,
    lost_upto         bigint,
    report            text
);
CREATE INDEX ON failovers (timeline, schema_name);
COMMENT ON TABLE failovers IS 'Checks of the cloud''s watermark after a failover (new timeline) or when it is ahead of the staging sequence: the changes the cloud holds that this database does not have (lost_count, numbered lost_from to lost_upto)';
GRANT SELECT ON failovers TO campaign_admin;
