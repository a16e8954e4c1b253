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


def test_nested_entities_are_drawn_inside_their_container_with_their_arcs(browser, server_url):
    """A drug inside an adverse effect (per-type tagging predicts both) is a mark inside the effect's mark, and the
    arc between them is drawn; an entity that crosses another's boundary is left out of the text."""
    from selenium.webdriver.common.by import By

    browser.get(server_url + "/")
    text = "He developed lithium intoxication after it."
    found = lambda s: text.index(s)  # noqa: E731
    entities = [{"type": "Drug", "char_start": found("lithium"), "char_end": found(" intoxication"), "text": "lithium"},
                {"type": "AE", "char_start": found("lithium"), "char_end": found(" after"),
                 "text": "lithium intoxication"},
                {"type": "AE", "char_start": found("intoxication"), "char_end": len(text) - 1,
                 "text": "intoxication after it"}]
    output = {"text": text, "entities": entities,
              "relations": [{"type": "Adverse_Effect", "head": 1, "tail": 0}]}
    browser.execute_script("renderText(arguments[0]); drawArcs(arguments[0]);", output)
    tree = browser.execute_script(
        "return [...document.querySelectorAll('#doc mark.entity')].map(m => [m.dataset.index, "
        "m.parentElement.closest('mark.entity') ? m.parentElement.closest('mark.entity').dataset.index : null])")
    assert tree == [["1", None], ["0", "1"]]  # the effect, and the drug inside it; the crossing one left out
    assert browser.find_element(By.ID, "doc").text.replace("\n", " ").startswith("He developed lithium")
    arcs = browser.find_elements(By.CSS_SELECTOR, "svg#arcs path.relation")
    assert [a.get_attribute("data-type") for a in arcs] == ["Adverse_Effect"]
