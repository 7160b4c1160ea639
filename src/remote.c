/*-------------------------------------------------------------------------
 *
 * remote.c
 *	  libpq connections to the cloud database, with every wait interruptible
 *	  and bounded.
 *
 * The cloud is the postgres_fdw foreign server named by
 * campaign.cloud_server.  As dblink does with a server name, the connection
 * string is made of the server's options and the current user's mapping
 * options, keeping only those libpq knows (postgres_fdw's own options such
 * as fetch_size are left out).  TCP keepalives are on unless the options
 * say otherwise.
 *
 * Nothing here blocks inside libpq.  The connection is non-blocking; the
 * connect, every send (queries and COPY data) and every result are waited
 * for on the process latch and the socket, as postgres_fdw's
 * pgfdw_get_result and the walreceiver do.  The connection keeps one
 * WaitEventSet (latch, postmaster death, its socket) for its life, made
 * when it is established and freed by cloud_disconnect(): a batch waits a
 * dozen times, and building a set per wait (WaitLatchOrSocket: an epoll
 * instance created, filled and closed) was 10 to 17% of the worker's CPU
 * at a steady stream of small batches.  So
 *	  - a signal (SIGTERM at a fast shutdown, a query cancel) is served at
 *	    once through CHECK_FOR_INTERRUPTS, even mid-batch: the remote
 *	    transaction is then simply never committed;
 *	  - a cloud that stops answering fails the wait after
 *	    campaign.cloud_timeout (campaign.cloud_connect_timeout for the
 *	    connect), and the caller drops the connection and retries later;
 *	  - pg_stat_activity shows the wait (wait_event_type Extension) and the
 *	    step in its query column (cloud_set_step).
 *
 * The session is configured as postgres_fdw's configure_remote_session
 * does, so that values travel in one fixed text form whatever the cloud's
 * settings: search_path, TimeZone, DateStyle, IntervalStyle,
 * extra_float_digits, and no statement, lock or idle timeout of the
 * cloud's own defaults cuts a batch.  client_encoding is the local
 * database's encoding.
 *
 * Errors from the cloud keep its SQLSTATE, with its message in
 * errdetail_internal, as postgres_fdw's pgfdw_report_error does.  Functions
 * named cloud_try_* return the message instead of raising when the cloud
 * refuses the data (classes 22, 23, 44, P0), for the callers that isolate
 * rejected rows; any other failure is raised.
 *
 *-------------------------------------------------------------------------
 */
#include "campaign.h"

#include "commands/defrem.h"
#include "foreign/foreign.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "remote.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

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

/* Add keyword=value unless the server or mapping options gave it. */
static void
add_default(const char *keyword, const char *value, const char **keywords,
			const char **values, int *n)
{
	int			i;

	for (i = 0; i < *n; i++)
		if (strcmp(keywords[i], keyword) == 0)
			return;
	keywords[*n] = keyword;
	values[*n] = value;
	(*n)++;
}

/*
 * The wait set of the established connection set_conn (NULL: none), with
 * the position of its socket event and the events that one waits for.
 */
static PGconn *set_conn = NULL;
static WaitEventSet *wait_set = NULL;
static int	socket_pos;
static int	socket_events;

static void
free_wait_set(void)
{
	if (wait_set)
		FreeWaitEventSet(wait_set);
	wait_set = NULL;
	set_conn = NULL;
}

/* Make conn's wait set, replacing another connection's. */
static void
make_wait_set(PGconn *conn)
{
	free_wait_set();
	wait_set = CreateWaitEventSet(TopMemoryContext, 3);
	AddWaitEventToSet(wait_set, WL_LATCH_SET, PGINVALID_SOCKET, MyLatch, NULL);
	AddWaitEventToSet(wait_set, WL_EXIT_ON_PM_DEATH, PGINVALID_SOCKET, NULL, NULL);
	socket_events = WL_SOCKET_READABLE;
	socket_pos = AddWaitEventToSet(wait_set, socket_events, PQsocket(conn), NULL, NULL);
	set_conn = conn;
}

/*
 * Wait until the socket is ready for "events" (WL_SOCKET_*), serving
 * interrupts, until the deadline; raises an error when it passes.  An
 * established connection waits on its own set; the connect, whose socket
 * may change from one address to the next, on a set made for each wait.
 */
