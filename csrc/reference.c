/*
 * reference.c - the plain kernels: one image at a time, one function per
 * layer pass, loops in exactly the order docs/SPEC.md §5 (forward) and §7
 * (backward) state, and the batch step made of them (docs/SPEC.md §8.1).
 * This file is the readable definition of the network; the fast kernels
 * (fast.c) are tested against it bit for bit.  It uses only common.c, loss.c and update.c.
 *
 * Layouts are row-major with the last index fastest: a stack of maps is
 * [map][row][column], weights are [input map][output map][kr][kc].
 * Letters: ci, co input and output map; r, c output row and column; p, q
 * input row and column; kr, kc kernel row and column; h, w the input's
 * height and width, oh, ow the output's.  layerN is the activation after
 * layer N, eN the error over it (the gradient the backward pass carries).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "core.h"

/* One image's activations, kept for the backward pass. */
typedef struct {
    double input[L5_INPUT_CELLS];
    double layer1[L5_LAYER1_CELLS];
    double layer2[L5_LAYER2_CELLS];
    int win2[L5_LAYER2_CELLS];  /* which of the 4 pooled cells won (0..3) */
    double layer3[L5_LAYER3_CELLS];
    double layer4[L5_LAYER4_CELLS];
    int win4[L5_LAYER4_CELLS];
    double layer5[L5_LAYER5_CELLS];
    double output[L5_N_CLASSES];
} Activations;

static double relu(double x) { return x > 0.0 ? x : 0.0; }

/* The derivative of ReLU, read off the layer's (already ReLU-ed) value
 * (docs/SPEC.md §5.1). */
static double relugrad(double y) { return y > 0.0 ? 1.0 : 0.0; }

/*
 * Valid 5x5 convolution with ReLU (docs/SPEC.md §5.2): in [c_in][h][w] -> out
 * [c_out][h-4][w-4].  Each output sums over input maps, then kernel rows,
 * then kernel columns, from +0, and adds the bias last.
 */
static void conv_forward(double *out, const double *in, const double *weight,
                         const double *bias, int c_in, int c_out, int h, int w) {
    int oh = h - L5_CONV_KERNEL + 1, ow = w - L5_CONV_KERNEL + 1;
    for (int co = 0; co < c_out; co++)
        for (int r = 0; r < oh; r++)
            for (int c = 0; c < ow; c++) {
                double acc = 0.0;
                for (int ci = 0; ci < c_in; ci++) {
                    const double *x = in + (ci * h + r) * w + c;
                    const double *kern = weight + (ci * c_out + co) * L5_CONV_KERNEL_CELLS;
                    for (int kr = 0; kr < L5_CONV_KERNEL; kr++)
                        for (int kc = 0; kc < L5_CONV_KERNEL; kc++)
                            acc += x[kr * w + kc] * kern[kr * L5_CONV_KERNEL + kc];
                }
                out[(co * oh + r) * ow + c] = relu(acc + bias[co]);
            }
}

/*
 * 2x2 max pooling (docs/SPEC.md §5.3): in [maps][h][w] -> out
 * [maps][h/2][w/2].  The four cells are scanned row-major and a later one
 * wins only if strictly greater, so ties keep the earliest; win remembers the
 * winner (0..3) for the backward pass.
 */
static void maxpool_forward(double *out, int *win, const double *in,
                            int maps, int h, int w) {
    int oh = h / 2, ow = w / 2;
    for (int m = 0; m < maps; m++)
        for (int r = 0; r < oh; r++)
            for (int c = 0; c < ow; c++) {
                const double *x = in + (m * h + 2 * r) * w + 2 * c;
                double cell[4] = {x[0], x[1], x[w], x[w + 1]};
                int best = 0;
                for (int i = 1; i < 4; i++)
                    if (cell[i] > cell[best]) best = i;
                out[(m * oh + r) * ow + c] = cell[best];
                win[(m * oh + r) * ow + c] = best;
            }
}

/* Fully connected with ReLU (docs/SPEC.md §5.4):
 * out[j] = relu(sum_u in[u] * W[u][j] + b[j]). */
static void fc_forward(double *out, const double *in, const double *weight,
                       const double *bias, int n_in, int n_out) {
    for (int j = 0; j < n_out; j++) {
        double acc = 0.0;
        for (int u = 0; u < n_in; u++) acc += in[u] * weight[u * n_out + j];
        out[j] = relu(acc + bias[j]);
    }
}

