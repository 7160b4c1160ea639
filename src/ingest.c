/*-------------------------------------------------------------------------
 *
 * ingest.c
 *	  xtk_ingest() and xtk_ingest_ext(): Campaign's xtk.session.Ingest and
 *	  IngestExt, writing into the local staging tables.
 *
 * A document is one record (<sampleTableStg xtkschema="dem:sampleTableStg"
 * .../>) or a collection (<sampleTableStg-collection xtkschema=...> holding
 * records).  The document is read as a stream (xmlTextReader): each record
 * is expanded into a small tree, converted, and freed once the reader moves
 * on, so a collection of any size costs memory for one chunk of rows only.
 * Rows are written in chunks through table_multi_insert() and the index
 * insertion COPY FROM uses, so a collection costs close to COPY of the same
 * rows.  A single record takes the same path with a chunk of one.
 *
 * All or nothing: any error aborts the statement's (sub)transaction, which
 * undoes the rows already written.
 *
 * Rights: the staging tables are written directly, so no privilege is
 * checked by the executor; these functions check the caller's own (see
 * rights.c): before reading any record, that it feeds the schema at all
 * (INSERT for xtk_ingest), then for each record the privileges of its
 * operation.  The registry is read through registry.c's cache.
 *
 *-------------------------------------------------------------------------
 */
#include "campaign.h"

#include "access/heapam.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/pg_class.h"
#include "executor/executor.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "record.h"
#include "storage/lmgr.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/timestamp.h"
#include "utils/uuid.h"

PG_FUNCTION_INFO_V1(xtk_ingest);
PG_FUNCTION_INFO_V1(xtk_ingest_ext);

/*
 * Rows written per table_multi_insert() call for a collection, as COPY FROM
 * does.  A single record is a chunk of one, and allocates for one row only
 * (it is the call an API tier makes thousands of times a second).
 */
#define INGEST_CHUNK 1000

#define COLLECTION_SUFFIX "-collection"

/* How ingest documents are named in errors. */
#define INGEST_WHAT "ingest document"

/* The open staging table and what writing into it needs. */
typedef struct StagingWriter
{
	Relation	rel;
	EState	   *estate;
	ResultRelInfo *rri;
	BulkInsertState bistate;
	CommandId	cid;
	int			chunk;			/* rows per flush: INGEST_CHUNK or 1 */
	TupleTableSlot **slots;		/* chunk of them, made on first use */
	int			nslots;
	MemoryContext chunk_cxt;	/* values of the rows not yet written */
} StagingWriter;

/*
 * The staging schema of xtkschema, with its table locked.  Taking the lock
 * processes pending invalidations: if the schema changed meanwhile (a
 * concurrent register_schema committed), look it up again.
 */
static StagingSchema *
lookup_and_lock(const char *xtkschema)
{
	for (;;)
	{
		StagingSchema *schema = staging_schema_lookup(xtkschema);

		LockRelationOid(schema->relid, RowExclusiveLock);
		if (schema->valid)
			return schema;
		UnlockRelationOid(schema->relid, RowExclusiveLock);
	}
}

static void
writer_open(StagingWriter *w, StagingSchema *schema, bool bulk)
{
	RangeTblEntry *rte;

	w->rel = table_open(schema->relid, NoLock);
	if (w->rel->rd_rel->relkind != RELKIND_RELATION)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("staging table \"%s\" is not a table",
						RelationGetRelationName(w->rel))));

	rte = makeNode(RangeTblEntry);
	rte->rtekind = RTE_RELATION;
	rte->relid = schema->relid;
	rte->relkind = RELKIND_RELATION;
	rte->rellockmode = RowExclusiveLock;
	w->estate = CreateExecutorState();
	ExecInitRangeTable(w->estate, list_make1(rte));
	w->rri = makeNode(ResultRelInfo);
	InitResultRelInfo(w->rri, w->rel, 1, NULL, 0);
	ExecOpenIndices(w->rri, false);
	w->bistate = bulk ? GetBulkInsertState() : NULL;
	w->cid = GetCurrentCommandId(true);
	w->chunk = bulk ? INGEST_CHUNK : 1;
	w->slots = palloc0(sizeof(TupleTableSlot *) * w->chunk);
	w->nslots = 0;
	w->chunk_cxt = AllocSetContextCreate(CurrentMemoryContext,
										 "campaign ingest chunk",
										 ALLOCSET_DEFAULT_SIZES);
}

