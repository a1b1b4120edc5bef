"""template.yaml loaded the way CloudFormation reads it, and the SAM rules the template tests
evaluate it by: Globals merged into each function, Ref/Fn::If/Condition resolved with given
parameters (cfn-lint checks the schema; these let the tests check the decisions it cannot see).
"""

from __future__ import annotations

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
    """template.yaml, CloudFormation's short tags in their long form. (A fixture: import it by
    name into the test module that uses it.)"""
    loaded = yaml.load(TEMPLATE.read_text(encoding="utf-8"), Loader=_CfnLoader)  # a SafeLoader subclass
    assert isinstance(loaded, dict)
    return loaded


def resources(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {name: res for name, res in template["Resources"].items() if res["Type"] == kind}


def functions(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each AWS::Serverless::Function's properties with Globals.Function merged in (SAM rules)."""
    globals_ = template.get("Globals", {}).get("Function", {})
    merged: dict[str, dict[str, Any]] = {}
    for name, res in resources(template, "AWS::Serverless::Function").items():
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


def defaults(template: dict[str, Any]) -> dict[str, str]:
    return {name: str(p["Default"]) for name, p in template["Parameters"].items() if "Default" in p}


def resolve(value: Any, template: dict[str, Any], params: dict[str, str]) -> Any:
    """Evaluate Ref-to-parameter, Fn::If/Equals/Not/And/Or and Condition with the given parameters."""
    if isinstance(value, dict) and len(value) == 1:
        ((key, arg),) = value.items()
        if key == "Ref" and arg in params:
            return params[arg]
        if key == "Ref" and arg == "AWS::NoValue":
            return None
        if key == "Condition":
            return resolve(template["Conditions"][arg], template, params)
        if key == "Fn::Equals":
            left, right = (resolve(a, template, params) for a in arg)
            return str(left) == str(right)
        if key == "Fn::Not":
            return not resolve(arg[0], template, params)
        if key == "Fn::And":
            return all(resolve(a, template, params) for a in arg)
        if key == "Fn::Or":
            return any(resolve(a, template, params) for a in arg)
        if key == "Fn::EachMemberEquals":  # a rule's: every item of a CommaDelimitedList
            items, wanted = (resolve(a, template, params) for a in arg)
            return all(item == wanted for item in str(items).split(","))
        if key == "Fn::Join":  # a CommaDelimitedList parameter is given as its comma-joined text
            sep, items = arg
            items = resolve(items, template, params)
            return (
                items
                if isinstance(items, str)
                else sep.join(str(resolve(i, template, params)) for i in items)
            )
        if key == "Fn::If":
            cond, if_true, if_false = arg
            chosen = if_true if resolve(template["Conditions"][cond], template, params) else if_false
            return resolve(chosen, template, params)
    return value
