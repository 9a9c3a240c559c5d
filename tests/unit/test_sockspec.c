/*
 * test_sockspec - every socket spec form parses to the right family,
 * address and port; bad specs give one-line errors; listen + connect
 * round trips on a unix socket in a temp dir and on 127.0.0.1 port 0;
 * stale unix socket removal (and refusal to remove anything else).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "net/mh_sockspec.h"

static void expect_unix(const char *spec, const char *path)
{
	struct mh_sockspec s;
	char err[256] = "";
	assert_int_equal(mh_sockspec_parse(spec, &s, err, sizeof(err)), 0);
	assert_int_equal(s.family, AF_UNIX);
	const struct sockaddr_un *sun = (const struct sockaddr_un *)&s.addr;
	assert_int_equal(sun->sun_family, AF_UNIX);
	assert_string_equal(sun->sun_path, path);
	assert_true(s.addrlen >= offsetof(struct sockaddr_un, sun_path) + strlen(path));
	char text[200];
	snprintf(text, sizeof(text), "unix:%s", path);
	assert_string_equal(s.text, text);
}

static void expect_inet(const char *spec, int family, const char *addr, unsigned port,
                        const char *text)
{
	struct mh_sockspec s;
	char err[256] = "";
	int rc = mh_sockspec_parse(spec, &s, err, sizeof(err));
	if (rc != 0)
		fail_msg("%s: %s", spec, err);
	assert_int_equal(s.family, family);
	char got[INET6_ADDRSTRLEN];
	if (family == AF_INET) {
		const struct sockaddr_in *a = (const struct sockaddr_in *)&s.addr;
		assert_int_equal(a->sin_family, AF_INET);
		assert_int_equal(s.addrlen, sizeof(*a));
		assert_int_equal(ntohs(a->sin_port), port);
		inet_ntop(AF_INET, &a->sin_addr, got, sizeof(got));
	} else {
		const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)&s.addr;
		assert_int_equal(a->sin6_family, AF_INET6);
		assert_int_equal(s.addrlen, sizeof(*a));
		assert_int_equal(ntohs(a->sin6_port), port);
		inet_ntop(AF_INET6, &a->sin6_addr, got, sizeof(got));
	}
	assert_string_equal(got, addr);
	assert_string_equal(s.text, text);
	/* The normalised text parses back to the same address. */
	struct mh_sockspec again;
	assert_int_equal(mh_sockspec_parse(s.text, &again, err, sizeof(err)), 0);
	assert_int_equal(again.addrlen, s.addrlen);
	assert_memory_equal(&again.addr, &s.addr, s.addrlen);
}

static void expect_error(const char *spec, const char *msg)
{
	struct mh_sockspec s;
	char err[256] = "";
	assert_int_equal(mh_sockspec_parse(spec, &s, err, sizeof(err)), -1);
	assert_null(strchr(err, '\n'));
	if (strstr(err, msg) == NULL)
		fail_msg("'%s': error '%s' lacks '%s'", spec, err, msg);
}

static void parse_unix_forms(void **state)
{
	expect_unix("unix:/var/run/milter.sock", "/var/run/milter.sock");
	expect_unix("local:/tmp/m.sock", "/tmp/m.sock");
	expect_unix("/run/x", "/run/x");
	expect_unix("unix:relative/sock", "relative/sock");
	char path[108];
	memset(path, 'p', sizeof(path) - 1);
	path[0] = '/';
	path[sizeof(path) - 1] = 0; /* 107 bytes: the longest that fits */
	expect_unix(path, path);
}

static void parse_sendmail_inet_forms(void **state)
{
	expect_inet("inet:8890@127.0.0.1", AF_INET, "127.0.0.1", 8890, "inet:8890@127.0.0.1");
	expect_inet("inet:0@127.0.0.1", AF_INET, "127.0.0.1", 0, "inet:0@127.0.0.1");
	expect_inet("inet:65535@10.1.2.3", AF_INET, "10.1.2.3", 65535, "inet:65535@10.1.2.3");
	expect_inet("inet:8890", AF_INET, "0.0.0.0", 8890, "inet:8890@0.0.0.0");
	expect_inet("inet:8890@", AF_INET, "0.0.0.0", 8890, "inet:8890@0.0.0.0");
	expect_inet("inet:25@localhost", AF_INET, "127.0.0.1", 25, "inet:25@127.0.0.1");
	expect_inet("inet6:8890@::1", AF_INET6, "::1", 8890, "inet6:8890@::1");
	expect_inet("inet6:8890@[::1]", AF_INET6, "::1", 8890, "inet6:8890@::1");
	expect_inet("inet6:8890", AF_INET6, "::", 8890, "inet6:8890@::");
	expect_inet("inet6:1@2001:db8::5", AF_INET6, "2001:db8::5", 1, "inet6:1@2001:db8::5");
	/* A numeric v6 address under inet: decides the family itself. */
	expect_inet("inet:25@::1", AF_INET6, "::1", 25, "inet6:25@::1");
}

