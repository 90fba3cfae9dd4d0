/*
 * augment.c - seeded random affine distortions of training images
 * (docs/SPEC.md §8.6): a small turn, scale and shift of each digit, so that
 * training sees a slightly different image in every epoch.
 *
 * Exactness is what shapes this file.  Each image's distortion is drawn from
 * a counter-based generator keyed by (seed, epoch, the image's index in the
 * training file) and nothing else, so the result is the same at any thread
 * count, in any shuffle order and after a resume.  The warp itself uses one
 * fixed sequence of rounded double operations per pixel, which fast.c runs
 * on vectors (a lane a pixel) and lenet5/augment.py transcribes line by line
 * in NumPy, to the same bytes.
 * The only libm calls are one sin and one cos per image (Python's math
 * module calls the same libm; NumPy's vectorised sin does not).
 */
#include <math.h>
#include <string.h>
#include "core.h"

#define L5_DEGREES_TO_RADIANS (3.141592653589793 / 180.0)

/* SplitMix64 (Steele, Lea and Flood 2014): a bijective mix of a 64-bit
 * counter, good enough to key each image's draws independently. */
static uint64_t splitmix64(uint64_t x) {
    uint64_t z = x + 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* The k-th uniform draw on [-1, 1) of one image: the top 53 bits of a mixed
 * counter, scaled by 2^-52 (exact) and shifted by 1 (exact: both are
 * multiples of 2^-52 below 2). */
static double uniform_draw(uint64_t key, uint64_t k) {
    uint64_t bits = splitmix64(key + k) >> 11;
    return (double)bits * 0x1p-52 - 1.0;
}

/* The key of one image: seed, epoch and index mixed in, one after another. */
static uint64_t image_key(uint64_t seed, int64_t epoch, int64_t index) {
    return splitmix64(splitmix64(splitmix64(seed) ^ (uint64_t)epoch) ^ (uint64_t)index);
}

void l5_warp_frame(double framed[L5_WARP_FRAMED * L5_WARP_FRAMED], const uint8_t *image) {
    memset(framed, 0, sizeof(double) * L5_WARP_FRAMED * L5_WARP_FRAMED);
    for (int r = 0; r < L5_IMAGE_SIZE; r++)
        for (int c = 0; c < L5_IMAGE_SIZE; c++)
            framed[(r + L5_WARP_PAD) * L5_WARP_FRAMED + c + L5_WARP_PAD] = (double)image[r * L5_IMAGE_SIZE + c];
}

/* Image i's map.  Draws u0..u3 on [-1, 1) give the angle, scale and shift:
 *     angle = max_rotate * u0 * (pi / 180),  scale = 1 + max_scale * u1,
 *     tx = max_shift * u2,  ty = max_shift * u3,
 *     a = cos(angle) / scale,  b = sin(angle) / scale. */
void l5_warp_map(L5WarpMap *m, const L5Warp *warp, int64_t i) {
    uint64_t key = image_key(warp->seed, warp->epoch, warp->index[i]);
    double angle = warp->max_rotate * uniform_draw(key, 0) * L5_DEGREES_TO_RADIANS;
    double scale = 1.0 + warp->max_scale * uniform_draw(key, 1);
    m->tx = warp->max_shift * uniform_draw(key, 2);
    m->ty = warp->max_shift * uniform_draw(key, 3);
    m->a = cos(angle) / scale;
    m->b = sin(angle) / scale;
}

/* A floored source coordinate as a row or column of the frame, clamped
 * (core.h says why). */
static int frame_cell(double floored) {
    const double lo = L5_WARP_LO, hi = L5_WARP_HI;
    double clamped = floored < lo ? lo : floored > hi ? hi : floored;
    return (int)clamped + L5_WARP_PAD;
}

/*
 * Warp image i, the readable twin of fast.c's warp (the reference kernel).
 * Each output pixel (r, c) looks up the source point that lands on it
 * (the inverse map, so every output pixel gets exactly one value):
 *     x = (c - 13.5) - tx,  y = (r - 13.5) - ty,
 *     sx = (a * x + b * y) + 13.5,  sy = (a * y - b * x) + 13.5,
 * then interpolates bilinearly between the four pixels around it and rounds
 * half up to a byte.
 */
void l5_warp_image_ref(uint8_t *out, const uint8_t *image, const L5Warp *warp, int64_t i) {
    L5WarpMap m;
    l5_warp_map(&m, warp, i);
    double framed[L5_WARP_FRAMED * L5_WARP_FRAMED];
    l5_warp_frame(framed, image);
    for (int r = 0; r < L5_IMAGE_SIZE; r++) {
        for (int c = 0; c < L5_IMAGE_SIZE; c++) {
            double x = ((double)c - L5_WARP_CENTRE) - m.tx;
            double y = ((double)r - L5_WARP_CENTRE) - m.ty;
            double sx = (m.a * x + m.b * y) + L5_WARP_CENTRE;
            double sy = (m.a * y - m.b * x) + L5_WARP_CENTRE;
            double fx0 = floor(sx), fy0 = floor(sy);
            double fx = sx - fx0, fy = sy - fy0; /* exact: same binade or smaller */
            const double *cell = framed + frame_cell(fy0) * L5_WARP_FRAMED + frame_cell(fx0);
            double p00 = cell[0], p01 = cell[1];
            double p10 = cell[L5_WARP_FRAMED], p11 = cell[L5_WARP_FRAMED + 1];
            double top = p00 + fx * (p01 - p00);
            double bottom = p10 + fx * (p11 - p10);
            double v = floor((top + fy * (bottom - top)) + 0.5);
            /* A convex mix of bytes stays in 0..255 up to rounding: clamp anyway. */
            out[r * L5_IMAGE_SIZE + c] = (uint8_t)(v < 0.0 ? 0.0 : v > 255.0 ? 255.0 : v);
        }
    }
}
