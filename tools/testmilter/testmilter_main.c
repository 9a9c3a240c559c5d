/*
 * milterhub-testmilter - a scriptable milter for tests (docs/tools.md).
 *
 *   milterhub-testmilter --listen SPEC [--on STAGE=ACTION]... [--negotiate ITEM]...
 *                        [--log FILE] [--verbose]
 *
 * This file holds the program around the sessions: options, the
 * listening socket and its accept watcher, signals, clean exit. The
 * script is parsed by testmilter_script.c, each connection runs in
 * testmilter_session.c, the --log lines come from testmilter_log.c.
 *
 * Exit status: 0 after SIGTERM/SIGINT, 1 on bad usage, 2 when the socket
 * or the log file cannot be opened.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <ev.h>

#include "net/mh_sockspec.h"
#include "testmilter_log.h"
#include "testmilter_script.h"
#include "testmilter_session.h"
#include "util/mh_log.h"

#define PROG "milterhub-testmilter"
#define LISTEN_BACKLOG 1024
/* Pause before accepting again when out of descriptors. */
#define ACCEPT_RETRY_S 0.1

struct listener {
	struct tm_server *srv;
	int fd;
	ev_io io;
	ev_timer retry; /* restarts io after EMFILE and friends */
};

static void usage(FILE *f)
{
	fprintf(f,
	        "usage: " PROG " --listen SPEC [--on STAGE=ACTION[,ACTION...]]...\n"
	        "       [--negotiate ITEM[,ITEM...]]... [--log FILE] [--verbose]\n"
	        "  SPEC    unix:/path local:/path inet:PORT@HOST inet6:PORT@HOST inet:HOST:PORT\n"
	        "  STAGE   connect helo mail[:ADDR] rcpt[:ADDR] data header[:NAME] eoh body eom\n"
	        "          unknown abort\n"
	        "  ACTION  continue accept reject tempfail discard skip reply:CODE:XCODE:TEXT\n"
	        "          delay:MS hang close garbage progress add-header:NAME:VALUE\n"
	        "          ins-header:IDX:NAME:VALUE chg-header:NAME:IDX:VALUE add-rcpt:ADDR\n"
	        "          add-rcpt-par:ADDR[:ARGS] del-rcpt:ADDR chg-from:ADDR[:ARGS]\n"
	        "          repl-body:TEXT quarantine:REASON\n"
	        "  ITEM    no-connect no-helo no-mail no-rcpt no-body no-hdrs no-eoh nr-hdr\n"
	        "          no-unknown no-data skip rcpt-rej nr-conn nr-helo nr-mail nr-rcpt\n"
	        "          nr-data nr-unkn nr-eoh nr-body leadspc version=N actions=0xHEX\n"
	        "          macros=STAGE:LIST\n"
	        "See docs/tools.md.\n");
}

static void accept_ready(struct ev_loop *loop, ev_io *w, int revents)
{
	struct listener *l = w->data;

	for (;;) {
		int fd = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd >= 0) {
			mh_socket_nodelay(fd);
			tm_session_start(l->srv, fd);
			continue;
		}
		if (errno == EINTR || errno == ECONNABORTED || errno == EPROTO)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return;
		/* EMFILE, ENFILE, ENOBUFS, ENOMEM: back off instead of spinning */
		mh_warn(0, "accept: %s (%zu connections open); retrying in %.1fs", strerror(errno),
		        l->srv->nsessions, ACCEPT_RETRY_S);
		ev_io_stop(loop, &l->io);
		ev_timer_set(&l->retry, ACCEPT_RETRY_S, 0.);
		ev_timer_start(loop, &l->retry);
		return;
	}
}

static void accept_retry(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct listener *l = w->data;

	ev_io_start(loop, &l->io);
}

static void on_signal(struct ev_loop *loop, ev_signal *w, int revents)
{
	mh_info(0, "signal %d: exiting", w->signum);
	ev_break(loop, EVBREAK_ALL);
}

