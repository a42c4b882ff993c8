"""`keras-sign demo MODEL`: a local web page that spells what the webcam sees, served by FastAPI on uvicorn.

    keras-sign demo exports/alphabet-tflite-none              # then open http://127.0.0.1:8000
    keras-sign demo runs/massey --host 0.0.0.0 --ssl-certfile cert.pem --ssl-keyfile key.pem

The page (static/, no file from the internet) sends JPEG frames over a WebSocket; each tab has its
own spelling decoder. Frames go through the same functions as `keras-sign transcribe` (decode,
centred crop, the training resize, the model, `keras_sign.spelling.decoder`), so the page and the command
line spell the same text. When the model is busy the newest frame wins: a frame that a newer one
overtakes is dropped and counted, never queued. Photos and video files dropped on the page go
through `predict` and `transcribe`.
"""

import asyncio
import dataclasses
import json
import logging
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from keras_sign.demo.frames import check_frame_size
from keras_sign.errors import KerasSignError
from keras_sign.spelling.decoder import DecoderSettings, SpellingDecoder, default_word_gap

log = logging.getLogger("keras_sign")

STATIC = Path(__file__).parent / "static"
DEMO_EXTRA = "pip install 'keras-sign[demo]'"
MAX_FRAME_BYTES = 2_000_000  # a camera frame, JPEG-encoded at a modest size, is a few tens of kB
MAX_PHOTO_BYTES = 20_000_000
MAX_VIDEO_BYTES = 200_000_000
TOP = 3
NO_HAND = "no hand"


def import_fastapi():
    try:
        import fastapi
        import uvicorn  # noqa: F401  (the server that runs the app)
    except ImportError:
        raise KerasSignError(f"The demo needs FastAPI and uvicorn; run `{DEMO_EXTRA}`.") from None
    return fastapi


class FrameModel:
    """The classifier behind a lock (LiteRT's interpreter serves one call at a time), with the
    preprocessing `transcribe` uses, timed."""

    def __init__(self, classifier, crop="center"):
        self.classifier = classifier
        self.crop = crop
        self.lock = threading.Lock()
        self.frames = 0

    def classify_jpeg(self, data, regions=()):
        """`(probabilities, {"decode", "hand", "model"} milliseconds, hand, next regions)` of one encoded frame,
        or KerasSignError. With a hand stage the hand is followed from the tab's last frame (`regions`), and a
        frame without one gives all-zero probabilities: no hand, no letter."""
        from keras_sign.data.decode import decode_upright
        from keras_sign.inference.inputs import stacked
        from keras_sign.spelling.transcribe import crop_box, prepare_frames

        started = time.perf_counter()
        check_frame_size(data)
        try:
            frame = decode_upright(data, 1).numpy()
        except Exception:  # TensorFlow's decode error names no file and says little: say it plainly
            raise KerasSignError("The frame is not a readable JPEG, PNG, GIF, BMP or WebP image.") from None
        decoded = time.perf_counter()
        stage, hand = self.classifier.hand_stage, None
        with self.lock:  # the interpreters serve one call at a time
            if stage is None:
                box = crop_box(self.crop, frame.shape[1], frame.shape[0])
                image = prepare_frames([frame], [box], self.classifier.image_size, self.classifier.center_crop)
            else:
                hands, regions = stage.detector.follow(frame, list(regions))
                hand = hands[0] if hands else None
                image = None if hand is None else stacked([stage.crop(frame, hand)])
            found = time.perf_counter()
            if image is None:
                probabilities = np.zeros(len(self.classifier.class_names), np.float32)
            else:
                probabilities = self.classifier.predict(image)[0]
            self.frames += 1
        finished = time.perf_counter()
        times = {"decode": 1000 * (decoded - started), "hand": 1000 * (found - decoded), "model": 1000 * (finished - found)}
        return probabilities, times, hand, regions

    def warm_up(self):
        """Load TensorFlow's decoders and run the model once before the first tab connects: otherwise the
        first seconds of a camera stream wait for them, and those signs are lost."""
        import io

        from PIL import Image

        blank = io.BytesIO()
        Image.new("RGB", (64, 48)).save(blank, "JPEG")
        self.classify_jpeg(blank.getvalue())
        self.frames = 0

    def top(self, probabilities, k=TOP):
        if not probabilities.any():  # a frame without a hand
            return [[NO_HAND, 1.0]]
        return [list(pair) for pair in self.classifier.top([probabilities], k)[0]]


