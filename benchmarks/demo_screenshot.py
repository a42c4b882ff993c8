"""A screenshot of `keras-sign demo` mid-word, with a clip as the camera, and the latency the page shows.

    python benchmarks/demo_screenshot.py exports/massey-tflite-none clips/massey-test-hello-world \
        docs/images/demo.png [--after 5.5] [--chromium /usr/bin/chromium]

Writes the clip's frames as the y4m file Chromium plays as a fake camera, starts the server as a user
does, opens the page in headless Chromium, presses Start camera, and takes the screenshot --after
seconds later. Prints the text spelled so far and the page's per-frame server latency each second.
"""

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from demo_load import start_server
from PIL import Image


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model")
    parser.add_argument("clip", help="a folder written by `keras-sign data clip`")
    parser.add_argument("out", help="the PNG to write")
    parser.add_argument("--after", type=float, default=5.5, help="seconds of the clip before the screenshot")
    parser.add_argument("--chromium", default=shutil.which("chromium"))
    args = parser.parse_args()

    from playwright.sync_api import sync_playwright

    from keras_sign.spelling.clip import write_y4m

    with tempfile.TemporaryDirectory() as folder:
        y4m = Path(folder) / "camera.y4m"
        frames = [np.asarray(Image.open(p).convert("RGB")) for p in sorted(Path(args.clip, "frames").glob("*.jpg"))]
        write_y4m(y4m, frames, 15)
        process, port = start_server(args.model)
        try:
            with sync_playwright() as driver:
                browser = driver.chromium.launch(executable_path=args.chromium, args=[
                    "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
                    f"--use-file-for-fake-video-capture={y4m}"])
                page = browser.new_page(viewport={"width": 1100, "height": 660})
                page.goto(f"http://127.0.0.1:{port}/")
                page.wait_for_function("document.getElementById('status').textContent.startsWith('Connected')")
                page.click("#start")
                page.wait_for_function("document.getElementById('status').textContent.startsWith('Camera on')")
                started = time.monotonic()
                while time.monotonic() - started < args.after:
                    time.sleep(min(1.0, args.after - (time.monotonic() - started)))
                    print(f"{time.monotonic() - started:4.1f} s: text {page.text_content('#text')!r}, server "
                          f"{page.text_content('#latency')} ms per frame, {page.text_content('#fps')} frames/s, "
                          f"dropped {page.text_content('#dropped')}")
                page.screenshot(path=args.out)
                browser.close()
        finally:
            process.terminate()
            process.wait(timeout=30)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
