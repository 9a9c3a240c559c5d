/*
 * mh_log - log lines on stderr, in a file or to syslog.
 *
 * SUMMARY
 *	mh_log(level, id, fmt, ...) formats one line and sends it to the
 *	current target, chosen with mh_log_open() (stderr until then):
 *	  stderr  "IDENT[pid]: LEVEL [id] message\n" on descriptor 2;
 *	  file    "2026-11-29T19:40:01.123Z IDENT[pid]: LEVEL [id] message\n"
 *	          (UTC, milliseconds) appended to an absolute path;
 *	  syslog  "[id] message" at the priority of the level (DEBUG
 *	          LOG_DEBUG, INFO and STATISTICS LOG_INFO, WARN LOG_WARNING,
 *	          ERR LOG_ERR): syslog adds the time, ident and pid itself.
 *	id 0 means "no session" and omits the "[id] " part. LEVEL is one of
 *	DEBUG, INFO, STATS (the statistics level), WARN, ERR; the levels are
 *	ordered debug < info < statistics < warn < err.
 *
 * CONTRACT
 *	Each line goes out in a single write(2) (stderr, file) or one
 *	syslog(3) call, so lines from several processes sharing the target
 *	(master, workers, tools) do not interleave: the file is opened with
 *	O_APPEND, and forked children inherit the target.
 *	A trailing newline in the message is not doubled.
 *	errno is preserved across every call of this module (mh_log_open,
 *	mh_log_reopen and mh_log_chown report through err, not errno), so
 *	"%m" and callers that log before inspecting errno both work.
 *	The threshold starts at INFO, or at MILTERHUB_LOG_LEVEL
 *	(debug|info|statistics|warn|err, also stats|warning|error;
 *	case-insensitive) if set in the environment;
 *	mh_log_set_level() overrides it. Lines below the threshold are
 *	dropped before any formatting.
 *	mh_log_set_ident() copies the name (truncated to 63 bytes); with the
 *	syslog target open it calls openlog(3) again with the new name.
 *	The pid is cached (one getpid(2) per process, not per line: the hub
 *	logs lines per session) and refreshed in the child of a fork() by a
 *	pthread_atfork() handler, so children after fork() log their own
 *	(syslog's own LOG_PID is per call).
 *
 *	mh_log_open(target, facility, err, errlen): "stderr"; "syslog"
 *	(openlog(ident, LOG_PID | LOG_NDELAY, facility), facility a
 *	syslog.conf name, NULL meaning "mail"); or an absolute path, opened
 *	O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, mode 0640 (less the
 *	umask). The previous target is released only once the new one is
 *	open: on failure it returns -1 with a reason in err and lines keep
 *	going where they went.
 *	mh_log_reopen(): for a file, open the same path again (logrotate
 *	renamed the old one) and move the new file onto the old descriptor
 *	number with dup3(2), so the switch is atomic and mh_log_fd() keeps
 *	its value; if the open fails, lines keep going to the old file and
 *	it returns -1 with err. stderr, syslog: nothing to do, 0.
 *	mh_log_chown(uid, gid): fchown(2) the open file, so processes that
 *	dropped privileges to uid can reopen it after a rotation. Not a
 *	file: 0.
 *	mh_log_fd(): 2 for stderr, the file's descriptor, -1 for syslog
 *	(e.g. to keep it open across a close of every other descriptor).
 *
 * DIAGNOSTICS
 *	An unknown MILTERHUB_LOG_LEVEL is ignored (threshold stays INFO).
 *	"cannot open log file PATH: reason", "log file must be an absolute
 *	path, got 'x'", "unknown syslog facility 'x'", "cannot chown log
 *	file PATH: reason" in err.
 *	Write errors are ignored: there is nowhere to report them.
 *	openlog(3) cannot fail visibly: without a syslog daemon lines are
 *	lost (glibc tries /dev/console only with LOG_CONS, not used here).
 */
#include "util/mh_log.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#define MH_LOG_LINE 2048
#define MH_LOG_PREFIX 160 /* time stamp, ident, pid, level, id */

enum log_target { TARGET_STDERR, TARGET_FILE, TARGET_SYSLOG };

static int log_level = -1; /* -1: not yet initialised from the environment */
static char log_ident[64] = "milterhub";

static enum log_target target = TARGET_STDERR;
static int file_fd = -1; /* TARGET_FILE: the open file */
static char *file_path; /* TARGET_FILE: its path, for mh_log_reopen (owned) */
static char syslog_ident[64]; /* openlog(3) keeps the pointer: must stay put */
static int syslog_facility_id; /* TARGET_SYSLOG: LOG_MAIL & co */

/* Indexed by enum mh_log_level. */
static const char *const level_names[] = {"DEBUG", "INFO", "STATS", "WARN", "ERR"};
static const int level_priorities[] = {LOG_DEBUG, LOG_INFO, LOG_INFO, LOG_WARNING, LOG_ERR};
#define LEVELS (sizeof(level_names) / sizeof(level_names[0]))
_Static_assert(LEVELS == MH_LOG_ERR + 1 &&
                   sizeof(level_priorities) / sizeof(level_priorities[0]) == LEVELS,
               "one name and one syslog priority per enum mh_log_level");

