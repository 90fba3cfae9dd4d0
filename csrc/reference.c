/*
 * reference.c - the plain kernels: one image at a time, one function per
 * layer pass, loops in exactly the order SPEC.md states.  This file is the
 * readable definition of the network; the fast kernels (fast.c) are tested
 * against it bit for bit.
 *
 * Layouts are row-major with the last index fastest: a stack of maps is
 * [map][row][column], weights are [input map][output map][kr][kc].
 */
#include <math.h>
#include <string.h>
#include "core.h"

static double relu(double x) { return x > 0.0 ? x : 0.0; }

/* The derivative of ReLU, read off the layer's (already ReLU-ed) value. */
static double relugrad(double y) { return y > 0.0 ? 1.0 : 0.0; }

/*
 * Per-image normalisation to zero mean and unit deviation, placed in the
 * middle of a 32 x 32 zero frame.  Both sums are exact (integers below 2^53),
 * so only the divisions, the product and the sqrt round.  A flat image has
 * no deviation: the reference divides by zero and makes NaNs; we give it an
 * all-zero input instead, which changes nothing for any other image.
 */
void normalize_image(double *input, const uint8_t *pixels) {
    double s1 = 0.0, s2 = 0.0;
    for (int i = 0; i < L5_IMAGE_PIXELS; i++) {
        s1 += (double)pixels[i];
        s2 += (double)(pixels[i] * pixels[i]);
    }
    double mean = s1 / L5_IMAGE_PIXELS;
    double var = s2 / L5_IMAGE_PIXELS - mean * mean;
    memset(input, 0, sizeof(double) * IN_SIZE * IN_SIZE);
    if (!(var > 0.0)) return; /* flat image: leave the input at zero */
    double std = sqrt(var);
    for (int r = 0; r < 28; r++)
        for (int c = 0; c < 28; c++)
            input[(r + 2) * IN_SIZE + (c + 2)] = ((double)pixels[r * 28 + c] - mean) / std;
}

/*
 * Valid 5x5 convolution with ReLU: in [c_in][h][w] -> out [c_out][h-4][w-4].
 * Each output sums over input maps, then kernel rows, then kernel columns,
 * from +0, and adds the bias last.
 */
static void conv_forward(double *out, const double *in, const double *weight,
                         const double *bias, int c_in, int c_out, int h, int w) {
    int oh = h - K + 1, ow = w - K + 1;
    for (int co = 0; co < c_out; co++)
        for (int r = 0; r < oh; r++)
            for (int c = 0; c < ow; c++) {
                double acc = 0.0;
                for (int ci = 0; ci < c_in; ci++) {
                    const double *x = in + (ci * h + r) * w + c;
                    const double *k = weight + (ci * c_out + co) * K * K;
                    for (int kr = 0; kr < K; kr++)
                        for (int kc = 0; kc < K; kc++)
                            acc += x[kr * w + kc] * k[kr * K + kc];
                }
                out[(co * oh + r) * ow + c] = relu(acc + bias[co]);
            }
}

/*
 * 2x2 max pooling: in [c][h][w] -> out [c][h/2][w/2].  The four cells are
 * scanned row-major and a later one wins only if strictly greater, so ties
 * keep the earliest; argmax remembers the winner (0..3) for the backward pass.
 */
static void maxpool_forward(double *out, int *argmax, const double *in,
                            int c, int h, int w) {
    int oh = h / 2, ow = w / 2;
    for (int m = 0; m < c; m++)
        for (int r = 0; r < oh; r++)
            for (int q = 0; q < ow; q++) {
                const double *x = in + (m * h + 2 * r) * w + 2 * q;
                double cell[4] = {x[0], x[1], x[w], x[w + 1]};
                int best = 0;
                for (int i = 1; i < 4; i++)
                    if (cell[i] > cell[best]) best = i;
                out[(m * oh + r) * ow + q] = cell[best];
                argmax[(m * oh + r) * ow + q] = best;
            }
}

