"""Safety policies and verdicts as ``forgeline.v1`` messages (common.proto), and back.

In the kernel because two services speak them: the safety service checks texts against a policy,
and the serving service runs a policy around every deployment and reports its verdicts."""

from __future__ import annotations

from typing import Any

from google.protobuf import json_format

from forgeline.convert import struct
from forgeline.policy import BLOCK, MODIFY, Policy, Verdict
from forgeline.v1 import common_pb2

ACTIONS = {
    "block": common_pb2.RULE_ACTION_BLOCK,
    "redact": common_pb2.RULE_ACTION_REDACT,
    "replace": common_pb2.RULE_ACTION_REPLACE,
    "flag": common_pb2.RULE_ACTION_FLAG,
}
DECISIONS = {BLOCK: common_pb2.SAFETY_DECISION_BLOCK, MODIFY: common_pb2.SAFETY_DECISION_MODIFY}


def policy_source(message: common_pb2.PolicySource) -> dict[str, Any] | str | None:
    """What PolicyLoader.load takes: the YAML text, the structured policy as a dict, or None."""
    which = message.WhichOneof("source")
    if which == "yaml":
        return message.yaml
    if which == "policy":
        return json_format.MessageToDict(message.policy, preserving_proto_field_name=True)
    return None


def policy_pb(policy: Policy) -> common_pb2.SafetyPolicy:
    def common(rule) -> dict[str, Any]:
        return {
            "name": rule.name,
            "action": ACTIONS[rule.action],
            "priority": rule.priority,
            "replacement": rule.replacement,
            "message": rule.message,
        }

    return common_pb2.SafetyPolicy(
        input_filters=[
            common_pb2.InputFilterRule(filter=_spec(r.plugin, r.config), **common(r))
            for r in policy.input_rules
        ],
        output_rules=[
            common_pb2.OutputRule(match=_spec(r.plugin, r.config), **common(r))
            for r in policy.output_rules
        ],
    )


def _spec(name: str, config: dict[str, Any]):
    return common_pb2.PluginSpec(name=name, config=struct(config))


def verdict_pb(v: Verdict) -> common_pb2.SafetyVerdict:
    return common_pb2.SafetyVerdict(
        decision=DECISIONS.get(v.decision, common_pb2.SAFETY_DECISION_ALLOW),
        text=v.text,
        blocked_by=v.blocked_by,
        message=v.message,
        flagged=v.flagged,
        firings=[
            common_pb2.RuleFiring(
                rule=f.rule,
                plugin=f.plugin,
                action=ACTIONS[f.action],
                matches=[
                    common_pb2.TextMatch(start=m.start, end=m.end, label=m.label, score=m.score)
                    for m in f.matches
                ],
            )
            for f in v.firings
        ],
    )