def _settings(base, message):
    """The decoder settings a tab asked for, from a `{"type": "settings", ...}` message."""
    values = {name: float(message[name]) for name in ("hold", "min_confidence", "min_margin")
              if isinstance(message.get(name), (int, float))}
    return dataclasses.replace(base, **values).validate()


class TabSession:
    """One browser tab: its decoder, its newest unprocessed frame, and what it has been sent."""

    def __init__(self, model, settings, lexicon=None):
        self.model = model
        self.lexicon = lexicon  # the server's word list; a tab turns it on and off in its settings
        self.decoder = SpellingDecoder(model.classifier.class_names, settings, lexicon)
        self.started = time.monotonic()
        self.latest = None
        self.dropped = 0
        self.regions = []  # where the hand stage looks for the hand in the next frame
        self.arrived = asyncio.Event()

    def offer(self, data):
        """Keep the newest frame; one that was still waiting is dropped."""
        if self.latest is not None:
            self.dropped += 1
        self.latest = data
        self.arrived.set()

    def handle(self, data):
        """Classify a frame and feed the decoder; the message for the page."""
        probabilities, times, hand, self.regions = self.model.classify_jpeg(data, self.regions)
        decoder_started = time.perf_counter()
        square = None if hand is None else hand.crop_box(self.model.classifier.record.preprocessing.hands["margin"])
        events = self.decoder.update(time.monotonic() - self.started, probabilities, square)  # a slide: a double
        times["decoder"] = 1000 * (time.perf_counter() - decoder_started)
        times["total"] = sum(times.values())
        return {
            "type": "frame",
            "top": self.model.top(probabilities),
            "state": self.decoder.state,
            "hold": self.decoder.settings.hold,
            "events": [dataclasses.asdict(event) for event in events],
            "latency_ms": {name: round(value, 2) for name, value in times.items()},
            "dropped": self.dropped,
            "lexicon": self.decoder.lexicon is not None,  # whether this tab's words are corrected
            **({"hand": _hand_message(hand, square)} if self.model.classifier.hand_stage else {}),
        }


def _hand_message(hand, square):
    """What the page draws of the hand: its 21 landmarks and the square the model sees (`(x0, y0, side)` in pixels),
    as shares of the frame's width and height; None when the frame holds no hand."""
    if hand is None:
        return None
    width, height = hand.image_size
    x0, y0, side = square
    return {"landmarks": [[round(x / width, 4), round(y / height, 4)] for x, y in hand.landmarks[:, :2]],
            "box": [round(x0 / width, 4), round(y0 / height, 4), round(side / width, 4), round(side / height, 4)],
            "handedness": hand.handedness}


