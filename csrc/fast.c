/*
 * fast.c - the fast kernels: same arithmetic as reference.c, same bits.  It
 * uses only common.c, loss.c, update.c, workspace.c and augment.c (each
 * image's warp map); reference.c is its twin, never its helper.
 *
 * The trick is to vectorise across images (docs/SPEC.md §9.2).  A "tile" is
 * LANES images (2, 4 or 8: one per lane of the instruction set's vector), and
 * every activation cell holds one vd: lane l is image l of the tile.  Each
 * lane then performs exactly the scalar reference computation, in the same
 * order, so no accumulator is ever reassociated; the vector unit just does
 * LANES images at once.  Register blocking (several
 * output maps and columns per pass) lets one load feed several multiply-adds.
 *
 * A batch runs in two phases (docs/SPEC.md §9.1):
 *   1. tiles, in parallel: forward, output error and backward of LANES images,
 *      leaving each image's own gradient values in chunk buffers;
 *   2. elements, in parallel: the batch sum S, adding images in order for each
 *      element (docs/SPEC.md §8.1: split S by element, never by image), then
 *      the update.
 * The third convolution's and the fully connected layer's weight gradients are
 * outer products per image, so phase 2 forms them directly as matrix products
 * whose inner index is the image (docs/SPEC.md §9.3).
 *
 * Bit parity with the reference holds for finite parameters: zero padding
 * terms (0 * w) are skipped or added, which only matters if some w is inf
 * (docs/SPEC.md §9.5).
 *
 * Names as in reference.c (ci, co, r, c, p, q, kr, kc, layerN, eN); besides:
 * t a tile, l a lane, i an image of the chunk, u and j the input and output of
 * a dense pass.  A name ending in _B says how many of something one register
 * block computes.
 */
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#include "core.h"
#if defined(__AVX2__) || defined(__AVX512F__)
#include <immintrin.h> /* the warp's gathers */
#endif

/*
 * build_ffi.py compiles this file once per instruction set (docs/SPEC.md
 * §9.4), with -DL5_ISA=<name> (which suffixes the names it exports, core.h)
 * and -DL5_LANES=<images per tile>: 8 for AVX-512F (one zmm register), 4 for
 * AVX2, 2 for SSE2 and the generic build (one xmm or NEON register).  dispatch.c
 * picks the variant at run time.  The lane count changes how many images
 * run side by side, never the order of any lane's arithmetic.
 */
#if !defined(L5_ISA) || !defined(L5_LANES)
#error "fast.c is compiled once per instruction set: -DL5_ISA=<name> -DL5_LANES=<n> (build_ffi.py)"
#endif
enum { LANES = L5_LANES };
_Static_assert(LANES == 2 || LANES == 4 || LANES == 8, "a tile holds 2, 4 or 8 images");
/* vd: one double per lane (image); vi: a lane mask or an index per lane. */
typedef double vd __attribute__((vector_size(LANES * sizeof(double))));
typedef int64_t vi __attribute__((vector_size(LANES * sizeof(int64_t))));
/* The same vector, loadable from any 8-byte aligned double. */
typedef double vd_u __attribute__((vector_size(LANES * sizeof(double)), aligned(8)));

/* Images per phase-1 chunk: bounds the chunk buffers for any batch size
 * (docs/SPEC.md §9.3). */
enum { CHUNK = 1024 };

/*
 * Per-image values phase 1 leaves for phase 2, one row of G_SMALL vectors
 * per tile (lane l: the tile's image l): the parameter order with W3 and W4
 * cut out (phase 2 forms their gradients itself, as outer products).  gW1
 * and gW2 sit at their own offsets, then from G_BIASES on come gb1, gb2,
 * gb3, gb4.  The backward pass writes gW1, gW2, gb1 and gb2 straight into
 * the row, in its own lane layout: no copy, and no room for them in the tile.
 */
enum { G_BIASES = L5_W1_SIZE + L5_W2_SIZE,
       G_SMALL = G_BIASES + L5_B1_SIZE + L5_B2_SIZE + L5_B3_SIZE + L5_B4_SIZE }; /* 2702 */
_Static_assert(G_BIASES == L5_OFF_W3 && G_SMALL - G_BIASES == L5_N_PARAMS - L5_OFF_B1,
               "a g_small row must be the parameter array less W3 and W4");

/* Register blocks of the tile passes (each must divide what it blocks). */
enum {
    CONV1_MAPS_B = 1,  /* conv1 forward: output maps (2 measured slower: 14 accumulators spill) */
    CONV2_MAPS_B = 2,  /* conv2 forward: output maps */
    CONV1_COLS_B = 7,  /* conv1 forward: output columns */
    CONV2_COLS_B = 5,  /* conv2 forward: output columns */
    CONV3_OUT_B = 8,   /* conv3 forward: of its 120 outputs */
    CONV3_IN_B = 8,    /* conv3 error pass: of its 400 inputs */
    FC_OUT_B = 5,      /* fc forward: of its 10 outputs */
    FC_IN_B = 8,       /* fc error pass: of its 120 inputs */
    GRAD_MAPS_B = 2,   /* conv1, conv2 weight gradients: output maps (acc0, acc1) */
};
_Static_assert(L5_CONV1_MAPS % CONV1_MAPS_B == 0 && L5_CONV2_MAPS % CONV2_MAPS_B == 0, "CONV_MAPS_B");
_Static_assert(L5_CONV1_SIZE % CONV1_COLS_B == 0, "CONV1_COLS_B must divide conv1's columns");
_Static_assert(L5_CONV2_SIZE % CONV2_COLS_B == 0, "CONV2_COLS_B must divide conv2's columns");
_Static_assert(L5_CONV3_MAPS % CONV3_OUT_B == 0 && L5_LAYER4_CELLS % CONV3_IN_B == 0, "conv3 blocks");
_Static_assert(L5_N_CLASSES % FC_OUT_B == 0 && L5_CONV3_MAPS % FC_IN_B == 0, "fc blocks");
_Static_assert(CONV3_IN_B <= 8 && FC_IN_B <= 8, "block_over_inputs keeps at most 8 inputs' offsets");
_Static_assert(L5_CONV1_MAPS % GRAD_MAPS_B == 0 && L5_CONV2_MAPS % GRAD_MAPS_B == 0, "GRAD_MAPS_B");
_Static_assert(GRAD_MAPS_B == 2, "conv_weight_grad_tile keeps exactly two maps' accumulators");

/* Phase 2's W3 outer products: W3_IN_B inputs by W3_OUT_B outputs (3
 * vectors), over W3_IMAGES_B images at a time: one task walks all 400 inputs
 * for its outputs while those images' layer4 values (64 x 3.2 KB) stay in
 * the L2 cache, instead of fetching every image's again for each block.
 * Phase 1 stores layer4 and e5 packed for these blocks (packed_at), so that a
 * block reads both operands as two contiguous runs. */
enum { W3_IN_B = 4, W3_OUT_B = 3 * LANES, W3_IMAGES_B = 64 };
_Static_assert(L5_LAYER4_CELLS % W3_IN_B == 0 && L5_CONV3_MAPS % W3_OUT_B == 0, "W3 outer blocks");
_Static_assert(CHUNK % W3_IMAGES_B == 0 && W3_IMAGES_B % LANES == 0, "W3 image groups");

/* Phase 2's run of g_small values per task (docs/SPEC.md §9.1): small
 * enough to stay in L1, and 22 tasks, so the threads' shares even out.
 * W4_IN_B: W4's inputs per task. */
enum { SPAN = 128, W4_IN_B = 10 };
_Static_assert(L5_CONV3_MAPS % W4_IN_B == 0, "W4_IN_B must divide W4's inputs");

/* x in every lane.  Spelled out per width: compilers turn an initialiser
 * into one broadcast, a loop not always (and x + a zero vector would turn
 * -0 into +0). */