/* Write the rows held in the slots, then their index entries. */
static void
writer_flush(StagingWriter *w)
{
	int			i;

	if (w->nslots == 0)
		return;
	table_multi_insert(w->rel, w->slots, w->nslots, w->cid, 0, w->bistate);
	for (i = 0; i < w->nslots; i++)
	{
		List	   *conflicts;

		conflicts = ExecInsertIndexTuples(w->rri, w->slots[i], w->estate,
										  false, false, NULL, NIL);
		list_free(conflicts);
		ExecClearTuple(w->slots[i]);
	}
	w->nslots = 0;
	MemoryContextReset(w->chunk_cxt);
}

/* The next free slot, its values and nulls reset. */
static TupleTableSlot *
writer_next_slot(StagingWriter *w)
{
	TupleTableSlot *slot;

	if (w->nslots == w->chunk)
		writer_flush(w);
	slot = w->slots[w->nslots];
	if (slot == NULL)
		slot = w->slots[w->nslots] =
			MakeSingleTupleTableSlot(RelationGetDescr(w->rel),
									 &TTSOpsVirtual);
	ExecClearTuple(slot);
	memset(slot->tts_isnull, true, sizeof(bool) * slot->tts_tupleDescriptor->natts);
	return slot;
}

static void
writer_close(StagingWriter *w)
{
	int			i;

	writer_flush(w);
	for (i = 0; i < w->chunk && w->slots[i]; i++)
		ExecDropSingleTupleTableSlot(w->slots[i]);
	if (w->bistate)
		FreeBulkInsertState(w->bistate);
	ExecCloseIndices(w->rri);
	FreeExecutorState(w->estate);
	table_close(w->rel, NoLock);
	MemoryContextDelete(w->chunk_cxt);
}

/* A version 4 UUID from 16 random bytes (as gen_random_uuid does). */
static Datum
random_uuid(const unsigned char *bytes)
{
	pg_uuid_t  *uuid = palloc(UUID_LEN);

	memcpy(uuid->data, bytes, UUID_LEN);
	uuid->data[6] = (uuid->data[6] & 0x0f) | 0x40;
	uuid->data[8] = (uuid->data[8] & 0x3f) | 0x80;
	return UUIDPGetDatum(uuid);
}

static char *
root_attribute(xmlNodePtr root, const char *name)
{
	xmlAttrPtr	attr = xmlHasProp(root, (const xmlChar *) name);

	return (attr && attr->ns == NULL) ? campaign_xml_attr(attr) : NULL;
}

/* Text in a collection, between its records. */
static void
collection_text_error(xmlNodePtr root)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_XML_CONTENT),
			 errmsg("collection <%s> must contain only records",
					(const char *) root->name)));
}

/* What staging one document needs, record after record. */
typedef struct IngestState
{
	StagingSchema *schema;
	RecordBuilder builder;
	StagingWriter writer;
	StringInfoData uuids;		/* the result */
	AclMode		rights;			/* the caller's on the staging table */
	int			recno;
	Datum		lastmod;
	unsigned char *random;		/* for the UUIDs: a writer chunk's worth */
	int			nrandom;		/* random UUIDs left in it */
} IngestState;

/* Convert one record element and queue its row for writing. */
static void
stage_record(IngestState *st, xmlNodePtr rec)
{
	StagingSchema *schema = st->schema;
	TupleTableSlot *slot;
	MemoryContext old;
	bool		keyed;
	AclMode		needed;

	if (st->nrandom == 0)
	{
		/* Random bytes for the UUIDs: a chunk's worth at a time. */
		st->nrandom = st->writer.chunk;
		if (!pg_strong_random(st->random, UUID_LEN * st->nrandom))
			ereport(ERROR,
					(errcode(ERRCODE_INTERNAL_ERROR),
					 errmsg("could not generate random values")));
	}

	slot = writer_next_slot(&st->writer);
	old = MemoryContextSwitchTo(st->writer.chunk_cxt);
	keyed = record_build(&st->builder, rec, ++st->recno, slot->tts_values,
						 slot->tts_isnull);
	needed = campaign_operation_rights(st->builder.op, keyed);
	if ((needed & ~st->rights) != 0)
		campaign_refuse_rights(schema->xtkschema, schema->relid, GetUserId(),
							   needed, st->rights);
	slot->tts_values[schema->att_uuid - 1] =
		random_uuid(st->random + UUID_LEN * --st->nrandom);
	slot->tts_isnull[schema->att_uuid - 1] = false;
	slot->tts_values[schema->att_seq - 1] =
		Int64GetDatum(campaign_stage_nextval(schema->relid, schema->seqid));
	slot->tts_isnull[schema->att_seq - 1] = false;
	slot->tts_values[schema->att_lastmod - 1] = st->lastmod;
	slot->tts_isnull[schema->att_lastmod - 1] = false;
	MemoryContextSwitchTo(old);
	ExecStoreVirtualTuple(slot);
	st->writer.nslots++;

	if (!keyed)
	{
		char	   *uuid = DatumGetCString(DirectFunctionCall1(uuid_out,
															   slot->tts_values[schema->att_uuid - 1]));

		if (st->uuids.len > 0)
			appendStringInfoChar(&st->uuids, ',');
		appendStringInfoString(&st->uuids, uuid);
		pfree(uuid);
	}
}

