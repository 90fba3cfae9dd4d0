/*
 * core.h - what the C files of the core share with each other (not public).
 */
#ifndef LENET5_CORE_H
#define LENET5_CORE_H

#include <stdint.h>
#include "lenet5.h"

/* Layer shapes (SPEC.md, "Shapes"). */
#define IN_SIZE 32   /* padded input: 1 x 32 x 32 */
#define C1 6         /* layer1: 6 x 28 x 28, layer2: 6 x 14 x 14 */
#define S1 28
#define P1 14
#define C2 16        /* layer3: 16 x 10 x 10, layer4: 16 x 5 x 5 */
#define S2 10
#define P2 5
#define C3 120       /* layer5: 120 */
#define N_OUT 10
#define K 5          /* every convolution is 5 x 5 */

/* One image's activations, kept for the backward pass. */
typedef struct {
    double input[IN_SIZE * IN_SIZE];
    double layer1[C1 * S1 * S1];
    double layer2[C1 * P1 * P1];
    int argmax2[C1 * P1 * P1];  /* which of the 4 pooled cells won (0..3) */
    double layer3[C2 * S2 * S2];
    double layer4[C2 * P2 * P2];
    int argmax4[C2 * P2 * P2];
    double layer5[C3];
    double output[N_OUT];
} Activations;

/* Shared by both kernel sets. */
void normalize_image(double *input, const uint8_t *pixels);
double output_error(double *d, const double *z, int label, int loss);
int argmax10(const double *z);

/* Reference passes (reference.c). */
void forward_image(Activations *a, const double *params, const uint8_t *pixels);
void backward_image(double *grad, const Activations *a, const double *d,
                    const double *params);

/* Fast passes (fast.c). */
int fast_train_batch(double *params, const uint8_t *images, const uint8_t *labels,
                     int64_t n, int loss, int sign, double lr, int threads,
                     double *loss_sum, int64_t *n_correct);
int fast_forward(const double *params, const uint8_t *images, int64_t n,
                 double *out, int threads);

/* The update of SPEC.md, "Batch step and update". */
void apply_update(double *params, const double *sum, int64_t count,
                  int sign, double lr, int64_t batch);

#endif
