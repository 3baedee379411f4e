"""The log changelist in Chromium: readable at 1280 px with the navigation sidebar open, and its filter form.

Screenshots go to ``test-artifacts/changelist-readable-{light,dark,phone}.png``.
"""

import re
from urllib.parse import parse_qsl, urlsplit

import pytest
from django.contrib.contenttypes.models import ContentType

from audit_log.context import audit_context
from tests.admin.factories import LogEntryFactory
from tests.browser import ARTIFACTS
from tests.factories import CustomerFactory, UserFactory
from tests.testapp.models import Customer

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

LONG_NAME = "Hario V60 Ceramic Coffee Dripper, size 02, white, with 100 filter papers"
PATHS = [
    "/admin/shop/customer/6/delete/",
    "/admin/testapp/customer/12345/change/?_changelist_filters=status%3Dpaid%26o%3D-3",
    "/api/v2/organisations/acme-corporation/customers/import-from-spreadsheet/",
]
LOG = "/admin/testapp/auditlogentry/"

#: Every row of the result list, measured in the page.
MEASURE_ROWS = """() => {
    const lineHeight = el => {
        const style = getComputedStyle(el);
        return parseFloat(style.lineHeight) || parseFloat(style.fontSize) * 1.2;
    };
    const box = el => el && ({
        text: el.textContent,
        title: el.title,
        height: el.getBoundingClientRect().height,
        lineHeight: lineHeight(el),
        cut: el.scrollWidth > el.clientWidth,
        textOverflow: getComputedStyle(el).textOverflow,
    });
    return [...document.querySelectorAll('#result_list tbody tr')].map(row => {
        const time = row.querySelector('.field-when time');
        const whenCell = row.querySelector('.field-when');
        return {
            when: {
                ...box(time),
                datetime: time.getAttribute('datetime'),
                cut: whenCell.scrollWidth > whenCell.clientWidth,
            },
            path: box(row.querySelector('.field-context_type_label .audit-log-context')),
            object: box(row.querySelector('.field-object_label .audit-log-cut')),
            who: box(row.querySelector('.field-who .audit-log-cut')),
        };
    });
}"""

#: Words of the result list that the browser broke across lines (a word split over two line boxes).
BROKEN_WORDS = """() => {
    const broken = [];
    const walker = document.createTreeWalker(document.querySelector('#result_list'), NodeFilter.SHOW_TEXT);
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
        for (const match of node.textContent.matchAll(/\\S+/g)) {
            const range = document.createRange();
            range.setStart(node, match.index);
            range.setEnd(node, match.index + match[0].length);
            const tops = new Set([...range.getClientRects()].map(rect => Math.round(rect.top)));
            if (tops.size > 1) broken.push(match[0]);
        }
    }
    return broken;
}"""


@pytest.fixture
def crowded_log(user):
    """Requests with long paths by a user deleted since, on an object with a long name."""
    with audit_context("test", performed_by=user):
        customer = CustomerFactory(name=LONG_NAME)
    dave = UserFactory(username="dave")
    for path in PATHS:
        LogEntryFactory(
            content_type=ContentType.objects.get_for_model(Customer),
            object_id=str(customer.pk),
            table_name=Customer._meta.db_table,
            changes={"name": ["Hario V60", LONG_NAME], "email": ["a@example.com", "b@example.com"]},
            context_type="http-request",
            context={"method": "POST", "path": path},
            performed_by_id=dave.pk,
            performed_by_label="dave",
        )
    dave.delete()
    return customer


def assert_readable(page):
    """Every row on one line per cell where it must be, cut with an ellipsis and a title where it is long."""
    assert page.locator("#nav-sidebar").is_visible()  # Django's navigation sidebar, open
    # The table fits its column: nothing scrolls sideways.
    assert page.evaluate("(el => el.scrollWidth <= el.clientWidth)(document.querySelector('.results'))")
    assert page.evaluate(BROKEN_WORDS) == []
    rows = page.evaluate(MEASURE_ROWS)
    assert len(rows) == len(PATHS) + 1  # and the customer's creation, oldest
    for row, path in zip(rows, reversed(PATHS), strict=False):
        when = row["when"]
        assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d", when["text"]), when
        assert when["height"] <= 1.5 * when["lineHeight"], when  # one line
        assert not when["cut"], when
        assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \S+", when["title"]), when  # the seconds on hover
        assert when["datetime"].startswith(when["text"].replace(" ", "T")), when

        assert row["path"]["title"] == f"POST {path}"  # in full on hover
        assert row["path"]["height"] <= 1.5 * row["path"]["lineHeight"], row["path"]
        if len(path) > 20:
            assert row["path"]["cut"], row["path"]
            assert row["path"]["textOverflow"] == "ellipsis", row["path"]

        assert row["object"]["title"] == LONG_NAME
        assert row["object"]["cut"], row["object"]
        assert row["object"]["textOverflow"] == "ellipsis", row["object"]

        assert row["who"]["text"] == row["who"]["title"] == "dave (deleted user)"
        assert row["who"]["height"] <= 1.5 * row["who"]["lineHeight"], row["who"]  # one line


