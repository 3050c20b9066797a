// SPDX-License-Identifier: GPL-2.0-only
/*
 * vmctl save, snapshot-info: a VM to a file with netlink vm-save, and what
 * such a file holds.  vmctl run --restore (run.c) reads them back.
 *
 * A snapshot is the VM stream of uapi/linux/lvmm.h (Documentation/
 * migration.rst, section 6): records, each a struct lvmm_rec and its
 * payload -- HEADER, MEMORY..., VCPU..., with the in-kernel APICs LAPIC...
 * and IRQCHIP, at most one VMM, END, whose xxh64 covers every byte before
 * END's own record header (but the pages, in a stream that says so).
 */
#include <cpuid.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>

#include "lvmm.h"
#include "nl.h"
#include "run.h"
#include "snapshot.h"
#include "vmctl.h"
#include "xxhash64.h"

#define SNAP_PAGE	4096ULL
#define SNAP_CHUNK	512		/* pages of a memory record, at most */
#define SNAP_MAX_SLOTS	4096		/* more than any lvmm allows */
#define SNAP_BUF	(1U << 20)

/* ---- reading a stream ------------------------------------------------------ */

struct snap_reader {
	int fd;
	const char *path;
	bool positional;	/* pread() from off: the fd's position stays */
	uint64_t off;		/* bytes read so far */
	struct lvmm_xxh64 xxh;	/* of all of them */
	bool unhashed;		/* reading pages LVMM_STREAM_PAGES_UNSUMMED
				   leaves out of the checksum */
	unsigned char *buf;	/* SNAP_BUF bytes, for what is only hashed */
};

/*
 * Exactly @len bytes into @buf, hashed: 0; -ENODATA when the file ends
 * first (*@got says how many came); another negative errno after saying
 * so.
 */
static int snap_read(struct snap_reader *r, void *buf, size_t len,
		     size_t *got)
{
	size_t done = 0;
	ssize_t n;
	int e;

	while (done < len) {
		if (r->positional)
			n = pread(r->fd, (char *)buf + done, len - done,
				  r->off + done);
		else
			n = read(r->fd, (char *)buf + done, len - done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			e = -errno;
			vmctl_err("cannot read %s: %s", r->path, strerror(-e));
			return e;
		}
		if (!n)
			break;
		done += n;
	}
	if (!r->unhashed)
		lvmm_xxh64_update(&r->xxh, buf, done);
	r->off += done;
	if (got)
		*got = done;
	return done == len ? 0 : -ENODATA;
}

/* @len bytes read and hashed, but not kept. */
static int snap_skip(struct snap_reader *r, uint64_t len)
{
	size_t n;
	int e;

	while (len) {
		n = len < SNAP_BUF ? len : SNAP_BUF;
		e = snap_read(r, r->buf, n, NULL);
		if (e)
			return e;
		len -= n;
	}
	return 0;
}

static int snap_corrupt(const struct snap_reader *r, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static int snap_corrupt(const struct snap_reader *r, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "vmctl: %s is corrupt: ", r->path);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs("; it cannot be restored\n", stderr);
	return -EBADMSG;
}

/* The file ended inside @what. */
static int snap_truncated(const struct snap_reader *r, const char *what)
{
	vmctl_err("%s is truncated: it ends at byte %" PRIu64 ", inside %s; it cannot be restored (was the save interrupted, or the copy cut short?)",
		  r->path, r->off, what);
	return -EBADMSG;
}

/* As lvmm's names: letters, digits, '.', '_' and '-'. */
static bool snap_name_valid(const char *s, size_t len)
{
	size_t i;

	if (!memchr(s, '\0', len) || !*s)
		return false;
	for (i = 0; s[i]; i++)
		if (!(s[i] >= 'a' && s[i] <= 'z') && !(s[i] >= 'A' && s[i] <= 'Z') &&
		    !(s[i] >= '0' && s[i] <= '9') && !strchr("._-", s[i]))
			return false;
	return true;
}

static int snap_check_slots(const struct snap_reader *r,
			    const struct vmctl_snap_header *sh)
{
	const struct lvmm_stream_header *h = &sh->h;
	uint64_t total = 0;
	uint32_t i, j;

	for (i = 0; i < h->nr_slots; i++) {
		const struct lvmm_stream_slot *s = &sh->slots[i];

		if (!s->size || s->size % SNAP_PAGE ||
		    s->guest_phys_addr % SNAP_PAGE ||
		    s->guest_phys_addr + s->size < s->guest_phys_addr ||
		    s->flags & ~LVMM_MEMSLOT_READONLY)
			return snap_corrupt(r, "its memory slot %" PRIu32 " has a bad address, size or flags",
					    s->slot);
		for (j = 0; j < i; j++) {
			const struct lvmm_stream_slot *t = &sh->slots[j];

			if (t->slot == s->slot)
				return snap_corrupt(r, "its memory slot %" PRIu32 " comes twice",
						    s->slot);
			if (s->guest_phys_addr < t->guest_phys_addr + t->size &&
			    t->guest_phys_addr < s->guest_phys_addr + s->size)
				return snap_corrupt(r, "its memory slots %" PRIu32 " and %" PRIu32 " overlap",
						    t->slot, s->slot);
		}
		total += s->size;
	}
	if (total != h->mem_size)
		return snap_corrupt(r, "its memory slots hold %" PRIu64 " bytes, its header says %" PRIu64,
				    total, (uint64_t)h->mem_size);
	return 0;
}

