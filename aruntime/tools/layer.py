"""`aruntime layer build`: a Lambda layer that runs aruntime on the managed Python runtimes.

The zip holds `python/` (aruntime, h11 and orjson for the target Python and architecture; no
aiohttp, which only the local emulator needs) and `aruntime-wrapper` at its root. A function
sets `AWS_LAMBDA_EXEC_WRAPPER=/opt/aruntime-wrapper`; the managed bootstrap then runs
`/opt/aruntime-wrapper /var/lang/bin/python3.12 [flags] /var/runtime/bootstrap.py`, and the
wrapper starts `python3.12 [flags] -m aruntime` instead of the managed runtime client.

Dependencies come from `pip download` of manylinux wheels for the target (`--find-links DIR`
for an offline wheel folder), or with `--from-local` from this interpreter's installed
packages, which is only right when the target is this very Python on this architecture.
Bytecode is compiled by a CPython of the target version found on this machine (or
`--interpreter`); without one the build warns and ships sources only.
"""

from __future__ import annotations

import argparse
import email.parser
import importlib.metadata
import os
import platform
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from .. import __version__

__all__ = ["DEPENDENCIES", "WRAPPER_NAME", "WRAPPER_SCRIPT", "LayerError", "build_layer", "main"]

# Kept equal to pyproject's [project] dependencies (tests/test_layer.py checks).
DEPENDENCIES = ["h11>=0.14", "orjson>=3.9"]
# The `fast` extra: the C HTTP parser, and uvloop (the event loop when N > 1; aruntime/loops.py).
FAST_DEPENDENCIES = ["httptools>=0.6",
                     'uvloop>=0.19; sys_platform != "win32" and platform_python_implementation == "CPython"']
WRAPPER_NAME = "aruntime-wrapper"
# Packages the layer must never carry: the emulator's stack is for laptops, not Lambda.
FORBIDDEN = ("aiohttp",)
# Sub-packages of aruntime left out of the layer: the emulator (it needs aiohttp) and the
# command-line tools (this builder among them); Lambda runs the runtime only.
EXCLUDED_SUBPACKAGES = ("emulator", "tools")
ARCHES = {"x86_64": "x86_64", "arm64": "aarch64"}
# A fixed timestamp makes two builds of the same inputs byte-identical (zip's epoch).
ZIP_DATE = (1980, 1, 1, 0, 0, 0)

WRAPPER_SCRIPT = r"""#!/bin/sh
# aruntime exec wrapper for Lambda's managed Python runtimes.
# Function configuration: AWS_LAMBDA_EXEC_WRAPPER=/opt/aruntime-wrapper
#
# The managed bootstrap runs this file with its own command line appended:
#   /opt/aruntime-wrapper /var/lang/bin/python3.12 [interpreter flags] /var/runtime/bootstrap.py
# We keep that interpreter and its flags and run `-m aruntime` in place of the managed
# bootstrap script. ARUNTIME_DISABLE=1 runs the managed command line unchanged (a kill switch
# that needs no redeploy). That is awslambdaric: async and streaming handlers, and results only
# aruntime encodes (datetimes, dataclasses...), fail under it.
#
# Another layer's exec wrapper (OpenTelemetry's /opt/otel-instrument, ...) is named by
# ARUNTIME_NEXT_WRAPPER, since AWS_LAMBDA_EXEC_WRAPPER holds one: this wrapper starts it as
# Lambda would, with the command line it would itself have run appended (`python3.x [flags]
# -m aruntime`, or the managed one under ARUNTIME_DISABLE=1) and the same environment. That
# wrapper sets its own things up and runs the command line it was given, as exec wrappers do.
set -e
if [ $# -lt 1 ]; then
    echo "aruntime-wrapper: expected the runtime's command line as arguments" >&2
    exit 127
fi
next=${ARUNTIME_NEXT_WRAPPER:-}
# Handed over once: should the next wrapper come back here, it is not started again.
unset ARUNTIME_NEXT_WRAPPER
if [ -n "$next" ] && ! { [ -f "$next" ] && [ -x "$next" ]; }; then
    echo "aruntime-wrapper: ARUNTIME_NEXT_WRAPPER=$next is not an executable file" >&2
    exit 126
fi
if [ "${ARUNTIME_DISABLE:-}" = 1 ]; then
    if [ -n "$next" ]; then
        exec "$next" "$@"
    fi
    exec "$@"
fi
# Where the layer is unpacked (/opt on Lambda), found without forking: this runs on every cold start.
case $0 in
    /*) here=${0%/*} ;;
    */*) here=$PWD/${0%/*} ;;
    *) here=$PWD ;;
esac
py=$1
shift
# Keep the interpreter options that precede the script; drop the script and its arguments.
# -E and -I would make Python ignore PYTHONPATH, which is how it finds aruntime: dropped too.
value=
stop=
for arg do
    shift
    if [ -n "$stop" ]; then
        continue
    fi
    if [ -n "$value" ]; then
        set -- "$@" "$arg"
        value=
        continue
    fi
    case $arg in
        -E|-I) ;;
        -X|-W|--check-hash-based-pycs) set -- "$@" "$arg"; value=1 ;;
        --|-c|-m|-) stop=1 ;;
        -*) set -- "$@" "$arg" ;;
        *) stop=1 ;;
    esac
done
# Lambda puts a layer's python/ and python/lib/pythonX.Y/site-packages on sys.path (in this
# order, after the function's code); the managed bootstrap we replace did that, so we do.
path=$here/python
case ${py##*/} in
    python3.*)
        site=$here/python/lib/python${py##*/python}/site-packages
        if [ -d "$site" ]; then
            path=$site:$path
        fi
        ;;
esac
export PYTHONPATH="$path${PYTHONPATH:+:$PYTHONPATH}"
if [ -n "$next" ]; then
    exec "$next" "$py" "$@" -m aruntime
fi
exec "$py" "$@" -m aruntime
"""


