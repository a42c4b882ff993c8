"""Analysis station: a run folder -> metrics, reports, calibration, plots and comparisons."""