/* The header record, at the reader's start. */
static int snap_header(struct snap_reader *r, struct vmctl_snap_header *sh)
{
	struct lvmm_stream_header *h = &sh->h;
	struct lvmm_rec rec;
	size_t got, i;
	int e;

	memset(sh, 0, sizeof(*sh));
	e = snap_read(r, &rec, sizeof(rec), &got);
	if (e == -ENODATA && !got) {
		vmctl_err("%s is empty: not an lvmm snapshot; 'vmctl save' writes them",
			  r->path);
		return -EBADMSG;
	}
	if (!e)
		e = snap_read(r, &h->magic, sizeof(h->magic), &got);
	if (e == -ENODATA && got && rec.type == LVMM_REC_HEADER &&
	    !memcmp(&h->magic, "LVMMSNAP", got))
		return snap_truncated(r, "its header");
	if (e == -ENODATA || (!e && (rec.type != LVMM_REC_HEADER ||
				     h->magic != LVMM_STREAM_MAGIC))) {
		vmctl_err("%s is not an lvmm snapshot (it does not start with an LVMMSNAP header); 'vmctl save' writes them",
			  r->path);
		return -EBADMSG;
	}
	if (e)
		return e;
	e = snap_read(r, (char *)h + sizeof(h->magic),
		      sizeof(*h) - sizeof(h->magic), NULL);
	if (e == -ENODATA)
		return snap_truncated(r, "its header");
	if (e)
		return e;
	if (!h->version)
		return snap_corrupt(r, "its format version is 0");
	if (h->version > LVMM_STREAM_VERSION) {
		vmctl_err("%s is a snapshot of format version %" PRIu32 ", newer than this vmctl reads (%d); use a newer vmctl",
			  r->path, h->version, LVMM_STREAM_VERSION);
		return -EPROTONOSUPPORT;
	}
	for (i = 0; i < ARRAY_SIZE(h->reserved); i++)
		if (h->reserved[i])
			break;
	if (rec.flags || i < ARRAY_SIZE(h->reserved) ||
	    h->flags & ~(LVMM_STREAM_IRQCHIP | LVMM_STREAM_PAGES_UNSUMMED) ||
	    (h->flags & LVMM_STREAM_IRQCHIP && h->version < 3) ||
	    (h->flags & LVMM_STREAM_PAGES_UNSUMMED && h->version < 4))
		return snap_corrupt(r, "its header has flags its format version %" PRIu32 " lacks, or reserved bytes set",
				    h->version);
	if (h->nr_slots > SNAP_MAX_SLOTS ||
	    rec.len != sizeof(*h) + (uint64_t)h->nr_slots * sizeof(*sh->slots))
		return snap_corrupt(r, "its header record is %" PRIu64 " bytes long, which is not what %" PRIu32 " memory slots take",
				    (uint64_t)rec.len, h->nr_slots);
	if (h->nr_vcpus > VMCTL_MAX_VCPUS)
		return snap_corrupt(r, "its header says it has %" PRIu32 " vCPUs, more than lvmm allows",
				    h->nr_vcpus);
	if (!snap_name_valid(h->name, sizeof(h->name)))
		return snap_corrupt(r, "its VM name is not a name");
	if (h->nr_slots) {
		sh->slots = calloc(h->nr_slots, sizeof(*sh->slots));
		if (!sh->slots) {
			vmctl_err("out of memory");
			return -ENOMEM;
		}
		e = snap_read(r, sh->slots, h->nr_slots * sizeof(*sh->slots),
			      NULL);
		if (e == -ENODATA)
			e = snap_truncated(r, "its header's list of memory slots");
	}
	e = e ?: snap_check_slots(r, sh);
	if (e) {
		free(sh->slots);
		sh->slots = NULL;
	}
	return e;
}

int vmctl_snap_header_read(int fd, const char *path,
			   struct vmctl_snap_header *sh)
{
	struct snap_reader r = { .fd = fd, .path = path, .positional = true };

	lvmm_xxh64_reset(&r.xxh, 0);
	return snap_header(&r, sh);
}

void vmctl_snap_header_free(struct vmctl_snap_header *sh)
{
	free(sh->slots);
	sh->slots = NULL;
}

/* What snapshot-info finds in a whole stream. */
struct snap_info {
	struct vmctl_snap_header sh;
	uint64_t nr_memory, nr_vcpu, nr_vmm;
	uint64_t nr_pages, nr_runstate;	/* format 2: a migration's */
	uint64_t nr_lapic, nr_irqchip;	/* format 3: the in-kernel APICs */
	uint32_t runstate;		/* LVMM_RUNSTATE_* */
	uint64_t pages;		/* carried by the memory records */
	uint64_t bytes;		/* up to the end of the END record */
	uint64_t trailing;	/* bytes after it */
	uint64_t checksum;
	uint8_t *vmm;		/* the VMM's state, vmm_size bytes */
	uint64_t vmm_size;
};

static const struct lvmm_stream_slot *
snap_slot(const struct vmctl_snap_header *sh, uint32_t id)
{
	uint32_t i;

	for (i = 0; i < sh->h.nr_slots; i++)
		if (sh->slots[i].slot == id)
			return &sh->slots[i];
	return NULL;
}

/* A MEMORY or (@kind "pages") PAGES record: a chunk and its pages. */
static int snap_memory(struct snap_reader *r, struct snap_info *si,
		       uint64_t len, const char *kind)
{
	const struct lvmm_stream_slot *slot;
	struct lvmm_stream_mem mem;
	uint64_t present = 0;
	unsigned int i;
	int e;

	if (len < sizeof(mem))
		return snap_corrupt(r, "a %s record at byte %" PRIu64 " is too short",
				    kind, r->off - sizeof(struct lvmm_rec));
	e = snap_read(r, &mem, sizeof(mem), NULL);
	if (e == -ENODATA)
		return snap_truncated(r, kind[0] == 'm' ? "a memory record" :
					     "a pages record");
	if (e)
		return e;
	slot = snap_slot(&si->sh, mem.slot);
	if (!slot)
		return snap_corrupt(r, "a %s record at byte %" PRIu64 " is for slot %" PRIu32 ", which the header lacks",
				    kind, r->off - sizeof(mem) - sizeof(struct lvmm_rec),
				    mem.slot);
	if (!mem.npages || mem.npages > SNAP_CHUNK ||
	    mem.first_page % SNAP_CHUNK ||
	    mem.first_page > slot->size / SNAP_PAGE ||
	    mem.npages > slot->size / SNAP_PAGE - mem.first_page)
		return snap_corrupt(r, "a %s record at byte %" PRIu64 " is not a 2 MiB chunk of slot %" PRIu32,
				    kind, r->off - sizeof(mem) - sizeof(struct lvmm_rec),
				    mem.slot);
	for (i = 0; i < SNAP_CHUNK; i++) {
		if (!(mem.present[i / 64] & (1ULL << (i % 64))))
			continue;
		if (i >= mem.npages)
			return snap_corrupt(r, "a %s record at byte %" PRIu64 " has pages past its end",
					    kind, r->off - sizeof(mem) - sizeof(struct lvmm_rec));
		present++;
	}
	if (len != sizeof(mem) + present * SNAP_PAGE)
		return snap_corrupt(r, "a %s record at byte %" PRIu64 " is not as long as its pages",
				    kind, r->off - sizeof(mem) - sizeof(struct lvmm_rec));
	r->unhashed = si->sh.h.flags & LVMM_STREAM_PAGES_UNSUMMED;
	e = snap_skip(r, present * SNAP_PAGE);
	r->unhashed = false;
	if (e == -ENODATA)
		return snap_truncated(r, kind[0] == 'm' ?
				      "the pages of a memory record" :
				      "the pages of a pages record");
	si->pages += present;
	return e;
}

