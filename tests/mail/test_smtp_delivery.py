"""Notifications e-mailed to a real SMTP server process (aiosmtpd), on both databases, by the
sender the service runs: the outbox follower inside `serve` and the scheduled jobs
(`runScheduledJobs`). sentAt comes only from the server's acceptance; refusals and outages are
retried and visible; nothing the server accepted is sent again."""
from __future__ import annotations

import email
import time
from email.policy import default as default_policy
from datetime import datetime

from schema.auth import mint_token
from tests.api.conftest import JWT_SECRET, Api
from tests.api.test_privacy import everything_stored
from tests.mail.conftest import FROM, SmtpServer, notifications_of, smtp_settings, wait_for_notification, with_address
from tests.scenarios.helpers import ADMIN, subscribe

RUN = "mutation { runScheduledJobs { job processed succeeded failed } }"
ERASE = "mutation($u: ID!) { eraseUserData(userId: $u) }"


def test_a_notification_accepted_by_the_server_is_sent_once_with_its_content(api_factory, user: str, smtp_server: SmtpServer) -> None:
    smtp_server.start()
    api: Api = api_factory(**smtp_settings(smtp_server))
    address = with_address(api, user)
    subscribe(api, user, "free")
    sent = wait_for_notification(api, user, lambda n: n["deliveryStatus"] == "SENT", what="SENT")

    [received] = smtp_server.messages()
    assert received["rcpt_tos"] == [address]
    assert received["mail_from"] == "billing@subledger.test"
    message = email.message_from_string(received["data"], policy=default_policy)
    assert message["To"] == address and message["From"] == FROM
    assert message["Subject"] == sent["subject"] == "Welcome to the free plan"
    assert message.get_content().strip() == sent["body"] == "Your free subscription is active."
    assert message["Message-ID"] == f"<{sent['id']}@subledger.test>"
    assert message["Auto-Submitted"] == "auto-generated"
    assert (sent["deliveryAttempts"], sent["lastDeliveryError"], sent["nextAttemptAt"]) == (1, None, None)
    # sentAt is the product clock's time of the server's acceptance (the test clock stands still here).
    assert datetime.fromisoformat(sent["sentAt"]) >= datetime.fromisoformat(sent["createdAt"])

    # The scheduled run finds nothing to send: the server got the message once.
    runs = api.gql(RUN, user="cron", scope="cron")["runScheduledJobs"]
    assert [r["succeeded"] for r in runs if r["job"] == "send_notifications"] == [0, 0]
    assert len(smtp_server.messages()) == 1
    assert notifications_of(api, user)[0]["sentAt"] == sent["sentAt"]


def test_a_refused_recipient_is_retried_visibly_and_sent_when_the_server_accepts(
    api_factory, user: str, smtp_server: SmtpServer
) -> None:
    smtp_server.start()
    api: Api = api_factory(**smtp_settings(smtp_server, smtp_retry_base_seconds=1))
    address = with_address(api, user)
    smtp_server.refuse(address)
    subscribe(api, user, "free")
    refused = wait_for_notification(api, user, lambda n: n["deliveryStatus"] == "RETRYING", what="RETRYING")
    assert refused["sentAt"] is None and refused["deliveryAttempts"] >= 1
    assert refused["lastDeliveryError"].startswith("550 5.1.1 <address>: Recipient address rejected")
    assert datetime.fromisoformat(refused["nextAttemptAt"]) > datetime.fromisoformat(refused["lastAttemptAt"])
    # The server's reply named the recipient: nothing stored keeps the address in clear.
    assert address not in everything_stored(api)
    assert smtp_server.messages() == []

    smtp_server.accept_all()
    sent = wait_for_notification(api, user, lambda n: n["deliveryStatus"] == "SENT", what="SENT after the refusal")
    assert sent["deliveryAttempts"] > refused["deliveryAttempts"]
    assert sent["lastDeliveryError"] is None and sent["sentAt"] is not None
    assert [m["rcpt_tos"] for m in smtp_server.messages()] == [[address]]


def test_a_server_that_is_down_is_tried_again_once_it_is_up(api_factory, user: str, smtp_server: SmtpServer) -> None:
    api: Api = api_factory(**smtp_settings(smtp_server, smtp_retry_base_seconds=0.5))
    address = with_address(api, user)
    subscribe(api, user, "free")  # no server listens on the port yet
    down = wait_for_notification(api, user, lambda n: n["deliveryStatus"] == "RETRYING", what="RETRYING while down")
    assert down["sentAt"] is None
    assert "Connect" in down["lastDeliveryError"] or "refused" in down["lastDeliveryError"].lower()

    smtp_server.start()
    sent = wait_for_notification(api, user, lambda n: n["deliveryStatus"] == "SENT", what="SENT once up")
    assert sent["deliveryAttempts"] >= 2 and sent["sentAt"] is not None
    assert [m["rcpt_tos"] for m in smtp_server.messages()] == [[address]]


def test_after_the_last_attempt_it_is_failed_and_left_alone(api_factory, user: str, smtp_server: SmtpServer) -> None:
    smtp_server.start()
    api: Api = api_factory(**smtp_settings(smtp_server, smtp_max_attempts=2, smtp_retry_base_seconds=0.1))
    address = with_address(api, user)
    smtp_server.refuse(address)
    subscribe(api, user, "free")
    failed = wait_for_notification(api, user, lambda n: n["deliveryStatus"] == "FAILED", what="FAILED")
    assert (failed["deliveryAttempts"], failed["sentAt"], failed["nextAttemptAt"]) == (2, None, None)
    assert failed["lastDeliveryError"].startswith("550")
    smtp_server.accept_all()
    api.gql(RUN, user="cron", scope="cron")
    assert notifications_of(api, user)[0]["deliveryStatus"] == "FAILED"
    assert smtp_server.messages() == []


