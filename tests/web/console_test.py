"""The web console in a real browser: Playwright driving Debian's Chromium, headless.

Run by tests/web_console.rs against a uaedge it started (the shipped config, with users
and a 10,000-tag device added). Each step asserts what an engineer would see; a
screenshot of each page goes to --artifacts. Exits non-zero on the first failure.
"""

import argparse
import re
import sys
import time
from pathlib import Path

from playwright.sync_api import expect, sync_playwright

# As the machine's notes ask: without the background-networking flags Chromium keeps
# trying Google's hosts, which a closed network refuses.
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]


def step(name):
    print(f"console: {name}", file=sys.stderr, flush=True)


def login(page, url, user, password):
    page.goto(url + "/#/")
    page.fill("input[name=user]", user)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    expect(page.locator("#who")).to_contain_text(user, timeout=10_000)


def tag_hash(path):
    from urllib.parse import quote

    return "#/tag/" + quote(path, safe="")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--artifacts", required=True)
    ap.add_argument("--operator", required=True, help="user:password")
    ap.add_argument("--viewer", required=True, help="user:password")
    ap.add_argument("--admin", required=True, help="user:password")
    ap.add_argument("--write-tag", required=True)
    ap.add_argument("--write-value", required=True)
    ap.add_argument("--live-tag", required=True)
    ap.add_argument("--bulk-device", required=True)
    ap.add_argument("--bulk-tags", type=int, required=True)
    ap.add_argument("--alarm", required=True)
    ap.add_argument("--chromium", default="/usr/bin/chromium")
    a = ap.parse_args()
    shots = Path(a.artifacts)
    shots.mkdir(parents=True, exist_ok=True)
    problems = []

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=a.chromium, args=CHROMIUM_FLAGS)
        context = browser.new_context(viewport={"width": 1400, "height": 900})
        page = context.new_page()
        # CSP violations and script errors land here; the console must make none. The
        # browser also logs each 4xx answer (a wrong password, a viewer's refused write),
        # which the steps expect.
        expected_http = re.compile(r"^Failed to load resource: the server responded with a status of 40[13]")
        page.on(
            "console",
            lambda m: problems.append(m.text)
            if m.type == "error" and not expected_http.match(m.text)
            else None,
        )
        page.on("pageerror", lambda e: problems.append(str(e)))

        step("the page carries a strict Content-Security-Policy")
        response = page.goto(a.url + "/")
        csp = response.headers.get("content-security-policy", "")
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp, csp

        step("log in as the operator")
        user, password = a.operator.split(":", 1)
        page.fill("input[name=user]", user)
        page.fill("input[name=password]", "wrong")
        page.click("button[type=submit]")
        expect(page.locator(".message.error")).to_be_visible(timeout=10_000)
        page.fill("input[name=password]", password)
        page.click("button[type=submit]")
        expect(page.locator("#who")).to_contain_text(f"{user} (operator)", timeout=10_000)

        step("the dashboard shows both shipped devices connected")
        for device in ("press3", "pack1"):
            expect(page.locator(f"tr[data-device={device}] .badge")).to_have_text("connected", timeout=30_000)
        expect(page.locator("[data-card=rate] .big")).not_to_have_text("…", timeout=10_000)
        # The OPC UA server makes its certificate on the first start: it may take a while.
        expect(page.locator("[data-card=opcua] .big")).not_to_have_text("off", timeout=60_000)
        page.screenshot(path=str(shots / "dashboard.png"), full_page=True)

        step("a changing tag's value is on screen within 2 s of the device reading it")
        page.goto(a.url + "/" + tag_hash(a.live_tag))
        expect(page.locator(".value-now")).not_to_be_empty(timeout=10_000)
        # Each change of the shown value: how long after its source time it appeared.
        page.evaluate(
            """() => {
              window.lags = [];
              const el = document.querySelector('.value-now');
              new MutationObserver(() => {
                const src = document.querySelector('[data-prop=source-time]');
                if (src) window.lags.push(Date.now() - Date.parse(src.textContent));
              }).observe(el, { childList: true, characterData: true, subtree: true });
            }"""
        )
        time.sleep(6)
        lags = page.evaluate("window.lags")
        assert len(lags) >= 3, f"the value changed {len(lags)} times in 6 s"
        assert max(lags) < 2000, f"changes appeared {max(lags)} ms after the device's reading: {lags}"
        # The trend from the historian: a drawn line.
        expect(page.locator("svg.trend polyline")).to_have_count(1, timeout=10_000)
        page.screenshot(path=str(shots / "tag.png"), full_page=True)

        step("a write asks for confirmation and reaches the device")
        page.goto(a.url + "/" + tag_hash(a.write_tag))
        form_value = page.locator("input[name=value]")
        expect(form_value).to_be_visible(timeout=10_000)
        form_value.fill(a.write_value)
        page.click("text=Write…")
        expect(page.locator("#confirm")).to_be_visible()
        expect(page.locator("#confirm-text")).to_contain_text(a.write_tag)
        page.click("#confirm-ok")
        expect(page.locator(".message.ok")).to_contain_text(f"The device took {a.write_value}", timeout=10_000)
        # The device's next reading, as the stream brings it.
        expect(page.locator(".value-now")).to_contain_text(a.write_value, timeout=5_000)
        page.screenshot(path=str(shots / "write.png"), full_page=True)

        step(f"the device page holds {a.bulk_tags} tags, renders only the rows in view, scrolls and filters")
        page.goto(a.url + f"/#/device/{a.bulk_device}")
        total = f"{a.bulk_tags:,}"
        expect(page.locator("#tag-count")).to_have_text(f"{total} of {total} tags", timeout=30_000)
        rows = page.locator(".vt-row:not([hidden])").count()
        assert 0 < rows < 100, f"{rows} rows in the page for {a.bulk_tags} tags"
        body = page.locator(".vt-body")
        body.evaluate("e => { e.scrollTop = e.scrollHeight; }")
        last = f"t{a.bulk_tags - 1}"
        expect(page.locator(".vt-row:not([hidden]) .name", has_text=re.compile(f"^{last}$"))).to_have_count(1, timeout=5_000)
        page.fill("input[type=search]", "t123")
        expect(page.locator("#tag-count")).to_have_text(f"11 of {total} tags", timeout=5_000)
        page.click("[data-sort=name]")
        first = page.locator(".vt-row:not([hidden]) .name").first
        expect(first).to_have_text("t1239", timeout=5_000)
        page.fill("input[type=search]", "")
        page.click("[data-sort=name]")
        expect(page.locator("#tag-count")).to_have_text(f"{total} of {total} tags", timeout=5_000)
        page.screenshot(path=str(shots / "device.png"))

        step("the alarms page shows the scheduled pressure spike, and acknowledges it")
        page.goto(a.url + "/#/alarms")
        row = page.locator(f"tr[data-alarm='{a.alarm}']")
        # Listed from the start (every configured alarm is); waiting once it fired.
        expect(row.locator(".badge.warn")).to_have_text("unacknowledged", timeout=90_000)
        page.screenshot(path=str(shots / "alarms.png"), full_page=True)
        row.locator("text=Acknowledge…").click()
        page.fill("#confirm-comment", "checked the pump")
        page.click("#confirm-ok")
        expect(page.locator(".message.ok")).to_contain_text("Acknowledged", timeout=10_000)
        expect(row).to_contain_text("checked the pump", timeout=10_000)
        expect(row.locator(".badge.good")).to_have_text("acknowledged")

        step("the config page shows the running config, passwords masked")
        page.goto(a.url + "/#/config")
        expect(page.locator("pre.config")).to_contain_text("devices:", timeout=10_000)
        text = page.locator("pre.config").inner_text()
        for account in (a.operator, a.viewer, a.admin):
            secret = account.split(":", 1)[1]
            assert secret not in text, f"a password ({account.split(':')[0]}'s) is on the config page"
        page.screenshot(path=str(shots / "config.png"))

        step("a viewer's write is refused with a clear message")
        page.click("#logout")
        expect(page.locator("input[name=user]")).to_be_visible(timeout=10_000)
        viewer, viewer_password = a.viewer.split(":", 1)
        login(page, a.url, viewer, viewer_password)
        page.goto(a.url + "/" + tag_hash(a.write_tag))
        expect(page.locator("input[name=value]")).to_be_visible(timeout=10_000)
        page.fill("input[name=value]", "1")
        page.click("text=Write…")
        page.click("#confirm-ok")
        expect(page.locator(".message.error")).to_contain_text("Refused", timeout=10_000)
        refusal = page.locator(".message.error").inner_text()
        assert "viewer" in refusal or "may not" in refusal or "role" in refusal, refusal
        page.screenshot(path=str(shots / "viewer-refused.png"), full_page=True)

        step("an admin reloads the config from the config page")
        page.click("#logout")
        expect(page.locator("input[name=user]")).to_be_visible(timeout=10_000)
        admin, admin_password = a.admin.split(":", 1)
        login(page, a.url, admin, admin_password)
        page.goto(a.url + "/#/config")
        page.click("text=Reload config…")
        page.click("#confirm-ok")
        expect(page.locator(".message.ok")).to_have_text("The file is unchanged.", timeout=20_000)

        browser.close()

    assert not problems, f"the browser reported errors: {problems}"
    print("ok", flush=True)


if __name__ == "__main__":
    try:
        main()
    except AssertionError as e:
        print(f"console: FAILED: {e}", file=sys.stderr, flush=True)
        sys.exit(1)
