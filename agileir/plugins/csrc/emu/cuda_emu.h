/*
 * Minimal CUDA execution model on the CPU, just enough to run gswa_kernel.cu's kernels unchanged for testing
 * on machines without a GPU: one std::thread per CUDA thread of a block, blocks run one after another,
 * __syncthreads() is a std::barrier, dynamic shared memory is one static buffer (poisoned with NaNs before
 * every block so reads of unwritten shared memory show up as wrong results).
 *
 * Test-only. Numerics match the device code up to FMA contraction and exp2f's last bits; FP16 conversions use
 * _Float16 (round to nearest even, as cvt.rn.f16.f32).
 */
#ifndef AGILEIR_CUDA_EMU_H
#define AGILEIR_CUDA_EMU_H

#include <cmath>
#include <cstring>
#include <math.h>

#define __global__
#define __device__
#define __forceinline__ inline
#define __shared__
#define __launch_bounds__(...)

struct alignas(16) float4
{
    float x, y, z, w;
};

struct gswa_emu_dim3
{
    unsigned int x, y, z;
};

extern thread_local gswa_emu_dim3 threadIdx;
extern thread_local gswa_emu_dim3 blockIdx;
extern gswa_emu_dim3 blockDim;
extern gswa_emu_dim3 gridDim;

void __syncthreads();

template <typename T>
inline T __ldg(T const* p)
{
    return *p;
}

inline float __int_as_float(int i)
{
    float f;
    std::memcpy(&f, &i, sizeof(f));
    return f;
}

inline float gswa_h2f(unsigned short h)
{
    _Float16 v;
    std::memcpy(&v, &h, sizeof(h));
    return static_cast<float>(v);
}

inline unsigned short gswa_f2h(float f)
{
    _Float16 const v = static_cast<_Float16>(f);
    unsigned short h;
    std::memcpy(&h, &v, sizeof(h));
    return h;
}

#endif // AGILEIR_CUDA_EMU_H
