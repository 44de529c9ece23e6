// The CPU emulation behind emu.h: fibers (ucontext) for CUDA threads, a scheduler that releases
// __syncthreads, warp collectives (checked against their participation masks) and grid barriers,
// per-block shared memory, launch checks (block size, grid limits, dynamic shared memory above
// 48 KiB only after cudaFuncSetAttribute, cooperative grids within the occupancy limit), stream
// capture into replayable graphs, host-memory "device" allocations and a column-major cublasGemmEx.
#include <dlfcn.h>
#include <stdarg.h>
#include <unistd.h>
#include <sys/mman.h>
#include <time.h>
#include <ucontext.h>

#include <algorithm>
#include <map>
#include <memory>
#include <random>
#include <stdio.h>
#include <stdlib.h>
#include <string>
#include <vector>

#include "emu.h"

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#define EMU_ASAN 1
#endif

namespace rc_emu {

enum { READY, WAIT_BLOCK, WAIT_WARP, WAIT_GRID, DONE };
static const char *state_name[] = {"running", "__syncthreads", "a warp collective", "grid.sync()", "exited"};

// Race detection state of one byte of shared memory: the last write and the last read(s) in the
// current barrier interval (epochs are global, so a stale record never matches a new interval).
struct shadow_cell {
    uint32_t w_ep, r_ep;   // block epoch of the access
    uint32_t w_wep, r_wep; // epoch of the accessing thread's warp
    uint32_t w_pc, r_pc;   // code addresses (index into g_pcs)
    uint16_t w_tid, r_tid; // linear thread index; r_tid MANY_READERS when several
};
static const uint16_t MANY_READERS = 0xffff;

// Shared memory of one block: one arena, dynamic shared memory first, then the static __shared__
// variables at the offsets of the launch's layout, unused bytes poisoned for AddressSanitizer.
struct block_ctx {
    uint3_ idx;
    char *arena;
    uint32_t epoch;               // advances at every __syncthreads
    std::vector<uint32_t> warp_ep; // advances at every full-warp collective
    std::vector<shadow_cell> shadow;
    int first, nt; // its fibers
};

struct fiber {
    ucontext_t ctx;
    char *stack;
    int state, lane, warp; // warp within the block
    uint3_ tid;
    block_ctx *blk;
    // the pending warp collective
    unsigned mask;
    int kind, arg, width;
    uint64_t val, out;
    const void *pc; // the code that called the barrier or collective it waits at
};

uint3_ g_grid_dim, g_block_dim;
static const size_t STACK = 256 << 10;
static const size_t FIBERS_PER_CHUNK = 256;
static std::vector<fiber *> g_f; // pool, grows; stacks mmapped in chunks
static fiber *g_cur;
static ucontext_t g_sched;
static std::function<void()> *g_body;
static bool g_coop;
static const void *g_kernel;
static cudaError_t g_last = cudaSuccess;
static std::map<const void *, int> g_smem_limit;
static std::vector<std::function<void()>> *g_capture;

// ---- settings ---------------------------------------------------------------------------------

static long env_long(const char *name, long def) {
    const char *s = getenv(name);
    return s && *s ? strtol(s, nullptr, 10) : def;
}
static int n_sms() {
    static int n = (int)env_long("RC_EMU_SMS", 4);
    return n > 0 ? n : 4;
}
bool fast_math() {
    static int on = (int)env_long("RC_EMU_FAST_MATH", 1);
    return on != 0;
}
static unsigned long seed() {
    static unsigned long s = (unsigned long)env_long("RC_EMU_SEED", 1);
    return s;
}

// ---- API call counters (RC_EMU_STATS=FILE: written as JSON at exit) -------------------------
// What the host does to the device, per API: launches issued (outside a capture), graph nodes
// captured and replayed, allocations, synchronous copies and waits. Always counted (an integer
// increment per call); the per-kernel table and the file only with RC_EMU_STATS set.

#define EMU_STATS(X)                                                                               \
    X(kernel_launches) X(coop_launches) X(cublas_calls) X(captured_nodes) X(graph_captures)        \
    X(graph_instantiates) X(graph_launches) X(graph_nodes_replayed) X(malloc) X(free)             \
    X(malloc_async) X(free_async) X(malloc_host) X(free_host) X(host_register)                  \
    X(memcpy_sync_h2d) X(memcpy_sync_d2h) X(memcpy_sync_d2d) X(memcpy_sync_other)              \
    X(memcpy_async_h2d) X(memcpy_async_d2h) X(memcpy_async_d2d) X(memcpy_async_other)          \
    X(memcpy_async_pageable_h2d) X(memcpy_async_pageable_d2h) X(memset_sync) X(memset_async)   \
    X(device_syncs) X(stream_syncs) X(event_syncs) X(stream_queries) X(event_queries)          \
    X(event_records) X(stream_waits) X(stream_set_attribute)
struct emu_stats {
#define EMU_FIELD(n) unsigned long long n;
    EMU_STATS(EMU_FIELD)
#undef EMU_FIELD
};
static emu_stats g_st;
static const char *stats_path() {
    static const char *p = getenv("RC_EMU_STATS");
    return p && *p ? p : nullptr;
}
// never destroyed: write_stats runs from the module's destructors, after or before the C++ ones
static std::map<const void *, unsigned long long> &g_kernel_launches = *new std::map<const void *, unsigned long long>(); // eager, per kernel
static std::map<const void *, unsigned long long> &g_kernel_captured = *new std::map<const void *, unsigned long long>(); // captured, per kernel
static std::string describe_pc(const void *pc);

// Host waits for the device: every synchronous copy or memset, stream/event/device synchronize,
// cudaFree (it synchronizes the device) and an async copy to pageable host memory (it returns
// only once the copy is done).
static unsigned long long host_waits(const emu_stats &s) {
    return s.memcpy_sync_h2d + s.memcpy_sync_d2h + s.memcpy_sync_d2d + s.memcpy_sync_other +
           s.memset_sync + s.device_syncs + s.stream_syncs + s.event_syncs + s.free + s.free_host +
           s.memcpy_async_pageable_d2h;
}

static void write_kernel_table(FILE *f, const std::map<const void *, unsigned long long> &m) {
    std::map<std::string, unsigned long long> by_name; // several instantiations may share a name
    for (auto &kv : m) {
        std::string s = describe_pc((const char *)kv.first + 1);
        size_t cut = s.find(" (");
        std::string name = cut == std::string::npos ? s : s.substr(cut + 2, s.size() - cut - 3);
        std::string clean;
        for (char c : name) clean += c == '"' || c == '\\' || (unsigned char)c < 0x20 ? '_' : c;
        by_name[clean] += kv.second;
    }
    fprintf(f, "{");
    const char *sep = "";
    for (auto &kv : by_name) {
        fprintf(f, "%s\n    \"%s\": %llu", sep, kv.first.c_str(), kv.second);
        sep = ",";
    }
    fprintf(f, "%s}", by_name.empty() ? "" : "\n  ");
}

__attribute__((destructor)) static void write_stats() {
    const char *p = stats_path();
    if (!p) return;
    std::string path(p);
    size_t at = path.find("%p");
    if (at != std::string::npos) path.replace(at, 2, std::to_string((long)getpid()));
    FILE *f = fopen(path.c_str(), "w");
    if (!f) {
        fprintf(stderr, "CUDA emulator: RC_EMU_STATS: cannot write %s\n", path.c_str());
        return;
    }
    fprintf(f, "{\n");
#define EMU_PRINT(n) fprintf(f, "  \"%s\": %llu,\n", #n, g_st.n);
    EMU_STATS(EMU_PRINT)
#undef EMU_PRINT
    fprintf(f, "  \"host_waits\": %llu,\n  \"kernels\": ", host_waits(g_st));
    write_kernel_table(f, g_kernel_launches);
    fprintf(f, ",\n  \"kernels_captured\": ");
    write_kernel_table(f, g_kernel_captured);
    fprintf(f, "\n}\n");
    fclose(f);
}

// ---- symbols for messages ---------------------------------------------------------------------

// "file:line (function)" of a code address, through addr2line on our own executable: the first
// frame of the inline chain outside the emulator's headers, so the kernel's own line
static std::string describe_pc(const void *pc) {
    char buf[512];
    Dl_info di;
    uintptr_t a = (uintptr_t)pc;
    char exe[64];
    snprintf(exe, sizeof exe, "/proc/%d/exe", (int)getpid());
    const char *file = exe; // or the shared object holding the code (the emulated CUDA module)
    if (dladdr(pc, &di) && di.dli_fbase) {
        a -= (uintptr_t)di.dli_fbase;
        if (di.dli_fname && strstr(di.dli_fname, ".so")) file = di.dli_fname;
    }
    snprintf(buf, sizeof buf, "addr2line -i -f -C -e '%s' 0x%lx 2>/dev/null", file,
             (unsigned long)(a ? a - 1 : a)); // a return address: the call is just before it
    std::string out, first;
    FILE *p = popen(buf, "r");
    if (p) {
        char fn[4096], loc[4096];
        while (fgets(fn, sizeof fn, p) && fgets(loc, sizeof loc, p)) {
            fn[strcspn(fn, "\n")] = 0;
            loc[strcspn(loc, "\n")] = 0;
            std::string s = std::string(loc) + " (" + fn + ")";
            if (first.empty()) first = s;
            if (out.empty() && !strstr(loc, "/emu/emu.h") && !strstr(loc, "/emu/include/") && loc[0] != '?')
                out = s;
        }
        pclose(p);
    }
    if (out.empty()) out = first;
    if (out.empty() || out[0] == '?') {
        snprintf(buf, sizeof buf, "code at %p", pc);
        out = buf;
    }
    return out;
}
static std::string kernel_name() {
    std::string s = describe_pc((const char *)g_kernel + 1);
    size_t cut = s.find(" (");
    return cut == std::string::npos ? s : s.substr(cut + 2, s.size() - cut - 3);
}

[[noreturn]] static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void fail(const char *fmt, ...) {
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "CUDA emulator: %s\n  in kernel %s, grid (%u,%u,%u), block (%u,%u,%u), seed %lu, %d SMs\n",
            msg, kernel_name().c_str(), g_grid_dim.x, g_grid_dim.y, g_grid_dim.z, g_block_dim.x,
            g_block_dim.y, g_block_dim.z, seed(), n_sms());
    if (g_cur) {
        fprintf(stderr, "  at block (%u,%u,%u) thread (%u,%u,%u)", g_cur->blk->idx.x,
                g_cur->blk->idx.y, g_cur->blk->idx.z, g_cur->tid.x, g_cur->tid.y, g_cur->tid.z);
        if (g_cur->state != DONE && g_cur->state != READY && g_cur->pc)
            fprintf(stderr, ", waiting in %s", describe_pc(g_cur->pc).c_str());
        fprintf(stderr, "\n");
    }
    fflush(stderr);
    abort();
}

