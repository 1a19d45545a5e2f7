"""The web demo's Gradio page (dmfn_lightning.webapp.page): the button's callback without a browser, the page's
controls, and an end-to-end run of ``python -m dmfn_lightning.app`` in headless Chromium (Debian's /usr/bin/chromium
driven by Playwright, which downloads nothing)."""

from __future__ import annotations

import contextlib
import io
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tests.webapp.editor_fakes import H, W, assert_known_pixels_kept, box_mask, brush_layer, editor, photo

gr = pytest.importorskip("gradio", reason="the app extra (gradio) is not installed: pip install -e '.[app]'")

from dmfn_lightning import app  # noqa: E402
from dmfn_lightning.core.errors import DMFNError, InpaintError  # noqa: E402
from dmfn_lightning.models import DMFNGenerator, export_generator  # noqa: E402
from dmfn_lightning.webapp import page  # noqa: E402
from dmfn_lightning.webapp.request import inpaint_request  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
# The browser test always takes a screenshot (into tmp_path). To refresh the README's docs/images/app.png:
# DMFN_APP_SCREENSHOT=docs/images/app.png DMFN_APP_CHECKPOINT=outputs/demo/generator.pt \
#   pytest tests/webapp/test_page.py -m slow
SCREENSHOT = os.environ.get("DMFN_APP_SCREENSHOT", "")
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
MASKS = app.generated_masks()  # what python -m dmfn_lightning.app offers: the registry's kinds for photos


@pytest.fixture(scope="module")
def generator() -> DMFNGenerator:
    torch.manual_seed(0)
    return DMFNGenerator(num_blocks=1, base_channels=16).eval()


# ---------------------------------------------------------------------------------------------------------------
# the callback without a browser


def test_callback_returns_result_preview_png_and_summary(generator, tmp_path):
    run = page.make_callback(generator, masks=MASKS, output_dir=tmp_path)
    image = photo()
    hole = box_mask(30, 40, 50, 60)
    result, preview, png, summary = run(editor(image, brush_layer(hole)), None, "none", 0, "cpu", "fp32", 0)
    assert result.size == preview.size == image.size
    assert Path(png).suffix == ".png" and Path(png).is_relative_to(tmp_path)
    with Image.open(png) as saved:
        assert saved.format == "PNG"
        np.testing.assert_array_equal(np.asarray(saved), np.asarray(result))
    assert_known_pixels_kept(result, image, hole)
    assert "cpu" in summary and "fp32" in summary and "full resolution" in summary


def test_bf16_and_working_size_keep_known_pixels(generator, tmp_path):
    run = page.make_callback(generator, masks=MASKS, output_dir=tmp_path)
    image = photo(203, 157)  # not a multiple of 4: padded and cropped back by the library
    hole = box_mask(40, 50, 60, 70, size=(203, 157))
    for precision, working in (("bf16", 0), ("fp32", 64)):
        result, *_ = run(editor(image, brush_layer(hole)), None, "none", 0, "cpu", precision, working)
        assert result.size == (203, 157)
        assert_known_pixels_kept(result, image, hole)


def test_empty_mask_is_a_visible_message(generator, tmp_path):
    run = page.make_callback(generator, masks=MASKS, output_dir=tmp_path)
    empty_layer = brush_layer(np.zeros((H, W), dtype=bool))
    with pytest.raises(gr.Error, match=r"mask is empty.*brush.*mask image.*generated"):
        run(editor(photo(), empty_layer), None, "none", 0, "cpu", "fp32", 0)


def test_missing_image_is_a_visible_message(generator, tmp_path):
    run = page.make_callback(generator, masks=MASKS, output_dir=tmp_path)
    with pytest.raises(gr.Error, match="No image: upload a photo"):
        run(None, None, "centre box", 0, "cpu", "fp32", 0)
    with pytest.raises(gr.Error, match="No image"):
        run({"background": None, "layers": [], "composite": None}, None, "centre box", 0, "cpu", "fp32", 0)


