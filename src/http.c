/*-------------------------------------------------------------------------
 *
 * http.c
 *	  The HTTP endpoint (SPEC §11): background workers that serve Campaign's
 *	  SOAP router and the REST data-ingestion API, with libmicrohttpd.
 *
 * At preload, when campaign.http_port is not 0, the postmaster opens the
 * listening sockets (every address of campaign.http_listen_addresses; the
 * server does not start when none can be opened, as with its own port) and
 * registers campaign.http_workers workers.  Each worker is a backend
 * connected to the first database of campaign.database as the bootstrap superuser; it inherits the
 * listening sockets from the postmaster.  A keep-alive connection stays
 * with the worker that accepted it, and a worker serves one request at a
 * time, so connections must spread evenly over the workers: each worker
 * counts its open connections in shared memory (HttpShared), and only a
 * worker with no more connections than any other running worker waits on
 * the listening sockets and accepts (one connection per wake-up; when
 * several may, the first to call accept() wins, the others get EAGAIN).
 * The others look again every few milliseconds.  A worker that dies is
 * restarted by the postmaster; the sockets, held by the postmaster, stay
 * open meanwhile, and the other workers go on accepting.
 *
 * Threads: none.  libmicrohttpd runs in "external epoll" mode without a
 * listening socket of its own (the worker hands it each accepted
 * connection): it exposes one epoll descriptor, which the worker waits on
 * together with the listening sockets, its latch and the postmaster's death
 * (one WaitEventSet built once), then calls MHD_run(), which reads, parses
 * and calls the access handler, all on the backend's only thread.  So the
 * handlers run PostgreSQL code (SPI, transactions) as any backend does, and
 * a SIGTERM (die) or SIGHUP is seen between two requests or inside one
 * (CHECK_FOR_INTERRUPTS in SPI).
 *
 * libmicrohttpd does all HTTP parsing: request line, headers, chunked
 * bodies, cookies, percent-decoding, Basic authentication, keep-alive, TLS
 * (GnuTLS, when campaign.http_ssl_cert_file and campaign.http_ssl_key_file
 * are set) and idle or slow connections (campaign.http_timeout).  The body
 * is collected in the request's memory context up to campaign.http_max_body
 * bytes; a larger declared Content-Length is refused with 413 before the
 * body is read; a larger chunked body is read to its end and dropped, then
 * refused with 413 (libmicrohttpd queues no response mid-body), or the
 * connection is closed once it has sent twice the limit.
 *
 * Each request runs in its own transaction:
 *	  POST /nl/jsp/soaprouter.jsp: campaign_soap_call() (soap.c) with the
 *		body, the __sessiontoken cookie or X-Session-Token header, and the
 *		X-Security-Token header.  Faults come back with HTTP 200, which is
 *		what Adobe's SDK parses (it reports any other status by its reason
 *		phrase only); a rate limit with 429 and Retry-After.
 *	  POST / GET /{organization}/campaign/dataIngestion/xdmIngestion/
 *		{mapping}/ingest: campaign.ingestion_request() / ingestion_status()
 *		as the role of the Authorization (Bearer <session token>, or Basic
 *		with a role's password, checked as Logon does), their JSON as the
 *		body.
 * Calls run as the session's role (soap.c switches to it for the method;
 * the REST functions run with it as the session user), so they have
 * exactly that role's rights.  An error that escapes a handler aborts the
 * transaction and becomes an HTTP error; it never leaves the libmicrohttpd
 * callback by longjmp, which would corrupt the library's state.
 *
 *-------------------------------------------------------------------------
 */
#include "campaign.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/shmem.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/json.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/varlena.h"
#include "utils/wait_event.h"

#include <math.h>
#include <netdb.h>
#include <sys/socket.h>
#include <microhttpd.h>

PGDLLEXPORT void campaign_http_main(Datum main_arg) pg_attribute_noreturn();

static int	campaign_http_port = 0;
static char *campaign_http_listen_addresses = NULL;
static int	campaign_http_workers = 2;
static int	campaign_http_max_body = 65536; /* kB */
static int	campaign_http_timeout = 60; /* s */
static char *campaign_http_ssl_cert_file = NULL;
static char *campaign_http_ssl_key_file = NULL;

#define SOAP_ROUTER_PATH "/nl/jsp/soaprouter.jsp"

/* Most listening sockets (addresses the names resolve to). */
#define MAX_LISTEN_SOCKETS 16

/* Connections waiting to be accepted on each listening socket. */
#define LISTEN_BACKLOG 128

#define CONTENT_XML "text/xml; charset=utf-8"
#define CONTENT_JSON "application/json; charset=utf-8"

