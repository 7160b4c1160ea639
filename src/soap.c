/*-------------------------------------------------------------------------
 *
 * soap.c
 *	  campaign.soap(envelope, session_token, security_token): Campaign's SOAP
 *	  router for urn:xtk:session (Logon, Logoff, Ingest, IngestExt),
 *	  urn:xtk:persist (GetEntityIfMoreRecent) and urn:nms:subscription
 *	  (Subscribe, Unsubscribe); campaign_soap_call() is the same router for
 *	  the HTTP workers (http.c).
 *
 * The envelope (SOAP 1.1) is parsed whole with libxml2 (xmldoc.c's safe
 * parser), namespace errors tolerated: Adobe's SDK calls the methods of an
 * interface in namespaces such as "urn:xtk:persist|xtk:session", which are
 * not valid URIs.  The method is the one element of the Body, found by its
 * namespace (the service, in any of the forms a method lists) and local
 * name; its parameters are read by position, never by name, as Campaign's
 * router does (the WSDL says strLogin, Adobe's SDK sends login, Campaign's
 * own client __sessiontoken).  The first parameter of every method is the
 * session token.
 *
 * GetEntityIfMoreRecent serves what the SDK reads before calling a method:
 * the schemas of xtk:session and nms:subscription (constant documents) and
 * of every registered schema (built by SQL from the registry), in the shape
 * of Campaign's compiled schemas.
 *
 * Sessions: Logon checks the login (a PostgreSQL role that may log in and is
 * not a superuser) and its password against the role's stored SCRAM or MD5
 * secret, as the server's own password authentication does, then stores a
 * session in campaign.soap_sessions: the SHA-256 of a random session token
 * ("___" and a UUID, as Campaign's) and of a random security token, the
 * role, and an expiry campaign.session_timeout after the Logon.  Other
 * methods need a live session: its token is the first parameter or, from an
 * HTTP gateway, the __sessiontoken cookie passed as session_token, or the
 * SOAP header's <Cookie> entry; a token that comes from a cookie must come
 * with the session's security token (the X-Security-Token header, passed
 * as security_token, or the header entry of that name), which a browser
 * does not send by itself.  Failed Logons take tokens of the rate-limited
 * API "logon_failure" (throttle.c); while it has none, Logon is refused
 * before any password is checked.
 * Each backend caches the sessions it has found live (see "The session
 * cache" below): a change to the table other than a Logon's INSERT empties
 * every backend's cache at commit, through a trigger and a relcache
 * invalidation.
 *
 * Rights: soap() runs as the extension's owner (SECURITY DEFINER), which
 * reads and writes the session table; the method itself (subscribe(), ...)
 * is called through SPI, by name, with the session's role as the current
 * user, so it needs exactly the rights that role has.  Ingest and IngestExt
 * call what xtk_ingest() and xtk_ingest_ext() call, ingest.c's, as the
 * role, after the check the executor would make (EXECUTE on the function,
 * which campaign_ingest has) and with the same rate-limit token, so that
 * the record already parsed with the envelope is not parsed again.  The
 * API functions are the same ones SQL callers use, rate limits included;
 * soap() itself is rate-limited as the API "soap".
 *
 * Errors never escape as SQL errors: the call runs in a subtransaction, and
 * any error (a bad envelope, a bad login, an expired session, an ingest
 * error, a rate limit) rolls it back and becomes a SOAP Fault whose detail
 * starts with the SQLSTATE.  A rate limit gives the faultcode
 * SOAP-ENV:Client.TooManyRequests, which a gateway maps to HTTP 429; an
 * invalid session carries Campaign's XSV-350008, on which clients log on
 * again.  Only a query cancel (statement_timeout, pg_cancel_backend) is
 * raised as such.
 *
 * Responses are written as Campaign writes them: Logon and Logoff in the
 * namespace of xtk:session, the other methods in urn:wpp:default (seeds/004).
 *
 *-------------------------------------------------------------------------
 */
#include "campaign.h"

#include "access/xact.h"
#include "catalog/pg_authid.h"
#include "commands/dbcommands.h"
#include "catalog/pg_type.h"
#include "common/base64.h"
#include "common/cryptohash.h"
#include "common/sha2.h"
#include "executor/spi.h"
#include "libpq/crypt.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "pgtime.h"
#include "utils/acl.h"
#include "catalog/namespace.h"
#include "commands/trigger.h"
#include "nodes/makefuncs.h"
#include "parser/parse_func.h"
#include "utils/builtins.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"

PG_FUNCTION_INFO_V1(soap);
PG_FUNCTION_INFO_V1(soap_sessions_changed);

#define SOAP_ENV_NS		"http://schemas.xmlsoap.org/soap/envelope/"
#define SOAP12_ENV_NS	"http://www.w3.org/2003/05/soap-envelope"
#define SOAP_ENCODING	"http://schemas.xmlsoap.org/soap/encoding/"
#define SOAP_LITERALXML "http://xml.apache.org/xml-soap/literalxml"
#define NS_WPP_DEFAULT	"urn:wpp:default"
#define NS_XTK_SESSION	"urn:xtk:session"
#define NS_XTK_PERSIST	"urn:xtk:persist"
#define NS_PERSIST_OF_SESSION "urn:xtk:persist|xtk:session"
#define NS_NMS_SUBSCRIPTION "urn:nms:subscription"
#define NS_XTK_SCHEMA	"urn:xtk:schema"

/* The one entity type GetEntityIfMoreRecent serves. */
#define ENTITY_SCHEMA	"xtk:schema"

#define FAULT_CLIENT		"SOAP-ENV:Client"
#define FAULT_SERVER		"SOAP-ENV:Server"
#define FAULT_THROTTLED		"SOAP-ENV:Client.TooManyRequests"
#define FAULT_VERSION		"SOAP-ENV:VersionMismatch"
#define FAULT_MUST_UNDERSTAND "SOAP-ENV:MustUnderstand"

#define SOAP_WHAT "SOAP envelope"
#define SOAP_MAX_PARAMS 8
#define SOAP_MAX_URNS 3

/* Bytes of randomness of the security token. */
#define SECURITY_TOKEN_BYTES 32

/* The statements soap() runs through SPI; their plans are kept. */
typedef enum SoapStatement
{
	STMT_SESSION,
	STMT_LOGON,
	STMT_LOGOFF,
	STMT_SUBSCRIBE,
	STMT_UNSUBSCRIBE,
	STMT_SCHEMA_DOCUMENT,
	SOAP_NUM_STATEMENTS
} SoapStatement;

typedef struct SoapSql
{
	const char *sql;
	int			nargs;
	Oid			argtypes[4];
} SoapSql;

#define TOKEN_HASH(n) "pg_catalog.sha256(pg_catalog.convert_to($" #n ", 'UTF8'))"