def test_non_image_uploads_are_visible_messages(generator, tmp_path):
    run = page.make_callback(generator, masks=MASKS, output_dir=tmp_path)
    text = tmp_path / "notes.png"
    text.write_text("this is not an image")
    with pytest.raises(gr.Error, match=r"image 'notes.png' is not an image this app can read"):
        run(str(text), None, "centre box", 0, "cpu", "fp32", 0)
    with pytest.raises(gr.Error, match=r"mask file 'notes.png' is not an image") as info:
        run(editor(photo()), str(text), "none", 0, "cpu", "fp32", 0)
    assert str(tmp_path) not in str(info.value)  # the message names the file, not the server's temp path
    with pytest.warns(UserWarning, match="not an image"):  # warned as soon as it is uploaded
        page.check_mask_upload(str(text))


def test_huge_image_is_refused_unless_a_working_size_is_set(generator, tmp_path):
    image = photo()
    run = page.make_callback(generator, masks=MASKS, max_pixels=10_000, output_dir=tmp_path)
    with pytest.raises(gr.Error, match=r"200x160 \(0.0 MP\).*limit.*working size"):
        run(editor(image, brush_layer(box_mask(10, 10, 20, 20))), None, "none", 0, "cpu", "fp32", 0)
    result, *_ = run(editor(image, brush_layer(box_mask(10, 10, 20, 20))), None, "none", 0, "cpu", "fp32", 64)
    assert result.size == image.size
    # A file on disk is refused from its header, before it is decoded.
    image.save(tmp_path / "big.png")
    with pytest.raises(InpaintError, match="limit"):
        inpaint_request(generator, str(tmp_path / "big.png"), mask_kind="center", max_pixels=10_000, masks=MASKS)


def _png_header(path: Path, width: int, height: int) -> Path:
    """A PNG whose header says ``width x height`` and whose pixel data is a few bytes: reading its header costs
    nothing, decoding it would need gigabytes (as a 12000x9000 photo in a 337 KB PNG does)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\0" * 64)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b""))
    return path


def _through_the_api(demo, editor_payload: dict) -> None:
    """One press of Inpaint as Gradio's API runs it (preprocessing included), a generated hole added."""
    import asyncio

    fn = next(f for f in demo.fns.values() if f.api_name == "inpaint")
    inputs = [editor_payload, None, "centre box", 0, "cpu", "fp32", 0, "auto", 128]
    asyncio.run(demo.process_api(fn, inputs, explicit_call=True))


@pytest.mark.parametrize("kind", ["not-an-image", "12000x9000", "20000x20000"])
def test_api_uploads_are_checked_from_their_headers_before_decoding(kind, generator, tmp_path, monkeypatch):
    """Issue case 18: through the web app's API a non-image background or a 20000x20000 PNG gave Gradio's "Could
    not preprocess input component" and a server traceback, and a 12000x9000 image was refused only after being
    decoded (server memory 1.3 -> 4.1 GB). The editor now hands its files over undecoded and the request path
    refuses them from their headers, in the page's one-line error, without decoding anything."""
    if kind == "not-an-image":
        path, phrase = tmp_path / "notes.png", "The image 'notes.png' is not an image this app can read"
        path.write_text("this is not an image")
    else:
        width, height = (int(v) for v in kind.split("x"))
        path = _png_header(tmp_path / "huge.png", width, height)
        phrase = f"{kind}" if kind == "12000x9000" else "too large to decode safely"
    decoded = []
    monkeypatch.setattr(Image.Image, "load", lambda self, *a, **k: decoded.append(self.size))
    monkeypatch.setattr("PIL.ImageFile.ImageFile.load", lambda self, *a, **k: decoded.append(self.size))
    demo = app.build_app(generator, devices=["cpu"], output_dir=tmp_path / "out")
    payload = {"background": {"path": str(path), "orig_name": path.name, "meta": {"_type": "gradio.FileData"}}}
    with pytest.raises(gr.Error) as info:
        _through_the_api(demo, {**payload, "layers": [], "composite": None, "id": None})
    message = str(info.value.message)
    assert phrase in message and "\n" not in message and str(tmp_path) not in message
    assert decoded == []  # nothing was decoded


