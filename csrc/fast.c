/*
 * fast.c - the fast kernels: same arithmetic as reference.c, same bits.
 *
 * The trick is to vectorise across images.  A "tile" is LANES = 4 images, and
 * every activation cell holds one v4d: lane l is image l of the tile.  Each
 * lane then performs exactly the scalar reference computation, in the same
 * order, so no accumulator is ever reassociated; the vector unit just does
 * four images at once.  Register blocking (several output maps and columns per
 * pass) lets one load feed several multiply-adds.
 *
 * A batch runs in two phases:
 *   1. tiles, in parallel: forward, output error and backward of 4 images,
 *      leaving each image's own gradient values in batch buffers;
 *   2. elements, in parallel: the batch sum S, adding images in order for each
 *      element (SPEC.md: split S by element, never by image), then the update.
 * The third convolution's and the fully connected layer's weight gradients are
 * outer products per image, so phase 2 forms them directly as matrix products
 * whose inner index is the image.
 *
 * Bit parity with the reference holds for finite parameters: zero padding
 * terms (0 * w) are skipped or added, which only matters if some w is inf.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "core.h"
#ifdef _OPENMP
#include <omp.h>
#endif

enum { LANES = 4 };
typedef double v4d __attribute__((vector_size(32)));
typedef int64_t v4i __attribute__((vector_size(32)));
/* The same vector, loadable from any 8-byte aligned double. */
typedef double v4d_u __attribute__((vector_size(32), aligned(8)));

/* Images per phase-1 chunk: bounds the batch buffers for any batch size. */
enum { CHUNK = 1024 };

/* Per-image values phase 1 leaves for phase 2: W1, W2, then the biases. */
enum { G_SMALL = L5_OFF_W3 + (L5_N_PARAMS - L5_OFF_B1) /* 2550 + 152 */ };

/* Outputs per register block: maps of a convolution, outputs of a dense pass. */
enum { CONV_CO_B = 2, DENSE3_B = 8, DENSE4_B = 5 };

static inline v4d splat(double x) { return (v4d){x, x, x, x}; }

/* Lane-wise select: where mask is all ones take a, else b. */
static inline v4d select(v4i mask, v4d a, v4d b) {
    return (v4d)((mask & (v4i)a) | (~mask & (v4i)b));
}

static inline v4d relu4(v4d x) { return (v4d)((x > splat(0.0)) & (v4i)x); }

/* acc * relugrad(y), as the reference multiplies by 1.0 or 0.0. */
static inline v4d gate4(v4d acc, v4d y) {
    return acc * (v4d)((y > splat(0.0)) & (v4i)splat(1.0));
}

/*
 * A tile's working memory: 4 images' activations and errors, one v4d a cell.
 * Once pooled, layer1 and layer3 are never read again (the pooling
 * remembers its winners), so their errors take their place: the tile then
 * fits the core's L2 cache better.
 */
typedef struct {
    v4d input[IN_SIZE * IN_SIZE];
    union { v4d layer1[C1 * S1 * S1]; v4d e1[C1 * S1 * S1]; };
    v4d layer2[C1 * P1 * P1];
    v4i win2[C1 * P1 * P1];
    union { v4d layer3[C2 * S2 * S2]; v4d e3[C2 * S2 * S2]; };
    v4d layer4[C2 * P2 * P2];
    v4i win4[C2 * P2 * P2];
    v4d layer5[C3];
    v4d output[N_OUT];
    v4d d[N_OUT];
    v4d e5[C3];
    v4d e4[C2 * P2 * P2];
    v4d e2[C1 * P1 * P1];
    v4d gw1[C1 * K * K];
    v4d gw2[C1 * C2 * K * K];
    v4d gb1[C1];
    v4d gb2[C2];
} Tile;

/*
 * Weights rearranged once per batch so that each register block reads the
 * weights it broadcasts from one contiguous run.  "Blocked by B over outputs"
 * means [output / B][reduction index][output % B].
 */