class LayerError(Exception):
    """The layer cannot be built as asked (bad option, pip failure, wrong local platform)."""


def host_arch() -> str:
    """This machine's architecture in Lambda's spelling (`x86_64` or `arm64`)."""
    machine = platform.machine().lower()
    return "arm64" if machine in ("aarch64", "arm64") else machine


def _parse_python(version: str) -> tuple[int, int]:
    m = re.fullmatch(r"3\.(\d+)", version)
    if not m or int(m.group(1)) < 10:
        raise LayerError(f"--python must be 3.10 or newer, like 3.12; got {version!r}")
    return 3, int(m.group(1))


def _requirement_name(req: str) -> str:
    m = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", req.strip())
    if not m:
        raise LayerError(f"cannot read a package name from requirement {req!r}")
    return m.group(0)


def _platforms(minor: int, arch: str) -> list[str]:
    machine = ARCHES[arch]
    # Python 3.12+ runs on Amazon Linux 2023 (glibc 2.34), older ones on Amazon Linux 2
    # (glibc 2.26); pip counts every older manylinux tag in for each one given.
    glibc = "2_34" if minor >= 12 else "2_26"
    return [f"manylinux2014_{machine}", f"manylinux_{glibc}_{machine}"]


def _copy_aruntime(dest: Path) -> None:
    src = Path(__file__).resolve().parents[1]  # the aruntime package

    def ignore(directory: str, names: list[str]) -> list[str]:
        skip = {n for n in names if n == "__pycache__" or n.endswith((".pyc", ".pyo"))}
        if Path(directory).resolve() == src:
            skip.update(n for n in names if n in EXCLUDED_SUBPACKAGES)
        return sorted(skip)

    shutil.copytree(src, dest / "aruntime", ignore=ignore)
    # Metadata, so importlib.metadata.version("aruntime") answers inside Lambda too.
    info = dest / f"aruntime-{__version__}.dist-info"
    info.mkdir()
    requires = "".join(f"Requires-Dist: {r}\n" for r in DEPENDENCIES)
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: aruntime\nVersion: {__version__}\n{requires}")
    (info / "INSTALLER").write_text("aruntime-layer\n")
    (info / "top_level.txt").write_text("aruntime\n")


def _pip_download(requirements: list[str], minor: int, arch: str, wheels: Path,
                  find_links: str | None) -> None:
    cmd = [sys.executable, "-m", "pip", "download", "--disable-pip-version-check", "--no-input",
           "--only-binary=:all:", "--implementation", "cp", "--python-version", f"3.{minor}",
           "--dest", str(wheels)]
    for plat in _platforms(minor, arch):
        cmd += ["--platform", plat]
    if find_links:
        cmd += ["--no-index", "--find-links", find_links]
    cmd += requirements
    proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True)
    if proc.returncode != 0:
        offline = ("Offline? Use --find-links DIR with downloaded wheels, or --from-local when the target "
                   "is this Python on this architecture.")
        hint = offline
        # "No matching distribution": often not the network but a pair no wheel exists for
        # (--python 3.15 before its wheels are out, a typo): say which, and what must match.
        if missing := re.findall(r"No matching distribution found for (\S+)", proc.stdout):
            where = f"in {find_links}" if find_links else "on the package index"
            hint = (f"No wheel of {', '.join(missing)} for CPython 3.{minor} on {arch} was found {where}. "
                    "--python and --arch must be the function's (Lambda's Python runtimes: python3.10 and "
                    "newer, on x86_64 or arm64) and the package must publish a wheel for that pair"
                    + ("; the folder must hold it." if find_links else f"; else pip reached no index. {offline}"))
        raise LayerError(f"pip download failed (exit {proc.returncode}):\n{proc.stdout[-3000:]}\n{hint}")


