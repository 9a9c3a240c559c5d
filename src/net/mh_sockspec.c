/*
 * mh_sockspec - milter socket specifications: parse, listen, connect.
 *
 * SUMMARY
 *	mh_sockspec_parse() turns the textual forms used by Sendmail and
 *	Postfix into a sockaddr:
 *	    unix:/path  local:/path  /path
 *	    inet:PORT  inet:PORT@HOST  inet6:PORT  inet6:PORT@HOST
 *	    inet:HOST:PORT  inet:[V6ADDR]:PORT  inet6:[V6ADDR]:PORT
 *	A missing HOST means the wildcard address (for listening). HOST is
 *	a numeric address (IPv6 scope ids work) or a name resolved with
 *	getaddrinfo() in the spec's family; under "inet:" a numeric IPv6
 *	address is accepted and makes the spec AF_INET6. PORT is decimal
 *	0..65535 (0 lets the kernel choose when listening).
 *	The normalised text is "unix:PATH", "inet:PORT@ADDR" or
 *	"inet6:PORT@ADDR"; it parses back to the same address.
 *
 *	mh_sockspec_listen() makes a non-blocking, close-on-exec listening
 *	socket. Unix: an existing file at the path is removed only if it is
 *	a socket nobody listens on (connect() is refused); a regular file or
 *	a live socket is an error. The socket file gets `mode` when non-zero
 *	(before listen(), so no client can connect with the umask's mode).
 *	TCP: SO_REUSEADDR.
 *
 *	mh_sockspec_connect() starts a non-blocking connect; TCP sockets get
 *	TCP_NODELAY (design §7: Nagle + delayed ACK stall ~40 ms per step).
 *
 * DIAGNOSTICS
 *	One line in err, quoting the spec: "bad port 'x' in 'inet:x@h'",
 *	"unix socket path too long (max 107 bytes) in '...'",
 *	"cannot resolve 'name' in '...': reason", "bind unix:/p: reason".
 */
#include "net/mh_sockspec.h"
#include "util/mh_err.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void normalise(struct mh_sockspec *s)
{
	if (s->family == AF_UNIX) {
		const struct sockaddr_un *sun = (const struct sockaddr_un *)&s->addr;
		snprintf(s->text, sizeof(s->text), "unix:%s", sun->sun_path);
		return;
	}
	char host[INET6_ADDRSTRLEN + 32]; /* room for a %scope suffix */
	char port[8];
	if (getnameinfo((const struct sockaddr *)&s->addr, s->addrlen, host, sizeof(host), port,
	                sizeof(port), NI_NUMERICHOST | NI_NUMERICSERV) != 0) {
		strcpy(host, "?");
		strcpy(port, "?");
	}
	snprintf(s->text, sizeof(s->text), "%s:%s@%s", s->family == AF_INET6 ? "inet6" : "inet",
	         port, host);
}

static int parse_unix(const char *spec, const char *path, struct mh_sockspec *out, char *err,
                      size_t errlen)
{
	struct sockaddr_un *sun = (struct sockaddr_un *)&out->addr;
	size_t n = strlen(path);
	if (n == 0)
		return mh_errf(err, errlen, "empty unix socket path in '%s'", spec);
	if (n >= sizeof(sun->sun_path))
		return mh_errf(err, errlen, "unix socket path too long (max %zu bytes) in '%s'",
		               sizeof(sun->sun_path) - 1, spec);
	sun->sun_family = AF_UNIX;
	memcpy(sun->sun_path, path, n + 1);
	out->family = AF_UNIX;
	out->addrlen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
	return 0;
}

static int parse_port(const char *spec, const char *p, size_t n, uint16_t *port, char *err,
                      size_t errlen)
{
	unsigned long v = 0;
	if (n == 0)
		return mh_errf(err, errlen, "missing port in '%s'", spec);
	if (n > 5)
		goto bad;
	for (size_t i = 0; i < n; i++) {
		if (p[i] < '0' || p[i] > '9')
			goto bad;
		v = v * 10 + (unsigned long)(p[i] - '0');
	}
	if (v > 65535)
		goto bad;
	*port = (uint16_t)v;
	return 0;
bad:
	return mh_errf(err, errlen, "bad port '%.*s' in '%s'", (int)(n > 64 ? 64 : n), p, spec);
}

