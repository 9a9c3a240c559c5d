/*
 * test_log - mh_log line format, id part, threshold, ident, long lines,
 * MILTERHUB_LOG_LEVEL as the initial threshold, errno preserved, the
 * cached pid refreshed in a fork()ed child.
 * stderr is redirected to a temporary file and read back.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
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

int main(void)
{
	setenv("MILTERHUB_LOG_LEVEL", "debug", 1);
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(env_sets_initial_threshold),
	    cmocka_unit_test(line_format_with_and_without_id),
	    cmocka_unit_test(threshold_drops_lower_levels),
	    cmocka_unit_test(ident_and_long_line),
	    cmocka_unit_test(errno_is_preserved),
	    cmocka_unit_test(forked_child_logs_its_own_pid),
	};
	return cmocka_run_group_tests(tests, redirect, restore);
}
