/*
 * sd_notify(3) glue (see notify.h).  The watchdog ping comes from a
 * timer on the event loop itself, not from a thread: only a loop that
 * still turns can send it.
 */
#include "autoconf.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>

#include <event2/event.h>

#ifdef HAVE_SYSTEMD
#include <systemd/sd-daemon.h>
#endif

#include "log.h"
#include "notify.h"

static struct event *watchdog;

#ifdef HAVE_SYSTEMD
static void
watchdog_cb(evutil_socket_t fd, short what, void *arg)
{
	sd_notify(0, "WATCHDOG=1");
}
#endif

void
notify_init(struct event_base *base)
{
#ifdef HAVE_SYSTEMD
	uint64_t usec = 0;
	if (sd_watchdog_enabled(0, &usec) <= 0 || usec == 0)
		return;
	/* Half the interval, as sd_watchdog_enabled(3) advises. */
	struct timeval tv = {
		.tv_sec = (time_t)(usec / 2 / 1000000),
		.tv_usec = (suseconds_t)(usec / 2 % 1000000),
	};
	watchdog = event_new(base, -1, EV_PERSIST, watchdog_cb, NULL);
	if (watchdog == NULL || event_add(watchdog, &tv) != 0)
		log_fatal("cannot create the watchdog timer");
	log_info("systemd watchdog: pinging every %llu ms",
	    (unsigned long long)(usec / 2000));
	sd_notify(0, "WATCHDOG=1");
#else
	(void)base;
#endif
}

void
notify_ready(void)
{
#ifdef HAVE_SYSTEMD
	sd_notify(0, "READY=1");
#endif
}

void
notify_reloading(void)
{
#ifdef HAVE_SYSTEMD
	sd_notify(0, "RELOADING=1");
#endif
}

void
notify_stopping(void)
{
#ifdef HAVE_SYSTEMD
	sd_notify(0, "STOPPING=1");
#endif
}

void
notify_status(const char *fmt, ...)
{
#ifdef HAVE_SYSTEMD
	char line[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	sd_notifyf(0, "STATUS=%s", line);
#else
	(void)fmt;
#endif
}

void
notify_free(void)
{
	if (watchdog != NULL)
		event_free(watchdog);
	watchdog = NULL;
}
