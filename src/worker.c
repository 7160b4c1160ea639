/*-------------------------------------------------------------------------
 *
 * worker.c
 *	  Background worker that replicates staged rows to the cloud database
 *	  (Campaign's "Replicate Staging data" workflow).
 *
 * A pool of static workers, campaign.max_workers for each database of
 * campaign.database (campaign.c registers them), serves the staged schemas.
 * Each pass a worker
 *	  - reads the deployed staged schemas from the registry with their mode:
 *	    "continuous" (replicate whenever rows are pending; ingest commits set
 *	    a worker's latch, so a pass starts within milliseconds), "scheduled"
 *	    (every N, from the last run) or "stopped";
 *	  - serves replicate_now() requests from shared memory (campaign.c),
 *	    whatever the mode, and wakes their requesters;
 *	  - replicates each due schema it can claim batch after batch
 *	    (replicate.c), a turn of at most BATCHES_PER_TURN batches, recording
 *	    each batch in campaign.replication_history and logging one line per
 *	    batch;
 *	  - worker 1 of the database also serves the ingestion requests and
 *	    purges replicated staging rows older than campaign.staging_retention
 *	    and history older than campaign.history_retention.
 *
 * A schema is served by one worker at a time, so its changes keep their
 * order: a worker claims it with a session-level advisory lock (key
 * SCHEMA_LOCK_CLASS, hash of the schema's name; pg_locks shows it) for its
 * turn, and other workers pass it by, waking the holder so that it looks
 * again when its turn ends.  Different schemas drain in parallel; workers
 * start their pass at different schemas.  Exactly once does not rest on the
 * claim alone: each batch reads the cloud's watermark FOR UPDATE.  Each
 * worker shows in pg_stat_activity with its database, its number
 * (application_name) and the schema it replicates (query).
 *
 * A failure (cloud down, network, a bug) aborts the local transaction,
 * drops the cloud connection, records the failed batch and retries that
 * schema with exponential backoff (1 s doubling to 60 s); the worker keeps
 * the schema's claim while it backs off, so no other worker retries it
 * sooner.  Staged rows stay where they are, and ingest is never blocked by
 * the workers.
 *
 * Signals as worker_spi: SIGHUP reloads the configuration, SIGTERM exits at
 * the next CHECK_FOR_INTERRUPTS.  The worker is restarted by the postmaster
 * after a crash (bgw_restart_time), and restarts from the cloud's
 * watermark, so nothing is lost or applied twice.
 *
 *-------------------------------------------------------------------------
 */
#include "campaign.h"

#include <malloc.h>

#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "common/hashfn.h"
#include "executor/spi.h"
#include "failover.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "probe.h"
#include "postmaster/interrupt.h"
#include "remote.h"
#include "replicate.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lock.h"
#include "tcop/tcopprot.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/guc.h"
#include "utils/timestamp.h"

PGDLLEXPORT void campaign_worker_main(Datum main_arg) pg_attribute_noreturn();

#define MAX_BACKOFF_MS 60000
#define PURGE_INTERVAL_MS 10000
/* Shortest time between the starts of two passes (wake-ups coalesce). */
#define MIN_PASS_INTERVAL_MS 10

/*
 * After a pass that sent a batch, the next one starts LAG_BUDGET_MS after
 * it, less the time the pass took (at least MIN_PASS_INTERVAL_MS): a change
 * committed just after a batch read the staging table reaches the cloud
 * with the next batch, about LAG_BUDGET_MS later, and under a steady
 * stream each batch carries that long's commits.  A batch costs the worker
 * about the same CPU whatever its size (round trips to the cloud, local
 * transactions), so the pause bounds the workers' CPU under any rate to
 * about 1000 / LAG_BUDGET_MS batches a second per schema, against one
 * batch every MIN_PASS_INTERVAL_MS.  After a pass that sent nothing, a
 * commit is served at once; after one that sent fewer than PAUSE_MIN_ROWS
 * changes (a stream of less than about a thousand commits a second, whose
 * batches cost little), the next pass may start MIN_PASS_INTERVAL_MS after
 * it, so that a slow stream keeps a lag of a few milliseconds.
 */
#define LAG_BUDGET_MS 40
#define PAUSE_MIN_ROWS 10
/* How often a ready extension's version is checked again. */
#define VERSION_CHECK_MS 10000
/* Batches of one schema in a row before other schemas get their turn. */
#define BATCHES_PER_TURN 20
/* First key of the advisory locks that claim schemas ("CAMP"). */
#define SCHEMA_LOCK_CLASS 0x43414d50
/* Next look at an ingestion request whose schema another worker holds. */
#define REQUEST_RETRY_MS 100

/* A deployed staged schema, as one pass sees it. */
typedef struct WorkerSchema
{
	char	   *name;			/* "dem:sampleTable" */
	char	   *staging;		/* quoted staging table */
	Oid			relid;			/* the staging table, InvalidOid if gone */
	bool		subscriptions;	/* nms:subscriptionRcp (the subscription pass) */
	bool		recipients;		/* nms:recipient, replicated before it */
	bool		due;			/* mode says replicate now */
	bool		scheduled;
	int64		replicated_upto;
	char	   *replicated_pending; /* bigint[] text */
} WorkerSchema;

/* Retry state of a schema whose last attempt failed. */
typedef struct Backoff
{
	char		name[2 * NAMEDATALEN + 8];
	TimestampTz retry_at;
	int			delay_ms;
	uint32		lock_key;		/* the claim kept while backing off */
} Backoff;

static PGconn *cloud = NULL;
static CampaignWorkerSlot *me = NULL;	/* our slot of the pool */
static int	my_number;			/* 1.. within our database */
static char *my_database;
static MemoryContext pass_cxt = NULL;	/* reset at every pass */

