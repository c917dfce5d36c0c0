"""The payment gateways SUBLEDGER_GATEWAY names, each built from its own settings
(docs/payments.md); the composition root (subledger/app.py) hands them to billing."""
from __future__ import annotations

from domain.ports import PaymentGateway
from gateways.kakaopay import KakaoPayGateway
from gateways.naverpay import NaverPayGateway
from gateways.portone import PortOneGateway
from gateways.sandbox_engine import SandboxEngine
from gateways.toss import TossGateway, in_process_sandbox
from subledger.settings import Settings


def build_gateways(settings: Settings, sandbox: SandboxEngine | None) -> tuple[dict[str, PaymentGateway], SandboxEngine | None]:
    gateways: dict[str, PaymentGateway] = {}
    retry = settings.gateway_retry_base_seconds
    if "sandbox" in settings.providers_named:
        if settings.sandbox_url:
            gateways["SANDBOX"] = TossGateway(
                settings.sandbox_url, "test_sk_sandbox", provider="SANDBOX", retry_base_seconds=retry, sandbox=True
            )
        else:
            sandbox = sandbox or SandboxEngine()
            gateways["SANDBOX"] = in_process_sandbox(sandbox, retry_base_seconds=retry)
    if "toss" in settings.providers_named:
        assert settings.toss_secret_key
        gateways["TOSS"] = TossGateway(
            settings.toss_base_url,
            settings.toss_secret_key,
            provider="TOSS",
            retry_base_seconds=retry,
        )
    if "portone" in settings.providers_named:
        assert settings.portone_api_secret and settings.portone_store_id
        gateways["PORTONE"] = PortOneGateway(
            settings.portone_base_url,
            settings.portone_api_secret.get_secret_value(),
            settings.portone_store_id,
            retry_base_seconds=retry,
        )
    if "kakaopay" in settings.providers_named:
        assert settings.kakao_secret_key
        gateways["KAKAO_PAY"] = KakaoPayGateway(
            settings.kakao_base_url, settings.kakao_secret_key.get_secret_value(), settings.kakao_cid,
            retry_base_seconds=retry, registration_amount=settings.kakao_registration_amount,
        )
    if "naverpay" in settings.providers_named:
        assert settings.naver_client_secret
        gateways["NAVER_PAY"] = NaverPayGateway(
            settings.naver_base_url, settings.naver_partner_id or "", settings.naver_client_id or "",
            settings.naver_client_secret.get_secret_value(), settings.naver_chain_id or "", settings.naver_page_url,
            retry_base_seconds=retry,
        )
    return gateways, sandbox
