#!/usr/bin/env bash
# Make the wheelhouse the GPU check installs from: the wheels the device image lacks, for CPython 3.12 on
# x86-64 Linux, plus poptrain's own wheel, in a git-ignored folder that travels with the working tree.
#
#   bash scripts/gpu-wheelhouse.sh [DEST]        # DEST defaults to .whl (ignored by .gitignore)
#
# The device image already holds CUDA torch 2.11, jax/jaxlib with the CUDA plugin, numpy, scipy, matplotlib,
# tensorboard, rich, pyyaml, flax, optax, orbax, etils, absl-py, lxml, protobuf, psutil, packaging, ...
# (the device notes' KINDS.md lists them); nothing can be fetched there. So this list is what poptrain's runtime
# imports (poptrain.train, launcher, report, tasks.playground, mujoco_playground's CheetahRun, traced with an
# import hook on the CPU venv) and the image lacks: never torch, jax, jaxlib or a jax plugin (the image's own
# must be used, not replaced), and nothing only an optional path imports (warp-lang: ~390 MB installed; the
# adapter picks MJX's jax implementation without it; mujoco-studio: the GUI, 34 MB; pygame, glfw, mediapy,
# watchdog, setproctitle). Versions are those the CPU test suite runs with.
#
# The device installs everything with --no-deps from this folder only (scripts/gpu-check.sh), so pip never
# resolves (and never downloads or replaces) torch or jax:
#   python3 -m pip install --no-index --find-links .whl --no-deps --target /tmp/site -r .whl/requirements.txt
set -euo pipefail
cd "$(dirname "$0")/.."
# pip's notes about find-links folders of this machine's own configuration that do not exist: noise here
exec 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
DEST=${1:-.whl}
PY=${PY:-.venv/bin/python} # the Makefile's venv: pip and setuptools>=77 (builds poptrain's wheel)
[ -x "$PY" ] || PY=python3
if ! "$PY" -c 'import setuptools, sys; sys.exit(int(setuptools.__version__.split(".")[0]) < 77)' 2>/dev/null; then
    echo "[wheelhouse] $PY lacks setuptools>=77 (needed to build poptrain's wheel offline); make setup, or set PY=" >&2
    exit 2
fi
LIMIT_MIB=64 # tree + carried folders, per call (device notes)

BINARY=(
    rl-games==1.6.5 tensorboardX==2.6.5                         # rl_games imports tensorboardX at import
    hydra-core==1.3.8 omegaconf==2.3.1                          # config composition
    gymnasium==1.4.0 farama-notifications==0.0.6                # spaces (rl_games, tasks)
    mujoco==4.0.0 mujoco-core==4.0.0                            # MuJoCo 4 = bindings + core library
    mujoco-mjx==3.17.0 trimesh==5.2.0                           # MJX; mjx imports trimesh at import
    playground==0.2.0 brax==0.14.2 jaxopt==0.8.5 ml-collections==1.1.0
)
# Only an sdist on PyPI: built here into a pure-Python (py3-none-any) wheel.
SDIST_ONLY=(antlr4-python3-runtime==4.9.3)
# manylinux tags pip must accept for a cp312 x86-64 target (pip matches N exactly; mujoco-core uses 2_27/2_28).
PLATFORMS=(manylinux_2_17_x86_64 manylinux2014_x86_64 manylinux_2_24_x86_64 manylinux_2_27_x86_64
    manylinux_2_28_x86_64 manylinux_2_31_x86_64 manylinux_2_34_x86_64 manylinux_2_35_x86_64 manylinux1_x86_64)

mkdir -p "$DEST"
rm -f "$DEST"/poptrain-*.whl # one version of each: two would stop the install
platform_args=()
for p in "${PLATFORMS[@]}"; do platform_args+=(--platform "$p"); done

