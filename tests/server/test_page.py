"""The page at ``/`` in a real headless Chromium (Debian's ``chromium`` and ``chromium-driver``, driven by
Selenium): skipped where no browser is installed. ``.ci/run`` installs one when it can."""
import shutil

import pytest

from tests.server.test_serve import SENTENCE

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
DRIVER = shutil.which("chromedriver")

pytestmark = pytest.mark.skipif(not (CHROMIUM and DRIVER), reason="no Chromium and chromedriver installed")


@pytest.fixture(scope="module")
def browser():
    webdriver = pytest.importorskip("selenium.webdriver")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                 "--window-size=1100,700"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=webdriver.ChromeService(executable_path=DRIVER), options=options)
    yield driver
    driver.quit()


def test_typed_text_is_drawn_with_entities_and_relation_arcs(browser, server_url, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(server_url + "/")
    browser.find_element(By.ID, "text").send_keys(SENTENCE)
    browser.find_element(By.ID, "run").click()
    WebDriverWait(browser, 20).until(lambda b: b.find_elements(By.CSS_SELECTOR, "svg#arcs path.relation"))
    marks = browser.execute_script("return [...document.querySelectorAll('mark.entity')]"
                                   ".map(m => [m.dataset.type, m.firstChild.textContent, m.style.background])")
    assert [m[:2] for m in marks] == [["Peop", "John Smith"], ["Org", "Acme Corp"], ["Loc", "Boston"]]
    assert len({m[2] for m in marks}) == 3  # one colour per type
    arcs = browser.find_elements(By.CSS_SELECTOR, "svg#arcs path.relation")
    assert sorted(a.get_attribute("data-type") for a in arcs) == ["OrgBased_In", "Work_For"]
    labels = browser.find_elements(By.CSS_SELECTOR, "svg#arcs text.relation-label")
    assert sorted(label.text for label in labels) == ["OrgBased_In", "Work_For"]
    for arc in arcs:  # a drawn curve, not an empty path
        assert arc.get_attribute("d").startswith("M ") and arc.size["width"] > 10
    assert browser.find_element(By.ID, "status").text == "3 entities, 2 relations"
    shot = tmp_path / "page.png"
    assert browser.save_screenshot(str(shot))
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 5000
    print(f"screenshot: {shot}")


def test_an_error_is_shown_on_the_page(browser, server_url):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(server_url + "/")
    browser.find_element(By.ID, "text").send_keys("   ")
    browser.find_element(By.ID, "run").click()
    WebDriverWait(browser, 20).until(lambda b: "error" in b.find_element(By.ID, "status").get_attribute("class"))
    assert "the text is empty" in browser.find_element(By.ID, "status").text
