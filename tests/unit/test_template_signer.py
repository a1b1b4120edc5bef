"""template.yaml's signer: a private key in Secrets Manager or AWS KMS keys, exactly one of them,
and the worker alone may sign, with exactly the keys it was given.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.support import sam_template as sam
from tests.support.sam_template import template

__all__ = ["template"]  # the fixture, used by name


KMS_KEYS = [
    "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab",
    "arn:aws:kms:us-east-1:123456789012:key/0987dcba-09fe-87dc-65ba-ab0987654321",
]
SIGNER_SECRET = "arn:aws:secretsmanager:us-east-1:123456789012:secret:minter-AbCdEf"


def _kms_statements(template: dict[str, Any], name: str, params: dict[str, str]) -> list[dict[str, Any]]:
    """The function's inline statements that name a KMS action, with Fn::Split evaluated."""
    found = []
    for policy in sam.functions(template)[name].get("Policies", []):
        resolved = sam.resolve(policy, template, params)
        for statement in (resolved or {}).get("Statement", []) if isinstance(resolved, dict) else []:
            actions = statement["Action"]
            if any(str(a).startswith("kms:") for a in actions):
                resource = statement["Resource"]
                if isinstance(resource, dict) and "Fn::Split" in resource:
                    sep, source = resource["Fn::Split"]
                    resource = str(sam.resolve(source, template, params)).split(sep)
                found.append({**statement, "Resource": resource})
    return found


@pytest.mark.parametrize("kms_keys", [KMS_KEYS[:1], KMS_KEYS])
def test_with_kms_keys_the_worker_may_only_sign_and_read_public_keys_of_exactly_those(
    template: dict[str, Any], kms_keys: list[str]
) -> None:
    params = {
        **sam.defaults(template),
        "DatabaseSecretArn": "db-secret",
        "SignerKmsKeyIds": ",".join(kms_keys),
    }
    (statement,) = _kms_statements(template, "BatchFunction", params)
    assert statement["Effect"] == "Allow"
    assert sorted(statement["Action"]) == ["kms:GetPublicKey", "kms:Sign"]
    assert statement["Resource"] == kms_keys
    env = sam.functions(template)["BatchFunction"]["Environment"]["Variables"]
    assert sam.resolve(env["MINTQ_SIGNER_KMS_KEY_IDS"], template, params) == ",".join(kms_keys)
    assert sam.resolve(env["MINTQ_SIGNER_SECRET_ARN"], template, params) == ""
    for name in sam.functions(template):
        if name != "BatchFunction":
            assert not _kms_statements(template, name, params), name
            assert "MINTQ_SIGNER_KMS_KEY_IDS" not in sam.functions(template)[name]["Environment"]["Variables"]


def test_with_a_signer_secret_no_kms_statement_exists(template: dict[str, Any]) -> None:
    params = {**sam.defaults(template), "DatabaseSecretArn": "db-secret", "SignerSecretArn": SIGNER_SECRET}
    for name in sam.functions(template):
        assert not _kms_statements(template, name, params), name


def test_no_private_key_is_a_template_parameter_or_an_environment_variable(template: dict[str, Any]) -> None:
    assert not [p for p in template["Parameters"] if "privatekey" in p.lower()]
    for name, props in sam.functions(template).items():
        env = props["Environment"]["Variables"]
        assert not {"MINTQ_SIGNER_PRIVATE_KEY", "MINTQ_SIGNER_PRIVATE_KEYS"} & set(env), name


@pytest.mark.parametrize(
    ("kms", "secret", "accepted"),
    [
        ("", SIGNER_SECRET, True),
        (KMS_KEYS[0], "", True),
        ("", "", False),
        (KMS_KEYS[0], SIGNER_SECRET, False),
    ],
)
def test_a_deployment_names_exactly_one_signer(
    template: dict[str, Any], kms: str, secret: str, accepted: bool
) -> None:
    params = {**sam.defaults(template), "SignerKmsKeyIds": kms, "SignerSecretArn": secret}
    (assertion,) = template["Rules"]["OneSigner"]["Assertions"]
    assert sam.resolve(assertion["Assert"], template, params) is accepted


def test_signer_parameters_take_key_arns_or_nothing(template: dict[str, Any]) -> None:
    kms = re.compile(template["Parameters"]["SignerKmsKeyIds"]["AllowedPattern"])
    secret = re.compile(template["Parameters"]["SignerSecretArn"]["AllowedPattern"])
    for ok in ("", KMS_KEYS[0], ",".join(KMS_KEYS)):
        assert kms.fullmatch(ok), ok
    # IAM grants on key ARNs: a bare key id or an alias would leave the worker unable to sign.
    for bad in ("1234abcd-12ab-34cd-56ef-1234567890ab", "alias/minter", KMS_KEYS[0] + ",", SIGNER_SECRET):
        assert not kms.fullmatch(bad), bad
    assert secret.fullmatch("") and secret.fullmatch(SIGNER_SECRET)