#if L5_LANES == 8
#define SPLAT(x) {x, x, x, x, x, x, x, x}
#elif L5_LANES == 4
#define SPLAT(x) {x, x, x, x}
#else
#define SPLAT(x) {x, x}
#endif
static inline vd splat(double x) { return (vd)SPLAT(x); }
static inline vi splat_i(int64_t k) { return (vi)SPLAT(k); }

/* Lane-wise select: where mask is all ones take a, else b. */
static inline vd select(vi mask, vd a, vd b) {
    return (vd)((mask & (vi)a) | (~mask & (vi)b));
}

static inline vd relu_v(vd x) { return (vd)((x > splat(0.0)) & (vi)x); }

/* acc * relugrad(y), as the reference multiplies by 1.0 or 0.0. */
static inline vd gate_v(vd acc, vd y) {
    return acc * (vd)((y > splat(0.0)) & (vi)splat(1.0));
}

/*
 * A tile's working memory: LANES images' activations and errors, one vd a cell.
 * Once pooled, layer1 and layer3 are never read again (the pooling
 * remembers its winners), so their errors take their place: the tile then
 * fits the core's L2 cache better.
 */
typedef struct {
    vd input[L5_INPUT_CELLS];
    union { vd layer1[L5_LAYER1_CELLS]; vd e1[L5_LAYER1_CELLS]; };
    vd layer2[L5_LAYER2_CELLS];
    vi win2[L5_LAYER2_CELLS];
    union { vd layer3[L5_LAYER3_CELLS]; vd e3[L5_LAYER3_CELLS]; };
    vd layer4[L5_LAYER4_CELLS];
    vi win4[L5_LAYER4_CELLS];
    vd layer5[L5_LAYER5_CELLS];
    vd output[L5_N_CLASSES];
    vd d[L5_N_CLASSES];
    vd e5[L5_LAYER5_CELLS];
    vd e4[L5_LAYER4_CELLS];
    vd e2[L5_LAYER2_CELLS];
    uint8_t warped[LANES * L5_IMAGE_PIXELS]; /* the tile's images once warped */
    /* Profiling (docs/SPEC.md §9.7): with timing set, lap() adds the time
     * since `mark` to clock[stage]; otherwise it is one untaken branch. */
    int timing;
    double mark;
    double clock[L5_N_STAGES];
} Tile;

/* The stage that just ended on this tile's thread. */
static inline void lap(Tile *t, int stage) {
    if (!t->timing) return;
    double now = l5_now();
    t->clock[stage] += now - t->mark;
    t->mark = now;
}

/*
 * Weights rearranged once per batch so that each register block reads the
 * weights it broadcasts from one contiguous run.  "Blocked by B over outputs"
 * means [output / B][reduction index][output % B].
 */
typedef struct {
    double w1[L5_W1_SIZE];      /* W1 blocked by CONV1_MAPS_B over output maps */
    double w2[L5_W2_SIZE];      /* W2 blocked by CONV2_MAPS_B over output maps */
    double w3[L5_W3_SIZE];      /* W3 blocked by CONV3_OUT_B over its 120 outputs */
    double w3_back[L5_W3_SIZE]; /* W3 blocked by CONV3_IN_B over its 400 inputs (the error pass) */
    double w4[L5_W4_SIZE];      /* W4 blocked by FC_OUT_B over its 10 outputs */
    double w4_back[L5_W4_SIZE]; /* W4 blocked by FC_IN_B over its 120 inputs (the error pass) */
} Rearranged;

/*
 * w is [c_in][c_out][kk] (kk = 25 for a 5x5 kernel, 1 for a dense layer).
 * Forward: outputs are the c_out maps, the reduction runs over (c_in, k).
 * Backward: outputs are the (c_in, k) cells, the reduction runs over c_out.
 */
static void block_over_outputs(double *dst, const double *w, int c_in, int c_out, int kk, int b) {
    /* in the order dst is laid out, so it is written once, front to back */
    for (int co0 = 0; co0 < c_out; co0 += b)
        for (int ci = 0; ci < c_in; ci++)
            for (int k = 0; k < kk; k++)
                for (int j = 0; j < b; j++) *dst++ = w[(ci * c_out + co0 + j) * kk + k];
}

static void block_over_inputs(double *dst, const double *w, int c_in, int c_out, int kk, int b) {
    enum { MAX_B = 8 };
    int from[MAX_B]; /* where each of the block's b inputs u = ci * kk + k starts in w */
    for (int u0 = 0; u0 < c_in * kk; u0 += b) {
        for (int j = 0; j < b && j < MAX_B; j++) from[j] = (u0 + j) / kk * c_out * kk + (u0 + j) % kk;
        for (int co = 0; co < c_out; co++)
            for (int j = 0; j < b && j < MAX_B; j++) *dst++ = w[from[j] + co * kk];
    }
}

static void rearrange_weights(Rearranged *rw, const double *params) {
    const int kk = L5_CONV_KERNEL_CELLS;
    block_over_outputs(rw->w1, params + L5_OFF_W1, 1, L5_CONV1_MAPS, kk, CONV1_MAPS_B);
    block_over_outputs(rw->w2, params + L5_OFF_W2, L5_CONV1_MAPS, L5_CONV2_MAPS, kk, CONV2_MAPS_B);
    block_over_outputs(rw->w3, params + L5_OFF_W3, L5_CONV2_MAPS, L5_CONV3_MAPS, kk, CONV3_OUT_B);
    block_over_inputs(rw->w3_back, params + L5_OFF_W3, L5_CONV2_MAPS, L5_CONV3_MAPS, kk, CONV3_IN_B);
    block_over_outputs(rw->w4, params + L5_OFF_W4, L5_CONV3_MAPS, L5_N_CLASSES, 1, FC_OUT_B);
    block_over_inputs(rw->w4_back, params + L5_OFF_W4, L5_CONV3_MAPS, L5_N_CLASSES, 1, FC_IN_B);
}

/* ---------------------------------------------------------------------------
 * Convolution forward over a tile, register-blocked: MAPS_B output maps by
 * COLS_B output columns per pass, so each input load feeds MAPS_B products and
 * each weight broadcast COLS_B.  Each lane of each accumulator sums its terms
 * in the reference order (input map, kernel row, kernel column) from +0, then
 * relu(acc + bias).  Input rows that are zero padding for every image (the
 * first and last `pad` rows) contribute nothing and are skipped
 * (docs/SPEC.md §9.5).
 * w_blocked: the weights blocked by MAPS_B over output maps.
 */
static inline __attribute__((always_inline)) void
conv_forward_block(vd *out, const vd *in, const double *w_blocked, const double *bias,
                   int c_in, int h, int w, int pad, int co0, int r, int c0,
                   const int MAPS_B, const int COLS_B) {
    const int oh = h - L5_CONV_KERNEL + 1, ow = w - L5_CONV_KERNEL + 1;
    int kr_lo = pad - r > 0 ? pad - r : 0;
    int kr_hi = h - pad - 1 - r < L5_CONV_KERNEL - 1 ? h - pad - 1 - r : L5_CONV_KERNEL - 1;
    vd acc[MAPS_B * COLS_B];
    for (int k = 0; k < MAPS_B * COLS_B; k++) acc[k] = splat(0.0);
    const double *wb = w_blocked + (co0 / MAPS_B) * c_in * L5_CONV_KERNEL_CELLS * MAPS_B;
    for (int ci = 0; ci < c_in; ci++)
        for (int kr = kr_lo; kr <= kr_hi; kr++) {
            const vd *x = in + (ci * h + r + kr) * w + c0;
            const double *wt = wb + (ci * L5_CONV_KERNEL + kr) * L5_CONV_KERNEL * MAPS_B;
            for (int kc = 0; kc < L5_CONV_KERNEL; kc++) {
#pragma GCC unroll 8
                for (int j = 0; j < COLS_B; j++) {
                    vd xv = x[kc + j];
#pragma GCC unroll 8
                    for (int b = 0; b < MAPS_B; b++)
                        acc[b * COLS_B + j] = acc[b * COLS_B + j] + xv * splat(wt[kc * MAPS_B + b]);
                }
            }
        }
    for (int b = 0; b < MAPS_B; b++)
        for (int j = 0; j < COLS_B; j++)
            out[((co0 + b) * oh + r) * ow + c0 + j] = relu_v(acc[b * COLS_B + j] + splat(bias[co0 + b]));
}

