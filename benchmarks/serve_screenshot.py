"""The screenshot of ``hyperim serve``'s page in the README (``docs/serve-page.png``).

Starts the server on ``--model`` (as :mod:`serve_load` does), opens the page in headless
Chromium (selenium, Debian's ``chromium`` + ``chromium-driver``), types ``--text``, presses
the button, waits for the labels and the Poincaré disk, and saves the whole page:

    python benchmarks/serve_screenshot.py --model runs/bench15-a/runs/hyperim-s0-687703ef \\
        --out docs/serve-page.png
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from serve_load import start_server

TEXT = "Python bindings for the GTK graphical user interface toolkit"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--out", default="docs/serve-page.png")
    parser.add_argument("--text", default=TEXT)
    parser.add_argument("-k", type=int, default=5)
    parser.add_argument("--width", type=int, default=1280)
    args = parser.parse_args()

    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not browser or not driver:
        sys.exit("Chromium not installed (Debian: apt-get install chromium chromium-driver)")
    proc, url, _log = start_server(args.model, [])
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"):
        options.add_argument(flag)
    options.add_argument(f"--window-size={args.width},900")
    chrome = webdriver.Chrome(service=Service(executable_path=driver), options=options)
    try:
        chrome.get(url)
        wait = WebDriverWait(chrome, 60)
        wait.until(lambda d: "model" in d.find_element(By.ID, "model-info").text)
        chrome.find_element(By.ID, "text").send_keys(args.text)
        k = chrome.find_element(By.ID, "k")
        k.clear()
        k.send_keys(str(args.k))
        chrome.find_element(By.ID, "suggest").click()
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#disk rect.word-point, .disk-note"))
        for _ in range(5):  # grow the window until the whole page is in the viewport
            inner, height = chrome.execute_script(
                "return [window.innerHeight, document.documentElement.scrollHeight]"
            )
            if inner >= height:
                break
            chrome.set_window_size(args.width, chrome.get_window_size()["height"] + height - inner)
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        chrome.save_screenshot(args.out)
        print(args.out)
    finally:
        chrome.quit()
        proc.terminate()
        proc.wait(timeout=30)


if __name__ == "__main__":
    main()