/*
 * The extension's SQL is still 1.0's: campaign.schemas has no
 * replicated_pending, so our copy of the watermark is kept below the
 * pending numbers (local_upto), which keeps them from purge.
 */
static bool sql_1_0 = false;
static HTAB *backoffs = NULL;
static TimestampTz last_purge = 0;
static bool requests_recovered = false;	/* interrupted requests marked */
static bool pass_sent = false;	/* the pass sent a batch (LAG_BUDGET_MS) */
static int64 pass_rows = 0;		/* the changes its batches carried */
static Oid	sent_relid = InvalidOid;	/* the staging table it sent from */

static void
worker_detach(int code, Datum arg)
{
	me->latch = NULL;
	me->serving = InvalidOid;
	me->in_pass = false;
	me->pid = 0;
	if (cloud)
		cloud_disconnect(cloud);
	cloud = NULL;
}

/* Run fn inside a transaction with SPI and a snapshot. */
static void
in_transaction(void (*fn) (void *), void *arg)
{
	campaign_start_transaction();
	SPI_connect();
	PushActiveSnapshot(GetTransactionSnapshot());
	fn(arg);
	PopActiveSnapshot();
	SPI_finish();
	CommitTransactionCommand();
}

/*
 * Is the extension installed, at a version this library serves?  Version
 * 1.0 (the library installed and the server restarted, ALTER EXTENSION
 * campaign UPDATE not yet run) is served without 1.1's objects (see
 * sql_1_0); another version waits for the update, saying so once.
 */
static bool
extension_ready(void)
{
	static bool said = false;
	static TimestampTz ready_at = 0;
	char	   *version = NULL;

	if (ready_at != 0 &&
		!TimestampDifferenceExceeds(ready_at, GetCurrentTimestamp(), VERSION_CHECK_MS))
		return true;
	ready_at = 0;
	campaign_start_transaction();
	SPI_connect();
	PushActiveSnapshot(GetTransactionSnapshot());
	SPI_execute("SELECT extversion FROM pg_catalog.pg_extension WHERE extname = 'campaign'",
				true, 1);
	if (SPI_processed > 0)
		version = MemoryContextStrdup(pass_cxt, SPI_getvalue(SPI_tuptable->vals[0],
															 SPI_tuptable->tupdesc, 1));
	PopActiveSnapshot();
	SPI_finish();
	CommitTransactionCommand();
	if (version == NULL)
		return false;
	if (strcmp(version, CAMPAIGN_VERSION) == 0 || strcmp(version, "1.0") == 0)
	{
		said = false;
		sql_1_0 = strcmp(version, "1.0") == 0;
		ready_at = GetCurrentTimestamp();
		return true;
	}
	if (!said)
		ereport(LOG,
				(errmsg("campaign: the library is version %s but the extension in database \"%s\" is version %s; replication waits",
						CAMPAIGN_VERSION, my_database, version),
				 errhint("Run ALTER EXTENSION campaign UPDATE in database \"%s\".",
						 my_database)));
	said = true;
	return false;
}

/*
 * Pin the settings the worker's output relies on, whatever the server's
 * defaults (as postgres_fdw's set_transmission_modes does): values go to
 * the cloud in text form, the batch's reads must see every row committed
 * when it waited (READ COMMITTED), and no timeout of the DBA's cuts a batch.
 */
static void
pin_settings(void)
{
	static const char *const settings[][2] = {
		{"default_transaction_isolation", "read committed"},
		{"default_transaction_read_only", "off"},
		{"datestyle", "ISO, YMD"},
		{"intervalstyle", "postgres"},
		{"extra_float_digits", "3"},
		{"timezone", "UTC"},
		{"search_path", "pg_catalog, pg_temp"},
		{"statement_timeout", "0"},
		{"lock_timeout", "0"},
		{"idle_in_transaction_session_timeout", "0"},
		{"session_replication_role", "origin"},
		{"synchronous_commit", "on"},
	};
	int			i;

	for (i = 0; i < lengthof(settings); i++)
		SetConfigOption(settings[i][0], settings[i][1], PGC_SUSET, PGC_S_OVERRIDE);
}

/*
 * A plan prepared once and kept for the worker's life (the plan cache
 * re-plans it when the registry's tables change): the passes, one per
 * wake-up, do not parse and plan their queries again.
 */
static SPIPlanPtr
kept_plan(const char *sql, int nargs, Oid *argtypes)
{
	SPIPlanPtr	plan = SPI_prepare(sql, nargs, argtypes);

	if (plan == NULL)
		elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
	SPI_keepplan(plan);
	return plan;
}

static SPIPlanPtr load_schemas_plans[2] = {NULL, NULL};	/* 1.1, 1.0 */
static SPIPlanPtr load_requests_plan = NULL;
static SPIPlanPtr record_plans[3] = {NULL, NULL, NULL};	/* history, 1.0, 1.1 */

