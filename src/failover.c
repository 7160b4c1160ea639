/*-------------------------------------------------------------------------
 *
 * failover.c
 *	  Exactly once across a failover of the local server to its streaming
 *	  standby.
 *
 * A standby made by pg_basebackup has the primary's system identifier, so
 * it is the same origin for the cloud (deploy.c): after a promotion it goes
 * on from the cloud's watermark.  What can go wrong is that the watermark
 * is ahead of what the standby received: the old primary replicated
 * changes the standby never got.  Then (1) the standby's staging sequences
 * hand out again numbers the cloud has already accepted, and the changes
 * that take them are never sent (the watermark says they were); (2) the
 * cloud holds changes the standby does not have, and nobody says so.
 * Four pieces deal with it.
 *
 * The standby wait (campaign.synchronized_standby_slots).  As PostgreSQL
 * 17's synchronized_standby_slots does for logical failover slots: the
 * names of physical replication slots, and no batch commits on the cloud
 * before the standby behind each has confirmed (flushed) the local WAL up
 * to the end of what the batch read and wrote.  Slots rather than
 * application names in pg_stat_replication: a slot outlives the standby's
 * connection, so a standby that is down or behind is seen as such (an
 * application name simply vanishes from pg_stat_replication, and two
 * standbys may carry the same one); the slot's restart_lsn is exactly the
 * position the standby reported as flushed; and the slot keeps the WAL the
 * standby needs to catch up, which the wait relies on anyway.  The batch
 * (replicate.c) first flushes the local WAL, then waits here, polling the
 * slots in shared memory (as PostgreSQL 17's StandbySlotsHaveCaughtup)
 * with a latch wait of 1 to 20 ms, interruptible, shown in
 * pg_stat_activity; at most campaign.cloud_timeout, the bound of every
 * other wait of a batch, since the cloud transaction stays open meanwhile.
 * A slot that does not exist, is logical or was invalidated, or whose
 * standby is not connected while behind, fails the batch at once (before
 * anything is sent when it is known then): the cloud transaction is rolled
 * back, the failure is recorded in replication_history and the batch is
 * retried with the worker's backoff.  So with the wait, the cloud's
 * watermark never gets ahead of what the listed standbys hold.
 *
 * Numbers per timeline.  Each promotion (and each point-in-time recovery)
 * starts a new WAL timeline.  On timeline T, staging numbers start above
 * (T - 1) * 2^48: the ingest path (campaign_stage_nextval) moves a staging
 * sequence there before it hands out its first number below it, and the
 * worker moves every staging sequence there as soon as the server leaves
 * recovery (for the writers that take numbers with plain SQL:
 * retry_errors(), discard_errors()).  A number of the new timeline is thus
 * never one the old primary handed out, whatever the cloud's watermark
 * says and whether or not the cloud can be reached at the promotion, and
 * the changes staged on the promoted server are all sent.  2^48 numbers
 * are 89 years of 100,000 changes a second; timelines above 32768 would
 * overflow bigint and get no base (the heal below still moves a sequence
 * found behind the watermark).
 *
 * The heal.  The first time a worker process replicates a schema (on a
 * timeline after the first, at its first pass, for a continuous schema
 * even with nothing pending; otherwise at its first batch), it reads the
 * cloud's watermark and, if the server is on a timeline it has
 * not checked this schema on (a failover, a point-in-time recovery), or if
 * the watermark is ahead of the staging sequence (whatever the timeline),
 * it
 *	  - counts the numbers the cloud's watermark covers (and does not list
 *	    as pending) above this database's own copy of the watermark (and
 *	    among its own pending numbers) for which this database has no
 *	    staged row: the changes the cloud holds that this database no
 *	    longer has (or numbers the old primary never committed);
 *	  - moves the staging sequence past the watermark if it is behind;
 *	  - records it in campaign.failovers (one row per check), and, when the
 *	    cloud holds changes that are not here or the sequence had to move,
 *	    in campaign.replication_history (outcome success, the report in
 *	    error) and in the log as a WARNING.
 * Rows the standby received from the old primary above the watermark are
 * sent as any others.  The watermark is read before the batch changes it,
 * and the record commits locally before the first batch, so a crash in
 * between repeats the check, not the report.
 *
 * Idle in recovery.  The worker starts as soon as a hot standby is
 * consistent; while the server is in recovery it waits on its latch
 * (polling RecoveryInProgress() every 100 ms) without touching anything,
 * and at the promotion it moves the sequences and starts replicating,
 * without a restart.
 *
 *-------------------------------------------------------------------------
 */
