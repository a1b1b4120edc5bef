"""template.yaml's edge: CORS as the local stack's, a wildcard origin standing alone, the enqueue
function's own origin list, and stricter throttling for POST /mint than for the reads.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.support import sam_template as sam
from tests.support.sam_template import EXPECTED_ROUTES, template

__all__ = ["template"]  # the fixture, used by name


def _http_api(template: dict[str, Any]) -> dict[str, Any]:
    props: dict[str, Any] = template["Resources"]["HttpApi"]["Properties"]
    return props


@pytest.mark.parametrize(
    ("origins", "methods"),
    [("*", ["GET"]), ("https://app.example.com,https://*", ["GET", "POST"])],
)
def test_cors_is_the_local_stacks(template: dict[str, Any], origins: str, methods: list[str]) -> None:
    from devstack import cors

    params = sam.defaults(template) | {"AllowedOrigins": origins}
    config = _http_api(template)["CorsConfiguration"]
    local = cors.for_origins(origins.split(","))
    assert config["AllowOrigins"] == {"Ref": "AllowedOrigins"}
    # "*" opens the reads only; a list of origins may also POST /mint.
    assert sam.resolve(config["AllowMethods"], template, params) == methods == list(local.allow_methods)
    assert (sam.resolve(config["AllowHeaders"], template, params) or []) == list(local.allow_headers)
    if origins == "*":  # no request header at all: a JSON body or a payment cannot pass a preflight
        assert local.allow_headers == ()
    assert config["ExposeHeaders"] == list(local.expose_headers)
    assert config["MaxAge"] == local.max_age_s
    assert "AllowCredentials" not in config  # no cookies: "*" would be refused with credentials


def test_cors_exposes_the_x402_headers_and_accepts_the_apis_request_headers(template: dict[str, Any]) -> None:
    config = _http_api(template)["CorsConfiguration"]
    assert {h.lower() for h in config["ExposeHeaders"]} >= {
        "payment-required",
        "payment-response",
        "x-payment-response",
        "retry-after",
    }
    listed = sam.defaults(template) | {"AllowedOrigins": "https://app.example.com"}
    assert set(sam.resolve(config["AllowHeaders"], template, listed)) == {
        "content-type",
        "idempotency-key",
        "payment-signature",
        "x-payment",
    }


def test_a_wildcard_origin_must_stand_alone(template: dict[str, Any]) -> None:
    from devstack import cors

    (rule,) = template["Rules"]["WildcardOriginStandsAlone"]["Assertions"]
    either = rule["Assert"]["Fn::Or"]
    assert {"Fn::Not": [{"Fn::Contains": [{"Ref": "AllowedOrigins"}, "*"]}]} in either
    assert {"Fn::EachMemberEquals": [{"Ref": "AllowedOrigins"}, "*"]} in either
    with pytest.raises(ValueError, match="stand alone"):
        cors.for_origins(["*", "https://app.example.com"])
    assert template["Parameters"]["AllowedOrigins"]["Type"] == "CommaDelimitedList"


def test_the_enqueue_function_knows_who_may_mint(template: dict[str, Any]) -> None:
    # CORS cannot stop a POST sent without a preflight: the function checks Origin itself.
    env = sam.functions(template)["EnqueueFunction"]["Environment"]["Variables"]
    assert env["MINTQ_ALLOWED_ORIGINS"] == {"Fn::Join": [",", {"Ref": "AllowedOrigins"}]}


def test_throttling_is_stricter_for_mint_than_for_the_reads(template: dict[str, Any]) -> None:
    api = _http_api(template)
    params = sam.defaults(template)
    default = {k: int(sam.resolve(v, template, params)) for k, v in api["DefaultRouteSettings"].items()}
    mint = {k: int(sam.resolve(v, template, params)) for k, v in api["RouteSettings"]["POST /mint"].items()}
    assert set(default) == set(mint) == {"ThrottlingRateLimit", "ThrottlingBurstLimit"}
    assert 0 < mint["ThrottlingRateLimit"] < default["ThrottlingRateLimit"]
    assert 0 < mint["ThrottlingBurstLimit"] < default["ThrottlingBurstLimit"]
    for settings in (default, mint):  # a bucket smaller than a second's rate would never fill
        assert settings["ThrottlingBurstLimit"] >= settings["ThrottlingRateLimit"]
    # The route key names a route that exists.
    assert ("POST", "/mint") in EXPECTED_ROUTES
