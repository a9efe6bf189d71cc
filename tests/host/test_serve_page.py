"""The web page of ``lipsync serve`` in a real browser: Debian's headless Chromium driven by Selenium.

Upload a portrait and speech, render on the server's real worker (stand-in weights), play the result
(the video element's duration matches the speech), and see the error of a bad file. The screenshots are
kept in the test's tmp folder.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from batch_support import short_speech
from media import decode_audio
from serve_support import FAST, Server

pytestmark = pytest.mark.slow

webdriver = pytest.importorskip("selenium.webdriver")
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support import expected_conditions as shown  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--autoplay-policy=no-user-gesture-required",
)


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[object]:
    chromium, driver_path = shutil.which("chromium"), shutil.which("chromedriver")
    if chromium is None or driver_path is None:
        pytest.skip(
            "chromium and chromium-driver are not installed (apt-get install chromium chromium-driver)"
        )
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'chromium-profile'}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=driver_path))
    driver.set_window_size(1100, 1400)
    try:
        yield driver
    finally:
        driver.quit()


def _fill(driver, element_id: str, text: str) -> None:
    field = driver.find_element(By.ID, element_id)
    field.clear()
    field.send_keys(text)


def test_the_page_renders_a_clip_and_shows_errors(
    browser, tmp_path: Path, standin_checkpoints: dict[str, Path], face_image: Path
) -> None:
    speech = short_speech(tmp_path / "media")
    bad = tmp_path / "media" / "notes.jpg"
    bad.write_text("a text file with a picture's name\n")
    allowed = f"--allow-paths={standin_checkpoints['generator'].parent}"
    with Server(tmp_path / "home", allowed) as server:
        browser.get(server.url + "/")
        wait = WebDriverWait(browser, 60)
        wait.until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready") == "true")
        assert browser.find_element(By.ID, "model").get_attribute("value") == "wav2lip"
        browser.find_element(By.ID, "options-box").click()  # open the options
        _fill(browser, "opt-checkpoint", str(standin_checkpoints["generator"]))
        _fill(browser, "opt-detector_checkpoint", str(standin_checkpoints["detector"]))
        _fill(browser, "opt-fps", str(FAST["fps"]))
        _fill(browser, "opt-box", " ".join(map(str, FAST["box"])))

        # A bad file: the server's decoding check refuses it and the page says why.
        browser.find_element(By.ID, "image").send_keys(str(bad))
        browser.find_element(By.ID, "audio").send_keys(str(speech))
        browser.find_element(By.ID, "submit").click()
        error = wait.until(shown.visibility_of_element_located((By.ID, "error")))
        assert "bad_input" in error.text
        browser.save_screenshot(str(tmp_path / "page-error.png"))

        browser.find_element(By.ID, "image").send_keys(str(face_image))
        browser.find_element(By.ID, "submit").click()
        WebDriverWait(browser, 600).until(
            lambda d: (
                d.find_element(By.ID, "result").is_displayed()
                or d.find_element(By.ID, "error").is_displayed()
            )
        )
        assert not browser.find_element(By.ID, "error").is_displayed(), browser.find_element(
            By.ID, "error"
        ).text
        browser.set_script_timeout(30)
        duration = browser.execute_async_script(
            """
            const done = arguments[arguments.length - 1];
            const video = document.getElementById("video");
            const played = () => done({duration: video.duration, time: video.currentTime});
            const report = () => video.play().then(
                () => {
                    video.addEventListener("timeupdate", () => { if (video.currentTime > 0) played(); });
                    setTimeout(played, 10000);
                },
                (err) => done({error: String(err), duration: video.duration}));
            if (video.readyState >= 1) report(); else video.addEventListener("loadedmetadata", report);
            video.addEventListener("error", () => done({error: "media error " + video.error.code}));
            """
        )
        browser.save_screenshot(str(tmp_path / "page-result.png"))
        assert "error" not in duration, duration
        audio_seconds = len(decode_audio(speech)) / 16000
        assert abs(duration["duration"] - audio_seconds) < 1 / FAST["fps"] + 0.05
        assert duration["time"] > 0  # it plays
        rows = browser.find_elements(By.CSS_SELECTOR, "#jobs tbody tr")
        assert [row.find_elements(By.TAG_NAME, "td")[2].text for row in rows] == ["ok"]
    assert (tmp_path / "page-result.png").stat().st_size > 0