static void
wait_socket(PGconn *conn, int events, TimestampTz deadline, int timeout_ms,
			const char *what)
{
	for (;;)
	{
		long		timeout = TimestampDifferenceMilliseconds(GetCurrentTimestamp(), deadline);
		int			rc;

		if (timeout <= 0)
			ereport(ERROR,
					(errcode(ERRCODE_CONNECTION_FAILURE),
					 errmsg("cloud server did not answer within %d ms while %s",
							timeout_ms, what),
					 errhint("The batch is retried; see campaign.cloud_timeout and campaign.cloud_connect_timeout.")));
		if (conn == set_conn)
		{
			WaitEvent	event;

			if (events != socket_events)
			{
				ModifyWaitEvent(wait_set, socket_pos, events, NULL);
				socket_events = events;
			}
			rc = WaitEventSetWait(wait_set, timeout, &event, 1, PG_WAIT_EXTENSION) == 0
				? WL_TIMEOUT : event.events;
		}
		else
			rc = WaitLatchOrSocket(MyLatch,
								   WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH | events,
								   PQsocket(conn), timeout, PG_WAIT_EXTENSION);
		if (rc & WL_LATCH_SET)
		{
			ResetLatch(MyLatch);
			CHECK_FOR_INTERRUPTS();
		}
		if (rc & events)
			return;
	}
}

static TimestampTz
deadline_in(int ms)
{
	return TimestampTzPlusMilliseconds(GetCurrentTimestamp(), ms);
}

/* Push what libpq buffered to the socket. */
static void
flush_output(PGconn *conn)
{
	TimestampTz deadline = deadline_in(campaign_cloud_timeout);
	int			rc;

	while ((rc = PQflush(conn)) != 0)
	{
		if (rc < 0)
			cloud_report(conn, NULL, NULL);
		wait_socket(conn, WL_SOCKET_READABLE | WL_SOCKET_WRITEABLE, deadline,
					campaign_cloud_timeout, "sending");
		/* Read what the server sent meanwhile, so that it cannot block us. */
		if (!PQconsumeInput(conn))
			cloud_report(conn, NULL, NULL);
	}
}

/*
 * The next result of the query in progress (NULL when there is none left),
 * waiting for it without blocking.
 */
static PGresult *
get_result(PGconn *conn)
{
	TimestampTz deadline = deadline_in(campaign_cloud_timeout);

	while (PQisBusy(conn))
	{
		wait_socket(conn, WL_SOCKET_READABLE, deadline, campaign_cloud_timeout,
					"waiting for a result");
		if (!PQconsumeInput(conn))
			return PQgetResult(conn);	/* carries the connection's error */
	}
	return PQgetResult(conn);
}

/*
 * The last result of the query in progress, the others discarded (a COPY
 * IN or OUT state ends the wait: it is the caller's to serve).
 */
static PGresult *
get_last_result(PGconn *conn)
{
	PGresult   *last = NULL;
	PGresult   *res;

	while ((res = get_result(conn)) != NULL)
	{
		if (last)
			PQclear(last);
		last = res;
		if (PQresultStatus(res) == PGRES_COPY_IN ||
			PQresultStatus(res) == PGRES_COPY_OUT ||
			PQstatus(conn) == CONNECTION_BAD)
			break;
	}
	return last;
}

/* Send a query with parameters, without waiting for its result. */
static void
send_query(PGconn *conn, const char *sql, int nparams, const char *const *params)
{
	if (!PQsendQueryParams(conn, sql, nparams, NULL, params, NULL, NULL, 0))
		cloud_report(conn, NULL, sql);
	flush_output(conn);
}

/* Send SQL that may hold several commands (the simple query protocol). */
static void
send_script(PGconn *conn, const char *sql)
{
	if (!PQsendQuery(conn, sql))
		cloud_report(conn, NULL, sql);
	flush_output(conn);
}

/* Send a query with parameters and wait for its result. */
static PGresult *
send_and_wait(PGconn *conn, const char *sql, int nparams, const char *const *params)
{
	send_query(conn, sql, nparams, params);
	return get_last_result(conn);
}

