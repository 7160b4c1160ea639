/*-------------------------------------------------------------------------
 *
 * registry.c
 *	  Per-backend cache of the registered staging schemas.
 *
 * The ingest functions are called many times a second with tiny documents,
 * so reading the registry tables for every call would cost more than the
 * insert itself.  Each backend keeps a hash table, keyed by the xtkschema
 * name ("dem:sampleTableStg"), of StagingSchema entries: the staging table,
 * its identity sequence and, for every attribute, its column, type and input
 * function.
 *
 * Invalidation rides on the relcache: register_schema() always ends with a
 * relcache invalidation of the staging table (ALTER/DROP TABLE send one too),
 * and our relcache callback marks the matching entries stale, so a change
 * committed by any backend is seen by all others at their next call.
 *
 * The registry is read through SPI as the owner of the registry tables, so
 * ingest callers need no right on them, with search_path pinned as in a
 * SECURITY DEFINER function (else a caller's function named like one of
 * pg_catalog's, early in its search_path, would run as that owner).  An entry also says whether the
 * ingest rights of rights.c apply: they come with the SQL of version 1.1,
 * so a database still at 1.0 (new library, ALTER EXTENSION UPDATE not run
 * yet) keeps 1.0's rule until the update, whose GRANTs on every staging
 * table invalidate the entries.  Only staged schemas are cached;
 * unknown or unstaged schemas are looked up again (they are errors anyway).
 *
 * An entry also says whether an ingest commit must wake the replication
 * worker: only when the schema is deployed and replicated continuously.
 * Scheduled and stopped schemas are replicated on the worker's clock or on
 * request, and an undeployed one not at all, so a commit into them costs the
 * worker nothing.  Deployment and mode live in campaign.schemas, so a
 * trigger there (registry_changed, SQL of 1.1) invalidates the staging
 * table's entries when they change.  An ingest that locked the table before
 * such a change committed wakes by the state it saw; the worker's naptime
 * bounds the delay of its rows.  Under 1.0's SQL (no trigger) every commit
 * wakes the worker, as in 1.0.
 *
 *-------------------------------------------------------------------------
 */
#include "campaign.h"

#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/dependency.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/catcache.h"
#include "utils/guc.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/syscache.h"

typedef struct RegistryEntry
{
	char		xtkschema[2 * NAMEDATALEN + 8]; /* hash key */
	StagingSchema *schema;		/* NULL when not loaded */
	MemoryContext cxt;			/* holds *schema */
} RegistryEntry;

static HTAB *registry_cache = NULL;

PG_FUNCTION_INFO_V1(registry_changed);

/* Relcache callback: mark stale every entry on that relation (or all). */
static void
registry_invalidate(Datum arg, Oid relid)
{
	HASH_SEQ_STATUS status;
	RegistryEntry *entry;

	hash_seq_init(&status, registry_cache);
	while ((entry = hash_seq_search(&status)) != NULL)
	{
		if (entry->schema &&
			(relid == InvalidOid || entry->schema->relid == relid))
			entry->schema->valid = false;
	}
}

static void
registry_init(void)
{
	HASHCTL		ctl;

	ctl.keysize = sizeof(((RegistryEntry *) 0)->xtkschema);
	ctl.entrysize = sizeof(RegistryEntry);
	ctl.hcxt = CacheMemoryContext;
	registry_cache = hash_create("campaign staging schemas", 32, &ctl,
								 HASH_ELEM | HASH_STRINGS | HASH_CONTEXT);
	CacheRegisterRelcacheCallback(registry_invalidate, (Datum) 0);
}

/* Owner of the registry tables: the role the registry is read as. */
static Oid
registry_owner(void)
{
	Oid			nspid = get_namespace_oid("campaign", false);
	Oid			relid = get_relname_relid("schemas", nspid);
	HeapTuple	tuple;
	Oid			owner;

	if (!OidIsValid(relid))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("extension \"campaign\" is not installed in this database")));
	tuple = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
	if (!HeapTupleIsValid(tuple))
		elog(ERROR, "cache lookup failed for relation %u", relid);
	owner = ((Form_pg_class) GETSTRUCT(tuple))->relowner;
	ReleaseSysCache(tuple);
	return owner;
}

static char *
spi_text(int row, int col)
{
	return SPI_getvalue(SPI_tuptable->vals[row], SPI_tuptable->tupdesc, col);
}

static bool
spi_bool(int row, int col)
{
	bool		isnull;
	Datum		d = SPI_getbinval(SPI_tuptable->vals[row],
								  SPI_tuptable->tupdesc, col, &isnull);

	return !isnull && DatumGetBool(d);
}

static AttrNumber
internal_column(Relation rel, const char *colname)
{
	AttrNumber	attnum = get_attnum(RelationGetRelid(rel), colname);

	if (attnum == InvalidAttrNumber)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("staging table \"%s\" has no column \"%s\"",
						RelationGetRelationName(rel), colname),
				 errhint("Register the schema again with campaign.register_schema() to rebuild it.")));
	return attnum;
}

