/*-------------------------------------------------------------------------
 *
 * replicate.c
 *	  One batch of staged changes of one schema, applied to the cloud
 *	  exactly once.
 *
 * Exactly once without two-phase commit: the cloud keeps, per local
 * database ("origin") and schema, a watermark: the highest _stg_seq whose
 * change is applied there.  A batch
 *	  1. opens a remote transaction and reads the watermark FOR UPDATE (that
 *	     row lock also serializes any two replicators of the same origin);
 *	  2. takes the staging sequence's last value L, then waits for every
 *	     transaction still holding a write lock on the staging table
 *	     (WaitForLockers, as CREATE INDEX CONCURRENTLY does): a row with
 *	     _stg_seq <= L is then committed or gone for good, so the range
 *	     (watermark, L] is final and no late commit can slip under the mark;
 *	  3. reads the rows of that range, in _stg_seq order, bounded by
 *	     campaign.batch_size rows and campaign.batch_memory bytes;
 *	  4. sends them with COPY and applies them with set-based statements;
 *	  5. records rejected rows locally (_stg_error) and commits that;
 *	  6. moves the watermark and commits the remote transaction: the
 *	     changes and the watermark commit together, or neither does;
 *	  7. copies the watermark into campaign.schemas.replicated_upto, the
 *	     local view of what is replicated (purge and status use it).
 * Whatever dies when, the next batch starts from the cloud's watermark:
 * nothing is applied twice or skipped.
 *
 * Applying: the rows go by COPY into a temporary table on the cloud, then
 * one statement per group of rows with the same operation, key and carried
 * attributes (insert; update; upsert = update then insert what matched
 * nothing; delete), each touching only the carried columns.  So that changes
 * apply in staging order, the batch is cut into runs of one group in which
 * no key repeats; runs apply one after the other.  A run of keyless inserts
 * is COPied straight into the cloud table.
 *
 * Rejected rows: each run applies under a savepoint; if the cloud rejects
 * it, the run is applied again row by row, each under its own savepoint,
 * and the rows the cloud refuses are marked in error with its message while
 * the others go through.
 *
 *-------------------------------------------------------------------------
 */
#include "campaign.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "common/hashfn.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "replicate.h"
#include "remote.h"
#include "storage/lmgr.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/uuid.h"

/* Rows with the same operation, key and carried attributes. */
typedef struct ChangeGroup
{
	StagedOperation op;
	struct varlena *key;		/* _key array, NULL for keyless */
	struct varlena *carried;	/* _carried array */
	bool	   *carried_mask;	/* per attribute */
	int		   *key_atts;
	int			nkey;
	bool		unkeyed;		/* a key attribute was dropped since */
	char	   *statement;		/* built when first needed */
} ChangeGroup;

typedef struct BatchRow
{
	int64		seq;
	int			group;
	size_t		offset;			/* of its COPY line in Batch.data */
	int			core_len;		/* "uuid\tattributes" */
	int			len;			/* whole line, "\tseq\tgroup\n" included */
} BatchRow;

typedef struct Batch
{
	StagingSchema *schema;
	char	   *staging;		/* quoted staging table */
	char	   *target;			/* quoted cloud table */
	StringInfoData data;		/* COPY lines of all rows */
	MemoryContext row_cxt;		/* what converting one row needs */
	BatchRow   *rows;
	int			nrows;
	int			maxrows;
	ChangeGroup *groups;
	int			ngroups;
	int		   *run_ends;		/* index after the last row of each run */
	int			nruns;
	BatchResult *result;
	List	   *rejects;		/* RejectedRow */
} Batch;

typedef struct RejectedRow
{
	int64		seq;
	char	   *message;
} RejectedRow;

#define TEMP_TABLE "pg_temp.campaign_batch"

bool		replication_data_sent = false;

/* ---------- reading the staged rows ---------- */

