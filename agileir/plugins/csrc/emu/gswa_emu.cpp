/*
 * CPU emulation build of gswa_kernel.cu (test-only; see cuda_emu.h). Build:
 *   g++ -std=c++20 -O1 -pthread -fno-strict-aliasing -shared -fPIC -DGSWA_HOST_EMULATION gswa_emu.cpp -o libgswa_emu.so
 * The gswa_fwd_* kernels keep their extern "C" names; gswa_emu_launch runs one of them, given its address, with
 * the grid / block / shared-memory values a real launch would use (agileir/plugins/launch.py).
 */
#include "cuda_emu.h"

#include <barrier>
#include <cstdint>
#include <thread>
#include <vector>

#include "../gswa_kernel.cu"

thread_local gswa_emu_dim3 threadIdx{0, 0, 0};
thread_local gswa_emu_dim3 blockIdx{0, 0, 0};
gswa_emu_dim3 blockDim{1, 1, 1};
gswa_emu_dim3 gridDim{1, 1, 1};

namespace gswa_detail
{
float4 gswa_smem4[(GSWA_SMEM_LIMIT + 15) / 16];
}

namespace
{
std::barrier<>* gBarrier = nullptr;

using KernelF32 = void (*)(float const*, float const*, float const*, float const*, int, int, int, int, int, int, int,
    int, int, float*);
using KernelF16 = void (*)(unsigned short const*, float const*, float const*, float const*, int, int, int, int, int,
    int, int, int, int, unsigned short*);
} // namespace

void __syncthreads()
{
    gBarrier->arrive_and_wait();
}

/* Runs `kernel` (the address of one of the gswa_fwd_* functions of this library) over `grid` blocks of `block`
 * threads. Returns 0, or -1 when the shared-memory request exceeds GSWA_SMEM_LIMIT. */
extern "C" int gswa_emu_launch(void* kernel, int is_half, unsigned int grid, unsigned int block,
    unsigned int shared_bytes, void const* qkv, float const* dw_weight, float const* dw_bias, float const* bias_table,
    int B, int C_total, int H, int W, int key_dim, int v_dim, int window, int shift, int scale_bits, void* out)
{
    if (shared_bytes > sizeof(gswa_detail::gswa_smem4) || block == 0 || block > 1024)
        return -1;
    blockDim = {block, 1, 1};
    gridDim = {grid, 1, 1};
    for (unsigned int bx = 0; bx < grid; ++bx)
    {
        std::memset(gswa_detail::gswa_smem4, 0xff, sizeof(gswa_detail::gswa_smem4)); // NaN poison
        std::barrier<> barrier(static_cast<std::ptrdiff_t>(block));
        gBarrier = &barrier;
        std::vector<std::thread> threads;
        threads.reserve(block);
        for (unsigned int tx = 0; tx < block; ++tx)
        {
            threads.emplace_back([=]() {
                threadIdx = {tx, 0, 0};
                blockIdx = {bx, 0, 0};
                if (is_half)
                {
                    reinterpret_cast<KernelF16>(kernel)(static_cast<unsigned short const*>(qkv), dw_weight, dw_bias,
                        bias_table, B, C_total, H, W, key_dim, v_dim, window, shift, scale_bits,
                        static_cast<unsigned short*>(out));
                }
                else
                {
                    reinterpret_cast<KernelF32>(kernel)(static_cast<float const*>(qkv), dw_weight, dw_bias,
                        bias_table, B, C_total, H, W, key_dim, v_dim, window, shift, scale_bits,
                        static_cast<float*>(out));
                }
            });
        }
        for (auto& t : threads)
            t.join();
        gBarrier = nullptr;
    }
    return 0;
}
