"""The sandbox's template loader reads YAML exactly as cfn-lint's decoder does."""

from __future__ import annotations

import json
from pathlib import Path

from cfnlint.decode import decode

from sandbox.cloudformation import TEMPLATE, load_template

SHORT_FORMS = """
Conditions:
  IsProd: !Equals [!Ref Stage, prod]
Resources:
  Thing:
    Type: AWS::SNS::Topic
    Condition: IsProd
    Properties:
      TopicName: !Sub "${AWS::StackName}-${Stage}"
      DisplayName: !If [IsProd, !Join ["-", [a, !Select [0, !Split [",", "x,y"]]]], !Ref Stage]
      KmsMasterKeyId: !GetAtt Key.Arn
      Tags: [{Key: when, Value: 2012-10-17}, {Key: flag, Value: !Not [!Condition IsProd]}]
"""


def as_json(template: object) -> str:
    return json.dumps(template, sort_keys=True, default=str)


def test_the_template_loads_as_cfn_lint_decodes_it() -> None:
    expected, problems = decode(str(TEMPLATE))
    assert not problems
    assert as_json(load_template()) == as_json(expected)


def test_every_short_form_and_dates_as_strings(tmp_path: Path) -> None:
    path = tmp_path / "short.yaml"
    path.write_text(SHORT_FORMS)
    expected, problems = decode(str(path))
    assert not problems
    loaded = load_template(path)
    assert as_json(loaded) == as_json(expected)
    tags = loaded["Resources"]["Thing"]["Properties"]["Tags"]
    assert tags[0]["Value"] == "2012-10-17"
    assert loaded["Resources"]["Thing"]["Properties"]["KmsMasterKeyId"] == {
        "Fn::GetAtt": ["Key", "Arn"]
    }
