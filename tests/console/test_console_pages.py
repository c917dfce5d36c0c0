"""Every console page in headless Chromium against a server with a scripted history: the
figures on the page are the API's answers for that history, read back from the DOM."""
from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from tests.api.conftest import JWT_SECRET, Api
from tests.console.conftest import OUTPUT, Tab
from schema.auth import mint_token

pytestmark = pytest.mark.timeout(600)
SEOUL = ZoneInfo("Asia/Seoul")


def won(amount: int) -> str:
    return f"{'-' if amount < 0 else ''}₩{abs(amount):,}"


def percent(share: float) -> str:
    return f"{share * 100:.1f}%"


def month_shift(month: str, delta: int) -> str:
    year, mon = map(int, month.split("-"))
    index = year * 12 + mon - 1 + delta
    return f"{index // 12}-{index % 12 + 1:02d}"


def last_day(month: str) -> str:
    year, mon = map(int, month.split("-"))
    nxt = datetime(year + (mon == 12), mon % 12 + 1, 1)
    return f"{month}-{(nxt - datetime(year, mon, 1)).days:02d}"


def clock_month(api: Api) -> str:
    now = datetime.fromisoformat(api.gql("{ clock { now } }")["clock"]["now"]).astimezone(SEOUL)
    return f"{now.year}-{now.month:02d}"


