/*
 * common.c - the helpers every kernel set shares: the input normalisation,
 * the thread count and fork safety, and the profiler's stage table and
 * clock.  (The loss is in loss.c, the update in update.c.)  They work on one
 * image at a time and call nothing else of the core; reference.c, fast.c and
 * infer.c call them, so all compute these steps with the very same code.
 */
#define _POSIX_C_SOURCE 200809L /* clock_gettime: -std=c11 alone hides POSIX */
#include <math.h>
#include <string.h>
#include <sched.h>
#include <time.h>
#include "core.h"
#ifdef _OPENMP
#include <omp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#endif

/*
 * Per-image normalisation to zero mean and unit deviation, placed in the
 * middle of a 32 x 32 zero frame (docs/SPEC.md §4).  Both sums are exact
 * (integers below 2^53), so only the divisions, the product and the sqrt
 * round.  A flat image has no deviation: the reference divides by zero and
 * makes NaNs; we give it an all-zero input instead, which changes nothing for
 * any other image (docs/SPEC.md §12).
 */
int l5_image_moments(const uint8_t *pixels, double *mean, double *std) {
    int64_t s1 = 0, s2 = 0; /* exact in any order, so integers: the same doubles */
    for (int i = 0; i < L5_IMAGE_PIXELS; i++) {
        s1 += pixels[i];
        s2 += pixels[i] * pixels[i];
    }
    *mean = (double)s1 / L5_IMAGE_PIXELS;
    double var = (double)s2 / L5_IMAGE_PIXELS - *mean * *mean;
    if (!(var > 0.0)) return 0;
    *std = sqrt(var);
    return 1;
}

void l5_normalize_image(double *input, const uint8_t *pixels) {
    double mean, std;
    memset(input, 0, sizeof(double) * L5_INPUT_CELLS);
    if (!l5_image_moments(pixels, &mean, &std)) return; /* flat image: leave the input at zero */
    for (int r = 0; r < L5_IMAGE_SIZE; r++)
        for (int c = 0; c < L5_IMAGE_SIZE; c++)
            input[(r + L5_INPUT_PAD) * L5_INPUT_SIZE + (c + L5_INPUT_PAD)] =
                ((double)pixels[r * L5_IMAGE_SIZE + c] - mean) / std;
}

#ifdef _OPENMP
/*
 * Fork safety (docs/SPEC.md §9.1).  libgomp keeps its pool of threads for the
 * next team; a child forked after a team ran inherits the pool's bookkeeping
 * but not its threads, and the next team waits for them forever.  So a team
 * that ran is remembered, and a child forked after it runs on one thread
 * (its own), with a note saying so once.
 */
static atomic_int l5_team_ran = 0;
static int l5_forked_after_team = 0; /* set in the child before it has threads */
static atomic_int l5_noted_fork = 0, l5_noted_cap = 0;

static void l5_on_fork_child(void) {
    if (atomic_load(&l5_team_ran)) l5_forked_after_team = 1;
}

/* OpenMP's default team size as the library loads (OMP_NUM_THREADS, else
 * the cores), read once: another library in the process may change OpenMP's
 * default for its own threads later (PyTorch's set_num_threads does), and
 * lenet5's default must not follow it. */
static int l5_default_team = 1;

__attribute__((constructor)) static void l5_on_load(void) {
    pthread_atfork(NULL, NULL, l5_on_fork_child);
    l5_default_team = omp_get_max_threads();
}

static void l5_note_once(atomic_int *noted, const char *text) {
    if (!atomic_exchange(noted, 1)) fputs(text, stderr);
}
#endif

/*
 * The team size: the caller's count, else OpenMP's default as the library
 * loaded (OMP_NUM_THREADS, else the cores) capped at the CPUs this process
 * may use (10,000 threads would only cost memory); one thread in a build
 * without OpenMP or in a child forked after a team ran.  Asking is not
 * running: only l5_resolve_threads, called just before a team starts, marks
 * the pool as used (so a fork after l5_default_threads alone keeps its
 * threads).
 */
