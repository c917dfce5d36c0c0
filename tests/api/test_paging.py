"""Every list pages the same way (issue 12): `first`/`after` in, `items`/`nextCursor` out.

Over HTTP on both databases: each list walked to its end in pages of 2 equals the whole
list; a row written between two pages is neither repeated nor skipped; a tampered
cursor, or one of another list, user or filter, answers BAD_USER_INPUT; another user's
list stays FORBIDDEN as before. (The caps: tests/api/test_page_caps.py.)
"""
from __future__ import annotations

import base64
from typing import Any

from tests.api.conftest import Api

PURCHASE = 'mutation($m: ID!) { purchasePoints(input: {packageId: "starter", paymentMethodId: $m}) { payment { id } } }'
SUBSCRIBE = 'mutation($m: ID!) { subscribe(input: {planId: "basic", paymentMethodId: $m, skipTrial: true}) { id } }'
CANCEL_NOW = "mutation($s: ID!) { cancelSubscription(input: {subscriptionId: $s, atPeriodEnd: false}) { status } }"

#: Each paged list: (its page query, the path to its connection, the whole list's query and path, the item's key).
LISTS: dict[str, tuple[str, str, str, str, str]] = {
    "payments": (
        "query($u: ID, $n: Int, $a: String) { c: paymentsPage(userId: $u, first: $n, after: $a) { items { id } nextCursor } }",
        "c", "query($u: ID) { l: payments(userId: $u, first: 200) { id } }", "l", "id",
    ),
    "notifications": (
        "query($u: ID, $n: Int, $a: String) { c: notificationsPage(userId: $u, first: $n, after: $a) { items { id } nextCursor } }",
        "c", "query($u: ID) { l: notifications(userId: $u, first: 200) { id } }", "l", "id",
    ),
    "subscriptions": (
        "query($u: ID, $n: Int, $a: String) { c: subscriptionsPage(userId: $u, first: $n, after: $a) { items { id } nextCursor } }",
        "c", "query($u: ID) { l: subscriptions(userId: $u) { id } }", "l", "id",
    ),
    "events": (
        "query($u: ID, $n: Int, $a: String) { c: eventsPage(userId: $u, first: $n, after: $a) { items { position } nextCursor } }",
        "c", "query($u: ID) { l: events(userId: $u, first: 1000) { position } }", "l", "position",
    ),
    "transactions": (
        "query($u: ID, $n: Int, $a: String) { wallet(userId: $u) { c: transactions(first: $n, after: $a) { items { id } nextCursor } } }",
        "wallet.c", "query($u: ID) { wallet(userId: $u) { l: transactions(first: 200) { items { id } } } }", "wallet.l.items", "id",
    ),
}
#: Who reads each list of `user`: the user, or an auditor for the ledger's events.
READER = {"events": ("auditor-1", "auditor")}


def at(data: dict[str, Any], path: str) -> Any:
    for part in path.split("."):
        data = data[part]
    return data


def read(api: Api, name: str, user: str, query: str, variables: dict[str, Any]) -> dict[str, Any]:
    reader, scope = READER.get(name, (user, "user"))
    return api.gql(query, {"u": user, **variables}, user=reader, scope=scope)


def page(api: Api, name: str, user: str, first: int, after: str | None) -> tuple[list[Any], str | None]:
    query, path, _, _, key = LISTS[name]
    connection = at(read(api, name, user, query, {"n": first, "a": after}), path)
    return [item[key] for item in connection["items"]], connection["nextCursor"]


def whole(api: Api, name: str, user: str) -> list[Any]:
    _, _, query, path, key = LISTS[name]
    return [item[key] for item in at(read(api, name, user, query, {}), path)]


def walk(api: Api, name: str, user: str, first: int = 2) -> list[list[Any]]:
    pages, after = [], None
    while True:
        items, after = page(api, name, user, first, after)
        pages.append(items)
        if after is None:
            return pages


def make_history(api: Api, user: str) -> None:
    """Payments, notifications, subscriptions, ledger events and point transactions, several pages of each."""
    card = api.add_card(user)
    for _ in range(3):
        api.gql(PURCHASE, {"m": card}, user=user)
    for _ in range(2):
        sub = api.gql(SUBSCRIBE, {"m": card}, user=user)["subscribe"]["id"]
        api.gql(CANCEL_NOW, {"s": sub}, user=user)
    api.gql(SUBSCRIBE, {"m": card}, user=user)
    api.settle_read_models()


def test_every_list_walked_in_pages_of_two_is_the_whole_list(api: Api, user: str) -> None:
    make_history(api, user)
    for name in LISTS:
        everything = whole(api, name, user)
        assert len(everything) >= 3, (name, everything)
        pages = walk(api, name, user)
        assert [item for p in pages for item in p] == everything, name
        assert all(len(p) == 2 for p in pages[:-1]) and 1 <= len(pages[-1]) <= 2, (name, pages)
    # The exact counts this history makes: 3 points purchases + 3 subscription charges (+ refunds, not payments).
    assert len(whole(api, "payments", user)) == 6
    assert len(whole(api, "subscriptions", user)) == 3
    # A page as large as the list ends it at once.
    items, after = page(api, "payments", user, 6, None)
    assert len(items) == 6 and after is None


