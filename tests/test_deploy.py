"""The deploy recipes under examples/deploy/, each run the way AWS would run it (without AWS or Docker).

- Dockerfiles: their ENTRYPOINT + CMD, read from the file, run as is (the image's interpreter
  mapped to this one), with the function code where the Dockerfile COPYs it.
- SAM template: linted (cfn-lint when installed), read with a loader that knows the
  CloudFormation tags, and its function run through the layer exactly as configured there.
- provided.al2023: the repo-root `bootstrap` in a function zip with aruntime vendored next to it.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from fakeapi import REPO_ROOT, FakeRuntimeAPI, RuntimeProcess, run_runtime
from test_layer import (
    DECOY,
    FUNCTION,
    HOST_PY,
    assert_streamed,
    build_for_host,
    lambda_env,
    response_of,
    stop,
    unpack,
)

from aruntime.tools.layer import WRAPPER_NAME

DEPLOY = REPO_ROOT / "examples" / "deploy"
EXAMPLE = DEPLOY / "example"
HTTP_INTEGRATION = "application/vnd.awslambda.http-integration-response"
# Where each image keeps its interpreter; the rest of the command line runs unchanged.
IMAGE_PYTHONS = {"/var/lang/bin/python3": sys.executable, "python3": sys.executable}
# What the AWS base image itself sets up before our Dockerfile's lines.
BASE_IMAGE = {
    "public.ecr.aws/lambda/python:3.12": {"env": {"LAMBDA_TASK_ROOT": "/var/task",
                                                  "LAMBDA_RUNTIME_DIR": "/var/runtime"},
                                          "workdir": "/var/task"},
    "python:3.12-slim": {"env": {}, "workdir": "/"},
}


# -- Dockerfile reading ----------------------------------------------------------------------------


def parse_dockerfile(path: Path) -> dict[str, Any]:
    """The instructions this test cares about, with ${VAR} expanded from ENV/ARG defaults."""
    text = re.sub(r"\\\n", " ", path.read_text())
    lines = [line.strip() for line in text.splitlines()]
    image: dict[str, Any] = {"from": None, "env": {}, "args": {}, "copies": [], "run": [],
                             "entrypoint": None, "cmd": None, "workdir": None}
    for line in lines:
        if not line or line.startswith("#"):
            continue
        op, _, rest = line.partition(" ")
        op, rest = op.upper(), rest.strip()
        if op == "FROM":
            image["from"] = rest
            base = BASE_IMAGE[rest]
            image["env"].update(base["env"])
            image["workdir"] = base["workdir"]
            continue
        known = {**image["args"], **image["env"]}
        rest_x = re.sub(r"\$\{(\w+)\}", lambda m: known.get(m.group(1), m.group(0)), rest)
        if op == "ENV":
            for item in shlex.split(rest_x):
                key, _, value = item.partition("=")
                image["env"][key] = value
        elif op == "ARG":
            key, _, value = rest.partition("=")
            image["args"][key] = value
        elif op == "COPY":
            *sources, dest = shlex.split(rest_x)
            image["copies"].append((sources, dest))
        elif op == "RUN":
            image["run"].append(rest_x)
        elif op == "WORKDIR":
            image["workdir"] = rest_x
        elif op in ("ENTRYPOINT", "CMD"):
            value = json.loads(rest)  # exec form only: a shell form would add /bin/sh -c
            assert isinstance(value, list), f"{path.name}: {op} must be in exec (JSON) form"
            image[op.lower()] = value
    return image


DOCKERFILES = {"Dockerfile.lambda-base": "public.ecr.aws/lambda/python:3.12",
               "Dockerfile.slim": "python:3.12-slim"}


@pytest.mark.parametrize("name", sorted(DOCKERFILES))
def test_dockerfile_shape(name: str) -> None:
    image = parse_dockerfile(DEPLOY / name)
    assert image["from"] == DOCKERFILES[name]
    assert image["entrypoint"][0] in IMAGE_PYTHONS
    assert image["entrypoint"][1:] == ["-m", "aruntime"]
    assert image["cmd"] == ["app.handler"]
    assert any("pip install" in run and "aruntime" in run.replace("${ARUNTIME}", image["args"]["ARUNTIME"])
               for run in image["run"])
    ((sources, dest),) = image["copies"]
    assert sources == ["examples/deploy/example/"] and (REPO_ROOT / sources[0]).is_dir()
    assert dest.rstrip("/") == image["env"]["LAMBDA_TASK_ROOT"] == "/var/task"


def container(tmp_path: Path, name: str, cmd: list[str] | None = None) -> tuple[list[str], dict[str, str], Path]:
    """Command, environment and cwd for running the image's entry point here."""
    image = parse_dockerfile(DEPLOY / name)
    task = tmp_path / "var-task"
    ((sources, _),) = image["copies"]
    shutil.copytree(REPO_ROOT / sources[0], task)
    (task / "fn.py").write_text(FUNCTION)

    def local(value: str) -> str:
        return str(task) + value[len("/var/task"):] if value.startswith("/var/task") else value

    argv = [IMAGE_PYTHONS[image["entrypoint"][0]], *image["entrypoint"][1:], *(cmd or image["cmd"])]
    env = {k: local(v) for k, v in image["env"].items()}
    # `pip install aruntime` in the image; the checkout here (run_runtime puts it on PYTHONPATH).
    assert local(image["workdir"]) == str(task), "the function code must be the working directory"
    return argv, env, task


