// Ranks from the launcher's environment and the stages' collectives over MPI (base/dist.h).
// Built with MPI when CMake finds it (RC_HAVE_MPI); without it a world of 1 works as before and
// a launcher asking for more processes gets a clear error. Sums run as reduce-scatter + gather
// with the additions done here in rank order, so their result does not depend on MPI's choice
// of algorithm.
#define _GNU_SOURCE
#include "base/dist.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/common.h"

#ifdef RC_HAVE_MPI
#include <mpi.h>
#endif

static rc_dist_info g_info = {0, 1, 0, 1, "none"};
#ifdef RC_HAVE_MPI
static int g_mpi_on;     // MPI_Init done
static int g_joint_fail; // a failure every rank detected together (no abort needed)
#else
#define g_mpi_on 0
#endif

// ---- environment -----------------------------------------------------------------------------

// Reads an integer variable: 1 found, 0 absent, -1 malformed (error set).
static int env_int(const char *name, int *out) {
    const char *s = getenv(name);
    if (!s || !*s) return 0;
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (*end || errno || v < 0 || v > INT_MAX)
        return rc_fail("the launcher's variable %s=\"%s\" is not a non-negative integer", name, s);
    *out = (int)v;
    return 1;
}

int rc_dist_env(rc_dist_info *d) {
    *d = (rc_dist_info){0, 1, 0, 1, "none"};
    // name sets in order of preference: rank, size, local rank, local size
    static const char *sets[][5] = {
        {"openmpi", "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK",
         "OMPI_COMM_WORLD_LOCAL_SIZE"},
        {"slurm", "SLURM_PROCID", "SLURM_STEP_NUM_TASKS", "SLURM_LOCALID", NULL},
        {"slurm", "SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID", NULL},
        {"env", "RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE"},
    };
    for (size_t s = 0; s < sizeof sets / sizeof sets[0]; s++) {
        // Slurm's variables are also set in the batch script itself (one process): only a task
        // started by srun (a job step) counts as a rank.
        if (!strcmp(sets[s][0], "slurm") && !getenv("SLURM_STEP_ID") && !getenv("SLURM_STEPID")) continue;
        int rank = 0, size = 1, lr = 0, ls = 0;
        int fr = env_int(sets[s][1], &rank), fs = env_int(sets[s][2], &size);
        if (fr < 0 || fs < 0) return -1;
        if (!fr && !fs) continue;
        if (!fr || !fs)
            return rc_fail("the launcher set %s but not %s: cannot tell this process's rank",
                           fr ? sets[s][1] : sets[s][2], fr ? sets[s][2] : sets[s][1]);
        if (size < 1 || rank >= size)
            return rc_fail("the launcher says rank %d of a world of %d (%s, %s): rank must be below size",
                           rank, size, sets[s][1], sets[s][2]);
        int fl = env_int(sets[s][3], &lr);
        if (fl < 0) return -1;
        int fls = sets[s][4] ? env_int(sets[s][4], &ls) : 0;
        if (fls < 0) return -1;
        d->rank = rank;
        d->size = size;
        d->local_rank = fl ? lr : 0;
        d->local_size = fls ? ls : 0; // 0: not given by this launcher
        d->launcher = sets[s][0];
        return 0;
    }
    return 0;
}

int rc_dist_have_mpi(void) {
#ifdef RC_HAVE_MPI
    return 1;
#else
    return 0;
#endif
}

const rc_dist_info *rc_dist(void) { return &g_info; }
int rc_dist_rank(void) { return g_info.rank; }
int rc_dist_size(void) { return g_info.size; }

#ifdef RC_HAVE_MPI
static MPI_Comm g_comm = MPI_COMM_NULL;  // the stages' collectives
static MPI_Comm g_pcomm = MPI_COMM_NULL; // progress messages, kept apart from the collectives

