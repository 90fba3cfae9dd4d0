/*
 * infer.c - prepared inference: the forward pass of one image at a time,
 * vectorised within the image, from weights laid out once in a buffer the
 * caller owns (docs/SPEC.md §9.6).  It uses only common.c and loss.c.
 *
 * fast.c vectorises across images: a tile of 4 images, one per lane.  That
 * pays for training and big batches, but a lone image leaves three lanes
 * idle, and every call lays the weights out again.  Here the 4 lanes of a
 * vector are 4 different output cells of the same image:
 *   conv1    4 neighbouring output columns of one map (7 vectors a row)
 *   conv2    4 output maps of one cell
 *   conv3    4 of its 120 outputs
 *   fc       4 of its 10 outputs (padded to 12 with zero weights)
 * Each lane sums its own terms in the order of docs/SPEC.md §5.2 and §5.4
 * (input maps, kernel rows, kernel columns, from +0; then + bias; then ReLU)
 * and no arithmetic ever combines two lanes, so no sum is reassociated and
 * every output is the reference kernels' to the bit.  When every weight is
 * finite, conv1 leaves out the zero frame's rows and conv3 the terms of its
 * zero inputs, which changes no bit (see conv3_forward); otherwise every
 * term the reference adds is added.
 *
 * No allocation and no global mutable state: one image's activations live
 * on the calling thread's stack (Scratch, about 35 KB: conv1's maps are
 * pooled two rows at a time and never kept whole) and the prepared
 * weights are only read, so any number of threads may call at once.  Fewer
 * than TEAM_MIN images run on the calling thread; more are shared among
 * OpenMP threads, one whole image each.
 *
 * Names as in reference.c (ci, co, r, c, kr, kc, layerN); k is a kernel cell
 * kr * 5 + kc, u a dense input, v a vector of an accumulator block.
 */
#include <math.h>
#include <stddef.h>
#include <string.h>
#include "core.h"

/* Compiled once per instruction set, like fast.c (docs/SPEC.md §9.4); the
 * vectors here hold 4 cells of one image in every variant, so the prepared
 * layout is the same for all of them. */
#ifndef L5_ISA
#error "infer.c is compiled once per instruction set: -DL5_ISA=<name> (build_ffi.py)"
#endif

typedef double v4d __attribute__((vector_size(32)));
typedef int64_t v4i __attribute__((vector_size(32)));
enum { LANES = 4 };

/* conv2 and conv3, the dense part of the work (70 % of its multiply-adds),
 * run on the widest vector of the variant: 8 cells with AVX-512, else 4.
 * Their lanes are output maps, contiguous in the prepared layout for either
 * width, so the layout stays one for every variant; each lane still sums its
 * own terms in order (docs/SPEC.md §9.6). */
#if defined(__AVX512F__)
enum { WIDE = 8 };
typedef double vwd __attribute__((vector_size(64)));
typedef int64_t vwi __attribute__((vector_size(64)));
#define SPLAT_W(x) {x, x, x, x, x, x, x, x}
#else
enum { WIDE = 4 };
typedef double vwd __attribute__((vector_size(32)));
typedef int64_t vwi __attribute__((vector_size(32)));
#define SPLAT_W(x) {x, x, x, x}
#endif

/* Batches smaller than this stay on the calling thread: waking a team costs
 * more than a few images (about 20 us each) take. */
enum { TEAM_MIN = 16 };

/* fc's 10 outputs, padded to whole vectors; the spare lanes have zero weights
 * and bias, and their results are never read. */
enum { FC_OUT_PAD = 12 };
/* conv3 outputs per pass: 10 vectors of accumulators, 3 passes. */
enum { CONV3_OUT_B = 40 };
/* conv2 output cells (columns) per pass, each with all 16 maps (4 vectors of
 * 4, or 2 of 8: then 5 cells, 10 accumulators, fit the 32 registers). */