#include "campaign.h"

#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/pg_class.h"
#include "commands/dbcommands.h"
#include "catalog/pg_type.h"
#include "commands/sequence.h"
#include "executor/spi.h"
#include "failover.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/interrupt.h"
#include "remote.h"
#include "replication/slot.h"
#include "storage/latch.h"
#include "storage/lmgr.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/pg_lsn.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"
#include "utils/varlena.h"

/* Numbers of timeline T start above (T - 1) << TIMELINE_NUMBER_SHIFT. */
#define TIMELINE_NUMBER_SHIFT 48
/* How often the worker looks whether the standby was promoted. */
#define PROMOTION_POLL_MS 100
/* Longest sleep between two looks at the standby slots. */
#define STANDBY_POLL_MAX_MS 20

char	   *campaign_synchronized_standby_slots = NULL;

/* Schemas whose watermark this process has checked (pstrdup'd names). */
static List *checked_schemas = NIL;

/* The name of the worker's database, for its log lines. */
static const char *
database_name(void)
{
	static char *name = NULL;

	if (name == NULL)
	{
		campaign_start_transaction();
		name = MemoryContextStrdup(TopMemoryContext, get_database_name(MyDatabaseId));
		CommitTransactionCommand();
	}
	return name;
}

/* ---------- numbers per timeline ---------- */

/*
 * The base of this timeline's staging numbers (0 on timeline 1).  Only
 * called once the server is out of recovery, where the timeline cannot
 * change any more.
 */
static int64
timeline_base(void)
{
	static int64 base = -1;

	if (base < 0)
	{
		TimeLineID	tli = GetWALInsertionTimeLine();

		base = tli > 1 && (uint64) (tli - 1) <= (PG_INT64_MAX >> TIMELINE_NUMBER_SHIFT)
			? (int64) (tli - 1) << TIMELINE_NUMBER_SHIFT : 0;
	}
	return base;
}

/*
 * setval() of a staging sequence as its owner: the ingest roles only have
 * the right to take numbers from it (nextval without permission checks).
 */
static void
set_sequence(Oid seqid, int64 value)
{
	HeapTuple	tuple = SearchSysCache1(RELOID, ObjectIdGetDatum(seqid));
	Oid			owner;
	Oid			save_userid;
	int			save_sec_context;

	if (!HeapTupleIsValid(tuple))
		elog(ERROR, "cache lookup failed for relation %u", seqid);
	owner = ((Form_pg_class) GETSTRUCT(tuple))->relowner;
	ReleaseSysCache(tuple);
	GetUserIdAndSecContext(&save_userid, &save_sec_context);
	SetUserIdAndSecContext(owner, save_sec_context | SECURITY_LOCAL_USERID_CHANGE |
						   SECURITY_RESTRICTED_OPERATION);
	DirectFunctionCall2(setval_oid, ObjectIdGetDatum(seqid), Int64GetDatum(value));
	SetUserIdAndSecContext(save_userid, save_sec_context);
}

/*
 * The next number of a staging sequence for a row being staged, above the
 * base of the timeline.  Below it (the first numbers taken after a
 * promotion), the sequence is moved to the base under a lock that only
 * the movers take (nextval does not wait for it), and the number taken
 * meanwhile is left unused.
 */
int64
failover_nextval(Oid seqid)
{
	int64		seq = nextval_internal(seqid, false);
	int64		base = timeline_base();

	if (likely(seq > base))
		return seq;
	LockRelationOid(seqid, ShareUpdateExclusiveLock);
	seq = nextval_internal(seqid, false);
	if (seq <= base)
	{
		set_sequence(seqid, base);
		seq = nextval_internal(seqid, false);
	}
	UnlockRelationOid(seqid, ShareUpdateExclusiveLock);
	return seq;
}

