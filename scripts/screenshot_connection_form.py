"""
Take ``docs/connection-form.png``: Airflow's "Add Connection" form with the PostHog type chosen.

Not part of CI. It starts a throw-away ``airflow api-server`` (SQLite, all users admin) from the
project's ``.venv``, opens Admin → Connections → Add Connection in headless Chromium driven by
Selenium, picks "PostHog", fills a placeholder connection id, and screenshots the dialog. The
connection is never saved. Everything it starts is stopped again.

Needs Debian's ``chromium`` and ``chromium-driver`` packages and the project's ``.venv``
(``scripts/venv.sh``). Selenium goes into its own git-ignored ``.venv-docs``, created on first use,
and uses the system chromedriver (no Selenium Manager download).

Run it through ``scripts/screenshot_connection_form.sh``, or directly with any Python 3.10+:
``python3 scripts/screenshot_connection_form.py [--output PATH]``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
AIRFLOW = ROOT / ".venv" / "bin" / "airflow"
DOCS_VENV = ROOT / ".venv-docs"
DOCS_REQUIREMENTS = ("selenium>=4.11,<5", "httpx")
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver")
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
)
WINDOW = (1280, 1400)
CONN_ID = "posthog_default"
CONN_TYPE_LABEL = "PostHog"
# What the PostHog form must show before the picture is taken (labels from get_provider_info()).
EXPECTED_LABELS = (
    "PostHog host",
    "Personal API key",
    "Project ID",
    "API prefix",
    "Request timeout",
    "Max retries",
)
TIMEOUT = 60
# Shows a folded accordion section of the open dialog as if it were open (display only).
UNFOLD_SECTION = """
const dialog = document.querySelector("[role=dialog][data-state=open]");
const trigger = [...dialog.querySelectorAll("button[data-part=item-trigger]")]
  .find((button) => button.textContent.trim() === arguments[0]);
const content = document.getElementById(trigger.getAttribute("aria-controls"));
const item = trigger.closest("[data-part=item]");
for (const part of [item, ...item.querySelectorAll("[data-scope=accordion]")]) {
  if (part.hasAttribute("data-state")) part.setAttribute("data-state", "open");
}
trigger.setAttribute("aria-expanded", "true");
content.removeAttribute("hidden");
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--output", type=Path, default=ROOT / "docs" / "connection-form.png")
    parser.add_argument(
        "--keep-logs", action="store_true", help="keep the temporary AIRFLOW_HOME with api-server.log"
    )
    args = parser.parse_args()

    if not _prerequisites_present():
        return 2
    _ensure_docs_venv()  # re-executes this script inside .venv-docs when needed

    sys.path.insert(0, str(ROOT))
    import httpx

    from tests.helpers.processes import Processes, free_port, wait_for

    started = time.monotonic()
    home = Path(tempfile.mkdtemp(prefix="phenv-screenshot-airflow-"))
    profile = Path(tempfile.mkdtemp(prefix="phenv-screenshot-chromium-"))
    port = free_port()
    base_url = f"http://localhost:{port}"
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__API__BASE_URL": base_url,
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags"),
    }
    processes = Processes(home, env)
    failed = True
    try:
        _step("Migrating a throw-away Airflow home", home)
        subprocess.run([str(AIRFLOW), "db", "migrate"], env=env, check=True, stdout=subprocess.DEVNULL)
        _step("Starting the api-server", base_url)
        server = processes.start(
            "api-server", str(AIRFLOW), "api-server", "--port", str(port), "--workers", "1"
        )

        def healthy() -> bool:
            if server.poll() is not None:
                raise RuntimeError("the api-server exited:\n" + processes.output("api-server")[-3000:])
            return httpx.get(f"{base_url}/api/v2/monitor/health", timeout=5).status_code == 200

        wait_for("the api-server", healthy, 120)
        _step("Opening the Add Connection form in headless Chromium", CHROMIUM)
        _screenshot(base_url, profile, args.output, home)
        failed = False
    finally:
        processes.stop_all()
        shutil.rmtree(profile, ignore_errors=True)
        if failed or args.keep_logs:
            print(f"Airflow home and api-server.log kept in {home}", file=sys.stderr)
        else:
            shutil.rmtree(home, ignore_errors=True)
    _step(f"Saved in {time.monotonic() - started:.0f} s", args.output)
    return 0


