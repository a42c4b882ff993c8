"""The demo page in a real browser: headless Chromium, with a clip of real photos as its camera, spells
what `keras-sign transcribe` spells from the same clip.

Needs Debian's `chromium` (or KERAS_SIGN_CHROMIUM pointing at a Chromium) and Playwright's Python
package; .ci/run installs both. A screenshot of the page mid-word is kept in test-artifacts/.
"""

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import numpy as np
import pytest
from PIL import Image

from conftest import REPO, run_cli
from keras_sign.spelling.clip import write_y4m
from keras_sign.spelling.transcribe import character_error_rate
from adapt_fixtures import MASSEY, landmark_parent  # noqa: F401  (fixture)
from hand_fixtures import hand_run  # noqa: F401  (fixture)
from spelling_fixtures import CLASSES, TEXT, clip, trained  # noqa: F401  (fixtures)

pytest.importorskip("fastapi", reason="the demo extra is not installed (pip install '.[demo]')")
playwright = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed (pip install playwright)")

CHROMIUM = os.environ.get("KERAS_SIGN_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
ARTIFACTS = REPO / "test-artifacts"

pytestmark = [
    pytest.mark.xdist_group("demo_browser"),  # its tests share a module-scoped server and camera clip
    pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed: `apt-get install chromium` (.ci/run "
                       "does), or set KERAS_SIGN_CHROMIUM to a Chromium executable"),
]


@pytest.fixture(scope="module")
def camera_clip(clip):  # noqa: F811  (the fixture imported above)
    """The clip's frames as the y4m file Chromium plays as its camera, looping."""
    folder, summary = clip
    frames = [np.asarray(Image.open(path).convert("RGB")) for path in sorted((folder / "frames").glob("*.jpg"))]
    write_y4m(folder / "camera.y4m", frames, summary["fps"])
    return folder / "camera.y4m", summary


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# What the page asks the browser's speech synthesis to say, recorded (the utterances still go to the real API).
RECORD_SPEECH = """
window.spoken = [];
const speak = window.speechSynthesis.speak.bind(window.speechSynthesis);
window.speechSynthesis.speak = (utterance) => { window.spoken.push(utterance.text); speak(utterance); };
"""


# What the server says of each frame of a tab: its top class, and whether its text is corrected against the word
# list (every frame: sampling the page from the test would miss a short hold on a busy machine).
RECORD_FRAMES = """
window.heard = [];
window.tops = [];
const PageSocket = window.WebSocket;
window.WebSocket = class extends PageSocket {
  constructor(...args) {
    super(...args);
    this.addEventListener("message", (event) => {
      const message = JSON.parse(event.data);
      if (message.type === "frame") { window.heard.push(message.lexicon); window.tops.push(message.top[0][0]); }
    });
  }
};
"""


@contextlib.contextmanager
def page_with_camera(y4m, url, script=""):
    """Debian's Chromium with `y4m` as its camera, on the demo page at `url` once it is connected: yields the
    page and the list its script errors and failed requests go to. What the page speaks is in `window.spoken`;
    `script` runs before the page's own."""
    with playwright.sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=CHROMIUM, args=[
            "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-video-capture={y4m}"])
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 700})
            errors = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.on("requestfailed", lambda request: errors.append(f"{request.url} failed"))
            page.add_init_script(RECORD_SPEECH + script)
            page.goto(url)
            page.wait_for_function("document.getElementById('status').textContent.startsWith('Connected')")
            yield page, errors
        finally:
            browser.close()


@contextlib.contextmanager
def demo_server(model, *options):
    """`keras-sign demo MODEL [OPTIONS]` as a user starts it, in a process of its own; yields its URL, then stops it
    with Ctrl-C and yields its output."""
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "keras_sign.cli", "demo", str(model), "--port", str(port),
                                *map(str, options)],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            urllib.request.urlopen(f"{url}/api/info", timeout=2)
            break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                pytest.fail(f"the demo server did not start:\n{process.communicate()[0]}")
            time.sleep(0.5)
    stopped = {}
    try:
        yield url, stopped
    finally:  # a test that failed stops its server too
        process.send_signal(signal.SIGINT)
        try:
            stopped["output"] = process.communicate(timeout=30)[0]
        except subprocess.TimeoutExpired:
            process.kill()
            pytest.fail("the demo server did not stop on Ctrl-C")


@pytest.fixture(scope="module")
def server(trained):  # noqa: F811
    """The demo of the trained bundle; it must say where it is and stop cleanly."""
    with demo_server(trained["bundle"]) as (url, stopped):
        yield url
    output = stopped["output"]
    assert f"open {url}/" in output and "Traceback" not in output, output


