/* Fused noise + normalization on the CPU: the Triton noise kernel's arithmetic in C.
 *
 * The same random-number contract as kernels/contract.py (Philox4x32-10 keyed by the seed,
 * counter (q lo, q hi, stream, phase), Box-Muller of the words' exact uniforms, or the Laplace
 * and uniform inverse CDFs of one word each) and, operation for operation, the same float32
 * arithmetic as kernels/noise.py, kernels/box_muller.py and kernels/inverse_cdf.py: only
 * IEEE add, multiply, fma, sqrt, int32 <-> float32 conversions and integer operations, compiled
 * with -ffp-contract=off so that the compiler forms no fma of its own. Every noisy value is
 * therefore bit for bit what the Triton kernel writes, on a GPU or in Triton's interpreter (the
 * kernel's rsqrt + Newton step is the correctly rounded square root, sqrtf here).
 *
 * The coefficients are defined by the build (kernels/cpu_build.py) from their one home,
 * kernels/box_muller_coefficients.py: BM_P0..BM_P7, BM_C0..BM_C3, BM_Q0..BM_Q3, BM_G0, BM_G1,
 * BM_MINUS_TWO_LN2_HI, BM_PI_HI, and the Philox constants PHILOX_M0, PHILOX_M1, PHILOX_W0,
 * PHILOX_W1.
 *
 * Loops are written for the auto-vectorizer: a chunk of Philox blocks is made lane by lane into
 * four arrays (no branches: selects only), then normalized channel run by channel run.
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

/* Philox blocks per chunk: 4 KiB of normals, which stay in L1 between the two loops. */
#define CHUNK_BLOCKS 256

