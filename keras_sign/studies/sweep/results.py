"""A sweep's results: each trial's figures read from its run folder, the table, the figures.

    keras-sign sweep --report sweeps/numbers

The report reads the study (which trials exist, their values and state) and each finished
trial's figures as recorded when it finished (taken from its run folder's history.csv), so it
can be drawn at any time, mid-sweep included. It writes SWEEP/results.csv and results.md (one row
per trial: the swept values, best validation accuracy, final validation loss, mean epoch time
after the first epoch, which includes tracing), and with two swept settings the tables and figures
of the study's ablation: heatmaps of validation accuracy and epoch time, and validation accuracy
and loss against the first setting with one line per value of the second (its Figures 9 and 12).
"""

from pathlib import Path

from keras_sign.runs.atomic import atomic_write_csv, atomic_write_text
from keras_sign.runs.folder import RunFolder
from keras_sign.tables import markdown_table

RESULT_COLUMNS = ("best_val_accuracy", "final_val_loss", "mean_epoch_seconds", "epochs")


def trial_result(run_dir):
    """What the table shows of one finished run folder, from its history."""
    from keras_sign.analysis.compare import steady_mean

    history = RunFolder(run_dir).read_history()
    accuracies = [float(row["val_accuracy"]) for row in history if row.get("val_accuracy") not in (None, "")]
    losses = [float(row["val_loss"]) for row in history if row.get("val_loss") not in (None, "")]
    return {
        "best_val_accuracy": max(accuracies) if accuracies else 0.0,
        "final_val_loss": losses[-1] if losses else None,
        "mean_epoch_seconds": steady_mean(history, "epoch_seconds"),
        "epochs": len(history),
    }


def trial_rows(study, plan):
    """One dict per trial that is not a failed attempt: number, state, swept values, run, results."""
    from optuna.trial import TrialState

    rows = []
    for trial in study.get_trials(deepcopy=False):
        if trial.state == TrialState.FAIL:
            continue  # a dead worker's attempt; its cell was queued again
        values = {**trial.system_attrs.get("fixed_params", {}), **trial.params}
        rows.append({"trial": trial.number, "state": trial.state.name.lower(),
                     **{name: values.get(name) for name in plan.params},
                     "run": trial.user_attrs.get("run"),
                     **{key: trial.user_attrs.get(key) for key in RESULT_COLUMNS}})
    return rows


def progress(study, plan):
    """`(done, running, left)` trial counts of the sweep."""
    from optuna.trial import TrialState

    states = [t.state for t in study.get_trials(deepcopy=False)]
    done = sum(s in (TrialState.COMPLETE, TrialState.PRUNED) for s in states)
    running = sum(s == TrialState.RUNNING for s in states)
    return done, running, max(plan.total_trials() - done - running, 0)


def _format(value, digits=4):
    if value is None:
        return "-"
    return f"{value:.{digits}g}" if isinstance(value, float) else str(value)


def markdown_rows(rows, plan):
    header = ["trial", "state", *plan.params, "best val accuracy", "final val loss", "epoch s", "epochs", "run"]
    cells = [[row["trial"], row["state"], *(_format(row[n]) for n in plan.params),
              _format(row["best_val_accuracy"]), _format(row["final_val_loss"]),
              _format(row["mean_epoch_seconds"], 3), _format(row["epochs"]), Path(row["run"] or "-").name]
             for row in rows]
    return markdown_table(header, cells) + "\n"


def grid_table(rows, plan, key):
    """`(row values, column values, matrix)` of `key` over the first two swept settings (None: not yet run)."""
    first, second = list(plan.params)[:2]
    row_values = sorted({r[first] for r in rows if r[first] is not None})
    column_values = sorted({r[second] for r in rows if r[second] is not None})
    cell = {(r[first], r[second]): r[key] for r in rows if r["state"] == "complete"}
    return row_values, column_values, [[cell.get((a, b)) for b in column_values] for a in row_values]


def markdown_grid(rows, plan, key, title, digits=4):
    first, second = list(plan.params)[:2]
    row_values, column_values, matrix = grid_table(rows, plan, key)
    header = [f"{first} \\ {second}", *(f"{v:g}" for v in column_values)]
    cells = [[f"{value:g}", *(_format(c, digits) for c in row)] for value, row in zip(row_values, matrix)]
    return f"{title} ({first} down, {second} across)\n\n" + markdown_table(header, cells) + "\n"


def best_row(rows):
    finished = [r for r in rows if r["state"] == "complete" and r["best_val_accuracy"] is not None]
    return max(finished, key=lambda r: r["best_val_accuracy"]) if finished else None


def report(study, plan, sweep_dir):
    """Write the sweep's table and figures into `sweep_dir`; return the Markdown text."""
    from keras_sign.analysis import plots

    sweep_dir = Path(sweep_dir)
    rows = trial_rows(study, plan)
    columns = ["trial", "state", *plan.params, *RESULT_COLUMNS, "run"]
    atomic_write_csv(sweep_dir / "results.csv", columns, [[row[c] if row[c] is not None else "" for c in columns]
                                                          for row in rows])
    done, running, left = progress(study, plan)
    parts = [f"# Sweep {study.study_name}: {done} done, {running} running, {left} left\n", markdown_rows(rows, plan)]
    best = best_row(rows)
    if best:
        parts.append("Best trial: " + ", ".join(f"{n} {best[n]:g}" for n in plan.params)
                     + f", validation accuracy {best['best_val_accuracy']:.4f}, run folder {best['run']}\n")
    if len(plan.params) >= 2 and plan.search == "grid":
        first, second = list(plan.params)[:2]
        for key, title, digits in (("best_val_accuracy", "Best validation accuracy", 4),
                                   ("final_val_loss", "Final validation loss", 4),
                                   ("mean_epoch_seconds", "Mean epoch time, seconds (after the first epoch)", 3)):
            parts.append(markdown_grid(rows, plan, key, title, digits))
        for key, name in (("best_val_accuracy", "validation accuracy"), ("mean_epoch_seconds", "epoch seconds")):
            row_values, column_values, matrix = grid_table(rows, plan, key)
            plots.heatmap_png(matrix, row_values, column_values, first, second,
                              sweep_dir / f"heatmap_{key}.png", f"{study.study_name}: {name}")
        for key, name in (("best_val_accuracy", "best validation accuracy"), ("final_val_loss", "final validation loss")):
            row_values, column_values, matrix = grid_table(rows, plan, key)
            plots.lines_by_group_png(row_values, column_values, matrix, first, second, name,
                                     sweep_dir / f"{key}_vs_{first}.png", f"{study.study_name}: {name} vs {first}")
    text = "\n".join(parts)
    atomic_write_text(sweep_dir / "results.md", text)
    return text
