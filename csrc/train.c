/*
 * train.c - the public entry points: argument checks, the batch step with the
 * reference kernels, the update, and dispatch to the fast kernels.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "core.h"
#ifdef _OPENMP
#include <omp.h>
#endif

int l5_have_openmp(void) {
#ifdef _OPENMP
    return 1;
#else
    return 0;
#endif
}

int l5_default_threads(void) {
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

/*
 * w = w + k*S or w = w - k*S with k = lr / B: one division, then two
 * roundings per element (the product, then the sum), never fused.
 */
void apply_update(double *params, const double *sum, int64_t count,
                  int sign, double lr, int64_t batch) {
    double k = lr / (double)batch;
    if (sign > 0)
        for (int64_t i = 0; i < count; i++) params[i] = params[i] + k * sum[i];
    else
        for (int64_t i = 0; i < count; i++) params[i] = params[i] - k * sum[i];
}

/* The checks every entry point shares; returns L5_OK or an error code. */
static int check_common(const void *params, int64_t n_params, const void *images,
                        int64_t n, int kernel, int threads) {
    if (!params || !images) return L5_ERR_NULL;
    if (n_params != L5_N_PARAMS) return L5_ERR_SIZE;
    if (n < 1) return L5_ERR_COUNT;
    if (kernel != L5_KERNEL_REFERENCE && kernel != L5_KERNEL_FAST) return L5_ERR_KERNEL;
    if (threads < 0 || threads > L5_MAX_THREADS) return L5_ERR_THREADS;
    return L5_OK;
}

static int check_labels(const uint8_t *labels, int64_t n) {
    if (!labels) return L5_ERR_NULL;
    for (int64_t i = 0; i < n; i++)
        if (labels[i] >= L5_N_CLASSES) return L5_ERR_LABEL;
    return L5_OK;
}

/*
 * The batch step with the reference kernels, literally as SPEC.md says it:
 * each image's gradient buffer G is computed completely, then added to S.
 */
static int reference_train_batch(double *params, const uint8_t *images,
                                 const uint8_t *labels, int64_t n, int loss, int sign,
                                 double lr, double *loss_sum, int64_t *n_correct) {
    Activations *a = malloc(sizeof(Activations));
    double *grad = malloc(sizeof(double) * L5_N_PARAMS);
    double *sum = calloc(L5_N_PARAMS, sizeof(double));
    if (!a || !grad || !sum) {
        free(a); free(grad); free(sum);
        return L5_ERR_NOMEM;
    }
    double total = 0.0;
    int64_t correct = 0;
    for (int64_t i = 0; i < n; i++) {
        double d[N_OUT];
        forward_image(a, params, images + i * L5_IMAGE_PIXELS);
        correct += argmax10(a->output) == labels[i];
        total += output_error(d, a->output, labels[i], loss);
        backward_image(grad, a, d, params);
        for (int j = 0; j < L5_N_PARAMS; j++) sum[j] = sum[j] + grad[j];
    }
    apply_update(params, sum, L5_N_PARAMS, sign, lr, n);
    *loss_sum = total;
    *n_correct = correct;
    free(a); free(grad); free(sum);
    return L5_OK;
}

int l5_train_batch(double *params, int64_t n_params,
                   const uint8_t *images, const uint8_t *labels, int64_t n,
                   int loss, int sign, double lr, int kernel, int threads,
                   double *loss_sum, int64_t *n_correct) {
    int err = check_common(params, n_params, images, n, kernel, threads);
    if (err) return err;
    if (!loss_sum || !n_correct) return L5_ERR_NULL;
    if ((err = check_labels(labels, n))) return err;
    if (loss != L5_LOSS_MSE && loss != L5_LOSS_XENT) return L5_ERR_LOSS;
    if (sign != 1 && sign != -1) return L5_ERR_SIGN;
    if (!(lr > 0.0) || !isfinite(lr)) return L5_ERR_LR;
    if (kernel == L5_KERNEL_REFERENCE)
        return reference_train_batch(params, images, labels, n, loss, sign, lr,
                                     loss_sum, n_correct);
    return fast_train_batch(params, images, labels, n, loss, sign, lr, threads,
                            loss_sum, n_correct);
}

int l5_forward(const double *params, int64_t n_params,
               const uint8_t *images, int64_t n, double *out,
               int kernel, int threads) {
    int err = check_common(params, n_params, images, n, kernel, threads);
    if (err) return err;
    if (!out) return L5_ERR_NULL;
    if (kernel == L5_KERNEL_FAST) return fast_forward(params, images, n, out, threads);
    Activations *a = malloc(sizeof(Activations));
    if (!a) return L5_ERR_NOMEM;
    for (int64_t i = 0; i < n; i++) {
        forward_image(a, params, images + i * L5_IMAGE_PIXELS);
        memcpy(out + i * N_OUT, a->output, sizeof(double) * N_OUT);
    }
    free(a);
    return L5_OK;
}

int l5_predict(const double *params, int64_t n_params,
               const uint8_t *images, int64_t n, int32_t *pred,
               int kernel, int threads) {
    if (!pred) return L5_ERR_NULL;
    int err = check_common(params, n_params, images, n, kernel, threads);
    if (err) return err;
    double *out = malloc(sizeof(double) * N_OUT * n);
    if (!out) return L5_ERR_NOMEM;
    err = l5_forward(params, n_params, images, n, out, kernel, threads);
    if (!err)
        for (int64_t i = 0; i < n; i++) pred[i] = argmax10(out + i * N_OUT);
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
    Activations *a = malloc(sizeof(Activations));
    if (!a) return L5_ERR_NOMEM;
    double d[N_OUT];
    forward_image(a, params, image);
    *loss_value = output_error(d, a->output, label, loss);
    backward_image(grad, a, d, params);
    free(a);
    return L5_OK;
}

int l5_normalize(const uint8_t *image, double *input_32x32) {
    if (!image || !input_32x32) return L5_ERR_NULL;
    normalize_image(input_32x32, image);
    return L5_OK;
}
