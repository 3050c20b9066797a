// SPDX-License-Identifier: GPL-2.0-only
/*
 * vmctl run: recognise the image (flat binary, ELF64, multiboot v1, a
 * Linux bzImage, which run_linux.c loads), check
 * that it is whole and fits, and put it, its modules and the boot data
 * into guest memory.  Everything that can be wrong with the files is found
 * here, before any VM exists.
 */
#include <cpuid.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "run.h"
#include "vmctl.h"

#define MB_SEARCH		8192
#define MB_FLAG_PAGE_ALIGN	(1U << 0)
#define MB_FLAG_MEMINFO		(1U << 1)
#define MB_FLAG_VIDEO		(1U << 2)
#define MB_FLAG_AOUT_KLUDGE	(1U << 16)
#define MB_FLAGS_KNOWN		(MB_FLAG_PAGE_ALIGN | MB_FLAG_MEMINFO | MB_FLAG_VIDEO)

#define MBI_MEM			(1U << 0)
#define MBI_CMDLINE		(1U << 2)
#define MBI_MODS		(1U << 3)
#define MBI_MMAP		(1U << 6)
#define MBI_LOADER_NAME		(1U << 9)

#define E820_RAM		1
#define E820_RESERVED		2

#define PAGE_SIZE		4096ULL
#define ALIGN_UP(x, a)		(((x) + (a) - 1) & ~((uint64_t)(a) - 1))
#define LIMIT_4G		(1ULL << 32)

struct mb_header {
	uint32_t magic, flags, checksum;
	uint32_t header_addr, load_addr, load_end_addr, bss_end_addr;
	uint32_t entry_addr;
};

/* The multiboot information structure (only the fields vmctl fills). */
struct mb_info {
	uint32_t flags;
	uint32_t mem_lower, mem_upper;
	uint32_t boot_device;
	uint32_t cmdline;
	uint32_t mods_count, mods_addr;
	uint32_t syms[4];
	uint32_t mmap_length, mmap_addr;
	uint32_t drives_length, drives_addr;
	uint32_t config_table;
	uint32_t boot_loader_name;
	uint32_t apm_table;
	uint32_t vbe[6];
};

struct mb_mmap {
	uint32_t size;		/* of the rest of the entry: 20 */
	uint64_t base, len;
	uint32_t type;
} __attribute__((packed));

struct mb_mod {
	uint32_t start, end, string, reserved;
};

static const char run_loader_name[] = "vmctl run (lvmm)";

int run_blob_read(struct run_blob *b, const char *path)
{
	struct stat st;
	size_t done = 0;
	ssize_t n;
	int fd, r;

	memset(b, 0, sizeof(*b));
	b->path = path;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		r = -errno;
		vmctl_err("%s: %s", path, strerror(errno));
		return r;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		vmctl_err("%s: not a regular file", path);
		close(fd);
		return -EINVAL;
	}
	b->size = st.st_size;
	b->data = malloc(b->size ? b->size : 1);
	if (!b->data) {
		vmctl_err("%s: out of memory reading %zu bytes", path, b->size);
		close(fd);
		return -ENOMEM;
	}
	while (done < b->size) {
		n = read(fd, b->data + done, b->size - done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			r = n < 0 ? -errno : -EIO;
			vmctl_err("%s: read failed: %s", path, strerror(-r));
			close(fd);
			run_blob_free(b);
			return r;
		}
		done += n;
	}
	close(fd);
	return 0;
}

void run_blob_free(struct run_blob *b)
{
	free(b->data);
	b->data = NULL;
	b->size = 0;
}