def _unpack_wheel(wheel: Path, dest: Path) -> None:
    """Install a wheel by unpacking it: Lambda layers need no scripts or entry points."""
    with zipfile.ZipFile(wheel) as zf:
        for info in zf.infolist():
            name = info.filename
            if info.is_dir() or name.startswith("/") or ".." in Path(name).parts:
                continue
            parts = Path(name).parts
            # `<dist>.data/purelib|platlib/...` belongs on the path; scripts/headers/data do not.
            if parts[0].endswith(".data"):
                if len(parts) < 3 or parts[1] not in ("purelib", "platlib"):
                    continue
                parts = parts[2:]
            target = dest.joinpath(*parts)
            target.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(info) as src, open(target, "wb") as out:
                shutil.copyfileobj(src, out)
            mode = (info.external_attr >> 16) & 0o777
            if mode:
                target.chmod(mode | 0o644)


def _copy_installed(requirements: list[str], dest: Path) -> list[str]:
    """Copy installed distributions (and what they require) from this interpreter."""
    todo = [_requirement_name(r) for r in requirements]
    seen: set[str] = set()
    copied = []
    while todo:
        name = todo.pop()
        key = re.sub(r"[-_.]+", "-", name).lower()
        if key in seen:
            continue
        seen.add(key)
        try:
            dist = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            raise LayerError(f"--from-local: {name} is not installed in {sys.executable}") from None
        for file in dist.files or []:
            parts = Path(str(file)).parts
            if ".." in parts or "__pycache__" in parts or str(file).endswith((".pyc", ".pyo")):
                continue
            source = Path(str(dist.locate_file(file)))
            if not source.is_file():
                continue
            target = dest.joinpath(*parts)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
        copied.append(f"{dist.metadata['Name']}-{dist.version}")
        for req in dist.requires or []:
            if "extra ==" not in req.replace("extra==", "extra =="):
                todo.append(_requirement_name(req))
    return copied


def _dist_names(python_dir: Path) -> list[str]:
    names = []
    for info in sorted(python_dir.glob("*.dist-info")):
        meta = email.parser.Parser().parsestr((info / "METADATA").read_text(errors="replace"))
        names.append(f"{meta['Name']}-{meta['Version']}")
    return names


def _check_clean(python_dir: Path) -> None:
    for entry in python_dir.iterdir():
        top = entry.name.split("-")[0].split(".")[0].lower()
        if top in FORBIDDEN:
            raise LayerError(f"{entry.name} must not be in the layer (it is for the emulator only)")


# Where an interpreter of a given X.Y usually lives, besides PATH: pyenv, uv, the OS.
_VERSION_PROBE = "import sys; print('%d.%d %s' % (*sys.version_info[:2], sys.implementation.name))"


def interpreter_candidates(version: str, *, path: str | None = None,
                           home: Path | None = None) -> list[str]:
    """Places a CPython `version` ("3.12") may be, in the order they are tried: PATH
    (`python3.12`), pyenv (`$PYENV_ROOT` or ~/.pyenv, newest patch first), uv's managed
    Pythons, then /usr/local/bin and /usr/bin. Nothing here is run; see find_interpreter."""
    name = f"python{version}"
    home = home or Path.home()
    found: list[str] = []
    on_path = shutil.which(name, path=path)
    if on_path:
        found.append(on_path)

    def patch_key(p: Path) -> tuple[int, ...]:
        digits = re.findall(r"\d+", p.name.split("-")[1] if p.name.startswith("cpython-") else p.name)
        return tuple(int(d) for d in digits)

    pyenv_root = Path(os.environ.get("PYENV_ROOT") or home / ".pyenv")
    versions = [p for p in (pyenv_root / "versions").glob(f"{version}*")
                if re.fullmatch(rf"{re.escape(version)}(\.\d+)?", p.name)]
    found += [str(p / "bin" / name) for p in sorted(versions, key=patch_key, reverse=True)]
    uv = home / ".local" / "share" / "uv" / "python"
    found += [str(p / "bin" / name)
              for p in sorted(uv.glob(f"cpython-{version}.*"), key=patch_key, reverse=True)]
    found += [f"/usr/local/bin/{name}", f"/usr/bin/{name}"]
    return [c for i, c in enumerate(found) if c not in found[:i]]