/* The forward pass of one image, keeping every activation. */
static void forward_image(Activations *a, const double *params, const uint8_t *pixels) {
    l5_normalize_image(a->input, pixels);
    conv_forward(a->layer1, a->input, params + L5_OFF_W1, params + L5_OFF_B1,
                 1, L5_CONV1_MAPS, L5_INPUT_SIZE, L5_INPUT_SIZE);
    maxpool_forward(a->layer2, a->win2, a->layer1, L5_CONV1_MAPS, L5_CONV1_SIZE, L5_CONV1_SIZE);
    conv_forward(a->layer3, a->layer2, params + L5_OFF_W2, params + L5_OFF_B2,
                 L5_CONV1_MAPS, L5_CONV2_MAPS, L5_POOL1_SIZE, L5_POOL1_SIZE);
    maxpool_forward(a->layer4, a->win4, a->layer3, L5_CONV2_MAPS, L5_CONV2_SIZE, L5_CONV2_SIZE);
    conv_forward(a->layer5, a->layer4, params + L5_OFF_W3, params + L5_OFF_B3,
                 L5_CONV2_MAPS, L5_CONV3_MAPS, L5_POOL2_SIZE, L5_POOL2_SIZE);
    fc_forward(a->output, a->layer5, params + L5_OFF_W4, params + L5_OFF_B4,
               L5_CONV3_MAPS, L5_N_CLASSES);
}

/*
 * Fully connected backward (docs/SPEC.md §7.1): error over the inputs,
 * weight and bias gradients.
 *   e_in[u] = (sum_j d[j] * W[u][j]) * relugrad(in[u]),  gW[u][j] = in[u] * d[j].
 */
static void fc_backward(double *e_in, double *gw, double *gb, const double *d,
                        const double *in, const double *weight, int n_in, int n_out) {
    for (int u = 0; u < n_in; u++) {
        double acc = 0.0;
        for (int j = 0; j < n_out; j++) acc += d[j] * weight[u * n_out + j];
        e_in[u] = acc * relugrad(in[u]);
    }
    for (int j = 0; j < n_out; j++) gb[j] = d[j];
    for (int u = 0; u < n_in; u++)
        for (int j = 0; j < n_out; j++) gw[u * n_out + j] = in[u] * d[j];
}

/*
 * Convolution backward (docs/SPEC.md §7.2), for a layer with input in
 * [c_in][h][w], output error e_out [c_out][h-4][w-4] and weights
 * [c_in][c_out][5][5].
 *   e_in  (skipped when NULL): each input cell gathers, over output maps, then
 *         output rows, then output columns, the errors whose window covers it;
 *         then times relugrad of the input.
 *   gb    sums each output map's errors row-major;
 *   gw    sums, row-major over the output cells, input * error.
 */
static void conv_backward(double *e_in, double *gw, double *gb, const double *e_out,
                          const double *in, const double *weight,
                          int c_in, int c_out, int h, int w) {
    int oh = h - L5_CONV_KERNEL + 1, ow = w - L5_CONV_KERNEL + 1;
    if (e_in) {
        for (int ci = 0; ci < c_in; ci++)
            for (int p = 0; p < h; p++)
                for (int q = 0; q < w; q++) {
                    /* output cells (r, c) whose window holds (p, q) */
                    int r_lo = p - L5_CONV_KERNEL + 1 > 0 ? p - L5_CONV_KERNEL + 1 : 0;
                    int r_hi = p < oh - 1 ? p : oh - 1;
                    int c_lo = q - L5_CONV_KERNEL + 1 > 0 ? q - L5_CONV_KERNEL + 1 : 0;
                    int c_hi = q < ow - 1 ? q : ow - 1;
                    double acc = 0.0;
                    for (int co = 0; co < c_out; co++) {
                        const double *kern = weight + (ci * c_out + co) * L5_CONV_KERNEL_CELLS;
                        for (int r = r_lo; r <= r_hi; r++)
                            for (int c = c_lo; c <= c_hi; c++)
                                acc += e_out[(co * oh + r) * ow + c]
                                       * kern[(p - r) * L5_CONV_KERNEL + (q - c)];
                    }
                    e_in[(ci * h + p) * w + q] = acc * relugrad(in[(ci * h + p) * w + q]);
                }
    }
    for (int co = 0; co < c_out; co++) {
        double acc = 0.0;
        for (int i = 0; i < oh * ow; i++) acc += e_out[co * oh * ow + i];
        gb[co] = acc;
    }
    for (int ci = 0; ci < c_in; ci++)
        for (int co = 0; co < c_out; co++)
            for (int kr = 0; kr < L5_CONV_KERNEL; kr++)
                for (int kc = 0; kc < L5_CONV_KERNEL; kc++) {
                    double acc = 0.0;
                    for (int r = 0; r < oh; r++)
                        for (int c = 0; c < ow; c++)
                            acc += in[(ci * h + r + kr) * w + c + kc] * e_out[(co * oh + r) * ow + c];
                    gw[((ci * c_out + co) * L5_CONV_KERNEL + kr) * L5_CONV_KERNEL + kc] = acc;
                }
}

/* Max pool backward (docs/SPEC.md §7.3): each pooled error goes to the cell
 * that won; the rest get 0. */
static void maxpool_backward(double *e_in, const double *e_out, const int *win,
                             int maps, int h, int w) {
    int oh = h / 2, ow = w / 2;
    for (int m = 0; m < maps; m++)
        for (int r = 0; r < oh; r++)
            for (int c = 0; c < ow; c++) {
                int o = (m * oh + r) * ow + c;
                double *x = e_in + (m * h + 2 * r) * w + 2 * c;
                x[0] = x[1] = x[w] = x[w + 1] = 0.0;
                int best = win[o];
                x[(best / 2) * w + (best % 2)] = e_out[o];
            }
}

