// recontrol: one binary, one subcommand per pipeline stage. `recontrol --help` lists them.
#include <stdio.h>
#include <string.h>

#include "cli/commands.h"

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
}

int main(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") ||
        !strcmp(argv[1], "help")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    for (size_t i = 0; i < sizeof k_cmds / sizeof k_cmds[0]; i++)
        if (k_cmds[i].fn && !strcmp(argv[1], k_cmds[i].name)) return k_cmds[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "recontrol: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return 2;
}