static int snap_vcpu(struct snap_reader *r, uint64_t len)
{
	struct lvmm_stream_vcpu *v = (struct lvmm_stream_vcpu *)r->buf;
	uint64_t at = r->off - sizeof(struct lvmm_rec);
	int e;

	if (len < sizeof(*v))
		return snap_corrupt(r, "a vCPU record at byte %" PRIu64 " is too short",
				    at);
	e = snap_read(r, v, sizeof(*v), NULL);
	if (e == -ENODATA)
		return snap_truncated(r, "a vCPU record");
	if (e)
		return e;
	if (v->nmsrs > LVMM_MAX_MSR_ENTRIES ||
	    v->ncpuid > LVMM_MAX_CPUID_ENTRIES ||
	    len != sizeof(*v) + v->nmsrs * sizeof(struct lvmm_msr_entry) +
		   v->ncpuid * sizeof(struct lvmm_cpuid_entry))
		return snap_corrupt(r, "the record of vCPU %" PRIu32 " at byte %" PRIu64 " is not as long as its MSRs and CPUID entries",
				    v->id, at);
	e = snap_skip(r, len - sizeof(*v));
	if (e == -ENODATA)
		return snap_truncated(r, "a vCPU record");
	return e;
}

static int snap_vmm(struct snap_reader *r, struct snap_info *si, uint64_t len)
{
	uint64_t size;
	int e;

	if (len < sizeof(size))
		return snap_corrupt(r, "its VMM record is too short");
	e = snap_read(r, &size, sizeof(size), NULL);
	if (e == -ENODATA)
		return snap_truncated(r, "the VMM record");
	if (e)
		return e;
	if (!size || size > LVMM_MAX_VMM_STATE ||
	    len != ((sizeof(size) + size + 7) & ~7ULL))
		return snap_corrupt(r, "its VMM record's length does not match the state in it");
	si->vmm = malloc(len - sizeof(size));
	if (!si->vmm) {
		vmctl_err("out of memory");
		return -ENOMEM;
	}
	si->vmm_size = size;
	e = snap_read(r, si->vmm, len - sizeof(size), NULL);
	if (e == -ENODATA)
		return snap_truncated(r, "the VMM record");
	return e;
}

/* Format 3: the APICs' records are in, or the VM has none. */
static bool snap_apics_done(const struct snap_info *si)
{
	return si->nr_irqchip == !!(si->sh.h.flags & LVMM_STREAM_IRQCHIP);
}

/* Format 3: a record of the in-kernel APICs, of exactly @want bytes. */
static int snap_apic(struct snap_reader *r, uint64_t len, size_t want,
		     const char *what)
{
	int e;

	if (len != want)
		return snap_corrupt(r, "its %s record at byte %" PRIu64 " is %" PRIu64 " bytes long, not %zu",
				    what, r->off - sizeof(struct lvmm_rec),
				    len, want);
	e = snap_skip(r, len);
	if (e == -ENODATA)
		return snap_truncated(r, what[0] == 'l' ?
				      "a local APIC record" :
				      "its I/O APIC record");
	return e;
}

/* Format 2: whether the VM was paused (a migration's). */
static int snap_runstate(struct snap_reader *r, struct snap_info *si,
			 uint64_t len)
{
	struct lvmm_stream_runstate rs;
	int e;

	if (len != sizeof(rs))
		return snap_corrupt(r, "its run state record is %" PRIu64 " bytes long, not %zu",
				    len, sizeof(rs));
	e = snap_read(r, &rs, sizeof(rs), NULL);
	if (e == -ENODATA)
		return snap_truncated(r, "its run state record");
	if (e)
		return e;
	if (rs.flags & ~LVMM_RUNSTATE_PAUSED || rs.pad)
		return snap_corrupt(r, "its run state record has unknown flags or padding set");
	si->runstate = rs.flags;
	return 0;
}

