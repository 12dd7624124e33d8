"""Headless Chromium (Debian's chromium and chromedriver, driven by Selenium) looking at the
Dagster UI: the asset graph, and a day's alert report with its plot and incident table."""

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")


@contextlib.contextmanager
def chromium(folder: Path) -> Iterator:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1600,1000",
        f"--user-data-dir={folder / 'chromium-profile'}",
    ):
        options.add_argument(argument)
    service = Service(str(CHROMEDRIVER), log_output=str(folder / "chromedriver.log"))
    driver = webdriver.Chrome(service=service, options=options)
    try:
        yield driver
    finally:
        driver.quit()


def browse_asset_graph_and_report(
    url: str, day: str, starts: list[str], shots: Path, profile: Path
) -> None:
    """Screenshots of the asset graph and of the day's alert_report partition (its "report"
    metadata: Markdown with a base64 PNG plot and the table of incidents), with checks that
    the plot is drawn and the table holds the incidents starting at `starts`."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    with chromium(profile) as browser:
        wait = WebDriverWait(browser, 60)
        # the asset graph: groups start collapsed; "Expand all groups" is in the graph's menu
        browser.get(f"{url}/asset-groups")
        settings = "//button[.//*[@role='img' and @aria-label='settings']]"
        wait.until(lambda d: len(d.find_elements(By.XPATH, settings)) >= 2)  # nav + graph
        browser.find_elements(By.XPATH, settings)[-1].click()
        wait.until(lambda d: d.find_elements(By.XPATH, "//*[text()='Expand all groups']"))[
            0
        ].click()
        browser.find_element(By.TAG_NAME, "body").send_keys(Keys.ESCAPE)

        def graph_drawn(driver) -> bool:
            text = driver.find_element(By.TAG_NAME, "body").text
            # long names are shortened in the middle ("fatal_…_per_minute") when zoomed out
            shown = ("validated_logs", "per_minute", "per_hour", "notifications", "alert_report")
            return all(name in text for name in shown) and "Expand all groups" not in text

        wait.until(graph_drawn)
        time.sleep(1)  # let the edges settle before the picture
        browser.save_screenshot(str(shots / "asset-graph.png"))

        # the day's alert_report partition; the Markdown opens in a dialog
        browser.get(f"{url}/assets/alert_report?view=partitions&partition={day}")
        show = "//tr[td[1][normalize-space()='report']]//*[contains(text(), 'Show Markdown')]"
        wait.until(lambda d: d.find_elements(By.XPATH, show))[0].click()
        dialog = wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "[role='dialog']"))[0]

        def plot_loaded(driver) -> list:
            images = dialog.find_elements(By.CSS_SELECTOR, "img[src^='data:image/png;base64,']")
            loaded = "return arguments[0].complete && arguments[0].naturalWidth > 0"
            return [image for image in images if driver.execute_script(loaded, image)]

        (plot,) = wait.until(plot_loaded)
        assert plot.size["width"] >= 300 and plot.size["height"] >= 100, plot.size
        wait.until(lambda d: len(dialog.find_elements(By.TAG_NAME, "td")) >= len(starts))
        cells = [cell.text.strip() for cell in dialog.find_elements(By.TAG_NAME, "td")]
        for start in starts:
            assert start in cells, (start, cells)
        heading = dialog.find_element(By.TAG_NAME, "h1").text
        assert heading == f"Alert report {day} (UTC)", heading
        browser.save_screenshot(str(shots / "alert-report.png"))
