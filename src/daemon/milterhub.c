/*
 * NAME
 *	milterhub 8
 * SUMMARY
 *	the milter manager daemon: config, listening socket, signals, one loop
 * SYNOPSIS
 *	milterhub [-c FILE]
 *	milterhub --check-config FILE
 *	milterhub --show-config [FILE]
 *	milterhub -h
 * DESCRIPTION
 *	Loads FILE (or, without -c, the built-in defaults: design §4), listens
 *	on the manager's socket and runs one libev loop in the foreground,
 *	handing every accepted MTA connection to the hub (mh_hub_accept).
 *	Logs go to stderr through mh_log (ident "milterhub"); the level is
 *	MILTERHUB_LOG_LEVEL when set, else the config's log_level. Nothing is
 *	printed on stdout except by --check-config ("FILE: ok") and
 *	--show-config (the effective configuration, as Lua that loads back).
 *
 *	Accepting: accept4(SOCK_NONBLOCK | SOCK_CLOEXEC) until EAGAIN. Out of
 *	descriptors (EMFILE, ENFILE) or kernel memory, the accept watcher is
 *	stopped for ACCEPT_PAUSE seconds instead of spinning on a listening
 *	socket that stays readable.
 *
 *	Signals: SIGPIPE is ignored (a peer's reset is a write error, handled
 *	per connection). SIGTERM or SIGINT: accept what is already in the
 *	backlog (those MTAs believe they are connected), then close the
 *	listening socket at once (later MTAs get "connection refused" and
 *	apply their own milter default instead of waiting), remove the unix socket
 *	file if it is still ours, let the sessions in progress finish for up
 *	to DRAIN_LIMIT seconds, then close whatever is left and exit 0. A
 *	second SIGTERM/SIGINT ends the drain at once. SIGHUP is logged:
 *	reload comes with the worker processes (issue 5).
 * DIAGNOSTICS
 *	Exit 1 with one line on stderr for a bad command line, a bad config
 *	("FILE:LINE: ... key ...") or an unusable socket ("cannot listen on
 *	unix:/path: reason"). Exit 0 after SIGTERM/SIGINT.
 */
#include "config/mh_config.h"
#include "hub/mh_hub.h"
#include "net/mh_sockspec.h"
#include "util/mh_buf.h"
#include "util/mh_log.h"

#include <errno.h>
#include <ev.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define LISTEN_BACKLOG 1024
#define ACCEPT_PAUSE 0.1 /* seconds without accept() after EMFILE */
#define DRAIN_LIMIT 10.0 /* seconds sessions get to finish after SIGTERM */
#define DRAIN_POLL 0.05

static const char usage[] =
    "usage: milterhub [-c FILE]            run in the foreground (no -c: built-in defaults)\n"
    "       milterhub --check-config FILE  validate FILE: \"FILE: ok\" and exit 0, or exit 1\n"
    "       milterhub --show-config [FILE] print the effective configuration (defaults filled "
    "in)\n"
    "       milterhub -h                   this help\n"
    "Environment: MILTERHUB_LOG_LEVEL=debug|info|warn|err overrides the config's log_level.\n";

struct daemon {
	struct ev_loop *loop;
	struct mh_config conf;
	struct mh_hub *hub;
	int lfd; /* listening socket, -1 once closed */
	struct stat sock_stat; /* the unix socket file we made (st_ino 0: none) */
	ev_io accept_w;
	ev_timer pause_w; /* accept paused after EMFILE & co */
	ev_tstamp last_pause_log;
	ev_signal term_w, int_w, hup_w;
	ev_timer drain_poll_w, drain_limit_w;
	int draining;
};

/* ------------------------------------------------------------------ accept */

static void pause_accepting(struct daemon *d, int err)
{
	ev_tstamp now = ev_now(d->loop);
	if (now - d->last_pause_log >= 5.0) { /* a log line per burst, not per try */
		mh_warn(0, "accept: %s; not accepting for %.1f s (%zu sessions open)",
		        strerror(err), ACCEPT_PAUSE, mh_hub_sessions(d->hub));
		d->last_pause_log = now;
	}
	ev_io_stop(d->loop, &d->accept_w);
	ev_timer_set(&d->pause_w, ACCEPT_PAUSE, 0);
	ev_timer_start(d->loop, &d->pause_w);
}

/* Hand every connection waiting in the backlog to the hub. */
static void accept_pending(struct daemon *d)
{
	for (;;) {
		int fd = accept4(d->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd >= 0) {
			/* TCP_NODELAY (design §7): mh_conn_new sets it. */
			mh_hub_accept(d->hub, fd);
			continue;
		}
		switch (errno) {
		case EINTR:
		case ECONNABORTED: /* that client gave up; the next may be waiting */
		case EPROTO:
		case EPERM: /* refused by a firewall rule */
			continue;
		case EAGAIN:
#if EWOULDBLOCK != EAGAIN
		case EWOULDBLOCK:
#endif
			return;
		default: /* EMFILE, ENFILE, ENOBUFS, ENOMEM, anything unexpected */
			pause_accepting(d, errno);
			return;
		}
	}
}

