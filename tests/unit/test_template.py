"""Static checks of template.yaml, the requirements split and events/*.json.

cfn-lint (``sam validate --lint``) checks the CloudFormation schema; these tests pin down the
decisions it cannot see: a sub-minute schedule rate, retries on the singleton worker, which
function serves which route, and where web3 may appear.
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = REPO_ROOT / "template.yaml"
EVENTS_DIR = REPO_ROOT / "events"

EXPECTED_ROUTES = {
    ("POST", "/mint"): "EnqueueFunction",
    ("GET", "/queue/status"): "StatusFunction",
    ("GET", "/queue/payer/{address}"): "StatusFunction",
    ("GET", "/queue/item/{queueId}"): "StatusFunction",
    ("GET", "/"): "StatusFunction",
    ("GET", "/static/{name}"): "StatusFunction",
    ("GET", "/config.json"): "StatusFunction",
    ("GET", "/openapi.json"): "StatusFunction",
    ("GET", "/docs"): "StatusFunction",
}
EXPECTED_TIMEOUTS = {
    "EnqueueFunction": 10,
    "StatusFunction": 10,
    "BatchFunction": 300,
    "MigrateFunction": 120,
    "RetentionFunction": 900,
}


# --- loading -------------------------------------------------------------------------------


class _CfnLoader(yaml.SafeLoader):  # type: ignore[misc]  # untyped without types-PyYAML
    """SafeLoader that turns CloudFormation short tags into their long JSON form."""


def _construct_cfn(loader: _CfnLoader, tag_suffix: str, node: yaml.Node) -> dict[str, Any]:
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    elif isinstance(node, yaml.MappingNode):
        value = loader.construct_mapping(node, deep=True)
    else:  # pragma: no cover - yaml has no other node kinds
        raise TypeError(node)
    if tag_suffix == "Ref":
        return {"Ref": value}
    if tag_suffix == "Condition":
        return {"Condition": value}
    if tag_suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {f"Fn::{tag_suffix}": value}


_CfnLoader.add_multi_constructor("!", _construct_cfn)


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    loaded = yaml.load(TEMPLATE.read_text(encoding="utf-8"), Loader=_CfnLoader)  # a SafeLoader subclass
    assert isinstance(loaded, dict)
    return loaded


def _resources(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {name: res for name, res in template["Resources"].items() if res["Type"] == kind}


def _functions(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each AWS::Serverless::Function's properties with Globals.Function merged in (SAM rules)."""
    globals_ = template.get("Globals", {}).get("Function", {})
    merged: dict[str, dict[str, Any]] = {}
    for name, res in _resources(template, "AWS::Serverless::Function").items():
        props = {**globals_, **res.get("Properties", {})}
        for key in ("Environment",):  # maps are merged, not replaced
            if key in globals_ and key in res.get("Properties", {}):
                props[key] = {
                    "Variables": {
                        **globals_[key].get("Variables", {}),
                        **res["Properties"][key].get("Variables", {}),
                    }
                }
        merged[name] = props
    return merged


def _defaults(template: dict[str, Any]) -> dict[str, str]:
    return {name: str(p["Default"]) for name, p in template["Parameters"].items() if "Default" in p}


def _resolve(value: Any, template: dict[str, Any], params: dict[str, str]) -> Any:
    """Evaluate Ref-to-parameter, Fn::If/Equals/Not/And/Or and Condition with the given parameters."""
    if isinstance(value, dict) and len(value) == 1:
        ((key, arg),) = value.items()
        if key == "Ref" and arg in params:
            return params[arg]
        if key == "Ref" and arg == "AWS::NoValue":
            return None
        if key == "Condition":
            return _resolve(template["Conditions"][arg], template, params)
        if key == "Fn::Equals":
            left, right = (_resolve(a, template, params) for a in arg)
            return str(left) == str(right)
        if key == "Fn::Not":
            return not _resolve(arg[0], template, params)
        if key == "Fn::And":
            return all(_resolve(a, template, params) for a in arg)
        if key == "Fn::Or":
            return any(_resolve(a, template, params) for a in arg)
        if key == "Fn::EachMemberEquals":  # a rule's: every item of a CommaDelimitedList
            items, wanted = (_resolve(a, template, params) for a in arg)
            return all(item == wanted for item in str(items).split(","))
        if key == "Fn::Join":  # a CommaDelimitedList parameter is given as its comma-joined text
            sep, items = arg
            items = _resolve(items, template, params)
            return (
                items
                if isinstance(items, str)
                else sep.join(str(_resolve(i, template, params)) for i in items)
            )
        if key == "Fn::If":
            cond, if_true, if_false = arg
            chosen = if_true if _resolve(template["Conditions"][cond], template, params) else if_false
            return _resolve(chosen, template, params)
    return value


