/*-------------------------------------------------------------------------
 *
 * replicate.c
 *	  One batch of staged changes of one schema, applied to the cloud
 *	  exactly once, in a handful of set-based statements.
 *
 * Exactly once without two-phase commit: the cloud keeps, per local
 * database ("origin") and schema, a watermark: the highest _stg_seq whose
 * change is applied there.  A batch
 *	  1. opens a remote transaction and reads the watermark FOR UPDATE (that
 *	     row lock also serializes any two replicators of the same origin),
 *	     its pending numbers (below), and the columns the cloud table has:
 *	     registering a schema is not deploying it, so only the attributes
 *	     the cloud has are sent;
 *	  2. takes the staging sequence's last value L, then finds which
 *	     numbers may still commit: every writer of the staging table holds
 *	     its lock from before it takes a number; an ingest transaction has
 *	     claimed its first number in shared memory (campaign.c), so its rows
 *	     may only come at or above it; a writer without a claim is waited
 *	     for (as WaitForLockers does);
 *	  3. reads, with a snapshot taken after that, the rows of (watermark, L]
 *	     and those of the pending numbers, in _stg_seq order, bounded by
 *	     campaign.batch_size rows and campaign.batch_memory bytes;
 *	  4. applies them (below);
 *	  5. records rejected and held rows locally (_stg_error) and commits;
 *	  6. flushes the local WAL (so that no crash can take back a row the
 *	     cloud has) and waits for the standbys of
 *	     campaign.synchronized_standby_slots to have it (so that no
 *	     failover can, see failover.c), then moves the watermark and stores the new pending
 *	     numbers (examined, not read, and at or above an open claim) and
 *	     commits the remote transaction: the changes and the watermark
 *	     commit together, or neither does.
 * A row is replicated once its _stg_seq is at or below the watermark and
 * not pending.  Whatever dies when, the next batch starts from the cloud's
 * state: nothing is applied twice or skipped, and a transaction left open
 * holds back only its own rows.  A cloud whose watermark is behind
 * ours (restored from a backup) gets what staging still holds again, and
 * the part already purged here is reported.
 *
 * Applying.  The batch is cut into segments: maximal runs of changes that
 * use the same reconciliation key (_key), or of keyless inserts.  A keyless
 * segment is COPied straight into the cloud table.  A keyed segment is
 * folded per key, in staging order, to its net effect:
 *	  - "delete first" when the key saw a delete;
 *	  - "update": the attributes of every change since the start (or none
 *	    after a delete), each attribute from the last change that carried
 *	    it, applied if the key exists in the cloud;
 *	  - "insert": from the first insert/upsert after the last delete (or the
 *	    start), merged the same way, applied if the key does not exist.
 * An update of an absent key thus does nothing, a partial change never
 * nulls what it did not carry, and a delete followed by an upsert
 * re-creates the row.  The net rows go to the cloud by one COPY into a
 * temporary table (emptied at commit, no TRUNCATE), then one DELETE and
 * one UPDATE ... RETURNING feeding an INSERT apply the whole segment.  A
 * key whose update and insert would take the same values (a plain upsert)
 * travels as one line, candidate for both.
 * Rows of one key never meet twice in a statement, so the statements are
 * order-free; segments apply in staging order.
 *
 * Reading ahead.  A backlog drains batch after batch.  While the cloud
 * runs the main statement of a full batch, the worker reads the next one
 * (steps 2 and 3) for the watermark and pending numbers this batch will
 * leave, instead of waiting: the two servers work at once.  The next batch
 * applies it only if, under the watermark's row lock, the cloud's
 * watermark, pending numbers and columns are exactly those it was read for
 * (nobody else replicated in between) and the schema's cache entry is the
 * same; otherwise it is dropped and read again.  It is not read after a
 * batch that holds or marks rows (the keys held would change), nor when a
 * writer without a claim would have to be waited for.  A worker so holds
 * up to two batches (campaign.batch_memory each).
 *
 * Rejected rows.  A segment applies under a savepoint.  When the cloud
 * refuses it (a data error: classes 22, 23, 44, P0, at COPY or at apply),
 * it is rolled back and its changes are applied one by one in staging
 * order, each under its own savepoint.  A change the cloud refuses is
 * marked in error with its message; every later change of the same key is
 * held behind it (marked "waiting behind change N ..."), in this batch and
 * in the next ones, so that campaign.retry_errors() (which re-stages the
 * rows in error in their order) or campaign.discard_errors() (which drops
 * the rejected ones and re-stages the held ones) keeps each key's order.
 *
 *-------------------------------------------------------------------------
 */
#include "campaign.h"

#include "access/xact.h"
#include "access/xlog.h"
#include "access/xlog_internal.h"
#include "catalog/pg_type.h"
#include "common/hashfn.h"
#include "executor/spi.h"
#include "failover.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "probe.h"
#include "replicate.h"
#include "remote.h"
#include "storage/lmgr.h"
#include "storage/proc.h"
#include "storage/sinvaladt.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/hsearch.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/uuid.h"

/* A _key of the batch: the attributes it names, as sent-attribute indexes. */
typedef struct KeyDef
{
	struct varlena *key;		/* the _key array */
	int			nkey;
	int		   *atts;			/* indexes into Batch.sent */
	bool		unkeyed;		/* names an attribute the cloud or schema lacks */
} KeyDef;

/* A _carried array of the batch, as a mask over the sent attributes. */
typedef struct MaskDef
{
	struct varlena *carried;
	bool	   *carries;		/* per sent attribute */
} MaskDef;

/* One staged change, as read. */
typedef struct Change
{
	int64		seq;
	StagedOperation op;
	int			keydef;			/* index into Batch.keydefs, -1 when keyless */
	int			mask;			/* index into Batch.masks */
	bool		keynull;		/* a key value is NULL: it matches nothing */
	uint64		keyhash;		/* hash of keydef and key values */
	pg_uuid_t	uuid;
} Change;

/* A field of a change: COPY-escaped text in Batch.text, len -1 for NULL. */
typedef struct Field
{
	uint32		offset;
	int32		len;
} Field;

/* The net effect of one key in a segment. */
typedef struct NetKey
{
	uint64		hash;			/* hash key (dynahash) */
	int			first;			/* a change of the key, to compare values */
	bool		deleted;
	bool		created;
	int			uuid_from;		/* change whose _uuid a created row takes */
	int		   *upd;			/* per sent attribute: change giving it, -1 */
	int		   *ins;
	bool		any_upd;
} NetKey;

/* A key held behind a rejected change. */
typedef struct HeldKey
{
	uint64		hash;
	int64		behind;			/* seq of the rejected change */
} HeldKey;

typedef struct Batch
{
	StagingSchema *schema;
	char	   *staging;		/* quoted staging table */
	char	   *target;			/* quoted cloud table */
	char	   *temp;			/* the temporary table on the cloud */
	int			nsent;			/* attributes the cloud has */
	int		   *sent;			/* their indexes in schema->atts */
	Change	   *changes;
	int			nchanges;
	int			maxchanges;
	Field	   *fields;			/* nsent per change */
	StringInfoData text;		/* field texts */
	KeyDef	   *keydefs;
	int			nkeydefs;
	MaskDef    *masks;
	int			nmasks;
	HTAB	   *held;			/* HeldKey */
	int64	   *pending;		/* numbers that may still commit, sorted */
	int			npending;
	int64	   *seen;			/* numbers read, in order */
	int			nseen;
	int			maxseen;
	MemoryContext row_cxt;		/* what converting one row needs */
	BatchResult *result;
	List	   *marks;			/* Mark: rows to flag locally */
	int			segno;
	MemoryContext cxt;			/* where what the rows read need lives */
	char	   *columns;		/* the cloud table's columns, tab-separated */
	int64		upto;			/* the watermark after the batch */
	bool		full;			/* stopped at the batch bounds: more follows */
	bool		read_ahead;		/* read the next batch during the last apply */
} Batch;

/* A row to flag in error locally: rejected, or held behind another. */
typedef struct Mark
{
	int64		seq;
	char	   *message;
} Mark;