static inline __attribute__((always_inline)) void
conv_forward_tile(vd *out, const vd *in, const double *w_blocked, const double *bias,
                  int c_in, int c_out, int h, int w, int pad, const int MAPS_B, const int COLS_B) {
    const int oh = h - L5_CONV_KERNEL + 1, ow = w - L5_CONV_KERNEL + 1;
    for (int co0 = 0; co0 < c_out; co0 += MAPS_B)
        for (int r = 0; r < oh; r++)
            for (int c0 = 0; c0 < ow; c0 += COLS_B)
                conv_forward_block(out, in, w_blocked, bias, c_in, h, w, pad, co0, r, c0,
                                   MAPS_B, COLS_B);
}

/* The input's zero frame is padding for every image: its rows are skipped. */
static void conv1_forward_tile(vd *layer1, const vd *input, const double *w1_blocked,
                               const double *b1) {
    conv_forward_tile(layer1, input, w1_blocked, b1, 1, L5_CONV1_MAPS, L5_INPUT_SIZE, L5_INPUT_SIZE,
                      L5_INPUT_PAD, CONV1_MAPS_B, CONV1_COLS_B);
}

static void conv2_forward_tile(vd *layer3, const vd *layer2, const double *w2_blocked,
                               const double *b2) {
    conv_forward_tile(layer3, layer2, w2_blocked, b2, L5_CONV1_MAPS, L5_CONV2_MAPS,
                      L5_POOL1_SIZE, L5_POOL1_SIZE, 0, CONV2_MAPS_B, CONV2_COLS_B);
}

/*
 * e2, the error over layer2 (6 x 14 x 14), from e3, the error over layer3
 * (16 x 10 x 10), one input row (ci, p) at a time: the row's 14 cells are
 * the accumulators, and each error row e3[co][r] whose windows cover row p
 * adds err[co][r][c] * W[ci][co][p-r][kc] to cell c + kc.  For every cell
 * the terms arrive over output maps co, then output rows r, then output
 * columns c ascending (kc runs from 4 down to 0, so c = q - kc rises): the
 * reference order (docs/SPEC.md §7.2), and only terms that exist are
 * formed.  Then relugrad(layer2) gates the row.  One broadcast weight feeds
 * ten multiply-adds, and W2 is read in its own layout [ci][co][kr][kc].
 */
static void conv2_backward_input_tile(vd *e2, const vd *e3, const double *w2, const vd *layer2) {
    enum { K = L5_CONV_KERNEL, SIZE = L5_POOL1_SIZE, OUT = L5_CONV2_SIZE };
    _Static_assert(SIZE == OUT + K - 1, "conv2's input row is its output row plus the kernel");
    for (int ci = 0; ci < L5_CONV1_MAPS; ci++)
        for (int p = 0; p < SIZE; p++) {
            vd acc[SIZE];
            for (int q = 0; q < SIZE; q++) acc[q] = splat(0.0);
            int r_lo = p - (K - 1) > 0 ? p - (K - 1) : 0, r_hi = p < OUT - 1 ? p : OUT - 1;
            for (int co = 0; co < L5_CONV2_MAPS; co++)
                for (int r = r_lo; r <= r_hi; r++) {
                    const vd *err = e3 + (co * OUT + r) * OUT;
                    const double *w = w2 + ((ci * L5_CONV2_MAPS + co) * K + (p - r)) * K;
#pragma GCC unroll 5
                    for (int kc = K - 1; kc >= 0; kc--) {
                        vd wv = splat(w[kc]);
#pragma GCC unroll 10
                        for (int c = 0; c < OUT; c++) acc[c + kc] = acc[c + kc] + err[c] * wv;
                    }
                }
            for (int q = 0; q < SIZE; q++) {
                int o = (ci * SIZE + p) * SIZE + q;
                e2[o] = gate_v(acc[q], layer2[o]);
            }
        }
}

/*
 * Dense pass over a tile: out[j] = sum_u in[u] * W(u, j), u ascending from
 * +0, B outputs per pass; then relu(acc + bias) if bias is given, else
 * acc * relugrad(gate).  w_blocked holds W blocked by B over the outputs.
 * Serves the fully connected layer both ways and the third convolution both
 * ways (a 5x5 convolution of a 5x5 map is a dense layer over its 400 inputs).
 */
static inline __attribute__((always_inline)) void
dense_tile(vd *out, const vd *in, const double *w_blocked, const double *bias,
           const vd *gate, int n_in, int n_out, const int B) {
    for (int j0 = 0; j0 < n_out; j0 += B) {
        vd acc[B];
        for (int b = 0; b < B; b++) acc[b] = splat(0.0);
        const double *wb = w_blocked + (j0 / B) * n_in * B;
        for (int u = 0; u < n_in; u++) {
            vd x = in[u];
#pragma GCC unroll 8
            for (int b = 0; b < B; b++) acc[b] = acc[b] + x * splat(wb[u * B + b]);
        }
        for (int b = 0; b < B; b++)
            out[j0 + b] = bias ? relu_v(acc[b] + splat(bias[j0 + b])) : gate_v(acc[b], gate[j0 + b]);
    }
}

static void conv3_forward_tile(vd *layer5, const vd *layer4, const double *w3_blocked,
                               const double *b3) {
    dense_tile(layer5, layer4, w3_blocked, b3, NULL, L5_LAYER4_CELLS, L5_CONV3_MAPS, CONV3_OUT_B);
}

static void fc_forward_tile(vd *output, const vd *layer5, const double *w4_blocked,
                            const double *b4) {
    dense_tile(output, layer5, w4_blocked, b4, NULL, L5_CONV3_MAPS, L5_N_CLASSES, FC_OUT_B);
}

/* e5 from the output error d; gW4 and gb4 are left to phase 2. */
static void fc_backward_input_tile(vd *e5, const vd *d, const double *w4_back,
                                   const vd *layer5) {
    dense_tile(e5, d, w4_back, NULL, layer5, L5_N_CLASSES, L5_CONV3_MAPS, FC_IN_B);
}

/* e4 from e5; gW3 and gb3 are left to phase 2. */
static void conv3_backward_input_tile(vd *e4, const vd *e5, const double *w3_back,
                                      const vd *layer4) {
    dense_tile(e4, e5, w3_back, NULL, layer4, L5_CONV3_MAPS, L5_LAYER4_CELLS, CONV3_IN_B);
}

/* 2x2 max pool over a tile; win records each lane's winning cell (0..3). */
static void maxpool_tile(vd *out, vi *win, const vd *in, int maps, int h, int w) {
    int oh = h / 2, ow = w / 2;
    for (int m = 0; m < maps; m++)
        for (int r = 0; r < oh; r++)
            for (int c = 0; c < ow; c++) {
                const vd *x = in + (m * h + 2 * r) * w + 2 * c;
                vd cell[4] = {x[0], x[1], x[w], x[w + 1]};
                vd best = cell[0];
                vi idx = splat_i(0);
                for (int k = 1; k < 4; k++) {
                    vi greater = cell[k] > best; /* strictly: ties keep the earliest */
                    best = select(greater, cell[k], best);
                    idx = (greater & splat_i(k)) | (~greater & idx);
                }
                out[(m * oh + r) * ow + c] = best;
                win[(m * oh + r) * ow + c] = idx;
            }
}

