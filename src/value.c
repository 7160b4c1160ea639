/*-------------------------------------------------------------------------
 *
 * value.c
 *	  The text of a value in a Campaign document -> its Datum, with one
 *	  meaning whatever the calling session's settings.
 *
 * PostgreSQL's input functions read a date under DateStyle ('SQL, DMY'
 * reads 05/11/2026 as the 5th of November), a timestamp without an offset
 * in TimeZone, and a signed interval under IntervalStyle.  A document must
 * mean one thing, so the Campaign types whose reading could depend on a
 * setting are read here, by fixed rules (Campaign and its SDKs write ISO
 * 8601):
 *
 *	  date          YYYY-MM-DD; years are ISO 8601's: more than four digits
 *	                are allowed, a sign too, and 0000 is 1 BC, -0001 2 BC
 *	                (astronomical numbering, as JavaScript's toISOString()
 *	                writes them); infinity, -infinity
 *	  datetime      a date, then T or a space and hh:mm[:ss[.fraction]], then
 *	                Z or an offset +hh, +hhmm, +hh:mm; no offset means UTC;
 *	                a date alone is its midnight UTC; 24:00:00 is the next
 *	                day's midnight; infinity, -infinity
 *	  datetimenotz  the same, kept as written; an offset other than Z or
 *	                +00:00 is refused, since the type cannot keep it
 *	  time          hh:mm[:ss[.fraction]], up to 24:00:00
 *	  timespan      seconds ("3600", "-1.5": what Campaign writes), an ISO
 *	                8601 duration ("P1Y2M3DT4H5M6.5S"), or PostgreSQL's
 *	                interval syntax ("1 day 02:00:00") read as under
 *	                IntervalStyle postgres
 *	  float, double a decimal number with an optional exponent, NaN,
 *	                Infinity or INF with an optional sign
 *	  boolean       true, false, 1, 0 (XML Schema's xs:boolean)
 *
 * Fractions of seconds are rounded to the microsecond (halves up).  These
 * values are trimmed of XML white space first.  The other types (integers,
 * uuid) go to their type's input function, which no setting affects.
 *
 * Dates and times are parsed into fields here and converted with date2j()
 * and tm2timestamp(): no string is handed to the date/time input functions
 * and no setting is changed on the ingest path.  campaign_datetime_out()
 * writes the datetimes of the documents the extension builds itself
 * (subscriptions), in ISO 8601 UTC.
 *
 *-------------------------------------------------------------------------
 */
#include "campaign.h"

#include "catalog/pg_type.h"
#include "common/int.h"
#include "miscadmin.h"
#include "utils/date.h"
#include "utils/datetime.h"
#include "utils/float.h"
#include "utils/timestamp.h"

/* How a value is wrong: which SQLSTATE, and how the message says it. */
typedef enum ValueError
{
	VALUE_OK,
	VALUE_SYNTAX,				/* not in the type's form */
	VALUE_FIELD_RANGE,			/* a month 13, a 30th of February, 25:00 */
	VALUE_RANGE					/* beyond what the type holds */
} ValueError;

/* The fields of an ISO 8601 date and time. */
typedef struct IsoDateTime
{
	int			year;			/* astronomical: 0 is 1 BC */
	int			month;
	int			day;
	int			hour;
	int			minute;
	int			second;
	int64		usec;			/* rounded; may be 1000000 after rounding */
	bool		has_offset;
	int			offset;			/* seconds east of UTC */
} IsoDateTime;

static bool
is_xml_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* Read between min and max digits at *pp into *out; false without min. */
static bool
read_digits(const char **pp, int min, int max, int *out)
{
	const char *p = *pp;
	int			n = 0;
	int			v = 0;

	while (n < max && *p >= '0' && *p <= '9')
	{
		v = v * 10 + (*p++ - '0');
		n++;
	}
	if (n < min)
		return false;
	*pp = p;
	*out = v;
	return true;
}

/* "[+-]YYYY-MM-DD": the year has four digits or more (up to nine). */
static bool
read_date(const char **pp, IsoDateTime *dt)
{
	const char *p = *pp;
	bool		negative = false;

	if (*p == '+' || *p == '-')
		negative = (*p++ == '-');
	if (!read_digits(&p, 4, 9, &dt->year) || *p != '-')
		return false;
	p++;
	if (!read_digits(&p, 2, 2, &dt->month) || *p != '-')
		return false;
	p++;
	if (!read_digits(&p, 2, 2, &dt->day))
		return false;
	if (negative)
		dt->year = -dt->year;
	*pp = p;
	return true;
}