/*
 * Start staging the document of root element root (only the element
 * itself is read, not its children): its staging schema, the caller's
 * rights, the staging table opened for writing.
 */
static IngestState *
ingest_begin(xmlNodePtr root, bool ext)
{
	const char *rootname = (const char *) root->name;
	size_t		rootlen = strlen(rootname);
	size_t		suffixlen = strlen(COLLECTION_SUFFIX);
	bool		collection;
	char	   *xtkschema;
	IngestState *st = palloc0(sizeof(IngestState));

	collection = rootlen > suffixlen &&
		strcmp(rootname + rootlen - suffixlen, COLLECTION_SUFFIX) == 0;
	if (collection && root->ns != NULL && root->ns->prefix != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("collection element <%s:%s> must not have a namespace prefix",
						campaign_shorten((const char *) root->ns->prefix),
						campaign_shorten(rootname))));
	xtkschema = root_attribute(root, "xtkschema");
	if (xtkschema == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("document <%s> has no xtkschema attribute",
						campaign_shorten(rootname)),
				 errhint("Name the staging schema, e.g. xtkschema=\"dem:sampleTableStg\".")));
	st->schema = lookup_and_lock(xtkschema);
	/* Locked, so the privileges read are the committed ones. */
	st->rights = st->schema->check_rights ?
		campaign_ingest_rights(st->schema->relid, GetUserId()) : CAMPAIGN_RIGHTS_ANY;
	if (ext ? st->rights == 0 : !(st->rights & ACL_INSERT))
		campaign_refuse_rights(st->schema->xtkschema, st->schema->relid,
							   GetUserId(), ext ? CAMPAIGN_RIGHTS_ANY : ACL_INSERT,
							   st->rights);
	st->lastmod = TimestampTzGetDatum(GetCurrentTimestamp());

	record_builder_init(&st->builder, st->schema, ext);
	st->builder.collection = collection;
	if (collection)
	{
		if (rootlen - suffixlen != strlen(st->schema->element) ||
			strncmp(rootname, st->schema->element, rootlen - suffixlen) != 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("element <%s> does not match xtkschema \"%s\"",
							campaign_shorten(rootname), st->schema->xtkschema),
					 errhint("A collection of schema \"%s\" is a <%s%s> element.",
							 st->schema->xtkschema, st->schema->element,
							 COLLECTION_SUFFIX)));
		st->builder.default_key = root_attribute(root, "_key");
		st->builder.default_operation = root_attribute(root, "_operation");
	}

	initStringInfo(&st->uuids);
	writer_open(&st->writer, st->schema, collection);
	st->random = palloc(UUID_LEN * st->writer.chunk);
	record_builder_enter(&st->builder);
	return st;
}

/*
 * Write the rows still held (the records' error context left); returns
 * the UUIDs generated for records without a reconciliation key,
 * comma-separated, in document order.
 */
static text *
ingest_end(IngestState *st)
{
	writer_close(&st->writer);
	if (st->schema->wakes_worker)
		campaign_note_staged();
	return cstring_to_text_with_len(st->uuids.data, st->uuids.len);
}

/*
 * Stage the records of the document the reader is on (positioned on its
 * root element).  Records are expanded one at a time and the reader frees
 * each once past it.
 */
