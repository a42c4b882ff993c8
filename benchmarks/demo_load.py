"""Load on `keras-sign demo`: N browser-like clients at once, on loopback, for a bounded time.

    python benchmarks/demo_load.py exports/massey-tflite-none clips/massey-test-hello-world/frames \
        [--clients 1,2,4,8] [--seconds 10] [--json out.json]

The server is started as a user starts it (`keras-sign demo MODEL --port P`, its own process). Each
client replays the recorded frames re-encoded as the page sends them (JPEG, 240 px high, quality 85)
over its own WebSocket, in one of two ways:
- page: as app.js does, one frame in flight, at most 30 frames/s: round-trip and server latency;
- flood: 30 frames/s whatever the answers, as a page on a slow link would: the server must answer
  only the newest frame and drop (and count) the rest, its memory and latency staying bounded.
The baseline, in the same run: the same frames through the server's own per-frame function in this
process, one after another (no HTTP, no WebSocket): the most one process can classify.
"""

import argparse
import asyncio
import io
import json
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
from PIL import Image

CAMERA_FPS = 30
SEND_HEIGHT = 240


def page_frames(folder):
    """The recorded frames as the page sends them."""
    frames = []
    for path in sorted(Path(folder).glob("*.jpg")):
        image = Image.open(path).convert("RGB")
        width = round(image.width * SEND_HEIGHT / image.height)
        buffer = io.BytesIO()
        image.resize((width, SEND_HEIGHT)).save(buffer, "JPEG", quality=85)
        frames.append(buffer.getvalue())
    if not frames:
        sys.exit(f"{folder} holds no .jpg frames; pass a clip's frames folder (keras-sign data clip).")
    return frames


def baseline(model, frames):
    """Per-frame milliseconds of the server's function, called directly, one frame after another."""
    from keras_sign.demo.server import FrameModel
    from keras_sign.inference.classifier import load_classifier

    frame_model = FrameModel(load_classifier(model))
    frame_model.warm_up()
    times = []
    for data in frames:
        started = time.perf_counter()
        frame_model.classify_jpeg(data)
        times.append(1000 * (time.perf_counter() - started))
    return times


async def client(url, frames, seconds, flood, offset):
    from websockets.asyncio.client import connect

    round_trips, server_ms, answered, last = [], [], 0, {}
    async with connect(url, max_size=None) as socket_:
        deadline = time.monotonic() + seconds
        if flood:
            async def send_all():
                index = offset
                while time.monotonic() < deadline:
                    await socket_.send(frames[index % len(frames)])
                    index += 1
                    await asyncio.sleep(1 / CAMERA_FPS)

            sender = asyncio.create_task(send_all())
            while time.monotonic() < deadline:
                try:
                    left = max(0.01, deadline - time.monotonic())
                    reply = json.loads(await asyncio.wait_for(socket_.recv(), timeout=left))
                except asyncio.TimeoutError:
                    break
                if reply["type"] == "frame":
                    answered += 1
                    server_ms.append(reply["latency_ms"]["total"])
                    last = reply
            await sender
        else:
            index = offset
            while time.monotonic() < deadline:
                sent = time.monotonic()
                await socket_.send(frames[index % len(frames)])
                reply = json.loads(await socket_.recv())
                round_trips.append(1000 * (time.monotonic() - sent))
                if reply["type"] == "frame":
                    answered += 1
                    server_ms.append(reply["latency_ms"]["total"])
                    last = reply
                index += 1
                await asyncio.sleep(max(0.0, 1 / CAMERA_FPS - (time.monotonic() - sent)))
    return {"answered": answered, "round_trips": round_trips, "server_ms": server_ms,
            "dropped": last.get("dropped", 0)}


def run_clients(url, frames, clients, seconds, flood):
    async def everyone():
        return await asyncio.gather(*[client(url, frames, seconds, flood, 17 * i) for i in range(clients)])

    results = asyncio.run(everyone())
    round_trips = [t for r in results for t in r["round_trips"]]
    server_ms = [t for r in results for t in r["server_ms"]]
    answered = sum(r["answered"] for r in results)
    return {
        "mode": "flood" if flood else "page", "clients": clients, "seconds": seconds,
        "frames_per_second": round(answered / seconds, 1),
        "per_client_fps": round(answered / seconds / clients, 1),
        "round_trip_p50_ms": round(float(np.median(round_trips)), 2) if round_trips else None,
        "round_trip_p95_ms": round(float(np.percentile(round_trips, 95)), 2) if round_trips else None,
        "server_p95_ms": round(float(np.percentile(server_ms, 95)), 2) if server_ms else None,
        "dropped": sum(r["dropped"] for r in results),
    }


def start_server(model):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen([sys.executable, "-m", "keras_sign.cli", "demo", str(model), "--port", str(port)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api/info", timeout=2)
            return process, port
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                sys.exit(f"the demo server did not start:\n{process.communicate()[1]}")
            time.sleep(0.5)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model")
    parser.add_argument("frames", help="a folder of recorded .jpg frames (a clip's frames/)")
    parser.add_argument("--clients", default="1,2,4,8")
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    frames = page_frames(args.frames)
    direct = baseline(args.model, frames)
    direct_fps = 1000 / float(np.mean(direct))
    print(f"baseline, the server's per-frame function called directly: median {np.median(direct):.2f} ms, "
          f"p95 {np.percentile(direct, 95):.2f} ms, {direct_fps:.0f} frames/s ({len(frames)} frames of "
          f"{Image.open(io.BytesIO(frames[0])).size[0]}x{SEND_HEIGHT})")
    process, port = start_server(args.model)
    rows = []
    try:
        for flood in (False, True):
            for clients in [int(n) for n in args.clients.split(",")]:
                row = run_clients(f"ws://127.0.0.1:{port}/ws", frames, clients, args.seconds, flood)
                row["of_baseline"] = round(row["frames_per_second"] / direct_fps, 2)
                rows.append(row)
                print(json.dumps(row))
    finally:
        process.terminate()
        process.wait(timeout=30)
    print("\n| mode | clients | frames/s answered (per client) | x baseline | round trip p50 / p95 ms "
          "| server p95 ms | dropped |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        trip = f"{r['round_trip_p50_ms']} / {r['round_trip_p95_ms']}" if r["round_trip_p50_ms"] else "-"
        print(f"| {r['mode']} | {r['clients']} | {r['frames_per_second']} ({r['per_client_fps']}) | "
              f"{r['of_baseline']} | {trip} | {r['server_p95_ms']} | {r['dropped']} |")
    if args.json:
        Path(args.json).write_text(json.dumps({"baseline_ms": direct, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