/* host may be NULL (wildcard). family is AF_INET or AF_INET6, the spec's. */
static int resolve(const char *spec, const char *host, int family, uint16_t port,
                   struct mh_sockspec *out, char *err, size_t errlen)
{
	memset(&out->addr, 0, sizeof(out->addr));
	if (host == NULL) {
		if (family == AF_INET6) {
			struct sockaddr_in6 *a = (struct sockaddr_in6 *)&out->addr;
			a->sin6_family = AF_INET6;
			a->sin6_addr = in6addr_any;
			a->sin6_port = htons(port);
			out->addrlen = sizeof(*a);
		} else {
			struct sockaddr_in *a = (struct sockaddr_in *)&out->addr;
			a->sin_family = AF_INET;
			a->sin_addr.s_addr = htonl(INADDR_ANY);
			a->sin_port = htons(port);
			out->addrlen = sizeof(*a);
		}
		out->family = family;
		return 0;
	}
	struct addrinfo hints, *res = NULL;
	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	/* A numeric address decides the family itself (inet:[::1]:25). */
	hints.ai_family = AF_UNSPEC;
	hints.ai_flags = AI_NUMERICHOST;
	int rc = getaddrinfo(host, NULL, &hints, &res);
	if (rc != 0) {
		hints.ai_family = family;
		hints.ai_flags = 0;
		rc = getaddrinfo(host, NULL, &hints, &res);
	}
	if (rc != 0 || res == NULL)
		return mh_errf(err, errlen, "cannot resolve '%s' in '%s': %s", host, spec,
		               rc == EAI_SYSTEM ? strerror(errno) : gai_strerror(rc));
	if (family == AF_INET6 && res->ai_family != AF_INET6) {
		freeaddrinfo(res);
		return mh_errf(err, errlen, "'%s' is not an IPv6 address in '%s'", host, spec);
	}
	memcpy(&out->addr, res->ai_addr, res->ai_addrlen);
	out->addrlen = res->ai_addrlen;
	out->family = res->ai_family;
	freeaddrinfo(res);
	if (out->family == AF_INET6)
		((struct sockaddr_in6 *)&out->addr)->sin6_port = htons(port);
	else
		((struct sockaddr_in *)&out->addr)->sin_port = htons(port);
	return 0;
}

static int parse_inet(const char *spec, const char *rest, int family, struct mh_sockspec *out,
                      char *err, size_t errlen)
{
	char host[256];
	const char *hostp = NULL;
	const char *portp;
	size_t portn;
	const char *at = strchr(rest, '@');
	if (at != NULL) {
		/* Sendmail: PORT@HOST, HOST optional, maybe in brackets. */
		portp = rest;
		portn = (size_t)(at - rest);
		const char *h = at + 1;
		size_t hn = strlen(h);
		if (hn >= 2 && h[0] == '[' && h[hn - 1] == ']')
			h++, hn -= 2;
		if (hn > 0) {
			if (hn >= sizeof(host))
				return mh_errf(err, errlen, "host name too long in '%s'", spec);
			memcpy(host, h, hn);
			host[hn] = '\0';
			hostp = host;
		}
	} else if (rest[0] == '[') {
		/* Postfix: [V6ADDR]:PORT */
		const char *close = strchr(rest, ']');
		if (close == NULL || close[1] != ':')
			return mh_errf(err, errlen, "bad address in '%s' (want [ADDR]:PORT)", spec);
		size_t hn = (size_t)(close - rest - 1);
		if (hn == 0 || hn >= sizeof(host))
			return mh_errf(err, errlen, "bad address in '%s' (want [ADDR]:PORT)", spec);
		memcpy(host, rest + 1, hn);
		host[hn] = '\0';
		hostp = host;
		portp = close + 2;
		portn = strlen(portp);
	} else {
		/* Postfix: HOST:PORT, or a bare PORT. */
		const char *colon = strrchr(rest, ':');
		if (colon != NULL) {
			size_t hn = (size_t)(colon - rest);
			if (hn >= sizeof(host))
				return mh_errf(err, errlen, "host name too long in '%s'", spec);
			if (memchr(rest, ':', hn) != NULL)
				return mh_errf(err, errlen,
				               "IPv6 address must be in brackets in '%s' "
				               "(inet:[ADDR]:PORT or inet6:PORT@ADDR)",
				               spec);
			memcpy(host, rest, hn);
			host[hn] = '\0';
			hostp = hn ? host : NULL;
			portp = colon + 1;
		} else {
			portp = rest;
		}
		portn = strlen(portp);
	}
	uint16_t port = 0;
	if (parse_port(spec, portp, portn, &port, err, errlen) < 0)
		return -1;
	return resolve(spec, hostp, family, port, out, err, errlen);
}

int mh_sockspec_parse(const char *spec, struct mh_sockspec *out, char *err, size_t errlen)
{
	memset(out, 0, sizeof(*out));
	if (spec == NULL || spec[0] == '\0')
		return mh_errf(err, errlen, "empty socket specification");
	int rc;
	if (spec[0] == '/')
		rc = parse_unix(spec, spec, out, err, errlen);
	else if (strncmp(spec, "unix:", 5) == 0)
		rc = parse_unix(spec, spec + 5, out, err, errlen);
	else if (strncmp(spec, "local:", 6) == 0)
		rc = parse_unix(spec, spec + 6, out, err, errlen);
	else if (strncmp(spec, "inet:", 5) == 0)
		rc = parse_inet(spec, spec + 5, AF_INET, out, err, errlen);
	else if (strncmp(spec, "inet6:", 6) == 0)
		rc = parse_inet(spec, spec + 6, AF_INET6, out, err, errlen);
	else {
		const char *colon = strchr(spec, ':');
		if (colon != NULL)
			return mh_errf(err, errlen,
			               "unknown socket type '%.*s' in '%s' (want unix:, local:, "
			               "inet: or inet6:)",
			               (int)(colon - spec > 32 ? 32 : colon - spec), spec, spec);
		return mh_errf(err, errlen,
		               "bad socket specification '%s' (want unix:/path, /path, "
		               "inet:PORT@HOST or inet:HOST:PORT)",
		               spec);
	}
	if (rc < 0)
		return -1;
	normalise(out);
	return 0;
}