/* Move every staging sequence of the database to the timeline's base. */
static void
move_sequences_to_base(void)
{
	int64		base = timeline_base();
	int			moved = 0;
	bool		isnull;
	SPITupleTable *sequences = NULL;
	uint64		n = 0;
	uint64		i;

	if (base == 0)
		return;
	campaign_start_transaction();
	SPI_connect();
	PushActiveSnapshot(GetTransactionSnapshot());
	SPI_execute("SELECT pg_catalog.to_regclass('campaign.schemas') IS NOT NULL", true, 1);
	if (DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull)))
	{
		SPI_execute("SELECT pg_catalog.pg_get_serial_sequence(format('%I.%I', sql_schema, staging_table),"
					"  '_stg_seq')::pg_catalog.regclass::oid"
					"  FROM campaign.schemas WHERE staging_table IS NOT NULL", true, 0);
		sequences = SPI_tuptable;
		n = SPI_processed;
	}
	for (i = 0; i < n; i++)
	{
		Oid			seqid = DatumGetObjectId(SPI_getbinval(sequences->vals[i],
														   sequences->tupdesc, 1, &isnull));
		Datum		last;

		if (isnull)
			continue;
		LockRelationOid(seqid, ShareUpdateExclusiveLock);
		SPI_execute_with_args("SELECT pg_catalog.pg_sequence_last_value($1)", 1,
							  (Oid[]) {REGCLASSOID}, (Datum[]) {ObjectIdGetDatum(seqid)},
							  NULL, true, 1);
		last = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
		if (isnull || DatumGetInt64(last) < base)
		{
			set_sequence(seqid, base);
			moved++;
		}
	}
	PopActiveSnapshot();
	SPI_finish();
	CommitTransactionCommand();
	if (moved > 0)
		ereport(LOG,
				(errmsg("campaign: timeline %u: %d staging sequences of database \"%s\" moved to " INT64_FORMAT
						", above every number of the former timelines",
						GetWALInsertionTimeLine(), moved, database_name(), base)));
}

/* ---------- idle in recovery ---------- */

/*
 * Called by the worker at each turn of its main loop.  While the server is
 * in recovery (a hot standby), wait for the promotion, serving SIGHUP and
 * SIGTERM; the first time out of recovery, move the staging sequences to
 * the timeline's base.
 */
void
failover_wait_for_promotion(void)
{
	static bool sequences_checked = false;

	if (RecoveryInProgress())
	{
		ereport(LOG,
				(errmsg("campaign: the server is in recovery: replication of database \"%s\" starts when it is promoted",
						database_name())));
		pgstat_report_activity(STATE_IDLE, "waiting for the promotion of this standby");
		while (RecoveryInProgress())
		{
			(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
							 PROMOTION_POLL_MS, PG_WAIT_EXTENSION);
			ResetLatch(MyLatch);
			CHECK_FOR_INTERRUPTS();
			if (ConfigReloadPending)
			{
				ConfigReloadPending = false;
				ProcessConfigFile(PGC_SIGHUP);
			}
		}
		ereport(LOG,
				(errmsg("campaign: the server was promoted (timeline %u): replication of database \"%s\" starts",
						GetWALInsertionTimeLine(), database_name())));
	}
	if (!sequences_checked)
	{
		move_sequences_to_base();
		sequences_checked = true;
	}
}

/* ---------- the heal ---------- */

typedef struct HealCheck
{
	const char *schema;
	int64		cloud_upto;
	const char *cloud_pending;	/* bigint[] text */
} HealCheck;