static void on_accept(struct ev_loop *loop, ev_io *w, int revents)
{
	accept_pending(w->data);
}

static void on_pause_end(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct daemon *d = w->data;
	if (d->lfd >= 0)
		ev_io_start(loop, &d->accept_w);
}

/* ------------------------------------------------------------------ listen */

static void close_listener(struct daemon *d)
{
	if (d->lfd < 0)
		return;
	ev_io_stop(d->loop, &d->accept_w);
	ev_timer_stop(d->loop, &d->pause_w);
	close(d->lfd);
	d->lfd = -1;
	if (d->sock_stat.st_ino == 0)
		return;
	/* Remove the file only if it is still ours (a successor may own the path). */
	const char *path = ((const struct sockaddr_un *)&d->conf.listen.addr)->sun_path;
	struct stat st;
	if (stat(path, &st) == 0 && st.st_ino == d->sock_stat.st_ino &&
	    st.st_dev == d->sock_stat.st_dev && unlink(path) < 0)
		mh_warn(0, "cannot remove %s: %m", path);
}

static int open_listener(struct daemon *d)
{
	char err[512];
	d->lfd = mh_sockspec_listen(&d->conf.listen, LISTEN_BACKLOG, d->conf.socket_mode, err,
	                            sizeof(err));
	if (d->lfd < 0) {
		mh_err(0, "cannot listen on %s: %s", d->conf.listen_text, err);
		return -1;
	}
	if (d->conf.listen.family == AF_UNIX) {
		const char *path = ((const struct sockaddr_un *)&d->conf.listen.addr)->sun_path;
		if (stat(path, &d->sock_stat) < 0)
			memset(&d->sock_stat, 0, sizeof(d->sock_stat));
	}
	return 0;
}

/* ----------------------------------------------------------------- signals */

static void stop_now(struct daemon *d)
{
	ev_timer_stop(d->loop, &d->drain_poll_w);
	ev_timer_stop(d->loop, &d->drain_limit_w);
	ev_signal_stop(d->loop, &d->term_w);
	ev_signal_stop(d->loop, &d->int_w);
	ev_signal_stop(d->loop, &d->hup_w);
	ev_break(d->loop, EVBREAK_ALL);
}

static void on_drain_poll(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct daemon *d = w->data;
	if (mh_hub_sessions(d->hub) == 0) {
		mh_info(0, "all sessions finished; exiting");
		stop_now(d);
	}
}

static void on_drain_limit(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct daemon *d = w->data;
	mh_warn(0, "%zu sessions still open after %.0f s; closing them", mh_hub_sessions(d->hub),
	        DRAIN_LIMIT);
	stop_now(d);
}

static void on_stop_signal(struct ev_loop *loop, ev_signal *w, int revents)
{
	struct daemon *d = w->data;
	const char *name = w->signum == SIGINT ? "SIGINT" : "SIGTERM";
	if (d->draining) {
		mh_warn(0, "%s again: closing %zu sessions now", name, mh_hub_sessions(d->hub));
		stop_now(d);
		return;
	}
	d->draining = 1;
	/* A connection the kernel completed is one the MTA thinks is open: serve it. */
	if (ev_is_active(&d->accept_w))
		accept_pending(d);
	close_listener(d);
	size_t n = mh_hub_sessions(d->hub);
	if (n == 0) {
		mh_info(0, "%s: stopped accepting, no session open; exiting", name);
		stop_now(d);
		return;
	}
	mh_info(0, "%s: stopped accepting; waiting up to %.0f s for %zu sessions", name,
	        DRAIN_LIMIT, n);
	ev_timer_start(loop, &d->drain_poll_w);
	ev_timer_start(loop, &d->drain_limit_w);
}

static void on_hup(struct ev_loop *loop, ev_signal *w, int revents)
{
	mh_warn(0, "SIGHUP: reload not implemented yet; the running configuration stays");
}

/* ----------------------------------------------------------------- running */

