"""`keras_sign.training.preparation`: a resume is checked before anything in the run folder is written."""

import pytest

from keras_sign.config import load_config
from keras_sign.errors import KerasSignError
from keras_sign.training.fit import train
from users_fixtures import users_folder, users_run  # noqa: F401  (fixtures)


@pytest.mark.xdist_group("users_run")
def test_a_refused_resume_leaves_the_config_as_it_was(users_run):
    """Defect 6: `--resume RUN --epochs 1` on a finished 2-epoch run rewrote config.yaml first."""
    before = (users_run / "config.yaml").read_bytes()
    config = load_config(users_run / "config.yaml", {"epochs": 1, "out": str(users_run)})
    with pytest.raises(KerasSignError, match="already trained 2 epoch"):
        train(config, "tensorflow", "test", resume=True)
    assert (users_run / "config.yaml").read_bytes() == before