# --- schedule and the singleton worker ---------------------------------------------------

_RATE = re.compile(r"^rate\((?P<n>\d+) (?P<unit>minute|minutes|hour|hours|day|days)\)$")
_UNIT_S = {"minute": 60, "hour": 3600, "day": 86400}


def _schedules(template: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    found = []
    for name, props in _functions(template).items():
        for event in props.get("Events", {}).values():
            if event["Type"] in ("Schedule", "ScheduleV2"):
                found.append((name, event["Properties"]))
    return found


def _batch_schedule(template: dict[str, Any]) -> dict[str, Any]:
    (schedule,) = [props for name, props in _schedules(template) if name == "BatchFunction"]
    return schedule


def test_batch_is_scheduled_at_most_once_a_minute(template: dict[str, Any]) -> None:
    schedules = _schedules(template)
    assert sorted(name for name, _ in schedules) == ["BatchFunction", "RetentionFunction"]
    for _, props in schedules:
        expression = props["ScheduleExpression"]
        if expression.startswith("cron("):
            continue  # cron's finest field is the minute
        match = _RATE.match(expression)
        assert match, f"{expression!r}: EventBridge rates take minute(s), hour(s) or day(s) only"
        n, unit = int(match["n"]), match["unit"]
        assert n >= 1
        assert (n == 1) == (not unit.endswith("s")), f"{expression!r}: use the singular unit only for 1"
        assert n * _UNIT_S[unit.rstrip("s")] >= 60


def test_rate_check_rejects_sub_minute_rates() -> None:
    assert _RATE.match("rate(10 seconds)") is None
    assert _RATE.match("rate(1 minute)") is not None


def test_batch_ticks_are_never_retried(template: dict[str, Any]) -> None:
    batch = _functions(template)["BatchFunction"]
    invoke_config = batch["EventInvokeConfig"]
    assert invoke_config["MaximumRetryAttempts"] == 0
    assert invoke_config["MaximumEventAgeInSeconds"] <= 120
    schedule = _batch_schedule(template)
    assert schedule.get("RetryPolicy", {}).get("MaximumRetryAttempts") == 0


def test_batch_schedule_payload_matches_the_sample_event(template: dict[str, Any]) -> None:
    payload = json.loads(_batch_schedule(template)["Input"])
    sample = json.loads((EVENTS_DIR / "batch.json").read_text(encoding="utf-8"))
    assert set(payload) == set(sample)
    assert sample["source"] == payload["source"]


def test_batch_reserved_concurrency_is_one_by_default_and_can_be_omitted(template: dict[str, Any]) -> None:
    reserved = _functions(template)["BatchFunction"]["ReservedConcurrentExecutions"]
    params = _defaults(template)
    assert int(_resolve(reserved, template, params)) == 1
    assert _resolve(reserved, template, {**params, "BatchReservedConcurrency": "0"}) is None


def test_retention_runs_daily_and_is_never_retried(template: dict[str, Any]) -> None:
    (schedule,) = [props for name, props in _schedules(template) if name == "RetentionFunction"]
    minute, hour, *rest = schedule["ScheduleExpression"].removeprefix("cron(").removesuffix(")").split()
    assert minute.isdigit() and hour.isdigit() and rest[:3] == ["*", "*", "?"], "once a day"
    assert schedule["RetryPolicy"]["MaximumRetryAttempts"] == 0
    assert _functions(template)["RetentionFunction"]["EventInvokeConfig"]["MaximumRetryAttempts"] == 0


def test_only_the_batch_worker_is_singleton(template: dict[str, Any]) -> None:
    for name, props in _functions(template).items():
        if name != "BatchFunction":
            assert "ReservedConcurrentExecutions" not in props, name


# --- functions, routes, code -----------------------------------------------------------------


def test_routes_are_wired_to_the_right_functions(template: dict[str, Any]) -> None:
    routes: dict[tuple[str, str], str] = {}
    for name, props in _functions(template).items():
        for event in props.get("Events", {}).values():
            if event["Type"] != "HttpApi":
                continue
            p = event["Properties"]
            assert p["ApiId"] == {"Ref": "HttpApi"}
            key = (p["Method"].upper(), p["Path"])
            assert key not in routes, f"{key} wired twice"
            routes[key] = name
    assert routes == EXPECTED_ROUTES


def test_handlers_and_runtime(template: dict[str, Any]) -> None:
    functions = _functions(template)
    assert set(functions) == set(EXPECTED_TIMEOUTS)
    for name, props in functions.items():
        assert props["Handler"] == "app.lambda_handler", name
        assert props["Runtime"] == "python3.11", name
        assert props["Architectures"] == ["x86_64"], name
        assert props["Timeout"] == EXPECTED_TIMEOUTS[name], name
        assert {"Ref": "CommonLayer"} in props["Layers"], name


def test_every_code_uri_has_a_lambda_handler(template: dict[str, Any]) -> None:
    for name, props in _functions(template).items():
        app_py = REPO_ROOT / props["CodeUri"] / "app.py"
        assert app_py.is_file(), f"{name}: {app_py} missing"
        tree = ast.parse(app_py.read_text(encoding="utf-8"))
        defined = {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}
        assert "lambda_handler" in defined, name


def test_common_layer_is_built_by_sam(template: dict[str, Any]) -> None:
    layer = template["Resources"]["CommonLayer"]
    assert layer["Type"] == "AWS::Serverless::LayerVersion"
    assert layer["Metadata"]["BuildMethod"] == "python3.11"
    assert layer["Properties"]["ContentUri"].rstrip("/") == "layers/common/python"
    assert layer["Properties"]["CompatibleRuntimes"] == ["python3.11"]


def test_layer_package_lands_on_the_lambda_path(template: dict[str, Any]) -> None:
    """``sam build`` copies ContentUri *into* the layer's ``python/`` folder (Lambda's /opt/python),
    so the package must sit at the top of ContentUri, next to requirements.txt."""
    content = REPO_ROOT / template["Resources"]["CommonLayer"]["Properties"]["ContentUri"]
    assert (content / "requirements.txt").is_file()
    assert (content / "mintq" / "__init__.py").is_file(), (
        f"no mintq package directly under {content}: sam build would ship {content}/python/mintq "
        "as /opt/python/python/mintq, which Lambda cannot import"
    )


def _requirement_names(path: Path) -> set[str]:
    names = set()
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line or line.startswith("-"):
            continue
        match = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", line)
        assert match, f"{path}: cannot parse {line!r}"
        names.add(match[0].lower().replace("_", "-"))
    return names


def test_web3_only_in_the_batch_function() -> None:
    carriers = {
        str(path.relative_to(REPO_ROOT))
        for root in ("functions", "layers")
        for path in (REPO_ROOT / root).rglob("requirements*.txt")
        if "web3" in _requirement_names(path)
    }
    assert carriers == {"functions/batch/requirements.txt"}
    assert "web3" not in _requirement_names(REPO_ROOT / "layers" / "common" / "python" / "requirements.txt")


def test_every_function_logs_to_its_own_group_with_retention(template: dict[str, Any]) -> None:
    groups = _resources(template, "AWS::Logs::LogGroup")
    used = []
    for name, props in _functions(template).items():
        ref = props["LoggingConfig"]["LogGroup"]
        assert set(ref) == {"Ref"}, name
        group = groups[ref["Ref"]]
        assert group["Properties"]["RetentionInDays"], name
        used.append(ref["Ref"])
    assert len(used) == len(set(used)), "two functions share a log group"


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
    params = {**_defaults(template), **SECRET_PARAMS, "X402CdpSecretArn": cdp}
    for name, props in _functions(template).items():
        secrets = set()
        for policy in filter(None, (_resolve(p, template, params) for p in props.get("Policies", []))):
            assert isinstance(policy, dict) and set(policy) == {"AWSSecretsManagerGetSecretValuePolicy"}, (
                f"{name}: unexpected policy {policy!r}"
            )
            secrets.add(
                _resolve(policy["AWSSecretsManagerGetSecretValuePolicy"]["SecretArn"], template, params)
            )
        expected = {DATABASE_SECRETS[name]}
        if name == "BatchFunction":
            expected.add("signer-secret")
        if name == "EnqueueFunction" and cdp:  # only the function that calls the facilitator
            expected.add(cdp)
        assert secrets == expected, name
        env = props["Environment"]["Variables"]
        if name == "EnqueueFunction":
            assert _resolve(env["MINTQ_X402_CDP_SECRET_ARN"], template, params) == cdp
        else:
            assert "MINTQ_X402_CDP_SECRET_ARN" not in env, name


def test_each_function_connects_with_its_own_login_and_only_the_api_may_go_through_rds_proxy(
    template: dict[str, Any],
) -> None:
    for proxy in ("false", "true"):
        params = {**_defaults(template), **SECRET_PARAMS, "UseRdsProxy": proxy}
        for name, props in _functions(template).items():
            env = props["Environment"]["Variables"]
            if name == "BatchFunction":
                # The worker's own variable, so it never falls back to the API's (proxied) login.
                assert (
                    _resolve(env["MINTQ_WORKER_DATABASE_SECRET_ARN"], template, params) == "worker-db-secret"
                )
                assert not {"MINTQ_DATABASE_SECRET_ARN", "MINTQ_DATABASE_HOST"} & set(env)
                continue
            assert _resolve(env["MINTQ_DATABASE_SECRET_ARN"], template, params) == DATABASE_SECRETS[name], (
                name
            )
            assert "MINTQ_WORKER_DATABASE_SECRET_ARN" not in env, name
            host = _resolve(env.get("MINTQ_DATABASE_HOST", ""), template, params)
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
    assert _resolve({"Condition": "HasRdsProxy"}, template, _defaults(template)) is False


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
        **_defaults(template),
        "UseRdsProxy": proxy,
        "DatabaseInstanceId": instance,
        "VpcSubnetIds": subnets,
        "VpcSecurityGroupIds": groups,
    }
    rule = template["Rules"]["RdsProxyNeedsItsDatabaseAndVpc"]
    applies = _resolve(rule["RuleCondition"], template, params)
    assert (
        not applies or all(_resolve(a["Assert"], template, params) for a in rule["Assertions"])
    ) is accepted


