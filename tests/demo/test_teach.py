"""The demo's teach mode (`keras-sign demo RUN --shots DIR`), through its HTTP API: shots saved as they come (a frame
without a hand refused), discarded, an adapt in the background, and the switch between the two models."""

import io
import json
import time

import pytest
from PIL import Image

from adapt_fixtures import MASSEY, landmark_parent  # noqa: F401  (fixture)

pytest.importorskip("fastapi", reason="the demo extra is not installed (pip install '.[demo]')")


def jpeg(path_or_image):
    image = Image.open(path_or_image).convert("RGB") if not isinstance(path_or_image, Image.Image) else path_or_image
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def test_the_page_teaches_two_signs_then_uses_the_adapted_model(landmark_parent, tmp_path):  # noqa: F811
    from fastapi.testclient import TestClient

    from keras_sign.demo.server import create_app
    from keras_sign.inference.classifier import load_classifier

    shots = tmp_path / "shots"
    app = create_app(load_classifier(landmark_parent), shots=shots)
    with TestClient(app) as client:
        assert client.get("/api/info").json()["teach"] is True
        refused = client.post("/api/teach/shots/a", content=jpeg(Image.new("RGB", (160, 120), (90, 90, 90))))
        assert refused.status_code == 422 and "No hand" in refused.json()["error"]
        unknown = client.post("/api/teach/shots/zz", content=jpeg(sorted((MASSEY / "hand3" / "a").iterdir())[0]))
        assert unknown.status_code == 422 and "not a sign of the model" in unknown.json()["error"]
        names = {}
        for sign in ("a", "b"):
            for photo in sorted((MASSEY / "hand3" / sign).iterdir())[:3]:
                answer = client.post(f"/api/teach/shots/{sign}", content=jpeg(photo))
                assert answer.status_code == 200, answer.text
                names.setdefault(sign, []).append(answer.json()["name"])
        assert sorted(path.parent.name for path in shots.rglob("*.jpg")) == ["a"] * 3 + ["b"] * 3  # on disk at once
        assert client.get(f"/api/teach/shots/a/{names['a'][0]}").content[:2] == b"\xff\xd8"
        state = client.delete(f"/api/teach/shots/a/{names['a'][0]}").json()
        assert len(state["shots"]["a"]) == 2 and not (shots / "a" / names["a"][0]).exists()
        assert client.delete("/api/teach/shots/a/..%2Frun.json").status_code in (404, 422)
        assert client.post("/api/teach/use/adapted").status_code == 422  # nothing adapted yet
        state = client.post("/api/teach/adapt").json()
        assert state["adapt"]["state"] in ("running", "done")
        deadline = time.monotonic() + 120
        while state["adapt"]["state"] == "running" and time.monotonic() < deadline:
            time.sleep(0.5)
            state = client.get("/api/teach").json()
        assert state["adapt"]["state"] == "done", state
        assert state["using"] == "adapted" and state["adapt"]["epoch"] == state["adapt"]["epochs"]
        adapted = tmp_path / "shots-adapted-1"
        record = json.loads((adapted / "run.json").read_text())
        assert record["adapted_from"]["run"] == str(landmark_parent.resolve()) and record["shots"]["used"] == 5
        assert app.state.model.classifier.source == str(adapted)
        assert client.post("/api/teach/use/original").json()["using"] == "original"
        assert app.state.model.classifier.source == str(landmark_parent)
        with client.websocket_connect("/ws") as socket:  # the page spells with the model it uses
            client.post("/api/teach/use/adapted")
            socket.send_bytes(jpeg(sorted((MASSEY / "hand3" / "b").iterdir())[-1]))
            reply = socket.receive_json()
        assert reply["type"] == "frame" and reply["hand"] is not None


def test_teach_mode_is_off_without_shots_and_needs_a_run_folder(landmark_parent, tmp_path):  # noqa: F811
    from fastapi.testclient import TestClient

    from conftest import invoke, one_line_error
    from keras_sign.demo.server import create_app
    from keras_sign.inference.classifier import load_classifier

    with TestClient(create_app(load_classifier(landmark_parent))) as client:
        assert client.get("/api/info").json()["teach"] is False
        assert client.get("/api/teach").status_code == 404
    result = invoke("export", landmark_parent, "--out", tmp_path / "exports")
    assert result[0] == 0, result[1]
    bundle = next((tmp_path / "exports").iterdir())
    one_line_error(*invoke("demo", bundle, "--shots", tmp_path / "shots", "--port", "8765"), "adapts a run folder")


def test_the_page_can_correct_words_against_the_servers_word_list(landmark_parent):  # noqa: F811
    from fastapi.testclient import TestClient

    from keras_sign.demo.server import create_app
    from keras_sign.inference.classifier import load_classifier
    from keras_sign.spelling.lexicon import Lexicon

    with TestClient(create_app(load_classifier(landmark_parent), lexicon=Lexicon.read("english"))) as client:
        assert client.get("/api/info").json()["lexicon"] == "english"
        with client.websocket_connect("/ws") as socket:
            socket.send_text(json.dumps({"type": "settings", "hold": 0.3, "lexicon": False}))
            socket.send_bytes(jpeg(sorted((MASSEY / "hand3" / "a").iterdir())[0]))
            assert socket.receive_json()["type"] == "frame"  # the settings were taken, not refused
    with TestClient(create_app(load_classifier(landmark_parent))) as client:
        assert client.get("/api/info").json()["lexicon"] is None