typedef struct {
    double w1[C1 * K * K];             /* W1 blocked by CONV_CO_B over output maps */
    double w2[C1 * C2 * K * K];        /* W2 blocked by CONV_CO_B over output maps */
    double w2_back[C2 * K * K * C1];   /* W2 as [c_out][kr][kc][c_in]: the input-error pass */
    double w3[C2 * K * K * C3];        /* W3 blocked by 8 over its 120 outputs */
    double w3_back[C3 * C2 * K * K];   /* W3 blocked by 8 over its 400 inputs (the error pass) */
    double w4[C3 * N_OUT];             /* W4 blocked by 5 over its 10 outputs */
    double w4_back[N_OUT * C3];        /* W4 blocked by 8 over its 120 inputs (the error pass) */
} Rearranged;

/*
 * w is [c_in][c_out][kk] (kk = 25 for a 5x5 kernel, 1 for a dense layer).
 * Forward: outputs are the c_out maps, the reduction runs over (c_in, k).
 * Backward: outputs are the (c_in, k) cells, the reduction runs over c_out.
 */
static void block_forward(double *dst, const double *w, int c_in, int c_out, int kk, int b) {
    for (int ci = 0; ci < c_in; ci++)
        for (int co = 0; co < c_out; co++)
            for (int k = 0; k < kk; k++)
                dst[(((co / b) * c_in + ci) * kk + k) * b + co % b] = w[(ci * c_out + co) * kk + k];
}

static void block_backward(double *dst, const double *w, int c_in, int c_out, int kk, int b) {
    for (int ci = 0; ci < c_in; ci++)
        for (int co = 0; co < c_out; co++)
            for (int k = 0; k < kk; k++) {
                int m = ci * kk + k;
                dst[((m / b) * c_out + co) * b + m % b] = w[(ci * c_out + co) * kk + k];
            }
}

static void rearrange_weights(Rearranged *rw, const double *params) {
    const double *w2 = params + L5_OFF_W2;
    block_forward(rw->w1, params + L5_OFF_W1, 1, C1, K * K, CONV_CO_B);
    block_forward(rw->w2, w2, C1, C2, K * K, CONV_CO_B);
    for (int ci = 0; ci < C1; ci++)
        for (int co = 0; co < C2; co++)
            for (int k = 0; k < K * K; k++)
                rw->w2_back[(co * K * K + k) * C1 + ci] = w2[(ci * C2 + co) * K * K + k];
    block_forward(rw->w3, params + L5_OFF_W3, C2, C3, K * K, DENSE3_B);
    block_backward(rw->w3_back, params + L5_OFF_W3, C2, C3, K * K, DENSE3_B);
    block_forward(rw->w4, params + L5_OFF_W4, C3, N_OUT, 1, DENSE4_B);
    block_backward(rw->w4_back, params + L5_OFF_W4, C3, N_OUT, 1, DENSE3_B);
}

/* ---------------------------------------------------------------------------
 * Convolution forward over a tile, register-blocked: CO_B output maps by C_B
 * output columns per pass, so each input load feeds CO_B products and each
 * weight broadcast C_B.  Each lane of each accumulator sums its terms in the
 * reference order (input map, kernel row, kernel column) from +0, then
 * relu(acc + bias).  Input rows that are zero padding for every image (the
 * first and last `pad` rows) contribute nothing and are skipped.
 * w_blocked: the weights blocked by CO_B over output maps.
 */
static inline __attribute__((always_inline)) void
conv_forward_block(v4d *out, const v4d *in, const double *w_blocked, const double *bias,
                   int c_in, int h, int w, int pad, int co0, int r, int c0,
                   const int CO_B, const int C_B) {
    const int oh = h - K + 1, ow = w - K + 1;
    int kr_lo = pad - r > 0 ? pad - r : 0;
    int kr_hi = h - pad - 1 - r < K - 1 ? h - pad - 1 - r : K - 1;
    v4d acc[CO_B * C_B];
    for (int i = 0; i < CO_B * C_B; i++) acc[i] = splat(0.0);
    const double *wb = w_blocked + (co0 / CO_B) * c_in * K * K * CO_B;
    for (int ci = 0; ci < c_in; ci++)
        for (int kr = kr_lo; kr <= kr_hi; kr++) {
            const v4d *x = in + (ci * h + r + kr) * w + c0;
            const double *wt = wb + (ci * K + kr) * K * CO_B;
            for (int kc = 0; kc < K; kc++) {
#pragma GCC unroll 8
                for (int j = 0; j < C_B; j++) {
                    v4d xv = x[kc + j];
#pragma GCC unroll 8
                    for (int b = 0; b < CO_B; b++)
                        acc[b * C_B + j] = acc[b * C_B + j] + xv * splat(wt[kc * CO_B + b]);
                }
            }
        }
    for (int b = 0; b < CO_B; b++)
        for (int j = 0; j < C_B; j++)
            out[((co0 + b) * oh + r) * ow + c0 + j] = relu4(acc[b * C_B + j] + splat(bias[co0 + b]));
}

