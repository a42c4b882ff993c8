"""The demo server without a browser: page, API, WebSocket frames, per-tab state, bad input, dropped frames."""

import asyncio
import io
import json

import numpy as np
import pytest
from PIL import Image

from conftest import SAMPLE

pytest.importorskip("fastapi", reason="the demo extra is not installed (pip install '.[demo]')")

from fastapi.testclient import TestClient  # noqa: E402

from keras_sign.demo.server import MAX_PHOTO_BYTES, TabSession, create_app  # noqa: E402
from keras_sign.inference.classifier import Classifier  # noqa: E402
from keras_sign.inference.runtimes import TFLiteModel  # noqa: E402
from keras_sign.runs.record import ModelRecord, Preprocessing

# Its tests share module-scoped trained runs: one worker runs them all (pytest-xdist --dist loadgroup).
pytestmark = pytest.mark.xdist_group("demo")

CLASSES = ["a", "b", "nothing"]


@pytest.fixture(scope="module")
def classifier(tmp_path_factory):
    """A small MobileNetV3-Small as a .tflite, untrained but seeded: the server's plumbing is under test."""
    import keras

    from keras_sign.export.tflite import to_tflite
    from keras_sign.models import build_model

    keras.utils.set_random_seed(3)
    path = tmp_path_factory.mktemp("demo") / "model.tflite"
    path.write_bytes(to_tflite(build_model("mobilenetv3_small", len(CLASSES), 32)))
    return Classifier(TFLiteModel(path), ModelRecord(CLASSES, Preprocessing(32)), str(path))


@pytest.fixture
def client(classifier):
    with TestClient(create_app(classifier)) as client:
        yield client


def jpeg(path, size=(160, 120)):
    buffer = io.BytesIO()
    Image.open(path).convert("RGB").resize(size).save(buffer, "JPEG", quality=85)
    return buffer.getvalue()


PHOTOS = sorted((SAMPLE / "1").iterdir())[:4]


def test_page_static_files_and_info(client):
    page = client.get("/")
    assert page.status_code == 200 and "<title>keras-sign" in page.text
    assert "/static/app.js" in page.text and "http" not in page.text.replace("http-equiv", "")  # nothing from the web
    assert client.get("/static/app.js").status_code == 200 and client.get("/static/style.css").status_code == 200
    info = client.get("/api/info").json()
    assert info["classes"] == CLASSES and info["image_size"] == 32 and info["runtime"] == "LiteRT"
    assert info["decoder"]["hold"] > 0 and info["crop"] == "center"
    missing = client.get("/nowhere")
    assert missing.status_code == 404 and "the demo is at /" in missing.json()["error"]


def test_frames_get_probabilities_decoder_state_and_latency(client):
    with client.websocket_connect("/ws") as socket:
        for photo in PHOTOS:
            socket.send_bytes(jpeg(photo))
            reply = socket.receive_json()
            assert reply["type"] == "frame"
            assert [name for name, _ in reply["top"]] and {name for name, _ in reply["top"]} <= set(CLASSES)
            assert sum(p for _, p in reply["top"]) == pytest.approx(1.0, abs=1e-4)  # all 3 classes shown
            assert set(reply["state"]) >= {"candidate", "progress", "text", "held"}
            assert reply["latency_ms"]["total"] >= reply["latency_ms"]["model"] > 0
            assert reply["dropped"] == 0  # each frame waited for the answer to the one before


def test_the_same_frames_give_the_same_answers_as_transcribe(client, classifier):
    """One preprocessing: the server's probabilities equal transcribe's on the same decoded frame."""
    from keras_sign.data.decode import decode_upright
    from keras_sign.spelling.transcribe import crop_box, prepare_frames

    data = jpeg(PHOTOS[0])
    frame = decode_upright(data, 1).numpy()
    expected = classifier.predict(prepare_frames([frame], [crop_box("center", 160, 120)], 32, False))[0]
    with client.websocket_connect("/ws") as socket:
        socket.send_bytes(data)
        top = socket.receive_json()["top"]
    assert dict(top) == pytest.approx({CLASSES[i]: float(expected[i]) for i in range(3)}, abs=1e-6)