def test_the_editor_hands_over_files_undecoded(generator, tmp_path):
    """The page's editor: uploaded files by path, browser blobs written as they came; neither is opened."""
    from gradio.components.image_editor import EditorData, EditorDataBlobs
    from gradio.data_classes import FileData

    demo = page.build_app(generator, masks=MASKS, devices=["cpu"])
    editor_box = next(b for b in demo.blocks.values() if getattr(b, "elem_id", None) == "editor")
    assert editor_box.get_block_name() == "imageeditor"  # the browser shows the usual image editor
    assert not Path(page.__file__).with_suffix(".pyi").exists()  # no component class of ours: no stub written
    upload = tmp_path / "photo.png"
    upload.write_bytes(b"anything at all")
    value = editor_box.preprocess(EditorData(background=FileData(path=str(upload)), layers=[]))
    assert value == {"background": str(upload), "layers": [], "composite": None}
    blobs = EditorDataBlobs(background=b"canvas bytes", layers=[None, b"stroke"], composite=None)
    editor_box.blob_storage["abc"] = blobs
    value = editor_box.preprocess(EditorData(id="abc"))
    assert Path(value["background"]).read_bytes() == b"canvas bytes" and len(value["layers"]) == 1
    assert Path(value["layers"][0]).read_bytes() == b"stroke" and "abc" not in editor_box.blob_storage
    assert editor_box.preprocess(None) is None


def test_build_app_is_a_blocks_page(generator):
    demo = page.build_app(
        generator, masks=MASKS, checkpoint="outputs/demo/generator.pt", devices=["cpu"], working_size=256
    )
    assert isinstance(demo, gr.Blocks)
    ids = {getattr(block, "elem_id", None) for block in demo.blocks.values()}
    assert {"editor", "mask-file", "mask-kind", "device", "precision", "working-size", "run", "result"} <= ids
    assert {"strategy", "crop-margin"} <= ids  # the HD strategies
    assert page.available_devices()[0] == "cpu"
    (radio,) = [block for block in demo.blocks.values() if getattr(block, "elem_id", None) == "mask-kind"]
    assert [value for _, value in radio.choices] == list(MASKS.choices)
    assert list(MASKS.choices)[:4] == ["none", "centre box", "random box", "free-form"]
    bare = page.build_app(generator, devices=["cpu"])  # no generated holes handed in: none offered
    (radio,) = [block for block in bare.blocks.values() if getattr(block, "elem_id", None) == "mask-kind"]
    assert [value for _, value in radio.choices] == ["none"]


def test_the_page_offers_every_strategy(generator):
    demo = page.build_app(generator, masks=MASKS, devices=["cpu"], strategy="crop", crop_margin=48)
    boxes = {getattr(block, "elem_id", None): block for block in demo.blocks.values()}
    choices = [value for _, value in boxes["strategy"].choices]
    assert choices == ["auto", "full", "resize", "crop"]
    assert boxes["strategy"].value == "crop" and boxes["crop-margin"].value == 48
    assert page.build_app(generator, masks=MASKS, devices=["cpu"]).blocks  # default: auto
    with pytest.raises(InpaintError, match="got 'tiles'"):
        page.build_app(generator, masks=MASKS, devices=["cpu"], strategy="tiles")


