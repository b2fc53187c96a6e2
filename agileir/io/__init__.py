"""Files in and out: images, atomic writes, output-path planning, sample images (no model, no backend)."""
