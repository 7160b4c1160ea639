/*-------------------------------------------------------------------------
 *
 * remote.c
 *	  libpq connections to the cloud database.
 *
 * The cloud is the postgres_fdw foreign server named by
 * campaign.cloud_server.  As dblink does with a server name, the connection
 * string is made of the server's options and the current user's mapping
 * options, keeping only those libpq knows (postgres_fdw's own options such
 * as fetch_size are left out).  client_encoding is pinned to the local
 * database encoding, since rows travel in COPY text format.
 *
 * Errors from the cloud keep its SQLSTATE, with its message in
 * errdetail_internal, as postgres_fdw's pgfdw_report_error does.  Functions
 * named cloud_try_* return the message instead of raising, for the callers
 * that isolate rejected rows.
 *
 *-------------------------------------------------------------------------
 */
#include "campaign.h"

#include "commands/defrem.h"
#include "foreign/foreign.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "remote.h"

/* Notices of the cloud (IF NOT EXISTS skips...) are not worth a log line. */
static void
ignore_notice(void *arg, const char *message)
{
}

/* Is "keyword" a libpq connection option (other than dbname tricks)? */
static bool
is_libpq_option(const char *keyword, PQconninfoOption *defaults)
{
	PQconninfoOption *opt;

	for (opt = defaults; opt->keyword; opt++)
		if (strcmp(opt->keyword, keyword) == 0)
			return strcmp(keyword, "client_encoding") != 0 &&
				strcmp(keyword, "replication") != 0;
	return false;
}

static void
add_options(List *options, PQconninfoOption *defaults, const char **keywords,
			const char **values, int *n)
{
	ListCell   *lc;

	foreach(lc, options)
	{
		DefElem    *d = lfirst(lc);

		if (is_libpq_option(d->defname, defaults))
		{
			keywords[*n] = d->defname;
			values[*n] = defGetString(d);
			(*n)++;
		}
	}
}

/*
 * Connect to the cloud server with the current user's mapping.  Raises an
 * error (with the server's name and libpq's message) when it cannot.
 */
PGconn *
cloud_connect(const char *application_name)
{
	ForeignServer *server;
	UserMapping *mapping;
	PQconninfoOption *defaults;
	const char **keywords;
	const char **values;
	int			n = 0;
	PGconn	   *conn;

	server = GetForeignServerByName(campaign_cloud_server, true);
	if (server == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("cloud server \"%s\" does not exist", campaign_cloud_server),
				 errhint("Create it with CREATE SERVER %s FOREIGN DATA WRAPPER postgres_fdw OPTIONS (...), or set campaign.cloud_server.",
						 campaign_cloud_server)));
	mapping = GetUserMapping(GetUserId(), server->serverid);

	defaults = PQconndefaults();
	if (defaults == NULL)
		ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory")));
	keywords = palloc(sizeof(char *) * (list_length(server->options) +
										list_length(mapping->options) + 4));
	values = palloc(sizeof(char *) * (list_length(server->options) +
									  list_length(mapping->options) + 4));
	add_options(server->options, defaults, keywords, values, &n);
	add_options(mapping->options, defaults, keywords, values, &n);
	PQconninfoFree(defaults);
	keywords[n] = "fallback_application_name";
	values[n++] = application_name;
	keywords[n] = "client_encoding";
	values[n++] = GetDatabaseEncodingName();
	keywords[n] = NULL;
	values[n] = NULL;

	conn = PQconnectdbParams(keywords, values, false);
	if (conn == NULL || PQstatus(conn) != CONNECTION_OK)
	{
		char	   *msg = pstrdup(conn ? PQerrorMessage(conn) : "out of memory");

		if (conn)
			PQfinish(conn);
		ereport(ERROR,
				(errcode(ERRCODE_SQLCLIENT_UNABLE_TO_ESTABLISH_SQLCONNECTION),
				 errmsg("could not connect to cloud server \"%s\"", server->servername),
				 errdetail_internal("%s", pchomp(msg))));
	}
	PQsetNoticeProcessor(conn, ignore_notice, NULL);
	return conn;
}