/* Max pool backward: each lane's error goes to its winning cell, others get +0. */
static void maxpool_backward_tile(vd *e_in, const vd *e_out, const vi *win,
                                  int maps, int h, int w) {
    int oh = h / 2, ow = w / 2;
    for (int m = 0; m < maps; m++)
        for (int r = 0; r < oh; r++)
            for (int c = 0; c < ow; c++) {
                int o = (m * oh + r) * ow + c;
                vd *x = e_in + (m * h + 2 * r) * w + 2 * c;
                vd *cell[4] = {&x[0], &x[1], &x[w], &x[w + 1]};
                for (int k = 0; k < 4; k++)
                    *cell[k] = (vd)((win[o] == splat_i(k)) & (vi)e_out[o]);
            }
}

/*
 * Weight gradient over a tile: gw[ci][co][kr][kc] = sum over error cells
 * (r, c) row-major of in[ci][r+kr][c+kc] * err[co][r][c], per lane.
 * GRAD_MAPS_B = 2 output maps by all five kernel columns per pass share the loads.
 */
static void conv_weight_grad_tile(vd *gw, const vd *in, const vd *err,
                                  int c_in, int c_out, int h, int w) {
    const int oh = h - L5_CONV_KERNEL + 1, ow = w - L5_CONV_KERNEL + 1;
    for (int ci = 0; ci < c_in; ci++)
        for (int co = 0; co < c_out; co += GRAD_MAPS_B)
            for (int kr = 0; kr < L5_CONV_KERNEL; kr++) {
                vd acc0[L5_CONV_KERNEL], acc1[L5_CONV_KERNEL];
                for (int kc = 0; kc < L5_CONV_KERNEL; kc++) acc0[kc] = acc1[kc] = splat(0.0);
                for (int r = 0; r < oh; r++) {
                    const vd *x = in + (ci * h + r + kr) * w;
                    const vd *err_row0 = err + (co * oh + r) * ow, *err_row1 = err_row0 + oh * ow;
                    for (int c = 0; c < ow; c++) {
#pragma GCC unroll 5
                        for (int kc = 0; kc < L5_CONV_KERNEL; kc++) {
                            acc0[kc] = acc0[kc] + x[c + kc] * err_row0[c];
                            acc1[kc] = acc1[kc] + x[c + kc] * err_row1[c];
                        }
                    }
                }
                for (int kc = 0; kc < L5_CONV_KERNEL; kc++) {
                    gw[((ci * c_out + co) * L5_CONV_KERNEL + kr) * L5_CONV_KERNEL + kc] = acc0[kc];
                    gw[((ci * c_out + co + 1) * L5_CONV_KERNEL + kr) * L5_CONV_KERNEL + kc] = acc1[kc];
                }
            }
}

/* Bias gradient: each output map's errors summed row-major from +0. */
static void bias_grad_tile(vd *gb, const vd *err, int maps, int cells) {
    for (int m = 0; m < maps; m++) {
        vd acc = splat(0.0);
        for (int k = 0; k < cells; k++) acc = acc + err[m * cells + k];
        gb[m] = acc;
    }
}

/*
 * The warp (docs/SPEC.md §8.6) on vectors, a lane a pixel: the operations of
 * augment.c's l5_warp_image_ref, its readable twin, per pixel and in the
 * same order, so the same bytes (the tests hold them to it).  784 pixels are
 * a whole number of vectors at every lane count.
 */
_Static_assert(L5_IMAGE_PIXELS % LANES == 0, "the warp's vectors cover the image");

/* floor(x) for |x| < 2^51 that is not -0: x + 1.5 * 2^52 has a unit in the
 * last place of 1, so adding it and taking it away rounds x to an integer
 * exactly; one less where that went up.  The warp's arguments are sums
 * with 13.5 or 0.5, so never -0 (x + c = -0 needs x = c = -0). */
static inline vd floor_v(vd x) {
    const vd magic = splat(0x1.8p52);
    vd r = (x + magic) - magic;
    return r - (vd)((r > x) & (vi)splat(1.0));
}

/* Small whole numbers per lane, as 32-bit integers. */
typedef int32_t vs __attribute__((vector_size(LANES * sizeof(int32_t))));

/* base[at[l]] in each lane l: one gather instruction where the variant has
 * one (AVX2, AVX-512), else a load a lane. */
static inline vd gather_v(const double *base, vs at) {
#if defined(__AVX512F__) && L5_LANES == 8
    return (vd)_mm512_i32gather_pd((__m256i)at, base, sizeof(double));
#elif defined(__AVX2__) && L5_LANES == 4
    return (vd)_mm256_i32gather_pd(base, (__m128i)at, sizeof(double));
#else
    vd v;
    for (int l = 0; l < LANES; l++) v[l] = base[at[l]];
    return v;
#endif
}

/* lo where x < lo, hi where x > hi, else x (as the twin's nested ?:). */
static inline vd clamp_v(vd x, double lo, double hi) {
    return select(x < splat(lo), splat(lo), select(x > splat(hi), splat(hi), x));
}

void L5_ISA_NAME(l5_fast_warp_image)(uint8_t *out, const uint8_t *image, const L5Warp *warp,
                                     int64_t i) {
    L5WarpMap m;
    l5_warp_map(&m, warp, i);
    double framed[L5_WARP_FRAMED * L5_WARP_FRAMED];
    l5_warp_frame(framed, image);
    int32_t value[L5_IMAGE_PIXELS] __attribute__((aligned(64)));
    const vd a = splat(m.a), b = splat(m.b), centre = splat(L5_WARP_CENTRE);
    const double lo = L5_WARP_LO, hi = L5_WARP_HI;
    vd col, row; /* each lane's pixel, as doubles */
    for (int l = 0; l < LANES; l++) {
        col[l] = l % L5_IMAGE_SIZE;
        row[l] = l / L5_IMAGE_SIZE;
    }
    for (int p0 = 0; p0 < L5_IMAGE_PIXELS; p0 += LANES) {
        vd x = (col - centre) - splat(m.tx);
        vd y = (row - centre) - splat(m.ty);
        vd sx = (a * x + b * y) + centre;
        vd sy = (a * y - b * x) + centre;
        vd fx0 = floor_v(sx), fy0 = floor_v(sy);
        vd fx = sx - fx0, fy = sy - fy0;
        /* the frame cell of each lane's top-left pixel (small integers: exact) */
        vs at = __builtin_convertvector((clamp_v(fy0, lo, hi) + splat(L5_WARP_PAD)) * splat(L5_WARP_FRAMED) +
                                            (clamp_v(fx0, lo, hi) + splat(L5_WARP_PAD)), vs);
        vd p00 = gather_v(framed, at), p01 = gather_v(framed + 1, at);
        vd p10 = gather_v(framed + L5_WARP_FRAMED, at), p11 = gather_v(framed + L5_WARP_FRAMED + 1, at);
        vd top = p00 + fx * (p01 - p00);
        vd bottom = p10 + fx * (p11 - p10);
        vd v = clamp_v(floor_v((top + fy * (bottom - top)) + splat(0.5)), 0.0, 255.0);
        *(vs *)&value[p0] = __builtin_convertvector(v, vs);
        /* the next LANES pixels: columns on, wrapping to the next row */
        col = col + splat(LANES);
        vi wrap = col >= splat(L5_IMAGE_SIZE);
        col = select(wrap, col - splat(L5_IMAGE_SIZE), col);
        row = select(wrap, row + splat(1.0), row);
    }
    /* to bytes in one pass of its own, which the compiler packs on vectors
     * (narrowing a lane at a time in the loop above cost a fifth of it) */
    for (int p = 0; p < L5_IMAGE_PIXELS; p++) out[p] = (uint8_t)value[p];
}

/* Load up to LANES images into the tile's lanes, normalised as
 * l5_normalize_image does, one division per cell for all lanes; missing
 * lanes get a blank image (docs/SPEC.md §9.2), and a flat image's lane is
 * +0 throughout.  Only the 28 x 28 middle is written: the zero frame around
 * it was cleared when the tile was made and nothing writes there. */
