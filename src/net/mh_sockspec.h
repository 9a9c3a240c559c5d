/*
 * mh_sockspec - milter socket specifications: parse, listen, connect.
 *
 * Accepted forms:
 *   unix:/path  local:/path  /path         (Sendmail and Postfix)
 *   inet:PORT@HOST  inet6:PORT@HOST        (Sendmail; HOST may be omitted
 *                                          for listening: any address)
 *   inet:HOST:PORT  inet:[v6addr]:PORT     (Postfix)
 * HOST is a numeric address or a name resolved with getaddrinfo (only
 * "localhost" makes sense here: the tests never leave loopback).
 */
#ifndef MH_SOCKSPEC_H
#define MH_SOCKSPEC_H

#include <sys/socket.h>
#include <sys/types.h>
#include <sys/un.h>

struct mh_sockspec {
	int family; /* AF_UNIX, AF_INET, AF_INET6 */
	struct sockaddr_storage addr;
	socklen_t addrlen;
	char text[sizeof(struct sockaddr_un) + 64]; /* normalised, for logs */
};

/*
 * Parse spec. Returns 0, or -1 with a one-line reason (no trailing
 * newline) in err[0..errlen).
 */
int mh_sockspec_parse(const char *spec, struct mh_sockspec *out, char *err, size_t errlen);

/*
 * Listening socket, non-blocking, close-on-exec. Unix: a stale socket
 * file is removed first, and the socket gets `mode` (e.g. 0660; 0 = leave
 * the umask's). TCP: SO_REUSEADDR. Returns the fd or -1 with err filled.
 */
int mh_sockspec_listen(const struct mh_sockspec *s, int backlog, unsigned mode, char *err,
                       size_t errlen);
/* The same; a unix socket also gets group gid ((gid_t)-1: unchanged) before listen(). */
int mh_sockspec_listen_ex(const struct mh_sockspec *s, int backlog, unsigned mode, gid_t gid,
                          char *err, size_t errlen);

/*
 * Start a non-blocking connect. Returns the fd (connection in progress
 * or done: wait for writability and check SO_ERROR) or -1 with err.
 * TCP sockets get TCP_NODELAY.
 */
int mh_sockspec_connect(const struct mh_sockspec *s, char *err, size_t errlen);
/*
 * The same; *done is set to 1 when connect() completed at once (then no
 * SO_ERROR check is needed), 0 when it is in progress.
 */
int mh_sockspec_connect_ex(const struct mh_sockspec *s, int *done, char *err, size_t errlen);

/* Set TCP_NODELAY on TCP sockets (no-op elsewhere); used after accept(). */
void mh_socket_nodelay(int fd);

#endif