/* What a request goes to. */
typedef enum HttpRoute
{
	ROUTE_SOAP,
	ROUTE_INGESTION
} HttpRoute;

/* One request, from its headers to its completion. */
typedef struct HttpRequest
{
	MemoryContext cxt;			/* everything of the request */
	HttpRoute	route;
	char	   *mapping;		/* ROUTE_INGESTION: the mapping of the path */
	StringInfoData body;
	uint64		received;		/* body bytes received, kept or not */
	bool		too_large;
} HttpRequest;

/* The response a handler builds. */
typedef struct HttpResponse
{
	unsigned int status;
	const char *content_type;
	StringInfoData body;		/* in the server encoding */
	int			retry_after;	/* seconds; 0: no Retry-After */
	bool		authenticate;	/* add WWW-Authenticate */
	const char *allow;			/* add Allow (405) */
} HttpResponse;

/* Most HTTP workers (campaign.http_workers). */
#define MAX_HTTP_WORKERS 64

/* How often a worker that lets others accept looks again, in ms. */
#define DECLINE_RECHECK_MS 5

/* A slot of a worker that is not running. */
#define NOT_RUNNING PG_UINT32_MAX

/* Open connections of each worker, by worker number - 1. */
typedef struct HttpShared
{
	pg_atomic_uint32 connections[MAX_HTTP_WORKERS];
} HttpShared;

static HttpShared *http_shared = NULL;
static int	my_slot = -1;

/* Opened by the postmaster, inherited by the workers. */
static int	listen_fds[MAX_LISTEN_SOCKETS];
static int	nlisten = 0;

static struct MHD_Daemon *http_daemon = NULL;

static void
define_string(const char *name, const char *desc, char **var, const char *def)
{
	DefineCustomStringVariable(name, desc, NULL, var, def, PGC_POSTMASTER, 0,
							   NULL, NULL, NULL);
}

/* Called by campaign.c's define_gucs(), before the prefix is reserved. */
void
campaign_http_define_gucs(void)
{
	DefineCustomIntVariable("campaign.http_port",
							"TCP port of the HTTP endpoint; 0 turns it off.",
							NULL, &campaign_http_port, 0, 0, 65535,
							PGC_POSTMASTER, 0, NULL, NULL, NULL);
	define_string("campaign.http_listen_addresses",
				  "Comma-separated host names or addresses the HTTP endpoint listens on; * for all.",
				  &campaign_http_listen_addresses, "localhost");
	DefineCustomIntVariable("campaign.http_workers",
							"Number of HTTP workers sharing the port.",
							NULL, &campaign_http_workers, 2, 1, MAX_HTTP_WORKERS,
							PGC_POSTMASTER, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("campaign.http_max_body",
							"Largest HTTP request body accepted.",
							NULL, &campaign_http_max_body, 65536, 1,
							(MaxAllocSize - VARHDRSZ - 1) / 1024,
							PGC_SIGHUP, GUC_UNIT_KB, NULL, NULL, NULL);
	DefineCustomIntVariable("campaign.http_timeout",
							"Seconds an HTTP connection may stay idle or send nothing.",
							NULL, &campaign_http_timeout, 60, 1, 3600,
							PGC_POSTMASTER, GUC_UNIT_S, NULL, NULL, NULL);
	define_string("campaign.http_ssl_cert_file",
				  "PEM certificate (chain) of the HTTP endpoint; with the key, HTTPS.",
				  &campaign_http_ssl_cert_file, "");
	define_string("campaign.http_ssl_key_file",
				  "PEM private key of the HTTP endpoint's certificate.",
				  &campaign_http_ssl_key_file, "");
}

static void open_listen_sockets(void);
static void connection_notify(void *cls, struct MHD_Connection *conn,
							  void **socket_context,
							  enum MHD_ConnectionNotificationCode toe);

Size
campaign_http_shmem_size(void)
{
	return sizeof(HttpShared);
}

/* Called by campaign.c's shmem startup hook, under AddinShmemInitLock. */
void
campaign_http_shmem_init(void)
{
	bool		found;
	int			i;

	http_shared = ShmemInitStruct("campaign http", sizeof(HttpShared), &found);
	if (!found)
		for (i = 0; i < MAX_HTTP_WORKERS; i++)
			pg_atomic_init_u32(&http_shared->connections[i], NOT_RUNNING);
}

/*
 * Called by _PG_init at preload, in the postmaster: open the listening
 * sockets and register one background worker per HTTP worker.
 */
void
campaign_http_register_workers(void)
{
	BackgroundWorker worker;
	int			i;

	if (campaign_http_port == 0)
		return;
	open_listen_sockets();
	for (i = 0; i < campaign_http_workers; i++)
	{
		memset(&worker, 0, sizeof(worker));
		worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
		worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
		worker.bgw_restart_time = 1;
		strcpy(worker.bgw_library_name, "campaign");
		strcpy(worker.bgw_function_name, "campaign_http_main");
		snprintf(worker.bgw_name, BGW_MAXLEN, "campaign http worker %d", i + 1);
		strcpy(worker.bgw_type, "campaign http worker");
		worker.bgw_main_arg = Int32GetDatum(i + 1);
		RegisterBackgroundWorker(&worker);
	}
}

/*
 * Responses
 */

static void
response_init(HttpResponse *res, unsigned int status, const char *content_type)
{
	memset(res, 0, sizeof(HttpResponse));
	res->status = status;
	res->content_type = content_type;
	initStringInfo(&res->body);
}

/* A JSON error body: {"code": status, "message": ..., "sqlstate": ...}. */
static void
response_error(HttpResponse *res, unsigned int status, const char *message,
			   const char *sqlstate)
{
	response_init(res, status, CONTENT_JSON);
	appendStringInfo(&res->body, "{\"code\": %u, \"message\": ", status);
	escape_json(&res->body, message);
	if (sqlstate)
	{
		appendStringInfoString(&res->body, ", \"sqlstate\": ");
		escape_json(&res->body, sqlstate);
	}
	appendStringInfoString(&res->body, "}");
}

/* Hand the response to libmicrohttpd, as UTF-8. */
static enum MHD_Result
send_response(struct MHD_Connection *conn, HttpResponse *res)
{
	char	   *utf8 = pg_server_to_any(res->body.data, res->body.len, PG_UTF8);
	struct MHD_Response *response;
	enum MHD_Result ret;

	response = MHD_create_response_from_buffer(strlen(utf8), utf8,
											   MHD_RESPMEM_MUST_COPY);
	if (response == NULL)
		return MHD_NO;
	MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE, res->content_type);
	if (res->retry_after > 0)
	{
		char		seconds[16];

		snprintf(seconds, sizeof(seconds), "%d", res->retry_after);
		MHD_add_response_header(response, MHD_HTTP_HEADER_RETRY_AFTER, seconds);
	}
	if (res->authenticate)
		MHD_add_response_header(response, MHD_HTTP_HEADER_WWW_AUTHENTICATE,
								"Basic realm=\"campaign\", Bearer realm=\"campaign\"");
	if (res->allow)
		MHD_add_response_header(response, MHD_HTTP_HEADER_ALLOW, res->allow);
	ret = MHD_queue_response(conn, res->status, response);
	MHD_destroy_response(response);
	return ret;
}