#define HELD_PREFIX "waiting behind change "

bool		replication_data_sent = false;

/* The connection whose cloud has the current watermark table (migrate_cloud). */
static PGconn *migrated_conn = NULL;

static void read_next_batch(void *arg);

/* ---------- reading the staged rows ---------- */

static void
append_copy_escaped(StringInfo buf, const char *s)
{
	const char *start = s;

	for (; *s; s++)
	{
		char		esc;

		switch (*s)
		{
			case '\\':
				esc = '\\';
				break;
			case '\t':
				esc = 't';
				break;
			case '\n':
				esc = 'n';
				break;
			case '\r':
				esc = 'r';
				break;
			default:
				continue;
		}
		appendBinaryStringInfo(buf, start, s - start);
		appendStringInfoChar(buf, '\\');
		appendStringInfoChar(buf, esc);
		start = s + 1;
	}
	appendBinaryStringInfo(buf, start, s - start);
}

static bool
varlena_equal(struct varlena *a, struct varlena *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	return VARSIZE_ANY(a) == VARSIZE_ANY(b) &&
		memcmp(a, b, VARSIZE_ANY(a)) == 0;
}

static struct varlena *
copy_varlena(struct varlena *v)
{
	struct varlena *copy = palloc(VARSIZE_ANY(v));

	memcpy(copy, v, VARSIZE_ANY(v));
	return copy;
}

/* The operation of a staged change, from its _operation text. */
static StagedOperation
operation_of(Datum d)
{
	text	   *t = DatumGetTextPP(d);
	int			len = VARSIZE_ANY_EXHDR(t);
	int			i;

	for (i = 0; i < 4; i++)
		if (strlen(staged_operation_names[i]) == len &&
			memcmp(VARDATA_ANY(t), staged_operation_names[i], len) == 0)
			return (StagedOperation) i;
	ereport(ERROR,
			(errcode(ERRCODE_DATA_CORRUPTED),
			 errmsg("staged change has unknown _operation \"%s\"", text_to_cstring(t))));
	return STG_OP_INSERT;		/* keep compiler quiet */
}

/* A UUID in its text form. */
static void
append_uuid(StringInfo buf, const pg_uuid_t *uuid)
{
	static const char hex[] = "0123456789abcdef";
	char		out[36];
	int			i,
				j = 0;

	for (i = 0; i < UUID_LEN; i++)
	{
		if (i == 4 || i == 6 || i == 8 || i == 10)
			out[j++] = '-';
		out[j++] = hex[uuid->data[i] >> 4];
		out[j++] = hex[uuid->data[i] & 0x0f];
	}
	appendBinaryStringInfo(buf, out, sizeof(out));
}

/* The sent-attribute index of a registered attribute name, -1 if none. */
static int
sent_index(Batch *b, const char *name)
{
	CampaignAttribute *a = staging_schema_attribute(b->schema, name);
	int			i;

	if (a == NULL)
		return -1;
	for (i = 0; i < b->nsent; i++)
		if (b->sent[i] == a - b->schema->atts)
			return i;
	return -1;
}

static Datum *
text_array_items(struct varlena *array, int *n)
{
	Datum	   *items;

	deconstruct_array(DatumGetArrayTypeP(PointerGetDatum(array)), TEXTOID, -1,
					  false, TYPALIGN_INT, &items, NULL, n);
	return items;
}

static int
find_keydef(Batch *b, struct varlena *key)
{
	KeyDef	   *k;
	Datum	   *names;
	int			n;
	int			i;

	for (i = 0; i < b->nkeydefs; i++)
		if (varlena_equal(b->keydefs[i].key, key))
			return i;
	b->keydefs = b->nkeydefs == 0 ? palloc(sizeof(KeyDef) * 4) :
		repalloc(b->keydefs, sizeof(KeyDef) * (b->nkeydefs + 4));
	k = &b->keydefs[b->nkeydefs];
	k->key = copy_varlena(key);
	names = text_array_items(key, &n);
	k->atts = palloc(sizeof(int) * Max(n, 1));
	k->nkey = 0;
	k->unkeyed = false;
	for (i = 0; i < n; i++)
	{
		int			s = sent_index(b, TextDatumGetCString(names[i]));

		if (s < 0)
			k->unkeyed = true;
		else
			k->atts[k->nkey++] = s;
	}
	k->unkeyed |= (k->nkey == 0);
	return b->nkeydefs++;
}

static int
find_mask(Batch *b, struct varlena *carried)
{
	MaskDef    *m;
	Datum	   *names;
	int			n;
	int			i;

	for (i = 0; i < b->nmasks; i++)
		if (varlena_equal(b->masks[i].carried, carried))
			return i;
	b->masks = b->nmasks == 0 ? palloc(sizeof(MaskDef) * 8) :
		repalloc(b->masks, sizeof(MaskDef) * (b->nmasks + 8));
	m = &b->masks[b->nmasks];
	m->carried = copy_varlena(carried);
	m->carries = palloc0(sizeof(bool) * Max(b->nsent, 1));
	names = text_array_items(carried, &n);
	for (i = 0; i < n; i++)
	{
		int			s = sent_index(b, TextDatumGetCString(names[i]));

		if (s >= 0)
			m->carries[s] = true;
	}
	return b->nmasks++;
}

static Field *
fields_of(Batch *b, int change)
{
	return &b->fields[(size_t) change * b->nsent];
}

/* Hash of a change's key (its _key and the values of the key attributes). */
static uint64
key_hash(Batch *b, int c)
{
	Change	   *ch = &b->changes[c];
	KeyDef	   *k = &b->keydefs[ch->keydef];
	Field	   *f = fields_of(b, c);
	uint64		h = hash_bytes_extended((unsigned char *) k->key, VARSIZE_ANY(k->key), 0);
	int			i;

	ch->keynull = false;
	for (i = 0; i < k->nkey; i++)
	{
		Field	   *kf = &f[k->atts[i]];

		if (kf->len < 0)
			ch->keynull = true;
		else
			h = hash_combine64(h, hash_bytes_extended((unsigned char *) b->text.data + kf->offset,
													  kf->len, i));
	}
	return h;
}

/* Do changes a and b (of one _key) have the same key values? */
static bool
same_key(Batch *b, int a, int c)
{
	KeyDef	   *k = &b->keydefs[b->changes[a].keydef];
	Field	   *fa = fields_of(b, a);
	Field	   *fc = fields_of(b, c);
	int			i;

	if (b->changes[a].keydef != b->changes[c].keydef)
		return false;
	for (i = 0; i < k->nkey; i++)
	{
		Field	   *x = &fa[k->atts[i]];
		Field	   *y = &fc[k->atts[i]];

		if (x->len != y->len ||
			memcmp(b->text.data + x->offset, b->text.data + y->offset, x->len) != 0)
			return false;
	}
	return true;
}

/*
 * Append one staged row to the batch.  Returns false when the row cannot be
 * applied at all (its _key names an attribute the cloud lacks) and was
 * marked instead.
 */
