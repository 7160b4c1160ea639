/*-------------------------------------------------------------------------
 *
 * probe.c
 *	  Questions the replication worker asks a staging table at every pass
 *	  or batch, answered by walking an index directly, without the planner.
 *
 * "Is there a row to replicate?" (worker.c, once per pass) and "is any
 * row in error?" (replicate.c, once per batch) are asked many times a
 * second under a steady ingest.  As SQL their plans depend on what the
 * planner believes of the staging table: a plan kept while the table was
 * small, or made without statistics (a freshly deployed or truncated
 * table that autovacuum has not analyzed yet), is a sequential scan, and
 * staging keeps its replicated rows for campaign.staging_retention, so
 * each pass then read every retained row (at a steady 4,000 ingests/s,
 * 23% of the workers' CPU for the first question, 11% for the second,
 * run as a parallel sequential scan).  Here each question is an index
 * scan that stops at the first visible row that answers it:
 *	  - rows after a number: the primary key on _stg_seq, from that number;
 *	  - rows with given numbers: one probe of the primary key per number;
 *	  - rows in error: the partial index on _stg_seq WHERE _stg_error IS
 *	    NOT NULL (schema.c creates it with the table), which holds only
 *	    those rows.
 * Rows are seen through the active snapshot, as the SQL would see them.
 * A table that is gone answers false (the pass finds out later).
 *
 *-------------------------------------------------------------------------
 */
#include "campaign.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "catalog/pg_index.h"
#include "nodes/primnodes.h"
#include "probe.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"

/*
 * The first visible row the scan of index "indexid" returns whose
 * _stg_error is NULL (want_error false) or not (true): found or not.
 */
static bool
first_row(Relation rel, Oid indexid, AttrNumber att_error, bool want_error,
		  int nkeys, ScanKey keys)
{
	SysScanDesc scan;
	HeapTuple	tuple;
	bool		found = false;

	scan = systable_beginscan(rel, indexid, true, GetActiveSnapshot(), nkeys, keys);
	while (!found && (tuple = systable_getnext(scan)) != NULL)
	{
		bool		isnull;

		(void) heap_getattr(tuple, att_error, RelationGetDescr(rel), &isnull);
		found = isnull != want_error;
	}
	systable_endscan(scan);
	return found;
}

/* Is the index's predicate "_stg_error IS NOT NULL"? */
static bool
predicate_is_error(Relation index, AttrNumber att_error)
{
	List	   *pred = RelationGetIndexPredicate(index);
	NullTest   *test;

	if (list_length(pred) != 1 || !IsA(linitial(pred), NullTest))
		return false;
	test = linitial(pred);
	return test->nulltesttype == IS_NOT_NULL && IsA(test->arg, Var) &&
		((Var *) test->arg)->varattno == att_error;
}

/* The staging table, locked as a query would, or NULL when it is gone. */
static Relation
open_staging(Oid relid, AttrNumber *att_seq, AttrNumber *att_error)
{
	Relation	rel = try_table_open(relid, AccessShareLock);

	if (rel == NULL)
		return NULL;
	*att_seq = get_attnum(relid, STG_COL_SEQ);
	*att_error = get_attnum(relid, STG_COL_ERROR);
	if (*att_seq == InvalidAttrNumber || *att_error == InvalidAttrNumber ||
		!OidIsValid(RelationGetPrimaryKeyIndex(rel)))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("table \"%s\" is not a staging table", RelationGetRelationName(rel)),
				 errdetail("It lacks the column %s or %s, or its primary key.",
						   STG_COL_SEQ, STG_COL_ERROR)));
	return rel;
}

/*
 * Does the staging table have a row not in error numbered above "after",
 * or numbered one of pending[0..npending)?
 */
bool
staged_rows_to_send(Oid relid, int64 after, const int64 *pending, int npending)
{
	AttrNumber	att_seq;
	AttrNumber	att_error;
	Relation	rel = open_staging(relid, &att_seq, &att_error);
	Oid			pkey;
	ScanKeyData key;
	bool		found;
	int			i;

	if (rel == NULL)
		return false;
	pkey = RelationGetPrimaryKeyIndex(rel);
	ScanKeyInit(&key, att_seq, BTGreaterStrategyNumber, F_INT8GT, Int64GetDatum(after));
	found = first_row(rel, pkey, att_error, false, 1, &key);
	for (i = 0; !found && i < npending; i++)
	{
		ScanKeyInit(&key, att_seq, BTEqualStrategyNumber, F_INT8EQ, Int64GetDatum(pending[i]));
		found = first_row(rel, pkey, att_error, false, 1, &key);
	}
	table_close(rel, AccessShareLock);
	return found;
}

/*
 * Does the staging table have a row in error?  Answered from its partial
 * index on those rows; when the table has no such index (it was made by
 * hand, or altered), true: the caller then asks by SQL.
 */
bool
staged_rows_in_error(Oid relid)
{
	AttrNumber	att_seq;
	AttrNumber	att_error;
	Relation	rel = open_staging(relid, &att_seq, &att_error);
	List	   *indexes;
	ListCell   *lc;
	Oid			partial = InvalidOid;
	bool		found;

	if (rel == NULL)
		return false;
	indexes = RelationGetIndexList(rel);
	foreach(lc, indexes)
	{
		Relation	index = index_open(lfirst_oid(lc), AccessShareLock);
		Form_pg_index form = index->rd_index;

		if (form->indnatts == 1 && form->indkey.values[0] == att_seq &&
			predicate_is_error(index, att_error))
			partial = RelationGetRelid(index);
		index_close(index, AccessShareLock);
		if (OidIsValid(partial))
			break;
	}
	list_free(indexes);
	found = !OidIsValid(partial) || first_row(rel, partial, att_error, true, 0, NULL);
	table_close(rel, AccessShareLock);
	return found;
}