def url_event(query: dict[str, str]) -> dict[str, Any]:
    """A Function URL (payload 2.0) GET event."""
    raw = "&".join(f"{k}={v}" for k, v in query.items())
    return {
        "version": "2.0", "routeKey": "$default", "rawPath": "/", "rawQueryString": raw,
        "headers": {"host": "abc.lambda-url.us-east-1.on.aws", "accept": "*/*"},
        "queryStringParameters": query or None,
        "requestContext": {"http": {"method": "GET", "path": "/", "protocol": "HTTP/1.1",
                                    "sourceIp": "127.0.0.1", "userAgent": "curl/8"},
                           "domainName": "abc.lambda-url.us-east-1.on.aws", "stage": "$default"},
        "isBase64Encoded": False,
    }


async def check_example(api: FakeRuntimeAPI, proc: RuntimeProcess) -> None:
    """examples/deploy/example/app.py: streamed Function URL answer, and its validation error."""
    rid = api.push(url_event({"n": "3"}))
    ex = await response_of(api, proc, rid)
    lines = [b"line 1 of 3\n", b"line 2 of 3\n", b"line 3 of 3\n", f"done: {rid}\n".encode()]
    prelude = b'{"statusCode":200,"headers":{"content-type":"text/plain; charset=utf-8"},"cookies":[]}'
    assert ex.body == prelude + b"\0" * 8 + b"".join(lines)
    chunks = [c for _, c in ex.chunks]
    assert chunks[-4:] == lines  # one chunk per yield, as produced
    assert_streamed(ex, chunks, HTTP_INTEGRATION)

    rid = api.push(url_event({"n": "0"}))
    ex = await response_of(api, proc, rid, "error")
    assert ex.header("lambda-runtime-function-error-type") == "Function.ValueError"
    assert ex.json()["errorMessage"] == "n must be between 1 and 100, got 0"


async def check_buffered(api: FakeRuntimeAPI, proc: RuntimeProcess) -> dict[str, Any]:
    """tests' fn.buffered: a JSON answer, then a handler exception to /error."""
    rid = api.push({"x": 1})
    ex = await response_of(api, proc, rid)
    assert ex.status == 202 and ex.header("content-type") == "application/json"
    got: dict[str, Any] = ex.json()
    assert got["request_id"] == rid
    rid = api.push({"fail": True})
    ex = await response_of(api, proc, rid, "error")
    assert ex.header("lambda-runtime-function-error-type") == "Function.ValueError"
    assert ex.json()["errorType"] == "ValueError"
    return got


@pytest.mark.parametrize("name", sorted(DOCKERFILES))
async def test_dockerfile_entrypoint_streams(fake_api: FakeRuntimeAPI, tmp_path: Path, name: str) -> None:
    argv, env, task = container(tmp_path, name)
    proc = await run_runtime(argv, fake_api, env=env, cwd=str(task))
    await check_example(fake_api, proc)
    await stop(fake_api, proc)


