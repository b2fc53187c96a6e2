"""ONNX export of the models in two forms: standard ops, and one custom GSWA node per head group (docs/gswa.md)."""
