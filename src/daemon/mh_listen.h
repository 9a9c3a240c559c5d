/*
 * mh_listen - the MTA-facing listening socket the master opens (as root,
 * before any privilege is dropped) and its workers share.
 *
 * Unix sockets get the configured mode and group; the file is removed
 * on close only if it is still the one we made (a successor may own the
 * path). A reload that keeps the spec keeps the socket (mode and group
 * are applied to it in place), so no connection is ever refused during
 * a reload.
 */
#ifndef MH_LISTEN_H
#define MH_LISTEN_H

#include <stddef.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "net/mh_sockspec.h"

struct mh_listener {
	int fd; /* -1 when closed */
	char *text; /* the spec as configured (owned) */
	struct mh_sockspec spec;
	struct stat st; /* the unix socket file we made; st_ino 0: none */
};

/*
 * Listen on spec text: mode (unix; 0 = umask's) and group (unix; NULL =
 * leave). Returns 0, or -1 with "cannot listen on SPEC: reason" in err.
 */
int mh_listener_open(struct mh_listener *l, const char *text, unsigned mode, const char *group,
                     char *err, size_t errlen);
/* Set mode and group on an open unix socket (a reload changed them). */
int mh_listener_set_access(struct mh_listener *l, unsigned mode, const char *group, char *err,
                           size_t errlen);
/* Close; remove the unix socket file when unlink_file and it is still ours. */
void mh_listener_close(struct mh_listener *l, int unlink_file);

#endif