static void load_tile(Tile *t, const uint8_t *images, int count) {
    static const uint8_t blank[L5_IMAGE_PIXELS];
    const uint8_t *pixels[LANES];
    vd mean, std;
    vi live; /* all ones in lanes whose image is not flat */
    for (int l = 0; l < LANES; l++) {
        pixels[l] = l < count ? images + (int64_t)l * L5_IMAGE_PIXELS : blank;
        double m, s;
        int ok = l5_image_moments(pixels[l], &m, &s);
        live[l] = ok ? -1 : 0;
        mean[l] = ok ? m : 0.0;
        std[l] = ok ? s : 1.0;
    }
    for (int r = 0; r < L5_IMAGE_SIZE; r++)
        for (int c = 0; c < L5_IMAGE_SIZE; c++) {
            vd p;
            for (int l = 0; l < LANES; l++) p[l] = pixels[l][r * L5_IMAGE_SIZE + c];
            t->input[(r + L5_INPUT_PAD) * L5_INPUT_SIZE + c + L5_INPUT_PAD] = (vd)(live & (vi)((p - mean) / std));
        }
}

/* The forward pass of a tile, layer by layer as in reference.c's forward_image. */
static void forward_tile(Tile *t, const double *params, const Rearranged *rw) {
    conv1_forward_tile(t->layer1, t->input, rw->w1, params + L5_OFF_B1);
    lap(t, L5_STAGE_CONV1);
    maxpool_tile(t->layer2, t->win2, t->layer1, L5_CONV1_MAPS, L5_CONV1_SIZE, L5_CONV1_SIZE);
    lap(t, L5_STAGE_POOL1);
    conv2_forward_tile(t->layer3, t->layer2, rw->w2, params + L5_OFF_B2);
    lap(t, L5_STAGE_CONV2);
    maxpool_tile(t->layer4, t->win4, t->layer3, L5_CONV2_MAPS, L5_CONV2_SIZE, L5_CONV2_SIZE);
    lap(t, L5_STAGE_POOL2);
    conv3_forward_tile(t->layer5, t->layer4, rw->w3, params + L5_OFF_B3);
    lap(t, L5_STAGE_CONV3);
    fc_forward_tile(t->output, t->layer5, rw->w4, params + L5_OFF_B4);
    lap(t, L5_STAGE_FC);
}

/* Backward from the output error t->d, layers in the order of docs/SPEC.md
 * §7.4; the weight and bias gradients of conv1 and conv2 go to the tile's
 * row g of the chunk buffers. */
static void backward_tile(Tile *t, vd *g, const double *params, const Rearranged *rw) {
    fc_backward_input_tile(t->e5, t->d, rw->w4_back, t->layer5);
    lap(t, L5_STAGE_FC_BACK);
    conv3_backward_input_tile(t->e4, t->e5, rw->w3_back, t->layer4);
    lap(t, L5_STAGE_CONV3_BACK);
    maxpool_backward_tile(t->e3, t->e4, t->win4, L5_CONV2_MAPS, L5_CONV2_SIZE, L5_CONV2_SIZE);
    lap(t, L5_STAGE_POOL2_BACK);
    conv2_backward_input_tile(t->e2, t->e3, params + L5_OFF_W2, t->layer2);
    lap(t, L5_STAGE_CONV2_BACK);
    conv_weight_grad_tile(g + L5_OFF_W2, t->layer2, t->e3, L5_CONV1_MAPS, L5_CONV2_MAPS,
                          L5_POOL1_SIZE, L5_POOL1_SIZE);
    bias_grad_tile(g + G_BIASES + L5_B1_SIZE, t->e3, L5_CONV2_MAPS, L5_CONV2_SIZE * L5_CONV2_SIZE);
    lap(t, L5_STAGE_CONV2_GRAD);
    maxpool_backward_tile(t->e1, t->e2, t->win2, L5_CONV1_MAPS, L5_CONV1_SIZE, L5_CONV1_SIZE);
    lap(t, L5_STAGE_POOL1_BACK);
    /* The error over the input itself is never used: conv1 has only gradients. */
    conv_weight_grad_tile(g + L5_OFF_W1, t->input, t->e1, 1, L5_CONV1_MAPS, L5_INPUT_SIZE, L5_INPUT_SIZE);
    bias_grad_tile(g + G_BIASES, t->e1, L5_CONV1_MAPS, L5_CONV1_SIZE * L5_CONV1_SIZE);
    lap(t, L5_STAGE_CONV1_GRAD);
}

/* A tile's bytes in the workspace: whole cache lines, so tiles side by side
 * never share one. */
enum { TILE_BYTES = (sizeof(Tile) + 63) / 64 * 64 };

/* Buffers phase 1 fills for phase 2: a row per tile (g_tiles) or per image
 * (the rest) of the chunk. */
typedef struct {
    vd *g_tiles;     /* [CHUNK / LANES][G_SMALL]: gW1, gW2, gb1, gb2, gb3, gb4 */
    double *layer4;  /* [CHUNK][400], packed by W3_IN_B (packed_at) */
    double *e5;      /* [CHUNK][120], packed by W3_OUT_B (packed_at) */
    double *layer5;  /* [CHUNK][120] */
    double *d;       /* [CHUNK][10]  */
    double *loss;    /* [CHUNK] */
    int *correct;    /* [CHUNK] */
} ChunkBuffers;

/*
 * Where image i's value k of `cells` per image goes when packed by b for the
 * W3 blocks: [i / W3_IMAGES_B][k / b][i % W3_IMAGES_B][k % b].  A block of b
 * values of a group of images is then one contiguous run, image by image.
 */
static inline int64_t packed_at(int64_t i, int k, int cells, int b) {
    return ((i / W3_IMAGES_B * (cells / b) + k / b) * W3_IMAGES_B + i % W3_IMAGES_B) * b + k % b;
}

/* A tile's `count` images' values (rows: [cells][lane]), image `first` in
 * lane 0, stored packed by b.  A tile never straddles a group, so for each
 * block of b values its images' runs follow one another: one contiguous
 * write of count * b values. */
static void store_packed(double *dst, const vd *rows, int64_t first, int count, int cells, int b) {
    for (int k0 = 0; k0 < cells; k0 += b) {
        double *run = dst + packed_at(first, k0, cells, b);
        for (int l = 0; l < count; l++)
            for (int a = 0; a < b; a++) run[l * b + a] = rows[k0 + a][l];
    }
}

/* Phase 1 for one tile: all of its images' per-image values.  warp: NULL,
 * or the chunk's warp (its index at the chunk's first image): the tile's
 * thread warps its own images as it loads them, so the warp needs no
 * thread team of its own. */
