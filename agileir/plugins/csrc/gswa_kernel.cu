/*
 * Fused Group Shifted Window Attention (GSWA) for one head group -- docs/gswa.md is the contract,
 * agileir.models.gswa.gswa the oracle.
 *
 * Mapping: one block per (batch, window) in the *shifted* image, one thread per query token
 * (blockDim.x == window^2: 64 or 256). Nothing is materialised in global memory: the cyclic shift is
 * index arithmetic on the packed NCHW qkv input ((y + s) mod H), the shift mask is computed from
 * coordinates, the relative-position bias is gathered from a shared-memory copy of the table, and the
 * output is written straight back to the un-shifted NCHW position.
 *
 * Per block:
 *   1. Stage the bias table (pre-multiplied by log2 e), the depthwise weights and, per token, its
 *      pixel offset and (shift-region label, bias offset).
 *   2. Depthwise 5x5 conv of q with zero padding at the window border: raw q is staged GSWA_Q_CHUNK
 *      channels at a time in shared memory; every thread convolves its own token into registers
 *      (q pre-multiplied by scale * log2 e, so logits are in base-2 units).
 *   3. Keys/values are staged GSWA_TILE_KEYS tokens at a time, channel-major ([c][key]), so that all
 *      threads read the same float4 (a shared-memory broadcast). Each thread computes GSWA_KEY_GROUP
 *      logits in registers, adds bias + mask, and folds them into an online (running-max) FP32 softmax
 *      and the output accumulator.
 *   4. Normalise and store the v_dim outputs of its token.
 *
 * The key/value dims are template buckets (K, V) in {(16,8), (16,16), (32,8), (32,16), (32,32), (64,32),
 * (64,64)}; a call uses the cheapest bucket covering its dims, the missing channels are zero padded. They
 * are exported as extern "C" kernels gswa_fwd_<f32|f16>_k<K>_v<V>; gswa_fwd_f32 / gswa_fwd_f16 are the
 * generic (64, 64) kernels that handle every supported dim. Kernel signature (the order the TensorRT
 * Quickly-Deployable-Plugin AOT path expects: inputs, int32 scalars, outputs):
 *   (qkv, dw_weight, dw_bias, bias_table, B, C_total, H, W, key_dim, v_dim, window, shift, scale_bits, out)
 * scale_bits is the IEEE-754 bit pattern of the float scale (AOT extra arguments are integers).
 *
 * Compiles with nvcc (host launchers included) and with NVRTC (__CUDACC_RTC__: kernels only; define
 * GSWA_NO_F32 or GSWA_NO_F16 to emit one dtype, GSWA_ONLY_K=<K> GSWA_ONLY_V=<V> to emit one bucket).
 */
#include "gswa_kernel.h"

#define GSWA_LOG2E 1.4426950408889634f

namespace gswa_detail
{

#ifndef GSWA_HOST_EMULATION // csrc/emu/cuda_emu.h provides these for the CPU emulation test
// IEEE binary16 <-> float through PTX cvt, so the file needs no cuda_fp16.h (NVRTC without include paths).
__device__ __forceinline__ float gswa_h2f(unsigned short h)
{
    float f;
    asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h));
    return f;
}

__device__ __forceinline__ unsigned short gswa_f2h(float v)
{
    unsigned short h;
    asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(v));
    return h;
}
#endif

__device__ __forceinline__ float load_f(float const* p)
{
    return __ldg(p);
}

__device__ __forceinline__ float load_f(unsigned short const* p)
{
    return gswa_h2f(__ldg(p));
}

__device__ __forceinline__ void store_f(float* p, float v)
{
    *p = v;
}

__device__ __forceinline__ void store_f(unsigned short* p, float v)
{
    *p = gswa_f2h(v);
}

// Region (0, 1, 2) of coordinate p along an axis of length L of the shifted image (docs/gswa.md, step 5).
__device__ __forceinline__ int shift_region(int p, int L, int w, int s)
{
    return s ? (int) (p >= L - w) + (int) (p >= L - s) : 0;
}

