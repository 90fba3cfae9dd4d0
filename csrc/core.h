/*
 * core.h - what the C files of the core share with each other (not public).
 *
 * The files depend in one direction only; a file calls nothing from a file
 * below it in this list:
 *
 *   common.c     helpers every kernel set uses: normalisation, the thread
 *                count, fork safety, the profiler's stages and clock
 *   loss.c       the output error (the loss's gradient) and the argmax (uses common.c)
 *   update.c     the update: the reference's, and SGD with momentum  (uses common.c)
 *   workspace.c  working memory a caller keeps across calls (uses common.c)
 *   augment.c    the seeded affine warp of training images: each image's
 *                draws and map, and the warp a pixel at a time   (uses common.c)
 *   reference.c  the plain kernels and the batch step made of them
 *                                                  (uses common.c, loss.c, update.c)
 *   fast.c       the fast kernels and their batch step, and the warp on vectors
 *                         (uses common.c, loss.c, update.c, workspace.c, augment.c)
 *   infer.c      prepared inference: one image at a time, vectorised
 *                within the image, from weights laid out once  (uses common.c, loss.c)
 *   dispatch.c   which instruction-set variant of fast.c and infer.c runs
 *                (build_ffi.py compiles those two once per set)  (uses fast.c, infer.c)
 *   api.c        the public entry points of lenet5.h: argument checks,
 *                then one call into a kernel set                     (uses all above)
 *
 * reference.c and fast.c never call each other: they are twins, tested
 * against each other bit for bit; infer.c is held to reference.c the same
 * way.  Each section below declares what one file exports.
 */
#ifndef LENET5_CORE_H
#define LENET5_CORE_H

#include <stdint.h>
#include <stddef.h>  /* size_t: the workspace's block sizes */
#include "lenet5.h"

/* ---------------------------------------------------------------------------
 * Shapes (docs/SPEC.md §2).  Maps are [map][row][column]; every convolution
 * is valid (no padding) with a square kernel, every pooling 2 x 2.
 */
#define L5_IMAGE_SIZE 28      /* an MNIST image: 28 x 28 pixels */
#define L5_INPUT_SIZE 32      /* the network input: the image centred in a zero frame */
#define L5_INPUT_PAD ((L5_INPUT_SIZE - L5_IMAGE_SIZE) / 2)          /* 2 */
#define L5_CONV_KERNEL 5      /* every convolution's kernel is 5 x 5 */
#define L5_CONV_KERNEL_CELLS (L5_CONV_KERNEL * L5_CONV_KERNEL)      /* 25 */
#define L5_CONV1_MAPS 6       /* layer1: conv1 of the input, layer2: its pooling */
#define L5_CONV2_MAPS 16      /* layer3: conv2 of layer2, layer4: its pooling */
#define L5_CONV3_MAPS 120     /* layer5: conv3 of layer4, one cell per map */
#define L5_CONV1_SIZE (L5_INPUT_SIZE - L5_CONV_KERNEL + 1)          /* 28 */
#define L5_POOL1_SIZE (L5_CONV1_SIZE / 2)                           /* 14 */
#define L5_CONV2_SIZE (L5_POOL1_SIZE - L5_CONV_KERNEL + 1)          /* 10 */
#define L5_POOL2_SIZE (L5_CONV2_SIZE / 2)                           /* 5 */
#define L5_CONV3_SIZE (L5_POOL2_SIZE - L5_CONV_KERNEL + 1)          /* 1 */
/* The output layer is fully connected: L5_CONV3_MAPS -> L5_N_CLASSES (lenet5.h). */