static inline __attribute__((always_inline)) void
conv_forward_tile(v4d *out, const v4d *in, const double *w_blocked, const double *bias,
                  int c_in, int c_out, int h, int w, int pad, const int CO_B, const int C_B) {
    const int oh = h - K + 1, ow = w - K + 1;
    for (int co0 = 0; co0 < c_out; co0 += CO_B)
        for (int r = 0; r < oh; r++)
            for (int c0 = 0; c0 < ow; c0 += C_B)
                conv_forward_block(out, in, w_blocked, bias, c_in, h, w, pad, co0, r, c0, CO_B, C_B);
}

/* The two convolutions with an output map, each with a blocking that divides it. */
static void conv1_forward(Tile *t, const Rearranged *rw, const double *params) {
    conv_forward_tile(t->layer1, t->input, rw->w1, params + L5_OFF_B1, 1, C1, IN_SIZE, IN_SIZE,
                      2, CONV_CO_B, 7);
}

static void conv2_forward(Tile *t, const Rearranged *rw, const double *params) {
    conv_forward_tile(t->layer3, t->layer2, rw->w2, params + L5_OFF_B2, C1, C2, P1, P1,
                      0, CONV_CO_B, 5);
}

/*
 * The error over a convolution's input, for all C_IN input maps of one or two
 * input cells at once: each cell (ci, p, q) sums, over output maps, then
 * output rows r, then output columns c (the reference order), the errors whose
 * 5x5 window covers it, err[co][r][c] * W[ci][co][p-r][q-c], and is then
 * gated by relugrad(in).  A second cell (p+dp, q+dq) rides along only where
 * its window of errors is the first one's shifted by (dp, dq): same terms,
 * same weights, same order, and no padding term is ever computed.
 * w_back: W as [c_out][kr][kc][c_in].
 */
static inline __attribute__((always_inline)) void
conv_backward_input_cells(v4d *e_in, const v4d *err, const double *w_back, const v4d *in,
                          const int C_IN, int c_out, int h, int w, int p, int q,
                          const int N_CELLS, int dp, int dq) {
    const int oh = h - K + 1, ow = w - K + 1;
    int r0 = p - (K - 1) > 0 ? p - (K - 1) : 0, r1 = p < oh - 1 ? p : oh - 1;
    int c0 = q - (K - 1) > 0 ? q - (K - 1) : 0, c1 = q < ow - 1 ? q : ow - 1;
    const int shift = dp * ow + dq;
    v4d acc[2][8];
    for (int n = 0; n < N_CELLS; n++)
        for (int ci = 0; ci < C_IN; ci++) acc[n][ci] = splat(0.0);
    for (int co = 0; co < c_out; co++)
        for (int r = r0; r <= r1; r++) {
            const v4d *e = err + (co * oh + r) * ow;
            const double *w_row = w_back + (co * K + (p - r)) * K * C_IN;
            for (int c = c0; c <= c1; c++) {
                const double *wt = w_row + (q - c) * C_IN;
                v4d ev[2];
                for (int n = 0; n < N_CELLS; n++) ev[n] = e[c + n * shift];
#pragma GCC unroll 8
                for (int ci = 0; ci < C_IN; ci++) {
                    v4d wv = splat(wt[ci]);
                    for (int n = 0; n < N_CELLS; n++) acc[n][ci] = acc[n][ci] + ev[n] * wv;
                }
            }
        }
    for (int n = 0; n < N_CELLS; n++)
        for (int ci = 0; ci < C_IN; ci++) {
            int o = (ci * h + p + n * dp) * w + q + n * dq;
            e_in[o] = gate4(acc[n][ci], in[o]);
        }
}