/* "hh:mm[:ss[.fraction]]", the fraction rounded to microseconds. */
static bool
read_time(const char **pp, IsoDateTime *dt)
{
	const char *p = *pp;

	dt->second = 0;
	dt->usec = 0;
	if (!read_digits(&p, 2, 2, &dt->hour) || *p != ':')
		return false;
	p++;
	if (!read_digits(&p, 2, 2, &dt->minute))
		return false;
	if (*p == ':')
	{
		p++;
		if (!read_digits(&p, 2, 2, &dt->second))
			return false;
		if (*p == '.')
		{
			int			scale = 100000;

			p++;
			if (!(*p >= '0' && *p <= '9'))
				return false;
			for (; *p >= '0' && *p <= '9'; p++)
			{
				if (scale > 0)
					dt->usec += (*p - '0') * scale;
				else if (scale == 0 && *p >= '5')
					dt->usec++;
				scale = scale > 0 ? scale / 10 : -1;
			}
		}
	}
	*pp = p;
	return true;
}

/* "Z", "+hh", "+hhmm" or "+hh:mm" (or "-"), when present. */
static bool
read_offset(const char **pp, IsoDateTime *dt)
{
	const char *p = *pp;
	int			sign;
	int			hours;
	int			minutes = 0;

	dt->has_offset = false;
	dt->offset = 0;
	if (*p == 'Z')
	{
		dt->has_offset = true;
		*pp = p + 1;
		return true;
	}
	if (*p != '+' && *p != '-')
		return true;
	sign = (*p++ == '-') ? -1 : 1;
	if (!read_digits(&p, 2, 2, &hours))
		return false;
	if (*p == ':')
	{
		p++;
		if (!read_digits(&p, 2, 2, &minutes))
			return false;
	}
	else if (*p >= '0' && *p <= '9' && !read_digits(&p, 2, 2, &minutes))
		return false;
	if (hours > MAX_TZDISP_HOUR || minutes > 59)
		return false;
	dt->has_offset = true;
	dt->offset = sign * (hours * SECS_PER_HOUR + minutes * SECS_PER_MINUTE);
	*pp = p;
	return true;
}

/* The fields name a real day and time (24:00:00 being the day's end)? */
static bool
valid_fields(const IsoDateTime *dt, bool with_date)
{
	if (with_date &&
		(dt->month < 1 || dt->month > MONTHS_PER_YEAR || dt->day < 1 ||
		 dt->day > day_tab[isleap(dt->year) ? 1 : 0][dt->month - 1]))
		return false;
	if (dt->minute > 59 || dt->second > 59)
		return false;
	if (dt->hour == HOURS_PER_DAY)
		return dt->minute == 0 && dt->second == 0 && dt->usec == 0;
	return dt->hour < HOURS_PER_DAY;
}

/* "infinity", "+infinity" or "-infinity": 1, -1, or 0 for anything else. */
static int
infinity_sign(const char *s)
{
	if (pg_strcasecmp(s, "infinity") == 0 || pg_strcasecmp(s, "+infinity") == 0)
		return 1;
	if (pg_strcasecmp(s, "-infinity") == 0)
		return -1;
	return 0;
}

static ValueError
iso_date_in(const char *s, Datum *result)
{
	IsoDateTime dt = {0};
	int			inf = infinity_sign(s);
	DateADT		date;

	if (inf != 0)
	{
		if (inf > 0)
			DATE_NOEND(date);
		else
			DATE_NOBEGIN(date);
		*result = DateADTGetDatum(date);
		return VALUE_OK;
	}
	if (!read_date(&s, &dt) || *s != '\0')
		return VALUE_SYNTAX;
	if (!valid_fields(&dt, true))
		return VALUE_FIELD_RANGE;
	if (!IS_VALID_JULIAN(dt.year, dt.month, dt.day))
		return VALUE_RANGE;
	date = date2j(dt.year, dt.month, dt.day) - POSTGRES_EPOCH_JDATE;
	if (!IS_VALID_DATE(date))
		return VALUE_RANGE;
	*result = DateADTGetDatum(date);
	return VALUE_OK;
}

