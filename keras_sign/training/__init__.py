"""Training station: data -> model -> `model.fit` (Adam, categorical cross-entropy) -> run folder, with
checkpoints, optimizers and learning-rate schedules."""