static int mpi_check(int e, const char *what) {
    if (e == MPI_SUCCESS) return 0;
    char msg[MPI_MAX_ERROR_STRING];
    int len = 0;
    MPI_Error_string(e, msg, &len);
    return rc_fail("MPI %s failed on rank %d: %s", what, g_info.rank, msg);
}
#endif

// CPU threads of a rank: the cores the launcher bound it to, or, when it is not bound, its share of
// the node's cores (every rank defaulting to all of them would oversubscribe the node N times).
// OMP_NUM_THREADS, and --threads, still decide when given.
static void share_cores(void) {
    if (getenv("OMP_NUM_THREADS") || g_info.local_size < 2) return;
    int avail = omp_get_num_procs(), online = (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (avail < online) return; // bound: the binding is the share
    int n = avail / g_info.local_size;
    omp_set_num_threads(n > 0 ? n : 1);
}

int rc_dist_init(void) {
    if (rc_dist_env(&g_info)) return -1;
    if (g_info.size == 1) return 0;
    share_cores();
    if (!strcmp(g_info.launcher, "env"))
        return rc_fail("RANK/WORLD_SIZE say rank %d of %d, but recontrol's ranks talk over MPI: start "
                       "them with mpirun or srun (which set their own variables)",
                       g_info.rank, g_info.size);
#ifndef RC_HAVE_MPI
    return rc_fail("the launcher (%s) started a world of %d processes, but this recontrol was built "
                   "without MPI: install Open MPI (libopenmpi-dev) and rebuild, or run one process",
                   g_info.launcher, g_info.size);
#else
    int provided = 0;
    if (mpi_check(MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided), "init")) return -1;
    g_mpi_on = 1;
    // Errors come back as codes (a clear message, then the abort of rc_dist_end), not a crash.
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    int r, s;
    MPI_Comm_rank(MPI_COMM_WORLD, &r);
    MPI_Comm_size(MPI_COMM_WORLD, &s);
    if (r != g_info.rank || s != g_info.size)
        return rc_fail("the environment (%s) says rank %d of %d but MPI started rank %d of %d: start the "
                       "ranks with mpirun or srun (plain RANK/WORLD_SIZE cannot start MPI)",
                       g_info.launcher, g_info.rank, g_info.size, r, s);
    if (mpi_check(MPI_Comm_dup(MPI_COMM_WORLD, &g_comm), "comm dup") ||
        mpi_check(MPI_Comm_dup(MPI_COMM_WORLD, &g_pcomm), "comm dup"))
        return -1;
    MPI_Comm_set_errhandler(g_comm, MPI_ERRORS_RETURN);
    MPI_Comm_set_errhandler(g_pcomm, MPI_ERRORS_RETURN);
    return 0;
#endif
}

int rc_dist_end(int exit_code) {
#ifdef RC_HAVE_MPI
    if (g_mpi_on) {
        if (exit_code != 0 && !g_joint_fail && g_info.size > 1) {
            fprintf(stderr, "recontrol: rank %d of %d failed (exit code %d): stopping the other ranks\n",
                    g_info.rank, g_info.size, exit_code);
            fflush(stderr);
            MPI_Abort(MPI_COMM_WORLD, exit_code);
        }
        MPI_Finalize();
        g_mpi_on = 0;
    }
#endif
    return exit_code;
}

#ifdef RC_HAVE_MPI
// Marks a failure that every rank found at once; other ranks than 0 go quiet so that the job
// prints one message (rank 0's), not one per rank.
static void joint_fail(void) {
    g_joint_fail = 1;
    if (g_info.rank != 0) {
        fflush(stderr);
        int fd = open("/dev/null", O_WRONLY);
        if (fd >= 0) {
            dup2(fd, 2);
            close(fd);
        }
    }
}
#endif

// ---- collectives ------------------------------------------------------------------------------

int rc_dist_barrier(void) {
#ifdef RC_HAVE_MPI
    if (g_mpi_on) return mpi_check(MPI_Barrier(g_comm), "barrier");
#endif
    return 0;
}