/* The records after the header, END included, then what follows END. */
static int snap_records(struct snap_reader *r, struct snap_info *si)
{
	const struct lvmm_stream_header *h = &si->sh.h;
	struct lvmm_stream_end end;
	struct lvmm_rec rec;
	uint64_t sum, at, nr = 1;
	size_t got;
	int e;

	for (;; nr++) {
		sum = lvmm_xxh64_digest(&r->xxh);
		at = r->off;
		e = snap_read(r, &rec, sizeof(rec), &got);
		if (e == -ENODATA && !got) {
			vmctl_err("%s is truncated: it ends after %" PRIu64 " records (%" PRIu64 " bytes), without its END record; it cannot be restored (was the save interrupted, or the copy cut short?)",
				  r->path, nr, r->off);
			return -EBADMSG;
		}
		if (e == -ENODATA)
			return snap_truncated(r, "a record header");
		if (e)
			return e;
		if (rec.flags || rec.len % 8)
			return snap_corrupt(r, "the record at byte %" PRIu64 " has flags set, or a length that is not a multiple of 8",
					    at);
		switch (rec.type) {
		case LVMM_REC_END:
			goto end;
		case LVMM_REC_MEMORY:
		case LVMM_REC_PAGES:
			if (rec.type == LVMM_REC_PAGES && h->version < 2)
				goto unknown;
			if (si->nr_vcpu || si->nr_vmm || si->nr_runstate)
				return snap_corrupt(r, "a memory record at byte %" PRIu64 " follows the vCPUs",
						    at);
			if (rec.type == LVMM_REC_PAGES) {
				e = snap_memory(r, si, rec.len, "pages");
				si->nr_pages++;
			} else {
				e = snap_memory(r, si, rec.len, "memory");
				si->nr_memory++;
			}
			break;
		case LVMM_REC_VCPU:
			if (si->nr_vcpu == h->nr_vcpus || si->nr_lapic ||
			    si->nr_vmm || si->nr_runstate)
				return snap_corrupt(r, "a vCPU record at byte %" PRIu64 " is one more than its %" PRIu32 " vCPUs, or follows the VMM's state",
						    at, h->nr_vcpus);
			e = snap_vcpu(r, rec.len);
			si->nr_vcpu++;
			break;
		case LVMM_REC_LAPIC:
		case LVMM_REC_IRQCHIP:
			if (!(h->flags & LVMM_STREAM_IRQCHIP))
				goto unknown;
			if (si->nr_vcpu < h->nr_vcpus || si->nr_irqchip ||
			    si->nr_vmm || si->nr_runstate ||
			    (rec.type == LVMM_REC_LAPIC ?
			     si->nr_lapic == h->nr_vcpus :
			     si->nr_lapic < h->nr_vcpus))
				return snap_corrupt(r, "an APIC record at byte %" PRIu64 " is out of order, or one too many",
						    at);
			if (rec.type == LVMM_REC_LAPIC) {
				e = snap_apic(r, rec.len,
					      sizeof(struct lvmm_stream_lapic),
					      "local APIC");
				si->nr_lapic++;
			} else {
				e = snap_apic(r, rec.len,
					      sizeof(struct lvmm_stream_irqchip),
					      "I/O APIC");
				si->nr_irqchip++;
			}
			break;
		case LVMM_REC_VMM:
			if (si->nr_vmm || si->nr_runstate ||
			    !snap_apics_done(si))
				return snap_corrupt(r, "a second VMM record, or one after the run state or before the APICs' records, at byte %" PRIu64,
						    at);
			e = snap_vmm(r, si, rec.len);
			si->nr_vmm++;
			break;
		case LVMM_REC_RUNSTATE:
			if (h->version < 2)
				goto unknown;
			if (si->nr_runstate || si->nr_vcpu < h->nr_vcpus ||
			    !snap_apics_done(si))
				return snap_corrupt(r, "a run state record at byte %" PRIu64 " comes twice, or before the vCPUs or their APICs",
						    at);
			e = snap_runstate(r, si, rec.len);
			si->nr_runstate++;
			break;
		case LVMM_REC_HEADER:
			return snap_corrupt(r, "a second header at byte %" PRIu64,
					    at);
		default:
unknown:
			return snap_corrupt(r, "the record at byte %" PRIu64 " is of type %" PRIu32 ", which format %" PRIu32 " does not have",
					    at, rec.type, h->version);
		}
		if (e)
			return e;
	}
end:
	if (rec.len != sizeof(end))
		return snap_corrupt(r, "its END record at byte %" PRIu64 " is %" PRIu64 " bytes long, not %zu",
				    at, (uint64_t)rec.len, sizeof(end));
	e = snap_read(r, &end, sizeof(end), NULL);
	if (e == -ENODATA)
		return snap_truncated(r, "its END record");
	if (e)
		return e;
	if (end.checksum != sum)
		return snap_corrupt(r, "its checksum does not match (xxh64 0x%016" PRIx64 " recorded, 0x%016" PRIx64 " computed)",
				    (uint64_t)end.checksum, sum);
	if (end.nr_records != nr)
		return snap_corrupt(r, "its END record counts %" PRIu64 " records before it, the file has %" PRIu64,
				    (uint64_t)end.nr_records, nr);
	if (si->nr_vcpu != h->nr_vcpus)
		return snap_corrupt(r, "it has %" PRIu64 " vCPU records for %" PRIu32 " vCPUs",
				    si->nr_vcpu, h->nr_vcpus);
	if (!snap_apics_done(si))
		return snap_corrupt(r, "its header says it has in-kernel APICs, and it lacks their records");
	si->checksum = sum;
	si->bytes = r->off;
	/* lvmm stops reading at END: what follows is not the snapshot's. */
	for (;;) {
		e = snap_read(r, r->buf, SNAP_BUF, &got);
		si->trailing += got;
		if (e == -ENODATA)
			return 0;
		if (e)
			return e;
	}
}

/* ---- snapshot-info --------------------------------------------------------- */

const char *vmctl_xsave_names(char *buf, size_t len, uint64_t xcr0)
{
	static const char *const names[64] = {
		[0] = "x87", [1] = "SSE", [2] = "AVX", [3] = "MPX BNDREGS",
		[4] = "MPX BNDCSR", [5] = "AVX-512 opmask",
		[6] = "AVX-512 ZMM_Hi256", [7] = "AVX-512 Hi16_ZMM",
		[8] = "PT", [9] = "PKRU", [11] = "CET user",
		[12] = "CET supervisor", [17] = "AMX TILECFG",
		[18] = "AMX TILEDATA",
	};
	size_t off = 0;
	int i, n;

	buf[0] = '\0';
	for (i = 0; i < 64 && off < len; i++) {
		if (!(xcr0 & (1ULL << i)))
			continue;
		if (names[i])
			n = snprintf(buf + off, len - off, "%s%s",
				     off ? ", " : "", names[i]);
		else
			n = snprintf(buf + off, len - off, "%sbit %d",
				     off ? ", " : "", i);
		off += n > 0 ? (size_t)n : 0;
	}
	if (!off)
		snprintf(buf, len, "none");
	return buf;
}

/*
 * The XSAVE features lvmm can hold on this processor: XCR0 as the host
 * set it, less PKRU, which lvmm does not switch; false without XSAVE.
 */
static bool snap_host_xcr0(uint64_t *xcr0)
{
	unsigned int a, b, c, d;

	if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & bit_OSXSAVE))
		return false;
	asm volatile("xgetbv" : "=a"(a), "=d"(d) : "c"(0));
	/* The user states of XFEATURE_MASK_USER_SUPPORTED, PKRU left out. */
	*xcr0 = ((uint64_t)d << 32 | a) & 0x600ffULL;
	return true;
}

