/*-------------------------------------------------------------------------
 *
 * campaign.c
 *	  Module entry point: GUCs, shared memory, the workers' registration,
 *	  and the hooks that wake a worker when staged rows commit.
 *
 * The pool: campaign.max_workers static replication workers for each
 * database of campaign.database (a list), registered here at startup; each
 * has a CampaignWorkerSlot in shared memory (worker.c says how they share
 * the schemas).  Shared memory also holds one CampaignShared: a small table
 * of replicate_now() requests and the ingest claims.  A backend that wants
 * a schema replicated fills a free request slot under the spinlock, sets
 * the latches of its database's workers and sleeps on the condition
 * variable until a worker marks the slot done; the slot is freed by the
 * requester.  Requests are rare and tiny, so a spinlock is enough.
 *
 * Ingest into a schema replicated continuously marks the transaction; a
 * transaction callback wakes a worker at its commit, which is what makes
 * "continuous" replication react within milliseconds.  Commits into other
 * schemas (not deployed, scheduled, stopped: registry.c knows) wake nobody.
 * The wake-up goes where the work is: to the worker already serving the
 * staging table the transaction wrote (it passes again when its turn
 * ends), else to one idle worker of the database, else, all being busy, to
 * all of them (each passes again when done).  A commit wakes one process,
 * not the pool.  Claims of staging numbers (below) are released at the end
 * of every transaction that took one, whatever its schema.
 *
 * Everything here needs shared_preload_libraries = 'campaign'; without it
 * the functions that need the worker fail with a hint, as
 * pg_stat_statements does.
 *
 *-------------------------------------------------------------------------
 */
#include "campaign.h"

#include "access/xact.h"
#include "access/xlog.h"
#include "commands/dbcommands.h"
#include "storage/proc.h"
#include "miscadmin.h"
#include "postmaster/bgworker.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "failover.h"
#include "funcapi.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/varlena.h"
#include "utils/wait_event.h"

PG_MODULE_MAGIC;

PG_FUNCTION_INFO_V1(replicate_now);
PG_FUNCTION_INFO_V1(notify_worker);
PG_FUNCTION_INFO_V1(open_ingest_transactions);

char	   *campaign_database = NULL;
char	   *campaign_cloud_server = NULL;
int			campaign_batch_size = 50000;
int			campaign_batch_memory = 16384;	/* kB */
int			campaign_staging_retention = 86400; /* s */
int			campaign_history_retention = 7 * 86400; /* s */
int			campaign_naptime = 1000;	/* ms */
int			campaign_session_timeout = 3600;	/* s */
int			campaign_subscription_interval = 3600;	/* s */
int			campaign_cloud_timeout = 120000;	/* ms */
int			campaign_cloud_connect_timeout = 10000; /* ms */
int			campaign_max_workers = 2;

CampaignShared *campaign_shared = NULL;
CampaignWorkerSlot *campaign_workers = NULL;
int			campaign_nworkers = 0;	/* databases x max_workers, set at startup */

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;
static bool wake_at_commit = false;	/* campaign_note_staged() was called */
static bool claims_in_transaction = false;	/* campaign_stage_nextval() was */
static bool staged_unclaimed = false;	/* staged beyond the claims, or notify_worker() */

void		_PG_init(void);

static Size
shared_size(void)
{
	return add_size(offsetof(CampaignShared, ingest),
					mul_size(MaxBackends, sizeof(IngestSlot)));
}

/* The pool's slots. */
static Size
workers_size(void)
{
	return mul_size(campaign_nworkers, sizeof(CampaignWorkerSlot));
}

static void
campaign_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(MAXALIGN(shared_size()));
	RequestAddinShmemSpace(MAXALIGN(workers_size()));
	RequestAddinShmemSpace(campaign_throttle_shmem_size());
	RequestAddinShmemSpace(campaign_http_shmem_size());
}

static void
campaign_shmem_startup(void)
{
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	campaign_shared = ShmemInitStruct("campaign", shared_size(), &found);
	if (!found)
	{
		int			i;

		memset(campaign_shared, 0, shared_size());
		SpinLockInit(&campaign_shared->mutex);
		ConditionVariableInit(&campaign_shared->request_cv);
		for (i = 0; i < MaxBackends; i++)
			SpinLockInit(&campaign_shared->ingest[i].mutex);
	}
	campaign_workers = ShmemInitStruct("campaign workers", workers_size(), &found);
	if (!found)
		memset(campaign_workers, 0, workers_size());
	campaign_throttle_shmem_init();
	campaign_http_shmem_init();
	LWLockRelease(AddinShmemInitLock);
}