def test_crop_strategy_keeps_known_pixels_and_lifts_the_limit_for_small_holes(generator, tmp_path):
    image = photo(600, 400)
    hole = box_mask(30, 40, 20, 30, size=(600, 400)) | box_mask(340, 530, 30, 40, size=(600, 400))
    run = page.make_callback(
        generator, masks=MASKS, max_pixels=100_000, output_dir=tmp_path
    )  # 600x400 is over the limit
    with pytest.raises(gr.Error, match=r"600x400 \(0.2 MP\).*limit.*'crop' strategy"):
        run(editor(image, brush_layer(hole)), None, "none", 0, "cpu", "fp32", 0, "full", 128)
    result, _, _, summary = run(editor(image, brush_layer(hole)), None, "none", 0, "cpu", "fp32", 0, "crop", 32)
    assert_known_pixels_kept(result, image, hole)
    assert (np.asarray(result)[hole] != np.asarray(image)[hole]).any()
    assert "crop strategy, 2 window(s) (256x256, 256x256) at full resolution" in summary
    # A hole that needs a window above the limit is refused, unless a working size caps the windows.
    big = box_mask(50, 50, 300, 400, size=(600, 400))
    with pytest.raises(gr.Error, match=r"largest crop window is 464x364 .*limit"):
        run(editor(image, brush_layer(big)), None, "none", 0, "cpu", "fp32", 0, "crop", 32)
    result, _, _, summary = run(editor(image, brush_layer(big)), None, "none", 0, "cpu", "fp32", 128, "crop", 32)
    assert_known_pixels_kept(result, image, big)
    assert "windows over 128 px processed at 128" in summary


def test_strategy_choices_and_bad_values(generator, tmp_path):
    run = page.make_callback(generator, masks=MASKS, output_dir=tmp_path)
    image, hole = photo(), box_mask(30, 40, 50, 60)
    *_, summary = run(editor(image, brush_layer(hole)), None, "none", 0, "cpu", "fp32", 64, "auto", 128)
    assert "resize strategy, working size 64" in summary  # auto + a working size: today's resize
    *_, summary = run(editor(image, brush_layer(hole)), None, "none", 0, "cpu", "fp32", 0, "resize", 128)
    assert "resize strategy, working size 256" in summary  # resize without a size: the training size
    with pytest.warns(UserWarning, match=r"working size \(64\) is not used by the 'full' strategy"):
        *_, summary = run(editor(image, brush_layer(hole)), None, "none", 0, "cpu", "fp32", 64, "full", 128)
    assert "full resolution" in summary
    with pytest.raises(gr.Error, match=r"crop margin must be a whole number of pixels >= 0, got -5"):
        run(editor(image, brush_layer(hole)), None, "none", 0, "cpu", "fp32", 0, "crop", -5)
    with pytest.raises(gr.Error, match=r"strategy must be one of full, resize, crop, got 'tiles'"):
        run(editor(image, brush_layer(hole)), None, "none", 0, "cpu", "fp32", 0, "tiles", 128)


def test_results_go_to_the_output_dir(generator, tmp_path):
    callback = page.make_callback(generator, masks=MASKS, output_dir=tmp_path / "results")
    stroke = box_mask(50, 70, 40, 60)
    _, _, png, _ = callback(editor(photo(), brush_layer(stroke)), None, "none", 0, "cpu", "fp32", 0)
    assert Path(png).is_file() and Path(png).is_relative_to(tmp_path / "results")


def test_missing_gradio_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "gradio", None)  # makes `import gradio` raise ImportError
    with pytest.raises(DMFNError, match=r"pip install 'dmfn_lightning\[app\]'"):
        page.import_gradio()


# ---------------------------------------------------------------------------------------------------------------
# end to end in a real browser


@pytest.fixture
def chromium() -> Path:
    """/usr/bin/chromium, installed with apt-get (as `make test` does) when missing and possible."""
    pytest.importorskip("playwright.sync_api", reason="Playwright is not installed (pip install -e '.[dev]')")
    if not CHROMIUM.exists() and shutil.which("apt-get") and os.geteuid() == 0:
        install = ["apt-get", "install", "-y", "-q", "chromium", "chromium-driver"]
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        if subprocess.run(install, capture_output=True, env=env, timeout=900).returncode != 0:
            subprocess.run(["apt-get", "update", "-q"], capture_output=True, env=env, timeout=600)
            subprocess.run(install, capture_output=True, env=env, timeout=900)
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is absent and could not be installed (apt-get install chromium chromium-driver)")
    return CHROMIUM