/*
 * datetime (with_zone) and datetimenotz.  Both are stored as microseconds
 * from 2000-01-01 00:00: UTC for datetime, as written for datetimenotz.
 */
static ValueError
iso_timestamp_in(const char *s, bool with_zone, Datum *result)
{
	IsoDateTime dt = {0};
	int			inf = infinity_sign(s);
	struct pg_tm tm = {0};
	Timestamp	ts;
	int			tz;

	if (inf != 0)
	{
		if (inf > 0)
			TIMESTAMP_NOEND(ts);
		else
			TIMESTAMP_NOBEGIN(ts);
		*result = TimestampGetDatum(ts);
		return VALUE_OK;
	}
	if (!read_date(&s, &dt))
		return VALUE_SYNTAX;
	if (*s == 'T' || *s == ' ')
	{
		s++;
		if (!read_time(&s, &dt) || !read_offset(&s, &dt))
			return VALUE_SYNTAX;
	}
	if (*s != '\0')
		return VALUE_SYNTAX;
	if (!valid_fields(&dt, true))
		return VALUE_FIELD_RANGE;
	if (!with_zone && dt.offset != 0)
		return VALUE_SYNTAX;

	tm.tm_year = dt.year;
	tm.tm_mon = dt.month;
	tm.tm_mday = dt.day;
	tm.tm_hour = dt.hour;
	tm.tm_min = dt.minute;
	tm.tm_sec = dt.second;
	tz = -dt.offset;
	if (tm2timestamp(&tm, (fsec_t) dt.usec, with_zone ? &tz : NULL, &ts) != 0 ||
		!IS_VALID_TIMESTAMP(ts))
		return VALUE_RANGE;
	*result = TimestampGetDatum(ts);
	return VALUE_OK;
}

static ValueError
iso_time_in(const char *s, Datum *result)
{
	IsoDateTime dt = {0};
	TimeADT		t;

	if (!read_time(&s, &dt) || *s != '\0')
		return VALUE_SYNTAX;
	if (!valid_fields(&dt, false))
		return VALUE_FIELD_RANGE;
	t = ((((int64) dt.hour * MINS_PER_HOUR) + dt.minute) * SECS_PER_MINUTE +
		 dt.second) * USECS_PER_SEC + dt.usec;
	if (t > USECS_PER_DAY)
		return VALUE_FIELD_RANGE;
	*result = TimeADTGetDatum(t);
	return VALUE_OK;
}

/* "[+-]digits[.digits]": seconds, as Campaign writes a timespan. */
static bool
seconds_in(const char *s, Interval *span, ValueError *err)
{
	bool		negative = false;
	int64		usec = 0;
	int			scale = 100000;
	bool		any = false;

	if (*s == '+' || *s == '-')
		negative = (*s++ == '-');
	for (; *s >= '0' && *s <= '9'; s++)
	{
		any = true;
		if (pg_mul_s64_overflow(usec, 10, &usec) ||
			pg_add_s64_overflow(usec, (int64) (*s - '0') * USECS_PER_SEC, &usec))
			*err = VALUE_RANGE;
	}
	if (*s == '.')
	{
		for (s++; *s >= '0' && *s <= '9'; s++)
		{
			any = true;
			if (scale > 0 && pg_add_s64_overflow(usec, (int64) (*s - '0') * scale, &usec))
				*err = VALUE_RANGE;
			else if (scale == 0 && *s >= '5' && pg_add_s64_overflow(usec, 1, &usec))
				*err = VALUE_RANGE;
			scale = scale > 0 ? scale / 10 : -1;
		}
	}
	if (!any || *s != '\0')
		return false;
	span->month = 0;
	span->day = 0;
	span->time = negative ? -usec : usec;
	return true;
}

/*
 * A timespan: seconds; else what interval_in() reads, with IntervalStyle
 * postgres (only a leading minus is read differently under sql_standard;
 * ISO 8601 durations are read alike under every style).  The parsing
 * routines return error codes and never raise, so the style is set and
 * restored around them without a PG_TRY.
 */