enum { CONV2_CELLS_B = WIDE == 8 ? 5 : 2 };
_Static_assert(L5_CONV1_SIZE % LANES == 0, "conv1's rows must fill whole vectors");
_Static_assert(L5_CONV2_MAPS % LANES == 0, "conv2's maps must fill whole vectors");
_Static_assert(L5_CONV2_SIZE % CONV2_CELLS_B == 0, "CONV2_CELLS_B must divide conv2's columns");
_Static_assert(L5_CONV3_MAPS % CONV3_OUT_B == 0 && CONV3_OUT_B % WIDE == 0, "CONV3_OUT_B");
_Static_assert(L5_CONV2_MAPS % WIDE == 0, "conv2's maps must fill whole wide vectors");
_Static_assert(FC_OUT_PAD % LANES == 0 && FC_OUT_PAD >= L5_N_CLASSES, "FC_OUT_PAD");
_Static_assert(L5_POOL1_SIZE >= LANES && L5_POOL1_SIZE % 2 == 0, "pool1 rows: whole vectors, the last one overlapping");

/* Marks the buffer as filled by l5_infer_prepare: "L5PREP01". */
#define PREPARED_MAGIC 0x4c35505245503031ull

/*
 * The prepared weights: each block laid out so that the vectors a pass
 * loads are contiguous.  A copy does no arithmetic, so the values are the
 * parameters' own.
 */
typedef struct {
    uint64_t magic;
    uint64_t finite;      /* 1 if every weight (W1 to W4) is finite: zero inputs may be skipped */
    uint64_t reserved[6]; /* the blocks read as wide vectors start 64 bytes in */
    double w2[L5_CONV1_MAPS][L5_CONV_KERNEL_CELLS][L5_CONV2_MAPS];       /* [ci][k][co] */
    double w3[L5_CONV3_MAPS / CONV3_OUT_B][L5_LAYER4_CELLS][CONV3_OUT_B]; /* [co / B][u][co % B] */
    double b2[L5_B2_SIZE];
    double b3[L5_B3_SIZE];
    double w1[L5_CONV_KERNEL_CELLS][L5_CONV1_MAPS];                      /* [k][co] */
    double w4[L5_CONV3_MAPS][FC_OUT_PAD];                                /* [u][j], zero-padded */
    double b1[L5_B1_SIZE];
    double b4[FC_OUT_PAD];
} Prepared;
/* In a 64-byte aligned buffer every wide vector conv2 and conv3 load (a row
 * of 16 maps, of 40 outputs, a bias block) lies within cache lines: a load
 * that straddles two lines costs two. */
_Static_assert(offsetof(Prepared, w2) % 64 == 0 && offsetof(Prepared, w3) % 64 == 0 &&
               offsetof(Prepared, b2) % 64 == 0 && offsetof(Prepared, b3) % 64 == 0 &&
               sizeof(double) * L5_CONV2_MAPS % 64 == 0 && sizeof(double) * CONV3_OUT_B % 64 == 0,
               "conv2's and conv3's weight rows must start on cache lines");
/* lenet5.h states the size as a literal for cffi and for callers. */
_Static_assert(sizeof(Prepared) == L5_PREPARED_BYTES, "L5_PREPARED_BYTES is not sizeof(Prepared)");

/*
 * One image's activations.  conv2's lanes are maps, so layer3 and layer4 are
 * kept map-last, [row][column][map]; the others as in docs/SPEC.md §2.
 */
typedef struct {
    double input[L5_INPUT_CELLS];   /* [32][32] */
    double layer2[L5_LAYER2_CELLS]; /* [6][14][14] */
    double layer3[L5_LAYER3_CELLS]; /* [10][10][16], map last */
    double layer4[L5_LAYER4_CELLS]; /* [5][5][16], map last */
    double layer5[L5_LAYER5_CELLS];
    double output[FC_OUT_PAD];
} Scratch;

static inline v4d splat(double x) { return (v4d){x, x, x, x}; }

/* Unaligned loads and stores: the caller's buffer is only 8-byte aligned. */
static inline v4d load4(const double *p) {
    v4d v;
    memcpy(&v, p, sizeof v);
    return v;
}