@pytest.mark.parametrize("theme", ["light", "dark"])
def test_browser_changelist_is_readable_at_1280_with_the_sidebar_open(logged_in, crowded_log, theme):
    page = logged_in(LOG, color_scheme=theme)
    assert page.viewport_size == {"width": 1280, "height": 900}
    page.screenshot(path=str(ARTIFACTS / f"changelist-readable-{theme}.png"), full_page=True)
    assert_readable(page)


def test_browser_changelist_at_phone_width_scrolls_the_table_not_the_page(logged_in, crowded_log):
    page = logged_in(LOG, viewport={"width": 390, "height": 844}, is_mobile=True)
    page.screenshot(path=str(ARTIFACTS / "changelist-readable-phone.png"), full_page=True)
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
    assert page.evaluate(BROKEN_WORDS) == []
    for row in page.evaluate(MEASURE_ROWS):
        assert row["when"]["height"] <= 1.5 * row["when"]["lineHeight"], row["when"]
        assert not row["when"]["cut"], row["when"]
    # The table keeps a readable width and scrolls in its own box.
    assert page.evaluate("(el => el.scrollWidth > el.clientWidth)(document.querySelector('.results'))")
    assert page.evaluate("document.querySelector('#result_list .column-object_label').offsetWidth") >= 80


def test_browser_entry_page_shows_the_whole_path_and_name(logged_in, crowded_log):
    page = logged_in(LOG)
    page.locator("#result_list tbody tr").first.locator("th a").click()
    page.wait_for_url(re.compile(r"/auditlogentry/\d+/change/$"))
    content = page.locator("#content").inner_text()
    assert PATHS[-1] in content
    assert LONG_NAME in content


def test_browser_filter_form_leaves_empty_fields_out_of_the_url(logged_in, crowded_log, user):
    page = logged_in(f"{LOG}?at__year=2026&q=")
    requested = []
    page.on("request", lambda request: request.is_navigation_request() and requested.append(request.url))
    page.select_option("#audit-log-filter-action", "UPDATE")
    page.click(".audit-log-filter-form input[type=submit]")
    page.wait_for_url(re.compile(r"action=UPDATE"))
    # Straight to the short URL: the script left the empty fields out (no redirect from the server).
    assert len(requested) == 1
    assert parse_qsl(urlsplit(requested[0]).query, keep_blank_values=True) == [
        ("at__year", "2026"),
        ("q", ""),
        ("action", "UPDATE"),
    ]
    assert page.locator("#result_list tbody tr").count() == len(PATHS)  # dave's updates

    # Back: the fields left out are usable again.
    page.go_back()
    page.wait_for_url(re.compile(r"at__year=2026&q=$"))
    assert page.locator("#audit-log-filter-user").is_enabled()
    page.select_option("#audit-log-filter-action", "")  # the browser restored the choice
    page.fill("#audit-log-filter-user", "dave")
    page.click(".audit-log-filter-form input[type=submit]")
    page.wait_for_url(re.compile(r"user=dave"))
    assert dict(parse_qsl(urlsplit(page.url).query)) == {"at__year": "2026", "user": "dave"}


def test_browser_filter_form_without_javascript_ends_at_the_same_short_url(logged_in, crowded_log, browser):
    page = logged_in(LOG, java_script_enabled=False)
    page.select_option("#audit-log-filter-action", "UPDATE")
    page.click(".audit-log-filter-form input[type=submit]")
    page.wait_for_url(re.compile(r"action=UPDATE"))
    assert urlsplit(page.url).query == "action=UPDATE"  # the server's redirect dropped the rest
