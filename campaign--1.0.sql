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
    deployed_at     timestamptz,
    mode            text NOT NULL DEFAULT 'continuous'
                    CHECK (mode IN ('continuous', 'scheduled', 'stopped')),
    every           interval CHECK (every > interval '0'),
    last_run_at     timestamptz,
    last_replicated_at timestamptz,
    replicated_upto bigint NOT NULL DEFAULT 0,
    builtin         boolean NOT NULL DEFAULT false,
    PRIMARY KEY (namespace, name),
    CHECK ((mode = 'scheduled') = (every IS NOT NULL))
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

-- pg_dump keeps the registry; the built-in schemas are made again by
-- CREATE EXTENSION, so their rows are left out.
SELECT pg_catalog.pg_extension_config_dump('schemas', 'WHERE NOT builtin');
SELECT pg_catalog.pg_extension_config_dump('attributes',
    'WHERE (namespace, name) NOT IN (SELECT namespace, name FROM campaign.schemas WHERE builtin)');
SELECT pg_catalog.pg_extension_config_dump('keys',
    'WHERE (namespace, name) NOT IN (SELECT namespace, name FROM campaign.schemas WHERE builtin)');
SELECT pg_catalog.pg_extension_config_dump('indexes',
    'WHERE (namespace, name) NOT IN (SELECT namespace, name FROM campaign.schemas WHERE builtin)');

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

-- Replication: one row per batch the worker sent (or failed to send).
CREATE TABLE replication_history (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    schema_name text NOT NULL,
    started_at  timestamptz NOT NULL,
    finished_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    from_seq    bigint NOT NULL,
    upto_seq    bigint NOT NULL,
    rows        bigint NOT NULL,
    inserts     bigint NOT NULL,
    upserts     bigint NOT NULL,
    updates     bigint NOT NULL,
    deletes     bigint NOT NULL,
    rejected    bigint NOT NULL,
    bytes       bigint NOT NULL,
    outcome     text NOT NULL CHECK (outcome IN ('success', 'failed')),
    error       text
);
CREATE INDEX ON replication_history (finished_at);
COMMENT ON TABLE replication_history IS 'Batches sent to the cloud (kept for campaign.history_retention)';

-- The registry row named by 'ns:name' or 'ns:nameStg'.
CREATE FUNCTION resolve_schema(schema text) RETURNS schemas
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    s campaign.schemas;
BEGIN
    SELECT * INTO s FROM campaign.schemas r
     WHERE r.namespace || ':' || r.name = $1
        OR (r.staging_table IS NOT NULL AND r.namespace || ':' || r.name || 'Stg' = $1);
    IF NOT FOUND THEN
        RAISE EXCEPTION 'schema "%" is not registered', $1
              USING ERRCODE = 'undefined_object',
                    HINT = 'Register it with campaign.register_schema().';
    END IF;
    RETURN s;
END
$$;

CREATE FUNCTION staged_schema(schema text) RETURNS schemas
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    s campaign.schemas := campaign.resolve_schema($1);
BEGIN
    IF s.staging_table IS NULL THEN
        RAISE EXCEPTION 'schema "%:%" has no staging', s.namespace, s.name
              USING ERRCODE = 'object_not_in_prerequisite_state',
                    HINT = 'Register it with autoStg="true" on its element.';
    END IF;
    RETURN s;
END
$$;

CREATE FUNCTION deploy(schema text) RETURNS text
AS 'MODULE_PATHNAME', 'deploy'
LANGUAGE C STRICT VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION deploy(text) IS 'Create or evolve the cloud table and the local foreign table over it';

CREATE FUNCTION replicate_now(schema text) RETURNS bigint
AS 'MODULE_PATHNAME', 'replicate_now'
LANGUAGE C STRICT VOLATILE;
COMMENT ON FUNCTION replicate_now(text) IS 'Replicate what is staged now (StartReplicateStagingData); returns the count';

CREATE FUNCTION start_replication(schema text, every interval DEFAULT NULL) RETURNS text
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    s campaign.schemas := campaign.staged_schema($1);
BEGIN
    UPDATE campaign.schemas r
       SET mode = CASE WHEN $2 IS NULL THEN 'continuous' ELSE 'scheduled' END,
           every = $2, last_run_at = CASE WHEN $2 IS NULL THEN NULL ELSE r.last_run_at END
     WHERE r.namespace = s.namespace AND r.name = s.name;
    PERFORM campaign.notify_worker();
    RETURN CASE WHEN $2 IS NULL THEN 'continuous' ELSE 'scheduled every ' || $2 END;