/*
 * The backward pass of one image, layers in the order of docs/SPEC.md §7.4:
 * fills grad (L5_N_PARAMS doubles: the per-image buffer G of
 * docs/SPEC.md §8.1) from the output error d.
 */
static void backward_image(double *grad, const Activations *a, const double *d,
                           const double *params) {
    double e5[L5_LAYER5_CELLS], e4[L5_LAYER4_CELLS], e3[L5_LAYER3_CELLS];
    double e2[L5_LAYER2_CELLS], e1[L5_LAYER1_CELLS];
    memset(grad, 0, sizeof(double) * L5_N_PARAMS);
    fc_backward(e5, grad + L5_OFF_W4, grad + L5_OFF_B4, d, a->layer5,
                params + L5_OFF_W4, L5_CONV3_MAPS, L5_N_CLASSES);
    conv_backward(e4, grad + L5_OFF_W3, grad + L5_OFF_B3, e5, a->layer4,
                  params + L5_OFF_W3, L5_CONV2_MAPS, L5_CONV3_MAPS, L5_POOL2_SIZE, L5_POOL2_SIZE);
    maxpool_backward(e3, e4, a->win4, L5_CONV2_MAPS, L5_CONV2_SIZE, L5_CONV2_SIZE);
    conv_backward(e2, grad + L5_OFF_W2, grad + L5_OFF_B2, e3, a->layer2,
                  params + L5_OFF_W2, L5_CONV1_MAPS, L5_CONV2_MAPS, L5_POOL1_SIZE, L5_POOL1_SIZE);
    maxpool_backward(e1, e2, a->win2, L5_CONV1_MAPS, L5_CONV1_SIZE, L5_CONV1_SIZE);
    /* The error over the image itself is never used: skip it. */
    conv_backward(NULL, grad + L5_OFF_W1, grad + L5_OFF_B1, e1, a->input,
                  params + L5_OFF_W1, 1, L5_CONV1_MAPS, L5_INPUT_SIZE, L5_INPUT_SIZE);
}

/* ---------------------------------------------------------------------------
 * What the entry points call (core.h).
 */

/*
 * The batch step, literally as docs/SPEC.md §8.1 says it: each image's
 * gradient buffer G is computed completely, then added to S in image order;
 * then the update (docs/SPEC.md §8.2).
 */
int l5_ref_train_batch(double *params, const uint8_t *images, const uint8_t *labels,
                       int64_t n, int loss, const L5Update *update,
                       double *loss_sum, int64_t *n_correct) {
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
        double d[L5_N_CLASSES];
        forward_image(a, params, images + i * L5_IMAGE_PIXELS);
        correct += l5_argmax10(a->output) == labels[i];
        total += l5_output_error(d, a->output, labels[i], loss);
        backward_image(grad, a, d, params);
        for (int j = 0; j < L5_N_PARAMS; j++) sum[j] = sum[j] + grad[j];
    }
    l5_apply_update(params, sum, L5_N_PARAMS, update, n);
    *loss_sum = total;
    *n_correct = correct;
    free(a); free(grad); free(sum);
    return L5_OK;
}

/* The outputs of n images (out: n * L5_N_CLASSES doubles). */
int l5_ref_forward(const double *params, const uint8_t *images, int64_t n, double *out) {
    Activations *a = malloc(sizeof(Activations));
    if (!a) return L5_ERR_NOMEM;
    for (int64_t i = 0; i < n; i++) {
        forward_image(a, params, images + i * L5_IMAGE_PIXELS);
        memcpy(out + i * L5_N_CLASSES, a->output, sizeof(double) * L5_N_CLASSES);
    }
    free(a);
    return L5_OK;
}

/*
 * One image's activations for people to look at: the two convolutions' maps
 * after their ReLU (layer1, layer3) and the 10 outputs.  The same forward
 * pass as l5_ref_forward, so the outputs carry the same bits.
 */
int l5_ref_forward_activations(const double *params, const uint8_t *image,
                               double *layer1, double *layer3, double *output) {
    Activations *a = malloc(sizeof(Activations));
    if (!a) return L5_ERR_NOMEM;
    forward_image(a, params, image);
    memcpy(layer1, a->layer1, sizeof(double) * L5_LAYER1_CELLS);
    memcpy(layer3, a->layer3, sizeof(double) * L5_LAYER3_CELLS);
    memcpy(output, a->output, sizeof(double) * L5_N_CLASSES);
    free(a);
    return L5_OK;
}

/* One image's gradient buffer G (L5_N_PARAMS doubles) and its loss. */
int l5_ref_image_gradient(const double *params, const uint8_t *image, int label, int loss,
                          double *grad, double *loss_value) {
    Activations *a = malloc(sizeof(Activations));
    if (!a) return L5_ERR_NOMEM;
    double d[L5_N_CLASSES];
    forward_image(a, params, image);
    *loss_value = l5_output_error(d, a->output, label, loss);
    backward_image(grad, a, d, params);
    free(a);
    return L5_OK;
}