static void train_tile(Tile *t, ChunkBuffers *cb, int64_t first, int count,
                       const uint8_t *images, const uint8_t *labels, int loss,
                       const double *params, const Rearranged *rw, const L5Warp *warp) {
    if (warp) {
        for (int l = 0; l < count; l++)
            L5_ISA_NAME(l5_fast_warp_image)(t->warped + l * L5_IMAGE_PIXELS,
                                            images + (int64_t)l * L5_IMAGE_PIXELS, warp, first + l);
        images = t->warped;
        lap(t, L5_STAGE_WARP);
    }
    load_tile(t, images, count);
    lap(t, L5_STAGE_LOAD);
    forward_tile(t, params, rw);
    for (int l = 0; l < LANES; l++) {
        double z[L5_N_CLASSES], d[L5_N_CLASSES];
        for (int j = 0; j < L5_N_CLASSES; j++) z[j] = t->output[j][l];
        int label = l < count ? labels[l] : 0;
        double value = l5_output_error(d, z, label, loss);
        for (int j = 0; j < L5_N_CLASSES; j++) t->d[j][l] = d[j];
        if (l < count) {
            cb->loss[first + l] = value;
            cb->correct[first + l] = l5_argmax10(z) == label;
        }
    }
    lap(t, L5_STAGE_OUTPUT_ERROR);
    vd *g = cb->g_tiles + first / LANES * G_SMALL;
    backward_tile(t, g, params, rw);
    vd *gb3 = g + G_BIASES + L5_B1_SIZE + L5_B2_SIZE;
    memcpy(gb3, t->e5, sizeof(vd) * L5_B3_SIZE);                  /* gb3 = e5 */
    memcpy(gb3 + L5_B3_SIZE, t->d, sizeof(vd) * L5_B4_SIZE);      /* gb4 = d */
    store_packed(cb->layer4, t->layer4, first, count, L5_LAYER4_CELLS, W3_IN_B);
    store_packed(cb->e5, t->e5, first, count, L5_LAYER5_CELLS, W3_OUT_B);
    for (int l = 0; l < count; l++) {
        int64_t i = first + l;
        for (int k = 0; k < L5_LAYER5_CELLS; k++) cb->layer5[i * L5_LAYER5_CELLS + k] = t->layer5[k][l];
        for (int k = 0; k < L5_N_CLASSES; k++) cb->d[i * L5_N_CLASSES + k] = t->d[k][l];
    }
    lap(t, L5_STAGE_STORE);
}

/*
 * Phase 2, W3 (docs/SPEC.md §9.3): sum_w3t[u][co] += layer4[i][u] * e5[i][co]
 * for the m images of a group in order, for a block of W3_IN_B u by W3_OUT_B
 * co.  x: the group's packed layer4 block at u0, [m][W3_IN_B]; e: its packed
 * e5 block at co0, [m][W3_OUT_B].  The image is the inner index and stays
 * sequential (the caller walks the groups in order too); the 4 x 3
 * vector accumulators are independent.
 */
static void w3_outer_block(double *sum_w3t, const double *x, const double *e, int64_t m,
                           int u0, int co0) {
    enum { VECS = W3_OUT_B / LANES };
    vd acc[W3_IN_B][VECS];
    for (int a = 0; a < W3_IN_B; a++)
        for (int v = 0; v < VECS; v++)
            acc[a][v] = *(const vd_u *)&sum_w3t[(u0 + a) * L5_CONV3_MAPS + co0 + LANES * v];
    for (int64_t i = 0; i < m; i++) {
        vd ev[VECS];
        for (int v = 0; v < VECS; v++) ev[v] = *(const vd *)&e[i * W3_OUT_B + LANES * v];
#pragma GCC unroll 4
        for (int a = 0; a < W3_IN_B; a++) {
            vd xv = splat(x[i * W3_IN_B + a]);
            for (int v = 0; v < VECS; v++) acc[a][v] = acc[a][v] + xv * ev[v];
        }
    }
    for (int a = 0; a < W3_IN_B; a++)
        for (int v = 0; v < VECS; v++)
            *(vd_u *)&sum_w3t[(u0 + a) * L5_CONV3_MAPS + co0 + LANES * v] = acc[a][v];
}

/*
 * The batch's update, fused into its last phase 2 (docs/SPEC.md §9.8): a
 * phase-2 task that has added the last image to its sums updates those
 * parameters at once, so the update needs no thread team, barrier or pass of
 * its own.  The update is elementwise (update.c): any split gives the same bytes.
 */
typedef struct {
    double *params;
    const L5Update *update;
    int64_t batch;
} FinalUpdate;

/* params[at..at+count) from sums sum[0..count); clock: NULL, or the
 * thread's update seconds to add to (profiling). */
static void update_timed(const FinalUpdate *fin, double *clock, const double *sum, int64_t at,
                         int64_t count) {
    double start = clock ? l5_now() : 0.0;
    l5_update_span(fin->params, sum, at, count, fin->update, fin->batch);
    if (clock) *clock += l5_now() - start;
}

/* The g_small values lo..hi: W1 and W2 sit at their parameter offsets, the
 * biases from G_BIASES on follow at L5_OFF_B1. */
static void update_small(const FinalUpdate *fin, double *clock, const double *sum_packed, int lo,
                         int hi) {
    int mid = hi < G_BIASES ? hi : lo > G_BIASES ? lo : G_BIASES;
    if (lo < mid) update_timed(fin, clock, sum_packed + lo, L5_OFF_W1 + lo, mid - lo);
    if (mid < hi) update_timed(fin, clock, sum_packed + mid, L5_OFF_B1 + (mid - G_BIASES), hi - mid);
}

/* W3's outputs co0..co0+W3_OUT_B: their sums back in the parameter layout
 * [ci][co][k] (contiguous over co and k for one ci), then updated. */
static void update_w3(const FinalUpdate *fin, double *clock, const double *sum_w3t, int co0) {
    const int kk = L5_CONV_KERNEL_CELLS;
    double run[W3_OUT_B * L5_CONV_KERNEL_CELLS];
    for (int ci = 0; ci < L5_CONV2_MAPS; ci++) {
        for (int co = 0; co < W3_OUT_B; co++)
            for (int k = 0; k < kk; k++)
                run[co * kk + k] = sum_w3t[(ci * kk + k) * L5_CONV3_MAPS + co0 + co];
        update_timed(fin, clock, run, L5_OFF_W3 + (ci * L5_CONV3_MAPS + co0) * kk, W3_OUT_B * kk);
    }
}

/*
 * Phase 2 for a chunk: add its images to the running sums, in image order.
 * sum_packed: S of the g_small values, then S of W4; sum_w3t: S of W3 as
 * [400 inputs][120 outputs].  Tasks are handed out dynamically, like tiles
 * (for_each_tile says why); one task still owns each element whole, and in
 * the batch's first chunk clears it first.  fin:
 * NULL, or this is the batch's last chunk and each task updates its
 * parameters when its sums are whole; clock: NULL, or the thread's update
 * seconds (profiling).  No barrier at the end: the team's region ends here.
 */