static void
load_schemas(void *arg)
{
	List	  **schemas = (List **) arg;
	uint64		i;

	/*
	 * nms:subscriptionRcp is replicated by the subscription pass, every
	 * campaign.subscription_interval, as if scheduled; the pass replicates
	 * nms:recipient too, before it (worker_pass claims both), whatever its
	 * mode, so that recipients created by subscribe() arrive with their
	 * subscriptions.
	 */
	if (load_schemas_plans[sql_1_0] == NULL)
		load_schemas_plans[sql_1_0] = kept_plan(psprintf("WITH pass AS (SELECT last_run_at IS NULL"
						  "     OR last_run_at + make_interval(secs => $1) <= now() AS due"
						  "   FROM campaign.schemas WHERE builtin AND namespace = 'nms'"
						  "    AND name = 'subscriptionRcp' AND deployed_at IS NOT NULL)"
						  "SELECT namespace || ':' || name,"
						  "       quote_ident(sql_schema) || '.' || quote_ident(staging_table),"
						  "       CASE WHEN subscriptions THEN pass.due"
						  "            ELSE mode = 'continuous' OR (mode = 'scheduled' AND"
						  "              (last_run_at IS NULL OR last_run_at + every <= now()))"
						  "              OR (recipients AND pass.due) END,"
						  "       mode = 'scheduled' OR subscriptions, replicated_upto,"
						  "       %s,"
						  "       coalesce(to_regclass(quote_ident(sql_schema) || '.'"
						  "                            || quote_ident(staging_table))::oid, 0),"
						  "       subscriptions, recipients"
						  "  FROM (SELECT *, builtin AND namespace = 'nms' AND name = 'subscriptionRcp'"
						  "               AS subscriptions,"
						  "               builtin AND namespace = 'nms' AND name = 'recipient'"
						  "               AS recipients FROM campaign.schemas) s"
						  "  LEFT JOIN pass ON true"
						  " WHERE staging_table IS NOT NULL AND deployed_at IS NOT NULL"
						  " ORDER BY namespace, name",
						  sql_1_0 ? "'{}'::bigint[]" : "replicated_pending"),
									  1, (Oid[]) {INT4OID});
	SPI_execute_plan(load_schemas_plans[sql_1_0],
					 (Datum[]) {Int32GetDatum(campaign_subscription_interval)},
					 NULL, true, 0);
	for (i = 0; i < SPI_processed; i++)
	{
		HeapTuple	t = SPI_tuptable->vals[i];
		TupleDesc	d = SPI_tuptable->tupdesc;
		MemoryContext old = MemoryContextSwitchTo(pass_cxt);
		WorkerSchema *s = palloc0(sizeof(WorkerSchema));
		bool		isnull;

		s->name = SPI_getvalue(t, d, 1);
		s->staging = SPI_getvalue(t, d, 2);
		s->due = DatumGetBool(SPI_getbinval(t, d, 3, &isnull));
		s->scheduled = DatumGetBool(SPI_getbinval(t, d, 4, &isnull));
		s->replicated_upto = DatumGetInt64(SPI_getbinval(t, d, 5, &isnull));
		s->replicated_pending = SPI_getvalue(t, d, 6);
		s->relid = DatumGetObjectId(SPI_getbinval(t, d, 7, &isnull));
		s->subscriptions = DatumGetBool(SPI_getbinval(t, d, 8, &isnull));
		s->recipients = DatumGetBool(SPI_getbinval(t, d, 9, &isnull));
		*schemas = lappend(*schemas, s);
		MemoryContextSwitchTo(old);
	}
}

/* Has the schema staged rows the cloud has not got? (probe.c) */
static void
check_pending(void *arg)
{
	WorkerSchema *s = (WorkerSchema *) arg;
	ArrayType  *array = DatumGetArrayTypeP(OidInputFunctionCall(F_ARRAY_IN,
																s->replicated_pending,
																INT8OID, -1));
	Datum	   *items;
	int64	   *pending;
	int			n;
	int			i;

	deconstruct_array(array, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE,
					  &items, NULL, &n);
	pending = palloc(sizeof(int64) * Max(n, 1));
	for (i = 0; i < n; i++)
		pending[i] = DatumGetInt64(items[i]);
	s->due = OidIsValid(s->relid) &&
		staged_rows_to_send(s->relid, s->replicated_upto, pending, n);
}

/*
 * Our copy of the watermark: under 1.0's SQL, below the lowest pending
 * number (there is nowhere to keep them).
 */
static int64
local_upto(BatchResult *r)
{
	if (!sql_1_0 || r->lowest_pending == 0)
		return r->upto;
	return Min(r->upto, r->lowest_pending - 1);
}

typedef struct BatchRecord
{
	const char *schema;
	BatchResult *result;
	TimestampTz started;
	const char *error;			/* NULL on success */
	bool		failed;			/* error is the failure, not a warning */
	int64		history_id;		/* set by record_batch */
} BatchRecord;

static void
record_batch(void *arg)
{
	BatchRecord *r = (BatchRecord *) arg;
	BatchResult *res = r->result;
	Oid			argtypes[13] = {TEXTOID, TIMESTAMPTZOID, INT8OID, INT8OID, INT8OID,
		INT8OID, INT8OID, INT8OID, INT8OID, INT8OID, INT8OID, TEXTOID, BOOLOID};
	Datum		args[13];
	char		nulls[13];
	bool		isnull;

	memset(nulls, ' ', sizeof(nulls));
	args[0] = CStringGetTextDatum(r->schema);
	args[1] = TimestampTzGetDatum(r->started);
	args[2] = Int64GetDatum(res->from);
	args[3] = Int64GetDatum(res->upto);
	args[4] = Int64GetDatum(res->rows);
	args[5] = Int64GetDatum(res->counts[STG_OP_INSERT]);
	args[6] = Int64GetDatum(res->counts[STG_OP_INSERT_OR_UPDATE]);
	args[7] = Int64GetDatum(res->counts[STG_OP_UPDATE]);
	args[8] = Int64GetDatum(res->counts[STG_OP_DELETE]);
	args[9] = Int64GetDatum(res->rejected);
	args[10] = Int64GetDatum(res->bytes);
	args[11] = r->error ? CStringGetTextDatum(r->error) : (Datum) 0;
	nulls[11] = r->error ? ' ' : 'n';
	args[12] = BoolGetDatum(r->failed);
	/* Kept plans: a batch every few milliseconds under a steady load. */
	if (record_plans[0] == NULL)
		record_plans[0] = kept_plan("INSERT INTO campaign.replication_history"
									" (schema_name, started_at, from_seq, upto_seq, rows, inserts, upserts,"
									"  updates, deletes, rejected, bytes, outcome, error)"
									" VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11,"
									"  CASE WHEN $13 THEN 'failed' ELSE 'success' END, $12)"
									" RETURNING id",
									13, argtypes);
	SPI_execute_plan(record_plans[0], args, nulls, false, 0);
	r->history_id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0],
												SPI_tuptable->tupdesc, 1, &isnull));
	if (r->failed)
		return;
	if (sql_1_0)
	{
		if (record_plans[1] == NULL)
			record_plans[1] = kept_plan("UPDATE campaign.schemas SET replicated_upto = $2,"
										" last_replicated_at = now()"
										" WHERE namespace || ':' || name = $1",
										2, (Oid[]) {TEXTOID, INT8OID});
		SPI_execute_plan(record_plans[1], (Datum[]) {args[0], Int64GetDatum(local_upto(res))},
						 NULL, false, 0);
		return;
	}
	if (record_plans[2] == NULL)
		record_plans[2] = kept_plan("UPDATE campaign.schemas SET replicated_upto = $2,"
									" replicated_pending = $3::bigint[], last_replicated_at = now()"
									" WHERE namespace || ':' || name = $1",
									3, (Oid[]) {TEXTOID, INT8OID, TEXTOID});
	SPI_execute_plan(record_plans[2], (Datum[]) {args[0], args[3], CStringGetTextDatum(res->pending)},
					 NULL, false, 0);
}

