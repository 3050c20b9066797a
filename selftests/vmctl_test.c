// SPDX-License-Identifier: GPL-2.0
/*
 * vmctl_test: runs vmctl_test.sh (built into this binary) with this
 * binary as its helper, so that the test is one static file in the
 * sandbox, which has busybox but neither python nor jq.  As the helper:
 *
 *   vmctl_test json-check [-l] [PATH]
 *	Parse stdin as one JSON value (-l: one per non-empty line); exit 1
 *	with the offset of the first error.  With PATH (keys and array
 *	indices joined by '.', e.g. "0.name"), print the value there: a
 *	string without quotes, a number or literal as is, an array or object
 *	as "array N" / "object N" (N members); "missing" when absent.
 *   vmctl_test hold FILE NAME...
 *	Create bare VMs NAME..., write "ID NAME" lines to FILE, then sleep
 *	until killed.
 *   vmctl_test run FILE
 *	Create a VM with one vCPU whose guest counts forever, write
 *	"ID NAME" to FILE and run it; exit 0 with "destroyed" on stdout when
 *	the VM is destroyed under it.
 *   vmctl_test as UID CMD [ARGS...]
 *	Run CMD as UID (and gid UID), without capabilities.
 */
#include <ctype.h>
#include <fcntl.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lvmm_util.h"

/* The script, embedded at build time. */
asm(".section .rodata\n"
	".global vmctl_test_sh, vmctl_test_sh_end\n"
	"vmctl_test_sh:\n"
	".incbin \"vmctl_test.sh\"\n"
	"vmctl_test_sh_end:\n"
	".byte 0\n"
	".previous\n");
extern const char vmctl_test_sh[], vmctl_test_sh_end[];

/* ---- a small JSON parser (RFC 8259) ------------------------------------- */

struct json {
	const char *s, *p, *end;
	const char *want;	/* path to print, or NULL */
	char path[256];
	bool found;
	const char *err;
};

static void ws(struct json *j)
{
	while (j->p < j->end && strchr(" \t\r\n", *j->p))
		j->p++;
}

static bool fail(struct json *j, const char *why)
{
	if (!j->err)
		j->err = why;
	return false;
}

static bool json_value(struct json *j);

static bool json_string(struct json *j)
{
	if (j->p >= j->end || *j->p != '"')
		return fail(j, "expected a string");
	for (j->p++; j->p < j->end && *j->p != '"'; j->p++) {
		unsigned char c = *j->p;

		if (c < 0x20)
			return fail(j, "control character in a string");
		if (c != '\\')
			continue;
		if (++j->p >= j->end)
			break;
		if (*j->p == 'u') {
			for (int i = 0; i < 4; i++)
				if (++j->p >= j->end || !isxdigit((unsigned char)*j->p))
					return fail(j, "bad \\u escape");
		} else if (!strchr("\"\\/bfnrt", *j->p)) {
			return fail(j, "bad escape");
		}
	}
	if (j->p >= j->end)
		return fail(j, "unterminated string");
	j->p++;
	return true;
}

static bool json_number(struct json *j)
{
	const char *p = j->p;

	if (p < j->end && *p == '-')
		p++;
	if (p >= j->end || !isdigit((unsigned char)*p))
		return fail(j, "bad number");
	if (*p == '0')
		p++;
	else
		while (p < j->end && isdigit((unsigned char)*p))
			p++;
	if (p < j->end && *p == '.') {
		if (++p >= j->end || !isdigit((unsigned char)*p))
			return fail(j, "bad fraction");
		while (p < j->end && isdigit((unsigned char)*p))
			p++;
	}
	if (p < j->end && (*p == 'e' || *p == 'E')) {
		p++;
		if (p < j->end && (*p == '+' || *p == '-'))
			p++;
		if (p >= j->end || !isdigit((unsigned char)*p))
			return fail(j, "bad exponent");
		while (p < j->end && isdigit((unsigned char)*p))
			p++;
	}
	j->p = p;
	return true;
}