static void
heal_locally(HealCheck *h)
{
	TimeLineID	tli = GetWALInsertionTimeLine();
	Datum		args[6];
	Oid			argtypes[6] = {TEXTOID, INT4OID, INT8OID, TEXTOID, INT8OID, TEXTOID};
	char		nulls[6];
	bool		isnull;
	HeapTuple	t;
	TupleDesc	d;
	char	   *staging;
	Oid			seqid;
	int64		local_upto;
	char	   *local_pending;
	bool		checked_on_timeline;
	int64		last;
	int64		moved_to = 0;
	int64		lost_count;
	int64		lost_from = 0;
	int64		lost_upto = 0;
	char	   *report = NULL;

	memset(nulls, ' ', sizeof(nulls));
	/* Under 1.0's SQL there is no campaign.failovers: nothing to check. */
	SPI_execute("SELECT pg_catalog.to_regclass('campaign.failovers') IS NOT NULL", true, 1);
	if (!DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull)))
		return;

	args[0] = CStringGetTextDatum(h->schema);
	args[1] = Int32GetDatum((int32) tli);
	SPI_execute_with_args("SELECT format('%I.%I', sql_schema, staging_table),"
						  "  pg_catalog.pg_get_serial_sequence(format('%I.%I', sql_schema, staging_table),"
						  "    '_stg_seq')::pg_catalog.regclass::oid,"
						  "  replicated_upto, replicated_pending,"
						  "  EXISTS (SELECT 1 FROM campaign.failovers f"
						  "           WHERE f.timeline = $2 AND f.schema_name = $1)"
						  "  FROM campaign.schemas WHERE namespace || ':' || name = $1"
						  "   AND staging_table IS NOT NULL",
						  2, argtypes, args, NULL, true, 1);
	if (SPI_processed != 1)
		return;
	t = SPI_tuptable->vals[0];
	d = SPI_tuptable->tupdesc;
	staging = SPI_getvalue(t, d, 1);
	seqid = DatumGetObjectId(SPI_getbinval(t, d, 2, &isnull));
	local_upto = DatumGetInt64(SPI_getbinval(t, d, 3, &isnull));
	local_pending = SPI_getvalue(t, d, 4);
	checked_on_timeline = DatumGetBool(SPI_getbinval(t, d, 5, &isnull));

	LockRelationOid(seqid, ShareUpdateExclusiveLock);
	SPI_execute_with_args("SELECT coalesce(pg_catalog.pg_sequence_last_value($1), 0)", 1,
						  (Oid[]) {REGCLASSOID}, (Datum[]) {ObjectIdGetDatum(seqid)},
						  NULL, true, 1);
	last = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));

	if ((tli == 1 || checked_on_timeline) && h->cloud_upto <= last)
		return;

	/*
	 * The numbers the cloud holds and this database has no row for: above
	 * our copy of the watermark up to the cloud's ($1, $2], and among our
	 * own pending numbers ($4), leaving out what the cloud lists as pending
	 * ($3).
	 */
	args[0] = Int64GetDatum(local_upto);
	args[1] = Int64GetDatum(h->cloud_upto);
	args[2] = CStringGetTextDatum(h->cloud_pending);
	args[3] = CStringGetTextDatum(local_pending);
	SPI_execute_with_args(psprintf("WITH present AS ("
								   "  SELECT n FROM (SELECT " STG_COL_SEQ " AS n FROM %s"
								   "                  WHERE " STG_COL_SEQ " > $1 AND " STG_COL_SEQ " <= $2"
								   "                 UNION SELECT unnest($3::bigint[])) x"
								   "   WHERE n > $1 AND n <= $2),"
								   " gaps AS (SELECT n, lag(n) OVER w AS prev, lead(n) OVER w AS next"
								   "            FROM present WINDOW w AS (ORDER BY n)),"
								   " ranged AS (SELECT greatest($2 - $1, 0) - (SELECT count(*) FROM present) AS n,"
								   "   CASE WHEN NOT EXISTS (SELECT 1 FROM present WHERE n = $1 + 1) THEN $1 + 1"
								   "        ELSE (SELECT min(n) + 1 FROM gaps WHERE coalesce(next, $2 + 1) > n + 1) END AS first,"
								   "   CASE WHEN NOT EXISTS (SELECT 1 FROM present WHERE n = $2) THEN $2"
								   "        ELSE (SELECT max(n) - 1 FROM gaps WHERE coalesce(prev, $1) < n - 1) END AS last),"
								   " older AS (SELECT q FROM unnest($4::bigint[]) q"
								   "            WHERE q <= least($1, $2) AND q <> ALL ($3::bigint[])"
								   "              AND NOT EXISTS (SELECT 1 FROM %s WHERE " STG_COL_SEQ " = q))"
								   "SELECT r.n + (SELECT count(*) FROM older),"
								   "  least((SELECT min(q) FROM older), CASE WHEN r.n > 0 THEN r.first END),"
								   "  greatest((SELECT max(q) FROM older), CASE WHEN r.n > 0 THEN r.last END)"
								   "  FROM ranged r", staging, staging),
						  4, (Oid[]) {INT8OID, INT8OID, TEXTOID, TEXTOID}, args, NULL, true, 1);
	t = SPI_tuptable->vals[0];
	d = SPI_tuptable->tupdesc;
	lost_count = DatumGetInt64(SPI_getbinval(t, d, 1, &isnull));
	if (lost_count > 0)
	{
		lost_from = DatumGetInt64(SPI_getbinval(t, d, 2, &isnull));
		lost_upto = DatumGetInt64(SPI_getbinval(t, d, 3, &isnull));
	}

	/* Never hand out again a number the cloud has accepted. */
	if (last < h->cloud_upto)
	{
		SPI_execute_with_args("SELECT pg_catalog.setval($1, $2)", 2,
							  (Oid[]) {REGCLASSOID, INT8OID},
							  (Datum[]) {ObjectIdGetDatum(seqid), Int64GetDatum(h->cloud_upto)},
							  NULL, false, 1);
		moved_to = h->cloud_upto;
	}

	if (lost_count > 0)
		report = psprintf("the cloud holds " INT64_FORMAT " changes, numbered " INT64_FORMAT " to "
						  INT64_FORMAT ", that this database does not have (%s, or numbers never"
						  " committed there); cloud watermark " INT64_FORMAT ", this database's " INT64_FORMAT,
						  lost_count, lost_from, lost_upto,
						  tli > 1 && !checked_on_timeline
						  ? "replicated by the former primary after this server last received its WAL"
						  : "replicated from a former state of this database, before it was restored",
						  h->cloud_upto, local_upto);
	if (moved_to > 0)
		report = psprintf("%s%sthe staging sequence was behind the cloud's watermark (" INT64_FORMAT
						  " < " INT64_FORMAT "): moved to it, so that no number the cloud has accepted"
						  " is used again",
						  report ? report : "", report ? "; " : "", last, moved_to);

	args[0] = CStringGetTextDatum(h->schema);
	args[1] = Int32GetDatum((int32) tli);
	args[2] = Int64GetDatum(h->cloud_upto);
	args[3] = CStringGetTextDatum(h->cloud_pending);
	args[4] = Int64GetDatum(local_upto);
	args[5] = report ? CStringGetTextDatum(report) : (Datum) 0;
	nulls[5] = report ? ' ' : 'n';
	SPI_execute_with_args(psprintf("INSERT INTO campaign.failovers (timeline, schema_name, cloud_upto,"
								   "  cloud_pending, local_upto, sequence_last, sequence_moved_to,"
								   "  lost_count, lost_from, lost_upto, report)"
								   " VALUES ($2, $1, $3, $4::bigint[], $5, " INT64_FORMAT ", %s,"
								   "  " INT64_FORMAT ", %s, %s, $6)",
								   last, moved_to > 0 ? psprintf(INT64_FORMAT, moved_to) : "NULL",
								   lost_count,
								   lost_count > 0 ? psprintf(INT64_FORMAT, lost_from) : "NULL",
								   lost_count > 0 ? psprintf(INT64_FORMAT, lost_upto) : "NULL"),
						  6, argtypes, args, nulls, false, 0);
	if (report == NULL)
	{
		ereport(LOG,
				(errmsg("campaign: %s: checked after timeline %u began: the cloud holds no change this database does not have (cloud watermark " INT64_FORMAT ")",
						h->schema, tli, h->cloud_upto)));
		return;
	}
	SPI_execute_with_args("INSERT INTO campaign.replication_history"
						  " (schema_name, started_at, from_seq, upto_seq, rows, inserts, upserts,"
						  "  updates, deletes, rejected, bytes, outcome, error)"
						  " VALUES ($1, now(), $5, $3, 0, 0, 0, 0, 0, 0, 0, 'success', $6)",
						  6, argtypes, args, nulls, false, 0);
	ereport(WARNING,
			(errmsg("campaign: %s: %s", h->schema, report),
			 errhint("See campaign.failovers; the changes staged here are replicated from the cloud's watermark on.")));
}

