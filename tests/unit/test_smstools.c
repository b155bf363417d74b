/*
 * smstools3 spool files: headers and body, status reports, Message_id
 * lists, dates, ISO-8859-15, To: values and our file names, with the
 * bad input a spool can hold.
 */
#include "autoconf.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "smstools_file.h"
#include "tap.h"

#define PARSE(s, f, why) smstools_file_parse((s), sizeof(s) - 1, (f), (why))

static void
test_incoming_file(void)
{
	static const char in[] = "From: 15551234567\n"
	    "From_TOA: 91 international, ISDN/telephone\n"
	    "Sent: 26-11-21 10:16:39\nModem: 15550001\nAlphabet: UTF-8\n"
	    "Length: 16\n\nhello from phone";
	struct smstools_file f;
	const char *why = NULL;

	CHECK(PARSE(in, &f, &why) == 0);
	CHECK_STR(smstools_file_header(&f, "From"), "15551234567");
	CHECK_STR(smstools_file_header(&f, "From_TOA"),
	    "91 international, ISDN/telephone");
	CHECK_STR(smstools_file_header(&f, "Modem"), "15550001");
	CHECK(smstools_file_header(&f, "from") == NULL);  /* case matters */
	CHECK(smstools_file_header(&f, "To") == NULL);
	CHECK(f.bodylen == 16 && memcmp(f.body, "hello from phone", 16) == 0);
	smstools_file_clear(&f);
	smstools_file_clear(&f);        /* twice is harmless */
}

static void
test_body_keeps_everything(void)
{
	/* UCS-2 bodies hold NULs; CRLF headers; an empty body */
	static const char ucs[] = "From: 1555\r\nAlphabet: UCS2\r\n\r\n\0h\0i";
	static const char empty[] = "To: 1555\nAlphabet: UTF-8\n\n";
	static const char blank_text[] = "To: 1555\n\n\n\nx";
	struct smstools_file f;

	CHECK(PARSE(ucs, &f, NULL) == 0);
	CHECK_STR(smstools_file_header(&f, "Alphabet"), "UCS2");
	CHECK(f.bodylen == 4 && memcmp(f.body, "\0h\0i", 4) == 0);
	smstools_file_clear(&f);
	CHECK(PARSE(empty, &f, NULL) == 0);
	CHECK(f.bodylen == 0);
	smstools_file_clear(&f);
	CHECK(PARSE(blank_text, &f, NULL) == 0);
	CHECK(f.bodylen == 3 && memcmp(f.body, "\n\nx", 3) == 0);
	smstools_file_clear(&f);
}

static void
test_bad_files(void)
{
	static const char half[] = "From: 15551234567\nAlphabet: UT";
	static const char nobody[] = "From: 15551234567\n";
	static const char binary[] = "\x7f" "ELF\x02\x01\x01\0\0\0\n\nxx";
	static const char nul[] = "From: 1555\0\nAlphabet: UTF-8\n\nx";
	static const char noname[] = ": x\n\nbody";
	static const char nocolon[] = "From 1555\n\nbody";
	static const char ctl[] = "From: 15\x1b[2J55\n\nbody";
	static const char leading[] = "\nbody only";
	struct smstools_file f;
	const char *why;
	char many[SMSTOOLS_HEADERS_MAX * 8 + 16];
	size_t i, o = 0;

	why = NULL;
	CHECK(PARSE(half, &f, &why) == -1 && why != NULL);
	CHECK(f.buf == NULL && f.nhdr == 0);
	CHECK(PARSE(nobody, &f, &why) == -1);
	CHECK(smstools_file_parse("", 0, &f, &why) == -1);
	CHECK(PARSE(binary, &f, &why) == -1);
	CHECK(PARSE(nul, &f, &why) == -1);
	CHECK(PARSE(noname, &f, &why) == -1);
	CHECK(PARSE(nocolon, &f, &why) == -1);
	CHECK(PARSE(ctl, &f, &why) == -1);
	CHECK(PARSE(leading, &f, &why) == -1);
	for (i = 0; i < SMSTOOLS_HEADERS_MAX + 1; i++)
		o += (size_t)snprintf(many + o, sizeof(many) - o, "X%zu: 1\n",
		    i % 10);
	many[o++] = '\n';
	CHECK(smstools_file_parse(many, o, &f, &why) == -1);
	CHECK_STR(why, "too many header lines");
}

static void
test_reports(void)
{
	static const char ok[] = "SMS STATUS REPORT\nMessage_id: 117\n"
	    "Discharge_timestamp: 26-11-21 10:16:39\n"
	    "Status: 0,Ok,short message received by the SME";
	static const char fail[] = "SMS STATUS REPORT\r\nMessage_id: 4\r\n"
	    "Status: 65,Incompatible destination\r\n";
	static const char junk[] = "SMS STATUS REPORT\nMessage_id: 99999999999\n"
	    "Status: 300,x\x01y";
	struct smstools_report r;

	CHECK(smstools_report_parse(ok, sizeof(ok) - 1, &r) == 1);
	CHECK(r.message_id == 117 && r.status == 0);
	CHECK_STR(r.text, "Ok,short message received by the SME");
	CHECK(smstools_status_kind(r.status) == SMSTOOLS_DELIVERED);
	CHECK(smstools_report_parse(fail, sizeof(fail) - 1, &r) == 1);
	CHECK(r.message_id == 4 && r.status == 65);
	CHECK_STR(r.text, "Incompatible destination");
	CHECK(smstools_status_kind(65) == SMSTOOLS_FAILED);
	CHECK(smstools_status_kind(32) == SMSTOOLS_PENDING);
	CHECK(smstools_status_kind(63) == SMSTOOLS_PENDING);
	CHECK(smstools_status_kind(31) == SMSTOOLS_DELIVERED);
	CHECK(smstools_report_parse(junk, sizeof(junk) - 1, &r) == 1);
	CHECK(r.message_id == -1 && r.status == -1);
	CHECK(smstools_report_parse("hello", 5, &r) == 0);
	CHECK(smstools_report_parse("", 0, &r) == 0);
}

