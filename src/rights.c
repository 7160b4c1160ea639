/*-------------------------------------------------------------------------
 *
 * rights.c
 *	  Ingest rights per staged schema, checked on every path.
 *
 * The rights are PostgreSQL's own privileges on the schema's staging table,
 * read as a statement on the table would need them:
 *	  insert without _key           INSERT
 *	  insert with _key, insertOrUpdate  INSERT and UPDATE (an upsert)
 *	  update                        UPDATE
 *	  delete                        DELETE
 * so an administrator writes GRANT INSERT ON dem.sampletablestg TO partner
 * and reads the rights with \dp.  A role *feeds* a schema when it holds any
 * of the three; that is what describe() and the ingestion requests of a
 * mapping ask for (campaign_admin sees every schema).  The staging tables
 * have row-level security enabled with no policy (schema.c), so these
 * privileges open no direct access to the table: they are only read here.
 *
 * Whose rights: the current user when the check runs, GetUserId().  That is
 * the caller of xtk_ingest() and xtk_ingest_ext(), which are SECURITY
 * INVOKER, and the session's role under SOAP (soap() switches to it before
 * calling them).  The APIs written in SQL (describe, subscribe, unsubscribe,
 * ingestion_request, ingestion_status) must run as the extension's owner to
 * read the registry and write the queues, and inside a SECURITY DEFINER
 * function the current user is that owner: the caller is gone.  So their
 * entry points are the C functions at the end of this file, SECURITY
 * INVOKER: each passes its caller, GetUserId(), as the first argument of an
 * internal function campaign.<api>_as(caller, ...) that no role may
 * execute.  fmgr runs that one as its owner (it is SECURITY DEFINER) and,
 * unlike a call from SQL, checks no EXECUTE right.  The caller cannot be
 * forged: only these entry points and the owner can reach the internal
 * functions.
 *
 * Nothing is cached: every call reads the privileges at that moment (the
 * catalog cache is refreshed when the staging table is locked), so a REVOKE
 * takes effect from the next call, in open SOAP sessions too.
 *
 *-------------------------------------------------------------------------
 */
#include "campaign.h"

#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "parser/parse_func.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"

PG_FUNCTION_INFO_V1(require_ingest_rights);
PG_FUNCTION_INFO_V1(describe_as_caller);
PG_FUNCTION_INFO_V1(subscribe_as_caller);
PG_FUNCTION_INFO_V1(unsubscribe_as_caller);
PG_FUNCTION_INFO_V1(ingestion_request_as_caller);
PG_FUNCTION_INFO_V1(ingestion_status_as_caller);

/* The privileges of one staged change (see the table above). */
AclMode
campaign_operation_rights(StagedOperation op, bool keyed)
{
	switch (op)
	{
		case STG_OP_INSERT:
			return keyed ? (ACL_INSERT | ACL_UPDATE) : ACL_INSERT;
		case STG_OP_INSERT_OR_UPDATE:
			return ACL_INSERT | ACL_UPDATE;
		case STG_OP_UPDATE:
			return ACL_UPDATE;
		case STG_OP_DELETE:
			return ACL_DELETE;
	}
	return CAMPAIGN_RIGHTS_ANY; /* keep compiler quiet */
}

/* Which of INSERT, UPDATE and DELETE the role holds on the staging table. */
AclMode
campaign_ingest_rights(Oid relid, Oid roleid)
{
	return pg_class_aclmask(relid, roleid, CAMPAIGN_RIGHTS_ANY, ACLMASK_ALL);
}

/* "INSERT and UPDATE", "INSERT, UPDATE and DELETE" */
static char *
privilege_list(AclMode mode, const char *last_sep)
{
	static const AclMode order[] = {ACL_INSERT, ACL_UPDATE, ACL_DELETE};
	static const char *const names[] = {"INSERT", "UPDATE", "DELETE"};
	StringInfoData buf;
	int			n = 0;
	int			total = 0;
	int			i;

	for (i = 0; i < lengthof(order); i++)
		if (mode & order[i])
			total++;
	initStringInfo(&buf);
	for (i = 0; i < lengthof(order); i++)
	{
		if (!(mode & order[i]))
			continue;
		if (n > 0)
			appendStringInfoString(&buf, n == total - 1 ? last_sep : ", ");
		appendStringInfoString(&buf, names[i]);
		n++;
	}
	return buf.data;
}

/*
 * Refuse: roleid, which holds "have" on the staging table relid of schema
 * xtkschema, lacks some of "needed" (all of it, or any of it when needed is
 * CAMPAIGN_RIGHTS_ANY).
 */
