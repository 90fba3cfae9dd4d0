/*
 * lenet5.h - the public interface of the LeNet-5 core.
 *
 * The network, its parameter layout and every rounding are those of the
 * reference "seq/" program (docs/SPEC.md §1): IEEE-754 doubles, every
 * operation rounded on its own, sums taken in a fixed order from +0.  Same
 * model in, same bytes out.
 *
 * All parameters live in one flat array of L5_N_PARAMS doubles
 * (docs/SPEC.md §3.1), in the order of the reference program's model.dat
 * file (docs/SPEC.md §10).  Weights are indexed [input map][output map]
 * [kernel row][kernel column].
 */
#ifndef LENET5_H
#define LENET5_H

#include <stdint.h>

/* Offsets of the parameter blocks inside the flat array.  Literal numbers,
 * because cffi's cdef reads them; core.h checks them against the layer shapes
 * at compile time. */
#define L5_OFF_W1 0        /* [1][6][5][5]     */
#define L5_OFF_W2 150      /* [6][16][5][5]    */
#define L5_OFF_W3 2550     /* [16][120][5][5]  */
#define L5_OFF_W4 50550    /* [120][10]        */
#define L5_OFF_B1 51750    /* [6]   */
#define L5_OFF_B2 51756    /* [16]  */
#define L5_OFF_B3 51772    /* [120] */
#define L5_OFF_B4 51892    /* [10]  */
#define L5_N_PARAMS 51902

#define L5_IMAGE_PIXELS 784 /* one MNIST image: 28 x 28 bytes */
#define L5_MAX_THREADS 1024 /* a larger thread count is refused */
#define L5_N_CLASSES 10

/* Output-error variants (docs/SPEC.md §6.1, §6.2). */
#define L5_LOSS_MSE 0   /* the reference's own: returns the NEGATIVE gradient */
#define L5_LOSS_XENT 1  /* softmax + cross-entropy: returns the POSITIVE gradient p - y */

/* Which kernels compute the passes. */
#define L5_KERNEL_REFERENCE 0 /* plain per-image loops: the readable definition */
#define L5_KERNEL_FAST 1      /* batched, vectorised, threaded: same bits */

/* Return codes.  Every entry point checks its arguments and returns one of
 * these instead of touching memory it was not promised. */
#define L5_OK 0
#define L5_ERR_NULL -1        /* a required pointer is NULL */
#define L5_ERR_SIZE -2        /* a size argument does not match the network */
#define L5_ERR_COUNT -3       /* image count < 1 */
#define L5_ERR_LABEL -4       /* a label outside 0..9 */
#define L5_ERR_LOSS -5        /* unknown loss variant */
#define L5_ERR_SIGN -6        /* sign is neither +1 nor -1 */
#define L5_ERR_LR -7          /* learning rate not finite and > 0 */
#define L5_ERR_KERNEL -8      /* unknown kernel choice */
#define L5_ERR_THREADS -9     /* thread count < 0 or > L5_MAX_THREADS */
#define L5_ERR_NOMEM -10      /* allocation failed */
#define L5_ERR_PREPARED -11   /* a prepared buffer: wrong size, misaligned or never prepared */
#define L5_ERR_MOMENTUM -12   /* momentum not in [0, 1), or nesterov not 0/1 */
#define L5_ERR_DECAY -13      /* weight decay not finite and >= 0 */
#define L5_ERR_AUGMENT -14    /* an augmentation range or image index out of bounds */
#define L5_ERR_ISA -15        /* an instruction set not built, unknown, or the CPU lacks it */
#define L5_ERR_BUSY -16       /* a workspace another call is using right now */

/*
 * Train on one batch of n images (docs/SPEC.md §8.1, §8.2): forward and
 * backward every image, sum the per-image gradients in image order, then update
 *     params = params + sign * (lr / n) * S   (as  w + k*S  or  w - k*S).
 * images: n * 784 bytes, labels: n bytes in 0..9.
 * On return *loss_sum is the batch's summed loss (mse: 1/2 sum (p-y)^2,
 * xent: -log p_label) and *n_correct how many images the forward pass
 * classified correctly, both measured before the update.
 * threads: 0 for the default (OpenMP's, i.e. OMP_NUM_THREADS), else how many
 * (never more than there are tiles of 2, 4 or 8 images to work on; docs/SPEC.md §9.1).
 */