static inline void store4(double *p, v4d v) { memcpy(p, &v, sizeof v); }

static inline vwd splat_w(double x) { return (vwd)SPLAT_W(x); }
static inline vwd load_w(const double *p) {
    vwd v;
    memcpy(&v, p, sizeof v);
    return v;
}
static inline void store_w(double *p, vwd v) { memcpy(p, &v, sizeof v); }
static inline vwd relu_w(vwd x) { return (vwd)((x > splat_w(0.0)) & (vwi)x); }

/* relu per lane, as reference.c's: x if x > 0, else +0 (NaN too). */
static inline v4d relu4(v4d x) { return (v4d)((x > splat(0.0)) & (v4i)x); }

/* Lane-wise: b where b > a, else a.  Strictly greater: on a tie a stays. */
static inline v4d take_greater(v4d a, v4d b) {
    v4i greater = b > a;
    return (v4d)((greater & (v4i)b) | (~greater & (v4i)a));
}

/* Even and odd lanes of the 8 doubles a, b: {a0 a2 b0 b2} and {a1 a3 b1 b3}. */
#if defined(__clang__)
#define EVEN_LANES(a, b) __builtin_shufflevector(a, b, 0, 2, 4, 6)
#define ODD_LANES(a, b) __builtin_shufflevector(a, b, 1, 3, 5, 7)
#else
#define EVEN_LANES(a, b) __builtin_shuffle(a, b, (v4i){0, 2, 4, 6})
#define ODD_LANES(a, b) __builtin_shuffle(a, b, (v4i){1, 3, 5, 7})
#endif

/* ---------------------------------------------------------------------------
 * Preparing: the parameter blocks (docs/SPEC.md §3.1) to Prepared's layouts.
 */
void L5_ISA_NAME(l5_infer_prepare)(void *prepared, const double *params) {
    Prepared *pw = prepared;
    const int kk = L5_CONV_KERNEL_CELLS;
    memset(pw, 0, sizeof *pw); /* also the padding lanes of w4 and b4 */
    for (int co = 0; co < L5_CONV1_MAPS; co++)
        for (int k = 0; k < kk; k++) pw->w1[k][co] = params[L5_OFF_W1 + co * kk + k];
    for (int ci = 0; ci < L5_CONV1_MAPS; ci++)
        for (int co = 0; co < L5_CONV2_MAPS; co++)
            for (int k = 0; k < kk; k++)
                pw->w2[ci][k][co] = params[L5_OFF_W2 + (ci * L5_CONV2_MAPS + co) * kk + k];
    for (int ci = 0; ci < L5_CONV2_MAPS; ci++)
        for (int co = 0; co < L5_CONV3_MAPS; co++)
            for (int k = 0; k < kk; k++)
                pw->w3[co / CONV3_OUT_B][ci * kk + k][co % CONV3_OUT_B] =
                    params[L5_OFF_W3 + (ci * L5_CONV3_MAPS + co) * kk + k];
    for (int u = 0; u < L5_CONV3_MAPS; u++)
        for (int j = 0; j < L5_N_CLASSES; j++) pw->w4[u][j] = params[L5_OFF_W4 + u * L5_N_CLASSES + j];
    memcpy(pw->b1, params + L5_OFF_B1, sizeof pw->b1);
    memcpy(pw->b2, params + L5_OFF_B2, sizeof pw->b2);
    memcpy(pw->b3, params + L5_OFF_B3, sizeof pw->b3);
    memcpy(pw->b4, params + L5_OFF_B4, sizeof(double) * L5_B4_SIZE);
    pw->finite = 1;
    for (int i = L5_OFF_W1; i < L5_OFF_W1 + L5_W1_SIZE; i++) pw->finite &= isfinite(params[i]) != 0;
    for (int i = L5_OFF_W2; i < L5_OFF_W2 + L5_W2_SIZE; i++) pw->finite &= isfinite(params[i]) != 0;
    for (int i = L5_OFF_W3; i < L5_OFF_W3 + L5_W3_SIZE; i++) pw->finite &= isfinite(params[i]) != 0;
    for (int i = L5_OFF_W4; i < L5_OFF_W4 + L5_W4_SIZE; i++) pw->finite &= isfinite(params[i]) != 0;
    pw->magic = PREPARED_MAGIC;
}