/* Raise the error of a failed result, keeping the remote SQLSTATE. */
void
cloud_report(PGconn *conn, PGresult *res, const char *sql)
{
	const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
	char	   *primary = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
	char	   *detail = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL) : NULL;
	int			code = state ? MAKE_SQLSTATE(state[0], state[1], state[2], state[3], state[4])
		: ERRCODE_CONNECTION_FAILURE;
	char	   *msg = pstrdup(primary ? primary : pchomp(PQerrorMessage(conn)));
	char	   *det = detail ? pstrdup(detail) : NULL;

	if (res)
		PQclear(res);
	ereport(ERROR,
			(errcode(code),
			 errmsg("cloud server: %s", msg),
			 det ? errdetail_internal("%s", det) : 0,
			 sql ? errcontext("remote SQL command: %s", sql) : 0));
}

/*
 * Is the failure the data's fault (a value, a constraint, a trigger's
 * refusal), as opposed to the cloud's state (resources, connection,
 * missing objects), which is raised so that the batch is retried?
 */
static bool
rejects_data(PGresult *res)
{
	const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;

	return state != NULL &&
		(strncmp(state, "22", 2) == 0 || strncmp(state, "23", 2) == 0 ||
		 strncmp(state, "44", 2) == 0 || strncmp(state, "P0", 2) == 0);
}

/* The cloud's error message of a failed result, then the result is freed. */
static char *
result_message(PGconn *conn, PGresult *res)
{
	const char *primary = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
	const char *detail = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL) : NULL;
	char	   *msg;

	if (primary)
		msg = detail ? psprintf("%s (%s)", primary, detail) : pstrdup(primary);
	else
		msg = pchomp(PQerrorMessage(conn));
	if (res)
		PQclear(res);
	return msg;
}

/* Run a command with parameters; raise the cloud's error on failure. */
PGresult *
cloud_exec(PGconn *conn, const char *sql, int nparams, const char *const *params)
{
	PGresult   *res = PQexecParams(conn, sql, nparams, NULL, params, NULL, NULL, 0);
	ExecStatusType st = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;

	if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
		cloud_report(conn, res, sql);
	return res;
}

/* cloud_exec for commands whose result is not needed. */
void
cloud_command(PGconn *conn, const char *sql)
{
	PQclear(cloud_exec(conn, sql, 0, NULL));
}

/*
 * Run a command; return NULL on success or the cloud's message when the
 * cloud rejects the data.  Other failures (a lost connection, resources,
 * missing objects) are raised: they are not the rows' fault.
 */
char *
cloud_try_exec(PGconn *conn, const char *sql, int nparams,
			   const char *const *params)
{
	PGresult   *res = PQexecParams(conn, sql, nparams, NULL, params, NULL, NULL, 0);
	ExecStatusType st = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;

	if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK)
	{
		PQclear(res);
		return NULL;
	}
	if (PQstatus(conn) != CONNECTION_OK || !rejects_data(res))
		cloud_report(conn, res, sql);
	return result_message(conn, res);
}

/*
 * Start "COPY ... FROM STDIN" on the cloud; returns NULL or the cloud's
 * message when it refuses the data.
 */
char *
cloud_copy_begin(PGconn *conn, const char *copy_sql)
{
	PGresult   *res = PQexec(conn, copy_sql);

	if (res == NULL || PQresultStatus(res) != PGRES_COPY_IN)
	{
		if (PQstatus(conn) != CONNECTION_OK || !rejects_data(res))
			cloud_report(conn, res, copy_sql);
		return result_message(conn, res);
	}
	PQclear(res);
	return NULL;
}

/* Send COPY data (libpq buffers it). */
void
cloud_copy_send(PGconn *conn, const char *buf, size_t len)
{
	size_t		off = 0;

	while (off < len)
	{
		size_t		chunk = Min(len - off, (size_t) 1 << 20);

		if (PQputCopyData(conn, buf + off, (int) chunk) != 1)
			cloud_report(conn, NULL, "COPY data");
		off += chunk;
	}
}

/* End the COPY; returns NULL or the cloud's message. */
char *
cloud_copy_end(PGconn *conn)
{
	PGresult   *res;
	char	   *msg = NULL;

	if (PQputCopyEnd(conn, NULL) != 1)
		cloud_report(conn, NULL, "COPY end");
	res = PQgetResult(conn);
	if (res == NULL || PQresultStatus(res) != PGRES_COMMAND_OK)
	{
		if (PQstatus(conn) != CONNECTION_OK || !rejects_data(res))
			cloud_report(conn, res, "COPY");
		msg = result_message(conn, res);
	}
	else
		PQclear(res);
	while ((res = PQgetResult(conn)) != NULL)
		PQclear(res);
	return msg;
}