def _screenshot(base_url: str, profile: Path, output: Path, debug_dir: Path) -> None:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    options.add_argument(f"--window-size={WINDOW[0]},{WINDOW[1]}")
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        wait = WebDriverWait(driver, TIMEOUT)
        # In all-admins mode this sets the auth cookie and redirects into the UI.
        driver.get(f"{base_url}/auth/token/login")
        wait.until(lambda d: "/auth/" not in d.current_url)
        driver.get(f"{base_url}/connections")
        add = wait.until(
            ec.element_to_be_clickable((By.XPATH, "//button[normalize-space()='Add Connection']"))
        )
        add.click()
        dialog = wait.until(
            ec.visibility_of_element_located((By.CSS_SELECTOR, "[role=dialog][data-state=open]"))
        )
        dialog.find_element(By.CSS_SELECTOR, "input[name=connection_id]").send_keys(CONN_ID)
        # The type picker is a react-select combobox: type to filter, then pick the exact option.
        combobox = dialog.find_element(By.CSS_SELECTOR, "input[role=combobox]")
        combobox.click()
        combobox.send_keys(CONN_TYPE_LABEL)
        option = wait.until(
            ec.element_to_be_clickable(
                (By.XPATH, f"//*[@role='option' and normalize-space()='{CONN_TYPE_LABEL}']")
            )
        )
        option.click()
        # The form groups its fields in an accordion that keeps one section open: "Standard Fields"
        # (host, key) at first. Open "Extra Fields" (the provider's conn-fields) with a real click,
        # then unfold the standard section again in the page itself, so one picture shows both.
        trigger = wait.until(
            ec.element_to_be_clickable(
                (
                    By.XPATH,
                    "//*[@role='dialog']//button[@data-part='item-trigger']"
                    "[normalize-space()='Extra Fields']",
                )
            )
        )
        trigger.click()
        wait.until(
            lambda d: trigger.get_attribute("aria-expanded") == "true",
            message="the 'Extra Fields' section did not open",
        )
        time.sleep(0.5)  # the folding animation of the standard section
        driver.execute_script(UNFOLD_SECTION, "Standard Fields")
        for label in EXPECTED_LABELS:
            wait.until(
                lambda d, label=label: any(
                    element.is_displayed()
                    for element in d.find_elements(
                        By.XPATH, f"//*[@role='dialog']//label[contains(normalize-space(), '{label}')]"
                    )
                ),
                message=f"no {label!r} field in the form",
            )
        # Let fonts, icons and the dialog's open animation settle, and take the focus ring away.
        driver.execute_script("document.activeElement && document.activeElement.blur()")
        time.sleep(1.5)
        content = driver.find_element(By.CSS_SELECTOR, "[role=dialog][data-state=open]")
        output.parent.mkdir(parents=True, exist_ok=True)
        if not content.screenshot(str(output)):
            raise RuntimeError(f"Chromium could not write {output}")
    except Exception:
        # What the browser showed when it went wrong, next to api-server.log.
        driver.save_screenshot(str(debug_dir / "failure.png"))
        (debug_dir / "failure.html").write_text(driver.page_source)
        print(f"The browser's view was saved as {debug_dir}/failure.png and .html", file=sys.stderr)
        raise
    finally:
        driver.quit()


def _prerequisites_present() -> bool:
    missing = []
    for path, package in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if not os.access(path, os.X_OK):
            missing.append((path, package))
    if missing:
        print("Headless Chromium is needed for the screenshot, but these are missing:", file=sys.stderr)
        for path, package in missing:
            print(f"  {path}  (Debian/Ubuntu package {package})", file=sys.stderr)
        packages = " ".join(package for _, package in missing)
        print(
            f"Install them with:  sudo apt-get update && sudo apt-get install -y {packages}\n"
            "or point CHROMIUM / CHROMEDRIVER at a matching Chromium and chromedriver.",
            file=sys.stderr,
        )
        return False
    if not AIRFLOW.exists():
        print(
            f"{AIRFLOW} is missing: create the project's virtual environment first with "
            "scripts/venv.sh (scripts/screenshot_connection_form.sh does that for you).",
            file=sys.stderr,
        )
        return False
    return True


def _ensure_docs_venv() -> None:
    """Make sure Selenium and httpx are importable, re-running this script in .venv-docs if not."""
    try:
        import httpx  # noqa: F401
        import selenium  # noqa: F401
    except ImportError:
        pass
    else:
        return
    python = DOCS_VENV / "bin" / "python"
    if os.environ.get("PHENV_SCREENSHOT_REEXEC"):
        raise SystemExit(f"{python} still cannot import selenium and httpx; delete {DOCS_VENV} and retry")
    if not python.exists():
        _step("Creating a virtual environment for Selenium", DOCS_VENV)
        venv.create(DOCS_VENV, with_pip=True)
    ready = subprocess.run([str(python), "-c", "import httpx, selenium"], capture_output=True)
    if ready.returncode != 0:
        _step(f"Installing into {DOCS_VENV.name}", " ".join(DOCS_REQUIREMENTS))
        subprocess.run([str(python), "-m", "pip", "install", "-q", *DOCS_REQUIREMENTS], check=True)
    os.environ["PHENV_SCREENSHOT_REEXEC"] = "1"
    os.execv(str(python), [str(python), str(Path(__file__).resolve()), *sys.argv[1:]])


def _step(what: str, detail: object = "") -> None:
    print(f"==> {what}" + (f": {detail}" if detail != "" else ""), flush=True)


if __name__ == "__main__":
    sys.exit(main())
