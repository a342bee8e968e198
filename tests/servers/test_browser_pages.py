"""The pages people read, opened in headless Chromium: the MLflow UI's model version page, the Evidently
report of a monitor run and the GX Data Docs of a train run, all made by real loopline commands.

One small store for the module: ``loopline train`` (tiny model, 400 rows), ``loopline feedback import``
(200 drifted rows) and ``loopline monitor``, in one process of their own, against the session's MLflow
and Prefect servers. The MLflow UI and Evidently's pages are JavaScript apps: every check waits (bounded)
for the rendered element, not for the HTML. Skipped only when Chromium or its driver is not installed
(``apt-get install -y chromium chromium-driver``; .ci/run installs them).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import pytest
from mlflow import MlflowClient

from loopline.data.demo import write_demo_files
from tests.cli.conftest import Cli, tiny_toml

if TYPE_CHECKING:  # conftest is not importable as a package module at run time
    from conftest import MlflowServer

CHROMIUM = next((p for p in map(shutil.which, ("chromium", "chromium-browser")) if p), None)
CHROMEDRIVER = shutil.which("chromedriver")
_FOUND = {"chromium": CHROMIUM, "chromedriver": CHROMEDRIVER}
NO_BROWSER = ", ".join(name for name, path in _FOUND.items() if path is None)

pytestmark = [
    pytest.mark.servers,
    pytest.mark.browser,
    pytest.mark.skipif(
        bool(NO_BROWSER),
        reason=f"{NO_BROWSER} not on PATH; install with `apt-get install -y chromium chromium-driver`",
    ),
]

PAGE_TIMEOUT_S = 90  # a React app booting on 2 busy cores
# The three commands in one process (the CLI's own entry point, three times): one import of torch,
# transformers, Prefect and MLflow instead of three, which is most of a tiny command's time on 2 cores.
COMMANDS = """
import time
from loopline.cli import app
for args in (["train", "--data", "data.csv"], ["feedback", "import", "feedback.csv"],
             ["monitor", "--trigger", "none"]):
    started = time.monotonic()
    code = app(args, standalone_mode=False)
    assert not code, f"loopline {' '.join(args)} exited {code}"
    print(f"loopline {' '.join(args)}: {time.monotonic() - started:.1f} s", flush=True)
"""


@dataclass(frozen=True)
class Store:
    url: str
    model_name: str
    version: str
    train_run_id: str
    monitor_run_id: str
    reports: list[Path]
    decision: str
    reason: str


@pytest.fixture(scope="module")
def store(
    mlflow_server: MlflowServer, prefect_server: str, tmp_path_factory: pytest.TempPathFactory, tiny_model_dir
) -> Store:
    """v1 trained, a drifted feedback window imported and judged: the monitor keeps v1 (too few labels
    for the lenient test settings), and its Evidently pages open with that decision."""
    work = tmp_path_factory.mktemp("browser-store")
    demo = write_demo_files(work / "demo", seed=5)
    pd.read_csv(demo["train"]).sample(n=400, random_state=0).to_csv(work / "data.csv", index=False)
    pd.read_csv(demo["feedback_round2"]).head(200).to_csv(work / "feedback.csv", index=False)
    name = f"browser-{uuid.uuid4().hex[:8]}"
    (work / "loopline.toml").write_text(
        f'tracking_uri = "{mlflow_server.url}"\nexperiment_name = "{name}"\nmodel_name = "{name}"\n'
        + tiny_toml(tiny_model_dir)
    )
    cli = Cli(cwd=work, user_home=work / "user", prefect_api=prefect_server)
    done = subprocess.run(
        [sys.executable, "-c", COMMANDS], cwd=work, env=cli.env(), capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stdout[-3000:] + done.stderr[-6000:]
    print(done.stdout)
    client = MlflowClient(tracking_uri=mlflow_server.url, registry_uri=mlflow_server.url)
    version = client.get_model_version(name, "1")
    experiment = client.get_experiment_by_name(name)
    assert experiment is not None
    (monitor_run,) = client.search_runs(
        [experiment.experiment_id], "tags.`loopline.flow` = 'monitor'", max_results=1
    )
    reports = sorted((work / ".loopline" / "reports").glob(f"drift-{monitor_run.info.run_id}*.html"))
    return Store(
        url=mlflow_server.url,
        model_name=name,
        version=version.version,
        train_run_id=str(version.run_id),
        monitor_run_id=monitor_run.info.run_id,
        reports=reports,
        decision=monitor_run.data.tags["loopline.decision"],
        reason=monitor_run.data.tags["loopline.decision_reason"],
    )


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Headless Chromium driven by the system chromedriver (explicit paths: Selenium Manager never
    looks anything up online)."""
    assert CHROMIUM is not None and CHROMEDRIVER is not None  # else the module is skipped
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    profile = tmp_path_factory.mktemp("chromium-profile")
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                     "--window-size=1400,1800", f"--user-data-dir={profile}"):  # fmt: skip
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(PAGE_TIMEOUT_S)
    try:
        yield driver
    finally:
        driver.quit()