/* Error out when the module was not preloaded. */
void
campaign_require_preload(void)
{
	if (campaign_shared == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("campaign must be loaded via shared_preload_libraries"),
				 errhint("Add campaign to shared_preload_libraries in postgresql.conf and restart the server.")));
}

/*
 * The databases of campaign.database, in order (a List of C strings); NIL
 * when the value is not a valid list (the check hook refuses those).
 */
List *
campaign_database_list(void)
{
	List	   *names = NIL;

	if (campaign_database == NULL ||
		!SplitGUCList(pstrdup(campaign_database), ',', &names))
		return NIL;
	return names;
}

static bool
check_database_list(char **newval, void **extra, GucSource source)
{
	List	   *names = NIL;
	ListCell   *lc;

	if (!SplitGUCList(pstrdup(*newval), ',', &names) || names == NIL)
	{
		GUC_check_errdetail("List syntax is invalid: give one or more database names separated by commas.");
		return false;
	}
	foreach(lc, names)
	{
		const char *name = lfirst(lc);
		ListCell   *lc2;

		if (strlen(name) == 0 || strlen(name) >= NAMEDATALEN)
		{
			GUC_check_errdetail("\"%s\" is not a valid database name.", name);
			return false;
		}
		for_each_cell(lc2, names, lnext(names, lc))
			if (strcmp(name, lfirst(lc2)) == 0)
			{
				GUC_check_errdetail("Database \"%s\" is listed twice.", name);
				return false;
			}
	}
	return true;
}

/* Is this database one that campaign.database lists? */
static bool
database_is_served(void)
{
	char	   *mine = get_database_name(MyDatabaseId);
	ListCell   *lc;

	foreach(lc, campaign_database_list())
		if (mine && strcmp(lfirst(lc), mine) == 0)
			return true;
	return false;
}

/*
 * The latch of worker i of the pool when it runs and serves this database,
 * else NULL.  Read without a lock (see CampaignWorkerSlot).
 */
Latch *
campaign_worker_latch(int i)
{
	volatile CampaignWorkerSlot *w = &campaign_workers[i];
	Latch	   *latch = w->latch;

	return latch && w->dboid == MyDatabaseId ? latch : NULL;
}

/* Wake every replication worker of this database. */
void
campaign_wake_workers(void)
{
	int			i;

	for (i = 0; campaign_workers && i < campaign_nworkers; i++)
	{
		Latch	   *latch = campaign_worker_latch(i);

		if (latch)
			SetLatch(latch);
	}
}

/*
 * A transaction that staged rows in the tables relids (and, when unclaimed,
 * in others) committed: wake the workers serving these tables, or else one
 * idle worker of the database, or else all of them.
 */
static void
wake_for_commit(const Oid *relids, int nrelids, bool unclaimed)
{
	bool		covered = nrelids > 0 && !unclaimed;
	int			i,
				j;

	if (campaign_workers == NULL)
		return;
	pg_memory_barrier();
	for (j = 0; j < nrelids; j++)
	{
		bool		found = false;

		for (i = 0; i < campaign_nworkers; i++)
		{
			Latch	   *latch = campaign_worker_latch(i);

			if (latch && campaign_workers[i].serving == relids[j])
			{
				SetLatch(latch);
				found = true;
			}
		}
		covered &= found;
	}
	if (covered)
		return;
	for (i = 0; i < campaign_nworkers; i++)
	{
		Latch	   *latch = campaign_worker_latch(i);

		if (latch && !campaign_workers[i].in_pass)
		{
			SetLatch(latch);
			return;
		}
	}
	campaign_wake_workers();
}

static IngestSlot *
my_ingest_slot(void)
{
	if (campaign_shared == NULL || MyBackendId == InvalidBackendId ||
		MyBackendId > MaxBackends)
		return NULL;
	return &campaign_shared->ingest[MyBackendId - 1];
}

/* The transaction is over: its claims go (after its commit is visible). */
static void
release_claims(void)
{
	IngestSlot *slot = my_ingest_slot();

	if (slot == NULL || slot->nclaims == 0)
		return;
	SpinLockAcquire(&slot->mutex);
	slot->nclaims = 0;
	SpinLockRelease(&slot->mutex);
}

/*
 * COMMIT callbacks run once the commit is visible to new snapshots
 * (after ProcArrayEndTransaction).  A prepared transaction keeps its
 * staging table lock, and the worker waits for it as for any writer
 * without a claim.
 */