def test_database_secrets_are_arns_never_values(template: dict[str, Any]) -> None:
    for name in ("DatabaseSecretArn", "ApiDatabaseSecretArn", "WorkerDatabaseSecretArn"):
        param = template["Parameters"][name]
        assert param["AllowedPattern"].startswith("^arn:aws"), name
        assert "Default" not in param, name


def test_environment(template: dict[str, Any]) -> None:
    for name, props in _functions(template).items():
        env = props["Environment"]["Variables"]
        assert env["POWERTOOLS_SERVICE_NAME"] == "mintq"
        assert env["POWERTOOLS_METRICS_NAMESPACE"] == "Mintq"
        assert {"POWERTOOLS_LOG_LEVEL", "MINTQ_PAYMENT_MODE"} <= set(env)
        # Every function may read the chain (x402 checks supply before charging anyone);
        # only the batch worker may sign.
        assert {"MINTQ_RPC_URL", "MINTQ_TOKEN_ADDRESS", "MINTQ_CHAIN_ID"} <= set(env), name
        if name == "BatchFunction":
            assert "MINTQ_SIGNER_SECRET_ARN" in env
        else:
            assert "MINTQ_SIGNER_SECRET_ARN" not in env, name
    assert template["Parameters"]["PaymentMode"]["AllowedValues"] == ["free", "x402"]


