"""The TensorRT backend, kept together as Polygraphy keeps its TensorRT loaders and runner:

  env.py      the flavour's module (TensorRT or TensorRT-RTX), versions, GPU, plugin library, availability()
  builder.py  ONNX -> engine.plan + engine.json (strongly typed; profile, timing cache, GSWA plugin)
  runner.py   TensorRTRunner: engine.json checks, cuda-python buffers, execute_async_v3
  cudart.py   the few CUDA runtime calls, through cuda-python
  qdp.py      the GSWA Quickly-Deployable Plugin (tensorrt.plugin, TensorRT >= 10.9)

Nothing here imports TensorRT or cuda-python at import time.
"""
from .env import (FLAVOURS, EngineMismatch, TensorRTUnavailable, availability, availability_report, import_trt,
                  load_plugin_library, require_gpu, require_tensorrt, version_tuple)

__all__ = ["FLAVOURS", "EngineMismatch", "TensorRTUnavailable", "availability", "availability_report", "import_trt",
           "load_plugin_library", "require_gpu", "require_tensorrt", "version_tuple"]
