// The part of cooperative_groups the emulation supports: this_grid() (sync() only in a
// cudaLaunchCooperativeKernel launch, as on the device) and this_thread_block().
#pragma once
#include "../emu.h"

namespace cooperative_groups {
struct grid_group {
    RC_EMU_INLINE void sync() const { rc_emu::grid_sync(); }
    bool is_valid() const { return rc_emu::grid_is_cooperative(); }
    unsigned long long size() const { return num_threads(); }
    unsigned long long num_threads() const {
        return (unsigned long long)gridDim.x * gridDim.y * gridDim.z * blockDim.x * blockDim.y * blockDim.z;
    }
    unsigned long long thread_rank() const {
        unsigned long long b = blockIdx.x + (unsigned long long)gridDim.x * (blockIdx.y + (unsigned long long)gridDim.y * blockIdx.z);
        unsigned long long t = threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
        return b * blockDim.x * blockDim.y * blockDim.z + t;
    }
    unsigned long long block_rank() const {
        return blockIdx.x + (unsigned long long)gridDim.x * (blockIdx.y + (unsigned long long)gridDim.y * blockIdx.z);
    }
    unsigned long long num_blocks() const { return (unsigned long long)gridDim.x * gridDim.y * gridDim.z; }
    dim3 group_dim() const { return dim3(gridDim); }
};
struct thread_block {
    RC_EMU_INLINE void sync() const { __syncthreads(); }
    unsigned size() const { return blockDim.x * blockDim.y * blockDim.z; }
    unsigned num_threads() const { return size(); }
    unsigned thread_rank() const { return threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z); }
    dim3 group_index() const { return dim3(blockIdx); }
    dim3 thread_index() const { return dim3(threadIdx); }
    dim3 group_dim() const { return dim3(blockDim); }
};
static inline grid_group this_grid() { return grid_group(); }
static inline thread_block this_thread_block() { return thread_block(); }
static inline void sync(const grid_group &g) { g.sync(); }
static inline void sync(const thread_block &b) { b.sync(); }
} // namespace cooperative_groups
