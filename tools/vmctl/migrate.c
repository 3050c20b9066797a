// SPDX-License-Identifier: GPL-2.0-only
/*
 * vmctl migrate: a running VM to another host, live, with netlink
 * vm-migrate (Documentation/migration.rst, section 9).
 *
 * vmctl resolves the destination, connects a TCP socket to the 'vmctl run
 * --incoming' waiting there and gives the socket to lvmm, whose kernel
 * thread sends the VM while it runs and hands it over; vmctl only shows
 * the migrate-progress events and says how the migrated event says it
 * ended.  The destination's side of the socket, listening and accepting
 * one connection, is here too, for run.c.
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>

#include "lvmm.h"
#include "migrate.h"
#include "nl.h"
#include "vmctl.h"

/* --bandwidth is in MB/s, megabytes of 10^6 bytes, as links are. */
#define MIG_MB			1000000ULL
#define MIG_MiB			(1024.0 * 1024.0)
#define MIG_BANDWIDTH_MAX	1000000U	/* 1 TB/s */

/* ---- addresses -------------------------------------------------------------- */

static bool mig_port_parse(const char *what, const char *s,
			   unsigned int min_port, struct vmctl_hostport *hp)
{
	unsigned long n;
	char *end;

	errno = 0;
	n = strtoul(s, &end, 10);
	if (!isdigit((unsigned char)*s) || *end || errno || n < min_port ||
	    n > 65535) {
		vmctl_err("%s: '%s' is not a port; give a number from %u to 65535%s",
			  what, s, min_port,
			  min_port ? "" : " (0: any free port)");
		return false;
	}
	snprintf(hp->port, sizeof(hp->port), "%lu", n);
	return true;
}

bool vmctl_hostport_parse(const char *what, const char *s, bool host_optional,
			  unsigned int min_port, struct vmctl_hostport *hp)
{
	const char *form = host_optional ? "[ADDR:]PORT" : "HOST:PORT";
	const char *colon, *host = s;
	size_t len;

	memset(hp, 0, sizeof(*hp));
	if (*s == '[') {
		/* [IPv6]:PORT: the address is what the brackets hold. */
		colon = strchr(s, ']');
		if (!colon || colon[1] != ':' || colon == s + 1) {
			vmctl_err("%s: '%s' is not %s; write an IPv6 address as [ADDR]:PORT, such as [fd00::2]:4444",
				  what, s, form);
			return false;
		}
		host = s + 1;
		len = colon - host;
		colon++;
	} else {
		colon = strrchr(s, ':');
		if (colon && memchr(s, ':', colon - s)) {
			vmctl_err("%s: '%s' is ambiguous; write an IPv6 address in brackets, such as [%.*s]:PORT",
				  what, s, (int)(colon - s), s);
			return false;
		}
		if (!colon && host_optional)
			return mig_port_parse(what, s, min_port, hp);
		if (!colon) {
			vmctl_err("%s: '%s' has no port; give HOST:PORT, such as host2:4444",
				  what, s);
			return false;
		}
		len = colon - s;
	}
	if (!len) {
		vmctl_err("%s: '%s' has no host; give %s, such as %s",
			  what, s, form, host_optional ? "4444 or 10.0.0.2:4444" :
			  "host2:4444");
		return false;
	}
	if (len >= sizeof(hp->host)) {
		vmctl_err("%s: the host of '%.40s...' is too long", what, s);
		return false;
	}
	memcpy(hp->host, host, len);
	return mig_port_parse(what, colon + 1, min_port, hp);
}

const char *vmctl_sockaddr_str(char *buf, size_t len,
			       const struct sockaddr *sa)
{
	const struct sockaddr_in6 *s6 = (const void *)sa;
	const struct sockaddr_in *s4 = (const void *)sa;
	char a[INET6_ADDRSTRLEN];
	struct in_addr v4;

	if (sa->sa_family == AF_INET6 && IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr)) {
		memcpy(&v4, &s6->sin6_addr.s6_addr[12], sizeof(v4));
		inet_ntop(AF_INET, &v4, a, sizeof(a));
		snprintf(buf, len, "%s:%u", a, ntohs(s6->sin6_port));
	} else if (sa->sa_family == AF_INET6) {
		inet_ntop(AF_INET6, &s6->sin6_addr, a, sizeof(a));
		snprintf(buf, len, "[%s]:%u", a, ntohs(s6->sin6_port));
	} else if (sa->sa_family == AF_INET) {
		inet_ntop(AF_INET, &s4->sin_addr, a, sizeof(a));
		snprintf(buf, len, "%s:%u", a, ntohs(s4->sin_port));
	} else {
		snprintf(buf, len, "(address family %u)", sa->sa_family);
	}
	return buf;
}

