/*
 * test_log - mh_log line format, id part, threshold, ident, long lines,
 * MILTERHUB_LOG_LEVEL as the initial threshold, errno preserved, the
 * cached pid refreshed in a fork()ed child; the targets: a file (time
 * stamped format, append, mode, reopen after a rename, reopen failure
 * keeping the old file, chown), syslog (open works without a daemon;
 * openlog's arguments, each line's priority and text, seen through
 * interposed openlog/syslog that then call libc's own),
 * refused targets keeping the previous one; the statistics level (STATS
 * prefix, its place between info and warn, LOG_INFO for syslog, the names
 * "statistics" and "stats" in MILTERHUB_LOG_LEVEL, checked in a re-executed
 * copy of this program).
 * stderr is redirected to a temporary file and read back; file targets
 * live in a fresh temporary directory per test.
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <regex.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "util/mh_log.h"

static int saved_stderr = -1;
static int reader = -1; /* own offset: reads what was logged since last take() */
static char path[] = "/tmp/mh-log-XXXXXX";

static int redirect(void **state)
{
	int fd = mkstemp(path);
	if (fd < 0)
		return -1;
	close(fd);
	reader = open(path, O_RDONLY);
	fd = open(path, O_WRONLY | O_APPEND);
	saved_stderr = dup(2);
	dup2(fd, 2);
	close(fd);
	return 0;
}

static int restore(void **state)
{
	dup2(saved_stderr, 2);
	close(saved_stderr);
	close(reader);
	unlink(path);
	return 0;
}

static char *take(void)
{
	static char text[16384];
	ssize_t n = read(reader, text, sizeof(text) - 1);
	text[n > 0 ? n : 0] = 0;
	return text;
}

static void env_sets_initial_threshold(void **state)
{
	/* setenv before the first mh_log call of the process */
	char want[128];
	mh_debug(0, "debug shown because MILTERHUB_LOG_LEVEL=debug");
	snprintf(want, sizeof(want),
	         "milterhub[%ld]: DEBUG debug shown because MILTERHUB_LOG_LEVEL=debug\n",
	         (long)getpid());
	assert_string_equal(take(), want);
}

static void line_format_with_and_without_id(void **state)
{
	char want[256];
	mh_log_set_level(MH_LOG_INFO);
	mh_info(0, "listening on %s", "unix:/x");
	mh_warn(42, "child %d slow\n", 2); /* a trailing newline is not doubled */
	mh_err(UINT64_MAX, "x");
	snprintf(want, sizeof(want),
	         "milterhub[%ld]: INFO listening on unix:/x\n"
	         "milterhub[%ld]: WARN [42] child 2 slow\n"
	         "milterhub[%ld]: ERR [18446744073709551615] x\n",
	         (long)getpid(), (long)getpid(), (long)getpid());
	assert_string_equal(take(), want);
}

static void threshold_drops_lower_levels(void **state)
{
	mh_log_set_level(MH_LOG_WARN);
	mh_debug(1, "no");
	mh_info(1, "no");
	assert_string_equal(take(), "");
	mh_warn(0, "yes");
	assert_non_null(strstr(take(), "WARN yes\n"));
	mh_log_set_level(MH_LOG_INFO);
}

static void statistics_level_sits_between_info_and_warn(void **state)
{
	char want[512];
	long pid = (long)getpid();

	/* statistics: its own lines and above, no info. */
	mh_log_set_level(MH_LOG_STATISTICS);
	mh_debug(1, "no");
	mh_info(1, "no");
	mh_statistics(9, "[session][end][end-of-message][accept][%g](%d)", 0.25, 9);
	mh_statistics(0, "[sessions][finished] %d(+%d) %d", 29, 2, 3);
	mh_warn(0, "warned");
	mh_err(0, "failed");
	snprintf(want, sizeof(want),
	         "milterhub[%ld]: STATS [9] [session][end][end-of-message][accept][0.25](9)\n"
	         "milterhub[%ld]: STATS [sessions][finished] 29(+2) 3\n"
	         "milterhub[%ld]: WARN warned\n"
	         "milterhub[%ld]: ERR failed\n",
	         pid, pid, pid, pid);
	assert_string_equal(take(), want);

	/* warn: no statistics. */
	mh_log_set_level(MH_LOG_WARN);
	mh_statistics(1, "no");
	assert_string_equal(take(), "");

	/* info: statistics included. */
	mh_log_set_level(MH_LOG_INFO);
	mh_info(0, "chatter");
	mh_statistics(2, "counted");
	snprintf(want, sizeof(want),
	         "milterhub[%ld]: INFO chatter\n"
	         "milterhub[%ld]: STATS [2] counted\n",
	         pid, pid);
	assert_string_equal(take(), want);
	assert_true(MH_LOG_DEBUG < MH_LOG_INFO && MH_LOG_INFO < MH_LOG_STATISTICS &&
	            MH_LOG_STATISTICS < MH_LOG_WARN && MH_LOG_WARN < MH_LOG_ERR);
}