static void reduce_chunk(double *sum_packed, double *sum_w3t, const ChunkBuffers *cb, int64_t n,
                         int first_chunk, const FinalUpdate *fin, double *clock) {
    /* One list of tasks, heaviest first, handed out dynamically: the team
     * meets once, at the end, and the small tasks at the tail even out the
     * threads' shares. */
    enum { W3_TASKS = L5_CONV3_MAPS / W3_OUT_B,
           SUM_TASKS = (G_SMALL + SPAN - 1) / SPAN,
           W4_TASKS = L5_CONV3_MAPS / W4_IN_B };
#pragma omp for schedule(dynamic) nowait
    for (int task = 0; task < W3_TASKS + SUM_TASKS + W4_TASKS; task++) {
        if (task < W3_TASKS) {
            /* W3: outer products, blocked W3_IN_B x W3_OUT_B; the task owns
             * W3_OUT_B outputs and adds the images in order, W3_IMAGES_B at a time. */
            int co0 = task * W3_OUT_B;
            if (first_chunk) /* S starts from +0: each task clears its own part, in its own cache */
                for (int u = 0; u < L5_LAYER4_CELLS; u++)
                    memset(sum_w3t + u * L5_CONV3_MAPS + co0, 0, sizeof(double) * W3_OUT_B);
            for (int64_t i0 = 0; i0 < n; i0 += W3_IMAGES_B) {
                int64_t m = n - i0 < W3_IMAGES_B ? n - i0 : W3_IMAGES_B;
                const double *e = cb->e5 + packed_at(i0, co0, L5_LAYER5_CELLS, W3_OUT_B);
                for (int u0 = 0; u0 < L5_LAYER4_CELLS; u0 += W3_IN_B)
                    w3_outer_block(sum_w3t, cb->layer4 + packed_at(i0, u0, L5_LAYER4_CELLS, W3_IN_B), e, m,
                                   u0, co0);
            }
            if (fin) update_w3(fin, clock, sum_w3t, co0);
        } else if (task < W3_TASKS + SUM_TASKS) {
            /* W1, W2 and biases: per-image values added image by image, a
             * tile's lanes in order (the last tile's missing images are left out). */
            int lo = (task - W3_TASKS) * SPAN, hi = lo + SPAN < G_SMALL ? lo + SPAN : G_SMALL;
            double *s = sum_packed + lo;
            if (first_chunk) memset(s, 0, sizeof(double) * (size_t)(hi - lo));
            for (int64_t first = 0; first < n; first += LANES) {
                const vd *g = cb->g_tiles + first / LANES * G_SMALL;
                int count = n - first < LANES ? (int)(n - first) : LANES;
                for (int v = lo; v < hi; v++)
                    for (int l = 0; l < count; l++) s[v - lo] = s[v - lo] + g[v][l];
            }
            if (fin) update_small(fin, clock, sum_packed, lo, hi);
        } else {
            /* W4: outer products, small enough to do plainly, W4_IN_B inputs a task. */
            int u0 = (task - W3_TASKS - SUM_TASKS) * W4_IN_B;
            if (first_chunk)
                memset(sum_packed + G_SMALL + u0 * L5_N_CLASSES, 0, sizeof(double) * W4_IN_B * L5_N_CLASSES);
            for (int u = u0; u < u0 + W4_IN_B; u++) {
                double *s = sum_packed + G_SMALL + u * L5_N_CLASSES;
                for (int64_t i = 0; i < n; i++) {
                    double x = cb->layer5[i * L5_LAYER5_CELLS + u];
                    for (int j = 0; j < L5_N_CLASSES; j++) s[j] = s[j] + x * cb->d[i * L5_N_CLASSES + j];
                }
            }
            if (fin)
                update_timed(fin, clock, sum_packed + G_SMALL + u0 * L5_N_CLASSES, L5_OFF_W4 + u0 * L5_N_CLASSES,
                             W4_IN_B * L5_N_CLASSES);
        }
    }
}

/* The chunk buffers for `rows` images, cut from one workspace block, each
 * piece starting on a cache line.  Whole groups for the packed W3 operands
 * (their stride is a full group). */
static int chunk_buffers(ChunkBuffers *cb, L5Workspace *ws, int64_t rows) {
    size_t tile_rows = (size_t)(rows + LANES - 1) / LANES;
    size_t group_rows = (size_t)(rows + W3_IMAGES_B - 1) / W3_IMAGES_B * W3_IMAGES_B;
    size_t sizes[7] = {sizeof(vd) * tile_rows * G_SMALL, sizeof(double) * group_rows * L5_LAYER4_CELLS,
                       sizeof(double) * group_rows * L5_LAYER5_CELLS, sizeof(double) * rows * L5_LAYER5_CELLS,
                       sizeof(double) * rows * L5_N_CLASSES, sizeof(double) * rows, sizeof(int) * rows};
    size_t at[7], total = 0;
    for (int k = 0; k < 7; k++) {
        at[k] = total;
        total += (sizes[k] + 63) / 64 * 64;
    }
    char *base = l5_workspace_block(ws, L5_WS_CHUNK, total, 0);
    if (!base) return L5_ERR_NOMEM;
    cb->g_tiles = (vd *)(base + at[0]);
    cb->layer4 = (double *)(base + at[1]);
    cb->e5 = (double *)(base + at[2]);
    cb->layer5 = (double *)(base + at[3]);
    cb->d = (double *)(base + at[4]);
    cb->loss = (double *)(base + at[5]);
    cb->correct = (int *)(base + at[6]);
    return L5_OK;
}

/*
 * Run work(t, first, count, args) over the tiles of n images in parallel,
 * each thread of the team with its own Tile in the workspace (tile k for
 * the team's thread k; a tile's zero frame stays zero from call to call);
 * the last tile may hold fewer than LANES images.  args is the call's
 * *TileArgs struct.
 *
 * Tiles are handed out one at a time (dynamic schedule), not in equal
 * shares: when another process takes part of a core, the thread there
 * falls behind, and a static share would make every other thread wait for
 * it at the end of the phase.  A tile is hundreds of microseconds of work,
 * so the hand-out costs nothing measurable.  Which thread runs a tile never
 * changes its bits (docs/SPEC.md §9.1).
 */
typedef void TileWork(Tile *t, int64_t first, int count, void *args);
/* What the whole team does next, in the same parallel region, once every
 * tile is done: one team start a chunk instead of two, which matters for
 * small batches (the preset's 64). */
typedef void TeamWork(void *args, double *profile);

/* The weights a team rearranges before its tiles: rw from params. */
typedef struct {
    Rearranged *rw;
    const double *params;
} Rearranging;

/* profile: NULL, or the stage clocks every thread's tile adds to at the end.
 * first: NULL, or the weights thread 0 rearranges before any tile starts:
 * inside the region, while the other threads are still waking up (a team's
 * start costs tens of microseconds), so that the two overlap; a thread that
 * is early waits for it without a barrier's sleep.  then: NULL, or what the
 * team runs after the tiles (with then_args). */
static int for_each_tile(L5Workspace *ws, int64_t n, int threads, TileWork *work, void *args,
                         const Rearranging *first, TeamWork *then, void *then_args,
                         double *profile) {
    int64_t n_tiles = (n + LANES - 1) / LANES;
    int team = l5_resolve_threads(threads);
    if (team > n_tiles) team = (int)n_tiles; /* an idle thread would only cost a Tile */
    char *tiles = l5_workspace_block(ws, L5_WS_TILES, (size_t)team * TILE_BYTES, LANES);
    if (!tiles) return L5_ERR_NOMEM;
    /* The team's meeting points, counted by hand (l5_wait_for): with
     * OpenMP's passive barriers every thread that arrives first sleeps, and
     * waking it costs tens of microseconds on a VM, several times a batch. */
    int rearranged = 0, tiles_done = 0, all_done = 0;
#pragma omp parallel num_threads(team)
    {
#ifdef _OPENMP
        const int me = omp_get_thread_num(), members = omp_get_num_threads();
#else
        const int me = 0, members = 1;
#endif
        Tile *t = (Tile *)(tiles + (size_t)me * TILE_BYTES);
        t->timing = profile != NULL;
        memset(t->clock, 0, sizeof t->clock);
        if (first && me == 0) {
            rearrange_weights(first->rw, first->params);
            __atomic_store_n(&rearranged, 1, __ATOMIC_RELEASE);
        } else if (first) {
            l5_wait_for(&rearranged, 1);
        }
#pragma omp for schedule(dynamic) nowait
        for (int64_t k = 0; k < n_tiles; k++) {
            int64_t first = k * LANES;
            if (t->timing) t->mark = l5_now();
            work(t, first, n - first < LANES ? (int)(n - first) : LANES, args);
        }
        if (t->timing) {
#pragma omp critical
            for (int k = 0; k < L5_N_STAGES; k++) profile[k] += t->clock[k];
        }
        if (then) {
            /* every tile done before phase 2 reads them */
            __atomic_add_fetch(&tiles_done, 1, __ATOMIC_ACQ_REL);
            l5_wait_for(&tiles_done, members);
            then(then_args, profile);
        }
        /* Thread 0 leaves last, so that it is not the one asleep in the
         * region's closing barrier, waiting to be woken. */
        __atomic_add_fetch(&all_done, 1, __ATOMIC_ACQ_REL);
        if (me == 0) l5_wait_for(&all_done, members);
    }
    return L5_OK;
}

/* What a training tile needs besides its own memory. */
typedef struct {
    ChunkBuffers *cb;
    const uint8_t *images, *labels; /* of this chunk */
    int loss;
    const double *params;
    const Rearranged *rw;
    const L5Warp *warp; /* NULL, or its index at this chunk's first image */
} TrainTileArgs;