template <typename T, int KMAX, int VMAX>
__device__ __forceinline__ void gswa_body(T const* __restrict__ qkv, float const* __restrict__ dw_weight,
    float const* __restrict__ dw_bias, float const* __restrict__ bias_table, int B, int C_total, int H, int W, int kd,
    int vd, int w, int s, float scale, T* __restrict__ out)
{
    static_assert(GSWA_TILE_KEYS % GSWA_KEY_GROUP == 0, "tile must hold whole key groups");
    static_assert(GSWA_KEY_GROUP % 4 == 0, "key groups are read as float4");
    extern __shared__ float4 gswa_smem4[];
    float* const smem = reinterpret_cast<float*>(gswa_smem4);

    int const N = w * w;
    int const n = threadIdx.x;
    if ((int) blockDim.x != N)
    {
        return; // launched with the wrong block size: see gswa_launch_config
    }
    int const lw = (w == 16) ? 4 : 3; // log2(window); windows are 8 or 16
    int const tw = 2 * w - 1;

    // Shared-memory carve-up; gswa_launch_config / launch.py compute the same total.
    int const qstage = GSWA_Q_CHUNK * N;
    int const kvstage = (KMAX + VMAX) * GSWA_TILE_KEYS;
    float* const tile = smem;
    float* const table_s = tile + (qstage > kvstage ? qstage : kvstage);
    float* const dw_s = table_s + ((tw * tw + 3) & ~3);
    float* const dwb_s = dw_s + ((KMAX * GSWA_DW_TAPS + 3) & ~3);
    int* const info_s = reinterpret_cast<int*>(dwb_s + KMAX);
    int* const pix_s = info_s + N;

    // Which window of which image.
    int const nwx = W >> lw;
    int const nwy = H >> lw;
    int blk = blockIdx.x;
    int const wx = blk % nwx;
    blk /= nwx;
    int const wy = blk % nwy;
    int const b = blk / nwy;
    if (b >= B)
    {
        return;
    }

    // This thread's token: (yn, xn) inside the window, (Y, X) in the shifted image, (Yo, Xo) in the input.
    int const yn = n >> lw;
    int const xn = n & (w - 1);
    int const Y = wy * w + yn;
    int const X = wx * w + xn;
    int Yo = Y + s;
    if (Yo >= H)
        Yo -= H;
    int Xo = X + s;
    if (Xo >= W)
        Xo -= W;
    int const pix = Yo * W + Xo;
    long long const HW = (long long) H * W;
    T const* const qbase = qkv + (long long) b * C_total * HW;
    T const* const kbase = qbase + (long long) kd * HW;
    T const* const vbase = qbase + (long long) (2 * kd) * HW;

    int const label = 3 * shift_region(Y, H, w, s) + shift_region(X, W, w, s);
    info_s[n] = (label << 16) | (yn * tw + xn);
    pix_s[n] = pix;
    for (int i = n; i < tw * tw; i += N)
    {
        table_s[i] = __ldg(bias_table + i) * GSWA_LOG2E;
    }
    bool const has_dw = dw_weight != nullptr;
    if (has_dw)
    {
        for (int i = n; i < KMAX * GSWA_DW_TAPS; i += N)
        {
            dw_s[i] = i < kd * GSWA_DW_TAPS ? __ldg(dw_weight + i) : 0.f;
        }
        for (int i = n; i < KMAX; i += N)
        {
            dwb_s[i] = (dw_bias != nullptr && i < kd) ? __ldg(dw_bias + i) : 0.f;
        }
    }

    // ---- 2. q with the per-window depthwise conv, scaled into base-2 logit units -------------------------
    float const qscale = scale * GSWA_LOG2E;
    float q[KMAX];
#pragma unroll
    for (int c0 = 0; c0 < KMAX; c0 += GSWA_Q_CHUNK)
    {
        if (c0 < kd) // block-uniform
        {
            __syncthreads(); // previous chunk fully consumed
#pragma unroll
            for (int j = 0; j < GSWA_Q_CHUNK; ++j)
            {
                int const c = c0 + j;
                tile[j * N + n] = c < kd ? load_f(qbase + c * HW + pix) : 0.f;
            }
            __syncthreads();
#pragma unroll
            for (int j = 0; j < GSWA_Q_CHUNK; ++j)
            {
                int const c = c0 + j;
                float const* const src = tile + j * N;
                float acc;
                if (has_dw)
                {
                    float const* const wk = dw_s + c * GSWA_DW_TAPS;
                    acc = dwb_s[c];
#pragma unroll 1 // unrolling the taps too multiplies compile time ~3x for no measurable gain
                    for (int ky = 0; ky < 5; ++ky)
                    {
                        int const yy = yn + ky - 2;
                        if (yy < 0 || yy >= w)
                            continue;
#pragma unroll
                        for (int kx = 0; kx < 5; ++kx)
                        {
                            int const xx = xn + kx - 2;
                            if (xx >= 0 && xx < w)
                                acc = fmaf(wk[ky * 5 + kx], src[yy * w + xx], acc);
                        }
                    }
                }
                else
                {
                    acc = src[n];
                }
                q[c] = acc * qscale; // zero for padded channels (zero input, zero weights)
            }
        }
        else
        {
#pragma unroll
            for (int j = 0; j < GSWA_Q_CHUNK; ++j)
                q[c0 + j] = 0.f;
        }
    }

    // ---- 3. attention over key tiles with an online FP32 softmax ---------------------------------------------
    float o[VMAX];
#pragma unroll
    for (int c = 0; c < VMAX; ++c)
        o[c] = 0.f;
    float m_run = -1.0e30f; // running max (finite: logits are bounded, the mask is -100 not -inf)
    float l_run = 0.f;      // running sum of exp2(logit - m_run)
    int const bias_base = (yn + w - 1) * tw + (xn + w - 1);
    float const mask2 = GSWA_MASK_VALUE * GSWA_LOG2E;
    float const* const Ks = tile;                           // [KMAX][TILE]
    float const* const Vs = tile + KMAX * GSWA_TILE_KEYS;   // [VMAX][TILE]

    for (int t0 = 0; t0 < N; t0 += GSWA_TILE_KEYS)
    {
        __syncthreads(); // tile free (q staging or the previous key tile is done)
        for (int e = n; e < (KMAX + VMAX) * GSWA_TILE_KEYS; e += N)
        {
            int const c = e / GSWA_TILE_KEYS;
            int const j = e - c * GSWA_TILE_KEYS;
            int const p = pix_s[t0 + j];
            float val = 0.f;
            if (c < KMAX)
            {
                if (c < kd)
                    val = load_f(kbase + c * HW + p);
            }
            else if (c - KMAX < vd)
            {
                val = load_f(vbase + (c - KMAX) * HW + p);
            }
            tile[e] = val;
        }
        __syncthreads();

#pragma unroll 1
        for (int g = 0; g < GSWA_TILE_KEYS; g += GSWA_KEY_GROUP)
        {
            float sc[GSWA_KEY_GROUP];
#pragma unroll
            for (int jj = 0; jj < GSWA_KEY_GROUP; ++jj)
                sc[jj] = 0.f;
#pragma unroll
            for (int c = 0; c < KMAX; ++c)
            {
                float4 const* const kr = reinterpret_cast<float4 const*>(Ks + c * GSWA_TILE_KEYS + g);
                float const qc = q[c];
#pragma unroll
                for (int v4 = 0; v4 < GSWA_KEY_GROUP / 4; ++v4)
                {
                    float4 const kk = kr[v4];
                    sc[4 * v4 + 0] = fmaf(qc, kk.x, sc[4 * v4 + 0]);
                    sc[4 * v4 + 1] = fmaf(qc, kk.y, sc[4 * v4 + 1]);
                    sc[4 * v4 + 2] = fmaf(qc, kk.z, sc[4 * v4 + 2]);
                    sc[4 * v4 + 3] = fmaf(qc, kk.w, sc[4 * v4 + 3]);
                }
            }
            float gmax = m_run;
#pragma unroll
            for (int jj = 0; jj < GSWA_KEY_GROUP; ++jj)
            {
                int const info = info_s[t0 + g + jj];
                float a = sc[jj] + table_s[bias_base - (info & 0xffff)];
                if ((info >> 16) != label)
                    a += mask2;
                sc[jj] = a;
                gmax = fmaxf(gmax, a);
            }
            float const corr = exp2f(m_run - gmax);
            m_run = gmax;
            l_run *= corr;
#pragma unroll
            for (int c = 0; c < VMAX; ++c)
                o[c] *= corr;
#pragma unroll
            for (int jj = 0; jj < GSWA_KEY_GROUP; ++jj)
            {
                float const pj = exp2f(sc[jj] - gmax);
                l_run += pj;
                sc[jj] = pj;
            }
#pragma unroll
            for (int c = 0; c < VMAX; ++c)
            {
                float4 const* const vr = reinterpret_cast<float4 const*>(Vs + c * GSWA_TILE_KEYS + g);
                float acc = o[c];
#pragma unroll
                for (int v4 = 0; v4 < GSWA_KEY_GROUP / 4; ++v4)
                {
                    float4 const vv = vr[v4];
                    acc = fmaf(sc[4 * v4 + 0], vv.x, acc);
                    acc = fmaf(sc[4 * v4 + 1], vv.y, acc);
                    acc = fmaf(sc[4 * v4 + 2], vv.z, acc);
                    acc = fmaf(sc[4 * v4 + 3], vv.w, acc);
                }
                o[c] = acc;
            }
        }
    }

    // ---- 4. normalise and write back to the un-shifted pixel -----------------------------------------------
    float const inv = 1.f / l_run;
    T* const obase = out + (long long) b * vd * HW + pix;
#pragma unroll
    for (int c = 0; c < VMAX; ++c)
    {
        if (c < vd)
            store_f(obase + c * HW, o[c] * inv);
    }
}

} // namespace gswa_detail