/* Seconds for Retry-After: the wait rounded up, at least 1. */
static int
retry_after_seconds(double wait)
{
	return wait < 1.0 ? 1 : (int) Min(ceil(wait), 86400.0);
}

/*
 * Handlers; they run inside the request's transaction and may raise errors.
 */

/* The request body as text in the server encoding; invalid UTF-8 is an error. */
static text *
body_text(HttpRequest *req)
{
	char	   *server = pg_any_to_server(req->body.data, req->body.len, PG_UTF8);

	return cstring_to_text_with_len(server, server == req->body.data ?
									req->body.len : strlen(server));
}

/* POST /nl/jsp/soaprouter.jsp */
static void
handle_soap(struct MHD_Connection *conn, HttpRequest *req, HttpResponse *res)
{
	const char *session = MHD_lookup_connection_value(conn, MHD_COOKIE_KIND,
													  "__sessiontoken");
	const char *security = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
													   "X-Security-Token");
	SoapOutcome outcome;
	char	   *envelope;

	if (session == NULL || session[0] == '\0')
		session = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-Session-Token");
	envelope = campaign_soap_call(body_text(req), session, security, &outcome);

	response_init(res, outcome.throttled ? MHD_HTTP_TOO_MANY_REQUESTS : MHD_HTTP_OK,
				  CONTENT_XML);
	if (outcome.throttled)
		res->retry_after = retry_after_seconds(outcome.retry_after);
	appendStringInfoString(&res->body, envelope);
}

/*
 * The role of the request's Authorization: a session token from Logon
 * (Bearer) or a role's login and password (Basic).  InvalidOid when there
 * is none.
 */
static Oid
authorized_role(struct MHD_Connection *conn)
{
	const char *auth = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
												   MHD_HTTP_HEADER_AUTHORIZATION);
	char	   *password = NULL;
	char	   *user;

	if (auth != NULL && pg_strncasecmp(auth, "Bearer ", 7) == 0)
	{
		const char *token = auth + 7;

		while (*token == ' ')
			token++;
		return campaign_soap_session_role(token);
	}
	user = MHD_basic_auth_get_username_password(conn, &password);
	if (user != NULL)
	{
		char	   *login = pstrdup(user);
		char	   *secret = pstrdup(password ? password : "");

		MHD_free(user);
		if (password)
			MHD_free(password);
		return campaign_check_login(login, secret);
	}
	return InvalidOid;
}

