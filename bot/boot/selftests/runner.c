/*
 * The mm selftests runner of the mm review bot: the stress /init execs it (as PID 1) after its RESULT line
 * when the initramfs holds /selftests/run. It runs the tests listed in /selftests/plan one after another,
 * each in its own session on a pty (line-buffered stdio: nothing lost when a test crashes or is killed,
 * output in order with the kernel's messages) with a wall-clock timeout that kills its whole process group,
 * reruns a failing test when the plan says so (a timed-out one once), stops starting tests once the budget is spent, and reboots.
 *
 * /selftests/plan, one directive per line:
 *   budget <seconds>                          no test starts after this many seconds of tests
 *   write <path> <value>                      e.g. write /proc/sys/vm/overcommit_memory 1
 *   run <n> <timeout_s> <reruns> <uid|-> <binary> [args...]    binary in /selftests/bin (the cwd)
 * Console lines (the bot parses them, bot/boot/selftests/tap.py):
 *   ### SELFTESTS begin tests=<N> budget=<s>
 *   ### BEGIN <n> attempt=<k> :: <argv>
 *   ### END <n> attempt=<k> rc=<exit or -1> sig=<signal> timeout=<0|1> secs=<s>
 *   ### NOTRUN <n> budget
 *   ### SELFTESTS done secs=<s>
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#define THP "/sys/kernel/mm/transparent_hugepage"

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
	char buf[4096];
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
	if (write(1, buf, n) < 0) { /* the console is all there is */ }
}

static void mnt(const char *src, const char *dst, const char *type, const char *opts)
{
	mkdir(dst, 0755);
	if (mount(src, dst, type, 0, opts) && errno != EBUSY)
		say("# selftests setup: mount %s on %s: %s", type, dst, strerror(errno));
}

static int write_file(const char *path, const char *val)
{
	int fd = open(path, O_WRONLY);
	ssize_t n;

	if (fd < 0)
		return -1;
	n = write(fd, val, strlen(val));
	close(fd);
	return n == (ssize_t)strlen(val) ? 0 : -1;
}

/* The stress scenarios turned an mTHP size on: give the tests the kernel's defaults (they set their own):
 * the PMD size (2048kB with 4 KiB pages, 524288kB with 64 KiB) inherits, the others are off. */
static void thp_defaults(void)
{
	char pmd[64] = "-2048kB/", buf[32] = "";
	int fd = open(THP "/hpage_pmd_size", O_RDONLY);
	glob_t g;

	if (fd >= 0) {
		ssize_t n = read(fd, buf, sizeof(buf) - 1);

		close(fd);
		if (n > 0 && atol(buf) > 0)
			snprintf(pmd, sizeof(pmd), "-%ldkB/", atol(buf) >> 10);
	}
	if (glob(THP "/hugepages-*kB/enabled", 0, NULL, &g) == 0) {
		for (size_t i = 0; i < g.gl_pathc; i++)
			write_file(g.gl_pathv[i], strstr(g.gl_pathv[i], pmd) ? "inherit" : "never");
		globfree(&g);
	}
	write_file(THP "/enabled", "always");
}

struct relay {
	char buf[65536];
	size_t len;
};

/* One write() per line keeps a line whole on the console between the kernel's own messages. */
static void relay_flush(struct relay *r, int all)
{
	char *start = r->buf, *nl;

	while ((nl = memchr(start, '\n', r->len - (start - r->buf)))) {
		if (write(1, start, nl - start + 1) < 0) {}
		start = nl + 1;
	}
	r->len -= start - r->buf;
	memmove(r->buf, start, r->len);
	if (r->len && (all || r->len == sizeof(r->buf))) {
		if (write(1, r->buf, r->len) < 0 || write(1, "\n", 1) < 0) {}
		r->len = 0;
	}
}