static const SoapSql statements[SOAP_NUM_STATEMENTS] = {
	/* The role must still be able to log in: checked in lookup_session(). */
	[STMT_SESSION] = {
		"SELECT s.role, s.expires_at, s.security_hash"
		"  FROM campaign.soap_sessions s"
		" WHERE s.token_hash = $1",
		1, {BYTEAOID}
	},
	[STMT_LOGON] = {
		"WITH expired AS (DELETE FROM campaign.soap_sessions"
		"                  WHERE expires_at <= pg_catalog.clock_timestamp())"
		"INSERT INTO campaign.soap_sessions (token_hash, security_hash, role, expires_at)"
		" VALUES (" TOKEN_HASH(1) ", " TOKEN_HASH(2) ", $3,"
		"         pg_catalog.clock_timestamp() + pg_catalog.make_interval(secs => $4))",
		4, {TEXTOID, TEXTOID, OIDOID, FLOAT8OID}
	},
	[STMT_LOGOFF] = {
		"DELETE FROM campaign.soap_sessions WHERE token_hash = " TOKEN_HASH(1),
		1, {TEXTOID}
	},
	[STMT_SUBSCRIBE] = {"SELECT campaign.subscribe($1, $2, $3)", 3,
	{TEXTOID, TEXTOID, BOOLOID}},
	[STMT_UNSUBSCRIBE] = {"SELECT campaign.unsubscribe($1, $2)", 2,
	{TEXTOID, TEXTOID}},

	/*
	 * A registered schema (or its staging schema, name + "Stg") in the shape
	 * of Campaign's compiled schemas: <schema> with its <element>, keys and
	 * attributes, when the role ($3) may see it (as describe()).
	 * xmlelement() does the escaping.
	 */
	[STMT_SCHEMA_DOCUMENT] = {
		"SELECT xmlelement(name schema,"
		"         xmlattributes('" NS_XTK_SCHEMA "' AS xmlns,"
		"                       s.namespace AS namespace, $2 AS name, s.label AS label,"
		"                       s.description AS \"desc\", 'xtk:schema' AS xtkschema),"
		"         xmlelement(name element,"
		"           xmlattributes($2 AS name, s.label AS label,"
		"                         CASE WHEN s.autopk THEN 'true' END AS autopk,"
		"                         CASE WHEN s.autouuid THEN 'true' END AS autouuid,"
		"                         CASE WHEN s.staging_table IS NOT NULL AND s.name = $2"
		"                              THEN 'true' END AS \"autoStg\"),"
		"           (SELECT xmlagg(xmlelement(name key,"
		"                     xmlattributes(k.key_name AS name,"
		"                                   CASE WHEN k.is_primary THEN 'true' END AS internal),"
		"                     (SELECT xmlagg(xmlelement(name keyfield, xmlattributes('@' || f AS xpath))"
		"                                    ORDER BY n) FROM unnest(k.fields) WITH ORDINALITY u(f, n)))"
		"                   ORDER BY k.position)"
		"              FROM campaign.keys k WHERE k.namespace = s.namespace AND k.name = s.name),"
		"           (SELECT xmlagg(xmlelement(name attribute,"
		"                     xmlattributes(a.attribute AS name, a.type AS type, a.length AS length,"
		"                                   a.label AS label, a.description AS \"desc\","
		"                                   CASE WHEN a.not_null THEN 'true' END AS \"notNull\","
		"                                   CASE WHEN a.required THEN 'true' END AS required,"
		"                                   a.default_value AS \"default\"))"
		"                   ORDER BY a.position)"
		"              FROM campaign.attributes a WHERE a.namespace = s.namespace AND a.name = s.name)))::text"
		"  FROM campaign.schemas s"
		" WHERE s.namespace = $1"
		"   AND (s.name = $2 OR (s.staging_table IS NOT NULL AND s.name || 'Stg' = $2))"
		"   AND campaign.schema_visible_to($3, $1 || ':' || $2)",
		3, {TEXTOID, TEXTOID, OIDOID}
	},
};

static SPIPlanPtr plans[SOAP_NUM_STATEMENTS];

struct SoapMethod;

/* One call: what the envelope and the arguments said. */
typedef struct SoapCall
{
	const struct SoapMethod *method;	/* NULL until the method is known */
	xmlNodePtr	params[SOAP_MAX_PARAMS];
	int			nparams;
	char	   *cookie_token;	/* session_token argument, or NULL */
	char	   *security_token; /* security_token argument, or NULL */
	char	   *header_token;	/* the SOAP header's Cookie entry, or NULL */
	char	   *header_security;	/* its X-Security-Token entry, or NULL */
	char	   *session_token;	/* the token of the session, once checked */
	Oid			role;			/* the session's role */
	bool		envelope_flawless;	/* libxml2 reported nothing on it */
	const char *faultcode;		/* set by errors that need their own */
	StringInfoData out;			/* the response's return values */
} SoapCall;

typedef void (*SoapHandler) (SoapCall *call);

typedef struct SoapMethod
{
	const char *urn;			/* the service's namespace */
	const char *other_urns[SOAP_MAX_URNS];	/* other forms clients send */
	const char *name;
	int			min_params;		/* session token included */
	int			max_params;
	bool		needs_session;
	const char *response_ns;
	SoapHandler handler;
} SoapMethod;

static void soap_logon(SoapCall *call);
static void soap_logoff(SoapCall *call);
static void soap_ingest(SoapCall *call);
static void soap_ingest_ext(SoapCall *call);
static void soap_subscribe(SoapCall *call);
static void soap_unsubscribe(SoapCall *call);
static void soap_get_entity(SoapCall *call);

/*
 * Ingest and IngestExt belong to the persist interface of xtk:session:
 * clients that read the schema (Adobe's SDK) call them in the namespace
 * "urn:xtk:persist|xtk:session", others in "urn:xtk:session".  The SDK
 * calls GetEntityIfMoreRecent in "urn:xtk:persist".
 */
static const SoapMethod methods[] = {
	{NS_XTK_SESSION, {NULL}, "Logon", 3, 4, false, NS_XTK_SESSION, soap_logon},
	{NS_XTK_SESSION, {NULL}, "Logoff", 0, 1, true, NS_XTK_SESSION, soap_logoff},
	{NS_XTK_SESSION, {NS_PERSIST_OF_SESSION}, "Ingest", 2, 2, true,
	NS_WPP_DEFAULT, soap_ingest},
	{NS_XTK_SESSION, {NS_PERSIST_OF_SESSION}, "IngestExt", 2, 2, true,
	NS_WPP_DEFAULT, soap_ingest_ext},
	{NS_XTK_PERSIST, {NS_PERSIST_OF_SESSION, NS_XTK_SESSION},
	"GetEntityIfMoreRecent", 2, 4, true, NS_WPP_DEFAULT, soap_get_entity},
	{NS_NMS_SUBSCRIPTION, {NULL}, "Subscribe", 3, 4, true, NS_WPP_DEFAULT, soap_subscribe},
	{NS_NMS_SUBSCRIPTION, {NULL}, "Unsubscribe", 3, 3, true, NS_WPP_DEFAULT, soap_unsubscribe},
};