/* Whether this host can restore it: 1 yes, 0 no, -1 cannot tell; why. */
static int snap_host_verdict(const struct lvmm_stream_header *h, char *why,
			     size_t len)
{
	char names[256];
	uint64_t xcr0 = 0, lacks;
	bool have_xcr0 = snap_host_xcr0(&xcr0);
	int dev, cap;

	lacks = h->xcr0 & ~(have_xcr0 ? xcr0 : 0x3);
	if (lacks) {
		snprintf(why, len,
			 "this processor lacks XSAVE features its vCPUs use (%s); restore it on a host that has them",
			 vmctl_xsave_names(names, sizeof(names), lacks));
		return 0;
	}
	dev = lvmm_open();
	if (dev == -ENOENT) {
		snprintf(why, len,
			 "no /dev/lvmm to ask (load lvmm to know); the processor has its XSAVE features");
		return -1;
	}
	if (dev < 0) {
		snprintf(why, len,
			 "cannot open /dev/lvmm to ask (%s); the processor has its XSAVE features",
			 strerror(-dev));
		return -1;
	}
	cap = lvmm_check_extension(dev, LVMM_CAP_SNAPSHOT);
	close(dev);
	if (cap <= 0) {
		snprintf(why, len,
			 "this lvmm cannot restore snapshots (it is older than them); load a newer lvmm");
		return 0;
	}
	if ((uint32_t)cap < h->version) {
		snprintf(why, len,
			 "this lvmm reads snapshot formats up to %d; load a newer lvmm",
			 cap);
		return 0;
	}
	snprintf(why, len,
		 "lvmm reads format %d, and the processor has its XSAVE features",
		 cap);
	return 1;
}

/* The VMM record, in words: "vmctl run's device state, format 1". */
static void snap_vmm_desc(const struct snap_info *si, char *buf, size_t len,
			  const char **vmm, uint32_t *version)
{
	*vmm = NULL;
	if (!si->vmm) {
		snprintf(buf, len,
			 "none: vmctl run --restore starts the UART afresh");
		return;
	}
	if (!run_state_identify(si->vmm, si->vmm_size, version)) {
		snprintf(buf, len,
			 "another VMM's, %" PRIu64 " bytes: vmctl run --restore refuses it",
			 si->vmm_size);
		return;
	}
	*vmm = "vmctl";
	if (*version > RUN_STATE_VERSION)
		snprintf(buf, len,
			 "vmctl run's, format %" PRIu32 ", %" PRIu64 " bytes: newer than this vmctl reads (%d), use a newer vmctl to restore it",
			 *version, si->vmm_size, RUN_STATE_VERSION);
	else
		snprintf(buf, len, "vmctl run's device state, format %" PRIu32
			 ", %" PRIu64 " bytes", *version, si->vmm_size);
}

static void snap_info_text(const char *path, const struct snap_info *si,
			   int verdict, const char *why)
{
	const struct lvmm_stream_header *h = &si->sh.h;
	time_t t = h->created_ns / 1000000000;
	char buf[256], sz[16];
	const char *vmm;
	uint32_t version, i;
	struct tm tm;

	printf("%-12s %s\n", "file:", path);
	printf("%-12s %s\n", "name:", h->name);
	printf("%-12s version %" PRIu32 "\n", "format:", h->version);
	strftime(buf, sizeof(buf), "%Y-%m-%d %H:%M:%S UTC", gmtime_r(&t, &tm));
	printf("%-12s %s\n", "created:", buf);
	printf("%-12s %" PRIu32 "\n", "vcpus:", h->nr_vcpus);
	printf("%-12s %s (%" PRIu64 " bytes) in %" PRIu32 " slot%s\n",
	       "memory:", vmctl_fmt_size(sz, sizeof(sz), h->mem_size),
	       (uint64_t)h->mem_size, h->nr_slots, h->nr_slots == 1 ? "" : "s");
	printf("%-12s 0x%" PRIx64 " (%s)\n", "xsave:", (uint64_t)h->xcr0,
	       vmctl_xsave_names(buf, sizeof(buf), h->xcr0));
	snap_vmm_desc(si, buf, sizeof(buf), &vmm, &version);
	printf("%-12s %s\n", "vmm state:", buf);
	printf("%-12s 1 header, %" PRIu64 " memory, ", "records:",
	       si->nr_memory);
	/* A migration's records (format 2), only when it has them. */
	if (si->nr_pages)
		printf("%" PRIu64 " pages, ", si->nr_pages);
	printf("%" PRIu64 " vcpu, ", si->nr_vcpu);
	/* The in-kernel APICs' records (format 3), only when it has them. */
	if (si->nr_irqchip)
		printf("%" PRIu64 " lapic, 1 irqchip, ", si->nr_lapic);
	printf("%" PRIu64 " vmm, ", si->nr_vmm);
	if (si->nr_runstate)
		printf("1 runstate (%s), ", si->runstate & LVMM_RUNSTATE_PAUSED ?
		       "paused" : "running");
	puts("1 end");
	printf("%-12s %s (%" PRIu64 " bytes), %" PRIu64
	       " pages of memory; zero pages are left out\n", "size:",
	       vmctl_fmt_size(sz, sizeof(sz), si->bytes), si->bytes,
	       si->pages);
	if (si->trailing)
		printf("%-12s %" PRIu64 " bytes after the END record, which a restore does not read\n",
		       "trailing:", si->trailing);
	printf("%-12s 0x%016" PRIx64 " (xxh64%s), matches\n", "checksum:",
	       si->checksum, si->sh.h.flags & LVMM_STREAM_PAGES_UNSUMMED ?
	       ", of all but the pages" : "");
	printf("%-12s %s: %s\n", "restore:",
	       verdict > 0 ? "yes" : verdict ? "cannot tell" : "no", why);
	if (!h->nr_slots)
		return;
	printf("\n  %-5s %-18s %10s  %s\n", "SLOT", "GPA", "SIZE", "FLAGS");
	for (i = 0; i < h->nr_slots; i++) {
		const struct lvmm_stream_slot *s = &si->sh.slots[i];

		printf("  %-5" PRIu32 " 0x%-16" PRIx64 " %10s  %s\n", s->slot,
		       (uint64_t)s->guest_phys_addr,
		       vmctl_fmt_size(sz, sizeof(sz), s->size),
		       s->flags & LVMM_MEMSLOT_READONLY ? "readonly" : "-");
	}
}