def test_the_page_spells_the_camera_clip_as_transcribe_does(trained, camera_clip, server, tmp_path):  # noqa: F811
    y4m, summary = camera_clip
    result = run_cli("transcribe", trained["bundle"], y4m, "--events", tmp_path / "events.jsonl")
    assert result.returncode == 0, result.stderr
    expected = json.loads((tmp_path / "events.jsonl").read_text().splitlines()[-1])["text"].strip()
    assert character_error_rate(TEXT, expected)["cer"] <= 0.17, expected  # the model spells the clip

    ARTIFACTS.mkdir(exist_ok=True)
    screenshot = ARTIFACTS / "demo-browser.png"
    screenshot.unlink(missing_ok=True)
    with page_with_camera(y4m, server, RECORD_FRAMES) as (page, errors):
        assert "(LiteRT), 4 classes" in page.text_content("#model")
        assert not page.is_visible("#lexicon-row")  # no word list on this server
        page.click("#start")
        # The fake camera plays the clip from its first frame when the page opens it, then loops:
        # the text one clip length after the camera started is the clip's.
        page.wait_for_function("document.getElementById('status').textContent.startsWith('Camera on')")
        started = time.monotonic()
        shown, bars = set(), set()
        while time.monotonic() - started < summary["seconds"]:
            names = page.locator("#bars li span:first-child").all_text_contents()
            if names:
                shown.add(names[0])
                bars.add(tuple(page.locator("#bars li span:last-child").all_text_contents()))
            text = page.text_content("#text")
            if len(text.strip()) == 2 and not screenshot.exists():
                page.screenshot(path=screenshot)  # mid-word
            time.sleep(0.1)
        spelled = page.text_content("#text").strip()
        tops = set(page.evaluate("window.tops"))  # of every frame the server answered
        page.click("#speak")  # the browser's own speech synthesis says the text
        spoken = page.evaluate("window.spoken")
        latency = float(page.text_content("#latency"))
        frames_per_second = int(page.text_content("#fps"))

        # A photo dropped on the page goes through predict.
        photo = sorted((trained["data"] / "2").iterdir())[0]
        page.set_input_files("#file", str(photo))
        page.wait_for_function("document.getElementById('upload').textContent.includes(':')")
        uploaded = page.text_content("#upload")

    assert not errors, errors
    score = character_error_rate(expected, spelled)
    assert score["cer"] <= 0.2, (expected, spelled)  # measured: the same text, CER 0
    assert tops >= set(CLASSES)  # the clip's signs, each the top class of some frame
    assert len(shown) >= 2 and len(bars) >= 5  # and the page's bars followed them (a sure model shows few values)
    assert 0 < latency < 1000 and frames_per_second > 0
    assert uploaded.startswith(f"{photo.name}: 2 ")  # the top class of a training photo of "2"
    assert spoken == [spelled] if spelled else spoken == []
    assert screenshot.stat().st_size > 10_000


@pytest.mark.slow
def test_the_pages_word_list_switch_turns_the_servers_correction_on_and_off(trained, camera_clip):  # noqa: F811
    y4m, _ = camera_clip
    with demo_server(trained["bundle"], "--lexicon", "english") as (url, _):
        with page_with_camera(y4m, url, RECORD_FRAMES) as (page, errors):
            assert page.is_visible("#lexicon-row") and page.text_content("#lexicon-name") == "english"
            page.click("#start")
            page.wait_for_function("document.getElementById('status').textContent.startsWith('Camera on')")
            page.wait_for_function("window.heard.length > 10")
            assert page.evaluate("window.heard.every((on) => on === true)")  # on by default
            for on in (False, True):
                page.set_checked("#lexicon", on)
                page.wait_for_timeout(1000)  # frames already on their way are answered under the old setting
                after = page.evaluate("window.heard.length")
                page.wait_for_function(f"window.heard.length > {after + 10}")
                assert page.evaluate(f"window.heard.slice({after}).every((said) => said === {str(on).lower()})")
        assert not errors, errors


@pytest.fixture(scope="module")
def hand_server(hand_run):  # noqa: F811
    """`keras-sign demo` of a model trained on hands (`--hands crop`)."""
    with demo_server(hand_run["bundle"]) as (url, _):
        yield url