def page_text(driver: Any) -> str:
    """What the page shows (rendered, visible text; not the data in its scripts)."""
    from selenium.webdriver.common.by import By

    return str(driver.find_element(By.TAG_NAME, "body").text)


def _wait(driver: Any, condition: Callable[[Any], Any], what: str) -> Any:
    """``condition``'s first truthy value; on timeout, fail with what the page shows."""
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        return WebDriverWait(driver, PAGE_TIMEOUT_S).until(condition)
    except TimeoutException:
        pass  # fail below, without selenium's empty traceback chained to the page's text
    shown = page_text(driver)[:3000]
    pytest.fail(f"{what} not rendered in {PAGE_TIMEOUT_S} s at {driver.current_url}; page:\n{shown}")


def wait_for(driver: Any, xpath: str, what: str) -> Any:
    """The first element at ``xpath`` once it is rendered."""
    from selenium.webdriver.common.by import By

    return _wait(driver, lambda d: d.find_elements(By.XPATH, xpath), what)[0]


def wait_for_text(driver: Any, text: str, what: str) -> str:
    """The page's visible text once it shows ``text``."""
    return str(_wait(driver, lambda d: text in (shown := page_text(d)) and shown, what))


def test_the_model_version_page_shows_the_model_card(browser: Any, store: Store) -> None:
    """The registered version's description is its model card, rendered by the MLflow UI as Markdown."""
    browser.get(f"{store.url}/#/models/{store.model_name}/versions/{store.version}")
    wait_for_text(browser, f"Version {store.version}", "the version page")
    heading = wait_for(browser, "//h1[contains(., 'Model card:')]", "the model card's heading (an h1)")
    assert heading.text.strip() == f"Model card: {store.model_name} v{store.version}"
    assert "Intended use" in page_text(browser)


def test_the_evidently_report_opens_with_loopline_decision(browser: Any, store: Store) -> None:
    """Both pages of the monitor run (texts and embeddings; the champion's scores) show what decided."""
    assert len(store.reports) == 2, store.reports
    expected = "RETRAIN" if store.decision == "retrain" else "no retrain"
    artifacts = MlflowClient(tracking_uri=store.url).list_artifacts(store.monitor_run_id, "monitoring")
    assert {f"monitoring/{path.name}" for path in store.reports} <= {a.path for a in artifacts}
    for report in store.reports:
        browser.get(report.as_uri())
        heading = wait_for(browser, "//h2[contains(., 'loopline decision:')]", "loopline's decision")
        assert heading.text.strip() == f"loopline decision: {expected}"
        text = page_text(browser)
        assert store.reason.split(" (")[0] in text  # the reason's head, e.g. "No retrain yet: drift detected"
        # The first panel, under the page's Metrics / Tests tabs: the decision comes before Evidently's own.
        assert text[: text.index(heading.text)].split() == ["Metrics", "Tests", "loopline", "decision"]
        table = wait_for(browser, "//*[text()='loopline signals']/following::table[1]", "the signals table")
        for row in ("Embedding novelty", "Label drift", "Labelled feedback", "Cooldown"):
            assert row in table.text, table.text
        assert "alarm above" in table.text and "≥ 100000" in table.text  # thresholds beside the values


def test_the_train_run_carries_the_contracts_data_docs(browser: Any, store: Store, tmp_path: Path) -> None:
    """GX's pages of the training-data contract, one per stage (row, duplicates, labels, batch)."""
    client = MlflowClient(tracking_uri=store.url)
    assert "data_docs/index.html" in {a.path for a in client.list_artifacts(store.train_run_id, "data_docs")}
    docs = Path(client.download_artifacts(store.train_run_id, "data_docs", str(tmp_path)))
    assert not list(docs.rglob("*.gif"))  # GX's tutorial animations are left out (3.3 MB a run)
    (batch,) = docs.glob("validations/training_data/batch/*/*/data.csv.html")
    browser.get(batch.as_uri())
    text = wait_for_text(browser, "Expectation Suite: training_data.batch", "the batch stage's validation")
    assert "Status: Succeeded" in text and "Unsuccessful Expectations" in text
    browser.get((docs / "index.html").as_uri())  # its table is drawn by scripts from CDNs: offline, the frame
    wait_for_text(browser, "Validation Results", "the Data Docs index")