/*
 * The request id of a status request: ?requestId=N, or the body as JSON,
 * {"requestId": N}, or as the documentation writes it, {"requestId"="N"}.
 */
static char *
status_request_id(struct MHD_Connection *conn, HttpRequest *req)
{
	const char *arg = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND,
												  "requestId");
	Datum		body;
	bool		isnull;
	int			ret;

	if (arg != NULL)
		return pstrdup(arg);
	body = PointerGetDatum(body_text(req));
	ret = SPI_execute_with_args("SELECT pg_catalog.substring($1, "
								"'^\\s*\\{\\s*\"requestId\"\\s*[:=]\\s*\"?([0-9]+)\"?\\s*\\}\\s*$')",
								1, (Oid[]) {TEXTOID}, &body, NULL, true, 1);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "SPI_execute_with_args failed: %s", SPI_result_code_string(ret));
	(void) SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	if (isnull)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("the status of an ingestion request needs its requestId"),
				 errhint("Send {\"requestId\": N} as the body, or ?requestId=N.")));
	return SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
}

/* POST / GET /{organization}/campaign/dataIngestion/xdmIngestion/{mapping}/ingest */
static void
handle_ingestion(struct MHD_Connection *conn, HttpRequest *req, bool post,
				 HttpResponse *res)
{
	Oid			role = authorized_role(conn);
	Oid			save_userid;
	int			save_sec_context;
	Datum		values[2];
	int			ret;

	if (!OidIsValid(role))
	{
		response_error(res, MHD_HTTP_UNAUTHORIZED,
					   "authentication needed: Authorization: Bearer <session token> or Basic", NULL);
		res->authenticate = true;
		return;
	}

	SPI_connect();
	values[0] = CStringGetTextDatum(req->mapping);
	if (!post)
		values[1] = DirectFunctionCall1(int8in,
										CStringGetDatum(status_request_id(conn, req)));

	/*
	 * The role becomes the session user too, as if it had connected: the
	 * request records session_user as requested_by.
	 */
	GetUserIdAndSecContext(&save_userid, &save_sec_context);
	SetSessionAuthorization(role, false);
	PG_TRY();
	{
		if (post)
			ret = SPI_execute_with_args("SELECT campaign.ingestion_request($1)::text",
										1, (Oid[]) {TEXTOID}, values, NULL, false, 1);
		else
			ret = SPI_execute_with_args("SELECT campaign.ingestion_status($1, $2)::text",
										2, (Oid[]) {TEXTOID, INT8OID}, values, NULL, false, 1);
	}
	PG_FINALLY();
	{
		SetSessionAuthorization(GetAuthenticatedUserId(), true);
		SetUserIdAndSecContext(save_userid, save_sec_context);
	}
	PG_END_TRY();
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "SPI_execute_with_args failed: %s", SPI_result_code_string(ret));

	response_init(res, MHD_HTTP_OK, CONTENT_JSON);
	appendStringInfoString(&res->body,
						   SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1));
	SPI_finish();
}

/* The HTTP status of an error a handler raised. */
static unsigned int
error_status(int sqlerrcode)
{
	switch (sqlerrcode)
	{
		case ERRCODE_CAMPAIGN_RATE_LIMIT:
			return MHD_HTTP_TOO_MANY_REQUESTS;
		case ERRCODE_INVALID_PASSWORD:
		case ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION:
			return MHD_HTTP_UNAUTHORIZED;
		case ERRCODE_INSUFFICIENT_PRIVILEGE:
			return MHD_HTTP_FORBIDDEN;
		case ERRCODE_UNDEFINED_OBJECT:
			return MHD_HTTP_NOT_FOUND;
		case ERRCODE_PROGRAM_LIMIT_EXCEEDED:
			return MHD_HTTP_CONTENT_TOO_LARGE;
	}
	switch (ERRCODE_TO_CATEGORY(sqlerrcode))
	{
		case ERRCODE_DATA_EXCEPTION:
		case ERRCODE_SYNTAX_ERROR_OR_ACCESS_RULE_VIOLATION:
		case ERRCODE_CHARACTER_NOT_IN_REPERTOIRE:
			return MHD_HTTP_BAD_REQUEST;
	}
	if (sqlerrcode == ERRCODE_INVALID_PARAMETER_VALUE ||
		sqlerrcode == ERRCODE_INVALID_TEXT_REPRESENTATION ||
		sqlerrcode == ERRCODE_UNTRANSLATABLE_CHARACTER)
		return MHD_HTTP_BAD_REQUEST;
	return MHD_HTTP_INTERNAL_SERVER_ERROR;
}