int L5_ISA_NAME(l5_infer_is_prepared)(const void *prepared) {
    return ((const Prepared *)prepared)->magic == PREPARED_MAGIC;
}

/* ---------------------------------------------------------------------------
 * The layer passes of one image.
 */

/*
 * conv1 (docs/SPEC.md §5.2), two output rows of one map per pass, written
 * to rows[2][28] for pool1_row: lanes are neighbouring columns, and the
 * vectors cover the whole row, so each weight broadcast feeds them all.
 * (Measured: faster than blocking several maps, whose extra broadcasts cost
 * more than the shared input loads save.)  The loops are unrolled whole, so
 * the accumulators stay in registers.  Every lane adds its 25 terms in
 * kernel-row, kernel-column order from +0.
 */
static void conv1_rows(double rows[2][L5_CONV1_SIZE], const double *input, const Prepared *pw, int co, int r,
                       int skip_frame) {
    /* Output rows r and r + 1 together: they share 4 of their 5 input rows,
     * so each input vector loaded feeds both (loads that straddle cache
     * lines, as most of these do, cost more than the multiplies).  A row's
     * 28 columns: CONV1_WIDE vectors of WIDE, then (with AVX-512) the last 4
     * in one vector of 4.  Each output still adds its terms in kernel-row,
     * kernel-column order. */
    enum { CONV1_WIDE = L5_CONV1_SIZE / WIDE, TAIL = L5_CONV1_SIZE % WIDE, ROWS = 2 };
    _Static_assert(TAIL == 0 || TAIL == (int)LANES, "conv1's row: whole wide vectors, then at most one of 4");
    vwd acc[ROWS][CONV1_WIDE];
    v4d tail[ROWS];
    for (int o = 0; o < ROWS; o++) {
        tail[o] = splat(0.0);
        for (int v = 0; v < CONV1_WIDE; v++) acc[o][v] = splat_w(0.0);
    }
#pragma GCC unroll 6
    for (int i = 0; i < L5_CONV_KERNEL + ROWS - 1; i++) { /* input row r + i */
        /* A row of the zero frame adds only +-0 terms: with finite weights
         * they change no sum (see conv3_forward) and are left out. */
        if (skip_frame && (r + i < L5_INPUT_PAD || r + i >= L5_INPUT_SIZE - L5_INPUT_PAD)) continue;
#pragma GCC unroll 5
        for (int kc = 0; kc < L5_CONV_KERNEL; kc++) {
            const double *x = input + (r + i) * L5_INPUT_SIZE + kc;
            vwd xv[CONV1_WIDE];
            for (int v = 0; v < CONV1_WIDE; v++) xv[v] = load_w(x + v * WIDE);
            v4d xt = TAIL ? load4(x + CONV1_WIDE * WIDE) : splat(0.0);
#pragma GCC unroll 2
            for (int o = 0; o < ROWS; o++) {
                int kr = i - o;  /* output row r + o reads input row r + i with kernel row i - o */
                if (kr < 0 || kr >= L5_CONV_KERNEL) continue;
                double w = pw->w1[kr * L5_CONV_KERNEL + kc][co];
                vwd wv = splat_w(w);
                for (int v = 0; v < CONV1_WIDE; v++) acc[o][v] = acc[o][v] + xv[v] * wv;
                if (TAIL) tail[o] = tail[o] + xt * splat(w);
            }
        }
    }
    for (int o = 0; o < ROWS; o++) {
        double *out = rows[o];
        for (int v = 0; v < CONV1_WIDE; v++) store_w(out + v * WIDE, relu_w(acc[o][v] + splat_w(pw->b1[co])));
        if (TAIL) store4(out + CONV1_WIDE * WIDE, relu4(tail[o] + splat(pw->b1[co])));
    }
}

