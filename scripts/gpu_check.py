"""The prepared GPU check (run by scripts/gpu-check.sh): install, gpu tests, GPU figures, in one bounded run.

    bash scripts/gpu-check.sh                   # on the GPU machine; writes $OUT/{gpu-check.log,figures.json,...}
    bash scripts/gpu-check.sh --cpu-dry-run     # here and in CI: the same steps on the CPU with tiny sizes

Parts, in order of importance (a part that cannot finish in time is cut, the next one still runs):

| part        | what it measures                                                                |
|-------------|----------------------------------------------------------------------------------|
| install     | the wheelhouse installs offline (--no-index --no-deps: pip never resolves torch) |
| environment | GPU, driver, CUDA, torch/jax versions, the installed wheels -> environment.json  |
| tests       | ``pytest -m gpu tests/gpu`` -> junit.xml                                         |
| throughput  | benchmarks/throughput.py at 4,096/16,384/65,536 envs: (a), (b), (c), b/c         |
| playground  | benchmarks/playground.py CheetahRun at 4,096 envs: adapter vs raw steps/s        |
| pbt_overhead| benchmarks/pbt_overhead.py: bookkeeping share, one iteration's cost, hot swap and |
|             | restart latency, members on the GPU                                              |
| population  | AcrobotHard, 4 members on one GPU (--num_gpus 1 --experiments_per_gpu 4)         |

Every part runs in its own process group with its own timeout, and the whole run has one deadline
(``DEADLINE_S``): a part gets ``min(its timeout, time left)`` and is killed (TERM, then KILL) when it runs over.
$OUT receives at most 4 files, none in a folder: gpu-check.log (every part's output), figures.json (status,
time and figures of every part; rewritten after each part), environment.json and junit.xml. The device returns
at most 8 files of 16 MiB each, no more than 2 folders down; the end of the run checks that and says so.

In the dry run every size is tiny, the install step builds a local wheelhouse (poptrain's own wheel, nothing
downloaded) and installs it offline into a temp folder, the gpu tests are collected and skipped (no CUDA), and
the Playground part gets 3 s on purpose: a JAX compile takes longer on a CPU, so it proves that a part over its
timeout is killed, recorded as ``timeout`` and that the check goes on (``expect_timeout``).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DEADLINE_S = 400.0  # the whole check, install included: 20 s under the 7 minutes it must fit in
OUT_LIMITS = {"files": 8, "bytes": 16 * 1024 * 1024, "depth": 2}  # what the device returns
NAME_OK = re.compile(r"^[A-Za-z0-9._-]+$")
LOG_NAME, FIGURES_NAME, ENV_NAME, JUNIT_NAME = (
    "gpu-check.log",
    "figures.json",
    "environment.json",
    "junit.xml",
)


@dataclass
class Sizes:
    """Every size the parts use; GPU and dry-run values below."""

    device: str  #: torch device of every part
    throughput_envs: tuple[int, ...]  #: env counts of benchmarks/throughput.py
    throughput_epochs: int  #: epochs per run (the first ``throughput_warmup`` are not timed)
    throughput_warmup: int
    playground_task: str  #: Playground registry name
    playground_envs: int
    playground_steps: int  #: raw steps timed
    playground_epochs: int  #: rl_games epochs of the adapter figure
    pbt_parts: str  #: parts of benchmarks/pbt_overhead.py
    pbt_members: int
    pbt_epochs: int
    pbt_envs: int
    pop_members: int  #: AcrobotHard population
    pop_envs: int
    pop_epochs: int


GPU = Sizes(
    device="cuda",
    throughput_envs=(4096, 16384, 65536),
    throughput_epochs=12,
    throughput_warmup=4,
    playground_task="CheetahRun",
    playground_envs=4096,
    playground_steps=100,
    playground_epochs=6,
    pbt_parts="bac",  # b (synthetic, cheap) first: it reports even if a member of (a)/(c) fails
    pbt_members=4,
    pbt_epochs=40,
    pbt_envs=4096,
    pop_members=4,
    pop_envs=4096,
    pop_epochs=50,
)
DRY = Sizes(
    device="cpu",
    throughput_envs=(64,),
    throughput_epochs=3,
    throughput_warmup=1,
    playground_task="CartpoleBalance",
    playground_envs=16,
    playground_steps=5,
    playground_epochs=2,
    pbt_parts="b",
    pbt_members=2,
    pbt_epochs=2,
    pbt_envs=32,
    pop_members=2,
    pop_envs=32,
    pop_epochs=2,
)


@dataclass
class Part:
    name: str
    argv: list[str]
    expected_s: float  #: what it should take (printed up front; the GPU values are estimates until measured)
    timeout_s: float
    env: dict[str, str] = field(default_factory=dict)
    expect_timeout: bool = False  #: dry run only: the part is meant to be cut (proves the timeout path)
    status: str = "pending"  #: ok | failed | timeout | skipped
    rc: int | None = None
    wall_s: float | None = None
    note: str = ""


# ---- the parts --------------------------------------------------------------------------------------------
def install_argv(py: str, wheelhouse: Path, site: Path) -> list[str]:
    """Offline, from the wheelhouse only, no dependency resolution (pip never looks at torch or jax), into
    ``site`` (put first on PYTHONPATH: the image's own packages stay as they are)."""
    return [
        py,
        "-m",
        "pip",
        "install",
        "-q",
        "--no-index",
        "--find-links",
        str(wheelhouse),
        "--no-deps",
        "--no-compile",
        "--no-cache-dir",
        "--target",
        str(site),
        "-r",
        str(wheelhouse / "requirements.txt"),
    ]


def local_install(wheelhouse: Path, site: Path) -> int:
    """Dry run's install: build poptrain's wheel into a fresh wheelhouse, pin it, install it like the GPU run."""
    import tomllib

    wheelhouse.mkdir(parents=True, exist_ok=True)
    build = [
        sys.executable,
        "-m",
        "pip",
        "wheel",
        "-q",
        "--no-deps",
        "--no-build-isolation",
        "-w",
        str(wheelhouse),
        str(ROOT),
    ]
    had_build = (ROOT / "build").exists()
    subprocess.run(build, check=True)
    if not had_build:  # setuptools' scratch folder in the tree (not git-ignored: it must not travel)
        shutil.rmtree(ROOT / "build", ignore_errors=True)
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    (wheelhouse / "requirements.txt").write_text(f"poptrain=={version}\n")
    print("wheelhouse:", ", ".join(sorted(p.name for p in wheelhouse.iterdir())), flush=True)
    install = install_argv(sys.executable, wheelhouse, site)
    print("$", " ".join(install), flush=True)
    return subprocess.run(install, check=False).returncode


def population_module(sizes: Sizes) -> str:
    """A RUN_DESCRIPTION module: AcrobotHard members sharing one GPU (the acrobot_pbt experiment, resized)."""
    return (
        "import sys\n"
        "from poptrain.experiments.acrobot_pbt import member_overrides\n"
        "from poptrain.launcher.run_description import Experiment, ParamList, RunDescription\n\n"
        f"N = {int(sizes.pop_members)!r}\n"
        f"OVERRIDES = member_overrides(num_policies=N, epochs={int(sizes.pop_epochs)!r}, "
        f"num_envs={int(sizes.pop_envs)!r})\n"
        f"OVERRIDES += ['rl_device={sizes.device}', 'sim_device={sizes.device}']\n"
        "RUN_DESCRIPTION = RunDescription(\n"
        "    'gpu_check_acrobot',\n"
        "    experiments=[Experiment('acrobot', [sys.executable, '-m', 'poptrain.train', *OVERRIDES],\n"
        "        ParamList([{'pbt.policy_idx': i, 'seed': i + 1} for i in range(N)]).generate_params(False))],\n"
        "    experiment_arg_name='experiment', experiment_dir_arg_name='train_dir', param_prefix='',\n"
        "    customize_experiment_name=False,\n"
        ")\n"
    )


def plan(dry: bool, py: str, work: Path, site: Path, wheelhouse: Path, out: Path) -> list[Part]:
    s = DRY if dry else GPU
    if (
        dry
    ):  # a local wheelhouse (poptrain's own wheel, built here: nothing downloaded), then the same install
        install = [py, __file__, "--local-install", str(wheelhouse), str(site)]
    else:
        install = install_argv(py, wheelhouse, site)
    module_dir = work / "modules"
    module_dir.mkdir(parents=True, exist_ok=True)
    (module_dir / "gpu_check_acrobot.py").write_text(population_module(s))
    pop_dir = work / "acrobot"
    parts = [
        Part("install", install, expected_s=10 if dry else 15, timeout_s=120 if dry else 90),
        Part("environment", [py, __file__, "--describe", str(out / ENV_NAME), str(wheelhouse)], 5, 60),
        Part(
            "tests",
            [
                py,
                "-m",
                "pytest",
                "-q",
                "-rs",
                "-m",
                "gpu",
                "tests/gpu",
                "-p",
                "no:cacheprovider",
                "--timeout",
                "150",
                f"--junitxml={out / JUNIT_NAME}",
            ],
            expected_s=5 if dry else 110,
            timeout_s=120 if dry else 180,
        ),
        Part(
            "throughput",
            [
                py,
                "benchmarks/throughput.py",
                "--device",
                s.device,
                "--envs",
                *map(str, s.throughput_envs),
                "--epochs",
                str(s.throughput_epochs),
                "--warmup",
                str(s.throughput_warmup),
                "--rounds",
                "1",
                "--json",
                str(work / "throughput.json"),
            ],
            expected_s=12 if dry else 45,
            timeout_s=120 if dry else 100,
        ),
        Part(
            "playground",
            [
                py,
                "benchmarks/playground.py",
                "--task",
                s.playground_task,
                "--num-envs",
                str(s.playground_envs),
                "--device",
                "cpu" if dry else "cuda:0",
                "--steps",
                str(s.playground_steps),
                "--epochs",
                str(s.playground_epochs),
                "--repeats",
                "1",
                "--no-startup",
                "--json",
                str(work / "playground.json"),
            ],
            expected_s=3 if dry else 75,
            timeout_s=3 if dry else 110,
            expect_timeout=dry,
        ),
        Part(
            "pbt_overhead",
            [
                py,
                "benchmarks/pbt_overhead.py",
                "--parts",
                s.pbt_parts,
                "--sizes",
                "4" if dry else "8,64",
                "--repeats",
                "1" if dry else "5",
                "--json",
                str(work / "pbt_overhead.json"),
            ],
            expected_s=3 if dry else 60,
            timeout_s=60 if dry else 90,
            env={
                "PBT_BENCH_DEVICE": s.device,
                "PBT_BENCH_MEMBERS": str(s.pbt_members),
                "PBT_BENCH_EPOCHS": str(s.pbt_epochs),
                "PBT_BENCH_ENVS": str(s.pbt_envs),
            },
        ),
        Part(
            "population",
            [
                py,
                "-m",
                "poptrain.launcher.run",
                "--run",
                "gpu_check_acrobot",
                "--backend",
                "processes",
                "--train_dir",
                str(pop_dir),
                "--pause_between",
                "0",
                "--max_parallel",
                str(s.pop_members),
                "--num_gpus",
                "1",
                "--experiments_per_gpu",
                str(s.pop_members),
            ],
            expected_s=15 if dry else 35,
            timeout_s=120 if dry else 70,
            env={"PYTHONPATH": str(module_dir)},
        ),
    ]
    return parts


# ---- running a part ---------------------------------------------------------------------------------------
class Log:
    """Every line goes to $OUT/gpu-check.log and to stdout (the device returns the tail of stdout)."""

    def __init__(self, path: Path):
        self.file = open(path, "a", encoding="utf-8", errors="replace")
        self.lock = threading.Lock()

    def line(self, text: str) -> None:
        with self.lock:
            self.file.write(text + "\n")
            self.file.flush()
            sys.stdout.write(text + "\n")
            sys.stdout.flush()


def run_part(part: Part, env: dict[str, str], log: Log, deadline: float) -> None:
    left = deadline - time.monotonic()
    budget = min(part.timeout_s, left)
    if budget < 2:
        part.status, part.note = "skipped", f"no time left before the {DEADLINE_S:.0f} s deadline"
        log.line(f"== {part.name}: skipped ({part.note})")
        return
    log.line(f"== {part.name}: expected ~{part.expected_s:.0f} s, timeout {budget:.0f} s")
    log.line("   $ " + " ".join(part.argv))
    started = time.monotonic()
    proc = subprocess.Popen(
        part.argv,
        cwd=ROOT,
        env={**env, **merge_pythonpath(env, part.env)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
        text=True,
        errors="replace",
    )
    assert proc.stdout is not None
    reader = threading.Thread(
        target=lambda: [log.line(f"   {ln.rstrip()}") for ln in proc.stdout], daemon=True
    )
    reader.start()
    try:
        part.rc = proc.wait(timeout=budget)
        part.status = "ok" if part.rc == 0 else "failed"
    except subprocess.TimeoutExpired:
        stop_group(proc)
        part.status, part.rc = "timeout", proc.returncode
        part.note = f"killed after {budget:.0f} s" + (
            " (expected in the dry run)" if part.expect_timeout else ""
        )
    reader.join(timeout=10)
    part.wall_s = round(time.monotonic() - started, 2)
    log.line(f"== {part.name}: {part.status} rc={part.rc} in {part.wall_s:.1f} s {part.note}".rstrip())


def stop_group(proc: subprocess.Popen) -> None:
    """TERM the part's whole process group (members, launcher children), KILL what is left after 5 s."""
    for sig, grace in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=grace)
            return
        except subprocess.TimeoutExpired:
            continue


def merge_pythonpath(base: dict[str, str], extra: dict[str, str]) -> dict[str, str]:
    merged = dict(extra)
    if "PYTHONPATH" in extra:
        merged["PYTHONPATH"] = os.pathsep.join(
            p for p in (extra["PYTHONPATH"], base.get("PYTHONPATH", "")) if p
        )
    return merged


# ---- figures ----------------------------------------------------------------------------------------------
def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def junit_counts(path: Path) -> dict[str, int] | None:
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError):
        return None
    suite = root if root.tag == "testsuite" else root.find("testsuite")
    if suite is None:
        return None
    counts = {k: int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")}
    counts["passed"] = counts["tests"] - counts["failures"] - counts["errors"] - counts["skipped"]
    return counts


def population_figures(py: str, env: dict[str, str], pop_dir: Path) -> Any:
    run_dir = pop_dir / "gpu_check_acrobot" / "acrobot"
    if not run_dir.is_dir():
        return None
    proc = subprocess.run(
        [py, "-m", "poptrain.cli", "status", str(run_dir), "--json"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    try:
        status = json.loads(proc.stdout)
    except ValueError:
        return {"error": (proc.stderr or proc.stdout)[-500:]}
    members = status.get("members", [])
    return {
        "best": status.get("best"),
        "verdict": status.get("verdict"),
        "exploits": sum(int(m.get("exploits") or 0) for m in members),
        "restarts": sum(int(m.get("restarts") or 0) for m in members),
        "members": [
            {k: m.get(k) for k in ("member", "objective", "frames", "state", "exploits")} for m in members
        ],
    }


def check_out(out: Path) -> list[str]:
    """Problems with what $OUT holds against the device's return limits (empty: it all comes back)."""
    problems = []
    files = [p for p in out.rglob("*") if p.is_file()]
    if len(files) > OUT_LIMITS["files"]:
        problems.append(f"{len(files)} files under $OUT; at most {OUT_LIMITS['files']} come back")
    for p in files:
        rel = p.relative_to(out)
        if len(rel.parts) - 1 > OUT_LIMITS["depth"]:
            problems.append(f"{rel}: more than {OUT_LIMITS['depth']} folders down")
        if not all(NAME_OK.match(x) for x in rel.parts):
            problems.append(f"{rel}: a name with characters other than letters, digits, '.', '_', '-'")
        if p.stat().st_size > OUT_LIMITS["bytes"]:
            problems.append(f"{rel}: {p.stat().st_size} bytes, over {OUT_LIMITS['bytes']}")
    return problems


def write_figures(path: Path, data: dict[str, Any]) -> None:
    from poptrain.checkpoints import atomic_write

    text = json.dumps(data, indent=1, default=str, allow_nan=True).encode()
    atomic_write(path, lambda f: f.write(text))


# ---- environment description (run as its own part, under the installed PYTHONPATH) ---------------------------
def describe(path: Path, wheelhouse: Path) -> int:
    import importlib.metadata as md
    import platform

    info: dict[str, Any] = {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
    }
    build = wheelhouse / "BUILD-INFO"
    info["wheelhouse"] = build.read_text().splitlines() if build.is_file() else []
    try:
        info["commit"] = (
            subprocess.run(
                ["git", "rev-parse", "HEAD"],
                cwd=ROOT,
                capture_output=True,
                text=True,
                timeout=10,
                check=False,
            ).stdout.strip()
            or None
        )
    except OSError:
        info["commit"] = None
    import torch

    info["torch"] = {
        "version": torch.__version__,
        "cuda": torch.version.cuda,
        "available": torch.cuda.is_available(),
    }
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        info["torch"].update(
            device=props.name,
            capability=f"{props.major}.{props.minor}",
            memory_gib=round(props.total_memory / 2**30, 1),
            sms=props.multi_processor_count,
            cudnn=torch.backends.cudnn.version(),
        )
    try:
        import jax

        info["jax"] = {"version": jax.__version__, "devices": [str(d) for d in jax.devices()]}
    except Exception as exc:  # noqa: BLE001 - any failure is the finding
        info["jax"] = {"error": f"{type(exc).__name__}: {exc}"}
    smi = shutil.which("nvidia-smi")
    if smi:
        query = "name,driver_version,memory.total,clocks.max.sm,power.limit"
        res = subprocess.run(
            [smi, f"--query-gpu={query}", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        info["nvidia_smi"] = res.stdout.strip() or res.stderr.strip()
    names = [
        "torch",
        "jax",
        "jaxlib",
        "jax-cuda13-plugin",
        "jax-cuda13-pjrt",
        "numpy",
        "scipy",
        "flax",
        "optax",
    ]
    req = wheelhouse / "requirements.txt"
    if req.is_file():
        names += [line.split("==")[0] for line in req.read_text().split()]
    versions: dict[str, str | None] = {}
    for name in names:
        try:
            versions[name] = md.version(name)
        except md.PackageNotFoundError:
            versions[name] = None
    info["packages"] = versions
    import poptrain  # the installed wheel (this mode never puts src/ on sys.path)
    from poptrain.checkpoints import atomic_write

    info["poptrain_from"] = str(Path(poptrain.__file__).parent)
    text = json.dumps(info, indent=1).encode()
    atomic_write(path, lambda f: f.write(text))
    print(json.dumps(info, indent=1))
    return 0


# ---- main -------------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cpu-dry-run", action="store_true", help="tiny sizes on the CPU, local wheelhouse")
    ap.add_argument("--out", default=os.environ.get("OUT", ""), help="result folder (default: $OUT)")
    ap.add_argument("--wheelhouse", default=str(ROOT / ".whl"), help="wheels + requirements.txt (GPU run)")
    ap.add_argument("--describe", nargs=2, metavar=("PATH", "WHEELHOUSE"), help=argparse.SUPPRESS)
    ap.add_argument("--local-install", nargs=2, metavar=("WHEELHOUSE", "SITE"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.describe:
        return describe(Path(args.describe[0]), Path(args.describe[1]))
    if args.local_install:
        return local_install(Path(args.local_install[0]), Path(args.local_install[1]))
    if not args.out:
        ap.error("--out DIR or $OUT: where the result files go")
    # The driver's own writes use the tree's atomic_write; every part runs the installed wheel (PYTHONPATH).
    sys.path.insert(0, str(ROOT / "src"))
    dry = args.cpu_dry_run
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    deadline = started + DEADLINE_S
    work = Path(tempfile.mkdtemp(prefix="gpu-check-"))
    site = work / "site"
    (work / "tmp").mkdir()
    wheelhouse = work / "wheelhouse" if dry else Path(args.wheelhouse).resolve()
    if not dry and not (wheelhouse / "requirements.txt").is_file():
        print(
            f"error: no wheelhouse at {wheelhouse} (make it with bash scripts/gpu-wheelhouse.sh; carry .whl)",
            file=sys.stderr,
        )
        return 2
    py = sys.executable
    parts = plan(dry, py, work, site, wheelhouse, out)
    env = dict(
        os.environ,
        PYTHONPATH=str(site),
        PYTHONUNBUFFERED="1",
        MPLBACKEND="Agg",
        XLA_PYTHON_CLIENT_PREALLOCATE="false",
        JAX_COMPILATION_CACHE_DIR=str(work / "jax_cache"),
        TORCHINDUCTOR_CACHE_DIR=str(work / "inductor"),
        # the parts' own temp folders land in the work folder, which goes at the end even when a part is killed
        # before its cleanup ran (the dry run's Playground part is)
        TMPDIR=str(work / "tmp"),
    )
    log = Log(out / LOG_NAME)
    mode = "cpu-dry-run" if dry else "gpu"
    log.line(f"gpu-check ({mode}): {len(parts)} parts, deadline {DEADLINE_S:.0f} s, results in {out}")
    log.line(f"{'part':<13} {'expected s':>10} {'timeout s':>10}")
    for p in parts:
        log.line(f"{p.name:<13} {p.expected_s:>10.0f} {p.timeout_s:>10.0f}")
    log.line(
        f"{'sum':<13} {sum(p.expected_s for p in parts):>10.0f} {sum(p.timeout_s for p in parts):>10.0f}"
        f"  (the deadline caps the total at {DEADLINE_S:.0f} s)"
    )
    figures: dict[str, Any] = {"mode": mode, "deadline_s": DEADLINE_S, "sizes": asdict(DRY if dry else GPU)}

    def record() -> None:
        figures["parts"] = [{k: v for k, v in asdict(p).items() if k not in ("env",)} for p in parts]
        figures["elapsed_s"] = round(time.monotonic() - started, 2)
        write_figures(out / FIGURES_NAME, figures)

    try:
        for part in parts:
            if part.name != "install" and parts[0].status != "ok":
                part.status, part.note = "skipped", "install failed"
            else:
                run_part(part, env, log, deadline)
            if part.name == "tests":
                figures["tests"] = junit_counts(out / JUNIT_NAME)
            elif part.name in ("throughput", "playground", "pbt_overhead"):
                figures[part.name] = read_json(work / f"{part.name}.json")
            elif part.name == "population":
                figures["population"] = population_figures(py, env, work / "acrobot")
            record()
    finally:
        problems = check_out(out)
        figures["out_files"] = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
        figures["out_problems"] = problems
        record()
        shutil.rmtree(work, ignore_errors=True)
    bad = [p.name for p in parts if p.status != "ok" and not (p.expect_timeout and p.status == "timeout")]
    log.line(
        f"gpu-check ({mode}) done in {time.monotonic() - started:.0f} s; "
        f"{'all parts ok' if not bad else 'not ok: ' + ', '.join(bad)}; $OUT: {len(figures['out_files'])} files"
        + (f"; PROBLEMS: {problems}" if problems else "")
    )
    for p in parts:
        log.line(f"  {p.name:<13} {p.status:<8} {p.wall_s if p.wall_s is not None else '-':>7} s  {p.note}")
    return 0 if not bad and not problems else 1


if __name__ == "__main__":
    sys.exit(main())