static void
append_copy_escaped(StringInfo buf, const char *s)
{
	const char *start = s;

	for (; *s; s++)
	{
		char		c = *s;
		char		esc;

		switch (c)
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

/* A UUID in COPY text form, written straight into the batch's data. */
static void
append_uuid(StringInfo buf, pg_uuid_t *uuid)
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

static struct varlena *
copy_varlena(struct varlena *v)
{
	struct varlena *copy = palloc(VARSIZE_ANY(v));

	memcpy(copy, v, VARSIZE_ANY(v));
	return copy;
}

/*
 * Attribute indexes named in a text[] of attribute names.  Names the schema
 * no longer has (an attribute dropped with force) are left out and counted
 * in *missing.
 */
static int
array_attributes(StagingSchema *s, struct varlena *array, int **atts, int *missing)
{
	Datum	   *names;
	int			n;
	int			i;
	int			found = 0;

	deconstruct_array(DatumGetArrayTypeP(PointerGetDatum(array)), TEXTOID, -1,
					  false, TYPALIGN_INT, &names, NULL, &n);
	*atts = palloc(sizeof(int) * Max(n, 1));
	*missing = 0;
	for (i = 0; i < n; i++)
	{
		CampaignAttribute *a = staging_schema_attribute(s, TextDatumGetCString(names[i]));

		if (a)
			(*atts)[found++] = a - s->atts;
		else
			(*missing)++;
	}
	return found;
}

static int
find_group(Batch *b, StagedOperation op, struct varlena *key,
		   struct varlena *carried)
{
	ChangeGroup *g;
	int		   *atts;
	int			n;
	int			missing;
	int			i;

	for (i = 0; i < b->ngroups; i++)
	{
		g = &b->groups[i];
		if (g->op == op && varlena_equal(g->key, key) &&
			varlena_equal(g->carried, carried))
			return i;
	}
	b->groups = b->ngroups == 0 ? palloc(sizeof(ChangeGroup) * 8) :
		repalloc(b->groups, sizeof(ChangeGroup) * (b->ngroups + 8));
	g = &b->groups[b->ngroups];
	memset(g, 0, sizeof(ChangeGroup));
	g->op = op;
	g->key = key ? copy_varlena(key) : NULL;
	g->carried = copy_varlena(carried);
	g->carried_mask = palloc0(sizeof(bool) * Max(b->schema->natts, 1));
	n = array_attributes(b->schema, carried, &atts, &missing);
	for (i = 0; i < n; i++)
		g->carried_mask[atts[i]] = true;
	if (key)
	{
		g->nkey = array_attributes(b->schema, key, &g->key_atts, &missing);
		g->unkeyed = (missing > 0);
	}
	return b->ngroups++;
}

/* The SELECT reading the rows of the staging table in (hw, L]. */
static char *
select_staged_sql(Batch *b)
{
	StagingSchema *s = b->schema;
	StringInfoData sql;
	int			i;

	initStringInfo(&sql);
	appendStringInfoString(&sql, "SELECT " STG_COL_SEQ ", " STG_COL_OPERATION ", "
						   STG_COL_KEY ", " STG_COL_CARRIED ", " STG_COL_UUID);
	for (i = 0; i < s->natts; i++)
		appendStringInfo(&sql, ", %s", quote_identifier(s->atts[i].sqlname));
	appendStringInfo(&sql, " FROM %s WHERE " STG_COL_SEQ " > $1 AND " STG_COL_SEQ
					 " <= $2 AND " STG_COL_ERROR " IS NULL ORDER BY " STG_COL_SEQ,
					 b->staging);
	return sql.data;
}

/*
 * Append one row to the batch, and set *keyhash to the 64-bit hash of its
 * key values (0 when keyless) for the run cutting.  Returns false when the
 * row cannot be applied and was rejected instead.
 */
static bool
add_row(Batch *b, HeapTuple tuple, TupleDesc desc, uint64 *keyhash_out)
{
	StagingSchema *s = b->schema;
	bool		isnull;
	BatchRow   *row;
	ChangeGroup *g;
	struct varlena *key;
	struct varlena *carried;
	StagedOperation op;
	MemoryContext old;
	uint64		keyhash = 0;
	int			i;

	if (b->nrows == b->maxrows)
	{
		b->maxrows *= 2;
		b->rows = repalloc_huge(b->rows, sizeof(BatchRow) * b->maxrows);
		b->run_ends = repalloc_huge(b->run_ends, sizeof(int) * (b->maxrows + 1));
	}
	row = &b->rows[b->nrows++];
	row->seq = DatumGetInt64(SPI_getbinval(tuple, desc, 1, &isnull));
	op = operation_of(SPI_getbinval(tuple, desc, 2, &isnull));
	key = (struct varlena *) DatumGetPointer(SPI_getbinval(tuple, desc, 3, &isnull));
	key = isnull ? NULL : pg_detoast_datum_packed(key);
	carried = pg_detoast_datum_packed((struct varlena *)
									  DatumGetPointer(SPI_getbinval(tuple, desc, 4, &isnull)));
	row->group = find_group(b, op, key, carried);
	g = &b->groups[row->group];
	if (g->unkeyed)
	{
		RejectedRow *r = palloc(sizeof(RejectedRow));

		r->seq = row->seq;
		r->message = pstrdup("the change's _key names an attribute the schema no longer has");
		b->rejects = lappend(b->rejects, r);
		b->result->rejected++;
		b->nrows--;
		return false;
	}
	b->result->counts[g->op]++;

	row->offset = b->data.len;
	append_uuid(&b->data, DatumGetUUIDP(SPI_getbinval(tuple, desc, 5, &isnull)));
	old = MemoryContextSwitchTo(b->row_cxt);
	for (i = 0; i < s->natts; i++)
	{
		Datum		v = SPI_getbinval(tuple, desc, 6 + i, &isnull);

		appendStringInfoChar(&b->data, '\t');
		if (!g->carried_mask[i] || isnull)
			appendStringInfoString(&b->data, "\\N");
		else
		{
			char	   *text = OutputFunctionCall(&s->atts[i].outfunc, v);
			int			k;

			append_copy_escaped(&b->data, text);
			for (k = 0; k < g->nkey; k++)
				if (g->key_atts[k] == i)
					keyhash = hash_combine64(keyhash ^ (uint64) i,
											 hash_bytes_extended((unsigned char *) text,
																 strlen(text), 0));
		}
	}
	MemoryContextSwitchTo(old);
	MemoryContextReset(b->row_cxt);
	row->core_len = b->data.len - row->offset;
	appendStringInfo(&b->data, "\t" INT64_FORMAT "\t%d\n", row->seq, row->group);
	row->len = b->data.len - row->offset;
	*keyhash_out = g->nkey > 0 ? (keyhash | 1) : 0;
	return true;
}

/*
 * Read the rows of (hw, upto] into the batch, cutting runs; stop at the
 * batch bounds.  Returns the seq up to which the batch covers the table.
 */
static int64
read_rows(Batch *b, int64 hw, int64 upto)
{
	Oid			argtypes[2] = {INT8OID, INT8OID};
	Datum		args[2] = {Int64GetDatum(hw), Int64GetDatum(upto)};
	SPIPlanPtr	plan;
	Portal		portal;
	HTAB	   *keys;
	HASHCTL		ctl;
	size_t		memory_limit = (size_t) campaign_batch_memory * 1024;
	bool		full = false;
	int			run_start = 0;	/* first row of the current run */

	ctl.keysize = sizeof(uint64);
	ctl.entrysize = sizeof(uint64);
	ctl.hcxt = CurrentMemoryContext;
	keys = hash_create("campaign run keys", 1024, &ctl,
					   HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);

	plan = SPI_prepare(select_staged_sql(b), 2, argtypes);
	if (plan == NULL)
		elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
	portal = SPI_cursor_open(NULL, plan, args, NULL, false);
	while (!full)
	{
		uint64		i;

		SPI_cursor_fetch(portal, true, 1000);
		if (SPI_processed == 0)
			break;
		for (i = 0; i < SPI_processed; i++)
		{
			uint64		keyhash;
			int			row;

			if (!add_row(b, SPI_tuptable->vals[i], SPI_tuptable->tupdesc, &keyhash))
				continue;
			row = b->nrows - 1;

			/*
			 * A run holds rows of one group (applied by one statement) whose
			 * keys do not repeat, so that its rows may apply in any order.
			 */
			if (row > run_start)
			{
				bool		found = false;

				if (keyhash != 0)
					hash_search(keys, &keyhash, HASH_FIND, &found);
				if (found || b->rows[row].group != b->rows[run_start].group)
				{
					b->run_ends[b->nruns++] = row;
					run_start = row;
					hash_destroy(keys);
					keys = hash_create("campaign run keys", 1024, &ctl,
									   HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
				}
			}
			if (keyhash != 0)
				hash_search(keys, &keyhash, HASH_ENTER, NULL);
			if (b->nrows >= campaign_batch_size || b->data.len >= memory_limit)
			{
				full = true;
				break;
			}
		}
		SPI_freetuptable(SPI_tuptable);
	}
	SPI_cursor_close(portal);
	SPI_freeplan(plan);
	hash_destroy(keys);
	if (b->nrows > 0)
		b->run_ends[b->nruns++] = b->nrows;
	return full ? b->rows[b->nrows - 1].seq : upto;
}

/* ---------- applying on the cloud ---------- */

static const char *
batch_match(void)
{
	return "b._grp = $3 AND b._seq BETWEEN $1 AND $2";
}

static char *
group_statement(Batch *b, ChangeGroup *g)
{
	StagingSchema *s = b->schema;
	StringInfoData cols;
	StringInfoData bcols;
	StringInfoData sets;
	StringInfoData keys;
	StringInfoData sql;
	int			i;

	initStringInfo(&cols);
	initStringInfo(&bcols);
	initStringInfo(&sets);
	initStringInfo(&keys);
	initStringInfo(&sql);
	for (i = 0; i < s->natts; i++)
	{
		const char *col;

		if (!g->carried_mask[i])
			continue;
		col = quote_identifier(s->atts[i].sqlname);
		appendStringInfo(&cols, ", %s", col);
		appendStringInfo(&bcols, ", b.%s", col);
		appendStringInfo(&sets, "%s%s = b.%s", sets.len ? ", " : "", col, col);
	}
	for (i = 0; i < g->nkey; i++)
	{
		const char *col = quote_identifier(s->atts[g->key_atts[i]].sqlname);

		appendStringInfo(&keys, " AND t.%s = b.%s", col, col);
	}

	switch (g->op)
	{
		case STG_OP_DELETE:
			appendStringInfo(&sql, "DELETE FROM %s t USING " TEMP_TABLE " b WHERE %s%s",
							 b->target, batch_match(), keys.data);
			break;
		case STG_OP_UPDATE:
			appendStringInfo(&sql, "UPDATE %s t SET %s FROM " TEMP_TABLE " b WHERE %s%s",
							 b->target, sets.data, batch_match(), keys.data);
			break;
		case STG_OP_INSERT:
		case STG_OP_INSERT_OR_UPDATE:
			if (g->nkey == 0)
			{
				appendStringInfo(&sql, "INSERT INTO %s (_uuid%s) SELECT b._uuid%s FROM "
								 TEMP_TABLE " b WHERE %s ORDER BY b._seq",
								 b->target, cols.data, bcols.data, batch_match());
				break;
			}
			appendStringInfo(&sql,
							 "WITH u AS (UPDATE %s t SET %s FROM " TEMP_TABLE " b"
							 " WHERE %s%s RETURNING b._seq)"
							 " INSERT INTO %s (_uuid%s) SELECT b._uuid%s FROM " TEMP_TABLE " b"
							 " WHERE %s AND b._seq NOT IN (SELECT _seq FROM u) ORDER BY b._seq",
							 b->target, sets.data, batch_match(), keys.data,
							 b->target, cols.data, bcols.data, batch_match());
			break;
	}
	return sql.data;
}

/* The batch's temporary table on the cloud, created outside any savepoint. */
static void
create_temp_table(PGconn *conn, Batch *b)
{
	StringInfoData sql;
	int			i;

	initStringInfo(&sql);
	appendStringInfoString(&sql, "CREATE TEMP TABLE campaign_batch (_uuid uuid");
	for (i = 0; i < b->schema->natts; i++)
		appendStringInfo(&sql, ", %s %s", quote_identifier(b->schema->atts[i].sqlname),
						 b->schema->atts[i].sqltype);
	appendStringInfoString(&sql, ", _seq bigint, _grp integer) ON COMMIT DROP");
	cloud_command(conn, sql.data);
}

/*
 * COPY rows [first, end) to the cloud: whole lines into the temporary
 * table, or (direct) their "uuid\tattributes" part into the cloud table.
 */
static char *
copy_rows(PGconn *conn, Batch *b, int first, int end, bool direct)
{
	StringInfoData sql;
	char	   *msg;
	int			i;

	initStringInfo(&sql);
	if (direct)
	{
		appendStringInfo(&sql, "COPY %s (_uuid", b->target);
		for (i = 0; i < b->schema->natts; i++)
			appendStringInfo(&sql, ", %s", quote_identifier(b->schema->atts[i].sqlname));
		appendStringInfoString(&sql, ") FROM STDIN");
	}
	else
		appendStringInfoString(&sql, "COPY " TEMP_TABLE " FROM STDIN");
	if ((msg = cloud_copy_begin(conn, sql.data)) != NULL)
		return msg;
	if (direct)
	{
		for (i = first; i < end; i++)
		{
			cloud_copy_send(conn, b->data.data + b->rows[i].offset, b->rows[i].core_len);
			cloud_copy_send(conn, "\n", 1);
		}
	}
	else
		cloud_copy_send(conn, b->data.data + b->rows[first].offset,
						b->rows[end - 1].offset + b->rows[end - 1].len -
						b->rows[first].offset);
	return cloud_copy_end(conn);
}

static char *
exec_group(PGconn *conn, Batch *b, int group, int64 lo, int64 hi)
{
	ChangeGroup *g = &b->groups[group];
	char		los[32],
				his[32],
				grp[16];
	const char *params[3] = {los, his, grp};

	if (g->statement == NULL)
		g->statement = group_statement(b, g);
	snprintf(los, sizeof(los), INT64_FORMAT, lo);
	snprintf(his, sizeof(his), INT64_FORMAT, hi);
	snprintf(grp, sizeof(grp), "%d", group);
	return cloud_try_exec(conn, g->statement, 3, params);
}

/*
 * Apply the run of rows [first, end), all of one group, with one statement
 * (keyless inserts: one COPY); returns NULL or the cloud's message.
 */
static char *
apply_run(PGconn *conn, Batch *b, int first, int end)
{
	int			group = b->rows[first].group;
	ChangeGroup *g = &b->groups[group];
	char	   *msg;

	if (g->op == STG_OP_INSERT && g->nkey == 0)
		return copy_rows(conn, b, first, end, true);

	cloud_command(conn, "TRUNCATE " TEMP_TABLE);
	if ((msg = copy_rows(conn, b, first, end, false)) != NULL)
		return msg;
	return exec_group(conn, b, group, b->rows[first].seq, b->rows[end - 1].seq);
}

/* The run was rejected: apply it row by row, isolating the bad rows. */
static void
apply_rows_one_by_one(PGconn *conn, Batch *b, int first, int end)
{
	char	   *msg;
	int			i;

	cloud_command(conn, "TRUNCATE " TEMP_TABLE);
	/* Each row is then found by its _seq, not by scanning the whole run. */
	cloud_command(conn, "CREATE INDEX IF NOT EXISTS campaign_batch_seq ON " TEMP_TABLE " (_seq)");
	if ((msg = copy_rows(conn, b, first, end, false)) != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_FDW_ERROR),
				 errmsg("cloud server refused the batch's rows"),
				 errdetail_internal("%s", msg)));
	for (i = first; i < end; i++)
	{
		BatchRow   *row = &b->rows[i];

		cloud_command(conn, "SAVEPOINT campaign_row");
		msg = exec_group(conn, b, row->group, row->seq, row->seq);
		if (msg == NULL)
		{
			cloud_command(conn, "RELEASE SAVEPOINT campaign_row");
			continue;
		}
		cloud_command(conn, "ROLLBACK TO SAVEPOINT campaign_row");
		cloud_command(conn, "RELEASE SAVEPOINT campaign_row");
		{
			RejectedRow *r = palloc(sizeof(RejectedRow));

			r->seq = row->seq;
			r->message = msg;
			b->rejects = lappend(b->rejects, r);
			b->result->counts[b->groups[row->group].op]--;
			b->result->rejected++;
		}
	}
}

static void
apply_batch(PGconn *conn, Batch *b)
{
	int			first = 0;
	int			r;

	replication_data_sent = true;
	create_temp_table(conn, b);
	for (r = 0; r < b->nruns; r++)
	{
		int			end = b->run_ends[r];
		char	   *msg;

		if (end <= first)
			continue;
		cloud_command(conn, "SAVEPOINT campaign_run");
		if ((msg = apply_run(conn, b, first, end)) == NULL)
			cloud_command(conn, "RELEASE SAVEPOINT campaign_run");
		else
		{
			ereport(LOG,
					(errmsg("campaign: %s: cloud rejected %d staged changes applied together, applying them one by one",
							b->schema->xtkschema, end - first),
					 errdetail_internal("%s", msg)));
			cloud_command(conn, "ROLLBACK TO SAVEPOINT campaign_run");
			apply_rows_one_by_one(conn, b, first, end);
			cloud_command(conn, "RELEASE SAVEPOINT campaign_run");
		}
		first = end;
	}
}

/* ---------- the batch ---------- */

static void
mark_rejected(Batch *b)
{
	ListCell   *lc;
	char	   *sql = psprintf("UPDATE %s SET " STG_COL_ERROR " = $2 WHERE " STG_COL_SEQ " = $1",
							   b->staging);
	Oid			argtypes[2] = {INT8OID, TEXTOID};
	RejectedRow *first;

	if (b->rejects == NIL)
		return;
	foreach(lc, b->rejects)
	{
		RejectedRow *r = lfirst(lc);
		Datum		args[2] = {Int64GetDatum(r->seq), CStringGetTextDatum(r->message)};

		SPI_execute_with_args(sql, 2, argtypes, args, NULL, false, 0);
	}
	first = linitial(b->rejects);
	ereport(WARNING,
			(errmsg("campaign: cloud rejected %d staged changes of %s",
					list_length(b->rejects), b->schema->xtkschema),
			 errdetail_internal("First, change " INT64_FORMAT ": %s", first->seq,
								first->message),
			 errhint("The rows are kept with _stg_error set; fix the cause, then call campaign.retry_errors() or campaign.discard_errors().")));
}

/* Last value handed out by the staging sequence (0 when none). */
static int64
sequence_last_value(StagingSchema *s)
{
	Datum		d;
	bool		isnull;
	Oid			argtypes[1] = {OIDOID};
	Datum		args[1] = {ObjectIdGetDatum(s->seqid)};

	SPI_execute_with_args("SELECT pg_catalog.pg_sequence_last_value($1::regclass)",
						  1, argtypes, args, NULL, false, 1);
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	return isnull ? 0 : DatumGetInt64(d);
}

/*
 * Replicate one batch of schema "ns:name" over conn.  Runs its own local
 * transactions (call it outside of one).  Returns false when there was
 * nothing to replicate.
 */
bool
replicate_batch(PGconn *conn, const char *schema_name, BatchResult *result)
{
	char	   *xtkschema = psprintf("%sStg", schema_name);
	const char *params[3];
	PGresult   *res;
	Batch		b;
	int64		hw;
	int64		last;
	LOCKTAG		tag;
	char		upto_text[32];

	memset(result, 0, sizeof(BatchResult));
	memset(&b, 0, sizeof(Batch));
	b.result = result;

	campaign_start_transaction();
	SPI_connect();
	PushActiveSnapshot(GetTransactionSnapshot());
	b.schema = staging_schema_lookup(xtkschema);

	cloud_command(conn, "BEGIN");
	params[0] = campaign_origin();
	params[1] = schema_name;
	res = cloud_exec(conn, "SELECT upto FROM " CLOUD_WATERMARK_TABLE
					 " WHERE origin = $1 AND schema_name = $2 FOR UPDATE", 2, params);
	if (PQntuples(res) != 1)
	{
		PQclear(res);
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("schema \"%s\" is not deployed from this database", schema_name),
				 errhint("Deploy it with campaign.deploy('%s').", schema_name)));
	}
	hw = strtoi64(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);
	result->from = hw;

	last = sequence_last_value(b.schema);
	if (last > hw)
	{
		char	   *nsp = get_namespace_name(get_rel_namespace(b.schema->relid));
		char	   *rel = get_rel_name(b.schema->relid);

		SET_LOCKTAG_RELATION(tag, MyDatabaseId, b.schema->relid);
		WaitForLockers(tag, ShareLock, false);

		/* The cloud table is named as the staging table without "stg". */
		b.staging = quote_qualified_identifier(nsp, rel);
		b.target = quote_qualified_identifier(nsp, pnstrdup(rel, strlen(rel) - 3));
		initStringInfo(&b.data);
		b.row_cxt = AllocSetContextCreate(CurrentMemoryContext, "campaign batch row",
										  ALLOCSET_SMALL_SIZES);
		b.maxrows = 1024;
		b.rows = palloc(sizeof(BatchRow) * b.maxrows);
		b.run_ends = palloc(sizeof(int) * (b.maxrows + 1));
		last = read_rows(&b, hw, last);
		result->bytes = b.data.len;
		apply_batch(conn, &b);
		mark_rejected(&b);
	}
	result->upto = Max(last, hw);
	result->rows = b.nrows;

	PopActiveSnapshot();
	SPI_finish();
	CommitTransactionCommand();

	/* Nothing new: result->upto is the cloud's watermark, for the caller. */
	if (result->upto == hw)
	{
		cloud_command(conn, "ROLLBACK");
		return false;
	}
	snprintf(upto_text, sizeof(upto_text), INT64_FORMAT, result->upto);
	params[2] = upto_text;
	PQclear(cloud_exec(conn, "UPDATE " CLOUD_WATERMARK_TABLE " SET upto = $3, updated_at = now()"
					   " WHERE origin = $1 AND schema_name = $2", 3, params));
	cloud_command(conn, "COMMIT");
	return true;
}