END
$$;

CREATE FUNCTION stop_replication(schema text) RETURNS text
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    s campaign.schemas := campaign.staged_schema($1);
BEGIN
    UPDATE campaign.schemas r SET mode = 'stopped', every = NULL
     WHERE r.namespace = s.namespace AND r.name = s.name;
    RETURN 'stopped';
END
$$;

-- Rows in error go back to the queue as new staged changes (a new
-- _stg_seq), so they replicate after what is already staged.
CREATE FUNCTION retry_errors(schema text) RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    s campaign.schemas := campaign.staged_schema($1);
    tbl text := format('%I.%I', s.sql_schema, s.staging_table);
    cols text;
    n bigint;
BEGIN
    SELECT string_agg(quote_ident(attname), ', ' ORDER BY attnum) INTO cols
      FROM pg_attribute
     WHERE attrelid = tbl::regclass AND attnum > 0 AND NOT attisdropped
       AND attname NOT IN ('_stg_seq', '_stg_error');
    EXECUTE format('WITH moved AS (DELETE FROM %s WHERE _stg_error IS NOT NULL RETURNING *)'
                   ' INSERT INTO %s (%s) SELECT %s FROM moved ORDER BY _stg_seq',
                   tbl, tbl, cols, cols);
    GET DIAGNOSTICS n = ROW_COUNT;
    PERFORM campaign.notify_worker();
    RETURN n;
END
$$;

CREATE FUNCTION discard_errors(schema text) RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    s campaign.schemas := campaign.staged_schema($1);
    n bigint;
BEGIN
    EXECUTE format('DELETE FROM %I.%I WHERE _stg_error IS NOT NULL', s.sql_schema, s.staging_table);
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$$;

CREATE FUNCTION staging_counts()
RETURNS TABLE (namespace text, name text, pending bigint, oldest_pending timestamptz, errors bigint)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    s campaign.schemas;
BEGIN
    FOR s IN SELECT * FROM campaign.schemas WHERE staging_table IS NOT NULL ORDER BY 1, 2 LOOP
        namespace := s.namespace;
        name := s.name;
        EXECUTE format('SELECT count(*) FILTER (WHERE _stg_seq > $1 AND _stg_error IS NULL),'
                       '       min(_lastmodified) FILTER (WHERE _stg_seq > $1 AND _stg_error IS NULL),'
                       '       count(*) FILTER (WHERE _stg_error IS NOT NULL)'
                       '  FROM %I.%I', s.sql_schema, s.staging_table)
           INTO pending, oldest_pending, errors USING s.replicated_upto;
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
       CASE WHEN c.pending > 0 THEN now() - c.oldest_pending ELSE interval '0' END AS lag
  FROM campaign.schemas s
  JOIN campaign.staging_counts() c USING (namespace, name);
COMMENT ON VIEW staging_status IS 'Per staged schema: mode, pending rows, errors, last success, lag';

REVOKE ALL ON FUNCTION resolve_schema(text), staged_schema(text), deploy(text),
    replicate_now(text), start_replication(text, interval), stop_replication(text),
    retry_errors(text), discard_errors(text), staging_counts() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION deploy(text), replicate_now(text), start_replication(text, interval),
    stop_replication(text), retry_errors(text), discard_errors(text), staging_counts()
    TO campaign_admin;
GRANT SELECT ON replication_history, staging_status TO campaign_admin;

-- Campaign's built-in schemas, staged by default as in Campaign.
SELECT register_schema($$
<srcSchema name="recipient" namespace="nms" label="Recipients" desc="Profiles that deliveries target">
  <element name="recipient" autopk="true" autouuid="true" autoStg="true" label="Recipients">
    <key name="email" internal="true"><keyfield xpath="@email"/></key>
    <dbindex name="lastName"><keyfield xpath="@lastName"/></dbindex>
    <attribute name="email" type="string" length="80" label="Email"/>
    <attribute name="firstName" type="string" length="30" label="First name"/>
    <attribute name="lastName" type="string" length="50" label="Last name"/>
    <attribute name="birthDate" type="date" label="Birth date"/>
    <attribute name="gender" type="byte" label="Gender" desc="0 unknown, 1 male, 2 female"/>
    <attribute name="mobilePhone" type="string" length="32" label="Mobile"/>
    <attribute name="company" type="string" length="80" label="Company"/>
    <attribute name="emailFormat" type="byte" label="Email format" desc="0 unknown, 1 text, 2 HTML"/>
    <attribute name="blackList" type="boolean" label="No longer contact (by any channel)"/>
    <attribute name="blackListEmail" type="boolean" label="No longer contact by email"/>
    <attribute name="created" type="datetime" label="Created"/>
  </element>
</srcSchema>$$);