/* The addresses of @hp, or NULL after saying why not. */
static struct addrinfo *mig_resolve(const char *what,
				    const struct vmctl_hostport *hp, int flags)
{
	struct addrinfo hints = {
		.ai_family = AF_UNSPEC,
		.ai_socktype = SOCK_STREAM,
		.ai_flags = AI_NUMERICSERV | flags,
	};
	struct addrinfo *res;
	int e;

	e = getaddrinfo(hp->host, hp->port, &hints, &res);
	if (!e)
		return res;
	/* vmctl is static: names need glibc's NSS libraries at run time. */
	vmctl_err("%s: cannot resolve '%s': %s; give an IP address, or a name this host resolves",
		  what, hp->host,
		  e == EAI_SYSTEM ? strerror(errno) : gai_strerror(e));
	return NULL;
}

/* A blocking TCP socket connected to @hp; says why not. */
static int mig_connect(const struct vmctl_hostport *hp, const char *dest)
{
	struct addrinfo *res, *ai;
	int fd = -1, e = -EHOSTUNREACH;

	res = mig_resolve("migrate", hp, 0);
	if (!res)
		return -EHOSTUNREACH;
	for (ai = res; ai; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC,
			    ai->ai_protocol);
		if (fd < 0) {
			e = -errno;
			continue;
		}
		if (!connect(fd, ai->ai_addr, ai->ai_addrlen))
			break;
		e = -errno;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd >= 0)
		return fd;
	switch (-e) {
	case ECONNREFUSED:
		vmctl_err("cannot connect to %s: nothing listens there (connection refused); start 'vmctl run --incoming PORT' on the destination first",
			  dest);
		break;
	case ETIMEDOUT:
	case EHOSTUNREACH:
	case ENETUNREACH:
	case EHOSTDOWN:
		vmctl_err("cannot connect to %s: %s; check the address, the network and the destination's firewall",
			  dest, strerror(-e));
		break;
	default:
		vmctl_err("cannot connect to %s: %s", dest, strerror(-e));
		break;
	}
	return e;
}

/* Bind a listening socket of @family to @sa; -errno on failure. */
static int mig_listen_on(int family, const struct sockaddr *sa,
			 socklen_t len, bool dual)
{
	int fd, one = 1, zero = 0, e;

	fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	/* Every address, IPv4 ones included (as ::ffff:a.b.c.d). */
	if (dual)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
	if (bind(fd, sa, len) || listen(fd, 1)) {
		e = -errno;
		close(fd);
		return e;
	}
	return fd;
}

int vmctl_mig_listen(const struct vmctl_hostport *hp, char *addr)
{
	struct sockaddr_storage ss;
	struct addrinfo *res, *ai;
	socklen_t sl = sizeof(ss);
	char where[sizeof(hp->host) + 32];
	int fd = -EADDRNOTAVAIL;

	snprintf(where, sizeof(where), "%s%s%s%s", hp->host[0] ? hp->host : "",
		 hp->host[0] ? ":" : "port ", hp->port,
		 hp->host[0] ? "" : " (every address)");
	if (!hp->host[0]) {
		struct sockaddr_in6 s6 = {
			.sin6_family = AF_INET6,
			.sin6_addr = IN6ADDR_ANY_INIT,
			.sin6_port = htons(atoi(hp->port)),
		};
		struct sockaddr_in s4 = {
			.sin_family = AF_INET,
			.sin_addr.s_addr = htonl(INADDR_ANY),
			.sin_port = htons(atoi(hp->port)),
		};

		fd = mig_listen_on(AF_INET6, (struct sockaddr *)&s6,
				   sizeof(s6), true);
		/* A host without IPv6. */
		if (fd == -EAFNOSUPPORT)
			fd = mig_listen_on(AF_INET, (struct sockaddr *)&s4,
					   sizeof(s4), false);
	} else {
		res = mig_resolve("run: --incoming", hp, AI_PASSIVE);
		if (!res)
			return -EADDRNOTAVAIL;
		for (ai = res; ai; ai = ai->ai_next) {
			fd = mig_listen_on(ai->ai_family, ai->ai_addr,
					   ai->ai_addrlen, false);
			if (fd >= 0)
				break;
		}
		freeaddrinfo(res);
	}
	switch (fd) {
	case -EADDRINUSE:
		vmctl_err("run: --incoming: cannot listen on %s: the port is in use (by another 'vmctl run --incoming'?); give another PORT",
			  where);
		return fd;
	case -EACCES:
		vmctl_err("run: --incoming: cannot listen on %s: ports below 1024 need root (CAP_NET_BIND_SERVICE); give a port from 1024 up",
			  where);
		return fd;
	case -EADDRNOTAVAIL:
		vmctl_err("run: --incoming: cannot listen on %s: %s is not an address of this host; give one of its addresses, or leave ADDR out for all of them",
			  where, hp->host);
		return fd;
	default:
		if (fd < 0) {
			vmctl_err("run: --incoming: cannot listen on %s: %s",
				  where, strerror(-fd));
			return fd;
		}
	}
	if (getsockname(fd, (struct sockaddr *)&ss, &sl))
		snprintf(addr, VMCTL_ADDR_LEN, "%.*s", VMCTL_ADDR_LEN - 1, where);
	else
		vmctl_sockaddr_str(addr, VMCTL_ADDR_LEN, (struct sockaddr *)&ss);
	return fd;
}