/* pool1 (docs/SPEC.md §5.3) of one pair of conv1 rows: 4 pooled columns per
 * vector.  The 8 columns above them, split into even and odd lanes, give
 * each pooled cell's left and right cells, scanned in the reference's
 * row-major order.  The last vector overlaps the one before it; the overlap
 * is computed twice, alike. */
static void pool1_row(double *out, const double rows[2][L5_CONV1_SIZE]) {
    const int ow = L5_POOL1_SIZE;
    for (int q0 = 0; q0 < ow; q0 += LANES) {
        int q = q0 + LANES <= ow ? q0 : ow - LANES;
        const double *top = rows[0] + 2 * q, *bottom = rows[1] + 2 * q;
        v4d t0 = load4(top), t1 = load4(top + LANES);
        v4d b0 = load4(bottom), b1 = load4(bottom + LANES);
        v4d best = EVEN_LANES(t0, t1);
        best = take_greater(best, ODD_LANES(t0, t1));
        best = take_greater(best, EVEN_LANES(b0, b1));
        best = take_greater(best, ODD_LANES(b0, b1));
        store4(out + q, best);
    }
}

/* conv1 and pool1 together: each pair of output rows is pooled while it is
 * still in the L1 cache, so conv1's 37 KB of maps are never stored whole. */
static void conv1_pool1_forward(double *layer2, const double *input, const Prepared *pw) {
    double rows[2][L5_CONV1_SIZE];
    for (int co = 0; co < L5_CONV1_MAPS; co++)
        for (int r = 0; r < L5_CONV1_SIZE; r += 2) {
            conv1_rows(rows, input, pw, co, r, pw->finite != 0);
            pool1_row(layer2 + (co * L5_POOL1_SIZE + r / 2) * L5_POOL1_SIZE, rows);
        }
}

/*
 * conv2 (docs/SPEC.md §5.2) for output row r, columns c0 .. c0 + CELLS - 1:
 * lanes are output maps, 4 vectors hold all 16; each weight vector load feeds
 * the CELLS cells, each input broadcast the 4 map vectors.  Every lane adds
 * its 150 terms in input-map, kernel-row, kernel-column order from +0.
 * Writes layer3 map-last.
 */
static inline __attribute__((always_inline)) void
conv2_block(double *layer3, const double *layer2, const Prepared *pw, int r, int c0, const int CELLS) {
    enum { V = L5_CONV2_MAPS / WIDE };
    const int w = L5_POOL1_SIZE;
    vwd acc[CONV2_CELLS_B][V];
    for (int j = 0; j < CELLS; j++)
        for (int v = 0; v < V; v++) acc[j][v] = splat_w(0.0);
    for (int ci = 0; ci < L5_CONV1_MAPS; ci++)
        for (int kr = 0; kr < L5_CONV_KERNEL; kr++) {
            const double *x = layer2 + (ci * w + r + kr) * w + c0;
            for (int kc = 0; kc < L5_CONV_KERNEL; kc++) {
                const double *wt = pw->w2[ci][kr * L5_CONV_KERNEL + kc];
                vwd wv[V];
                for (int v = 0; v < V; v++) wv[v] = load_w(wt + v * WIDE);
#pragma GCC unroll 5
                for (int j = 0; j < CELLS; j++) {
                    vwd xv = splat_w(x[j + kc]);
                    for (int v = 0; v < V; v++) acc[j][v] = acc[j][v] + xv * wv[v];
                }
            }
        }
    for (int j = 0; j < CELLS; j++)
        for (int v = 0; v < V; v++)
            store_w(layer3 + (r * L5_CONV2_SIZE + c0 + j) * L5_CONV2_MAPS + v * WIDE,
                    relu_w(acc[j][v] + load_w(pw->b2 + v * WIDE)));
}

static void conv2_forward(double *layer3, const double *layer2, const Prepared *pw) {
    for (int r = 0; r < L5_CONV2_SIZE; r++)
        for (int c0 = 0; c0 < L5_CONV2_SIZE; c0 += CONV2_CELLS_B)
            conv2_block(layer3, layer2, pw, r, c0, CONV2_CELLS_B);
}

