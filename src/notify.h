/*
 * Telling the service manager how causeway is doing (sd_notify(3)):
 * READY=1 once the configuration is loaded and the store is open,
 * STATUS= lines saying which components are attached, WATCHDOG=1 from
 * the event loop at half the WatchdogSec interval (so a stuck loop
 * stops the pings and systemd restarts the service), RELOADING=1 and
 * STOPPING=1 around a reload and at shutdown.  Without libsystemd
 * (./configure --without-systemd) every call does nothing.
 */
#ifndef CAUSEWAY_NOTIFY_H
#define CAUSEWAY_NOTIFY_H

struct event_base;

/* Starts the watchdog timer when the manager asked for one. */
void notify_init(struct event_base *base);
void notify_ready(void);
void notify_reloading(void);
void notify_stopping(void);
/* STATUS=text (printf-style). */
void notify_status(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void notify_free(void);

#endif