static void snap_info_json(const char *path, const struct snap_info *si,
			   int verdict, const char *why)
{
	const struct lvmm_stream_header *h = &si->sh.h;
	char buf[256];
	const char *vmm;
	uint32_t version, i;
	int bit;

	fputs("{\"file\":", stdout);
	vmctl_json_str(stdout, path);
	fputs(",\"name\":", stdout);
	vmctl_json_str(stdout, h->name);
	printf(",\"version\":%" PRIu32 ",\"created_ns\":%" PRIu64
	       ",\"vcpus\":%" PRIu32 ",\"mem_bytes\":%" PRIu64 ",\"xcr0\":%"
	       PRIu64 ",\"xsave\":[", h->version, (uint64_t)h->created_ns,
	       h->nr_vcpus, (uint64_t)h->mem_size, (uint64_t)h->xcr0);
	for (bit = 0, i = 0; bit < 64; bit++) {
		if (!(h->xcr0 & (1ULL << bit)))
			continue;
		printf("%s", i++ ? "," : "");
		vmctl_json_str(stdout, vmctl_xsave_names(buf, sizeof(buf),
							 1ULL << bit));
	}
	fputs("],\"slots\":[", stdout);
	for (i = 0; i < h->nr_slots; i++) {
		const struct lvmm_stream_slot *s = &si->sh.slots[i];

		printf("%s{\"slot\":%" PRIu32 ",\"gpa\":%" PRIu64 ",\"size\":%"
		       PRIu64 ",\"readonly\":%s}", i ? "," : "", s->slot,
		       (uint64_t)s->guest_phys_addr, (uint64_t)s->size,
		       s->flags & LVMM_MEMSLOT_READONLY ? "true" : "false");
	}
	snap_vmm_desc(si, buf, sizeof(buf), &vmm, &version);
	if (si->vmm) {
		printf("],\"vmm_state\":{\"bytes\":%" PRIu64 ",\"vmm\":",
		       si->vmm_size);
		if (vmm)
			printf("\"%s\",\"version\":%" PRIu32 "}", vmm, version);
		else
			fputs("null}", stdout);
	} else {
		fputs("],\"vmm_state\":null", stdout);
	}
	printf(",\"records\":{\"header\":1,\"memory\":%" PRIu64
	       ",\"pages\":%" PRIu64 ",\"vcpu\":%" PRIu64 ",\"lapic\":%" PRIu64
	       ",\"irqchip\":%" PRIu64 ",\"vmm\":%" PRIu64
	       ",\"runstate\":%" PRIu64 ",\"end\":1}", si->nr_memory,
	       si->nr_pages, si->nr_vcpu, si->nr_lapic, si->nr_irqchip,
	       si->nr_vmm, si->nr_runstate);
	if (si->nr_runstate)
		printf(",\"paused\":%s", si->runstate & LVMM_RUNSTATE_PAUSED ?
		       "true" : "false");
	printf(",\"bytes\":%" PRIu64
	       ",\"pages\":%" PRIu64 ",\"trailing_bytes\":%" PRIu64
	       ",\"checksum\":\"0x%016" PRIx64 "\",\"checksum_pages\":%s"
	       ",\"restorable\":%s,\"restore_why\":", si->bytes, si->pages,
	       si->trailing, si->checksum,
	       h->flags & LVMM_STREAM_PAGES_UNSUMMED ? "false" : "true",
	       verdict > 0 ? "true" : verdict ? "null" : "false");
	vmctl_json_str(stdout, why);
	puts("}");
}

static int vmctl_snapshot_info(struct vmctl *ctx, int argc, char **argv)
{
	struct snap_info si;
	struct snap_reader r;
	struct stat st;
	char why[256];
	int e, verdict;

	if (argc != 1)
		return 1;
	memset(&si, 0, sizeof(si));
	memset(&r, 0, sizeof(r));
	r.path = argv[0];
	if (!strcmp(argv[0], "-")) {
		r.fd = STDIN_FILENO;
		r.path = "standard input";
	} else {
		r.fd = open(argv[0], O_RDONLY | O_CLOEXEC);
		if (r.fd < 0) {
			e = -errno;
			if (e == -ENOENT)
				vmctl_err("no file %s", argv[0]);
			else
				vmctl_err("cannot open %s: %s", argv[0],
					  strerror(-e));
			return e;
		}
	}
	if (!fstat(r.fd, &st) && S_ISDIR(st.st_mode)) {
		vmctl_err("%s is a directory; give a snapshot file", argv[0]);
		e = -EISDIR;
		goto out_close;
	}
	r.buf = malloc(SNAP_BUF);
	if (!r.buf) {
		vmctl_err("out of memory");
		e = -ENOMEM;
		goto out_close;
	}
	lvmm_xxh64_reset(&r.xxh, 0);
	e = snap_header(&r, &si.sh);
	if (!e)
		e = snap_records(&r, &si);
	if (!e) {
		verdict = snap_host_verdict(&si.sh.h, why, sizeof(why));
		if (ctx->json)
			snap_info_json(r.path, &si, verdict, why);
		else
			snap_info_text(r.path, &si, verdict, why);
	}
	vmctl_snap_header_free(&si.sh);
	free(si.vmm);
	free(r.buf);
out_close:
	if (r.fd != STDIN_FILENO)
		close(r.fd);
	return e;
}

/* ---- save ------------------------------------------------------------------ */

struct save {
	const char *vm_arg, *file;
	bool stop, force;
	bool json;
	FILE *out;		/* stdout, or stderr when the file is stdout */
	struct vmctl_vm vm;
	int fd;
	bool remove;		/* a regular file vmctl opened: unlink on failure */
	struct timespec t0;
	/* From the events. */
	bool done, bar;
	unsigned long lost;
	struct vmctl_vm ev;	/* the saved event */
};