/* Our copy of the cloud's watermark, when it differs. */
static void
record_watermark(void *arg)
{
	WorkerSchema *s = (WorkerSchema *) arg;

	/* Under 1.0's SQL only the first two parameters are used. */
	SPI_execute_with_args(sql_1_0 ? "UPDATE campaign.schemas SET replicated_upto = $2"
						  " WHERE namespace || ':' || name = $1"
						  : "UPDATE campaign.schemas SET replicated_upto = $2,"
						  " replicated_pending = $3::bigint[]"
						  " WHERE namespace || ':' || name = $1",
						  sql_1_0 ? 2 : 3, (Oid[]) {TEXTOID, INT8OID, TEXTOID},
						  (Datum[]) {CStringGetTextDatum(s->name), Int64GetDatum(s->replicated_upto),
						  CStringGetTextDatum(s->replicated_pending)},
						  NULL, false, 0);
}

/* A scheduled schema is caught up: its next run is one interval away. */
static void
record_run_end(void *arg)
{
	WorkerSchema *s = (WorkerSchema *) arg;

	SPI_execute_with_args("UPDATE campaign.schemas SET last_run_at = now()"
						  " WHERE namespace || ':' || name = $1",
						  1, (Oid[]) {TEXTOID},
						  (Datum[]) {CStringGetTextDatum(s->name)}, NULL, false, 0);
}

static void
purge(void *arg)
{
	List	   *schemas = (List *) arg;
	ListCell   *lc;
	Oid			argtypes[3] = {INT8OID, INT4OID, TEXTOID};

	foreach(lc, schemas)
	{
		WorkerSchema *s = lfirst(lc);
		Datum		args[3] = {Int64GetDatum(s->replicated_upto),
			Int32GetDatum(campaign_staging_retention),
		CStringGetTextDatum(s->replicated_pending)};

		/*
		 * Rows are staged in _lastmodified order, give or take concurrent
		 * transactions: the purgeable rows are the prefix of the table up to
		 * the first row still within retention, found by walking the
		 * primary key from the start instead of scanning the whole table.
		 */
		SPI_execute_with_args(psprintf("DELETE FROM %s WHERE " STG_COL_SEQ " <= $1"
									   " AND " STG_COL_SEQ " < coalesce((SELECT " STG_COL_SEQ
									   " FROM %s WHERE " STG_COL_SEQ " <= $1 AND " STG_COL_LASTMOD
									   " >= now() - make_interval(secs => $2)"
									   " ORDER BY " STG_COL_SEQ " LIMIT 1), $1 + 1)"
									   " AND " STG_COL_ERROR " IS NULL"
									   " AND " STG_COL_SEQ " <> ALL ($3::bigint[])",
									   s->staging, s->staging),
							  3, argtypes, args, NULL, false, 0);
	}
	SPI_execute_with_args("DELETE FROM campaign.replication_history"
						  " WHERE finished_at < now() - make_interval(secs => $1)",
						  1, (Oid[]) {INT4OID},
						  (Datum[]) {Int32GetDatum(campaign_history_retention)},
						  NULL, false, 0);
	SPI_execute_with_args("DELETE FROM campaign.ingestion_requests"
						  " WHERE status <> 'In Progress' AND finished_at < now() - make_interval(secs => $1)",
						  1, (Oid[]) {INT4OID},
						  (Datum[]) {Int32GetDatum(campaign_history_retention)},
						  NULL, false, 0);
}

/* ---------- claims of schemas ---------- */

static void
schema_locktag(LOCKTAG *tag, uint32 key)
{
	SET_LOCKTAG_ADVISORY(*tag, MyDatabaseId, SCHEMA_LOCK_CLASS, key, 2);
}

static uint32
schema_lock_key(const char *name)
{
	return hash_bytes((const unsigned char *) name, strlen(name));
}

/*
 * Claim the schema for this worker (a no-op when we hold it already);
 * false when another worker holds it: that one is woken, so that it looks
 * at the schema again when its turn ends.
 */
static bool
claim_schema(WorkerSchema *s)
{
	LOCKTAG		tag;
	int			i;

	schema_locktag(&tag, schema_lock_key(s->name));
	if (LockHeldByMe(&tag, ExclusiveLock) ||
		LockAcquire(&tag, ExclusiveLock, true, true) != LOCKACQUIRE_NOT_AVAIL)
		return true;
	for (i = 0; s->relid != InvalidOid && i < campaign_nworkers; i++)
	{
		Latch	   *latch = campaign_worker_latch(i);

		if (latch && &campaign_workers[i] != me && campaign_workers[i].serving == s->relid)
			SetLatch(latch);
	}
	return false;
}