static bool
add_change(Batch *b, HeapTuple tuple, TupleDesc desc)
{
	StagingSchema *s = b->schema;
	bool		isnull;
	Change	   *ch;
	Field	   *f;
	struct varlena *key;
	MemoryContext old;
	int			c;
	int			i;

	if (b->nchanges == b->maxchanges)
	{
		b->maxchanges *= 2;
		b->changes = repalloc_huge(b->changes, sizeof(Change) * b->maxchanges);
		b->fields = repalloc_huge(b->fields, sizeof(Field) * b->maxchanges * Max(b->nsent, 1));
	}
	c = b->nchanges++;
	ch = &b->changes[c];
	ch->seq = DatumGetInt64(SPI_getbinval(tuple, desc, 1, &isnull));
	ch->op = operation_of(SPI_getbinval(tuple, desc, 2, &isnull));
	key = (struct varlena *) DatumGetPointer(SPI_getbinval(tuple, desc, 3, &isnull));
	ch->keydef = isnull ? -1 : find_keydef(b, pg_detoast_datum_packed(key));
	ch->mask = find_mask(b, pg_detoast_datum_packed((struct varlena *)
													DatumGetPointer(SPI_getbinval(tuple, desc, 4, &isnull))));
	memcpy(&ch->uuid, DatumGetUUIDP(SPI_getbinval(tuple, desc, 5, &isnull)), sizeof(pg_uuid_t));
	if (ch->keydef >= 0 && b->keydefs[ch->keydef].unkeyed)
	{
		Mark	   *m = palloc(sizeof(Mark));

		m->seq = ch->seq;
		m->message = pstrdup("the change's _key names an attribute the schema or the cloud table no longer has");
		b->marks = lappend(b->marks, m);
		b->result->rejected++;
		b->nchanges--;
		return false;
	}

	f = fields_of(b, c);
	old = MemoryContextSwitchTo(b->row_cxt);
	for (i = 0; i < b->nsent; i++)
	{
		CampaignAttribute *a = &s->atts[b->sent[i]];
		Datum		v = SPI_getbinval(tuple, desc, 6 + b->sent[i], &isnull);

		f[i].offset = b->text.len;
		if (!b->masks[ch->mask].carries[i] || isnull)
			f[i].len = -1;
		else
		{
			append_copy_escaped(&b->text, OutputFunctionCall(&a->outfunc, v));
			f[i].len = b->text.len - f[i].offset;
		}
	}
	MemoryContextSwitchTo(old);
	MemoryContextReset(b->row_cxt);
	ch->keyhash = ch->keydef >= 0 ? key_hash(b, c) : 0;
	return true;
}

/* "SELECT <the columns add_change reads> FROM <staging table> WHERE <where>". */
static char *
select_staged_sql(Batch *b, const char *where)
{
	StagingSchema *s = b->schema;
	StringInfoData sql;
	int			i;

	initStringInfo(&sql);
	appendStringInfoString(&sql, "SELECT " STG_COL_SEQ ", " STG_COL_OPERATION ", "
						   STG_COL_KEY ", " STG_COL_CARRIED ", " STG_COL_UUID);
	for (i = 0; i < s->natts; i++)
		appendStringInfo(&sql, ", %s", quote_identifier(s->atts[i].sqlname));
	appendStringInfo(&sql, " FROM %s WHERE %s ORDER BY " STG_COL_SEQ, b->staging, where);
	return sql.data;
}

static Datum
int8_array(int64 *values, int n)
{
	Datum	   *d = palloc(sizeof(Datum) * Max(n, 1));
	int			i;

	for (i = 0; i < n; i++)
		d[i] = Int64GetDatum(values[i]);
	return PointerGetDatum(construct_array(d, n, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
}

/*
 * Read the rows of (hw, upto] and of the pending numbers into the batch, in
 * _stg_seq order; stop at the batch bounds.  Every number read is noted in
 * b->seen.  Returns the seq up to which the batch examined the numbers.
 */
static int64
read_changes(Batch *b, int64 hw, int64 upto)
{
	Oid			argtypes[4] = {INT8OID, INT8OID, INT8ARRAYOID, INT8OID};
	int64		from = b->npending > 0 ? Min(hw, b->pending[0] - 1) : hw;
	Datum		args[4] = {Int64GetDatum(hw), Int64GetDatum(upto),
		int8_array(b->pending, b->npending), Int64GetDatum(from)};
	SPIPlanPtr	plan;
	Portal		portal;
	size_t		memory_limit = (size_t) campaign_batch_memory * 1024;
	int64		last_seq = hw;
	bool		full = false;

	/*
	 * The rows of (hw, L], and those of the numbers still pending ($3).
	 * The index scan on _stg_seq starts at the lowest of them ($4): the
	 * replicated rows before it (kept for campaign.staging_retention) are
	 * not walked through by every batch of a large backlog.
	 */
	plan = SPI_prepare(select_staged_sql(b, STG_COL_SEQ " > $4 AND ((" STG_COL_SEQ " > $1 AND "
										 STG_COL_SEQ " <= $2) OR " STG_COL_SEQ " = ANY ($3)) AND "
										 STG_COL_ERROR " IS NULL"), 4, argtypes);
	if (plan == NULL)
		elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
	portal = SPI_cursor_open(NULL, plan, args, NULL, false);
	while (!full)
	{
		uint64		i;

		CHECK_FOR_INTERRUPTS();
		SPI_cursor_fetch(portal, true, 1000);
		if (SPI_processed == 0)
			break;
		/* SPI returns in its own context; a read-ahead batch outlives it. */
		MemoryContextSwitchTo(b->cxt);
		for (i = 0; i < SPI_processed && !full; i++)
		{
			bool		isnull;

			last_seq = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[i],
												   SPI_tuptable->tupdesc, 1, &isnull));
			if (b->nseen == b->maxseen)
			{
				b->maxseen *= 2;
				b->seen = repalloc_huge(b->seen, sizeof(int64) * b->maxseen);
			}
			b->seen[b->nseen++] = last_seq;
			add_change(b, SPI_tuptable->vals[i], SPI_tuptable->tupdesc);
			full = b->nchanges >= campaign_batch_size ||
				(size_t) b->text.len + (size_t) b->nchanges * b->nsent * sizeof(Field) >= memory_limit;
		}
		SPI_freetuptable(SPI_tuptable);
	}
	SPI_cursor_close(portal);
	SPI_freeplan(plan);
	MemoryContextSwitchTo(b->cxt);
	return full ? last_seq : PG_INT64_MAX;
}

/*
 * Which numbers may still commit.  Every writer of a staging table holds
 * its RowExclusiveLock from before it takes a number.  An ingest
 * transaction claimed its first number in shared memory (campaign.c): its
 * rows may still come with that number or above.  A writer without a claim
 * (plain SQL, retry_errors(), a prepared transaction) is waited for, as
 * WaitForLockers does.  A VACUUM or an autovacuum worker holds a lock that
 * conflicts too (SHARE UPDATE EXCLUSIVE) but adds no row: it is not waited
 * for (an autovacuum of a large staging table, throttled by its cost delay,
 * would hold replication back for minutes).  Sets *floor to the lowest
 * first number of the open claims, PG_INT64_MAX when there is none.  With
 * wait false, returns false instead of waiting for a writer without a
 * claim.
 */
static bool
is_vacuum(VirtualTransactionId vxid)
{
	PGPROC	   *proc = BackendIdGetProc(vxid.backendId);

	return proc != NULL &&
		(proc->statusFlags & (PROC_IS_AUTOVACUUM | PROC_IN_VACUUM)) != 0;
}

static bool
open_claims_floor(Oid relid, bool wait, int64 *floor)
{
	LOCKTAG		tag;
	VirtualTransactionId *lockers;

	*floor = PG_INT64_MAX;
	SET_LOCKTAG_RELATION(tag, MyDatabaseId, relid);
	lockers = GetLockConflicts(&tag, ShareLock, NULL);
	for (; VirtualTransactionIdIsValid(*lockers); lockers++)
	{
		if (is_vacuum(*lockers))
			continue;
		for (;;)
		{
			int64		first;

			if (!campaign_claim_of(*lockers, relid, &first))
			{
				if (!wait && !VirtualXactLock(*lockers, false))
					return false;
				VirtualXactLock(*lockers, true);
				break;
			}
			if (first > 0)
			{
				*floor = Min(*floor, first);
				break;
			}
			/* Taking its first number right now: a matter of microseconds. */
			if (VirtualXactLock(*lockers, false))
				break;
			CHECK_FOR_INTERRUPTS();
			pg_usleep(100);
		}
	}
	return true;
}

/*
 * The numbers still pending after the batch: those examined but not read
 * (uncommitted or rolled back) that an open transaction may still commit
 * (at or above floor), and those pending not examined yet.
 */