/*
 * Run the request's handler in a transaction of its own.  An error rolls
 * the transaction back and becomes an HTTP error; it is logged when it is
 * the server's (5xx).
 */
static void
serve(struct MHD_Connection *conn, HttpRequest *req, const char *method,
	  const char *url, HttpResponse *res)
{
	MemoryContext cxt = CurrentMemoryContext;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	pgstat_report_activity(STATE_RUNNING, psprintf("%s %s", method, url));
	/* The response lives in the request's context, past the commit. */
	MemoryContextSwitchTo(cxt);
	PG_TRY();
	{
		if (req->route == ROUTE_SOAP)
			handle_soap(conn, req, res);
		else
			handle_ingestion(conn, req, strcmp(method, MHD_HTTP_METHOD_POST) == 0, res);
		MemoryContextSwitchTo(cxt);
		PopActiveSnapshot();
		CommitTransactionCommand();
	}
	PG_CATCH();
	{
		ErrorData  *edata;
		unsigned int status;

		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		if (edata->sqlerrcode == ERRCODE_QUERY_CANCELED ||
			edata->sqlerrcode == ERRCODE_ADMIN_SHUTDOWN)
			PG_RE_THROW();
		status = error_status(edata->sqlerrcode);
		if (status >= 500)
			EmitErrorReport();
		FlushErrorState();
		AbortCurrentTransaction();
		MemoryContextSwitchTo(cxt);
		response_error(res, status, edata->message, unpack_sql_state(edata->sqlerrcode));
		if (status == MHD_HTTP_TOO_MANY_REQUESTS)
			res->retry_after = retry_after_seconds(campaign_throttle_retry_after);
		if (status == MHD_HTTP_UNAUTHORIZED)
			res->authenticate = true;
	}
	PG_END_TRY();
	pgstat_report_activity(STATE_IDLE, NULL);
}

/*
 * Routing: which handler, or an error response for unknown paths (404) and
 * methods (405).  The path comes percent-decoded from libmicrohttpd.
 */
static bool
route(const char *url, const char *method, HttpRequest *req, HttpResponse *res)
{
	bool		post = strcmp(method, MHD_HTTP_METHOD_POST) == 0;
	bool		get = strcmp(method, MHD_HTTP_METHOD_GET) == 0;
	char	   *path = pstrdup(url);
	char	   *segments[8];
	int			n = 0;
	char	   *save = NULL;
	char	   *seg;

	if (strcmp(url, SOAP_ROUTER_PATH) == 0)
	{
		req->route = ROUTE_SOAP;
		if (post)
			return true;
		response_error(res, MHD_HTTP_METHOD_NOT_ALLOWED,
					   "the SOAP router takes POST requests", NULL);
		res->allow = "POST";
		return false;
	}

	/* "/{organization}/campaign/dataIngestion/xdmIngestion/{mapping}/ingest" */
	if (path[0] == '/' && path[1] != '/' && strstr(path, "//") == NULL)
		for (seg = strtok_r(path + 1, "/", &save); seg && n < lengthof(segments);
			 seg = strtok_r(NULL, "/", &save))
			segments[n++] = seg;
	if (n == 6 && strcmp(segments[1], "campaign") == 0 &&
		strcmp(segments[2], "dataIngestion") == 0 &&
		strcmp(segments[3], "xdmIngestion") == 0 &&
		strcmp(segments[5], "ingest") == 0 && url[strlen(url) - 1] != '/')
	{
		req->route = ROUTE_INGESTION;
		req->mapping = segments[4];
		if (post || get)
			return true;
		response_error(res, MHD_HTTP_METHOD_NOT_ALLOWED,
					   "the ingestion API takes POST and GET requests", NULL);
		res->allow = "GET, POST";
		return false;
	}
	response_error(res, MHD_HTTP_NOT_FOUND, psprintf("no such path: %s", url), NULL);
	return false;
}

/* Largest body accepted now, in bytes (campaign.http_max_body may be reloaded). */
static uint64
max_body(void)
{
	return (uint64) campaign_http_max_body * 1024;
}

/*
 * The access handler's work: on the first call (headers read) route the
 * request and check its declared length; then collect the body; on the
 * last call serve it.
 */