@pytest.mark.parametrize("name", sorted(DOCKERFILES))
async def test_dockerfile_entrypoint_with_command_override(fake_api: FakeRuntimeAPI, tmp_path: Path,
                                                           name: str) -> None:
    # ImageConfig.Command replaces CMD, as Lambda does; ENTRYPOINT stays.
    argv, env, task = container(tmp_path, name, ["fn.buffered"])
    proc = await run_runtime(argv, fake_api, env=env, cwd=str(task))
    got = await check_buffered(fake_api, proc)
    assert Path(got["aruntime"]).resolve().is_relative_to(REPO_ROOT / "aruntime")
    await stop(fake_api, proc)


# -- SAM ---------------------------------------------------------------------------------------------


def load_template() -> dict[str, Any]:
    yaml = pytest.importorskip("yaml")

    class CfnLoader(yaml.SafeLoader):
        pass

    def tag(loader: Any, suffix: str, node: Any) -> dict[str, Any]:
        if isinstance(node, yaml.ScalarNode):
            value: Any = loader.construct_scalar(node)
        elif isinstance(node, yaml.SequenceNode):
            value = loader.construct_sequence(node, deep=True)
        else:
            value = loader.construct_mapping(node, deep=True)
        name = "Ref" if suffix == "Ref" else f"Fn::{suffix}"
        return {name: value}

    CfnLoader.add_multi_constructor("!", tag)
    with open(DEPLOY / "template.yaml") as f:
        return yaml.load(f, Loader=CfnLoader)  # noqa: S506 - SafeLoader subclass


