"""Screenshot of the running app answering a question (the README's picture).

.venv/bin/qa serve &
.venv/bin/python scripts/screenshot.py http://127.0.0.1:7860 docs/screenshot.png
"""

from __future__ import annotations

import argparse
import tempfile

from playwright.sync_api import sync_playwright

FLAGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("out")
    parser.add_argument("--question", default="What did Russia demand?")
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args()
    with sync_playwright() as pw, tempfile.TemporaryDirectory() as profile:
        browser = pw.chromium.launch_persistent_context(
            profile,
            executable_path=args.chromium,
            args=FLAGS,
            headless=True,
            viewport={"width": 1280, "height": 800},
        )
        page = browser.new_page()
        page.set_default_timeout(60_000)
        page.goto(args.url)
        page.fill("#qa-question textarea", args.question)
        page.press("#qa-question textarea", "Enter")
        page.wait_for_selector("#qa-sources-panel .qa-source")
        page.wait_for_timeout(500)  # let the layout settle
        page.screenshot(path=args.out)
        browser.close()
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
