"""The CrossGuard policies, one per rule; building them starts nothing (the pack does)."""

from __future__ import annotations

from typing import Any

from pulumi_policy import PolicyConfigSchema, ResourceValidationPolicy, StackValidationPolicy

from policies.adapter import to_res
from policies.rules import RULES, Rule


def _schema(rule: Rule) -> PolicyConfigSchema | None:
    return PolicyConfigSchema(properties=rule.config_schema) if rule.config_schema else None


def resource_policy(rule: Rule) -> ResourceValidationPolicy:
    def validate(args: Any, report_violation: Any) -> None:
        for message in rule.check(to_res(args), dict(args.get_config() or {})):
            report_violation(message, args.urn)

    # No enforcement level here: each policy takes the pack's (mandatory) unless the pack
    # config lowers it, e.g. {"pinned-images": "advisory"}.
    return ResourceValidationPolicy(
        name=rule.name, description=rule.description, validate=validate, config_schema=_schema(rule)
    )


def stack_policy(rule: Rule) -> StackValidationPolicy:
    def validate(args: Any, report_violation: Any) -> None:
        resources = [to_res(r) for r in args.resources]
        for message in rule.check(resources, dict(args.get_config() or {})):
            report_violation(message, None)

    return StackValidationPolicy(
        name=rule.name, description=rule.description, validate=validate, config_schema=_schema(rule)
    )


def build_policies() -> list[Any]:
    return [stack_policy(rule) if rule.stack else resource_policy(rule) for rule in RULES]
