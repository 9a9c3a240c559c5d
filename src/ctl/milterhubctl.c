/*
 * milterhubctl - command-line client of milterhub's control socket.
 *
 * SUMMARY
 *	milterhubctl [--socket SPEC | -c CONFIG] [--timeout SECONDS]
 *	             COMMAND [ARG...]
 *	Sends COMMAND and its arguments as one line (words joined by single
 *	spaces) to the daemon's control socket, reads the answer to EOF
 *	(the protocol of src/daemon/mh_control.h) and prints its body: on
 *	stdout after "ok", on stderr with a "milterhubctl: " prefix after
 *	"error". `help` is answered here, without the daemon.
 *
 * WHICH SOCKET
 *	--socket SPEC; else the `control` key of -c CONFIG (or
 *	MH_CONTROL_DEFAULT when the file has none); else the same for
 *	MH_CONFIG_DEFAULT_PATH when that file exists; else MH_CONTROL_DEFAULT.
 *
 * DEADLINE
 *	The whole exchange must end within --timeout seconds (default 30).
 *	`stop` defaults to 120 s: the daemon keeps the connection open until
 *	it has drained its sessions and exits. Body bytes after "ok" are
 *	printed as they arrive, so `stop` shows its first line at once.
 *
 * EXIT STATUS
 *	0 "ok"; 1 "error"; 2 no usable answer (not running, stale socket,
 *	permission denied, timeout, bad configuration or socket spec, garbled
 *	answer); 64 (EX_USAGE) bad command line, found before connecting.
 */
#include "config/mh_config.h"
#include "net/mh_sockspec.h"
#include "util/mh_buf.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define EXIT_OK 0
#define EXIT_ERROR 1
#define EXIT_NOANSWER 2
#define EXIT_USAGE 64 /* sysexits.h EX_USAGE */

#define LINE_MAX_BYTES 1024 /* the server's limit, "\n" not counted */
#define DEFAULT_TIMEOUT 30.0
#define STOP_TIMEOUT 120.0

static const char usage_text[] =
    "usage: milterhubctl [--socket SPEC | -c CONFIG] [--timeout SECONDS] COMMAND [ARG...]\n"
    "\n"
    "commands:\n"
    "  status [--json]    the daemon, its workers and children\n"
    "  children [--json]  the children (milters) in chain order\n"
    "  stats [--json]     counters: sessions, results, per milter answers and latency\n"
    "  enable NAME        put child NAME back into the chain\n"
    "  disable NAME       skip child NAME for new sessions\n"
    "  reload             reload the configuration file\n"
    "  stop               drain sessions and exit; waits until the daemon is gone\n"
    "  help               this text\n"
    "\n"
    "options:\n"
    "  --socket SPEC      control socket (unix:/path, /path, inet:PORT@HOST)\n"
    "  -c CONFIG          read the control socket from CONFIG's `control` key\n"
    "                     (default: " MH_CONFIG_DEFAULT_PATH " if it exists,\n"
    "                     else " MH_CONTROL_DEFAULT ")\n"
    "  --timeout SECONDS  give up after SECONDS (default 30; stop: 120)\n"
    "  -h, --help         this text\n"
    "\n"
    "exit status: 0 ok, 1 the daemon answered error, 2 no answer, 64 usage\n";