def sam_function(template: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    resources = template["Resources"]
    (fn,) = [r["Properties"] for r in resources.values() if r["Type"] == "AWS::Serverless::Function"]
    layers = {name: r["Properties"] for name, r in resources.items()
              if r["Type"] == "AWS::Serverless::LayerVersion"}
    ((layer_name, layer),) = layers.items()
    assert fn["Layers"] == [{"Ref": layer_name}]
    return fn, layer


def test_sam_template_lints() -> None:
    lint = shutil.which("cfn-lint")
    if lint is None:
        pytest.skip("cfn-lint is not installed")
    proc = subprocess.run([lint, str(DEPLOY / "template.yaml")], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_sam_template_wires_layer_wrapper_and_streaming() -> None:
    template = load_template()
    assert template["Transform"] == "AWS::Serverless-2016-10-31"
    fn, layer = sam_function(template)
    assert re.fullmatch(r"python3\.\d+", fn["Runtime"])
    assert fn["Runtime"] in layer["CompatibleRuntimes"]
    assert fn["Architectures"] == layer["CompatibleArchitectures"] == [{"Ref": "Architecture"}]
    assert fn["Environment"]["Variables"]["AWS_LAMBDA_EXEC_WRAPPER"] == f"/opt/{WRAPPER_NAME}"
    assert fn["FunctionUrlConfig"]["InvokeMode"] == "RESPONSE_STREAM"
    module, func = fn["Handler"].rsplit(".", 1)
    code = DEPLOY / fn["CodeUri"] / f"{module}.py"
    assert re.search(rf"^async def {func}\(", code.read_text(), re.M)
    # The layer zip the template uploads is the one the README recipe builds (and git ignores).
    assert layer["ContentUri"].endswith(".zip")
    readme = (DEPLOY / "README.md").read_text()
    assert f"-o examples/deploy/{layer['ContentUri']}" in readme
    assert "aruntime-layer*.zip" in (DEPLOY / ".gitignore").read_text().split()


@pytest.fixture(scope="module")
def sam_opt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    zip_path = build_for_host(tmp_path_factory.mktemp("sam-layer") / "aruntime-layer.zip")
    return unpack(zip_path, tmp_path_factory.mktemp("opt"))


async def test_sam_function_runs_through_the_layer(fake_api: FakeRuntimeAPI, sam_opt: Path,
                                                   tmp_path: Path) -> None:
    fn, _ = sam_function(load_template())
    task = tmp_path / "task"
    shutil.copytree(DEPLOY / fn["CodeUri"], task)
    runtime_dir = tmp_path / "runtime"
    runtime_dir.mkdir()
    (runtime_dir / "bootstrap.py").write_text(DECOY)
    configured = fn["Environment"]["Variables"]["AWS_LAMBDA_EXEC_WRAPPER"]
    wrapper = sam_opt / Path(configured).relative_to("/opt")
    env = {**lambda_env(task, runtime_dir, fn["Handler"], wrapper),
           **{k: v for k, v in fn["Environment"]["Variables"].items() if k != "AWS_LAMBDA_EXEC_WRAPPER"}}
    proc = await run_runtime([str(wrapper), sys.executable, str(runtime_dir / "bootstrap.py")],
                             fake_api, env=env, cwd=str(task))
    await check_example(fake_api, proc)
    await stop(fake_api, proc)


# -- provided.al2023: bootstrap + vendored aruntime + an interpreter in the zip -----------------------


@pytest.fixture
def provided_task(tmp_path: Path, sam_opt: Path) -> Path:
    """A provided.al2023 function zip, unpacked: bootstrap, aruntime + deps, code, python/bin."""
    task = tmp_path / "var-task"
    shutil.copytree(sam_opt / "python", task)  # same packages as `pip install --target .`
    shutil.copy2(REPO_ROOT / "bootstrap", task / "bootstrap")
    shutil.copytree(EXAMPLE, task, dirs_exist_ok=True)
    (task / "fn.py").write_text(FUNCTION)
    return task


def provided_env(task: Path, handler: str) -> dict[str, str]:
    # provided.* sets no PYTHONPATH; an empty one is how to drop run_runtime's default.
    return {"_HANDLER": handler, "LAMBDA_TASK_ROOT": str(task), "PYTHONPATH": "",
            "AWS_LAMBDA_FUNCTION_NAME": "provided-test", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256"}


async def test_bootstrap_with_aruntime_python(fake_api: FakeRuntimeAPI, provided_task: Path) -> None:
    env = {**provided_env(provided_task, "app.handler"), "ARUNTIME_PYTHON": sys.executable}
    proc = await run_runtime([str(provided_task / "bootstrap")], fake_api, env=env, cwd=str(provided_task))
    await check_example(fake_api, proc)
    await stop(fake_api, proc)


async def test_bootstrap_with_bundled_interpreter(fake_api: FakeRuntimeAPI, provided_task: Path) -> None:
    # Stands in for a relocatable CPython at python/bin/python3; -S: no site-packages, so
    # everything imported must come from the zip.
    shim = provided_task / "python" / "bin" / "python3"
    shim.parent.mkdir(parents=True)
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -S "$@"\n')
    shim.chmod(0o755)
    proc = await run_runtime([str(provided_task / "bootstrap")], fake_api,
                             env=provided_env(provided_task, "fn.buffered"), cwd=str(provided_task))
    got = await check_buffered(fake_api, proc)
    assert got["flags"]["no_site"] == 1
    for module in ("aruntime", "h11", "orjson"):
        assert Path(got[module]).resolve().is_relative_to(provided_task.resolve()), got
    assert got["aiohttp"] is False
    await stop(fake_api, proc)


def test_bootstrap_without_any_interpreter(tmp_path: Path) -> None:
    task = tmp_path / "task"
    task.mkdir()
    shutil.copy2(REPO_ROOT / "bootstrap", task / "bootstrap")
    # A PATH with the tools bootstrap needs but no python3.
    empty = tmp_path / "bin"
    empty.mkdir()
    for tool in ("dirname",):
        found = shutil.which(tool)
        assert found, tool
        (empty / tool).symlink_to(found)
    if Path("/opt/python/bin/python3").exists():
        pytest.skip("this machine has /opt/python/bin/python3, which bootstrap would use")
    proc = subprocess.run([str(task / "bootstrap")], env={"PATH": str(empty)}, capture_output=True,
                          text=True, timeout=30)
    assert proc.returncode == 127 and "no Python interpreter" in proc.stderr
