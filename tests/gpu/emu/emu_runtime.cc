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
#include <random>
#include <stdio.h>
#include <stdlib.h>
#include <string>
#include <vector>

#include "emu.h"

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/common_interface_defs.h>
#define EMU_ASAN 1
#endif

namespace rc_emu {

enum { READY, WAIT_BLOCK, WAIT_WARP, WAIT_GRID, DONE };
static const char *state_name[] = {"running", "__syncthreads", "a warp collective", "grid.sync()", "exited"};

struct block_ctx {
    uint3_ idx;
    char *dyn;
    std::vector<std::pair<const void *, char *>> shared; // static __shared__ variables by tag
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
static unsigned long seed() {
    static unsigned long s = (unsigned long)env_long("RC_EMU_SEED", 1);
    return s;
}

// ---- symbols for messages ---------------------------------------------------------------------

// "file:line (function)" of a code address, through addr2line on our own executable: the first
// frame of the inline chain outside the emulator's headers, so the kernel's own line
static std::string describe_pc(const void *pc) {
    char buf[512];
    Dl_info di;
    uintptr_t a = (uintptr_t)pc;
    if (dladdr(pc, &di) && di.dli_fbase) a -= (uintptr_t)di.dli_fbase;
    snprintf(buf, sizeof buf, "addr2line -i -f -C -e /proc/%d/exe 0x%lx 2>/dev/null", (int)getpid(),
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
void *dyn_smem() { return g_cur->blk->dyn; }
bool grid_is_cooperative() { return g_coop; }

void *shared_alloc(const void *tag, size_t bytes) {
    block_ctx *b = g_cur->blk;
    for (auto &s : b->shared)
        if (s.first == tag) return s.second;
    char *p = (char *)malloc(bytes); // its own allocation: AddressSanitizer sees overruns
    memset(p, 0xff, bytes);          // uninitialised shared memory reads as NaN
    b->shared.emplace_back(tag, p);
    return p;
}

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
    for (auto &s : b.shared) free(s.second);
    b.shared.clear();
    free(b.dyn);
    b.dyn = nullptr;
}

static block_ctx new_block(unsigned lin, size_t smem) {
    block_ctx b;
    b.idx = uint3_{lin % g_grid_dim.x, (lin / g_grid_dim.x) % g_grid_dim.y,
                   lin / (g_grid_dim.x * g_grid_dim.y)};
    b.dyn = (char *)malloc(smem ? smem : 1); // exact size: AddressSanitizer sees overruns
    memset(b.dyn, 0xff, smem);
    b.first = b.nt = 0;
    return b;
}

static void run_grid(const launch_cfg &c, const void *fn, bool coop, std::function<void()> &body) {
    g_grid_dim = uint3_{c.grid.x, c.grid.y, c.grid.z};
    g_block_dim = uint3_{c.block.x, c.block.y, c.block.z};
    g_kernel = fn;
    g_coop = coop;
    g_body = &body;
    int nt = (int)(c.block.x * c.block.y * c.block.z);
    unsigned nb = c.grid.x * c.grid.y * c.grid.z;
    std::vector<unsigned> order(nb);
    for (unsigned i = 0; i < nb; i++) order[i] = i;
    if (seed()) {
        std::mt19937_64 rng(seed());
        std::shuffle(order.begin(), order.end(), rng);
    }
    if (coop) {
        std::vector<block_ctx> blocks;
        blocks.reserve(nb);
        for (unsigned i = 0; i < nb; i++) blocks.push_back(new_block(order[i], c.smem));
        run_blocks(blocks, nt);
        for (auto &b : blocks) free_block(b);
    } else {
        std::vector<block_ctx> one(1);
        for (unsigned i = 0; i < nb; i++) {
            one[0] = new_block(order[i], c.smem);
            run_blocks(one, nt);
            free_block(one[0]);
        }
    }
    g_coop = false;
    g_cur = nullptr;
}

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
    if (g_capture) {
        g_capture->push_back([cc, fn, coop, body]() mutable { run_grid(cc, fn, coop, body); });
        return cudaSuccess;
    }
    run_grid(cc, fn, coop, body);
    return cudaSuccess;
}

} // namespace rc_emu

using namespace rc_emu;

struct rc_emu_graph {
    std::vector<std::function<void()>> ops;
};

// ---- handles: streams and events are checked, so a destroyed or foreign one is an error -------

static const unsigned STREAM_MAGIC = 0x57a3e4u, EVENT_MAGIC = 0xe7e47u;
struct rc_emu_stream { unsigned magic, flags; };
struct rc_emu_event { unsigned magic, flags; double t; bool recorded; };

static bool stream_ok(cudaStream_t s) { return !s || s->magic == STREAM_MAGIC; }
static bool event_ok(cudaEvent_t e) { return e && e->magic == EVENT_MAGIC; }

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
cudaError_t cudaGetDeviceCount(int *n) { *n = getenv("RC_EMU_NO_DEVICE") ? 0 : 1; return cudaSuccess; }
cudaError_t cudaGetDevice(int *d) { *d = 0; return cudaSuccess; }
cudaError_t cudaSetDevice(int d) { return d == 0 ? cudaSuccess : (g_last = cudaErrorInvalidValue); }
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
    default: return g_last = cudaErrorInvalidValue;
    }
    return cudaSuccess;
}
cudaError_t rc_emu_occupancy(int *n, const void *fn, int bs, size_t smem) {
    if (bs <= 0 || bs > 1024) return g_last = cudaErrorInvalidValue;
    *n = occupancy(fn, bs, smem);
    return cudaSuccess;
}
cudaError_t cudaMemGetInfo(size_t *f, size_t *t) { *f = *t = (size_t)8 << 30; return cudaSuccess; }
cudaError_t cudaMalloc(void **p, size_t n) {
    *p = malloc(n ? n : 1);
    if (!*p) return g_last = cudaErrorMemoryAllocation;
    memset(*p, 0xff, n); // poison: NaN for every float type
    g_dev[(uintptr_t)*p] = n;
    return cudaSuccess;
}
cudaError_t cudaMallocHost(void **p, size_t n) {
    *p = malloc(n ? n : 1);
    if (!*p) return g_last = cudaErrorMemoryAllocation;
    memset(*p, 0xff, n);
    g_pinned[(uintptr_t)*p] = n;
    return cudaSuccess;
}
cudaError_t cudaHostAlloc(void **p, size_t n, unsigned) { return cudaMallocHost(p, n); }
cudaError_t cudaHostRegister(void *p, size_t n, unsigned) {
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
    if (!g_dev.erase((uintptr_t)p)) {
        fprintf(stderr, "CUDA emulator: cudaFree(%p): not a pointer cudaMalloc returned\n", p);
        return g_last = cudaErrorInvalidValue;
    }
    free(p);
    return cudaSuccess;
}
cudaError_t cudaFreeHost(void *p) {
    if (!p) return cudaSuccess;
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
    memmove(d, s, n);
    return cudaSuccess;
}
cudaError_t cudaMemcpyAsync(void *d, const void *s, size_t n, cudaMemcpyKind k, cudaStream_t st) {
    if (!stream_ok(st)) return g_last = cudaErrorInvalidResourceHandle;
    if (cudaError_t e = check_copy("cudaMemcpyAsync", d, s, n, k)) return e;
    if (g_capture) {
        g_capture->push_back([=]() { memmove(d, s, n); });
        return cudaSuccess;
    }
    memmove(d, s, n);
    return cudaSuccess;
}
cudaError_t cudaMemset(void *p, int v, size_t n) {
    if (g_capture) return g_last = cudaErrorStreamCaptureUnsupported;
    if (cudaError_t e = check_copy("cudaMemset", p, p, n, cudaMemcpyDeviceToDevice)) return e;
    memset(p, v, n);
    return cudaSuccess;
}
cudaError_t cudaMemsetAsync(void *p, int v, size_t n, cudaStream_t st) {
    if (!stream_ok(st)) return g_last = cudaErrorInvalidResourceHandle;
    if (cudaError_t e = check_copy("cudaMemsetAsync", p, p, n, cudaMemcpyDeviceToDevice)) return e;
    if (g_capture) {
        g_capture->push_back([=]() { memset(p, v, n); });
        return cudaSuccess;
    }
    memset(p, v, n);
    return cudaSuccess;
}
cudaError_t cudaDeviceSynchronize(void) { return g_capture ? (g_last = cudaErrorStreamCaptureUnsupported) : cudaSuccess; }
cudaError_t cudaStreamSynchronize(cudaStream_t s) {
    if (!stream_ok(s)) return g_last = cudaErrorInvalidResourceHandle;
    return g_capture ? (g_last = cudaErrorStreamCaptureUnsupported) : cudaSuccess;
}
cudaError_t cudaStreamQuery(cudaStream_t s) {
    return stream_ok(s) ? cudaSuccess : (g_last = cudaErrorInvalidResourceHandle);
}
cudaError_t cudaStreamCreateWithFlags(cudaStream_t *s, unsigned flags) {
    *s = new rc_emu_stream{STREAM_MAGIC, flags};
    return cudaSuccess;
}
cudaError_t cudaStreamCreate(cudaStream_t *s) { return cudaStreamCreateWithFlags(s, cudaStreamDefault); }
cudaError_t cudaStreamDestroy(cudaStream_t s) {
    if (!s || !stream_ok(s)) return g_last = cudaErrorInvalidResourceHandle;
    s->magic = 0;
    delete s;
    return cudaSuccess;
}
cudaError_t cudaStreamWaitEvent(cudaStream_t s, cudaEvent_t e, unsigned) {
    if (!stream_ok(s) || !event_ok(e)) return g_last = cudaErrorInvalidResourceHandle;
    return cudaSuccess; // work runs when issued, so what the event marks is already done
}
cudaError_t cudaStreamBeginCapture(cudaStream_t s, cudaStreamCaptureMode) {
    if (!stream_ok(s)) return g_last = cudaErrorInvalidResourceHandle;
    if (g_capture) return g_last = cudaErrorStreamCaptureUnsupported;
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
    rc_emu_graph *x = new rc_emu_graph(*g);
    *e = x;
    return cudaSuccess;
}
cudaError_t cudaGraphDestroy(cudaGraph_t g) { delete g; return cudaSuccess; }
cudaError_t cudaGraphExecDestroy(cudaGraphExec_t e) { delete e; return cudaSuccess; }
cudaError_t cudaGraphLaunch(cudaGraphExec_t e, cudaStream_t s) {
    if (!stream_ok(s)) return g_last = cudaErrorInvalidResourceHandle;
    for (auto &op : e->ops) op();
    return cudaSuccess;
}
cudaError_t rc_emu_func_set_smem(const void *fn, int bytes) {
    if (bytes > 227 << 10) return g_last = cudaErrorInvalidValue;
    g_smem_limit[fn] = bytes;
    return cudaSuccess;
}