def test_migrations_rerun_when_the_layer_changes(template: dict[str, Any]) -> None:
    migrations = template["Resources"]["Migrations"]
    assert migrations["Type"] == "Custom::Migrations"
    props = migrations["Properties"]
    assert props["ServiceToken"] == {"Fn::GetAtt": ["MigrateFunction", "Arn"]}
    assert {"Ref": "CommonLayer"} in props.values()
    for name in ("EnqueueFunction", "StatusFunction", "BatchFunction"):
        assert template["Resources"][name].get("DependsOn") == "Migrations", name


# --- alarms ------------------------------------------------------------------------------


def _emitted_metric_names() -> set[str]:
    """Every name passed to mintq.metrics.count/gauge in the package, or counted through the
    worker's ``Telemetry.event(..., metric={name: value})``."""
    names: set[str] = set()
    for path in (REPO_ROOT / "layers" / "common" / "python" / "mintq").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                continue
            if (
                isinstance(node.func.value, ast.Name)
                and node.func.value.id == "metrics"
                and node.func.attr in ("count", "gauge")
                and node.args
                and isinstance(node.args[0], ast.Constant)
            ):
                names.add(str(node.args[0].value))
            if node.func.attr == "event":
                for keyword in node.keywords:
                    if keyword.arg == "metric" and isinstance(keyword.value, ast.Dict):
                        names |= {str(k.value) for k in keyword.value.keys if isinstance(k, ast.Constant)}
    return names


