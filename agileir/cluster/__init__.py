"""Beyond one process: Ray Data batch upscaling (`ray_batch`), Triton model repositories (`triton_repo`) and a
served runner (`serve`). Every module imports Ray / tritonclient / PyTriton lazily, inside functions."""