static long log_pid; /* 0: not read yet, or reset in a fork()ed child */

static void pid_reset(void)
{
	log_pid = 0;
}

static long cached_pid(void)
{
	static int hooked;
	if (!hooked) {
		hooked = 1;
		(void)pthread_atfork(NULL, NULL, pid_reset);
	}
	if (log_pid == 0)
		log_pid = (long)getpid();
	return log_pid;
}

static int level_from_env(void)
{
	static const struct {
		const char *name;
		enum mh_log_level level;
	} names[] = {
	    {"debug", MH_LOG_DEBUG},      {"info", MH_LOG_INFO}, {"statistics", MH_LOG_STATISTICS},
	    {"stats", MH_LOG_STATISTICS}, {"warn", MH_LOG_WARN}, {"warning", MH_LOG_WARN},
	    {"err", MH_LOG_ERR},          {"error", MH_LOG_ERR}};
	const char *v = getenv("MILTERHUB_LOG_LEVEL");
	if (v != NULL)
		for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
			if (strcasecmp(v, names[i].name) == 0)
				return (int)names[i].level;
	return MH_LOG_INFO;
}

static void set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
	if (err == NULL || errlen == 0)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

void mh_log_set_level(enum mh_log_level lvl)
{
	log_level = (int)lvl;
}

void mh_log_set_ident(const char *ident)
{
	snprintf(log_ident, sizeof(log_ident), "%s", ident ? ident : "milterhub");
	if (target == TARGET_SYSLOG) {
		int saved_errno = errno;
		closelog();
		snprintf(syslog_ident, sizeof(syslog_ident), "%s", log_ident);
		openlog(syslog_ident, LOG_PID | LOG_NDELAY, syslog_facility_id);
		errno = saved_errno;
	}
}

static void write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return;
		}
		p += w;
		n -= (size_t)w;
	}
}

/* "2026-11-29T19:40:01.123Z " into buf; the date part is cached per second. */
static int time_stamp(char *buf, size_t size)
{
	static time_t cached_sec = (time_t)-1;
	static char cached[32]; /* "2026-11-29T19:40:01" */
	struct timespec ts;
	struct tm tm;
	if (clock_gettime(CLOCK_REALTIME, &ts) < 0) {
		ts.tv_sec = 0;
		ts.tv_nsec = 0;
	}
	if (ts.tv_sec != cached_sec) {
		if (gmtime_r(&ts.tv_sec, &tm) == NULL ||
		    strftime(cached, sizeof(cached), "%Y-%m-%dT%H:%M:%S", &tm) == 0)
			snprintf(cached, sizeof(cached), "1970-01-01T00:00:00");
		cached_sec = ts.tv_sec;
	}
	return snprintf(buf, size, "%s.%03ldZ ", cached, (long)(ts.tv_nsec / 1000000));
}

/* The part of the line before the message, as the current target wants it. */
static int line_prefix(char *buf, size_t size, unsigned li, uint64_t id)
{
	char idpart[32] = "";
	if (id != 0)
		snprintf(idpart, sizeof(idpart), "[%" PRIu64 "] ", id);
	if (target ==
	    TARGET_SYSLOG) /* syslog adds time, ident and pid; the priority is the level */
		return snprintf(buf, size, "%s", idpart);
	int t = target == TARGET_FILE ? time_stamp(buf, size) : 0;
	if (t < 0 || (size_t)t >= size)
		return -1;
	int p = snprintf(buf + t, size - (size_t)t, "%s[%ld]: %s %s", log_ident, cached_pid(),
	                 level_names[li], idpart);
	return p < 0 ? -1 : t + p;
}

void mh_log(enum mh_log_level lvl, uint64_t id, const char *fmt, ...)
{
	if (log_level < 0)
		log_level = level_from_env();
	if ((int)lvl < log_level)
		return;
	int saved_errno = errno;
	unsigned li = (unsigned)lvl < LEVELS ? (unsigned)lvl : MH_LOG_ERR;

	char prefix[MH_LOG_PREFIX];
	int p = line_prefix(prefix, sizeof(prefix), li, id);
	if (p < 0 || (size_t)p >= sizeof(prefix)) {
		errno = saved_errno;
		return;
	}
	char stackbuf[MH_LOG_LINE];
	char *line = stackbuf;
	size_t size = sizeof(stackbuf);
	char *heap = NULL;
	int n;
	for (;;) {
		memcpy(line, prefix, (size_t)p);
		va_list ap;
		va_start(ap, fmt);
		errno = saved_errno; /* for %m */
		int m = vsnprintf(line + p, size - (size_t)p, fmt, ap);
		va_end(ap);
		if (m < 0) {
			n = -1;
			break;
		}
		n = p + m;
		/* Room for the newline too; retry once on the heap if needed. */
		if ((size_t)n + 1 < size || heap != NULL)
			break;
		size = (size_t)n + 2;
		heap = malloc(size);
		if (heap == NULL)
			break; /* send the truncated line rather than nothing */
		line = heap;
	}
	if (n >= 0) {
		size_t len = (size_t)n < size - 1 ? (size_t)n : size - 2;
		if (target == TARGET_SYSLOG) {
			if (len > 0 && line[len - 1] == '\n')
				len--;
			line[len] = '\0';
			syslog(level_priorities[li], "%s", line);
		} else {
			if (len == 0 || line[len - 1] != '\n')
				line[len++] = '\n';
			write_all(target == TARGET_FILE ? file_fd : 2, line, len);
		}
	}
	free(heap);
	errno = saved_errno;
}

