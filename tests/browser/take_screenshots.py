"""Screenshots of the main pages for docs/web.md, taken with Debian's Chromium at 1440x900.

    closewise --db /tmp/shots/demo.db demo --today 2026-11-22 --no-serve && closewise --db /tmp/shots/demo.db score
    closewise --db /tmp/shots/demo.db serve --port 8765 &
    python tests/browser/take_screenshots.py --base http://127.0.0.1:8765 [--out docs/screenshots]

Signs in as the demo leader (the admin for Imports and Settings), waits for each page to settle (the forecast
until its result replaces the "computing" card, charts until Plotly has drawn them) and saves one PNG per page.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any

from playwright.sync_api import sync_playwright

PASSWORD = "closewise-demo"
PAGES = (
    ("forecast", "/forecast", "leader"),
    ("pipeline", "/pipeline", "leader"),
    ("hygiene", "/hygiene", "manager"),
    ("deals", "/deals", "leader"),
    ("deal", None, "leader"),  # the open deal with the most changes
    ("team", "/team", "leader"),
    ("imports", "/imports", "admin"),
    ("settings", "/settings", "admin"),
)


def _sign_in(page: Any, base: str, email: str) -> None:
    page.goto(f"{base}/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_load_state("networkidle")


def _settle(page: Any) -> None:
    page.wait_for_load_state("networkidle")
    computing = page.get_by_role("heading", name=re.compile("^Computing"))
    if computing.count():
        computing.first.wait_for(state="detached", timeout=300_000)
        page.wait_for_load_state("networkidle")
    page.wait_for_timeout(1200)  # Plotly's transitions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default="http://127.0.0.1:8765")
    parser.add_argument("--out", type=Path, default=Path("docs/screenshots"))
    parser.add_argument("--leader", default="vera.holm@demo.closewise.io")
    parser.add_argument("--manager", default="david.young@demo.closewise.io")
    parser.add_argument("--admin", default="chen.evans@demo.closewise.io")
    parser.add_argument("--deal", type=int, help="the deal for the deal page (default: the first in the deal list)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    logins = {"leader": args.leader, "manager": args.manager, "admin": args.admin}

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium",
                                             args=["--no-sandbox", "--disable-background-networking"])
        context = browser.new_context(viewport={"width": 1440, "height": 900}, device_scale_factor=1,
                                      locale="en-US", timezone_id="UTC")
        page = context.new_page()
        page.goto(f"{args.base}/login")
        page.wait_for_load_state("networkidle")
        page.screenshot(path=str(args.out / "login.png"))
        signed_in_as = None
        for name, path, role in PAGES:
            if signed_in_as != role:
                context.clear_cookies()
                _sign_in(page, args.base, logins[role])
                signed_in_as = role
            if path is None:
                if args.deal:
                    path = f"/deals/{args.deal}"
                else:
                    page.goto(f"{args.base}/deals?status=open&sort=-amount")
                    path = page.locator("a.deal-name").first.get_attribute("href")
            page.goto(f"{args.base}{path}")
            _settle(page)
            page.screenshot(path=str(args.out / f"{name}.png"))
            print(f"{name}: {path}")
        browser.close()


if __name__ == "__main__":
    main()