static int img_err(const struct run_image *img, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static int img_err(const struct run_image *img, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	vmctl_err("%s: %s", img->blob.path, msg);
	return -ENOEXEC;
}

/* Add a segment after checking it against the file and the other ones. */
static int img_add_seg(struct run_image *img, int idx, uint64_t gpa,
		       uint64_t offset, uint64_t filesz, uint64_t memsz)
{
	struct run_seg *s;
	int i;

	if (filesz > memsz)
		return img_err(img, "segment %d: file size 0x%" PRIx64 " exceeds memory size 0x%" PRIx64 " (corrupt image)",
			       idx, filesz, memsz);
	if (offset > img->blob.size || filesz > img->blob.size - offset)
		return img_err(img, "segment %d: bytes 0x%" PRIx64 "-0x%" PRIx64 " are past the end of the file (%zu bytes): truncated or corrupt image",
			       idx, offset, offset + filesz, img->blob.size);
	if (!memsz)
		return 0;
	if (gpa < RUN_IMAGE_MIN)
		return img_err(img, "segment %d at 0x%" PRIx64 " overlaps vmctl's boot data below 0x%llx; link the image at 0x%llx or above",
			       idx, gpa, RUN_IMAGE_MIN, RUN_IMAGE_MIN);
	if (gpa >= LIMIT_4G || memsz > LIMIT_4G - gpa)
		return img_err(img, "segment %d (0x%" PRIx64 ", 0x%" PRIx64 " bytes) reaches beyond 4 GiB, which vmctl does not load",
			       idx, gpa, memsz);
	for (i = 0; i < img->nsegs; i++) {
		s = &img->segs[i];
		if (gpa < s->gpa + s->memsz && s->gpa < gpa + memsz)
			return img_err(img, "segment %d (0x%" PRIx64 "-0x%" PRIx64 ") overlaps another one (corrupt image)",
				       idx, gpa, gpa + memsz);
	}
	if (img->nsegs == RUN_MAX_SEGS)
		return img_err(img, "more than %d loadable segments", RUN_MAX_SEGS);
	s = &img->segs[img->nsegs++];
	s->gpa = gpa;
	s->offset = offset;
	s->filesz = filesz;
	s->memsz = memsz;
	if (img->nsegs == 1 || gpa < img->start)
		img->start = gpa;
	if (gpa + memsz > img->end)
		img->end = gpa + memsz;
	return 0;
}

static bool img_contains(const struct run_image *img, uint64_t gpa)
{
	int i;

	for (i = 0; i < img->nsegs; i++)
		if (gpa >= img->segs[i].gpa &&
		    gpa < img->segs[i].gpa + img->segs[i].memsz)
			return true;
	return false;
}

/*
 * Load the PT_LOAD segments of an ELF64 or ELF32 executable at their
 * physical addresses.  The entry point is virtual: translate it through the
 * segment that holds it, as QEMU does, since the guest starts on an
 * identity map.
 */
#define DEFINE_ELF_LOADER(bits)						\
static int img_parse_elf##bits(struct run_image *img)			\
{									\
	const Elf##bits##_Ehdr *eh = (const void *)img->blob.data;	\
	const Elf##bits##_Phdr *ph;					\
	uint64_t entry = eh->e_entry, phend;				\
	bool found = false;						\
	int i, r;							\
									\
	if (img->blob.size < sizeof(*eh))				\
		return img_err(img, "ELF header truncated (%zu bytes)", img->blob.size); \
	if (eh->e_type != ET_EXEC)					\
		return img_err(img, "ELF type %u is not an executable (ET_EXEC); link with -static -no-pie", \
			       eh->e_type);				\
	if (eh->e_phentsize != sizeof(*ph))				\
		return img_err(img, "bad ELF program header size %u (corrupt image)", \
			       eh->e_phentsize);			\
	phend = (uint64_t)eh->e_phoff + (uint64_t)eh->e_phnum * sizeof(*ph); \
	if (!eh->e_phnum || eh->e_phoff > img->blob.size || phend > img->blob.size) \
		return img_err(img, "ELF program headers (%u at 0x%" PRIx64 ") are missing or past the end of the file: truncated or corrupt image", \
			       eh->e_phnum, (uint64_t)eh->e_phoff);	\
	ph = (const void *)(img->blob.data + eh->e_phoff);		\
	for (i = 0; i < eh->e_phnum; i++) {				\
		if (ph[i].p_type == PT_INTERP)				\
			return img_err(img, "a dynamically linked program, not a kernel: it asks for an interpreter"); \
		if (ph[i].p_type != PT_LOAD)				\
			continue;					\
		r = img_add_seg(img, i, ph[i].p_paddr, ph[i].p_offset,	\
				ph[i].p_filesz, ph[i].p_memsz);		\
		if (r)							\
			return r;					\
		if (!found && entry >= ph[i].p_vaddr &&			\
		    entry - ph[i].p_vaddr < ph[i].p_memsz) {		\
			img->entry = entry - ph[i].p_vaddr + ph[i].p_paddr; \
			found = true;					\
		}							\
	}								\
	if (!img->nsegs)						\
		return img_err(img, "no loadable (PT_LOAD) segment");	\
	if (!found)							\
		return img_err(img, "entry point 0x%" PRIx64 " is outside every loadable segment (corrupt image)", \
			       entry);					\
	return 0;							\
}

DEFINE_ELF_LOADER(64)
DEFINE_ELF_LOADER(32)

/* Offset of a multiboot header with a good checksum; -1 none; -2 bad one. */
static long mb_find(const struct run_image *img, long *bad)
{
	size_t lim = img->blob.size < MB_SEARCH ? img->blob.size : MB_SEARCH;
	const struct mb_header *h;
	size_t off;

	*bad = -1;
	for (off = 0; off + 12 <= lim; off += 4) {
		h = (const void *)(img->blob.data + off);
		if (h->magic != MULTIBOOT_MAGIC)
			continue;
		if ((uint32_t)(h->magic + h->flags + h->checksum) == 0)
			return off;
		if (*bad < 0)
			*bad = off;
	}
	return -1;
}

static int img_parse_multiboot(struct run_image *img, long off)
{
	const struct mb_header *h = (const void *)(img->blob.data + off);
	const Elf32_Ehdr *eh = (const void *)img->blob.data;
	uint64_t file_off, load_end, bss_end;
	int r;

	img->multiboot = true;
	img->mode = RUN_MODE_PROT32;
	if (h->flags & 0xffff & ~MB_FLAGS_KNOWN)
		return img_err(img, "multiboot header at 0x%lx requires features vmctl does not have (flags 0x%x)",
			       off, h->flags);
	if (!(h->flags & MB_FLAG_AOUT_KLUDGE)) {
		/* No address fields: the kernel must be ELF, and 32-bit. */
		if (img->blob.size >= EI_NIDENT &&
		    !memcmp(eh->e_ident, ELFMAG, SELFMAG) &&
		    eh->e_ident[EI_CLASS] == ELFCLASS32 &&
		    eh->e_machine == EM_386) {
			img->format = "multiboot kernel (ELF32)";
			return img_parse_elf32(img);
		}
		return img_err(img, "multiboot kernel without the address fields (flag 16) must be an ELF32 i386 executable");
	}

	img->format = "multiboot kernel";
	if (off + sizeof(*h) > img->blob.size)
		return img_err(img, "multiboot header at 0x%lx truncated", off);
	if (h->load_addr > h->header_addr ||
	    h->header_addr - h->load_addr > (uint64_t)off)
		return img_err(img, "multiboot header at 0x%lx: header_addr 0x%x and load_addr 0x%x do not fit the file (corrupt header)",
			       off, h->header_addr, h->load_addr);
	file_off = off - (h->header_addr - h->load_addr);
	load_end = h->load_end_addr ? h->load_end_addr :
		   h->load_addr + (img->blob.size - file_off);
	bss_end = h->bss_end_addr ? h->bss_end_addr : load_end;
	if (load_end < h->load_addr || bss_end < load_end)
		return img_err(img, "multiboot header at 0x%lx: load_end_addr 0x%x / bss_end_addr 0x%x are below load_addr 0x%x (corrupt header)",
			       off, h->load_end_addr, h->bss_end_addr, h->load_addr);
	r = img_add_seg(img, 0, h->load_addr, file_off, load_end - h->load_addr,
			bss_end - h->load_addr);
	if (r)
		return r;
	img->entry = h->entry_addr;
	if (!img_contains(img, img->entry))
		return img_err(img, "multiboot entry_addr 0x%x is outside the loaded image 0x%x-0x%" PRIx64 " (corrupt header)",
			       h->entry_addr, h->load_addr, bss_end);
	return 0;
}

/* Name what a file that vmctl cannot boot looks like, or NULL. */
static const char *img_foreign(const struct run_image *img)
{
	const unsigned char *d = img->blob.data;
	size_t n = img->blob.size, i, lim;

	if (n >= 2 && d[0] == 0x1f && d[1] == 0x8b)
		return "gzip data; decompress it first";
	if (n >= 6 && !memcmp(d, "\xfd" "7zXZ\0", 6))
		return "xz data; decompress it first";
	if (n >= 4 && !memcmp(d, "\x28\xb5\x2f\xfd", 4))
		return "zstd data; decompress it first";
	if (n >= 3 && !memcmp(d, "BZh", 3))
		return "bzip2 data; decompress it first";
	if (n >= 2 && d[0] == 'M' && d[1] == 'Z')
		return "a PE/DOS (MZ) executable";
	if (n >= 2 && d[0] == '#' && d[1] == '!')
		return "a script";
	if (n >= 8 && !memcmp(d, "!<arch>\n", 8))
		return "an ar archive";
	/* Machine code is never all printable text; a config file often is. */
	lim = n < 512 ? n : 512;
	for (i = 0; i < lim; i++)
		if ((d[i] < 0x20 || d[i] > 0x7e) && d[i] != '\n' &&
		    d[i] != '\r' && d[i] != '\t')
			return NULL;
	return "text";
}

int run_image_parse(struct run_image *img, bool entry64)
{
	const Elf64_Ehdr *eh = (const void *)img->blob.data;
	const char *what;
	long off, bad;

	if (!img->blob.size)
		return img_err(img, "not a flat binary, ELF64, multiboot kernel or Linux bzImage: the file is empty");

	off = mb_find(img, &bad);
	if (off >= 0) {
		if (entry64)
			return img_err(img, "--entry64 applies to flat binaries; this is a multiboot kernel, entered in 32-bit protected mode");
		return img_parse_multiboot(img, off);
	}
	if (bad >= 0)
		return img_err(img, "multiboot header at 0x%lx has a bad checksum (corrupt image)",
			       bad);

	if (img->blob.size >= SELFMAG && !memcmp(eh->e_ident, ELFMAG, SELFMAG)) {
		if (img->blob.size < EI_NIDENT)
			return img_err(img, "ELF header truncated (%zu bytes)",
				       img->blob.size);
		if (eh->e_ident[EI_CLASS] != ELFCLASS64)
			return img_err(img, "not a flat binary, ELF64, multiboot kernel or Linux bzImage: a %s ELF file without a multiboot header",
				       eh->e_ident[EI_CLASS] == ELFCLASS32 ? "32-bit" : "bad-class");
		if (img->blob.size < sizeof(*eh))
			return img_err(img, "ELF header truncated (%zu bytes)",
				       img->blob.size);
		if (eh->e_ident[EI_DATA] != ELFDATA2LSB ||
		    eh->e_machine != EM_X86_64)
			return img_err(img, "not a flat binary, ELF64, multiboot kernel or Linux bzImage: an ELF64 file for machine %u, not x86-64",
				       eh->e_machine);
		if (entry64)
			return img_err(img, "--entry64 applies to flat binaries; ELF64 images are always entered in 64-bit mode");
		img->format = "ELF64 executable";
		img->mode = RUN_MODE_LONG64;
		return img_parse_elf64(img);
	}

	if (run_linux_detect(&img->blob)) {
		if (entry64)
			return img_err(img, "--entry64 applies to flat binaries; a Linux bzImage is always entered at its 64-bit entry point");
		return run_linux_parse(img);
	}

	what = img_foreign(img);
	if (what)
		return img_err(img, "not a flat binary, ELF64, multiboot kernel or Linux bzImage: it looks like %s",
			       what);

	img->format = entry64 ? "flat binary (64-bit entry)" : "flat binary (real-mode entry)";
	img->mode = entry64 ? RUN_MODE_LONG64 : RUN_MODE_REAL;
	img->entry = RUN_FLAT_GPA;
	return img_add_seg(img, 0, RUN_FLAT_GPA, 0, img->blob.size,
			   img->blob.size);
}

static int fmt_size(char *buf, size_t len, uint64_t bytes)
{
	if (bytes >= (1ULL << 20) && !(bytes & ((1ULL << 20) - 1)))
		return snprintf(buf, len, "%" PRIu64 " MiB", bytes >> 20);
	if (bytes >= (1ULL << 10))
		return snprintf(buf, len, "%" PRIu64 " KiB",
				(bytes + 1023) >> 10);
	return snprintf(buf, len, "%" PRIu64 " bytes", bytes);
}

/* Bytes of the string area the boot data need. */
static size_t strings_size(const struct run_image *img,
			   const struct run_module *mods, int nmods,
			   const char *cmdline)
{
	size_t n = strlen(img->blob.path) + 1 + strlen(cmdline) + 1;
	int i;

	for (i = 0; i < nmods; i++)
		n += strlen(mods[i].arg) + 1;
	return n;
}

/*
 * Place the modules after the image, page-aligned, and check that it all
 * fits in @mem_size bytes of guest memory.
 */
int run_layout(struct run_image *img, struct run_module *mods, int nmods,
	       const char *cmdline, uint64_t mem_size)
{
	char need[32], have[32];
	uint64_t end = img->end;
	size_t strs;
	int i;

	if (img->is_linux)
		return run_linux_layout(img, cmdline, mem_size);
	strs = strings_size(img, mods, nmods, cmdline);
	if (strs > RUN_STR_END - RUN_STR_GPA) {
		vmctl_err("the command line and module names take %zu bytes; the limit is %llu",
			  strs, RUN_STR_END - RUN_STR_GPA);
		return -E2BIG;
	}
	for (i = 0; i < nmods; i++) {
		end = ALIGN_UP(end, PAGE_SIZE);
		mods[i].gpa = end;
		end += mods[i].blob.size;
		if (end > LIMIT_4G) {
			vmctl_err("%s: the modules reach beyond 4 GiB",
				  mods[i].blob.path);
			return -E2BIG;
		}
	}
	if (end > mem_size) {
		fmt_size(need, sizeof(need), ALIGN_UP(end, PAGE_SIZE));
		fmt_size(have, sizeof(have), mem_size);
		vmctl_err("--mem %s is too small: %s%s at 0x%" PRIx64 ", so the guest needs at least %s",
			  have, img->blob.path, nmods ? " and its modules end" : " ends",
			  end, need);
		return -ENOSPC;
	}
	return 0;
}

static uint32_t put_string(unsigned char *mem, uint64_t *at, const char *a,
			   const char *b)
{
	uint64_t gpa = *at;
	size_t la = strlen(a), lb = b ? strlen(b) : 0;

	memcpy(mem + gpa, a, la);
	if (b && lb) {
		mem[gpa + la] = ' ';
		memcpy(mem + gpa + la + 1, b, lb);
		la += lb + 1;
	}
	mem[gpa + la] = 0;
	*at = gpa + la + 1;
	return gpa;
}

static void install_boot_info(unsigned char *mem, uint64_t mem_size,
			      const struct run_image *img,
			      const struct run_module *mods, int nmods,
			      const char *cmdline)
{
	struct mb_info *mbi = (void *)(mem + RUN_MBI_GPA);
	struct mb_mmap *mm = (void *)(mem + RUN_MMAP_GPA);
	struct mb_mod *mod = (void *)(mem + RUN_MODS_GPA);
	uint64_t str = RUN_STR_GPA, upper;
	int i, n = 0;

	memset(mbi, 0, sizeof(*mbi));
	mbi->flags = MBI_MEM | MBI_CMDLINE | MBI_MODS | MBI_MMAP |
		     MBI_LOADER_NAME;
	mbi->mem_lower = (mem_size < 0x9fc00 ? mem_size : 0x9fc00) >> 10;
	upper = mem_size > 0x100000 ? (mem_size - 0x100000) >> 10 : 0;
	mbi->mem_upper = upper > UINT32_MAX ? UINT32_MAX : upper;

	/* The PC's memory map: the EBDA and BIOS area are reserved. */
	if (mem_size <= 0x9fc00) {
		mm[n++] = (struct mb_mmap){ 20, 0, mem_size, E820_RAM };
	} else {
		mm[n++] = (struct mb_mmap){ 20, 0, 0x9fc00, E820_RAM };
		mm[n++] = (struct mb_mmap){ 20, 0x9fc00, 0x400, E820_RESERVED };
		mm[n++] = (struct mb_mmap){ 20, 0xf0000, 0x10000, E820_RESERVED };
		if (mem_size > 0x100000)
			mm[n++] = (struct mb_mmap){ 20, 0x100000,
						    mem_size - 0x100000,
						    E820_RAM };
	}
	mbi->mmap_addr = RUN_MMAP_GPA;
	mbi->mmap_length = n * sizeof(*mm);

	/* As QEMU's -kernel: the image's name, then the command line. */
	mbi->cmdline = put_string(mem, &str, img->blob.path,
				  *cmdline ? cmdline : NULL);
	mbi->mods_addr = RUN_MODS_GPA;
	mbi->mods_count = nmods;
	for (i = 0; i < nmods; i++) {
		mod[i].start = mods[i].gpa;
		mod[i].end = mods[i].gpa + mods[i].blob.size;
		mod[i].string = put_string(mem, &str, mods[i].arg, NULL);
		mod[i].reserved = 0;
	}
	mbi->boot_loader_name = put_string(mem, &str, run_loader_name, NULL);
}

static void install_page_tables(unsigned char *mem)
{
	uint64_t *pml4 = (void *)(mem + RUN_PML4_GPA);
	uint64_t *pdpt = (void *)(mem + RUN_PDPT_GPA);
	uint64_t *pd = (void *)(mem + RUN_PD_GPA);
	uint64_t *gdt = (void *)(mem + RUN_GDT_GPA);
	int i;

	gdt[0] = 0;
	gdt[RUN_SEL_CODE64 / 8] = 0x00af9b000000ffffULL;
	gdt[RUN_SEL_DATA / 8] = 0x00cf93000000ffffULL;
	gdt[RUN_SEL_CODE32 / 8] = 0x00cf9b000000ffffULL;

	/* Present | writable, and PS for the 2 MiB leaves. */
	pml4[0] = RUN_PDPT_GPA | 0x3;
	for (i = 0; i < RUN_IDMAP_GIB; i++)
		pdpt[i] = (RUN_PD_GPA + i * PAGE_SIZE) | 0x3;
	for (i = 0; i < RUN_IDMAP_GIB * 512; i++)
		pd[i] = ((uint64_t)i << 21) | 0x83;
}

void run_install(unsigned char *mem, uint64_t mem_size,
		 const struct run_image *img, const struct run_module *mods,
		 int nmods, const char *cmdline, int ncpus, bool ioapic)
{
	unsigned int eax = 0, ebx, ecx, edx = 0;
	const struct run_seg *s;
	int i;

	install_page_tables(mem);
	if (img->is_linux) {
		/* The MP table's CPU signature: the host's, as the guest sees. */
		__get_cpuid(1, &eax, &ebx, &ecx, &edx);
		run_linux_install(mem, mem_size, img, cmdline, ncpus, ioapic,
				  eax, edx);
		return;
	}
	install_boot_info(mem, mem_size, img, mods, nmods, cmdline);
	for (i = 0; i < img->nsegs; i++) {
		s = &img->segs[i];
		/* A new slot starts zeroed: the bss needs nothing. */
		memcpy(mem + s->gpa, img->blob.data + s->offset, s->filesz);
	}
	for (i = 0; i < nmods; i++)
		memcpy(mem + mods[i].gpa, mods[i].blob.data, mods[i].blob.size);
}