/*
 * The error over layer2 (6 x 14 x 14) from the error over layer3 (10 x 10).
 * Rows and columns 4..9 see all five output rows / columns: there, cells go
 * in pairs, side by side where both columns are inner, else one above the
 * other where both rows are; the corner regions go one cell at a time.
 */
static void conv2_backward_input(Tile *t, const Rearranged *rw) {
    const int lo = K - 1, hi = S2 - 1; /* inner rows / columns: lo..hi */
    for (int p = 0; p < P1; p++)
        for (int q = 0; q < P1; q++) {
            int inner_p = p >= lo && p <= hi, inner_q = q >= lo && q <= hi;
            if (inner_q && (q - lo) % 2 == 0)      /* (p, q) and (p, q+1) */
                conv_backward_input_cells(t->e2, t->e3, rw->w2_back, t->layer2, C1, C2, P1, P1, p, q, 2, 0, 1);
            else if (inner_q)                      /* done with its left neighbour */
                continue;
            else if (inner_p && (p - lo) % 2 == 0) /* (p, q) and (p+1, q) */
                conv_backward_input_cells(t->e2, t->e3, rw->w2_back, t->layer2, C1, C2, P1, P1, p, q, 2, 1, 0);
            else if (!inner_p)
                conv_backward_input_cells(t->e2, t->e3, rw->w2_back, t->layer2, C1, C2, P1, P1, p, q, 1, 0, 0);
        }
}

/*
 * Dense layer over a tile: out[j] = sum_i in[i] * W(i, j), i ascending from
 * +0, B outputs per pass; then relu(acc + bias) if bias is given, else
 * acc * relugrad(gate).  w_blocked holds W blocked by B over the outputs.
 * Serves the fully connected layer both ways and the third convolution both
 * ways (a 5x5 convolution of a 5x5 map is a dense layer over its 400 inputs).
 */
static inline __attribute__((always_inline)) void
dense_tile(v4d *out, const v4d *in, const double *w_blocked, const double *bias,
           const v4d *gate, int n_in, int n_out, const int B) {
    for (int j0 = 0; j0 < n_out; j0 += B) {
        v4d acc[B];
        for (int b = 0; b < B; b++) acc[b] = splat(0.0);
        const double *wb = w_blocked + (j0 / B) * n_in * B;
        for (int i = 0; i < n_in; i++) {
            v4d x = in[i];
#pragma GCC unroll 8
            for (int b = 0; b < B; b++) acc[b] = acc[b] + x * splat(wb[i * B + b]);
        }
        for (int b = 0; b < B; b++)
            out[j0 + b] = bias ? relu4(acc[b] + splat(bias[j0 + b])) : gate4(acc[b], gate[j0 + b]);
    }
}

/* 2x2 max pool over a tile; win records each lane's winning cell (0..3). */
static void maxpool_tile(v4d *out, v4i *win, const v4d *in, int c, int h, int w) {
    int oh = h / 2, ow = w / 2;
    for (int m = 0; m < c; m++)
        for (int r = 0; r < oh; r++)
            for (int q = 0; q < ow; q++) {
                const v4d *x = in + (m * h + 2 * r) * w + 2 * q;
                v4d cell[4] = {x[0], x[1], x[w], x[w + 1]};
                v4d best = cell[0];
                v4i idx = {0, 0, 0, 0};
                for (int i = 1; i < 4; i++) {
                    v4i greater = cell[i] > best; /* strictly: ties keep the earliest */
                    best = select(greater, cell[i], best);
                    idx = (greater & (v4i){i, i, i, i}) | (~greater & idx);
                }
                out[(m * oh + r) * ow + q] = best;
                win[(m * oh + r) * ow + q] = idx;
            }
}

/* Max pool backward: each lane's error goes to its winning cell, others get +0. */
static void maxpool_backward_tile(v4d *e_in, const v4d *e_out, const v4i *win,
                                  int c, int h, int w) {
    int oh = h / 2, ow = w / 2;
    for (int m = 0; m < c; m++)
        for (int r = 0; r < oh; r++)
            for (int q = 0; q < ow; q++) {
                int o = (m * oh + r) * ow + q;
                v4d *x = e_in + (m * h + 2 * r) * w + 2 * q;
                v4d *cell[4] = {&x[0], &x[1], &x[w], &x[w + 1]};
                for (int i = 0; i < 4; i++)
                    *cell[i] = (v4d)((win[o] == (v4i){i, i, i, i}) & (v4i)e_out[o]);
            }
}

