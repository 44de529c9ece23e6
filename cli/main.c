// recontrol: one binary, one subcommand per pipeline stage. `recontrol --help` lists them.
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/common.h"
#include "base/dist.h"
#include "base/finite.h"
#include "cli/commands.h"
#include "kernels/cpu/qmatmul.h"
#include "rc_version.h"

typedef struct {
    const char *name;
    rc_cmd_fn fn;
    const char *help;
} rc_cmd;

#define RC_ENTRY(name, help) {#name, cmd_##name, help},
static const rc_cmd k_cmds[] = {RC_COMMANDS(RC_ENTRY)};
#undef RC_ENTRY

static void usage(FILE *f) {
    fprintf(f, "recontrol: LLaMA inference with test-time alignment by representation editing\n\n"
               "usage: recontrol <command> [options]   (recontrol <command> --help for details)\n\n"
               "commands:\n");
    for (size_t i = 0; i < sizeof k_cmds / sizeof k_cmds[0]; i++)
        if (k_cmds[i].fn) fprintf(f, "  %-10s %s\n", k_cmds[i].name, k_cmds[i].help);
    fprintf(f, "\n  --version  version, commit and build (recontrol info: machine and devices)\n");
    fprintf(f, "\noption of every command:\n"
               "  --skip-weight-scan  load model and value weights without the NaN/Inf scan\n");
}

// `recontrol --version`: what was built from which tree, for bug reports and results files.
static void version(void) {
    printf("recontrol %s (commit %s, %s build, CUDA backend %s, CPU kernels %s)\n", RC_VERSION,
           RC_GIT_COMMIT, RC_BUILD_TYPE[0] ? RC_BUILD_TYPE : "default",
#ifdef RC_HAVE_CUDA
           "built (loaded for --device cuda)",
#else
           "not built",
#endif
           rc_cpu_qmatmul_isa());
}

// Options every command takes, removed from argv before the command parses it.
static int take_global_options(int argc, char **argv) {
    int k = 1;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--")) { // what follows belongs to the command
            while (i < argc) argv[k++] = argv[i++];
            break;
        }
        if (!strcmp(argv[i], "--skip-weight-scan"))
            rc_set_weight_scan(0);
        else
            argv[k++] = argv[i];
    }
    argv[k] = NULL;
    return k;
}

// OpenMP threads that wait by spinning for long (libgomp's default) collapse throughput when
// another process holds one of the cores: a decode step has hundreds of parallel regions and
// each one waits for a descheduled thread (measured: 7.5 tok/s against 186 tok/s with a short
// spin, batch-12 decode of the default model on 2 cores with one core busy). libgomp reads its
// settings when it loads, before main(), so unless the user chose a policy we set a short spin
// and re-execute once.
static void tune_openmp_wait(char **argv) {
    if (getenv("OMP_WAIT_POLICY") || getenv("GOMP_SPINCOUNT") || getenv("RC_NO_REEXEC")) return;
    setenv("GOMP_SPINCOUNT", "10000", 1);
    setenv("RC_NO_REEXEC", "1", 1);
    execv("/proc/self/exe", argv); // returns only on failure: then run with the defaults
}

int main(int argc, char **argv) {
    tune_openmp_wait(argv);
    argc = take_global_options(argc, argv);
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") ||
        !strcmp(argv[1], "help")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "version")) {
        version();
        return 0;
    }
    for (size_t i = 0; i < sizeof k_cmds / sizeof k_cmds[0]; i++) {
        if (!k_cmds[i].fn || strcmp(argv[1], k_cmds[i].name)) continue;
        // Under a launcher (mpirun, srun) this process is one rank of a job; alone, a world of 1.
        if (rc_dist_init()) {
            fprintf(stderr, "recontrol %s: %s\n", argv[1], rc_last_error());
            return rc_dist_end(1);
        }
        return rc_dist_end(k_cmds[i].fn(argc - 1, argv + 1));
    }
    fprintf(stderr, "recontrol: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return 2;
}