/*
 * Does another worker keep the staging table after a batch (see serving())?
 * It serves it again when its pause is over: the others pass it by.
 */
static bool
kept_by_other(Oid relid)
{
	int			i;

	for (i = 0; OidIsValid(relid) && i < campaign_nworkers; i++)
		if (&campaign_workers[i] != me && campaign_worker_latch(i) &&
			campaign_workers[i].serving == relid)
			return true;
	return false;
}

static void
release_schema_key(uint32 key)
{
	LOCKTAG		tag;

	schema_locktag(&tag, key);
	if (LockHeldByMe(&tag, ExclusiveLock))
		LockRelease(&tag, ExclusiveLock, true);
}

static void
release_schema(WorkerSchema *s)
{
	release_schema_key(schema_lock_key(s->name));
}

/* Claims kept for backoff of schemas that are no longer served go. */
static void
release_stale_claims(List *schemas)
{
	HASH_SEQ_STATUS seq;
	Backoff    *b;

	hash_seq_init(&seq, backoffs);
	while ((b = hash_seq_search(&seq)) != NULL)
	{
		ListCell   *lc;
		bool		served = false;

		foreach(lc, schemas)
			served |= strcmp(((WorkerSchema *) lfirst(lc))->name, b->name) == 0;
		if (!served)
		{
			release_schema_key(b->lock_key);
			hash_search(backoffs, b->name, HASH_REMOVE, NULL);
		}
	}
}

static Backoff *
backoff_of(const char *name, bool create)
{
	bool		found;
	Backoff    *b;

	if (strlen(name) >= sizeof(b->name))
		return NULL;
	b = hash_search(backoffs, name, create ? HASH_ENTER : HASH_FIND, &found);
	if (b && !found)
	{
		b->retry_at = 0;
		b->delay_ms = 0;
		b->lock_key = schema_lock_key(name);
	}
	return b;
}

/* A turn on the schema is over: its claim goes, unless it backs off. */
static void
end_turn(WorkerSchema *s)
{
	Backoff    *b = backoff_of(s->name, false);

	if (b == NULL || b->retry_at == 0)
		release_schema(s);
}

/* Take the pending replicate_now() requests of that schema. */
static bool
requested(const char *name, bool *slots)
{
	bool		any = false;
	int			i;
	size_t		len = strlen(name);

	SpinLockAcquire(&campaign_shared->mutex);
	for (i = 0; i < CAMPAIGN_MAX_REQUESTS; i++)
	{
		ReplicationRequest *r = &campaign_shared->requests[i];

		slots[i] = r->in_use && !r->done && r->dboid == MyDatabaseId &&
			(strcmp(r->schema, name) == 0 ||
			 (strncmp(r->schema, name, len) == 0 && strcmp(r->schema + len, "Stg") == 0));
		any |= slots[i];
	}
	SpinLockRelease(&campaign_shared->mutex);
	return any;
}

static void
finish_requests(bool *slots, int64 count, const char *error)
{
	int			i;

	SpinLockAcquire(&campaign_shared->mutex);
	for (i = 0; i < CAMPAIGN_MAX_REQUESTS; i++)
		if (slots[i])
		{
			ReplicationRequest *r = &campaign_shared->requests[i];

			r->done = true;
			r->count = count;
			r->failed = (error != NULL);
			if (error)
				strlcpy(r->error, error, sizeof(r->error));
		}
	SpinLockRelease(&campaign_shared->mutex);
	ConditionVariableBroadcast(&campaign_shared->request_cv);
}

/* Requests for schemas that are not deployed staged schemas fail. */
static void
refuse_unknown_requests(List *schemas)
{
	int			i;
	bool		any = false;

	SpinLockAcquire(&campaign_shared->mutex);
	for (i = 0; i < CAMPAIGN_MAX_REQUESTS; i++)
	{
		ReplicationRequest *r = &campaign_shared->requests[i];
		ListCell   *lc;
		bool		known = false;

		if (!r->in_use || r->done || r->dboid != MyDatabaseId)
			continue;
		foreach(lc, schemas)
		{
			const char *name = ((WorkerSchema *) lfirst(lc))->name;
			size_t		len = strlen(name);

			known |= strcmp(r->schema, name) == 0 ||
				(strncmp(r->schema, name, len) == 0 && strcmp(r->schema + len, "Stg") == 0);
		}
		if (!known)
		{
			r->done = true;
			r->failed = true;
			snprintf(r->error, sizeof(r->error),
					 "schema \"%s\" is not a deployed staged schema of database \"%s\"",
					 r->schema, my_database);
			any = true;
		}
	}
	SpinLockRelease(&campaign_shared->mutex);
	if (any)
		ConditionVariableBroadcast(&campaign_shared->request_cv);
}

static void
log_batch(const char *schema, BatchResult *r, TimestampTz started)
{
	long		secs;
	int			usecs;

	TimestampDifference(started, GetCurrentTimestamp(), &secs, &usecs);
	ereport(LOG,
			(errmsg("campaign: %s: replicated " INT64_FORMAT " staged changes"
					" (" INT64_FORMAT " inserts, " INT64_FORMAT " upserts, "
					INT64_FORMAT " updates, " INT64_FORMAT " deletes, "
					INT64_FORMAT " rejected, " INT64_FORMAT " held) up to "
					INT64_FORMAT " in %ld ms",
					schema, r->rows, r->counts[STG_OP_INSERT],
					r->counts[STG_OP_INSERT_OR_UPDATE], r->counts[STG_OP_UPDATE],
					r->counts[STG_OP_DELETE], r->rejected, r->held, r->upto,
					secs * 1000 + usecs / 1000)));
}