static enum MHD_Result
handle_request(struct MHD_Connection *conn, const char *url,
			   const char *method, const char *upload_data,
			   size_t *upload_data_size, void **con_cls)
{
	HttpRequest *req = *con_cls;
	HttpResponse res;

	if (req == NULL)
	{
		MemoryContext cxt = AllocSetContextCreate(TopMemoryContext,
												  "campaign http request",
												  ALLOCSET_DEFAULT_SIZES);
		const char *length;

		req = MemoryContextAllocZero(cxt, sizeof(HttpRequest));
		req->cxt = cxt;
		*con_cls = req;
		MemoryContextSwitchTo(cxt);
		initStringInfo(&req->body);
		if (!route(url, method, req, &res))
			return send_response(conn, &res);
		length = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
											 MHD_HTTP_HEADER_CONTENT_LENGTH);
		if (length != NULL && strtoull(length, NULL, 10) > max_body())
		{
			response_error(&res, MHD_HTTP_CONTENT_TOO_LARGE,
						   psprintf("request body of %s bytes is over campaign.http_max_body (%llu bytes)",
									length, (unsigned long long) max_body()), NULL);
			return send_response(conn, &res);
		}
		return MHD_YES;
	}

	MemoryContextSwitchTo(req->cxt);
	if (*upload_data_size > 0)
	{
		size_t		size = *upload_data_size;

		*upload_data_size = 0;
		req->received += size;
		if (req->received > max_body())
		{
			/*
			 * A response can only be queued once the body is read: the rest
			 * is read and dropped, up to as much again as the limit, beyond
			 * which the connection is closed.
			 */
			req->too_large = true;
			return req->received > 2 * max_body() ? MHD_NO : MHD_YES;
		}
		appendBinaryStringInfo(&req->body, upload_data, size);
		return MHD_YES;
	}
	if (req->too_large)
	{
		response_error(&res, MHD_HTTP_CONTENT_TOO_LARGE,
					   psprintf("request body is over campaign.http_max_body (%llu bytes)",
								(unsigned long long) max_body()), NULL);
		return send_response(conn, &res);
	}

	serve(conn, req, method, url, &res);
	return send_response(conn, &res);
}

/*
 * libmicrohttpd's access handler.  No error may leave it by longjmp: one
 * that escapes handle_request() (out of memory, say) is logged and answered
 * with 500.  FATAL errors (a terminate request) end the process as usual.
 */
static enum MHD_Result
access_handler(void *cls, struct MHD_Connection *conn, const char *url,
			   const char *method, const char *version,
			   const char *upload_data, size_t *upload_data_size,
			   void **con_cls)
{
	MemoryContext oldcxt = CurrentMemoryContext;
	enum MHD_Result ret;

	PG_TRY();
	{
		ret = handle_request(conn, url, method, upload_data, upload_data_size,
							 con_cls);
	}
	PG_CATCH();
	{
		HttpResponse res;

		EmitErrorReport();
		FlushErrorState();
		AbortCurrentTransaction();
		MemoryContextSwitchTo(TopMemoryContext);
		pgstat_report_activity(STATE_IDLE, NULL);
		response_error(&res, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal error", NULL);
		ret = send_response(conn, &res);
	}
	PG_END_TRY();
	MemoryContextSwitchTo(oldcxt);
	return ret;
}

/* libmicrohttpd's completion callback: free the request. */
static void
request_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
				  enum MHD_RequestTerminationCode toe)
{
	HttpRequest *req = *con_cls;

	if (req != NULL)
	{
		MemoryContextSwitchTo(TopMemoryContext);
		MemoryContextDelete(req->cxt);
		*con_cls = NULL;
	}
}

/* libmicrohttpd's own messages (a TLS handshake that failed, ...) go to the log. */
static void
log_mhd(void *cls, const char *fmt, va_list ap)
{
	char		message[1024];

	vsnprintf(message, sizeof(message), fmt, ap);
	message[strcspn(message, "\n")] = '\0';
	ereport(LOG, (errmsg_internal("campaign http: %s", message)));
}

/*
 * Startup
 */

/* A whole file, NUL-terminated, for the TLS certificate and key. */
static char *
read_pem(const char *path, const char *what)
{
	FILE	   *f = AllocateFile(path, "r");
	StringInfoData buf;
	char		chunk[4096];
	size_t		n;

	if (f == NULL)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not open %s \"%s\": %m", what, path)));
	initStringInfo(&buf);
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		appendBinaryStringInfo(&buf, chunk, n);
	if (ferror(f))
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not read %s \"%s\": %m", what, path)));
	FreeFile(f);
	return buf.data;
}

