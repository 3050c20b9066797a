/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * vmctl: the TCP side of a live migration (Documentation/migration.rst,
 * section 9), shared by vmctl migrate (migrate.c), which connects to the
 * destination, and vmctl run --incoming (run.c), which waits for it.
 * lvmm does the rest on the connected socket.
 */
#ifndef _VMCTL_MIGRATE_H
#define _VMCTL_MIGRATE_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

/* "[ffff:...:ffff]:65535" and its NUL, with room to spare. */
#define VMCTL_ADDR_LEN	64

/* HOST:PORT, [IPV6]:PORT or, where the host may be left out, PORT. */
struct vmctl_hostport {
	char host[256];		/* "" when left out */
	char port[8];		/* digits */
};

/*
 * Parse @s for @what ("migrate: HOST:PORT"): a host is required unless
 * @host_optional; ports run from @min_port (0: any free port) to 65535.
 * On a mistake say what is wrong and what to write, and return false.
 */
bool vmctl_hostport_parse(const char *what, const char *s, bool host_optional,
			  unsigned int min_port, struct vmctl_hostport *hp);

/* @sa as "10.0.0.2:4444" or "[fd00::2]:4444" (IPv4-mapped as IPv4). */
const char *vmctl_sockaddr_str(char *buf, size_t len,
			       const struct sockaddr *sa);

/*
 * A TCP socket listening on @hp (SO_REUSEADDR, a backlog of 1): on its
 * host, else on every address, IPv6 and IPv4.  Its address goes to
 * @addr (VMCTL_ADDR_LEN bytes), the port the kernel chose for port 0
 * included.  On failure say why and what to do, and return a negative
 * errno.
 */
int vmctl_mig_listen(const struct vmctl_hostport *hp, char *addr);

/*
 * Accept one connection on @lfd while reading @sig_fd, a signalfd: the
 * connected, blocking socket, its peer's address in @peer
 * (VMCTL_ADDR_LEN bytes); -EINTR when a signal came first, its number in
 * *@sig; else a negative errno after saying why.
 */
int vmctl_mig_accept(int lfd, int sig_fd, char *peer, int *sig);

#endif /* _VMCTL_MIGRATE_H */