SELECT register_schema($$
<srcSchema name="service" namespace="nms" label="Services" desc="Information services recipients subscribe to">
  <element name="service" autopk="true" autouuid="true" autoStg="true" label="Services">
    <key name="name" internal="true"><keyfield xpath="@name"/></key>
    <attribute name="name" type="string" length="64" label="Internal name" required="true"/>
    <attribute name="label" type="string" length="128" label="Label"/>
  </element>
</srcSchema>$$);

SELECT register_schema($$
<srcSchema name="subscriptionRcp" namespace="nms" label="Subscriptions" desc="Recipient subscriptions to services">
  <element name="subscriptionRcp" autopk="true" autouuid="true" autoStg="true" label="Subscriptions">
    <key name="recipientService" internal="true">
      <keyfield xpath="@email"/><keyfield xpath="@service"/>
    </key>
    <attribute name="email" type="string" length="80" label="Recipient email" required="true"/>
    <attribute name="service" type="string" length="64" label="Service internal name" required="true"/>
    <attribute name="created" type="datetime" label="Subscribed on"/>
  </element>
</srcSchema>$$);

UPDATE schemas SET builtin = true WHERE namespace = 'nms';

-- Their staging tables belong to the extension; pg_dump keeps their rows.
SELECT pg_catalog.pg_extension_config_dump('nms.recipientstg', '');
SELECT pg_catalog.pg_extension_config_dump('nms.servicestg', '');
SELECT pg_catalog.pg_extension_config_dump('nms.subscriptionrcpstg', '');
SELECT pg_catalog.pg_extension_config_dump('nms.recipientstg__stg_seq_seq', '');
SELECT pg_catalog.pg_extension_config_dump('nms.servicestg__stg_seq_seq', '');
SELECT pg_catalog.pg_extension_config_dump('nms.subscriptionrcpstg__stg_seq_seq', '');

-- The subscription pass replicates nms:subscriptionRcp every
-- campaign.subscription_interval, so its automatic replication is stopped.
UPDATE schemas SET mode = 'stopped' WHERE namespace = 'nms' AND name = 'subscriptionRcp';

-- Ask the worker to look at its queues when this transaction commits.
CREATE FUNCTION notify_worker() RETURNS void
AS 'MODULE_PATHNAME', 'notify_worker' LANGUAGE C STRICT VOLATILE;

CREATE FUNCTION stage_subscription(service text, recipient text, email text,
                                   subscribe boolean, "create" boolean)
RETURNS bigint
AS 'MODULE_PATHNAME', 'stage_subscription' LANGUAGE C STRICT VOLATILE;

-- The email of a recipient element (<recipient email="..."/>), checked.
CREATE FUNCTION recipient_email(recipient text) RETURNS text
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    doc xml;
    key text;
    email text;
BEGIN
    BEGIN
        doc := recipient::xml;
    EXCEPTION WHEN invalid_xml_document OR invalid_xml_content THEN
        RAISE EXCEPTION 'recipient is not a well-formed XML element'
              USING ERRCODE = 'invalid_xml_document',
                    HINT = 'Pass the recipient as <recipient email="..."/>.';
    END;
    IF recipient ~* '<!DOCTYPE' THEN
        RAISE EXCEPTION 'recipient must not contain a document type declaration'
              USING ERRCODE = 'invalid_xml_document';
    END IF;
    key := coalesce((xpath('string(/*/@_key)', doc))[1]::text, '');
    IF key NOT IN ('', '@email') THEN
        RAISE EXCEPTION 'recipients are reconciled on @email, not "%"', left(key, 40)
              USING ERRCODE = 'invalid_parameter_value';
    END IF;
    email := (xpath('string(/*/@email)', doc))[1]::text;
    IF email IS NULL OR email = '' THEN
        RAISE EXCEPTION 'recipient has no email'
              USING ERRCODE = 'not_null_violation',
                    HINT = 'Pass the recipient as <recipient email="..."/>.';
    END IF;
    RETURN email;