/* pool2 (docs/SPEC.md §5.3) on map-last maps: lanes are 4 maps, the four
 * cells of each window scanned in row-major order. */
static void pool2_forward(double *layer4, const double *layer3) {
    const int w = L5_CONV2_SIZE, ow = L5_POOL2_SIZE, maps = L5_CONV2_MAPS;
    for (int r = 0; r < ow; r++)
        for (int q = 0; q < ow; q++)
            for (int m = 0; m < maps; m += LANES) {
                const double *x = layer3 + ((2 * r) * w + 2 * q) * maps + m;
                v4d best = load4(x);
                best = take_greater(best, load4(x + maps));
                best = take_greater(best, load4(x + w * maps));
                best = take_greater(best, load4(x + (w + 1) * maps));
                store4(layer4 + (r * ow + q) * maps + m, best);
            }
}

/*
 * conv3 (docs/SPEC.md §5.2), a dense layer over 400 inputs: lanes are
 * outputs, CONV3_OUT_B per pass.  Each output adds its terms in the flat
 * input order u = 25 * ci + 5 * kr + kc from +0; layer4 is map-last, so
 * input u sits at layer4[k * 16 + ci].
 *
 * With finite weights a zero input's terms are left out (about half of
 * them: layer4 comes from a ReLU).  That changes no bit: 0 * w is +0 or -0,
 * a sum that starts at +0 is never -0 (a round-to-nearest sum is -0 only
 * when both operands are), and s + (+-0) is s for every other s.  With a
 * non-finite weight 0 * w may be NaN, so every term is added.
 */
static void conv3_forward(double *layer5, const double *layer4, const Prepared *pw) {
    enum { V = CONV3_OUT_B / WIDE };
    int used[L5_LAYER4_CELLS];  /* the inputs u that are added, ascending */
    double x[L5_LAYER4_CELLS];  /* and their values */
    int n = 0;
    const int every = !pw->finite;
    for (int ci = 0; ci < L5_CONV2_MAPS; ci++)
        for (int k = 0; k < L5_CONV_KERNEL_CELLS; k++) { /* no branch: the slot is kept or overwritten */
            used[n] = ci * L5_CONV_KERNEL_CELLS + k;
            x[n] = layer4[k * L5_CONV2_MAPS + ci];
            n += every | (x[n] != 0.0);
        }
    for (int b = 0; b < L5_CONV3_MAPS / CONV3_OUT_B; b++) {
        vwd acc[V];
        for (int v = 0; v < V; v++) acc[v] = splat_w(0.0);
        for (int t = 0; t < n; t++) {
            vwd xv = splat_w(x[t]);
            const double *wt = pw->w3[b][used[t]];
#pragma GCC unroll 10
            for (int v = 0; v < V; v++) acc[v] = acc[v] + xv * load_w(wt + v * WIDE);
        }
        for (int v = 0; v < V; v++) {
            int co = b * CONV3_OUT_B + v * WIDE;
            store_w(layer5 + co, relu_w(acc[v] + load_w(pw->b3 + co)));
        }
    }
}

/* fc (docs/SPEC.md §5.4): lanes are outputs; each adds its 120 terms in
 * input order from +0.  output has FC_OUT_PAD cells; the last two are spare. */
static void fc_forward(double *output, const double *layer5, const Prepared *pw) {
    enum { V = FC_OUT_PAD / LANES };
    v4d acc[V];
    for (int v = 0; v < V; v++) acc[v] = splat(0.0);
    for (int u = 0; u < L5_CONV3_MAPS; u++) {
        v4d xv = splat(layer5[u]);
        for (int v = 0; v < V; v++) acc[v] = acc[v] + xv * load4(pw->w4[u] + v * LANES);
    }
    for (int v = 0; v < V; v++)
        store4(output + v * LANES, relu4(acc[v] + load4(pw->b4 + v * LANES)));
}