/*
 * Replicate one schema until caught up (or its turn ends).  Returns the
 * number of changes applied; raises on failure.
 */
static int64
replicate_schema(WorkerSchema *s, bool until_caught_up, bool *more)
{
	int64		applied = 0;
	int			batches = 0;

	*more = false;
	for (;;)
	{
		BatchResult result;
		BatchRecord rec;
		TimestampTz started = GetCurrentTimestamp();
		int			op;

		CHECK_FOR_INTERRUPTS();
		if (cloud == NULL || PQstatus(cloud) != CONNECTION_OK)
		{
			if (cloud)
				cloud_disconnect(cloud);
			cloud = NULL;
			campaign_start_transaction();
			cloud = cloud_connect("campaign replication worker");
			CommitTransactionCommand();
		}
		/* After a failover: the cloud's watermark against this database. */
		failover_heal(cloud, s->name);
		/* Read ahead when this turn goes on with the same schema. */
		if (!replicate_batch(cloud, s->name, s->replicated_upto,
							 until_caught_up || batches + 1 < BATCHES_PER_TURN, &result))
		{
			/*
			 * A crash between the cloud's commit and ours leaves our copy of
			 * the watermark behind: catch up with the cloud's.  A cloud
			 * restored from a backup has it behind ours: follow it, so that
			 * what it lost is not purged here before it is sent again.
			 */
			if (local_upto(&result) != s->replicated_upto ||
				strcmp(result.pending, s->replicated_pending) != 0)
			{
				s->replicated_upto = local_upto(&result);
				s->replicated_pending = MemoryContextStrdup(pass_cxt, result.pending);
				in_transaction(record_watermark, s);
			}
			break;
		}
		pass_sent = true;
		pass_rows += result.rows;
		sent_relid = s->relid;
		for (op = 0; op < 4; op++)
			applied += result.counts[op];
		log_batch(s->name, &result, started);
		rec.schema = s->name;
		rec.result = &result;
		rec.started = started;
		rec.error = result.warning;
		rec.failed = false;
		in_transaction(record_batch, &rec);
		s->replicated_upto = local_upto(&result);
		s->replicated_pending = MemoryContextStrdup(pass_cxt, result.pending);

		/*
		 * Caught up: no batch to find empty (a round trip to the cloud and
		 * a local transaction).  What commits from now on sets our latch.
		 */
		if (result.caught_up)
			break;
		if (!until_caught_up && ++batches >= BATCHES_PER_TURN)
		{
			*more = true;
			break;
		}
	}
	return applied;
}

/* Clean up after a failed attempt; returns the error message. */
static char *
recover_from_error(MemoryContext cxt, const char *schema)
{
	ErrorData  *edata;
	char	   *message;

	MemoryContextSwitchTo(cxt);
	edata = CopyErrorData();
	FlushErrorState();
	AbortOutOfAnyTransaction();
	if (cloud)
		cloud_disconnect(cloud);
	cloud = NULL;
	message = edata->detail ? psprintf("%s: %s", edata->message, edata->detail)
		: pstrdup(edata->message);
	ereport(WARNING,
			(errmsg("campaign: replication of %s failed: %s", schema, edata->message),
			 edata->detail ? errdetail_internal("%s", edata->detail) : 0));
	FreeErrorData(edata);
	return message;
}

/* Record a failed batch in the history; returns its id (0 if that failed too). */
static int64
record_failure(MemoryContext cxt, const char *schema, const char *message)
{
	BatchResult result;
	BatchRecord rec;

	memset(&result, 0, sizeof(result));
	rec.schema = schema;
	rec.result = &result;
	rec.started = GetCurrentTimestamp();
	rec.error = message;
	rec.failed = true;
	rec.history_id = 0;
	PG_TRY();
	{
		in_transaction(record_batch, &rec);
	}
	PG_CATCH();
	{
		pfree(recover_from_error(cxt, schema));
	}
	PG_END_TRY();
	return rec.history_id;
}

/*
 * Say in shared memory and pg_stat_activity which schema we replicate.
 * After a turn that sent a batch, the staging table stays ours in shared
 * memory until the pause that follows the pass is over (LAG_BUDGET_MS):
 * its commits meanwhile wake us, not an idle worker of the pool, which
 * would start a pass at once and make the pause void.
 */
static void
serving(WorkerSchema *s)
{
	me->serving = s ? s->relid : pass_sent ? sent_relid : InvalidOid;
	pg_memory_barrier();
	pgstat_report_activity(STATE_RUNNING, s ? psprintf("replicating %s", s->name)
						   : "looking for staged changes");
}

/* ---------- ingestion requests ---------- */

#define REQUEST_ABORTED "Ingestion request aborted due to some issue with data ingestion service. Please submit a new request"
#define REQUEST_NO_RECORD "ACP-880056 Failed to fetch the record from the database."
#define REQUEST_UPLOAD_FAILED "ACP-880096 Sync Job failed to upload. Please check the error in the Platform UI."

typedef struct RequestUpdate
{
	int64		id;
	const char *status;			/* NULL: mark started */
	const char *info;
	int64		num_records;
	int64		batch_id;		/* 0: none */
} RequestUpdate;