/* Cells of each activation, one image. */
#define L5_INPUT_CELLS (L5_INPUT_SIZE * L5_INPUT_SIZE)                 /* 1024 */
#define L5_LAYER1_CELLS (L5_CONV1_MAPS * L5_CONV1_SIZE * L5_CONV1_SIZE) /* 4704 */
#define L5_LAYER2_CELLS (L5_CONV1_MAPS * L5_POOL1_SIZE * L5_POOL1_SIZE) /* 1176 */
#define L5_LAYER3_CELLS (L5_CONV2_MAPS * L5_CONV2_SIZE * L5_CONV2_SIZE) /* 1600 */
#define L5_LAYER4_CELLS (L5_CONV2_MAPS * L5_POOL2_SIZE * L5_POOL2_SIZE) /* 400 */
#define L5_LAYER5_CELLS L5_CONV3_MAPS                                   /* 120 */

/* The parameter blocks (docs/SPEC.md §3.1): weights [in map][out map][kr][kc]. */
#define L5_W1_SIZE (1 * L5_CONV1_MAPS * L5_CONV_KERNEL_CELLS)             /* 150 */
#define L5_W2_SIZE (L5_CONV1_MAPS * L5_CONV2_MAPS * L5_CONV_KERNEL_CELLS) /* 2400 */
#define L5_W3_SIZE (L5_CONV2_MAPS * L5_CONV3_MAPS * L5_CONV_KERNEL_CELLS) /* 48000 */
#define L5_W4_SIZE (L5_CONV3_MAPS * L5_N_CLASSES)                         /* 1200 */
#define L5_B1_SIZE L5_CONV1_MAPS
#define L5_B2_SIZE L5_CONV2_MAPS
#define L5_B3_SIZE L5_CONV3_MAPS
#define L5_B4_SIZE L5_N_CLASSES

/*
 * lenet5.h must keep literal numbers (cffi's cdef reads them), so tie each of
 * them to the shapes here: the blocks follow each other with no gap, in the
 * order W1 W2 W3 W4 b1 b2 b3 b4, and fill the array exactly.
 */
_Static_assert(L5_IMAGE_PIXELS == L5_IMAGE_SIZE * L5_IMAGE_SIZE, "L5_IMAGE_PIXELS is not 28 x 28");
_Static_assert(L5_LAYER1_VALUES == L5_LAYER1_CELLS && L5_LAYER3_VALUES == L5_LAYER3_CELLS,
               "lenet5.h's activation sizes do not match the layer shapes");
_Static_assert(L5_OFF_W1 == 0, "W1 must open the parameter array");
_Static_assert(L5_OFF_W2 == L5_OFF_W1 + L5_W1_SIZE, "L5_OFF_W2 does not follow W1");
_Static_assert(L5_OFF_W3 == L5_OFF_W2 + L5_W2_SIZE, "L5_OFF_W3 does not follow W2");
_Static_assert(L5_OFF_W4 == L5_OFF_W3 + L5_W3_SIZE, "L5_OFF_W4 does not follow W3");
_Static_assert(L5_OFF_B1 == L5_OFF_W4 + L5_W4_SIZE, "L5_OFF_B1 does not follow W4");
_Static_assert(L5_OFF_B2 == L5_OFF_B1 + L5_B1_SIZE, "L5_OFF_B2 does not follow b1");
_Static_assert(L5_OFF_B3 == L5_OFF_B2 + L5_B2_SIZE, "L5_OFF_B3 does not follow b2");
_Static_assert(L5_OFF_B4 == L5_OFF_B3 + L5_B3_SIZE, "L5_OFF_B4 does not follow b3");
_Static_assert(L5_N_PARAMS == L5_OFF_B4 + L5_B4_SIZE, "L5_N_PARAMS is not the sum of the blocks");
/* Both poolings halve an even map; conv3 leaves one cell, so it is a dense layer. */
_Static_assert(L5_CONV1_SIZE % 2 == 0 && L5_CONV2_SIZE % 2 == 0, "a pooled map has an odd size");
_Static_assert(L5_CONV3_SIZE == 1, "conv3 must reduce each map to a single cell");

/* ---------------------------------------------------------------------------
 * common.c, loss.c and update.c: shared by every kernel set.
 */

