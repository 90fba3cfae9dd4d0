/*
 * dispatch.c - which instruction-set variant of the vector kernels runs
 * (docs/SPEC.md §9.4).
 *
 * build_ffi.py compiles fast.c and infer.c once per instruction set the
 * compiler can target, each with its own flags and its own lane count, into
 * functions with a suffix (l5_fast_forward_avx2, ...), and tells this file
 * which ones it built (-DL5_BUILT_AVX512, -DL5_BUILT_AVX2, -DL5_BUILT_SSE2;
 * the generic variant is always built).  Nothing is compiled with
 * -march=native, so one build runs on every CPU of its architecture: at first
 * use the widest variant this CPU supports is chosen.
 *
 * Every variant gives the same bits (each lane runs the scalar reference
 * order, docs/SPEC.md §9.2), so the choice is about speed only; l5_use_isa
 * switches it for tests and benchmarks.  Switch only while no other thread
 * is inside the core: a call in flight finishes on the variant it started with.
 */
#include <string.h>
#include "core.h"

typedef struct {
    const char *name;
    int (*cpu_runs)(void);
    L5FastLanes *lanes;
    L5FastTrainBatch *train_batch;
    L5FastForward *forward;
    L5FastWarpImage *warp_image;
    L5FastPeakMacs *peak_macs;
    L5InferPrepare *infer_prepare;
    L5InferIsPrepared *infer_is_prepared;
    L5InferImages *infer_images;
} Variant;

/* Only x86 variants have flags (build_ffi.py builds them only for an x86
 * target).  __builtin_cpu_supports also checks that the operating system
 * saves the wider registers (XCR0), so a "yes" means the instructions run. */
#ifdef L5_BUILT_AVX512
static int cpu_avx512(void) { __builtin_cpu_init(); return __builtin_cpu_supports("avx512f") != 0; }
#endif
#ifdef L5_BUILT_AVX2
static int cpu_avx2(void) { __builtin_cpu_init(); return __builtin_cpu_supports("avx2") != 0; }
#endif
#ifdef L5_BUILT_SSE2
static int cpu_sse2(void) { __builtin_cpu_init(); return __builtin_cpu_supports("sse2") != 0; }
#endif
static int cpu_any(void) { return 1; }

#define VARIANT(isa, cpu_runs)                                                     \
    {#isa, cpu_runs, L5_ISA_JOIN(l5_fast_lanes, isa),                              \
     L5_ISA_JOIN(l5_fast_train_batch, isa), L5_ISA_JOIN(l5_fast_forward, isa),     \
     L5_ISA_JOIN(l5_fast_warp_image, isa),                                         \
     L5_ISA_JOIN(l5_fast_peak_macs, isa),                                          \
     L5_ISA_JOIN(l5_infer_prepare, isa), L5_ISA_JOIN(l5_infer_is_prepared, isa),   \
     L5_ISA_JOIN(l5_infer_images, isa)}

/* Widest first: the first one the CPU runs is the default. */
static const Variant VARIANTS[] = {
#ifdef L5_BUILT_AVX512
    VARIANT(avx512, cpu_avx512),
#endif
#ifdef L5_BUILT_AVX2
    VARIANT(avx2, cpu_avx2),
#endif
#ifdef L5_BUILT_SSE2
    VARIANT(sse2, cpu_sse2),
#endif
    VARIANT(generic, cpu_any),
};
enum { N_VARIANTS = sizeof VARIANTS / sizeof VARIANTS[0] };

/* The variant that runs; NULL until first use.  Two threads that race on the
 * first use both store the same answer. */
static const Variant *current;

static const Variant *running(void) {
    const Variant *v = __atomic_load_n(&current, __ATOMIC_ACQUIRE);
    if (v) return v;
    v = &VARIANTS[N_VARIANTS - 1]; /* generic: runs anywhere */
    for (int k = 0; k < N_VARIANTS; k++)
        if (VARIANTS[k].cpu_runs()) {
            v = &VARIANTS[k];
            break;
        }
    __atomic_store_n(&current, v, __ATOMIC_RELEASE);
    return v;
}

static const Variant *find(const char *name) {
    if (!name) return NULL;
    for (int k = 0; k < N_VARIANTS; k++)
        if (strcmp(VARIANTS[k].name, name) == 0) return &VARIANTS[k];
    return NULL;
}

/* ---------------------------------------------------------------------------
 * The public choice (lenet5.h).
 */
const char *l5_isa(void) { return running()->name; }

int l5_isa_lanes(void) { return running()->lanes(); }

int l5_isa_status(const char *name) {
    const Variant *v = find(name);
    if (!v) return L5_ISA_NOT_BUILT;
    return v->cpu_runs() ? L5_ISA_RUNS : L5_ISA_CPU_LACKS;
}

int l5_use_isa(const char *name) {
    const Variant *v = find(name);
    if (!v || !v->cpu_runs()) return L5_ERR_ISA;
    __atomic_store_n(&current, v, __ATOMIC_RELEASE);
    return L5_OK;
}

/* ---------------------------------------------------------------------------
 * What api.c calls (core.h): the running variant's kernels.
 */
int l5_fast_train_batch(L5Workspace *ws, double *params, const uint8_t *images,
                        const uint8_t *labels, int64_t n, int loss, const L5Update *update,
                        const L5Warp *warp, int threads, double *loss_sum, int64_t *n_correct,
                        double *profile) {
    return running()->train_batch(ws, params, images, labels, n, loss, update, warp, threads,
                                  loss_sum, n_correct, profile);
}

void l5_fast_warp_image(uint8_t *out, const uint8_t *image, const L5Warp *warp, int64_t i) {
    running()->warp_image(out, image, warp, i);
}

int l5_fast_forward(L5Workspace *ws, const double *params, const uint8_t *images, int64_t n,
                    double *out, int32_t *pred, int threads) {
    return running()->forward(ws, params, images, n, out, pred, threads);
}

double l5_fast_peak_macs(double until) { return running()->peak_macs(until); }

void l5_infer_prepare(void *prepared, const double *params) {
    running()->infer_prepare(prepared, params);
}

int l5_infer_is_prepared(const void *prepared) {
    return running()->infer_is_prepared(prepared);
}

void l5_infer_images(const void *prepared, const uint8_t *images, int64_t n,
                     double *out, int32_t *pred, int threads) {
    running()->infer_images(prepared, images, n, out, pred, threads);
}
