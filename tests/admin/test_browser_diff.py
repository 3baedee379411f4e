"""Real-browser tests of diff readability: colour contrast in both themes, word-diff spacing, JSON keys.

Headless Chromium (Playwright) renders a History tab and an entry page with
word diffs, a JSON key diff, many-to-many links and action badges. For each
marked element the test reads the computed text colour and the backgrounds up
the tree to the first opaque one, composites them as the browser does and
computes the WCAG 2 contrast ratio in Python: at least 4.5:1 (AA, normal
text) in the light theme, the dark theme by system preference, and each
forced by Django's theme switch (``html[data-theme]``) against the system's.
Screenshots: ``test-artifacts/diff-<page>-<light|dark|phone>.png``.
"""

import re

import pytest

from audit_log.context import audit_context
from tests.browser import ARTIFACTS
from tests.factories import InvoiceFactory
from tests.testapp.models import Article, AuditLogEntry, Awkward, Tag

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

AA = 4.5
#: How far a marking's background must stand from its row's (Django's message red in the dark theme: 1.11).
MARKING = 1.2

#: Everything a diff colours, and the badges and muted labels beside it.
MARKED = ", ".join(
    [
        ".audit-log-text-diff del",
        ".audit-log-text-diff ins",
        ".audit-log-legend span",
        ".audit-log-json-keys del",
        ".audit-log-json-keys ins",
        ".audit-log-key-op",
        ".audit-log-key-absent",
        ".audit-log-m2m del",
        ".audit-log-m2m ins",
        ".audit-log-action",
        ".audit-log-blank",
    ]
)

#: Word and key markings: their own red or green must stand apart from the row around them.
HIGHLIGHTS = ("del", "ins", "span.audit-log-legend-")

#: For each marked element: its text, its colour, its own background and its ancestors' backgrounds
#: up to the first opaque one.
COLOURS_JS = """
(selector) => Array.from(document.querySelectorAll(selector)).map((element) => {
    const behind = [];
    for (let node = element.parentElement; node; node = node.parentElement) {
        const background = getComputedStyle(node).backgroundColor;
        behind.push(background);
        const alpha = background.match(/rgba\\(.*,\\s*([\\d.]+)\\)/);
        if (!alpha || parseFloat(alpha[1]) === 1) break;
    }
    return {
        what: element.tagName.toLowerCase() + "." + element.className + " " + element.innerText.slice(0, 30),
        color: getComputedStyle(element).color,
        own: getComputedStyle(element).backgroundColor,
        behind: behind,
    };
})
"""


def rgba(css):
    """Parse Chromium's computed ``rgb(r, g, b)`` / ``rgba(r, g, b, a)``."""
    numbers = [float(n) for n in re.findall(r"[\d.]+", css)]
    return (*numbers[:3], numbers[3] if len(numbers) > 3 else 1.0)


def over(top, bottom):
    """Composite a colour with alpha over an opaque one."""
    alpha = top[3]
    return (*(alpha * t + (1 - alpha) * b for t, b in zip(top[:3], bottom[:3], strict=True)), 1.0)


def luminance(colour):
    def channel(value):
        value /= 255
        return value / 12.92 if value <= 0.04045 else ((value + 0.055) / 1.055) ** 2.4

    red, green, blue = (channel(value) for value in colour[:3])
    return 0.2126 * red + 0.7152 * green + 0.0722 * blue


def effective(backgrounds):
    """The opaque colour a stack of backgrounds (innermost first) shows."""
    background = (255.0, 255.0, 255.0, 1.0)  # the canvas, if no ancestor is opaque
    for layer in reversed([rgba(background) for background in backgrounds]):
        background = over(layer, background)
    return background


def ratio(one, other):
    lighter, darker = sorted((luminance(one), luminance(other)), reverse=True)
    return (lighter + 0.05) / (darker + 0.05)


def contrast(text, backgrounds):
    """The WCAG contrast ratio of a text colour on the backgrounds of its element and ancestors (innermost first)."""
    background = effective(backgrounds)
    return ratio(over(rgba(text), background), background)


def test_contrast_matches_known_wcag_ratios():
    assert contrast("rgb(0, 0, 0)", ["rgb(255, 255, 255)"]) == pytest.approx(21)
    assert contrast("rgb(119, 119, 119)", ["rgba(0, 0, 0, 0)", "rgb(255, 255, 255)"]) == pytest.approx(4.48, abs=0.01)
    assert contrast("rgb(255, 255, 255)", ["rgba(0, 0, 0, 0.5)", "rgb(255, 255, 255)"]) == pytest.approx(3.98, abs=0.01)