/* Fully connected with ReLU: out[j] = relu(sum_i in[i] * W[i][j] + b[j]). */
static void fc_forward(double *out, const double *in, const double *weight,
                       const double *bias, int n_in, int n_out) {
    for (int j = 0; j < n_out; j++) {
        double acc = 0.0;
        for (int i = 0; i < n_in; i++) acc += in[i] * weight[i * n_out + j];
        out[j] = relu(acc + bias[j]);
    }
}

/* The forward pass of one image, keeping every activation. */
void forward_image(Activations *a, const double *params, const uint8_t *pixels) {
    normalize_image(a->input, pixels);
    conv_forward(a->layer1, a->input, params + L5_OFF_W1, params + L5_OFF_B1, 1, C1, IN_SIZE, IN_SIZE);
    maxpool_forward(a->layer2, a->argmax2, a->layer1, C1, S1, S1);
    conv_forward(a->layer3, a->layer2, params + L5_OFF_W2, params + L5_OFF_B2, C1, C2, P1, P1);
    maxpool_forward(a->layer4, a->argmax4, a->layer3, C2, S2, S2);
    conv_forward(a->layer5, a->layer4, params + L5_OFF_W3, params + L5_OFF_B3, C2, C3, P2, P2);
    fc_forward(a->output, a->layer5, params + L5_OFF_W4, params + L5_OFF_B4, C3, N_OUT);
}

/* The predicted class: the largest output, ties to the smallest index. */
int argmax10(const double *z) {
    int best = 0;
    for (int i = 1; i < N_OUT; i++)
        if (z[i] > z[best]) best = i;
    return best;
}

/*
 * The output error d from the ReLU-ed outputs z and the label; returns the
 * image's loss.  The two variants differ in sign convention (SPEC.md):
 *   mse  returns the NEGATIVE gradient of E = 1/2 sum (p - y)^2, p = softmax(z),
 *        so the reference's update w += lr/B * S descends;
 *   xent returns the POSITIVE gradient p - y of -log p_label, so it must be
 *        paired with w -= lr/B * S.  Pair it with += and training climbs.
 */
double output_error(double *d, const double *z, int label, int loss) {
    double p[N_OUT];
    double value = 0.0;
    if (loss == L5_LOSS_MSE) {
        /* p_i = 1 / sum_j exp(z_j - z_i): the reference's softmax. */
        for (int i = 0; i < N_OUT; i++) {
            double s = 0.0;
            for (int j = 0; j < N_OUT; j++) s += exp(z[j] - z[i]);
            p[i] = 1.0 / s;
        }
        double inner = 0.0;
        for (int i = 0; i < N_OUT; i++) inner = inner - p[i] * p[i];
        inner = inner + p[label];
        for (int i = 0; i < N_OUT; i++) {
            double y = (i == label) ? 1.0 : 0.0;
            d[i] = p[i] * ((y - p[i]) - inner);
            value += (p[i] - y) * (p[i] - y);
        }
        return 0.5 * value;
    }
    /* xent: softmax shifted by the largest output, then p - y. */
    double m = -INFINITY, e[N_OUT], s = 0.0;
    for (int i = 0; i < N_OUT; i++)
        if (z[i] > m) m = z[i];
    for (int i = 0; i < N_OUT; i++) {
        e[i] = exp(z[i] - m);
        s += e[i];
    }
    for (int i = 0; i < N_OUT; i++) {
        p[i] = e[i] / s;
        d[i] = p[i] - ((i == label) ? 1.0 : 0.0);
    }
    return -log(p[label]);
}

/*
 * Fully connected backward: error over the inputs, weight and bias gradients.
 *   e_in[i] = (sum_j d[j] * W[i][j]) * relugrad(in[i]),  gW[i][j] = in[i] * d[j].
 */
static void fc_backward(double *e_in, double *gw, double *gb, const double *d,
                        const double *in, const double *weight, int n_in, int n_out) {
    for (int i = 0; i < n_in; i++) {
        double acc = 0.0;
        for (int j = 0; j < n_out; j++) acc += d[j] * weight[i * n_out + j];
        e_in[i] = acc * relugrad(in[i]);
    }
    for (int j = 0; j < n_out; j++) gb[j] = d[j];
    for (int i = 0; i < n_in; i++)
        for (int j = 0; j < n_out; j++) gw[i * n_out + j] = in[i] * d[j];
}