static void
test_message_ids(void)
{
	int ids[4];

	CHECK(smstools_message_ids("117", ids, 4) == 1 && ids[0] == 117);
	CHECK(smstools_message_ids("12 13 14 .", ids, 4) == 3 &&
	    ids[0] == 12 && ids[2] == 14);
	CHECK(smstools_message_ids("1 2 3 4 5 6 .", ids, 4) == 4);
	CHECK(smstools_message_ids("", ids, 4) == -1);
	CHECK(smstools_message_ids(".", ids, 4) == -1);
	CHECK(smstools_message_ids("256", ids, 4) == -1);
	CHECK(smstools_message_ids("-1", ids, 4) == -1);
	CHECK(smstools_message_ids("12abc", ids, 4) == -1);
	CHECK(smstools_message_ids("99999999999999", ids, 4) == -1);
}

static void
test_time(void)
{
	time_t t;
	struct tm *tm;

	CHECK(smstools_time_parse("26-11-21 10:16:39", &t) == 0);
	tm = localtime(&t);
	CHECK(tm->tm_year == 126 && tm->tm_mon == 10 && tm->tm_mday == 21 &&
	    tm->tm_hour == 10 && tm->tm_min == 16 && tm->tm_sec == 39);
	CHECK(smstools_time_parse("26-13-21 10:16:39", &t) == -1);
	CHECK(smstools_time_parse("26-11-21 10:16", &t) == -1);
	CHECK(smstools_time_parse("26-11-21 10:16:39 x", &t) == -1);
	CHECK(smstools_time_parse("yesterday", &t) == -1);
	/* Dates mktime() would quietly move, and shapes sscanf() would
	 * take: a day February lacks, second 60, signs and blanks. */
	CHECK(smstools_time_parse("26-02-30 10:00:00", &t) == -1);
	CHECK(smstools_time_parse("26-11-21 10:16:60", &t) == -1);
	CHECK(smstools_time_parse("+6-11-21 10:16:39", &t) == -1);
	CHECK(smstools_time_parse(" 6-11-21 10:16:39", &t) == -1);
}

static void
test_latin9(void)
{
	size_t n;
	char *s = smstools_latin9_to_utf8("\xa4 caf\xe9 \xbd", 8, &n);

	CHECK_STR(s, "\xe2\x82\xac caf\xc3\xa9 \xc5\x93");
	CHECK(n == strlen(s));
	free(s);
}

static void
test_to_header(void)
{
	char out[32];

	CHECK(smstools_to_header("+15551234567", out, sizeof(out)) == 0);
	CHECK_STR(out, "15551234567");
	CHECK(smstools_to_header("12345", out, sizeof(out)) == 0);
	CHECK_STR(out, "s12345");
	CHECK(smstools_to_header("+", out, sizeof(out)) == -1);
	CHECK(smstools_to_header("++1", out, sizeof(out)) == -1);
	CHECK(smstools_to_header("+1555\n", out, sizeof(out)) == -1);
	CHECK(smstools_to_header("+1555\nTo: 1", out, sizeof(out)) == -1);
	CHECK(smstools_to_header("1234567890123456789012345", out,
	    sizeof(out)) == -1);
	CHECK(smstools_to_header("+15551234567", out, 5) == -1);
}

static void
test_names(void)
{
	char ref[SMSTOOLS_REF_MAX + 1], prefix[SMSTOOLS_PREFIX_SIZE];
	char other[SMSTOOLS_PREFIX_SIZE];

	smstools_file_prefix("SMS.Example.org", prefix);
	CHECK_STR(prefix, "causeway.sms.example.org.");
	CHECK(smstools_ref_from_name("causeway.sms.example.org.abc123", prefix,
	    ref) == 1);
	CHECK_STR(ref, "abc123");
	CHECK(smstools_ref_from_name("causeway.sms.example.org.", prefix,
	    ref) == 0);
	CHECK(smstools_ref_from_name("causeway.sms.example.org.ABC", prefix,
	    ref) == 0);
	CHECK(smstools_ref_from_name("causeway.sms.example.org.a.b", prefix,
	    ref) == 0);
	CHECK(smstools_ref_from_name("causeway.sms.example.net.abc", prefix,
	    ref) == 0);
	CHECK(smstools_ref_from_name("GSM1.xYz12", prefix, ref) == 0);
	CHECK(smstools_ref_from_name("causeway.sms.example.org."
	    "0123456789012345678901234567890123", prefix, ref) == 0);
	/* a domain no file name should carry: a hash */
	smstools_file_prefix("sms/../../etc", other);
	CHECK(strncmp(other, "causeway.", 9) == 0 && strlen(other) == 26 &&
	    strchr(other + 9, '/') == NULL);
	smstools_file_prefix("sms/../../etd", prefix);
	CHECK(strcmp(other, prefix) != 0);
}

int
main(void)
{
	RUN(test_incoming_file);
	RUN(test_body_keeps_everything);
	RUN(test_bad_files);
	RUN(test_reports);
	RUN(test_message_ids);
	RUN(test_time);
	RUN(test_latin9);
	RUN(test_to_header);
	RUN(test_names);
	return TAP_DONE();
}