static int open_pty(int *master, int *slave)
{
	struct termios tio;
	struct winsize ws = { .ws_row = 50, .ws_col = 200 };

	*master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (*master < 0 || grantpt(*master) || unlockpt(*master))
		return -1;
	*slave = open(ptsname(*master), O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (*slave < 0)
		return -1;
	tcgetattr(*slave, &tio);
	cfmakeraw(&tio); /* no echo, no \n -> \r\n */
	tcsetattr(*slave, TCSANOW, &tio);
	ioctl(*slave, TIOCSWINSZ, &ws);
	return 0;
}

static void child(int slave, int uid, char **argv)
{
	char path[512];
	int nul = open("/dev/null", O_RDONLY);

	setsid(); /* its own session and process group; the pty its controlling tty */
	ioctl(slave, TIOCSCTTY, 0);
	dup2(slave, 1);
	dup2(slave, 2);
	if (nul >= 0)
		dup2(nul, 0);
	signal(SIGPIPE, SIG_DFL);
	if (uid >= 0 && (setgid(uid) || setuid(uid))) {
		perror("setuid");
		_exit(126);
	}
	snprintf(path, sizeof(path), "/selftests/bin/%s", argv[0]);
	execv(path, argv);
	perror("execv");
	_exit(127);
}

/* Returns 1 when the test failed (any exit but 0 and 4, KSFT_SKIP, or a signal), 2 when it timed out. */
static int run_once(int n, int attempt, int timeout, int uid, char **argv)
{
	struct relay *r = calloc(1, sizeof(*r));
	int master = -1, slave = -1, status = 0, timed_out = 0, done = 0, eof = 0, rc, sig;
	char cmd[2048] = "";
	double t0, deadline;
	pid_t pid;

	for (char **a = argv; *a; a++)
		snprintf(cmd + strlen(cmd), sizeof(cmd) - strlen(cmd), " %s", *a);
	say("### BEGIN %d attempt=%d ::%s", n, attempt, cmd);
	if (!r || open_pty(&master, &slave)) {
		say("### END %d attempt=%d rc=-1 sig=0 timeout=0 secs=0 error=pty", n, attempt);
		free(r);
		return 1;
	}
	t0 = now();
	deadline = t0 + timeout;
	pid = fork();
	if (pid == 0)
		child(slave, uid, argv);
	close(slave);
	while (!done || !eof) {
		struct pollfd p = { .fd = master, .events = POLLIN };
		int left = (int)((deadline - now()) * 1000);

		if (left <= 0 && !done) {
			timed_out = 1;
			kill(-pid, SIGKILL);
			kill(pid, SIGKILL);
			waitpid(pid, &status, 0);
			done = 1;
		}
		if (!eof && poll(&p, 1, done ? 200 : (left < 100 ? (left > 0 ? left : 1) : 100)) > 0) {
			ssize_t got = read(master, r->buf + r->len, sizeof(r->buf) - r->len);

			if (got <= 0) /* EIO once the last slave fd is closed */
				eof = 1;
			else {
				r->len += got;
				relay_flush(r, 0);
			}
		} else if (done) {
			kill(-pid, SIGKILL); /* a straggler still holds the pty: end it, stop reading */
			eof = 1;
		}
		if (!done && waitpid(pid, &status, WNOHANG) == pid) {
			done = 1;
			kill(-pid, SIGKILL); /* what the test left running in its group */
		}
	}
	relay_flush(r, 1);
	close(master);
	free(r);
	while (waitpid(-1, NULL, WNOHANG) > 0)
		; /* orphans reparented to us */
	rc = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
	sig = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
	say("### END %d attempt=%d rc=%d sig=%d timeout=%d secs=%.2f", n, attempt, rc, sig, timed_out,
	    now() - t0);
	if (timed_out)
		return 2;
	return !(rc == 0 || rc == 4);
}

int main(void)
{
	char line[4096];
	double start, budget = 1e9;
	int tests = 0;
	FILE *plan;

	mnt("proc", "/proc", "proc", NULL);
	mnt("sysfs", "/sys", "sysfs", NULL);
	mnt("devtmpfs", "/dev", "devtmpfs", NULL);
	mnt("tmpfs", "/tmp", "tmpfs", "mode=1777");
	mnt("tmpfs", "/dev/shm", "tmpfs", "mode=1777");
	mnt("devpts", "/dev/pts", "devpts", "ptmxmode=0666");
	mnt("debugfs", "/sys/kernel/debug", "debugfs", NULL);
	mnt("tracefs", "/sys/kernel/tracing", "tracefs", NULL);
	mnt("hugetlbfs", "/dev/hugepages", "hugetlbfs", NULL);
	mnt("cgroup2", "/sys/fs/cgroup", "cgroup2", NULL);
	setenv("PATH", "/selftests/bin:/bin", 1);
	setenv("HOME", "/tmp", 1);
	setenv("TMPDIR", "/tmp", 1);
	thp_defaults();
	if (chdir("/selftests/bin"))
		say("# selftests setup: chdir /selftests/bin: %s", strerror(errno));
	plan = fopen("/selftests/plan", "r");
	for (int pass = 0; plan && pass < 2; pass++) { /* pass 0 counts the tests, pass 1 runs them */
		rewind(plan);
		if (pass == 1)
			say("### SELFTESTS begin tests=%d budget=%.0f", tests, budget);
		start = now();
		while (fgets(line, sizeof(line), plan)) {
			char *argv[64], *save, *tok;
			int argc = 0;

			line[strcspn(line, "\n")] = 0;
			for (tok = strtok_r(line, " ", &save); tok && argc < 63; tok = strtok_r(NULL, " ", &save))
				argv[argc++] = tok;
			argv[argc] = NULL;
			if (argc == 2 && !strcmp(argv[0], "budget"))
				budget = atof(argv[1]);
			else if (argc == 3 && !strcmp(argv[0], "write") && pass == 1 && write_file(argv[1], argv[2]))
				say("# selftests setup: write %s = %s: %s", argv[1], argv[2], strerror(errno));
			else if (argc >= 6 && !strcmp(argv[0], "run")) {
				int n = atoi(argv[1]), timeout = atoi(argv[2]), reruns = atoi(argv[3]);
				int uid = strcmp(argv[4], "-") ? atoi(argv[4]) : -1, failed, timeouts;

				if (pass == 0) {
					tests++;
					continue;
				}
				if (now() - start > budget) {
					say("### NOTRUN %d budget", n);
					continue;
				}
				failed = run_once(n, 1, timeout, uid, &argv[5]);
				timeouts = failed == 2;
				/* a failure is run again; a timeout once (a loaded host can stretch a test past
				 * it: measured), a second timeout is a hang and costs no more of the boot */
				for (int k = 2; k <= reruns + 1 && (failed == 1 || (failed == 2 && timeouts == 1)); k++) {
					failed = run_once(n, k, timeout, uid, &argv[5]);
					timeouts += failed == 2;
				}
			}
		}
	}
	say("### SELFTESTS done secs=%.2f", plan ? now() - start : 0.0);
	sync();
	reboot(RB_AUTOBOOT); /* QEMU -no-reboot exits; x86 without ACPI cannot power off */
	reboot(RB_POWER_OFF);
	for (;;)
		pause();
}