static void train_tile_work(Tile *t, int64_t first, int count, void *args) {
    TrainTileArgs *a = args;
    train_tile(t, a->cb, first, count, a->images + first * L5_IMAGE_PIXELS, a->labels + first,
               a->loss, a->params, a->rw, a->warp);
}

/* Phase 2 of a chunk, run by the team that ran its tiles. */
typedef struct {
    double *sum_packed, *sum_w3t;
    const ChunkBuffers *cb;
    int64_t count;
    int first_chunk;        /* the batch's first: its sums start from +0 */
    const FinalUpdate *fin; /* NULL but in the batch's last chunk */
} ReduceArgs;

static void reduce_team_work(void *args, double *profile) {
    ReduceArgs *a = args;
    double start = profile ? l5_now() : 0.0, update = 0.0;
    reduce_chunk(a->sum_packed, a->sum_w3t, a->cb, a->count, a->first_chunk, a->fin,
                 profile ? &update : NULL);
    if (profile) {
        double sum = l5_now() - start - update;
#pragma omp critical
        {
            profile[L5_STAGE_SUM] += sum;
            profile[L5_STAGE_UPDATE] += update;
        }
    }
}

/* What a forward tile needs besides its own memory. */
typedef struct {
    const uint8_t *images;
    double *out;    /* or NULL */
    int32_t *pred;  /* or NULL */
    const double *params;
    const Rearranged *rw;
} ForwardTileArgs;

static void forward_tile_work(Tile *t, int64_t first, int count, void *args) {
    ForwardTileArgs *a = args;
    load_tile(t, a->images + first * L5_IMAGE_PIXELS, count);
    forward_tile(t, a->params, a->rw);
    for (int l = 0; l < count; l++) {
        double z[L5_N_CLASSES];
        for (int j = 0; j < L5_N_CLASSES; j++) z[j] = t->output[j][l];
        if (a->out) memcpy(a->out + (first + l) * L5_N_CLASSES, z, sizeof z);
        if (a->pred) a->pred[first + l] = l5_argmax10(z);
    }
}

/* ---------------------------------------------------------------------------
 * What dispatch.c calls (core.h), each name suffixed with this build's
 * instruction set: l5_fast_train_batch_avx2 and so on.
 */

int L5_ISA_NAME(l5_fast_lanes)(void) { return LANES; }

/* The batch sums in the workspace: S of the g_small values and of W4, then
 * S of W3 as [400 inputs][120 outputs]. */
enum { SUM_PACKED = G_SMALL + L5_W4_SIZE, SUM_DOUBLES = SUM_PACKED + L5_W3_SIZE };

int L5_ISA_NAME(l5_fast_train_batch)(L5Workspace *ws, double *params, const uint8_t *images,
                                     const uint8_t *labels, int64_t n, int loss,
                                     const L5Update *update, const L5Warp *warp, int threads,
                                     double *loss_sum, int64_t *n_correct, double *profile) {
    int64_t rows = n < CHUNK ? n : CHUNK;
    ChunkBuffers cb;
    if (chunk_buffers(&cb, ws, rows)) return L5_ERR_NOMEM;
    Rearranged *rw = l5_workspace_block(ws, L5_WS_WEIGHTS, sizeof(Rearranged), 0);
    double *sum_packed = l5_workspace_block(ws, L5_WS_SUMS, sizeof(double) * SUM_DOUBLES, 0);
    if (!rw || !sum_packed) return L5_ERR_NOMEM;
    double *sum_w3t = sum_packed + SUM_PACKED;
    const Rearranging rearranging = {rw, params}; /* by the first chunk's team */
    const FinalUpdate fin = {params, update, n};
    double total = 0.0;
    int64_t correct = 0;
    for (int64_t start = 0; start < n; start += CHUNK) {
        int64_t count = n - start < CHUNK ? n - start : CHUNK;
        L5Warp chunk_warp = warp ? *warp : (L5Warp){0};
        chunk_warp.index = warp ? warp->index + start : NULL;
        TrainTileArgs args = {&cb, images + start * L5_IMAGE_PIXELS, labels + start, loss, params, rw,
                              warp ? &chunk_warp : NULL};
        /* The last chunk's phase 2 also updates the parameters: no tile
         * reads them after phase 1's barrier. */
        ReduceArgs sums = {sum_packed, sum_w3t, &cb, count, start == 0, start + count == n ? &fin : NULL};
        /* phase 1, then phase 2 by the same team */
        int err = for_each_tile(ws, count, threads, train_tile_work, &args,
                                start == 0 ? &rearranging : NULL, reduce_team_work, &sums, profile);
        if (err) return err;
        for (int64_t i = 0; i < count; i++) {
            total += cb.loss[i];
            correct += cb.correct[i];
        }
    }
    *loss_sum = total;
    *n_correct = correct;
    return L5_OK;
}

int L5_ISA_NAME(l5_fast_forward)(L5Workspace *ws, const double *params, const uint8_t *images,
                                 int64_t n, double *out, int32_t *pred, int threads) {
    Rearranged *rw = l5_workspace_block(ws, L5_WS_WEIGHTS, sizeof(Rearranged), 0);
    if (!rw) return L5_ERR_NOMEM;
    const Rearranging rearranging = {rw, params};
    ForwardTileArgs args = {images, out, pred, params, rw};
    return for_each_tile(ws, n, threads, forward_tile_work, &args, &rearranging, NULL, NULL, NULL);
}

/*
 * The machine's multiply-add rate in the kernels' own form (docs/SPEC.md
 * §9.7): acc = acc + x * w on this variant's vectors, a multiply then a
 * separate add, with PEAK_CHAINS independent accumulators so that neither
 * the adds' latency nor a dependency limits it, and w a vector loaded from
 * memory (a load, not a broadcast, which would take an arithmetic unit's
 * turn).  w changes every step and x differs by lane: with both fixed the
 * compiler would form x * w once, outside the loop, and time the adds alone
 * (on a CPU whose multiplies and adds share their units that reads twice
 * the true peak).  One thread, until the clock reaches `until`; returns the
 * multiply-adds it issued.  The result is kept alive through a volatile
 * store, or the compiler could drop the loop.
 */
enum { PEAK_STEPS = 4096, PEAK_WEIGHTS = 64 };
/* Enough accumulators to hide the adds' latency, few enough to stay in
 * registers: 12 with AVX, whose three-operand multiply reads x from memory;
 * without AVX each product needs a copy of a register first, and 8
 * registers' worth measured faster than 12 for sse2. */
#if defined(__AVX__)
enum { PEAK_CHAINS = 12 };
#else
enum { PEAK_CHAINS = 8 * 2 / LANES };
#endif

double L5_ISA_NAME(l5_fast_peak_macs)(double until) {
    vd acc[PEAK_CHAINS], x[PEAK_CHAINS];
    for (int k = 0; k < PEAK_CHAINS; k++) {
        acc[k] = splat(0.0);
        for (int l = 0; l < LANES; l++) x[k][l] = 1.0 + k * 1e-3 + l * 1e-4;
    }
    vd w[PEAK_WEIGHTS];
    for (int s = 0; s < PEAK_WEIGHTS; s++)
        for (int l = 0; l < LANES; l++) w[s][l] = 1e-9 * (1.0 + s * 1e-3 + l * 1e-5);
    int64_t steps = 0;
    do {
        for (int s = 0; s < PEAK_STEPS; s++) {
            vd wv = w[s % PEAK_WEIGHTS];
#pragma GCC unroll 12
            for (int k = 0; k < PEAK_CHAINS; k++) acc[k] = acc[k] + x[k] * wv;
        }
        steps += PEAK_STEPS;
    } while (l5_now() < until);
    vd total = splat(0.0);
    for (int k = 0; k < PEAK_CHAINS; k++) total = total + acc[k];
    static volatile double sink;
    sink = total[0];
    (void)sink;
    return (double)steps * PEAK_CHAINS * LANES;
}
