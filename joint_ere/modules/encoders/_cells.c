/*
 * Fused element-wise steps of the PFN and SRN cells (float32, CPU), for joint_ere.modules.encoders.recurrent.
 *
 * Each time step of a recurrent encoder is two matrix products (run by torch through oneDNN) and the cell's
 * element-wise algebra. Written as torch operators that algebra is 30-60 small operator calls per step, whose
 * fixed costs dominate at the papers' sizes; here it is one loop over batch x hidden per stage. The Python
 * methods of PartitionFilterCell and SelectionCell are the specification and the tests' oracle: this file
 * must compute the same numbers (tests/modules/test_encoders.py compares them).
 *
 * The functions take raw addresses (torch's data_ptr()) of contiguous float32 buffers; the Python side checks
 * dtype, device and layout before calling. No torch headers, so the extension compiles in about a second.
 *
 * Layouts, per batch row (H = hidden size, k = tasks, M = memories):
 *   pfn: gates/activations [c_hat | entity, relation logits of c_{t-1} | entity, relation logits of c_hat],
 *        5H; memories [rho_e | rho_r | rho_s], 3H.
 *   srn: gates/activations [f | o | k master gates of c_hat | k master gates of c_tilde | c_hat], (3 + 2k)H;
 *        memories M = 2^k - 1 blocks of H in task_subsets() order; codes[j * M + m] says which factor task j
 *        contributes to memory m's gate: 0 = rho_j, 1 = 1 - rho_j, 2 = 1 (eqs. 4-5).
 *   both: representations = tanh(memories), laid out like the memories (the encoder's outputs, eq. 10).
 * The Python cells keep raw logits (pfn) and activated gates in ``activations``; so does this file.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define KIND_PFN 0
#define KIND_SRN 1
#define MAX_TASKS 4
#define MAX_MEMORIES 15

/* The loops below vectorise; on x86-64 Linux with GCC each worker is also compiled for AVX2 + FMA and picked
 * at load time (about 2x faster on the development machine). */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__) && __GNUC__ >= 11
#define VECTORISED __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define VECTORISED
#endif

typedef struct {
    int kind;
    Py_ssize_t hidden;
    int tasks, memories;
    const char *codes;
} Shape;

/* exp(x) within 1 ulp (measured on [-87, 88] in steps of 0.001), written so that the compiler vectorises the
 * loops that call it (libm's expf is a scalar call): x = n ln 2 + r with |r| <= ln 2 / 2, a degree-6 polynomial
 * for exp(r), then 2^n in the exponent bits. Inputs are clamped to [-87, 88], where expf is finite and normal. */