static void
compute_pending(Batch *b, int64 hw, int64 examined, int64 new_upto, int64 floor)
{
	int			cap = Max(b->npending, 64);
	int64	   *next = palloc(sizeof(int64) * cap);
	int			n = 0;
	int			seen = 0;
	int			i;
	int64		h;

	/* b->seen is sorted; pending numbers come before hw. */
	for (i = 0; i < b->npending; i++)
	{
		int64		p = b->pending[i];

		while (seen < b->nseen && b->seen[seen] < p)
			seen++;
		if (p > examined || (p >= floor && !(seen < b->nseen && b->seen[seen] == p)))
			next[n++] = p;
	}
	for (h = Max(hw + 1, floor); h <= new_upto; h++)
	{
		while (seen < b->nseen && b->seen[seen] < h)
			seen++;
		if (seen < b->nseen && b->seen[seen] == h)
			continue;
		if (n == cap)
		{
			cap *= 2;
			next = repalloc_huge(next, sizeof(int64) * cap);
		}
		next[n++] = h;
	}
	b->pending = next;
	b->npending = n;
}

/* Parse the cloud's bigint[] text "{1,2,3}". */
static void
parse_pending(Batch *b, const char *text)
{
	const char *p = text;

	b->npending = 0;
	b->pending = palloc(sizeof(int64) * (strlen(text) / 2 + 1));
	while (*p)
	{
		if (isdigit((unsigned char) *p))
		{
			char	   *end;

			b->pending[b->npending++] = strtoi64(p, &end, 10);
			p = end;
		}
		else
			p++;
	}
}

static char *
pending_text(Batch *b)
{
	StringInfoData buf;
	int			i;

	initStringInfo(&buf);
	appendStringInfoChar(&buf, '{');
	for (i = 0; i < b->npending; i++)
		appendStringInfo(&buf, "%s" INT64_FORMAT, i ? "," : "", b->pending[i]);
	appendStringInfoChar(&buf, '}');
	return buf.data;
}

/*
 * The keys that already have a change in error: their later changes are
 * held behind it.  The rows in error are found through the staging table's
 * partial index on them; most batches find none there first (probe.c),
 * without a query that, planned without statistics, is a sequential scan.
 */
static void
load_held_keys(Batch *b)
{
	uint64		i;

	if (!staged_rows_in_error(b->schema->relid))
		return;
	SPI_execute(select_staged_sql(b, STG_COL_ERROR " IS NOT NULL AND " STG_COL_KEY " IS NOT NULL"),
				true, 0);
	for (i = 0; i < SPI_processed; i++)
	{
		int			c;
		bool		found;
		HeldKey    *h;

		if (!add_change(b, SPI_tuptable->vals[i], SPI_tuptable->tupdesc))
		{
			/* Not a key the batch can match: forget the mark add_change made. */
			b->marks = list_delete_last(b->marks);
			b->result->rejected--;
			continue;
		}
		c = b->nchanges - 1;
		if (!b->changes[c].keynull)
		{
			h = hash_search(b->held, &b->changes[c].keyhash, HASH_ENTER, &found);
			if (!found)
				h->behind = b->changes[c].seq;
		}
		b->nchanges--;
	}
	SPI_freetuptable(SPI_tuptable);
	/* The texts of those rows are not needed any more. */
	resetStringInfo(&b->text);
}

/* ---------- applying on the cloud ---------- */

/* The temporary table rows travel through, one per schema shape. */
static void
create_temp_table(PGconn *conn, Batch *b)
{
	StringInfoData cols;
	int			i;

	initStringInfo(&cols);
	for (i = 0; i < b->nsent; i++)
	{
		CampaignAttribute *a = &b->schema->atts[b->sent[i]];

		appendStringInfo(&cols, ", %s %s", quote_identifier(a->sqlname), a->sqltype);
	}
	b->temp = psprintf("campaign_rows_%08x",
					   (unsigned) hash_bytes((unsigned char *) cols.data, cols.len));
	cloud_command(conn, psprintf("CREATE TEMP TABLE IF NOT EXISTS %s"
								 " (_seg integer, _n bigint, _kind \"char\", _m text,"
								 " _uuid uuid%s) ON COMMIT DELETE ROWS",
								 b->temp, cols.data));
	b->temp = psprintf("pg_temp.%s", b->temp);
}

/* Append one line for the temporary table; src[i] gives attribute i's change. */
static void
append_line(Batch *b, StringInfo buf, int64 n, char kind, int uuid_from, int *src)
{
	int			i;

	appendStringInfo(buf, "%d\t" INT64_FORMAT "\t%c\t", b->segno, n, kind);
	for (i = 0; i < b->nsent; i++)
		appendStringInfoChar(buf, src[i] >= 0 ? '1' : '0');
	appendStringInfoChar(buf, '\t');
	if (uuid_from >= 0)
		append_uuid(buf, &b->changes[uuid_from].uuid);
	else
		appendStringInfoString(buf, "\\N");
	for (i = 0; i < b->nsent; i++)
	{
		Field	   *f = src[i] >= 0 ? &fields_of(b, src[i])[i] : NULL;

		appendStringInfoChar(buf, '\t');
		if (f == NULL || f->len < 0)
			appendStringInfoString(buf, "\\N");
		else
			appendBinaryStringInfo(buf, b->text.data + f->offset, f->len);
	}
	appendStringInfoChar(buf, '\n');
}

/* COPY data into a table of the cloud; returns NULL or the cloud's message. */
static char *
copy_data(PGconn *conn, const char *copy_sql, StringInfo data)
{
	char	   *msg;

	if ((msg = cloud_copy_begin(conn, copy_sql)) != NULL)
		return msg;
	cloud_copy_send(conn, data->data, data->len);
	return cloud_copy_end(conn);
}

static char *
copy_to_temp(PGconn *conn, Batch *b, StringInfo data)
{
	return copy_data(conn, psprintf("COPY %s FROM STDIN", b->temp), data);
}

/* "AND t.k1 = b.k1 ..." for a _key. */
static char *
key_match(Batch *b, KeyDef *k)
{
	StringInfoData sql;
	int			i;

	initStringInfo(&sql);
	for (i = 0; i < k->nkey; i++)
	{
		const char *col = quote_identifier(b->schema->atts[b->sent[k->atts[i]]].sqlname);

		appendStringInfo(&sql, " AND t.%s = b.%s", col, col);
	}
	return sql.data;
}

/*
 * The value of sent attribute i in a row of the temporary table: the
 * carried value, else (update) the cloud's or (insert) the default.
 */
static char *
column_value(Batch *b, int i, bool for_update, bool all_carry)
{
	CampaignAttribute *a = &b->schema->atts[b->sent[i]];
	const char *col = quote_identifier(a->sqlname);

	if (all_carry)
		return psprintf("b.%s", col);
	if (for_update)
		return psprintf("CASE WHEN substr(b._m, %d, 1) = '1' THEN b.%s ELSE t.%s END",
						i + 1, col, col);
	if (a->default_value == NULL)
		return psprintf("b.%s", col);
	return psprintf("CASE WHEN substr(b._m, %d, 1) = '1' THEN b.%s ELSE %s::%s END",
					i + 1, col, quote_literal_cstr(a->default_value), a->sqltype);
}

/*
 * The statement applying rows of the temporary table selected by "where":
 * kind 'D' deletes, 'U' updates, 'I' inserts where the updates (if any)
 * matched nothing; lines of kind 'B' (an upsert whose update and insert take
 * the same values, sent once) are both update and insert candidates.  upd_cols/ins_cols say which attributes appear
 * (NULL: all), all_* whether every row carries them.
 */
