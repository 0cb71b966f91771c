"""Just enough CloudFormation to run ``template.yaml``'s custom resources and functions locally.

:func:`sam_translate` applies SAM's own transform (``samtranslator``, the package
``sam build`` and ``sam deploy`` use), so Globals, the HTTP API's routes, CORS and
authorizer come out exactly as CloudFormation receives them; nothing here
re-implements SAM. :class:`LocalStack` then resolves the intrinsic functions
left (``Ref``, ``Fn::Sub``, ``Fn::GetAtt``, ``Fn::If``, ``Fn::Join``, conditions)
against parameter values and the local stand-ins of resources: the one resolver
of the local stack. :func:`run_custom_resource` calls a
custom-resource function exactly as CloudFormation does: an event naming a
pre-signed response URL (here a one-shot loopback server), then waiting for the
single answer PUT there.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3
import yaml

from sandbox.lambda_runtime import ACCOUNT_ID as ACCOUNT
from sandbox.lambda_runtime import REGION, LambdaContext

TEMPLATE = Path(__file__).resolve().parents[1] / "template.yaml"


def load_template(path: Path = TEMPLATE) -> dict[str, Any]:
    """The template at ``path``, with intrinsic functions in their long form."""
    try:
        loaded = yaml.load(path.read_text(), Loader=_TemplateLoader)  # noqa: S506 - safe loader
    except yaml.YAMLError as error:
        raise ValueError(f"{path} does not parse: {error}") from None
    if not isinstance(loaded, dict):
        raise ValueError(f"{path} is not a template")
    return loaded


class _TemplateLoader(yaml.SafeLoader):
    """YAML as CloudFormation reads it: ``!Ref``, ``!Sub``, ``!GetAtt`` … become ``Ref``,
    ``Fn::Sub``, ``Fn::GetAtt`` …, and dates stay strings (``Version: 2012-10-17``).

    Hand-written (a dozen lines) instead of cfn-lint's decoder, which would bring about
    80 MB (sympy, networkx) into what ``make dev`` installs; a test holds this loader to
    cfn-lint's on ``template.yaml``.
    """

    yaml_implicit_resolvers = {  # noqa: RUF012 - PyYAML reads it from the class
        first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }


def _short_form(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    name = suffix if suffix in ("Ref", "Condition") else f"Fn::{suffix}"
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
        if suffix == "GetAtt":
            value = str(value).split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    return {name: value}


_TemplateLoader.add_multi_constructor("!", _short_form)


def sam_translate(
    template: Mapping[str, Any],
    *,
    managed_policies: Callable[[], dict[str, str]] = dict,
) -> dict[str, Any]:
    """``template`` after the ``AWS::Serverless-2016-10-31`` transform, offline.

    Local ``CodeUri``/``ContentUri`` folders become ``s3://artifacts/<folder>``, as
    ``sam package`` leaves them, so a function's code folder is its ``Code.S3Key``.
    ``managed_policies`` maps managed-policy names to ARNs (none locally).
    """
    # Imported here: samtranslator loads pydantic, and the import-budget checks run a
    # handler beside this module's table helpers, which must not load it for them.
    from samtranslator.parser.parser import Parser  # type: ignore[import-untyped]  # noqa: PLC0415
    from samtranslator.translator.translator import (  # type: ignore[import-untyped]  # noqa: PLC0415
        Translator,
    )

    document: dict[str, Any] = json.loads(json.dumps(template))  # a copy: SAM changes its input
    for resource in document.get("Resources", {}).values():
        props = resource.get("Properties", {})
        for key in ("CodeUri", "ContentUri"):
            if isinstance(props.get(key), str):
                props[key] = f"s3://artifacts/{props[key].strip('/')}"
    translator = Translator(None, Parser(), boto_session=boto3.session.Session(region_name=REGION))
    translated = translator.translate(
        document, parameter_values={}, get_managed_policy_map=managed_policies
    )
    plain: dict[str, Any] = json.loads(json.dumps(translated))
    return plain


def lambda_functions(translated: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The properties of every ``AWS::Lambda::Function`` of a translated template, by
    logical id: SAM has merged the Globals into each."""
    return {
        name: resource["Properties"]
        for name, resource in translated["Resources"].items()
        if resource["Type"] == "AWS::Lambda::Function"
    }