static bool
checked(const char *schema_name)
{
	ListCell   *lc;

	foreach(lc, checked_schemas)
		if (strcmp(lfirst(lc), schema_name) == 0)
			return true;
	return false;
}

/*
 * On a timeline after the first, has this process still to check the
 * schema?  The worker then replicates it at once, pending rows or not, so
 * that what a failover lost is reported without waiting for a new change.
 */
bool
failover_heal_pending(const char *schema_name)
{
	return timeline_base() > 0 && !checked(schema_name);
}

/*
 * Check the cloud's watermark of a schema against this database, once per
 * worker process and schema, before its first batch.  Runs its own local
 * transaction (call it outside of one); raises on failure, and is then
 * tried again before the next batch.
 */
void
failover_heal(PGconn *conn, const char *schema_name)
{
	const char *params[2];
	PGresult   *res;
	HealCheck	h;
	MemoryContext old;

	if (checked(schema_name))
		return;

	/* The pending column may be missing on a cloud deployed by 1.0. */
	cloud_set_step("checking the cloud's watermark of %s", schema_name);
	params[0] = campaign_origin();
	params[1] = schema_name;
	res = cloud_exec(conn, "SELECT w.upto, coalesce(translate((pg_catalog.to_jsonb(w) -> 'pending')::text,"
					 "  '[]', '{}'), '{}')"
					 "  FROM " CLOUD_WATERMARK_TABLE " w WHERE origin = $1 AND schema_name = $2",
					 2, params);
	if (PQntuples(res) != 1)
	{
		/* Not deployed from here: the batch says so. */
		PQclear(res);
		return;
	}
	h.schema = schema_name;
	h.cloud_upto = strtoi64(PQgetvalue(res, 0, 0), NULL, 10);
	h.cloud_pending = pstrdup(PQgetvalue(res, 0, 1));
	PQclear(res);

	campaign_start_transaction();
	SPI_connect();
	PushActiveSnapshot(GetTransactionSnapshot());
	heal_locally(&h);
	PopActiveSnapshot();
	SPI_finish();
	CommitTransactionCommand();

	old = MemoryContextSwitchTo(TopMemoryContext);
	checked_schemas = lappend(checked_schemas, pstrdup(schema_name));
	MemoryContextSwitchTo(old);
}