#define GSWA_KERNEL(NAME, T, KM, VM)                                                                                 \
    extern "C" __global__ void __launch_bounds__(256) NAME(T const* __restrict__ qkv,                                \
        float const* __restrict__ dw_weight, float const* __restrict__ dw_bias, float const* __restrict__ bias_table, \
        int B, int C_total, int H, int W, int key_dim, int v_dim, int window, int shift, int scale_bits,             \
        T* __restrict__ out)                                                                                         \
    {                                                                                                                \
        gswa_detail::gswa_body<T, KM, VM>(qkv, dw_weight, dw_bias, bias_table, B, C_total, H, W, key_dim, v_dim,     \
            window, shift, __int_as_float(scale_bits), out);                                                         \
    }

#ifndef GSWA_NO_F32
#define GSWA_KERNEL_F32(NAME, KM, VM) GSWA_KERNEL(NAME, float, KM, VM)
#else
#define GSWA_KERNEL_F32(NAME, KM, VM)
#endif
#ifndef GSWA_NO_F16
#define GSWA_KERNEL_F16(NAME, KM, VM) GSWA_KERNEL(NAME, unsigned short, KM, VM)
#else
#define GSWA_KERNEL_F16(NAME, KM, VM)
#endif

/* GSWA_ONLY_K / GSWA_ONLY_V (NVRTC builds) keep a single bucket, so a plugin node embeds one small kernel. */
#ifdef GSWA_ONLY_K
#define GSWA_WANT(K, V) (GSWA_ONLY_K == (K) && GSWA_ONLY_V == (V))
#else
#define GSWA_WANT(K, V) 1
#endif