int l5_thread_count(int threads) {
#ifdef _OPENMP
    if (l5_forked_after_team) {
        l5_note_once(&l5_noted_fork, "lenet5: this process was forked after the C core ran threads; "
                                     "it runs on one thread here (same results)\n");
        return 1;
    }
    int team = threads;
    if (team <= 0) {
        team = l5_default_team;
        int cpus = omp_get_num_procs();
        if (team > cpus) {
            l5_note_once(&l5_noted_cap, "lenet5: OMP_NUM_THREADS is more than the CPUs this process "
                                        "may use; using one thread per CPU\n");
            team = cpus;
        }
    }
    return team;
#else
    (void)threads;
    return 1;
#endif
}

int l5_resolve_threads(int threads) {
    int team = l5_thread_count(threads);
#ifdef _OPENMP
    if (team > 1) atomic_store(&l5_team_ran, 1);
#endif
    return team;
}

/* ---------------------------------------------------------------------------
 * The profiler's stages (docs/SPEC.md §9.7): names, and multiply-adds per
 * image counted from the layer shapes.  A convolution's forward pass, its
 * input error and its weight gradient each take one multiply-add per
 * (output cell, input map, kernel cell); the batch sum forms W3's and W4's
 * gradients as outer products (§9.3).  Poolings, the output error, copies
 * and the update count none.
 */
#define L5_CONV1_MACS ((int64_t)L5_LAYER1_CELLS * 1 * L5_CONV_KERNEL_CELLS)              /* 117,600 */
#define L5_CONV2_MACS ((int64_t)L5_LAYER3_CELLS * L5_CONV1_MAPS * L5_CONV_KERNEL_CELLS)  /* 240,000 */
#define L5_CONV3_MACS ((int64_t)L5_W3_SIZE)                                             /* 48,000 */
#define L5_FC_MACS ((int64_t)L5_W4_SIZE)                                                /* 1,200 */

const char *const l5_stage_names[L5_N_STAGES] = {
    [L5_STAGE_LOAD] = "load", [L5_STAGE_CONV1] = "conv1", [L5_STAGE_POOL1] = "pool1",
    [L5_STAGE_CONV2] = "conv2", [L5_STAGE_POOL2] = "pool2", [L5_STAGE_CONV3] = "conv3",
    [L5_STAGE_FC] = "fc", [L5_STAGE_OUTPUT_ERROR] = "output error",
    [L5_STAGE_FC_BACK] = "fc back", [L5_STAGE_CONV3_BACK] = "conv3 back",
    [L5_STAGE_POOL2_BACK] = "pool2 back", [L5_STAGE_CONV2_BACK] = "conv2 back",
    [L5_STAGE_CONV2_GRAD] = "conv2 grad", [L5_STAGE_POOL1_BACK] = "pool1 back",
    [L5_STAGE_CONV1_GRAD] = "conv1 grad", [L5_STAGE_STORE] = "store", [L5_STAGE_WARP] = "warp",
    [L5_STAGE_SUM] = "batch sum", [L5_STAGE_UPDATE] = "update",
};

const int64_t l5_stage_macs[L5_N_STAGES] = {
    [L5_STAGE_CONV1] = L5_CONV1_MACS, [L5_STAGE_CONV2] = L5_CONV2_MACS,
    [L5_STAGE_CONV3] = L5_CONV3_MACS, [L5_STAGE_FC] = L5_FC_MACS,
    [L5_STAGE_FC_BACK] = L5_FC_MACS, [L5_STAGE_CONV3_BACK] = L5_CONV3_MACS,
    [L5_STAGE_CONV2_BACK] = L5_CONV2_MACS, [L5_STAGE_CONV2_GRAD] = L5_CONV2_MACS,
    [L5_STAGE_CONV1_GRAD] = L5_CONV1_MACS, [L5_STAGE_SUM] = L5_CONV3_MACS + L5_FC_MACS,
};

double l5_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* A short wait spins: a barrier's sleep and wake-up costs tens of
 * microseconds on a VM.  A long one (a teammate's core taken by another
 * process) yields the core instead of burning it. */
void l5_wait_for(const int *counter, int value) {
    for (int spins = 0; __atomic_load_n(counter, __ATOMIC_ACQUIRE) < value; spins++)
        if (spins >= 1000) sched_yield();
}