def test_no_mail_to_a_user_without_an_address_or_whose_data_was_erased(api_factory, smtp_server: SmtpServer) -> None:
    smtp_server.start()
    api: Api = api_factory(**smtp_settings(smtp_server))
    # Erased first: the outbox still gets the WELCOME, the sender finds no address to use.
    erased, silent, crafted = "user-erased-mail", "user-no-address", "user-crafted-address"
    with_address(api, erased)
    api.gql(ERASE, {"u": erased}, **ADMIN)
    # A claim is only length-checked: one that would smuggle a second SMTP command is never used.
    smuggler = mint_token(JWT_SECRET, crafted, "user", email="a@mail.subledger.test\r\nRCPT TO:<b@mail.subledger.test>")
    assert api.gql("{ me }", token=smuggler)["me"] == crafted
    for user in (erased, silent, crafted):
        subscribe(api, user, "free")
    for user, reason in ((erased, "the user's personal data was erased"), (silent, "no e-mail address on record"),
                         (crafted, "the address on record is not a usable e-mail address")):
        skipped = wait_for_notification(api, user, lambda n: n["deliveryStatus"] == "SKIPPED", what=f"SKIPPED for {user}")
        assert (skipped["lastDeliveryError"], skipped["deliveryAttempts"], skipped["sentAt"]) == (reason, 0, None)
    api.gql(RUN, user="cron", scope="cron")
    assert smtp_server.messages() == []


def test_an_answer_lost_after_the_message_was_handed_over_is_unconfirmed_and_never_sent_again(
    api_factory, user: str, smtp_server: SmtpServer
) -> None:
    smtp_server.start()
    smtp_server.delay_file.write_text("5")  # the server answers the message later than the client waits
    api: Api = api_factory(**smtp_settings(smtp_server, smtp_timeout=2))
    with_address(api, user)
    subscribe(api, user, "free")
    lost = wait_for_notification(api, user, lambda n: n["deliveryStatus"] == "UNCONFIRMED", what="UNCONFIRMED")
    assert lost["sentAt"] is None and "Timeout" in lost["lastDeliveryError"], lost
    smtp_server.delay_file.unlink()
    api.gql(RUN, user="cron", scope="cron")
    time.sleep(2.5)  # and a pass of the outbox follower
    again = notifications_of(api, user)[0]
    assert (again["deliveryStatus"], again["deliveryAttempts"]) == ("UNCONFIRMED", lost["deliveryAttempts"])
    assert len(smtp_server.messages()) <= 1  # whatever the server made of the first one, no second was sent


RESEND = "mutation($n: ID!) { resendNotification(notificationId: $n) { id deliveryStatus deliveryAttempts nextAttemptAt } }"


def test_an_operator_resends_a_failed_or_unconfirmed_notification_once_and_nothing_else(
    api_factory, smtp_server: SmtpServer
) -> None:
    smtp_server.start()
    api: Api = api_factory(**smtp_settings(smtp_server, smtp_max_attempts=1, smtp_timeout=2))
    refused, lost = "user-resend-refused", "user-resend-lost"
    refused_address, lost_address = with_address(api, refused), with_address(api, lost)
    smtp_server.refuse(refused_address)
    subscribe(api, refused, "free")
    failed = wait_for_notification(api, refused, lambda n: n["deliveryStatus"] == "FAILED", what="FAILED")
    smtp_server.delay_file.write_text("5")  # the server answers later than the client waits
    subscribe(api, lost, "free")
    unconfirmed = wait_for_notification(api, lost, lambda n: n["deliveryStatus"] == "UNCONFIRMED", what="UNCONFIRMED")
    smtp_server.delay_file.unlink()
    smtp_server.accept_all()
    time.sleep(4)  # past the server's delayed answer: whether it kept the lost one is settled now
    before = len(smtp_server.messages())

    # Only an ADMIN may resend; a user, even the recipient, is refused and nothing moves.
    forbidden = api.error(RESEND, {"n": failed["id"]}, user=refused)
    assert forbidden.code == "FORBIDDEN"
    assert api.error(RESEND, {"n": "no-such-notification"}, **ADMIN).code == "NOT_FOUND"
    assert notifications_of(api, refused)[0]["deliveryStatus"] == "FAILED"

    again = api.gql(RESEND, {"n": failed["id"]}, **ADMIN)["resendNotification"]
    assert (again["id"], again["deliveryStatus"], again["deliveryAttempts"]) == (failed["id"], "RETRYING", 1)
    sent = wait_for_notification(api, refused, lambda n: n["deliveryStatus"] == "SENT", what="SENT after resend")
    assert sent["deliveryAttempts"] == 2 and sent["sentAt"] is not None
    api.gql(RESEND, {"n": unconfirmed["id"]}, **ADMIN)
    wait_for_notification(api, lost, lambda n: n["deliveryStatus"] == "SENT", what="SENT after resend")

    # One more message per resend, to its own recipient; a SENT one is not resent.
    messages = smtp_server.messages()
    assert len(messages) == before + 2
    assert sorted(m["rcpt_tos"][0] for m in messages[before:]) == sorted([refused_address, lost_address])
    conflict = api.error(RESEND, {"n": failed["id"]}, **ADMIN)
    assert conflict.code == "CONFLICT" and "SENT" in str(conflict)
    api.gql(RUN, user="cron", scope="cron")
    time.sleep(1.0)
    assert len(smtp_server.messages()) == before + 2
