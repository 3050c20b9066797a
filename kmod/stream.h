/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * lvmm: the VM stream's pieces, shared by a save (snapshot.c) and a live
 * migration (migrate.c).  Documentation/migration.rst, 6 and 9.
 */
#ifndef LVMM_STREAM_H
#define LVMM_STREAM_H

#include <linux/sizes.h>
#include <linux/xxhash.h>

#include "lvmm.h"

/* Bounds of a vCPU record: what the set-ioctls accept. */
#define LVMM_STREAM_MAX_MSRS	LVMM_MAX_MSR_ENTRIES

/* A vCPU record's payload, and when its TSC was read (not written). */
struct lvmm_vcpu_image {
	struct lvmm_stream_vcpu v;
	struct lvmm_msr_entry msrs[LVMM_STREAM_MAX_MSRS];
	struct lvmm_cpuid_entry cpuid[LVMM_MAX_CPUID_ENTRIES];
	u64 host_tsc;
	struct lvmm_stream_lapic lapic;	/* with the in-kernel APIC */
};

/* One end of a stream, and the running checksum of what went through. */
struct lvmm_stream {
	struct file *file;
	loff_t pos;
	struct xxh64_state xxh;
	u64 bytes;
	u64 nr_records;
	bool eof;			/* a read found the end */
	/* LVMM_STREAM_PAGES_UNSUMMED: the guest's pages not in the checksum */
	bool unsummed;
	/*
	 * Guest pages go through it when the guest runs and they are in the
	 * checksum (a migration with migrate-checksum): the checksum must be
	 * of the bytes sent, and the guest may write a page between the two.
	 * NULL: sent in place (a save, or a migration's last pass: vCPUs
	 * parked or frozen; or the pages are not in the checksum).
	 */
	void *bounce;			/* LVMM_STREAM_BOUNCE bytes */
};

#define LVMM_STREAM_BOUNCE	SZ_64K

void lvmm_stream_init(struct lvmm_stream *st, struct file *file);
int lvmm_stream_write(struct lvmm_stream *st, const void *buf, size_t len);
int lvmm_stream_rec(struct lvmm_stream *st, u32 type, u64 len);
int lvmm_stream_header(struct lvmm_stream *st, struct lvmm_vm *vm,
		       struct lvmm_memslots *slots, u32 version, u32 nr_vcpus,
		       u64 xcr0);
int lvmm_stream_pages(struct lvmm_stream *st, u32 type, struct lvmm_slot *slot,
		      unsigned long ci, const unsigned long *present);
int lvmm_stream_chunk(struct lvmm_stream *st, struct lvmm_slot *slot,
		      unsigned long ci);
int lvmm_stream_vcpus(struct lvmm_stream *st, struct lvmm_vm *vm,
		      struct lvmm_vcpu_image **imgs, u32 nr);
int lvmm_stream_vmm_state(struct lvmm_stream *st, struct lvmm_vm *vm);
int lvmm_stream_end(struct lvmm_stream *st);

int lvmm_save_vcpu(struct lvmm_vcpu *vcpu, struct lvmm_vcpu_image *img);
int lvmm_save_vcpus(struct lvmm_vm *vm, struct lvmm_vcpu_image **imgs,
		    u32 *nr, u64 *xcr0);
void lvmm_free_vcpu_images(struct lvmm_vcpu_image **imgs);

struct task_struct *lvmm_vm_worker(struct lvmm_vm *vm, int (*fn)(void *),
				   void *data, const char *name);

/* The handshake of an incoming migration, once its whole VM is in. */
int lvmm_mig_incoming_commit(struct lvmm_vm *vm, struct file *file);
void lvmm_mig_refuse(struct file *file, int err);
int lvmm_mig_send(struct file *file, u32 type, int err);
void lvmm_mig_incoming_prepare(struct file *file);

#endif /* LVMM_STREAM_H */