def create_app(classifier, crop="center", settings=None, shots=None, lexicon=None):
    """The FastAPI application around one loaded classifier; with `shots` (a folder), the page's teach mode
    (`keras_sign.demo.teach`); with `lexicon` (`keras_sign.spelling.lexicon.Lexicon`), the word list a tab may
    correct its words against."""
    fastapi = import_fastapi()
    from fastapi.responses import FileResponse, JSONResponse
    from fastapi.staticfiles import StaticFiles
    from starlette.exceptions import HTTPException as StarletteHTTPException

    settings = settings or DecoderSettings(word_gap=default_word_gap(classifier.class_names),
                                           unsure_below=classifier.unsure_below or 0.0)
    model = FrameModel(classifier, crop)
    teacher = None
    if shots is not None:
        from keras_sign.demo.teach import Teacher

        teacher = Teacher(model, shots)
    model.warm_up()
    app = fastapi.FastAPI(title="keras-sign demo", docs_url=None, redoc_url=None, openapi_url=None)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.state.model = model

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request, error):
        message = {404: f"No page at {request.url.path}; the demo is at /."}.get(error.status_code, error.detail)
        return JSONResponse({"error": message}, status_code=error.status_code)

    @app.get("/")
    async def page():
        return FileResponse(STATIC / "index.html")

    @app.get("/api/info")
    async def info():
        return {"classes": classifier.class_names, "image_size": classifier.image_size, "runtime": classifier.runtime,
                "model": Path(classifier.source).name, "crop": "hand" if classifier.hand_stage else crop,
                "decoder": dataclasses.asdict(settings),
                "max_frame_bytes": MAX_FRAME_BYTES, "max_photo_bytes": MAX_PHOTO_BYTES,
                "max_video_bytes": MAX_VIDEO_BYTES, "teach": teacher is not None,
                "lexicon": None if lexicon is None else lexicon.source}

    async def read_body(request, limit, what):
        declared = int(request.headers.get("content-length") or 0)
        if declared > limit:
            raise fastapi.HTTPException(413, f"The {what} is {declared / 1e6:.1f} MB; "
                                             f"the limit is {limit / 1e6:.0f} MB.")
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > limit:
                raise fastapi.HTTPException(413, f"The {what} is over the {limit / 1e6:.0f} MB limit.")
        if not body:
            raise fastapi.HTTPException(400, f"The request holds no {what}; send the file as the request body.")
        return bytes(body)

    def upload_error(error):
        return JSONResponse({"error": str(error)}, status_code=422)

    @app.post("/api/photo")
    async def photo(request: fastapi.Request):
        data = await read_body(request, MAX_PHOTO_BYTES, "photo")
        try:
            return await asyncio.to_thread(_predict_photo, model, data)
        except KerasSignError as error:
            return upload_error(error)

    @app.post("/api/video")
    async def video(request: fastapi.Request):
        data = await read_body(request, MAX_VIDEO_BYTES, "video")
        name = Path(request.headers.get("x-filename", "upload.mp4")).name or "upload.mp4"
        try:
            return await asyncio.to_thread(_transcribe_video, model, data, name, settings)
        except KerasSignError as error:
            return upload_error(error)

    def teaching():
        if teacher is None:
            raise fastapi.HTTPException(404, "Teach mode is off; start the demo with --shots DIR to teach it signs.")
        return teacher

    @app.get("/api/teach")
    async def teach_status():
        return teaching().status()

    @app.post("/api/teach/shots/{sign}")
    async def teach_shot(sign: str, request: fastapi.Request):
        data = await read_body(request, MAX_FRAME_BYTES, "shot")
        try:
            return {"sign": sign, "name": await asyncio.to_thread(teaching().save, sign, data)}
        except KerasSignError as error:
            return upload_error(error)

    @app.get("/api/teach/shots/{sign}/{name}")
    async def teach_thumbnail(sign: str, name: str):
        try:
            return FileResponse(teaching().shot(sign, name), media_type="image/jpeg")
        except KerasSignError as error:
            return JSONResponse({"error": str(error)}, status_code=404)

    @app.delete("/api/teach/shots/{sign}/{name}")
    async def teach_discard(sign: str, name: str):
        try:
            teaching().discard(sign, name)
        except KerasSignError as error:
            return upload_error(error)
        return teaching().status()

    @app.post("/api/teach/adapt")
    async def teach_adapt():
        try:
            teaching().start()
        except KerasSignError as error:
            return upload_error(error)
        return teaching().status()

    @app.post("/api/teach/use/{which}")
    async def teach_use(which: str):
        try:
            teaching().use(which)
        except KerasSignError as error:
            return upload_error(error)
        return teaching().status()

    @app.websocket("/ws")
    async def frames(socket: fastapi.WebSocket):
        await socket.accept()
        session = TabSession(model, settings, lexicon)
        worker = asyncio.create_task(_answer_frames(socket, session))
        try:
            while True:
                message = await socket.receive()
                if message["type"] == "websocket.disconnect":
                    break
                if message.get("bytes") is not None:
                    if len(message["bytes"]) > MAX_FRAME_BYTES:
                        await socket.send_json({"type": "error", "message": "A frame over "
                                                f"{MAX_FRAME_BYTES // 1000} kB was refused; send smaller JPEG frames."})
                        continue
                    session.offer(message["bytes"])
                elif message.get("text") is not None:
                    await _control(socket, session, message["text"], settings)
        except (fastapi.WebSocketDisconnect, RuntimeError):
            pass  # the tab went away mid-stream: nothing to answer
        finally:
            worker.cancel()

    return app


async def _control(socket, session, text, base):
    """A tab's settings change or Clear."""
    try:
        message = json.loads(text)
        if message.get("type") == "clear":
            session.decoder.reset()
            session.started = time.monotonic()
        elif message.get("type") == "settings":
            session.decoder.settings = _settings(base, message)
            if "lexicon" in message:
                session.decoder.lexicon = session.lexicon if message["lexicon"] else None
        else:
            raise ValueError(f"unknown message type {message.get('type')!r}")
    except (ValueError, KerasSignError, AttributeError) as error:
        await socket.send_json({"type": "error", "message": f"Ignored a control message: {error}"})