/* Parse a member or element under @key, keeping j->path. */
static bool json_child(struct json *j, const char *key, size_t klen)
{
	size_t len = strlen(j->path);
	bool ok;

	if (len + klen + 2 >= sizeof(j->path))
		return fail(j, "too deep");
	snprintf(j->path + len, sizeof(j->path) - len, "%s%.*s",
		 len ? "." : "", (int)klen, key);
	ok = json_value(j);
	j->path[len] = '\0';
	return ok;
}

static bool json_container(struct json *j, char close, size_t *n)
{
	bool obj = close == '}';
	char idx[16];

	j->p++;
	ws(j);
	*n = 0;
	if (j->p < j->end && *j->p == close) {
		j->p++;
		return true;
	}
	for (;;) {
		ws(j);
		if (obj) {
			const char *k = j->p + 1;
			size_t klen;

			if (!json_string(j))
				return false;
			klen = j->p - 1 - k;
			ws(j);
			if (j->p >= j->end || *j->p != ':')
				return fail(j, "expected ':'");
			j->p++;
			if (!json_child(j, k, klen))
				return false;
		} else {
			snprintf(idx, sizeof(idx), "%zu", *n);
			if (!json_child(j, idx, strlen(idx)))
				return false;
		}
		(*n)++;
		ws(j);
		if (j->p < j->end && *j->p == ',') {
			j->p++;
			continue;
		}
		if (j->p < j->end && *j->p == close) {
			j->p++;
			return true;
		}
		return fail(j, obj ? "expected ',' or '}'" : "expected ',' or ']'");
	}
}

static bool json_value(struct json *j)
{
	const char *start;
	bool ok;
	size_t n = 0;

	ws(j);
	start = j->p;
	if (j->p >= j->end)
		return fail(j, "expected a value");
	switch (*j->p) {
	case '{':
		ok = json_container(j, '}', &n);
		break;
	case '[':
		ok = json_container(j, ']', &n);
		break;
	case '"':
		ok = json_string(j);
		break;
	case 't':
	case 'f':
	case 'n': {
		static const char *const lit[] = { "true", "false", "null" };

		ok = false;
		for (int i = 0; i < 3; i++)
			if ((size_t)(j->end - j->p) >= strlen(lit[i]) &&
			    !strncmp(j->p, lit[i], strlen(lit[i]))) {
				j->p += strlen(lit[i]);
				ok = true;
			}
		if (!ok)
			fail(j, "bad literal");
		break;
	}
	default:
		ok = json_number(j);
	}
	if (ok && j->want && !strcmp(j->want, j->path) && !j->found) {
		j->found = true;
		if (*start == '{' || *start == '[')
			printf("%s %zu\n", *start == '{' ? "object" : "array", n);
		else if (*start == '"')
			printf("%.*s\n", (int)(j->p - start - 2), start + 1);
		else
			printf("%.*s\n", (int)(j->p - start), start);
	}
	return ok;
}

/* One JSON text in [s, end); 0 or 1 with a message. */
static int json_check_one(const char *s, const char *end, const char *want,
			  int line)
{
	struct json j = { .s = s, .p = s, .end = end, .want = want };

	if (json_value(&j)) {
		ws(&j);
		if (j.p != j.end)
			fail(&j, "text after the value");
	}
	if (j.err) {
		fprintf(stderr, "json-check: line %d, offset %ld: %s\n", line,
			(long)(j.p - s), j.err);
		return 1;
	}
	if (want && !j.found)
		puts("missing");
	return 0;
}

static int json_check(int argc, char **argv)
{
	bool lines = argc > 0 && !strcmp(argv[0], "-l");
	const char *want = argv[lines ? 1 : 0];
	size_t len = 0, cap = 1 << 16;
	char *buf = malloc(cap);
	int r = 0, line = 0;
	ssize_t n;

	while (buf && (n = read(0, buf + len, cap - len)) > 0) {
		len += n;
		if (len == cap)
			buf = realloc(buf, cap *= 2);
	}
	if (!buf)
		return 2;
	if (!lines)
		return json_check_one(buf, buf + len, want, 1);
	for (char *p = buf, *nl; p < buf + len; p = nl + 1) {
		nl = memchr(p, '\n', buf + len - p);
		if (!nl)
			nl = buf + len;
		line++;
		if (nl > p)
			r |= json_check_one(p, nl, want, line);
	}
	if (!line) {
		fprintf(stderr, "json-check: no lines\n");
		return 1;
	}
	return r;
}