/*
 * Weight gradient over a tile: gw[ci][co][kr][kc] = sum over error cells
 * (r, c) row-major of in[ci][r+kr][c+kc] * err[co][r][c], per lane.
 * Two output maps by all five kernel columns per pass share the loads.
 */
static void conv_weight_grad_tile(v4d *gw, const v4d *in, const v4d *err,
                                  int c_in, int c_out, int h, int w) {
    const int oh = h - K + 1, ow = w - K + 1;
    for (int ci = 0; ci < c_in; ci++)
        for (int co = 0; co < c_out; co += 2)
            for (int kr = 0; kr < K; kr++) {
                v4d acc0[K], acc1[K];
                for (int kc = 0; kc < K; kc++) acc0[kc] = acc1[kc] = splat(0.0);
                for (int r = 0; r < oh; r++) {
                    const v4d *x = in + (ci * h + r + kr) * w;
                    const v4d *e0 = err + (co * oh + r) * ow, *e1 = e0 + oh * ow;
                    for (int c = 0; c < ow; c++) {
#pragma GCC unroll 5
                        for (int kc = 0; kc < K; kc++) {
                            acc0[kc] = acc0[kc] + x[c + kc] * e0[c];
                            acc1[kc] = acc1[kc] + x[c + kc] * e1[c];
                        }
                    }
                }
                for (int kc = 0; kc < K; kc++) {
                    gw[((ci * c_out + co) * K + kr) * K + kc] = acc0[kc];
                    gw[((ci * c_out + co + 1) * K + kr) * K + kc] = acc1[kc];
                }
            }
}

/* Bias gradient: each output map's errors summed row-major from +0. */
static void bias_grad_tile(v4d *gb, const v4d *err, int c, int cells) {
    for (int m = 0; m < c; m++) {
        v4d acc = splat(0.0);
        for (int i = 0; i < cells; i++) acc = acc + err[m * cells + i];
        gb[m] = acc;
    }
}

/* Load up to 4 images into the tile's lanes; missing lanes get a blank image. */
static void load_tile(Tile *t, const uint8_t *images, int count) {
    double one[IN_SIZE * IN_SIZE];
    static const uint8_t blank[L5_IMAGE_PIXELS];
    for (int l = 0; l < LANES; l++) {
        normalize_image(one, l < count ? images + (int64_t)l * L5_IMAGE_PIXELS : blank);
        for (int i = 0; i < IN_SIZE * IN_SIZE; i++) t->input[i][l] = one[i];
    }
}

static void forward_tile(Tile *t, const double *params, const Rearranged *rw) {
    conv1_forward(t, rw, params);
    maxpool_tile(t->layer2, t->win2, t->layer1, C1, S1, S1);
    conv2_forward(t, rw, params);
    maxpool_tile(t->layer4, t->win4, t->layer3, C2, S2, S2);
    dense_tile(t->layer5, t->layer4, rw->w3, params + L5_OFF_B3, NULL, C2 * K * K, C3, DENSE3_B);
    dense_tile(t->output, t->layer5, rw->w4, params + L5_OFF_B4, NULL, C3, N_OUT, DENSE4_B);
}

/* Backward from the output error t->d (reference order of SPEC.md). */
static void backward_tile(Tile *t, const Rearranged *rw) {
    dense_tile(t->e5, t->d, rw->w4_back, NULL, t->layer5, N_OUT, C3, DENSE3_B);
    dense_tile(t->e4, t->e5, rw->w3_back, NULL, t->layer4, C3, C2 * K * K, DENSE3_B);
    maxpool_backward_tile(t->e3, t->e4, t->win4, C2, S2, S2);
    conv2_backward_input(t, rw);
    conv_weight_grad_tile(t->gw2, t->layer2, t->e3, C1, C2, P1, P1);
    bias_grad_tile(t->gb2, t->e3, C2, S2 * S2);
    maxpool_backward_tile(t->e1, t->e2, t->win2, C1, S1, S1);
    conv_weight_grad_tile(t->gw1, t->input, t->e1, 1, C1, IN_SIZE, IN_SIZE);
    bias_grad_tile(t->gb1, t->e1, C1, S1 * S1);
}

