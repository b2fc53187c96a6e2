/*
 * Fused Group Shifted Window Attention (GSWA) kernel: shared constants and the plain C host API.
 *
 * The op contract is docs/gswa.md; the oracle is agileir.models.gswa.gswa. One CUDA block handles one
 * (batch, window) of one head group; one thread owns one query token of that window.
 *
 * The constants below are mirrored by agileir/plugins/launch.py (a test checks they agree), so the
 * Quickly-Deployable Plugin, the cuda-python test and the C++ plugin launch the kernels identically.
 *
 * This header is also read by NVRTC when the .cu is compiled to PTX; everything host-only is guarded by
 * __CUDACC_RTC__ (and GSWA_HOST_EMULATION, the CPU emulation build in csrc/emu/).
 */
#ifndef AGILEIR_GSWA_KERNEL_H
#define AGILEIR_GSWA_KERNEL_H

#define GSWA_MAX_KEY_DIM 64   /* largest key dim (Ck) a kernel handles */
#define GSWA_MAX_V_DIM 64     /* largest value dim (Cv) */
#define GSWA_TILE_KEYS 64     /* keys (and values) staged in shared memory per pass */
#define GSWA_Q_CHUNK 8        /* raw q channels staged per depthwise-conv pass */
#define GSWA_KEY_GROUP 8      /* keys per online-softmax step, held in registers */
#define GSWA_DW_TAPS 25       /* 5x5 depthwise kernel */
#define GSWA_SMEM_LIMIT 49152 /* every configuration stays below the default 48 KiB (no opt-in needed) */
#define GSWA_MASK_VALUE (-100.0f)

#if !defined(__CUDACC_RTC__) && !defined(GSWA_HOST_EMULATION)
#include <cuda_runtime_api.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Status codes returned by gswa_launch_config / gswa_forward_*. */
enum
{
    GSWA_OK = 0,
    GSWA_ERR_WINDOW = 1,   /* window not 8 or 16 */
    GSWA_ERR_SHIFT = 2,    /* shift not in [0, window) */
    GSWA_ERR_DIMS = 3,     /* key_dim / v_dim out of [1, 64] or C_total != 2*key_dim + v_dim */
    GSWA_ERR_SHAPE = 4,    /* B < 0, or H / W not positive multiples of the window */
    GSWA_ERR_GRID = 5,     /* too many windows for a 1-D grid */
    GSWA_ERR_SMEM = 6,     /* shared memory over GSWA_SMEM_LIMIT (cannot happen for supported dims) */
    GSWA_ERR_CUDA = 7      /* the launch itself failed (cudaGetLastError) */
};

/* Launch parameters of one GSWA call: grid (grid_x, 1, 1), block (block_x, 1, 1), dynamic shared memory.
 * kernel_name is the extern "C" __global__ symbol in gswa_kernel.cu (a static string). */
typedef struct GswaLaunchConfig
{
    unsigned int grid_x;
    unsigned int block_x;
    unsigned int shared_bytes;
    int kmax; /* key-dim bucket the kernel is specialised for */
    int vmax; /* value-dim bucket */
    char const* kernel_name;
} GswaLaunchConfig;

/* Validates the call and fills *cfg. is_half selects the FP16 I/O kernels. Returns a GSWA_* status. */
int gswa_launch_config(int is_half, int B, int C_total, int H, int W, int key_dim, int v_dim, int window, int shift,
    GswaLaunchConfig* cfg);

/* Human-readable text for a GSWA_* status. */
char const* gswa_status_string(int status);

/* Runs GSWA for one head group on `stream`.
 *   qkv        (B, C_total, H, W), C_total = 2*key_dim + v_dim, channels [q | k | v], NCHW
 *   dw_weight  (key_dim, 1, 5, 5) float32 or NULL (no depthwise conv on q); dw_bias (key_dim,) or NULL
 *   bias_table ((2*window-1)^2,) float32
 *   out        (B, v_dim, H, W), same dtype as qkv
 * FP16 pointers are IEEE binary16 (__half) buffers passed as void*. Returns a GSWA_* status. */
int gswa_forward_f32(float const* qkv, float const* dw_weight, float const* dw_bias, float const* bias_table,
    float* out, int B, int C_total, int H, int W, int key_dim, int v_dim, int window, int shift, float scale,
    cudaStream_t stream);

int gswa_forward_f16(void const* qkv, float const* dw_weight, float const* dw_bias, float const* bias_table,
    void* out, int B, int C_total, int H, int W, int key_dim, int v_dim, int window, int shift, float scale,
    cudaStream_t stream);

#ifdef __cplusplus
}
#endif
#endif /* !__CUDACC_RTC__ && !GSWA_HOST_EMULATION */

#endif /* AGILEIR_GSWA_KERNEL_H */
