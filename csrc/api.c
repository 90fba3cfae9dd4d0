/*
 * api.c - the public entry points of lenet5.h: check every argument, then
 * make one call into a kernel set (reference.c or fast.c) or common.c, loss.c, update.c.  C
 * never trusts its caller: every check is here, so the files below need none.
 */
#include <math.h>
#include <stdlib.h>
#include "core.h"

int l5_have_openmp(void) {
#ifdef _OPENMP
    return 1;
#else
    return 0;
#endif
}

int l5_default_threads(void) { return l5_thread_count(0); }

/* A thread count every threaded entry point takes: 0 (the default) to L5_MAX_THREADS. */
static int check_threads(int threads) {
    return threads < 0 || threads > L5_MAX_THREADS ? L5_ERR_THREADS : L5_OK;
}

/* The checks every batch entry point shares; returns L5_OK or an error code. */
static int check_common(const void *params, int64_t n_params, const void *images,
                        int64_t n, int kernel, int threads) {
    if (!params || !images) return L5_ERR_NULL;
    if (n_params != L5_N_PARAMS) return L5_ERR_SIZE;
    if (n < 1) return L5_ERR_COUNT;
    if (kernel != L5_KERNEL_REFERENCE && kernel != L5_KERNEL_FAST) return L5_ERR_KERNEL;
    if (check_threads(threads)) return L5_ERR_THREADS;
    return L5_OK;
}

static int check_labels(const uint8_t *labels, int64_t n) {
    if (!labels) return L5_ERR_NULL;
    for (int64_t i = 0; i < n; i++)
        if (labels[i] >= L5_N_CLASSES) return L5_ERR_LABEL;
    return L5_OK;
}

/* The checks of a training batch, sgd or not; returns L5_OK or an error code. */
static int check_train(const double *params, int64_t n_params, const uint8_t *images,
                       const uint8_t *labels, int64_t n, int loss, int sign, double lr,
                       int kernel, int threads, const double *loss_sum, const int64_t *n_correct) {
    int err = check_common(params, n_params, images, n, kernel, threads);
    if (err) return err;
    if (!loss_sum || !n_correct) return L5_ERR_NULL;
    if ((err = check_labels(labels, n))) return err;
    if (loss != L5_LOSS_MSE && loss != L5_LOSS_XENT) return L5_ERR_LOSS;
    if (sign != 1 && sign != -1) return L5_ERR_SIGN;
    if (!(lr > 0.0) || !isfinite(lr)) return L5_ERR_LR;
    return L5_OK;
}

/* The momentum checks of every sgd entry point. */
static int check_sgd(double momentum, double weight_decay, int nesterov) {
    /* mu >= 1 never forgets a step: the velocity grows without bound. */
    if (!(momentum >= 0.0 && momentum < 1.0)) return L5_ERR_MOMENTUM;
    if (nesterov != 0 && nesterov != 1) return L5_ERR_MOMENTUM;
    if (!(weight_decay >= 0.0) || !isfinite(weight_decay)) return L5_ERR_DECAY;
    return L5_OK;
}

/* Ranges past these would warp a digit out of its 28 x 28 frame, or turn it
 * over (a 6 into a 9): refused as mistakes. */
#define L5_AUGMENT_MAX_SHIFT 14.0
#define L5_AUGMENT_MAX_ROTATE 90.0
#define L5_AUGMENT_MAX_SCALE 0.5
#define L5_AUGMENT_MAX_INDEX ((int64_t)1 << 53)

/* The checks of a warp of n images (l5_augment's, and a training batch's). */
static int check_warp(const L5Warp *w, int64_t n) {
    if (!(w->max_shift >= 0.0 && w->max_shift <= L5_AUGMENT_MAX_SHIFT)) return L5_ERR_AUGMENT;
    if (!(w->max_rotate >= 0.0 && w->max_rotate <= L5_AUGMENT_MAX_ROTATE)) return L5_ERR_AUGMENT;
    if (!(w->max_scale >= 0.0 && w->max_scale <= L5_AUGMENT_MAX_SCALE)) return L5_ERR_AUGMENT;
    if (w->epoch < 0) return L5_ERR_AUGMENT;
    for (int64_t i = 0; i < n; i++)
        if (w->index[i] < 0 || w->index[i] > L5_AUGMENT_MAX_INDEX) return L5_ERR_AUGMENT;
    return L5_OK;
}

/* One batch step with a checked update, in the chosen kernel set.  The
 * reference kernels stay single-threaded, the update included. */
