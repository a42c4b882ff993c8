"""Inference station: one `Classifier` for every model a user holds (run folders, bundles, bare model files,
ensembles), the runtimes that run them, and the ensemble model."""