/* One image (L5_IMAGE_PIXELS bytes) to the L5_INPUT_CELLS network input
 * (docs/SPEC.md §4): each pixel becomes (pixel - mean) / std.
 * l5_image_moments gives that mean and std, or returns 0 for a flat image
 * (whose input is all zeros). */
int l5_image_moments(const uint8_t *pixels, double *mean, double *std);
void l5_normalize_image(double *input, const uint8_t *pixels);

/* The output error d[L5_N_CLASSES] of outputs z for label; returns the loss
 * (docs/SPEC.md §6.1, §6.2, §6.3). */
double l5_output_error(double *d, const double *z, int label, int loss);

/* The index of the largest of L5_N_CLASSES outputs, ties to the smallest
 * (docs/SPEC.md §5.5). */
int l5_argmax10(const double *z);

/*
 * How a batch step turns its sum S into new parameters.  velocity NULL: the
 * reference's update w +/- (lr / B) * S (docs/SPEC.md §8.2); else SGD with
 * momentum and L2 weight decay on the caller's velocity buffer of
 * L5_N_PARAMS doubles (docs/SPEC.md §8.5).  api.c has checked every field.
 */
typedef struct {
    int sign;             /* +1 or -1: which way S moves the weights */
    double lr;            /* this batch's learning rate, > 0 */
    double momentum;      /* mu in [0, 1) */
    double weight_decay;  /* lambda >= 0: always pulls toward zero */
    int nesterov;         /* 1: Nesterov's look-ahead step, 0: heavy ball */
    double *velocity;     /* NULL for the reference's update */
} L5Update;

/* Update params[0..count) from the batch sum of `batch` images (docs/SPEC.md §8.2, §8.5). */
void l5_apply_update(double *params, const double *sum, int64_t count,
                     const L5Update *update, int64_t batch);
/* The same update of params[at..at+count) (and velocity[at..]) from their
 * sums sum[0..count): elements never interact, so a team can update a batch
 * in any split of spans, each as soon as its sums are whole. */
void l5_update_span(double *params, const double *sum, int64_t at, int64_t count,
                    const L5Update *update, int64_t batch);

/* The team size for a thread count the caller gave, 0 for OpenMP's default
 * (docs/SPEC.md §9.1); l5_resolve_threads also notes that a team is about to
 * run (fork safety), l5_thread_count only answers. */
int l5_thread_count(int threads);
int l5_resolve_threads(int threads);

/*
 * The stages a profiled batch is split into (docs/SPEC.md §9.7), in the order
 * they run: the forward pass, the output error, the backward pass (input
 * errors and per-image weight gradients), copying each image's values out,
 * the batch sum and the update.  common.c names them and counts their
 * multiply-adds from the layer shapes.
 */
enum {
    L5_STAGE_LOAD, L5_STAGE_CONV1, L5_STAGE_POOL1, L5_STAGE_CONV2, L5_STAGE_POOL2,
    L5_STAGE_CONV3, L5_STAGE_FC, L5_STAGE_OUTPUT_ERROR,
    L5_STAGE_FC_BACK, L5_STAGE_CONV3_BACK, L5_STAGE_POOL2_BACK, L5_STAGE_CONV2_BACK,
    L5_STAGE_CONV2_GRAD, L5_STAGE_POOL1_BACK, L5_STAGE_CONV1_GRAD,
    L5_STAGE_STORE, L5_STAGE_WARP, L5_STAGE_SUM, L5_STAGE_UPDATE,
    L5_N_STAGES
};
_Static_assert(L5_N_STAGES == L5_PROFILE_STAGES, "lenet5.h's L5_PROFILE_STAGES is not the stage count");
extern const char *const l5_stage_names[L5_N_STAGES];
extern const int64_t l5_stage_macs[L5_N_STAGES];

/* Seconds from a monotonic clock (for profiling only). */
double l5_now(void);
/* Wait until other threads have raised *counter (atomically, with release
 * order) to at least value: a team's meeting point that never sleeps. */
void l5_wait_for(const int *counter, int value);

