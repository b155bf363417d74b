/*
 * Logging: one line per event on stderr (or syslog), each line prefixed
 * with its level.  Callers say which user / component / legacy connection
 * a line is about; secrets never reach these functions.
 */
#ifndef CAUSEWAY_LOG_H
#define CAUSEWAY_LOG_H

#define CW_PRINTF(f, a) __attribute__((format(printf, f, a)))

enum log_level {
	LOG_LEVEL_ERROR = 0,
	LOG_LEVEL_WARN,
	LOG_LEVEL_INFO,
	LOG_LEVEL_DEBUG,
};

void log_init(enum log_level level, int use_syslog);
void log_set_level(enum log_level level);
enum log_level log_get_level(void);
/* "error", "warn", "info", "debug" -> level; returns -1 on unknown names. */
int log_level_parse(const char *name, enum log_level *out);
const char *log_level_name(enum log_level level);

void log_error(const char *fmt, ...) CW_PRINTF(1, 2);
void log_warn(const char *fmt, ...) CW_PRINTF(1, 2);
void log_info(const char *fmt, ...) CW_PRINTF(1, 2);
void log_debug(const char *fmt, ...) CW_PRINTF(1, 2);
/* Logs at error level and exits with status 1. */
void log_fatal(const char *fmt, ...) CW_PRINTF(1, 2) __attribute__((noreturn));

#endif