static void log_start(const struct daemon *d)
{
	const struct mh_config *c = &d->conf;
	struct mh_buf chain = MH_BUF_INIT;
	for (size_t i = 0; i < c->hub.nchildren; i++) {
		const struct mh_child_conf *cc = &c->hub.children[i];
		mh_buf_printf(&chain, "%s%s [%s%s%s]", i ? ", " : "", cc->name, cc->sock.text,
		              cc->enabled ? "" : ", disabled", cc->evaluate ? ", evaluate" : "");
	}
	char mode[32] = "";
	if (c->listen.family == AF_UNIX)
		snprintf(mode, sizeof(mode), " (mode %04o)", c->socket_mode);
	mh_info(0, "started with %s: listening on %s%s; %zu children in chain order: %s",
	        c->path ? c->path : "built-in defaults", c->listen.text, mode, c->hub.nchildren,
	        c->hub.nchildren ? (const char *)chain.data : "(none)");
	mh_buf_free(&chain);
}

static int run(struct daemon *d)
{
	if (getenv("MILTERHUB_LOG_LEVEL") == NULL)
		mh_log_set_level(d->conf.log_level);
	signal(SIGPIPE, SIG_IGN);

	d->loop = ev_default_loop(EVFLAG_AUTO);
	if (d->loop == NULL) {
		mh_err(0, "cannot initialise the event loop (libev)");
		return 1;
	}
	if (open_listener(d) < 0) {
		ev_loop_destroy(d->loop);
		return 1;
	}
	d->hub = mh_hub_new(d->loop, &d->conf.hub);
	if (d->hub == NULL) {
		mh_err(0, "cannot start the hub");
		close_listener(d);
		ev_loop_destroy(d->loop);
		return 1;
	}

	ev_io_init(&d->accept_w, on_accept, d->lfd, EV_READ);
	ev_init(&d->pause_w, on_pause_end);
	ev_timer_init(&d->drain_poll_w, on_drain_poll, DRAIN_POLL, DRAIN_POLL);
	ev_timer_init(&d->drain_limit_w, on_drain_limit, DRAIN_LIMIT, 0);
	ev_signal_init(&d->term_w, on_stop_signal, SIGTERM);
	ev_signal_init(&d->int_w, on_stop_signal, SIGINT);
	ev_signal_init(&d->hup_w, on_hup, SIGHUP);
	d->accept_w.data = d->pause_w.data = d->drain_poll_w.data = d->drain_limit_w.data = d;
	d->term_w.data = d->int_w.data = d->hup_w.data = d;
	d->last_pause_log = -1e9;
	ev_io_start(d->loop, &d->accept_w);
	ev_signal_start(d->loop, &d->term_w);
	ev_signal_start(d->loop, &d->int_w);
	ev_signal_start(d->loop, &d->hup_w);

	log_start(d);
	ev_run(d->loop, 0);

	close_listener(d);
	mh_hub_free(d->hub);
	d->hub = NULL;
	ev_loop_destroy(d->loop);
	return 0;
}

/* ------------------------------------------------------------ command line */

static int load(const char *path, struct mh_config *c)
{
	if (path == NULL) {
		mh_config_defaults(c);
		return 0;
	}
	char err[1024];
	if (mh_config_load(path, c, err, sizeof(err)) < 0) {
		fprintf(stderr, "milterhub: %s\n", err);
		return -1;
	}
	return 0;
}

static int bad_usage(const char *fmt, const char *arg)
{
	fprintf(stderr, "milterhub: ");
	fprintf(stderr, fmt, arg);
	fprintf(stderr, "\n%s", usage);
	return 1;
}

int main(int argc, char **argv)
{
	enum { RUN, CHECK, SHOW } mode = RUN;
	const char *path = NULL;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			fputs(usage, stdout);
			return 0;
		} else if (strcmp(a, "-c") == 0 || strcmp(a, "--config") == 0 ||
		           strcmp(a, "--check-config") == 0) {
			if (i + 1 >= argc)
				return bad_usage("%s needs a FILE", a);
			if (path != NULL)
				return bad_usage("more than one configuration file (%s)",
				                 argv[i + 1]);
			path = argv[++i];
			if (strcmp(a, "--check-config") == 0)
				mode = CHECK;
		} else if (strcmp(a, "--show-config") == 0) {
			mode = SHOW;
			if (i + 1 < argc && argv[i + 1][0] != '-') {
				if (path != NULL)
					return bad_usage("more than one configuration file (%s)",
					                 argv[i + 1]);
				path = argv[++i];
			}
		} else {
			return bad_usage("unknown argument '%s'", a);
		}
	}
	mh_log_set_ident("milterhub");

	struct daemon d = {.lfd = -1};
	if (load(path, &d.conf) < 0)
		return 1;
	int rc = 0;
	if (mode == CHECK) {
		printf("%s: ok\n", path);
	} else if (mode == SHOW) {
		mh_config_show(&d.conf, stdout);
	} else {
		rc = run(&d);
	}
	mh_config_free(&d.conf);
	if (fflush(stdout) != 0 || ferror(stdout))
		rc = 1;
	return rc;
}