/* ---------------------------------------------------------------------------
 * workspace.c: caller-owned working memory (docs/SPEC.md §9.8).  Block k
 * is one buffer a kernel keeps there; `tag` says whose layout its contents
 * are in (a change zeroes it).
 */
enum { L5_WS_TILES, L5_WS_CHUNK, L5_WS_WEIGHTS, L5_WS_SUMS, L5_WS_BLOCKS };
struct L5Workspace {
    int busy;                  /* 1 while a call uses it */
    void *block[L5_WS_BLOCKS];
    size_t bytes[L5_WS_BLOCKS];
    int tag[L5_WS_BLOCKS];
};
/* enter: 1 if the workspace was free and is now this call's, 0 if busy. */
int l5_workspace_enter(L5Workspace *ws);
void l5_workspace_leave(L5Workspace *ws);
void *l5_workspace_block(L5Workspace *ws, int which, size_t bytes, int tag);
/* Frees every block, keeps the struct (a call's own temporary workspace). */
void l5_workspace_release(L5Workspace *ws);

/* ---------------------------------------------------------------------------
 * augment.c: the training-image warp (docs/SPEC.md §8.6).  The caller has
 * checked every argument.
 */
typedef struct {
    const int64_t *index;   /* image i's key: its row in the training file */
    uint64_t seed;
    int64_t epoch;
    double max_shift, max_rotate, max_scale;
} L5Warp;

/* One image's map from its draws: source = rotate-and-scale (a, b) of the
 * output point less the shift (tx, ty), about the centre. */
typedef struct {
    double a, b, tx, ty;
} L5WarpMap;

#define L5_WARP_CENTRE ((L5_IMAGE_SIZE - 1) / 2.0) /* 13.5: the middle of the pixel grid */
/* The source image as doubles in a frame of zeros L5_WARP_PAD wide, so that
 * the four pixels around any source point are plain loads: a point further
 * out is clamped to the frame, where all four are zero anyway. */
#define L5_WARP_PAD 2
#define L5_WARP_FRAMED (L5_IMAGE_SIZE + 2 * L5_WARP_PAD)
/* A floored source coordinate is clamped to these, so that it and the next
 * one lie inside the frame (both in its zero border when the point is
 * outside the image). */
#define L5_WARP_LO (-L5_WARP_PAD)
#define L5_WARP_HI (L5_IMAGE_SIZE + L5_WARP_PAD - 2)

void l5_warp_map(L5WarpMap *m, const L5Warp *warp, int64_t i);
void l5_warp_frame(double framed[L5_WARP_FRAMED * L5_WARP_FRAMED], const uint8_t *image);
/* Warp image i of a batch (keyed by warp->index[i]) into out, 784 bytes:
 * the readable twin; l5_fast_warp_image (fast.c) is the same on vectors. */
void l5_warp_image_ref(uint8_t *out, const uint8_t *image, const L5Warp *warp, int64_t i);

/* ---------------------------------------------------------------------------
 * reference.c: the plain kernels.  The caller has checked every argument.
 */
int l5_ref_train_batch(double *params, const uint8_t *images, const uint8_t *labels,
                       int64_t n, int loss, const L5Update *update,
                       double *loss_sum, int64_t *n_correct);
int l5_ref_forward(const double *params, const uint8_t *images, int64_t n, double *out);
int l5_ref_image_gradient(const double *params, const uint8_t *image, int label, int loss,
                          double *grad, double *loss_value);
int l5_ref_forward_activations(const double *params, const uint8_t *image,
                               double *layer1, double *layer3, double *output);

/* ---------------------------------------------------------------------------
 * fast.c and infer.c, compiled once per instruction set (docs/SPEC.md §9.4):
 * build_ffi.py passes -DL5_ISA=avx512, avx2, sse2 or generic, and each
 * function they export is named with that suffix (l5_fast_forward_avx2), so
 * the variants link side by side.  The types below declare every variant.
 */
