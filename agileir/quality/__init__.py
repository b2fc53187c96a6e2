"""Image quality: BasicSR's PSNR/SSIM, MATLAB bicubic, benchmark evaluation."""
