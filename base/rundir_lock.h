// Run directories: one writer at a time (flock on DIR/.lock; a second process on the directory is
// refused with a clear message), stale temporary files of dead writers removed on resume, and the
// checks on output paths made before any work starts.
#pragma once
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

// Creates dir (and missing parents) when absent and takes an exclusive, non-blocking flock on
// dir/.lock, held until rc_dir_unlock or the process ends (kill -9 included: the kernel drops it).
// Re-entrant within a process (the pipeline runs several stages on one directory): nested calls
// count. A directory locked by another process fails: "<dir> is in use by another recontrol
// process (pid N, `cmd`)". `who` names this command in the lock file. 0 / -1.
int rc_dir_lock(const char *dir, const char *who);
void rc_dir_unlock(const char *dir);
// Under the lock: removes dir's "*.tmp.PID" files left by other (killed) writers, reporting each
// to report (may be NULL). Returns how many were removed, -1 when dir cannot be read.
int rc_clean_stale_tmp(const char *dir, FILE *report);

// An output file that can be created before work starts: its directory exists and is writable,
// and path itself is not a directory. "cannot write <what> <path>: ..." with the real reason
// (missing directory, read-only file system, permission). 0 / -1.
int rc_check_output_file(const char *what, const char *path);
// An output directory: an existing writable directory, or a missing one whose nearest existing
// ancestor is a writable directory.
int rc_check_output_dir(const char *what, const char *path);

#ifdef __cplusplus
}
#endif
