"""A tiny stand-in for a training run, used by the launcher tests.

It writes its argv (without the interpreter) and a few environment variables as JSON to
``<train_dir>/<experiment>/argv.json`` (read from ``--train_dir=`` / ``--experiment=``, argparse style),
prints a line, and then behaves as its own options say:
``--sleep=S`` sleep S seconds; ``--exit_code=N`` exit with N; ``--spawn=1`` start a grandchild
``sleep 300`` and write its pid to ``grandchild.pid``; ``--fail_until_attempt=K`` exit 3 while
``$POPTRAIN_LAUNCH_ATTEMPT`` < K.
"""

import json
import os
import subprocess
import sys
import time


def option(name: str, default: str = "") -> str:
    for arg in sys.argv[1:]:
        if arg.startswith(f"--{name}="):
            return arg.split("=", 1)[1]
    return default


out_dir = os.path.join(option("train_dir"), option("experiment"))
os.makedirs(out_dir, exist_ok=True)
record = {
    "argv": sys.argv[1:],
    "cwd": os.getcwd(),
    "pid": os.getpid(),
    "env": {
        k: os.environ.get(k) for k in ("CUDA_VISIBLE_DEVICES", "POPTRAIN_LAUNCH_ATTEMPT", "POPTRAIN_TEST_ENV")
    },
}
with open(os.path.join(out_dir, "argv.json.tmp"), "w") as f:
    json.dump(record, f)
os.replace(os.path.join(out_dir, "argv.json.tmp"), os.path.join(out_dir, "argv.json"))
print(f"child {option('experiment')} started", flush=True)
if option("spawn"):
    grandchild = subprocess.Popen(["sleep", "300"])
    with open(os.path.join(out_dir, "grandchild.pid"), "w") as f:
        f.write(str(grandchild.pid))
if int(os.environ.get("POPTRAIN_LAUNCH_ATTEMPT", "1")) < int(option("fail_until_attempt", "0")):
    print("child crashing on purpose", flush=True)
    sys.exit(3)
time.sleep(float(option("sleep", "0")))
print(f"child {option('experiment')} done", flush=True)
sys.exit(int(option("exit_code", "0")))