cudaError_t cudaEventCreateWithFlags(cudaEvent_t *e, unsigned flags) {
    *e = new rc_emu_event{EVENT_MAGIC, flags, 0, false};
    return cudaSuccess;
}
cudaError_t cudaEventCreate(cudaEvent_t *e) { return cudaEventCreateWithFlags(e, cudaEventDefault); }
cudaError_t cudaEventDestroy(cudaEvent_t e) {
    if (!event_ok(e)) return g_last = cudaErrorInvalidResourceHandle;
    e->magic = 0;
    delete e;
    return cudaSuccess;
}
cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t s) {
    if (!event_ok(e) || !stream_ok(s)) return g_last = cudaErrorInvalidResourceHandle;
    if (g_capture) {
        g_capture->push_back([e]() { e->t = now_s(); e->recorded = true; });
        return cudaSuccess;
    }
    e->t = now_s();
    e->recorded = true;
    return cudaSuccess;
}
cudaError_t cudaEventSynchronize(cudaEvent_t e) {
    if (!event_ok(e)) return g_last = cudaErrorInvalidResourceHandle;
    return cudaSuccess;
}
cudaError_t cudaEventQuery(cudaEvent_t e) {
    if (!event_ok(e)) return g_last = cudaErrorInvalidResourceHandle;
    return cudaSuccess;
}
cudaError_t cudaEventElapsedTime(float *ms, cudaEvent_t a, cudaEvent_t b) {
    if (!event_ok(a) || !event_ok(b)) return g_last = cudaErrorInvalidResourceHandle;
    if ((a->flags | b->flags) & cudaEventDisableTiming) return g_last = cudaErrorInvalidResourceHandle;
    if (!a->recorded || !b->recorded) return g_last = cudaErrorInvalidResourceHandle;
    *ms = (float)((b->t - a->t) * 1e3);
    return cudaSuccess;
}