static inline float exp_approx(float x) {
    x = x < -87.0f ? -87.0f : x;  /* written so that a NaN passes through (and propagates, as torch's would) */
    x = x > 88.0f ? 88.0f : x;
    const float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;  /* round to nearest */
    const float r = x - n * 0.693359375f + n * 2.12194440e-4f;  /* ln 2 in two parts */
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    const int32_t bits = ((int32_t)n + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

static inline float sigmoid(float x) { return 1.0f / (1.0f + exp_approx(-x)); }

/* tanh(x) = 2 sigmoid(2x) - 1: absolute error below 2e-7, which is all a network needs. */
static inline float tanh_approx(float x) { return 2.0f / (1.0f + exp_approx(-2.0f * x)) - 1.0f; }

static inline Py_ssize_t gate_width(const Shape *s) {
    return s->kind == KIND_PFN ? 5 * s->hidden : (3 + 2 * s->tasks) * s->hidden;
}

/* out[i] = sigmoid or tanh of a[i] + b[i] */
static inline void sigmoid_sum(const float *restrict a, const float *restrict b, float *restrict out, Py_ssize_t n) {
    for (Py_ssize_t i = 0; i < n; i++) out[i] = sigmoid(a[i] + b[i]);
}

static inline void tanh_sum(const float *restrict a, const float *restrict b, float *restrict out, Py_ssize_t n) {
    for (Py_ssize_t i = 0; i < n; i++) out[i] = tanh_approx(a[i] + b[i]);
}

/* dL/d memories: through the representations' tanh (eq. 10), plus the cell-update product's part. */
static inline void memory_gradient(const float *restrict grad_representation, const float *restrict representation,
                                   const float *restrict grad_update, Py_ssize_t n, float *restrict out) {
    for (Py_ssize_t i = 0; i < n; i++)
        out[i] = grad_representation[i] * (1.0f - representation[i] * representation[i]) + grad_update[i];
}

/* ---------------------------------------------------------------- pfn */

/* The four partition gates before their 1 - x (pfn.py, partitions): for each logit row n of the activations
 * (entity and relation of c_{t-1}, entity and relation of c_hat), its softmax ``prob[n]`` and the running sum
 * ``cum[n]`` (ON-LSTM's cummax). The four running sums share one loop, so their additions overlap. */
static inline void pfn_partitions(const float *restrict logits, Py_ssize_t H, float *restrict prob,
                                  float *restrict cum) {
    for (int n = 0; n < 4; n++) {
        const float *x = logits + n * H;
        float *p = prob + n * H, top = x[0], total = 0.0f;
#pragma omp simd reduction(max : top)
        for (Py_ssize_t i = 0; i < H; i++) top = x[i] > top ? x[i] : top;
        for (Py_ssize_t i = 0; i < H; i++) p[i] = exp_approx(x[i] - top);
#pragma omp simd reduction(+ : total)
        for (Py_ssize_t i = 0; i < H; i++) total += p[i];
        const float inverse = 1.0f / total;
        for (Py_ssize_t i = 0; i < H; i++) p[i] *= inverse;
    }
    float running[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    for (Py_ssize_t i = 0; i < H; i++)
        for (int n = 0; n < 4; n++) cum[n * H + i] = (running[n] += prob[n * H + i]);
}

/* activations = [tanh(c_hat), raw logits]; memories rho_e, rho_r, rho_s (pfn.py, activate + select). */
VECTORISED static void pfn_select(const Shape *s, float *const *row, float *restrict scratch) {
    const float *restrict p = row[0], *restrict r = row[1], *restrict c = row[2];
    float *restrict a = row[3], *restrict m = row[4], *restrict representation = row[5];
    const Py_ssize_t H = s->hidden;
    float *cum = scratch + 4 * H;
    tanh_sum(p, r, a, H);
    for (Py_ssize_t i = H; i < 5 * H; i++) a[i] = p[i] + r[i];
    pfn_partitions(a + H, H, scratch, cum);
    for (Py_ssize_t i = 0; i < H; i++) {
        const float e0 = 1.0f - cum[i], r0 = cum[H + i], s0 = e0 * r0;  /* the gates of c_{t-1} */
        const float e1 = 1.0f - cum[2 * H + i], r1 = cum[3 * H + i], s1 = e1 * r1;  /* the gates of c_hat */
        const float shared = s0 * c[i] + s1 * a[i];
        m[i] = (e0 - s0) * c[i] + (e1 - s1) * a[i] + shared;
        m[H + i] = (r0 - s0) * c[i] + (r1 - s1) * a[i] + shared;
        m[2 * H + i] = shared;
    }
    for (Py_ssize_t i = 0; i < 3 * H; i++) representation[i] = tanh_approx(m[i]);
}

VECTORISED static void pfn_select_backward(const Shape *s, float *const *row, float *restrict scratch) {
    const float *restrict gu = row[2], *restrict a = row[3], *restrict c = row[4];
    float *restrict gg = row[5], *restrict grad_cell = row[6];
    const Py_ssize_t H = s->hidden;
    float *prob = scratch, *cum = scratch + 4 * H, *grad_logits = gg + H, *gm = scratch + 8 * H;
    memory_gradient(row[0], row[1], gu, 3 * H, gm);
    pfn_partitions(a + H, H, prob, cum);
    for (Py_ssize_t i = 0; i < H; i++) {
        const float g_e = gm[i], g_r = gm[H + i];
        const float g_s = g_e + g_r + gm[2 * H + i];  /* rho_s also flows into rho_e and rho_r */
        for (int x = 0; x < 2; x++) {  /* x = 0: the partition of c_{t-1}, x = 1: that of c_hat */
            const float e = 1.0f - cum[2 * x * H + i], r = cum[(2 * x + 1) * H + i], shared = e * r;
            const float state = x == 0 ? c[i] : a[i];
            const float grad_state = g_e * (e - shared) + g_r * (r - shared) + g_s * shared;
            const float d_e_only = g_e * state, d_r_only = g_r * state, d_shared = g_s * state;
            const float coupled = d_e_only + d_r_only - d_shared;
            grad_logits[2 * x * H + i] = r * coupled - d_e_only;  /* d cumsum of the entity softmax (e = 1 - it) */
            grad_logits[(2 * x + 1) * H + i] = d_r_only - e * coupled;
            if (x == 0)
                grad_cell[i] = grad_state;
            else
                gg[i] = grad_state * (1.0f - a[i] * a[i]);  /* through c_hat's tanh */
        }
    }
    /* cumsum's backward is a suffix sum (the four share one loop); then softmax's: p * (g - sum(g * p)). */
    float running[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    for (Py_ssize_t i = H - 1; i >= 0; i--)
        for (int n = 0; n < 4; n++) grad_logits[n * H + i] = (running[n] += grad_logits[n * H + i]);
    for (int n = 0; n < 4; n++) {
        float *g = grad_logits + n * H, dot = 0.0f;
        const float *q = prob + n * H;
#pragma omp simd reduction(+ : dot)
        for (Py_ssize_t i = 0; i < H; i++) dot += g[i] * q[i];
        for (Py_ssize_t i = 0; i < H; i++) g[i] = q[i] * (g[i] - dot);
    }
}

/* ---------------------------------------------------------------- srn */

/* gate[i] *= the factor task j gives memory m (eqs. 4-5): rho_j, 1 - rho_j or 1. */
static inline void srn_multiply_factor(const Shape *s, int j, int m, const float *restrict rho, float *restrict gate) {
    const char code = s->codes[j * s->memories + m];
    if (code == 0)
        for (Py_ssize_t i = 0; i < s->hidden; i++) gate[i] *= rho[i];
    else if (code == 1)
        for (Py_ssize_t i = 0; i < s->hidden; i++) gate[i] *= 1.0f - rho[i];
}

/* The gate of memory m from the master gates ``masters`` (k rows of H), leaving task ``skip``'s factor out. */
static inline void srn_gate(const Shape *s, int m, int skip, const float *restrict masters, float *restrict gate) {
    for (Py_ssize_t i = 0; i < s->hidden; i++) gate[i] = 1.0f;
    for (int j = 0; j < s->tasks; j++)
        if (j != skip) srn_multiply_factor(s, j, m, masters + j * s->hidden, gate);
}

VECTORISED static void srn_select(const Shape *s, float *const *row, float *restrict scratch) {
    const float *restrict p = row[0], *restrict r = row[1], *restrict c = row[2];
    float *restrict a = row[3], *restrict mem = row[4], *restrict representation = row[5];
    const Py_ssize_t H = s->hidden, width = gate_width(s);
    const int k = s->tasks;
    float *history = scratch, *gate_hat = scratch + H, *gate_tilde = scratch + 2 * H;
    const float *candidate = a + width - H;
    sigmoid_sum(p, r, a, width - H);  /* eqs. 1, 3 */
    tanh_sum(p + width - H, r + width - H, a + width - H, H);
    for (Py_ssize_t i = 0; i < H; i++) history[i] = a[i] * c[i];  /* eq. 2 */
    for (int m = 0; m < s->memories; m++) {
        srn_gate(s, m, -1, a + 2 * H, gate_hat);
        srn_gate(s, m, -1, a + (2 + k) * H, gate_tilde);
        for (Py_ssize_t i = 0; i < H; i++)  /* eqs. 6-7 */
            mem[m * H + i] = gate_hat[i] * candidate[i] + gate_tilde[i] * history[i];
    }
    for (Py_ssize_t i = 0; i < s->memories * H; i++) representation[i] = tanh_approx(mem[i]);  /* eq. 10 */
}

VECTORISED static void srn_select_backward(const Shape *s, float *const *row, float *restrict scratch) {
    const float *restrict a = row[3], *restrict c = row[4];
    float *restrict gg = row[5], *restrict grad_cell = row[6];
    const Py_ssize_t H = s->hidden, width = gate_width(s);
    const int k = s->tasks, M = s->memories;
    float *grad = scratch, *gate = scratch + M * H, *grad_state = scratch + (M + 1) * H;
    float *grad_master = scratch + (M + 2) * H, *history = scratch + (M + 3) * H;
    const float *candidate = a + width - H;
    memory_gradient(row[0], row[1], row[2], M * H, grad);
    for (Py_ssize_t i = 0; i < H; i++) history[i] = a[i] * c[i];
    for (int d = 0; d < 2; d++) {  /* d = 0: the gates of c_hat, d = 1: the gates of c_tilde */
        const float *masters = a + (2 + d * k) * H, *state = d == 0 ? candidate : history;
        for (Py_ssize_t i = 0; i < H; i++) grad_state[i] = 0.0f;
        for (int m = 0; m < M; m++) {
            srn_gate(s, m, -1, masters, gate);
            for (Py_ssize_t i = 0; i < H; i++) grad_state[i] += grad[m * H + i] * gate[i];
        }
        for (int j = 0; j < k; j++) {  /* product rule: d gate_m / d rho_j = +-(the other factors) */
            for (Py_ssize_t i = 0; i < H; i++) grad_master[i] = 0.0f;
            for (int m = 0; m < M; m++) {
                const char code = s->codes[j * M + m];
                if (code == 2) continue;
                const float sign = code == 0 ? 1.0f : -1.0f;
                srn_gate(s, m, j, masters, gate);
                for (Py_ssize_t i = 0; i < H; i++) grad_master[i] += sign * grad[m * H + i] * gate[i];
            }
            const float *rho = masters + j * H;
            float *out = gg + (2 + d * k + j) * H;
            for (Py_ssize_t i = 0; i < H; i++) out[i] = grad_master[i] * state[i] * rho[i] * (1.0f - rho[i]);
        }
        if (d == 0) {
            for (Py_ssize_t i = 0; i < H; i++)  /* d c_hat, through its tanh */
                gg[width - H + i] = grad_state[i] * (1.0f - candidate[i] * candidate[i]);
        } else {
            for (Py_ssize_t i = 0; i < H; i++) {
                gg[i] = grad_state[i] * c[i] * a[i] * (1.0f - a[i]);  /* d f_t, through its sigmoid */
                grad_cell[i] = grad_state[i] * a[i];
            }
        }
    }
}

/* c_t = the cell-update product u; h_t = tanh(c_t) (pfn) or o_t * tanh(c_t) (srn, eq. 9). */
VECTORISED static void output(const Shape *s, float *const *row, float *restrict scratch) {
    const float *restrict u = row[0], *restrict o = row[1] + s->hidden;
    float *restrict c = row[2], *restrict h = row[3];
    for (Py_ssize_t i = 0; i < s->hidden; i++) c[i] = u[i];
    if (s->kind == KIND_PFN)
        for (Py_ssize_t i = 0; i < s->hidden; i++) h[i] = tanh_approx(u[i]);
    else
        for (Py_ssize_t i = 0; i < s->hidden; i++) h[i] = o[i] * tanh_approx(u[i]);
}

/* dL/dc_t = dL/dc_t from step t + 1 + dL/dh_t dh_t/dc_t; for srn also d o_t, through its sigmoid. */
VECTORISED static void output_backward(const Shape *s, float *const *row, float *restrict scratch) {
    const float *restrict gh = row[0], *restrict c = row[1], *restrict o = row[2] + s->hidden, *restrict gn = row[3];
    float *restrict gc = row[4], *restrict go = row[5] + s->hidden;
    if (s->kind == KIND_PFN) {
        for (Py_ssize_t i = 0; i < s->hidden; i++) {
            const float squashed = tanh_approx(c[i]);
            gc[i] = gn[i] + gh[i] * (1.0f - squashed * squashed);
        }
    } else {
        for (Py_ssize_t i = 0; i < s->hidden; i++) {
            const float squashed = tanh_approx(c[i]);
            go[i] = gh[i] * squashed * o[i] * (1.0f - o[i]);
            gc[i] = gn[i] + gh[i] * o[i] * (1.0f - squashed * squashed);
        }
    }
}

/* scratch floats per call */
static Py_ssize_t scratch_size(const Shape *s) {
    return s->kind == KIND_PFN ? 11 * s->hidden : (s->memories + 4) * s->hidden;
}

/* ---------------------------------------------------------------- entry points */

static int parse_shape(PyObject *kind_codes, Py_ssize_t hidden, Shape *s) {
    const char *codes;
    Py_ssize_t length;
    int kind, tasks;
    if (!PyArg_ParseTuple(kind_codes, "iiy#", &kind, &tasks, &codes, &length)) return 0;
    s->kind = kind;
    s->hidden = hidden;
    s->tasks = tasks;
    s->memories = kind == KIND_PFN ? 3 : (1 << tasks) - 1;
    s->codes = codes;
    if (hidden < 1 || (kind != KIND_PFN && !(kind == KIND_SRN && tasks >= 1 && tasks <= MAX_TASKS
                                             && length == (Py_ssize_t)tasks * s->memories))) {
        PyErr_SetString(PyExc_ValueError, "_cells: unknown cell (kind, tasks, codes) or hidden size");
        return 0;
    }
    return 1;
}

typedef void (*RowWorker)(const Shape *s, float *const *row, float *restrict scratch);

/* Parses (cell, batch, hidden, address...) and runs the cell's worker on every batch row. ``layout`` names each
 * buffer's row size: g = the gates, h = hidden, m = all memories. */
static PyObject *run_rows(PyObject *args, const char *format, const char *layout, RowWorker pfn, RowWorker srn) {
    PyObject *kind_codes;
    Py_ssize_t batch, hidden;
    unsigned long long address[7] = {0, 0, 0, 0, 0, 0, 0};
    Shape s;
    if (!PyArg_ParseTuple(args, format, &kind_codes, &batch, &hidden, &address[0], &address[1], &address[2],
                          &address[3], &address[4], &address[5], &address[6]) || !parse_shape(kind_codes, hidden, &s))
        return NULL;
    const int count = (int)strlen(layout);
    Py_ssize_t size[7];
    for (int n = 0; n < count; n++)
        size[n] = layout[n] == 'g' ? gate_width(&s) : (layout[n] == 'm' ? s.memories * hidden : hidden);
    float *scratch = malloc(scratch_size(&s) * sizeof(float));
    if (!scratch) return PyErr_NoMemory();
    const RowWorker worker = s.kind == KIND_PFN ? pfn : srn;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t b = 0; b < batch; b++) {
        float *row[7];
        for (int n = 0; n < count; n++) row[n] = (float *)(uintptr_t)address[n] + b * size[n];
        worker(&s, row, scratch);
    }
    Py_END_ALLOW_THREADS
    free(scratch);
    Py_RETURN_NONE;
}

/* (projected x_t, h_{t-1} product, c_{t-1}) -> (activations, memories, representations = tanh(memories)) */
static PyObject *forward_select(PyObject *self, PyObject *args) {
    return run_rows(args, "OnnKKKKKK", "gghgmm", pfn_select, srn_select);
}

/* (cell-update product, activations) -> (c_t, h_t) */
static PyObject *forward_output(PyObject *self, PyObject *args) {
    return run_rows(args, "OnnKKKK", "hghh", output, output);
}

/* (dL/dh_t, c_t, activations, dL/dc_t from step t + 1) -> (dL/dc_t, and d o_t in dL/d gates) */
static PyObject *backward_output(PyObject *self, PyObject *args) {
    return run_rows(args, "OnnKKKKKK", "hhghhg", output_backward, output_backward);
}

/* (dL/d representations, representations, the cell-update product's part of dL/d memories, activations,
 *  c_{t-1}) -> (dL/d gates, dL/dc_{t-1}) */
static PyObject *backward_select(PyObject *self, PyObject *args) {
    return run_rows(args, "OnnKKKKKKK", "mmmghgh", pfn_select_backward, srn_select_backward);
}

static PyMethodDef methods[] = {
    {"forward_select", forward_select, METH_VARARGS, "gates -> activations and memories of one step"},
    {"forward_output", forward_output, METH_VARARGS, "cell update -> c_t and h_t of one step"},
    {"backward_output", backward_output, METH_VARARGS, "dL/dh_t -> dL/dc_t (and d o_t) of one step"},
    {"backward_select", backward_select, METH_VARARGS, "dL/d memories -> dL/d gates and dL/dc_{t-1}"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_cells", "Fused element-wise steps of the PFN and "
                                    "SRN cells (float32, CPU).", -1, methods};

PyMODINIT_FUNC PyInit__cells(void) { return PyModule_Create(&module); }
