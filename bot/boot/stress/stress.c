// SPDX-License-Identifier: GPL-2.0
/*
 * /init of the mm review bot's stress initramfs: a static program that sets up THP, zram swap and
 * cgroup v2, runs the reclaim scenarios named in /etc/stress.conf and prints one line per scenario:
 *
 *   STRESS <name> PASS|FAIL <detail>
 *   RESULT: PASS|FAIL
 *
 * then execs /selftests/run when the initramfs has it (the mm selftests, in the same boot), else powers the
 * VM off. Every scenario runs in a child with its own alarm(), so a hang in one is reported as FAIL
 * (timeout) and the others still run. Lines starting with "# " are diagnostics; the first one says the page
 * size the kernel runs with ("# stress: page_size=<bytes> ..."): the sizes below follow it, so one binary
 * serves 4K, 16K and 64K kernels (bot/arches.py build variants).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <sys/swap.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef MADV_PAGEOUT
#define MADV_PAGEOUT 21
#endif
#ifndef MREMAP_FIXED
#define MREMAP_FIXED 2
#endif
#define MLOCK_ONFAULT_FLAG 1

#define PAGE_MAX (64UL << 10)
/* Set by sizes() from the running kernel's page size. 4 KiB pages: 4 KiB, a PTE table spans 2 MiB, 64 KiB
 * folios (order 4), one page re-dirtied in every 4th folio (64 pages); 64 KiB pages: 512 MiB, 256 KiB
 * (order 2, the smallest anon mTHP), 16 pages. */
static size_t PAGE = 4096, PMD_SZ = 2UL << 20, FOLIO_SZ = 64UL << 10, REDIRTY = 64;
static char FOLIO_KB[32] = "64kB", PMD_KB[32] = "2048kB"; /* their mTHP sysfs names */
#define CG "/sys/fs/cgroup"
#define THP "/sys/kernel/mm/transparent_hugepage"

/* ------------------------------------------------------------------ output */

static void say(const char *fmt, ...)
{
	char buf[1024];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf) - 1, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if (n > (int)sizeof(buf) - 2)
		n = sizeof(buf) - 2;
	buf[n++] = '\n';
	/* one write(2) per line so kernel messages do not split it */
	if (write(1, buf, n) < 0)
		return;
}

/* ------------------------------------------------------------------ config */

struct conf {
	char scenarios[512];
	long lazyfree_mib, memcg_mib, swap_mib, zram_mib, memcg_max_mib;
	long crossing_rounds, crossing_slots;
	long scenario_timeout;
};

static struct conf C = {
	.scenarios = "lazyfree-pageout,lazyfree-memcg,pte-table-crossing,swap-pressure",
	.lazyfree_mib = 32, .memcg_mib = 32, .swap_mib = 96, .zram_mib = 256, .memcg_max_mib = 48,
	.crossing_rounds = 8, .crossing_slots = 64, .scenario_timeout = 120,
};

static void read_conf(const char *path)
{
	char line[600];
	FILE *f = fopen(path, "r");

	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		char *eq = strchr(line, '='), *nl = strchr(line, '\n');

		if (nl)
			*nl = 0;
		if (!eq || line[0] == '#')
			continue;
		*eq++ = 0;
		if (!strcmp(line, "scenarios"))
			snprintf(C.scenarios, sizeof(C.scenarios), "%s", eq);
#define NUM(k) else if (!strcmp(line, #k)) C.k = atol(eq);
		NUM(lazyfree_mib) NUM(memcg_mib) NUM(swap_mib) NUM(zram_mib) NUM(memcg_max_mib)
		NUM(crossing_rounds) NUM(crossing_slots) NUM(scenario_timeout)
#undef NUM
	}
	fclose(f);
}

/* ------------------------------------------------------------------ small helpers */

static int write_file(const char *path, const char *val)
{
	int fd = open(path, O_WRONLY);
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = write(fd, val, strlen(val));
	close(fd);
	return n < 0 ? -errno : 0;
}