struct rc_emu_blas { int dummy; };
cublasStatus_t cublasCreate(cublasHandle_t *h) { *h = new rc_emu_blas; return CUBLAS_STATUS_SUCCESS; }
cublasStatus_t cublasDestroy(cublasHandle_t h) { delete h; return CUBLAS_STATUS_SUCCESS; }
cublasStatus_t cublasSetWorkspace(cublasHandle_t, void *, size_t) { return CUBLAS_STATUS_SUCCESS; }
cublasStatus_t cublasSetStream(cublasHandle_t, cudaStream_t) { return CUBLAS_STATUS_SUCCESS; }
cublasStatus_t cublasGetVersion(cublasHandle_t, int *v) { *v = 130000; return CUBLAS_STATUS_SUCCESS; }
const char *cublasGetStatusName(cublasStatus_t s) { return s ? "CUBLAS_STATUS_NOT_SUPPORTED" : "CUBLAS_STATUS_SUCCESS"; }
const char *cublasGetStatusString(cublasStatus_t s) { return s ? "not supported" : "success"; }

static float elem(const void *p, cudaDataType_t t, size_t i) {
    if (t == CUDA_R_32F) return ((const float *)p)[i];
    uint16_t h = ((const uint16_t *)p)[i];
    return t == CUDA_R_16F ? rc_f16_to_f32(h) : rc_bf16_to_f32(h);
}

cublasStatus_t cublasGemmEx(cublasHandle_t, cublasOperation_t ta, cublasOperation_t tb, int m,
                            int n, int k, const void *alpha, const void *A, cudaDataType_t at,
                            int lda, const void *B, cudaDataType_t bt, int ldb, const void *beta,
                            void *C, cudaDataType_t ct, int ldc, cublasComputeType_t,
                            cublasGemmAlgo_t) {
    if (ct != CUDA_R_32F) return CUBLAS_STATUS_NOT_SUPPORTED;
    float al = *(const float *)alpha, be = *(const float *)beta;
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
    if (g_capture) g_capture->push_back(op);
    else op();
    return CUBLAS_STATUS_SUCCESS;
}

} // extern "C"