static text *
ingest_stream(PgXmlErrorContext *xcxt, xmlTextReaderPtr reader, bool ext)
{
	xmlNodePtr	root = xmlTextReaderCurrentNode(reader);
	IngestState *st = ingest_begin(root, ext);

	if (!st->builder.collection)
	{
		stage_record(st, campaign_reader_expand(xcxt, reader, INGEST_WHAT));
		campaign_reader_skip(xcxt, reader, INGEST_WHAT);
	}
	else if (!xmlTextReaderIsEmptyElement(reader))
	{
		bool		more = campaign_reader_read(xcxt, reader, INGEST_WHAT);

		while (more && xmlTextReaderDepth(reader) > 0)
		{
			int			type = xmlTextReaderNodeType(reader);

			if (type == XML_READER_TYPE_ELEMENT)
			{
				stage_record(st, campaign_reader_expand(xcxt, reader, INGEST_WHAT));
				more = campaign_reader_skip(xcxt, reader, INGEST_WHAT);
				continue;
			}
			if (type == XML_READER_TYPE_TEXT || type == XML_READER_TYPE_CDATA)
				collection_text_error(root);
			more = campaign_reader_read(xcxt, reader, INGEST_WHAT);
		}
	}
	record_builder_leave(&st->builder);

	/* The rest of the document must be well-formed too. */
	while (campaign_reader_read(xcxt, reader, INGEST_WHAT))
		;
	return ingest_end(st);
}

/*
 * Stage the document argument, freeing libxml2's memory on every path.
 * ext: xtk_ingest_ext's semantics.  Callers take their API's rate-limit
 * token first; internal callers (subscriptions) do not take another.
 */
text *
ingest_document(text *doc_text, bool ext)
{
	PgXmlErrorContext *xcxt;
	xmlTextReaderPtr volatile reader = NULL;
	text	   *result = NULL;

	campaign_require_preload();

	/*
	 * The rows are written below the executor, which would have refused a
	 * read-only transaction (default_transaction_read_only) or a standby.
	 */
	PreventCommandIfReadOnly("xtk_ingest()");
	PreventCommandDuringRecovery("xtk_ingest()");
	xcxt = pg_xml_init(PG_XML_STRICTNESS_ALL);

	PG_TRY();
	{
		campaign_reader_open(xcxt, VARDATA_ANY(doc_text), VARSIZE_ANY_EXHDR(doc_text),
							 INGEST_WHAT, (xmlTextReaderPtr *) &reader);
		result = ingest_stream(xcxt, reader, ext);
	}
	PG_CATCH();
	{
		if (reader)
			xmlFreeTextReader(reader);
		pg_xml_done(xcxt, true);
		PG_RE_THROW();
	}
	PG_END_TRY();
	xmlFreeTextReader(reader);
	pg_xml_done(xcxt, false);
	return result;
}

/*
 * Stage the document of root element root, already parsed (the domDoc of a
 * SOAP call whose envelope libxml2 found flawless, soap.c): what
 * ingest_document() does with the same document as text, without parsing
 * it again.  The caller takes the rate-limit token and frees the tree.
 */
text *
ingest_element(xmlNodePtr root, bool ext)
{
	IngestState *st;
	xmlNodePtr	node;

	campaign_require_preload();
	PreventCommandIfReadOnly("xtk_ingest()");
	PreventCommandDuringRecovery("xtk_ingest()");

	st = ingest_begin(root, ext);
	if (!st->builder.collection)
		stage_record(st, root);
	else
		for (node = root->children; node != NULL; node = node->next)
		{
			if (node->type == XML_ELEMENT_NODE)
				stage_record(st, node);
			else if (node->type == XML_CDATA_SECTION_NODE ||
					 (node->type == XML_TEXT_NODE && !xmlIsBlankNode(node)))
				collection_text_error(root);
		}
	record_builder_leave(&st->builder);
	return ingest_end(st);
}

/*
 * xtk_ingest(doc text | xml) returns text
 *		Insert the record(s); return the generated UUIDs ('' when every
 *		record has a reconciliation key).
 */
Datum
xtk_ingest(PG_FUNCTION_ARGS)
{
	campaign_throttle(CAMPAIGN_API_XTK_INGEST);
	PG_RETURN_TEXT_P(ingest_document(PG_GETARG_TEXT_PP(0), false));
}

/*
 * xtk_ingest_ext(doc text | xml) returns void
 *		Insert, update or delete the record(s) by reconciliation key.
 */
Datum
xtk_ingest_ext(PG_FUNCTION_ARGS)
{
	campaign_throttle(CAMPAIGN_API_XTK_INGEST_EXT);
	ingest_document(PG_GETARG_TEXT_PP(0), true);
	PG_RETURN_VOID();
}