/* ---------- the standby wait ---------- */

/* A slot named in campaign.synchronized_standby_slots, as it stands. */
typedef struct SlotState
{
	bool		found;
	bool		physical;
	bool		invalidated;
	bool		connected;		/* a walsender serves it */
	XLogRecPtr	confirmed;		/* flushed by the standby */
} SlotState;

static void
slot_state(const char *name, SlotState *st)
{
	int			i;

	memset(st, 0, sizeof(SlotState));
	if (ReplicationSlotCtl == NULL)
		return;
	LWLockAcquire(ReplicationSlotControlLock, LW_SHARED);
	for (i = 0; i < max_replication_slots; i++)
	{
		ReplicationSlot *s = &ReplicationSlotCtl->replication_slots[i];

		if (!s->in_use || strcmp(NameStr(s->data.name), name) != 0)
			continue;
		SpinLockAcquire(&s->mutex);
		st->found = true;
		st->physical = SlotIsPhysical(s);
		st->confirmed = s->data.restart_lsn;
		st->invalidated = s->data.restart_lsn == InvalidXLogRecPtr &&
			s->data.invalidated_at != InvalidXLogRecPtr;
		st->connected = s->active_pid != 0;
		SpinLockRelease(&s->mutex);
		break;
	}
	LWLockRelease(ReplicationSlotControlLock);
}

static List *
standby_slots(void)
{
	List	   *names = NIL;

	if (campaign_synchronized_standby_slots == NULL ||
		campaign_synchronized_standby_slots[0] == '\0')
		return NIL;
	/* The check hook accepted it. */
	(void) SplitIdentifierString(pstrdup(campaign_synchronized_standby_slots), ',', &names);
	return names;
}

/*
 * Raise if a slot can never confirm lsn without a change of the setup or
 * the standby's return; returns false if it has not confirmed it yet.
 */