def test_every_custom_metric_alarm_watches_a_metric_the_code_emits(template: dict[str, Any]) -> None:
    emitted = _emitted_metric_names()
    assert {"WorkerFault", "MintFailed", "FeeCeilingReached", "OldestPendingSeconds"} <= emitted
    alarms = _resources(template, "AWS::CloudWatch::Alarm")
    custom = {n: a["Properties"] for n, a in alarms.items() if a["Properties"]["Namespace"] == "Mintq"}
    assert {p["MetricName"] for p in custom.values()} == {
        "OldestPendingSeconds",
        "WorkerFault",
        "FeeCeilingReached",
        "MintFailed",
    }
    env = template["Globals"]["Function"]["Environment"]["Variables"]
    for name, props in custom.items():
        assert props["MetricName"] in emitted, name
        # Powertools EMF: the namespace and the one default dimension, service=<service name>.
        assert props["Namespace"] == env["POWERTOOLS_METRICS_NAMESPACE"], name
        assert props["Dimensions"] == [{"Name": "service", "Value": env["POWERTOOLS_SERVICE_NAME"]}], name


def test_the_backlog_alarm_also_fires_when_the_worker_publishes_nothing(template: dict[str, Any]) -> None:
    backlog = template["Resources"]["BacklogAlarm"]["Properties"]
    assert backlog["TreatMissingData"] == "breaching"
    assert backlog["Statistic"] == "Maximum" and backlog["Threshold"] == {"Ref": "BacklogAlarmSeconds"}
    others = [a for n, a in _resources(template, "AWS::CloudWatch::Alarm").items() if n != "BacklogAlarm"]
    assert {a["Properties"]["TreatMissingData"] for a in others} == {"notBreaching"}


@pytest.mark.parametrize("topic", ["", "arn:aws:sns:us-east-1:123456789012:ops"])
def test_alarms_notify_the_topic_only_when_one_is_given(template: dict[str, Any], topic: str) -> None:
    params = {**_defaults(template), "AlarmTopicArn": topic}
    for name, alarm in _resources(template, "AWS::CloudWatch::Alarm").items():
        actions = _resolve(alarm["Properties"]["AlarmActions"], template, params)
        if actions is not None:
            actions = [_resolve(a, template, params) for a in actions]
        assert actions == ([topic] if topic else None), name


# --- sample events -----------------------------------------------------------------------


def _event_files() -> list[Path]:
    return sorted(EVENTS_DIR.glob("*.json"))


def test_sample_events_exist() -> None:
    names = {p.name for p in _event_files()}
    assert {"enqueue.json", "status.json", "payer.json", "item.json", "batch.json"} <= names


@pytest.mark.parametrize("path", _event_files(), ids=lambda p: p.name)
def test_sample_event_is_valid_json(path: Path) -> None:
    assert isinstance(json.loads(path.read_text(encoding="utf-8")), dict)


