"""Applying any upscaler (a Runner) to images, folders and videos: tiling, memory budget, output contract, pipeline."""