static char *
apply_statement(Batch *b, KeyDef *k, char kind, const char *where,
				bool *upd_cols, bool upd_all, bool *ins_cols, bool ins_all,
				bool with_update)
{
	StringInfoData sql;
	StringInfoData sets;
	StringInfoData cols;
	StringInfoData vals;
	int			i;

	initStringInfo(&sql);
	initStringInfo(&sets);
	initStringInfo(&cols);
	initStringInfo(&vals);
	if (kind == 'D')
	{
		appendStringInfo(&sql, "DELETE FROM %s t USING %s b WHERE %s AND b._kind = 'D'%s",
						 b->target, b->temp, where, key_match(b, k));
		return sql.data;
	}
	for (i = 0; i < b->nsent; i++)
	{
		const char *col = quote_identifier(b->schema->atts[b->sent[i]].sqlname);

		if (with_update && (upd_cols == NULL || upd_cols[i]))
			appendStringInfo(&sets, "%s%s = %s", sets.len ? ", " : "", col,
							 column_value(b, i, true, upd_all));
		if (kind == 'I' && (ins_cols == NULL || ins_cols[i] ||
							b->schema->atts[b->sent[i]].default_value != NULL))
		{
			appendStringInfo(&cols, ", %s", col);
			appendStringInfo(&vals, ", %s", column_value(b, i, false, ins_all));
		}
	}
	if (kind == 'U' || (with_update && kind == 'I'))
	{
		/* An update with nothing to set still tells which keys exist. */
		if (sets.len == 0)
			appendStringInfo(&sets, "%s = t.%s",
							 quote_identifier(b->schema->atts[b->sent[k->atts[0]]].sqlname),
							 quote_identifier(b->schema->atts[b->sent[k->atts[0]]].sqlname));
		appendStringInfo(&sql, "%sUPDATE %s t SET %s FROM %s b WHERE %s AND b._kind IN ('U', 'B')%s",
						 kind == 'I' ? "WITH u AS (" : "", b->target, sets.data, b->temp,
						 where, key_match(b, k));
		if (kind == 'U')
			return sql.data;
		appendStringInfoString(&sql, " RETURNING b._n) ");
	}
	appendStringInfo(&sql, "INSERT INTO %s (_uuid%s) SELECT b._uuid%s FROM %s b"
					 " WHERE %s AND b._kind IN ('I', 'B')%s ORDER BY b._n",
					 b->target, cols.data, vals.data, b->temp, where,
					 with_update ? " AND b._n NOT IN (SELECT _n FROM u)" : "");
	return sql.data;
}

/*
 * Run a statement with the segment number as $1; NULL or the data error.
 * The last statement of the batch's first keyed segment runs while the
 * next batch is read, when the batch reads ahead (read_next_batch).
 */
static char *
exec_segment(PGconn *conn, Batch *b, const char *sql, bool last)
{
	char		seg[16];
	const char *params[1] = {seg};

	snprintf(seg, sizeof(seg), "%d", b->segno);
	if (last && b->read_ahead)
	{
		b->read_ahead = false;
		return cloud_try_exec_overlapped(conn, sql, 1, params, read_next_batch, b);
	}
	return cloud_try_exec(conn, sql, 1, params);
}

/* A keyless segment: COPY straight into the cloud table. */
static char *
apply_keyless(PGconn *conn, Batch *b, int first, int end)
{
	StringInfoData sql;
	StringInfoData data;
	int			c;
	int			i;

	initStringInfo(&sql);
	appendStringInfo(&sql, "COPY %s (_uuid", b->target);
	for (i = 0; i < b->nsent; i++)
		appendStringInfo(&sql, ", %s", quote_identifier(b->schema->atts[b->sent[i]].sqlname));
	appendStringInfoString(&sql, ") FROM STDIN");
	initStringInfo(&data);
	for (c = first; c < end; c++)
	{
		Field	   *f = fields_of(b, c);

		append_uuid(&data, &b->changes[c].uuid);
		for (i = 0; i < b->nsent; i++)
		{
			appendStringInfoChar(&data, '\t');
			if (f[i].len < 0)
				appendStringInfoString(&data, "\\N");
			else
				appendBinaryStringInfo(&data, b->text.data + f[i].offset, f[i].len);
		}
		appendStringInfoChar(&data, '\n');
	}
	return copy_data(conn, sql.data, &data);
}

/* Merge change c's carried attributes into a per-attribute source array. */
static void
merge_into(Batch *b, int *src, int c)
{
	bool	   *carries = b->masks[b->changes[c].mask].carries;
	int			i;

	for (i = 0; i < b->nsent; i++)
		if (carries[i])
			src[i] = c;
}

/*
 * A keyed segment [first, end): fold per key, COPY the net rows, apply
 * them with a DELETE and an UPDATE feeding an INSERT.  Returns NULL, or the
 * cloud's message when it refused the data.
 */