END
$$;

-- Is the service known: staged (and not deleted since) or in the cloud?
CREATE FUNCTION service_exists(service text) RETURNS boolean
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    last_op text;
    found boolean := false;
BEGIN
    SELECT _operation INTO last_op FROM nms.servicestg
     WHERE name = service AND _stg_error IS NULL ORDER BY _stg_seq DESC LIMIT 1;
    IF last_op IS NOT NULL THEN
        RETURN last_op <> 'delete';
    END IF;
    IF to_regclass('nms.service') IS NOT NULL THEN
        EXECUTE 'SELECT EXISTS (SELECT 1 FROM nms.service WHERE name = $1)' INTO found USING service;
    END IF;
    RETURN found;
END
$$;

CREATE FUNCTION recipient_exists(email text) RETURNS boolean
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    last_op text;
    found boolean := false;
BEGIN
    SELECT _operation INTO last_op FROM nms.recipientstg r
     WHERE r.email = recipient_exists.email AND _stg_error IS NULL
     ORDER BY _stg_seq DESC LIMIT 1;
    IF last_op IS NOT NULL THEN
        RETURN last_op <> 'delete';
    END IF;
    IF to_regclass('nms.recipient') IS NOT NULL THEN
        EXECUTE 'SELECT EXISTS (SELECT 1 FROM nms.recipient WHERE email = $1)' INTO found USING email;
    END IF;
    RETURN found;
END
$$;

CREATE FUNCTION subscribe(service text, recipient text, "create" boolean DEFAULT false)
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    email text;
BEGIN
    PERFORM campaign.check_rate_limit('subscribe');
    email := campaign.recipient_email(recipient);
    IF NOT campaign.service_exists(service) THEN
        RAISE EXCEPTION 'service "%" does not exist', left(service, 64)
              USING ERRCODE = 'undefined_object',
                    HINT = 'Create it by ingesting into nms:serviceStg.';
    END IF;
    IF NOT "create" AND NOT campaign.recipient_exists(email) THEN
        RAISE EXCEPTION 'recipient "%" does not exist', left(email, 80)
              USING ERRCODE = 'no_data_found',
                    HINT = 'Pass create => true to create it.';
    END IF;
    RETURN campaign.stage_subscription(service, recipient, email, true, "create");
END
$$;

CREATE FUNCTION unsubscribe(service text, recipient text)
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    email text;
BEGIN
    PERFORM campaign.check_rate_limit('unsubscribe');
    email := campaign.recipient_email(recipient);
    IF NOT campaign.service_exists(service) THEN
        RAISE EXCEPTION 'service "%" does not exist', left(service, 64)
              USING ERRCODE = 'undefined_object';
    END IF;
    RETURN campaign.stage_subscription(service, recipient, email, false, false);
END
$$;

COMMENT ON FUNCTION subscribe(text, text, boolean) IS 'nms:subscription Subscribe: stage a subscription, applied by the next subscription pass; returns the request id';
COMMENT ON FUNCTION unsubscribe(text, text) IS 'nms:subscription Unsubscribe: stage an unsubscription, applied by the next subscription pass; returns the request id';

