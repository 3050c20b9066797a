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
 *   vmctl_test run FILE [foreign|apic]
 *	Create a VM with one vCPU whose guest counts forever, write
 *	"ID NAME" to FILE and run it; exit 0 with "destroyed" on stdout when
 *	the VM is destroyed under it.  foreign: with the device state of a
 *	VMM that is not vmctl run; apic: with lvmm's in-kernel APICs.
 *   vmctl_test as UID CMD [ARGS...]
 *	Run CMD as UID (and gid UID), without capabilities.
 *   vmctl_test mkbzimage FILE [KEY=VALUE]...
 *	Write a bzImage with a setup header made of the KEYs (version,
 *	xloadflags, relocatable, pref, init_size, initrd_max, cmdline_size,
 *	setup_sects, boot_flag, loadflags, pm_size) and defaults like
 *	Debian's kernel, and pm_size bytes of a pattern as its kernel.
 *   vmctl_test boot-layout [-m MIB] [-c CPUS] [-i INITRD] [-a CMDLINE] [-I] FILE
 *	Load FILE as vmctl run does (tools/vmctl/run_loader.c and
 *	run_linux.c, linked in) into MIB of memory, for a VM with an I/O
 *	APIC with -I, then read back what a Linux guest would find there
 *	and print it, a "key value..." line each: the boot_params fields,
 *	the e820 map, the MP table found the way Linux searches for it, its
 *	checksums and entries, and the ACPI tables likewise (run_acpi.c,
 *	which run.c adds).  No lvmm needed.
 */
#include <ctype.h>
#include <fcntl.h>
#include <grp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lvmm_util.h"
#include "run.h"		/* tools/vmctl */

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

	if (argc != 1 && (argc != 2 || (strcmp(argv[1], "foreign") &&
					strcmp(argv[1], "apic"))))
		return 2;
	if (argc == 2 && !strcmp(argv[1], "apic")) {
		vm = vm_create();
		vm_create_irqchip(vm);
		vcpu = vm_vcpu_add(vm, 0, guest_count);
	} else {
		vm = vm_create_with_one_vcpu(&vcpu, guest_count);
	}
	/* Device state of a VMM that is not vmctl run. */
	if (argc == 2 && !strcmp(argv[1], "foreign")) {
		r = lvmm_set_vmm_state(&vm->h, "another VMM", 11);
		TEST_ASSERT(!r, "LVMM_SET_VMM_STATE: %s", strerror(-r));
	}
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

/* ---- the Linux boot protocol, without lvmm ----------------------------------- */

