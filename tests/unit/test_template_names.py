"""Names in template.yaml that `sam build` (the SAM CLI's intrinsic resolver) cannot
tell apart: cfn-lint accepts them, the build then fails with "unhashable type"."""

from __future__ import annotations

from tests.support.aws import template


def test_no_output_is_named_like_a_parameter_or_a_resource() -> None:
    declared = template()
    outputs = set(declared["Outputs"])
    assert outputs.isdisjoint(declared["Parameters"])
    assert outputs.isdisjoint(declared["Resources"])