static ValueError
interval_value_in(const char *s, Datum *result)
{
	Interval   *span = palloc(sizeof(Interval));
	ValueError	err = VALUE_OK;
	char		workbuf[256];
	char	   *field[MAXDATEFIELDS];
	int			ftype[MAXDATEFIELDS];
	int			nf;
	int			dtype = DTK_DELTA;
	int			dterr;
	int			saved_style = IntervalStyle;
	struct pg_itm_in itm_in = {0};

	if (seconds_in(s, span, &err))
	{
		*result = IntervalPGetDatum(span);
		return err;
	}
	dterr = ParseDateTime(s, workbuf, sizeof(workbuf), field, ftype,
						  MAXDATEFIELDS, &nf);
	if (dterr == 0)
	{
		IntervalStyle = INTSTYLE_POSTGRES;
		dterr = DecodeInterval(field, ftype, nf, INTERVAL_FULL_RANGE, &dtype,
							   &itm_in);
		IntervalStyle = saved_style;
	}
	if (dterr == DTERR_BAD_FORMAT)
		dterr = DecodeISO8601Interval(unconstify(char *, s), &dtype, &itm_in);
	if (dterr == DTERR_BAD_FORMAT)
		return VALUE_SYNTAX;
	if (dterr != 0 || dtype != DTK_DELTA || itmin2interval(&itm_in, span) != 0)
		return VALUE_RANGE;
	*result = IntervalPGetDatum(span);
	return VALUE_OK;
}

/* "[+-](digits[.digits]|.digits)[(e|E)[+-]digits]", NaN, [+-]Infinity/INF. */
static bool
is_decimal_or_special(const char *s)
{
	const char *p = s;
	bool		mantissa = false;

	if (pg_strcasecmp(s, "NaN") == 0)
		return true;
	if (*p == '+' || *p == '-')
		p++;
	if (pg_strcasecmp(p, "Infinity") == 0 || pg_strcasecmp(p, "INF") == 0)
		return true;
	for (; *p >= '0' && *p <= '9'; p++)
		mantissa = true;
	if (*p == '.')
		for (p++; *p >= '0' && *p <= '9'; p++)
			mantissa = true;
	if (!mantissa)
		return false;
	if (*p == 'e' || *p == 'E')
	{
		p++;
		if (*p == '+' || *p == '-')
			p++;
		if (!(*p >= '0' && *p <= '9'))
			return false;
		while (*p >= '0' && *p <= '9')
			p++;
	}
	return *p == '\0';
}

static ValueError
double_in(const char *s, Datum *result)
{
	bool		have_error = false;
	float8		v;

	if (!is_decimal_or_special(s))
		return VALUE_SYNTAX;
	v = float8in_internal_opt_error(unconstify(char *, s), NULL,
									"double precision", s, &have_error);
	if (have_error)
		return VALUE_RANGE;
	*result = Float8GetDatum(v);
	return VALUE_OK;
}

static ValueError
boolean_in(const char *s, Datum *result)
{
	if (strcmp(s, "true") == 0 || strcmp(s, "1") == 0)
		*result = BoolGetDatum(true);
	else if (strcmp(s, "false") == 0 || strcmp(s, "0") == 0)
		*result = BoolGetDatum(false);
	else
		return VALUE_SYNTAX;
	return VALUE_OK;
}

/* The rule of a type read here, for the hint of an error; else NULL. */
static const char *
type_rule(Oid typid)
{
	switch (typid)
	{
		case DATEOID:
			return "A date is ISO 8601: YYYY-MM-DD, e.g. 2026-11-05.";
		case TIMESTAMPTZOID:
			return "A datetime is ISO 8601, e.g. 2026-11-05T10:20:30Z or 2026-11-05 10:20:30.123+01:00; without an offset it is UTC.";
		case TIMESTAMPOID:
			return "A datetimenotz is ISO 8601 without an offset, e.g. 2026-11-05T10:20:30.";
		case TIMEOID:
			return "A time is hh:mm[:ss[.fraction]], from 00:00 to 24:00:00.";
		case INTERVALOID:
			return "A timespan is a number of seconds (3600), an ISO 8601 duration (P1DT2H) or an interval (1 day 02:00:00).";
		case FLOAT8OID:
			return "A number is decimal, e.g. -2.25e-10, or NaN, Infinity, -Infinity.";
		case BOOLOID:
			return "A boolean is true, false, 1 or 0.";
		default:
			return NULL;
	}
}