/*
 * The network input (docs/SPEC.md §4), as l5_normalize_image computes it:
 * the same mean and deviation (l5_image_moments), the same (p - mean) / std
 * per pixel, here WIDE pixels a vector (a division per cell is the costly
 * step), and the frame's zeros written alone instead of clearing the whole
 * input first.  A flat image's input is all +0.
 */
static void normalize_input(double *input, const uint8_t *pixels) {
    enum { PAD = L5_INPUT_PAD, WIDE_RUNS = L5_IMAGE_SIZE / WIDE, REST = L5_IMAGE_SIZE % WIDE };
    double mean, std;
    if (!l5_image_moments(pixels, &mean, &std)) {
        memset(input, 0, sizeof(double) * L5_INPUT_CELLS);
        return;
    }
    memset(input, 0, sizeof(double) * L5_INPUT_SIZE * PAD);                                   /* top rows */
    memset(input + (L5_INPUT_SIZE - PAD) * L5_INPUT_SIZE, 0, sizeof(double) * L5_INPUT_SIZE * PAD); /* bottom */
    vwd m = splat_w(mean), d = splat_w(std);
    for (int r = 0; r < L5_IMAGE_SIZE; r++) {
        double *row = input + (r + PAD) * L5_INPUT_SIZE;
        const uint8_t *p = pixels + r * L5_IMAGE_SIZE;
        for (int c = 0; c < PAD; c++) row[c] = row[L5_INPUT_SIZE - 1 - c] = 0.0;
        for (int v = 0; v < WIDE_RUNS; v++) {
            vwd x;
            for (int l = 0; l < WIDE; l++) x[l] = (double)p[v * WIDE + l];
            store_w(row + PAD + v * WIDE, (x - m) / d);
        }
        for (int c = WIDE_RUNS * WIDE; c < L5_IMAGE_SIZE; c++) row[PAD + c] = ((double)p[c] - mean) / std;
    }
    (void)REST;
}

/* The forward pass of one image: s->output[0..9] are its ReLU-ed outputs. */
static void forward_image(Scratch *s, const Prepared *pw, const uint8_t *pixels) {
    normalize_input(s->input, pixels);
    conv1_pool1_forward(s->layer2, s->input, pw);
    conv2_forward(s->layer3, s->layer2, pw);
    pool2_forward(s->layer4, s->layer3);
    conv3_forward(s->layer5, s->layer4, pw);
    fc_forward(s->output, s->layer5, pw);
}

/* Image i's outputs to out (if given) and its class to pred (if given). */
static void infer_image(Scratch *s, const Prepared *pw, const uint8_t *images, int64_t i,
                        double *out, int32_t *pred) {
    forward_image(s, pw, images + i * L5_IMAGE_PIXELS);
    if (out) memcpy(out + i * L5_N_CLASSES, s->output, sizeof(double) * L5_N_CLASSES);
    if (pred) pred[i] = l5_argmax10(s->output);
}

/* ---------------------------------------------------------------------------
 * What dispatch.c calls (core.h), each name suffixed with this build's
 * instruction set.  The caller has checked every argument.
 */
void L5_ISA_NAME(l5_infer_images)(const void *prepared, const uint8_t *images, int64_t n,
                                  double *out, int32_t *pred, int threads) {
    const Prepared *pw = prepared;
    int team = n < TEAM_MIN ? 1 : l5_resolve_threads(threads);
    if (team == 1) { /* the calling thread alone: no team to wake */
        Scratch s;
        for (int64_t i = 0; i < n; i++) infer_image(&s, pw, images, i, out, pred);
        return;
    }
    if (team > n) team = (int)n;
#pragma omp parallel num_threads(team)
    {
        Scratch s; /* one per thread, on its own stack */
        /* Images handed out in small groups, so a thread slowed by another
         * process's work on its core does not hold the others back. */
#pragma omp for schedule(dynamic, 8)
        for (int64_t i = 0; i < n; i++) infer_image(&s, pw, images, i, out, pred);
    }
}