static void
update_request(void *arg)
{
	RequestUpdate *u = (RequestUpdate *) arg;
	char		batch[32] = "";

	if (u->status == NULL)
	{
		SPI_execute_with_args("UPDATE campaign.ingestion_requests SET started_at = now() WHERE id = $1",
							  1, (Oid[]) {INT8OID}, (Datum[]) {Int64GetDatum(u->id)},
							  NULL, false, 0);
		return;
	}
	if (u->batch_id)
		snprintf(batch, sizeof(batch), INT64_FORMAT, u->batch_id);
	SPI_execute_with_args("UPDATE campaign.ingestion_requests SET status = $2, info = $3,"
						  " num_records = $4, batch_id = $5, finished_at = now() WHERE id = $1",
						  5, (Oid[]) {INT8OID, TEXTOID, TEXTOID, INT8OID, TEXTOID},
						  (Datum[]) {Int64GetDatum(u->id), CStringGetTextDatum(u->status),
							  CStringGetTextDatum(u->info), Int64GetDatum(u->num_records),
						  CStringGetTextDatum(batch)},
						  NULL, false, 0);
}

/* Requests a crash or restart cut off end Aborted (pg_cron's MarkPendingRunsAsFailed). */
static void
abort_interrupted_requests(void *arg)
{
	SPI_execute_with_args("UPDATE campaign.ingestion_requests SET status = 'Aborted', info = $1,"
						  " finished_at = now() WHERE status = 'In Progress' AND started_at IS NOT NULL",
						  1, (Oid[]) {TEXTOID}, (Datum[]) {CStringGetTextDatum(REQUEST_ABORTED)},
						  NULL, false, 0);
}

typedef struct PendingRequest
{
	int64		id;
	char	   *mapping;
} PendingRequest;

static void
load_requests(void *arg)
{
	List	  **requests = (List **) arg;
	uint64		i;

	if (load_requests_plan == NULL)
		load_requests_plan = kept_plan("SELECT id, mapping FROM campaign.ingestion_requests"
									   " WHERE status = 'In Progress' ORDER BY id", 0, NULL);
	SPI_execute_plan(load_requests_plan, NULL, NULL, true, 0);
	for (i = 0; i < SPI_processed; i++)
	{
		MemoryContext old = MemoryContextSwitchTo(pass_cxt);
		PendingRequest *r = palloc(sizeof(PendingRequest));
		bool		isnull;

		r->id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[i],
											SPI_tuptable->tupdesc, 1, &isnull));
		r->mapping = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2);
		*requests = lappend(*requests, r);
		MemoryContextSwitchTo(old);
	}
}

/*
 * Serve the ingestion requests: replicate each mapping until caught up,
 * then record Success (numRecords), or Failed: no record to ingest, or a
 * batch that failed (batchId when its data had been sent).
 */
static void
serve_requests(List *schemas, long *sleep_ms)
{
	List	   *requests = NIL;
	ListCell   *lc;

	in_transaction(load_requests, &requests);
	foreach(lc, requests)
	{
		PendingRequest *r = lfirst(lc);
		WorkerSchema *s = NULL;
		RequestUpdate u = {r->id, NULL, "", 0, 0};
		ListCell   *lc2;
		bool		more;

		foreach(lc2, schemas)
			if (strcmp(((WorkerSchema *) lfirst(lc2))->name, r->mapping) == 0)
				s = lfirst(lc2);
		if (s == NULL)
		{
			u.status = "Failed";
			u.info = REQUEST_NO_RECORD;
			in_transaction(update_request, &u);
			continue;
		}
		if (!claim_schema(s))
		{
			*sleep_ms = Min(*sleep_ms, REQUEST_RETRY_MS);
			continue;
		}
		serving(s);
		in_transaction(update_request, &u);
		replication_data_sent = false;
		PG_TRY();
		{
			u.num_records = replicate_schema(s, true, &more);
			u.status = u.num_records > 0 ? "Success" : "Failed";
			u.info = u.num_records > 0 ? "" : REQUEST_NO_RECORD;
		}
		PG_CATCH();
		{
			bool		sent = replication_data_sent;
			char	   *message = recover_from_error(pass_cxt, s->name);
			int64		history_id = record_failure(pass_cxt, s->name, message);

			u.status = "Failed";
			u.info = REQUEST_UPLOAD_FAILED;
			u.num_records = 0;
			u.batch_id = sent ? history_id : 0;
		}
		PG_END_TRY();
		in_transaction(update_request, &u);
		serving(NULL);
		end_turn(s);
	}
}

/* Purge the schemas no other worker holds. */
static void
purge_schemas(List *schemas)
{
	List	   *claimed = NIL;
	ListCell   *lc;

	foreach(lc, schemas)
		if (claim_schema(lfirst(lc)))
			claimed = lappend(claimed, lfirst(lc));
	PG_TRY();
	{
		in_transaction(purge, claimed);
	}
	PG_FINALLY();
	{
		foreach(lc, claimed)
			end_turn(lfirst(lc));
	}
	PG_END_TRY();
}