def contrast(first: str, second: str) -> float:
    """WCAG 2 contrast ratio of two CSS rgb() colours."""
    def luminance(css: str) -> float:
        channels = [int(v) / 255 for v in css[css.index("(") + 1:css.index(")")].split(",")[:3]]
        r, g, b = (c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels)
        return 0.2126 * r + 0.7152 * g + 0.0722 * b
    high, low = sorted((luminance(first), luminance(second)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def figures(page) -> dict[str, str]:
    return page.eval_on_selector_all("[data-figure]", "els => Object.fromEntries(els.map(e => [e.dataset.figure, e.textContent]))")


def shot(tab: Tab, name: str) -> None:
    tab.page.screenshot(path=str(OUTPUT / f"{name}-{tab.database}.png"), full_page=True)


def transferred(page) -> int:
    """Bytes the page received over the network (the document, its files and its API calls):
    the Resource Timing API's transferSize, headers included, nothing from a cache."""
    return page.evaluate("""[...performance.getEntriesByType('navigation'), ...performance.getEntriesByType('resource')]
        .reduce((total, entry) => total + entry.transferSize, 0)""")


def test_revenue_shows_the_api_figures_for_the_range_and_draws_charts(tab_factory, console_api: Api, output_dir) -> None:
    tab = tab_factory(scope="analyst")
    page = tab.open("#/revenue")
    page.wait_for_selector("[data-figure=mrr]")
    page.wait_for_function("window.__consoleFirstChart !== undefined")
    first_chart = page.evaluate("window.__consoleFirstChart")
    page.wait_for_load_state("networkidle")
    end = clock_month(console_api)
    start = month_shift(end, -5)
    metrics = console_api.gql(
        """query($f: Date!, $t: Date!) { subscriptionMetrics(from: $f, to: $t) {
          revenue { total mrr arr byPlan { planId revenue } } subscribers { totalActive newSubscribers churnedSubscribers churnRate }
          conversions { trialToPaid } payments { successRate refundedAmount } } }""",
        {"f": f"{start}-01", "t": last_day(end)}, user="a", scope="analyst")["subscriptionMetrics"]
    assert metrics["revenue"]["total"] > 0 and metrics["subscribers"]["churnedSubscribers"] > 0  # the history is not empty
    shown = figures(page)
    assert shown == {
        "mrr": won(metrics["revenue"]["mrr"]), "arr": won(metrics["revenue"]["arr"]), "revenue": won(metrics["revenue"]["total"]),
        "totalActive": str(metrics["subscribers"]["totalActive"]), "newSubscribers": str(metrics["subscribers"]["newSubscribers"]),
        "churnedSubscribers": str(metrics["subscribers"]["churnedSubscribers"]), "churnRate": percent(metrics["subscribers"]["churnRate"]),
        "trialToPaid": percent(metrics["conversions"]["trialToPaid"]), "successRate": percent(metrics["payments"]["successRate"]),
        "refundedAmount": won(metrics["payments"]["refundedAmount"]),
    }
    plans = page.eval_on_selector_all("[data-table=plans] tbody tr", "rows => rows.map(r => [r.dataset.plan, r.cells[1].textContent])")
    assert sorted(plans) == sorted([p["planId"], won(p["revenue"])] for p in metrics["revenue"]["byPlan"])
    months = page.eval_on_selector_all("[data-table=months] tbody tr", "rows => rows.map(r => [...r.cells].map(c => c.textContent))")
    assert [row[0] for row in months] == [month_shift(start, k) for k in range(6)]
    for row in months:
        one = console_api.gql(
            "query($f: Date!, $t: Date!) { subscriptionMetrics(from: $f, to: $t) { revenue { total mrr } subscribers { totalActive newSubscribers churnedSubscribers } } }",
            {"f": f"{row[0]}-01", "t": last_day(row[0])}, user="a", scope="analyst")["subscriptionMetrics"]
        assert row[1:] == [won(one["revenue"]["total"]), won(one["revenue"]["mrr"]), str(one["subscribers"]["totalActive"]),
                           str(one["subscribers"]["newSubscribers"]), str(one["subscribers"]["churnedSubscribers"])]
    statuses = console_api.gql("{ subscriptionsByStatus { status count } }", user="a", scope="analyst")["subscriptionsByStatus"]
    shown_statuses = page.eval_on_selector_all("[data-table=statuses] tbody tr", "rows => rows.map(r => [r.dataset.status, r.cells[1].textContent])")
    assert shown_statuses == [[s["status"], str(s["count"])] for s in statuses]
    assert {s["status"]: s["count"] for s in statuses if s["count"]} == {"ACTIVE": 2, "PAST_DUE": 1, "SUSPENDED": 1, "CANCELED": 1}
    assert page.locator("canvas").count() == 4
    shot(tab, "revenue")
    # Another range, chosen in the form: the figures follow it.
    page.fill("input[name=from]", "2026-04")
    page.fill("input[name=to]", "2026-04")
    page.click("form[aria-label=Months] button")
    page.wait_for_selector("h3:has-text('2026-04 to 2026-04')")
    page.wait_for_selector("[data-figure=revenue]")
    april = console_api.gql("{ subscriptionMetrics(from: \"2026-04-01\", to: \"2026-04-30\") { revenue { total } } }",
                            user="a", scope="analyst")["subscriptionMetrics"]
    assert figures(page)["revenue"] == won(april["revenue"]["total"]) != shown["revenue"]
    assert page.locator("[data-table=months] tbody tr").count() == 1
    assert tab.errors == []
    weight = transferred(page)
    print(f"\nconsole revenue page ({console_api.database}): {weight:,} bytes transferred in {len(tab.requests)} requests; "
          f"first chart drawn {first_chart:.0f} ms after navigation start")


def test_collections_lists_exactly_the_past_due_and_suspended_subscriptions(tab_factory, console_api: Api, output_dir) -> None:
    history = console_api.history
    statuses = {
        user: console_api.gql("query($id: ID!) { subscription(id: $id) { status } }", {"id": sub}, user="ops", scope="admin")["subscription"]["status"]
        for user, sub in history.subscriptions.items()
    }
    assert statuses[history.past_due] == "PAST_DUE" and statuses[history.suspended] == "SUSPENDED"
    expected = {history.subscriptions[u] for u, s in statuses.items() if s in ("PAST_DUE", "SUSPENDED")}
    cases = console_api.gql("{ collections { items { subscription { id userId } lastDeclineCode attempts nextRetryAt } nextCursor } }",
                            user="ops", scope="admin")["collections"]["items"]
    assert {c["subscription"]["id"] for c in cases} == expected
    tab = tab_factory()
    page = tab.open("#/collections")
    page.wait_for_selector("[data-table=collections] tbody tr")
    rows = page.eval_on_selector_all(
        "[data-table=collections] tbody tr",
        "rows => rows.map(r => ({id: r.dataset.subscription, cells: [...r.cells].map(c => c.textContent), href: r.querySelector('a').getAttribute('href')}))")
    assert [r["id"] for r in rows] == [c["subscription"]["id"] for c in cases]  # in the API's order: newest first
    for row, case in zip(rows, cases):
        assert row["cells"][0] == case["subscription"]["userId"]
        assert row["href"] == f"#/user/{case['subscription']['userId']}"
        assert row["cells"][5] == (case["lastDeclineCode"] or "—")
        assert row["cells"][7] == str(case["attempts"])
    shot(tab, "collections")
    page.click(f"a[href='#/user/{history.past_due}']")
    page.wait_for_selector("[data-section=wallet] [data-figure=totalBalance]")
    assert tab.errors == []


def test_user_page_shows_the_ledger_history_and_an_earlier_moment(tab_factory, console_api: Api, output_dir) -> None:
    user = console_api.history.paying
    tab = tab_factory()
    page = tab.open(f"#/user/{user}")
    page.wait_for_selector("[data-table=points]")
    page.wait_for_selector("[data-table=payments]")
    page.wait_for_selector("[data-table=timeline]")
    page.wait_for_selector("[data-table=subscriptions]")
    wallet = console_api.gql("query($u: ID) { wallet(userId: $u) { totalBalance usableBalance expiringSoon(withinDays: 3650) { amount } transactions(first: 200) { totalCount } } }",
                             {"u": user}, user="ops", scope="admin")["wallet"]
    assert wallet["totalBalance"] > 0
    shown = figures(page)
    assert shown["totalBalance"] == f"{wallet['totalBalance']:,} P" and shown["usableBalance"] == f"{wallet['usableBalance']:,} P"
    assert page.locator("[data-table=lots] tbody tr").count() == len(wallet["expiringSoon"])
    assert page.locator("[data-table=points] tbody tr").count() == wallet["transactions"]["totalCount"]
    payments = console_api.gql("query($u: ID) { paymentsPage(userId: $u, first: 200) { items { id amount refunds { amount } } } }",
                               {"u": user}, user="ops", scope="admin")["paymentsPage"]["items"]
    shown_payments = page.eval_on_selector_all("[data-table=payments] tr[data-payment]", "rows => rows.map(r => [r.dataset.payment, r.cells[2].textContent])")
    assert shown_payments == [[p["id"], won(p["amount"])] for p in payments]
    refunds = page.eval_on_selector_all("[data-table=payments] tr[data-refund]", "rows => rows.map(r => r.cells[2].textContent)")
    assert refunds == [won(-r["amount"]) for p in payments for r in p["refunds"]] and refunds == ["-₩1,000"]
    events = console_api.gql("query($u: ID) { eventsPage(userId: $u, first: 1000) { items { position aggregateType } } }",
                             {"u": user}, user="ops", scope="admin")["eventsPage"]["items"]
    timeline = page.eval_on_selector_all("[data-table=timeline] tbody tr", "rows => rows.map(r => Number(r.dataset.position))")
    assert timeline == [e["position"] for e in events if e["aggregateType"] == "Subscription"] and len(timeline) >= 2
    shot(tab, "user")

    # The asOf picker: a moment after the subscription and before the points were bought (03-06).
    page.fill("input[name=asOf]", "2026-03-03T10:00")
    page.click("form[aria-label='User and moment'] button")
    page.wait_for_selector("[data-as-of='2026-03-03T01:00:00.000Z']")
    page.wait_for_selector("[data-section=wallet] [data-figure=totalBalance]")
    page.wait_for_selector("[data-section=subscriptions] table, [data-section=subscriptions] .empty")
    then = console_api.gql("query($u: ID, $t: DateTime) { wallet(userId: $u, asOf: $t) { totalBalance } }",
                           {"u": user, "t": "2026-03-03T01:00:00Z"}, user="ops", scope="admin")["wallet"]
    assert figures(page)["totalBalance"] == f"{then['totalBalance']:,} P" != shown["totalBalance"]
    past = console_api.gql("query($id: ID!, $t: DateTime) { subscription(id: $id, asOf: $t) { status } }",
                           {"id": console_api.history.subscriptions[user], "t": "2026-03-03T01:00:00Z"}, user="ops", scope="admin")
    assert page.text_content("[data-table=subscriptions] tbody tr td:nth-child(5)") == past["subscription"]["status"]
    assert then["totalBalance"] == 0  # no point transaction yet: the empty state instead of a table
    assert page.locator("[data-section=points] table").count() == 0
    assert page.locator("[data-section=points] [data-empty]").is_visible()
    assert tab.errors == []


def test_cohorts_grid_shows_the_api_percentages(tab_factory, console_api: Api, output_dir) -> None:
    tab = tab_factory(scope="analyst")
    page = tab.open("#/cohorts")
    page.wait_for_selector("[data-table=cohorts] tbody tr")
    end = clock_month(console_api)
    rows = console_api.gql("query($f: String!, $t: String!) { cohorts(fromMonth: $f, toMonth: $t) { cohort size retained } }",
                           {"f": month_shift(end, -11), "t": end}, user="a", scope="analyst")["cohorts"]
    expected = {r["cohort"]: [percent(k / r["size"]) for k in r["retained"]] for r in rows if r["size"]}
    assert expected and any(expected.values())
    shown = page.eval_on_selector_all(
        "[data-table=cohorts] tbody tr",
        "rows => Object.fromEntries(rows.map(r => [r.dataset.cohort, [...r.querySelectorAll('td[data-retained]')].map(c => c.textContent)]))")
    assert shown == expected
    colours = page.eval_on_selector_all(
        "td[data-retained]", "cells => cells.map(c => [getComputedStyle(c).color, getComputedStyle(c).backgroundColor])")
    assert len({background for _, background in colours}) == len({v for row in expected.values() for v in row})
    for text, background in colours:
        assert contrast(text, background) >= 4.5, (text, background)
    shot(tab, "cohorts")
    assert tab.errors == []


def test_ledger_page_for_an_admin_rebuilds_verifies_and_reconciles(tab_factory, console_api: Api, output_dir) -> None:
    tab = tab_factory()
    page = tab.open("#/ledger")
    page.wait_for_selector("[data-table=projections] tbody tr")
    names = [p["name"] for p in console_api.gql("{ projections { name } }", user="ops", scope="admin")["projections"]]
    assert page.eval_on_selector_all("[data-table=projections] tbody tr", "rows => rows.map(r => r.dataset.projection)") == names
    page.click("button[data-rebuild=payments]")
    page.wait_for_selector("[data-rebuilt=payments]", timeout=120_000)
    page.click("text=Run verifyLedger")
    page.wait_for_selector("[data-section=verify] [data-figure=eventsReplayed]", timeout=120_000)
    report = console_api.gql("mutation { verifyLedger { eventsReplayed aggregatesChecked mismatches } }", user="ops", scope="admin")["verifyLedger"]
    shown = figures(page)
    assert shown["eventsReplayed"] == f"{report['eventsReplayed']:,}" and shown["mismatches"] == str(len(report["mismatches"])) == "0"
    page.click("text=Run reconciliation")
    page.wait_for_selector("[data-section=reconciliation] [data-figure=paymentsChecked]", timeout=120_000)
    checked = console_api.gql("{ reconciliation { paymentsChecked clean } }", user="ops", scope="admin")["reconciliation"]
    assert figures(page)["paymentsChecked"] == f"{checked['paymentsChecked']:,}" and checked["paymentsChecked"] > 0
    assert page.locator("[data-clean]").count() == (1 if checked["clean"] else 0)
    shot(tab, "ledger")
    assert tab.errors == []


def test_an_analyst_cannot_rebuild_and_an_auditor_sees_forbidden_analytics(tab_factory, console_api: Api, output_dir) -> None:
    analyst = tab_factory(scope="analyst")
    page = analyst.open("#/ledger")
    page.wait_for_selector("[data-table=projections] tbody tr")
    assert page.locator("button[data-rebuild]").count() == 0
    assert page.locator("[data-rebuild-absent]").is_visible()
    assert page.locator("text=Run verifyLedger").count() == 0  # verifyLedger is ADMIN or AUDITOR
    shot(analyst, "ledger-analyst")
    auditor = tab_factory(scope="auditor")
    page = auditor.open("#/revenue")
    page.wait_for_selector("[data-error=forbidden]")
    assert "FORBIDDEN" in page.text_content("[data-error=forbidden]")
    shot(auditor, "revenue-auditor-forbidden")
    # An auditor reads a user's ledger history and asOf state, but not their payments list (admin).
    page = auditor.open(f"#/user/{console_api.history.paying}")
    page.wait_for_selector("[data-section=payments] [data-error=forbidden]")
    page.wait_for_selector("[data-table=timeline] tbody tr")
    page.wait_for_selector("[data-section=wallet] [data-figure=totalBalance]")
    page.wait_for_selector("[data-table=subscriptions] tbody tr")  # its own query, after the events'
    assert page.locator("[data-table=subscriptions] tbody tr").count() == 1
    shot(auditor, "user-auditor")
    assert analyst.errors == [] and auditor.errors == []


def test_sign_in_refuses_a_user_token_and_an_expired_one(tab_factory, console_api: Api, output_dir) -> None:
    tab = tab_factory(user=None)
    page = tab.open("")
    page.fill("#token", console_api.token("alice", "user"))
    page.click("#login-form button")
    message = page.text_content("#login-error")
    assert "A user token cannot sign in here" in message and page.locator("#nav").is_hidden()
    assert page.locator("#who").is_hidden()  # no "Sign out" before signing in
    assert page.evaluate("sessionStorage.length") == 0
    shot(tab, "login-user-refused")
    page.fill("#token", mint_token(JWT_SECRET, "ops", "admin", ttl_seconds=-60))
    page.click("#login-form button")
    assert "expired" in page.text_content("#login-error")
    page.fill("#token", mint_token("another-secret-that-is-long-enough-32b", "ops", "admin"))
    page.click("#login-form button")
    page.wait_for_selector("#login-error:has-text('The API refused this token')")
    page.fill("#token", console_api.token("ops", "admin"))
    page.click("#login-form button")
    page.wait_for_selector("[data-figure=mrr]")
    assert page.evaluate("sessionStorage.getItem('subledger.console.token')") is not None
    # The keyboard alone: in a fresh load (the token kept), the first Tab reaches "Skip to content",
    # the next ones the pages' links.
    page.reload()
    page.wait_for_selector("[data-figure=mrr]")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    for _ in range(2):
        page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.getAttribute('href')") == "#/collections"
    page.keyboard.press("Enter")
    page.wait_for_selector("[data-page=collections] [data-table=collections]")
    assert tab.errors == []


def test_graphiql_renders_with_every_request_to_the_app(browser, console_api: Api, output_dir) -> None:
    context = browser.new_context()
    page = context.new_page()
    requests, errors = [], []
    page.on("request", lambda r: requests.append(r.url))
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(f"{console_api.url}/graphql")
    page.wait_for_selector(".graphiql-container .graphiql-editors", timeout=60_000)
    shown_after = page.evaluate("performance.now()")
    page.wait_for_load_state("networkidle")
    page.screenshot(path=str(OUTPUT / f"graphiql-{console_api.database}.png"))
    weight = transferred(page)
    context.close()
    print(f"\ngraphiql page ({console_api.database}): {weight:,} bytes transferred in {len(requests)} requests; editors shown {shown_after:.0f} ms after navigation start")
    assert requests and all(url.startswith(console_api.url) or url.startswith("data:") for url in requests), requests
    assert any(url.endswith("/console/vendor/graphiql.min.js") for url in requests)
    assert errors == []


def test_an_expired_session_and_an_api_error_are_shown(tab_factory, output_dir) -> None:
    expired = tab_factory(token=mint_token(JWT_SECRET, "ops", "admin", ttl_seconds=-1))
    page = expired.open("#/revenue")
    page.wait_for_selector("#login-error:has-text('expired')")
    assert page.locator("#nav").is_hidden() and page.evaluate("sessionStorage.length") == 0
    analyst = tab_factory(scope="analyst")
    page = analyst.open("#/cohorts/1990-01/2026-04")  # more months than the API answers
    box = page.wait_for_selector("[data-error=api]")
    assert "BAD_USER_INPUT" in box.text_content()
    shot(analyst, "cohorts-api-error")
    assert expired.errors == [] and analyst.errors == []