def test_each_tab_has_its_own_decoder(client):
    with client.websocket_connect("/ws") as first, client.websocket_connect("/ws") as second:
        first.send_text(json.dumps({"type": "settings", "hold": 0.5, "min_confidence": 0.3}))
        first.send_bytes(jpeg(PHOTOS[0]))
        second.send_bytes(jpeg(PHOTOS[1]))
        assert first.receive_json()["hold"] == 0.5
        assert second.receive_json()["hold"] != 0.5


def test_bad_frames_and_messages_are_answered_and_the_tab_keeps_working(client):
    with client.websocket_connect("/ws") as socket:
        socket.send_bytes(b"not a picture at all")
        assert "not a readable JPEG" in socket.receive_json()["message"]
        truncated = jpeg(PHOTOS[0])
        socket.send_bytes(truncated[: len(truncated) // 3])
        assert socket.receive_json()["type"] in ("error", "frame")  # a cut JPEG decodes partly or not at all
        socket.send_bytes(b"\xff" * 2_100_000)
        assert "was refused" in socket.receive_json()["message"]
        socket.send_text("{not json")
        assert "Ignored a control message" in socket.receive_json()["message"]
        socket.send_text(json.dumps({"type": "settings", "hold": -1}))
        assert "--hold must be a positive number" in socket.receive_json()["message"]
        big = Image.fromarray(np.random.default_rng(0).integers(0, 256, (4000, 5000, 3), dtype=np.uint8))
        buffer = io.BytesIO()
        big.resize((5000, 4000)).save(buffer, "JPEG", quality=30)  # a 20-megapixel frame
        if len(buffer.getvalue()) <= 2_000_000:
            socket.send_bytes(buffer.getvalue())
            assert socket.receive_json()["type"] == "frame"
        socket.send_bytes(jpeg(PHOTOS[0]))
        assert socket.receive_json()["type"] == "frame"


def test_photo_and_video_uploads(client, tmp_path):
    answer = client.post("/api/photo", content=PHOTOS[0].read_bytes())
    assert answer.status_code == 200 and len(answer.json()["top"]) == 3
    wrong = client.post("/api/photo", content=b"%PDF-1.4 not a photo")
    assert wrong.status_code == 422 and "cannot be read" in wrong.json()["error"]
    empty = client.post("/api/photo", content=b"")
    assert empty.status_code == 400 and "holds no photo" in empty.json()["error"]
    huge = client.post("/api/photo", content=b"x", headers={"content-length": str(MAX_PHOTO_BYTES + 1)})
    assert huge.status_code == 413 and "the limit is" in huge.json()["error"]

    from keras_sign.spelling.clip import write_mp4

    frames = [np.asarray(Image.open(photo).convert("RGB").resize((96, 96))) for photo in PHOTOS for _ in range(5)]
    write_mp4(tmp_path / "clip.mp4", frames, 10)
    video = client.post("/api/video", content=(tmp_path / "clip.mp4").read_bytes(), headers={"x-filename": "c.mp4"})
    assert video.status_code == 200 and video.json()["frames"] == 20, video.text
    garbage = client.post("/api/video", content=b"\x00" * 1000, headers={"x-filename": "c.mp4"})
    assert garbage.status_code == 422 and "cannot be opened as a video" in garbage.json()["error"]
    # It named the server's temporary copy (/tmp/tmpab12/upload.mp4), not the file the user dropped.
    assert garbage.json()["error"].startswith("c.mp4 cannot be opened") and "/tmp" not in garbage.json()["error"]


def test_a_100_megapixel_image_is_refused_in_one_line_without_being_decoded(client):
    """It printed Pillow's raw DecompressionBombWarning and raised the demo's memory from 828 to 1160 MB for good."""
    buffer = io.BytesIO()
    Image.new("RGB", (10_000, 10_000), (90, 120, 150)).save(buffer, "PNG")  # one colour: a few hundred kB
    answer = client.post("/api/photo", content=buffer.getvalue())
    assert answer.status_code == 422 and "10000x10000 is 100 megapixels, over the 89-megapixel limit" in \
        answer.json()["error"], answer.text
    with client.websocket_connect("/ws") as socket:
        socket.send_bytes(buffer.getvalue())
        assert socket.receive_json()["message"].startswith("The frame is refused: 10000x10000 is 100 megapixels")
        socket.send_bytes(jpeg(PHOTOS[0]))
        assert socket.receive_json()["type"] == "frame"


def test_photos_dropped_while_a_camera_streams_share_the_interpreter_safely(client):
    import concurrent.futures

    frame = jpeg(PHOTOS[1])

    def post_photos():
        return [client.post("/api/photo", content=PHOTOS[0].read_bytes()).status_code for _ in range(15)]

    with concurrent.futures.ThreadPoolExecutor(2) as pool, client.websocket_connect("/ws") as socket:
        posted = [pool.submit(post_photos) for _ in range(2)]
        answers = []
        for _ in range(30):
            socket.send_bytes(frame)
            answers.append(json.loads(socket.receive_text()))
        statuses = [status for future in posted for status in future.result()]
    assert statuses == [200] * 30 and all("error" not in answer for answer in answers), answers[:3]


def test_the_newest_frame_wins_and_overtaken_ones_are_counted(classifier):
    from keras_sign.demo.server import FrameModel
    from keras_sign.spelling.decoder import DecoderSettings

    async def scenario():
        session = TabSession(FrameModel(classifier), DecoderSettings())
        for photo in PHOTOS[:3]:
            session.offer(jpeg(photo))  # three frames arrive while the model is busy
        assert session.dropped == 2 and session.arrived.is_set()
        newest = session.latest
        return session.handle(newest), newest

    reply, newest = asyncio.run(scenario())
    assert reply["dropped"] == 2 and newest == jpeg(PHOTOS[2])


def test_a_tab_that_closes_mid_stream_leaves_the_others_served(client):
    with client.websocket_connect("/ws") as leaving:
        for photo in PHOTOS:
            leaving.send_bytes(jpeg(photo))  # closed without reading an answer
    with client.websocket_connect("/ws") as staying:
        staying.send_bytes(jpeg(PHOTOS[0]))
        assert staying.receive_json()["type"] == "frame"


def test_startup_says_where_and_when_the_camera_works(classifier):
    from keras_sign.demo.server import startup_lines

    local = startup_lines(classifier, "127.0.0.1", 8000, https=False)
    assert local[1] == "open http://127.0.0.1:8000/ in a browser (Ctrl-C stops)" and len(local) == 2
    shared = startup_lines(classifier, "0.0.0.0", 8443, https=False)
    assert "only on localhost or over HTTPS" in shared[2] and "--ssl-certfile" in shared[2]
    assert len(startup_lines(classifier, "0.0.0.0", 8443, https=True)) == 2


@pytest.mark.parametrize("args, message", [
    (["nowhere"], "does not exist"),
    (["SAMPLE", "--ssl-certfile", "SAMPLE_PHOTO"], "Pass both --ssl-certfile and --ssl-keyfile"),
    (["SAMPLE", "--port", "BUSY"], "another program (another demo?) may use it: pass --port"),
])
def test_demo_command_bad_input_is_one_line(args, message):
    import socket

    from conftest import run_cli

    with socket.create_server(("127.0.0.1", 0)) as busy:
        values = {"SAMPLE_PHOTO": str(PHOTOS[0]), "SAMPLE": str(SAMPLE), "BUSY": str(busy.getsockname()[1])}
        result = run_cli("demo", *[values.get(a, a) for a in args])
    assert result.returncode != 0 and message in result.stderr and "Traceback" not in result.stderr, result.stderr