/* ------------------------------------------------------------------ targets */

static int facility_id(const char *name, int *out)
{
	static const struct {
		const char *name;
		int id;
	} facilities[] = {
	    {"auth", LOG_AUTH},     {"authpriv", LOG_AUTHPRIV}, {"cron", LOG_CRON},
	    {"daemon", LOG_DAEMON}, {"ftp", LOG_FTP},           {"kern", LOG_KERN},
	    {"lpr", LOG_LPR},       {"mail", LOG_MAIL},         {"news", LOG_NEWS},
	    {"syslog", LOG_SYSLOG}, {"user", LOG_USER},         {"uucp", LOG_UUCP},
	    {"local0", LOG_LOCAL0}, {"local1", LOG_LOCAL1},     {"local2", LOG_LOCAL2},
	    {"local3", LOG_LOCAL3}, {"local4", LOG_LOCAL4},     {"local5", LOG_LOCAL5},
	    {"local6", LOG_LOCAL6}, {"local7", LOG_LOCAL7},
	};
	for (size_t i = 0; i < sizeof(facilities) / sizeof(facilities[0]); i++)
		if (strcmp(name, facilities[i].name) == 0) {
			*out = facilities[i].id;
			return 0;
		}
	return -1;
}

static int open_file(const char *path, char *err, size_t errlen)
{
	int fd;
	do
		fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
	while (fd < 0 && errno == EINTR);
	if (fd < 0)
		set_err(err, errlen, "cannot open log file %s: %s", path, strerror(errno));
	return fd;
}

/* Let go of the current target (the new one is already open). */
static void release_target(void)
{
	if (target == TARGET_FILE) {
		close(file_fd);
		file_fd = -1;
		free(file_path);
		file_path = NULL;
	} else if (target == TARGET_SYSLOG) {
		closelog();
	}
	target = TARGET_STDERR;
}

int mh_log_open(const char *where, const char *facility, char *err, size_t errlen)
{
	int saved_errno = errno;
	int rc = 0;
	if (strcmp(where, "stderr") == 0) {
		release_target();
	} else if (strcmp(where, "syslog") == 0) {
		int fac;
		if (facility == NULL)
			facility = "mail";
		if (facility_id(facility, &fac) < 0) {
			set_err(err, errlen, "unknown syslog facility '%s'", facility);
			rc = -1;
		} else {
			release_target();
			snprintf(syslog_ident, sizeof(syslog_ident), "%s", log_ident);
			syslog_facility_id = fac;
			openlog(syslog_ident, LOG_PID | LOG_NDELAY, fac);
			target = TARGET_SYSLOG;
		}
	} else if (where[0] != '/') {
		set_err(err, errlen, "log file must be an absolute path, got '%s'", where);
		rc = -1;
	} else {
		char *path = strdup(where);
		int fd = path ? open_file(where, err, errlen) : -1;
		if (path == NULL)
			set_err(err, errlen, "cannot open log file %s: out of memory", where);
		if (fd < 0) {
			free(path);
			rc = -1;
		} else {
			release_target();
			file_fd = fd;
			file_path = path;
			target = TARGET_FILE;
		}
	}
	errno = saved_errno;
	return rc;
}

int mh_log_reopen(char *err, size_t errlen)
{
	if (target != TARGET_FILE)
		return 0;
	int saved_errno = errno;
	int rc = 0;
	int fd = open_file(file_path, err, errlen);
	if (fd < 0) {
		rc = -1; /* lines keep going to the old file */
	} else if (fd != file_fd) {
		/* Same descriptor number, switched atomically, still close-on-exec. */
		if (dup3(fd, file_fd, O_CLOEXEC) < 0) {
			set_err(err, errlen, "cannot reopen log file %s: %s", file_path,
			        strerror(errno));
			rc = -1;
		}
		close(fd);
	}
	errno = saved_errno;
	return rc;
}

int mh_log_chown(unsigned uid, unsigned gid, char *err, size_t errlen)
{
	if (target != TARGET_FILE)
		return 0;
	int saved_errno = errno;
	int rc = 0;
	if (fchown(file_fd, (uid_t)uid, (gid_t)gid) < 0) {
		set_err(err, errlen, "cannot chown log file %s: %s", file_path, strerror(errno));
		rc = -1;
	}
	errno = saved_errno;
	return rc;
}

int mh_log_fd(void)
{
	switch (target) {
	case TARGET_FILE:
		return file_fd;
	case TARGET_SYSLOG:
		return -1;
	case TARGET_STDERR:
		break;
	}
	return 2;
}