/* Does the method answer calls in that namespace? */
static bool
method_has_urn(const SoapMethod *m, const char *urn)
{
	int			i;

	if (strcmp(urn, m->urn) == 0)
		return true;
	for (i = 0; i < SOAP_MAX_URNS && m->other_urns[i] != NULL; i++)
		if (strcmp(urn, m->other_urns[i]) == 0)
			return true;
	return false;
}

/* "xtk:session" for "urn:xtk:session". */
static const char *
service_name(const char *urn)
{
	return strncmp(urn, "urn:", 4) == 0 ? urn + 4 : urn;
}

static bool
is_soap_element(xmlNodePtr node, const char *name)
{
	return node->type == XML_ELEMENT_NODE && node->ns != NULL &&
		strcmp((const char *) node->ns->href, SOAP_ENV_NS) == 0 &&
		strcmp((const char *) node->name, name) == 0;
}

/* Next element sibling, from node itself; markup other than elements skipped. */
static xmlNodePtr
next_element(xmlNodePtr node)
{
	while (node != NULL && node->type != XML_ELEMENT_NODE)
		node = node->next;
	return node;
}

/*
 * The value of cookie "name" in a Cookie header's text ("a=1; name=value"),
 * or NULL.
 */
static char *
cookie_value(const char *cookies, const char *name)
{
	size_t		namelen = strlen(name);
	const char *p = cookies;

	while (*p)
	{
		const char *end;

		while (*p == ' ' || *p == '\t' || *p == ';')
			p++;
		end = p + strcspn(p, ";");
		if (end - p > namelen && strncmp(p, name, namelen) == 0 && p[namelen] == '=')
			return pnstrdup(p + namelen + 1, end - p - namelen - 1);
		p = end;
	}
	return NULL;
}

/*
 * Read the header entries: the session token from a <Cookie> entry
 * ("__sessiontoken=..."), the security token from <X-Security-Token>, as
 * Adobe's SDK writes them; refuse entries flagged mustUnderstand, since no
 * entry changes what the call does.
 */
static void
read_header(SoapCall *call, xmlNodePtr header)
{
	xmlNodePtr	entry;

	for (entry = next_element(header->children); entry;
		 entry = next_element(entry->next))
	{
		xmlChar    *must = xmlGetNsProp(entry, (const xmlChar *) "mustUnderstand",
										(const xmlChar *) SOAP_ENV_NS);
		bool		refused = must != NULL && strcmp((const char *) must, "1") == 0;
		const char *name = (const char *) entry->name;
		char	   *value;

		xmlFree(must);
		if (refused)
		{
			call->faultcode = FAULT_MUST_UNDERSTAND;
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("SOAP header entry <%s> is flagged mustUnderstand",
							campaign_shorten(name)),
					 errdetail("No header entry is understood.")));
		}
		if (strcmp(name, "Cookie") != 0 && strcmp(name, "X-Security-Token") != 0)
			continue;
		value = campaign_xml_text(entry);
		if (value == NULL || value[0] == '\0')
			continue;
		if (name[0] == 'C')
			call->header_token = cookie_value(value, "__sessiontoken");
		else
			call->header_security = value;
	}
}

/*
 * Find the method called by the envelope and collect its parameters.
 */
static void
find_method(SoapCall *call, xmlNodePtr root)
{
	xmlNodePtr	node;
	xmlNodePtr	body = NULL;
	xmlNodePtr	elem;
	const char *urn;
	int			i;

	if (root->ns != NULL && strcmp((const char *) root->ns->href, SOAP12_ENV_NS) == 0)
	{
		call->faultcode = FAULT_VERSION;
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("SOAP 1.2 envelopes are not supported"),
				 errhint("Send a SOAP 1.1 envelope, in namespace %s.", SOAP_ENV_NS)));
	}
	if (!is_soap_element(root, "Envelope"))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_XML_CONTENT),
				 errmsg("document is not a SOAP 1.1 envelope"),
				 errdetail("Its root element is <%s>.",
						   campaign_shorten((const char *) root->name)),
				 errhint("The root element is an Envelope in namespace %s.",
						 SOAP_ENV_NS)));

	node = next_element(root->children);
	if (node != NULL && is_soap_element(node, "Header"))
	{
		read_header(call, node);
		node = next_element(node->next);
	}
	if (node != NULL && is_soap_element(node, "Body"))
		body = node;
	if (body == NULL || next_element(body->next) != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_XML_CONTENT),
				 errmsg("SOAP envelope must hold an optional Header and one Body")));

	elem = next_element(body->children);
	if (elem == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_XML_CONTENT),
				 errmsg("SOAP body holds no method call")));
	if (next_element(elem->next) != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_XML_CONTENT),
				 errmsg("SOAP body holds more than one method call")));

	urn = elem->ns ? (const char *) elem->ns->href : "";
	for (i = 0; i < lengthof(methods) && call->method == NULL; i++)
		if (method_has_urn(&methods[i], urn) &&
			strcmp((const char *) elem->name, methods[i].name) == 0)
			call->method = &methods[i];
	if (call->method == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_FUNCTION),
				 errmsg("unknown method \"%s\" of service \"%s\"",
						campaign_shorten((const char *) elem->name),
						campaign_shorten(service_name(urn))),
				 errhint("The methods are Logon, Logoff, Ingest and IngestExt of urn:xtk:session, GetEntityIfMoreRecent of urn:xtk:persist, Subscribe and Unsubscribe of urn:nms:subscription.")));

	for (node = next_element(elem->children); node;
		 node = next_element(node->next))
	{
		if (call->nparams == call->method->max_params)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("method \"%s\" takes at most %d parameters",
							call->method->name, call->method->max_params)));
		call->params[call->nparams++] = node;
	}
	if (call->nparams < call->method->min_params)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("method \"%s\" takes at least %d parameters, not %d",
						call->method->name, call->method->min_params,
						call->nparams)));
}

/* Parameter i as text; "" when absent. */
static char *
text_param(SoapCall *call, int i)
{
	char	   *value;

	if (i >= call->nparams)
		return pstrdup("");
	value = campaign_xml_text(call->params[i]);
	if (value == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_XML_CONTENT),
				 errmsg("parameter %d <%s> of method \"%s\" must hold text only",
						i + 1, campaign_shorten((const char *) call->params[i]->name),
						call->method->name)));
	return value;
}

/* Parameter i as an XML document: the one element it holds. */
static xmlNodePtr
document_element(SoapCall *call, int i)
{
	xmlNodePtr	param = call->params[i];
	xmlNodePtr	elem = next_element(param->children);
	xmlNodePtr	node;

	for (node = param->children; node; node = node->next)
		if ((node->type == XML_ELEMENT_NODE && node != elem) ||
			(node->type == XML_TEXT_NODE && !xmlIsBlankNode(node)))
			elem = NULL;
	if (elem == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_XML_CONTENT),
				 errmsg("parameter %d <%s> of method \"%s\" must hold one element",
						i + 1, campaign_shorten((const char *) param->name),
						call->method->name)));
	return elem;
}

