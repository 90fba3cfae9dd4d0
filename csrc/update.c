/*
 * update.c - how a batch's gradient sum S becomes new parameters: the
 * reference's update and its sign, and SGD with momentum and weight decay.
 * Both kernel sets end their batch step here, so the update is one code.
 */

#include "core.h"

/*
 * The reference's update (docs/SPEC.md §8.2): w = w + k*S or w = w - k*S
 * with k = lr / B: one division, then two roundings per element (the
 * product, then the sum), never fused.
 */
static void plain_update(double *params, const double *sum, int64_t count,
                         int sign, double lr, int64_t batch) {
    double k = lr / (double)batch;
    if (sign > 0)
        for (int64_t i = 0; i < count; i++) params[i] = params[i] + k * sum[i];
    else
        for (int64_t i = 0; i < count; i++) params[i] = params[i] - k * sum[i];
}

/*
 * SGD with momentum and L2 weight decay (docs/SPEC.md §8.5), per element:
 *     g = sign * (S / B)            the step the sign asks for (negation is exact)
 *     g = g - lambda * w            decay pulls toward zero, whatever the sign
 *     v = mu * v + g
 *     w = w + lr * v                heavy ball
 *     w = w + lr * (g + mu * v)     Nesterov (v already updated)
 * every operation rounded on its own, in this order, so a NumPy line-by-line
 * transcription gives the same bytes.  Elements never interact, so any split
 * of them over threads gives the same bytes too.
 */
static inline __attribute__((always_inline)) void
momentum_update(double *restrict params, double *restrict velocity, const double *restrict sum,
                int64_t count, const L5Update *u, int64_t batch, int negate, int nesterov) {
    const double b = (double)batch, mu = u->momentum, lambda = u->weight_decay, lr = u->lr;
    for (int64_t i = 0; i < count; i++) {
        double g = sum[i] / b;
        if (negate) g = -g;
        g = g - lambda * params[i];
        double v = mu * velocity[i] + g;
        velocity[i] = v;
        if (nesterov)
            params[i] = params[i] + lr * (g + mu * v);
        else
            params[i] = params[i] + lr * v;
    }
}

/* The update runs once a batch over all 61,706 parameters, and its division
 * is slow one or two at a time: the compiler builds it for wider vectors
 * too, and the loader picks the widest this CPU runs (an ELF ifunc;
 * elsewhere only one).  Elementwise operations in the same order: the same
 * bytes from every build. */
#if defined(__x86_64__) && defined(__ELF__) && defined(__GNUC__) && !defined(__clang__)
#define L5_UPDATE_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define L5_UPDATE_CLONES
#endif

L5_UPDATE_CLONES
void l5_update_span(double *params, const double *sum, int64_t at, int64_t count,
                    const L5Update *update, int64_t batch) {
    /* negate and nesterov as constants: four loops without a branch, each on vectors */
    double *w = params + at, *v = update->velocity ? update->velocity + at : NULL;
    int negate = update->sign < 0;
    if (v && negate && update->nesterov)
        momentum_update(w, v, sum, count, update, batch, 1, 1);
    else if (v && negate)
        momentum_update(w, v, sum, count, update, batch, 1, 0);
    else if (v && update->nesterov)
        momentum_update(w, v, sum, count, update, batch, 0, 1);
    else if (v)
        momentum_update(w, v, sum, count, update, batch, 0, 0);
    else
        plain_update(w, sum, count, update->sign, update->lr, batch);
}

void l5_apply_update(double *params, const double *sum, int64_t count,
                     const L5Update *update, int64_t batch) {
    l5_update_span(params, sum, 0, count, update, batch);
}