int l5_train_batch(double *params, int64_t n_params,
                   const uint8_t *images, const uint8_t *labels, int64_t n,
                   int loss, int sign, double lr, int kernel, int threads,
                   double *loss_sum, int64_t *n_correct);

/*
 * l5_train_batch with SGD momentum and L2 weight decay (docs/SPEC.md §8.5):
 * the same batch sum S, then per element
 *     g = sign * (S / n) - weight_decay * w,   v = momentum * v + g,
 *     w = w + lr * v               (nesterov 0: heavy ball)
 *     w = w + lr * (g + momentum * v)   (nesterov 1)
 * velocity: n_params doubles the caller owns and keeps between batches
 * (zeros before the first); it is updated in place.
 */
int l5_train_batch_sgd(double *params, double *velocity, int64_t n_params,
                       const uint8_t *images, const uint8_t *labels, int64_t n,
                       int loss, int sign, double lr, double momentum,
                       double weight_decay, int nesterov, int kernel, int threads,
                       double *loss_sum, int64_t *n_correct);

/*
 * The seeded affine warp of n training images (docs/SPEC.md §8.6): image i
 * is turned by up to +/- max_rotate degrees, scaled by up to +/- max_scale
 * (a fraction) and shifted by up to +/- max_shift pixels, each drawn from
 * (seed, epoch, index[i]) alone, then resampled bilinearly and rounded back
 * to bytes.  images, out: n * 784 bytes; index: n values in 0..2^53.
 * kernel: L5_KERNEL_REFERENCE (one pixel at a time) or L5_KERNEL_FAST (a
 * vector of pixels at a time, the running variant's), the same bytes.
 */
int l5_augment(const uint8_t *images, const int64_t *index, int64_t n,
               uint64_t seed, int64_t epoch, double max_shift, double max_rotate,
               double max_scale, uint8_t *out, int kernel, int threads);

/* Forward n images to the 10 ReLU-ed outputs (out: n * 10 doubles). */
int l5_forward(const double *params, int64_t n_params,
               const uint8_t *images, int64_t n, double *out,
               int kernel, int threads);

/* Predict n images: the index of the largest output, ties to the smallest. */
int l5_predict(const double *params, int64_t n_params,
               const uint8_t *images, int64_t n, int32_t *pred,
               int kernel, int threads);

/*
 * The per-image gradient buffer G of one image (reference kernels): what the
 * batch step adds to S (docs/SPEC.md §8.1).  For mse it is the NEGATIVE
 * gradient of E = 1/2 sum (p - y)^2, for xent the POSITIVE gradient of
 * -log p_label.
 * grad: n_params doubles, *loss: that image's loss.
 */
int l5_image_gradient(const double *params, int64_t n_params,
                      const uint8_t *image, int label, int loss,
                      double *grad, double *loss_value);

/*
 * What one image looks like inside the network (reference kernels): the
 * first convolution's 6 maps of 28 x 28 and the second's 16 maps of 10 x 10,
 * both after their ReLU (docs/SPEC.md §5.2), and the 10 outputs.
 * layer1: L5_LAYER1_VALUES doubles, layer3: L5_LAYER3_VALUES, output: 10.
 */
#define L5_LAYER1_VALUES 4704 /* 6 x 28 x 28 */
#define L5_LAYER3_VALUES 1600 /* 16 x 10 x 10 */
int l5_forward_activations(const double *params, int64_t n_params, const uint8_t *image,
                           double *layer1, double *layer3, double *output);

/* Normalise one image to the 32 x 32 padded network input (docs/SPEC.md §4). */
int l5_normalize(const uint8_t *image, double *input_32x32);

/* 1 if this build runs threads (OpenMP), else 0; and its default count. */
int l5_have_openmp(void);
int l5_default_threads(void);

/*
 * Prepared inference (docs/SPEC.md §9.6): the weights laid out once, in a
 * buffer the caller owns (L5_PREPARED_BYTES, 8-byte aligned; 64-byte aligned
 * is faster), then any
 * number of forward passes from it.  Same bits as l5_forward; one image is
 * vectorised within itself; no allocation per call; fewer than 16 images run
 * on the calling thread.  The buffer is only read by the passes, so calls
 * from several threads may share it.  Change the parameters, prepare again.
 */
#define L5_PREPARED_BYTES 417216

int l5_prepare(const double *params, int64_t n_params, void *prepared, int64_t prepared_bytes);
int l5_forward_prepared(const void *prepared, int64_t prepared_bytes,
                        const uint8_t *images, int64_t n, double *out, int threads);