/* Buckets (key dim, value dim), cheapest first; a call uses the first bucket that covers its dims. Keep in
 * sync with kBuckets below and BUCKETS in agileir/plugins/launch.py. */
#if GSWA_WANT(16, 8)
GSWA_KERNEL_F32(gswa_fwd_f32_k16_v8, 16, 8)
GSWA_KERNEL_F16(gswa_fwd_f16_k16_v8, 16, 8)
#endif
#if GSWA_WANT(16, 16)
GSWA_KERNEL_F32(gswa_fwd_f32_k16_v16, 16, 16)
GSWA_KERNEL_F16(gswa_fwd_f16_k16_v16, 16, 16)
#endif
#if GSWA_WANT(32, 8)
GSWA_KERNEL_F32(gswa_fwd_f32_k32_v8, 32, 8)
GSWA_KERNEL_F16(gswa_fwd_f16_k32_v8, 32, 8)
#endif
#if GSWA_WANT(32, 16)
GSWA_KERNEL_F32(gswa_fwd_f32_k32_v16, 32, 16)
GSWA_KERNEL_F16(gswa_fwd_f16_k32_v16, 32, 16)
#endif
#if GSWA_WANT(32, 32)
GSWA_KERNEL_F32(gswa_fwd_f32_k32_v32, 32, 32)
GSWA_KERNEL_F16(gswa_fwd_f16_k32_v32, 32, 32)
#endif
#if GSWA_WANT(64, 32)
GSWA_KERNEL_F32(gswa_fwd_f32_k64_v32, 64, 32)
GSWA_KERNEL_F16(gswa_fwd_f16_k64_v32, 64, 32)
#endif
#if GSWA_WANT(64, 64)
GSWA_KERNEL_F32(gswa_fwd_f32, 64, 64) /* generic: every supported dim */
GSWA_KERNEL_F16(gswa_fwd_f16, 64, 64)
#endif