#define L5_ISA_JOIN(name, isa) name##_##isa
#define L5_ISA_EXPAND(name, isa) L5_ISA_JOIN(name, isa)
#ifdef L5_ISA
#define L5_ISA_NAME(name) L5_ISA_EXPAND(name, L5_ISA)
#endif

/* fast.c: the fast kernels, the same bits.  The caller has checked every
 * argument and holds the workspace ws (entered) for the call; every buffer
 * the kernels use lives there.  l5_fast_lanes: the images per tile of that
 * variant. */
typedef int L5FastLanes(void);
/* warp: NULL, or each image is first warped as l5_warp_image_ref does
 * (docs/SPEC.md §8.6), by the thread that loads it into its tile. */
typedef int L5FastTrainBatch(L5Workspace *ws, double *params, const uint8_t *images,
                             const uint8_t *labels, int64_t n, int loss, const L5Update *update,
                             const L5Warp *warp, int threads, double *loss_sum,
                             int64_t *n_correct, double *profile);
/* The warp of image i, as l5_warp_image_ref (docs/SPEC.md §8.6). */
typedef void L5FastWarpImage(uint8_t *out, const uint8_t *image, const L5Warp *warp, int64_t i);
/* out: n * 10 outputs, or NULL; pred: n classes, or NULL. */
typedef int L5FastForward(L5Workspace *ws, const double *params, const uint8_t *images, int64_t n,
                          double *out, int32_t *pred, int threads);
/* l5_fast_train_batch's profile: NULL, or L5_N_STAGES thread-seconds to add
 * to (docs/SPEC.md §9.7).  l5_fast_peak_macs: the multiply-adds one thread
 * issues in that variant's vectors until l5_now() reaches `until`. */
typedef double L5FastPeakMacs(double until);

/* infer.c: prepared inference, the same bits as the reference forward pass.
 * The caller has checked every argument (prepared: L5_PREPARED_BYTES,
 * 8-byte aligned; for l5_infer_images also filled by l5_infer_prepare).
 * l5_infer_images: the outputs (out: n * 10, or NULL) and classes (pred: n,
 * or NULL) of n images. */
typedef void L5InferPrepare(void *prepared, const double *params);
typedef int L5InferIsPrepared(const void *prepared);
typedef void L5InferImages(const void *prepared, const uint8_t *images, int64_t n,
                           double *out, int32_t *pred, int threads);

#define L5_DECLARE_VARIANT(isa)                               \
    L5FastLanes L5_ISA_JOIN(l5_fast_lanes, isa);              \
    L5FastTrainBatch L5_ISA_JOIN(l5_fast_train_batch, isa);   \
    L5FastForward L5_ISA_JOIN(l5_fast_forward, isa);          \
    L5FastWarpImage L5_ISA_JOIN(l5_fast_warp_image, isa);     \
    L5FastPeakMacs L5_ISA_JOIN(l5_fast_peak_macs, isa);       \
    L5InferPrepare L5_ISA_JOIN(l5_infer_prepare, isa);        \
    L5InferIsPrepared L5_ISA_JOIN(l5_infer_is_prepared, isa); \
    L5InferImages L5_ISA_JOIN(l5_infer_images, isa);
L5_DECLARE_VARIANT(avx512)
L5_DECLARE_VARIANT(avx2)
L5_DECLARE_VARIANT(sse2)
L5_DECLARE_VARIANT(generic)

/* ---------------------------------------------------------------------------
 * dispatch.c: the unsuffixed names api.c calls, forwarded to the variant
 * that runs (the widest the CPU supports, unless l5_use_isa chose another).
 */
L5FastTrainBatch l5_fast_train_batch;
L5FastForward l5_fast_forward;
L5FastWarpImage l5_fast_warp_image;
L5FastPeakMacs l5_fast_peak_macs;
L5InferPrepare l5_infer_prepare;
L5InferIsPrepared l5_infer_is_prepared;
L5InferImages l5_infer_images;

#endif