@pytest.mark.slow
def test_blank_camera_frames_type_nothing_and_the_hand_is_drawn(hand_run, hand_server, tmp_path):  # noqa: F811
    """No hand, no letter, in the browser: 3 s of an empty room, then photos of hands."""
    room = np.full((120, 120, 3), 128, np.uint8)
    hands = [np.asarray(Image.open(path).convert("RGB").resize((120, 120)))
             for path in sorted((hand_run["data"] / "1").glob("*.JPG"))[:3] for _ in range(30)]
    y4m = tmp_path / "camera.y4m"
    write_y4m(y4m, [room] * 45 + hands, 15)
    with page_with_camera(y4m, hand_server) as (page, errors):
        page.click("#start")
        page.wait_for_function("document.getElementById('status').textContent.includes('the square follows')")
        started, seen, blank_text = time.monotonic(), [], []
        while time.monotonic() - started < 5.5:
            seen.append((time.monotonic() - started, page.text_content("#hand")))
            if time.monotonic() - started < 2.5:
                blank_text.append(page.text_content("#text"))
            time.sleep(0.1)
        drawn = page.evaluate("(() => { const c = document.getElementById('overlay'); return Array.from("
                              "c.getContext('2d').getImageData(0, 0, c.width, c.height).data)"
                              ".some((value, i) => i % 4 == 3 && value > 0); })()")
    assert not errors, errors
    early = [hand for moment, hand in seen if 0.5 < moment < 2.5]
    assert early and all(hand == "no hand" for hand in early)  # the empty room: no hand
    assert all(text == "" for text in blank_text)  # and no letter
    assert any(hand == "right hand" for _, hand in seen)  # then the photos' hands, drawn over the camera
    assert drawn


@pytest.mark.slow
def test_the_page_teaches_two_signs_from_the_camera_then_spells_them(landmark_parent, tmp_path):  # noqa: F811
    """Teach mode as a new signer uses it: Massey's signer 3, whom the model never saw, shows two signs to the
    camera (one recorded clip each), the page captures shots of each (one is thrown away), adapts, and spells a clip
    of that signer's other photos of the two signs."""
    def clip_of(name, signs, photos):
        frames = []
        for sign in signs:
            for path in sorted((MASSEY / "hand3" / sign).iterdir())[photos]:
                canvas = Image.new("RGB", (240, 240))  # Massey's black backdrop, around the photo
                photo = Image.open(path).convert("RGB")
                photo.thumbnail((220, 220))
                canvas.paste(photo, ((240 - photo.width) // 2, (240 - photo.height) // 2))
                frames += [np.asarray(canvas)] * 20
        write_y4m(tmp_path / f"{name}.y4m", frames, 15)
        return tmp_path / f"{name}.y4m"

    shots = tmp_path / "shots"
    thumbs = "document.querySelectorAll('#thumbs figure[data-sign=\"{}\"]').length"
    teach_status = "document.getElementById('teach-status').textContent"
    with demo_server(landmark_parent, "--shots", shots) as (url, _):
        for sign in ("a", "b"):
            with page_with_camera(clip_of(sign, [sign], slice(0, 3)), url) as (page, errors):
                assert page.is_visible("#teach") and not errors, errors
                if sign == "b":  # the shots of the first session are the server's: shown again
                    page.wait_for_function(thumbs.format("a") + " === 3")
                page.click("#start")
                page.wait_for_function("document.getElementById('status').textContent.startsWith('Camera on')")
                page.fill("#teach-count", "3")
                page.select_option("#teach-sign", sign)
                page.click("#teach-capture")
                page.wait_for_function(thumbs.format(sign) + " === 3", timeout=30_000)
                if sign == "b":
                    page.click("#thumbs figure[data-sign='b'] button")  # thrown away
                    page.wait_for_function(thumbs.format("b") + " === 2")
                    page.click("#teach-adapt")
                    page.wait_for_function(f"{teach_status}.includes('uses the adapted')", timeout=180_000)
                assert not errors, errors
        with page_with_camera(clip_of("spell", ["a", "b", "a"], slice(3, 5)), url) as (page, errors):
            assert page.is_enabled("#use-original") and not page.is_enabled("#use-adapted")
            page.click("#start")
            started, spelled = time.monotonic(), ""
            while time.monotonic() - started < 12 and not {"a", "b"} <= set(spelled.lower()):
                spelled = page.text_content("#text")
                time.sleep(0.2)
            page.click("#use-original")
            page.wait_for_function(f"{teach_status}.includes('original model')")
            assert not errors, errors
    assert sorted(path.parent.name for path in shots.rglob("[!.]*.jpg")) == ["a"] * 3 + ["b"] * 2
    record = json.loads((tmp_path / "shots-adapted-1" / "run.json").read_text())
    assert record["shots"]["used"] == 5 and record["adapted_from"]["run"] == str(landmark_parent.resolve())
    assert {"a", "b"} <= set(spelled.lower()), spelled  # the adapted model spells both signs from the camera
