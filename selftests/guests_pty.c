// SPDX-License-Identifier: GPL-2.0-only
/*
 * guests_pty: run a command on a new pseudo-terminal, as if a user typed
 * at it, for run_test.sh's console tests.
 *
 *   guests_pty EXPECT SEND -- CMD [ARGS...]
 *
 * Waits for EXPECT in the command's output, types SEND (\xNN escapes
 * allowed: \x1d is Ctrl-]), copies everything the command prints to
 * stdout, and when the command has exited prints "tty: restored" if the
 * terminal is back in canonical mode with echo, "tty: raw" if not.  Exits
 * with the command's status (128 + N for signal N); 124 on a timeout:
 * 60 s, or GUESTS_PTY_TIMEOUT seconds.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/wait.h>

static size_t unescape(const char *s, char *out)
{
	size_t n = 0;

	while (*s) {
		if (s[0] == '\\' && s[1] == 'x' && s[2] && s[3]) {
			char hex[3] = { s[2], s[3], 0 };

			out[n++] = strtol(hex, NULL, 16);
			s += 4;
		} else {
			out[n++] = *s++;
		}
	}
	return n;
}

int main(int argc, char **argv)
{
	char buf[4096], seen[65536], send[256];
	size_t seen_len = 0, send_len;
	struct termios t;
	int master, slave, st, sent = 0;
	time_t start = time(NULL);
	const char *env = getenv("GUESTS_PTY_TIMEOUT");
	long limit = env && atol(env) > 0 ? atol(env) : 60;
	pid_t pid;

	if (argc < 5 || strcmp(argv[3], "--")) {
		fprintf(stderr, "usage: guests_pty EXPECT SEND -- CMD [ARGS...]\n");
		return 2;
	}
	send_len = unescape(argv[2], send);
	master = posix_openpt(O_RDWR | O_NOCTTY);
	if (master < 0 || grantpt(master) || unlockpt(master)) {
		perror("guests_pty: posix_openpt");
		return 2;
	}
	slave = open(ptsname(master), O_RDWR | O_NOCTTY);
	if (slave < 0) {
		perror("guests_pty: open the pty");
		return 2;
	}
	pid = fork();
	if (!pid) {
		setsid();
		ioctl(slave, TIOCSCTTY, 0);
		dup2(slave, 0);
		dup2(slave, 1);
		dup2(slave, 2);
		close(master);
		close(slave);
		execvp(argv[4], argv + 4);
		perror("guests_pty: exec");
		_exit(127);
	}
	for (;;) {
		struct pollfd p = { .fd = master, .events = POLLIN };
		ssize_t n;

		if (time(NULL) - start > limit) {
			kill(pid, SIGKILL);
			waitpid(pid, NULL, 0);
			printf("\nguests_pty: timeout\n");
			return 124;
		}
		if (poll(&p, 1, 200) <= 0) {
			if (waitpid(pid, &st, WNOHANG) == pid)
				break;
			continue;
		}
		n = read(master, buf, sizeof(buf));
		if (n <= 0) {
			if (waitpid(pid, &st, WNOHANG) == pid)
				break;
			usleep(10000);
			continue;
		}
		fwrite(buf, 1, n, stdout);
		fflush(stdout);
		if (seen_len + n < sizeof(seen)) {
			memcpy(seen + seen_len, buf, n);
			seen_len += n;
			seen[seen_len] = 0;
		}
		if (!sent && strstr(seen, argv[1])) {
			if (write(master, send, send_len) != (ssize_t)send_len)
				perror("guests_pty: write");
			sent = 1;
		}
	}
	if (tcgetattr(slave, &t) == 0)
		printf("\ntty: %s\n", (t.c_lflag & (ICANON | ECHO)) ==
		       (ICANON | ECHO) ? "restored" : "raw");
	if (!sent)
		printf("guests_pty: never saw '%s'\n", argv[1]);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}