echo "[wheelhouse] downloading ${#BINARY[@]} wheels for cp312 x86-64 into $DEST"
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --abi cp312 --abi abi3 --abi none "${platform_args[@]}" -d "$DEST" "${BINARY[@]}"
echo "[wheelhouse] building ${SDIST_ONLY[*]} (sdist only) into a py3-none-any wheel"
"$PY" -m pip wheel -q --no-deps -w "$DEST" "${SDIST_ONLY[@]}"
echo "[wheelhouse] building poptrain's own wheel"
had_build=$([ -e build ] && echo 1 || echo 0)
"$PY" -m pip wheel -q --no-deps --no-build-isolation -w "$DEST" .
[ "$had_build" = 1 ] || rm -rf build # setuptools' scratch folder (not ignored: it must not travel)

# The pinned list the device installs (one line per wheel: name==version from the file name).
version=$("$PY" -c 'import tomllib; print(tomllib.load(open("pyproject.toml", "rb"))["project"]["version"])')
{
    printf '%s\n' "${BINARY[@]}" "${SDIST_ONLY[@]}"
    echo "poptrain==$version"
} >"$DEST/requirements.txt"
{
    echo "commit $(git rev-parse HEAD 2>/dev/null || echo unknown)$(git diff --quiet 2>/dev/null || echo ' (dirty)')"
    echo "built $(date -u +%Y-%m-%dT%H:%M:%SZ)"
} >"$DEST/BUILD-INFO"

# Every pinned name must have exactly one wheel here (a missing one fails on the device, offline).
"$PY" - "$DEST" <<'EOF'
import re, sys
from pathlib import Path
dest = Path(sys.argv[1])
wheels = [w.name for w in dest.glob("*.whl")]
norm = lambda s: re.sub(r"[-_.]+", "_", s).lower()
bad = []
for line in (dest / "requirements.txt").read_text().split():
    name, version = line.split("==")
    hits = [w for w in wheels if [norm(w.split("-")[0]), w.split("-")[1]] == [norm(name), version]]
    if len(hits) != 1:
        bad.append(f"{line}: {hits or 'no wheel'}")
if bad:
    sys.exit("[wheelhouse] " + "; ".join(bad))
EOF

# The device's install, rehearsed here for a cp312 x86-64 target: offline, no dependency resolution, one
# --target folder (mujoco and mujoco-core both fill mujoco/; poptrain's wheel must carry its cfg YAML).
rehearsal=$(mktemp -d)
trap 'rm -rf "$rehearsal"' EXIT
"$PY" -m pip install -q --no-index --find-links "$DEST" --no-deps --no-compile --target "$rehearsal" \
    --python-version 3.12 --implementation cp --abi cp312 --abi abi3 --abi none --only-binary=:all: \
    "${platform_args[@]}" -r "$DEST/requirements.txt"
for f in mujoco/__init__.py mujoco/libmujoco.so.4.0.0 poptrain/cfg/config.yaml poptrain/cfg/task/AcrobotHard.yaml \
    mujoco_playground/__init__.py rl_games/torch_runner.py hydra/__init__.py; do
    [ -e "$rehearsal/$f" ] || { echo "[wheelhouse] rehearsed install lacks $f" >&2; exit 1; }
done
echo "[wheelhouse] rehearsed the offline --no-deps install for cp312: $(du -sh "$rehearsal" | cut -f1) installed"

wheels_bytes=$(du -cb "$DEST"/*.whl | tail -1 | cut -f1)
tree_bytes=$(git ls-files -z --cached --others --exclude-standard | du -cb --files0-from=- 2>/dev/null | tail -1 | cut -f1)
total=$((wheels_bytes + tree_bytes))
mib() { awk -v b="$1" 'BEGIN { printf "%.1f MiB", b / 1048576 }'; }
echo "[wheelhouse] $(ls "$DEST"/*.whl | wc -l) wheels, $(mib "$wheels_bytes"); working tree $(mib "$tree_bytes");" \
    "together $(mib "$total") of the ${LIMIT_MIB} MiB that may travel"
if [ "$total" -gt $((LIMIT_MIB * 1048576)) ]; then
    echo "[wheelhouse] too big to travel: drop wheels or carry less" >&2
    exit 1
fi
