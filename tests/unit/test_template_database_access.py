"""template.yaml's database access: each function reads only its own login's secret, only the API
may go through RDS Proxy, and a deployment that asks for the proxy without its database or VPC
is refused before it starts.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.support import sam_template as sam
from tests.support.sam_template import template

__all__ = ["template"]  # the fixture, used by name


#: Each function's own database login (README, "Database logins"); nobody else reads another's.
DATABASE_SECRETS = {
    "EnqueueFunction": "api-db-secret",
    "StatusFunction": "api-db-secret",
    "BatchFunction": "worker-db-secret",
    "RetentionFunction": "worker-db-secret",
    "MigrateFunction": "owner-db-secret",
}
SECRET_PARAMS = {
    "DatabaseSecretArn": "owner-db-secret",
    "ApiDatabaseSecretArn": "api-db-secret",
    "WorkerDatabaseSecretArn": "worker-db-secret",
    "SignerSecretArn": "signer-secret",
}


@pytest.mark.parametrize("cdp", ["", "arn:aws:secretsmanager:us-east-1:123456789012:secret:cdp-AbCdEf"])
def test_secrets_access_is_least_privilege(template: dict[str, Any], cdp: str) -> None:
    params = {**sam.defaults(template), **SECRET_PARAMS, "X402CdpSecretArn": cdp}
    for name, props in sam.functions(template).items():
        secrets = set()
        for policy in filter(None, (sam.resolve(p, template, params) for p in props.get("Policies", []))):
            assert isinstance(policy, dict) and set(policy) == {"AWSSecretsManagerGetSecretValuePolicy"}, (
                f"{name}: unexpected policy {policy!r}"
            )
            secrets.add(
                sam.resolve(policy["AWSSecretsManagerGetSecretValuePolicy"]["SecretArn"], template, params)
            )
        expected = {DATABASE_SECRETS[name]}
        if name == "BatchFunction":
            expected.add("signer-secret")
        if name == "EnqueueFunction" and cdp:  # only the function that calls the facilitator
            expected.add(cdp)
        assert secrets == expected, name
        env = props["Environment"]["Variables"]
        if name == "EnqueueFunction":
            assert sam.resolve(env["MINTQ_X402_CDP_SECRET_ARN"], template, params) == cdp
        else:
            assert "MINTQ_X402_CDP_SECRET_ARN" not in env, name


def test_each_function_connects_with_its_own_login_and_only_the_api_may_go_through_rds_proxy(
    template: dict[str, Any],
) -> None:
    for proxy in ("false", "true"):
        params = {**sam.defaults(template), **SECRET_PARAMS, "UseRdsProxy": proxy}
        for name, props in sam.functions(template).items():
            env = props["Environment"]["Variables"]
            if name == "BatchFunction":
                # The worker's own variable, so it never falls back to the API's (proxied) login.
                assert (
                    sam.resolve(env["MINTQ_WORKER_DATABASE_SECRET_ARN"], template, params)
                    == "worker-db-secret"
                )
                assert not {"MINTQ_DATABASE_SECRET_ARN", "MINTQ_DATABASE_HOST"} & set(env)
                continue
            assert (
                sam.resolve(env["MINTQ_DATABASE_SECRET_ARN"], template, params) == DATABASE_SECRETS[name]
            ), name
            assert "MINTQ_WORKER_DATABASE_SECRET_ARN" not in env, name
            host = sam.resolve(env.get("MINTQ_DATABASE_HOST", ""), template, params)
            if name in ("EnqueueFunction", "StatusFunction") and proxy == "true":
                assert host == {"Fn::GetAtt": ["DbProxy", "Endpoint"]}, name
            else:
                assert host in ("", None), name
    for res in ("DbProxy", "DbProxyRole", "DbProxyTargetGroup"):
        assert template["Resources"][res]["Condition"] == "HasRdsProxy", res
    proxy_props = template["Resources"]["DbProxy"]["Properties"]
    # The proxy knows the API login only, and may read that secret only.
    assert [a["SecretArn"] for a in proxy_props["Auth"]] == [{"Ref": "ApiDatabaseSecretArn"}]
    assert proxy_props["EngineFamily"] == "POSTGRESQL" and proxy_props["RequireTLS"] is True
    [policy] = template["Resources"]["DbProxyRole"]["Properties"]["Policies"]
    [statement] = policy["PolicyDocument"]["Statement"]
    assert statement["Action"] == "secretsmanager:GetSecretValue"
    assert statement["Resource"] == {"Ref": "ApiDatabaseSecretArn"}
    assert sam.resolve({"Condition": "HasRdsProxy"}, template, sam.defaults(template)) is False


@pytest.mark.parametrize(
    ("proxy", "instance", "subnets", "groups", "accepted"),
    [
        ("false", "", "", "", True),
        ("true", "mintq-db", "subnet-1,subnet-2", "sg-1", True),
        ("true", "", "subnet-1", "sg-1", False),
        ("true", "mintq-db", "", "sg-1", False),
        ("true", "mintq-db", "subnet-1", "", False),
    ],
)
def test_rds_proxy_is_refused_before_deploying_without_its_database_or_vpc(
    template: dict[str, Any], proxy: str, instance: str, subnets: str, groups: str, accepted: bool
) -> None:
    params = {
        **sam.defaults(template),
        "UseRdsProxy": proxy,
        "DatabaseInstanceId": instance,
        "VpcSubnetIds": subnets,
        "VpcSecurityGroupIds": groups,
    }
    rule = template["Rules"]["RdsProxyNeedsItsDatabaseAndVpc"]
    applies = sam.resolve(rule["RuleCondition"], template, params)
    assert (
        not applies or all(sam.resolve(a["Assert"], template, params) for a in rule["Assertions"])
    ) is accepted


def test_database_secrets_are_arns_never_values(template: dict[str, Any]) -> None:
    for name in ("DatabaseSecretArn", "ApiDatabaseSecretArn", "WorkerDatabaseSecretArn"):
        param = template["Parameters"][name]
        assert param["AllowedPattern"].startswith("^arn:aws"), name
        assert "Default" not in param, name
