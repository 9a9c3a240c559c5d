/*
 * mh_log - log lines on stderr, in a file or to syslog.
 *
 * Format: "milterhub[pid]: LEVEL [id] message". id is a session id
 * (0 = none). Lines below the threshold set with mh_log_set_level are
 * dropped before formatting. Until mh_log_open, lines go to stderr.
 *
 * Levels, lowest first: debug < info < statistics < warn < err. The
 * statistics level carries the reference's statistics lines ("[milter][end]
 * ...", "[session][end]...", log analyzers read them): a threshold of
 * statistics keeps them and warnings/errors without the info chatter.
 */
#ifndef MH_LOG_H
#define MH_LOG_H

#include <stddef.h>
#include <stdint.h>

enum mh_log_level {
	MH_LOG_DEBUG,
	MH_LOG_INFO,
	MH_LOG_STATISTICS, /* "STATS" on stderr/file, LOG_INFO for syslog */
	MH_LOG_WARN,
	MH_LOG_ERR
};

void mh_log_set_level(enum mh_log_level lvl);
void mh_log_set_ident(const char *ident); /* program name; default "milterhub" */
void mh_log(enum mh_log_level lvl, uint64_t id, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/*
 * Send lines to target: "stderr", "syslog" (openlog with LOG_PID |
 * LOG_NDELAY and facility, e.g. "mail"; the level becomes the syslog
 * priority and the line carries no ident/pid/LEVEL prefix of its own),
 * or an absolute file path (opened O_WRONLY | O_APPEND | O_CREAT |
 * O_CLOEXEC, mode 0640; each line prefixed with an ISO 8601 UTC time
 * stamp "2026-11-29T19:40:01.123Z " and written in one write(2)).
 * Returns 0, or -1 with a reason in err and the previous target kept.
 */
int mh_log_open(const char *target, const char *facility, char *err, size_t errlen);
/*
 * A file target: open the path again (after logrotate moved it away);
 * on failure keep writing to the old descriptor and return -1 with err.
 * Other targets: no-op, 0.
 */
int mh_log_reopen(char *err, size_t errlen);
/* A file target: chown the file (so workers running as uid can reopen it). */
int mh_log_chown(unsigned uid, unsigned gid, char *err, size_t errlen);
/* The descriptor lines go to (2 for stderr, the file's, -1 for syslog). */
int mh_log_fd(void);

#define mh_debug(id, ...) mh_log(MH_LOG_DEBUG, (id), __VA_ARGS__)
#define mh_info(id, ...) mh_log(MH_LOG_INFO, (id), __VA_ARGS__)
#define mh_statistics(id, ...) mh_log(MH_LOG_STATISTICS, (id), __VA_ARGS__)
#define mh_warn(id, ...) mh_log(MH_LOG_WARN, (id), __VA_ARGS__)
#define mh_err(id, ...) mh_log(MH_LOG_ERR, (id), __VA_ARGS__)

#endif