int l5_predict_prepared(const void *prepared, int64_t prepared_bytes,
                        const uint8_t *images, int64_t n, int32_t *pred, int threads);
/* One image (784 pixels) on the calling thread: its digit 0..9, or an
 * L5_ERR_* code (negative).  l5_predict_prepared's answer for n = 1, with
 * nothing for the caller to allocate (the common case of one picture). */
int l5_predict_one(const void *prepared, int64_t prepared_bytes, const uint8_t *image);

/*
 * Workspaces (docs/SPEC.md §9.8): the fast kernels' working memory, owned by
 * the caller and kept across calls, so that a batch allocates nothing once
 * the first has run.  Give each training run, model or calling thread its
 * own: one workspace serves one call at a time (a second call while one
 * runs gets L5_ERR_BUSY).  l5_workspace_new returns NULL if memory ran out.
 */
typedef struct L5Workspace L5Workspace;
L5Workspace *l5_workspace_new(void);
void l5_workspace_free(L5Workspace *ws);

/*
 * One training batch with the fast kernels in workspace ws: l5_train_batch
 * (velocity NULL, momentum, weight_decay and nesterov 0) or
 * l5_train_batch_sgd (velocity given), the same bits.  warp_index: NULL, or
 * the batch is first warped as l5_augment would warp it with these keys and
 * ranges (the same bytes, in the batch's own thread team instead of one of
 * its own).  seconds: NULL, or L5_PROFILE_STAGES (n_seconds) thread-seconds
 * per stage to add to, as l5_profile_train_batch.
 */
int l5_train_batch_ws(L5Workspace *ws, double *params, double *velocity, int64_t n_params,
                      const uint8_t *images, const uint8_t *labels, int64_t n,
                      int loss, int sign, double lr, double momentum, double weight_decay,
                      int nesterov, const int64_t *warp_index, uint64_t warp_seed,
                      int64_t warp_epoch, double max_shift, double max_rotate, double max_scale,
                      int threads, double *seconds, int64_t n_seconds,
                      double *loss_sum, int64_t *n_correct);

/* The fast kernels' forward pass in workspace ws: the 10 outputs of each
 * image (out: n * 10, or NULL) and its class (pred: n, or NULL; not both NULL). */
int l5_forward_ws(L5Workspace *ws, const double *params, int64_t n_params,
                  const uint8_t *images, int64_t n, double *out, int32_t *pred, int threads);

/*
 * Instruction-set variants (docs/SPEC.md §9.4): the fast and prepared kernels
 * are compiled for "avx512" (AVX-512F, 8 images per tile), "avx2" (4),
 * "sse2" (2) and "generic" (2; any CPU), all giving the same bits.  The
 * widest the CPU supports runs unless l5_use_isa chose another.
 * l5_isa_status: L5_ISA_RUNS, L5_ISA_CPU_LACKS (built, but this CPU cannot
 * run it) or L5_ISA_NOT_BUILT (also for an unknown name).
 */
#define L5_ISA_RUNS 1
#define L5_ISA_CPU_LACKS 0
#define L5_ISA_NOT_BUILT -1

const char *l5_isa(void);
int l5_isa_lanes(void);
int l5_isa_status(const char *name);
int l5_use_isa(const char *name);

/*
 * Profiling (docs/SPEC.md §9.7): where a fast training batch spends its time.
 * l5_profile_train_batch is l5_train_batch (reference update, fast kernels)
 * that also adds to seconds[k] the time of stage k, summed over the team's
 * threads (thread-seconds); n_seconds must be L5_PROFILE_STAGES.  Each stage
 * has a name and a count of multiply-adds per image (0 for stages that only
 * move, compare or add).  l5_peak_macs measures the multiply-adds per second
 * of wall time of `threads` threads running independent vector multiplies
 * then adds (the form the kernels use, no fused multiply-add) for about
 * `seconds`; below 0 for bad arguments.
 */
#define L5_PROFILE_STAGES 19

const char *l5_profile_stage_name(int stage);
int64_t l5_profile_stage_macs(int stage);
int l5_profile_train_batch(double *params, int64_t n_params,
                           const uint8_t *images, const uint8_t *labels, int64_t n,
                           int loss, int sign, double lr, int threads,
                           double *seconds, int64_t n_seconds,
                           double *loss_sum, int64_t *n_correct);
double l5_peak_macs(int threads, double seconds);

#endif