static char self_path[4096]; /* this program, read in main() */

/* Run this program again with MILTERHUB_LOG_LEVEL=value (a fresh threshold):
 * it logs one line per level (probe_levels) on the shared stderr. */
static void probe_with_env(const char *value)
{
	pid_t child = fork();
	assert_true(child >= 0);
	if (child == 0) {
		setenv("MILTERHUB_LOG_LEVEL", value, 1);
		execl(self_path, "test_log", "--probe-levels", (char *)NULL);
		_exit(127);
	}
	int st = 0;
	assert_int_equal(waitpid(child, &st, 0), child);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

static int probe_levels(void)
{
	mh_debug(0, "d");
	mh_info(0, "i");
	mh_statistics(0, "s");
	mh_warn(0, "w");
	mh_err(0, "e");
	return 0;
}

/* The levels of the lines in text, e.g. "STATS WARN ERR". */
static const char *levels_of(const char *text)
{
	static char out[128];
	size_t n = 0;
	out[0] = 0;
	for (const char *p = text; (p = strstr(p, "]: ")) != NULL; p += 3) {
		const char *e = strchr(p + 3, ' ');
		if (e == NULL)
			break;
		n += (size_t)snprintf(out + n, sizeof(out) - n, "%s%.*s", n ? " " : "",
		                      (int)(e - (p + 3)), p + 3);
	}
	return out;
}

static void env_names_the_statistics_level(void **state)
{
	probe_with_env("statistics");
	assert_string_equal(levels_of(take()), "STATS WARN ERR");
	probe_with_env("STATS");
	assert_string_equal(levels_of(take()), "STATS WARN ERR");
	probe_with_env("info");
	assert_string_equal(levels_of(take()), "INFO STATS WARN ERR");
	probe_with_env("warning");
	assert_string_equal(levels_of(take()), "WARN ERR");
	probe_with_env("statistic"); /* unknown: stays info */
	assert_string_equal(levels_of(take()), "INFO STATS WARN ERR");
}

static void ident_and_long_line(void **state)
{
	mh_log_set_ident("milterhub-mta");
	char big[6000];
	memset(big, 'z', sizeof(big) - 1);
	big[sizeof(big) - 1] = 0;
	mh_info(7, "%s", big);
	char *t = take();
	char head[64];
	snprintf(head, sizeof(head), "milterhub-mta[%ld]: INFO [7] zzz", (long)getpid());
	assert_memory_equal(t, head, strlen(head));
	assert_int_equal(strlen(t), strlen(head) - 3 + 5999 + 1);
	assert_int_equal(t[strlen(t) - 1], '\n');
	assert_ptr_equal(strchr(t, '\n'), t + strlen(t) - 1); /* one line, one write */
	mh_log_set_ident("milterhub");
}

static void errno_is_preserved(void **state)
{
	errno = ENOENT;
	mh_info(0, "open failed: %m");
	assert_int_equal(errno, ENOENT);
	assert_non_null(strstr(take(), "open failed: No such file or directory\n"));
}

static void forked_child_logs_its_own_pid(void **state)
{
	char want[256];
	mh_log_set_ident("milterhub");
	mh_log_set_level(MH_LOG_INFO);
	mh_info(0, "parent"); /* the pid is cached now */
	pid_t child = fork();
	assert_true(child >= 0);
	if (child == 0) {
		mh_info(0, "child");
		_exit(0);
	}
	int st = 0;
	assert_int_equal(waitpid(child, &st, 0), child);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	snprintf(want, sizeof(want),
	         "milterhub[%ld]: INFO parent\n"
	         "milterhub[%ld]: INFO child\n",
	         (long)getpid(), (long)child);
	assert_string_equal(take(), want);
}

/* ------------------------------------------------------------- file target */

struct logdir {
	char dir[64];
	char file[128];
};

static void logdir_make(struct logdir *d)
{
	snprintf(d->dir, sizeof(d->dir), "/tmp/mh-logdir-XXXXXX");
	assert_non_null(mkdtemp(d->dir));
	snprintf(d->file, sizeof(d->file), "%s/milterhub.log", d->dir);
}

static void logdir_remove(struct logdir *d)
{
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", d->dir);
	assert_int_equal(system(cmd), 0);
}

/* The whole content of a file (static buffer), "" if it does not exist. */
static char *slurp(const char *file)
{
	static char text[16384];
	text[0] = 0;
	int fd = open(file, O_RDONLY);
	if (fd < 0)
		return text;
	ssize_t n = read(fd, text, sizeof(text) - 1);
	text[n > 0 ? n : 0] = 0;
	close(fd);
	return text;
}

static void back_to_stderr(void)
{
	char err[256];
	assert_int_equal(mh_log_open("stderr", NULL, err, sizeof(err)), 0);
	assert_int_equal(mh_log_fd(), 2);
}

static void assert_matches(const char *text, const char *pattern)
{
	regex_t re;
	assert_int_equal(regcomp(&re, pattern, REG_EXTENDED | REG_NOSUB), 0);
	int rc = regexec(&re, text, 0, NULL, 0);
	regfree(&re);
	if (rc != 0)
		fail_msg("%s\ndoes not match\n%s", text, pattern);
}

static void file_target_time_stamps_each_line(void **state)
{
	struct logdir d;
	char err[256] = "", pattern[512];
	logdir_make(&d);
	mh_log_set_level(MH_LOG_INFO);
	mode_t old_mask = umask(022);
	assert_int_equal(mh_log_open(d.file, NULL, err, sizeof(err)), 0);
	umask(old_mask);
	int fd = mh_log_fd();
	assert_true(fd > 2);
	assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
	assert_int_equal(fcntl(fd, F_GETFL) & (O_APPEND | O_ACCMODE), O_APPEND | O_WRONLY);

	mh_info(0, "listening on %s", "unix:/x");
	mh_warn(42, "child %d slow\n", 2);
	errno = EACCES;
	mh_err(7, "bind: %m");
	assert_int_equal(errno, EACCES);

	snprintf(pattern, sizeof(pattern),
	         "^[0-9]{4}-[01][0-9]-[0-3][0-9]T[0-2][0-9]:[0-5][0-9]:[0-6][0-9]\\.[0-9]{3}Z "
	         "milterhub\\[%ld\\]: INFO listening on unix:/x\n"
	         "[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}Z "
	         "milterhub\\[%ld\\]: WARN \\[42\\] child 2 slow\n"
	         "[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}Z "
	         "milterhub\\[%ld\\]: ERR \\[7\\] bind: Permission denied\n$",
	         (long)getpid(), (long)getpid(), (long)getpid());
	assert_matches(slurp(d.file), pattern);
	assert_string_equal(take(), ""); /* nothing on stderr */

	struct stat st;
	assert_int_equal(stat(d.file, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0640);

	/* The stamp is UTC now, to the second (allow a tick between the two). */
	time_t now = time(NULL);
	struct tm tm;
	char want[32], want2[32];
	time_t later = now + 1;
	strftime(want, sizeof(want), "%Y-%m-%dT%H:%M:%S", gmtime_r(&now, &tm));
	strftime(want2, sizeof(want2), "%Y-%m-%dT%H:%M:%S", gmtime_r(&later, &tm));
	mh_info(0, "now");
	char *t = strstr(slurp(d.file), "ERR [7]");
	assert_non_null(t);
	t = strchr(t, '\n') + 1;
	assert_true(strncmp(t, want, strlen(want)) == 0 || strncmp(t, want2, strlen(want2)) == 0);

	back_to_stderr();
	mh_info(0, "back");
	assert_non_null(strstr(take(), "INFO back\n"));
	assert_null(strstr(slurp(d.file), "back"));
	logdir_remove(&d);
}

static void file_target_appends(void **state)
{
	struct logdir d;
	char err[256];
	logdir_make(&d);
	int fd = open(d.file, O_WRONLY | O_CREAT, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "earlier line\n", 13), 13);
	close(fd);

	assert_int_equal(mh_log_open(d.file, NULL, err, sizeof(err)), 0);
	mh_info(0, "first");
	/* Opening the same file again (a reload) appends too. */
	assert_int_equal(mh_log_open(d.file, NULL, err, sizeof(err)), 0);
	mh_info(0, "second");
	/* Forked children share the file; each line still whole, with its pid. */
	pid_t child = fork();
	assert_true(child >= 0);
	if (child == 0) {
		mh_info(0, "from the child");
		_exit(0);
	}
	int st = 0;
	assert_int_equal(waitpid(child, &st, 0), child);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	back_to_stderr();

	char pattern[512];
	snprintf(pattern, sizeof(pattern),
	         "^earlier line\n"
	         "[-0-9T:.]+Z milterhub\\[%ld\\]: INFO first\n"
	         "[-0-9T:.]+Z milterhub\\[%ld\\]: INFO second\n"
	         "[-0-9T:.]+Z milterhub\\[%ld\\]: INFO from the child\n$",
	         (long)getpid(), (long)getpid(), (long)child);
	assert_matches(slurp(d.file), pattern);
	assert_string_equal(take(), "");
	logdir_remove(&d);
}

static void file_reopen_after_rename_starts_a_new_file(void **state)
{
	struct logdir d;
	char err[256], rotated[160];
	logdir_make(&d);
	snprintf(rotated, sizeof(rotated), "%s.1", d.file);
	assert_int_equal(mh_log_open(d.file, NULL, err, sizeof(err)), 0);
	int fd = mh_log_fd();
	mh_info(0, "one");
	assert_int_equal(rename(d.file, rotated), 0); /* logrotate */
	mh_info(0, "two"); /* still the old file */
	errno = ENOTDIR;
	mode_t old_mask = umask(022);
	assert_int_equal(mh_log_reopen(err, sizeof(err)), 0);
	umask(old_mask);
	assert_int_equal(errno, ENOTDIR);
	assert_int_equal(mh_log_fd(), fd); /* same number, switched in place */
	assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
	mh_info(0, "three");
	back_to_stderr();

	char *old = slurp(rotated);
	assert_non_null(strstr(old, "INFO one\n"));
	assert_non_null(strstr(old, "INFO two\n"));
	assert_null(strstr(old, "three"));
	char *now = slurp(d.file);
	assert_non_null(strstr(now, "INFO three\n"));
	assert_null(strstr(now, "one"));
	struct stat st;
	assert_int_equal(stat(d.file, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0640); /* made by the reopen, under umask 022 */
	logdir_remove(&d);
}

static void file_reopen_failure_keeps_writing_to_the_old_file(void **state)
{
	struct logdir d;
	char err[256] = "", sub[96], inner[160], moved[160];
	logdir_make(&d);
	snprintf(sub, sizeof(sub), "%s/sub", d.dir);
	snprintf(inner, sizeof(inner), "%s/milterhub.log", sub);
	snprintf(moved, sizeof(moved), "%s/moved.log", d.dir);
	assert_int_equal(mkdir(sub, 0700), 0);
	assert_int_equal(mh_log_open(inner, NULL, err, sizeof(err)), 0);
	mh_info(0, "before");
	/* The file moves away and its directory disappears: the path cannot be made again. */
	assert_int_equal(rename(inner, moved), 0);
	assert_int_equal(rmdir(sub), 0);
	errno = EBADF;
	assert_int_equal(mh_log_reopen(err, sizeof(err)), -1);
	assert_int_equal(errno, EBADF);
	assert_non_null(strstr(err, inner));
	assert_non_null(strstr(err, "No such file or directory"));
	mh_info(0, "after");
	back_to_stderr();
	char *text = slurp(moved);
	assert_non_null(strstr(text, "INFO before\n"));
	assert_non_null(strstr(text, "INFO after\n"));
	assert_string_equal(take(), "");
	logdir_remove(&d);
}

static void refused_targets_keep_the_previous_one(void **state)
{
	char err[256] = "";
	errno = EINTR;
	assert_int_equal(mh_log_open("/nonexistent-mh-dir/x.log", NULL, err, sizeof(err)), -1);
	assert_int_equal(errno, EINTR);
	assert_non_null(strstr(err, "/nonexistent-mh-dir/x.log"));
	assert_int_equal(mh_log_open("relative.log", NULL, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "absolute"));
	assert_int_equal(mh_log_open("syslog", "mial", err, sizeof(err)), -1);
	assert_non_null(strstr(err, "mial"));
	assert_int_equal(mh_log_fd(), 2);
	mh_info(0, "still on stderr");
	assert_non_null(strstr(take(), "INFO still on stderr\n"));
	/* Not a file: reopen and chown have nothing to do. */
	assert_int_equal(mh_log_reopen(err, sizeof(err)), 0);
	assert_int_equal(mh_log_chown(0, 0, err, sizeof(err)), 0);
}

static void file_chown_hands_the_file_to_the_workers_user(void **state)
{
	struct logdir d;
	char err[256] = "";
	logdir_make(&d);
	assert_int_equal(mh_log_open(d.file, NULL, err, sizeof(err)), 0);
	/* As root: to nobody (as the master does for `user`); else to ourselves. */
	unsigned uid = getuid() == 0 ? 65534 : (unsigned)getuid();
	unsigned gid = getuid() == 0 ? 65534 : (unsigned)getgid();
	assert_int_equal(mh_log_chown(uid, gid, err, sizeof(err)), 0);
	struct stat st;
	assert_int_equal(stat(d.file, &st), 0);
	assert_int_equal(st.st_uid, uid);
	assert_int_equal(st.st_gid, gid);
	if (getuid() != 0) {
		/* Giving a file away needs root: refused, with a reason. */
		assert_int_equal(mh_log_chown(0, 0, err, sizeof(err)), -1);
		assert_non_null(strstr(err, d.file));
	}
	back_to_stderr();
	logdir_remove(&d);
}

/* ----------------------------------------------------------- syslog target */

/*
 * The test executable's openlog/closelog/syslog win over libc's (symbol
 * interposition), record their arguments, and pass on to libc's own (RTLD_NEXT),
 * so the real calls still run; without a syslog daemon their lines are lost.
 */
static struct {
	int opens, closes, lines;
	char ident[64];
	int option, facility;
	int priority; /* of the last line */
	char text[1024]; /* of the last line, formatted */
} seen;

void openlog(const char *ident, int option, int facility)
{
	seen.opens++;
	snprintf(seen.ident, sizeof(seen.ident), "%s", ident ? ident : "(null)");
	seen.option = option;
	seen.facility = facility;
	void (*real)(const char *, int, int) =
	    (void (*)(const char *, int, int))dlsym(RTLD_NEXT, "openlog");
	if (real)
		real(ident, option, facility);
}

void closelog(void)
{
	seen.closes++;
	void (*real)(void) = (void (*)(void))dlsym(RTLD_NEXT, "closelog");
	if (real)
		real();
}

void syslog(int priority, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(seen.text, sizeof(seen.text), fmt, ap);
	va_end(ap);
	seen.lines++;
	seen.priority = priority;
	void (*real)(int, const char *, va_list) =
	    (void (*)(int, const char *, va_list))dlsym(RTLD_NEXT, "vsyslog");
	if (real) {
		va_start(ap, fmt);
		real(priority, fmt, ap);
		va_end(ap);
	}
}

static void syslog_target_opens_without_a_daemon(void **state)
{
	char err[256] = "";
	memset(&seen, 0, sizeof(seen));
	mh_log_set_level(MH_LOG_DEBUG);
	errno = ERANGE;
	assert_int_equal(mh_log_open("syslog", "mail", err, sizeof(err)), 0);
	assert_int_equal(errno, ERANGE);
	assert_int_equal(mh_log_fd(), -1);
	assert_int_equal(seen.opens, 1);
	assert_string_equal(seen.ident, "milterhub");
	assert_int_equal(seen.option, LOG_PID | LOG_NDELAY);
	assert_int_equal(seen.facility, LOG_MAIL);

	/* Lines go to syslog, never to stderr; errno kept. */
	errno = ERANGE;
	mh_info(3, "to syslog");
	assert_int_equal(errno, ERANGE);
	assert_int_equal(seen.lines, 1);
	assert_int_equal(seen.priority, LOG_INFO);
	assert_string_equal(seen.text, "[3] to syslog"); /* no ident, pid, LEVEL: syslog's job */
	mh_debug(0, "debug line\n");
	assert_int_equal(seen.priority, LOG_DEBUG);
	assert_string_equal(seen.text, "debug line"); /* the newline is not sent */
	mh_warn(18446744073709551615u, "warned");
	assert_int_equal(seen.priority, LOG_WARNING);
	assert_string_equal(seen.text, "[18446744073709551615] warned");
	mh_statistics(12, "[milter][end][connect][pass][%g](12): spam", 1.5);
	assert_int_equal(seen.priority, LOG_INFO); /* statistics: an info priority */
	assert_string_equal(seen.text, "[12] [milter][end][connect][pass][1.5](12): spam");
	errno = ENOENT;
	mh_err(0, "open: %m");
	assert_int_equal(errno, ENOENT);
	assert_int_equal(seen.priority, LOG_ERR);
	assert_string_equal(seen.text, "open: No such file or directory");
	char big[3000];
	memset(big, 'y', sizeof(big) - 1);
	big[sizeof(big) - 1] = 0;
	mh_info(5, "%s", big);
	assert_int_equal(strlen(seen.text), sizeof(seen.text) - 1); /* the recorder's limit */
	assert_memory_equal(seen.text, "[5] yyy", 7);

	/* A new ident is passed on to syslog at once. */
	mh_log_set_ident("milterhub-test");
	assert_string_equal(seen.ident, "milterhub-test");
	assert_int_equal(seen.facility, LOG_MAIL);
	mh_log_set_ident("milterhub");
	assert_string_equal(take(), "");

	/* NULL facility is mail; local7 and daemon are known. */
	assert_int_equal(mh_log_open("syslog", NULL, err, sizeof(err)), 0);
	assert_int_equal(seen.facility, LOG_MAIL);
	assert_int_equal(mh_log_open("syslog", "local7", err, sizeof(err)), 0);
	assert_int_equal(seen.facility, LOG_LOCAL7);
	assert_int_equal(mh_log_open("syslog", "daemon", err, sizeof(err)), 0);
	assert_int_equal(seen.facility, LOG_DAEMON);
	int lines = seen.lines;
	back_to_stderr();
	assert_true(seen.closes >= 1);
	mh_info(0, "stderr again");
	assert_int_equal(seen.lines, lines);
	assert_non_null(strstr(take(), "INFO stderr again\n"));
	mh_log_set_level(MH_LOG_INFO);
}

int main(int argc, char **argv)
{
	if (argc > 1 && strcmp(argv[1], "--probe-levels") == 0)
		return probe_levels();
	/* readlink, not exec of /proc/self/exe: names this program under valgrind too */
	ssize_t n = readlink("/proc/self/exe", self_path, sizeof(self_path) - 1);
	self_path[n > 0 ? n : 0] = 0;
	setenv("MILTERHUB_LOG_LEVEL", "debug", 1);
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(env_sets_initial_threshold),
	    cmocka_unit_test(line_format_with_and_without_id),
	    cmocka_unit_test(threshold_drops_lower_levels),
	    cmocka_unit_test(statistics_level_sits_between_info_and_warn),
	    cmocka_unit_test(env_names_the_statistics_level),
	    cmocka_unit_test(ident_and_long_line),
	    cmocka_unit_test(errno_is_preserved),
	    cmocka_unit_test(forked_child_logs_its_own_pid),
	    cmocka_unit_test(file_target_time_stamps_each_line),
	    cmocka_unit_test(file_target_appends),
	    cmocka_unit_test(file_reopen_after_rename_starts_a_new_file),
	    cmocka_unit_test(file_reopen_failure_keeps_writing_to_the_old_file),
	    cmocka_unit_test(refused_targets_keep_the_previous_one),
	    cmocka_unit_test(file_chown_hands_the_file_to_the_workers_user),
	    cmocka_unit_test(syslog_target_opens_without_a_daemon),
	};
	return cmocka_run_group_tests(tests, redirect, restore);
}
