"""template.yaml's functions: which serves which route, their handlers, runtime, layer, logs and
environment, where web3 may appear, and migrations that run again when the layer changes.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any

from tests.support import sam_template as sam
from tests.support.sam_template import EXPECTED_ROUTES, REPO_ROOT, template

__all__ = ["template"]  # the fixture, used by name


EXPECTED_TIMEOUTS = {
    "EnqueueFunction": 10,
    "StatusFunction": 10,
    "BatchFunction": 300,
    "MigrateFunction": 120,
    "RetentionFunction": 900,
}


def test_routes_are_wired_to_the_right_functions(template: dict[str, Any]) -> None:
    routes: dict[tuple[str, str], str] = {}
    for name, props in sam.functions(template).items():
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
    functions = sam.functions(template)
    assert set(functions) == set(EXPECTED_TIMEOUTS)
    for name, props in functions.items():
        assert props["Handler"] == "app.lambda_handler", name
        assert props["Runtime"] == "python3.11", name
        assert props["Architectures"] == ["x86_64"], name
        assert props["Timeout"] == EXPECTED_TIMEOUTS[name], name
        assert {"Ref": "CommonLayer"} in props["Layers"], name


def test_every_code_uri_has_a_lambda_handler(template: dict[str, Any]) -> None:
    for name, props in sam.functions(template).items():
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
    groups = sam.resources(template, "AWS::Logs::LogGroup")
    used = []
    for name, props in sam.functions(template).items():
        ref = props["LoggingConfig"]["LogGroup"]
        assert set(ref) == {"Ref"}, name
        group = groups[ref["Ref"]]
        assert group["Properties"]["RetentionInDays"], name
        used.append(ref["Ref"])
    assert len(used) == len(set(used)), "two functions share a log group"


def test_environment(template: dict[str, Any]) -> None:
    for name, props in sam.functions(template).items():
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