/* One pass over the schemas; returns the ms until the next pass is due. */
static long
worker_pass(void)
{
	List	   *schemas = NIL;
	long		sleep_ms = campaign_naptime;
	TimestampTz now = GetCurrentTimestamp();
	bool		slots[CAMPAIGN_MAX_REQUESTS];
	int			nschemas;
	int			k;

	if (!extension_ready())
	{
		refuse_unknown_requests(NIL);
		return sleep_ms;
	}
	if (my_number == 1 && !requests_recovered)
	{
		in_transaction(abort_interrupted_requests, NULL);
		requests_recovered = true;
	}
	in_transaction(load_schemas, &schemas);
	refuse_unknown_requests(schemas);
	release_stale_claims(schemas);
	if (my_number == 1)
		serve_requests(schemas, &sleep_ms);

	/* Workers start at different schemas, so that they take different ones. */
	nschemas = list_length(schemas);
	for (k = 0; k < nschemas; k++)
	{
		WorkerSchema *s = list_nth(schemas, (k + my_number - 1) % nschemas);
		WorkerSchema *recipients = NULL;
		bool		asked = requested(s->name, slots);
		Backoff    *b = backoff_of(s->name, false);
		bool		more = false;
		int64		applied;
		ListCell   *lc;

		if (!asked && (!s->due || kept_by_other(s->relid)))
			continue;
		if (!asked && b && b->retry_at > now)
		{
			sleep_ms = Min(sleep_ms, TimestampDifferenceMilliseconds(now, b->retry_at));
			continue;
		}
		/* (After a failover, failover.c checks the schema, pending or not.) */
		if (!asked && !s->scheduled && !failover_heal_pending(s->name))
		{
			in_transaction(check_pending, s);
			if (!s->due)
				continue;
		}
		/* The subscription pass replicates the recipients first. */
		if (s->subscriptions)
			foreach(lc, schemas)
				if (((WorkerSchema *) lfirst(lc))->recipients)
					recipients = lfirst(lc);
		if (recipients && !claim_schema(recipients))
		{
			sleep_ms = Min(sleep_ms, REQUEST_RETRY_MS);
			continue;
		}
		if (!claim_schema(s))
		{
			if (recipients)
				release_schema(recipients);
			continue;
		}
		serving(s);

		PG_TRY();
		{
			if (recipients)
			{
				bool		ignored;

				replicate_schema(recipients, true, &ignored);
				release_schema(recipients);
			}
			applied = replicate_schema(s, asked, &more);
			if (asked)
				finish_requests(slots, applied, NULL);
			if (s->scheduled && !more)
				in_transaction(record_run_end, s);
			if (b)
				b->delay_ms = 0, b->retry_at = 0;
			release_schema(s);
		}
		PG_CATCH();
		{
			char	   *message = recover_from_error(pass_cxt, s->name);

			if (asked)
				finish_requests(slots, 0, message);
			record_failure(pass_cxt, s->name, message);
			b = backoff_of(s->name, true);
			if (b)
			{
				b->delay_ms = b->delay_ms ? Min(b->delay_ms * 2, MAX_BACKOFF_MS) : 1000;
				b->retry_at = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), b->delay_ms);
				sleep_ms = Min(sleep_ms, b->delay_ms);
			}
			else
				release_schema(s);
			if (recipients)
				release_schema(recipients);
		}
		PG_END_TRY();
		serving(NULL);
		if (more)
			sleep_ms = 0;
	}

	if (my_number == 1 && TimestampDifferenceExceeds(last_purge, now, PURGE_INTERVAL_MS))
	{
		purge_schemas(schemas);
		last_purge = now;
	}
	return sleep_ms;
}

void
campaign_worker_main(Datum main_arg)
{
	HASHCTL		ctl;

	int			slot = DatumGetInt32(main_arg);

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	my_database = pstrdup(MyBgworkerEntry->bgw_extra);
	my_number = slot % campaign_max_workers + 1;
	me = &campaign_workers[slot];
	BackgroundWorkerInitializeConnection(my_database, NULL, 0);
	pgstat_report_appname(MyBgworkerEntry->bgw_name);
	pin_settings();
#ifdef __GLIBC__

	/*
	 * A batch's arrays take megabytes: allocate them out of the heap, so
	 * that freeing them gives the memory back.  Left to itself, glibc raises
	 * its mmap and trim thresholds at the first large free and then keeps
	 * the heap's free space (12 of an idle worker's 21 MB after a drain).
	 */
	mallopt(M_MMAP_THRESHOLD, 128 * 1024);
#endif

	ctl.keysize = sizeof(((Backoff *) 0)->name);
	ctl.entrysize = sizeof(Backoff);
	backoffs = hash_create("campaign backoff", 16, &ctl, HASH_ELEM | HASH_STRINGS);

	me->dboid = MyDatabaseId;
	me->pid = MyProcPid;
	me->serving = InvalidOid;
	me->in_pass = true;
	pg_memory_barrier();
	me->latch = MyLatch;
	before_shmem_exit(worker_detach, (Datum) 0);

	ereport(LOG, (errmsg("campaign replication worker %d started for database \"%s\"",
						 my_number, my_database)));

	pass_cxt = AllocSetContextCreate(TopMemoryContext, "campaign worker pass",
									 ALLOCSET_DEFAULT_SIZES);
	for (;;)
	{
		long		sleep_ms;
		long		pass_interval;
		TimestampTz pass_started;

		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
		/* A hot standby's worker idles here until the promotion. */
		failover_wait_for_promotion();

		MemoryContextReset(pass_cxt);
		MemoryContextSwitchTo(pass_cxt);
		me->in_pass = true;
		serving(NULL);			/* (keeps the table of the last pass's batch) */
		pass_started = GetCurrentTimestamp();
		pass_sent = false;
		pass_rows = 0;
		sleep_ms = worker_pass();
		pgstat_report_activity(STATE_IDLE, NULL);
		pass_interval = MIN_PASS_INTERVAL_MS;
		/* (A turn that ended with more to send: no pause, it is a backlog.) */
		if (pass_sent && pass_rows >= PAUSE_MIN_ROWS && sleep_ms > 0)
		{
			pass_interval = Max(pass_interval, LAG_BUDGET_MS -
								TimestampDifferenceMilliseconds(pass_started, GetCurrentTimestamp()));
		}
		else
			pass_sent = false;	/* no pause: the table is not kept (serving) */
		serving(NULL);

		if (sleep_ms > 0)
		{
			me->in_pass = false;
			pg_memory_barrier();
			(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
							 sleep_ms, PG_WAIT_EXTENSION);
		}

		/*
		 * Wake-ups come with every ingest commit: coalesce them, so that
		 * one pass serves the commits of pass_interval instead of one pass
		 * per commit.
		 */
		sleep_ms = pass_interval -
			TimestampDifferenceMilliseconds(pass_started, GetCurrentTimestamp());
		if (sleep_ms > 0)
			(void) WaitLatch(MyLatch, WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
							 sleep_ms, PG_WAIT_EXTENSION);
	}
}