int vmctl_mig_accept(int lfd, int sig_fd, char *peer, int *sig)
{
	struct pollfd p[2] = {
		{ .fd = lfd, .events = POLLIN },
		{ .fd = sig_fd, .events = POLLIN },
	};
	struct signalfd_siginfo si;
	struct sockaddr_storage ss;
	socklen_t sl;
	int fd, e;

	for (;;) {
		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			e = -errno;
			vmctl_err("poll: %s", strerror(-e));
			return e;
		}
		if (p[1].revents && read(sig_fd, &si, sizeof(si)) == sizeof(si)) {
			*sig = si.ssi_signo;
			return -EINTR;
		}
		if (!p[0].revents)
			continue;
		sl = sizeof(ss);
		/* Without SOCK_NONBLOCK: lvmm reads from a blocking socket. */
		fd = accept4(lfd, (struct sockaddr *)&ss, &sl, SOCK_CLOEXEC);
		if (fd >= 0)
			break;
		/* A connection that went before it was taken: wait on. */
		if (errno == EINTR || errno == ECONNABORTED || errno == EAGAIN)
			continue;
		e = -errno;
		vmctl_err("run: --incoming: cannot accept a connection: %s",
			  strerror(-e));
		return e;
	}
	vmctl_sockaddr_str(peer, VMCTL_ADDR_LEN, (struct sockaddr *)&ss);
	return fd;
}

/* ---- migrate ---------------------------------------------------------------- */

struct mig {
	const char *vm_arg, *dest;
	struct vmctl_hostport hp;
	bool cancel;
	bool has_downtime, has_bandwidth, has_iter, auto_converge, checksum;
	uint32_t downtime_ms, bandwidth_mb, max_iter;
	bool json, tty;
	struct vmctl_vm vm;
	struct vmctl_nl *nl;	/* for vm-migrate-cancel */
	struct timespec t0;
	/* From the events. */
	bool done, bar, cancelling;
	uint32_t passes;	/* the last pass a progress event showed */
	unsigned long lost;
	struct vmctl_vm ev;	/* the migrated event */
};

/* "--downtime MS" and the like: the value after argv[*i], or NULL. */
static const char *mig_value(int argc, char **argv, int *i)
{
	if (*i + 1 >= argc) {
		vmctl_err("migrate: %s needs a value", argv[*i]);
		return NULL;
	}
	return argv[++*i];
}

