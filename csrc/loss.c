/*
 * loss.c - what the network's ten outputs are judged by: the output error
 * (the gradient the loss hands back, and the image's loss) and the predicted
 * class.  One image at a time; reference.c, fast.c and infer.c call these,
 * so every kernel set computes these steps with the very same code.
 */

#include <math.h>
#include "core.h"

/* The predicted class: the largest output, ties to the smallest index
 * (docs/SPEC.md §5.5). */
int l5_argmax10(const double *z) {
    int best = 0;
    for (int i = 1; i < L5_N_CLASSES; i++)
        if (z[i] > z[best]) best = i;
    return best;
}

/*
 * The output error d from the ReLU-ed outputs z and the label; returns the
 * image's loss (docs/SPEC.md §6.3).  The two variants differ in sign
 * convention (docs/SPEC.md §6.1, §6.2, §8.2):
 *   mse  returns the NEGATIVE gradient of E = 1/2 sum (p - y)^2, p = softmax(z),
 *        so the reference's update w += lr/B * S descends;
 *   xent returns the POSITIVE gradient p - y of -log p_label, so it must be
 *        paired with w -= lr/B * S.  Pair it with += and training climbs.
 */
double l5_output_error(double *d, const double *z, int label, int loss) {
    double p[L5_N_CLASSES];
    double value = 0.0;
    if (loss == L5_LOSS_MSE) {
        /* p_i = 1 / sum_j exp(z_j - z_i): the reference's softmax. */
        for (int i = 0; i < L5_N_CLASSES; i++) {
            double s = 0.0;
            for (int j = 0; j < L5_N_CLASSES; j++) s += exp(z[j] - z[i]);
            p[i] = 1.0 / s;
        }
        double inner = 0.0;
        for (int i = 0; i < L5_N_CLASSES; i++) inner = inner - p[i] * p[i];
        inner = inner + p[label];
        for (int i = 0; i < L5_N_CLASSES; i++) {
            double y = (i == label) ? 1.0 : 0.0;
            d[i] = p[i] * ((y - p[i]) - inner);
            value += (p[i] - y) * (p[i] - y);
        }
        return 0.5 * value;
    }
    /* xent: softmax shifted by the largest output, then p - y. */
    double m = -INFINITY, ex[L5_N_CLASSES], s = 0.0;
    for (int i = 0; i < L5_N_CLASSES; i++)
        if (z[i] > m) m = z[i];
    for (int i = 0; i < L5_N_CLASSES; i++) {
        ex[i] = exp(z[i] - m);
        s += ex[i];
    }
    for (int i = 0; i < L5_N_CLASSES; i++) {
        p[i] = ex[i] / s;
        d[i] = p[i] - ((i == label) ? 1.0 : 0.0);
    }
    return -log(p[label]);
}