async def _answer_frames(socket, session):
    """Classify the newest frame each time one arrives; older ones were overtaken and dropped."""
    while True:
        await session.arrived.wait()
        session.arrived.clear()
        data, session.latest = session.latest, None
        try:
            reply = await asyncio.to_thread(session.handle, data)
        except KerasSignError as error:
            reply = {"type": "error", "message": str(error)}
        try:
            await socket.send_json(reply)
        except Exception:  # the socket closed while the model worked
            return


def _predict_photo(model, data):
    from keras_sign.inference.predict import predict_files

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "photo"
        path.write_bytes(data)
        with model.lock:  # a camera tab may be using the interpreter at this moment
            rows, skipped = predict_files(model.classifier, [path], top_k=TOP)
    if skipped:
        raise KerasSignError(f"The photo cannot be read ({skipped[0][1]}); send a JPEG, PNG, GIF, BMP or WebP file.")
    return {"top": [[p["class"], p["probability"]] for p in rows[0]["predictions"]]}


def _transcribe_video(model, data, name, settings):
    """Spell an uploaded video; errors name the file as the user knows it, not the server's temporary copy."""
    from keras_sign.spelling.transcribe import transcribe
    from keras_sign.spelling.video import open_source

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"upload{Path(name).suffix or '.mp4'}"
        path.write_bytes(data)
        try:
            with model.lock:  # the whole video at once, like a `transcribe` run
                transcript, _ = transcribe(model.classifier, open_source(path),
                                           SpellingDecoder(model.classifier.class_names, settings), crop=model.crop)
        except KerasSignError as error:
            raise KerasSignError(str(error).replace(str(path), name)) from None
    return {"text": transcript.text, "frames": transcript.frames, "seconds": round(transcript.seconds, 2),
            "frames_per_second": round(transcript.frames_per_second, 1), "broken": transcript.broken,
            "events": [dataclasses.asdict(event) for event in transcript.events]}


def check_ssl_pair(certfile, keyfile):
    if (certfile is None) != (keyfile is None):
        raise KerasSignError("Pass both --ssl-certfile and --ssl-keyfile (or neither).")


def check_port_free(host, port):
    """Say so before the model loads and the address is printed, not in uvicorn's log afterwards."""
    import socket

    try:
        with socket.create_server((host, port)):
            pass
    except OSError as error:
        raise KerasSignError(f"Cannot listen on {host}:{port} ({error.strerror}); another program (another demo?) "
                             "may use it: pass --port with a free port.") from None


def startup_lines(classifier, host, port, https):
    """What `keras-sign demo` says when it starts: the model, the address, and the camera's rule."""
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    lines = [f"keras-sign demo: {Path(classifier.source).name} ({classifier.runtime}), "
             f"{len(classifier.class_names)} classes",
             f"open {'https' if https else 'http'}://{shown}:{port}/ in a browser (Ctrl-C stops)"]
    if host not in ("127.0.0.1", "localhost", "::1") and not https:
        lines.append("note: browsers allow the camera only on localhost or over HTTPS; from another device, start "
                     "with --ssl-certfile and --ssl-keyfile (a self-signed pair works once the browser accepts it)")
    return lines


def serve(classifier, host="127.0.0.1", port=8000, crop="center", ssl_certfile=None, ssl_keyfile=None, echo=print,
          shots=None, lexicon=None):
    """Run the demo until Ctrl-C; with `shots`, its teach mode saves shots there; with `lexicon`, tabs may correct
    their words against it."""
    import_fastapi()
    import uvicorn

    check_ssl_pair(ssl_certfile, ssl_keyfile)
    check_port_free(host, port)
    app = create_app(classifier, crop, shots=shots, lexicon=lexicon)
    for line in startup_lines(classifier, host, port, ssl_certfile is not None):
        echo(line)
    if shots is not None:
        echo(f"teach mode: shots are saved in {shots}; each adapt writes a run folder beside it")
    uvicorn.run(app, host=host, port=port, ssl_certfile=ssl_certfile, ssl_keyfile=ssl_keyfile, log_level="warning")