// ---- device-side entry points -----------------------------------------------------------------

uint3_ &thread_idx() { return g_cur->tid; }
const uint3_ &block_idx() { return g_cur->blk->idx; }
// ---- shared memory ----------------------------------------------------------------------------

struct shared_var_info { const void *tag; const char *name; size_t off, bytes; };
static std::vector<shared_var_info> g_layout; // static __shared__ variables of the current launch
static size_t g_dyn_bytes, g_arena_used, g_arena_cap;
static const size_t STATIC_SMEM_LIMIT = 48 << 10, REDZONE = 32;
static std::vector<block_ctx> *g_blocks;
static uint32_t g_epoch_clock = 1;

static void arena_prepare(block_ctx &b) {
#ifdef EMU_ASAN
    ASAN_UNPOISON_MEMORY_REGION(b.arena, g_arena_cap);
#endif
    memset(b.arena, 0xff, g_arena_used); // uninitialised shared memory reads as NaN
#ifdef EMU_ASAN
    ASAN_POISON_MEMORY_REGION(b.arena, g_arena_cap);
    ASAN_UNPOISON_MEMORY_REGION(b.arena, g_dyn_bytes);
    for (auto &v : g_layout) ASAN_UNPOISON_MEMORY_REGION(b.arena + v.off, v.bytes);
#endif
}

void *dyn_smem() { return g_cur->blk->arena; }

void *shared_alloc(const void *tag, size_t bytes, const char *name) {
    for (auto &v : g_layout)
        if (v.tag == tag) return g_cur->blk->arena + v.off;
    size_t off = (g_arena_used + REDZONE + 15) & ~(size_t)15, stat = bytes;
    for (auto &v : g_layout) stat += v.bytes;
    if (stat > STATIC_SMEM_LIMIT)
        fail("static __shared__ memory above 48 KiB: \"%s\" (%zu bytes) makes %zu", name, bytes, stat);
    if (off + bytes > g_arena_cap) fail("more than 64 static __shared__ variables in one kernel");
    g_layout.push_back({tag, name, off, bytes});
    g_arena_used = off + bytes;
    for (auto &b : *g_blocks) {
#ifdef EMU_ASAN
        ASAN_UNPOISON_MEMORY_REGION(b.arena + off, bytes);
#endif
        memset(b.arena + off, 0xff, bytes);
    }
    return g_cur->blk->arena + off;
}

// ---- shared-memory race detection ---------------------------------------------------------------

static std::vector<const void *> g_pcs;
static std::map<const void *, uint32_t> g_pc_index;
static uint32_t pc_id(const void *pc) {
    auto it = g_pc_index.find(pc);
    if (it != g_pc_index.end()) return it->second;
    g_pcs.push_back(pc);
    return g_pc_index[pc] = (uint32_t)g_pcs.size() - 1;
}
struct hazard { const char *kind; int tid_a, tid_b; uint32_t pc_a, pc_b; size_t off; uint3_ block; };
static std::vector<hazard> g_hazards;
static int g_atomic_depth; // inside an emulated atomic: not a race
void atomic_enter() { g_atomic_depth++; }
void atomic_leave() { g_atomic_depth--; }
static bool racecheck_on() {
    static int on = (int)env_long("RC_EMU_RACECHECK", 1);
    return on != 0;
}

static std::string var_at(size_t off) {
    char b[160];
    if (off < g_dyn_bytes) {
        snprintf(b, sizeof b, "extern __shared__ (dynamic) + %zu", off);
        return b;
    }
    for (auto &v : g_layout)
        if (off >= v.off && off < v.off + v.bytes) {
            snprintf(b, sizeof b, "__shared__ %s + %zu", v.name, off - v.off);
            return b;
        }
    snprintf(b, sizeof b, "shared offset %zu", off);
    return b;
}

static void note_hazard(const char *kind, fiber *f, int other, uint32_t other_pc, uint32_t pc, size_t off) {
    for (auto &h : g_hazards)
        if (h.kind == kind && h.pc_a == other_pc && h.pc_b == pc) return; // one report per pair of lines
    if (g_hazards.size() >= 64) return;
    g_hazards.push_back({kind, other, f->warp * 32 + f->lane, other_pc, pc, off, f->blk->idx});
}

static void shared_access(fiber *f, size_t off, size_t n, bool write, const void *ret) {
    block_ctx &b = *f->blk;
    if (b.shadow.size() < off + n) b.shadow.resize(std::max(off + n, g_arena_used), shadow_cell{});
    uint16_t t = (uint16_t)(f->warp * 32 + f->lane);
    uint32_t ep = b.epoch, wep = b.warp_ep[f->warp], pc = 0;
    bool have_pc = false;
    for (size_t i = off; i < off + n; i++) {
        shadow_cell &c = b.shadow[i];
        // a thread of the same warp that has since passed a full-warp collective is ordered
        auto ordered = [&](uint16_t other, uint32_t other_wep) {
            return other != MANY_READERS && other / 32 == t / 32 && other_wep != wep;
        };
        if (!have_pc) pc = pc_id(ret), have_pc = true;
        if (c.w_ep == ep && c.w_tid != t && !ordered(c.w_tid, c.w_wep))
            note_hazard(write ? "write after write" : "read after write", f, c.w_tid, c.w_pc, pc, i);
        if (write) {
            if (c.r_ep == ep && c.r_tid != t && !ordered(c.r_tid, c.r_wep))
                note_hazard("write after read", f, c.r_tid == MANY_READERS ? -1 : c.r_tid, c.r_pc, pc, i);
            c.w_ep = ep, c.w_wep = wep, c.w_pc = pc, c.w_tid = t;
        } else if (c.r_ep != ep || ordered(c.r_tid, c.r_wep)) {
            c.r_ep = ep, c.r_wep = wep, c.r_pc = pc, c.r_tid = t;
        } else if (c.r_tid != t) {
            c.r_tid = MANY_READERS;
        }
    }
}