static void
campaign_xact_callback(XactEvent event, void *arg)
{
	if (event != XACT_EVENT_COMMIT && event != XACT_EVENT_ABORT &&
		event != XACT_EVENT_PREPARE)
		return;
	if (event == XACT_EVENT_COMMIT && wake_at_commit)
	{
		IngestSlot *slot = my_ingest_slot();
		Oid			relids[CAMPAIGN_CLAIMS_PER_XACT];
		int			nrelids = 0;

		/* Only this backend writes its slot's claims: no lock to read them. */
		for (; claims_in_transaction && slot && nrelids < slot->nclaims; nrelids++)
			relids[nrelids] = slot->claims[nrelids].relid;
		if (claims_in_transaction)
			release_claims();
		wake_for_commit(relids, nrelids, staged_unclaimed);
	}
	else if (claims_in_transaction)
		release_claims();
	claims_in_transaction = false;
	wake_at_commit = false;
	staged_unclaimed = false;
}

/*
 * The next _stg_seq of a staging table, for a row this transaction stages
 * (it holds the table's RowExclusiveLock).  The first one the transaction
 * takes of each table is claimed in shared memory before it is taken, so
 * that the worker knows which sequence numbers may still commit: it
 * replicates the rows committed around them and keeps these for later.
 * A transaction with claims on more tables than a slot holds is waited
 * for by the worker, as before.
 */
int64
campaign_stage_nextval(Oid relid, Oid seqid)
{
	IngestSlot *slot = my_ingest_slot();
	IngestClaim *claim = NULL;
	int64		seq;
	int			i;

	claims_in_transaction = true;
	if (slot == NULL)
		return failover_nextval(seqid);
	for (i = 0; i < slot->nclaims; i++)
		if (slot->claims[i].relid == relid)
			return failover_nextval(seqid);
	if (slot->nclaims >= CAMPAIGN_CLAIMS_PER_XACT)
		staged_unclaimed = true;
	else
	{
		SpinLockAcquire(&slot->mutex);
		slot->pid = MyProcPid;
		slot->backend = MyProc->backendId;
		slot->lxid = MyProc->lxid;
		claim = &slot->claims[slot->nclaims++];
		claim->relid = relid;
		claim->first_seq = 0;
		SpinLockRelease(&slot->mutex);
	}
	seq = failover_nextval(seqid);
	if (claim)
	{
		SpinLockAcquire(&slot->mutex);
		claim->first_seq = seq;
		SpinLockRelease(&slot->mutex);
	}
	return seq;
}

/*
 * The claim of the transaction vxid on a staging table: false when it made
 * none (it writes there some other way); *first_seq is 0 while the
 * transaction is taking its first number.
 */
bool
campaign_claim_of(VirtualTransactionId vxid, Oid relid, int64 *first_seq)
{
	IngestSlot *slot;
	bool		found = false;
	int			i;

	if (vxid.backendId == InvalidBackendId || vxid.backendId > MaxBackends)
		return false;
	slot = &campaign_shared->ingest[vxid.backendId - 1];
	SpinLockAcquire(&slot->mutex);
	if (slot->backend == vxid.backendId && slot->lxid == vxid.localTransactionId)
		for (i = 0; i < slot->nclaims; i++)
			if (slot->claims[i].relid == relid)
			{
				*first_seq = slot->claims[i].first_seq;
				found = true;
			}
	SpinLockRelease(&slot->mutex);
	return found;
}

/*
 * campaign.notify_worker() returns void
 *		Wake the worker when the current transaction commits (new ingestion
 *		requests, re-queued rows).
 */
Datum
notify_worker(PG_FUNCTION_ARGS)
{
	campaign_note_staged();
	staged_unclaimed = true;
	PG_RETURN_VOID();
}

/*
 * Start a transaction in the worker.  Its now() is the statement start time,
 * which a background worker must set itself (as worker_spi does): without
 * it, now() would stay at the worker's start, and schedules, retention and
 * status times with it.
 */
void
campaign_start_transaction(void)
{
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
}

/* Wake the worker when this transaction commits (it staged rows to replicate). */
void
campaign_note_staged(void)
{
	wake_at_commit = true;
}

/*
 * campaign.replicate_now(schema text) returns bigint
 *		Ask the worker to replicate what is staged now in that schema and
 *		wait for it; returns the number of changes replicated.
 */