/*
 * Parameter i as an XML document serialized in the server encoding.  The
 * element is copied into a document of its own first, so that namespaces
 * declared higher up in the envelope are declared on it.
 */
static char *
document_param(SoapCall *call, int i)
{
	xmlNodePtr	elem = document_element(call, i);
	xmlNodePtr	node;
	xmlDocPtr	doc;
	xmlBufferPtr buf;
	char	   *utf8;
	char	   *result;

	doc = xmlNewDoc((const xmlChar *) "1.0");
	node = xmlDocCopyNode(elem, doc, 1);
	buf = xmlBufferCreate();
	if (node != NULL && buf != NULL)
	{
		xmlDocSetRootElement(doc, node);
		xmlNodeDump(buf, doc, node, 0, 0);
	}
	utf8 = buf != NULL && node != NULL ?
		pnstrdup((const char *) xmlBufferContent(buf), xmlBufferLength(buf)) : NULL;
	if (buf != NULL)
		xmlBufferFree(buf);
	xmlFreeDoc(doc);
	if (utf8 == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("could not serialize parameter %d of method \"%s\"",
						i + 1, call->method->name)));
	result = pg_any_to_server(utf8, strlen(utf8), PG_UTF8);
	return result;
}

/*
 * Run one of the statements, as the session's role when as_role; returns
 * the first column of the first row, or NULL.  If the statement fails, the
 * subtransaction of soap() is aborted, which also restores the user.
 */
static char *
run(SoapCall *call, SoapStatement stmt, Datum *values, const char *nulls,
	bool as_role)
{
	Oid			save_userid;
	int			save_sec_context;
	int			ret;

	if (plans[stmt] == NULL)
	{
		SPIPlanPtr	plan = SPI_prepare(statements[stmt].sql, statements[stmt].nargs,
									   (Oid *) statements[stmt].argtypes);

		if (plan == NULL)
			elog(ERROR, "SPI_prepare failed for \"%s\": %s",
				 statements[stmt].sql, SPI_result_code_string(SPI_result));
		SPI_keepplan(plan);
		plans[stmt] = plan;
	}

	GetUserIdAndSecContext(&save_userid, &save_sec_context);
	if (as_role)
		SetUserIdAndSecContext(call->role,
							   save_sec_context | SECURITY_LOCAL_USERID_CHANGE);
	ret = SPI_execute_plan(plans[stmt], values, nulls, false, 1);
	if (as_role)
		SetUserIdAndSecContext(save_userid, save_sec_context);
	if (ret < 0)
		elog(ERROR, "SPI_execute_plan failed for \"%s\": %s",
			 statements[stmt].sql, SPI_result_code_string(ret));

	if (SPI_tuptable == NULL || SPI_processed == 0)
		return NULL;
	return SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
}

static void
session_error(const char *why)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION),
			 errmsg("%s", why),
			 errdetail("XSV-350008 Session has expired or is invalid. Please reconnect."),
			 errhint("Log on again with xtk:session#Logon.")));
}

/* Does the role exist and may it log in? */
static bool
role_can_login(Oid roleid)
{
	HeapTuple	tuple = SearchSysCache1(AUTHOID, ObjectIdGetDatum(roleid));
	bool		canlogin;

	if (!HeapTupleIsValid(tuple))
		return false;
	canlogin = ((Form_pg_authid) GETSTRUCT(tuple))->rolcanlogin;
	ReleaseSysCache(tuple);
	return canlogin;
}

/*
 * The session cache: the sessions this backend has found live, by the
 * SHA-256 of their token, so that a call on a known session reads no table.
 * Any change to campaign.soap_sessions other than a Logon's INSERT (Logoff,
 * an administrator's DELETE or UPDATE, TRUNCATE) fires
 * soap_sessions_changed(), which sends a relcache invalidation of the table
 * at commit; every backend's callback then empties its cache, at the start
 * of its next transaction at the latest (or at the next command of the
 * same transaction, for the backend that made the change).  Expiry needs
 * no invalidation: the entry keeps the session's expires_at and is checked
 * against the clock on every use, as the table's row would be.  Whether
 * the role may still log in is asked of the syscache on every use.
 */
typedef struct SessionEntry
{
	uint8		token_hash[PG_SHA256_DIGEST_LENGTH];	/* hash key */
	Oid			role;
	TimestampTz expires_at;
	uint8		security_hash[PG_SHA256_DIGEST_LENGTH];
} SessionEntry;

/* Most sessions cached; when full, the cache starts again empty. */
#define SESSION_CACHE_SIZE 1024

static HTAB *session_cache = NULL;
static Oid	session_table = InvalidOid; /* campaign.soap_sessions */
static uint64 session_invalidations = 0;	/* callbacks that emptied it */

/* Relcache callback: a change to campaign.soap_sessions (or to all). */
static void
session_cache_invalidate(Datum arg, Oid relid)
{
	if (relid == InvalidOid || relid == session_table)
		session_invalidations++;
}