#ifdef RC_HAVE_MPI
// Sum over ranks in rank order: each rank owns a slice; every rank sends slice r to rank r
// (all-to-all), rank r adds the W copies in rank order, then the slices are gathered back.
static int sum_fixed(void *x, size_t n, size_t esz, MPI_Datatype t,
                     void (*add)(void *acc, const void *v, size_t n)) {
    const int W = g_info.size;
    size_t per = (n + (size_t)W - 1) / (size_t)W;
    if (per == 0) return 0;
    if (per * esz > (size_t)INT_MAX) return rc_fail("all-reduce of %zu values is too large", n);
    char *pad = rc_malloc(per * (size_t)W * 2 * esz, "all-reduce buffers");
    if (!pad) return -1;
    char *in = pad, *recv = pad + per * (size_t)W * esz;
    memcpy(in, x, n * esz);
    memset(in + n * esz, 0, (per * (size_t)W - n) * esz); // the last slice's padding
    int rc = mpi_check(MPI_Alltoall(in, (int)per, t, recv, (int)per, t, g_comm), "all-to-all (sum)");
    if (!rc) {
        // recv holds rank 0's slice, rank 1's slice, ...: add them in that order
        for (int r = 1; r < W; r++) add(recv, recv + (size_t)r * per * esz, per);
        rc = mpi_check(MPI_Allgather(recv, (int)per, t, in, (int)per, t, g_comm), "all-gather (sum)");
    }
    if (!rc) memcpy(x, in, n * esz);
    free(pad);
    return rc;
}
static void add_f32(void *a, const void *v, size_t n) {
    for (size_t i = 0; i < n; i++) ((float *)a)[i] += ((const float *)v)[i];
}
static void add_f64(void *a, const void *v, size_t n) {
    for (size_t i = 0; i < n; i++) ((double *)a)[i] += ((const double *)v)[i];
}
static void add_i64(void *a, const void *v, size_t n) {
    for (size_t i = 0; i < n; i++) ((int64_t *)a)[i] += ((const int64_t *)v)[i];
}
#endif

int rc_dist_sum_f32(float *x, size_t n) {
#ifdef RC_HAVE_MPI
    if (g_mpi_on) return sum_fixed(x, n, sizeof *x, MPI_FLOAT, add_f32);
#endif
    (void)x, (void)n;
    return 0;
}

int rc_dist_sum_f64(double *x, size_t n) {
#ifdef RC_HAVE_MPI
    if (g_mpi_on) return sum_fixed(x, n, sizeof *x, MPI_DOUBLE, add_f64);
#endif
    (void)x, (void)n;
    return 0;
}

int rc_dist_sum_i64(int64_t *x, size_t n) {
#ifdef RC_HAVE_MPI
    if (g_mpi_on) return sum_fixed(x, n, sizeof *x, MPI_INT64_T, add_i64);
#endif
    (void)x, (void)n;
    return 0;
}

int rc_dist_bcast(void *buf, size_t n, int root) {
#ifdef RC_HAVE_MPI
    if (g_mpi_on) {
        if (n > (size_t)INT_MAX) return rc_fail("broadcast of %zu bytes is too large", n);
        return mpi_check(MPI_Bcast(buf, (int)n, MPI_BYTE, root, g_comm), "broadcast");
    }
#endif
    (void)buf, (void)n, (void)root;
    return 0;
}

