"""Where a sweep's trials are recorded: an Optuna study in a journal file or a database server.

One machine: Optuna's journal file storage inside the sweep folder. Optuna recommends it over
SQLite for several processes on one machine: each worker appends operations to one log file under
a file lock, where SQLite's whole-database lock makes concurrent writers fail with "database is
locked". Several machines: `--storage postgresql://...` (or any SQLAlchemy URL Optuna's RDB storage
takes); there Optuna's heartbeat marks the trials of a machine that went silent as failed, and they
are queued again.

The plan is stored in the study (a user attribute), so a machine that joins needs only the URL and
the study name. Every grid cell is queued once when the study is created, and workers only take
queued trials: Optuna's GridSampler on its own may hand one cell to two workers at once.
"""

import logging
import re
import time

from keras_sign.errors import KerasSignError
from keras_sign.studies.sweep.plan import SweepPlan

log = logging.getLogger("keras_sign")

JOURNAL_FILE = "optuna-journal.log"
HEARTBEAT_SECONDS = 10
GRACE_SECONDS = 60  # a trial whose heartbeat is older than this is failed and queued again
PLAN_ATTR = "keras_sign_plan"
SCHEMA_ATTEMPTS = 5  # tries to open a new database while other machines create its tables


def redact(url):
    """The URL without its password, for messages and files."""
    return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", str(url))


def open_storage(url):
    """An Optuna storage for a URL, or for a journal file path; a server that does not answer is a one-line error."""
    import optuna

    if "://" not in str(url):
        from optuna.storages.journal import JournalFileBackend

        return optuna.storages.JournalStorage(JournalFileBackend(str(url)))
    for attempt in range(1, SCHEMA_ATTEMPTS + 1):
        try:
            return optuna.storages.RDBStorage(
                _with_driver(url), heartbeat_interval=HEARTBEAT_SECONDS, grace_period=GRACE_SECONDS,
                heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(),
                engine_kwargs={"pool_pre_ping": True, "connect_args": _connect_timeout(url)},
            )
        except ImportError as error:
            raise KerasSignError(f"The storage {redact(url)} needs a database driver ({error}); "
                                 "install keras-sign[sweep] (psycopg for PostgreSQL).") from None
        except Exception as error:  # sqlalchemy's OperationalError and friends: the server is not there
            if _lost_schema_race(error) and attempt < SCHEMA_ATTEMPTS:
                time.sleep(0.2 * attempt)  # until the machine that won has committed the tables
                continue
            reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise KerasSignError(f"Cannot open the sweep storage {redact(url)} ({reason}); start the database "
                                 "server or fix the URL.") from None


def _lost_schema_race(error):
    """Whether opening a new database failed because another machine was creating Optuna's tables at the
    same moment: PostgreSQL refuses concurrent CREATE TABLEs of one name with these errors."""
    return type(getattr(error, "orig", None)).__name__ in ("UniqueViolation", "DuplicateTable", "DuplicateObject")


def _with_driver(url):
    """postgresql:// through psycopg 3 (the `sweep` extra), whichever driver SQLAlchemy defaults to."""
    return "postgresql+psycopg://" + url[len("postgresql://"):] if url.startswith("postgresql://") else url


def _connect_timeout(url):
    return {"connect_timeout": 10} if str(url).startswith("postgresql") else {}


def _sampler(plan):
    import optuna

    if plan.search == "grid":
        return optuna.samplers.GridSampler(plan.params, seed=plan.fixed.get("seed", 0))
    return optuna.samplers.TPESampler(seed=plan.fixed.get("seed", 0))


def _pruner(plan):
    import optuna

    return optuna.pruners.MedianPruner(n_warmup_steps=1) if plan.prune else optuna.pruners.NopPruner()


def create_or_load(storage, name, plan):
    """The study `name` for `plan`: created with its grid queued, or loaded when it holds the same plan."""
    import optuna

    try:
        study = optuna.create_study(storage=storage, study_name=name, direction="maximize",
                                    sampler=_sampler(plan), pruner=_pruner(plan))
        created = True
    except optuna.exceptions.DuplicatedStudyError:
        study, created = load(storage, name), False
        saved = study.user_attrs.get(PLAN_ATTR)
        if saved is not None and saved != plan.to_dict():
            differences = "; ".join(plan.differences(SweepPlan.from_dict(saved)))
            raise KerasSignError(f"The sweep '{name}' was started with another plan ({differences}); use a new "
                                 "--out (or --study) for this one, or the same settings to finish that sweep.")
    if created or study.user_attrs.get(PLAN_ATTR) is None:  # a creator killed while queueing leaves no plan attr
        if plan.search == "grid":
            for values in plan.cells():
                study.enqueue_trial(values, skip_if_exists=True)
        study.set_user_attr(PLAN_ATTR, plan.to_dict())
    return study


def load(storage, name, plan=None):
    """An existing study with its sampler and pruner; its plan comes from the study when not given."""
    import optuna

    summaries = {s.study_name: s for s in optuna.get_all_study_summaries(storage, include_best_trial=False)}
    if name not in summaries:
        raise KerasSignError(f"The storage holds no sweep named '{name}' (it has: {', '.join(summaries) or 'none'}); "
                             "pass --study with one of those names.")
    if plan is None:
        saved = summaries[name].user_attrs.get(PLAN_ATTR)
        if saved is None:
            raise KerasSignError(f"The sweep '{name}' has no keras-sign plan yet; start it with `keras-sign sweep` first.")
        plan = SweepPlan.from_dict(saved)
    return optuna.load_study(study_name=name, storage=storage, sampler=_sampler(plan), pruner=_pruner(plan))


def plan_of(study):
    return SweepPlan.from_dict(study.user_attrs[PLAN_ATTR])
