// Ranks from the launcher's environment (base/dist.h): Open MPI's variables win over Slurm's,
// Slurm's count only inside an srun step (SLURM_STEP_ID), the step's task count over the
// allocation's, plain RANK/WORLD_SIZE last; malformed or inconsistent values are refused naming
// the variable; no launcher is rank 0 of 1. The collectives of a world of 1 leave data as is.
#include "base/common.h"
#include "base/dist.h"

#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

static const char *k_vars[] = {"OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK",
                               "OMPI_COMM_WORLD_LOCAL_SIZE", "SLURM_PROCID", "SLURM_NTASKS",
                               "SLURM_STEP_NUM_TASKS", "SLURM_LOCALID", "SLURM_STEP_ID", "SLURM_STEPID",
                               "RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE"};

static void clear_env(void) {
    for (size_t i = 0; i < sizeof k_vars / sizeof k_vars[0]; i++) unsetenv(k_vars[i]);
}

TestSuite(dist, .init = clear_env);

Test(dist, no_launcher_is_one_process) {
    rc_dist_info d;
    cr_assert_eq(rc_dist_env(&d), 0);
    cr_assert_eq(d.rank, 0);
    cr_assert_eq(d.size, 1);
    cr_assert_eq(d.local_rank, 0);
    cr_assert_str_eq(d.launcher, "none");
}

Test(dist, open_mpi) {
    setenv("OMPI_COMM_WORLD_RANK", "5", 1);
    setenv("OMPI_COMM_WORLD_SIZE", "16", 1);
    setenv("OMPI_COMM_WORLD_LOCAL_RANK", "5", 1);
    setenv("OMPI_COMM_WORLD_LOCAL_SIZE", "8", 1);
    setenv("RANK", "1", 1); // a stale torchrun variable does not win over the launcher's
    setenv("WORLD_SIZE", "2", 1);
    rc_dist_info d;
    cr_assert_eq(rc_dist_env(&d), 0);
    cr_assert_eq(d.rank, 5);
    cr_assert_eq(d.size, 16);
    cr_assert_eq(d.local_rank, 5);
    cr_assert_eq(d.local_size, 8);
    cr_assert_str_eq(d.launcher, "openmpi");
}

Test(dist, slurm_step_only) {
    setenv("SLURM_PROCID", "0", 1);
    setenv("SLURM_NTASKS", "16", 1);
    setenv("SLURM_LOCALID", "0", 1);
    rc_dist_info d;
    cr_assert_eq(rc_dist_env(&d), 0);
    cr_assert_eq(d.size, 1, "a batch script (no srun step) is one process");
    setenv("SLURM_STEP_ID", "0", 1);
    setenv("SLURM_PROCID", "9", 1);
    setenv("SLURM_LOCALID", "1", 1);
    setenv("SLURM_STEP_NUM_TASKS", "12", 1); // srun -n 12 inside an allocation of 16
    cr_assert_eq(rc_dist_env(&d), 0);
    cr_assert_eq(d.rank, 9);
    cr_assert_eq(d.size, 12);
    cr_assert_eq(d.local_rank, 1);
    cr_assert_str_eq(d.launcher, "slurm");
}

Test(dist, plain_variables) {
    setenv("RANK", "3", 1);
    setenv("WORLD_SIZE", "4", 1);
    setenv("LOCAL_RANK", "1", 1);
    rc_dist_info d;
    cr_assert_eq(rc_dist_env(&d), 0);
    cr_assert_eq(d.rank, 3);
    cr_assert_eq(d.size, 4);
    cr_assert_eq(d.local_rank, 1);
    cr_assert_str_eq(d.launcher, "env");
}

Test(dist, bad_values_named) {
    rc_dist_info d;
    setenv("RANK", "two", 1);
    setenv("WORLD_SIZE", "4", 1);
    cr_assert_eq(rc_dist_env(&d), -1);
    cr_assert(strstr(rc_last_error(), "RANK=\"two\""), "%s", rc_last_error());
    setenv("RANK", "4", 1);
    cr_assert_eq(rc_dist_env(&d), -1);
    cr_assert(strstr(rc_last_error(), "rank must be below size"), "%s", rc_last_error());
    unsetenv("WORLD_SIZE");
    setenv("RANK", "1", 1);
    cr_assert_eq(rc_dist_env(&d), -1);
    cr_assert(strstr(rc_last_error(), "not WORLD_SIZE"), "%s", rc_last_error());
    clear_env();
    setenv("OMPI_COMM_WORLD_RANK", "0", 1);
    setenv("OMPI_COMM_WORLD_SIZE", "-3", 1);
    cr_assert_eq(rc_dist_env(&d), -1);
    cr_assert(strstr(rc_last_error(), "OMPI_COMM_WORLD_SIZE"), "%s", rc_last_error());
}

Test(dist, world_of_one_collectives) {
    cr_assert_eq(rc_dist_init(), 0);
    cr_assert_eq(rc_dist_size(), 1);
    float f[3] = {1.5f, -2, 3};
    double g[2] = {0.25, 7};
    int64_t k[2] = {4, -9};
    cr_assert_eq(rc_dist_sum_f32(f, 3), 0);
    cr_assert_eq(rc_dist_sum_f64(g, 2), 0);
    cr_assert_eq(rc_dist_sum_i64(k, 2), 0);
    cr_assert(f[0] == 1.5f && f[1] == -2 && f[2] == 3 && g[0] == 0.25 && g[1] == 7 && k[0] == 4 && k[1] == -9);
    char *all = NULL;
    size_t n = 0;
    cr_assert_eq(rc_dist_gather("abc", 3, 0, &all, &n), 0);
    cr_assert_eq(n, 3);
    cr_assert_str_eq(all, "abc");
    free(all);
    cr_assert_eq(rc_dist_agree("settings", "x"), 0);
    cr_assert_eq(rc_dist_all_ok(1, "step"), 0);
    cr_assert_eq(rc_dist_all_ok(0, "step"), -1);
    cr_assert_eq(rc_dist_end(0), 0);
}
