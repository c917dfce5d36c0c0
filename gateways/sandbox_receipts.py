"""The sandbox's receipt page: what `receipt.url` of an approved sandbox payment
shows (`GET /receipt/redirection?transactionId=<paymentKey>`, no authentication,
like Toss' receipt links, which are meant for the payer).

A small HTML page: the order, its amount, approval time, masked card, current
status and cancellations. It never shows the billing key or the customer key; the
payment key in its address is a random token, as at Toss, and not a credential.
"""
from __future__ import annotations

from html import escape

from gateways.sandbox_orders import Order, mask, rfc3339


def _won(amount: int) -> str:
    return f"{amount:,}원"


def render_receipt(order: Order) -> str:
    """The receipt of an approved order as a self-contained HTML document."""
    rows = [
        ("주문번호 (orderId)", order.order_id),
        ("주문명 (orderName)", order.order_name),
        ("결제금액 (totalAmount)", _won(order.amount)),
        ("승인일시 (approvedAt)", rfc3339(order.approved_at) if order.approved_at else "-"),
        ("카드번호 (card)", mask(order.card_number)),
        ("상태 (status)", order.status),
        ("잔액 (balanceAmount)", _won(order.balance)),
    ]
    rows += [(f"취소 (cancel) {c['canceledAt']}", _won(c["cancelAmount"])) for c in order.cancels]
    body = "\n".join(f"<tr><th>{escape(name)}</th><td>{escape(value)}</td></tr>" for name, value in rows)
    return (
        "<!doctype html>\n<html lang=\"ko\"><head><meta charset=\"utf-8\">"
        f"<title>Sandbox receipt {escape(order.order_id)}</title></head>\n"
        f"<body><h1>Sandbox receipt</h1>\n<table data-payment-key=\"{escape(order.payment_key)}\">\n{body}\n</table>\n"
        "<p>Issued by the subledger sandbox gateway: no money moved.</p></body></html>\n"
    )