void
campaign_refuse_rights(const char *xtkschema, Oid relid, Oid roleid,
					   AclMode needed, AclMode have)
{
	const char *verb;
	char	   *table = quote_qualified_identifier(get_namespace_name(get_rel_namespace(relid)),
												   get_rel_name(relid));
	const char *role = GetUserNameFromId(roleid, false);
	AclMode		lacking = needed & ~have;
	bool		several = (lacking & (lacking - 1)) != 0;

	if (needed == CAMPAIGN_RIGHTS_ANY)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied to ingest into schema \"%s\"", xtkschema),
				 errdetail("Role \"%s\" holds none of the INSERT, UPDATE and DELETE privileges on the staging table %s.",
						   role, table),
				 errhint("An administrator grants what its changes need, e.g.: GRANT INSERT ON %s TO %s;",
						 table, quote_identifier(role))));

	if (needed == ACL_INSERT)
		verb = "insert into";
	else if (needed == (ACL_INSERT | ACL_UPDATE))
		verb = "upsert into";
	else if (needed == ACL_UPDATE)
		verb = "update";
	else
		verb = "delete from";
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("permission denied to %s schema \"%s\"", verb, xtkschema),
			 errdetail("Role \"%s\" lacks the %s privilege%s on the staging table %s.",
					   role, privilege_list(lacking, " and "), several ? "s" : "", table),
			 errhint("An administrator can grant %s: GRANT %s ON %s TO %s;",
					 several ? "them" : "it", privilege_list(lacking, ", "), table,
					 quote_identifier(role))));
}

/*
 * campaign.require_ingest_rights(role oid, schema text, operation text)
 *		Refuse unless role may stage changes of that operation (insert,
 *		insertOrUpdate, update, delete; NULL: feed the schema at all) into
 *		the staging schema ("ns:nameStg").  For the APIs written in SQL,
 *		which get their caller from the entry points below.
 */
Datum
require_ingest_rights(PG_FUNCTION_ARGS)
{
	Oid			roleid;
	StagingSchema *schema;
	AclMode		needed = CAMPAIGN_RIGHTS_ANY;
	AclMode		have;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("role and schema must not be NULL")));
	roleid = PG_GETARG_OID(0);
	schema = staging_schema_lookup(text_to_cstring(PG_GETARG_TEXT_PP(1)));
	if (!PG_ARGISNULL(2))
	{
		char	   *op = text_to_cstring(PG_GETARG_TEXT_PP(2));
		int			i;

		for (i = 0; i <= STG_OP_DELETE; i++)
			if (strcmp(op, staged_operation_names[i]) == 0)
				break;
		if (i > STG_OP_DELETE)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid operation \"%s\"", campaign_shorten(op))));
		needed = campaign_operation_rights((StagedOperation) i, false);
	}
	have = campaign_ingest_rights(schema->relid, roleid);
	if (needed == CAMPAIGN_RIGHTS_ANY ? have == 0 : (needed & ~have) != 0)
		campaign_refuse_rights(schema->xtkschema, schema->relid, roleid, needed, have);
	PG_RETURN_VOID();
}

/*
 * Call campaign.<internal>(caller, the arguments of this call) and return
 * its result; a set-returning internal function fills this call's
 * ReturnSetInfo.  The internal function is looked up once per call site.
 */
static Datum
call_as_caller(FunctionCallInfo fcinfo, const char *internal)
{
	FmgrInfo   *inner = fcinfo->flinfo->fn_extra;
	LOCAL_FCINFO(call, FUNC_MAX_ARGS);
	Datum		result;
	int			i;

	if (inner == NULL)
	{
		Oid		   *argtypes;
		Oid			types[FUNC_MAX_ARGS];
		int			nargs;
		Oid			fn;

		get_func_signature(fcinfo->flinfo->fn_oid, &argtypes, &nargs);
		if (nargs + 1 > FUNC_MAX_ARGS)
			elog(ERROR, "too many arguments for %s", internal);
		types[0] = OIDOID;
		memcpy(types + 1, argtypes, sizeof(Oid) * nargs);
		fn = LookupFuncName(list_make2(makeString("campaign"), makeString(pstrdup(internal))),
							nargs + 1, types, false);
		inner = MemoryContextAllocZero(fcinfo->flinfo->fn_mcxt, sizeof(FmgrInfo));
		fmgr_info_cxt(fn, inner, fcinfo->flinfo->fn_mcxt);
		fcinfo->flinfo->fn_extra = inner;
	}

	InitFunctionCallInfoData(*call, inner, fcinfo->nargs + 1, fcinfo->fncollation,
							 fcinfo->context, fcinfo->resultinfo);
	call->args[0].value = ObjectIdGetDatum(GetUserId());
	call->args[0].isnull = false;
	for (i = 0; i < fcinfo->nargs; i++)
		call->args[i + 1] = fcinfo->args[i];
	result = FunctionCallInvoke(call);
	fcinfo->isnull = call->isnull;
	return result;
}

/* The entry points of the APIs written in SQL (campaign--1.0--1.1.sql). */
Datum
describe_as_caller(PG_FUNCTION_ARGS)
{
	return call_as_caller(fcinfo, "describe_as");
}

Datum
subscribe_as_caller(PG_FUNCTION_ARGS)
{
	return call_as_caller(fcinfo, "subscribe_as");
}

Datum
unsubscribe_as_caller(PG_FUNCTION_ARGS)
{
	return call_as_caller(fcinfo, "unsubscribe_as");
}

Datum
ingestion_request_as_caller(PG_FUNCTION_ARGS)
{
	return call_as_caller(fcinfo, "ingestion_request_as");
}

Datum
ingestion_status_as_caller(PG_FUNCTION_ARGS)
{
	return call_as_caller(fcinfo, "ingestion_status_as");
}
