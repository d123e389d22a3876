"""The Gradio app end to end: the real app on a local port, driven by headless Chromium
(playwright with the system's ``chromium``; no browser download) and by ``gradio_client``.

Screenshots go to ``tests/artifacts/app/`` (ignored by git). The app runs with the ``test``
preset (few iterations) so a whole run takes seconds.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import socket
import sys
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("gradio", reason="gradio is not installed (pip install -r requirements.txt)")
pytestmark = [  # gradio's own deprecation noise (its queue monitoring with pandas 3, numpy 1.26)
    pytest.mark.filterwarnings("ignore:The copy keyword is deprecated"),
    pytest.mark.filterwarnings("ignore:'future.no_silent_downcasting' is deprecated"),
    pytest.mark.filterwarnings("ignore:`np.bool8` is a deprecated alias"),
]

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
ARTIFACTS = ROOT / "tests" / "artifacts" / "app"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--use-gl=swiftshader",
    "--enable-unsafe-swiftshader",
    "--disable-background-networking",
]
RUN_TIMEOUT_MS = 180_000


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def app_url() -> Iterator[str]:
    """The app, launched in this process on a free local port (test preset, no analytics)."""
    preset = os.environ.get("D3DFACE_APP_PRESET")
    os.environ["D3DFACE_APP_PRESET"] = "test"
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    import space_app

    imported = space_app.demo
    space_app.demo = space_app.build_demo()  # built again: the app offers the test preset now
    _, url, _ = space_app.launch(
        server_name="127.0.0.1", server_port=_free_port(), prevent_thread_lock=True, quiet=True
    )
    yield url
    space_app.demo.close()
    space_app.demo = imported
    if preset is None:
        del os.environ["D3DFACE_APP_PRESET"]
    else:
        os.environ["D3DFACE_APP_PRESET"] = preset


def _hidden_percent(text: str) -> float:
    """The "X% of the photo hidden" figure of a status or summary text (0 when absent)."""
    found = re.search(r"([\d.]+)% of the photo hidden", text)
    return float(found.group(1)) if found else 0.0


@pytest.fixture
def browser() -> Iterator[Any]:
    """Headless system Chromium (playwright's sync API); screenshots go to ARTIFACTS."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("no system chromium (apt-get install -y chromium); the browser test needs it")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


def _open(browser: Any, url: str, width: int = 1400, height: int = 1000) -> Any:
    """A new page of the app at a ``width`` x ``height`` viewport, its examples loaded."""
    page = browser.new_page(viewport={"width": width, "height": height})
    page.set_default_timeout(60_000)
    page.goto(url, wait_until="load")
    page.wait_for_selector("#photo")
    page.wait_for_function(  # the example thumbnails have loaded
        "[...document.querySelectorAll('button.gallery-item img')]"
        ".every(img => img.complete && img.naturalWidth > 0)"
    )
    return page


def _wait_for_mask(page: Any) -> str:
    """Wait until the mask of a new photo is shown; its status text."""
    page.wait_for_function("document.querySelector('#mask-status').innerText.includes('Mask')")
    return str(page.locator("#mask-status").inner_text())


def _start_run(page: Any, n: int) -> None:
    """Set N, pick the test preset and press Reconstruct."""
    number = page.locator("#n-samples input[type=number]")
    number.fill(str(n))
    number.press("Enter")
    page.locator("#preset").get_by_text("test", exact=False).click()
    page.get_by_role("button", name="Reconstruct").click()


def _wait_for_result(page: Any, n: int | None = None) -> str:
    """Wait until a run's summary (of ``n`` samples, when given) is shown; its text."""
    count = "\\d+" if n is None else str(n)
    page.wait_for_function(
        f"/\\b{count} completions? in/.test(document.querySelector('#summary').innerText)",
        timeout=RUN_TIMEOUT_MS,
    )
    return str(page.locator("#summary").inner_text())


def test_app_in_a_browser(app_url: str, browser: Any) -> None:
    """Example -> mask (painted on) -> N = 3 samples: viewers, thumbnails, blend, zip."""
    page = _open(browser, app_url)
    blends: list[str] = []
    page.on("response", lambda r: blends.append(r.url) if "/blend_" in r.url else None)
    assert "d3dface" in page.title()
    page.screenshot(path=ARTIFACTS / "01_start.png", full_page=True)

    # 1. an example photo -> its automatic mask in the editor
    page.locator("button.gallery-item").first.click()
    automatic = _hidden_percent(_wait_for_mask(page))
    editor = page.locator("#mask-editor")
    editor.scroll_into_view_if_needed()
    # 2. paint a stroke across the forehead: it adds to the mask
    editor.get_by_role("button", name="Brush", exact=True).click()
    box = editor.locator("canvas").first.bounding_box()
    assert box is not None
    x, y = box["x"] + box["width"] * 0.35, box["y"] + box["height"] * 0.22
    page.mouse.move(x, y)
    page.mouse.down()
    for step in range(1, 16):
        page.mouse.move(x + step * box["width"] * 0.02, y, steps=2)
    page.mouse.up()
    page.screenshot(path=ARTIFACTS / "02_mask.png", full_page=True)

    # 3. settings: N = 3, the test preset; run
    _start_run(page, 3)
    progress_seen: list[str] = []
    deadline = time.monotonic() + RUN_TIMEOUT_MS / 1000
    # the stages move the progress text (not only its first one)
    while not progress_seen and time.monotonic() < deadline:
        text = page.locator("#summary").inner_text()
        if "%" in text and "loading the models" not in text:
            progress_seen.append(text)
        elif "completions in" in text:
            break
        page.wait_for_timeout(100)
    summary = _wait_for_result(page)
    assert progress_seen, "the progress text never left its first stage"
    assert "3 completions" in summary and "ASD-O" in summary
    assert _hidden_percent(summary) > automatic  # the painted stroke was used

    # every sample in its own 3D viewer, and a thumbnail each
    viewers = page.locator(".sample-viewer:visible")
    page.wait_for_function("document.querySelectorAll('.sample-viewer canvas').length === 3")
    assert viewers.count() == 3
    assert page.locator("#thumbnails img").count() == 3
    for selector in ("#picked", "#spread", "#blended"):
        assert page.locator(f"{selector} canvas").count() == 1
    for viewer in [*viewers.all(), *(page.locator(s) for s in ("#picked", "#spread"))]:
        viewer.scroll_into_view_if_needed()  # viewers draw once on screen
        page.wait_for_timeout(700)
    page.locator(".sample-viewer").first.screenshot(path=ARTIFACTS / "03_viewer.png")
    page.screenshot(path=ARTIFACTS / "03_result.png", full_page=True)

    # two samples or more: the blend controls, under their heading
    assert page.locator("#blend-controls").is_visible()
    assert "Blend two samples (their latent codes" in page.locator("#blend-heading").inner_text()

    # pick a thumbnail: it is shown large
    page.locator("#thumbnails img").nth(2).click()
    page.wait_for_function("document.querySelector('#picked').innerText.includes('sample 2')")

    # move the blend slider: a new blend is decoded and shown
    seen = len(blends)
    slider = page.locator("#blend input[type=range]")
    slider.scroll_into_view_if_needed()
    slider.fill("0.9")
    deadline = time.monotonic() + 30
    while len(blends) == seen and time.monotonic() < deadline:
        page.wait_for_timeout(200)
    assert len(blends) > seen, "moving the slider did not load a new blend mesh"
    time.sleep(2)
    page.locator("#blended").screenshot(path=ARTIFACTS / "04_blend.png")

    # the zip of everything
    page.locator("#download").scroll_into_view_if_needed()
    with page.expect_download() as download:
        page.locator("#download a").first.click()
    archive = ARTIFACTS / "result.zip"
    download.value.save_as(archive)
    with zipfile.ZipFile(archive) as result:
        names = set(result.namelist())
    expected = {f"sample_0{i}.{suffix}" for i in range(3) for suffix in ("glb", "obj", "ply")}
    assert expected | {"spread.glb", "mask.png", "overlay.png", "metrics.json"} <= names


def test_an_error_pop_up_says_what_failed(app_url: str, browser: Any) -> None:
    """Reconstruct without a photo: the pop-up names what failed, not only "Error" (its
    plain-text message's first line, in bold), and the button works again."""
    page = _open(browser, app_url)
    page.get_by_role("button", name="Reconstruct").click()
    toast = page.locator(".toast-body").first
    toast.wait_for()
    page.wait_for_timeout(500)  # the pop-up slides in
    toast.screenshot(path=ARTIFACTS / "07_error.png")
    message = toast.get_by_test_id("toast-text")
    title, words = message.inner_text().splitlines()
    assert title == "Photo not usable." and words.startswith("Upload a photo of a face first")
    assert message.evaluate("e => getComputedStyle(e, '::first-line').fontWeight") == "600"
    page.get_by_role("button", name="Reconstruct", exact=True).wait_for()  # not "…ing"
    assert page.get_by_role("button", name="Reconstruct", exact=True).is_enabled()


def test_a_file_that_is_not_an_image_leaves_no_mask_of_another_photo(
    app_url: str, browser: Any, tmp_path: Path
) -> None:
    """An example, then a text file as the photo: the pop-up says what is wrong, and the
    example's mask leaves the editor (it stayed, for the run to use with no photo of its
    own). The editor without a photo, at the start and then, shows a hint, not a blank
    canvas with tools."""
    notes = tmp_path / "holiday.jpg"
    notes.write_text("not a photo")
    page = _open(browser, app_url)
    _editor_shows_its_hint(page)
    page.locator("button.gallery-item").first.click()
    assert "Mask of the example" in _wait_for_mask(page)
    page.locator("#photo input[type=file]").set_input_files(notes)
    toast = page.get_by_test_id("toast-text").first
    toast.wait_for()
    assert toast.inner_text().startswith("Photo not usable.\nThat file is not an image")
    page.wait_for_function(
        "document.querySelector('#mask-status').innerText.startsWith('No mask:')"
    )
    page.wait_for_timeout(500)
    page.screenshot(path=ARTIFACTS / "11_not_an_image.png")
    assert _editor_spread(page, "11_not_an_image_editor.png") < 20  # an empty editor
    _editor_shows_its_hint(page)


def _editor_shows_its_hint(page: Any) -> None:
    """Assert that the mask editor shows its hint, and neither its canvas nor its tools."""
    editor = page.locator("#mask-editor")
    hint = editor.locator(".image-container").evaluate(
        "e => getComputedStyle(e, '::before').content"
    )
    assert hint == '"The photo and its mask appear here"'
    for part in (".pixi-target", "button[aria-label=Brush]", "button[aria-label='Clear canvas']"):
        assert editor.locator(part).is_hidden()


def test_a_photo_with_two_faces_runs_on_the_face_picked(
    app_url: str, browser: Any, tmp_path: Path
) -> None:
    """An example removed leaves an empty editor. Two faces: the Face picker appears, picking
    the smaller one finds its mask, and the run (its button disabled while it lasts) is of
    that face."""
    left = Image.open(EXAMPLES / "obama_face_mask.jpg").convert("RGB")
    right = Image.open(EXAMPLES / "biden_sunglasses.jpg").convert("RGB")
    right = right.resize((right.width * 7 // 10, right.height * 7 // 10))
    group = Image.new("RGB", (left.width + right.width, max(left.height, right.height)), "white")
    group.paste(left, (0, 0))
    group.paste(right, (left.width, 0))
    group.save(tmp_path / "group.jpg")
    page = _open(browser, app_url)
    assert not page.locator("#face").is_visible()
    # an example removed again leaves no mask behind (on_photo was handed the example once more)
    page.locator("button.gallery-item").nth(1).click()
    assert "Mask of the example" in _wait_for_mask(page)
    page.locator("#photo").get_by_role("button", name="Remove Image").click()
    page.wait_for_function(
        "document.querySelector('#mask-status').innerText.startsWith('Upload a photo')"
    )
    assert _editor_spread(page, "09_example_removed.png") < 20  # an empty editor
    page.locator("#photo input[type=file]").set_input_files(tmp_path / "group.jpg")
    assert "this is the largest" in _wait_for_mask(page)
    page.locator("#face").get_by_text("2nd largest").click()
    page.wait_for_function(
        "document.querySelector('#mask-status').innerText.includes('the 2nd largest')"
    )
    page.locator("#mask-status").screenshot(path=ARTIFACTS / "10_two_faces_status.png")
    _start_run(page, 2)
    running = page.get_by_role("button", name="Reconstructing")
    running.wait_for()
    assert running.is_disabled()
    summary = _wait_for_result(page, 2)
    assert "face: the 2nd largest of 2 faces" in summary
    assert page.get_by_role("button", name="Reconstruct", exact=True).is_enabled()


# records every text the mask editor's progress overlay shows from now on
WATCH_EDITOR_PROGRESS_JS = """() => {
    window.editorProgress = [];
    const editor = document.getElementById('mask-editor');
    new MutationObserver(() => {
        const shown = editor.querySelector('[data-testid=status-tracker]:not(.hide)');
        if (shown) window.editorProgress.push(shown.innerText.trim());
    }).observe(editor, {attributes: true, childList: true, subtree: true, characterData: true});
}"""


def _editor_spread(page: Any, name: str) -> float:
    """Standard deviation of the mask editor's picture in grey levels (about 9 when empty, over
    50 with a photo in it); its screenshot goes to ARTIFACTS / name."""
    png = page.locator("#mask-editor").screenshot(path=ARTIFACTS / name)
    return float(np.asarray(Image.open(io.BytesIO(png)).convert("L"), float).std())


def test_a_tiff_photo_is_shown_and_one_sample_keeps_its_size(
    app_url: str, browser: Any, tmp_path: Path
) -> None:
    """A photo removed (its X) empties the mask editor and leaves no progress overlay on it
    (most removals left one whose timer ran on for good). A TIFF upload after it is shown in
    the Photo box (as a PNG copy) and gets its mask; N = 1 gives one thumbnail as large as one
    of four, not one stretched over the whole gallery, and no blend controls (with the
    reason); the next run of N = 2 brings them and its blend back."""
    tiff = tmp_path / "face.tif"
    Image.open(EXAMPLES / "obama_face_mask.jpg").save(tiff)
    page = _open(browser, app_url)
    page.evaluate(WATCH_EDITOR_PROGRESS_JS)
    upload = page.locator("#photo input[type=file]")
    upload.set_input_files(EXAMPLES / "biden_sunglasses.jpg")
    _wait_for_mask(page)
    page.locator("#photo").get_by_role("button", name="Remove Image").click()
    page.wait_for_function(
        "document.querySelector('#mask-status').innerText.startsWith('Upload a photo')"
    )
    page.wait_for_timeout(300)
    assert _editor_spread(page, "05_photo_removed.png") < 20  # no photo, no mask

    upload.set_input_files(tiff)
    status = _wait_for_mask(page)
    assert "found automatically" in status  # the copy went through the usual mask flow
    assert page.evaluate("window.editorProgress") == []  # the mask events' progress is elsewhere
    shown = page.locator("#photo img")
    page.wait_for_function(
        "(() => { const img = document.querySelector('#photo img');"
        " return img && img.complete && img.naturalWidth > 0; })()"
    )
    assert shown.get_attribute("src").endswith(".png")
    page.screenshot(path=ARTIFACTS / "05_tiff.png")

    _start_run(page, 1)
    assert "1 completion in" in _wait_for_result(page)
    gallery = page.locator("#thumbnails")
    gallery.scroll_into_view_if_needed()
    thumbnail = page.locator("#thumbnails img")
    assert thumbnail.count() == 1
    page.wait_for_function("document.querySelector('#thumbnails img').naturalWidth > 0")
    gallery_box, thumbnail_box = gallery.bounding_box(), thumbnail.bounding_box()
    assert gallery_box is not None and thumbnail_box is not None
    assert 100 <= thumbnail_box["width"] <= gallery_box["width"] / 3
    assert thumbnail_box["y"] + thumbnail_box["height"] <= gallery_box["y"] + gallery_box["height"]
    gallery.screenshot(path=ARTIFACTS / "05_one_sample.png")

    page.locator("#blend-heading").scroll_into_view_if_needed()
    page.wait_for_function(  # on_result writes it after the run's thumbnails are shown
        "document.querySelector('#blend-heading').innerText.includes('a blend needs two')"
    )
    page.locator("#blend-controls").wait_for(state="hidden")
    page.locator("#results").screenshot(path=ARTIFACTS / "05_one_sample_results.png")

    _start_run(page, 2)
    _wait_for_result(page, 2)  # not the summary of the first run
    page.wait_for_function(
        "document.querySelector('#blend-heading').innerText.includes('their latent codes')"
    )
    assert page.locator("#blend-controls").is_visible()
    page.locator("#blended").scroll_into_view_if_needed()
    page.wait_for_function("document.querySelector('#blended canvas') !== null")
    page.wait_for_timeout(1500)  # the viewer draws once on screen
    page.locator("#blended").screenshot(path=ARTIFACTS / "05_two_samples_blend.png")


PHONE = {"width": 400, "height": 850}
# visible elements reaching past the viewport's sides; buttons a block's label covers (a
# picture that holds the whole label, as Gradio floats labels over pictures, does not count)
OFF_SCREEN_JS = """() => [...document.querySelectorAll('body *')].filter(e => {
    const r = e.getBoundingClientRect();
    return r.width > 0 && r.height > 0 && getComputedStyle(e).visibility !== 'hidden'
        && (r.left < -1 || r.right > window.innerWidth + 1);
}).map(e => e.tagName + '.' + e.className)"""
UNDER_LABELS_JS = """ids => ids.flatMap(id => {
    const block = document.getElementById(id), label = block.querySelector(':scope > label');
    if (!label) return [];
    const l = label.getBoundingClientRect();
    return [...block.querySelectorAll('button')].filter(b => {
        const r = b.getBoundingClientRect();
        const holds = r.left <= l.left && r.right >= l.right && r.top <= l.top
            && r.bottom >= l.bottom;
        return r.width > 0 && !holds && r.left < l.right && r.right > l.left
            && r.top < l.bottom && r.bottom > l.top;
    }).map(b => id + ': ' + (b.getAttribute('aria-label') || b.innerText));
})"""


# the gallery's label and buttons ("Download All") that lie over one of its thumbnails
OVER_THUMBNAILS_JS = """() => {
    const gallery = document.getElementById('thumbnails');
    const covers = [gallery.querySelector(':scope > label'), ...gallery.querySelectorAll('button')]
        .filter(e => e && !e.classList.contains('thumbnail-item'));
    const thumbnails = [...gallery.querySelectorAll('button.thumbnail-item')];
    const overlap = (a, b) => a.left < b.right && a.right > b.left && a.top < b.bottom
        && a.bottom > b.top;
    return covers.flatMap(c => thumbnails
        .filter(t => overlap(c.getBoundingClientRect(), t.getBoundingClientRect()))
        .map(t => (c.getAttribute('aria-label') || c.innerText) + ' over '
            + t.getAttribute('aria-label')));
}"""


def _thumbnails_loaded(page: Any) -> None:
    """Scroll to the thumbnails and wait until every one has loaded."""
    page.locator("#thumbnails").scroll_into_view_if_needed()
    page.wait_for_function(
        "[...document.querySelectorAll('#thumbnails img')]"
        ".every(img => img.complete && img.naturalWidth > 0)"
    )
    page.wait_for_timeout(500)


def test_the_gallerys_label_and_buttons_leave_the_thumbnails_clear(
    app_url: str, browser: Any
) -> None:
    """N = 6 on a wide screen (4 thumbnails a row): the gallery's label and its "Download
    All" button stand above the thumbnails, not over the first and the last of the row, and
    both rows are on the page whole (the gallery is no scrolling box cutting the second)."""
    page = _open(browser, app_url)
    page.locator("button.gallery-item").first.click()
    _wait_for_mask(page)
    _start_run(page, 6)
    _wait_for_result(page)
    _thumbnails_loaded(page)
    page.locator("#thumbnails").screenshot(path=ARTIFACTS / "08_thumbnails.png")
    assert page.get_by_role("button", name="Download All").count() == 1
    assert page.evaluate(OVER_THUMBNAILS_JS) == []
    grid = page.locator("#thumbnails .grid-wrap")
    assert grid.evaluate("e => e.scrollHeight <= e.clientHeight + 1")
    bottom = grid.bounding_box()["y"] + grid.bounding_box()["height"]
    for thumbnail in page.locator("#thumbnails button.thumbnail-item").all():
        assert thumbnail.bounding_box()["y"] + thumbnail.bounding_box()["height"] <= bottom


def test_app_at_phone_width(app_url: str, browser: Any) -> None:
    """At 400 x 850 px: nothing reaches past the screen's sides, the thumbnails stand two to a
    row (all on the page), and no label covers a button (or a thumbnail)."""
    page = _open(browser, app_url, **PHONE)
    page.locator("button.gallery-item").first.click()
    _wait_for_mask(page)
    _start_run(page, 5)  # more than the 4 columns of a wide screen
    _wait_for_result(page)
    _thumbnails_loaded(page)
    page.screenshot(path=ARTIFACTS / "06_phone.png", full_page=True)
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    assert page.evaluate(OFF_SCREEN_JS) == []
    boxes = [img.bounding_box() for img in page.locator("#thumbnails img").all()]
    assert len(boxes) == 5 and all(box is not None for box in boxes)
    assert all(box["width"] >= 120 for box in boxes)  # not slivers
    assert boxes[0]["y"] == boxes[1]["y"] < boxes[2]["y"] == boxes[3]["y"] < boxes[4]["y"]
    blocks = ["photo", "mask-editor", "thumbnails", "picked", "spread", "overlay"]
    assert page.evaluate(UNDER_LABELS_JS, blocks) == []
    assert page.evaluate(OVER_THUMBNAILS_JS) == []


def test_app_api_with_gradio_client(app_url: str, tmp_path: Path) -> None:
    """``/reconstruct`` through gradio_client (local URL): files, metrics, readable errors;
    the mask editor and the mask file may be left out."""
    from gradio_client import Client, handle_file
    from gradio_client.exceptions import AppError

    client = Client(app_url, verbose=False)
    api = client.view_api(return_format="dict", print_info=False)
    assert "/reconstruct" in api["named_endpoints"]
    summary, gallery, spread, overlay, zip_path, metrics = client.predict(
        photo=handle_file(EXAMPLES / "render_scarf.jpg"),
        mask_editor=None,
        mask_file=handle_file(EXAMPLES / "render_scarf_mask.png"),
        n=2,
        k=0.5,
        n_sigma=3.0,
        preset="test",
        seed=0,
        api_name="/reconstruct",
    )
    assert "2 completions" in summary and len(gallery) == 2
    assert Path(spread).suffix == ".glb" and Path(overlay).is_file()
    assert metrics["mask_source"] == "user" and metrics["settings"]["n_samples"] == 2
    assert metrics["metrics"]["asd_o_mm"] > metrics["metrics"]["asd_v_mm"]
    with zipfile.ZipFile(zip_path) as archive:
        assert {"sample_00.glb", "sample_01.obj", "metrics.json"} <= set(archive.namelist())

    with pytest.raises(AppError, match="seed must be a whole number 0 or more") as error:
        client.predict(
            photo=handle_file(EXAMPLES / "render_scarf.jpg"),  # no mask_editor, no mask_file
            seed=-3,
            api_name="/reconstruct",
        )
    # plain text, not the browser's HTML ("<strong>Setting not valid.</strong> The seed ...")
    assert str(error.value) == (
        f"Setting not valid.\nThe seed must be a whole number 0 or more (at most {2**31 - 1})."
    )
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    with pytest.raises(AppError, match="not an image"):
        client.predict(photo=handle_file(text), api_name="/reconstruct")
    blank = tmp_path / "blank.png"
    Image.fromarray(np.full((200, 200, 3), 255, np.uint8)).save(blank)
    with pytest.raises(AppError, match="No face was found"):
        client.predict(photo=handle_file(blank), api_name="/reconstruct")


def test_app_refuses_bad_uploads_with_readable_messages(app_url: str, tmp_path: Path) -> None:
    """An upload over the size cap, an empty file and a truncated JPEG: each refused with a
    message that names the problem, and the server keeps serving."""
    from gradio_client import Client, handle_file

    client = Client(app_url, verbose=False)
    huge = tmp_path / "huge.png"
    huge.write_bytes(np.random.default_rng(0).integers(0, 255, 26 * 2**20, np.uint8).tobytes())
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    truncated = tmp_path / "truncated.jpg"
    data = (EXAMPLES / "obama_face_mask.jpg").read_bytes()
    truncated.write_bytes(data[: len(data) // 3])
    for path, message in [
        (huge, r"(?i)too large|exceeds|maximum|size"),
        (empty, r"(?i)empty|not an image"),
        (truncated, r"(?i)truncated|corrupt|not an image|cannot"),
    ]:
        with pytest.raises(Exception, match=message):
            client.predict(
                photo=handle_file(path), mask_editor=None, mask_file=None, api_name="/reconstruct"
            )
    api = client.view_api(return_format="dict", print_info=False)
    assert "/reconstruct" in api["named_endpoints"]  # still serving