Datum
replicate_now(PG_FUNCTION_ARGS)
{
	char	   *schema = text_to_cstring(PG_GETARG_TEXT_PP(0));
	ReplicationRequest *req = NULL;
	int64		count;
	bool		failed;
	char		error[sizeof(req->error)];
	int			i;

	campaign_require_preload();
	if (RecoveryInProgress())
		ereport(ERROR,
				(errcode(ERRCODE_READ_ONLY_SQL_TRANSACTION),
				 errmsg("cannot replicate while the server is in recovery"),
				 errhint("Replication starts when this standby is promoted.")));
	/* The worker would wait for our own writes to commit: refuse. */
	if (TransactionIdIsValid(GetTopTransactionIdIfAny()))
		ereport(ERROR,
				(errcode(ERRCODE_ACTIVE_SQL_TRANSACTION),
				 errmsg("cannot replicate from a transaction that has written data"),
				 errhint("Commit the transaction, then call campaign.replicate_now().")));
	if (strlen(schema) >= sizeof(req->schema))
		ereport(ERROR,
				(errcode(ERRCODE_NAME_TOO_LONG),
				 errmsg("schema name \"%s\" is too long", campaign_shorten(schema))));
	if (!database_is_served())
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("database \"%s\" is not served by campaign's replication workers",
						get_database_name(MyDatabaseId)),
				 errdetail("campaign.database is \"%s\".", campaign_database),
				 errhint("Add the database to campaign.database and restart the server.")));

	SpinLockAcquire(&campaign_shared->mutex);
	for (i = 0; i < CAMPAIGN_MAX_REQUESTS; i++)
		if (!campaign_shared->requests[i].in_use)
		{
			req = &campaign_shared->requests[i];
			memset(req, 0, sizeof(ReplicationRequest));
			req->in_use = true;
			req->dboid = MyDatabaseId;
			strlcpy(req->schema, schema, sizeof(req->schema));
			break;
		}
	SpinLockRelease(&campaign_shared->mutex);
	if (req == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg("too many concurrent replicate_now() requests"),
				 errhint("Retry when the running requests are done.")));

	PG_TRY();
	{
		campaign_wake_workers();
		ConditionVariablePrepareToSleep(&campaign_shared->request_cv);
		for (;;)
		{
			bool		done;

			SpinLockAcquire(&campaign_shared->mutex);
			done = req->done;
			SpinLockRelease(&campaign_shared->mutex);
			if (done)
				break;
			/* Wake the worker again in case it started after our request. */
			if (ConditionVariableTimedSleep(&campaign_shared->request_cv, 1000,
											PG_WAIT_EXTENSION))
				campaign_wake_workers();
		}
		ConditionVariableCancelSleep();
	}
	PG_FINALLY();
	{
		SpinLockAcquire(&campaign_shared->mutex);
		count = req->count;
		failed = req->failed;
		strlcpy(error, req->error, sizeof(error));
		req->in_use = false;
		SpinLockRelease(&campaign_shared->mutex);
	}
	PG_END_TRY();

	if (failed)
		ereport(ERROR,
				(errcode(ERRCODE_CONNECTION_FAILURE),
				 errmsg("replication of schema \"%s\" failed", schema),
				 errdetail_internal("%s", error),
				 errhint("Staged rows are kept; see campaign.replication_history.")));
	PG_RETURN_INT64(count);
}