static const char *const session_settings[] = {
	"SET search_path = pg_catalog",
	"SET timezone = 'UTC'",
	"SET datestyle = ISO",
	"SET intervalstyle = postgres",
	"SET extra_float_digits = 3",
	"SET statement_timeout = 0",
	"SET lock_timeout = 0",
	"SET idle_in_transaction_session_timeout = 0",
	"SET default_transaction_isolation = 'read committed'",
	"SET session_replication_role = origin",
};

/*
 * Connect to the cloud server with the current user's mapping, waiting at
 * most campaign.cloud_connect_timeout.  Raises an error (with the server's
 * name and libpq's message) when it cannot.
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
	PGconn	   *volatile conn;
	TimestampTz deadline;
	int			i;

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
										list_length(mapping->options) + 10));
	values = palloc(sizeof(char *) * (list_length(server->options) +
									  list_length(mapping->options) + 10));
	add_options(server->options, defaults, keywords, values, &n);
	add_options(mapping->options, defaults, keywords, values, &n);
	PQconninfoFree(defaults);
	add_default("keepalives", "1", keywords, values, &n);
	add_default("keepalives_idle", "30", keywords, values, &n);
	add_default("keepalives_interval", "10", keywords, values, &n);
	add_default("keepalives_count", "3", keywords, values, &n);
	add_default("tcp_user_timeout", psprintf("%d", campaign_cloud_timeout), keywords, values, &n);
	keywords[n] = "fallback_application_name";
	values[n++] = application_name;
	keywords[n] = "client_encoding";
	values[n++] = GetDatabaseEncodingName();
	keywords[n] = NULL;
	values[n] = NULL;

	conn = PQconnectStartParams(keywords, values, false);
	if (conn == NULL)
		ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory")));
	PG_TRY();
	{
		PostgresPollingStatusType status = PGRES_POLLING_WRITING;

		deadline = deadline_in(campaign_cloud_connect_timeout);
		while (PQstatus(conn) != CONNECTION_BAD && status != PGRES_POLLING_OK &&
			   status != PGRES_POLLING_FAILED)
		{
			wait_socket(conn, status == PGRES_POLLING_READING ? WL_SOCKET_READABLE
						: WL_SOCKET_WRITEABLE, deadline,
						campaign_cloud_connect_timeout, "connecting");
			status = PQconnectPoll(conn);
		}
		if (PQstatus(conn) != CONNECTION_OK)
			ereport(ERROR,
					(errcode(ERRCODE_SQLCLIENT_UNABLE_TO_ESTABLISH_SQLCONNECTION),
					 errmsg("could not connect to cloud server \"%s\"", server->servername),
					 errdetail_internal("%s", pchomp(PQerrorMessage(conn)))));
		PQsetNoticeProcessor(conn, ignore_notice, NULL);
		if (PQsetnonblocking(conn, 1) != 0)
			cloud_report(conn, NULL, NULL);
		make_wait_set(conn);
		for (i = 0; i < lengthof(session_settings); i++)
			cloud_command(conn, session_settings[i]);
	}
	PG_CATCH();
	{
		cloud_disconnect(conn);
		PG_RE_THROW();
	}
	PG_END_TRY();
	return conn;
}

/* Close a connection of cloud_connect(), with its wait set. */
void
cloud_disconnect(PGconn *conn)
{
	if (conn == set_conn)
		free_wait_set();
	PQfinish(conn);
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

/* The result of a command that succeeded; the cloud's error is raised. */
static PGresult *
succeeded(PGconn *conn, PGresult *res, const char *sql)
{
	ExecStatusType st = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;

	if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
		cloud_report(conn, res, sql);
	return res;
}

/* Run a command with parameters; raise the cloud's error on failure. */
PGresult *
cloud_exec(PGconn *conn, const char *sql, int nparams, const char *const *params)
{
	return succeeded(conn, send_and_wait(conn, sql, nparams, params), sql);
}

/*
 * Run a script of several commands separated by semicolons, sent in one
 * message (the simple query protocol): one round trip instead of one per
 * command.  The first command that fails ends the script and its error is
 * raised; otherwise the last command's result is returned.  Values go in
 * as literals (cloud_literal).
 */
PGresult *
cloud_exec_script(PGconn *conn, const char *sql)
{
	send_script(conn, sql);
	return succeeded(conn, get_last_result(conn), sql);
}

/* A value quoted as an SQL literal for the cloud (palloc'd). */
char *
cloud_literal(PGconn *conn, const char *value)
{
	char	   *quoted = PQescapeLiteral(conn, value, strlen(value));
	char	   *copy;

	if (quoted == NULL)
		cloud_report(conn, NULL, NULL);
	copy = pstrdup(quoted);
	PQfreemem(quoted);
	return copy;
}

/* cloud_exec for commands whose result is not needed. */
void
cloud_command(PGconn *conn, const char *sql)
{
	PQclear(cloud_exec(conn, sql, 0, NULL));
}

/*
 * A failed result: the cloud's message when it refused the data; any other
 * failure (the connection, resources, missing objects) is raised.
 */
static char *
refused_data(PGconn *conn, PGresult *res, const char *sql)
{
	if (PQstatus(conn) != CONNECTION_OK || !rejects_data(res))
		cloud_report(conn, res, sql);
	return result_message(conn, res);
}

/* Return NULL for a success, the message of a data error; raise others. */
static char *
try_result(PGconn *conn, PGresult *res, const char *sql)
{
	ExecStatusType st = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;

	if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK)
	{
		PQclear(res);
		return NULL;
	}
	return refused_data(conn, res, sql);
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
	return try_result(conn, send_and_wait(conn, sql, nparams, params), sql);
}

