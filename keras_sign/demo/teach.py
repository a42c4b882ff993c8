"""The demo page's teach mode (`keras-sign demo RUN --shots DIR`): a new signer's shots, captured from the camera
and saved as they come, then `keras-sign adapt` in the background; the page switches to the adapted model when it
is ready, and the original stays one click away.

Shots are written to DIR/SIGN/<time>-<id>.jpg atomically, one by one, so that none is lost when the server stops;
a frame without a hand (for a model with a hand stage) is refused, as adapt would skip it. Each adapt writes a new
run folder beside DIR (`DIR-adapted-1`, `-2`, ...), a complete run that every command takes.
"""

import dataclasses
import logging
import threading
import time
import uuid
from pathlib import Path

from keras_sign.errors import KerasSignError
from keras_sign.runs.atomic import atomic_write_bytes, check_writable
from keras_sign.runs.record import is_run_folder
from keras_sign.training.adapt import AdaptSettings, adapt

log = logging.getLogger("keras_sign")

SHOT_SUFFIX = ".jpg"


class Teacher:
    """The shots folder, the adapt job and which model the page uses; see the module docstring."""

    def __init__(self, model, folder, settings=AdaptSettings()):
        source = Path(model.classifier.source)
        if not is_run_folder(source):
            raise KerasSignError(f"--shots adapts a run folder; {source} is not one (an export bundle or a model file "
                                 "cannot be trained): serve the run folder the model came from.")
        self.model, self.run, self.settings = model, source, settings
        self.folder = Path(folder)
        check_writable(self.folder, "--shots")
        self.folder.mkdir(parents=True, exist_ok=True)
        self.models = {"original": model.classifier}
        self.using = "original"
        self.job = {"state": "idle", "epoch": 0, "epochs": settings.epochs, "error": None, "run": None}
        self.lock = threading.Lock()

    @property
    def classes(self):
        return self.models["original"].class_names

    def status(self):
        """What the page shows: the shots per sign, the adapt job, the model in use."""
        shots = {sign: sorted(path.name for path in (self.folder / sign).glob(f"[!.]*{SHOT_SUFFIX}"))  # not a .tmp
                 for sign in self.classes if (self.folder / sign).is_dir()}
        return {"folder": str(self.folder), "shots": {sign: names for sign, names in shots.items() if names},
                "adapt": dict(self.job), "using": self.using, "models": sorted(self.models)}

    def save(self, sign, data):
        """Save one camera frame as a shot of `sign`; its file name. A frame without a hand is refused."""
        from keras_sign.data.decode import decode_upright
        from keras_sign.demo.frames import check_frame_size

        self._check_sign(sign)
        check_frame_size(data)
        stage = self.models["original"].hand_stage
        if stage is not None:
            try:
                frame = decode_upright(data, 1).numpy()
            except Exception:  # TensorFlow's decode error says little: say it plainly
                raise KerasSignError("The shot is not a readable JPEG or PNG image.") from None
            with self.model.lock:
                found = stage.detector.find(frame)
            if not found:
                raise KerasSignError("No hand in this frame: hold the sign in view and capture again.")
        name = f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:8]}{SHOT_SUFFIX}"
        (self.folder / sign).mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(self.folder / sign / name, data)
        return name

    def shot(self, sign, name):
        """The file of one saved shot, or a refusal (no path outside the shots folder is ever named)."""
        self._check_sign(sign)
        path = self.folder / sign / name
        if Path(name).name != name or path.suffix != SHOT_SUFFIX or not path.is_file():
            raise KerasSignError(f"No shot {name!r} of {sign!r}.")
        return path

    def discard(self, sign, name):
        """Remove one shot (a thumbnail the user threw away)."""
        self.shot(sign, name).unlink()

    def start(self):
        """Adapt the run on the shots so far, in a background thread; refused while one runs."""
        with self.lock:
            if self.job["state"] == "running":
                raise KerasSignError("An adapt is already running; wait for it to finish.")
            if sum(len(names) for names in self.status()["shots"].values()) < 2:
                raise KerasSignError("Capture a few shots first (two or more).")
            out = self._next_run()
            self.job = {"state": "running", "epoch": 0, "epochs": self.settings.epochs, "error": None, "run": str(out)}
        threading.Thread(target=self._adapt, args=(out,), daemon=True).start()

    def use(self, which):
        """Serve the original or the adapted model from the next frame on."""
        if which not in self.models:
            raise KerasSignError(f"No {which} model to use" + ("; adapt first." if which == "adapted" else "."))
        with self.model.lock:
            self.model.classifier = self.models[which]
        self.using = which

    def _adapt(self, out):
        from keras_sign.inference.classifier import load_classifier

        def progress(epoch, epochs):
            self.job.update(epoch=epoch, epochs=epochs)

        try:
            adapt(self.run, self.folder, out, dataclasses.replace(self.settings), evaluate=False, progress=progress)
            self.models["adapted"] = load_classifier(out)
            self.use("adapted")
            self.job.update(state="done")
            log.info("The page now uses the adapted model %s.", out)
        except Exception as error:  # the page shows what went wrong; the server goes on with the model it had
            self.job.update(state="failed", error=str(error) if isinstance(error, KerasSignError) else
                            f"{type(error).__name__}: {error}")
            log.warning("Adapting on %s failed: %s", self.folder, self.job["error"])

    def _next_run(self):
        number = 1
        while (self.folder.parent / f"{self.folder.name}-adapted-{number}").exists():
            number += 1
        return self.folder.parent / f"{self.folder.name}-adapted-{number}"

    def _check_sign(self, sign):
        if sign not in self.classes:
            raise KerasSignError(f"{sign!r} is not a sign of the model; its classes are {', '.join(self.classes)}.")
