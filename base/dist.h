// Ranks of a data-parallel job: rank, world size and local rank read from the launcher's
// environment (Open MPI's mpirun, Slurm's srun, or plain RANK / WORLD_SIZE / LOCAL_RANK), and
// the few collectives the stages need, over MPI (built in when libmpi is found). A process
// started without a launcher is rank 0 of a world of 1 and never touches MPI.
#pragma once
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    int rank, size;             // this process and the job's number of processes
    int local_rank, local_size; // the same on this node (local_rank picks the GPU)
    const char *launcher;       // "none", "openmpi", "slurm" or "env"
} rc_dist_info;

// Reads the launcher's variables into d (no MPI call): OMPI_COMM_WORLD_{RANK,SIZE,LOCAL_RANK,
// LOCAL_SIZE} first, then SLURM_{PROCID,NTASKS,LOCALID}, then RANK / WORLD_SIZE / LOCAL_RANK.
// Without any: rank 0 of 1. 0, or -1 naming the variable when values are malformed or
// inconsistent (rank outside [0, size)).
int rc_dist_env(rc_dist_info *d);

// Starts the job's collectives: reads the environment and, when the world has more than one
// process, initialises MPI (a clear error when this binary was built without it) and, unless
// OMP_NUM_THREADS is set, gives each rank its share of an unbound node's cores (the cores it is
// bound to otherwise). Call once, first thing in main. 0 / -1.
int rc_dist_init(void);
// Ends the job: exit_code 0 (or a failure every rank detected together): MPI_Finalize; any
// other failure on a rank of a world > 1: prints which rank failed and aborts the job, so that
// no other rank waits for it. Returns exit_code.
int rc_dist_end(int exit_code);
// 1 when this binary can run multi-process jobs (built with MPI).
int rc_dist_have_mpi(void);

const rc_dist_info *rc_dist(void); // after rc_dist_init (a world of 1 before)
int rc_dist_rank(void);
int rc_dist_size(void);

// Collectives, called by every rank at the same point (no-ops in a world of 1). 0 / -1.
int rc_dist_barrier(void);
// Element-wise sum over ranks, in place, in a fixed order (rank 0 + rank 1 + ... for every
// element, whatever the transport's own algorithm): the same inputs give the same bits.
int rc_dist_sum_f32(float *x, size_t n);
int rc_dist_sum_f64(double *x, size_t n);
int rc_dist_sum_i64(int64_t *x, size_t n);
int rc_dist_bcast(void *buf, size_t n, int root);
// Concatenation of every rank's bytes in rank order on root (*all malloc'd there, NULL on the
// others; NUL-terminated for convenience, *n_all excludes it).
int rc_dist_gather(const void *mine, size_t n, int root, char **all, size_t *n_all);
// Every rank must hold the same text (settings, a recipe): when one differs, every rank returns
// -1 and rank 0's error names the first differing rank and shows both texts; the failure is
// marked as detected by all, so rc_dist_end exits without aborting. what: "extract settings".
int rc_dist_agree(const char *what, const char *text);
// Every rank reports ok (1) or not (0); returns 0 when all are ok, else -1 naming the failed
// ranks (also marked as detected by all). The message of a failed rank stays its own.
int rc_dist_all_ok(int ok, const char *what);

// Progress of a job: every rank posts its counters (n values) now and then without waiting;
// rank 0 reads what has arrived into table[rank * n + i] (its own row is left alone).
// rc_dist_post_final / rc_dist_collect_final close a stage: every rank calls them once, after
// which no posted message is left in flight.
void rc_dist_post(const int64_t *v, int n);
void rc_dist_collect(int64_t *table, int n);
int rc_dist_post_final(const int64_t *v, int n);
int rc_dist_collect_final(int64_t *table, int n);

#ifdef __cplusplus
}
#endif