static int mig_parse(struct mig *m, int argc, char **argv)
{
	const char *pos[2], *v;
	int i, n = 0;

	for (i = 0; i < argc; i++) {
		const char *a = argv[i];

		if (!strcmp(a, "--cancel")) {
			m->cancel = true;
		} else if (!strcmp(a, "--auto-converge")) {
			m->auto_converge = true;
		} else if (!strcmp(a, "--checksum")) {
			m->checksum = true;
		} else if (!strcmp(a, "--downtime")) {
			v = mig_value(argc, argv, &i);
			if (!v || !vmctl_parse_u32("migrate: --downtime", v, 1,
						   LVMM_MIGRATE_DOWNTIME_MS_MAX,
						   " milliseconds (default 300)",
						   &m->downtime_ms))
				return 1;
			m->has_downtime = true;
		} else if (!strcmp(a, "--bandwidth")) {
			v = mig_value(argc, argv, &i);
			if (!v || !vmctl_parse_u32("migrate: --bandwidth", v, 1,
						   MIG_BANDWIDTH_MAX,
						   " MB/s (10^6 bytes a second; default: no limit)",
						   &m->bandwidth_mb))
				return 1;
			m->has_bandwidth = true;
		} else if (!strcmp(a, "--max-iterations")) {
			v = mig_value(argc, argv, &i);
			if (!v || !vmctl_parse_u32("migrate: --max-iterations", v, 1,
						   LVMM_MIGRATE_MAX_ITER_MAX,
						   " passes (default 30)",
						   &m->max_iter))
				return 1;
			m->has_iter = true;
		} else if (a[0] == '-' && a[1]) {
			vmctl_err("migrate: unknown option '%s'", a);
			return 1;
		} else if (n < 2) {
			pos[n++] = a;
		} else {
			vmctl_err("migrate: give one VM and one HOST:PORT");
			return 1;
		}
	}
	if (m->cancel) {
		if (n != 1 || m->has_downtime || m->has_bandwidth ||
		    m->has_iter || m->auto_converge || m->checksum) {
			vmctl_err("migrate: --cancel takes one VM and nothing else");
			return 1;
		}
		m->vm_arg = pos[0];
		return 0;
	}
	if (n != 2)
		return 1;
	m->vm_arg = pos[0];
	m->dest = pos[1];
	return vmctl_hostport_parse("migrate: HOST:PORT", m->dest, false, 1,
				    &m->hp) ? 0 : 1;
}

/* migrate --cancel VM: vm-migrate-cancel. */
static int mig_cancel(struct mig *m)
{
	struct nl_msg *msg;
	char ext[sizeof(((struct vmctl_nl *)0)->ext_msg)];
	struct vmctl_nl nl;
	struct vmctl_vm vm;
	int r;

	r = vmctl_nl_open_vm(&nl, m->vm_arg, &m->vm);
	if (r)
		return r;
	msg = vmctl_nl_vm_msg(&nl, LVMM_CMD_VM_MIGRATE_CANCEL, 0, m->vm.id);
	if (!msg) {
		vmctl_err("out of memory");
		r = -ENOMEM;
		goto out_close;
	}
	r = vmctl_nl_exec(&nl, msg, NULL, NULL);
	memcpy(ext, nl.ext_msg, sizeof(ext));
	/* No migration, or no VM any more: the VM says which. */
	if (r == -ENOENT && vmctl_vm_get(&nl, m->vm.id, NULL, &vm) == -ENOENT)
		r = -ESRCH;
	memcpy(nl.ext_msg, ext, sizeof(ext));
	switch (r) {
	case 0:
		break;
	case -ENOENT:
		vmctl_err("%s is not being migrated: there is nothing to cancel%s%s%s",
			  m->vm.name, ext[0] ? " (lvmm: " : "", ext,
			  ext[0] ? ")" : "");
		break;
	case -ESRCH:
		vmctl_err("cannot cancel the migration of %s: it has just been destroyed (or has moved); see vmctl list",
			  m->vm.name);
		r = -ENOENT;
		break;
	case -EBUSY:
		vmctl_err("too late to cancel the migration of %s: it is being handed over to the destination; its 'vmctl migrate' says how it ends",
			  m->vm.name);
		break;
	case -EOPNOTSUPP:
		vmctl_err("this lvmm cannot migrate VMs (it has no vm-migrate-cancel: it is older than vmctl); load a newer lvmm");
		break;
	default:
		vmctl_nl_report(&nl, r, "cancel the migration of", &m->vm);
		break;
	}
out_close:
	vmctl_nl_close(&nl);
	return r;
}

/*
 * Whether vm-migrate would refuse the caller: stats-get asks for what it
 * does, the VM's owner or CAP_NET_ADMIN.  Says so.
 */
static int mig_check_allowed(struct vmctl_nl *nl, const struct vmctl_vm *vm)
{
	struct vmctl_stats total;
	size_t n;
	int r;

	r = vmctl_stats_get(nl, vm->id, &total, NULL, 0, &n);
	if (r != -EPERM && r != -EACCES)
		return 0;	/* anything else: vm-migrate says */
	vmctl_nl_report(nl, r, "migrate", vm);
	return r;
}

/*
 * The migration must not take the destination's one connection and then
 * fail for want of vm-migrate here: ask /dev/lvmm first, when it opens.
 */