int rc_dist_gather(const void *mine, size_t n, int root, char **all, size_t *n_all) {
    *all = NULL;
    *n_all = 0;
    const int W = g_info.size;
    if (W == 1 || !g_mpi_on) {
        char *b = rc_malloc(n + 1, "gathered data");
        if (!b) return -1;
        if (n) memcpy(b, mine, n);
        b[n] = 0;
        *all = b;
        *n_all = n;
        return 0;
    }
#ifdef RC_HAVE_MPI
    const int me = g_info.rank;
    if (n > (size_t)INT_MAX) return rc_fail("gather of %zu bytes from rank %d is too large", n, me);
    int len = (int)n;
    int *lens = me == root ? rc_calloc((size_t)W * 2, sizeof(int), "gather sizes") : NULL;
    if (me == root && !lens) return -1;
    int rc = mpi_check(MPI_Gather(&len, 1, MPI_INT, lens, 1, MPI_INT, root, g_comm), "gather (sizes)");
    char *buf = NULL;
    int *displ = lens ? lens + W : NULL;
    if (!rc && me == root) {
        size_t tot = 0;
        for (int r = 0; r < W; r++) {
            displ[r] = (int)tot;
            tot += (size_t)lens[r];
        }
        if (tot > (size_t)INT_MAX) rc = rc_fail("gather of %zu bytes is too large", tot);
        else if (!(buf = rc_malloc(tot + 1, "gathered data"))) rc = -1;
        else {
            buf[tot] = 0;
            *n_all = tot;
        }
    }
    // a failed root still joins the gather (with room for nothing) so that no rank waits
    if (rc_dist_all_ok(rc == 0, "gather") == 0)
        rc = mpi_check(MPI_Gatherv(mine, len, MPI_BYTE, buf, lens, displ, MPI_BYTE, root, g_comm), "gather");
    else
        rc = -1;
    free(lens);
    if (rc) {
        free(buf);
        *n_all = 0;
        return -1;
    }
    *all = buf;
    return 0;
#else
    return 0;
#endif
}

#ifdef RC_HAVE_MPI
static uint64_t fnv1a(const char *s) {
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}
#endif

int rc_dist_agree(const char *what, const char *text) {
    if (g_info.size == 1 || !g_mpi_on) return 0;
#ifdef RC_HAVE_MPI
    const int W = g_info.size;
    uint64_t mine = fnv1a(text), *all = rc_malloc(sizeof(uint64_t) * (size_t)W, "hashes");
    if (!all) return -1;
    if (mpi_check(MPI_Allgather(&mine, 1, MPI_UINT64_T, all, 1, MPI_UINT64_T, g_comm), "all-gather")) {
        free(all);
        return -1;
    }
    int bad = -1;
    for (int r = 1; r < W && bad < 0; r++)
        if (all[r] != all[0]) bad = r;
    free(all);
    if (bad < 0) return 0;
    // the first differing rank shows rank 0 its text
    char theirs[600] = "";
    if (g_info.rank == bad) {
        snprintf(theirs, sizeof theirs, "%s", text);
        MPI_Send(theirs, (int)sizeof theirs, MPI_CHAR, 0, 7, g_comm);
    } else if (g_info.rank == 0) {
        MPI_Recv(theirs, (int)sizeof theirs, MPI_CHAR, bad, 7, g_comm, MPI_STATUS_IGNORE);
        theirs[sizeof theirs - 1] = 0;
    }
    joint_fail();
    if (g_info.rank != 0) return rc_fail("ranks disagree about the %s (see rank 0)", what);
    return rc_fail("ranks disagree about the %s: rank %d has\n  %.500s\nwhere rank 0 has\n  %.500s\n"
                   "(every rank must be started with the same command, files and environment)",
                   what, bad, theirs, text);
#else
    (void)what;
    return 0;
#endif
}

int rc_dist_all_ok(int ok, const char *what) {
    if (g_info.size == 1 || !g_mpi_on) return ok ? 0 : -1;
#ifdef RC_HAVE_MPI
    const int W = g_info.size;
    int *all = calloc((size_t)W, sizeof(int));
    int mine = ok ? 1 : 0;
    if (!all) return rc_fail("out of memory");
    if (mpi_check(MPI_Allgather(&mine, 1, MPI_INT, all, 1, MPI_INT, g_comm), "all-gather")) {
        free(all);
        return -1;
    }
    char list[256] = "";
    size_t off = 0;
    int n_bad = 0;
    for (int r = 0; r < W; r++)
        if (!all[r]) {
            n_bad++;
            if (off < sizeof list - 16) off += (size_t)snprintf(list + off, sizeof list - off, "%s%d", off ? ", " : "", r);
        }
    free(all);
    if (!n_bad) return 0;
    joint_fail();
    if (!ok) return -1; // keeps its own message
    return rc_fail("%s failed on rank%s %s", what, n_bad > 1 ? "s" : "", list);
#else
    (void)what;
    return ok ? 0 : -1;
#endif
}