/* Read a value of a type parsed here (type_rule() is not NULL). */
static ValueError
fixed_rule_in(Oid typid, const char *s, Datum *result)
{
	switch (typid)
	{
		case DATEOID:
			return iso_date_in(s, result);
		case TIMESTAMPTZOID:
			return iso_timestamp_in(s, true, result);
		case TIMESTAMPOID:
			return iso_timestamp_in(s, false, result);
		case TIMEOID:
			return iso_time_in(s, result);
		case INTERVALOID:
			return interval_value_in(s, result);
		case FLOAT8OID:
			return double_in(s, result);
		case BOOLOID:
			return boolean_in(s, result);
		default:
			elog(ERROR, "no fixed rule for type %u", typid);
	}
	return VALUE_SYNTAX;		/* keep compiler quiet */
}

/* The SQLSTATE of a value refused by fixed_rule_in(), as PostgreSQL's own. */
static int
value_errcode(Oid typid, ValueError err)
{
	if (err == VALUE_SYNTAX)
		return (typid == FLOAT8OID || typid == BOOLOID) ?
			ERRCODE_INVALID_TEXT_REPRESENTATION : ERRCODE_INVALID_DATETIME_FORMAT;
	if (typid == FLOAT8OID)
		return ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE;
	if (typid == INTERVALOID)
		return ERRCODE_INTERVAL_FIELD_OVERFLOW;
	return ERRCODE_DATETIME_FIELD_OVERFLOW;
}

/*
 * A value too long to quote whole: PostgreSQL's input functions quote what
 * they refuse in full, so their error is raised again with the value cut,
 * keeping its SQLSTATE.
 */
static Datum
long_value_in(const char *attname, const char *type, FmgrInfo *infunc,
			  Oid typioparam, const char *value)
{
	MemoryContext cxt = CurrentMemoryContext;
	Datum		result = (Datum) 0;

	PG_TRY();
	{
		result = InputFunctionCall(infunc, (char *) value, typioparam, -1);
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		FlushErrorState();
		ereport(ERROR,
				(errcode(edata->sqlerrcode),
				 errmsg("invalid value for attribute \"%s\" (%s): \"%s\"",
						attname, type, campaign_shorten(value))));
	}
	PG_END_TRY();
	return result;
}

/*
 * The Datum of a non-empty value of attribute attname, of Campaign type
 * "type" stored as typid (whose input function is infunc).  Strings are not
 * for here: they are taken as they are.
 */
Datum
campaign_value_in(const char *attname, const char *type, Oid typid,
				  FmgrInfo *infunc, Oid typioparam, const char *value)
{
	const char *rule = type_rule(typid);
	const char *start = value;
	const char *end;
	char	   *trimmed;
	Datum		result = (Datum) 0;
	ValueError	err;

	if (rule == NULL)
	{
		if (strlen(value) <= CAMPAIGN_QUOTE_MAX)
			return InputFunctionCall(infunc, (char *) value, typioparam, -1);
		return long_value_in(attname, type, infunc, typioparam, value);
	}

	while (is_xml_space(*start))
		start++;
	end = start + strlen(start);
	while (end > start && is_xml_space(end[-1]))
		end--;
	trimmed = pnstrdup(start, end - start);
	err = fixed_rule_in(typid, trimmed, &result);
	pfree(trimmed);
	if (err == VALUE_OK)
		return result;
	ereport(ERROR,
			(errcode(value_errcode(typid, err)),
			 err == VALUE_SYNTAX ?
			 errmsg("invalid value for attribute \"%s\" (%s): \"%s\"",
					attname, type, campaign_shorten(value)) :
			 errmsg("value out of range for attribute \"%s\" (%s): \"%s\"",
					attname, type, campaign_shorten(value)),
			 errhint("%s", rule)));
	return (Datum) 0;			/* keep compiler quiet */
}

/*
 * A timestamptz as a datetime is written in documents the extension builds
 * itself: ISO 8601 in UTC with microseconds, read back the same under any
 * settings.
 */
char *
campaign_datetime_out(TimestampTz ts)
{
	struct pg_tm tm;
	fsec_t		fsec;

	if (TIMESTAMP_NOT_FINITE(ts))
		return pstrdup(TIMESTAMP_IS_NOBEGIN(ts) ? "-infinity" : "infinity");
	if (timestamp2tm(ts, NULL, &tm, &fsec, NULL, NULL) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
				 errmsg("timestamp out of range")));
	return psprintf("%04d-%02d-%02dT%02d:%02d:%02d.%06dZ", tm.tm_year,
					tm.tm_mon, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
					(int) fsec);
}