static int mig_check_lvmm(void)
{
	int dev = lvmm_open(), cap;

	if (dev < 0)
		return 0;	/* netlink alone is enough: let lvmm say */
	cap = lvmm_check_extension(dev, LVMM_CAP_MIGRATE);
	close(dev);
	if (cap > 0)
		return 0;
	vmctl_err("this lvmm cannot migrate VMs (no LVMM_CAP_MIGRATE: it is older than vmctl); load a newer lvmm");
	return -EOPNOTSUPP;
}

/* "12.4", "268": @bytes in MB, for the last line. */
static const char *mig_fmt_mb(char *buf, size_t len, uint64_t bytes)
{
	double mb = (double)bytes / MIG_MB;

	snprintf(buf, len, mb >= 100 ? "%.0f" : mb >= 10 ? "%.1f" : "%.2f",
		 mb);
	return buf;
}

/* "23", "0.4": @ns in milliseconds. */
static const char *mig_fmt_ms(char *buf, size_t len, uint64_t ns)
{
	double ms = ns / 1e6;

	snprintf(buf, len, ms >= 10 ? "%.0f" : "%.1f", ms);
	return buf;
}

/* The progress line on a terminal, redrawn in place, cut to its width. */
static void mig_bar(struct mig *m, const struct vmctl_migrate_ev *e)
{
	char line[256], ms[16];
	struct winsize ws;
	size_t width = 80;
	int n;

	if (!e) {
		n = snprintf(line, sizeof(line), "migrating %s to %s: connected, starting",
			     m->vm.name, m->dest);
	} else {
		n = snprintf(line, sizeof(line),
			     "migrating %s: pass %" PRIu32 ", sent %.1f MiB, left %.1f MiB, dirty %.1f MB/s, link %.1f MB/s, downtime ~%s ms",
			     m->vm.name, e->iteration, e->sent / MIG_MiB,
			     e->left / MIG_MiB, (double)e->dirty_rate / MIG_MB,
			     (double)e->bandwidth / MIG_MB,
			     mig_fmt_ms(ms, sizeof(ms), e->expected_ns));
		if (e->throttle && n > 0 && (size_t)n < sizeof(line))
			snprintf(line + n, sizeof(line) - n,
				 ", throttled %" PRIu32 "%%", e->throttle);
	}
	/* A line that wraps could not be redrawn with '\r'. */
	if (!ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) && ws.ws_col > 1)
		width = ws.ws_col;
	if (strlen(line) >= width)
		line[width - 1] = '\0';
	fprintf(stderr, "\r\033[K%s", line);
	fflush(stderr);
	m->bar = true;
}

static void mig_bar_clear(struct mig *m)
{
	if (m->bar)
		fputs("\r\033[K", stderr);
	m->bar = false;
}

static void mig_progress_json(const struct mig *m, const struct vmctl_vm *ev)
{
	const struct vmctl_migrate_ev *e = &ev->mig;

	printf("{\"event\":\"migrate-progress\",\"id\":%" PRIu32 ",\"name\":",
	       ev->id);
	vmctl_json_str(stdout, m->vm.name);
	printf(",\"iteration\":%" PRIu32 ",\"sent\":%" PRIu64 ",\"left\":%"
	       PRIu64 ",\"dirty_rate\":%" PRIu64 ",\"bandwidth\":%" PRIu64
	       ",\"expected_ns\":%" PRIu64 ",\"throttle\":%" PRIu32
	       ",\"time_ns\":%" PRIu64 "}\n", e->iteration, e->sent, e->left,
	       e->dirty_rate, e->bandwidth, e->expected_ns, e->throttle,
	       vmctl_elapsed_ns(&m->t0));
	fflush(stdout);
}

static int mig_event_cb(struct nl_msg *msg, void *arg)
{
	struct mig *m = arg;
	struct vmctl_vm ev;

	if (!vmctl_nl_vm_event(msg, m->vm.id, &ev))
		return NL_OK;
	if (ev.event == LVMM_EVENT_MIGRATE_PROGRESS) {
		m->passes = ev.mig.iteration;
		if (m->json)
			mig_progress_json(m, &ev);
		else if (m->tty)
			mig_bar(m, &ev.mig);
		return NL_OK;
	}
	if (ev.event != LVMM_EVENT_MIGRATED)
		return NL_OK;
	m->ev = ev;
	m->done = true;
	return NL_STOP;
}

/*
 * The first signal cancels the migration, and vmctl waits for its end;
 * the next stops the wait.
 */