_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback, whatever $http_proxy says


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_server(url: str, proc: subprocess.Popen, log: Path, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"the app exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with _NO_PROXY.open(url, timeout=5) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    pytest.fail(f"the app did not answer on {url} within {timeout} s:\n{log.read_text()[-3000:]}")


@pytest.fixture
def served_app(tmp_path):
    """``python -m dmfn_lightning.app`` on a free loopback port with a random small generator (or the generator
    named by $DMFN_APP_CHECKPOINT, e.g. outputs/demo/generator.pt, for a nicer README screenshot)."""
    checkpoint = os.environ.get("DMFN_APP_CHECKPOINT")
    if checkpoint:
        checkpoint = str(Path(checkpoint).resolve())  # the app runs in tmp_path
    else:
        torch.manual_seed(0)
        checkpoint = str(export_generator(DMFNGenerator(num_blocks=1), tmp_path / "generator.pt"))
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    no_proxy = ",".join(filter(None, [os.environ.get("NO_PROXY", ""), "127.0.0.1", "localhost"]))
    env = {
        **os.environ,
        "GRADIO_ANALYTICS_ENABLED": "False",
        "GRADIO_TEMP_DIR": str(tmp_path / "gradio"),
        "NO_PROXY": no_proxy,
        "no_proxy": no_proxy,
    }
    log = tmp_path / "app.log"
    with open(log, "w") as out:
        cmd = [sys.executable, "-m", "dmfn_lightning.app", "--checkpoint", checkpoint, "--port", str(port)]
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=tmp_path)
    try:
        _wait_for_server(url, proc, log)
        yield url, log
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _fetch_image(page, locator, attribute: str = "src") -> Image.Image:
    src = locator.get_attribute(attribute)
    response = page.request.get(src)
    assert response.ok, src
    return Image.open(io.BytesIO(response.body())).convert("RGB")


def _wait_for_new_result(page, previous: str | None) -> None:
    page.wait_for_function(
        "prev => { const img = document.querySelector('#result img'); return img && img.src && img.src !== prev; }",
        arg=previous,
        timeout=120_000,
    )


def _upload_photo(page, path: Path) -> None:
    """Set the editor's file; done again if the editor's canvas was not ready to take it."""
    from playwright.sync_api import Error as PlaywrightError

    placeholder = page.locator("#editor").get_by_text("Upload an image")
    page.locator("#editor canvas").first.wait_for(timeout=60_000)
    for _ in range(5):
        page.locator("#editor input[type=file]").set_input_files(path)
        with contextlib.suppress(PlaywrightError):
            placeholder.wait_for(state="detached", timeout=10_000)
            return
    pytest.fail("the image editor did not take the uploaded photo")


def _toast(page, text: str) -> None:
    """Wait for a toast (gr.Error / gr.Warning) containing ``text``, then close all toasts."""
    from playwright.sync_api import Error as PlaywrightError

    toast = page.locator(".toast-body").filter(has_text=text)
    toast.first.wait_for(timeout=30_000)
    for _ in range(10):  # close them all, so they neither hide the page nor match the next check
        close = page.locator(".toast-close")
        if close.count() == 0:
            return
        with contextlib.suppress(PlaywrightError):  # it went away by itself meanwhile
            close.first.click(timeout=2_000)


_TRACEBACK = "Traceback (most recent call last):"
# Python's line between two chained tracebacks (raise ... from, or an exception while handling another).
_CHAINED = re.compile(
    r"\n\n(During handling of the above exception, another exception occurred"
    r"|The above exception was the direct cause of the following exception):\n\n$"
)
_CLIENT_DISCONNECT = re.compile(r"starlette\.requests\.ClientDisconnect(: .*)?")


def _raised_by_starlette_for_a_client_that_left(traceback: str) -> bool:
    """Whether one traceback (the text after its "Traceback" line) ends in ``starlette.requests.ClientDisconnect``
    raised in starlette itself: the request's client went away (the browser dropped a request of its own)."""
    lines = traceback.splitlines()
    frames = [i for i, line in enumerate(lines) if line.startswith('  File "')]
    if not frames:
        return False
    after = [line for line in lines[frames[-1] + 1 :] if line and not line.startswith(" ")]
    return bool(after) and bool(_CLIENT_DISCONNECT.fullmatch(after[0])) and "/starlette/" in lines[frames[-1]]