/* Tests open many connections at once: allow as many fds as permitted. */
static void raise_fd_limit(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		(void)setrlimit(RLIMIT_NOFILE, &rl);
	}
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"listen", required_argument, NULL, 'l'},
	    {"on", required_argument, NULL, 'o'},
	    {"negotiate", required_argument, NULL, 'n'},
	    {"log", required_argument, NULL, 'L'},
	    {"verbose", no_argument, NULL, 'v'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	struct tm_script script;
	struct tm_server srv;
	struct listener lst;
	struct mh_sockspec spec;
	const char *listen_spec = NULL, *log_path = NULL;
	char err[512];
	struct ev_loop *loop;
	ev_signal sigterm, sigint;
	int c;

	mh_log_set_ident(PROG);
	mh_log_set_level(MH_LOG_INFO);
	tm_script_init(&script);
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'l':
			listen_spec = optarg;
			break;
		case 'o':
			if (tm_script_add_on(&script, optarg, err, sizeof(err)) < 0)
				goto bad_usage;
			break;
		case 'n':
			if (tm_script_add_negotiate(&script, optarg, err, sizeof(err)) < 0)
				goto bad_usage;
			break;
		case 'L':
			log_path = optarg;
			break;
		case 'v':
			mh_log_set_level(MH_LOG_DEBUG);
			break;
		case 'h':
			usage(stdout);
			tm_script_free(&script);
			return 0;
		default:
			usage(stderr);
			tm_script_free(&script);
			return 1;
		}
	}
	if (optind < argc) {
		snprintf(err, sizeof(err), "unexpected argument '%s'", argv[optind]);
		goto bad_usage;
	}
	if (listen_spec == NULL) {
		snprintf(err, sizeof(err), "--listen SPEC is required");
		goto bad_usage;
	}
	if (mh_sockspec_parse(listen_spec, &spec, err, sizeof(err)) < 0)
		goto bad_usage;

	memset(&srv, 0, sizeof(srv));
	srv.script = &script;
	if (log_path != NULL && (srv.log = tm_log_open(log_path, err, sizeof(err))) == NULL) {
		fprintf(stderr, PROG ": --log %s\n", err);
		tm_script_free(&script);
		return 2;
	}
	raise_fd_limit();
	/* mh_conn uses MSG_NOSIGNAL; this covers everything else */
	signal(SIGPIPE, SIG_IGN);
	/* world-writable so an MTA running as another user (postfix) can connect */
	lst.fd = mh_sockspec_listen(&spec, LISTEN_BACKLOG, 0666, err, sizeof(err));
	if (lst.fd < 0) {
		fprintf(stderr, PROG ": --listen %s: %s\n", listen_spec, err);
		tm_log_close(srv.log);
		tm_script_free(&script);
		return 2;
	}

	loop = ev_default_loop(EVFLAG_AUTO);
	srv.loop = loop;
	lst.srv = &srv;
	ev_io_init(&lst.io, accept_ready, lst.fd, EV_READ);
	lst.io.data = &lst;
	ev_timer_init(&lst.retry, accept_retry, 0., 0.);
	lst.retry.data = &lst;
	ev_io_start(loop, &lst.io);
	ev_signal_init(&sigterm, on_signal, SIGTERM);
	ev_signal_init(&sigint, on_signal, SIGINT);
	ev_signal_start(loop, &sigterm);
	ev_signal_start(loop, &sigint);
	mh_info(0, "listening on %s", spec.text);

	ev_run(loop, 0);

	tm_session_close_all(&srv, "shutdown");
	ev_io_stop(loop, &lst.io);
	ev_timer_stop(loop, &lst.retry);
	ev_signal_stop(loop, &sigterm);
	ev_signal_stop(loop, &sigint);
	close(lst.fd);
	if (spec.family == AF_UNIX) {
		const struct sockaddr_un *un = (const struct sockaddr_un *)&spec.addr;
		if (un->sun_path[0] != '\0' && unlink(un->sun_path) < 0 && errno != ENOENT)
			mh_warn(0, "unlink %s: %s", un->sun_path, strerror(errno));
	}
	ev_loop_destroy(loop);
	tm_log_close(srv.log);
	tm_script_free(&script);
	return 0;

bad_usage:
	fprintf(stderr, PROG ": %s\n", err);
	fprintf(stderr, "try '" PROG " --help'\n");
	tm_script_free(&script);
	return 1;
}