static int run_batch(double *params, const uint8_t *images, const uint8_t *labels, int64_t n,
                     int loss, const L5Update *update, int kernel, int threads,
                     double *loss_sum, int64_t *n_correct) {
    if (kernel == L5_KERNEL_REFERENCE)
        return l5_ref_train_batch(params, images, labels, n, loss, update, loss_sum, n_correct);
    L5Workspace own = {0}; /* this call's alone: freed when it ends */
    int err = l5_fast_train_batch(&own, params, images, labels, n, loss, update, NULL, threads,
                                  loss_sum, n_correct, NULL);
    l5_workspace_release(&own);
    return err;
}

int l5_train_batch(double *params, int64_t n_params,
                   const uint8_t *images, const uint8_t *labels, int64_t n,
                   int loss, int sign, double lr, int kernel, int threads,
                   double *loss_sum, int64_t *n_correct) {
    int err = check_train(params, n_params, images, labels, n, loss, sign, lr, kernel, threads,
                          loss_sum, n_correct);
    if (err) return err;
    L5Update update = {sign, lr, 0.0, 0.0, 0, NULL};
    return run_batch(params, images, labels, n, loss, &update, kernel, threads, loss_sum, n_correct);
}

int l5_train_batch_sgd(double *params, double *velocity, int64_t n_params,
                       const uint8_t *images, const uint8_t *labels, int64_t n,
                       int loss, int sign, double lr, double momentum,
                       double weight_decay, int nesterov, int kernel, int threads,
                       double *loss_sum, int64_t *n_correct) {
    int err = check_train(params, n_params, images, labels, n, loss, sign, lr, kernel, threads,
                          loss_sum, n_correct);
    if (err) return err;
    if (!velocity) return L5_ERR_NULL;
    if ((err = check_sgd(momentum, weight_decay, nesterov))) return err;
    L5Update update = {sign, lr, momentum, weight_decay, nesterov, velocity};
    return run_batch(params, images, labels, n, loss, &update, kernel, threads, loss_sum, n_correct);
}

int l5_train_batch_ws(L5Workspace *ws, double *params, double *velocity, int64_t n_params,
                      const uint8_t *images, const uint8_t *labels, int64_t n,
                      int loss, int sign, double lr, double momentum, double weight_decay,
                      int nesterov, const int64_t *warp_index, uint64_t warp_seed,
                      int64_t warp_epoch, double max_shift, double max_rotate, double max_scale,
                      int threads, double *seconds, int64_t n_seconds,
                      double *loss_sum, int64_t *n_correct) {
    int err = check_train(params, n_params, images, labels, n, loss, sign, lr, L5_KERNEL_FAST,
                          threads, loss_sum, n_correct);
    if (err) return err;
    if (!ws) return L5_ERR_NULL;
    if ((err = check_sgd(momentum, weight_decay, nesterov))) return err;
    /* No velocity: the reference's update, which has no momentum to apply. */
    if (!velocity && (momentum != 0.0 || weight_decay != 0.0 || nesterov)) return L5_ERR_NULL;
    L5Warp warp = {warp_index, warp_seed, warp_epoch, max_shift, max_rotate, max_scale};
    if (warp_index && (err = check_warp(&warp, n))) return err;
    if (seconds && n_seconds != L5_N_STAGES) return L5_ERR_SIZE;
    if (!l5_workspace_enter(ws)) return L5_ERR_BUSY;
    L5Update update = {sign, lr, momentum, weight_decay, nesterov, velocity};
    err = l5_fast_train_batch(ws, params, images, labels, n, loss, &update,
                              warp_index ? &warp : NULL, threads, loss_sum, n_correct, seconds);
    l5_workspace_leave(ws);
    return err;
}

int l5_forward_ws(L5Workspace *ws, const double *params, int64_t n_params,
                  const uint8_t *images, int64_t n, double *out, int32_t *pred, int threads) {
    int err = check_common(params, n_params, images, n, L5_KERNEL_FAST, threads);
    if (err) return err;
    if (!ws || (!out && !pred)) return L5_ERR_NULL;
    if (!l5_workspace_enter(ws)) return L5_ERR_BUSY;
    err = l5_fast_forward(ws, params, images, n, out, pred, threads);
    l5_workspace_leave(ws);
    return err;
}