static int save_parse(struct save *s, int argc, char **argv)
{
	const char *pos[2];
	int i, n = 0;

	for (i = 0; i < argc; i++) {
		if (!strcmp(argv[i], "--stop")) {
			s->stop = true;
		} else if (!strcmp(argv[i], "--force") || !strcmp(argv[i], "-f")) {
			s->force = true;
		} else if (argv[i][0] == '-' && argv[i][1]) {
			vmctl_err("save: unknown option '%s'", argv[i]);
			return 1;
		} else if (n < 2) {
			pos[n++] = argv[i];
		} else {
			vmctl_err("save: give one VM and one FILE");
			return 1;
		}
	}
	if (n != 2)
		return 1;
	s->vm_arg = pos[0];
	s->file = pos[1];
	return 0;
}

/* The file to save to: created, or truncated with --force; "-": stdout. */
static int save_open(struct save *s)
{
	struct stat st;
	int fd, e;

	if (!strcmp(s->file, "-")) {
		if (isatty(STDOUT_FILENO)) {
			vmctl_err("will not write a snapshot to a terminal: redirect standard output, or give a FILE");
			return -EINVAL;
		}
		s->out = stderr;
		return STDOUT_FILENO;
	}
	fd = open(s->file, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0 && errno == EEXIST && s->force)
		fd = open(s->file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
			  0600);
	if (fd < 0) {
		e = -errno;
		if (e == -EEXIST && !stat(s->file, &st) && S_ISDIR(st.st_mode))
			e = -EISDIR;
		switch (-e) {
		case EEXIST:
			vmctl_err("%s exists already; give --force to overwrite it, or another FILE",
				  s->file);
			break;
		case ENOENT:
		case ENOTDIR:
			vmctl_err("cannot create %s: its directory does not exist; give a FILE in an existing directory",
				  s->file);
			break;
		case EACCES:
		case EPERM:
			vmctl_err("cannot create %s: permission denied; save it where you may write",
				  s->file);
			break;
		case EISDIR:
			vmctl_err("%s is a directory; give a file name, such as %s/%s.snap",
				  s->file, s->file, s->vm.name);
			break;
		case EROFS:
			vmctl_err("cannot create %s: read-only file system; save it elsewhere",
				  s->file);
			break;
		default:
			vmctl_err("cannot create %s: %s", s->file, strerror(-e));
			break;
		}
		return e;
	}
	/* Only a regular file is vmctl's to remove: not a FIFO, a device. */
	s->remove = !fstat(fd, &st) && S_ISREG(st.st_mode);
	return fd;
}

/* A failed save leaves no partial snapshot behind; @say: tell. */
static void save_discard(struct save *s, bool say)
{
	if (s->remove && s->fd >= 0 && !unlink(s->file) && say)
		vmctl_err("removed the incomplete %s", s->file);
}

static void save_bar(struct save *s, const struct vmctl_vm *ev)
{
	char done[16], total[16], rate[16];
	uint64_t ns = vmctl_elapsed_ns(&s->t0);
	unsigned int pct, i, fill;

	/* save-total bounds the stream from above: 100 % waits for saved. */
	pct = ev->save_total ? ev->save_bytes * 100 / ev->save_total : 0;
	if (pct > 99)
		pct = 99;
	fill = pct * 30 / 100;
	fprintf(stderr, "\r\033[Ksaving %s [", s->vm.name);
	for (i = 0; i < 30; i++)
		fputc(i < fill ? '#' : ' ', stderr);
	fprintf(stderr, "] %2u%% %s of at most %s, %s/s", pct,
		vmctl_fmt_size(done, sizeof(done), ev->save_bytes),
		vmctl_fmt_size(total, sizeof(total), ev->save_total),
		vmctl_fmt_size(rate, sizeof(rate),
			       ns ? ev->save_bytes * 1000000000ULL / ns : 0));
	fflush(stderr);
	s->bar = true;
}

static int save_event_cb(struct nl_msg *msg, void *arg)
{
	struct save *s = arg;
	struct vmctl_vm ev;

	if (!vmctl_nl_vm_event(msg, s->vm.id, &ev))
		return NL_OK;
	if (ev.event == LVMM_EVENT_SAVE_PROGRESS) {
		if (s->json) {
			fprintf(s->out, "{\"event\":\"save-progress\",\"id\":%"
				PRIu32 ",\"name\":", ev.id);
			vmctl_json_str(s->out, s->vm.name);
			fprintf(s->out, ",\"bytes\":%" PRIu64 ",\"total\":%"
				PRIu64 ",\"time_ns\":%" PRIu64 "}\n",
				ev.save_bytes, ev.save_total,
				vmctl_elapsed_ns(&s->t0));
			fflush(s->out);
		} else if (isatty(STDERR_FILENO)) {
			save_bar(s, &ev);
		}
		return NL_OK;
	}
	if (ev.event != LVMM_EVENT_SAVED)
		return NL_OK;
	s->ev = ev;
	s->done = true;
	return NL_STOP;
}

/* What a failed save means, and what to do. */
static void save_report_error(const struct save *s, int err)
{
	const char *name = s->vm.name, *file = s->file;

	switch (err) {
	case ENOSPC:
	case EDQUOT:
		vmctl_err("cannot save %s: the file system of %s is full (%s); free some space or save it elsewhere",
			  name, file, strerror(err));
		break;
	case EFBIG:
		vmctl_err("cannot save %s: %s grew too large for its file system; save it elsewhere",
			  name, file);
		break;
	case EPIPE:
		vmctl_err("cannot save %s: the reader of %s went away (%s)",
			  name, file, strerror(err));
		break;
	case EINTR:
	case ENOENT:
		vmctl_err("cannot save %s: it was destroyed during the save",
			  name);
		return;
	case ETIMEDOUT:
		vmctl_err("cannot save %s: a vCPU did not stop within 5 s (its VMM may be stuck handling an exit); try again",
			  name);
		break;
	case ENOMEM:
		vmctl_err("cannot save %s: lvmm ran out of memory; try again", name);
		break;
	case EINVAL:
		/* The kernel writes with kernel_write(): not every device can. */
		vmctl_err("cannot save %s: lvmm cannot write to %s (%s); save to a regular file, a pipe or a socket",
			  name, file, strerror(err));
		break;
	default:
		vmctl_err("cannot save %s to %s: %s", name, file, strerror(err));
		break;
	}
	if (s->stop)
		vmctl_err("%s was not destroyed: it runs on as before", name);
}