static void parse_postfix_inet_forms(void **state)
{
	expect_inet("inet:127.0.0.1:10025", AF_INET, "127.0.0.1", 10025, "inet:10025@127.0.0.1");
	expect_inet("inet:localhost:10025", AF_INET, "127.0.0.1", 10025, "inet:10025@127.0.0.1");
	expect_inet("inet:[::1]:10025", AF_INET6, "::1", 10025, "inet6:10025@::1");
	expect_inet("inet6:[::1]:7", AF_INET6, "::1", 7, "inet6:7@::1");
	expect_inet("inet::10025", AF_INET, "0.0.0.0", 10025, "inet:10025@0.0.0.0");
}

static void parse_errors(void **state)
{
	expect_error("inet:x@127.0.0.1", "bad port 'x' in 'inet:x@127.0.0.1'");
	expect_error("inet:65536@127.0.0.1", "bad port '65536'");
	expect_error("inet:-1@127.0.0.1", "bad port '-1'");
	expect_error("inet:127.0.0.1:", "missing port in 'inet:127.0.0.1:'");
	expect_error("inet:", "missing port in 'inet:'");
	expect_error("inet:@127.0.0.1", "missing port");
	char longhost[400];
	snprintf(longhost, sizeof(longhost), "inet:1@%0300d", 0);
	expect_error(longhost, "host name too long");
	expect_error("inet6:25@127.0.0.1", "not an IPv6 address");
	expect_error("inet:::1:25", "IPv6 address must be in brackets");
	expect_error("inet:[::1]25", "bad address in 'inet:[::1]25'");
	expect_error("inet:[::1:25", "bad address");
	expect_error("tcp:25@h", "unknown socket type 'tcp' in 'tcp:25@h'");
	expect_error("milter", "bad socket specification 'milter'");
	expect_error("", "empty socket specification");
	expect_error("unix:", "empty unix socket path in 'unix:'");
	char spec[200];
	snprintf(spec, sizeof(spec), "unix:/%0120d", 0);
	expect_error(spec, "unix socket path too long");
	/* A tiny err buffer is truncated, never overrun. */
	struct mh_sockspec s;
	char small[8];
	memset(small, 'x', sizeof(small));
	assert_int_equal(mh_sockspec_parse("inet:x@h", &s, small, sizeof(small)), -1);
	assert_int_equal(small[7], 0);
}

/* Accept a connection started by mh_sockspec_connect and exchange bytes. */
static void round_trip(const struct mh_sockspec *s, int lfd)
{
	char err[256] = "";
	int cfd = mh_sockspec_connect(s, err, sizeof(err));
	if (cfd < 0)
		fail_msg("connect %s: %s", s->text, err);
	assert_true(fcntl(cfd, F_GETFL) & O_NONBLOCK);
	assert_true(fcntl(cfd, F_GETFD) & FD_CLOEXEC);
	struct pollfd p = {.fd = lfd, .events = POLLIN};
	assert_int_equal(poll(&p, 1, 5000), 1);
	int afd = accept(lfd, NULL, NULL);
	assert_true(afd >= 0);
	p.fd = cfd;
	p.events = POLLOUT;
	assert_int_equal(poll(&p, 1, 5000), 1);
	int soerr = -1;
	socklen_t len = sizeof(soerr);
	assert_int_equal(getsockopt(cfd, SOL_SOCKET, SO_ERROR, &soerr, &len), 0);
	assert_int_equal(soerr, 0);
	if (s->family != AF_UNIX) {
		int nd = 0;
		len = sizeof(nd);
		assert_int_equal(getsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &nd, &len), 0);
		assert_true(nd);
		mh_socket_nodelay(afd);
		nd = 0;
		assert_int_equal(getsockopt(afd, IPPROTO_TCP, TCP_NODELAY, &nd, &len), 0);
		assert_true(nd);
	} else {
		mh_socket_nodelay(afd); /* harmless no-op */
	}
	assert_int_equal(write(cfd, "ping", 4), 4);
	char buf[8];
	p.fd = afd;
	p.events = POLLIN;
	assert_int_equal(poll(&p, 1, 5000), 1);
	assert_int_equal(read(afd, buf, sizeof(buf)), 4);
	assert_memory_equal(buf, "ping", 4);
	close(afd);
	close(cfd);
}