static void check_access(const void *p, size_t n, bool write, const void *ret) {
    fiber *f = g_cur;
    if (!f || g_atomic_depth) return;
    uintptr_t off = (uintptr_t)p - (uintptr_t)f->blk->arena;
    if (off < g_arena_used) shared_access(f, off, n, write, ret);
}

} // namespace rc_emu

#ifdef EMU_ASAN
// The kernels are compiled with --param asan-instrumentation-with-call-threshold=0, so every load
// and store calls AddressSanitizer's __asan_loadN/__asan_storeN: these wrappers see the shared-
// memory accesses first, then hand over to the real checks.
#define EMU_HOOK(kind, n, write)                                                                   \
    extern "C" void __asan_##kind##n(void *p) {                                                  \
        static void (*real)(void *) = (void (*)(void *))dlsym(RTLD_NEXT, "__asan_" #kind #n);     \
        real(p);                                                                                 \
        rc_emu::check_access(p, n, write, __builtin_return_address(0));                          \
    }
EMU_HOOK(load, 1, false) EMU_HOOK(load, 2, false) EMU_HOOK(load, 4, false) EMU_HOOK(load, 8, false)
EMU_HOOK(load, 16, false) EMU_HOOK(store, 1, true) EMU_HOOK(store, 2, true) EMU_HOOK(store, 4, true)
EMU_HOOK(store, 8, true) EMU_HOOK(store, 16, true)
extern "C" void __asan_loadN(void *p, size_t n) {
    static void (*real)(void *, size_t) = (void (*)(void *, size_t))dlsym(RTLD_NEXT, "__asan_loadN");
    real(p, n);
    rc_emu::check_access(p, n, false, __builtin_return_address(0));
}
extern "C" void __asan_storeN(void *p, size_t n) {
    static void (*real)(void *, size_t) = (void (*)(void *, size_t))dlsym(RTLD_NEXT, "__asan_storeN");
    real(p, n);
    rc_emu::check_access(p, n, true, __builtin_return_address(0));
}
#endif