def server_errors(log: str) -> list[str]:
    """The tracebacks in a server log (chained tracebacks as one), except a client disconnect: a chain whose last
    exception is ``starlette.requests.ClientDisconnect`` raised by starlette (an upload the browser abandoned, e.g.
    under load). Everything else is an error, a ClientDisconnect raised anywhere else or inside an exception group
    included."""
    chains: list[list[str]] = []
    continues = False
    for part in log.split(_TRACEBACK)[1:]:  # each: one traceback and the text up to the next one
        if continues:
            chains[-1].append(part)
        else:
            chains.append([part])
        continues = bool(_CHAINED.search(part))
    return [
        _TRACEBACK + _TRACEBACK.join(chain)
        for chain in chains
        if not _raised_by_starlette_for_a_client_that_left(chain[-1])
    ]


_FRAMES = """  File "/venv/lib/python3.11/site-packages/uvicorn/protocols/http/h11_impl.py", line 403, in run_asgi
    result = await app(  # type: ignore[func-returns-value]
             ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
"""
_DISCONNECT = (
    f"{_TRACEBACK}\n{_FRAMES}"
    '  File "/venv/lib/python3.11/site-packages/starlette/requests.py", line 252, in stream\n'
    "    raise ClientDisconnect()\n"
    "starlette.requests.ClientDisconnect\n"
)
_OSERROR = (
    f'{_TRACEBACK}\n{_FRAMES}  File "/venv/lib/python3.11/site-packages/h11/_x.py", line 1, in w\nOSError: gone\n'
)
_VALUE_ERROR = (
    f"{_TRACEBACK}\n{_FRAMES}"
    '  File "/src/dmfn_lightning/webapp/page.py", line 10, in run\n'
    "    raise ValueError('bad')\n"
    "ValueError: bad\n"
)
_HANDLING = "\nDuring handling of the above exception, another exception occurred:\n\n"


@pytest.mark.parametrize(
    ("log", "errors"),
    [
        (f"* Running on local URL\nERROR:    Exception in ASGI application\n{_DISCONNECT}INFO: ok\n", 0),
        (f"ERROR:    Exception in ASGI application\n{_OSERROR}{_HANDLING}{_DISCONNECT}", 0),  # starlette's responses
        (f"ERROR:    Exception in ASGI application\n{_VALUE_ERROR}", 1),
        (f"{_DISCONNECT}\n{_VALUE_ERROR}", 1),  # two separate reports: one error
        (f"{_DISCONNECT}{_HANDLING}{_VALUE_ERROR}", 1),  # an error while handling a disconnect is an error
        (_DISCONNECT.replace("/starlette/requests.py", "/src/dmfn_lightning/webapp/page.py"), 1),  # not starlette's
        ("  + Exception Group " + _DISCONNECT.replace("\n", "\n  | "), 1),  # inside a group: not recognised
    ],
    ids=[
        "disconnect",
        "chained-disconnect",
        "error",
        "disconnect-then-error",
        "error-during-disconnect",
        "disconnect-raised-by-the-app",
        "in-a-group",
    ],
)
def test_server_errors_are_every_traceback_but_a_client_disconnect(log, errors):
    """Before: the browser test failed on any "Traceback" in the server log, a dropped upload's included."""
    assert len(server_errors(log)) == errors


def test_a_server_error_is_reported_whole():
    assert server_errors(f"INFO: started\n{_VALUE_ERROR}") == [_VALUE_ERROR]