// ---- progress messages ---------------------------------------------------------------------------

#ifdef RC_HAVE_MPI
enum { TAG_POST = 11, TAG_FINAL = 12, MAX_POST = 8 };
static int64_t g_post_buf[MAX_POST];
static MPI_Request g_post_req = MPI_REQUEST_NULL;
#endif

void rc_dist_post(const int64_t *v, int n) {
#ifdef RC_HAVE_MPI
    if (!g_mpi_on || g_info.rank == 0 || n > MAX_POST) return;
    int done = 1;
    if (g_post_req != MPI_REQUEST_NULL) MPI_Test(&g_post_req, &done, MPI_STATUS_IGNORE);
    if (!done) return; // the last one is still on its way: skip this one
    memcpy(g_post_buf, v, sizeof(int64_t) * (size_t)n);
    MPI_Isend(g_post_buf, n, MPI_INT64_T, 0, TAG_POST, g_pcomm, &g_post_req);
#else
    (void)v, (void)n;
#endif
}

void rc_dist_collect(int64_t *table, int n) {
#ifdef RC_HAVE_MPI
    if (!g_mpi_on || g_info.rank != 0 || n > MAX_POST) return;
    for (;;) {
        int flag = 0;
        MPI_Status st;
        MPI_Iprobe(MPI_ANY_SOURCE, TAG_POST, g_pcomm, &flag, &st);
        if (!flag) break;
        int64_t v[MAX_POST];
        MPI_Recv(v, n, MPI_INT64_T, st.MPI_SOURCE, TAG_POST, g_pcomm, MPI_STATUS_IGNORE);
        memcpy(table + (size_t)st.MPI_SOURCE * (size_t)n, v, sizeof(int64_t) * (size_t)n);
    }
#else
    (void)table, (void)n;
#endif
}

int rc_dist_post_final(const int64_t *v, int n) {
#ifdef RC_HAVE_MPI
    if (!g_mpi_on || g_info.rank == 0) return 0;
    if (n > MAX_POST) return rc_fail("progress message too long");
    if (g_post_req != MPI_REQUEST_NULL && mpi_check(MPI_Wait(&g_post_req, MPI_STATUS_IGNORE), "progress"))
        return -1;
    int64_t buf[MAX_POST];
    memcpy(buf, v, sizeof(int64_t) * (size_t)n);
    return mpi_check(MPI_Send(buf, n, MPI_INT64_T, 0, TAG_FINAL, g_pcomm), "progress (final)");
#else
    (void)v, (void)n;
    return 0;
#endif
}

int rc_dist_collect_final(int64_t *table, int n) {
#ifdef RC_HAVE_MPI
    if (!g_mpi_on || g_info.rank != 0) return 0;
    if (n > MAX_POST) return rc_fail("progress message too long");
    // messages from one rank arrive in the order sent: read each rank's until its final one
    for (int r = 1; r < g_info.size; r++) {
        for (;;) {
            int64_t v[MAX_POST];
            MPI_Status st;
            if (mpi_check(MPI_Recv(v, n, MPI_INT64_T, r, MPI_ANY_TAG, g_pcomm, &st), "progress (final)"))
                return -1;
            memcpy(table + (size_t)r * (size_t)n, v, sizeof(int64_t) * (size_t)n);
            if (st.MPI_TAG == TAG_FINAL) break;
        }
    }
    return 0;
#else
    (void)table, (void)n;
    return 0;
#endif
}