def code_folder(function: Mapping[str, Any]) -> str:
    """The local folder of a translated ``AWS::Lambda::Function`` (see :func:`sam_translate`)."""
    return str(function["Properties"]["Code"]["S3Key"])


@dataclass
class LocalStack:
    """Parameter values, plus what each resource's ``Ref`` and attributes are locally.

    ``template`` is a translated one (:func:`sam_translate`): plain CloudFormation.
    """

    template: dict[str, Any]
    stack_name: str
    parameters: dict[str, Any] = field(default_factory=dict)
    refs: dict[str, str] = field(default_factory=dict)
    attributes: dict[str, dict[str, str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        declared = self.template.get("Parameters", {})
        values: dict[str, Any] = {}
        for name, spec in declared.items():
            value = self.parameters.get(name, spec.get("Default"))
            if value is None:
                raise ValueError(f"parameter {name} needs a value")
            if spec.get("Type") == "CommaDelimitedList" and isinstance(value, str):
                value = [part.strip() for part in value.split(",")]
            values[name] = value
        self.parameters = values
        for logical_id in lambda_functions(self.template):
            arn = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{self.stack_name}-{logical_id}"
            self.attributes.setdefault(logical_id, {"Arn": arn})

    @property
    def stack_id(self) -> str:
        return f"arn:aws:cloudformation:{REGION}:{ACCOUNT}:stack/{self.stack_name}/local"

    def resource(self, logical_id: str) -> dict[str, Any]:
        resource: dict[str, Any] = self.template["Resources"][logical_id]
        return resource

    def resolve(self, value: Any) -> Any:
        """``value`` with every intrinsic function evaluated."""
        if isinstance(value, list):
            return [self.resolve(item) for item in value]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            (key, argument), *_ = value.items()
            if key == "Ref":
                return self._ref(argument)
            if key.startswith("Fn::") or key == "Condition":
                return self._function(key, argument)
        return {k: self.resolve(v) for k, v in value.items()}

    def condition(self, name: str) -> bool:
        return bool(self.resolve(self.template["Conditions"][name]))

    def _ref(self, name: str) -> Any:
        pseudo = {
            "AWS::StackName": self.stack_name,
            "AWS::StackId": self.stack_id,
            "AWS::Region": REGION,
            "AWS::AccountId": ACCOUNT,
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
        }
        if name in pseudo:
            return pseudo[name]
        if name in self.parameters:
            return self.parameters[name]
        if name in self.refs:
            return self.refs[name]
        raise KeyError(f"no local value for Ref {name}")

    def _function(self, key: str, argument: Any) -> Any:  # noqa: PLR0911 - one case each
        match key:
            case "Fn::Sub":
                return self._sub(argument)
            case "Fn::GetAtt":
                resource, attribute = (
                    argument.split(".", 1) if isinstance(argument, str) else argument
                )
                try:
                    return self.attributes[resource][attribute]
                except KeyError:
                    raise KeyError(f"no local value for {resource}.{attribute}") from None
            case "Fn::If":
                name, when_true, when_false = argument
                return self.resolve(when_true if self.condition(name) else when_false)
            case "Fn::Join":
                separator, items = argument
                return separator.join(str(item) for item in self.resolve(items))
            case "Fn::Split":
                separator, text = argument
                return str(self.resolve(text)).split(separator)
            case "Fn::Equals":
                left, right = self.resolve(argument)
                return left == right
            case "Fn::Not":
                return not self.resolve(argument[0])
            case "Fn::And":
                return all(self.resolve(argument))
            case "Fn::Or":
                return any(self.resolve(argument))
            case "Condition":
                return self.condition(argument)
        raise NotImplementedError(f"{key} is not supported locally")

    def _sub(self, argument: Any) -> str:
        text, variables = (argument, {}) if isinstance(argument, str) else argument
        values = {name: self.resolve(v) for name, v in variables.items()}
        out, rest = [], str(text)
        while "${" in rest:
            before, _, after = rest.partition("${")
            name, _, rest = after.partition("}")
            out.append(before)
            if name.startswith("!"):
                out.append("${" + name[1:] + "}")
            elif name in values:
                out.append(str(values[name]))
            elif "." in name:
                out.append(str(self._function("Fn::GetAtt", name)))
            else:
                out.append(str(self._ref(name)))
        out.append(rest)
        return "".join(out)

    def environment(self, logical_id: str) -> dict[str, str]:
        """A function's environment variables (SAM merged in the Globals), resolved."""
        variables = self.resource(logical_id)["Properties"].get("Environment", {})
        return {name: str(self.resolve(v)) for name, v in variables.get("Variables", {}).items()}


class CustomResourceFailed(RuntimeError):
    """CloudFormation would fail the deploy with this reason."""


@dataclass(frozen=True)
class CustomResourceAnswer:
    physical_resource_id: str
    data: dict[str, str]


@dataclass
class Answer:
    path: str
    body: dict[str, Any]
    content_type: str | None
    at: float


@dataclass
class ResponseReceiver:
    """CloudFormation's pre-signed response URL on loopback: records every PUT.

    It answers the ``refuse_with`` statuses first (one per PUT), then 200.
    """

    answers: list[Answer] = field(default_factory=list)
    refuse_with: list[int] = field(default_factory=list)
    attempts: int = 0
    _server: ThreadingHTTPServer | None = None

    def start(self) -> ResponseReceiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_PUT(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.attempts += 1
                if receiver.refuse_with:
                    self.send_response(receiver.refuse_with.pop(0))
                    self.end_headers()
                    return
                receiver.answers.append(
                    Answer(
                        self.path, json.loads(body), self.headers.get("Content-Type"), time.time()
                    )
                )
                self.send_response(200)
                self.end_headers()

            def log_message(self, *_: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        # A short poll interval, so that stop() returns at once (the default waits 0.5 s).
        threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
        return self

    def stop(self) -> None:
        if self._server:
            self._server.shutdown()

    def url(self, tag: str) -> str:
        if self._server is None:
            raise RuntimeError("start() the receiver first")
        return f"http://127.0.0.1:{self._server.server_port}/{tag}?X-Amz-Signature=local"

    def only_answer(self) -> dict[str, Any]:
        """The single answer received; fails if there were none or several."""
        if len(self.answers) != 1:
            raise AssertionError([a.body for a in self.answers])
        return self.answers[0].body


def create_billing_table(template: Mapping[str, Any], name: str) -> None:
    """The table exactly as ``BillingTable`` declares its keys, billing mode and TTL."""
    props = template["Resources"]["BillingTable"]["Properties"]
    client = boto3.client("dynamodb")
    client.create_table(
        TableName=name,
        KeySchema=props["KeySchema"],
        AttributeDefinitions=props["AttributeDefinitions"],
        BillingMode=props["BillingMode"],
    )
    ttl = props["TimeToLiveSpecification"]
    client.update_time_to_live(
        TableName=name,
        TimeToLiveSpecification={"Enabled": ttl["Enabled"], "AttributeName": ttl["AttributeName"]},
    )


def run_custom_resource(
    handler: Callable[[dict[str, Any], Any], Any],
    *,
    stack: LocalStack,
    logical_id: str,
    properties: Mapping[str, Any],
    request_type: str = "Create",
    physical_resource_id: str | None = None,
    timeout_seconds: float = 60.0,
) -> CustomResourceAnswer:
    """Invoke ``handler`` as CloudFormation would and return its one answer."""
    receiver = ResponseReceiver().start()
    request_id = str(uuid.uuid4())
    resource = stack.resource(logical_id)
    event: dict[str, Any] = {
        "RequestType": request_type,
        "ServiceToken": f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{logical_id}",
        "ResponseURL": receiver.url(request_id),
        "StackId": stack.stack_id,
        "RequestId": request_id,
        "LogicalResourceId": logical_id,
        "ResourceType": resource["Type"],
        "ResourceProperties": dict(properties),
    }
    if physical_resource_id:
        event["PhysicalResourceId"] = physical_resource_id
    context = LambdaContext(
        function_name=logical_id,
        memory_limit_in_mb=512,
        aws_request_id=str(uuid.uuid4()),
        invoked_function_arn=event["ServiceToken"],
        log_group_name=f"/aws/lambda/{logical_id}",
        log_stream_name="local",
        deadline=time.monotonic() + timeout_seconds,
    )
    try:
        handler(event, context)
    finally:
        receiver.stop()
    if len(receiver.answers) != 1:
        raise CustomResourceFailed(f"{logical_id} answered {len(receiver.answers)} times")
    answer = receiver.answers[0].body
    if answer["Status"] != "SUCCESS":
        raise CustomResourceFailed(f"{logical_id}: {answer['Reason']}")
    return CustomResourceAnswer(answer["PhysicalResourceId"], dict(answer.get("Data") or {}))