/*
 * An existing file at the unix path: remove it if it is a dead socket.
 * Non-blocking connect: refused or gone = stale; accepted, in progress or
 * backlog full (EAGAIN) = some process listens there: refuse.
 */
static int remove_stale_unix(const struct mh_sockspec *s, char *err, size_t errlen)
{
	const char *path = ((const struct sockaddr_un *)&s->addr)->sun_path;
	struct stat st;
	if (lstat(path, &st) < 0) {
		if (errno == ENOENT)
			return 0;
		return mh_errf(err, errlen, "stat %s: %s", s->text, strerror(errno));
	}
	if (!S_ISSOCK(st.st_mode))
		return mh_errf(err, errlen, "%s: file exists and is not a socket", s->text);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return mh_errf(err, errlen, "socket: %s", strerror(errno));
	int rc = connect(fd, (const struct sockaddr *)&s->addr, s->addrlen);
	int e = errno;
	close(fd);
	if (rc == 0 || e == EAGAIN || e == EINPROGRESS)
		return mh_errf(err, errlen, "%s: another process is listening on it", s->text);
	if (e != ECONNREFUSED && e != ENOENT)
		return mh_errf(err, errlen, "%s: cannot check the existing socket: %s", s->text,
		               strerror(e));
	if (unlink(path) < 0 && errno != ENOENT)
		return mh_errf(err, errlen, "remove stale %s: %s", s->text, strerror(errno));
	return 0;
}

int mh_sockspec_listen(const struct mh_sockspec *s, int backlog, unsigned mode, char *err,
                       size_t errlen)
{
	return mh_sockspec_listen_ex(s, backlog, mode, (gid_t)-1, err, errlen);
}

int mh_sockspec_listen_ex(const struct mh_sockspec *s, int backlog, unsigned mode, gid_t gid,
                          char *err, size_t errlen)
{
	if (s->family == AF_UNIX && remove_stale_unix(s, err, errlen) < 0)
		return -1;
	int fd = socket(s->family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return mh_errf(err, errlen, "socket for %s: %s", s->text, strerror(errno));
	if (s->family != AF_UNIX) {
		int one = 1;
		if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0) {
			mh_errf(err, errlen, "SO_REUSEADDR on %s: %s", s->text, strerror(errno));
			goto out_close;
		}
	}
	if (bind(fd, (const struct sockaddr *)&s->addr, s->addrlen) < 0) {
		mh_errf(err, errlen, "bind %s: %s", s->text, strerror(errno));
		goto out_close;
	}
	if (s->family == AF_UNIX && mode != 0) {
		const char *path = ((const struct sockaddr_un *)&s->addr)->sun_path;
		if (chmod(path, (mode_t)mode) < 0) {
			mh_errf(err, errlen, "chmod %04o %s: %s", mode, s->text, strerror(errno));
			unlink(path);
			goto out_close;
		}
	}
	/* Mode and group before listen(): nobody connects under the wrong ones. */
	if (s->family == AF_UNIX && gid != (gid_t)-1) {
		const char *path = ((const struct sockaddr_un *)&s->addr)->sun_path;
		if (chown(path, (uid_t)-1, gid) < 0) {
			mh_errf(err, errlen, "chgrp %u %s: %s", (unsigned)gid, s->text,
			        strerror(errno));
			unlink(path);
			goto out_close;
		}
	}
	if (listen(fd, backlog > 0 ? backlog : SOMAXCONN) < 0) {
		mh_errf(err, errlen, "listen %s: %s", s->text, strerror(errno));
		if (s->family == AF_UNIX)
			unlink(((const struct sockaddr_un *)&s->addr)->sun_path);
		goto out_close;
	}
	return fd;
out_close:
	close(fd);
	return -1;
}

int mh_sockspec_connect_ex(const struct mh_sockspec *s, int *done, char *err, size_t errlen)
{
	*done = 0;
	int fd = socket(s->family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return mh_errf(err, errlen, "socket for %s: %s", s->text, strerror(errno));
	if (s->family == AF_INET || s->family == AF_INET6) {
		int one = 1;
		(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	}
	if (connect(fd, (const struct sockaddr *)&s->addr, s->addrlen) == 0) {
		*done = 1;
		return fd;
	}
	if (errno != EINPROGRESS && errno != EINTR) {
		/* Unix sockets report a full backlog as EAGAIN: not in progress. */
		mh_errf(err, errlen, "connect %s: %s", s->text, strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

int mh_sockspec_connect(const struct mh_sockspec *s, char *err, size_t errlen)
{
	int done;
	return mh_sockspec_connect_ex(s, &done, err, errlen);
}

void mh_socket_nodelay(int fd)
{
	int domain = 0;
	socklen_t len = sizeof(domain);
	if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) < 0)
		return;
	if (domain != AF_INET && domain != AF_INET6)
		return;
	int one = 1;
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}