/* "milterhubctl: MESSAGE" on stderr (then the usage for EXIT_USAGE), exit code. */
static void vdie(int code, const char *fmt, va_list ap) __attribute__((noreturn));
static void vdie(int code, const char *fmt, va_list ap)
{
	fputs("milterhubctl: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputs("\n", stderr);
	if (code == EXIT_USAGE)
		fputs(usage_text, stderr);
	exit(code);
}

static void die_usage(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die_usage(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vdie(EXIT_USAGE, fmt, ap);
}

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vdie(EXIT_NOANSWER, fmt, ap);
}

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Milliseconds left before deadline, for poll(); 0 when past. */
static int ms_left(double deadline)
{
	double left = deadline - now();
	if (left <= 0)
		return 0;
	return left > 1e6 ? 1000000000 : (int)(left * 1000.0) + 1;
}

/* ------------------------------------------------------- command line */

struct command {
	const char *name;
	int min_args, max_args;
	const char *flag; /* the one optional flag argument, or NULL */
};

static const struct command commands[] = {
    {"status", 0, 1, "--json"}, {"children", 0, 1, "--json"}, {"stats", 0, 1, "--json"},
    {"enable", 1, 1, NULL},     {"disable", 1, 1, NULL},      {"reload", 0, 0, NULL},
    {"stop", 0, 0, NULL},       {"help", 0, 0, NULL},
};

/* Check COMMAND ARG... against the table; exits 64 on a mistake. */
static const struct command *check_command(int argc, char **argv)
{
	const struct command *cmd = NULL;
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (strcmp(argv[0], commands[i].name) == 0)
			cmd = &commands[i];
	if (cmd == NULL)
		die_usage("unknown command '%s'", argv[0]);
	int nargs = argc - 1;
	if (nargs < cmd->min_args || nargs > cmd->max_args)
		die_usage("'%s' takes %s", cmd->name,
		          cmd->min_args ? "one NAME"
		          : cmd->flag   ? "only the option --json"
		                        : "no argument");
	for (int i = 1; i < argc; i++) {
		if (cmd->flag != NULL && strcmp(argv[i], cmd->flag) != 0)
			die_usage("'%s': unknown argument '%s'", cmd->name, argv[i]);
		if (argv[i][0] == '\0')
			die_usage("'%s': empty NAME", cmd->name);
		/* One line of words: a NAME cannot hold blanks or control characters. */
		for (const unsigned char *p = (const unsigned char *)argv[i]; *p; p++)
			if (*p <= ' ' || *p == 0x7f)
				die_usage("'%s': NAME '%s' holds a blank or control character",
				          cmd->name, argv[i]);
	}
	return cmd;
}

static double parse_timeout(const char *s)
{
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (errno != 0 || end == s || *end != '\0' || !(v > 0) || v > 86400.0)
		die_usage("bad --timeout '%s' (want seconds, more than 0)", s);
	return v;
}

/* ------------------------------------------------------- which socket */

/* The `control` key of a config file, or MH_CONTROL_DEFAULT; exits 2 on a bad file. */
static char *control_from_config(const char *path)
{
	struct mh_config conf;
	char err[512];
	memset(&conf, 0, sizeof(conf));
	/* The file names the socket, so a broken one cannot be sent to the daemon:
	 * say that nothing changed there (systemctl reload shows this line). */
	if (mh_config_load(path, &conf, err, sizeof(err)) < 0)
		die("%s\nmilterhubctl: nothing was sent; a running milterhub keeps running its "
		    "configuration",
		    err);
	char *spec = mh_xstrdup(conf.control ? conf.control : MH_CONTROL_DEFAULT);
	mh_config_free(&conf);
	return spec;
}

static char *find_socket(const char *opt_socket, const char *opt_config)
{
	if (opt_socket != NULL)
		return mh_xstrdup(opt_socket);
	if (opt_config != NULL)
		return control_from_config(opt_config);
	if (access(MH_CONFIG_DEFAULT_PATH, F_OK) == 0)
		return control_from_config(MH_CONFIG_DEFAULT_PATH);
	return mh_xstrdup(MH_CONTROL_DEFAULT);
}

/* ------------------------------------------------------- the exchange */

static const char *where(const struct mh_sockspec *s)
{
	if (s->family == AF_UNIX)
		return ((const struct sockaddr_un *)&s->addr)->sun_path;
	return s->text;
}

static void die_timeout(double timeout)
{
	die("no answer from milterhub within %g s", timeout);
}

static void die_connect(const struct mh_sockspec *s, int e)
{
	switch (e) {
	case ENOENT:
	case ENOTDIR:
		die("milterhub is not running (no control socket at %s)", where(s));
	case ECONNREFUSED:
		if (s->family == AF_UNIX)
			die("milterhub is not running (stale control socket at %s)", where(s));
		die("milterhub is not running (connection refused at %s)", where(s));
	case EACCES:
	case EPERM:
		die("permission denied on %s (the control socket is mode 0600 by default: run "
		    "milterhubctl as root or as milterhub's user)",
		    where(s));
	default:
		die("cannot connect to %s: %s", s->text, strerror(e));
	}
}

/* Connected non-blocking socket, or exit 2. */
static int connect_control(const struct mh_sockspec *s, double deadline, double timeout)
{
	for (;;) {
		int fd = socket(s->family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (fd < 0)
			die("socket: %s", strerror(errno));
		if (connect(fd, (const struct sockaddr *)&s->addr, s->addrlen) == 0)
			return fd;
		int e = errno;
		if (e == EINPROGRESS || e == EINTR) {
			struct pollfd p = {.fd = fd, .events = POLLOUT};
			int n;
			do
				n = poll(&p, 1, ms_left(deadline));
			while (n < 0 && errno == EINTR);
			if (n == 0)
				die_timeout(timeout);
			socklen_t len = sizeof(e);
			if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &len) < 0)
				e = errno;
			if (e == 0)
				return fd;
		}
		close(fd);
		if (e != EAGAIN)
			die_connect(s, e);
		/* A unix socket's backlog is full: the daemon is busy, try again shortly. */
		if (ms_left(deadline) == 0)
			die_timeout(timeout);
		struct timespec ts = {0, 50 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
}

static void send_line(int fd, const char *line, size_t n, double deadline, double timeout)
{
	size_t off = 0;
	while (off < n) {
		ssize_t w = send(fd, line + off, n - off, MSG_NOSIGNAL);
		if (w > 0) {
			off += (size_t)w;
			continue;
		}
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			struct pollfd p = {.fd = fd, .events = POLLOUT};
			if (poll(&p, 1, ms_left(deadline)) == 0)
				die_timeout(timeout);
			continue;
		}
		die("cannot send the request to milterhub: %s", strerror(errno));
	}
}

static void write_all(FILE *f, const void *p, size_t n)
{
	if (n > 0 && fwrite(p, 1, n, f) != n)
		die("write: %s", strerror(errno));
	fflush(f);
}

/* Print an error body on stderr, each line prefixed. */
static void print_error(const char *body)
{
	if (*body == '\0') {
		fputs("milterhubctl: milterhub answered error (no details)\n", stderr);
		return;
	}
	while (*body != '\0') {
		const char *nl = strchr(body, '\n');
		size_t n = nl ? (size_t)(nl - body) : strlen(body);
		fprintf(stderr, "milterhubctl: %.*s\n", (int)n, body);
		body += n + (nl ? 1 : 0);
	}
}

/*
 * Read the answer to EOF. After "ok", body bytes go to stdout as they
 * arrive; after "error" they are collected and printed on stderr at EOF.
 */
static int read_answer(int fd, double deadline, double timeout)
{
	struct mh_buf in = MH_BUF_INIT;
	int status = -1; /* -1: first line not complete; else EXIT_OK/EXIT_ERROR */
	for (;;) {
		char chunk[4096];
		ssize_t n = recv(fd, chunk, sizeof(chunk), 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			struct pollfd p = {.fd = fd, .events = POLLIN};
			int r = poll(&p, 1, ms_left(deadline));
			if (r < 0 && errno == EINTR)
				continue;
			if (r != 0)
				continue;
			if (status == EXIT_OK)
				die("milterhub answered but did not close the connection within %g "
				    "s",
				    timeout);
			die_timeout(timeout);
		}
		if (n < 0) {
			if (status == EXIT_OK)
				break; /* the answer is out; a reset at the end loses nothing */
			die("reading milterhub's answer: %s", strerror(errno));
		}
		if (n == 0)
			break;
		if (status == EXIT_OK) {
			write_all(stdout, chunk, (size_t)n);
			continue;
		}
		mh_buf_append(&in, chunk, (size_t)n);
		if (status < 0) {
			const char *nl = memchr(mh_buf_head(&in), '\n', mh_buf_size(&in));
			if (nl == NULL) {
				if (mh_buf_size(&in) > 64)
					die("unexpected answer from milterhub (no ok/error line)");
				continue;
			}
			size_t first = (size_t)(nl - (const char *)mh_buf_head(&in));
			if (first == 2 && memcmp(mh_buf_head(&in), "ok", 2) == 0)
				status = EXIT_OK;
			else if (first == 5 && memcmp(mh_buf_head(&in), "error", 5) == 0)
				status = EXIT_ERROR;
			else
				die("unexpected answer from milterhub: '%.*s'", (int)first,
				    (const char *)mh_buf_head(&in));
			mh_buf_consume(&in, first + 1);
			if (status == EXIT_OK) {
				write_all(stdout, mh_buf_head(&in), mh_buf_size(&in));
				mh_buf_reset(&in);
			}
		}
	}
	if (status < 0) {
		if (mh_buf_size(&in) == 0)
			die("milterhub closed the connection without answering");
		die("unexpected answer from milterhub (no ok/error line)");
	}
	if (status == EXIT_ERROR)
		print_error(mh_buf_size(&in) ? (const char *)mh_buf_head(&in) : "");
	mh_buf_free(&in);
	return status;
}

/* ------------------------------------------------------------- main */

int main(int argc, char **argv)
{
	const char *opt_socket = NULL, *opt_config = NULL;
	double timeout = 0;
	int i = 1;
	for (; i < argc; i++) {
		const char *a = argv[i];
		if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			fputs(usage_text, stdout);
			return EXIT_OK;
		}
		if (strcmp(a, "--") == 0) {
			i++;
			break;
		}
		if (a[0] != '-')
			break;
		const char *val = NULL;
		const char *name = a;
		char flag[32];
		const char *eq = strncmp(a, "--", 2) == 0 ? strchr(a, '=') : NULL;
		if (eq != NULL) {
			snprintf(flag, sizeof(flag), "%.*s", (int)(eq - a), a);
			name = flag;
			val = eq + 1;
		}
		int takes = strcmp(name, "--socket") == 0 || strcmp(name, "-c") == 0 ||
		            strcmp(name, "--config") == 0 || strcmp(name, "--timeout") == 0;
		if (!takes)
			die_usage("unknown option '%s'", a);
		if (val == NULL) {
			if (i + 1 >= argc)
				die_usage("option '%s' needs a value", a);
			val = argv[++i];
		}
		if (strcmp(name, "--socket") == 0)
			opt_socket = val;
		else if (strcmp(name, "--timeout") == 0)
			timeout = parse_timeout(val);
		else
			opt_config = val;
	}
	if (i >= argc)
		die_usage("no command");
	if (opt_socket != NULL && opt_config != NULL)
		die_usage("give --socket or -c, not both");
	const struct command *cmd = check_command(argc - i, argv + i);
	if (strcmp(cmd->name, "help") == 0) {
		fputs(usage_text, stdout);
		return EXIT_OK;
	}

	struct mh_buf line = MH_BUF_INIT;
	for (int k = i; k < argc; k++)
		mh_buf_printf(&line, "%s%s", k > i ? " " : "", argv[k]);
	if (mh_buf_size(&line) > LINE_MAX_BYTES)
		die_usage("the request is longer than %d bytes", LINE_MAX_BYTES);
	mh_buf_append_byte(&line, '\n');

	if (timeout == 0)
		timeout = strcmp(cmd->name, "stop") == 0 ? STOP_TIMEOUT : DEFAULT_TIMEOUT;
	signal(SIGPIPE, SIG_IGN);

	char *spec_text = find_socket(opt_socket, opt_config);
	struct mh_sockspec spec;
	char err[512];
	if (mh_sockspec_parse(spec_text, &spec, err, sizeof(err)) < 0)
		die("bad control socket: %s", err);
	free(spec_text);

	double deadline = now() + timeout;
	int fd = connect_control(&spec, deadline, timeout);
	send_line(fd, (const char *)mh_buf_head(&line), mh_buf_size(&line), deadline, timeout);
	mh_buf_free(&line);
	int rc = read_answer(fd, deadline, timeout);
	close(fd);
	return rc;
}