static bool
slot_confirmed(const char *name, XLogRecPtr lsn)
{
	SlotState	st;

	slot_state(name, &st);
	if (!st.found)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("replication slot \"%s\" named in campaign.synchronized_standby_slots does not exist",
						name),
				 errdetail("No batch commits on the cloud before the standbys of these slots have the local WAL."),
				 errhint("Create it with pg_create_physical_replication_slot('%s') and set primary_slot_name on the standby, or take it out of campaign.synchronized_standby_slots.",
						 name)));
	if (!st.physical)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("replication slot \"%s\" named in campaign.synchronized_standby_slots is a logical slot",
						name),
				 errhint("Name the physical slots of the standbys.")));
	if (st.invalidated)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("replication slot \"%s\" named in campaign.synchronized_standby_slots was invalidated",
						name),
				 errdetail("Its standby fell more than max_slot_wal_keep_size behind."),
				 errhint("Rebuild the standby and its slot, or take the slot out of campaign.synchronized_standby_slots.")));
	if (st.confirmed >= lsn)
		return true;
	if (!st.connected)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("the standby of replication slot \"%s\" is not connected", name),
				 errdetail("It has confirmed the local WAL up to %X/%X; the batch needs %X/%X. Nothing was committed on the cloud.",
						   LSN_FORMAT_ARGS(st.confirmed), LSN_FORMAT_ARGS(lsn)),
				 errhint("Start the standby, or take its slot out of campaign.synchronized_standby_slots; replication resumes once it has caught up.")));
	return false;
}

/*
 * Before sending anything: fail at once if a listed standby can not
 * confirm what is already written (missing, invalidated, disconnected and
 * behind), rather than after applying the batch on the cloud.
 */
void
failover_check_standbys(void)
{
	List	   *slots = standby_slots();
	XLogRecPtr	lsn = GetXLogInsertRecPtr();
	ListCell   *lc;

	foreach(lc, slots)
		(void) slot_confirmed(lfirst(lc), lsn);
}

/*
 * Wait until the standby of every slot of campaign.synchronized_standby_slots
 * has flushed the local WAL up to lsn (which the caller has flushed), at
 * most campaign.cloud_timeout.
 */
void
failover_wait_for_standbys(XLogRecPtr lsn)
{
	List	   *slots = standby_slots();
	TimestampTz start = GetCurrentTimestamp();
	long		sleep_ms = 1;
	bool		shown = false;

	for (;;)
	{
		ListCell   *lc;
		const char *behind = NULL;

		foreach(lc, slots)
			if (!slot_confirmed(lfirst(lc), lsn))
			{
				behind = lfirst(lc);
				break;
			}
		if (behind == NULL)
			return;
		if (TimestampDifferenceExceeds(start, GetCurrentTimestamp(), campaign_cloud_timeout))
			ereport(ERROR,
					(errcode(ERRCODE_QUERY_CANCELED),
					 errmsg("the standby of replication slot \"%s\" did not confirm the local WAL up to %X/%X within campaign.cloud_timeout (%d ms)",
							behind, LSN_FORMAT_ARGS(lsn), campaign_cloud_timeout),
					 errdetail("Nothing was committed on the cloud; the batch is retried.")));
		if (!shown)
			cloud_set_step("waiting for the standby of replication slot \"%s\" to confirm %X/%X",
						   behind, LSN_FORMAT_ARGS(lsn));
		shown = true;
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 sleep_ms, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
		sleep_ms = Min(sleep_ms * 2, STANDBY_POLL_MAX_MS);
	}
}

/* campaign.synchronized_standby_slots: a list of physical slot names. */
static bool
check_standby_slots(char **newval, void **extra, GucSource source)
{
	char	   *raw = pstrdup(*newval);
	List	   *names;
	ListCell   *lc;

	if (!SplitIdentifierString(raw, ',', &names))
	{
		GUC_check_errdetail("List syntax is invalid.");
		return false;
	}
	foreach(lc, names)
	{
		const char *name = lfirst(lc);
		const char *p;

		if (strlen(name) >= NAMEDATALEN)
		{
			GUC_check_errdetail("Replication slot name \"%s\" is too long.", name);
			return false;
		}
		for (p = name; *p; p++)
			if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_'))
			{
				GUC_check_errdetail("Replication slot name \"%s\" contains invalid character \"%c\".",
									name, *p);
				GUC_check_errhint("Replication slot names may only contain lower case letters, numbers, and the underscore character.");
				return false;
			}
	}
	return true;
}

void
failover_define_gucs(void)
{
	DefineCustomStringVariable("campaign.synchronized_standby_slots",
							   "Physical replication slots whose standbys must have the local WAL before a batch commits on the cloud.",
							   "Empty: batches do not wait for standbys (a promoted standby may then lack changes the cloud has).",
							   &campaign_synchronized_standby_slots, "",
							   PGC_SIGHUP, GUC_LIST_INPUT, check_standby_slots, NULL, NULL);
}
