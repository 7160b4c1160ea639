/*-------------------------------------------------------------------------
 *
 * record.h
 *	  The record builder of record.c, used by ingest.c (and the SOAP layer).
 *
 *-------------------------------------------------------------------------
 */
#ifndef CAMPAIGN_RECORD_H
#define CAMPAIGN_RECORD_H

#include "campaign.h"

typedef struct RecordBuilder
{
	StagingSchema *schema;
	bool		ext;			/* xtk_ingest_ext: updates and deletes */
	MemoryContext cxt;			/* holds what is reused across records */
	const char *default_key;	/* _key given on a collection element */
	const char *default_operation;	/* _operation given on a collection */
	bool		collection;
	int			recno;			/* 1-based index of the current record */
	const char *cur_attr;		/* attribute being converted, for errors */
	bool	   *carried;		/* per attribute: present in this record */
	char	  **cvalues;		/* per attribute: its text when carried */
	bool	   *last_carried;	/* the set _carried was last built for */
	bool		have_last_carried;
	Datum		last_carried_datum;
	char	   *last_key_raw;	/* the _key text last parsed */
	Datum		last_key;
	int		   *key_atts;		/* indexes of the key attributes */
	int			key_natts;
	Datum		op_datums[4];	/* _operation values, by StagedOperation */
	StagedOperation op;			/* operation of the record last built */
	ErrorContextCallback errcb;
} RecordBuilder;

extern void record_builder_init(RecordBuilder *b, StagingSchema *schema,
								bool ext);
extern void record_builder_enter(RecordBuilder *b);
extern void record_builder_leave(RecordBuilder *b);
extern bool record_build(RecordBuilder *b, xmlNodePtr rec, int recno,
						 Datum *values, bool *nulls);

#endif							/* CAMPAIGN_RECORD_H */