/* The cache, empty again if an invalidation came since it was last used. */
static HTAB *
session_cache_get(void)
{
	static uint64 seen = 0;
	static bool registered = false;

	if (!registered)
	{
		CacheRegisterRelcacheCallback(session_cache_invalidate, (Datum) 0);
		registered = true;
	}
	if (session_cache != NULL &&
		(seen != session_invalidations ||
		 hash_get_num_entries(session_cache) >= SESSION_CACHE_SIZE))
	{
		hash_destroy(session_cache);
		session_cache = NULL;
	}
	if (session_cache == NULL)
	{
		HASHCTL		ctl;

		ctl.keysize = PG_SHA256_DIGEST_LENGTH;
		ctl.entrysize = sizeof(SessionEntry);
		ctl.hcxt = CacheMemoryContext;
		session_cache = hash_create("campaign SOAP sessions", 64, &ctl,
									HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
		session_table = get_relname_relid("soap_sessions",
										  get_namespace_oid("campaign", false));
		seen = session_invalidations;
	}
	return session_cache;
}

/* SHA-256 of a token's UTF-8 bytes, as TOKEN_HASH() computes it in SQL. */
static void
token_hash(const char *token, uint8 *hash)
{
	char	   *utf8 = pg_server_to_any(token, strlen(token), PG_UTF8);
	pg_cryptohash_ctx *ctx = pg_cryptohash_create(PG_SHA256);

	if (pg_cryptohash_init(ctx) < 0 ||
		pg_cryptohash_update(ctx, (const uint8 *) utf8, strlen(utf8)) < 0 ||
		pg_cryptohash_final(ctx, hash, PG_SHA256_DIGEST_LENGTH) < 0)
		elog(ERROR, "could not compute a SHA-256 hash: %s",
			 pg_cryptohash_error(ctx));
	pg_cryptohash_free(ctx);
}

/*
 * The session of a token hash from campaign.soap_sessions, into *session;
 * false when there is none.  The session is cached unless an invalidation
 * came during the read (it may have been read before a change the
 * invalidation announced) or the transaction reads an older snapshot.
 */
static bool
read_session(SoapCall *call, const uint8 *hash, SessionEntry *session)
{
	uint64		invalidations = session_invalidations;
	bytea	   *key = palloc(VARHDRSZ + PG_SHA256_DIGEST_LENGTH);
	Datum		value = PointerGetDatum(key);
	HeapTuple	row;
	TupleDesc	desc;
	bytea	   *security;
	bool		isnull;

	SET_VARSIZE(key, VARHDRSZ + PG_SHA256_DIGEST_LENGTH);
	memcpy(VARDATA(key), hash, PG_SHA256_DIGEST_LENGTH);
	run(call, STMT_SESSION, &value, NULL, false);
	if (SPI_processed == 0)
		return false;
	row = SPI_tuptable->vals[0];
	desc = SPI_tuptable->tupdesc;
	memcpy(session->token_hash, hash, PG_SHA256_DIGEST_LENGTH);
	session->role = DatumGetObjectId(SPI_getbinval(row, desc, 1, &isnull));
	session->expires_at = DatumGetTimestampTz(SPI_getbinval(row, desc, 2, &isnull));
	security = DatumGetByteaPP(SPI_getbinval(row, desc, 3, &isnull));
	if (VARSIZE_ANY_EXHDR(security) != PG_SHA256_DIGEST_LENGTH)
		elog(ERROR, "campaign.soap_sessions holds a security hash of %d bytes",
			 (int) VARSIZE_ANY_EXHDR(security));
	memcpy(session->security_hash, VARDATA_ANY(security), PG_SHA256_DIGEST_LENGTH);

	if (invalidations == session_invalidations && !IsolationUsesXactSnapshot())
		*(SessionEntry *) hash_search(session_cache_get(), hash, HASH_ENTER, NULL) = *session;
	return true;
}

/*
 * Look up a session token: sets call->role, or fails as an invalid session
 * (unknown, expired, its role no longer able to log in, or a security token
 * given that does not match).
 */
static void
lookup_session(SoapCall *call, const char *token)
{
	uint8		hash[PG_SHA256_DIGEST_LENGTH];
	SessionEntry session;
	SessionEntry *cached;

	token_hash(token, hash);
	cached = hash_search(session_cache_get(), hash, HASH_FIND, NULL);
	if (cached != NULL)
		session = *cached;
	else if (!read_session(call, hash, &session))
		session_error("unknown session token");
	call->role = session.role;
	if (!role_can_login(call->role))
		session_error("unknown session token");
	if (session.expires_at <= GetCurrentTimestamp())
		session_error("session token has expired");
	if (call->security_token != NULL)
	{
		uint8		security[PG_SHA256_DIGEST_LENGTH];

		token_hash(call->security_token, security);
		if (memcmp(security, session.security_hash, PG_SHA256_DIGEST_LENGTH) != 0)
			session_error("security token does not match the session");
	}
}

/*
 * soap_sessions_changed() trigger, AFTER UPDATE OR DELETE (FOR EACH ROW)
 * and AFTER TRUNCATE on campaign.soap_sessions: every backend's session
 * cache is emptied when the change commits.
 */
Datum
soap_sessions_changed(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("soap_sessions_changed() is a trigger function")));
	CacheInvalidateRelcacheByRelid(RelationGetRelid(trigdata->tg_relation));
	return PointerGetDatum(NULL);
}

/* Check the session the call names; sets call->role. */
static void
check_session(SoapCall *call)
{
	char	   *token = text_param(call, 0);
	bool		from_cookie = false;

	if (call->security_token == NULL)
		call->security_token = call->header_security;
	if (token[0] == '\0' && (call->cookie_token != NULL || call->header_token != NULL))
	{
		token = call->cookie_token ? call->cookie_token : call->header_token;
		from_cookie = true;
	}
	if (token[0] == '\0')
		session_error("no session token");
	if (from_cookie && call->security_token == NULL)
		session_error("a session token passed as a cookie needs its security token");
	call->session_token = token;
	lookup_session(call, token);
}

/*
 * The role of a live session token, for the REST API's Bearer
 * authentication (http.c); fails as an invalid session.  The token is not
 * a cookie, so it needs no security token.
 */
Oid
campaign_soap_session_role(const char *token)
{
	SoapCall	call;

	memset(&call, 0, sizeof(call));
	SPI_connect();
	if (token[0] == '\0')
		session_error("no session token");
	lookup_session(&call, token);
	SPI_finish();
	return call.role;
}

/*
 * Check a login and password as password authentication does; returns the
 * role.  Unknown role and wrong password fail alike.  Each failure takes a
 * token of the API "logon_failure"; while it has none left, every Logon is
 * refused before its password is looked at (a rate-limit Fault), so that
 * passwords cannot be guessed quickly.  Also the REST API's Basic
 * authentication (http.c).
 */
Oid
campaign_check_login(const char *login, const char *password)
{
	Oid			roleid = InvalidOid;
	bool		canlogin = false;
	char	   *shadow = NULL;
	const char *logdetail = NULL;

	campaign_throttle_check(CAMPAIGN_API_LOGON_FAILURE);
	if (strlen(login) < NAMEDATALEN)
	{
		HeapTuple	tuple = SearchSysCache1(AUTHNAME, CStringGetDatum(login));

		if (HeapTupleIsValid(tuple))
		{
			Form_pg_authid form = (Form_pg_authid) GETSTRUCT(tuple);

			roleid = form->oid;
			canlogin = form->rolcanlogin;
			ReleaseSysCache(tuple);
		}
	}
	if (OidIsValid(roleid))
		shadow = get_role_password(login, &logdetail);
	if (shadow == NULL || password[0] == '\0' ||
		plain_crypt_verify(login, shadow, password, &logdetail) != STATUS_OK)
	{
		campaign_throttle_spend(CAMPAIGN_API_LOGON_FAILURE);
		ereport(LOG,
				(errmsg("campaign: SOAP logon failed for login \"%s\"",
						campaign_shorten(login)),
				 logdetail ? errdetail_log("%s", logdetail) : 0));
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PASSWORD),
				 errmsg("password authentication failed for login \"%s\"",
						campaign_shorten(login))));
	}
	if (!canlogin)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION),
				 errmsg("role \"%s\" is not permitted to log in", login)));
	if (superuser_arg(roleid))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION),
				 errmsg("superuser \"%s\" cannot log on through SOAP", login),
				 errhint("Log on as a role granted campaign_ingest.")));
	return roleid;
}

/* A random session token as Campaign's: "___" and a version 4 UUID. */
static char *
new_session_token(void)
{
	unsigned char b[16];

	if (!pg_strong_random(b, sizeof(b)))
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not generate random values")));
	b[6] = (b[6] & 0x0f) | 0x40;
	b[8] = (b[8] & 0x3f) | 0x80;
	return psprintf("___%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
					b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7],
					b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]);
}

