"""agileir: deployment toolkit for the AgileIR super-resolution transformer."""
__version__ = "0.1.0"