def interpreter_version(executable: str) -> str | None:
    """"3.12" for a CPython 3.12 at `executable`; None when it is not one or does not run
    (a pyenv shim for a version that is not selected exits 127)."""
    try:
        proc = subprocess.run([executable, "-I", "-c", _VERSION_PROBE], stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    version, _, implementation = proc.stdout.strip().partition(" ")
    return version if proc.returncode == 0 and implementation == "cpython" else None


def find_interpreter(version: str, *, path: str | None = None, home: Path | None = None) -> str | None:
    """A CPython `version` interpreter on this machine (this one when it is that version),
    or None."""
    if version == f"{sys.version_info[0]}.{sys.version_info[1]}" and sys.implementation.name == "cpython":
        return sys.executable
    for candidate in interpreter_candidates(version, path=path, home=home):
        if os.access(candidate, os.X_OK) and interpreter_version(candidate) == version:
            return candidate
    return None


def _no_interpreter_warning(version: str) -> str:
    return (
        f"aruntime layer: WARNING: no Python {version} found to compile the layer's bytecode "
        f"(looked on PATH for python{version}, in ~/.pyenv/versions/{version}.*, uv's Pythons, "
        f"/usr/local/bin and /usr/bin).\n"
        f"  The layer ships NO .pyc files: Lambda's /opt is read-only, so every cold start compiles "
        f"aruntime, h11 and orjson again (tens of milliseconds of imports).\n"
        f"  Fix: install Python {version} (pyenv install {version}, uv python install {version}, or "
        f"the OS package), or pass --interpreter /path/to/python{version}; then build again.\n")


def _compile(python_dir: Path, interpreter: str) -> None:
    # /opt is read-only on Lambda, so without shipped bytecode every cold start would compile
    # the layer again. The target's own interpreter writes it (a pyc is only valid for the
    # X.Y that wrote it), as unchecked-hash pycs: they stay valid whatever mtimes the unzip
    # leaves (a timestamp pyc would not match the zip's 1980 dates). An environment of its own:
    # no PYTHONPATH of ours, and a fixed hash seed, without which a set literal's frozenset is
    # marshalled in a random order and the same build differs from run to run (seen on 3.10).
    proc = subprocess.run(
        [interpreter, "-s", "-m", "compileall", "-q", "-d", "/opt/python",
         "--invalidation-mode", "unchecked-hash", str(python_dir)],
        env={"PYTHONHASHSEED": "0"}, stdin=subprocess.DEVNULL, capture_output=True, text=True,
        timeout=600)
    if proc.returncode != 0:
        raise LayerError(f"byte-compiling the layer with {interpreter} failed:\n"
                         f"{(proc.stdout + proc.stderr)[-3000:]}")


def _write_zip(root: Path, output: Path) -> None:
    files = sorted(p for p in root.rglob("*") if p.is_file())
    tmp = output.with_name(output.name + ".tmp")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        for path in files:
            info = zipfile.ZipInfo(path.relative_to(root).as_posix(), ZIP_DATE)
            info.create_system = 3  # Unix: unzip (and Lambda) then honour the mode bits
            executable = path.stat().st_mode & stat.S_IXUSR
            info.external_attr = (stat.S_IFREG | (0o755 if executable else 0o644)) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, path.read_bytes())
    os.replace(tmp, output)