static Tile *new_tile(void) {
    size_t size = (sizeof(Tile) + 63) / 64 * 64;
    Tile *t = aligned_alloc(64, size);
    if (t) memset(t, 0, size);
    return t;
}

/* Buffers phase 1 fills for phase 2, one row per image of the chunk. */
typedef struct {
    double *g_small; /* [CHUNK][G_SMALL]: gW1, gW2, gb1, gb2, gb3, gb4 */
    double *layer4;  /* [CHUNK][400] */
    double *e5;      /* [CHUNK][120] */
    double *layer5;  /* [CHUNK][120] */
    double *d;       /* [CHUNK][10]  */
    double *loss;    /* [CHUNK] */
    int *correct;    /* [CHUNK] */
} ChunkBuffers;

/* Phase 1 for one tile: all of its images' per-image values. */
static void train_tile(Tile *t, ChunkBuffers *cb, int64_t first, int count,
                       const uint8_t *images, const uint8_t *labels, int loss,
                       const double *params, const Rearranged *rw) {
    load_tile(t, images, count);
    forward_tile(t, params, rw);
    for (int l = 0; l < LANES; l++) {
        double z[N_OUT], d[N_OUT];
        for (int j = 0; j < N_OUT; j++) z[j] = t->output[j][l];
        int label = l < count ? labels[l] : 0;
        double value = output_error(d, z, label, loss);
        for (int j = 0; j < N_OUT; j++) t->d[j][l] = d[j];
        if (l < count) {
            cb->loss[first + l] = value;
            cb->correct[first + l] = argmax10(z) == label;
        }
    }
    backward_tile(t, rw);
    for (int l = 0; l < count; l++) {
        int64_t i = first + l;
        double *g = cb->g_small + i * G_SMALL;
        for (int k = 0; k < C1 * K * K; k++) g[L5_OFF_W1 + k] = t->gw1[k][l];
        for (int k = 0; k < C1 * C2 * K * K; k++) g[L5_OFF_W2 + k] = t->gw2[k][l];
        double *gb = g + L5_OFF_W3; /* the biases follow W2 here */
        for (int k = 0; k < C1; k++) gb[k] = t->gb1[k][l];
        for (int k = 0; k < C2; k++) gb[C1 + k] = t->gb2[k][l];
        for (int k = 0; k < C3; k++) gb[C1 + C2 + k] = t->e5[k][l];   /* gb3 = e5 */
        for (int k = 0; k < N_OUT; k++) gb[C1 + C2 + C3 + k] = t->d[k][l]; /* gb4 = d */
        for (int k = 0; k < C2 * K * K; k++) cb->layer4[i * C2 * K * K + k] = t->layer4[k][l];
        for (int k = 0; k < C3; k++) cb->e5[i * C3 + k] = t->e5[k][l];
        for (int k = 0; k < C3; k++) cb->layer5[i * C3 + k] = t->layer5[k][l];
        for (int k = 0; k < N_OUT; k++) cb->d[i * N_OUT + k] = t->d[k][l];
    }
}

/*
 * Phase 2, W3: t3[m][co] += sum over images i, in order, of
 * layer4[i][m] * e5[i][co], for a block of 4 m by 12 co.  The image is the
 * inner index and stays sequential; the 48 accumulators are independent.
 */
static void w3_outer_block(double *t3, const double *layer4, const double *e5,
                           int64_t n, int m0, int co0) {
    const int M_IN = C2 * K * K;
    v4d acc[4][3];
    for (int a = 0; a < 4; a++)
        for (int v = 0; v < 3; v++) acc[a][v] = *(const v4d_u *)&t3[(m0 + a) * C3 + co0 + 4 * v];
    for (int64_t i = 0; i < n; i++) {
        const double *e = e5 + i * C3 + co0, *x = layer4 + i * M_IN + m0;
        v4d ev[3] = {*(const v4d_u *)&e[0], *(const v4d_u *)&e[4], *(const v4d_u *)&e[8]};
#pragma GCC unroll 4
        for (int a = 0; a < 4; a++) {
            v4d xv = splat(x[a]);
            for (int v = 0; v < 3; v++) acc[a][v] = acc[a][v] + xv * ev[v];
        }
    }
    for (int a = 0; a < 4; a++)
        for (int v = 0; v < 3; v++) *(v4d_u *)&t3[(m0 + a) * C3 + co0 + 4 * v] = acc[a][v];
}