/* ------------------------------------------------------------------------------------------------------------
 * Host side (nvcc only): launch configuration and the plain C launchers used by the TensorRT plugin.
 * ---------------------------------------------------------------------------------------------------------- */
#if !defined(__CUDACC_RTC__) && !defined(GSWA_HOST_EMULATION)
#if defined(GSWA_NO_F32) || defined(GSWA_NO_F16) || defined(GSWA_ONLY_K)
#error "the host launchers need every kernel; GSWA_NO_F32 / GSWA_NO_F16 / GSWA_ONLY_K are for NVRTC PTX builds"
#endif

#include <string.h>

namespace
{

typedef void (*KernelF32)(float const*, float const*, float const*, float const*, int, int, int, int, int, int, int,
    int, int, float*);
typedef void (*KernelF16)(unsigned short const*, float const*, float const*, float const*, int, int, int, int, int,
    int, int, int, int, unsigned short*);

struct Bucket
{
    int kmax;
    int vmax;
    char const* name_f32;
    char const* name_f16;
    KernelF32 kernel_f32;
    KernelF16 kernel_f16;
};

// Cheapest first (cost ~ kmax + vmax); the first bucket covering (key_dim, v_dim) is used.
Bucket const kBuckets[] = {
    {16, 8, "gswa_fwd_f32_k16_v8", "gswa_fwd_f16_k16_v8", gswa_fwd_f32_k16_v8, gswa_fwd_f16_k16_v8},
    {16, 16, "gswa_fwd_f32_k16_v16", "gswa_fwd_f16_k16_v16", gswa_fwd_f32_k16_v16, gswa_fwd_f16_k16_v16},
    {32, 8, "gswa_fwd_f32_k32_v8", "gswa_fwd_f16_k32_v8", gswa_fwd_f32_k32_v8, gswa_fwd_f16_k32_v8},
    {32, 16, "gswa_fwd_f32_k32_v16", "gswa_fwd_f16_k32_v16", gswa_fwd_f32_k32_v16, gswa_fwd_f16_k32_v16},
    {32, 32, "gswa_fwd_f32_k32_v32", "gswa_fwd_f16_k32_v32", gswa_fwd_f32_k32_v32, gswa_fwd_f16_k32_v32},
    {64, 32, "gswa_fwd_f32_k64_v32", "gswa_fwd_f16_k64_v32", gswa_fwd_f32_k64_v32, gswa_fwd_f16_k64_v32},
    {64, 64, "gswa_fwd_f32", "gswa_fwd_f16", gswa_fwd_f32, gswa_fwd_f16},
};
int const kNumBuckets = (int) (sizeof(kBuckets) / sizeof(kBuckets[0]));

Bucket const* pick_bucket(int key_dim, int v_dim)
{
    for (int i = 0; i < kNumBuckets; ++i)
    {
        if (key_dim <= kBuckets[i].kmax && v_dim <= kBuckets[i].vmax)
            return &kBuckets[i];
    }
    return nullptr;
}

// Dynamic shared memory of one block; mirrors the carve-up at the top of gswa_body.
unsigned int shared_bytes(int window, int kmax, int vmax)
{
    int const n = window * window;
    int const tw = 2 * window - 1;
    int const qstage = GSWA_Q_CHUNK * n;
    int const kvstage = (kmax + vmax) * GSWA_TILE_KEYS;
    int floats = (qstage > kvstage ? qstage : kvstage);
    floats += (tw * tw + 3) & ~3;                  // bias table
    floats += (kmax * GSWA_DW_TAPS + 3) & ~3;      // depthwise weights
    floats += kmax;                                // depthwise bias
    floats += 2 * n;                               // per-token (label, bias offset) and pixel offset (int32)
    return (unsigned int) floats * 4u;
}

} // namespace