/*
 * Read one schema from the registry into cxt.  Returns NULL when no schema
 * of that name is registered.  Runs inside SPI.
 */
static StagingSchema *
registry_load(const char *namespace, const char *name, const char *xtkschema,
			  MemoryContext cxt)
{
	Oid			argtypes[2] = {TEXTOID, TEXTOID};
	Datum		args[2] = {CStringGetTextDatum(namespace), CStringGetTextDatum(name)};
	StagingSchema *s;
	MemoryContext old;
	Relation	rel;
	int			i;

	SPI_execute_with_args("SELECT s.staging_table IS NOT NULL,"
						  "       to_regclass(quote_ident(s.sql_schema) || '.' || quote_ident(s.staging_table))::oid,"
						  "       (SELECT e.extversion <> '1.0' FROM pg_extension e WHERE e.extname = 'campaign'),"
						  "       s.deployed_at IS NOT NULL AND s.mode = 'continuous'"
						  "  FROM campaign.schemas s WHERE s.namespace = $1 AND s.name = $2",
						  2, argtypes, args, NULL, true, 1);
	if (SPI_processed == 0)
		return NULL;

	old = MemoryContextSwitchTo(cxt);
	s = palloc0(sizeof(StagingSchema));
	strlcpy(s->xtkschema, xtkschema, sizeof(s->xtkschema));
	s->namespace = pstrdup(namespace);
	s->name = pstrdup(name);
	s->element = psprintf("%sStg", name);
	s->staged = spi_bool(0, 1);
	s->check_rights = spi_bool(0, 3);
	s->wakes_worker = !s->check_rights || spi_bool(0, 4);
	s->valid = true;
	if (s->staged)
	{
		char	   *oid = spi_text(0, 2);

		if (oid == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_TABLE),
					 errmsg("staging table of schema \"%s:%s\" does not exist",
							namespace, name),
					 errhint("Register the schema again with campaign.register_schema() to rebuild it.")));
		s->relid = atooid(oid);
	}
	MemoryContextSwitchTo(old);
	if (!s->staged)
		return s;

	SPI_execute_with_args("SELECT attribute, sql_name, type, length, required, not_null, default_value,"
						  "       sql_type"
						  "  FROM campaign.attributes WHERE namespace = $1 AND name = $2"
						  " ORDER BY position",
						  2, argtypes, args, NULL, true, 0);

	rel = table_open(s->relid, AccessShareLock);
	old = MemoryContextSwitchTo(cxt);
	s->att_seq = internal_column(rel, STG_COL_SEQ);
	s->att_uuid = internal_column(rel, STG_COL_UUID);
	s->att_operation = internal_column(rel, STG_COL_OPERATION);
	s->att_key = internal_column(rel, STG_COL_KEY);
	s->att_carried = internal_column(rel, STG_COL_CARRIED);
	s->att_lastmod = internal_column(rel, STG_COL_LASTMOD);
	s->seqid = getIdentitySequence(s->relid, s->att_seq, false);

	s->natts = SPI_processed;
	s->atts = palloc0(sizeof(CampaignAttribute) * Max(s->natts, 1));
	for (i = 0; i < s->natts; i++)
	{
		CampaignAttribute *a = &s->atts[i];
		Form_pg_attribute attr;
		Oid			infunc;
		Oid			outfunc;
		bool		varlena;
		char	   *length = spi_text(i, 4);

		a->name = spi_text(i, 1);
		a->sqlname = spi_text(i, 2);
		a->type = spi_text(i, 3);
		a->length = length ? atoi(length) : 0;
		a->required = spi_bool(i, 5);
		a->not_null = spi_bool(i, 6);
		a->default_value = spi_text(i, 7);
		a->sqltype = spi_text(i, 8);
		a->attnum = internal_column(rel, a->sqlname);
		attr = TupleDescAttr(RelationGetDescr(rel), a->attnum - 1);
		a->typid = attr->atttypid;
		a->typmod = attr->atttypmod;
		getTypeInputInfo(a->typid, &infunc, &a->typioparam);
		fmgr_info_cxt(infunc, &a->infunc, cxt);
		getTypeOutputInfo(a->typid, &outfunc, &varlena);
		fmgr_info_cxt(outfunc, &a->outfunc, cxt);
	}
	MemoryContextSwitchTo(old);
	table_close(rel, AccessShareLock);
	return s;
}

/*
 * Split "ns:nameStg" into namespace and base schema name.  The caller's
 * errors say what is wrong with the name; no name is used unchecked.
 */