/* A random security token: "@" and base64 of random bytes. */
static char *
new_security_token(void)
{
	char		b[SECURITY_TOKEN_BYTES];
	int			enclen = pg_b64_enc_len(sizeof(b));
	char	   *token = palloc(enclen + 2);
	int			len;

	if (!pg_strong_random(b, sizeof(b)))
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not generate random values")));
	token[0] = '@';
	len = pg_b64_encode(b, sizeof(b), token + 1, enclen);
	if (len < 0)
		elog(ERROR, "could not encode the security token");
	token[len + 1] = '\0';
	return token;
}

/* Append a string return value: <name xsi:type="xsd:string">value</name>. */
static void
out_string(SoapCall *call, const char *name, const char *value)
{
	if (value == NULL || value[0] == '\0')
		appendStringInfo(&call->out, "        <%s xsi:type=\"xsd:string\"/>\n", name);
	else
		appendStringInfo(&call->out, "        <%s xsi:type=\"xsd:string\">%s</%s>\n",
						 name, escape_xml(value), name);
}

/*
 * pSessionInfo of LogonResponse: the server and the user, with the
 * attributes Adobe's SDK reads (application.js): the server's version as
 * majNumber.minNumber.servicePack (the extension's) and buildNumber (the
 * PostgreSQL server's version number), the login and its rights.
 */
static void
out_session_info(SoapCall *call, const char *login, Oid roleid)
{
	static const char *const rights[] = {
		"campaign_admin", "campaign_ingest", "campaign_sql_function"
	};
	int			major = 0;
	int			minor = 0;
	int			i;

	if (sscanf(CAMPAIGN_VERSION, "%d.%d", &major, &minor) != 2)
		elog(ERROR, "malformed extension version \"%s\"", CAMPAIGN_VERSION);
	appendStringInfo(&call->out,
					 "        <pSessionInfo xsi:type=\"ns:Element\" SOAP-ENV:encodingStyle=\"%s\">\n"
					 "            <sessionInfo>\n"
					 "                <serverInfo instanceName=\"%s\" sessionTimeOut=\"%d\""
					 " majNumber=\"%d\" minNumber=\"%d\" servicePack=\"0\" buildNumber=\"%d\"/>\n"
					 "                <userInfo login=\"%s\" loginCS=\"%s\" loginId=\"%u\" timezone=\"%s\">\n",
					 SOAP_LITERALXML,
					 escape_xml(get_database_name(MyDatabaseId)),
					 campaign_session_timeout,
					 major, minor, PG_VERSION_NUM,
					 escape_xml(login), escape_xml(login), roleid,
					 escape_xml(pg_get_timezone_name(session_timezone)));
	for (i = 0; i < lengthof(rights); i++)
	{
		Oid			right = get_role_oid(rights[i], true);

		if (OidIsValid(right) && has_privs_of_role(roleid, right))
			appendStringInfo(&call->out,
							 "                    <login-right right=\"%s\"/>\n",
							 rights[i]);
	}
	appendStringInfoString(&call->out,
						   "                </userInfo>\n"
						   "            </sessionInfo>\n"
						   "        </pSessionInfo>\n");
}

/* xtk:session#Logon(sessiontoken, login, password, parameters) */
static void
soap_logon(SoapCall *call)
{
	char	   *login = text_param(call, 1);
	char	   *password = text_param(call, 2);
	Oid			roleid = campaign_check_login(login, password);
	char	   *token = new_session_token();
	char	   *security = new_security_token();
	Datum		values[4];

	values[0] = CStringGetTextDatum(token);
	values[1] = CStringGetTextDatum(security);
	values[2] = ObjectIdGetDatum(roleid);
	values[3] = Float8GetDatum((double) campaign_session_timeout);
	run(call, STMT_LOGON, values, NULL, false);

	out_string(call, "pstrSessionToken", token);
	out_session_info(call, login, roleid);
	out_string(call, "pstrSecurityToken", security);
}

/* xtk:session#Logoff(sessiontoken) */
static void
soap_logoff(SoapCall *call)
{
	Datum		value = CStringGetTextDatum(call->session_token);

	run(call, STMT_LOGOFF, &value, NULL, false);
}

/*
 * Stage the document of parameter i as campaign.xtk_ingest(text) (ext:
 * xtk_ingest_ext(text)) would if the session's role called it: the role
 * needs EXECUTE on that function, the call takes a token of that
 * function's API, and runs as the role.  When libxml2 reported nothing on
 * the envelope, the element parsed with it is staged as it is; else (a
 * namespace flaw, which the envelope's parse ignores and ingest's does
 * not) it is serialized and parsed again as ingest parses its argument.
 * If staging fails, the subtransaction of the call is aborted, which also
 * restores the user.
 */
static text *
ingest_param(SoapCall *call, int i, bool ext)
{
	const char *function = ext ? "xtk_ingest_ext" : "xtk_ingest";
	xmlNodePtr	elem = document_element(call, i);
	Oid			argtypes[1] = {TEXTOID};
	Oid			funcid;
	AclResult	aclresult;
	Oid			save_userid;
	int			save_sec_context;
	text	   *result;

	funcid = LookupFuncName(list_make2(makeString("campaign"), makeString((char *) function)),
							1, argtypes, false);
	aclresult = pg_proc_aclcheck(funcid, call->role, ACL_EXECUTE);
	if (aclresult != ACLCHECK_OK)
		aclcheck_error(aclresult, OBJECT_FUNCTION, function);

	GetUserIdAndSecContext(&save_userid, &save_sec_context);
	SetUserIdAndSecContext(call->role,
						   save_sec_context | SECURITY_LOCAL_USERID_CHANGE);
	campaign_throttle(ext ? CAMPAIGN_API_XTK_INGEST_EXT : CAMPAIGN_API_XTK_INGEST);
	if (call->envelope_flawless)
		result = ingest_element(elem, ext);
	else
		result = ingest_document(cstring_to_text(document_param(call, i)), ext);
	SetUserIdAndSecContext(save_userid, save_sec_context);
	return result;
}

/* xtk:session#Ingest(sessiontoken, domDoc) */
static void
soap_ingest(SoapCall *call)
{
	out_string(call, "pstrSUuids", text_to_cstring(ingest_param(call, 1, false)));
}

/* xtk:session#IngestExt(sessiontoken, domDoc) */
static void
soap_ingest_ext(SoapCall *call)
{
	ingest_param(call, 1, true);
}

/*
 * The schemas of the services themselves, in Campaign's shape: what Adobe's
 * SDK reads to find a method's namespace (an <interface> of the schema, or
 * its <methods>), whether it is static, and its parameters in order.
 */
