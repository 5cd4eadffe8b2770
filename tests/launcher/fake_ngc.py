"""A recording stand-in for the ``ngc`` CLI (installed on PATH as ``ngc`` by the tests).

Every call is appended to ``$FAKE_NGC_DIR/calls.jsonl``. ``batch run ... --commandline CL`` starts
``bash -c CL`` in the background (its own session) as job N and prints ``{"id": N, ...}``;
``batch info N --format_type json`` prints ``{"id": N, "jobStatus": {"status": ..., "exitCode": ...}}``;
``batch kill N`` stops the job's process group.
"""

import json
import os
import signal
import subprocess
import sys

state = os.environ["FAKE_NGC_DIR"]
args = sys.argv[1:]
with open(os.path.join(state, "calls.jsonl"), "a") as f:
    f.write(json.dumps(args) + "\n")


def job_dir(job_id: str) -> str:
    return os.path.join(state, "jobs", job_id)


if args[:2] == ["batch", "run"]:
    if "--fail" in args:
        print("Error: fake submission failure", file=sys.stderr)
        sys.exit(1)
    commandline = args[args.index("--commandline") + 1]
    os.makedirs(os.path.join(state, "jobs"), exist_ok=True)
    job_id = str(1000 + len(os.listdir(os.path.join(state, "jobs"))))
    os.makedirs(job_dir(job_id))
    rc_file = os.path.join(job_dir(job_id), "rc")
    with open(os.path.join(job_dir(job_id), "joblog.log"), "wb") as log:
        proc = subprocess.Popen(
            [
                "bash",
                "-c",
                'bash -c "$1"; echo $? > "$2.tmp"; mv "$2.tmp" "$2"',
                "wrapper",
                commandline,
                rc_file,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    with open(os.path.join(job_dir(job_id), "pid"), "w") as f:
        f.write(str(proc.pid))
    print(json.dumps({"id": int(job_id), "jobStatus": {"status": "CREATED"}}))
elif args[:2] == ["batch", "info"]:
    d = job_dir(args[2])
    if os.path.exists(os.path.join(d, "killed")):
        status, code = "KILLED_BY_USER", None
    elif os.path.exists(os.path.join(d, "rc")):
        code = int(open(os.path.join(d, "rc")).read())
        status = "FINISHED_SUCCESS" if code == 0 else "FAILED"
    else:
        status, code = "RUNNING", None
    job_status = {"status": status} if code is None else {"status": status, "exitCode": code}
    print(json.dumps({"id": int(args[2]), "jobStatus": job_status}))
elif args[:2] == ["batch", "kill"]:
    d = job_dir(args[2])
    open(os.path.join(d, "killed"), "w").close()
    try:
        os.killpg(int(open(os.path.join(d, "pid")).read()), signal.SIGTERM)
    except ProcessLookupError:
        pass
    print(f"Job {args[2]} killed")
else:
    print(f"fake ngc: unsupported call {args}", file=sys.stderr)
    sys.exit(2)
