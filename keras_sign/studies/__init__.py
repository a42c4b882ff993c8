"""Studies: many runs as one experiment. Cross-validation, reproducing the study's configs, sweeps, and
ensembles (of runs and of cross-validations)."""