static inline float bits_to_float(int32_t bits) {
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

static inline int32_t float_to_bits(float f) {
    int32_t bits;
    memcpy(&bits, &f, sizeof bits);
    return bits;
}

/* -2 ln u as xa + xb from u in float32 and, where upper (u >= 1/2), c2 = 2 (1 - u):
 * box_muller.py's minus_two_log. */
static inline void minus_two_log(float u, float c2, int upper, float *xa, float *xb) {
    int32_t t = float_to_bits(u) - 0x3F2AAAAB;
    int32_t k = t >> 23; /* arithmetic: u = 2^k m, m in [2/3, 4/3) */
    float m = bits_to_float((t & 0x007FFFFF) + 0x3F2AAAAB);
    float kf = bits_to_float(k + 0x4B400000) - 12582912.0f;
    float g_complement = t < 0 ? fmaf(c2, 2.0f, -2.0f) : c2;
    float g = upper ? g_complement : fmaf(m, -2.0f, 2.0f);
    float p = fmaf(BM_P7, g, BM_P6);
    p = fmaf(p, g, BM_P5);
    p = fmaf(p, g, BM_P4);
    p = fmaf(p, g, BM_P3);
    p = fmaf(p, g, BM_P2);
    p = fmaf(p, g, BM_P1);
    p = fmaf(p, g, BM_P0);
    float q = fmaf(p, g, 0.25f);
    *xa = fmaf(kf, BM_MINUS_TWO_LN2_HI, g);
    *xb = (g * g) * q;
}

/* -2 ln u, u = (w + 0.5) 2^-32, as xa + xb: box_muller.py's minus_two_log_uniform. */
static inline void minus_two_log_uniform(uint32_t w, float *xa, float *xb) {
    float u = fmaf((float)w, 0x1p-32f, 0x1p-33f);
    float c2 = fmaf((float)(int32_t)w, -0x1p-31f, -0x1p-32f); /* 2 (1 - u) for w >= 2^31 */
    minus_two_log(u, c2, w >= 0x80000000u, xa, xb);
}

/* inverse_cdf.py's standard_laplace: s (-ln v), v = (m + 0.5) 2^-31. */
static inline float standard_laplace(uint32_t w) {
    int upper = w >= 0x80000000u;
    uint32_t m = upper ? ~w : w;
    float v = fmaf((float)(int32_t)m, 0x1p-31f, 0x1p-32f);
    float c2 = fmaf((float)(int32_t)(m ^ 0x80000000u), -0x1p-30f, -0x1p-31f);
    float xa, xb;
    minus_two_log(v, c2, m >= 0x40000000u, &xa, &xb);
    float magnitude = 0.5f * (xa + xb);
    return upper ? magnitude : -magnitude;
}

/* inverse_cdf.py's standard_uniform: 2 u - 1 = (w - 2^31 + 0.5) 2^-31, rounded once. */
static inline float standard_uniform(uint32_t w) {
    int32_t s = (int32_t)(w ^ 0x80000000u);
    return fmaf((float)(s & -256), 0x1p-31f, fmaf((float)(s & 255), 0x1p-31f, 0x1p-32f));
}

/* Noise codes: kernels/contract.py's NOISE_CODES. */
#define NOISE_GAUSSIAN 0
#define NOISE_LAPLACE 1

static inline float inverse_cdf(int noise, uint32_t w) {
    return noise == NOISE_LAPLACE ? standard_laplace(w) : standard_uniform(w);
}

static inline float poly3(float s, float c0, float c1, float c2, float c3) {
    return fmaf(fmaf(fmaf(s, c3, c2), s, c1), s, c0);
}

/* (r cos 2 pi u1, r sin 2 pi u1), r = sqrt(-2 ln u0): box_muller.py's box_muller. */
static inline void box_muller(uint32_t w0, uint32_t w1, float *z_cos, float *z_sin) {
    float xa, xb;
    minus_two_log_uniform(w0, &xa, &xb);
    float x = xa + xb;
    float rh = sqrtf(x);
    float rl = fmaf(-rh, rh, xa) + xb;
    rl = rl * bits_to_float(0x5EB759DF - (float_to_bits(x) >> 1));
    float t = (float)(int32_t)((w1 << 2) + 2u) * 0x1p-33f;
    float s = t * t;
    float zc = fmaf(fmaf(rh, s, rl * fmaf(s, BM_G1, BM_G0)), poly3(s, BM_C0, BM_C1, BM_C2, BM_C3), rh);
    float hi = t * BM_PI_HI;
    float lo = fmaf(t, poly3(s, BM_Q0, BM_Q1, BM_Q2, BM_Q3), fmaf(t, BM_PI_HI, -hi));
    float zs = fmaf(rh, hi, fmaf(rl, hi, rh * lo));
    uint32_t quadrant = (w1 + 0x20000000u) >> 30;
    float rc = (quadrant & 1u) ? -zs : zc;
    float rs = (quadrant & 1u) ? zc : zs;
    *z_cos = (quadrant & 2u) ? -rc : rc;
    *z_sin = (quadrant & 2u) ? -rs : rs;
}

/* Philox4x32-10 words of blocks q0 .. q0 + count - 1 of (stream, phase): word k of block q0 + j in wk[j]. */
static void philox_words(uint64_t q0, int count, uint32_t stream, uint32_t phase, uint32_t key0, uint32_t key1,
                         uint32_t *w0, uint32_t *w1, uint32_t *w2, uint32_t *w3) {
    for (int j = 0; j < count; j++) {
        uint64_t q = q0 + (uint64_t)j;
        uint32_t c0 = (uint32_t)q, c1 = (uint32_t)(q >> 32), c2 = stream, c3 = phase;
        uint32_t k0 = key0, k1 = key1;
        for (int round = 0; round < 10; round++) {
            uint64_t product_a = (uint64_t)c0 * PHILOX_M0;
            uint64_t product_b = (uint64_t)c2 * PHILOX_M1;
            uint32_t next0 = (uint32_t)(product_b >> 32) ^ c1 ^ k0;
            uint32_t next2 = (uint32_t)(product_a >> 32) ^ c3 ^ k1;
            c1 = (uint32_t)product_b;
            c3 = (uint32_t)product_a;
            c0 = next0;
            c2 = next2;
            k0 += PHILOX_W0;
            k1 += PHILOX_W1;
        }
        w0[j] = c0;
        w1[j] = c1;
        w2[j] = c2;
        w3[j] = c3;
    }
}

/* Standard noise of blocks q0 .. q0 + count - 1 of (stream, phase): lane k of block q0 + j in zk[j]. */
static void make_blocks(int noise, uint64_t q0, int count, uint32_t stream, uint32_t phase, uint32_t key0,
                        uint32_t key1, float *z0, float *z1, float *z2, float *z3) {
    uint32_t w0[CHUNK_BLOCKS], w1[CHUNK_BLOCKS], w2[CHUNK_BLOCKS], w3[CHUNK_BLOCKS];
    philox_words(q0, count, stream, phase, key0, key1, w0, w1, w2, w3);
    for (int j = 0; j < count; j++) {
        if (noise == NOISE_GAUSSIAN) {
            box_muller(w0[j], w1[j], &z0[j], &z1[j]);
            box_muller(w2[j], w3[j], &z2[j], &z3[j]);
        } else {
            z0[j] = inverse_cdf(noise, w0[j]);
            z1[j] = inverse_cdf(noise, w1[j]);
            z2[j] = inverse_cdf(noise, w2[j]);
            z3[j] = inverse_cdf(noise, w3[j]);
        }
    }
}

/* Batch row r of the (input, sample) grid, global row start_sample + r: its input, the element
 * index e of its element 0, and the part [d0, d_end) of its elements in [first_element, last_element). */
struct row_span {
    int64_t owner;
    uint64_t first;
    int64_t d0, d_end;
};

static inline struct row_span row_span(int64_t r, int64_t start_owner, int64_t start_sample, int64_t n, int64_t numel,
                                       int64_t first_element, int64_t last_element) {
    int64_t global = start_sample + r;
    struct row_span row;
    row.owner = start_owner + global / n;
    row.first = (uint64_t)(global % n) * (uint64_t)numel;
    row.d_end = last_element - r * numel < numel ? last_element - r * numel : numel;
    row.d0 = first_element > r * numel ? first_element - r * numel : 0;
    return row;
}

/* Elements [first_element, last_element) of a batch of rows of numel elements each, written to
 * out[r * numel + d] (element d of row r); row r is global row start_sample + r of the (input,
 * sample) grid, i.e. sample (start_sample + r) % n of input start_owner + (start_sample + r) / n:
 *
 *     out = fma(z, noise_scale[c], fma(x, x_scale[c], x_shift[c]))   (has_norm; channel c = d / hw)
 *     out = fma(z, noise_scale[c], x)                                 (otherwise; noise_scale = scale)
 *
 * z the standard noise of code `noise`, with the launcher's float32 constants, computed as the
 * Triton kernel computes them (the noise's scale *
 * (1 / std), 1 / std, -mean * (1 / std)). Threads take disjoint element ranges of one batch. */
void rsengine_noise_normalize(int noise, const float *xs, const int64_t *streams, float *out, int64_t start_owner,
                              int64_t start_sample, int64_t n, int64_t numel, int64_t hw, int has_norm,
                              const float *noise_scale, const float *x_scale, const float *x_shift, uint32_t key0,
                              uint32_t key1, uint32_t phase, int64_t first_element, int64_t last_element) {
    float z0[CHUNK_BLOCKS], z1[CHUNK_BLOCKS], z2[CHUNK_BLOCKS], z3[CHUNK_BLOCKS], z[4 * CHUNK_BLOCKS];
    for (int64_t r = first_element / numel; r * numel < last_element; r++) {
        struct row_span row = row_span(r, start_owner, start_sample, n, numel, first_element, last_element);
        uint64_t first = row.first;
        uint32_t stream = (uint32_t)streams[row.owner];
        const float *x = xs + row.owner * numel;
        float *y = out + r * numel;
        int64_t d_end = row.d_end, d0 = row.d0;
        while (d0 < d_end) {
            uint64_t e0 = first + (uint64_t)d0;
            int offset = (int)(e0 & 3u); /* lane of element d0 in its Philox block */
            int64_t d1 = d0 + 4 * CHUNK_BLOCKS - offset < d_end ? d0 + 4 * CHUNK_BLOCKS - offset : d_end;
            int blocks = (int)((offset + (d1 - d0) + 3) / 4);
            make_blocks(noise, e0 >> 2, blocks, stream, phase, key0, key1, z0, z1, z2, z3);
            for (int j = 0; j < blocks; j++) {
                z[4 * j] = z0[j];
                z[4 * j + 1] = z1[j];
                z[4 * j + 2] = z2[j];
                z[4 * j + 3] = z3[j];
            }
            const float *zd = z + offset - d0; /* zd[d]: the standard noise of element d */
            for (int64_t a = d0; a < d1;) { /* one run of a channel at a time */
                int64_t c = a / hw;
                int64_t b = (c + 1) * hw < d1 ? (c + 1) * hw : d1;
                float ns = noise_scale[c], xsc = x_scale[c], xsh = x_shift[c];
                if (has_norm) {
                    for (int64_t d = a; d < b; d++) y[d] = fmaf(zd[d], ns, fmaf(x[d], xsc, xsh));
                } else {
                    for (int64_t d = a; d < b; d++) y[d] = fmaf(zd[d], ns, x[d]);
                }
                a = b;
            }
            d0 = d1;
        }
    }
}

/* The Box-Muller pair of count word pairs (for tests against the Triton kernel's arithmetic). */
void rsengine_box_muller(const uint32_t *w0, const uint32_t *w1, int64_t count, float *z_cos, float *z_sin) {
    for (int64_t i = 0; i < count; i++) box_muller(w0[i], w1[i], &z_cos[i], &z_sin[i]);
}

/* The Laplace or uniform value of count words (for tests against the Triton kernel's arithmetic). */
void rsengine_inverse_cdf(int noise, const uint32_t *w, int64_t count, float *out) {
    for (int64_t i = 0; i < count; i++) out[i] = inverse_cdf(noise, w[i]);
}

/* Sound mode (kernels/sound_noise.py, rsengine/sound.py): elements [first_element, last_element)
 * of a batch of rows, as rsengine_noise_normalize lays them out. Element e = sample * numel + d
 * takes Philox block e / 2, words (c0, c1) for even e and (c2, c3) for odd, u = w_hi 2^32 + w_lo
 * read as int64 u - 2^63; k = -support + #{j : thresholds[j] <= u - 2^63} by the same `steps`
 * halvings as the Triton kernel; u past the last threshold escapes (k taken as 0, escaped[r] = 1).
 * The value is float32(i + k) / 255 (IEEE division), then fma(x, x_scale[c], x_shift[c]) when
 * has_norm (x_scale = 1 / std, x_shift = -mean * x_scale, as the Triton kernel computes them).
 * Each step is a loop over a chunk of elements (arrays, selects, gathers), for the vectorizer. */
static inline int64_t signed_uniform(uint32_t hi, uint32_t lo) {
    uint64_t u = (((uint64_t)(hi ^ 0x80000000u)) << 32) | lo;
    int64_t v;
    memcpy(&v, &u, sizeof v);
    return v;
}

void rsengine_sound_noise_normalize(const int32_t *pixels, const int64_t *streams, const int64_t *thresholds,
                                    int32_t length, int32_t support, int steps, float *out, int32_t *escaped,
                                    int64_t start_owner, int64_t start_sample, int64_t n, int64_t numel, int64_t hw,
                                    int has_norm, const float *x_scale, const float *x_shift, uint32_t key0,
                                    uint32_t key1, uint32_t phase, int64_t first_element, int64_t last_element) {
    uint32_t w0[CHUNK_BLOCKS], w1[CHUNK_BLOCKS], w2[CHUNK_BLOCKS], w3[CHUNK_BLOCKS];
    int64_t v[2 * CHUNK_BLOCKS];
    int32_t count[2 * CHUNK_BLOCKS];
    for (int64_t r = first_element / numel; r * numel < last_element; r++) {
        struct row_span row = row_span(r, start_owner, start_sample, n, numel, first_element, last_element);
        uint64_t first = row.first;
        uint32_t stream = (uint32_t)streams[row.owner];
        const int32_t *x = pixels + row.owner * numel;
        float *y = out + r * numel;
        int64_t d_end = row.d_end, d0 = row.d0;
        int row_escaped = 0;
        while (d0 < d_end) {
            uint64_t e0 = first + (uint64_t)d0;
            int offset = (int)(e0 & 1u); /* lane of element d0 in its Philox block */
            int64_t d1 = d0 + 2 * CHUNK_BLOCKS - offset < d_end ? d0 + 2 * CHUNK_BLOCKS - offset : d_end;
            int blocks = (int)((offset + (d1 - d0) + 1) / 2);
            int elements = 2 * blocks;
            philox_words(e0 >> 1, blocks, stream, phase, key0, key1, w0, w1, w2, w3);
            for (int j = 0; j < blocks; j++) {
                v[2 * j] = signed_uniform(w0[j], w1[j]);
                v[2 * j + 1] = signed_uniform(w2[j], w3[j]);
            }
            for (int i = 0; i < elements; i++) count[i] = 0;
            for (int level = steps - 1; level >= 0; level--) { /* count = #{j : T_j <= v}, branch-free */
                for (int i = 0; i < elements; i++) {
                    int32_t candidate = count[i] + (1 << level);
                    int inside = candidate <= length;
                    int64_t t = thresholds[inside ? candidate - 1 : 0];
                    count[i] = (inside & (t <= v[i])) ? candidate : count[i];
                }
            }
            const int32_t *cd = count + offset - d0; /* cd[d]: the count of element d */
            for (int64_t d = d0; d < d1; d++) row_escaped |= cd[d] == length;
            for (int64_t a = d0; a < d1;) { /* one run of a channel at a time */
                int64_t c = a / hw;
                int64_t b = (c + 1) * hw < d1 ? (c + 1) * hw : d1;
                float xsc = x_scale[c], xsh = x_shift[c];
                for (int64_t d = a; d < b; d++) {
                    float value = (float)(x[d] + (cd[d] == length ? 0 : cd[d] - support)) / 255.0f;
                    y[d] = has_norm ? fmaf(value, xsc, xsh) : value;
                }
                a = b;
            }
            d0 = d1;
        }
        if (row_escaped) __atomic_store_n(&escaped[r], 1, __ATOMIC_RELAXED); /* threads may share a row */
    }
}
