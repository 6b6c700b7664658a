"""Check, in a real browser, that the human-feedback picker survives a kernel restart and a closed tab.

    python scripts/picker_screenshot.py                # writes benchmarks/results/picker/

What it does, as a person would in JupyterLab 4 (headless Chromium, driven by Playwright):
  1. makes a small feedback run (a 100-step stained-glass adapter, a pool of 3 prompts x 8 images);
  2. opens a notebook whose cell shows `Picker(run)`, runs it, and clicks three thumbnails;
  3. restarts the kernel and runs the notebook again: the same three must show as selected;
  4. shuts the kernel down, closes the tab, opens the notebook in a new one with a new kernel and
     runs it: the same three again.
After every step it reads RUN/selections/human.json from disk and takes a screenshot.

Needs, beyond the package: Debian's chromium (`apt-get install chromium`) and the Python package
playwright (`pip install playwright`; it drives /usr/bin/chromium, nothing is downloaded).
This is a check for people, not a test: CI has no browser.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat

CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]
CLICKS = (1, 10, 17)  # pool ids: one image of each prompt


def make_run(folder: Path) -> Path:
    from styledrop_mini import adapters, feedback, prompts
    from styledrop_mini.clip import MiniClip
    from styledrop_mini.datasets import style_references
    from styledrop_mini.pipeline import MusePipeline

    pipe = MusePipeline.load()
    ref = style_references()["stained glass"]
    round1, _ = adapters.tune(pipe, ref.image, [prompts.styled(ref.content, ref.descriptor)],
                              steps=100)
    clip = MiniClip.load(pipe.folder / "clip.safetensors")
    feedback.make_pool(pipe, round1, ref, folder / "run", clip, feedback.FeedbackSettings(per_prompt=8, n_prompts=3))
    notebook = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("from styledrop_mini.widgets import Picker\n"
                                  "picker = Picker('run', columns=8, thumb=80)\npicker"),
        nbformat.v4.new_code_cell("print('saved on disk:', picker.run.selection('human'))"),
    ], metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})
    nbformat.write(notebook, folder / "picker.ipynb")
    return folder / "run" / "selections" / "human.json"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def on_disk(path: Path) -> list[int]:
    return json.loads(path.read_text())["ids"] if path.is_file() else []


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="benchmarks/results/picker", help="folder for the screenshots and report")
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="picker_"))
    selection_file = make_run(work)
    port, token = free_port(), "styledrop"
    lab = subprocess.Popen([sys.executable, "-m", "jupyterlab", "--no-browser", f"--port={port}",
                            f"--ServerApp.token={token}", f"--ServerApp.root_dir={work}",
                            "--ServerApp.disable_check_xsrf=True"] + (["--allow-root"] if os.geteuid() == 0 else []),
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/lab/tree/picker.ipynb?token={token}"
    report = {"clicked": list(CLICKS), "steps": []}
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=args.chromium, headless=True, args=CHROMIUM_FLAGS)
            page = open_notebook(browser, url)

            def record(step: str, shot: str):
                pressed = sorted(int(b.inner_text().lstrip("#")) for b in
                                 page.locator("button.widget-toggle-button.mod-active").all())
                page.screenshot(path=str(out / shot), full_page=True)
                report["steps"].append({"step": step, "shown_selected": pressed,
                                        "on_disk": on_disk(selection_file), "screenshot": shot})
                print(f"{step:32s} shown selected {pressed}  on disk {on_disk(selection_file)}", flush=True)

            run_all(page)
            for i in CLICKS:
                page.get_by_role("button", name=f"#{i}", exact=True).click()
                deadline = time.time() + 10
                while i not in on_disk(selection_file) and time.time() < deadline:
                    time.sleep(0.1)  # every click is saved at once; give the kernel a moment
            record("1. three clicks", "1_clicked.png")

            menu(page, "Edit", "Clear Outputs of All Cells")  # so that what shows next is new
            menu(page, "Kernel", "Restart Kernel and Run All Cells…")
            page.get_by_role("button", name="Confirm Kernel Restart").or_(
                page.get_by_role("button", name="Restart", exact=True)).first.click()
            page.wait_for_timeout(2000)
            wait_for_picker(page)
            record("2. after a kernel restart", "2_after_restart.png")

            menu(page, "Kernel", "Shut Down Kernel")  # as if it crashed: nothing survives in memory
            page.wait_for_timeout(1000)
            confirm = page.get_by_role("button", name="Shut Down", exact=True)
            if confirm.count():
                confirm.first.click()
            page.wait_for_timeout(2000)
            page.close()
            page = open_notebook(browser, url)
            run_all(page)
            record("3. kernel shut down, tab reopened", "3_new_tab.png")
            browser.close()
    finally:
        lab.terminate()
        lab.wait(timeout=30)
        shutil.rmtree(work, ignore_errors=True)
    report["intact"] = all(s["shown_selected"] == sorted(CLICKS) == sorted(s["on_disk"]) for s in report["steps"])
    (out / "report.json").write_text(json.dumps(report, indent=1))
    print(f"selection intact through restart and new tab: {report['intact']}; wrote {out}")
    return 0 if report["intact"] else 1


def open_notebook(browser, url):
    page = browser.new_page(viewport={"width": 1300, "height": 860})
    for _ in range(60):  # the server takes a few seconds to start
        try:
            page.goto(url)
            break
        except Exception:
            time.sleep(1)
    page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=60_000)
    page.wait_for_timeout(3000)  # let the kernel start
    news = page.get_by_role("button", name="No", exact=True)  # JupyterLab's "notify about news?" toast
    if news.count():
        news.first.click()
    return page


def menu(page, top: str, item: str):
    page.locator(".lm-MenuBar-itemLabel", has_text=top).first.click()
    page.get_by_role("menuitem", name=item).first.click()


def run_all(page):
    menu(page, "Edit", "Clear Outputs of All Cells")
    menu(page, "Run", "Run All Cells")
    wait_for_picker(page)


def wait_for_picker(page):
    page.wait_for_selector("text=saved on disk:", timeout=120_000)
    page.wait_for_selector("button.widget-toggle-button", timeout=60_000)
    page.wait_for_timeout(1000)


if __name__ == "__main__":
    sys.exit(main())