static int mig_on_signal(int sig, void *arg)
{
	struct mig *m = arg;
	struct nl_msg *msg;
	int r;

	if (m->bar)
		fputc('\n', stderr);
	if (m->cancelling) {
		vmctl_err("%s: no longer waiting; lvmm ends the migration of %s by itself, and 'vmctl monitor' shows its 'migrated' event",
			  strsignal(sig), m->vm.name);
		return -EINTR;
	}
	m->cancelling = true;
	msg = vmctl_nl_vm_msg(m->nl, LVMM_CMD_VM_MIGRATE_CANCEL, 0, m->vm.id);
	r = msg ? vmctl_nl_exec(m->nl, msg, NULL, NULL) : -ENOMEM;
	if (!r)
		vmctl_err("%s: cancelling the migration of %s; waiting for it to stop (again: stop waiting)",
			  strsignal(sig), m->vm.name);
	else if (r == -EBUSY)
		vmctl_err("%s: too late to cancel: %s is being handed over to the destination; waiting for the end",
			  strsignal(sig), m->vm.name);
	else
		/* It may have ended already: its event is on its way. */
		vmctl_err("%s: cannot cancel the migration of %s: %s; waiting for its end",
			  strsignal(sig), m->vm.name,
			  m->nl->ext_msg[0] ? m->nl->ext_msg : strerror(-r));
	return 0;
}

/* Send vm-migrate with the connected socket @fd; say why not. */
static int mig_request(struct vmctl_nl *nl, struct mig *m, int fd)
{
	const char *ext = nl->ext_msg;
	struct nl_msg *msg;
	int r;

	msg = vmctl_nl_vm_msg(nl, LVMM_CMD_VM_MIGRATE, 0, m->vm.id);
	if (!msg || nla_put_u32(msg, LVMM_A_VM_MIGRATE_FD, fd) ||
	    (m->has_downtime &&
	     nla_put_u32(msg, LVMM_A_VM_MIGRATE_DOWNTIME_MS, m->downtime_ms)) ||
	    (m->has_bandwidth &&
	     nla_put_u64(msg, LVMM_A_VM_MIGRATE_MAX_BANDWIDTH,
			 m->bandwidth_mb * MIG_MB)) ||
	    (m->has_iter &&
	     nla_put_u32(msg, LVMM_A_VM_MIGRATE_MAX_ITER, m->max_iter)) ||
	    (m->auto_converge &&
	     nla_put_flag(msg, LVMM_A_VM_MIGRATE_AUTO_CONVERGE)) ||
	    (m->checksum && nla_put_flag(msg, LVMM_A_VM_MIGRATE_CHECKSUM))) {
		nlmsg_free(msg);
		vmctl_err("out of memory");
		return -ENOMEM;
	}
	r = vmctl_nl_job_request(nl, msg, "migrate", &m->vm);
	if (!r)
		return 0;
	/* A migration or a save runs, or its VMM logs dirty pages. */
	if (r == -EBUSY)
		vmctl_err("cannot migrate %s now: %s; wait for it to end (vmctl monitor) and try again",
			  m->vm.name, ext[0] ? ext :
			  "a migration or a save of it runs already");
	vmctl_err("closed the connection to %s unused: a 'vmctl run --incoming' waiting there has stopped; start it again",
		  m->dest);
	return r;
}

/* Why the destination refused the VM (its errno @peer), and what to do. */
static void mig_report_refused(const struct mig *m, uint32_t peer)
{
	const char *name = m->vm.name;
	char size[16];

	switch (peer) {
	case 0:
		vmctl_err("cannot migrate %s: the destination refused it", name);
		return;
	case EEXIST:
		vmctl_err("cannot migrate %s: the destination refused: %s: a VM of that name exists there; give the VM another name there (vmctl run --incoming PORT --name NAME)",
			  name, strerror(peer));
		return;
	case ENOMEM:
		vmctl_err("cannot migrate %s: the destination refused: %s: it cannot hold the VM's %s of memory (free memory there, or raise its 'ulimit -l' or memory cgroup limit)",
			  name, strerror(peer),
			  vmctl_fmt_size(size, sizeof(size), m->vm.mem_size));
		return;
	case EOPNOTSUPP:
		vmctl_err("cannot migrate %s: the destination refused: %s: its processor lacks CPU features the guest uses; migrate it to a host that has them",
			  name, strerror(peer));
		return;
	case EPROTONOSUPPORT:
		vmctl_err("cannot migrate %s: the destination refused: %s: its lvmm is older than this one and cannot read the stream; load a newer lvmm there%s",
			  name, strerror(peer),
			  m->checksum ? "" :
			  ", or migrate with --checksum, whose stream (format 2, or 3 with in-kernel APICs) lvmm has read longer");
		return;
	case EBADMSG:
		vmctl_err("cannot migrate %s: the destination refused: %s: it found the stream corrupt (a faulty link or middlebox?)",
			  name, strerror(peer));
		return;
	case EINTR:
		vmctl_err("cannot migrate %s: the destination refused: %s: its 'vmctl run --incoming' was interrupted",
			  name, strerror(peer));
		return;
	case ENOENT:
		vmctl_err("cannot migrate %s: the destination refused: %s: the VM coming in there was destroyed before the handover",
			  name, strerror(peer));
		return;
	case ECANCELED:
		vmctl_err("cannot migrate %s: the destination refused: %s: the program that received it there went away before it took the VM",
			  name, strerror(peer));
		return;
	case EPROTO:
	case E2BIG:
		vmctl_err("cannot migrate %s: the destination refused: %s: its 'vmctl run --incoming' cannot run this VM (another VMM's device state, or more vCPUs than it runs); receive it there with the VMM that runs it here",
			  name, strerror(peer));
		return;
	default:
		vmctl_err("cannot migrate %s: the destination refused: %s",
			  name, strerror(peer));
		return;
	}
}

