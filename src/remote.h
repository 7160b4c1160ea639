/*-------------------------------------------------------------------------
 *
 * remote.h
 *	  libpq access to the cloud database (remote.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef CAMPAIGN_REMOTE_H
#define CAMPAIGN_REMOTE_H

#include "libpq-fe.h"

extern PGconn *cloud_connect(const char *application_name);
extern void cloud_disconnect(PGconn *conn);
extern void cloud_report(PGconn *conn, PGresult *res, const char *sql) pg_attribute_noreturn();
extern PGresult *cloud_exec(PGconn *conn, const char *sql, int nparams,
							const char *const *params);
extern void cloud_command(PGconn *conn, const char *sql);
extern PGresult *cloud_exec_script(PGconn *conn, const char *sql);
extern char *cloud_literal(PGconn *conn, const char *value);
extern char *cloud_try_exec(PGconn *conn, const char *sql, int nparams,
							const char *const *params);
extern char *cloud_try_exec_overlapped(PGconn *conn, const char *sql, int nparams,
									   const char *const *params,
									   void (*work) (void *arg), void *arg);
extern char *cloud_copy_begin(PGconn *conn, const char *copy_sql);
extern void cloud_copy_send(PGconn *conn, const char *buf, size_t len);
extern char *cloud_copy_end(PGconn *conn);
extern void cloud_set_step(const char *fmt,...) pg_attribute_printf(1, 2);

/* Cloud-side bookkeeping of the replication (created by deploy). */
#define CLOUD_WATERMARK_TABLE "campaign_replication.watermark"

#endif							/* CAMPAIGN_REMOTE_H */