def build_layer(output: str | os.PathLike[str], *, python: str | None = None,
                arch: str | None = None, from_local: bool = False,
                find_links: str | None = None, bytecode: bool | None = None,
                fast: bool = False, interpreter: str | None = None) -> Path:
    """Build the layer zip at `output`; returns its path. See the module docstring.

    `python` ("3.12") and `arch` ("x86_64"/"arm64") are the function's (default: this
    interpreter's). Bytecode is compiled by `interpreter`, else a CPython of that version found
    on this machine (find_interpreter); `bytecode=None` compiles when one is found and warns on
    stderr when none is, True makes a missing one an error, False ships sources only.
    Raises LayerError.
    """
    deps = DEPENDENCIES + (FAST_DEPENDENCIES if fast else [])
    python = python or f"{sys.version_info[0]}.{sys.version_info[1]}"
    arch = arch or host_arch()
    _, minor = _parse_python(python)
    if arch not in ARCHES:
        raise LayerError(f"--arch must be one of {', '.join(ARCHES)}; got {arch!r}")
    same_python = minor == sys.version_info[1]
    if from_local:
        if not (same_python and arch == host_arch() and sys.platform == "linux"):
            raise LayerError(
                f"--from-local copies this interpreter's packages (Python "
                f"{sys.version_info[0]}.{sys.version_info[1]}, {host_arch()}, {sys.platform}); "
                f"they do not fit Python {python} on {arch}. Use pip (the default) instead.")
    compiler: str | None = None
    if bytecode is not False:
        if interpreter is not None:
            if shutil.which(interpreter) is None:  # a path that is not there, a name not on PATH
                raise LayerError(f"--interpreter {interpreter}: no such executable (give a CPython {python})")
            if (found := interpreter_version(interpreter)) != python:
                what = f"CPython {found}" if found else "not a CPython that runs"
                raise LayerError(f"--interpreter {interpreter} is {what}, not a CPython {python}")
            compiler = interpreter
        else:
            compiler = find_interpreter(python)
        if compiler is None and bytecode:
            raise LayerError(f"--compile needs a Python {python} on this machine (or --interpreter PATH)")
        if compiler is None:
            sys.stderr.write(_no_interpreter_warning(python))
    out = Path(output).resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="aruntime-layer-") as tmp:
        root = Path(tmp) / "layer"
        python_dir = root / "python"
        python_dir.mkdir(parents=True)
        _copy_aruntime(python_dir)
        if from_local:
            _copy_installed(deps, python_dir)
        else:
            wheels = Path(tmp) / "wheels"
            wheels.mkdir()
            _pip_download(deps, minor, arch, wheels, find_links)
            for wheel in sorted(wheels.glob("*.whl")):
                _unpack_wheel(wheel, python_dir)
        _check_clean(python_dir)
        if compiler is not None:
            _compile(python_dir, compiler)
        wrapper = root / WRAPPER_NAME
        wrapper.write_text(WRAPPER_SCRIPT)
        wrapper.chmod(0o755)
        _write_zip(root, out)
        contents = _dist_names(python_dir)
    compiled = f"bytecode by {compiler}" if compiler else "NO bytecode"
    print(f"built {out} ({out.stat().st_size // 1024} KiB) for Python {python} on {arch}, "
          f"{compiled}: {', '.join(contents)}", file=sys.stderr)
    return out


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="aruntime layer",
                                     description="Build a Lambda layer that runs aruntime on the "
                                                 "managed Python runtimes.")
    sub = parser.add_subparsers(dest="command", required=True)
    build = sub.add_parser(
        "build", help="build the layer zip",
        description="Build a layer zip: python/ (aruntime, h11, orjson) and /opt/"
                    f"{WRAPPER_NAME}. Deploy it with AWS_LAMBDA_EXEC_WRAPPER=/opt/{WRAPPER_NAME}.")
    here = f"{sys.version_info[0]}.{sys.version_info[1]}"
    build.add_argument("--python", default=here,
                       help=f"the function's Python runtime version, like 3.12 (default {here})")
    build.add_argument("--arch", choices=sorted(ARCHES), default=host_arch(),
                       help=f"the function's architecture (default {host_arch()})")
    build.add_argument("-o", "--output", default="aruntime-layer.zip",
                       help="zip to write (default aruntime-layer.zip)")
    source = build.add_mutually_exclusive_group()
    source.add_argument("--from-local", action="store_true",
                        help="copy h11 and orjson from this interpreter instead of pip download "
                             "(offline; only for this Python on this architecture)")
    source.add_argument("--find-links", metavar="DIR",
                        help="take wheels from DIR only (pip --no-index --find-links DIR)")
    build.add_argument("--fast", action="store_true",
                       help="also ship httptools, the faster HTTP parser, and uvloop (the `fast` extra)")
    build.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None,
                       help="ship bytecode, compiled by a Python of the --python version (default: "
                            "when one is found on PATH, in pyenv or uv, /usr/local/bin or /usr/bin; "
                            "a loud warning otherwise). --compile makes a missing one an error")
    build.add_argument("--interpreter", metavar="PATH",
                       help="the Python (of the --python version) that compiles the bytecode")
    return parser


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    try:
        build_layer(args.output, python=args.python, arch=args.arch, from_local=args.from_local,
                    find_links=args.find_links, bytecode=args.compile, fast=args.fast,
                    interpreter=args.interpreter)
    except LayerError as e:
        print(f"aruntime layer: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # the output's folder cannot be made or written, a disk is full...
        print(f"aruntime layer: cannot write {args.output}: {e.strerror or e}", file=sys.stderr)
        return 1
    return 0