static char tmpdir[64];

static int make_tmpdir(void **state)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/mh-sockspec-XXXXXX");
	return mkdtemp(tmpdir) ? 0 : -1;
}

static int remove_tmpdir(void **state)
{
	char path[128];
	snprintf(path, sizeof(path), "%s/m.sock", tmpdir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/file", tmpdir);
	unlink(path);
	return rmdir(tmpdir);
}

static void listen_connect_unix(void **state)
{
	char spec[128], err[256] = "";
	snprintf(spec, sizeof(spec), "unix:%s/m.sock", tmpdir);
	struct mh_sockspec s;
	assert_int_equal(mh_sockspec_parse(spec, &s, err, sizeof(err)), 0);
	int lfd = mh_sockspec_listen(&s, 16, 0660, err, sizeof(err));
	if (lfd < 0)
		fail_msg("%s", err);
	assert_true(fcntl(lfd, F_GETFL) & O_NONBLOCK);
	assert_true(fcntl(lfd, F_GETFD) & FD_CLOEXEC);
	struct stat st;
	assert_int_equal(stat(spec + 5, &st), 0);
	assert_true(S_ISSOCK(st.st_mode));
	assert_int_equal(st.st_mode & 0777, 0660);
	round_trip(&s, lfd);

	/* A live socket is not taken over. */
	assert_int_equal(mh_sockspec_listen(&s, 16, 0, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "another process is listening"));
	close(lfd);

	/* Now the file is a stale socket: removed and re-created. */
	assert_int_equal(lstat(spec + 5, &st), 0);
	lfd = mh_sockspec_listen(&s, 0, 0, err, sizeof(err));
	if (lfd < 0)
		fail_msg("stale socket not replaced: %s", err);
	round_trip(&s, lfd);
	close(lfd);
	unlink(spec + 5);
}

static void listen_refuses_to_remove_regular_file(void **state)
{
	char spec[128], err[256] = "";
	snprintf(spec, sizeof(spec), "%s/file", tmpdir);
	int fd = open(spec, O_CREAT | O_WRONLY, 0600);
	assert_true(fd >= 0);
	close(fd);
	struct mh_sockspec s;
	assert_int_equal(mh_sockspec_parse(spec, &s, err, sizeof(err)), 0);
	assert_int_equal(mh_sockspec_listen(&s, 16, 0, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "not a socket"));
	struct stat st;
	assert_int_equal(stat(spec, &st), 0); /* still there */
	assert_true(S_ISREG(st.st_mode));
}

static void listen_connect_tcp_port0(void **state)
{
	char err[256] = "";
	struct mh_sockspec s;
	assert_int_equal(mh_sockspec_parse("inet:0@127.0.0.1", &s, err, sizeof(err)), 0);
	int lfd = mh_sockspec_listen(&s, 16, 0, err, sizeof(err));
	if (lfd < 0)
		fail_msg("%s", err);
	int one = 0;
	socklen_t len = sizeof(one);
	assert_int_equal(getsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, &len), 0);
	assert_true(one);
	struct sockaddr_in a;
	len = sizeof(a);
	assert_int_equal(getsockname(lfd, (struct sockaddr *)&a, &len), 0);
	assert_int_not_equal(ntohs(a.sin_port), 0);
	char spec[64];
	snprintf(spec, sizeof(spec), "inet:127.0.0.1:%u", ntohs(a.sin_port));
	struct mh_sockspec c;
	assert_int_equal(mh_sockspec_parse(spec, &c, err, sizeof(err)), 0);
	round_trip(&c, lfd);
	close(lfd);
}

static void connect_refused_reports(void **state)
{
	char err[256] = "";
	char spec[128];
	snprintf(spec, sizeof(spec), "unix:%s/none.sock", tmpdir);
	struct mh_sockspec s;
	assert_int_equal(mh_sockspec_parse(spec, &s, err, sizeof(err)), 0);
	assert_int_equal(mh_sockspec_connect(&s, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "No such file"));
	assert_non_null(strstr(err, "none.sock"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(parse_unix_forms),
	    cmocka_unit_test(parse_sendmail_inet_forms),
	    cmocka_unit_test(parse_postfix_inet_forms),
	    cmocka_unit_test(parse_errors),
	    cmocka_unit_test(listen_connect_unix),
	    cmocka_unit_test(listen_refuses_to_remove_regular_file),
	    cmocka_unit_test(listen_connect_tcp_port0),
	    cmocka_unit_test(connect_refused_reports),
	};
	return cmocka_run_group_tests(tests, make_tmpdir, remove_tmpdir);
}