static long read_long_file(const char *path)
{
	char buf[64] = "";
	int fd = open(path, O_RDONLY);
	ssize_t n;

	if (fd < 0)
		return -1;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	return n > 0 ? atol(buf) : -1;
}

/* One counter from /proc/vmstat; -1 if the kernel does not have it. */
static long vmstat(const char *name)
{
	static char buf[1 << 16];
	int fd = open("/proc/vmstat", O_RDONLY);
	ssize_t n;
	size_t len = strlen(name);
	char *p;

	if (fd < 0)
		return -1;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = 0;
	for (p = buf; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : p)
		if (!strncmp(p, name, len) && p[len] == ' ')
			return atol(p + len + 1);
	return -1;
}

static long mthp_stat(const char *size, const char *name)
{
	char path[256];

	snprintf(path, sizeof(path), THP "/hugepages-%s/stats/%s", size, name);
	return read_long_file(path);
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* MAP_NORESERVE: with 64 KiB pages pte-table-crossing spans tens of GiB of address space (a PTE table maps
 * 512 MiB), more than the overcommit heuristic allows in one mapping; only what is touched is memory. */
static char *map_aligned(size_t len, size_t align)
{
	char *p = mmap(NULL, len + align, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	uintptr_t a;

	if (p == MAP_FAILED)
		return NULL;
	a = ((uintptr_t)p + align - 1) & ~(align - 1);
	if (a > (uintptr_t)p)
		munmap(p, a - (uintptr_t)p);
	munmap((char *)a + len, (uintptr_t)p + align - a);
	return (char *)a;
}

/* The pattern a page carries: distinct per page, round and generation, never zero. */
static inline uint64_t pat(uintptr_t addr, uint64_t gen)
{
	return ((addr / PAGE) * 0x9e3779b97f4a7c15ULL) ^ (gen << 48) ^ 0x5a5a5a5a00000001ULL;
}

/* key: the address the data is tied to (the address it was written at, kept across mremap) */
static void fill_key(char *p, size_t len, uintptr_t key, uint64_t gen)
{
	for (size_t off = 0; off < len; off += PAGE) {
		uint64_t v = pat(key + off, gen), *q = (uint64_t *)(p + off);

		for (size_t i = 0; i < PAGE / 8; i++)
			q[i] = v + i;
	}
}

static void fill(char *p, size_t len, uint64_t gen)
{
	fill_key(p, len, (uintptr_t)p, gen);
}

/* 1 = whole page holds gen's pattern, 0 = whole page zero, -1 = anything else (corruption). */
static int page_state_key(const char *page, uintptr_t key, uint64_t gen)
{
	const uint64_t *q = (const uint64_t *)page;
	uint64_t v = pat(key, gen);
	int pattern = 1, zero = 1;

	for (size_t i = 0; i < PAGE / 8; i++) {
		if (q[i] != v + i)
			pattern = 0;
		if (q[i])
			zero = 0;
	}
	return pattern ? 1 : zero ? 0 : -1;
}

static int page_state(const char *page, uint64_t gen)
{
	return page_state_key(page, (uintptr_t)page, gen);
}

static void thp_write(const char *size, const char *val)
{
	char path[128];

	snprintf(path, sizeof(path), THP "/hugepages-%s/enabled", size);
	write_file(path, val);
}

/* the PMD-sized THP (2 MiB with 4 KiB pages, 512 MiB with 64 KiB) on or off */
static void thp_pmd(int on)
{
	thp_write(PMD_KB, on ? "always" : "never");
}

static void sizes(void)
{
	long ps = sysconf(_SC_PAGESIZE);

	if (ps > 0 && (size_t)ps <= PAGE_MAX && !(ps & (ps - 1)))
		PAGE = ps;
	PMD_SZ = PAGE * (PAGE / 8); /* one PTE table: PAGE / 8 entries */
	FOLIO_SZ = 4 * PAGE > (64UL << 10) ? 4 * PAGE : 64UL << 10;
	REDIRTY = 4 * FOLIO_SZ / PAGE;
	snprintf(FOLIO_KB, sizeof(FOLIO_KB), "%zukB", FOLIO_SZ >> 10);
	snprintf(PMD_KB, sizeof(PMD_KB), "%zukB", PMD_SZ >> 10);
}

/* ------------------------------------------------------------------ cgroup */

static char cg_path[128];

static int cg_enter(const char *name, long high_mib, long max_mib)
{
	char path[256], val[64];

	write_file(CG "/cgroup.subtree_control", "+memory");
	snprintf(cg_path, sizeof(cg_path), CG "/%s", name);
	if (mkdir(cg_path, 0755) && errno != EEXIST)
		return -errno;
	if (high_mib) {
		snprintf(path, sizeof(path), "%s/memory.high", cg_path);
		snprintf(val, sizeof(val), "%ld", high_mib << 20);
		write_file(path, val);
	}
	if (max_mib) {
		snprintf(path, sizeof(path), "%s/memory.max", cg_path);
		snprintf(val, sizeof(val), "%ld", max_mib << 20);
		write_file(path, val);
	}
	snprintf(path, sizeof(path), "%s/cgroup.procs", cg_path);
	return write_file(path, "0");
}

static int cg_set(const char *file, const char *val)
{
	char path[256];

	snprintf(path, sizeof(path), "%s/%s", cg_path, file);
	return write_file(path, val);
}

/* memory.reclaim returns EAGAIN when it could not reclaim all it was asked for: not an error here. */
static void cg_reclaim(size_t bytes, int times)
{
	char val[64];

	snprintf(val, sizeof(val), "%zu", bytes);
	for (int i = 0; i < times; i++)
		cg_set("memory.reclaim", val);
}

static void pin_cpu0(void)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(0, &set);
	sched_setaffinity(0, sizeof(set), &set);
}

/* ------------------------------------------------------------------ scenarios */

typedef int (*scenario_fn)(char *detail, size_t len);

struct lazy_counts {
	long lazyfree, lazyfreed, fault64k;
};

static void lazy_snapshot(struct lazy_counts *c)
{
	c->lazyfree = vmstat("pglazyfree");
	c->lazyfreed = vmstat("pglazyfreed");
	c->fault64k = mthp_stat(FOLIO_KB, "anon_fault_alloc");
}

/*
 * Fill, MADV_FREE, re-dirty every third page, reclaim (MADV_PAGEOUT or memcg), check:
 * re-dirtied pages keep the new data, the others read old data or zeroes, counters moved.
 */
static int lazyfree_common(char *detail, size_t dlen, size_t len, int memcg)
{
	struct lazy_counts a, b;
	size_t pages = len / PAGE, kept = 0, zeroed = 0, dirty_ok = 0, bad = 0;
	char *p = map_aligned(len, PMD_SZ);
	long first_bad = -1;

	if (!p) {
		snprintf(detail, dlen, "mmap failed: %s", strerror(errno));
		return 1;
	}
	lazy_snapshot(&a);
	thp_pmd(0); /* FOLIO_SZ folios: a dirty PMD THP would be swapped whole, never discarded */
	fill(p, len, 1);
	thp_pmd(1);
	if (madvise(p, len, MADV_FREE)) {
		snprintf(detail, dlen, "MADV_FREE failed: %s", strerror(errno));
		return 1;
	}
	for (size_t i = 0; i < pages; i += REDIRTY)
		fill(p + i * PAGE, PAGE, 2);
	if (memcg) {
		cg_reclaim(len * 2, 4);
		/* and through memory.high: squeeze the group, then let it go */
		cg_set("memory.high", "4194304");
		char *q = map_aligned(8UL << 20, PMD_SZ);
		if (q)
			fill(q, 8UL << 20, 3);
		cg_set("memory.high", "max");
	} else {
		for (int i = 0; i < 3; i++)
			if (madvise(p, len, MADV_PAGEOUT)) {
				snprintf(detail, dlen, "MADV_PAGEOUT failed: %s", strerror(errno));
				return 1;
			}
	}
	for (size_t i = 0; i < pages; i++) {
		int st = page_state(p + i * PAGE, i % REDIRTY == 0 ? 2 : 1);

		if (i % REDIRTY == 0) {
			if (st == 1)
				dirty_ok++;
			else
				bad++, first_bad = first_bad < 0 ? (long)i : first_bad;
		} else if (st == 1) {
			kept++;
		} else if (st == 0) {
			zeroed++;
		} else {
			bad++, first_bad = first_bad < 0 ? (long)i : first_bad;
		}
	}
	lazy_snapshot(&b);
	long dfree = b.lazyfree - a.lazyfree, dfreed = b.lazyfreed - a.lazyfreed, d64 = b.fault64k - a.fault64k;
	int fail = bad || (a.lazyfree >= 0 && dfree <= 0) || (a.lazyfreed >= 0 && dfreed <= 0);

	snprintf(detail, dlen,
		 "pages=%zu redirtied_ok=%zu kept=%zu zeroed=%zu corrupt=%zu first_corrupt=%ld "
		 "pglazyfree+%ld pglazyfreed+%ld %s_faults+%ld%s",
		 pages, dirty_ok, kept, zeroed, bad, first_bad, dfree, dfreed, FOLIO_KB, d64,
		 fail && !bad ? " (lazyfree counters did not move)" : "");
	munmap(p, len);
	return fail;
}

static int sc_lazyfree_pageout(char *d, size_t n)
{
	return lazyfree_common(d, n, C.lazyfree_mib << 20, 0);
}

static int sc_lazyfree_memcg(char *d, size_t n)
{
	if (cg_enter("lazyfree-memcg", 0, 0)) {
		snprintf(d, n, "cannot enter memcg: %s", strerror(errno));
		return 1;
	}
	return lazyfree_common(d, n, C.memcg_mib << 20, 1);
}

/*
 * The June 2025 try_to_unmap_one() out-of-bounds batch: lazyfree large folios (FOLIO_SZ) whose PTEs straddle
 * a page-table boundary (PMD_SZ apart: 2 MiB with 4 KiB pages, 512 MiB with 64 KiB). Slot k's folio has its first half at the end of table k, its second half at
 * the start of table k+1.
 *  phase A (data): the second half is its own mlocked VMA. A correct kernel never discards the folio;
 *    a batch that runs past table k reads table k+1 (when it is the physically next page, which fresh
 *    consecutive page-table allocations make likely), clears the mlocked PTEs too and discards the
 *    folio: the mlocked pages then read zero.
 *  phase B (KASAN): the second half is unmapped together with the whole of table k+1, so table k+1 is
 *    freed and the read past table k lands on a freed page.
 */
static int crossing_round(uint64_t gen, int phase_b, long *lost, long *made, char *err, size_t elen)
{
	size_t slots = C.crossing_slots, span = (slots + 2) * PMD_SZ, half = FOLIO_SZ / 2;
	char *src = map_aligned(span, PMD_SZ), *res, *dst, *drain;
	int rc = 0;

	if (!src) {
		snprintf(err, elen, "mmap src: %s", strerror(errno));
		return -1;
	}
	/* source: slot k's folio at the end of source table k (so MADV_FREE keeps it whole) */
	for (size_t k = 0; k < slots; k += 1 + phase_b)
		fill(src + k * PMD_SZ + PMD_SZ - FOLIO_SZ, FOLIO_SZ, gen);
	if (madvise(src, span, MADV_FREE)) {
		snprintf(err, elen, "MADV_FREE: %s", strerror(errno));
		return -1;
	}
	/* reserve a destination, B0 = PMD_SZ aligned; dst = B0 + FOLIO_SZ / 2 puts folio k across B0 + (k+1)*PMD_SZ */
	res = map_aligned(span + 2 * PMD_SZ, PMD_SZ);
	if (!res) {
		snprintf(err, elen, "mmap dst: %s", strerror(errno));
		return -1;
	}
	munmap(res, span + 2 * PMD_SZ);
	res = mmap(res, span + 2 * PMD_SZ, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
	if (res == MAP_FAILED) {
		snprintf(err, elen, "reserve dst: %s", strerror(errno));
		return -1;
	}
	dst = res + half;
	/* use up stale page-table pages so the mremap below gets fresh, consecutive ones */
	drain = map_aligned(slots * PMD_SZ, PMD_SZ);
	if (drain) {
		madvise(drain, slots * PMD_SZ, MADV_NOHUGEPAGE);
		for (size_t k = 0; k < slots; k++)
			drain[k * PMD_SZ] = 1;
	}
	if (mremap(src, span, span, MREMAP_MAYMOVE | MREMAP_FIXED, dst) == MAP_FAILED) {
		snprintf(err, elen, "mremap: %s", strerror(errno));
		return -1;
	}
	for (size_t k = 0; k < slots; k += 1 + phase_b) {
		char *b = res + (k + 1) * PMD_SZ; /* the boundary folio k straddles */

		if (phase_b)
			munmap(b, PMD_SZ); /* frees table k+1 with folio k's second half */
		else if (syscall(SYS_mlock2, b, half, MLOCK_ONFAULT_FLAG)) {
			snprintf(err, elen, "mlock2: %s", strerror(errno));
			rc = -1;
			break;
		}
		(*made)++;
	}
	if (drain)
		munmap(drain, slots * PMD_SZ);
	if (phase_b)
		usleep(50000); /* page tables may be freed after an RCU grace period */
	if (!rc)
		cg_reclaim(slots * FOLIO_SZ * 2, 3);
	for (size_t k = 0; !rc && k < slots; k += 1 + phase_b) {
		char *f = res + (k + 1) * PMD_SZ - half;
		int lost_here = 0;

		for (size_t off = 0; off < FOLIO_SZ; off += PAGE) {
			if (phase_b && off >= half)
				break;
			/* written at src + k*PMD_SZ + PMD_SZ - FOLIO_SZ before the mremap */
			int st = page_state_key(f + off, (uintptr_t)src + (k + 1) * PMD_SZ - FOLIO_SZ + off, gen);

			if (st < 0 || (st == 0 && off >= half)) /* mlocked half must keep its data */
				lost_here = 1;
		}
		if (lost_here && (*lost)++ < 3)
			say("# pte-table-crossing: gen %llu slot %zu lost data (phase %c)",
			    (unsigned long long)gen, k, phase_b ? 'B' : 'A');
	}
	munmap(res, span + 2 * PMD_SZ);
	return rc;
}

static int sc_pte_table_crossing(char *d, size_t n)
{
	long lost = 0, made = 0, made_b = 0, lost_b = 0;
	long f64 = mthp_stat(FOLIO_KB, "anon_fault_alloc"), lf = vmstat("pglazyfreed");
	char err[200] = "";
	int rc = 0;

	if (cg_enter("pte-table-crossing", 0, 0)) {
		snprintf(d, n, "cannot enter memcg: %s", strerror(errno));
		return 1;
	}
	pin_cpu0(); /* page tables come from this CPU's lists; memory.reclaim drains this CPU's LRU batch */
	/* FOLIO_SZ folios only: a PMD THP would fill the aligned source instead */
	thp_pmd(0);
	for (long r = 0; r < C.crossing_rounds && !rc; r++) {
		rc = crossing_round(2 * r + 10, 0, &lost, &made, err, sizeof(err));
		if (!rc)
			rc = crossing_round(2 * r + 11, 1, &lost_b, &made_b, err, sizeof(err));
	}
	thp_pmd(1);
	if (rc) {
		snprintf(d, n, "setup failed: %s", err);
		return 1;
	}
	snprintf(d, n, "%srounds=%ld straddling_folios=%ld+%ld lost_mlocked=%ld lost_b=%ld %s_faults+%ld pglazyfreed+%ld",
		 lost ? "mlocked pages past a page-table boundary read back as zeroes (a lazyfree folio was discarded "
			"through a batch that ran past its page table): " : lost_b ? "data lost: " : "",
		 C.crossing_rounds, made, made_b, lost, lost_b, FOLIO_KB, mthp_stat(FOLIO_KB, "anon_fault_alloc") - f64,
		 vmstat("pglazyfreed") - lf);
	return lost || lost_b;
}

/* Dirty anon memory beyond memory.max goes to zram and must come back intact. */
static int sc_swap_pressure(char *d, size_t n)
{
	size_t len = C.swap_mib << 20, pages = len / PAGE, bad = 0;
	long out0 = vmstat("pswpout"), in0 = vmstat("pswpin");
	char *p;

	if (cg_enter("swap-pressure", 0, C.memcg_max_mib)) {
		snprintf(d, n, "cannot enter memcg: %s", strerror(errno));
		return 1;
	}
	p = map_aligned(len, PMD_SZ);
	if (!p) {
		snprintf(d, n, "mmap: %s", strerror(errno));
		return 1;
	}
	fill(p, len, 7);
	for (size_t i = 0; i < pages; i++)
		if (page_state(p + i * PAGE, 7) != 1)
			bad++;
	long out = vmstat("pswpout") - out0, in = vmstat("pswpin") - in0;

	snprintf(d, n, "mib=%ld memory.max=%ldMiB corrupt_pages=%zu pswpout+%ld pswpin+%ld%s", C.swap_mib,
		 C.memcg_max_mib, bad, out, in, out0 >= 0 && out <= 0 ? " (nothing was swapped)" : "");
	return bad || (out0 >= 0 && out <= 0);
}

static const struct {
	const char *name;
	scenario_fn fn;
} SCENARIOS[] = {
	{ "lazyfree-pageout", sc_lazyfree_pageout },
	{ "lazyfree-memcg", sc_lazyfree_memcg },
	{ "pte-table-crossing", sc_pte_table_crossing },
	{ "swap-pressure", sc_swap_pressure },
};

/* ------------------------------------------------------------------ setup */

static int setup_swap(char *err, size_t elen)
{
	char val[32];
	static unsigned char hdr[PAGE_MAX];
	uint32_t *u = (uint32_t *)(hdr + 1024);
	int fd;

	if (write_file("/sys/block/zram0/comp_algorithm", "lzo") && access("/sys/block/zram0", F_OK)) {
		snprintf(err, elen, "no /sys/block/zram0 (CONFIG_ZRAM?)");
		return -1;
	}
	snprintf(val, sizeof(val), "%ld", C.zram_mib << 20);
	if (write_file("/sys/block/zram0/disksize", val)) {
		snprintf(err, elen, "zram disksize: %s", strerror(errno));
		return -1;
	}
	/* mkswap by hand: version 1 header at 1024, SWAPSPACE2 at the end of the first page (PAGE: the kernel
	 * reads the header as one of its pages) */
	u[0] = 1;
	u[1] = (uint32_t)((C.zram_mib << 20) / PAGE - 1);
	memcpy(hdr + PAGE - 10, "SWAPSPACE2", 10);
	fd = open("/dev/zram0", O_WRONLY);
	if (fd < 0 || pwrite(fd, hdr, PAGE, 0) != (ssize_t)PAGE) {
		snprintf(err, elen, "write swap header: %s", strerror(errno));
		return -1;
	}
	fsync(fd);
	close(fd);
	if (swapon("/dev/zram0", 0)) {
		snprintf(err, elen, "swapon: %s", strerror(errno));
		return -1;
	}
	return 0;
}

static void setup(void)
{
	char err[200] = "", path[128];

	mkdir("/proc", 0755);
	mkdir("/sys", 0755);
	mkdir("/dev", 0755);
	mount("proc", "/proc", "proc", 0, NULL);
	mount("sysfs", "/sys", "sysfs", 0, NULL);
	mount("devtmpfs", "/dev", "devtmpfs", 0, NULL);
	mount("cgroup2", CG, "cgroup2", 0, NULL);
	snprintf(path, sizeof(path), THP "/hugepages-%s/enabled", FOLIO_KB);
	if (write_file(path, "always"))
		say("# setup: cannot enable %s mTHP: %s", FOLIO_KB, strerror(errno));
	write_file(THP "/enabled", "always");
	thp_write(PMD_KB, "always");
	if (setup_swap(err, sizeof(err)))
		say("# setup: no swap: %s", err);
	else
		say("# setup: zram swap %ld MiB on", C.zram_mib);
}

static void run_one(const char *name, scenario_fn fn, int *failed)
{
	int pfd[2], status = 0;
	char detail[700] = "";
	double t0 = now();
	pid_t pid;

	say("STRESS-BEGIN %s", name);
	if (pipe(pfd)) {
		say("STRESS %s FAIL pipe: %s", name, strerror(errno));
		*failed = 1;
		return;
	}
	pid = fork();
	if (pid == 0) {
		close(pfd[0]);
		alarm(C.scenario_timeout);
		int rc = fn(detail, sizeof(detail));

		if (write(pfd[1], detail, strlen(detail)) < 0)
			rc = 1;
		_exit(rc ? 1 : 0);
	}
	close(pfd[1]);
	ssize_t got = pid > 0 ? read(pfd[0], detail, sizeof(detail) - 1) : -1;

	detail[got > 0 ? got : 0] = 0;
	close(pfd[0]);
	if (pid > 0)
		waitpid(pid, &status, 0);
	if (pid > 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0) {
		say("STRESS %s PASS %s time=%.1fs", name, detail, now() - t0);
		return;
	}
	*failed = 1;
	if (pid > 0 && WIFSIGNALED(status) && WTERMSIG(status) == SIGALRM)
		say("STRESS %s FAIL timeout after %lds", name, C.scenario_timeout);
	else if (pid > 0 && WIFSIGNALED(status))
		say("STRESS %s FAIL killed by signal %d %s time=%.1fs", name, WTERMSIG(status), detail, now() - t0);
	else
		say("STRESS %s FAIL %s time=%.1fs", name, detail[0] ? detail : "no detail", now() - t0);
}

int main(void)
{
	int failed = 0;
	char list[512], *save = NULL;

	read_conf("/etc/stress.conf"); /* before setup(): it sizes zram */
	sizes();
	setup();
	say("# stress: page_size=%zu pte_table_span=%zukB folio=%s pmd_thp=%s", PAGE, PMD_SZ >> 10, FOLIO_KB, PMD_KB);
	say("# stress: scenarios=%s", C.scenarios);
	snprintf(list, sizeof(list), "%s", C.scenarios);
	for (char *name = strtok_r(list, ",", &save); name; name = strtok_r(NULL, ",", &save)) {
		size_t i;

		for (i = 0; i < sizeof(SCENARIOS) / sizeof(SCENARIOS[0]); i++)
			if (!strcmp(SCENARIOS[i].name, name))
				break;
		if (i == sizeof(SCENARIOS) / sizeof(SCENARIOS[0])) {
			say("STRESS %s FAIL unknown scenario", name);
			failed = 1;
			continue;
		}
		run_one(name, SCENARIOS[i].fn, &failed);
	}
	say("RESULT: %s", failed ? "FAIL" : "PASS");
	sync();
	/* the same boot goes on with the tree's mm selftests when the initramfs has them (bot/boot/selftests/) */
	if (!access("/selftests/run", X_OK)) {
		char *argv[] = { "/selftests/run", NULL };

		execv(argv[0], argv);
		say("# stress: exec /selftests/run: %s", strerror(errno));
	}
#ifdef __x86_64__
	/* no ACPI in the tinyconfig kernel: power-off would only halt; QEMU -no-reboot exits on reboot */
	reboot(RB_AUTOBOOT);
#else
	reboot(RB_POWER_OFF);
#endif
	for (;;)
		pause();
}
