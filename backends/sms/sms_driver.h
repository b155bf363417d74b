/*
 * The SMS backend's drivers: how texts reach a real SMS network.  The
 * backend (sms.c) owns users, numbers, the outbox in the store, retries
 * and receipts; a driver only moves texts in and out of one gateway
 * program (Kannel's HTTP interface, smstools3's spool directories) and
 * reports what became of them, naming each text by the backend's ref.
 *
 * Everything runs on the loop thread.
 */
#ifndef CAUSEWAY_SMS_DRIVER_H
#define CAUSEWAY_SMS_DRIVER_H

#include <time.h>

struct component;
struct sms_driver;

/* One text to send (all strings borrowed for the call). */
struct sms_out {
	const char *ref;    /* the backend's id for it: [0-9a-z], at most 32
	                     * characters, unique per component for ever;
	                     * reports name it */
	const char *from;   /* the user's number, E.164 ("+15550001") */
	const char *to;     /* E.164 or a short code */
	const char *text;   /* UTF-8, already checked against max_parts */
	int ucs2;           /* 1: GSM 03.38 cannot carry it (sms_text.h) */
	int parts;          /* how many parts it needs */
};

enum sms_result {
	SMS_ACCEPTED,       /* the gateway took it (a report may follow) */
	SMS_TEMPFAIL,       /* try again later (refused, HTTP 5xx, spool full) */
	SMS_PERMFAIL,       /* never (HTTP 4xx, smstools failed/) */
};

struct sms_driver_ops {
	const char *name;   /* the value of driver = */
	/* Starts the driver for a component, reading its section; NULL
	 * (logged) when it cannot. */
	struct sms_driver *(*start)(struct component *c);
	/* Stops it; nothing is called back afterwards. */
	void (*stop)(struct sms_driver *d);
	/* Hands one text over; the outcome comes back, now or later,
	 * through exactly one sms_sent() for out->ref (unless the driver
	 * is stopped first). */
	void (*send)(struct sms_driver *d, const struct sms_out *out);
};

extern const struct sms_driver_ops sms_kannel_driver;
extern const struct sms_driver_ops sms_smstools_driver;

/* ---- implemented by the backend (sms.c), called by drivers ---- */

/* What became of the text ref handed to send(); text: the gateway's own
 * words (an HTTP body, a Fail_reason), NULL when there are none. */
void sms_sent(struct component *c, const char *ref, enum sms_result r,
    const char *text);
/* A delivery report for ref: delivered 1 (at the handset), 0 (failed for
 * good: text says why).  Reports that are neither (Kannel's "SMSC
 * accepted", buffered) are not passed on.  Unknown refs are ignored by
 * the backend (logged). */
void sms_report(struct component *c, const char *ref, int delivered,
    const char *text);
/*
 * A text arrived (MO), already decoded to valid UTF-8.  from: the
 * sender as the network gave it (the backend normalises it); to: the
 * number it was sent to.  stamp: when the network says it was sent (0:
 * unknown).  Returns 0 when it is handed on or safely stored (the driver
 * may now acknowledge it or delete its file), -1 when it can never be
 * delivered (no user has that number: logged, the driver drops it too),
 * -2 when it should be offered again later (the store failed).
 */
int sms_received(struct component *c, const char *from, const char *to,
    const char *text, time_t stamp);

#endif