/* Below this many images a thread team costs more than it saves: one image
 * takes about 9-15 us, a team's start and barrier tens of microseconds.  A
 * batch of the preset (64) already pays: 0.58 -> 0.38 ms on 2 threads of a
 * shared Xeon (docs/SPEC.md §9.8). */
#define L5_AUGMENT_MIN_PARALLEL 32

/* Warp n images with the kernel set's warp, image i keyed by (seed, epoch,
 * index[i]).  Images are independent, so any split over threads gives the
 * same bytes. */
static void augment_batch(const uint8_t *images, int64_t n, const L5Warp *warp, uint8_t *out,
                          int kernel, int threads) {
    (void)threads; /* read only by the OpenMP pragma: a build without OpenMP ignores it */
#pragma omp parallel for schedule(static) num_threads(l5_resolve_threads(threads)) \
    if (n >= L5_AUGMENT_MIN_PARALLEL)
    for (int64_t i = 0; i < n; i++) {
        uint8_t *to = out + i * L5_IMAGE_PIXELS;
        const uint8_t *from = images + i * L5_IMAGE_PIXELS;
        if (kernel == L5_KERNEL_REFERENCE)
            l5_warp_image_ref(to, from, warp, i);
        else
            l5_fast_warp_image(to, from, warp, i);
    }
}

int l5_augment(const uint8_t *images, const int64_t *index, int64_t n,
               uint64_t seed, int64_t epoch, double max_shift, double max_rotate,
               double max_scale, uint8_t *out, int kernel, int threads) {
    if (!images || !index || !out) return L5_ERR_NULL;
    if (n < 1) return L5_ERR_COUNT;
    if (kernel != L5_KERNEL_REFERENCE && kernel != L5_KERNEL_FAST) return L5_ERR_KERNEL;
    if (check_threads(threads)) return L5_ERR_THREADS;
    L5Warp warp = {index, seed, epoch, max_shift, max_rotate, max_scale};
    int err = check_warp(&warp, n);
    if (err) return err;
    augment_batch(images, n, &warp, out, kernel, threads);
    return L5_OK;
}

int l5_forward(const double *params, int64_t n_params,
               const uint8_t *images, int64_t n, double *out,
               int kernel, int threads) {
    int err = check_common(params, n_params, images, n, kernel, threads);
    if (err) return err;
    if (!out) return L5_ERR_NULL;
    if (kernel == L5_KERNEL_REFERENCE) return l5_ref_forward(params, images, n, out);
    L5Workspace own = {0};
    err = l5_fast_forward(&own, params, images, n, out, NULL, threads);
    l5_workspace_release(&own);
    return err;
}

/* The forward pass through the checked entry point, then each image's class. */
int l5_predict(const double *params, int64_t n_params,
               const uint8_t *images, int64_t n, int32_t *pred,
               int kernel, int threads) {
    if (!pred) return L5_ERR_NULL;
    int err = check_common(params, n_params, images, n, kernel, threads);
    if (err) return err;
    double *out = malloc(sizeof(double) * L5_N_CLASSES * n);
    if (!out) return L5_ERR_NOMEM;
    err = l5_forward(params, n_params, images, n, out, kernel, threads);
    if (!err)
        for (int64_t i = 0; i < n; i++) pred[i] = l5_argmax10(out + i * L5_N_CLASSES);
    free(out);
    return err;
}

int l5_image_gradient(const double *params, int64_t n_params,
                      const uint8_t *image, int label, int loss,
                      double *grad, double *loss_value) {
    if (!params || !image || !grad || !loss_value) return L5_ERR_NULL;
    if (n_params != L5_N_PARAMS) return L5_ERR_SIZE;
    if (label < 0 || label >= L5_N_CLASSES) return L5_ERR_LABEL;
    if (loss != L5_LOSS_MSE && loss != L5_LOSS_XENT) return L5_ERR_LOSS;
    return l5_ref_image_gradient(params, image, label, loss, grad, loss_value);
}

int l5_forward_activations(const double *params, int64_t n_params, const uint8_t *image,
                           double *layer1, double *layer3, double *output) {
    if (!params || !image || !layer1 || !layer3 || !output) return L5_ERR_NULL;
    if (n_params != L5_N_PARAMS) return L5_ERR_SIZE;
    return l5_ref_forward_activations(params, image, layer1, layer3, output);
}

int l5_normalize(const uint8_t *image, double *input_32x32) {
    if (!image || !input_32x32) return L5_ERR_NULL;
    l5_normalize_image(input_32x32, image);
    return L5_OK;
}