@pytest.mark.parametrize("path", [p for p in _event_files() if p.name != "batch.json"], ids=lambda p: p.name)
def test_http_event_has_the_v2_shape(path: Path) -> None:
    event = json.loads(path.read_text(encoding="utf-8"))
    assert event["version"] == "2.0"
    method, route = event["routeKey"].split(" ", 1)
    assert (method, route) in EXPECTED_ROUTES
    http = event["requestContext"]["http"]
    assert http["method"] == method
    assert http["path"] == event["rawPath"]
    assert event["requestContext"]["routeKey"] == event["routeKey"]
    assert event["isBase64Encoded"] is False
    assert all(key == key.lower() for key in event["headers"]), "HTTP API lower-cases header names"
    placeholders = re.findall(r"\{(\w+)\}", route)
    params = event.get("pathParameters") or {}
    assert sorted(params) == sorted(placeholders)
    expected_path = route
    for key, value in params.items():
        expected_path = expected_path.replace("{" + key + "}", value)
    assert event["rawPath"] == expected_path
    if method == "POST":
        assert event["headers"]["content-type"] == "application/json"
        assert isinstance(json.loads(event["body"]), dict)


def _is_eip55(address: str) -> bool:
    from eth_hash.auto import keccak

    body = address[2:]
    digest = keccak(body.lower().encode()).hex()
    return (
        address.startswith("0x")
        and len(body) == 40
        and all(ch == (ch.upper() if int(digest[i], 16) >= 8 else ch.lower()) for i, ch in enumerate(body))
    )


def test_sample_addresses_are_checksummed() -> None:
    enqueue = json.loads((EVENTS_DIR / "enqueue.json").read_text(encoding="utf-8"))
    payer = json.loads((EVENTS_DIR / "payer.json").read_text(encoding="utf-8"))
    assert _is_eip55(json.loads(enqueue["body"])["payer"])
    assert _is_eip55(payer["pathParameters"]["address"])
    assert not _is_eip55("0x70997970c51812dc3a010c7d01b50e0d17dc79c8")


# --- the signer: a private key in Secrets Manager, or AWS KMS keys ----------------------------

KMS_KEYS = [
    "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab",
    "arn:aws:kms:us-east-1:123456789012:key/0987dcba-09fe-87dc-65ba-ab0987654321",
]
SIGNER_SECRET = "arn:aws:secretsmanager:us-east-1:123456789012:secret:minter-AbCdEf"


def _kms_statements(template: dict[str, Any], name: str, params: dict[str, str]) -> list[dict[str, Any]]:
    """The function's inline statements that name a KMS action, with Fn::Split evaluated."""
    found = []
    for policy in _functions(template)[name].get("Policies", []):
        resolved = _resolve(policy, template, params)
        for statement in (resolved or {}).get("Statement", []) if isinstance(resolved, dict) else []:
            actions = statement["Action"]
            if any(str(a).startswith("kms:") for a in actions):
                resource = statement["Resource"]
                if isinstance(resource, dict) and "Fn::Split" in resource:
                    sep, source = resource["Fn::Split"]
                    resource = str(_resolve(source, template, params)).split(sep)
                found.append({**statement, "Resource": resource})
    return found


@pytest.mark.parametrize("kms_keys", [KMS_KEYS[:1], KMS_KEYS])
def test_with_kms_keys_the_worker_may_only_sign_and_read_public_keys_of_exactly_those(
    template: dict[str, Any], kms_keys: list[str]
) -> None:
    params = {**_defaults(template), "DatabaseSecretArn": "db-secret", "SignerKmsKeyIds": ",".join(kms_keys)}
    (statement,) = _kms_statements(template, "BatchFunction", params)
    assert statement["Effect"] == "Allow"
    assert sorted(statement["Action"]) == ["kms:GetPublicKey", "kms:Sign"]
    assert statement["Resource"] == kms_keys
    env = _functions(template)["BatchFunction"]["Environment"]["Variables"]
    assert _resolve(env["MINTQ_SIGNER_KMS_KEY_IDS"], template, params) == ",".join(kms_keys)
    assert _resolve(env["MINTQ_SIGNER_SECRET_ARN"], template, params) == ""
    for name in _functions(template):
        if name != "BatchFunction":
            assert not _kms_statements(template, name, params), name
            assert "MINTQ_SIGNER_KMS_KEY_IDS" not in _functions(template)[name]["Environment"]["Variables"]


