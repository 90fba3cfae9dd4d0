/*
 * augment.c - seeded random affine distortions of training images
 * (docs/SPEC.md §8.6): a small turn, scale and shift of each digit, so that
 * training sees a slightly different image in every epoch.
 *
 * Exactness is what shapes this file.  Each image's distortion is drawn from
 * a counter-based generator keyed by (seed, epoch, the image's index in the
 * training file) and nothing else, so the result is the same at any thread
 * count, in any shuffle order and after a resume.  The warp itself uses one
 * fixed sequence of rounded double operations per pixel, which
 * lenet5/augment.py transcribes line by line in NumPy to the same bytes.
 * The only libm calls are one sin and one cos per image (Python's math
 * module calls the same libm; NumPy's vectorised sin does not).
 */
#include <math.h>
#include <string.h>
#include "core.h"

#define L5_AUGMENT_CENTRE ((L5_IMAGE_SIZE - 1) / 2.0) /* 13.5: the middle of the pixel grid */
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

/* The source image as doubles in a frame of zeros L5_AUGMENT_PAD wide, so
 * that the four pixels around any source point are plain loads: a point
 * further out is clamped to the frame, where all four are zero anyway. */
#define L5_AUGMENT_PAD 2
#define L5_AUGMENT_FRAMED (L5_IMAGE_SIZE + 2 * L5_AUGMENT_PAD)

static void frame_image(double framed[L5_AUGMENT_FRAMED][L5_AUGMENT_FRAMED], const uint8_t *image) {
    memset(framed, 0, sizeof(double) * L5_AUGMENT_FRAMED * L5_AUGMENT_FRAMED);
    for (int r = 0; r < L5_IMAGE_SIZE; r++)
        for (int c = 0; c < L5_IMAGE_SIZE; c++)
            framed[r + L5_AUGMENT_PAD][c + L5_AUGMENT_PAD] = (double)image[r * L5_IMAGE_SIZE + c];
}

/* A floored source coordinate as a row or column of the frame: clamped so
 * that it and the next one lie inside the frame (both in its zero border
 * when the point is outside the image). */
static int frame_cell(double floored) {
    const double lo = -L5_AUGMENT_PAD, hi = L5_IMAGE_SIZE + L5_AUGMENT_PAD - 2;
    double clamped = floored < lo ? lo : floored > hi ? hi : floored;
    return (int)clamped + L5_AUGMENT_PAD;
}

/*
 * Warp one image.  Draws u0..u3 on [-1, 1) give the angle, scale and shift:
 *     angle = max_rotate * u0 * (pi / 180),  scale = 1 + max_scale * u1,
 *     tx = max_shift * u2,  ty = max_shift * u3,
 *     a = cos(angle) / scale,  b = sin(angle) / scale.
 * Each output pixel (r, c) looks up the source point that lands on it
 * (the inverse map, so every output pixel gets exactly one value):
 *     x = (c - 13.5) - tx,  y = (r - 13.5) - ty,
 *     sx = (a * x + b * y) + 13.5,  sy = (a * y - b * x) + 13.5,
 * then interpolates bilinearly between the four pixels around it and rounds
 * half up to a byte.
 */
/* floor() is the warp's costliest step on the x86-64 baseline, where it takes
 * a dozen instructions; SSE4.1 has it as one (roundsd), and the warp then
 * runs in half the time (11.6 -> 6.0 us an image here).  floor is exact
 * either way, so the bytes are the same: the compiler builds both and the
 * loader picks the one the CPU runs (an ELF ifunc; elsewhere only one). */
#if defined(__x86_64__) && defined(__ELF__) && defined(__GNUC__) && !defined(__clang__)
#define L5_WARP_CLONES __attribute__((target_clones("sse4.1", "default")))
#else
#define L5_WARP_CLONES
#endif

L5_WARP_CLONES
static void warp_image(uint8_t *out, const uint8_t *image, uint64_t key,
                       double max_shift, double max_rotate, double max_scale) {
    double angle = max_rotate * uniform_draw(key, 0) * L5_DEGREES_TO_RADIANS;
    double scale = 1.0 + max_scale * uniform_draw(key, 1);
    double tx = max_shift * uniform_draw(key, 2);
    double ty = max_shift * uniform_draw(key, 3);
    double a = cos(angle) / scale, b = sin(angle) / scale;
    double framed[L5_AUGMENT_FRAMED][L5_AUGMENT_FRAMED];
    frame_image(framed, image);
    for (int r = 0; r < L5_IMAGE_SIZE; r++) {
        for (int c = 0; c < L5_IMAGE_SIZE; c++) {
            double x = ((double)c - L5_AUGMENT_CENTRE) - tx;
            double y = ((double)r - L5_AUGMENT_CENTRE) - ty;
            double sx = (a * x + b * y) + L5_AUGMENT_CENTRE;
            double sy = (a * y - b * x) + L5_AUGMENT_CENTRE;
            double fx0 = floor(sx), fy0 = floor(sy);
            double fx = sx - fx0, fy = sy - fy0; /* exact: same binade or smaller */
            int x0 = frame_cell(fx0), y0 = frame_cell(fy0);
            double p00 = framed[y0][x0], p01 = framed[y0][x0 + 1];
            double p10 = framed[y0 + 1][x0], p11 = framed[y0 + 1][x0 + 1];
            double top = p00 + fx * (p01 - p00);
            double bottom = p10 + fx * (p11 - p10);
            double v = floor((top + fy * (bottom - top)) + 0.5);
            /* A convex mix of bytes stays in 0..255 up to rounding: clamp anyway. */
            out[r * L5_IMAGE_SIZE + c] = (uint8_t)(v < 0.0 ? 0.0 : v > 255.0 ? 255.0 : v);
        }
    }
}

/* Below this many images a thread team costs more than it saves: one image
 * takes about 9-15 us, a team's start and barrier tens of microseconds.  A
 * batch of the preset (64) already pays: 0.58 -> 0.38 ms on 2 threads of a
 * shared Xeon (docs/SPEC.md §9.8). */
#define L5_AUGMENT_MIN_PARALLEL 32

/* Warp n images, image i keyed by (seed, epoch, index[i]).  Images are
 * independent, so any split over threads gives the same bytes. */
void l5_augment_batch(const uint8_t *images, const int64_t *index, int64_t n,
                      uint64_t seed, int64_t epoch, double max_shift,
                      double max_rotate, double max_scale, uint8_t *out, int threads) {
    (void)threads; /* read only by the OpenMP pragma: a build without OpenMP ignores it */
#pragma omp parallel for schedule(static) num_threads(l5_resolve_threads(threads)) \
    if (n >= L5_AUGMENT_MIN_PARALLEL)
    for (int64_t i = 0; i < n; i++)
        warp_image(out + i * L5_IMAGE_PIXELS, images + i * L5_IMAGE_PIXELS,
                   image_key(seed, epoch, index[i]), max_shift, max_rotate, max_scale);
}