static void
split_xtkschema(const char *xtkschema, char **namespace, char **name,
				bool *is_staging)
{
	const char *colon = strchr(xtkschema, ':');
	size_t		len;

	if (colon == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid xtkschema \"%s\"", campaign_shorten(xtkschema)),
				 errhint("Write the schema as namespace:name, e.g. dem:sampleTableStg.")));
	*namespace = pnstrdup(xtkschema, colon - xtkschema);
	*name = pstrdup(colon + 1);
	campaign_check_name(*namespace, "schema namespace");
	campaign_check_name(*name, "schema name");
	len = strlen(*name);
	*is_staging = (len > 3 && strcmp(*name + len - 3, "Stg") == 0);
	if (*is_staging)
		(*name)[len - 3] = '\0';
}

/*
 * The staging schema named by a document's xtkschema attribute.  Errors
 * when the name is malformed, not registered, or has no staging table.
 */
StagingSchema *
staging_schema_lookup(const char *xtkschema)
{
	RegistryEntry *entry;
	char	   *namespace;
	char	   *name;
	bool		is_staging;
	bool		found;
	Oid			save_userid;
	int			save_sec;
	int			save_nestlevel;
	MemoryContext cxt;
	StagingSchema *s;

	if (registry_cache == NULL)
		registry_init();

	if (strlen(xtkschema) < sizeof(entry->xtkschema))
	{
		entry = hash_search(registry_cache, xtkschema, HASH_FIND, NULL);
		if (entry && entry->schema && entry->schema->valid)
			return entry->schema;
	}

	split_xtkschema(xtkschema, &namespace, &name, &is_staging);

	cxt = AllocSetContextCreate(CacheMemoryContext, "campaign staging schema",
								ALLOCSET_SMALL_SIZES);
	GetUserIdAndSecContext(&save_userid, &save_sec);
	SetUserIdAndSecContext(registry_owner(),
						   save_sec | SECURITY_LOCAL_USERID_CHANGE);
	/* As SECURITY DEFINER functions do: the caller's path must not lead here. */
	save_nestlevel = NewGUCNestLevel();
	(void) set_config_option("search_path", "pg_catalog, pg_temp", PGC_USERSET,
							 PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
	SPI_connect();
	PG_TRY();
	{
		s = registry_load(namespace, name, xtkschema, cxt);
	}
	PG_CATCH();
	{
		MemoryContextDelete(cxt);
		PG_RE_THROW();
	}
	PG_END_TRY();
	SPI_finish();
	AtEOXact_GUC(true, save_nestlevel);
	SetUserIdAndSecContext(save_userid, save_sec);

	if (s == NULL || !is_staging || !s->staged)
	{
		MemoryContextDelete(cxt);
		if (s == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_OBJECT),
					 errmsg("schema \"%s:%s\" is not registered", namespace, name),
					 errhint("Register it with campaign.register_schema().")));
		if (!is_staging)
			ereport(ERROR,
					(errcode(ERRCODE_WRONG_OBJECT_TYPE),
					 errmsg("schema \"%s\" is not a staging schema", xtkschema),
					 errhint("Ingest into its staging schema \"%sStg\".", xtkschema)));
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("schema \"%s:%s\" has no staging", namespace, name),
				 errhint("Register it with autoStg=\"true\" on its element.")));
	}

	entry = hash_search(registry_cache, xtkschema, HASH_ENTER, &found);
	if (found && entry->cxt)
		MemoryContextDelete(entry->cxt);
	entry->schema = s;
	entry->cxt = cxt;
	return s;
}

/* The attribute of that name, or NULL. */
CampaignAttribute *
staging_schema_attribute(StagingSchema *schema, const char *name)
{
	int			i;

	for (i = 0; i < schema->natts; i++)
		if (strcmp(schema->atts[i].name, name) == 0)
			return &schema->atts[i];
	return NULL;
}

/*
 * campaign.registry_changed() returns trigger
 *		After UPDATE of a campaign.schemas row that changed the schema's
 *		deployment or mode: the cached entries of its staging table are
 *		stale in every backend (from the commit on).
 */
Datum
registry_changed(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	HeapTuple	tuple;
	TupleDesc	desc;
	char	   *sql_schema;
	char	   *staging_table;

	if (!CALLED_AS_TRIGGER(fcinfo) || !TRIGGER_FIRED_AFTER(trigdata->tg_event) ||
		!TRIGGER_FIRED_FOR_ROW(trigdata->tg_event))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("campaign.registry_changed() must be an AFTER ... FOR EACH ROW trigger")));
	tuple = TRIGGER_FIRED_BY_UPDATE(trigdata->tg_event) ?
		trigdata->tg_newtuple : trigdata->tg_trigtuple;
	desc = RelationGetDescr(trigdata->tg_relation);
	sql_schema = SPI_getvalue(tuple, desc, SPI_fnumber(desc, "sql_schema"));
	staging_table = SPI_getvalue(tuple, desc, SPI_fnumber(desc, "staging_table"));
	if (sql_schema && staging_table)
	{
		Oid			relid = get_relname_relid(staging_table,
											  get_namespace_oid(sql_schema, true));

		if (OidIsValid(relid))
			CacheInvalidateRelcacheByRelid(relid);
	}
	return PointerGetDatum(NULL);
}