static const char *const xtk_session_schema =
"<schema xmlns=\"" NS_XTK_SCHEMA "\" namespace=\"xtk\" name=\"session\" implements=\"xtk:persist\""
" label=\"Session\" xtkschema=\"xtk:schema\">"
"<interface name=\"persist\">"
"<method name=\"GetEntityIfMoreRecent\" static=\"true\"><parameters>"
"<param name=\"pk\" type=\"string\"/><param name=\"md5\" type=\"string\"/>"
"<param name=\"mustExist\" type=\"boolean\"/>"
"<param name=\"doc\" type=\"DOMDocument\" inout=\"out\"/></parameters></method>"
"<method name=\"Ingest\" static=\"true\"><parameters>"
"<param name=\"domDoc\" type=\"DOMDocument\"/>"
"<param name=\"strSUuids\" type=\"string\" inout=\"out\"/></parameters></method>"
"<method name=\"IngestExt\" static=\"true\"><parameters>"
"<param name=\"domDoc\" type=\"DOMDocument\"/></parameters></method>"
"</interface>"
"<methods>"
"<method name=\"Logon\" static=\"true\"><parameters>"
"<param name=\"strLogin\" type=\"string\"/><param name=\"strPassword\" type=\"string\"/>"
"<param name=\"elemParameters\" type=\"DOMElement\"/>"
"<param name=\"strSessionToken\" type=\"string\" inout=\"out\"/>"
"<param name=\"sessionInfo\" type=\"DOMDocument\" inout=\"out\"/>"
"<param name=\"strSecurityToken\" type=\"string\" inout=\"out\"/></parameters></method>"
"<method name=\"Logoff\" static=\"true\"/>"
"</methods>"
"</schema>";

static const char *const nms_subscription_schema =
"<schema xmlns=\"" NS_XTK_SCHEMA "\" namespace=\"nms\" name=\"subscription\" label=\"Subscriptions\""
" xtkschema=\"xtk:schema\">"
"<methods>"
"<method name=\"Subscribe\" static=\"true\"><parameters>"
"<param name=\"serviceName\" type=\"string\"/>"
"<param name=\"recipient\" type=\"DOMElement\"/>"
"<param name=\"create\" type=\"boolean\"/></parameters></method>"
"<method name=\"Unsubscribe\" static=\"true\"><parameters>"
"<param name=\"serviceName\" type=\"string\"/>"
"<param name=\"recipient\" type=\"DOMElement\"/></parameters></method>"
"</methods>"
"</schema>";

/*
 * xtk:persist#GetEntityIfMoreRecent(sessiontoken, pk, md5, mustExist)
 *		The entity "xtk:schema|namespace:name": xtk:session, nms:subscription
 *		or a registered schema the session's role may see (one it feeds;
 *		every one for campaign_admin).  The md5 is ignored: the entity is
 *		always sent.  An unknown or hidden schema gives an empty document,
 *		or a Fault when mustExist is true.
 */
static void
soap_get_entity(SoapCall *call)
{
	char	   *pk = text_param(call, 1);
	char	   *must_text = text_param(call, 3);
	bool		must_exist = false;
	char	   *bar = strchr(pk, '|');
	char	   *id;
	char	   *colon;
	const char *doc = NULL;

	if (must_text[0] != '\0' && !parse_bool(must_text, &must_exist))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
				 errmsg("parameter 4 of method \"GetEntityIfMoreRecent\" must be a boolean, not \"%s\"",
						campaign_shorten(must_text))));
	if (bar == NULL || bar - pk != strlen(ENTITY_SCHEMA) ||
		strncmp(pk, ENTITY_SCHEMA, bar - pk) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("entity \"%s\" is not served", campaign_shorten(pk)),
				 errhint("Ask for a schema: \"%s|namespace:name\".", ENTITY_SCHEMA)));
	id = bar + 1;
	colon = strchr(id, ':');

	if (strcmp(id, "xtk:session") == 0)
		doc = xtk_session_schema;
	else if (strcmp(id, "nms:subscription") == 0)
		doc = nms_subscription_schema;
	else if (colon != NULL)
	{
		Datum		values[3];

		values[0] = CStringGetTextDatum(pnstrdup(id, colon - id));
		values[1] = CStringGetTextDatum(colon + 1);
		values[2] = ObjectIdGetDatum(call->role);
		doc = run(call, STMT_SCHEMA_DOCUMENT, values, NULL, false);
	}
	if (doc == NULL && must_exist)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("schema \"%s\" does not exist", campaign_shorten(id))));

	if (doc == NULL)
		appendStringInfo(&call->out,
						 "        <pdomDoc xsi:type=\"ns:Document\" SOAP-ENV:encodingStyle=\"%s\"/>\n",
						 SOAP_LITERALXML);
	else
		appendStringInfo(&call->out,
						 "        <pdomDoc xsi:type=\"ns:Document\" SOAP-ENV:encodingStyle=\"%s\">%s</pdomDoc>\n",
						 SOAP_LITERALXML, doc);
}

/* nms:subscription#Subscribe(sessiontoken, serviceName, recipient, create) */
static void
soap_subscribe(SoapCall *call)
{
	char	   *create_text = text_param(call, 3);
	bool		create = false;
	Datum		values[3];

	if (create_text[0] != '\0' && !parse_bool(create_text, &create))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
				 errmsg("parameter 4 of method \"Subscribe\" must be a boolean, not \"%s\"",
						campaign_shorten(create_text))));
	values[0] = CStringGetTextDatum(text_param(call, 1));
	values[1] = CStringGetTextDatum(document_param(call, 2));
	values[2] = BoolGetDatum(create);
	run(call, STMT_SUBSCRIBE, values, NULL, true);
}

/* nms:subscription#Unsubscribe(sessiontoken, serviceName, recipient) */
static void
soap_unsubscribe(SoapCall *call)
{
	Datum		values[2];

	values[0] = CStringGetTextDatum(text_param(call, 1));
	values[1] = CStringGetTextDatum(document_param(call, 2));
	run(call, STMT_UNSUBSCRIBE, values, NULL, true);
}

static void
envelope_begin(StringInfo buf, const char *ns)
{
	appendStringInfo(buf,
					 "<SOAP-ENV:Envelope xmlns:xsd=\"http://www.w3.org/2001/XMLSchema\" "
					 "xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" "
					 "xmlns:ns=\"%s\" xmlns:SOAP-ENV=\"%s\">\n"
					 "<SOAP-ENV:Body>\n", ns, SOAP_ENV_NS);
}

static void
envelope_end(StringInfo buf)
{
	appendStringInfoString(buf, "</SOAP-ENV:Body>\n</SOAP-ENV:Envelope>");
}

/* The response envelope of a call that succeeded. */
static char *
response(SoapCall *call)
{
	const SoapMethod *m = call->method;
	StringInfoData buf;

	initStringInfo(&buf);
	envelope_begin(&buf, m->response_ns);
	appendStringInfo(&buf, "    <%sResponse SOAP-ENV:encodingStyle=\"%s\" xmlns=\"%s\"",
					 m->name, SOAP_ENCODING, m->response_ns);
	if (call->out.len == 0)
		appendStringInfoString(&buf, "/>\n");
	else
		appendStringInfo(&buf, ">\n%s    </%sResponse>\n", call->out.data, m->name);
	envelope_end(&buf);
	return buf.data;
}