def _save_screenshot(png: bytes, path: Path, budget: int = 280_000) -> None:
    """Full colour when small enough for the README, else a 256-colour palette (about a third of the size)."""
    shot = Image.open(io.BytesIO(png)).convert("RGB")
    shot.save(path, optimize=True)
    if path.stat().st_size > budget:
        shot.quantize(colors=256, method=Image.Quantize.FASTOCTREE).save(path, optimize=True)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_browser_end_to_end(chromium, served_app, tmp_path):
    from playwright import sync_api

    url, log = served_app
    image = photo()
    image.save(tmp_path / "astronaut.png")
    mask = box_mask(20, 20, 50, 70)  # upper-left quadrant; the brush stroke goes into the lower right
    Image.fromarray(mask.astype(np.uint8) * 255).save(tmp_path / "mask.png")
    (tmp_path / "notes.txt").write_text("not an image")
    src = np.asarray(image)

    external: list[str] = []

    def offline(route):  # the page must not need the internet (fonts, CDN, telemetry)
        if route.request.url.startswith((url, "data:", "blob:")):
            route.continue_()
        else:
            external.append(route.request.url)
            route.abort()

    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(chromium), args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.route("**/*", offline)
            page.goto(url, wait_until="load")
            page.locator("#run").wait_for(timeout=60_000)

            # Upload the photo into the editor; an empty mask is refused with a visible message.
            _upload_photo(page, tmp_path / "astronaut.png")
            page.click("#run")
            _toast(page, "The mask is empty")

            # A mask file that is not an image: warned on upload, refused on the button.
            page.locator("#mask-file input[type=file]").set_input_files(tmp_path / "notes.txt")
            _toast(page, "is not an image")
            page.click("#run")
            _toast(page, "'notes.txt' is not an image")
            page.locator("#mask-file").get_by_role("button", name="Clear").click()

            # Upload the mask image and inpaint: same size, the hole is exactly the mask, the rest unchanged.
            page.locator("#mask-file input[type=file]").set_input_files(tmp_path / "mask.png")
            page.locator("#mask-file").get_by_text("mask.png").wait_for()
            page.click("#run")
            _wait_for_new_result(page, None)
            first_src = page.locator("#result img").get_attribute("src")
            result = _fetch_image(page, page.locator("#result img"))
            preview = _fetch_image(page, page.locator("#preview img"))
            assert result.size == image.size
            hole = (np.asarray(preview) != src).any(-1)
            np.testing.assert_array_equal(hole, mask)
            out = np.asarray(result)
            np.testing.assert_array_equal(out[~mask], src[~mask])
            assert (out[mask] != src[mask]).any()
            download = page.locator("#download a").first
            assert download.get_attribute("download") == "inpainted.png"
            np.testing.assert_array_equal(np.asarray(_fetch_image(page, download, "href")), out)

            # Paint a stroke with the brush into the lower-right quadrant; the hole grows by the stroke only.
            page.locator("#editor").get_by_role("button", name="Brush").first.click()
            box = page.locator("#editor canvas").first.bounding_box()
            cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
            page.mouse.move(cx + 20, cy + 20)
            page.mouse.down()
            page.mouse.move(cx + 60, cy + 45, steps=12)
            page.mouse.up()
            page.click("#run")
            _wait_for_new_result(page, first_src)
            result = _fetch_image(page, page.locator("#result img"))
            preview = _fetch_image(page, page.locator("#preview img"))
            hole = (np.asarray(preview) != src).any(-1)
            stroke = hole & ~mask
            assert hole[mask].all() and stroke.any(), "the brush stroke did not reach the server"
            ys, xs = np.nonzero(stroke)
            assert xs.mean() > W / 2 and ys.mean() > H / 2, "the stroke landed in the wrong place"
            assert result.size == image.size
            np.testing.assert_array_equal(np.asarray(result)[~hole], src[~hole])
            assert page.locator("#status").inner_text().startswith("Filled")

            screenshot = Path(SCREENSHOT) if SCREENSHOT else tmp_path / "app.png"
            screenshot.parent.mkdir(parents=True, exist_ok=True)
            _save_screenshot(page.screenshot(full_page=True), screenshot)
        finally:
            browser.close()
    assert not external, f"the page tried to reach the internet: {external}"
    assert screenshot.stat().st_size < 300_000
    # A real server error fails the test; a ClientDisconnect of a request the browser dropped (an upload under load)
    # does not: the page above is what the user sees, and it worked.
    errors = server_errors(log.read_text())
    assert not errors, "\n".join(errors)[-3000:]
