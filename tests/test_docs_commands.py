"""The commands in README.md and examples/deploy/README.md, run exactly as written.

Each shell block either starts with `# illustrative` (it needs AWS, Docker or a download from
outside the package registries) or is run here, in a copy of the checkout named `aruntime`,
from the repository root, with a virtualenv active. README's first command serves on port 9000
as written: it runs in a network namespace of its own (`unshare -rn`), so that port is never
the machine's, and pip installs there from a wheel folder made beforehand (no network inside).
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from checkout import (  # noqa: F401 - fixtures
    Block,
    block_with,
    blocks,
    built_wheel,
    clone,
    clone_venv,
    run_block,
    venv_env,
)
from fakeapi import REPO_ROOT, FakeRuntimeAPI, run_runtime

README = REPO_ROOT / "README.md"
DEPLOY_README = REPO_ROOT / "examples" / "deploy" / "README.md"
BOTO3_NEEDLE = "client.invoke_with_response_stream("

# Each runnable block, by a piece of text only it contains, and what runs it.
RUNNERS = {
    (README, "aruntime serve examples/chat.py:handler"): "test_readme_first_commands",
    (README, "curl -N 'http://127.0.0.1:9000/?prompt=hello'"): "test_readme_first_commands",
    (README, "aruntime serve examples/fastapi_chat.py:handler"): "test_readme_first_commands",
    (README, "curl -N 'http://127.0.0.1:9000/chat?prompt=hello'"): "test_readme_first_commands",
    (README, BOTO3_NEEDLE): "test_readme_first_commands",
    (README, "bash .ci/run"): "CI itself: .ci/run is what CI runs",
    (README, "pip install -e '.[boto3]'"): "test_readme_install_lines",
    (DEPLOY_README, "-o examples/deploy/aruntime-layer.zip"): "test_deploy_layer_commands",
    (DEPLOY_README, "pip wheel --no-deps -w dist ."): "checkout.built_wheel (tests/test_deploy.py)",
    (DEPLOY_README, "mkdir -p build/fn"): "test_deploy_provided_commands",
    (DEPLOY_README, "zip -qr9 --symlinks ../function.zip"): "test_deploy_provided_commands",
}


def command_blocks() -> list[Block]:
    found = blocks(README, "sh") + blocks(DEPLOY_README, "sh")
    found += [b for b in blocks(README, "python") if "boto3.client(" in b.text]
    return found


def test_every_command_block_is_run_or_marked_illustrative() -> None:
    for block in command_blocks():
        claims = [runner for (path, needle), runner in RUNNERS.items()
                  if path == block.path and needle in block.text]
        if block.illustrative:
            assert not claims, f"{block} is marked illustrative but {claims} runs it"
        else:
            assert len(claims) == 1, f"{block} is neither run by a test nor marked illustrative:\n{block.text}"
            runner = claims[0]
            assert not runner.startswith("test_") or runner in globals(), runner
    for (path, needle), runner in RUNNERS.items():
        block_with(path, needle, "python" if needle == BOTO3_NEEDLE else "sh")  # exactly one each


FROM_CHECKOUT = re.compile(r"^pip install -e (\.|'\.\[\w+\]')$")


def install_commands(path: Path) -> list[tuple[str, str, bool]]:
    """Each `pip install` of `path`: (the command, where, whether it is marked illustrative).
    From the runnable shell blocks, each line; from the prose, each inline code span (not a
    Dockerfile's `RUN` line), marked when "illustrative" follows it in its sentence."""
    found = []
    for block in blocks(path, "sh"):
        for line in block.text.splitlines():
            if "pip install" in line:
                found.append((line.split(" #", 1)[0].strip(), str(block), block.illustrative))
    prose = re.sub(r"^\s*```.*?^\s*```", "", path.read_text(), flags=re.M | re.S)
    for m in re.finditer(r"`([^`]*pip install[^`]*)`", prose):
        if m.group(1).startswith("RUN "):
            continue
        sentence = re.split(r"(?<=[.:])\s", prose[m.end():], maxsplit=1)[0]
        found.append((m.group(1), f"{path.relative_to(REPO_ROOT)}: prose", "illustrative" in sentence))
    return found


def test_install_commands_have_one_form_and_are_run_or_marked() -> None:
    """Every install of aruntime the docs show is `pip install -e .` or `pip install -e '.[extra]'`
    from the checkout's root, and is a line of a block a test runs or is marked illustrative;
    the published name appears only as what replaces them once published."""
    run_lines = {line.split(" #", 1)[0].strip() for block in command_blocks() if not block.illustrative
                 for line in block.text.splitlines()}
    seen = []
    for path in (README, DEPLOY_README):
        for command, where, illustrative in install_commands(path):
            for part in command.split("&&"):
                if "pip install" not in part:
                    continue
                part = re.sub(r"^\S*/bin/pip ", "pip ", part.strip()).replace(" -q ", " ")
                if re.match(r"pip install aruntime\b", part):
                    text = path.read_text()
                    at = text.index(f"`{command}`")
                    assert "published" in text[at - 150:at + len(command) + 150], (where, command)
                    continue
                if " ." in part or "'." in part:
                    assert FROM_CHECKOUT.match(part), (where, command)
                    seen.append(part)
            if where.endswith("prose") and not command.startswith("pip install aruntime"):
                assert illustrative or command in run_lines, f"{where}: `{command}` is neither run nor marked"
    assert {"pip install -e .", "pip install -e '.[emulator]'", "pip install -e '.[boto3]'"} <= set(seen)


def test_deploy_paths_are_consistent() -> None:
    """The layer zip the recipes build is the one the CLI and SAM recipes upload."""
    text = DEPLOY_README.read_text()
    built = set(re.findall(r"-o (\S+\.zip)", text))
    assert built == {"examples/deploy/aruntime-layer.zip", "build/layer.zip"}, built
    uploaded = set(re.findall(r"fileb://(\S+\.zip)", text))
    assert uploaded == {"examples/deploy/aruntime-layer.zip", "build/function.zip"}, uploaded
    assert "--template-file examples/deploy/template.yaml" in text
    assert "ContentUri: aruntime-layer.zip" in (DEPLOY_README.parent / "template.yaml").read_text()


# -- README: install lines ----------------------------------------------------------------------


def test_readme_install_lines(clone: Path, clone_venv: Path) -> None:
    block = block_with(README, "pip install -e '.[boto3]'")
    run_block(block, clone, venv_env(clone_venv, clone.parent))
    code = ("import aruntime, h11, orjson, httptools, aiohttp, watchfiles, awslambdaric, boto3, sys; "
            "print(aruntime.__file__)")
    elsewhere = clone.parent / "elsewhere"
    elsewhere.mkdir(exist_ok=True)

    def imported_from(cwd: Path) -> str:
        proc = subprocess.run([str(clone_venv / "bin" / "python"), "-c", code], cwd=str(cwd),
                              env=venv_env(clone_venv, clone.parent), capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout.strip()

    # Installed from the checkout, editable: the clone's own files are what runs.
    assert Path(imported_from(elsewhere)).resolve() == (clone / "aruntime" / "__init__.py").resolve()
    assert (clone_venv / "bin" / "aruntime").is_file()
    # README's caveat: from the folder holding the clone, Python takes the clone's folder for
    # an (empty) namespace package `aruntime` (setuptools' editable finder, pypa/setuptools#3557).
    assert imported_from(clone.parent) == "None"
    # There `python -m aruntime` says so and what to do, in one line (not an ImportError's
    # traceback); the `aruntime` command works from anywhere, there too.
    proc = subprocess.run([str(clone_venv / "bin" / "python"), "-m", "aruntime", "--version"], cwd=str(clone.parent),
                          env=venv_env(clone_venv, clone.parent), capture_output=True, text=True, timeout=120)
    assert (proc.returncode, proc.stdout) == (2, ""), proc
    assert proc.stderr == (f"aruntime: Python took the folder {clone} for the aruntime package, since it is in "
                           "the working directory, and the installed package never loaded (an editable install's "
                           "limit, pypa/setuptools#3557): run python -m aruntime from another folder, or use the "
                           "`aruntime` command, which works from anywhere\n")
    proc = subprocess.run([str(clone_venv / "bin" / "aruntime"), "--version"], cwd=str(clone.parent),
                          env=venv_env(clone_venv, clone.parent), capture_output=True, text=True, timeout=120)
    assert (proc.returncode, proc.stdout.startswith("aruntime ")) == (0, True), proc
    # The extras README names are the project's.
    tomllib = pytest.importorskip("tomllib")
    extras = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    for name in re.findall(r"pip install -e '\.\[(\w+)\]'", README.read_text()):
        assert name in extras, name
    assert any(d.startswith("boto3") for d in extras["boto3"])
    assert any(d.startswith("awslambdaric") for d in extras["reference"])


# -- README: the first commands, in a network namespace of their own ----------------------------

_LOOPBACK_UP = """\
import fcntl, socket, struct
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
flags = struct.unpack("16sH", fcntl.ioctl(s, 0x8913, struct.pack("16sH14x", b"lo", 0))[:18])[1]
fcntl.ioctl(s, 0x8914, struct.pack("16sH14x", b"lo", flags | 1))  # SIOCSIFFLAGS: IFF_UP
"""

# Runs inside the namespace: the blocks come in as variables, unchanged.
_SCRIPT = r"""
set -u
python3 -c "$LOOPBACK_UP"
until_line() {  # until_line FILE TEXT: wait (at most 240 s) for TEXT in FILE
    for _ in $(seq 1200); do grep -qF "$2" "$1" 2>/dev/null && return 0; sleep 0.2; done
    echo "timed out waiting for '$2' in $1" >&2; return 1
}
setsid bash -c "$SERVE_BLOCK" > "$OUT/serve.out" 2> "$OUT/serve.err" &
serve=$!
until_line "$OUT/serve.out" "Ctrl-C stops." || { kill -TERM -- -$serve; exit 3; }
bash -o pipefail -c "$CURL_BLOCK" > "$OUT/curl.out" 2> "$OUT/curl.err"
until_line "$OUT/serve.out" "REPORT RequestId" || true
"$BOTO3_PYTHON" -c "$BOTO3_BLOCK" > "$OUT/boto3.out" 2> "$OUT/boto3.err"
kill -INT -- -$serve; wait $serve
# The same chat as a FastAPI app (installed into the same .venv).
setsid bash -c "$FASTAPI_BLOCK" > "$OUT/fastapi-serve.out" 2>&1 &
fastapi=$!
until_line "$OUT/fastapi-serve.out" "Ctrl-C stops." || { kill -TERM -- -$fastapi; exit 5; }
bash -o pipefail -c "$FASTAPI_CURL" > "$OUT/fastapi-curl.out" 2> "$OUT/fastapi-curl.err"
kill -INT -- -$fastapi; wait $fastapi
# README's Streaming section: `curl ... | wc -c` after `aruntime serve examples/bigfile.py:handler`.
setsid bash -c "$BIGFILE_SERVE" > "$OUT/big-serve.out" 2>&1 &
big=$!
until_line "$OUT/big-serve.out" "Ctrl-C stops." || { kill -TERM -- -$big; exit 4; }
bash -o pipefail -c "$BIGFILE_CURL" > "$OUT/big.out"
kill -INT -- -$big; wait $big
exit 0
"""


def shape(text: str, clone: Path) -> list[str]:
    """Lines with what differs between runs made alike: the clone's place, ids, timings."""
    text = text.replace(str(clone.parent), "/home/you")
    text = re.sub(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", "<request id>", text)
    text = re.sub(r"\d+\.\d\d ms", "<n> ms", text)
    text = re.sub(r"(Billed Duration|Max Memory Used): \d+", r"\1: <n>", text)
    return text.splitlines()


@pytest.fixture(scope="module")
def wheelhouse(clone: Path) -> Path:
    """What README's first commands install (`.[emulator]`, fastapi), downloaded beforehand: the
    namespace has no network."""
    folder = clone.parent / "wheelhouse"
    # For the interpreter README's `python3 -m venv .venv` makes: PATH's python3, which need not
    # be the one running the tests (.ci/run runs the suite under every Python it finds).
    python3 = shutil.which("python3") or sys.executable
    proc = subprocess.run(
        [python3, "-m", "pip", "download", "-q", "-d", str(folder), "setuptools>=64",
         "aiohttp>=3.9", "watchfiles>=0.21", "h11>=0.14", "orjson>=3.9", "fastapi"],
        env={**os.environ, "PIP_RETRIES": "1"}, capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        pytest.skip(f"no package index reachable to prepare the wheel folder: {proc.stderr[-300:]}")
    return folder


@pytest.mark.skipif(shutil.which("unshare") is None or shutil.which("curl") is None,
                    reason="needs unshare (util-linux) for a private network namespace, and curl")
def test_readme_first_commands(clone: Path, wheelhouse: Path, tmp_path: Path) -> None:
    """README's first command (venv, install, serve on 9000), the curl in a second terminal, and
    the boto3 snippet, as written; their output has the shape README shows."""
    serve_block = block_with(README, "aruntime serve examples/chat.py:handler")
    curl_block = block_with(README, "curl -N 'http://127.0.0.1:9000/?prompt=hello'")
    boto3_block = block_with(README, BOTO3_NEEDLE, "python")
    out = tmp_path / "out"
    out.mkdir()
    probe = subprocess.run(["unshare", "-rn", "true"], capture_output=True, timeout=30)
    if probe.returncode != 0:
        pytest.skip(f"unshare -rn is not allowed here: {probe.stderr.decode()[-200:]}")
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path), "LANG": "C.UTF-8",
        # pip, offline: only the wheel folder (its config's indexes are unreachable in here).
        "PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(wheelhouse), "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        "LOOPBACK_UP": _LOOPBACK_UP, "OUT": str(out),
        "SERVE_BLOCK": serve_block.text, "CURL_BLOCK": curl_block.text,
        "FASTAPI_BLOCK": block_with(README, "aruntime serve examples/fastapi_chat.py:handler").text,
        "FASTAPI_CURL": block_with(README, "curl -N 'http://127.0.0.1:9000/chat?prompt=hello'").text,
        "BOTO3_PYTHON": sys.executable, "BOTO3_BLOCK": boto3_block.text,
        "BIGFILE_SERVE": ".venv/bin/aruntime serve examples/bigfile.py:handler",
        "BIGFILE_CURL": "curl -s 'http://127.0.0.1:9000/?mib=100' | wc -c",
    }
    proc = subprocess.Popen(["unshare", "-rn", "bash", "-c", _SCRIPT], cwd=str(clone), env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        log, _ = proc.communicate(timeout=480)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        log, _ = proc.communicate()
    files = {p.name: p.read_text(errors="replace") for p in out.iterdir()}
    assert proc.returncode == 0, (log.decode(errors="replace")[-3000:], files)

    # serve's own output: the README sample's shape, line for line (banner + one invocation).
    sample = re.search(r"```\n(aruntime: function 'chat'.*?)```", README.read_text(), re.S)
    assert sample, "README's sample serve output"
    expected = shape(sample.group(1), Path("/home/you/aruntime"))
    got = shape(files["serve.out"], clone)
    assert got[:len(expected)] == expected, files["serve.out"]

    # curl: the events README shows, then its last event, request id aside.
    sample = curl_block_sample()
    head, _, tail = sample.partition("...\n")
    text = re.sub(r'"request_id":"[^"]+"', '"request_id":"<id>"', files["curl.out"])
    assert text.startswith(head), text[:400]
    last = re.sub(r'"request_id":"[^"]+"', '"request_id":"<id>"', tail).rstrip("\n")
    assert text.rstrip("\n").endswith(last), text[-400:]

    # boto3: the prelude first (the JSON and its 8 NULs), then the tokens, then InvokeComplete.
    lines = files["boto3.out"].splitlines()
    assert lines[0].startswith("{'PayloadChunk': {'Payload': b'{\"statusCode\":200,") and "\\x00" * 8 in lines[0]
    assert any("You " in line for line in lines[1:3]) and lines[-1] == "{'InvokeComplete': {}}", lines

    assert files["big.out"].strip() == str(100 * 1024 * 1024)
    events = files["fastapi-curl.out"]
    assert events.startswith('event: token\nid: 0\ndata: {"token":"You "}\n\n'), events[:300]
    assert re.search(r'event: done\ndata: \{"tokens":\d+,"request_id":"[0-9a-f-]{36}"\}\n\n$', events), events[-300:]


def curl_block_sample() -> str:
    """The sample output README prints right after the curl command."""
    text = README.read_text()
    start = text.index("curl -N 'http://127.0.0.1:9000/?prompt=hello'")
    m = re.compile(r"```\n(event: token.*?)```", re.S).search(text, start)
    assert m, "README's sample curl output"
    return m.group(1)


# -- examples/deploy/README.md ------------------------------------------------------------------


@pytest.fixture(scope="module")
def deploy_layer(clone: Path, clone_venv: Path) -> Path:
    """Section 1's commands, as written: install from the checkout, build the layer."""
    block = block_with(DEPLOY_README, "-o examples/deploy/aruntime-layer.zip")
    proc = run_block(block, clone, venv_env(clone_venv, clone.parent))
    layer = clone / "examples" / "deploy" / "aruntime-layer.zip"
    assert layer.is_file(), proc.stderr
    return layer


def test_deploy_layer_commands(deploy_layer: Path) -> None:
    with zipfile.ZipFile(deploy_layer) as zf:
        names = set(zf.namelist())
    assert {"aruntime-wrapper", "python/aruntime/__init__.py", "python/h11/__init__.py"} <= names
    assert any(n.startswith("python/orjson/orjson.cpython-312-") for n in names)
    assert not any(n.startswith(("python/aruntime/tools/", "python/aruntime/emulator/")) for n in names)
    # Bytecode for 3.12 when this machine has a 3.12 (else the build warned: test_layer checks).
    if any(Path(p).exists() for p in ("/usr/bin/python3.12", "/usr/local/bin/python3.12")) or \
            list((Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv") / "versions").glob("3.12*")):
        assert "python/aruntime/__pycache__/runtime.cpython-312.pyc" in names


def test_deploy_provided_commands(clone: Path, clone_venv: Path, deploy_layer: Path) -> None:
    """Section 3's runnable blocks, as written; the function zip then holds what bootstrap needs."""
    env = venv_env(clone_venv, clone.parent)
    run_block(block_with(DEPLOY_README, "mkdir -p build/fn"), clone, env)
    run_block(block_with(DEPLOY_README, "zip -qr9 --symlinks ../function.zip"), clone, env)
    with zipfile.ZipFile(clone / "build" / "function.zip") as zf:
        infos = {i.filename: i for i in zf.infolist()}
    assert (infos["bootstrap"].external_attr >> 16) & 0o777 == 0o755
    assert {"app.py", "aruntime/__init__.py", "aruntime/runtime.py", "h11/__init__.py",
            "orjson/__init__.py"} <= set(infos)
