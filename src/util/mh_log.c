/*
 * mh_log - log lines on stderr.
 *
 * SUMMARY
 *	mh_log(level, id, fmt, ...) writes "IDENT[pid]: LEVEL [id] message\n"
 *	to file descriptor 2. id 0 means "no session" and omits the "[id] "
 *	part. LEVEL is one of DEBUG, INFO, WARN, ERR.
 *
 * CONTRACT
 *	Each line goes out in a single write(2), so lines from several
 *	processes sharing stderr (master, workers, tools) do not interleave.
 *	A trailing newline in the message is not doubled.
 *	errno is preserved across the call, so "%m" and callers that log
 *	before inspecting errno both work.
 *	The threshold starts at INFO, or at MILTERHUB_LOG_LEVEL
 *	(debug|info|warn|err, also warning|error; case-insensitive) if set in the environment;
 *	mh_log_set_level() overrides it. Lines below the threshold are
 *	dropped before any formatting.
 *	mh_log_set_ident() copies the name (truncated to 63 bytes).
 *	The pid is cached (one getpid(2) per process, not per line: the hub
 *	logs lines per session) and refreshed in the child of a fork() by a
 *	pthread_atfork() handler, so children after fork() log their own.
 *
 * DIAGNOSTICS
 *	An unknown MILTERHUB_LOG_LEVEL is ignored (threshold stays INFO).
 *	Write errors on stderr are ignored: there is nowhere to report them.
 */
#include "util/mh_log.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define MH_LOG_LINE 2048

static int log_level = -1; /* -1: not yet initialised from the environment */
static char log_ident[64] = "milterhub";

static const char *const level_names[] = {"DEBUG", "INFO", "WARN", "ERR"};

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
	} names[] = {{"debug", MH_LOG_DEBUG},  {"info", MH_LOG_INFO}, {"warn", MH_LOG_WARN},
	             {"warning", MH_LOG_WARN}, {"err", MH_LOG_ERR},   {"error", MH_LOG_ERR}};
	const char *v = getenv("MILTERHUB_LOG_LEVEL");
	if (v != NULL)
		for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
			if (strcasecmp(v, names[i].name) == 0)
				return (int)names[i].level;
	return MH_LOG_INFO;
}

void mh_log_set_level(enum mh_log_level lvl)
{
	log_level = (int)lvl;
}

void mh_log_set_ident(const char *ident)
{
	snprintf(log_ident, sizeof(log_ident), "%s", ident ? ident : "milterhub");
}

static void write_all(const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(2, p, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return;
		}
		p += w;
		n -= (size_t)w;
	}
}

void mh_log(enum mh_log_level lvl, uint64_t id, const char *fmt, ...)
{
	if (log_level < 0)
		log_level = level_from_env();
	if ((int)lvl < log_level)
		return;
	int saved_errno = errno;
	unsigned li = (unsigned)lvl < 4 ? (unsigned)lvl : MH_LOG_ERR;

	long pid = cached_pid();
	char stackbuf[MH_LOG_LINE];
	char *line = stackbuf;
	size_t size = sizeof(stackbuf);
	char *heap = NULL;
	int n;
	for (;;) {
		int p;
		if (id != 0)
			p = snprintf(line, size, "%s[%ld]: %s [%" PRIu64 "] ", log_ident, pid,
			             level_names[li], id);
		else
			p = snprintf(line, size, "%s[%ld]: %s ", log_ident, pid, level_names[li]);
		if (p < 0 || (size_t)p >= size) {
			n = -1;
			break;
		}
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
		if (len == 0 || line[len - 1] != '\n')
			line[len++] = '\n';
		write_all(line, len);
	}
	free(heap);
	errno = saved_errno;
}

/* Placeholders until the file and syslog targets land (issue 5). */
int mh_log_open(const char *target, const char *facility, char *err, size_t errlen)
{
	(void)facility;
	if (strcmp(target, "stderr") == 0)
		return 0;
	snprintf(err, errlen, "log target '%s' not supported yet", target);
	return -1;
}

int mh_log_reopen(char *err, size_t errlen)
{
	(void)err;
	(void)errlen;
	return 0;
}

int mh_log_chown(unsigned uid, unsigned gid, char *err, size_t errlen)
{
	(void)uid;
	(void)gid;
	(void)err;
	(void)errlen;
	return 0;
}

int mh_log_fd(void)
{
	return 2;
}
