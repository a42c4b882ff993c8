"""`keras-sign train --resume`: what a resume may change, and the reasons it gives."""

import pytest

from conftest import assert_ok as _ok
from conftest import run_cli


@pytest.mark.slow
def test_resuming_a_smoke_run_gives_the_real_reason(small_digits, tmp_path):
    """`train --resume SMOKE_RUN --epochs 6` answered "already trained 1 epoch(s); pass a larger --epochs"."""
    run = tmp_path / "smoke"
    _ok(run_cli("train", "--data-dir", small_digits, "--smoke", "--out", run))
    result = run_cli("train", "--resume", run, "--epochs", "6")
    assert result.returncode == 1 and "is a --smoke run, and smoke trains 1 epoch(s) whatever --epochs says" in \
        result.stderr and f"--init-from {run}" in result.stderr, result.stderr[-2000:]
    # Without --backend, a resume runs the backend the run recorded, and says so (not "requested with --backend").
    result = run_cli("train", "--resume", run, fresh=True)
    assert "backend tensorflow (the backend the run was trained with" in result.stderr, result.stderr[-2000:]
    assert "already trained 1 epoch(s)" in result.stderr