extern "C" int gswa_launch_config(int is_half, int B, int C_total, int H, int W, int key_dim, int v_dim, int window,
    int shift, GswaLaunchConfig* cfg)
{
    if (window != 8 && window != 16)
        return GSWA_ERR_WINDOW;
    if (shift < 0 || shift >= window)
        return GSWA_ERR_SHIFT;
    if (key_dim < 1 || key_dim > GSWA_MAX_KEY_DIM || v_dim < 1 || v_dim > GSWA_MAX_V_DIM
        || C_total != 2 * key_dim + v_dim)
        return GSWA_ERR_DIMS;
    if (B < 0 || H < window || W < window || H % window != 0 || W % window != 0)
        return GSWA_ERR_SHAPE;
    long long const blocks = (long long) B * (H / window) * (W / window);
    if (blocks > 2147483647LL || (long long) H * W > 2147483647LL)
        return GSWA_ERR_GRID;
    Bucket const* const bk = pick_bucket(key_dim, v_dim);
    if (bk == nullptr)
        return GSWA_ERR_DIMS;
    unsigned int const smem = shared_bytes(window, bk->kmax, bk->vmax);
    if (smem > GSWA_SMEM_LIMIT)
        return GSWA_ERR_SMEM;
    if (cfg != NULL)
    {
        cfg->grid_x = (unsigned int) blocks;
        cfg->block_x = (unsigned int) (window * window);
        cfg->shared_bytes = smem;
        cfg->kmax = bk->kmax;
        cfg->vmax = bk->vmax;
        cfg->kernel_name = is_half ? bk->name_f16 : bk->name_f32;
    }
    return GSWA_OK;
}

extern "C" char const* gswa_status_string(int status)
{
    switch (status)
    {
    case GSWA_OK: return "ok";
    case GSWA_ERR_WINDOW: return "window must be 8 or 16";
    case GSWA_ERR_SHIFT: return "shift must be in [0, window)";
    case GSWA_ERR_DIMS: return "key_dim and v_dim must be in [1, 64] and C_total == 2*key_dim + v_dim";
    case GSWA_ERR_SHAPE: return "H and W must be positive multiples of the window (and B >= 0)";
    case GSWA_ERR_GRID: return "too many windows / pixels for one launch";
    case GSWA_ERR_SMEM: return "shared memory request over the 48 KiB limit";
    case GSWA_ERR_CUDA: return "CUDA kernel launch failed";
    default: return "unknown GSWA status";
    }
}

static int scale_to_bits(float scale)
{
    int bits;
    memcpy(&bits, &scale, sizeof(bits));
    return bits;
}

extern "C" int gswa_forward_f32(float const* qkv, float const* dw_weight, float const* dw_bias,
    float const* bias_table, float* out, int B, int C_total, int H, int W, int key_dim, int v_dim, int window,
    int shift, float scale, cudaStream_t stream)
{
    GswaLaunchConfig cfg;
    int const st = gswa_launch_config(0, B, C_total, H, W, key_dim, v_dim, window, shift, &cfg);
    if (st != GSWA_OK || cfg.grid_x == 0)
        return st;
    KernelF32 const kernel = pick_bucket(key_dim, v_dim)->kernel_f32;
    kernel<<<cfg.grid_x, cfg.block_x, cfg.shared_bytes, stream>>>(qkv, dw_weight, dw_bias, bias_table, B, C_total,
        H, W, key_dim, v_dim, window, shift, scale_to_bits(scale), out);
    return cudaGetLastError() == cudaSuccess ? GSWA_OK : GSWA_ERR_CUDA;
}

extern "C" int gswa_forward_f16(void const* qkv, float const* dw_weight, float const* dw_bias,
    float const* bias_table, void* out, int B, int C_total, int H, int W, int key_dim, int v_dim, int window,
    int shift, float scale, cudaStream_t stream)
{
    GswaLaunchConfig cfg;
    int const st = gswa_launch_config(1, B, C_total, H, W, key_dim, v_dim, window, shift, &cfg);
    if (st != GSWA_OK || cfg.grid_x == 0)
        return st;
    KernelF16 const kernel = pick_bucket(key_dim, v_dim)->kernel_f16;
    kernel<<<cfg.grid_x, cfg.block_x, cfg.shared_bytes, stream>>>(static_cast<unsigned short const*>(qkv),
        dw_weight, dw_bias, bias_table, B, C_total, H, W, key_dim, v_dim, window, shift, scale_to_bits(scale),
        static_cast<unsigned short*>(out));
    return cudaGetLastError() == cudaSuccess ? GSWA_OK : GSWA_ERR_CUDA;
}

#endif /* !__CUDACC_RTC__ && !GSWA_HOST_EMULATION */