def test_a_row_written_between_two_pages_is_neither_repeated_nor_skipped(api: Api, user: str) -> None:
    make_history(api, user)
    card = api.gql("{ paymentMethods { id } }", user=user)["paymentMethods"][0]["id"]
    before = {name: whole(api, name, user) for name in LISTS}
    first_pages = {name: page(api, name, user, 2, None) for name in LISTS}
    api.gql(PURCHASE, {"m": card}, user=user)  # a payment, a notification, events, a transaction
    api.settle_read_models()
    after = {name: whole(api, name, user) for name in LISTS}
    for name, (items, cursor) in first_pages.items():
        rest, next_cursor = [], cursor
        while next_cursor is not None:
            more, next_cursor = page(api, name, user, 2, next_cursor)
            rest.extend(more)
        walked = items + rest
        assert len(walked) == len(set(walked)), (name, walked)  # nothing twice
        if name in ("events",):  # oldest first: the new rows come at the end of the walk
            assert walked == after[name] and len(after[name]) > len(before[name]), name
        elif name == "subscriptions":  # oldest first, and the purchase made none
            assert walked == before[name] == after[name], name
        else:  # newest first: the walk is the list as it stood, the new row heads a fresh first page
            assert walked == before[name], name
            assert len(after[name]) == len(before[name]) + 1 and after[name][1:] == before[name], name
            assert page(api, name, user, 2, None)[0][0] == after[name][0], name


def test_bad_and_foreign_cursors_are_refused(api: Api, user: str) -> None:
    make_history(api, user)
    other = f"{user}-other"
    make_history(api, other)
    cursors = {name: page(api, name, user, 2, None)[1] for name in LISTS}
    assert all(cursors.values()), cursors

    def refused(name: str, cursor: str, whose: str = user) -> None:
        query = LISTS[name][0]
        reader, scope = READER.get(name, ("admin-1", "admin"))
        error = api.error(query, {"u": whose, "n": 2, "a": cursor}, user=reader, scope=scope)
        assert error.code == "BAD_USER_INPUT", (name, cursor, error.errors)
        assert "cursor" in error.errors[0]["message"], error.errors

    def forged(text: str) -> str:
        return base64.urlsafe_b64encode(text.encode()).decode()

    for name, cursor in cursors.items():
        decoded = base64.urlsafe_b64decode(cursor).decode()
        list_name, scope, *key = decoded.split(":")
        for bad in (
            "not-a-cursor", "%%%", "", forged("garbage"),
            forged(f"{list_name}:{scope}"),  # the key cut off
            forged(f"{list_name}:{scope}:{'9' * 30}" + "".join(f":{k}" for k in key[1:])),  # beyond any position
            forged(f"{list_name}:{scope}:-1" + "".join(f":{k}" for k in key[1:])),
            forged(f"{list_name}:{'0' * 16}:" + ":".join(key)),  # another scope
        ):
            refused(name, bad)
        refused(name, cursor, whose=other)  # user's cursor on the other user's same list
        for elsewhere in LISTS:
            if elsewhere != name:
                refused(elsewhere, cursor)  # one list's cursor on another list
    # The events cursor of one filter is refused with another; the wallet's of one type filter too.
    events = "query($a: String) { eventsPage(first: 1, after: $a) { nextCursor } }"
    assert api.error(events, {"a": cursors["events"]}, user="auditor-1", scope="auditor").code == "BAD_USER_INPUT"
    typed = "query($a: String) { wallet { transactions(first: 1, after: $a, filter: {type: PURCHASE}) { nextCursor } } }"
    assert api.error(typed, {"a": cursors["transactions"]}, user=user).code == "BAD_USER_INPUT"
    # A refused cursor changed nothing: the lists read as before.
    assert walk(api, "payments", user)[0] == page(api, "payments", user, 2, None)[0]


def test_another_users_list_is_forbidden_as_before(api: Api, user: str) -> None:
    make_history(api, user)
    cursor = page(api, "payments", user, 2, None)[1]
    for name in ("payments", "notifications", "subscriptions"):
        query = LISTS[name][0]
        for scope in ("user", "analyst", "auditor"):
            error = api.error(query, {"u": user, "n": 2}, user="intruder-1", scope=scope)
            assert error.code == "FORBIDDEN", (name, scope, error.errors)
        # An admin may page anyone's; the intruder holding the owner's cursor still may not.
        assert at(api.gql(query, {"u": user, "n": 2}, user="admin-1", scope="admin"), "c")["items"]
    error = api.error(LISTS["payments"][0], {"u": user, "n": 2, "a": cursor}, user="intruder-1")
    assert error.code == "FORBIDDEN"
    # Without userId the intruder pages their own (empty) list: the cursor is refused, nothing leaks.
    error = api.error("query($a: String) { paymentsPage(after: $a) { items { id } } }", {"a": cursor}, user="intruder-1")
    assert error.code == "BAD_USER_INPUT"
    for scope in ("user", "analyst"):
        assert api.error(LISTS["events"][0], {"u": user, "n": 2}, user="someone", scope=scope).code == "FORBIDDEN"