-- Ingestion requests (Campaign Standard's data ingestion API).
CREATE TABLE ingestion_requests (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    mapping      text NOT NULL,
    status       text NOT NULL DEFAULT 'In Progress'
                 CHECK (status IN ('In Progress', 'Success', 'Failed', 'Aborted')),
    info         text NOT NULL DEFAULT '',
    batch_id     text NOT NULL DEFAULT '',
    num_records  bigint NOT NULL DEFAULT 0,
    requested_by name NOT NULL DEFAULT session_user,
    requested_at timestamptz NOT NULL DEFAULT now(),
    started_at   timestamptz,
    finished_at  timestamptz
);
CREATE INDEX ON ingestion_requests (mapping) WHERE status = 'In Progress';
CREATE INDEX ON ingestion_requests (requested_at);
COMMENT ON TABLE ingestion_requests IS 'Ingestion requests and their outcome (kept for campaign.history_retention)';

CREATE FUNCTION ingestion_request(mapping text) RETURNS jsonb
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
     WHERE q.mapping = ingestion_request.mapping AND q.status = 'In Progress';
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

CREATE FUNCTION ingestion_status(mapping text, request_id bigint) RETURNS jsonb
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    q campaign.ingestion_requests;
BEGIN
    PERFORM campaign.check_rate_limit('ingestion_status');
    SELECT * INTO q FROM campaign.ingestion_requests r
     WHERE r.id = request_id AND r.mapping = ingestion_status.mapping;
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

COMMENT ON FUNCTION ingestion_request(text) IS 'POST .../xdmIngestion/<mapping>/ingest: replicate a stopped mapping now';
COMMENT ON FUNCTION ingestion_status(text, bigint) IS 'GET .../xdmIngestion/<mapping>/ingest: the status of a request';

REVOKE ALL ON FUNCTION notify_worker(), stage_subscription(text, text, text, boolean, boolean),
    recipient_email(text), service_exists(text), recipient_exists(text),
    subscribe(text, text, boolean), unsubscribe(text, text),
    ingestion_request(text), ingestion_status(text, bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION subscribe(text, text, boolean), unsubscribe(text, text) TO campaign_ingest;
GRANT EXECUTE ON FUNCTION ingestion_request(text), ingestion_status(text, bigint) TO campaign_sql_function;
GRANT SELECT ON ingestion_requests TO campaign_admin;

-- Throttling (SPEC §8): per-API rate limits, token buckets in shared memory
-- (cluster-wide, cleared by a restart).  Over the limit a call fails with
-- SQLSTATE RL429.
CREATE FUNCTION set_rate_limit(api text, per_second float8, burst integer DEFAULT NULL)
RETURNS text
AS 'MODULE_PATHNAME', 'set_rate_limit' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION set_rate_limit(text, float8, integer) IS 'Limit an API to per_second calls a second with bursts of burst calls; NULL per_second removes the limit';

-- For API functions written in SQL: take a token of the API or fail.
CREATE FUNCTION check_rate_limit(api text) RETURNS void
AS 'MODULE_PATHNAME', 'check_rate_limit' LANGUAGE C STRICT VOLATILE;
COMMENT ON FUNCTION check_rate_limit(text) IS 'Take a token of the API''s rate limit, or fail with SQLSTATE RL429';

CREATE FUNCTION rate_limit_state(OUT api text, OUT per_second float8, OUT burst integer,
                                 OUT tokens float8, OUT accepted bigint, OUT rejected bigint,
                                 OUT limited_since timestamptz)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'rate_limits' LANGUAGE C VOLATILE;

CREATE VIEW rate_limits AS SELECT * FROM rate_limit_state();
COMMENT ON VIEW rate_limits IS 'Per API: its rate limit, the tokens its bucket holds, calls accepted and rejected since the limit was set';

REVOKE ALL ON FUNCTION set_rate_limit(text, float8, integer), check_rate_limit(text),
    rate_limit_state() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION set_rate_limit(text, float8, integer), rate_limit_state()
    TO campaign_admin;
GRANT SELECT ON rate_limits TO campaign_admin;

-- SOAP (SPEC §8): campaign.soap() is what an HTTP gateway calls; the
-- gateway's role needs campaign_soap and nothing else: the rights of a call
-- are those of the role the session token was given to.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'campaign_soap') THEN
        CREATE ROLE campaign_soap NOLOGIN;
    END IF;
END
$$;
GRANT USAGE ON SCHEMA @extschema@ TO campaign_soap;

-- Sessions opened by xtk:session#Logon; only hashes of the tokens are kept.
CREATE TABLE soap_sessions (
    token_hash    bytea PRIMARY KEY,
    security_hash bytea NOT NULL,
    role          oid NOT NULL,
    logon_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    expires_at    timestamptz NOT NULL
);
CREATE INDEX ON soap_sessions (expires_at);
COMMENT ON TABLE soap_sessions IS 'SOAP sessions: SHA-256 of the session and security tokens, role, expiry (campaign.session_timeout after Logon)';
GRANT SELECT (role, logon_at, expires_at), DELETE ON soap_sessions TO campaign_admin;

CREATE FUNCTION soap(envelope text, session_token text DEFAULT NULL, security_token text DEFAULT NULL)
RETURNS text
AS 'MODULE_PATHNAME', 'soap'
LANGUAGE C VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION soap(text, text, text) IS 'Campaign''s SOAP router: xtk:session Logon, Logoff, Ingest, IngestExt; nms:subscription Subscribe, Unsubscribe';

REVOKE ALL ON FUNCTION soap(text, text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION soap(text, text, text) TO campaign_soap;