/*
 * The Fault envelope of a call that failed.  The detail is the error as
 * psql shows it: SQLSTATE and message, then detail, hint and the context
 * lines that say where in the document (not those naming SQL statements
 * and functions, which are ours).
 */
static char *
fault(SoapCall *call, ErrorData *edata)
{
	const char *code = call->faultcode;
	char		sqlstate[6];
	StringInfoData detail;
	StringInfoData buf;

	if (code == NULL && edata->sqlerrcode == ERRCODE_CAMPAIGN_RATE_LIMIT)
		code = FAULT_THROTTLED;
	if (code == NULL)
	{
		/* The server's own troubles; anything else is the request's. */
		switch (ERRCODE_TO_CATEGORY(edata->sqlerrcode))
		{
			case ERRCODE_CONNECTION_EXCEPTION:
			case ERRCODE_INVALID_TRANSACTION_STATE:
			case ERRCODE_TRANSACTION_ROLLBACK:
			case ERRCODE_INSUFFICIENT_RESOURCES:
			case ERRCODE_PROGRAM_LIMIT_EXCEEDED:
			case ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE:
			case ERRCODE_OPERATOR_INTERVENTION:
			case ERRCODE_SYSTEM_ERROR:
			case ERRCODE_CONFIG_FILE_ERROR:
			case ERRCODE_FDW_ERROR:
			case ERRCODE_INTERNAL_ERROR:
				code = FAULT_SERVER;
				break;
			default:
				code = FAULT_CLIENT;
		}
	}

	strlcpy(sqlstate, unpack_sql_state(edata->sqlerrcode), sizeof(sqlstate));
	initStringInfo(&detail);
	appendStringInfo(&detail, "%s: %s", sqlstate, edata->message);
	if (edata->detail)
		appendStringInfo(&detail, "\n%s", edata->detail);
	if (edata->hint)
		appendStringInfo(&detail, "\n%s", edata->hint);
	if (edata->context)
	{
		char	   *line;
		char	   *save = NULL;

		for (line = strtok_r(edata->context, "\n", &save); line;
			 line = strtok_r(NULL, "\n", &save))
			if (strncmp(line, "SQL statement ", 14) != 0 &&
				strncmp(line, "SQL function ", 13) != 0 &&
				strncmp(line, "PL/pgSQL function ", 18) != 0)
				appendStringInfo(&detail, "\n%s", line);
	}

	initStringInfo(&buf);
	envelope_begin(&buf, call->method ? call->method->response_ns : NS_WPP_DEFAULT);
	appendStringInfo(&buf,
					 "    <SOAP-ENV:Fault>\n"
					 "        <faultcode>%s</faultcode>\n", code);
	if (call->method)
		appendStringInfo(&buf,
						 "        <faultstring xsi:type=\"xsd:string\">Error while executing the method '%s' of service '%s'.</faultstring>\n",
						 call->method->name, service_name(call->method->urn));
	else
		appendStringInfo(&buf,
						 "        <faultstring xsi:type=\"xsd:string\">%s</faultstring>\n",
						 escape_xml(edata->message));
	appendStringInfo(&buf,
					 "        <detail xsi:type=\"xsd:string\">%s</detail>\n"
					 "    </SOAP-ENV:Fault>\n", escape_xml(detail.data));
	envelope_end(&buf);
	return buf.data;
}

/* Run the method call of the parsed envelope. */
static void
run_call(xmlDocPtr doc, void *arg)
{
	SoapCall   *call = (SoapCall *) arg;

	call->envelope_flawless = campaign_parse_flawless;
	find_method(call, xmlDocGetRootElement(doc));
	if (call->method->needs_session)
		check_session(call);
	call->method->handler(call);
}

/* Parse the envelope and run its method; returns the response envelope. */
static char *
process(SoapCall *call, text *envelope)
{
	campaign_throttle(CAMPAIGN_API_SOAP);
	campaign_with_document(envelope, SOAP_WHAT, PG_XML_STRICTNESS_WELLFORMED,
						   run_call, call);
	return response(call);
}

/*
 * Run the method call of a SOAP 1.1 envelope; returns the response
 * envelope, or a Fault envelope (then outcome->fault is set, and
 * outcome->throttled for a rate limit, with outcome->retry_after in
 * seconds), allocated in the caller's memory context.  The session and
 * security tokens are those of an HTTP gateway (cookie, headers), or NULL.
 * Used by campaign.soap() and by the HTTP workers (http.c).
 */
char *
campaign_soap_call(text *envelope, const char *session_token,
				   const char *security_token, SoapOutcome *outcome)
{
	MemoryContext caller_cxt = CurrentMemoryContext;
	ResourceOwner owner = CurrentResourceOwner;
	ErrorContextCallback *save_context = error_context_stack;
	MemoryContext spi_cxt;
	SoapCall	call;
	char	   *result;

	memset(outcome, 0, sizeof(SoapOutcome));
	memset(&call, 0, sizeof(call));
	call.cookie_token = session_token && session_token[0] ? pstrdup(session_token) : NULL;
	call.security_token = security_token && security_token[0] ? pstrdup(security_token) : NULL;

	SPI_connect();
	spi_cxt = CurrentMemoryContext;
	initStringInfo(&call.out);

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(spi_cxt);
	PG_TRY();
	{
		/* Errors carry no context of soap()'s caller; PG_CATCH restores it. */
		error_context_stack = NULL;
		result = process(&call, envelope);
		error_context_stack = save_context;
		ReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(spi_cxt);
		CurrentResourceOwner = owner;
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(spi_cxt);
		edata = CopyErrorData();
		if (edata->sqlerrcode == ERRCODE_QUERY_CANCELED)
			PG_RE_THROW();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(spi_cxt);
		CurrentResourceOwner = owner;
		result = fault(&call, edata);
		outcome->fault = true;
		if (edata->sqlerrcode == ERRCODE_CAMPAIGN_RATE_LIMIT)
		{
			outcome->throttled = true;
			outcome->retry_after = campaign_throttle_retry_after;
		}
	}
	PG_END_TRY();

	MemoryContextSwitchTo(caller_cxt);
	result = pstrdup(result);
	SPI_finish();
	return result;
}

/*
 * campaign.soap(envelope text, session_token text DEFAULT NULL,
 *				 security_token text DEFAULT NULL) returns text
 *		Run the method call of a SOAP 1.1 envelope; returns the response
 *		envelope, or a Fault envelope.
 */
Datum
soap(PG_FUNCTION_ARGS)
{
	SoapOutcome outcome;

	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	PG_RETURN_TEXT_P(cstring_to_text(campaign_soap_call(PG_GETARG_TEXT_PP(0),
														PG_ARGISNULL(1) ? NULL :
														text_to_cstring(PG_GETARG_TEXT_PP(1)),
														PG_ARGISNULL(2) ? NULL :
														text_to_cstring(PG_GETARG_TEXT_PP(2)),
														&outcome)));
}