/* A migration that failed: the VM stayed, as it was. */
static void mig_report_stayed(const struct mig *m)
{
	const struct vmctl_migrate_ev *e = &m->ev.mig;
	const char *name = m->vm.name, *dest = m->dest;

	switch (e->error) {
	case ETIME:
		vmctl_err("cannot migrate %s: it did not converge in %" PRIu32 " passes: the guest dirties memory faster than the link carries it: try --auto-converge, a higher --downtime or --bandwidth",
			  name, m->passes);
		break;
	case ECONNREFUSED:
		mig_report_refused(m, e->peer_error);
		break;
	case ECANCELED:
		vmctl_err("the migration of %s was cancelled", name);
		break;
	case EPIPE:
	case ECONNRESET:
	case ENOTCONN:
		vmctl_err("cannot migrate %s: the connection to %s broke (%s): did 'vmctl run --incoming' there stop?",
			  name, dest, strerror(e->error));
		break;
	case ETIMEDOUT:
		vmctl_err("cannot migrate %s: the destination %s did not answer for 10 s; check 'vmctl run --incoming' and the network there",
			  name, dest);
		break;
	case EPROTO:
		vmctl_err("cannot migrate %s: %s does not answer as lvmm's migration does; is it 'vmctl run --incoming'?",
			  name, dest);
		break;
	case EBUSY:
		vmctl_err("cannot migrate %s: its VMM logs the VM's dirty pages itself, which a migration needs (%s)",
			  name, strerror(e->error));
		break;
	case EINTR:
	case ENOENT:
		vmctl_err("cannot migrate %s: it was destroyed during the migration",
			  name);
		return;
	case ENOMEM:
		vmctl_err("cannot migrate %s: lvmm ran out of memory on this host; try again",
			  name);
		break;
	default:
		vmctl_err("cannot migrate %s to %s: %s", name, dest,
			  strerror(e->error));
		break;
	}
	vmctl_err("%s stays on this host, as it was", name);
}

static void mig_result_json(const struct mig *m, uint64_t total_ns)
{
	const struct vmctl_migrate_ev *e = &m->ev.mig;

	printf("{\"event\":\"migrated\",\"id\":%" PRIu32 ",\"name\":",
	       m->vm.id);
	vmctl_json_str(stdout, m->vm.name);
	fputs(",\"destination\":", stdout);
	vmctl_json_str(stdout, m->dest);
	printf(",\"outcome\":\"%s\",\"error\":%" PRIu32 ",\"peer_error\":%"
	       PRIu32 ",\"sent\":%" PRIu64 ",\"total_ns\":%" PRIu64
	       ",\"downtime_ns\":%" PRIu64 "}\n",
	       vmctl_migrate_outcome_str(e->outcome), e->error, e->peer_error,
	       e->sent, total_ns, e->downtime_ns);
}