/* run_loader.c and run_linux.c report through vmctl's vmctl_err(). */
void vmctl_err(const char *fmt, ...)
{
	va_list ap;

	fputs("vmctl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static void put_le(unsigned char *p, unsigned long long v, int bytes)
{
	for (int i = 0; i < bytes; i++)
		p[i] = v >> (8 * i);
}

static unsigned long long get_le(const unsigned char *p, int bytes)
{
	unsigned long long v = 0;

	for (int i = bytes - 1; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

static unsigned char pattern(size_t i)
{
	return i * 7 + 3;
}

static int mkbzimage(int argc, char **argv)
{
	unsigned long long version = 0x20f, xlf = 0x7f, reloc = 1;
	unsigned long long pref = 0x1000000, init_size = 0x400000;
	unsigned long long initrd_max = 0x7fffffff, cmdline_size = 2047;
	unsigned long long sects = 27, boot_flag = 0xaa55, loadflags = 1;
	unsigned long long pm_size = 0x10000, *v;
	unsigned char *d;
	size_t size, off;
	FILE *f;

	if (argc < 1)
		return 2;
	for (int i = 1; i < argc; i++) {
		char *eq = strchr(argv[i], '=');

		if (!eq)
			return 2;
		*eq = 0;
		v = !strcmp(argv[i], "version") ? &version :
		    !strcmp(argv[i], "xloadflags") ? &xlf :
		    !strcmp(argv[i], "relocatable") ? &reloc :
		    !strcmp(argv[i], "pref") ? &pref :
		    !strcmp(argv[i], "init_size") ? &init_size :
		    !strcmp(argv[i], "initrd_max") ? &initrd_max :
		    !strcmp(argv[i], "cmdline_size") ? &cmdline_size :
		    !strcmp(argv[i], "setup_sects") ? &sects :
		    !strcmp(argv[i], "boot_flag") ? &boot_flag :
		    !strcmp(argv[i], "loadflags") ? &loadflags :
		    !strcmp(argv[i], "pm_size") ? &pm_size : NULL;
		if (!v) {
			fprintf(stderr, "mkbzimage: unknown key '%s'\n", argv[i]);
			return 2;
		}
		*v = strtoull(eq + 1, NULL, 0);
	}
	off = ((sects ? sects : 4) + 1) * 512;
	size = off + pm_size;
	d = calloc(1, size);
	if (!d)
		return 2;
	d[0] = 'M';
	d[1] = 'Z';
	d[0x1f1] = sects;
	put_le(d + 0x1fe, boot_flag, 2);
	d[0x200] = 0xeb;
	d[0x201] = 0x268 - 0x202;	/* the header ends after init_size */
	memcpy(d + 0x202, "HdrS", 4);
	put_le(d + 0x206, version, 2);
	d[0x211] = loadflags;
	put_le(d + 0x214, 0x100000, 4);
	put_le(d + 0x22c, initrd_max, 4);
	put_le(d + 0x230, 0x200000, 4);
	d[0x234] = reloc;
	put_le(d + 0x236, xlf, 2);
	put_le(d + 0x238, cmdline_size, 4);
	put_le(d + 0x258, pref, 8);
	put_le(d + 0x260, init_size, 4);
	for (size_t i = 0; i < pm_size; i++)
		d[off + i] = pattern(i);
	f = fopen(argv[0], "w");
	if (!f || fwrite(d, 1, size, f) != size || fclose(f)) {
		perror(argv[0]);
		return 2;
	}
	free(d);
	return 0;
}

static bool sum_ok(const unsigned char *p, size_t len)
{
	unsigned char sum = 0;

	while (len--)
		sum += *p++;
	return !sum;
}

/* Linux's smp_scan_config(): "_MP_", length 1, a good checksum. */
static long mp_scan(const unsigned char *mem, unsigned long base,
		    unsigned long len)
{
	for (unsigned long a = base; a + 16 <= base + len; a += 16)
		if (!memcmp(mem + a, "_MP_", 4) && mem[a + 8] == 1 &&
		    sum_ok(mem + a, 16))
			return a;
	return -1;
}

static void print_mp(const unsigned char *mem, uint64_t mem_size)
{
	unsigned long ebda = get_le(mem + 0x40e, 2) << 4;
	const unsigned char *mpc, *e;
	unsigned long phys, len;
	long mpf;
	int n;

	printf("bda ebda 0x%lx base_kib %llu\n", ebda, get_le(mem + 0x413, 2));
	/* The order of default_find_smp_config(), then the EBDA. */
	mpf = mp_scan(mem, 0, 0x400);
	if (mpf < 0)
		mpf = mp_scan(mem, 639 * 0x400, 0x400);
	if (mpf < 0)
		mpf = mp_scan(mem, 0xf0000, 0x10000);
	if (mpf < 0 && ebda && ebda < 0xa0000)
		mpf = mp_scan(mem, ebda, 0x400);
	if (mpf < 0) {
		printf("mpf none\n");
		return;
	}
	phys = get_le(mem + mpf + 4, 4);
	printf("mpf 0x%lx physptr 0x%lx spec %u feature1 %u feature2 0x%x\n",
	       mpf, phys, mem[mpf + 9], mem[mpf + 11], mem[mpf + 12]);
	if (phys + 44 > mem_size || memcmp(mem + phys, "PCMP", 4)) {
		printf("mpc none\n");
		return;
	}
	mpc = mem + phys;
	len = get_le(mpc + 4, 2);
	n = get_le(mpc + 34, 2);
	printf("mpc length %lu spec %u checksum %s entries %d lapic 0x%llx oem %.8s product %.12s\n",
	       len, mpc[6], sum_ok(mpc, len) ? "ok" : "bad", n,
	       get_le(mpc + 36, 4), mpc + 8, mpc + 16);
	printf("mp_reserved %s\n",
	       mpf >= 0x9fc00 && phys + len <= 0xa0000 ? "ebda" : "no");
	e = mpc + 44;
	for (int i = 0; i < n && e < mpc + len; i++) {
		switch (e[0]) {
		case 0:
			printf("mp cpu apic %u version 0x%x flags %u\n",
			       e[1], e[2], e[3]);
			e += 20;
			break;
		case 1:
			printf("mp bus %u %.6s\n", e[1], e + 2);
			e += 8;
			break;
		case 2:
			printf("mp ioapic %u version 0x%x flags %u address 0x%llx\n",
			       e[1], e[2], e[3], get_le(e + 4, 4));
			e += 8;
			break;
		case 3:
		case 4:
			printf("mp %s type %u flags %llu bus %u irq %u apic 0x%x pin %u\n",
			       e[0] == 3 ? "intsrc" : "lintsrc", e[1],
			       get_le(e + 2, 2), e[4], e[5], e[6], e[7]);
			e += 8;
			break;
		default:
			printf("mp bad entry %u\n", e[0]);
			return;
		}
	}
}

/* An ACPI table at @gpa: its signature, revision, length and checksum. */
static const unsigned char *acpi_table(const unsigned char *mem,
				       uint64_t mem_size, uint64_t gpa)
{
	const unsigned char *t = mem + gpa;
	unsigned long long len;

	if (gpa + 36 > mem_size)
		return NULL;
	len = get_le(t + 4, 4);
	if (len < 36 || gpa + len > mem_size)
		return NULL;
	printf("acpi %.4s 0x%llx revision %u length %llu checksum %s reserved %s\n",
	       t, (unsigned long long)gpa, t[8], len,
	       sum_ok(t, len) ? "ok" : "bad",
	       gpa >= 0xe0000 && gpa + len <= 0x100000 ? "bios" : "no");
	return t;
}

static void print_madt(const unsigned char *t)
{
	const unsigned char *e = t + 44, *end = t + get_le(t + 4, 4);

	printf("madt lapic 0x%llx flags %llu\n", get_le(t + 36, 4),
	       get_le(t + 40, 4));
	while (e + 2 <= end && e[1] >= 2 && e + e[1] <= end) {
		switch (e[0]) {
		case 0:
			printf("madt cpu %u apic %u flags %llu\n", e[2], e[3],
			       get_le(e + 4, 4));
			break;
		case 1:
			printf("madt ioapic %u address 0x%llx gsi %llu\n", e[2],
			       get_le(e + 4, 4), get_le(e + 8, 4));
			break;
		case 2:
			printf("madt override irq %u gsi %llu\n", e[3],
			       get_le(e + 4, 4));
			break;
		case 4:
			printf("madt nmi 0x%x flags %llu lint %u\n", e[2],
			       get_le(e + 3, 2), e[5]);
			break;
		default:
			printf("madt entry %u\n", e[0]);
			break;
		}
		e += e[1];
	}
}

/*
 * The ACPI tables, found as Linux's acpi_find_root_pointer() scans the
 * BIOS area, and boot_params' acpi_rsdp_addr; the FADT's flags and sleep
 * registers, the MADT's entries and the DSDT's \_S5 sleep type.
 */
static void print_acpi(const unsigned char *mem, uint64_t mem_size)
{
	const unsigned char *rsdp = NULL, *xsdt, *t, *d;
	unsigned long long len, x, n;
	uint64_t a;

	printf("rsdp_addr 0x%llx\n",
	       get_le(mem + RUN_LINUX_BOOT_PARAMS_GPA + 0x70, 8));
	for (a = 0xe0000; a < 0x100000; a += 16) {
		if (!memcmp(mem + a, "RSD PTR ", 8) && sum_ok(mem + a, 20)) {
			rsdp = mem + a;
			break;
		}
	}
	if (!rsdp) {
		printf("rsdp none\n");
		return;
	}
	x = get_le(rsdp + 24, 8);
	printf("rsdp 0x%llx revision %u rsdt 0x%llx xsdt 0x%llx ext_checksum %s\n",
	       (unsigned long long)a, rsdp[15], get_le(rsdp + 16, 4), x,
	       sum_ok(rsdp, 36) ? "ok" : "bad");
	xsdt = acpi_table(mem, mem_size, x);
	if (!xsdt || memcmp(xsdt, "XSDT", 4))
		return;
	n = (get_le(xsdt + 4, 4) - 36) / 8;
	for (unsigned long long i = 0; i < n; i++) {
		t = acpi_table(mem, mem_size, get_le(xsdt + 36 + i * 8, 8));
		if (t && !memcmp(t, "APIC", 4))
			print_madt(t);
		if (!t || memcmp(t, "FACP", 4))
			continue;
		/* flags at 112, X_DSDT at 140, the sleep registers at 244. */
		printf("fadt flags 0x%llx dsdt 0x%llx x_dsdt 0x%llx minor %u\n",
		       get_le(t + 112, 4), get_le(t + 40, 4),
		       get_le(t + 140, 8), t[131]);
		printf("fadt sleep_control space %u width %u access %u 0x%llx\n",
		       t[244], t[245], t[247], get_le(t + 248, 8));
		printf("fadt sleep_status space %u width %u access %u 0x%llx\n",
		       t[256], t[257], t[259], get_le(t + 260, 8));
		d = acpi_table(mem, mem_size, get_le(t + 140, 8));
		if (!d)
			continue;
		len = get_le(d + 4, 4);
		/* NameOp "_S5_" PackageOp PkgLength NumElements BytePrefix */
		for (const unsigned char *p = d + 36; p + 10 <= d + len; p++)
			if (!memcmp(p, "\x08_S5_\x12", 6) && p[8] == 0x0a)
				printf("dsdt s5 %u\n", p[9]);
	}
	a = RUN_LINUX_RESET_VECTOR;
	printf("reset_vector %02x %02x %02x %02x\n", mem[a], mem[a + 1],
	       mem[a + 2], mem[a + 3]);
}

static int boot_layout(int argc, char **argv)
{
	uint64_t mem_size = 256ULL << 20;
	const char *cmdline = "", *initrd = NULL;
	const unsigned char *bp, *e;
	struct run_image img;
	unsigned char *mem;
	int opt, cpus = 1, r;
	bool ioapic = false;
	uint64_t a;

	optind = 1;
	while ((opt = getopt(argc, argv, "m:c:i:a:I")) != -1) {
		switch (opt) {
		case 'I':
			ioapic = true;
			break;
		case 'm':
			mem_size = strtoull(optarg, NULL, 0) << 20;
			break;
		case 'c':
			cpus = atoi(optarg);
			break;
		case 'i':
			initrd = optarg;
			break;
		case 'a':
			cmdline = optarg;
			break;
		default:
			return 2;
		}
	}
	if (optind != argc - 1)
		return 2;
	memset(&img, 0, sizeof(img));
	r = run_blob_read(&img.blob, argv[optind]);
	if (!r)
		r = run_image_parse(&img, false);
	if (!r && !img.is_linux) {
		fprintf(stderr, "boot-layout: %s is a %s\n", argv[optind], img.format);
		return 1;
	}
	if (!r && initrd)
		r = run_blob_read(&img.lx.initrd, initrd);
	if (!r)
		r = run_layout(&img, NULL, 0, cmdline, mem_size);
	if (r)
		return 1;
	/* Untouched pages stay unallocated: zero, as a new memory slot. */
	mem = mmap(NULL, mem_size, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (mem == MAP_FAILED)
		return 2;
	run_install(mem, mem_size, &img, NULL, 0, cmdline, cpus, ioapic);
	/* What run.c adds for Linux. */
	run_linux_set_rsdp(mem, run_acpi_install(mem, cpus, ioapic));

	bp = mem + RUN_LINUX_BOOT_PARAMS_GPA;
	printf("format %s\n", img.format);
	printf("entry 0x%llx rsi 0x%llx\n", (unsigned long long)img.entry,
	       RUN_LINUX_BOOT_PARAMS_GPA);
	printf("gdt boot_cs 0x%016llx boot_ds 0x%016llx\n",
	       get_le(mem + RUN_GDT_GPA + 0x10, 8),
	       get_le(mem + RUN_GDT_GPA + 0x18, 8));
	printf("version 0x%llx\n", get_le(bp + 0x206, 2));
	printf("type_of_loader 0x%x loadflags 0x%x\n", bp[0x210], bp[0x211]);
	a = get_le(bp + 0x214, 4);
	printf("code32_start 0x%llx kernel %s\n", (unsigned long long)a,
	       a + img.lx.pm_size <= mem_size &&
	       !memcmp(mem + a, img.blob.data + img.lx.pm_offset,
		       img.lx.pm_size) ? "intact" : "wrong");
	a = get_le(bp + 0x228, 4) | get_le(bp + 0xc8, 4) << 32;
	printf("cmd_line_ptr 0x%llx\n", (unsigned long long)a);
	printf("cmdline '%s'\n", (const char *)mem + a);
	a = get_le(bp + 0x218, 4) | get_le(bp + 0xc0, 4) << 32;
	printf("ramdisk 0x%llx %llu %s\n", (unsigned long long)a,
	       get_le(bp + 0x21c, 4) | get_le(bp + 0xc4, 4) << 32,
	       !initrd ? "none" :
	       a + img.lx.initrd.size <= mem_size &&
	       !memcmp(mem + a, img.lx.initrd.data, img.lx.initrd.size) ?
	       "intact" : "wrong");
	printf("e820 %u\n", bp[0x1e8]);
	for (int i = 0; i < bp[0x1e8] && i < 128; i++) {
		e = bp + 0x2d0 + i * 20;
		printf("e820 0x%llx-0x%llx %llu\n", get_le(e, 8),
		       get_le(e, 8) + get_le(e + 8, 8), get_le(e + 16, 4));
	}
	print_mp(mem, mem_size);
	print_acpi(mem, mem_size);
	return 0;
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
	if (argc > 2 && !strcmp(argv[1], "mkbzimage"))
		return mkbzimage(argc - 2, argv + 2);
	if (argc > 1 && !strcmp(argv[1], "boot-layout"))
		return boot_layout(argc - 1, argv + 1);
	if (argc > 1) {
		fprintf(stderr, "usage: %s [json-check [-l] [PATH] | %s]\n",
			argv[0], "hold FILE NAME... | run FILE | as UID CMD... | mkbzimage FILE [KEY=VALUE]... | boot-layout [-m MIB] [-c CPUS] [-i INITRD] [-a CMDLINE] [-I] FILE");
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
