/*-------------------------------------------------------------------------
 *
 * probe.h
 *	  Index probes of a staging table, without the planner (probe.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef CAMPAIGN_PROBE_H
#define CAMPAIGN_PROBE_H

extern bool staged_rows_to_send(Oid relid, int64 after, const int64 *pending,
								int npending);
extern bool staged_rows_in_error(Oid relid);

#endif							/* CAMPAIGN_PROBE_H */