/* Say how it ended; 0 only when the VM moved. */
static int mig_result(struct mig *m)
{
	const struct vmctl_migrate_ev *e = &m->ev.mig;
	uint64_t total = e->total_ns ? e->total_ns : vmctl_elapsed_ns(&m->t0);
	char mb[16], ms[16];

	if (!m->json)
		vmctl_nl_report_lost(m->lost);
	/* -j: the end whatever it is, the exit status says whether it moved. */
	if (m->json)
		mig_result_json(m, total);
	switch (e->outcome) {
	case LVMM_MIGRATE_MOVED:
		if (!m->json)
			printf("migrated %s in %.2f s, downtime %s ms, %s MB sent\n",
			       m->vm.name, total / 1e9,
			       mig_fmt_ms(ms, sizeof(ms), e->downtime_ns),
			       mig_fmt_mb(mb, sizeof(mb), e->sent));
		return 0;
	case LVMM_MIGRATE_STAYED:
		mig_report_stayed(m);
		return e->error ? -(int)e->error : -EIO;
	default:
		vmctl_err("the migration of %s to %s may or may not have completed: lvmm handed the VM over, but the destination did not confirm it (%s)",
			  m->vm.name, m->dest,
			  e->error ? strerror(e->error) : "no answer");
		vmctl_err("%s is kept here, paused, so that it never runs twice. Check %s: if %s runs there, 'vmctl destroy %s' here; if it does not, 'vmctl resume %s' here",
			  m->vm.name, m->hp.host, m->vm.name, m->vm.name,
			  m->vm.name);
		return -EPROTO;
	}
}

static int vmctl_migrate(struct vmctl *ctx, int argc, char **argv)
{
	struct mig m = { .json = ctx->json };
	struct vmctl_nl nl, ev_nl;
	sigset_t sigs;
	int r, fd;

	r = mig_parse(&m, argc, argv);
	if (r)
		return r;
	if (m.cancel)
		return mig_cancel(&m);
	m.tty = !m.json && isatty(STDERR_FILENO);
	m.nl = &nl;
	/*
	 * What can be known to fail comes before the connection: the
	 * destination accepts one, and gives up when it closes unused.
	 */
	r = vmctl_nl_open_vm(&nl, m.vm_arg, &m.vm);
	if (r)
		return r;
	r = mig_check_allowed(&nl, &m.vm);
	if (!r)
		r = mig_check_lvmm();
	if (r)
		goto out_close;
	/* Subscribed before the request, so that migrated cannot be missed. */
	r = vmctl_nl_open_events(&ev_nl, mig_event_cb, &m);
	if (r)
		goto out_close;
	fd = mig_connect(&m.hp, m.dest);
	if (fd < 0) {
		r = fd;
		goto out_close_ev;
	}
	/* From the request on, a signal cancels: see mig_on_signal(). */
	vmctl_job_sigset(&sigs);
	sigprocmask(SIG_BLOCK, &sigs, NULL);
	clock_gettime(CLOCK_MONOTONIC, &m.t0);
	r = mig_request(&nl, &m, fd);
	/*
	 * lvmm holds the socket now; vmctl's fd would keep the connection
	 * open after lvmm is done with it.
	 */
	close(fd);
	if (r)
		goto out_close_ev;
	if (m.tty)
		mig_bar(&m, NULL);
	r = vmctl_nl_wait_events(&ev_nl, &m.done, mig_on_signal, &m, &m.lost);
	if (r == -EIO) {
		mig_bar_clear(&m);
		vmctl_err("cannot receive lvmm's events: %s; the migration goes on, 'vmctl monitor' shows its end",
			  ev_nl.ext_msg);
	}
	if (r)
		goto out_close_ev;
	mig_bar_clear(&m);
	r = mig_result(&m);
out_close_ev:
	vmctl_nl_close(&ev_nl);
out_close:
	vmctl_nl_close(&nl);
	return r;
}

VMCTL_CMDS(vmctl_migrate_cmds) = {
	{ "migrate",
	  "VM HOST:PORT [--downtime MS] [--bandwidth MB/s] [--max-iterations N] [--auto-converge] [--checksum] | --cancel VM",
	  "Move a running VM to the 'vmctl run --incoming PORT' waiting on HOST,\n"
	  "      live: its memory is copied while it runs, then it stops here for\n"
	  "      at most about --downtime (default 300 ms) and runs on there.  A\n"
	  "      progress line on a terminal; Ctrl-C cancels.  --bandwidth caps the\n"
	  "      link (MB/s, 10^6 bytes), --max-iterations the passes (default 30);\n"
	  "      --auto-converge slows a guest that writes memory faster than the\n"
	  "      link carries it.  --checksum puts the guest's memory in the\n"
	  "      stream's end-to-end checksum too (TCP's covers it anyway; this\n"
	  "      costs CPU on both hosts).  Exit status 0 only when the VM moved.\n"
	  "      --cancel stops a migration; the VM stays here.",
	  vmctl_migrate },
	{ NULL },
};