namespace rc_emu {

// After a launch: the hazards found, as compute-sanitizer's racecheck would list them.
static void report_hazards() {
    if (g_hazards.empty()) return;
    fprintf(stderr, "CUDA emulator: %zu shared-memory race(s) (racecheck) in kernel %s:\n",
            g_hazards.size(), kernel_name().c_str());
    auto thr = [](int lin) {
        char b[64];
        if (lin < 0) return std::string("several threads");
        snprintf(b, sizeof b, "thread (%u,%u,%u)", lin % g_block_dim.x, (lin / g_block_dim.x) % g_block_dim.y,
                 lin / (g_block_dim.x * g_block_dim.y));
        return std::string(b);
    };
    for (size_t i = 0; i < g_hazards.size() && i < 10; i++) {
        hazard &h = g_hazards[i];
        const char *first = strstr(h.kind, "after write") ? "wrote" : "read";
        const char *then = h.kind[0] == 'w' ? "writes" : "reads";
        fprintf(stderr, "  %s at %s, block (%u,%u,%u): %s %s it at %s,\n    then %s %s it at %s, "
                        "with no __syncthreads between\n", h.kind, var_at(h.off).c_str(), h.block.x,
                h.block.y, h.block.z, thr(h.tid_a).c_str(), first, describe_pc(g_pcs[h.pc_a]).c_str(),
                thr(h.tid_b).c_str(), then, describe_pc(g_pcs[h.pc_b]).c_str());
    }
    fflush(stderr);
    if (racecheck_on()) {
        g_cur = nullptr;
        fail("shared-memory race (set RC_EMU_RACECHECK=0 to run on)");
    }
    g_hazards.clear();
}

bool grid_is_cooperative() { return g_coop; }


static void yield_to_sched() {
#ifdef EMU_ASAN
    void *fs = nullptr;
    __sanitizer_start_switch_fiber(&fs, nullptr, 0);
#endif
    swapcontext(&g_cur->ctx, &g_sched);
#ifdef EMU_ASAN
    __sanitizer_finish_switch_fiber(fs, nullptr, nullptr);
#endif
}

void syncthreads() {
    g_cur->pc = __builtin_return_address(0);
    g_cur->state = WAIT_BLOCK;
    yield_to_sched();
}

void grid_sync() {
    if (!g_coop)
        fail("grid.sync() in a kernel not launched with cudaLaunchCooperativeKernel (on the device: "
             "undefined behaviour, usually a hang)");
    g_cur->pc = __builtin_return_address(0);
    g_cur->state = WAIT_GRID;
    yield_to_sched();
}

uint64_t shfl_bits(unsigned mask, uint64_t v, int arg, int width, int kind) {
    fiber *f = g_cur;
    f->pc = __builtin_return_address(0);
    if (width <= 0 || width > 32 || (width & (width - 1)))
        fail("warp shuffle with width %d (must be a power of two <= 32)", width);
    if (!(mask >> f->lane & 1))
        fail("lane %d calls a warp shuffle with mask 0x%08x that excludes itself", f->lane, mask);
    f->mask = mask;
    f->val = v;
    f->arg = arg;
    f->width = width;
    f->kind = kind;
    f->state = WAIT_WARP;
    yield_to_sched();
    return f->out;
}

// ---- scheduler --------------------------------------------------------------------------------

static void entry() {
#ifdef EMU_ASAN
    __sanitizer_finish_switch_fiber(nullptr, nullptr, nullptr);
#endif
    (*g_body)();
    g_cur->state = DONE;
#ifdef EMU_ASAN
    __sanitizer_start_switch_fiber(nullptr, nullptr, 0);
#endif
    // returning resumes g_sched through uc_link
}

static void grow_pool(size_t n) {
    while (g_f.size() < n) {
        size_t bytes = STACK * FIBERS_PER_CHUNK;
        char *mem = (char *)mmap(nullptr, bytes, PROT_READ | PROT_WRITE,
                                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (mem == MAP_FAILED) {
            fprintf(stderr, "CUDA emulator: out of memory for %zu fiber stacks\n", n);
            abort();
        }
        for (size_t i = 0; i < FIBERS_PER_CHUNK; i++) {
            fiber *f = new fiber();
            f->stack = mem + i * STACK;
            g_f.push_back(f);
        }
    }
}

// The source lane of lane `l` in a shuffle, or -1 when the lane keeps its own value.
static int shfl_src(const fiber *f) {
    if (f->kind == VOTE_BALLOT || f->kind == SYNC_WARP) return -1;
    int l = f->lane, w = f->width, seg = l & ~(w - 1);
    switch (f->kind) {
    case SHFL_IDX: return seg + (f->arg & (w - 1));
    case SHFL_XOR: { int s = l ^ f->arg; return s >= seg + w ? -1 : s; }
    case SHFL_UP: { int s = l - f->arg; return s < seg ? -1 : s; }
    default: { int s = l + f->arg; return s >= seg + w ? -1 : s; }
    }
}

static const char *collective_name(int kind) {
    static const char *n[] = {"__shfl_sync", "__shfl_xor_sync", "__shfl_up_sync", "__shfl_down_sync",
                              "__ballot_sync/__all_sync/__any_sync", "__syncwarp"};
    return kind >= 0 && kind < 6 ? n[kind] : "warp collective";
}

// Releases the warp collectives of one warp whose participants have all arrived; when none can
// be released, fails on one that can never complete (a lane of its mask exited, waits at a
// barrier or in another collective, or does not exist). Returns how many lanes it woke.
static int resolve_warp(fiber **lanes, int n_lanes) {
    int woke = 0;
    fiber *blocked = nullptr;
    for (int i = 0; i < n_lanes; i++) {
        fiber *f = lanes[i];
        if (f->state != WAIT_WARP) continue;
        unsigned m = f->mask;
        bool ready = n_lanes == 32 || (m >> n_lanes) == 0;
        for (int j = 0; ready && j < n_lanes; j++)
            if (m >> j & 1) ready = lanes[j]->state == WAIT_WARP && lanes[j]->mask == m && lanes[j]->kind == f->kind;
        if (!ready) {
            blocked = f;
            continue;
        }
        for (int j = 0; j < n_lanes; j++) {
            if (!(m >> j & 1)) continue;
            fiber *o = lanes[j];
            int src = shfl_src(o);
            if (src >= 0 && !(m >> src & 1)) {
                g_cur = o;
                fail("%s reads lane %d, which is not in its mask 0x%08x (undefined on the device)",
                     collective_name(o->kind), src, m);
            }
            o->out = src >= 0 ? lanes[src]->val : o->val;
        }
        if (f->kind == VOTE_BALLOT || f->kind == SYNC_WARP) {
            uint64_t ballot = 0;
            for (int j = 0; j < n_lanes; j++)
                if ((m >> j & 1) && lanes[j]->val) ballot |= 1ull << j;
            for (int j = 0; j < n_lanes; j++)
                if (m >> j & 1) lanes[j]->out = ballot;
        }
        for (int j = 0; j < n_lanes; j++)
            if (m >> j & 1) lanes[j]->state = READY, woke++;
        if (n_lanes == 32 ? m == 0xffffffffu : m == (1u << n_lanes) - 1) // the whole warp: ordered
            f->blk->warp_ep[f->warp] = ++g_epoch_clock;
    }
    if (woke || !blocked) return woke;
    unsigned m = blocked->mask;
    std::string who;
    auto status = [&](int j) -> std::string {
        if (j >= n_lanes) return "do not exist (the warp is partial)";
        fiber *o = lanes[j];
        if (o->state == DONE) return "have exited";
        if (o->state != WAIT_WARP) return std::string("wait at ") + state_name[o->state];
        if (o->mask != m || o->kind != blocked->kind) return "are in another warp collective";
        return "";
    };
    for (int j = 0; j < 32;) {
        std::string st = (m >> j & 1) ? status(j) : "";
        int k = j + 1;
        while (k < 32 && (m >> k & 1) && !st.empty() && status(k) == st) k++;
        if (!st.empty()) {
            char b[48];
            if (k - j > 1) snprintf(b, sizeof b, "lanes %d-%d ", j, k - 1);
            else snprintf(b, sizeof b, "lane %d ", j);
            who += (who.empty() ? "" : ", ") + std::string(b) + st;
        }
        j = k;
    }
    g_cur = blocked;
    fail("%s with mask 0x%08x can never complete: %s (a partial-warp collective)",
         collective_name(blocked->kind), m, who.c_str());
}

__attribute__((noinline)) static void init_fiber(fiber &f, block_ctx *blk, int i) {
    f.state = READY;
    f.lane = i & 31;
    f.warp = i >> 5;
    f.blk = blk;
    f.tid.x = i % g_block_dim.x;
    f.tid.y = (i / g_block_dim.x) % g_block_dim.y;
    f.tid.z = i / (g_block_dim.x * g_block_dim.y);
    getcontext(&f.ctx);
    f.ctx.uc_stack.ss_sp = f.stack;
    f.ctx.uc_stack.ss_size = STACK;
    f.ctx.uc_link = &g_sched;
    makecontext(&f.ctx, entry, 0);
}

// Runs the blocks together as fibers until every thread has exited.
static void run_blocks(std::vector<block_ctx> &blocks, int nt) {
    size_t total = blocks.size() * (size_t)nt;
    grow_pool(total);
    for (size_t b = 0; b < blocks.size(); b++) {
        blocks[b].first = (int)(b * nt);
        blocks[b].nt = nt;
        for (int i = 0; i < nt; i++) {
            init_fiber(*g_f[b * nt + i], &blocks[b], i);
        }
    }
    std::vector<fiber *> lanes(32);
    for (;;) {
        for (size_t i = 0; i < total; i++) {
            if (g_f[i]->state != READY) continue;
            g_cur = g_f[i];
#ifdef EMU_ASAN
            void *fs = nullptr;
            __sanitizer_start_switch_fiber(&fs, g_cur->stack, STACK);
#endif
            swapcontext(&g_sched, &g_cur->ctx);
#ifdef EMU_ASAN
            __sanitizer_finish_switch_fiber(fs, nullptr, nullptr);
#endif
        }
        g_cur = nullptr;
        size_t done = 0, grid_wait = 0;
        for (size_t i = 0; i < total; i++) {
            done += g_f[i]->state == DONE;
            grid_wait += g_f[i]->state == WAIT_GRID;
        }
        if (done == total) return;
        int woke = 0;
        // warp collectives first: other warps may meanwhile wait at __syncthreads, as on the device
        for (auto &b : blocks)
            for (int w0 = 0; w0 < nt; w0 += 32) {
                int n = std::min(32, nt - w0);
                for (int j = 0; j < n; j++) lanes[j] = g_f[b.first + w0 + j];
                woke += resolve_warp(lanes.data(), n);
            }
        if (woke) continue;
        // __syncthreads: released when every thread of the block that has not exited is there
        for (auto &b : blocks) {
            int wb = 0, d = 0, other = 0;
            for (int i = 0; i < nt; i++) {
                int s = g_f[b.first + i]->state;
                wb += s == WAIT_BLOCK;
                d += s == DONE;
                other += s == WAIT_GRID || s == WAIT_WARP;
            }
            if (wb == 0) continue;
            if (other) {
                g_cur = g_f[b.first];
                for (int i = 0; i < nt; i++)
                    if (g_f[b.first + i]->state != WAIT_BLOCK && g_f[b.first + i]->state != DONE)
                        g_cur = g_f[b.first + i];
                fail("deadlock: some threads of a block wait at __syncthreads while this one waits "
                     "at %s", state_name[g_cur->state]);
            }
            if (wb + d == nt) {
                b.epoch = ++g_epoch_clock;
                for (int i = 0; i < nt; i++)
                    if (g_f[b.first + i]->state == WAIT_BLOCK) g_f[b.first + i]->state = READY, woke++;
            }
        }
        if (woke) continue;
        // grid barrier: every thread of the grid
        if (grid_wait) {
            if (grid_wait + done == total && done > 0) {
                for (size_t i = 0; i < total; i++)
                    if (g_f[i]->state == DONE) g_cur = g_f[i];
                fail("grid.sync() can never complete: this thread has exited while others wait "
                     "at the grid barrier");
            }
            if (grid_wait == total) {
                for (auto &b : blocks) b.epoch = ++g_epoch_clock;
                for (size_t i = 0; i < total; i++) g_f[i]->state = READY;
                continue;
            }
        }
        for (size_t i = 0; i < total; i++)
            if (g_f[i]->state != DONE) g_cur = g_f[i];
        fail("deadlock: no thread can proceed (this one waits at %s)", state_name[g_cur->state]);
    }
}

static void free_block(block_ctx &b) {
#ifdef EMU_ASAN
    ASAN_UNPOISON_MEMORY_REGION(b.arena, g_arena_cap);
#endif
    free(b.arena);
    b.arena = nullptr;
}

static void new_block(block_ctx &b, unsigned lin) {
    b.idx = uint3_{lin % g_grid_dim.x, (lin / g_grid_dim.x) % g_grid_dim.y,
                   lin / (g_grid_dim.x * g_grid_dim.y)};
    if (!b.arena) b.arena = (char *)malloc(g_arena_cap);
    arena_prepare(b);
    b.epoch = ++g_epoch_clock;
    b.warp_ep.assign((g_block_dim.x * g_block_dim.y * g_block_dim.z + 31) / 32, 0);
    for (auto &w : b.warp_ep) w = ++g_epoch_clock;
    b.first = b.nt = 0;
}

static void run_grid(const launch_cfg &c, const void *fn, bool coop, std::function<void()> &body) {
    g_grid_dim = uint3_{c.grid.x, c.grid.y, c.grid.z};
    g_block_dim = uint3_{c.block.x, c.block.y, c.block.z};
    g_kernel = fn;
    g_coop = coop;
    g_body = &body;
    g_layout.clear();
    g_dyn_bytes = g_arena_used = c.smem;
    g_arena_cap = c.smem + STATIC_SMEM_LIMIT + 64 * (REDZONE + 16);
    int nt = (int)(c.block.x * c.block.y * c.block.z);
    unsigned nb = c.grid.x * c.grid.y * c.grid.z;
    std::vector<unsigned> order(nb);
    for (unsigned i = 0; i < nb; i++) order[i] = i;
    if (seed()) {
        std::mt19937_64 rng(seed());
        std::shuffle(order.begin(), order.end(), rng);
    }
    // the device's fp32 mode under --use_fast_math: denormal inputs and results flushed to zero
    unsigned mxcsr = __builtin_ia32_stmxcsr();
    if (fast_math()) __builtin_ia32_ldmxcsr(mxcsr | 0x8040); // FTZ | DAZ
    std::vector<block_ctx> blocks(coop ? nb : 1);
    g_blocks = &blocks;
    for (auto &b : blocks) b.arena = nullptr;
    if (coop) {
        for (unsigned i = 0; i < nb; i++) new_block(blocks[i], order[i]);
        run_blocks(blocks, nt);
    } else {
        for (unsigned i = 0; i < nb; i++) {
            new_block(blocks[0], order[i]);
            run_blocks(blocks, nt);
        }
    }
    for (auto &b : blocks) free_block(b);
    g_blocks = nullptr;
    __builtin_ia32_ldmxcsr(mxcsr);
    g_coop = false;
    g_cur = nullptr;
    report_hazards();
}

cudaError_t enqueue(cudaStream_t s, std::function<void()> op);

// H200 per-SM limits; the registers a kernel uses are unknown here, 64 a thread is assumed
static int occupancy(const void *fn, int bs, size_t smem) {
    long over = env_long("RC_EMU_MAX_BLOCKS_PER_SM", 0);
    if (over > 0) return (int)over;
    int warps = (bs + 31) / 32;
    int by_threads = 2048 / (warps * 32);
    int by_regs = 65536 / (64 * warps * 32);
    int by_smem = smem ? (int)((228 << 10) / (smem + 1024)) : 32;
    int n = std::min(std::min(by_threads, by_regs), std::min(by_smem, 32));
    return std::max(n, 0);
}

cudaError_t submit(const launch_cfg &c, const void *fn, std::function<void()> body, bool coop) {
    unsigned nt = c.block.x * c.block.y * c.block.z;
    if (nt == 0 || nt > 1024 || c.block.z > 64 || c.grid.x == 0 || c.grid.y == 0 || c.grid.z == 0 ||
        c.grid.y > 65535 || c.grid.z > 65535)
        return g_last = cudaErrorInvalidConfiguration;
    int limit = 48 << 10;
    auto it = g_smem_limit.find(fn);
    if (it != g_smem_limit.end() && it->second > limit) limit = it->second;
    if (c.smem > (size_t)limit) {
        fprintf(stderr, "CUDA emulator: launch with %zu bytes of dynamic shared memory above the "
                        "limit %d\n", c.smem, limit);
        return g_last = cudaErrorInvalidValue;
    }
    if (coop) {
        size_t nb = (size_t)c.grid.x * c.grid.y * c.grid.z;
        size_t max_nb = (size_t)occupancy(fn, (int)nt, c.smem) * n_sms();
        if (nb > max_nb) {
            fprintf(stderr, "CUDA emulator: cooperative launch of %zu blocks, more than can be "
                            "resident at once (%zu = occupancy x %d SMs)\n", nb, max_nb, n_sms());
            return g_last = cudaErrorCooperativeLaunchTooLarge;
        }
    }
    launch_cfg cc = c;
    if (!g_capture) {
        g_st.kernel_launches++;
        if (coop) g_st.coop_launches++;
    }
    if (stats_path()) (g_capture ? g_kernel_captured : g_kernel_launches)[fn]++;
    return enqueue(c.stream, [cc, fn, coop, body]() mutable { run_grid(cc, fn, coop, body); });
}

} // namespace rc_emu

using namespace rc_emu;

struct rc_emu_graph {
    std::vector<std::function<void()>> ops;
};

// ---- streams and events -----------------------------------------------------------------------
// Each stream holds a queue of work. By default work runs when issued (one valid schedule). With
// RC_EMU_STREAMS=lazy it runs only when something waits for it: a stream or event synchronize, a
// synchronous copy on the legacy stream (which also runs the blocking streams' work, not the
// cudaStreamNonBlocking ones'), cudaDeviceSynchronize, cudaFree; a cudaStreamWaitEvent first runs
// the recorded stream up to the event. So a missing wait or synchronize reads stale data, as it
// may on a GPU.

static const unsigned STREAM_MAGIC = 0x57a3e4u, EVENT_MAGIC = 0xe7e47u;
struct stream_op {
    std::function<void()> fn;
    rc_emu_stream *wait_for; // a cudaStreamWaitEvent: run that stream up to wait_seq first
    uint64_t wait_seq;
};
struct rc_emu_stream {
    unsigned magic, flags;
    std::vector<stream_op> q; // pending, in order
    size_t head;
    uint64_t issued, done;    // ops issued and run so far
};
struct rc_emu_event {
    unsigned magic, flags;
    double t;
    bool recorded;
    rc_emu_stream *stream; // the last record: done when this stream has run seq ops
    uint64_t seq;
};
static rc_emu_stream g_legacy_stream = {STREAM_MAGIC, 0, {}, 0, 0, 0};
static std::vector<rc_emu_stream *> g_streams; // every stream ever created (never freed: work may refer to it)

static bool lazy_streams() {
    static int lazy = -1;
    if (lazy < 0) {
        const char *e = getenv("RC_EMU_STREAMS");
        lazy = e && !strcmp(e, "lazy");
    }
    return lazy;
}
static rc_emu_stream *S(cudaStream_t s) { return s ? s : &g_legacy_stream; }
static bool stream_ok(cudaStream_t s) { return !s || s->magic == STREAM_MAGIC; }
static bool event_ok(cudaEvent_t e) { return e && e->magic == EVENT_MAGIC; }

static void drain(rc_emu_stream *st, uint64_t upto) {
    while (st->done < upto && st->head < st->q.size()) {
        stream_op op = std::move(st->q[st->head]);
        st->head++;
        if (op.wait_for) drain(op.wait_for, op.wait_seq);
        if (op.fn) op.fn();
        st->done++;
    }
    if (st->head == st->q.size()) st->q.clear(), st->head = 0;
}
static void drain_all(bool blocking_only) {
    for (auto *st : g_streams)
        if (!blocking_only || !(st->flags & cudaStreamNonBlocking)) drain(st, st->issued);
    drain(&g_legacy_stream, g_legacy_stream.issued);
}
static void push(rc_emu_stream *st, stream_op op) {
    st->issued++;
    if (!lazy_streams() || st == &g_legacy_stream) {
        // eager: everything before it has run already; the legacy stream also waits for the
        // blocking streams (its implicit synchronization)
        if (st == &g_legacy_stream) drain_all(true);
        if (op.wait_for) drain(op.wait_for, op.wait_seq);
        if (op.fn) op.fn();
        st->done++;
        return;
    }
    st->q.push_back(std::move(op));
}

namespace rc_emu {
cudaError_t enqueue(cudaStream_t s, std::function<void()> fn) {
    if (!stream_ok(s)) return g_last = cudaErrorInvalidResourceHandle;
    if (g_capture) {
        g_st.captured_nodes++;
        g_capture->push_back(std::move(fn));
        return cudaSuccess;
    }
    push(S(s), stream_op{std::move(fn), nullptr, 0});
    return cudaSuccess;
}
} // namespace rc_emu

static cudaError_t rc_emu_set_last(cudaError_t e) { return g_last = e; }

static double now_s() {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

// ---- memory: "device" and pinned allocations are tracked, so copies can be checked ------------

static std::map<uintptr_t, size_t> g_dev, g_pinned;

static bool in_map(const std::map<uintptr_t, size_t> &m, const void *p, size_t n) {
    uintptr_t a = (uintptr_t)p;
    auto it = m.upper_bound(a);
    if (it == m.begin()) return false;
    --it;
    return a >= it->first && a + n <= it->first + std::max<size_t>(it->second, 1);
}

static cudaError_t check_copy(const char *what, void *d, const void *s, size_t n, cudaMemcpyKind k) {
    if (n == 0) return cudaSuccess;
    bool dd = k == cudaMemcpyHostToDevice || k == cudaMemcpyDeviceToDevice;
    bool sd = k == cudaMemcpyDeviceToHost || k == cudaMemcpyDeviceToDevice;
    if (k == cudaMemcpyDefault) return cudaSuccess;
    if (dd && !in_map(g_dev, d, n)) {
        fprintf(stderr, "CUDA emulator: %s: destination %p (+%zu bytes) is not inside a cudaMalloc "
                        "allocation\n", what, d, n);
        return g_last = cudaErrorInvalidValue;
    }
    if (sd && !in_map(g_dev, s, n)) {
        fprintf(stderr, "CUDA emulator: %s: source %p (+%zu bytes) is not inside a cudaMalloc "
                        "allocation\n", what, s, n);
        return g_last = cudaErrorInvalidValue;
    }
    return cudaSuccess;
}

cudaError_t cudaLaunchCooperativeKernel(const void *, dim3, dim3, void **, size_t, cudaStream_t) {
    fprintf(stderr, "CUDA emulator: cudaLaunchCooperativeKernel needs the kernel itself, not a void * "
                    "(translate.py strips a (void *) cast written in the call)\n");
    return rc_emu_set_last(cudaErrorInvalidDeviceFunction);
}

extern "C" {

const char *cudaGetErrorString(cudaError_t e) { return e == cudaSuccess ? "no error" : "emulated CUDA error"; }
const char *cudaGetErrorName(cudaError_t e) {
    switch (e) {
    case cudaSuccess: return "cudaSuccess";
    case cudaErrorInvalidValue: return "cudaErrorInvalidValue";
    case cudaErrorMemoryAllocation: return "cudaErrorMemoryAllocation";
    case cudaErrorInvalidConfiguration: return "cudaErrorInvalidConfiguration";
    case cudaErrorInvalidDeviceFunction: return "cudaErrorInvalidDeviceFunction";
    case cudaErrorNoDevice: return "cudaErrorNoDevice";
    case cudaErrorInvalidResourceHandle: return "cudaErrorInvalidResourceHandle";
    case cudaErrorNotReady: return "cudaErrorNotReady";
    case cudaErrorIllegalAddress: return "cudaErrorIllegalAddress";
    case cudaErrorMisalignedAddress: return "cudaErrorMisalignedAddress";
    case cudaErrorLaunchFailure: return "cudaErrorLaunchFailure";
    case cudaErrorCooperativeLaunchTooLarge: return "cudaErrorCooperativeLaunchTooLarge";
    case cudaErrorStreamCaptureUnsupported: return "cudaErrorStreamCaptureUnsupported";
    }
    return "cudaError?";
}
cudaError_t cudaGetLastError(void) {
    cudaError_t e = g_last;
    g_last = cudaSuccess;
    return e;
}
cudaError_t cudaPeekAtLastError(void) { return g_last; }
// RC_EMU_DEVICES=N: N devices (default 1; each process of a multi-rank job picks one by its local
// rank), all the same emulated device; RC_EMU_NO_DEVICE: none.
static int n_devices(void) {
    if (getenv("RC_EMU_NO_DEVICE")) return 0;
    const char *e = getenv("RC_EMU_DEVICES");
    int n = e ? atoi(e) : 1;
    return n >= 1 && n <= 64 ? n : 1;
}
static int g_device = 0;
cudaError_t cudaGetDeviceCount(int *n) { *n = n_devices(); return cudaSuccess; }
cudaError_t cudaGetDevice(int *d) { *d = g_device; return cudaSuccess; }
cudaError_t cudaSetDevice(int d) {
    if (d < 0 || d >= n_devices()) return g_last = cudaErrorInvalidValue;
    g_device = d;
    return cudaSuccess;
}
cudaError_t cudaDriverGetVersion(int *v) { *v = 13000; return cudaSuccess; }
cudaError_t cudaRuntimeGetVersion(int *v) { *v = 13000; return cudaSuccess; }
cudaError_t cudaGetDeviceProperties(struct cudaDeviceProp *p, int) {
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "CPU emulation");
    p->totalGlobalMem = (size_t)8 << 30;
    p->sharedMemPerBlock = 48 << 10;
    p->sharedMemPerMultiprocessor = 228 << 10;
    p->sharedMemPerBlockOptin = 227 << 10;
    p->multiProcessorCount = n_sms();
    p->major = 9;
    p->minor = 0;
    p->l2CacheSize = 1 << 20;
    p->warpSize = 32;
    p->maxThreadsPerBlock = 1024;
    p->maxThreadsPerMultiProcessor = 2048;
    p->maxBlocksPerMultiProcessor = 32;
    p->regsPerMultiprocessor = 65536;
    p->cooperativeLaunch = 1;
    return cudaSuccess;
}
cudaError_t cudaDeviceGetAttribute(int *v, cudaDeviceAttr a, int) {
    switch (a) {
    case cudaDevAttrMaxThreadsPerBlock: *v = 1024; break;
    case cudaDevAttrWarpSize: *v = 32; break;
    case cudaDevAttrMultiProcessorCount: *v = n_sms(); break;
    case cudaDevAttrL2CacheSize: *v = 1 << 20; break;
    case cudaDevAttrMaxThreadsPerMultiProcessor: *v = 2048; break;
    case cudaDevAttrComputeCapabilityMajor: *v = 9; break;
    case cudaDevAttrComputeCapabilityMinor: *v = 0; break;
    case cudaDevAttrMaxSharedMemoryPerMultiprocessor: *v = 228 << 10; break;
    case cudaDevAttrCooperativeLaunch: *v = 1; break;
    case cudaDevAttrMaxSharedMemoryPerBlockOptin: *v = 227 << 10; break;
    case cudaDevAttrMaxBlocksPerMultiprocessor: *v = 32; break;
    case cudaDevAttrMaxPersistingL2CacheSize: *v = 3 << 18; break; // 0.75 of the emulated 1 MiB L2
    case cudaDevAttrMaxAccessPolicyWindowSize: *v = 128 << 20; break;
    default: return g_last = cudaErrorInvalidValue;
    }
    return cudaSuccess;
}
cudaError_t cudaDeviceSetLimit(cudaLimit l, size_t v) {
    if (l != cudaLimitPersistingL2CacheSize || v > (3u << 18)) return g_last = cudaErrorInvalidValue;
    return cudaSuccess;
}
cudaError_t cudaStreamSetAttribute(cudaStream_t, cudaStreamAttrID id, const cudaStreamAttrValue *v) {
    g_st.stream_set_attribute++;
    if (id != cudaStreamAttributeAccessPolicyWindow || !v || v->accessPolicyWindow.hitRatio < 0 ||
        v->accessPolicyWindow.hitRatio > 1 || (v->accessPolicyWindow.num_bytes && !v->accessPolicyWindow.base_ptr))
        return g_last = cudaErrorInvalidValue;
    return cudaSuccess;
}
cudaError_t rc_emu_occupancy(int *n, const void *fn, int bs, size_t smem) {
    if (bs <= 0 || bs > 1024) return g_last = cudaErrorInvalidValue;
    *n = occupancy(fn, bs, smem);
    return cudaSuccess;
}
cudaError_t cudaMemGetInfo(size_t *f, size_t *t) { *f = *t = (size_t)8 << 30; return cudaSuccess; }
cudaError_t cudaMalloc(void **p, size_t n) {
    g_st.malloc++;
    *p = malloc(n ? n : 1);
    if (!*p) return g_last = cudaErrorMemoryAllocation;
    memset(*p, 0xff, n); // poison: NaN for every float type
    g_dev[(uintptr_t)*p] = n;
    return cudaSuccess;
}
// stream-ordered allocation: the emulation allocates at once (work runs in issue order anyway)
cudaError_t cudaMallocAsync(void **p, size_t n, cudaStream_t s) {
    if (!stream_ok(s)) return g_last = cudaErrorInvalidResourceHandle;
    g_st.malloc_async++;
    g_st.malloc--; // counted as the async variant only
    return cudaMalloc(p, n);
}
cudaError_t cudaFreeAsync(void *p, cudaStream_t s) {
    if (!stream_ok(s)) return g_last = cudaErrorInvalidResourceHandle;
    if (!p) return cudaSuccess;
    if (!g_dev.count((uintptr_t)p)) {
        fprintf(stderr, "CUDA emulator: cudaFreeAsync(%p): not a pointer cudaMalloc returned\n", p);
        return g_last = cudaErrorInvalidValue;
    }
    g_st.free_async++;
    return rc_emu::enqueue(s, [p]() {
        g_dev.erase((uintptr_t)p);
        free(p);
    });
}
cudaError_t cudaMallocHost(void **p, size_t n) {
    g_st.malloc_host++;
    *p = malloc(n ? n : 1);
    if (!*p) return g_last = cudaErrorMemoryAllocation;
    memset(*p, 0xff, n);
    g_pinned[(uintptr_t)*p] = n;
    return cudaSuccess;
}
cudaError_t cudaHostAlloc(void **p, size_t n, unsigned) { return cudaMallocHost(p, n); }
cudaError_t cudaHostRegister(void *p, size_t n, unsigned) {
    g_st.host_register++;
    if (!p || !n || in_map(g_pinned, p, 1)) return g_last = cudaErrorInvalidValue;
    g_pinned[(uintptr_t)p] = n;
    return cudaSuccess;
}
cudaError_t cudaHostUnregister(void *p) {
    if (!g_pinned.erase((uintptr_t)p)) return g_last = cudaErrorInvalidValue;
    return cudaSuccess;
}
cudaError_t cudaFree(void *p) {
    if (!p) return cudaSuccess;
    if (g_capture) return g_last = cudaErrorStreamCaptureUnsupported;
    g_st.free++;
    drain_all(false); // cudaFree synchronizes the device
    if (!g_dev.erase((uintptr_t)p)) {
        fprintf(stderr, "CUDA emulator: cudaFree(%p): not a pointer cudaMalloc returned\n", p);
        return g_last = cudaErrorInvalidValue;
    }
    free(p);
    return cudaSuccess;
}
cudaError_t cudaFreeHost(void *p) {
    if (!p) return cudaSuccess;
    g_st.free_host++;
    drain_all(false);
    if (!g_pinned.erase((uintptr_t)p)) {
        fprintf(stderr, "CUDA emulator: cudaFreeHost(%p): not a pointer cudaMallocHost returned\n", p);
        return g_last = cudaErrorInvalidValue;
    }
    free(p);
    return cudaSuccess;
}
cudaError_t cudaMemcpy(void *d, const void *s, size_t n, cudaMemcpyKind k) {
    if (g_capture) return g_last = cudaErrorStreamCaptureUnsupported;
    if (cudaError_t e = check_copy("cudaMemcpy", d, s, n, k)) return e;
    (k == cudaMemcpyHostToDevice ? g_st.memcpy_sync_h2d : k == cudaMemcpyDeviceToHost ? g_st.memcpy_sync_d2h
     : k == cudaMemcpyDeviceToDevice ? g_st.memcpy_sync_d2d : g_st.memcpy_sync_other)++;
    push(&g_legacy_stream, stream_op{[=]() { memmove(d, s, n); }, nullptr, 0}); // runs now
    return cudaSuccess;
}
cudaError_t cudaMemcpyAsync(void *d, const void *s, size_t n, cudaMemcpyKind k, cudaStream_t st) {
    if (!stream_ok(st)) return g_last = cudaErrorInvalidResourceHandle;
    if (cudaError_t e = check_copy("cudaMemcpyAsync", d, s, n, k)) return e;
    bool pageable_src = k == cudaMemcpyHostToDevice && !in_map(g_pinned, s, n);
    bool pageable_dst = k == cudaMemcpyDeviceToHost && !in_map(g_pinned, d, n);
    if (!g_capture) {
        (k == cudaMemcpyHostToDevice ? g_st.memcpy_async_h2d : k == cudaMemcpyDeviceToHost ? g_st.memcpy_async_d2h
         : k == cudaMemcpyDeviceToDevice ? g_st.memcpy_async_d2d : g_st.memcpy_async_other)++;
        if (pageable_src) g_st.memcpy_async_pageable_h2d++;
        if (pageable_dst) g_st.memcpy_async_pageable_d2h++;
    }
    if (!g_capture && pageable_src) {
        // the runtime stages pageable memory before returning: the copy sees the bytes of now
        std::shared_ptr<std::vector<char>> staged = std::make_shared<std::vector<char>>((const char *)s, (const char *)s + n);
        return rc_emu::enqueue(st, [=]() { memmove(d, staged->data(), n); });
    }
    cudaError_t e = rc_emu::enqueue(st, [=]() { memmove(d, s, n); });
    if (!g_capture && pageable_dst) drain(S(st), S(st)->issued); // returns once the copy is done
    return e;
}
cudaError_t cudaMemset(void *p, int v, size_t n) {
    if (g_capture) return g_last = cudaErrorStreamCaptureUnsupported;
    if (cudaError_t e = check_copy("cudaMemset", p, p, n, cudaMemcpyDeviceToDevice)) return e;
    g_st.memset_sync++;
    push(&g_legacy_stream, stream_op{[=]() { memset(p, v, n); }, nullptr, 0});
    return cudaSuccess;
}
cudaError_t cudaMemsetAsync(void *p, int v, size_t n, cudaStream_t st) {
    if (!stream_ok(st)) return g_last = cudaErrorInvalidResourceHandle;
    if (cudaError_t e = check_copy("cudaMemsetAsync", p, p, n, cudaMemcpyDeviceToDevice)) return e;
    if (!g_capture) g_st.memset_async++;
    return rc_emu::enqueue(st, [=]() { memset(p, v, n); });
}
cudaError_t cudaDeviceSynchronize(void) {
    if (g_capture) return g_last = cudaErrorStreamCaptureUnsupported;
    g_st.device_syncs++;
    drain_all(false);
    return cudaSuccess;
}
cudaError_t cudaStreamSynchronize(cudaStream_t s) {
    if (!stream_ok(s)) return g_last = cudaErrorInvalidResourceHandle;
    if (g_capture) return g_last = cudaErrorStreamCaptureUnsupported;
    g_st.stream_syncs++;
    if (!s) drain_all(true);
    else drain(s, s->issued);
    return cudaSuccess;
}
cudaError_t cudaStreamQuery(cudaStream_t s) {
    if (!stream_ok(s)) return g_last = cudaErrorInvalidResourceHandle;
    g_st.stream_queries++;
    rc_emu_stream *st = S(s);
    if (st->done == st->issued) return cudaSuccess;
    drain(st, st->done + 1); // progress at every poll: a polling loop ends
    return cudaErrorNotReady;
}
cudaError_t cudaStreamCreateWithFlags(cudaStream_t *s, unsigned flags) {
    *s = new rc_emu_stream{STREAM_MAGIC, flags, {}, 0, 0, 0};
    g_streams.push_back(*s);
    return cudaSuccess;
}
cudaError_t cudaStreamCreate(cudaStream_t *s) { return cudaStreamCreateWithFlags(s, cudaStreamDefault); }
cudaError_t cudaStreamDestroy(cudaStream_t s) {
    if (!s || !stream_ok(s)) return g_last = cudaErrorInvalidResourceHandle;
    drain(s, s->issued); // its work still completes
    s->magic = 0;         // kept: work of other streams may wait on it
    return cudaSuccess;
}
cudaError_t cudaStreamWaitEvent(cudaStream_t s, cudaEvent_t e, unsigned) {
    if (!stream_ok(s) || !event_ok(e)) return g_last = cudaErrorInvalidResourceHandle;
    if (!g_capture) g_st.stream_waits++;
    if (g_capture || !e->recorded) return cudaSuccess; // captured work is in issue order already
    push(S(s), stream_op{nullptr, e->stream, e->seq});
    return cudaSuccess;
}
cudaError_t cudaStreamBeginCapture(cudaStream_t s, cudaStreamCaptureMode) {
    if (!stream_ok(s)) return g_last = cudaErrorInvalidResourceHandle;
    if (g_capture) return g_last = cudaErrorStreamCaptureUnsupported;
    g_st.graph_captures++;
    g_capture = new std::vector<std::function<void()>>();
    return cudaSuccess;
}
cudaError_t cudaStreamEndCapture(cudaStream_t, cudaGraph_t *g) {
    if (!g_capture) return g_last = cudaErrorInvalidValue;
    rc_emu_graph *gr = new rc_emu_graph;
    gr->ops.swap(*g_capture);
    delete g_capture;
    g_capture = nullptr;
    *g = gr;
    return cudaSuccess;
}
cudaError_t cudaGraphInstantiate(cudaGraphExec_t *e, cudaGraph_t g, unsigned long long) {
    g_st.graph_instantiates++;
    rc_emu_graph *x = new rc_emu_graph(*g);
    *e = x;
    return cudaSuccess;
}
cudaError_t cudaGraphDestroy(cudaGraph_t g) { delete g; return cudaSuccess; }
cudaError_t cudaGraphExecDestroy(cudaGraphExec_t e) { delete e; return cudaSuccess; }
cudaError_t cudaGraphLaunch(cudaGraphExec_t e, cudaStream_t s) {
    if (!stream_ok(s)) return g_last = cudaErrorInvalidResourceHandle;
    if (!g_capture) g_st.graph_launches++, g_st.graph_nodes_replayed += e->ops.size();
    return rc_emu::enqueue(s, [e]() {
        for (auto &op : e->ops) op();
    });
}
cudaError_t rc_emu_func_set_smem(const void *fn, int bytes) {
    if (bytes > 227 << 10) return g_last = cudaErrorInvalidValue;
    g_smem_limit[fn] = bytes;
    return cudaSuccess;
}

cudaError_t cudaEventCreateWithFlags(cudaEvent_t *e, unsigned flags) {
    *e = new rc_emu_event{EVENT_MAGIC, flags, 0, false, nullptr, 0};
    return cudaSuccess;
}
cudaError_t cudaEventCreate(cudaEvent_t *e) { return cudaEventCreateWithFlags(e, cudaEventDefault); }
cudaError_t cudaEventDestroy(cudaEvent_t e) {
    if (!event_ok(e)) return g_last = cudaErrorInvalidResourceHandle;
    e->magic = 0; // kept: a pending record may still write its time
    return cudaSuccess;
}
cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t s) {
    if (!event_ok(e) || !stream_ok(s)) return g_last = cudaErrorInvalidResourceHandle;
    if (!g_capture) g_st.event_records++;
    if (g_capture) {
        g_capture->push_back([e]() { e->t = now_s(); });
        e->recorded = true;
        return cudaSuccess;
    }
    rc_emu_stream *st = S(s);
    e->recorded = true;
    e->stream = st;
    e->seq = st->issued + 1;
    push(st, stream_op{[e]() { e->t = now_s(); }, nullptr, 0});
    return cudaSuccess;
}
static bool event_done(cudaEvent_t e) { return !e->stream || e->stream->done >= e->seq; }
cudaError_t cudaEventSynchronize(cudaEvent_t e) {
    if (!event_ok(e)) return g_last = cudaErrorInvalidResourceHandle;
    g_st.event_syncs++;
    if (e->stream) drain(e->stream, e->seq);
    return cudaSuccess;
}
cudaError_t cudaEventQuery(cudaEvent_t e) {
    if (!event_ok(e)) return g_last = cudaErrorInvalidResourceHandle;
    g_st.event_queries++;
    if (event_done(e)) return cudaSuccess;
    drain(e->stream, e->stream->done + 1); // progress at every poll
    return cudaErrorNotReady;
}
cudaError_t cudaEventElapsedTime(float *ms, cudaEvent_t a, cudaEvent_t b) {
    if (!event_ok(a) || !event_ok(b)) return g_last = cudaErrorInvalidResourceHandle;
    if ((a->flags | b->flags) & cudaEventDisableTiming) return g_last = cudaErrorInvalidResourceHandle;
    if (!a->recorded || !b->recorded) return g_last = cudaErrorInvalidResourceHandle;
    if (!event_done(a) || !event_done(b)) return g_last = cudaErrorNotReady;
    *ms = (float)((b->t - a->t) * 1e3);
    return cudaSuccess;
}

struct rc_emu_blas { cudaStream_t stream; };
cublasStatus_t cublasCreate(cublasHandle_t *h) { *h = new rc_emu_blas{nullptr}; return CUBLAS_STATUS_SUCCESS; }
cublasStatus_t cublasDestroy(cublasHandle_t h) { delete h; return CUBLAS_STATUS_SUCCESS; }
cublasStatus_t cublasSetWorkspace(cublasHandle_t, void *, size_t) { return CUBLAS_STATUS_SUCCESS; }
cublasStatus_t cublasSetStream(cublasHandle_t h, cudaStream_t s) { h->stream = s; return CUBLAS_STATUS_SUCCESS; }
cublasStatus_t cublasGetVersion(cublasHandle_t, int *v) { *v = 130000; return CUBLAS_STATUS_SUCCESS; }
const char *cublasGetStatusName(cublasStatus_t s) { return s ? "CUBLAS_STATUS_NOT_SUPPORTED" : "CUBLAS_STATUS_SUCCESS"; }
const char *cublasGetStatusString(cublasStatus_t s) { return s ? "not supported" : "success"; }

static float elem(const void *p, cudaDataType_t t, size_t i) {
    if (t == CUDA_R_32F) return ((const float *)p)[i];
    uint16_t h = ((const uint16_t *)p)[i];
    return t == CUDA_R_16F ? rc_f16_to_f32(h) : rc_bf16_to_f32(h);
}

cublasStatus_t cublasGemmEx(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m,
                            int n, int k, const void *alpha, const void *A, cudaDataType_t at,
                            int lda, const void *B, cudaDataType_t bt, int ldb, const void *beta,
                            void *C, cudaDataType_t ct, int ldc, cublasComputeType_t,
                            cublasGemmAlgo_t) {
    if (ct != CUDA_R_32F) return CUBLAS_STATUS_NOT_SUPPORTED;
    float al = *(const float *)alpha, be = *(const float *)beta;
    if (!g_capture) g_st.cublas_calls++; // captured ones are counted as graph nodes
    auto op = [=]() {
        float *c = (float *)C;
        for (int j = 0; j < n; j++)
            for (int i = 0; i < m; i++) {
                float acc = 0.f;
                for (int l = 0; l < k; l++) {
                    float a = ta == CUBLAS_OP_N ? elem(A, at, i + (size_t)l * lda) : elem(A, at, l + (size_t)i * lda);
                    float b = tb == CUBLAS_OP_N ? elem(B, bt, l + (size_t)j * ldb) : elem(B, bt, j + (size_t)l * ldb);
                    acc += a * b;
                }
                size_t o = i + (size_t)j * ldc;
                c[o] = be != 0.f ? al * acc + be * c[o] : al * acc;
            }
    };
    rc_emu::enqueue(h->stream, op);
    return CUBLAS_STATUS_SUCCESS;
}

} // extern "C"