/* ---- VMs for vmctl to manage ----------------------------------------------- */

static void write_ids(const char *file, struct lvmm_vm_handle *h, int n)
{
	char tmp[256];
	FILE *f;

	/* Atomically: the script waits for the file to appear. */
	snprintf(tmp, sizeof(tmp), "%s.tmp", file);
	f = fopen(tmp, "w");
	TEST_ASSERT(f, "cannot write %s", tmp);
	for (int i = 0; i < n; i++)
		fprintf(f, "%u %s\n", h[i].id, h[i].name);
	fclose(f);
	TEST_ASSERT(!rename(tmp, file), "rename %s", file);
}

static int hold(int argc, char **argv)
{
	struct lvmm_vm_handle *h = calloc(argc, sizeof(*h));
	int dev = open_lvmm_dev(), r;

	for (int i = 1; i < argc; i++) {
		r = lvmm_vm_create(dev, argv[i], &h[i - 1]);
		TEST_ASSERT(!r, "create %s: %s", argv[i], strerror(-r));
	}
	write_ids(argv[0], h, argc - 1);
	for (;;)
		pause();
}

static volatile u64 guest_counter;

static void guest_count(void)
{
	for (;;)
		guest_counter++;
}

static int run(int argc, char **argv)
{
	struct lvmm_vcpu *vcpu;
	struct lvmm_vm *vm;
	int r;

	if (argc != 1)
		return 2;
	vm = vm_create_with_one_vcpu(&vcpu, guest_count);
	write_ids(argv[0], &vm->h, 1);
	for (;;) {
		r = __vcpu_run(vcpu);
		if (r == -EINTR)
			continue;
		TEST_ASSERT(!r, "LVMM_RUN: %s", strerror(-r));
		if (vcpu->run->exit_reason == LVMM_EXIT_VM_DESTROYED)
			break;
		TEST_FAIL("unexpected exit %s",
			  exit_reason_str(vcpu->run->exit_reason));
	}
	puts("destroyed");
	vm_free(vm);
	return 0;
}

static int run_as(int argc, char **argv)
{
	uid_t uid;

	if (argc < 2)
		return 2;
	uid = atoi(argv[0]);
	if (setgroups(0, NULL) || setresgid(uid, uid, uid) ||
	    setresuid(uid, uid, uid)) {
		perror("vmctl_test as");
		return 2;
	}
	execvp(argv[1], argv + 1);
	perror(argv[1]);
	return 127;
}

int main(int argc, char **argv)
{
	char self[4096];
	ssize_t n;

	if (argc > 1 && !strcmp(argv[1], "json-check"))
		return json_check(argc - 2, argv + 2);
	if (argc > 3 && !strcmp(argv[1], "hold"))
		return hold(argc - 2, argv + 2);
	if (argc > 1 && !strcmp(argv[1], "run"))
		return run(argc - 2, argv + 2);
	if (argc > 1 && !strcmp(argv[1], "as"))
		return run_as(argc - 2, argv + 2);
	if (argc > 1) {
		fprintf(stderr, "usage: %s [json-check [-l] [PATH] | %s]\n",
			argv[0], "hold FILE NAME... | run FILE | as UID CMD...");
		return 2;
	}
	n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n < 0) {
		perror("/proc/self/exe");
		return 2;
	}
	self[n] = '\0';
	(void)vmctl_test_sh_end;
	execl("/bin/sh", "sh", "-c", vmctl_test_sh, "vmctl_test", self,
	      (char *)NULL);
	perror("/bin/sh");
	return 2;
}
