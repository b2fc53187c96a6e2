"""Training of the bundled reference weights (`python -m agileir.training`) and the step that bundles a run."""