/*
 * cloud_try_exec, calling work(arg) while the cloud executes the command:
 * the worker reads its next batch while the cloud applies this one
 * (replicate.c).  When work() raises, the command is still running: the
 * caller drops the connection, as after any error, and the remote
 * transaction never commits.
 */
char *
cloud_try_exec_overlapped(PGconn *conn, const char *sql, int nparams,
						  const char *const *params, void (*work) (void *arg), void *arg)
{
	send_query(conn, sql, nparams, params);
	work(arg);
	return try_result(conn, get_last_result(conn), sql);
}

/*
 * Start "COPY ... FROM STDIN" on the cloud; returns NULL or the cloud's
 * message when it refuses the data.
 */
char *
cloud_copy_begin(PGconn *conn, const char *copy_sql)
{
	PGresult   *res;

	send_script(conn, copy_sql);
	res = get_last_result(conn);
	if (res == NULL || PQresultStatus(res) != PGRES_COPY_IN)
		return refused_data(conn, res, copy_sql);
	PQclear(res);
	return NULL;
}

/* Send COPY data, waiting (interruptibly) while the socket is full. */
void
cloud_copy_send(PGconn *conn, const char *buf, size_t len)
{
	size_t		off = 0;

	while (off < len)
	{
		size_t		chunk = Min(len - off, (size_t) 1 << 20);
		int			rc = PQputCopyData(conn, buf + off, (int) chunk);

		if (rc < 0)
			cloud_report(conn, NULL, "COPY data");
		if (rc == 0)
		{
			flush_output(conn);
			continue;
		}
		off += chunk;
		/* Out as it goes: libpq's buffer would grow to the whole batch. */
		flush_output(conn);
	}
}

/* End the COPY; returns NULL or the cloud's message. */
char *
cloud_copy_end(PGconn *conn)
{
	PGresult   *res;
	char	   *msg = NULL;
	int			rc;

	while ((rc = PQputCopyEnd(conn, NULL)) == 0)
		flush_output(conn);
	if (rc < 0)
		cloud_report(conn, NULL, "COPY end");
	flush_output(conn);
	res = get_result(conn);
	if (res == NULL || PQresultStatus(res) != PGRES_COMMAND_OK)
		msg = refused_data(conn, res, "COPY");
	else
		PQclear(res);
	while ((res = get_result(conn)) != NULL)
		PQclear(res);
	return msg;
}

/* Show the step of the worker in pg_stat_activity.query. */
void
cloud_set_step(const char *fmt,...)
{
	char		buf[256];
	va_list		ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	pgstat_report_activity(STATE_RUNNING, buf);
}