/* A listening socket on addr, or -1 (the reason logged). */
static int
listen_on(const struct addrinfo *ai, const char *host)
{
	int			fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	int			one = 1;
	char		addr[NI_MAXHOST] = "?";

	getnameinfo(ai->ai_addr, ai->ai_addrlen, addr, sizeof(addr), NULL, 0, NI_NUMERICHOST);
	if (fd < 0 ||
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
		(ai->ai_family == AF_INET6 &&
		 setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) < 0) ||
		bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 ||
		listen(fd, LISTEN_BACKLOG) < 0)
	{
		ereport(LOG,
				(errcode_for_socket_access(),
				 errmsg("campaign: could not listen for HTTP on \"%s\" (%s) port %d: %m",
						host, addr, campaign_http_port)));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

/*
 * Open a listening socket on every address of
 * campaign.http_listen_addresses ("*": all); the server does not start
 * without one.
 */
static void
open_listen_sockets(void)
{
	char	   *list = pstrdup(campaign_http_listen_addresses);
	List	   *hosts;
	ListCell   *lc;

	if (!SplitGUCList(list, ',', &hosts) || hosts == NIL)
		ereport(FATAL,
				(errcode(ERRCODE_CONFIG_FILE_ERROR),
				 errmsg("invalid list syntax in campaign.http_listen_addresses: \"%s\"",
						campaign_http_listen_addresses)));
	foreach(lc, hosts)
	{
		char	   *host = lfirst(lc);
		struct addrinfo hints = {0};
		struct addrinfo *addrs;
		struct addrinfo *ai;
		char		port[8];
		int			rc;

		hints.ai_family = AF_UNSPEC;
		hints.ai_socktype = SOCK_STREAM;
		hints.ai_flags = AI_PASSIVE;
		snprintf(port, sizeof(port), "%d", campaign_http_port);
		rc = getaddrinfo(strcmp(host, "*") == 0 ? NULL : host, port, &hints, &addrs);
		if (rc != 0)
		{
			ereport(LOG,
					(errmsg("campaign: could not resolve \"%s\" of campaign.http_listen_addresses: %s",
							host, gai_strerror(rc))));
			continue;
		}
		for (ai = addrs; ai != NULL && nlisten < MAX_LISTEN_SOCKETS; ai = ai->ai_next)
		{
			int			fd = listen_on(ai, host);

			if (fd >= 0)
				listen_fds[nlisten++] = fd;
		}
		freeaddrinfo(addrs);
	}
	if (nlisten == 0)
		ereport(FATAL,
				(errcode(ERRCODE_CONFIG_FILE_ERROR),
				 errmsg("campaign: could not open any HTTP socket on port %d",
						campaign_http_port),
				 errhint("Check campaign.http_listen_addresses and campaign.http_port, or set campaign.http_port to 0.")));
}

/* The worker's libmicrohttpd daemon: no socket of its own, HTTPS maybe. */
static void
start_daemon(void)
{
	unsigned int flags = MHD_USE_EPOLL | MHD_USE_NO_LISTEN_SOCKET | MHD_USE_ERROR_LOG;
	struct MHD_OptionItem tls[3] = {{MHD_OPTION_END, 0, NULL}};

	if ((campaign_http_ssl_cert_file[0] != '\0') != (campaign_http_ssl_key_file[0] != '\0'))
		ereport(ERROR,
				(errcode(ERRCODE_CONFIG_FILE_ERROR),
				 errmsg("HTTPS needs both campaign.http_ssl_cert_file and campaign.http_ssl_key_file")));
	if (campaign_http_ssl_cert_file[0] != '\0')
	{
		flags |= MHD_USE_TLS;
		tls[0] = (struct MHD_OptionItem) {MHD_OPTION_HTTPS_MEM_CERT, 0,
			read_pem(campaign_http_ssl_cert_file, "certificate file")};
		tls[1] = (struct MHD_OptionItem) {MHD_OPTION_HTTPS_MEM_KEY, 0,
			read_pem(campaign_http_ssl_key_file, "private key file")};
	}
	http_daemon = MHD_start_daemon(flags, 0, NULL, NULL, access_handler, NULL,
							  MHD_OPTION_EXTERNAL_LOGGER, log_mhd, NULL,
							  MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int) campaign_http_timeout,
							  MHD_OPTION_NOTIFY_COMPLETED, request_completed, NULL,
							  MHD_OPTION_NOTIFY_CONNECTION, connection_notify, NULL,
							  MHD_OPTION_ARRAY, tls,
							  MHD_OPTION_END);
	if (http_daemon == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_CONFIG_FILE_ERROR),
				 errmsg("could not start the HTTP server"),
				 errhint("See the messages above; check the certificate and key files.")));
}

/* libmicrohttpd's connection callback: count this worker's connections. */
static void
connection_notify(void *cls, struct MHD_Connection *conn, void **socket_context,
				  enum MHD_ConnectionNotificationCode toe)
{
	if (toe == MHD_CONNECTION_NOTIFY_STARTED)
		pg_atomic_fetch_add_u32(&http_shared->connections[my_slot], 1);
	else if (toe == MHD_CONNECTION_NOTIFY_CLOSED)
		pg_atomic_fetch_sub_u32(&http_shared->connections[my_slot], 1);
}