static char *
apply_keyed(PGconn *conn, Batch *b, int first, int end)
{
	KeyDef	   *k = &b->keydefs[b->changes[first].keydef];
	HASHCTL		ctl;
	HTAB	   *keys;
	NetKey	  **order;
	int			nkeys = 0;
	StringInfoData data;
	bool	   *upd_cols = palloc0(sizeof(bool) * Max(b->nsent, 1));
	bool	   *ins_cols = palloc0(sizeof(bool) * Max(b->nsent, 1));
	bool		upd_all = true,
				ins_all = true,
				any_delete = false,
				any_update = false,
				any_insert = false;
	char		where[] = "b._seg = $1";
	char	   *msg;
	int			c;
	int			i;

	ctl.keysize = sizeof(uint64);
	ctl.entrysize = sizeof(NetKey);
	ctl.hcxt = CurrentMemoryContext;
	keys = hash_create("campaign net keys", Max(end - first, 16), &ctl,
					   HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	order = palloc(sizeof(NetKey *) * (end - first));

	for (c = first; c < end; c++)
	{
		Change	   *ch = &b->changes[c];
		NetKey	   *nk;
		bool		found = false;

		if (ch->keynull)
		{
			/* A NULL key value matches nothing: the change stands alone. */
			nk = palloc(sizeof(NetKey));
		}
		else
		{
			nk = hash_search(keys, &ch->keyhash, HASH_ENTER, &found);
			if (found && !same_key(b, nk->first, c))
				elog(ERROR, "campaign: 64-bit key hash collision in a batch of %s",
					 b->schema->xtkschema);
		}
		if (!found)
		{
			nk->first = c;
			nk->deleted = nk->created = nk->any_upd = false;
			nk->uuid_from = -1;
			nk->upd = palloc(sizeof(int) * Max(b->nsent, 1));
			nk->ins = palloc(sizeof(int) * Max(b->nsent, 1));
			for (i = 0; i < b->nsent; i++)
				nk->upd[i] = nk->ins[i] = -1;
			order[nkeys++] = nk;
		}
		b->result->counts[ch->op]++;
		switch (ch->op)
		{
			case STG_OP_DELETE:
				nk->deleted = true;
				nk->created = false;
				nk->any_upd = false;
				for (i = 0; i < b->nsent; i++)
					nk->upd[i] = nk->ins[i] = -1;
				break;
			case STG_OP_INSERT:
			case STG_OP_INSERT_OR_UPDATE:
				if (!nk->created)
				{
					nk->created = true;
					nk->uuid_from = c;
				}
				merge_into(b, nk->ins, c);
				if (!nk->deleted)
				{
					merge_into(b, nk->upd, c);
					nk->any_upd = true;
				}
				break;
			case STG_OP_UPDATE:
				if (nk->created)
					merge_into(b, nk->ins, c);
				if (!nk->deleted)
				{
					merge_into(b, nk->upd, c);
					nk->any_upd = true;
				}
				break;
		}
	}

	/* Which attributes the statements need. */
	for (i = 0; i < nkeys; i++)
	{
		NetKey	   *nk = order[i];
		int			j;

		any_delete |= nk->deleted;
		any_update |= nk->any_upd;
		any_insert |= nk->created;
		for (j = 0; j < b->nsent; j++)
		{
			upd_cols[j] |= nk->any_upd && nk->upd[j] >= 0;
			ins_cols[j] |= nk->created && nk->ins[j] >= 0;
		}
	}

	/*
	 * The lines: every line carries the key values (a delete's line takes
	 * them from the key's first change).
	 */
	initStringInfo(&data);
	for (i = 0; i < nkeys; i++)
	{
		NetKey	   *nk = order[i];
		int		   *keysrc = palloc(sizeof(int) * Max(b->nsent, 1));
		int			j;
		bool		both;

		for (j = 0; j < b->nsent; j++)
			keysrc[j] = -1;
		for (j = 0; j < k->nkey; j++)
			keysrc[k->atts[j]] = nk->first;
		if (nk->deleted)
			append_line(b, &data, i, 'D', -1, keysrc);
		if (nk->any_upd)
		{
			for (j = 0; j < k->nkey; j++)
				if (nk->upd[k->atts[j]] < 0)
					nk->upd[k->atts[j]] = nk->first;
			for (j = 0; j < b->nsent; j++)
				if (upd_cols[j] && nk->upd[j] < 0)
					upd_all = false;
		}
		if (nk->created)
		{
			for (j = 0; j < b->nsent; j++)
				if ((ins_cols[j] || b->schema->atts[b->sent[j]].default_value) &&
					nk->ins[j] < 0)
					ins_all = false;
		}
		/* An upsert whose update and insert take the same values: one line. */
		both = nk->any_upd && nk->created &&
			memcmp(nk->upd, nk->ins, sizeof(int) * b->nsent) == 0;
		if (both)
			append_line(b, &data, i, 'B', nk->uuid_from, nk->ins);
		else
		{
			if (nk->any_upd)
				append_line(b, &data, i, 'U', -1, nk->upd);
			if (nk->created)
				append_line(b, &data, i, 'I', nk->uuid_from, nk->ins);
		}
		pfree(keysrc);
	}
	hash_destroy(keys);

	cloud_set_step("replicating %s: COPY %d net rows of %d changes", b->schema->xtkschema,
				   nkeys, end - first);
	if ((msg = copy_to_temp(conn, b, &data)) != NULL)
		return msg;
	cloud_set_step("replicating %s: applying %d keys", b->schema->xtkschema, nkeys);
	if (any_delete &&
		(msg = exec_segment(conn, b, apply_statement(b, k, 'D', where, NULL, true,
													  NULL, true, false),
							 !any_insert && !any_update)) != NULL)
		return msg;
	if (any_insert)
		return exec_segment(conn, b, apply_statement(b, k, 'I', where, upd_cols, upd_all,
													  ins_cols, ins_all, any_update), true);
	if (any_update)
		return exec_segment(conn, b, apply_statement(b, k, 'U', where, upd_cols, upd_all,
													  NULL, true, true), true);
	return NULL;
}

/* ---------- rejected rows ---------- */

static void
mark(Batch *b, int64 seq, char *message)
{
	Mark	   *m = palloc(sizeof(Mark));

	m->seq = seq;
	m->message = message;
	b->marks = lappend(b->marks, m);
}

/* Is change c's key held behind a rejected change?  Returns its seq or 0. */
static int64
held_behind(Batch *b, int c)
{
	Change	   *ch = &b->changes[c];
	HeldKey    *h;

	if (ch->keydef < 0 || ch->keynull)
		return 0;
	h = hash_search(b->held, &ch->keyhash, HASH_FIND, NULL);
	return h ? h->behind : 0;
}

static char *
held_message(int64 behind)
{
	return psprintf(HELD_PREFIX INT64_FORMAT " of the same key, which the cloud rejected",
					behind);
}

/*
 * The segment was refused: apply its changes one by one in staging order,
 * each under a savepoint, through the statements of a one-row segment.
 * A refused change is marked, and the later changes of its key are held.
 */
static void
apply_one_by_one(PGconn *conn, Batch *b, int first, int end, bool keyless)
{
	int			c;

	for (c = first; c < end; c++)
	{
		Change	   *ch = &b->changes[c];
		char	   *msg;
		int64		behind = held_behind(b, c);

		CHECK_FOR_INTERRUPTS();
		if (behind)
		{
			mark(b, ch->seq, held_message(behind));
			b->result->held++;
			continue;
		}
		b->segno++;
		cloud_command(conn, "SAVEPOINT campaign_change");
		msg = keyless ? apply_keyless(conn, b, c, c + 1) : apply_keyed(conn, b, c, c + 1);
		if (keyless)
			b->result->counts[ch->op]++;
		if (msg == NULL)
		{
			cloud_command(conn, "RELEASE SAVEPOINT campaign_change");
			continue;
		}
		cloud_command(conn, "ROLLBACK TO SAVEPOINT campaign_change");
		cloud_command(conn, "RELEASE SAVEPOINT campaign_change");
		mark(b, ch->seq, msg);
		b->result->counts[ch->op]--;
		b->result->rejected++;
		if (ch->keydef >= 0 && !ch->keynull)
		{
			HeldKey    *h = hash_search(b->held, &ch->keyhash, HASH_ENTER, NULL);

			h->behind = ch->seq;
		}
	}
}

/* Can change c join a segment of keydef "keydef"? */
static bool
joins_segment(Batch *b, int c, int keydef)
{
	Change	   *ch = &b->changes[c];

	return ch->keydef == keydef && held_behind(b, c) == 0;
}

/* Apply the segment [first, end) under a savepoint, isolating rejects. */
static void
apply_segment(PGconn *conn, Batch *b, int first, int end)
{
	bool		keyless = b->changes[first].keydef < 0;
	int			op;
	int64		before[4];
	char	   *msg;

	b->segno++;
	for (op = 0; op < 4; op++)
		before[op] = b->result->counts[op];
	cloud_command(conn, "SAVEPOINT campaign_segment");
	if (keyless)
	{
		cloud_set_step("replicating %s: COPY %d inserts", b->schema->xtkschema, end - first);
		msg = apply_keyless(conn, b, first, end);
		if (msg == NULL)
			b->result->counts[STG_OP_INSERT] += end - first;
	}
	else
		msg = apply_keyed(conn, b, first, end);
	if (msg == NULL)
	{
		/* The batch's last segment is released by the COMMIT. */
		if (end < b->nchanges)
			cloud_command(conn, "RELEASE SAVEPOINT campaign_segment");
		return;
	}
	ereport(LOG,
			(errmsg("campaign: %s: cloud rejected %d staged changes applied together, applying them one by one",
					b->schema->xtkschema, end - first),
			 errdetail_internal("%s", msg)));
	cloud_command(conn, "ROLLBACK TO SAVEPOINT campaign_segment");
	for (op = 0; op < 4; op++)
		b->result->counts[op] = before[op];
	apply_one_by_one(conn, b, first, end, keyless);
	cloud_command(conn, "RELEASE SAVEPOINT campaign_segment");
}

static void
apply_batch(PGconn *conn, Batch *b)
{
	int			first = 0;
	int			c;

	replication_data_sent = true;
	/* Only keyed segments go through the temporary table. */
	for (c = 0; c < b->nchanges; c++)
		if (b->changes[c].keydef >= 0)
		{
			create_temp_table(conn, b);
			break;
		}
	while (first < b->nchanges)
	{
		int			keydef = b->changes[first].keydef;
		int			end = first + 1;
		int64		behind = held_behind(b, first);

		CHECK_FOR_INTERRUPTS();
		if (behind)
		{
			mark(b, b->changes[first].seq, held_message(behind));
			b->result->held++;
			first++;
			continue;
		}
		while (end < b->nchanges && joins_segment(b, end, keydef))
			end++;
		apply_segment(conn, b, first, end);
		first = end;
	}
}

/* ---------- the batch ---------- */

static void
mark_locally(Batch *b)
{
	ListCell   *lc;
	char	   *sql = psprintf("UPDATE %s SET " STG_COL_ERROR " = $2 WHERE " STG_COL_SEQ " = $1",
							   b->staging);
	Oid			argtypes[2] = {INT8OID, TEXTOID};
	Mark	   *first = NULL;
	int			rejected = 0;

	foreach(lc, b->marks)
	{
		Mark	   *m = lfirst(lc);
		Datum		args[2] = {Int64GetDatum(m->seq), CStringGetTextDatum(m->message)};

		SPI_execute_with_args(sql, 2, argtypes, args, NULL, false, 0);
		if (strncmp(m->message, HELD_PREFIX, strlen(HELD_PREFIX)) != 0)
		{
			rejected++;
			if (first == NULL)
				first = m;
		}
	}
	if (first)
		ereport(WARNING,
				(errmsg("campaign: cloud rejected %d staged changes of %s",
						rejected, b->schema->xtkschema),
				 errdetail_internal("First, change " INT64_FORMAT ": %s", first->seq,
									first->message),
				 errhint("The rows are kept with _stg_error set, and the later changes of their keys wait behind them; fix the cause, then call campaign.retry_errors() or campaign.discard_errors().")));
}

/*
 * Last value handed out by the staging sequence (0 when none), from
 * pg_sequence_last_value() called directly: a query per batch was parsed
 * and planned every time.
 */
static int64
sequence_last_value(StagingSchema *s)
{
	LOCAL_FCINFO(fcinfo, 1);
	Datum		d;

	InitFunctionCallInfoData(*fcinfo, NULL, 1, InvalidOid, NULL, NULL);
	fcinfo->args[0].value = ObjectIdGetDatum(s->seqid);
	fcinfo->args[0].isnull = false;
	d = pg_sequence_last_value(fcinfo);
	return fcinfo->isnull ? 0 : DatumGetInt64(d);
}

/*
 * The attributes the cloud table has, from its column names separated by
 * tabs: only those are sent (a schema registered again but not yet
 * deployed goes on replicating what the cloud has).
 */
static void
choose_sent_attributes(Batch *b, const char *columns)
{
	StagingSchema *s = b->schema;
	int			i;

	b->sent = palloc(sizeof(int) * Max(s->natts, 1));
	b->nsent = 0;
	for (i = 0; i < s->natts; i++)
	{
		const char *name = s->atts[i].sqlname;
		size_t		len = strlen(name);
		const char *p = columns;

		while ((p = strstr(p, name)) != NULL)
		{
			if ((p == columns || p[-1] == '\t') && (p[len] == '\0' || p[len] == '\t'))
			{
				b->sent[b->nsent++] = i;
				break;
			}
			p += len;
		}
	}
}

/*
 * The cloud's watermark was behind ours: the changes still staged after it
 * are sent again; report those that are no longer here (purged once
 * replicated) and cannot be.
 */
static void
report_purged_gap(Batch *b, int64 hw, int64 known_upto, BatchResult *result)
{
	int64		first = b->nchanges > 0 ? b->changes[0].seq : known_upto + 1;

	if (first > hw + 1)
	{
		result->warning = psprintf("%s; changes " INT64_FORMAT " to " INT64_FORMAT
								   " are no longer staged here (purged after replication,"
								   " or never committed) and cannot be sent again",
								   result->warning, hw + 1, Min(first - 1, known_upto));
	}
	ereport(WARNING,
			(errmsg("campaign: %s: %s", b->schema->xtkschema, result->warning)));
}

/*
 * The cloud's watermark table gained the "pending" column in 1.1: add it
 * where an older deploy() created the table (once per connection).
 */
static void
migrate_cloud(PGconn *conn)
{
	PGresult   *res = cloud_exec(conn, "SELECT 1 FROM pg_catalog.pg_attribute"
								 " WHERE attrelid = '" CLOUD_WATERMARK_TABLE "'::pg_catalog.regclass"
								 " AND attname = 'pending' AND NOT attisdropped", 0, NULL);
	bool		missing = PQntuples(res) == 0;

	PQclear(res);
	if (missing)
		cloud_command(conn, "ALTER TABLE " CLOUD_WATERMARK_TABLE
					  " ADD COLUMN IF NOT EXISTS pending bigint[] NOT NULL DEFAULT '{}'");
}

/*
 * Flush the local WAL up to everything inserted so far; returns the LSN
 * flushed to.  When the insert position is just past the header of a page
 * nothing is written on yet, XLogFlush cannot reach it ("xlog flush
 * request ... is not satisfied"): everything inserted ends at that page's
 * start then.
 */
static XLogRecPtr
flush_local_wal(void)
{
	XLogRecPtr	upto = GetXLogInsertRecPtr();
	uint32		offset = upto % XLOG_BLCKSZ;

	if (offset == SizeOfXLogShortPHD ||
		(offset == SizeOfXLogLongPHD &&
		 XLogSegmentOffset(upto, wal_segment_size) == SizeOfXLogLongPHD))
		upto -= offset;
	XLogFlush(upto);
	return upto;
}

/* ---------- reading ahead ---------- */

/*
 * The next batch of a backlog, read while the cloud applies this one: the
 * batch that would be read once this one commits, starting from the
 * watermark and pending numbers this one leaves.
 */
typedef struct ReadAhead
{
	MemoryContext cxt;			/* holds all of it */
	PGconn	   *conn;
	char	   *schema_name;
	int64		from;			/* the watermark it starts from */
	char	   *pending_from;	/* and the pending numbers there */
	BatchResult result;			/* what reading counted (the rows it marked) */
	Batch		batch;
} ReadAhead;

static ReadAhead *ahead_made = NULL;	/* by the batch in progress */
static ReadAhead *ahead_ready = NULL;	/* by the last batch, committed */
static ReadAhead *ahead_used = NULL;	/* the batch in progress itself */

static void
drop_read_ahead(ReadAhead **ra)
{
	if (*ra)
		MemoryContextDelete((*ra)->cxt);
	*ra = NULL;
}

/* What a batch reading rows needs, in the current memory context. */
static void
init_batch(Batch *b)
{
	HASHCTL		ctl;

	b->cxt = CurrentMemoryContext;
	initStringInfo(&b->text);
	b->row_cxt = AllocSetContextCreate(CurrentMemoryContext, "campaign batch row",
									   ALLOCSET_SMALL_SIZES);
	b->maxchanges = 1024;
	b->changes = palloc(sizeof(Change) * b->maxchanges);
	b->fields = palloc(sizeof(Field) * b->maxchanges * Max(b->nsent, 1));
	b->maxseen = 1024;
	b->seen = palloc(sizeof(int64) * b->maxseen);
	ctl.keysize = sizeof(uint64);
	ctl.entrysize = sizeof(HeldKey);
	ctl.hcxt = CurrentMemoryContext;
	b->held = hash_create("campaign held keys", 64, &ctl,
						  HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
}

/*
 * Read the batch that starts at watermark hw, b->pending being the numbers
 * pending there, with the sequence's last value and the open claims'
 * floor: the rows, then b->upto and b->pending after the batch.
 */
static void
read_batch(Batch *b, int64 hw, int64 last, int64 floor)
{
	int64		examined = read_changes(b, hw, last);

	b->full = examined != PG_INT64_MAX;
	b->upto = Max(hw, Min(last, examined));
	compute_pending(b, hw, examined, b->upto, floor);
}

/*
 * Called while the cloud runs the batch's main statement: read the next
 * batch (steps 2 and 3), kept in ahead_made.  Only after a full batch that
 * neither holds nor marks rows (the keys held would change), and never
 * waiting for a writer without a claim (the batch in flight would wait).
 */
static void
read_next_batch(void *arg)
{
	Batch	   *b = (Batch *) arg;
	MemoryContext old = CurrentMemoryContext;
	MemoryContext cxt;
	ReadAhead  *ra;
	Batch	   *next;
	int64		last;
	int64		floor;

	if (!b->full || b->marks != NIL || hash_get_num_entries(b->held) > 0)
		return;
	last = sequence_last_value(b->schema);
	if (!open_claims_floor(b->schema->relid, false, &floor))
		return;
	cloud_set_step("replicating %s: applying, reading the next batch meanwhile",
				   b->schema->xtkschema);
	drop_read_ahead(&ahead_made);
	cxt = AllocSetContextCreate(TopMemoryContext, "campaign read-ahead",
								ALLOCSET_DEFAULT_SIZES);
	MemoryContextSwitchTo(cxt);
	ra = palloc0(sizeof(ReadAhead));
	ra->cxt = cxt;
	ahead_made = ra;
	ra->from = b->upto;
	ra->pending_from = pending_text(b);
	next = &ra->batch;
	next->schema = b->schema;
	next->staging = pstrdup(b->staging);
	next->target = pstrdup(b->target);
	next->columns = pstrdup(b->columns);
	next->nsent = b->nsent;
	next->sent = palloc(sizeof(int) * Max(b->nsent, 1));
	memcpy(next->sent, b->sent, sizeof(int) * b->nsent);
	next->npending = b->npending;
	next->pending = palloc(sizeof(int64) * Max(b->npending, 1));
	memcpy(next->pending, b->pending, sizeof(int64) * b->npending);
	next->result = &ra->result;
	init_batch(next);
	read_batch(next, ra->from, last, floor);
	MemoryContextSwitchTo(old);
}

/*
 * Can the batch read ahead be applied now?  Only over the same connection,
 * for the same schema (the same cache entry: the same attributes), with the
 * cloud's watermark, pending numbers and columns exactly those it was read
 * for: then it is the batch a read now would return, as of a moment ago.
 */
static bool
read_ahead_fits(ReadAhead *ra, PGconn *conn, const char *schema_name, Batch *b,
				int64 hw, int64 known_upto, const char *pending)
{
	return ra != NULL && ra->conn == conn && strcmp(ra->schema_name, schema_name) == 0 &&
		ra->batch.schema == b->schema && ra->from == hw && hw >= known_upto &&
		strcmp(ra->pending_from, pending) == 0 && strcmp(ra->batch.columns, b->columns) == 0;
}

/*
 * Replicate one batch of schema "ns:name" over conn.  Runs its own local
 * transactions (call it outside of one).  known_upto is our copy of the
 * cloud's watermark, to detect a cloud that lost data.  Returns false when
 * there was nothing to replicate (result->upto and result->pending are then
 * the cloud's state, which may still have moved: numbers that were pending
 * and turned out never to commit).  With read_ahead, a full batch reads
 * the next one while the cloud applies it, for the next call to apply.
 */
bool
replicate_batch(PGconn *conn, const char *schema_name, int64 known_upto,
				bool read_ahead, BatchResult *result)
{
	char	   *xtkschema = psprintf("%sStg", schema_name);
	PGresult   *res;
	Batch		b;
	int64		hw;
	int64		last;
	bool		have_batch = true;
	char	   *origin;
	char	   *where;
	char	   *nsp;
	char	   *rel;
	char	   *pending_before;
	ReadAhead  *ra;
	bool		sent;
	MemoryContext caller_cxt = CurrentMemoryContext;	/* outlives SPI's */

	memset(result, 0, sizeof(BatchResult));
	memset(&b, 0, sizeof(Batch));
	b.result = result;
	/* What a failed batch left; the next batch read ahead, if any. */
	drop_read_ahead(&ahead_used);
	drop_read_ahead(&ahead_made);
	ra = ahead_ready;
	ahead_ready = NULL;

	if (conn != migrated_conn)
	{
		migrate_cloud(conn);
		migrated_conn = conn;
	}
	campaign_start_transaction();
	SPI_connect();
	PushActiveSnapshot(GetTransactionSnapshot());
	b.schema = staging_schema_lookup(xtkschema);
	nsp = get_namespace_name(get_rel_namespace(b.schema->relid));
	rel = get_rel_name(b.schema->relid);
	/* The cloud table is named as the staging table without "stg". */
	b.staging = quote_qualified_identifier(nsp, rel);
	b.target = quote_qualified_identifier(nsp, pnstrdup(rel, strlen(rel) - 3));

	cloud_set_step("replicating %s: reading the cloud's watermark", schema_name);
	origin = MemoryContextStrdup(caller_cxt, campaign_origin());
	/* The watermark's row, named by literals, both ends of the batch. */
	where = MemoryContextStrdup(caller_cxt,
								psprintf(" WHERE origin = %s AND schema_name = %s",
										 cloud_literal(conn, origin),
										 cloud_literal(conn, schema_name)));
	/* BEGIN and the read in one round trip. */
	res = cloud_exec_script(conn, psprintf("BEGIN; SELECT w.upto, w.pending,"
										   " (SELECT string_agg(attname::text, E'\\t')"
										   "   FROM pg_catalog.pg_attribute"
										   "   WHERE attrelid = %s::pg_catalog.regclass AND attnum > 0"
										   "   AND NOT attisdropped)"
										   "  FROM " CLOUD_WATERMARK_TABLE " w%s FOR UPDATE",
										   cloud_literal(conn, b.target), where));
	if (PQntuples(res) != 1)
	{
		PQclear(res);
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("schema \"%s\" is not deployed from this database", schema_name),
				 errdetail("The cloud's watermark table has no row for origin %s.", origin),
				 errhint("Deploy it with campaign.deploy('%s').", schema_name)));
	}
	hw = strtoi64(PQgetvalue(res, 0, 0), NULL, 10);
	pending_before = MemoryContextStrdup(caller_cxt, PQgetvalue(res, 0, 1));
	parse_pending(&b, pending_before);
	b.columns = pstrdup(PQgetvalue(res, 0, 2));
	choose_sent_attributes(&b, b.columns);
	b.read_ahead = read_ahead;
	PQclear(res);
	result->from = hw;
	if (hw < known_upto)
		result->warning = psprintf("the cloud's watermark (" INT64_FORMAT ") is behind this database's ("
								   INT64_FORMAT "): the cloud lost replicated changes (restored from a backup?);"
								   " the changes still staged after " INT64_FORMAT " are sent again",
								   hw, known_upto, hw);

	if (read_ahead_fits(ra, conn, schema_name, &b, hw, known_upto, pending_before))
	{
		ahead_used = ra;
		ra = NULL;
		b = ahead_used->batch;
		b.read_ahead = read_ahead;
		b.result = result;
		result->rejected = ahead_used->result.rejected;
	}
	else if ((last = sequence_last_value(b.schema)) > hw || b.npending > 0)
	{
		int64		floor;

		cloud_set_step("replicating %s: checking open ingest transactions", schema_name);
		(void) open_claims_floor(b.schema->relid, true, &floor);
		init_batch(&b);
		load_held_keys(&b);

		cloud_set_step("replicating %s: reading staged changes", schema_name);
		read_batch(&b, hw, last, floor);
		if (hw < known_upto)
			report_purged_gap(&b, hw, known_upto, result);
	}
	else
		have_batch = false;
	drop_read_ahead(&ra);
	if (have_batch)
	{
		result->bytes = b.text.len;
		result->caught_up = !b.full;
		if (b.nchanges > 0)
		{
			/* A listed standby that cannot confirm fails the batch now. */
			failover_check_standbys();
			apply_batch(conn, &b);
		}
		mark_locally(&b);
	}
	result->upto = have_batch ? b.upto : hw;
	result->rows = b.nchanges;
	result->pending = MemoryContextStrdup(caller_cxt, pending_text(&b));
	result->lowest_pending = b.npending > 0 ? b.pending[0] : 0;
	if (result->warning)
		result->warning = MemoryContextStrdup(caller_cxt, result->warning);
	sent = b.nchanges > 0 || b.marks != NIL;

	PopActiveSnapshot();
	SPI_finish();
	CommitTransactionCommand();

	if (!sent && result->upto == hw && strcmp(result->pending, pending_before) == 0)
	{
		cloud_command(conn, "ROLLBACK");
		drop_read_ahead(&ahead_made);
		return false;
	}

	/*
	 * The rows sent must survive a crash here before the cloud's watermark
	 * passes them (synchronous_commit = off): flush our WAL first.
	 */
	cloud_set_step("replicating %s: committing", schema_name);
	/* ... and on the standbys of campaign.synchronized_standby_slots. */
	failover_wait_for_standbys(flush_local_wal());
	/* The watermark moves and the transaction commits in one round trip. */
	PQclear(cloud_exec_script(conn, psprintf("UPDATE " CLOUD_WATERMARK_TABLE " SET upto = "
											 INT64_FORMAT ", pending = %s, updated_at = now()%s;"
											 " COMMIT", result->upto,
											 cloud_literal(conn, result->pending), where)));
	drop_read_ahead(&ahead_used);
	/* The next batch was read for the watermark this one left. */
	if (ahead_made && b.marks == NIL)
	{
		ahead_made->conn = conn;
		ahead_made->schema_name = MemoryContextStrdup(ahead_made->cxt, schema_name);
		ahead_ready = ahead_made;
		ahead_made = NULL;
	}
	drop_read_ahead(&ahead_made);
	return sent;
}