static void
define_gucs(void)
{
	DefineCustomStringVariable("campaign.database",
							   "Databases whose staging tables the replication workers serve (a comma-separated list).",
							   "The first one also serves HTTP.",
							   &campaign_database, "postgres",
							   PGC_POSTMASTER, GUC_LIST_INPUT, check_database_list, NULL, NULL);
	DefineCustomIntVariable("campaign.max_workers",
							"Replication workers of each database of campaign.database.",
							"A schema is served by one worker at a time; different schemas drain in parallel.",
							&campaign_max_workers, 2, 1, 64,
							PGC_POSTMASTER, 0, NULL, NULL, NULL);
	DefineCustomStringVariable("campaign.cloud_server",
							   "postgres_fdw foreign server of the cloud database.",
							   NULL, &campaign_cloud_server, "ffda",
							   PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("campaign.batch_size",
							"Most staged changes sent to the cloud in one batch.",
							NULL, &campaign_batch_size, 50000, 1, 10000000,
							PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("campaign.batch_memory",
							"Most COPY data a batch's rows may take in the worker.",
							NULL, &campaign_batch_memory, 16384, 64, 1048576,
							PGC_SIGHUP, GUC_UNIT_KB, NULL, NULL, NULL);
	DefineCustomIntVariable("campaign.staging_retention",
							"How long replicated staging rows are kept before purge.",
							NULL, &campaign_staging_retention, 86400, 0, INT_MAX,
							PGC_SIGHUP, GUC_UNIT_S, NULL, NULL, NULL);
	DefineCustomIntVariable("campaign.history_retention",
							"How long campaign.replication_history keeps batches.",
							NULL, &campaign_history_retention, 7 * 86400, 0, INT_MAX,
							PGC_SIGHUP, GUC_UNIT_S, NULL, NULL, NULL);
	DefineCustomIntVariable("campaign.naptime",
							"Longest sleep of the worker between checks of the staging tables.",
							NULL, &campaign_naptime, 1000, 10, 3600000,
							PGC_SIGHUP, GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomIntVariable("campaign.subscription_interval",
							"Interval of the subscription pass that applies subscriptions to the cloud.",
							NULL, &campaign_subscription_interval, 3600, 1, INT_MAX,
							PGC_SIGHUP, GUC_UNIT_S, NULL, NULL, NULL);
	DefineCustomIntVariable("campaign.session_timeout",
							"Lifetime of a SOAP session token from its Logon.",
							NULL, &campaign_session_timeout, 3600, 1, INT_MAX,
							PGC_SUSET, GUC_UNIT_S, NULL, NULL, NULL);
	DefineCustomIntVariable("campaign.cloud_timeout",
							"Longest wait for the cloud server to answer (a send, a result, a commit).",
							"A wait that exceeds it fails the batch, which is retried with backoff.",
							&campaign_cloud_timeout, 120000, 100, INT_MAX,
							PGC_SIGHUP, GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomIntVariable("campaign.cloud_connect_timeout",
							"Longest wait for a connection to the cloud server.",
							NULL, &campaign_cloud_connect_timeout, 10000, 100, INT_MAX,
							PGC_SIGHUP, GUC_UNIT_MS, NULL, NULL, NULL);
	campaign_http_define_gucs();
	failover_define_gucs();
	MarkGUCPrefixReserved("campaign");
}

/*
 * The pool: campaign.max_workers workers for each database, numbered from 1
 * within their database; bgw_main_arg is the slot, bgw_extra the database.
 */
static void
register_workers(void)
{
	ListCell   *lc;

	foreach(lc, campaign_database_list())
	{
		const char *database = lfirst(lc);
		int			i;

		for (i = 1; i <= campaign_max_workers; i++)
		{
			BackgroundWorker worker;

			memset(&worker, 0, sizeof(worker));
			worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
			/* Started on a hot standby too: it idles until the promotion (failover.c). */
			worker.bgw_start_time = BgWorkerStart_ConsistentState;
			worker.bgw_restart_time = 1;
			strcpy(worker.bgw_library_name, "campaign");
			strcpy(worker.bgw_function_name, "campaign_worker_main");
			snprintf(worker.bgw_name, BGW_MAXLEN, "campaign replication worker %d of %s",
					 i, database);
			strcpy(worker.bgw_type, "campaign replication worker");
			worker.bgw_main_arg = Int32GetDatum(campaign_nworkers++);
			strlcpy(worker.bgw_extra, database, BGW_EXTRALEN);
			RegisterBackgroundWorker(&worker);
		}
	}
}

void
_PG_init(void)
{
	/*
	 * As pg_stat_statements: loaded later, the module only serves the
	 * functions that need no preload (campaign.database cannot even be
	 * defined after startup); the others raise campaign_require_preload().
	 */
	if (!process_shared_preload_libraries_in_progress)
		return;

	define_gucs();
	RegisterXactCallback(campaign_xact_callback, NULL);

	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = campaign_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = campaign_shmem_startup;
	register_workers();
	campaign_http_register_workers();
}

/*
 * campaign.open_ingest_transactions() returns setof (pid, staging_table,
 *		first_seq)
 *		The ingest transactions still open, with the first staging number
 *		each took per staging table: their rows replicate once they commit,
 *		while the rows others committed around them go on.
 */
Datum
open_ingest_transactions(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	int			i;

	campaign_require_preload();
	InitMaterializedSRF(fcinfo, 0);
	for (i = 0; i < MaxBackends; i++)
	{
		IngestSlot *slot = &campaign_shared->ingest[i];
		IngestSlot	copy;
		int			j;

		SpinLockAcquire(&slot->mutex);
		memcpy(&copy, slot, sizeof(IngestSlot));
		SpinLockRelease(&slot->mutex);
		for (j = 0; j < copy.nclaims; j++)
		{
			Datum		values[3];
			bool		nulls[3] = {false, false, false};

			if (copy.claims[j].first_seq == 0)
				continue;
			values[0] = Int32GetDatum(copy.pid);
			values[1] = ObjectIdGetDatum(copy.claims[j].relid);
			values[2] = Int64GetDatum(copy.claims[j].first_seq);
			tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
		}
	}
	return (Datum) 0;
}