/* Phase 2 for a chunk: add its images to the running sums, in image order. */
static void reduce_chunk(double *sum, double *t3, const ChunkBuffers *cb, int64_t n) {
    /* W1, W2 and biases: per-image values added image by image. */
#pragma omp for schedule(static)
    for (int e0 = 0; e0 < G_SMALL; e0 += 256) {
        int e1 = e0 + 256 < G_SMALL ? e0 + 256 : G_SMALL;
        double *s = sum + e0; /* sum is laid out like g_small here */
        for (int64_t i = 0; i < n; i++) {
            const double *g = cb->g_small + i * G_SMALL;
            for (int e = e0; e < e1; e++) s[e - e0] = s[e - e0] + g[e];
        }
    }
    /* W3: outer products, blocked 4 x 12. */
#pragma omp for schedule(static)
    for (int b = 0; b < (C2 * K * K / 4) * (C3 / 12); b++)
        w3_outer_block(t3, cb->layer4, cb->e5, n, (b / (C3 / 12)) * 4, (b % (C3 / 12)) * 12);
    /* W4: outer products, small enough to do plainly. */
#pragma omp for schedule(static)
    for (int a = 0; a < C3; a++) {
        double *s = sum + G_SMALL + a * N_OUT;
        for (int64_t i = 0; i < n; i++) {
            double x = cb->layer5[i * C3 + a];
            for (int j = 0; j < N_OUT; j++) s[j] = s[j] + x * cb->d[i * N_OUT + j];
        }
    }
}

static inline int resolve_threads(int threads) {
#ifdef _OPENMP
    return threads > 0 ? threads : omp_get_max_threads();
#else
    (void)threads;
    return 1;
#endif
}

static void free_chunk_buffers(ChunkBuffers *cb) {
    free(cb->g_small); free(cb->layer4); free(cb->e5); free(cb->layer5);
    free(cb->d); free(cb->loss); free(cb->correct);
}

static int alloc_chunk_buffers(ChunkBuffers *cb, int64_t rows) {
    cb->g_small = malloc(sizeof(double) * rows * G_SMALL);
    cb->layer4 = malloc(sizeof(double) * rows * C2 * K * K);
    cb->e5 = malloc(sizeof(double) * rows * C3);
    cb->layer5 = malloc(sizeof(double) * rows * C3);
    cb->d = malloc(sizeof(double) * rows * N_OUT);
    cb->loss = malloc(sizeof(double) * rows);
    cb->correct = malloc(sizeof(int) * rows);
    if (cb->g_small && cb->layer4 && cb->e5 && cb->layer5 && cb->d && cb->loss && cb->correct)
        return L5_OK;
    free_chunk_buffers(cb);
    return L5_ERR_NOMEM;
}

/*
 * Run work(t, first, count, ctx) over the tiles of n images in parallel, each
 * thread with its own Tile; the last tile may hold fewer than LANES images.
 */
typedef void TileWork(Tile *t, int64_t first, int count, void *ctx);

static int for_each_tile(int64_t n, int threads, TileWork *work, void *ctx) {
    int failed = 0;
    int64_t n_tiles = (n + LANES - 1) / LANES;
    int team = resolve_threads(threads);
    if (team > n_tiles) team = (int)n_tiles; /* an idle thread would only cost a Tile */
#pragma omp parallel num_threads(team)
    {
        Tile *t = new_tile();
        if (!t) {
#pragma omp atomic write
            failed = 1;
        }
#pragma omp for schedule(static)
        for (int64_t k = 0; k < n_tiles; k++) {
            if (!t) continue;
            int64_t first = k * LANES;
            work(t, first, n - first < LANES ? (int)(n - first) : LANES, ctx);
        }
        free(t);
    }
    return failed ? L5_ERR_NOMEM : L5_OK;
}

