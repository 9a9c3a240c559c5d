/*
 * test_control - mh_control on a real libev loop with real socket
 * clients: an answer then close, word splitting, answers given later,
 * held answers kept open until mh_control_free, bad requests (too
 * long, silent for 5 s, empty, cut short), the 17th client busy, a
 * client gone before its answer, stale socket files replaced and live
 * ones refused, the mode applied, free() unlinking only its own file,
 * forget() in a forked child, and inet.
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
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cmocka.h>

#include "daemon/mh_control.h"
#include "util/mh_buf.h"

#define MAXREQ 40

/* ------------------------------------------------------------ fixture */

enum how { ANSWER_OK, ANSWER_ERROR, HOLD, DEFER, FREE_INSIDE };

struct fx {
	struct ev_loop *loop;
	char dir[64];
	char path[128];
	char spec[160];
	struct mh_control *c;
	/* the handler's behaviour and what it saw */
	enum how how;
	const char *body;
	int calls;
	int argc;
	char argv[8][64];
	struct mh_control_req *pending[MAXREQ];
	int npending;
};

static void handler(struct mh_control_req *r, int argc, char **argv, void *arg)
{
	struct fx *f = arg;
	f->calls++;
	f->argc = argc;
	for (int i = 0; i < argc && i < 8; i++)
		snprintf(f->argv[i], sizeof(f->argv[i]), "%s", argv[i]);
	assert_null(argv[argc]);
	switch (f->how) {
	case ANSWER_OK:
		mh_control_reply(r, 1, f->body);
		break;
	case ANSWER_ERROR:
		mh_control_reply(r, 0, f->body);
		break;
	case HOLD:
		mh_control_hold(r, 1, f->body);
		break;
	case DEFER:
		assert_true(f->npending < MAXREQ);
		f->pending[f->npending++] = r;
		break;
	case FREE_INSIDE:
		mh_control_free(f->c);
		f->c = NULL;
		break;
	}
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	assert_non_null(f);
	f->loop = ev_loop_new(EVFLAG_AUTO);
	assert_non_null(f->loop);
	strcpy(f->dir, "/tmp/mhctlXXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->path, sizeof(f->path), "%s/control.sock", f->dir);
	snprintf(f->spec, sizeof(f->spec), "unix:%s", f->path);
	f->body = "hello";
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	mh_control_free(f->c);
	unlink(f->path);
	char other[160];
	snprintf(other, sizeof(other), "%s/other", f->dir);
	unlink(other);
	rmdir(f->dir);
	ev_loop_destroy(f->loop);
	free(f);
	return 0;
}

static void start(struct fx *f, unsigned mode)
{
	char err[256] = "";
	f->c = mh_control_new(f->loop, f->spec, mode, handler, f, err, sizeof(err));
	if (f->c == NULL)
		fail_msg("mh_control_new: %s", err);
}

/* ------------------------------------------------------------ clients */

static void set_path(struct sockaddr_un *sun, const char *path)
{
	size_t n = strlen(path);
	assert_true(n < sizeof(sun->sun_path));
	memcpy(sun->sun_path, path, n + 1);
}

struct client {
	int fd;
	ev_io w;
	struct mh_buf got;
	int eof;
};

static void on_client_read(struct ev_loop *loop, ev_io *w, int revents)
{
	struct client *cl = w->data;
	char buf[4096];
	ssize_t n = recv(cl->fd, buf, sizeof(buf), MSG_DONTWAIT);
	if (n > 0) {
		mh_buf_append(&cl->got, buf, (size_t)n);
		return;
	}
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	cl->eof = 1; /* EOF or reset: the server closed */
	ev_io_stop(loop, w);
}

static struct client *client_connect_addr(struct fx *f, const struct sockaddr *sa, socklen_t len)
{
	struct client *cl = calloc(1, sizeof(*cl));
	assert_non_null(cl);
	cl->fd = socket(sa->sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(cl->fd >= 0);
	if (connect(cl->fd, sa, len) < 0)
		fail_msg("connect: %s", strerror(errno));
	fcntl(cl->fd, F_SETFL, fcntl(cl->fd, F_GETFL) | O_NONBLOCK);
	ev_io_init(&cl->w, on_client_read, cl->fd, EV_READ);
	cl->w.data = cl;
	ev_io_start(f->loop, &cl->w);
	return cl;
}

static struct client *client_connect(struct fx *f)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	set_path(&sun, f->path);
	return client_connect_addr(f, (struct sockaddr *)&sun, sizeof(sun));
}

static void client_send(struct client *cl, const char *s, size_t n)
{
	size_t off = 0;
	while (off < n) {
		ssize_t w = send(cl->fd, s + off, n - off, MSG_NOSIGNAL);
		if (w < 0 && errno == EAGAIN)
			continue;
		assert_true(w > 0);
		off += (size_t)w;
	}
}

static struct client *client_ask(struct fx *f, const char *line)
{
	struct client *cl = client_connect(f);
	client_send(cl, line, strlen(line));
	return cl;
}

static void client_close(struct fx *f, struct client *cl)
{
	ev_io_stop(f->loop, &cl->w);
	close(cl->fd);
	mh_buf_free(&cl->got);
	free(cl);
}

static const char *got(const struct client *cl)
{
	return cl->got.data ? (const char *)cl->got.data : "";
}

/* ------------------------------------------------------------ the loop */

static void on_guard(struct ev_loop *loop, ev_timer *w, int revents)
{
	*(int *)w->data = 1;
}

/* Run the loop until *done (or all of cls[] have EOF when done is NULL), at most secs. */
static void run_until_eof(struct fx *f, struct client **cls, int n, double secs)
{
	int expired = 0;
	ev_timer guard;
	ev_timer_init(&guard, on_guard, secs, 0);
	guard.data = &expired;
	ev_timer_start(f->loop, &guard);
	for (;;) {
		int all = 1;
		for (int i = 0; i < n; i++)
			all &= cls[i]->eof;
		if (all || expired)
			break;
		ev_run(f->loop, EVRUN_ONCE);
	}
	ev_timer_stop(f->loop, &guard);
}

static void run_for(struct fx *f, double secs)
{
	int expired = 0;
	ev_timer guard;
	ev_timer_init(&guard, on_guard, secs, 0);
	guard.data = &expired;
	ev_timer_start(f->loop, &guard);
	while (!expired)
		ev_run(f->loop, EVRUN_ONCE);
}

static void expect_answer(struct fx *f, struct client *cl, const char *want)
{
	run_until_eof(f, &cl, 1, 3.0);
	assert_true(cl->eof);
	assert_string_equal(got(cl), want);
}

/* ------------------------------------------------------------ the tests */

static void request_gets_its_answer_and_the_connection_closes(void **state)
{
	struct fx *f = *state;
	start(f, 0600);
	struct client *cl = client_ask(f, "status --json\n");
	expect_answer(f, cl, "ok\nhello\n");
	assert_int_equal(f->calls, 1);
	assert_int_equal(f->argc, 2);
	assert_string_equal(f->argv[0], "status");
	assert_string_equal(f->argv[1], "--json");
	client_close(f, cl);
}

static void words_are_split_and_error_answers_carry_their_body(void **state)
{
	struct fx *f = *state;
	start(f, 0600);
	f->how = ANSWER_ERROR;
	f->body = "unknown child 'spam'\n"; /* already ends with "\n": not doubled */
	struct client *cl = client_ask(f, "  enable  spam\tx \r\n");
	expect_answer(f, cl, "error\nunknown child 'spam'\n");
	assert_int_equal(f->argc, 3);
	assert_string_equal(f->argv[0], "enable");
	assert_string_equal(f->argv[1], "spam");
	assert_string_equal(f->argv[2], "x");
	client_close(f, cl);
}

static void empty_body_is_just_the_status_line(void **state)
{
	struct fx *f = *state;
	start(f, 0600);
	f->body = NULL;
	struct client *cl = client_ask(f, "reload\n");
	expect_answer(f, cl, "ok\n");
	client_close(f, cl);
	f->body = "";
	cl = client_ask(f, "reload\n");
	expect_answer(f, cl, "ok\n");
	client_close(f, cl);
}

static void line_sent_in_pieces_is_one_request(void **state)
{
	struct fx *f = *state;
	start(f, 0600);
	struct client *cl = client_connect(f);
	client_send(cl, "sta", 3);
	run_for(f, 0.05);
	assert_int_equal(f->calls, 0);
	client_send(cl, "tus\nignored after the line", 26);
	expect_answer(f, cl, "ok\nhello\n");
	assert_int_equal(f->argc, 1);
	assert_string_equal(f->argv[0], "status");
	client_close(f, cl);
}

static void answer_may_come_later_from_the_loop(void **state)
{
	struct fx *f = *state;
	start(f, 0600);
	f->how = DEFER;
	struct client *cl = client_ask(f, "status\n");
	run_for(f, 0.1);
	assert_int_equal(f->npending, 1);
	assert_false(cl->eof);
	assert_string_equal(got(cl), "");
	mh_control_reply(f->pending[0], 1, "later");
	expect_answer(f, cl, "ok\nlater\n");
	client_close(f, cl);
}

static void held_answer_keeps_the_connection_until_free(void **state)
{
	struct fx *f = *state;
	start(f, 0600);
	f->how = HOLD;
	f->body = "stopping: 2 sessions to drain";
	struct client *cl = client_ask(f, "stop\n");
	run_for(f, 0.3);
	assert_string_equal(got(cl), "ok\nstopping: 2 sessions to drain\n");
	assert_false(cl->eof);
	mh_control_free(f->c);
	f->c = NULL;
	run_until_eof(f, &cl, 1, 2.0);
	assert_true(cl->eof);
	assert_string_equal(got(cl), "ok\nstopping: 2 sessions to drain\n");
	struct stat st;
	assert_int_equal(lstat(f->path, &st), -1); /* free() removed the socket file */
	client_close(f, cl);
}

static void held_client_that_leaves_frees_its_slot(void **state)
{
	struct fx *f = *state;
	start(f, 0600);
	f->how = HOLD;
	struct client *held[16];
	for (int i = 0; i < 16; i++)
		held[i] = client_ask(f, "stop\n");
	run_for(f, 0.2);
	assert_int_equal(f->calls, 16);
	for (int i = 0; i < 16; i++)
		client_close(f, held[i]);
	run_for(f, 0.1);
	f->how = ANSWER_OK;
	struct client *cl = client_ask(f, "status\n");
	expect_answer(f, cl, "ok\nhello\n");
	client_close(f, cl);
}

static void over_long_line_is_a_bad_request(void **state)
{
	struct fx *f = *state;
	start(f, 0600);
	char big[2000];
	memset(big, 'a', sizeof(big));
	struct client *cl = client_connect(f);
	client_send(cl, big, sizeof(big));
	expect_answer(f, cl, "error\nbad request: request line longer than 1024 bytes\n");
	assert_int_equal(f->calls, 0);
	client_close(f, cl);

	/* 1024 bytes and the "\n": still one request. */
	char max[1026];
	memset(max, 'b', 1024);
	max[1024] = '\n';
	max[1025] = '\0';
	cl = client_ask(f, max);
	expect_answer(f, cl, "ok\nhello\n");
	assert_int_equal(f->calls, 1);
	assert_int_equal(strlen(f->argv[0]), 63); /* the fixture truncates; the word was whole */
	client_close(f, cl);
}

static void silent_client_gets_bad_request_after_5_s(void **state)
{
	struct fx *f = *state;
	start(f, 0600);
	struct client *silent = client_connect(f);
	struct client *partial = client_connect(f);
	client_send(partial, "stat", 4);
	run_for(f, 4.5);
	assert_false(silent->eof);
	assert_false(partial->eof);
	struct client *both[2] = {silent, partial};
	run_until_eof(f, both, 2, 2.0);
	const char *want = "error\nbad request: no complete request line within 5 s\n";
	assert_true(silent->eof);
	assert_string_equal(got(silent), want);
	assert_true(partial->eof);
	assert_string_equal(got(partial), want);
	assert_int_equal(f->calls, 0);
	client_close(f, silent);
	client_close(f, partial);
}

static void empty_or_cut_short_requests_are_bad(void **state)
{
	struct fx *f = *state;
	start(f, 0600);
	struct client *cl = client_ask(f, " \r\n");
	expect_answer(f, cl, "error\nbad request: empty request line\n");
	client_close(f, cl);

	cl = client_ask(f, "sta");
	shutdown(cl->fd, SHUT_WR);
	expect_answer(f, cl,
	              "error\nbad request: connection closed before the end of the request line\n");
	client_close(f, cl);

	cl = client_connect(f);
	client_send(cl, "st\0tus\n", 7);
	expect_answer(f, cl, "error\nbad request: NUL byte in the request line\n");
	client_close(f, cl);
	assert_int_equal(f->calls, 0);
}

static void seventeenth_client_is_busy(void **state)
{
	struct fx *f = *state;
	start(f, 0600);
	f->how = DEFER;
	struct client *cls[16];
	for (int i = 0; i < 16; i++)
		cls[i] = client_ask(f, "status\n");
	run_for(f, 0.2);
	assert_int_equal(f->npending, 16);
	struct client *extra = client_ask(f, "status\n");
	expect_answer(f, extra, "error\nbusy\n");
	assert_int_equal(f->calls, 16);
	client_close(f, extra);

	for (int i = 0; i < 16; i++)
		mh_control_reply(f->pending[i], 1, "ok then");
	run_until_eof(f, cls, 16, 3.0);
	for (int i = 0; i < 16; i++) {
		assert_true(cls[i]->eof);
		assert_string_equal(got(cls[i]), "ok\nok then\n");
		client_close(f, cls[i]);
	}
	f->how = ANSWER_OK;
	struct client *cl = client_ask(f, "status\n");
	expect_answer(f, cl, "ok\nhello\n");
	client_close(f, cl);
}

static void client_gone_before_its_answer(void **state)
{
	struct fx *f = *state;
	start(f, 0600);
	f->how = DEFER;
	struct client *cl = client_ask(f, "status\n");
	run_for(f, 0.1);
	assert_int_equal(f->npending, 1);
	client_close(f, cl);
	/* A large answer to nobody: EPIPE/ECONNRESET, no SIGPIPE, no leak (ASan). */
	char *big = malloc(1 << 20);
	memset(big, 'x', (1 << 20) - 1);
	big[(1 << 20) - 1] = '\0';
	mh_control_reply(f->pending[0], 1, big);
	free(big);
	run_for(f, 0.1);
	f->how = ANSWER_OK;
	cl = client_ask(f, "status\n");
	expect_answer(f, cl, "ok\nhello\n");
	client_close(f, cl);
}

static void large_answer_is_written_without_blocking(void **state)
{
	struct fx *f = *state;
	start(f, 0600);
	size_t n = 4u << 20; /* more than any socket buffer */
	char *big = malloc(n + 1);
	memset(big, 'y', n);
	big[n] = '\0';
	f->body = big;
	struct client *cl = client_ask(f, "status --json\n");
	run_until_eof(f, &cl, 1, 5.0);
	assert_true(cl->eof);
	assert_int_equal(mh_buf_size(&cl->got), 3 + n + 1);
	assert_memory_equal(cl->got.data, "ok\nyyy", 6);
	assert_int_equal(cl->got.data[3 + n], '\n');
	client_close(f, cl);
	free(big);
}

static void handler_may_free_the_control(void **state)
{
	struct fx *f = *state;
	start(f, 0600);
	f->how = FREE_INSIDE;
	struct client *cl = client_ask(f, "stop\n");
	run_until_eof(f, &cl, 1, 2.0);
	assert_true(cl->eof);
	assert_null(f->c);
	client_close(f, cl);
}

static void stale_socket_file_is_replaced(void **state)
{
	struct fx *f = *state;
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	set_path(&sun, f->path);
	assert_int_equal(bind(fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	close(fd); /* never listened: connect() is refused */
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	assert_int_equal(connect(fd, (struct sockaddr *)&sun, sizeof(sun)), -1);
	assert_int_equal(errno, ECONNREFUSED);
	close(fd);
	start(f, 0600);
	struct stat st;
	assert_int_equal(lstat(f->path, &st), 0);
	assert_true(S_ISSOCK(st.st_mode));
	/* (the inode number may be reused: that a request is served shows the swap) */
	struct client *cl = client_ask(f, "status\n");
	expect_answer(f, cl, "ok\nhello\n");
	client_close(f, cl);
}

static void live_socket_is_refused(void **state)
{
	struct fx *f = *state;
	start(f, 0600);
	char err[256] = "";
	struct mh_control *second =
	    mh_control_new(f->loop, f->spec, 0600, handler, f, err, sizeof(err));
	assert_null(second);
	char want[256];
	snprintf(want, sizeof(want), "control socket: %s: another process is listening on it",
	         f->spec);
	assert_string_equal(err, want);
	/* The first one still serves. */
	struct client *cl = client_ask(f, "status\n");
	expect_answer(f, cl, "ok\nhello\n");
	client_close(f, cl);
}

static void regular_file_is_not_removed(void **state)
{
	struct fx *f = *state;
	int fd = open(f->path, O_CREAT | O_WRONLY, 0644);
	assert_true(fd >= 0);
	close(fd);
	char err[256] = "";
	assert_null(mh_control_new(f->loop, f->spec, 0600, handler, f, err, sizeof(err)));
	assert_non_null(strstr(err, "not a socket"));
	struct stat st;
	assert_int_equal(lstat(f->path, &st), 0);
	assert_true(S_ISREG(st.st_mode));
}

static void mode_is_applied(void **state)
{
	struct fx *f = *state;
	struct stat st;
	start(f, 0640);
	assert_int_equal(lstat(f->path, &st), 0);
	assert_true(S_ISSOCK(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0640);
	mh_control_free(f->c);
	f->c = NULL;
	start(f, 0600);
	assert_int_equal(lstat(f->path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
}

static void free_removes_the_file_only_if_still_ours(void **state)
{
	struct fx *f = *state;
	struct stat st;
	start(f, 0600);
	mh_control_free(f->c);
	f->c = NULL;
	assert_int_equal(lstat(f->path, &st), -1);
	assert_int_equal(errno, ENOENT);

	/* Someone else's socket now sits at the path: free() leaves it. */
	start(f, 0600);
	char other[160];
	snprintf(other, sizeof(other), "%s/other", f->dir);
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	set_path(&sun, other);
	assert_int_equal(bind(fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	close(fd);
	assert_int_equal(rename(other, f->path), 0);
	struct stat theirs;
	assert_int_equal(lstat(f->path, &theirs), 0);
	mh_control_free(f->c);
	f->c = NULL;
	assert_int_equal(lstat(f->path, &st), 0);
	assert_int_equal(st.st_ino, theirs.st_ino);
}

static void forget_in_a_forked_child_leaves_the_master_serving(void **state)
{
	struct fx *f = *state;
	start(f, 0600);
	f->how = DEFER;
	struct client *pending = client_ask(f, "status\n");
	run_for(f, 0.1);
	assert_int_equal(f->npending, 1);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		ev_loop_fork(f->loop);
		mh_control_forget(f->c);
		_exit(0);
	}
	int status = 0;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	struct stat st;
	assert_int_equal(lstat(f->path, &st), 0); /* the child unlinked nothing */
	run_for(f, 0.05);
	assert_false(pending->eof); /* nor closed the master's client */
	mh_control_reply(f->pending[0], 1, "still here");
	expect_answer(f, pending, "ok\nstill here\n");
	client_close(f, pending);
	f->how = ANSWER_OK;
	struct client *cl = client_ask(f, "status\n");
	expect_answer(f, cl, "ok\nhello\n");
	client_close(f, cl);
}

static void inet_control_socket_works(void **state)
{
	struct fx *f = *state;
	/* A free port on loopback (the kernel's choice, released at once). */
	int probe = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sin = {.sin_family = AF_INET};
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(probe, (struct sockaddr *)&sin, sizeof(sin)), 0);
	socklen_t len = sizeof(sin);
	assert_int_equal(getsockname(probe, (struct sockaddr *)&sin, &len), 0);
	close(probe);
	snprintf(f->spec, sizeof(f->spec), "inet:%u@127.0.0.1", ntohs(sin.sin_port));
	start(f, 0600);
	struct client *cl = client_connect_addr(f, (struct sockaddr *)&sin, sizeof(sin));
	client_send(cl, "children\n", 9);
	expect_answer(f, cl, "ok\nhello\n");
	assert_string_equal(f->argv[0], "children");
	client_close(f, cl);
}

static void bad_spec_is_an_error(void **state)
{
	struct fx *f = *state;
	char err[256] = "";
	assert_null(mh_control_new(f->loop, "tcp:1", 0600, handler, f, err, sizeof(err)));
	assert_true(strncmp(err, "control socket: ", 16) == 0);
	snprintf(f->spec, sizeof(f->spec), "unix:%s/no/such/dir/c.sock", f->dir);
	assert_null(mh_control_new(f->loop, f->spec, 0600, handler, f, err, sizeof(err)));
	assert_non_null(strstr(err, "No such file or directory"));
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
	    T(request_gets_its_answer_and_the_connection_closes),
	    T(words_are_split_and_error_answers_carry_their_body),
	    T(empty_body_is_just_the_status_line),
	    T(line_sent_in_pieces_is_one_request),
	    T(answer_may_come_later_from_the_loop),
	    T(held_answer_keeps_the_connection_until_free),
	    T(held_client_that_leaves_frees_its_slot),
	    T(over_long_line_is_a_bad_request),
	    T(silent_client_gets_bad_request_after_5_s),
	    T(empty_or_cut_short_requests_are_bad),
	    T(seventeenth_client_is_busy),
	    T(client_gone_before_its_answer),
	    T(large_answer_is_written_without_blocking),
	    T(handler_may_free_the_control),
	    T(stale_socket_file_is_replaced),
	    T(live_socket_is_refused),
	    T(regular_file_is_not_removed),
	    T(mode_is_applied),
	    T(free_removes_the_file_only_if_still_ours),
	    T(forget_in_a_forked_child_leaves_the_master_serving),
	    T(inet_control_socket_works),
	    T(bad_spec_is_an_error),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