/* A prepared buffer's size and alignment (its contents are infer.c's to check). */
static int check_prepared_buffer(const void *prepared, int64_t prepared_bytes) {
    if (!prepared) return L5_ERR_NULL;
    if (prepared_bytes != L5_PREPARED_BYTES || (uintptr_t)prepared % sizeof(double) != 0)
        return L5_ERR_PREPARED;
    return L5_OK;
}

int l5_prepare(const double *params, int64_t n_params, void *prepared, int64_t prepared_bytes) {
    if (!params) return L5_ERR_NULL;
    if (n_params != L5_N_PARAMS) return L5_ERR_SIZE;
    int err = check_prepared_buffer(prepared, prepared_bytes);
    if (err) return err;
    l5_infer_prepare(prepared, params);
    return L5_OK;
}

/* The checks both prepared passes share. */
static int check_prepared_call(const void *prepared, int64_t prepared_bytes,
                               const uint8_t *images, int64_t n, int threads) {
    int err = check_prepared_buffer(prepared, prepared_bytes);
    if (err) return err;
    if (!images) return L5_ERR_NULL;
    if (n < 1) return L5_ERR_COUNT;
    if (check_threads(threads)) return L5_ERR_THREADS;
    if (!l5_infer_is_prepared(prepared)) return L5_ERR_PREPARED;
    return L5_OK;
}

int l5_forward_prepared(const void *prepared, int64_t prepared_bytes,
                        const uint8_t *images, int64_t n, double *out, int threads) {
    int err = check_prepared_call(prepared, prepared_bytes, images, n, threads);
    if (err) return err;
    if (!out) return L5_ERR_NULL;
    l5_infer_images(prepared, images, n, out, NULL, threads);
    return L5_OK;
}

int l5_predict_prepared(const void *prepared, int64_t prepared_bytes,
                        const uint8_t *images, int64_t n, int32_t *pred, int threads) {
    int err = check_prepared_call(prepared, prepared_bytes, images, n, threads);
    if (err) return err;
    if (!pred) return L5_ERR_NULL;
    l5_infer_images(prepared, images, n, NULL, pred, threads);
    return L5_OK;
}

int l5_predict_one(const void *prepared, int64_t prepared_bytes, const uint8_t *image) {
    int32_t digit;
    int err = l5_predict_prepared(prepared, prepared_bytes, image, 1, &digit, 1);
    return err ? err : digit;
}

/* ---------------------------------------------------------------------------
 * Profiling (docs/SPEC.md §9.7).
 */
const char *l5_profile_stage_name(int stage) {
    return stage >= 0 && stage < L5_N_STAGES ? l5_stage_names[stage] : NULL;
}

int64_t l5_profile_stage_macs(int stage) {
    return stage >= 0 && stage < L5_N_STAGES ? l5_stage_macs[stage] : -1;
}

int l5_profile_train_batch(double *params, int64_t n_params,
                           const uint8_t *images, const uint8_t *labels, int64_t n,
                           int loss, int sign, double lr, int threads,
                           double *seconds, int64_t n_seconds,
                           double *loss_sum, int64_t *n_correct) {
    int err = check_train(params, n_params, images, labels, n, loss, sign, lr, L5_KERNEL_FAST,
                          threads, loss_sum, n_correct);
    if (err) return err;
    if (!seconds) return L5_ERR_NULL;
    if (n_seconds != L5_N_STAGES) return L5_ERR_SIZE;
    L5Update update = {sign, lr, 0.0, 0.0, 0, NULL};
    L5Workspace own = {0};
    err = l5_fast_train_batch(&own, params, images, labels, n, loss, &update, NULL, threads,
                              loss_sum, n_correct, seconds);
    l5_workspace_release(&own);
    return err;
}

/* A minute is more than any benchmark needs: a longer wait is a mistake. */
#define L5_PEAK_MAX_SECONDS 60.0

double l5_peak_macs(int threads, double seconds) {
    if (check_threads(threads)) return -1.0;
    if (!(seconds > 0.0 && seconds <= L5_PEAK_MAX_SECONDS)) return -1.0;
    /* The team's multiply-adds over its wall time, as a batch's rate is
     * taken: a thread that did not run for part of it (another process on
     * its core) lowers the peak instead of being counted at its own best. */
    double total = 0.0, start = l5_now();
#pragma omp parallel num_threads(l5_resolve_threads(threads)) reduction(+ : total)
    total += l5_fast_peak_macs(start + seconds);
    return total / (l5_now() - start);
}
