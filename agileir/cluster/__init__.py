"""Beyond one process: Ray Data batch upscaling (`job`, with its `inputs`, `manifest`, Ray `session` and
`actors`), Triton model repositories (`triton_repo`) and a served runner (`serve`). Every module imports Ray /
tritonclient / PyTriton lazily, inside functions."""
