/*
 * common.c - the helpers both kernel sets share: the input normalisation, the
 * output error, the predicted class, the update, the thread count, and the
 * profiler's stage table and clock.  They work on one image (or one flat
 * array) at a time and call nothing else of the core; reference.c and fast.c
 * call them, so both compute these steps with the very same code.
 */
#define _POSIX_C_SOURCE 200809L /* clock_gettime: -std=c11 alone hides POSIX */
#include <math.h>
#include <string.h>
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

/* The predicted class: the largest output, ties to the smallest index
 * (docs/SPEC.md §5.5). */
int l5_argmax10(const double *z) {
    int best = 0;
    for (int i = 1; i < L5_N_CLASSES; i++)
        if (z[i] > z[best]) best = i;
    return best;
}

/*
 * The output error d from the ReLU-ed outputs z and the label; returns the
 * image's loss (docs/SPEC.md §6.3).  The two variants differ in sign
 * convention (docs/SPEC.md §6.1, §6.2, §8.2):
 *   mse  returns the NEGATIVE gradient of E = 1/2 sum (p - y)^2, p = softmax(z),
 *        so the reference's update w += lr/B * S descends;
 *   xent returns the POSITIVE gradient p - y of -log p_label, so it must be
 *        paired with w -= lr/B * S.  Pair it with += and training climbs.
 */
double l5_output_error(double *d, const double *z, int label, int loss) {
    double p[L5_N_CLASSES];
    double value = 0.0;
    if (loss == L5_LOSS_MSE) {
        /* p_i = 1 / sum_j exp(z_j - z_i): the reference's softmax. */
        for (int i = 0; i < L5_N_CLASSES; i++) {
            double s = 0.0;
            for (int j = 0; j < L5_N_CLASSES; j++) s += exp(z[j] - z[i]);
            p[i] = 1.0 / s;
        }
        double inner = 0.0;
        for (int i = 0; i < L5_N_CLASSES; i++) inner = inner - p[i] * p[i];
        inner = inner + p[label];
        for (int i = 0; i < L5_N_CLASSES; i++) {
            double y = (i == label) ? 1.0 : 0.0;
            d[i] = p[i] * ((y - p[i]) - inner);
            value += (p[i] - y) * (p[i] - y);
        }
        return 0.5 * value;
    }
    /* xent: softmax shifted by the largest output, then p - y. */
    double m = -INFINITY, ex[L5_N_CLASSES], s = 0.0;
    for (int i = 0; i < L5_N_CLASSES; i++)
        if (z[i] > m) m = z[i];
    for (int i = 0; i < L5_N_CLASSES; i++) {
        ex[i] = exp(z[i] - m);
        s += ex[i];
    }
    for (int i = 0; i < L5_N_CLASSES; i++) {
        p[i] = ex[i] / s;
        d[i] = p[i] - ((i == label) ? 1.0 : 0.0);
    }
    return -log(p[label]);
}

/*
 * The reference's update (docs/SPEC.md §8.2): w = w + k*S or w = w - k*S
 * with k = lr / B: one division, then two roundings per element (the
 * product, then the sum), never fused.
 */
static void plain_update(double *params, const double *sum, int64_t count,
                         int sign, double lr, int64_t batch) {
    double k = lr / (double)batch;
    if (sign > 0)
        for (int64_t i = 0; i < count; i++) params[i] = params[i] + k * sum[i];
    else
        for (int64_t i = 0; i < count; i++) params[i] = params[i] - k * sum[i];
}

/*
 * SGD with momentum and L2 weight decay (docs/SPEC.md §8.5), per element:
 *     g = sign * (S / B)            the step the sign asks for (negation is exact)
 *     g = g - lambda * w            decay pulls toward zero, whatever the sign
 *     v = mu * v + g
 *     w = w + lr * v                heavy ball
 *     w = w + lr * (g + mu * v)     Nesterov (v already updated)
 * every operation rounded on its own, in this order, so a NumPy line-by-line
 * transcription gives the same bytes.  Elements never interact, so any split
 * of them over threads gives the same bytes too.
 */
static void momentum_update(double *params, double *velocity, const double *sum,
                            int64_t count, const L5Update *u, int64_t batch) {
    const double b = (double)batch, mu = u->momentum, lambda = u->weight_decay, lr = u->lr;
#pragma omp parallel for schedule(static) num_threads(l5_resolve_threads(u->threads))
    for (int64_t i = 0; i < count; i++) {
        double g = sum[i] / b;
        if (u->sign < 0) g = -g;
        g = g - lambda * params[i];
        double v = mu * velocity[i] + g;
        velocity[i] = v;
        if (u->nesterov)
            params[i] = params[i] + lr * (g + mu * v);
        else
            params[i] = params[i] + lr * v;
    }
}

void l5_apply_update(double *params, const double *sum, int64_t count,
                     const L5Update *update, int64_t batch) {
    if (update->velocity)
        momentum_update(params, update->velocity, sum, count, update, batch);
    else
        plain_update(params, sum, count, update->sign, update->lr, batch);
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
    [L5_STAGE_CONV1_GRAD] = "conv1 grad", [L5_STAGE_STORE] = "store",
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