/* Send vm-save; say why not. */
static int save_request(struct vmctl_nl *nl, struct save *s)
{
	struct nl_msg *msg;
	int r;

	msg = vmctl_nl_vm_msg(nl, LVMM_CMD_VM_SAVE, 0, s->vm.id);
	if (!msg || nla_put_u32(msg, LVMM_A_VM_SAVE_FD, s->fd) ||
	    (s->stop && nla_put_flag(msg, LVMM_A_VM_SAVE_STOP))) {
		nlmsg_free(msg);
		vmctl_err("out of memory");
		return -ENOMEM;
	}
	r = vmctl_nl_job_request(nl, msg, "save", &s->vm);
	if (r == -EBUSY)
		vmctl_err("%s is being saved already; wait for its 'saved' event (vmctl monitor) and try again",
			  s->vm.name);
	return r;
}

/* A signal stops the wait only: lvmm goes on. */
static int save_on_signal(int sig, void *arg)
{
	struct save *s = arg;

	if (s->bar)
		fputc('\n', stderr);
	vmctl_err("%s: lvmm goes on writing %s, and %s; 'vmctl monitor' shows its 'saved' event",
		  strsignal(sig), s->file,
		  s->stop ? "destroys the VM once it is written" :
			    "lets the VM run on once it is written");
	return -EINTR;
}

/* Wait for the saved event of our VM. */
static int save_wait(struct vmctl_nl *ev_nl, struct save *s)
{
	int r;

	r = vmctl_nl_wait_events(ev_nl, &s->done, save_on_signal, s, &s->lost);
	if (r == -EIO)
		vmctl_err("cannot receive lvmm's events: %s; the save goes on, 'vmctl monitor' shows its end",
			  ev_nl->ext_msg);
	return r;
}

static void save_result(struct save *s, uint64_t ns)
{
	char size[16], t[32], pause[32];

	if (s->json) {
		fprintf(s->out, "{\"event\":\"saved\",\"id\":%" PRIu32
			",\"name\":", s->vm.id);
		vmctl_json_str(s->out, s->vm.name);
		fputs(",\"file\":", s->out);
		vmctl_json_str(s->out, s->file);
		fprintf(s->out, ",\"bytes\":%" PRIu64 ",\"total\":%" PRIu64
			",\"time_ns\":%" PRIu64 ",\"pause_ns\":%" PRIu64
			",\"stopped\":%s}\n", s->ev.save_bytes,
			s->ev.save_total, ns, s->ev.pause_ns,
			s->stop ? "true" : "false");
		return;
	}
	fprintf(s->out, "saved %s to %s: %s (%" PRIu64 " bytes) in %s; the guest was paused for %s%s\n",
		s->vm.name, s->file,
		vmctl_fmt_size(size, sizeof(size), s->ev.save_bytes),
		s->ev.save_bytes, vmctl_fmt_ns(t, sizeof(t), ns),
		vmctl_fmt_ns(pause, sizeof(pause), s->ev.pause_ns),
		s->stop ? ", then destroyed" : "");
}

static int vmctl_save(struct vmctl *ctx, int argc, char **argv)
{
	struct save s = { .json = ctx->json, .out = stdout, .fd = -1 };
	struct vmctl_nl nl, ev_nl;
	sigset_t sigs;
	uint64_t ns;
	int r;

	r = save_parse(&s, argc, argv);
	if (r)
		return r;
	/* The VM first: a typo must not leave an empty file behind. */
	r = vmctl_nl_open_vm(&nl, s.vm_arg, &s.vm);
	if (r)
		return r;
	/* Subscribed before the request, so that saved cannot be missed. */
	r = vmctl_nl_open_events(&ev_nl, save_event_cb, &s);
	if (r)
		goto out_close;

	s.fd = save_open(&s);
	if (s.fd < 0) {
		r = s.fd;
		goto out_close_ev;
	}
	/* Signals while lvmm writes are read from a signalfd. */
	vmctl_job_sigset(&sigs);
	sigprocmask(SIG_BLOCK, &sigs, NULL);

	clock_gettime(CLOCK_MONOTONIC, &s.t0);
	r = save_request(&nl, &s);
	if (r) {
		save_discard(&s, false);	/* nothing was written */
		goto out_file;
	}
	r = save_wait(&ev_nl, &s);
	if (r)
		goto out_file;	/* lvmm still writes it: it stays */
	if (s.bar)
		fputs("\r\033[K", stderr);
	if (s.ev.save_error) {
		save_report_error(&s, s.ev.save_error);
		save_discard(&s, true);
		r = -(int)s.ev.save_error;
		goto out_file;
	}
	/* On disk before vmctl says it is saved. */
	if (fsync(s.fd) && errno != EINVAL && errno != EROFS) {
		r = -errno;
		vmctl_err("cannot save %s: writing %s to disk failed: %s%s",
			  s.vm.name, s.file, strerror(-r),
			  s.stop ? "; the VM was destroyed all the same" : "");
		save_discard(&s, true);
		goto out_file;
	}
	ns = vmctl_elapsed_ns(&s.t0);
	if (!s.json)
		vmctl_nl_report_lost(s.lost);
	save_result(&s, ns);
out_file:
	if (s.fd != STDOUT_FILENO)
		close(s.fd);
out_close_ev:
	vmctl_nl_close(&ev_nl);
out_close:
	vmctl_nl_close(&nl);
	return r;
}

VMCTL_CMDS(vmctl_snapshot_cmds) = {
	{ "save", "VM FILE [--stop] [--force]",
	  "Write a VM's memory, vCPUs and its VMM's device state to FILE (\"-\":\n"
	  "      standard output), with a progress bar on a terminal; the VM is\n"
	  "      held paused meanwhile, then runs on or, with --stop, is destroyed.\n"
	  "      --force overwrites an existing FILE.  'vmctl run --restore FILE'\n"
	  "      runs it again.",
	  vmctl_save },
	{ "snapshot-info", "FILE",
	  "Check a snapshot (header, records, checksum) and show its VM, slots,\n"
	  "      the XSAVE features it needs and whether this host can restore it.",
	  vmctl_snapshot_info },
	{ NULL },
};