def test_with_a_signer_secret_no_kms_statement_exists(template: dict[str, Any]) -> None:
    params = {**_defaults(template), "DatabaseSecretArn": "db-secret", "SignerSecretArn": SIGNER_SECRET}
    for name in _functions(template):
        assert not _kms_statements(template, name, params), name


def test_no_private_key_is_a_template_parameter_or_an_environment_variable(template: dict[str, Any]) -> None:
    assert not [p for p in template["Parameters"] if "privatekey" in p.lower()]
    for name, props in _functions(template).items():
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
    params = {**_defaults(template), "SignerKmsKeyIds": kms, "SignerSecretArn": secret}
    (assertion,) = template["Rules"]["OneSigner"]["Assertions"]
    assert _resolve(assertion["Assert"], template, params) is accepted


def test_signer_parameters_take_key_arns_or_nothing(template: dict[str, Any]) -> None:
    kms = re.compile(template["Parameters"]["SignerKmsKeyIds"]["AllowedPattern"])
    secret = re.compile(template["Parameters"]["SignerSecretArn"]["AllowedPattern"])
    for ok in ("", KMS_KEYS[0], ",".join(KMS_KEYS)):
        assert kms.fullmatch(ok), ok
    # IAM grants on key ARNs: a bare key id or an alias would leave the worker unable to sign.
    for bad in ("1234abcd-12ab-34cd-56ef-1234567890ab", "alias/minter", KMS_KEYS[0] + ",", SIGNER_SECRET):
        assert not kms.fullmatch(bad), bad
    assert secret.fullmatch("") and secret.fullmatch(SIGNER_SECRET)


# --- the edge: CORS and throttling -----------------------------------------------------------


def _http_api(template: dict[str, Any]) -> dict[str, Any]:
    props: dict[str, Any] = template["Resources"]["HttpApi"]["Properties"]
    return props


@pytest.mark.parametrize(
    ("origins", "methods"),
    [("*", ["GET"]), ("https://app.example.com,https://*", ["GET", "POST"])],
)
def test_cors_is_the_local_stacks(template: dict[str, Any], origins: str, methods: list[str]) -> None:
    from devstack import cors

    params = _defaults(template) | {"AllowedOrigins": origins}
    config = _http_api(template)["CorsConfiguration"]
    local = cors.for_origins(origins.split(","))
    assert config["AllowOrigins"] == {"Ref": "AllowedOrigins"}
    # "*" opens the reads only; a list of origins may also POST /mint.
    assert _resolve(config["AllowMethods"], template, params) == methods == list(local.allow_methods)
    assert (_resolve(config["AllowHeaders"], template, params) or []) == list(local.allow_headers)
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
    listed = _defaults(template) | {"AllowedOrigins": "https://app.example.com"}
    assert set(_resolve(config["AllowHeaders"], template, listed)) == {
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
    env = _functions(template)["EnqueueFunction"]["Environment"]["Variables"]
    assert env["MINTQ_ALLOWED_ORIGINS"] == {"Fn::Join": [",", {"Ref": "AllowedOrigins"}]}


def test_throttling_is_stricter_for_mint_than_for_the_reads(template: dict[str, Any]) -> None:
    api = _http_api(template)
    params = _defaults(template)
    default = {k: int(_resolve(v, template, params)) for k, v in api["DefaultRouteSettings"].items()}
    mint = {k: int(_resolve(v, template, params)) for k, v in api["RouteSettings"]["POST /mint"].items()}
    assert set(default) == set(mint) == {"ThrottlingRateLimit", "ThrottlingBurstLimit"}
    assert 0 < mint["ThrottlingRateLimit"] < default["ThrottlingRateLimit"]
    assert 0 < mint["ThrottlingBurstLimit"] < default["ThrottlingBurstLimit"]
    for settings in (default, mint):  # a bucket smaller than a second's rate would never fill
        assert settings["ThrottlingBurstLimit"] >= settings["ThrottlingRateLimit"]
    # The route key names a route that exists.
    assert ("POST", "/mint") in EXPECTED_ROUTES