@pytest.fixture
def diffs(user):
    """Objects whose history has a word diff, a JSON key diff, an empty string and links added and removed."""
    with audit_context("test", performed_by=user):
        thing = Awkward.objects.create(
            text="A lemon tart with a crumbly crust, served warm with cream on the side.",
            data={"roast": "medium-light", "origin": "Kenya", "dimensions": {"width": 10, "height": 5}, "old": 1},
        )
        thing.text = "A ripe peach tart with a crumbly crust, served cold with cream on the side."
        thing.data = {"roast": "dark", "origin": "Kenya", "dimensions": {"width": 12, "height": 5}, "new": [1]}
        thing.save()
        invoice = InvoiceFactory(number="INV-9", notes="")
        article = Article.objects.create(title="Beans")
        article.tags.add(Tag.objects.create(name="light-roast"))
        article.tags.set([Tag.objects.create(name="bestseller")])
    update = AuditLogEntry.objects.get(table_name="testapp_awkward", action="UPDATE")
    return {
        "history": f"/admin/testapp/awkward/{thing.pk}/history/",
        "entry": f"/admin/testapp/auditlogentry/{update.pk}/change/",
        "links": f"/admin/testapp/article/{article.pk}/history/",
        "empty": f"/admin/testapp/invoice/{invoice.pk}/history/",
    }


def low_contrast(page):
    """Return the marked elements below AA or whose marking blends into its row, and every text ratio."""
    found = page.evaluate(COLOURS_JS, MARKED)
    ratios, failing = [], []
    for item in found:
        text = contrast(item["color"], [item["own"], *item["behind"]])
        ratios.append((item["what"], round(text, 2)))
        if text < AA:
            failing.append((item["what"], "text", round(text, 2)))
        if item["what"].startswith(HIGHLIGHTS):
            # Not a WCAG text criterion: a red or green that nearly matches the row hides the marking.
            marking = ratio(effective([item["own"], *item["behind"]]), effective(item["behind"]))
            if marking < MARKING:
                failing.append((item["what"], "marking", round(marking, 2)))
    return failing, ratios


# The theme as the system prefers it, and as Django's theme switch sets it (html[data-theme]) over the system's.
THEMES = {
    "light": ("light", None),
    "dark": ("dark", None),
    "switched-dark": ("light", "dark"),
    "switched-light": ("dark", "light"),
}


@pytest.mark.parametrize("theme", THEMES)
def test_browser_diff_colours_meet_wcag_aa(logged_in, diffs, theme):
    scheme, switched = THEMES[theme]
    measured = {}
    for name, path in diffs.items():
        page = logged_in(path, color_scheme=scheme)
        if switched:
            page.evaluate("(theme) => { document.documentElement.dataset.theme = theme; }", switched)
        failing, ratios = low_contrast(page)
        assert failing == [], (theme, name, failing)
        measured[name] = ratios
        if switched is None and name in ("history", "entry"):
            page.screenshot(path=str(ARTIFACTS / f"diff-{name}-{theme}.png"), full_page=True)
        # Nothing may be wider than the screen (with Django's navigation sidebar open).
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1"), (theme, name)
    kinds = " ".join(what for ratios in measured.values() for what, _ in ratios)
    for kind in ("del.", "ins.", "span.audit-log-legend-del", "del.audit-log-json-value", "ins.audit-log-json-value"):
        assert kind in kinds, kind  # each kind of marking was measured
    for kind in ("audit-log-link-added", "audit-log-link-removed", "audit-log-blank", "audit-log-action"):
        assert kind in kinds, kind
    print(theme, {name: min(ratio for _, ratio in ratios) for name, ratios in measured.items()})


def test_browser_word_diff_and_json_keys_read_well(logged_in, diffs):
    page = logged_in(diffs["history"], color_scheme="light")
    notes = page.locator("tr.audit-log-row", has_text="Text")
    assert notes.locator(".audit-log-legend").inner_text().lower() == "before after"
    assert notes.locator("del").all_inner_texts() == ["lemon", "warm"]
    assert notes.locator("ins").all_inner_texts() == ["ripe peach", "cold"]
    # A visible gap between a removed word and the words that replaced it.
    gap = page.evaluate(
        """() => {
            const del = document.querySelector('.audit-log-text-diff del');
            const ins = del.parentElement.querySelector('del ~ ins');
            return ins.getBoundingClientRect().left - del.getBoundingClientRect().right;
        }"""
    )
    assert gap >= 2

    keys = page.locator("table.audit-log-json-keys tr.audit-log-key")
    assert [keys.nth(n).locator("th").inner_text() for n in range(keys.count())][:4] == [
        "dimensions.width",
        "new added",
        "old removed",
        "roast",
    ]
    # "medium-light" stays on one line; the unchanged keys are collapsed.
    medium = page.locator("del.audit-log-json-value", has_text="medium-light")
    assert medium.evaluate("(element) => element.getClientRects().length") == 1
    unchanged = page.locator("details.audit-log-json-unchanged")
    assert unchanged.locator("summary").inner_text() == "2 unchanged keys"
    assert not unchanged.locator("td", has_text="Kenya").is_visible()
    unchanged.locator("summary").click()
    assert unchanged.locator("td", has_text="Kenya").is_visible()

    page = logged_in(diffs["empty"], color_scheme="light")
    assert page.locator("tr.audit-log-row", has_text="Notes").locator(".audit-log-blank").inner_text() == "empty"


@pytest.mark.parametrize("name", ["history", "entry"])
def test_browser_diff_fits_a_phone(logged_in, diffs, name):
    page = logged_in(diffs[name], color_scheme="light", viewport={"width": 390, "height": 844}, is_mobile=True)
    page.screenshot(path=str(ARTIFACTS / f"diff-{name}-phone.png"), full_page=True)
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1"), name
    failing, _ = low_contrast(page)
    assert failing == []