/* What a training tile needs besides its own memory. */
typedef struct {
    ChunkBuffers *cb;
    const uint8_t *images, *labels; /* of this chunk */
    int loss;
    const double *params;
    const Rearranged *rw;
} TrainChunk;

static void train_tile_work(Tile *t, int64_t first, int count, void *ctx) {
    TrainChunk *c = ctx;
    train_tile(t, c->cb, first, count, c->images + first * L5_IMAGE_PIXELS, c->labels + first,
               c->loss, c->params, c->rw);
}

int fast_train_batch(double *params, const uint8_t *images, const uint8_t *labels,
                     int64_t n, int loss, int sign, double lr, int threads,
                     double *loss_sum, int64_t *n_correct) {
    int64_t rows = n < CHUNK ? n : CHUNK;
    ChunkBuffers cb;
    if (alloc_chunk_buffers(&cb, rows)) return L5_ERR_NOMEM;
    Rearranged *rw = malloc(sizeof(Rearranged));
    /* sum: g_small's layout, then W4; t3: W3 as [m][co] */
    double *sum = calloc(G_SMALL + C3 * N_OUT, sizeof(double));
    double *t3 = calloc(C2 * K * K * C3, sizeof(double));
    double *full = malloc(sizeof(double) * L5_N_PARAMS);
    int err = rw && sum && t3 && full ? L5_OK : L5_ERR_NOMEM;
    if (!err) rearrange_weights(rw, params);
    double total = 0.0;
    int64_t correct = 0;
    for (int64_t start = 0; start < n && !err; start += CHUNK) {
        int64_t count = n - start < CHUNK ? n - start : CHUNK;
        TrainChunk chunk = {&cb, images + start * L5_IMAGE_PIXELS, labels + start, loss, params, rw};
        err = for_each_tile(count, threads, train_tile_work, &chunk);  /* phase 1 */
        if (err) break;
#pragma omp parallel num_threads(resolve_threads(threads))
        reduce_chunk(sum, t3, &cb, count);                             /* phase 2 */
        for (int64_t i = 0; i < count; i++) {
            total += cb.loss[i];
            correct += cb.correct[i];
        }
    }
    if (!err) {
        /* Put S back in the parameter layout, then update every parameter. */
        memcpy(full + L5_OFF_W1, sum, sizeof(double) * L5_OFF_W3);
        memcpy(full + L5_OFF_B1, sum + L5_OFF_W3, sizeof(double) * (L5_N_PARAMS - L5_OFF_B1));
        memcpy(full + L5_OFF_W4, sum + G_SMALL, sizeof(double) * C3 * N_OUT);
        for (int ci = 0; ci < C2; ci++)
            for (int co = 0; co < C3; co++)
                for (int k = 0; k < K * K; k++)
                    full[L5_OFF_W3 + (ci * C3 + co) * K * K + k] = t3[(ci * K * K + k) * C3 + co];
        apply_update(params, full, L5_N_PARAMS, sign, lr, n);
        *loss_sum = total;
        *n_correct = correct;
    }
    free(rw); free(sum); free(t3); free(full);
    free_chunk_buffers(&cb);
    return err;
}

/* What a forward tile needs besides its own memory. */
typedef struct {
    const uint8_t *images;
    double *out;
    const double *params;
    const Rearranged *rw;
} ForwardJob;

static void forward_tile_work(Tile *t, int64_t first, int count, void *ctx) {
    ForwardJob *job = ctx;
    load_tile(t, job->images + first * L5_IMAGE_PIXELS, count);
    forward_tile(t, job->params, job->rw);
    for (int l = 0; l < count; l++)
        for (int j = 0; j < N_OUT; j++) job->out[(first + l) * N_OUT + j] = t->output[j][l];
}

int fast_forward(const double *params, const uint8_t *images, int64_t n,
                 double *out, int threads) {
    Rearranged *rw = malloc(sizeof(Rearranged));
    if (!rw) return L5_ERR_NOMEM;
    rearrange_weights(rw, params);
    ForwardJob job = {images, out, params, rw};
    int err = for_each_tile(n, threads, forward_tile_work, &job);
    free(rw);
    return err;
}
