"""The page of `nmt serve` in a real browser: Debian's headless Chromium through Selenium."""

from __future__ import annotations

import json
import os
import shutil
import urllib.request
from pathlib import Path

import pytest

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
SENTENCE = "A dog is running in the park."


@pytest.fixture
def browser(tmp_path):
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        message = "needs Debian's chromium and chromium-driver (apt-get install ...)"
        if os.environ.get("CI"):
            pytest.fail(message)  # CI installs them: there it must run, not skip
        pytest.skip(message)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
                 f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1200,900"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(tmp_path / "profile", ignore_errors=True)


def api_translation(url: str, request: dict) -> dict:
    http = urllib.request.Request(f"{url}/v1/translate", json.dumps(request).encode(),
                                  {"Content-Type": "application/json"})
    with urllib.request.urlopen(http, timeout=60) as response:
        return json.loads(response.read())["translations"][0]


def heatmap_rows(browser) -> list[tuple[str, int]]:
    """The heatmap's row labels (one per target piece, then EOS) and its cell counts."""
    from selenium.webdriver.common.by import By

    rows = browser.find_elements(By.CSS_SELECTOR, "svg.heatmap g.row")
    return [(row.get_attribute("data-piece"), len(row.find_elements(By.TAG_NAME, "rect")))
            for row in rows]


def test_page_translates_and_draws_the_attention_of_the_chosen_hypothesis(live_server, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ready
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(browser, 60)
    browser.get(live_server + "/")
    wait.until(ready.presence_of_element_located((By.CSS_SELECTOR, "#model option")))
    assert browser.find_element(By.ID, "languages").text == "en → de"
    beam = int(browser.find_element(By.ID, "beam").get_attribute("value"))
    n_best = int(browser.find_element(By.ID, "n-best").get_attribute("value"))
    assert (beam, n_best) == (3, 3)  # the checkpoint's beam; n-best min(beam, 3)

    browser.find_element(By.ID, "text").send_keys(SENTENCE)
    browser.find_element(By.ID, "translate").click()
    wait.until(ready.presence_of_element_located((By.CSS_SELECTOR, "svg.heatmap")))

    expected = api_translation(live_server, {"text": [SENTENCE], "beam": beam,
                                             "n_best": n_best, "attention": True})
    assert browser.find_element(By.CSS_SELECTOR, ".result .source").text == SENTENCE
    assert (browser.find_element(By.CSS_SELECTOR, ".result .translation").text
            == expected["hypotheses"][0]["text"])
    items = browser.find_elements(By.CSS_SELECTOR, ".n-best li")
    assert len(items) == len(expected["hypotheses"]) == n_best
    columns = browser.find_elements(By.CSS_SELECTOR, "svg.heatmap g.columns text")
    assert [c.get_attribute("textContent") for c in columns] == expected["source_pieces"]

    # One row per target piece of the chosen hypothesis, then one for EOS ("</s>"),
    # each with one cell per source piece; clicking another hypothesis redraws it.
    for index, item in enumerate(items):
        item.click()
        assert "chosen" in item.get_attribute("class")
        hypothesis = expected["hypotheses"][index]
        assert heatmap_rows(browser) == [(piece, len(expected["source_pieces"]))
                                         for piece in hypothesis["pieces"] + ["</s>"]]
    assert browser.find_element(By.ID, "status").text == ""