/* At exit: this worker no longer takes part in the spreading. */
static void
leave_slot(int code, Datum arg)
{
	pg_atomic_write_u32(&http_shared->connections[my_slot], NOT_RUNNING);
}

/* Has this worker no more connections than any other running worker? */
static bool
should_accept(void)
{
	uint32		mine = pg_atomic_read_u32(&http_shared->connections[my_slot]);
	int			i;

	for (i = 0; i < campaign_http_workers; i++)
		if (pg_atomic_read_u32(&http_shared->connections[i]) < mine)
			return false;
	return true;
}

/*
 * Accept one connection waiting on a listening socket and hand it to
 * libmicrohttpd; nothing when another worker took it first.
 */
static void
accept_connection(int listen_fd)
{
	struct sockaddr_storage addr;
	socklen_t	len = sizeof(addr);
	int			fd = accept4(listen_fd, (struct sockaddr *) &addr, &len,
							 SOCK_NONBLOCK | SOCK_CLOEXEC);

	if (fd < 0)
	{
		if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR &&
			errno != ECONNABORTED)
			ereport(LOG,
					(errcode_for_socket_access(),
					 errmsg("campaign http: could not accept a connection: %m")));
		return;
	}
	/* On failure libmicrohttpd closes the socket and logs why. */
	(void) MHD_add_connection(http_daemon, fd, (struct sockaddr *) &addr, len);
}

/*
 * Main loop of an HTTP worker: wait on the daemon's epoll descriptor, the
 * latch and the postmaster's death, and on the listening sockets when this
 * worker is to accept (else for a few ms at most), bounded by
 * libmicrohttpd's next timeout; accept at most one connection per
 * listening socket, then let the daemon run.
 */
void
campaign_http_main(Datum main_arg)
{
	WaitEventSet *accepting;
	WaitEventSet *declining;
	WaitEvent  *events;
	int			nevents = nlisten + 3;
	int			i;

	my_slot = DatumGetInt32(main_arg) - 1;
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnection(linitial(campaign_database_list()), NULL, 0);
	pgstat_report_appname(MyBgworkerEntry->bgw_name);

	MemoryContextSwitchTo(TopMemoryContext);
	start_daemon();
	pg_atomic_write_u32(&http_shared->connections[my_slot], 0);
	on_shmem_exit(leave_slot, (Datum) 0);

	accepting = CreateWaitEventSet(TopMemoryContext, nevents);
	declining = CreateWaitEventSet(TopMemoryContext, 3);
	for (i = 0; i < 2; i++)
	{
		WaitEventSet *set = i == 0 ? accepting : declining;

		AddWaitEventToSet(set, WL_LATCH_SET, PGINVALID_SOCKET, MyLatch, NULL);
		AddWaitEventToSet(set, WL_EXIT_ON_PM_DEATH, PGINVALID_SOCKET, NULL, NULL);
		AddWaitEventToSet(set, WL_SOCKET_READABLE,
						  MHD_get_daemon_info(http_daemon, MHD_DAEMON_INFO_EPOLL_FD)->epoll_fd,
						  NULL, NULL);
	}
	for (i = 0; i < nlisten; i++)
		AddWaitEventToSet(accepting, WL_SOCKET_READABLE, listen_fds[i], NULL, &listen_fds[i]);
	events = palloc(sizeof(WaitEvent) * nevents);
	ereport(LOG,
			(errmsg("campaign http worker %d serving port %d (%s) on %d socket(s)%s",
					my_slot + 1, campaign_http_port,
					campaign_http_listen_addresses, nlisten,
					campaign_http_ssl_cert_file[0] ? ", HTTPS" : "")));

	for (;;)
	{
		MHD_UNSIGNED_LONG_LONG ms;
		long		timeout = -1;
		bool		accept = should_accept();
		int			n;

		if (MHD_get_timeout(http_daemon, &ms) == MHD_YES)
			timeout = (long) Min(ms, (MHD_UNSIGNED_LONG_LONG) INT_MAX);
		if (!accept && (timeout < 0 || timeout > DECLINE_RECHECK_MS))
			timeout = DECLINE_RECHECK_MS;
		n = WaitEventSetWait(accept ? accepting : declining, timeout, events,
							 nevents, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
		for (i = 0; i < n; i++)
			if (events[i].user_data != NULL && (events[i].events & WL_SOCKET_READABLE))
				accept_connection(*(int *) events[i].user_data);
		MHD_run(http_daemon);
	}
}
