"""What a sweep trains: the fixed settings, the swept ones (lists for a grid, ranges for TPE), checks.

A swept value is written like a flag value: `1e-2,1e-3` is a list (the grid's values, or
TPE's choices), `1e-5:1e-2:log` a range (TPE only; `:log` samples on a log scale). In a YAML
config a list may also be a YAML list. Only numeric train settings can be swept.
"""

import dataclasses
import itertools
import math
import typing

from keras_sign.config import TrainConfig, load_config
from keras_sign.errors import KerasSignError

SEARCHES = ("grid", "tpe")
NOT_SWEPT = ("out", "backend")  # where a trial writes and what runs it are not part of the recipe


def numeric_fields():
    """`{name: int or float}` of the TrainConfig fields a sweep may vary."""
    types = {}
    for field in dataclasses.fields(TrainConfig):
        kinds = [t for t in (typing.get_args(field.type) or (field.type,)) if t is not type(None)]
        if kinds and kinds[0] in (int, float) and kinds[0] is not bool:
            types[field.name] = kinds[0]
    return types


def _number(name, text, kind):
    try:
        value = float(text) if kind is float else int(text)
    except (TypeError, ValueError):
        what = "a whole number" if kind is int else "a number"
        raise KerasSignError(f"--{name.replace('_', '-')}: '{text}' is not {what}; write values like "
                             f"{'16,32' if kind is int else '1e-3,1e-4'}.") from None
    if not math.isfinite(value):
        raise KerasSignError(f"--{name.replace('_', '-')}: '{text}' is not a finite number; write values like 1e-3,1e-4.")
    return value


def parse_swept(name, value, kind):
    """A flag or YAML value: a single number (None: not swept), a list `[..]`, or a range dict."""
    option = f"--{name.replace('_', '-')}"
    if isinstance(value, list):
        items = value
    elif isinstance(value, str) and ":" in value:
        parts = value.split(":")
        log_scale = parts[-1] == "log"
        bounds = parts[:-1] if log_scale else parts
        if len(bounds) != 2:
            raise KerasSignError(f"{option}: a range is LOW:HIGH or LOW:HIGH:log (got '{value}').")
        low, high = (_number(name, part, kind) for part in bounds)
        if not low < high or (log_scale and low <= 0):
            raise KerasSignError(f"{option}: a range needs LOW < HIGH{' and LOW > 0 on a log scale' if log_scale else ''} "
                                 f"(got '{value}').")
        return {"low": low, "high": high, "log": log_scale}
    elif isinstance(value, str) and "," in value:
        items = value.split(",")
    else:
        return None
    values = [_number(name, str(item).strip(), kind) for item in items if str(item).strip() != ""]
    if not values:
        raise KerasSignError(f"{option}: the list of values is empty; give at least one, e.g. {option} 1e-3,1e-4.")
    if len(set(values)) != len(values):
        raise KerasSignError(f"{option}: the list repeats a value ({value}); give each value once.")
    return values


@dataclasses.dataclass
class SweepPlan:
    """A sweep's recipe: what every trial shares, what varies, how it is searched."""

    fixed: dict  # TrainConfig values every trial shares (without out/backend)
    params: dict  # name -> list of values, or {"low", "high", "log"}
    search: str = "grid"
    trials: int | None = None  # TPE's number of trials; a grid has one per cell
    prune: bool = False

    def to_dict(self):
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values):
        return cls(**values)

    def cells(self):
        """Every grid cell as `{name: value}`, in the order the values were given."""
        names = list(self.params)
        return [dict(zip(names, values)) for values in itertools.product(*(self.params[n] for n in names))]

    def total_trials(self):
        return len(self.cells()) if self.search == "grid" else self.trials

    def trial_config(self, values, out, backend):
        """The complete, validated TrainConfig of one trial."""
        return load_config(overrides={**self.fixed, **values, "out": str(out), "backend": backend})

    def differences(self, other):
        """Lines `key: this vs other` for every setting two plans do not share."""
        mine, theirs = _flat(self), _flat(other)
        return [f"{key}: {mine.get(key)!r} here, {theirs.get(key)!r} in the sweep folder"
                for key in sorted(set(mine) | set(theirs)) if mine.get(key) != theirs.get(key)]


def _flat(plan):
    return {**plan.fixed, **{f"swept {k}": v for k, v in plan.params.items()},
            "search": plan.search, "trials": plan.trials, "prune": plan.prune}


def make_plan(config_values, search="grid", trials=None, prune=False):
    """A checked `SweepPlan` from train settings (flags over the YAML file) whose numeric values may be swept."""
    if search not in SEARCHES:
        raise KerasSignError(f"--search must be one of {', '.join(SEARCHES)} (got '{search}').")
    kinds = numeric_fields()
    params, fixed = {}, {}
    for name, value in config_values.items():
        swept = parse_swept(name, value, kinds[name]) if name in kinds else None
        if name not in kinds and isinstance(value, list):
            raise KerasSignError(f"'{name}' cannot be swept; only numeric settings can ({', '.join(kinds)}).")
        if swept is None:
            fixed[name] = value
        else:
            params[name] = swept
    if not params:
        raise KerasSignError("Nothing to sweep: give at least one setting a list of values, e.g. --lr 1e-2,1e-3 "
                             "--batch-size 16,32 (or a range such as --lr 1e-5:1e-2:log with --search tpe).")
    ranges = [name for name, value in params.items() if isinstance(value, dict)]
    if search == "grid" and ranges:
        raise KerasSignError(f"A grid needs lists of values; {', '.join(ranges)} is a range. Give values "
                             "(--lr 1e-2,1e-3) or search the range with --search tpe --trials N.")
    if search == "tpe" and not (trials and trials >= 1):
        raise KerasSignError("--search tpe needs --trials N (how many trials to run), e.g. --trials 20.")
    if search == "grid" and trials is not None:
        raise KerasSignError("--trials is for --search tpe; a grid runs one trial per cell.")
    for name in NOT_SWEPT:
        fixed.pop(name, None)
    fixed = load_config(overrides=fixed).to_dict()  # defaults filled in, unknown keys and bad values refused
    fixed["smoke"] = False  # already applied above; applied again per trial it would override the swept values
    for name in (*NOT_SWEPT, *params):
        fixed.pop(name, None)
    plan = SweepPlan(fixed, params, search, trials, prune)
    for values in _corner_values(plan):
        plan.trial_config(values, "unused", "auto")  # every cell's settings must be valid together
    return plan


def _corner_values(plan):
    """Grid cells, or the ends of every TPE range: enough to validate every value a trial can get."""
    if plan.search == "grid":
        return plan.cells()
    ends = {name: value if isinstance(value, list) else [value["low"], value["high"]]
            for name, value in plan.params.items()}
    return SweepPlan(plan.fixed, ends).cells()


def trial_name(plan, values, number):
    """A trial's run-folder name: its grid cell (so a retried cell resumes its folder) or its number."""
    if plan.search == "grid":
        return "_".join(f"{name}-{value:g}" for name, value in values.items())
    return f"trial-{number:04d}"