/*
 * Convolution backward, for a layer with input in [c_in][h][w], output error
 * e_out [c_out][h-4][w-4] and weights [c_in][c_out][5][5].
 *   e_in  (skipped when NULL): each input cell gathers, over output maps, then
 *         output rows, then output columns, the errors whose window covers it;
 *         then times relugrad of the input.
 *   gb    sums each output map's errors row-major;
 *   gw    sums, row-major over the output cells, input * error.
 */
static void conv_backward(double *e_in, double *gw, double *gb, const double *e_out,
                          const double *in, const double *weight,
                          int c_in, int c_out, int h, int w) {
    int oh = h - K + 1, ow = w - K + 1;
    if (e_in) {
        for (int ci = 0; ci < c_in; ci++)
            for (int p = 0; p < h; p++)
                for (int q = 0; q < w; q++) {
                    /* output cells (r, c) whose window holds (p, q) */
                    int r0 = p - K + 1 > 0 ? p - K + 1 : 0, r1 = p < oh - 1 ? p : oh - 1;
                    int c0 = q - K + 1 > 0 ? q - K + 1 : 0, c1 = q < ow - 1 ? q : ow - 1;
                    double acc = 0.0;
                    for (int co = 0; co < c_out; co++) {
                        const double *k = weight + (ci * c_out + co) * K * K;
                        for (int r = r0; r <= r1; r++)
                            for (int c = c0; c <= c1; c++)
                                acc += e_out[(co * oh + r) * ow + c] * k[(p - r) * K + (q - c)];
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
            for (int kr = 0; kr < K; kr++)
                for (int kc = 0; kc < K; kc++) {
                    double acc = 0.0;
                    for (int r = 0; r < oh; r++)
                        for (int c = 0; c < ow; c++)
                            acc += in[(ci * h + r + kr) * w + c + kc] * e_out[(co * oh + r) * ow + c];
                    gw[((ci * c_out + co) * K + kr) * K + kc] = acc;
                }
}

/* Max pool backward: each pooled error goes to the cell that won; the rest get 0. */
static void maxpool_backward(double *e_in, const double *e_out, const int *argmax,
                             int c, int h, int w) {
    int oh = h / 2, ow = w / 2;
    for (int m = 0; m < c; m++)
        for (int r = 0; r < oh; r++)
            for (int q = 0; q < ow; q++) {
                int o = (m * oh + r) * ow + q;
                double *x = e_in + (m * h + 2 * r) * w + 2 * q;
                x[0] = x[1] = x[w] = x[w + 1] = 0.0;
                int best = argmax[o];
                x[(best / 2) * w + (best % 2)] = e_out[o];
            }
}

/*
 * The backward pass of one image: fills grad (L5_N_PARAMS doubles, the
 * per-image buffer G of SPEC.md) from the output error d.
 */
void backward_image(double *grad, const Activations *a, const double *d,
                    const double *params) {
    double e5[C3], e4[C2 * P2 * P2], e3[C2 * S2 * S2], e2[C1 * P1 * P1], e1[C1 * S1 * S1];
    memset(grad, 0, sizeof(double) * L5_N_PARAMS);
    fc_backward(e5, grad + L5_OFF_W4, grad + L5_OFF_B4, d, a->layer5,
                params + L5_OFF_W4, C3, N_OUT);
    conv_backward(e4, grad + L5_OFF_W3, grad + L5_OFF_B3, e5, a->layer4,
                  params + L5_OFF_W3, C2, C3, P2, P2);
    maxpool_backward(e3, e4, a->argmax4, C2, S2, S2);
    conv_backward(e2, grad + L5_OFF_W2, grad + L5_OFF_B2, e3, a->layer2,
                  params + L5_OFF_W2, C1, C2, P1, P1);
    maxpool_backward(e1, e2, a->argmax2, C1, S1, S1);
    /* The error over the image itself is never used: skip it. */
    conv_backward(NULL, grad + L5_OFF_W1, grad + L5_OFF_B1, e1, a->input,
                  params + L5_OFF_W1, 1, C1, IN_SIZE, IN_SIZE);
}
