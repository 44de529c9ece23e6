// Run directories and output paths (issue 16): a second process on a locked run directory is
// refused naming the holder, the lock dies with its process, stale temp files of dead writers are
// removed; output paths are checked before work with the real reason (missing directory, a
// directory, read-only); a FIFO or a device as a model is named as such; the memory check reads
// available, not total, memory.
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/common.h"
#include "base/rundir_lock.h"
#include "engine/model.h"

static char g_dir[256];

static void setup(void) {
    snprintf(g_dir, sizeof g_dir, "/tmp/rc_test_lock_XXXXXX");
    cr_assert_not_null(mkdtemp(g_dir));
}

static void teardown(void) {
    char cmd[700];
    snprintf(cmd, sizeof cmd, "chmod -R u+w %s; rm -rf %s", g_dir, g_dir);
    cr_assert_eq(system(cmd), 0);
}

TestSuite(rundir_lock, .init = setup, .fini = teardown);

Test(rundir_lock, second_process_refused_until_the_first_ends) {
    char run[300];
    snprintf(run, sizeof run, "%s/run", g_dir);
    int go[2], done[2];
    cr_assert(pipe(go) == 0 && pipe(done) == 0);
    pid_t child = fork();
    if (child == 0) {
        char c = rc_dir_lock(run, "extract") == 0 ? 'y' : 'n';
        if (write(go[1], &c, 1) != 1) _exit(2);
        if (read(done[0], &c, 1) != 1) _exit(2); // hold the lock until told
        _exit(0);
    }
    char c;
    cr_assert_eq(read(go[0], &c, 1), 1);
    cr_assert_eq(c, 'y', "the child could not lock");
    cr_assert_eq(rc_dir_lock(run, "label"), -1, "a second process got the lock");
    char want[64];
    snprintf(want, sizeof want, "pid %d, recontrol extract", (int)child);
    cr_assert(strstr(rc_last_error(), "is in use by another recontrol process") &&
              strstr(rc_last_error(), want), "%s", rc_last_error());
    kill(child, SIGKILL); // a killed holder: the kernel drops the lock
    waitpid(child, NULL, 0);
    cr_assert_eq(rc_dir_lock(run, "label"), 0, "%s", rc_last_error());
    cr_assert_eq(rc_dir_lock(run, "train"), 0, "re-entrant within a process");
    rc_dir_unlock(run);
    rc_dir_unlock(run);
}

Test(rundir_lock, stale_temp_files_removed) {
    char run[300], p[400];
    snprintf(run, sizeof run, "%s/run", g_dir);
    cr_assert_eq(rc_dir_lock(run, "extract"), 0, "%s", rc_last_error());
    const char *names[] = {"acts-00003.safetensors.tmp.123456", "responses-00001.jsonl.tmp.1",
                           "keep.jsonl", "notes.tmp.txt", "x.tmp.", NULL};
    for (int i = 0; names[i]; i++) {
        snprintf(p, sizeof p, "%s/%s", run, names[i]);
        FILE *f = fopen(p, "w");
        fputs("partial", f);
        fclose(f);
    }
    snprintf(p, sizeof p, "%s/mine.json.tmp.%d", run, (int)getpid());
    fclose(fopen(p, "w"));
    FILE *rep = tmpfile();
    cr_assert_eq(rc_clean_stale_tmp(run, rep), 2);
    cr_assert(rc_file_exists(p), "this process's own temp file stays");
    snprintf(p, sizeof p, "%s/keep.jsonl", run);
    cr_assert(rc_file_exists(p));
    snprintf(p, sizeof p, "%s/notes.tmp.txt", run);
    cr_assert(rc_file_exists(p));
    snprintf(p, sizeof p, "%s/acts-00003.safetensors.tmp.123456", run);
    cr_assert(!rc_file_exists(p));
    rewind(rep);
    char line[600];
    cr_assert(fgets(line, sizeof line, rep) && strstr(line, "left by an interrupted run"), "%s", line);
    fclose(rep);
    rc_dir_unlock(run);
}

Test(rundir_lock, output_paths_checked_before_work) {
    char p[400];
    snprintf(p, sizeof p, "%s/missing/x.txt", g_dir);
    cr_assert_eq(rc_check_output_file("--out", p), -1);
    cr_assert(strstr(rc_last_error(), "does not exist"), "%s", rc_last_error());
    cr_assert_eq(rc_check_output_file("--out", g_dir), -1);
    cr_assert(strstr(rc_last_error(), "is a directory"), "%s", rc_last_error());
    snprintf(p, sizeof p, "%s/ok.txt", g_dir);
    cr_assert_eq(rc_check_output_file("--out", p), 0, "%s", rc_last_error());
    cr_assert_eq(rc_check_output_file("--out", "relative-file.txt"), 0, "%s", rc_last_error());
    snprintf(p, sizeof p, "%s/a/b", g_dir); // created with its parents
    cr_assert_eq(rc_check_output_dir("run directory", p), 0, "%s", rc_last_error());
    snprintf(p, sizeof p, "%s/ok.txt", g_dir);
    fclose(fopen(p, "w"));
    cr_assert_eq(rc_check_output_dir("run directory", p), -1);
    cr_assert(strstr(rc_last_error(), "not a directory"), "%s", rc_last_error());
    snprintf(p, sizeof p, "%s/ok.txt/sub", g_dir);
    cr_assert_eq(rc_check_output_dir("run directory", p), -1);
    cr_assert(strstr(rc_last_error(), "Not a directory"), "%s", rc_last_error());
    if (geteuid() != 0) { // root writes anyway: read-only modes only bind other users
        char ro[300];
        snprintf(ro, sizeof ro, "%s/ro", g_dir);
        cr_assert_eq(mkdir(ro, 0555), 0);
        snprintf(p, sizeof p, "%s/x.txt", ro);
        cr_assert_eq(rc_check_output_file("--out", p), -1);
        cr_assert(strstr(rc_last_error(), "Permission denied"), "%s", rc_last_error());
    }
}

Test(rundir_lock, special_files_as_models) {
    char fifo[300];
    snprintf(fifo, sizeof fifo, "%s/fifo", g_dir);
    cr_assert_eq(mkfifo(fifo, 0644), 0);
    rc_model m;
    cr_assert_eq(rc_model_load(fifo, &m), -1);
    cr_assert(strstr(rc_last_error(), "is a FIFO"), "%s", rc_last_error());
    cr_assert_eq(rc_model_load("/dev/zero", &m), -1);
    cr_assert(strstr(rc_last_error(), "/dev/zero is a character device"), "%s", rc_last_error());
    char gguf[300];
    snprintf(gguf, sizeof gguf, "%s/fifo.gguf", g_dir); // must not block in open()
    cr_assert_eq(mkfifo(gguf, 0644), 0);
    cr_assert_eq(rc_model_load(gguf, &m), -1);
    cr_assert(strstr(rc_last_error(), "is a FIFO"), "%s", rc_last_error());
}

Test(rundir_lock, memory_check_reads_available_memory) {
    double avail = rc_memory_available_bytes();
    double total = (double)sysconf(_SC_PHYS_PAGES) * (double)sysconf(_SC_PAGESIZE);
    cr_assert(avail > 0 && avail <= total, "available %.0f, total %.0f", avail, total);
    FILE *f = fopen("/proc/meminfo", "r");
    cr_assert(f);
    char line[256];
    double kb = -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "MemAvailable: %lf kB", &kb) == 1) break;
    fclose(f);
    cr_assert(avail <= kb * 1024.0 * 1.05 + (64 << 20), "available %.0f > MemAvailable %.0f kB", avail, kb);
}
