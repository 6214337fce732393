"""Generated code is hostile: what the model's test files can do when the bot runs them.

Each test scripts the model to write one hostile test file (or commits it in the repository),
runs the whole bot in-process (clone, sandbox, baseline, the model's edit, checks) and reads
what happened from run.json, including the evidence the hostile code reports in its own
failure. The check fails with a clear reason, the run ends with a recorded stop reason, and
the `bot` fixture fails the test if any container or volume is left behind.
"""

from __future__ import annotations

import ipaddress
import time
import uuid
from dataclasses import replace
from pathlib import Path

import docker
import pytest

from codebot import config as cfg
from codebot.runner import solve
from codebot.spec import spec_from_data
from codebot.workspace import Workspace
from tests.security.harness import (
    Bot,
    creates,
    evidence,
    host_listener,
    hostile_module,
    replaces,
    spec_fields,
    watch_host,
)
from tests.support.git_repos import git, make_repo

pytestmark = pytest.mark.docker

PASSING = {"test_ok.py": "def test_ok():\n    assert 1 + 1 == 2\n"}
MIB = 1 << 20


def repo_with(tmp_path: Path, files: dict[str, str] | None = None) -> Path:
    return make_repo(tmp_path / "repo", {**PASSING, **(files or {})})


def bridge_gateway(client: docker.DockerClient) -> str:
    """The host's docker0 address (older engines leave `Gateway` out: the subnet's first)."""
    ipam = client.networks.get("bridge").attrs["IPAM"]["Config"][0]
    return str(ipam.get("Gateway") or ipaddress.ip_network(ipam["Subnet"])[1])


# -- 1. fork bomb ---------------------------------------------------------------------------

FORK_BOMB = """
import os
import time


def cgroup(name):
    for path in ("/sys/fs/cgroup/pids/" + name, "/sys/fs/cgroup/" + name):  # v1, v2
        if os.path.exists(path):
            return open(path).read().strip()
    return None


def test_fork_bomb():
    if not ARMED:
        return
    os.system("b() { b | b & }; b")  # returns at once; the bomb goes on in the background
    report, deadline = {"refused": None, "forks": 0}, time.monotonic() + 8
    while time.monotonic() < deadline and not report["refused"]:
        try:
            pid = os.fork()
        except OSError as exc:
            report["refused"] = exc.strerror
            break
        if pid == 0:
            os._exit(0)  # never reaped: every child keeps its pid
        report["forks"] += 1
    report.update({"max": cgroup("pids.max"), "peak": cgroup("pids.peak")})
    raise AssertionError("EVIDENCE " + json.dumps(report))
"""


def test_fork_bomb_hits_the_pids_limit_and_the_host_and_the_run_carry_on(
    bot: Bot, tmp_path: Path, docker_client: docker.DockerClient
) -> None:
    bomb = hostile_module(FORK_BOMB, ARMED=True)
    bot.server.script(
        creates("test_bomb.py", bomb),
        replaces("test_bomb.py", "ARMED = True", "ARMED = False", "Disarm it."),
    )
    with watch_host(docker_client.info()["DockerRootDir"]) as host:
        run = bot.run(repo_with(tmp_path), spec_fields(max_iterations=2, timeout=20))

    check = run.iteration_test(1)
    assert not check["passed"] and check["reason"] == "1 test failed; the process limit was hit"
    report = evidence(check)
    assert report["refused"] == "Resource temporarily unavailable", report
    assert report["max"] == "256" and report["peak"] in ("256", None), report  # the default
    assert check["duration_s"] < 20
    assert host.samples > 5 and host.worst_spawn_s < 2.0
    # The sandbox is usable right after the bomb: the next iteration's checks pass.
    assert run.iteration_test(2)["passed"]
    assert run.record["stop_reason"] == "passed"


# -- 2. memory --------------------------------------------------------------------------------

MEMORY_HOG = """
def test_memory_hog():
    hog = bytearray(1 << 30)  # 1 GiB, every byte written
    raise AssertionError("EVIDENCE " + json.dumps({"allocated": len(hog)}))
"""


def test_allocating_past_the_memory_limit_is_killed_and_reported_as_out_of_memory(
    bot: Bot, tmp_path: Path
) -> None:
    bot.server.script(creates("test_hog.py", hostile_module(MEMORY_HOG)))
    run = bot.run(repo_with(tmp_path), spec_fields(), memory="128m", disk="32m", tmp_size="32m")

    check = run.iteration_test(1)
    assert not check["passed"]
    assert check["reason"] == "killed (out of memory?)"
    assert check["exit_code"] == 137
    assert run.record["stop_reason"] == "max_iterations"


# -- 3. disk ----------------------------------------------------------------------------------

DISK_FILLER = """
import os


def fill(directory):
    path = os.path.join(directory, "ballast.bin")
    written, error = 0, None
    try:
        with open(path, "wb", buffering=0) as out:
            while written < CAP:
                written += out.write(bytes(1 << 20))
    except OSError as exc:
        error = exc.strerror
    if os.path.exists(path):
        os.remove(path)  # leave room for pytest's own report
    return {"error": error, "mib": written >> 20, "fs": fs_type(directory)}


def fs_type(directory):
    mounts = [line.split() for line in open("/proc/self/mounts")]
    return max((m for m in mounts if directory.startswith(m[1])), key=lambda m: len(m[1]))[2]


def test_fill_the_disk():
    report = {"workspace": fill(os.getcwd()), "tmp": fill("/tmp")}
    raise AssertionError("EVIDENCE " + json.dumps(report, sort_keys=True))
"""


def test_filling_the_disk_stops_at_the_quota_and_never_touches_the_host_disk(
    bot: Bot, tmp_path: Path, docker_client: docker.DockerClient
) -> None:
    cap = 256 * MIB  # what the hostile code tries to write in each place
    bot.server.script(creates("test_fill.py", hostile_module(DISK_FILLER, CAP=cap)))
    with watch_host(docker_client.info()["DockerRootDir"], interval_s=0.02) as host:
        free_before = host.lowest_free_bytes
        run = bot.run(repo_with(tmp_path), spec_fields(), disk="32m", tmp_size="32m")

    check = run.iteration_test(1)
    assert not check["passed"] and check["reason"] == "1 test failed"
    report = evidence(check)
    for place in ("workspace", "tmp"):
        assert report[place]["error"] == "No space left on device", report
        assert report[place]["mib"] <= 32, report
        assert report[place]["fs"] == "tmpfs", report
    assert free_before - host.lowest_free_bytes < cap // 2
    assert run.record["stop_reason"] == "max_iterations"


# -- 4. running forever -------------------------------------------------------------------

RUNS_FOREVER = """
import signal
import subprocess
import time


def test_never_returns():
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # shrug off the polite kill
    subprocess.Popen(["sleep", "600"], start_new_session=True)  # and leave a child behind
    while True:
        time.sleep(1)
"""


@pytest.mark.timeout(90)
def test_code_that_never_returns_is_killed_at_the_spec_timeout(bot: Bot, tmp_path: Path) -> None:
    bot.server.script(creates("test_forever.py", hostile_module(RUNS_FOREVER)))
    started = time.monotonic()
    run = bot.run(repo_with(tmp_path), spec_fields(timeout=2))
    took = time.monotonic() - started

    check = run.iteration_test(1)
    assert not check["passed"]
    assert check["reason"] == "timed out after 2s"
    # 2 s, then SIGKILL 2 s after the ignored SIGTERM; never the 5 s watchdog behind it.
    assert 2 <= check["duration_s"] < 2 + 2 + 1.5
    assert run.record["stop_reason"] == "max_iterations"
    assert took < 30


# -- 5. network -------------------------------------------------------------------------------

PHONE_HOME = """
import os
import socket


def attempt(connect):
    try:
        connect()
        return "connected"
    except OSError as exc:
        return type(exc).__name__ + ": " + str(exc.strerror or exc)


def test_phone_home():
    report = {
        host: attempt(lambda host=host: socket.create_connection((host, PORT), timeout=3).close())
        for host in ("127.0.0.1", GATEWAY)
    }
    report["interfaces"] = sorted(os.listdir("/sys/class/net"))
    report["routes"] = open("/proc/net/route").read().splitlines()[1:]
    # A lookup sends a DNS query wherever resolv.conf points. Only try it with provably no
    # way out, so that even a broken sandbox never makes this test send a packet off-host.
    if report["interfaces"] == ["lo"] and not report["routes"]:
        report[NAME] = attempt(lambda: socket.getaddrinfo(NAME, 443))
    raise AssertionError("EVIDENCE " + json.dumps(report, sort_keys=True))
"""


def test_generated_code_reaches_no_host_listener_and_resolves_no_name(
    bot: Bot, tmp_path: Path, docker_client: docker.DockerClient
) -> None:
    gateway = bridge_gateway(docker_client)
    with host_listener() as listener:
        code = hostile_module(PHONE_HOME, PORT=listener.port, GATEWAY=gateway, NAME="pypi.org")
        bot.server.script(creates("test_phone_home.py", code))
        run = bot.run(repo_with(tmp_path), spec_fields())
        time.sleep(0.3)  # let a late connection show up in the log

    check = run.iteration_test(1)
    assert not check["passed"] and check["reason"] == "1 test failed; the sandbox has no network"
    report = evidence(check)
    assert report["127.0.0.1"].startswith("ConnectionRefusedError")  # the sandbox's own lo
    assert report[gateway] == "OSError: Network is unreachable"
    assert report["interfaces"] == ["lo"] and report["routes"] == []
    assert report["pypi.org"].startswith("gaierror"), report
    assert listener.log == []


# -- 6. secrets in the environment ----------------------------------------------------------

SECRET_HUNT = """
import glob
import os
import subprocess

SECRETS = {name: bytes.fromhex(value).decode() for name, value in HEX_SECRETS.items()}
CONTROL = bytes.fromhex(HEX_CONTROL).decode()


def test_find_the_secrets():
    with open("/tmp/control.txt", "w") as out:  # proves the search finds what is there
        out.write(CONTROL)
    values = [*SECRETS.values(), CONTROL]
    found = {name: [] for name in [*SECRETS, "control"]}
    names = dict(zip(values, found))
    for value, name in names.items():
        if any(value in v for v in os.environ.values()):
            found[name].append("os.environ")
    readable = []
    for path in ["/proc/1/environ", "/proc/1/cmdline", *glob.glob("/proc/[0-9]*/environ")]:
        try:
            data = open(path, "rb").read()
        except OSError:
            continue
        readable.append(path)
        found.update({n: found[n] + [path] for v, n in names.items() if v.encode() in data})
    patterns = [arg for value in values for arg in ("-e", value)]
    grep = subprocess.run(
        ["timeout", "30", "grep", "-rlsF", "--exclude-dir=proc", "--exclude-dir=sys",
         "--exclude-dir=dev", *patterns, "/"],
        capture_output=True, text=True,
    )
    for path in grep.stdout.split():
        data = open(path, "rb").read()
        found.update({n: found[n] + [path] for v, n in names.items() if v.encode() in data})
    report = {"found": found, "readable": readable, "grep_exit": grep.returncode,
              "env": sorted(os.environ)}
    raise AssertionError("EVIDENCE " + json.dumps(report, sort_keys=True))
"""


def test_generated_code_finds_no_secret_in_env_proc_or_filesystem(
    bot: Bot, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = uuid.uuid4().hex
    planted = {
        "OPENAI_API_KEY": f"key-{token}",
        "GITHUB_TOKEN": f"gh-token-{token}",
        "CODEBOT_SECRET_X": f"secret-x-{token}",
    }
    for name, value in planted.items():
        monkeypatch.setenv(name, value)  # the world the bot runs in
    hexed = {name: value.encode().hex() for name, value in planted.items()}
    control = f"control-{token}".encode().hex()
    code = hostile_module(SECRET_HUNT, HEX_SECRETS=hexed, HEX_CONTROL=control)
    bot.server.script(creates("test_hunt.py", code))
    run = bot.run(repo_with(tmp_path), spec_fields(), env=bot.env(**planted))

    check = run.iteration_test(1)
    assert not check["passed"] and check["reason"] == "1 test failed"
    report = evidence(check)
    assert report["found"] == {
        "OPENAI_API_KEY": [],
        "GITHUB_TOKEN": [],
        "CODEBOT_SECRET_X": [],
        "control": ["/tmp/control.txt"],
    }
    assert "/proc/1/environ" in report["readable"]  # the search could look there
    assert report["grep_exit"] in (0, 2)  # it finished (2: some files unreadable), not cut short
    assert report["env"] == ["GOMODCACHE", "HOME", "HOSTNAME", "LANG", "PATH", "PWD",
                             "PYTEST_ADDOPTS", "PYTEST_CURRENT_TEST", "PYTHONDONTWRITEBYTECODE",
                             "PYTHONUSERBASE"]  # fmt: skip
    assert run.record["stop_reason"] == "max_iterations"


# -- 7. writing outside the workspace -----------------------------------------------------

WRITE_OUTSIDE = """
import errno
import os


def test_write_everywhere():
    report = {"tmp_had_mark": os.path.exists(os.path.join("/tmp", MARK))}
    for directory in ["/", "/etc", "/usr", "/usr/local/bin", "/home/sandbox", "/root", "/var",
                      os.path.expanduser("~"), "/tmp"]:
        try:
            with open(os.path.join(directory, MARK), "w") as out:
                out.write("was here")
            report[directory] = "written"
        except OSError as exc:
            report[directory] = errno.errorcode[exc.errno]
    report["home"] = os.path.expanduser("~")
    raise AssertionError("EVIDENCE " + json.dumps(report, sort_keys=True))
"""


def test_writes_outside_the_workspace_fail_and_tmp_lives_for_one_run_only(
    bot: Bot, tmp_path: Path
) -> None:
    mark = f"codebot-probe-{uuid.uuid4().hex}"
    repo = repo_with(tmp_path, {"test_write.py": hostile_module(WRITE_OUTSIDE, MARK=mark)})
    bot.server.script("Nothing to change.", "Nothing to change.")
    first = bot.run(repo, spec_fields())
    second = bot.run(repo, spec_fields())

    for run in (first, second):
        report = evidence(run.baseline_test())
        for directory in ("/", "/etc", "/usr", "/usr/local/bin", "/home/sandbox", "/var"):
            assert report[directory] == "EROFS", (directory, report)
        assert report["/root"] == "EACCES", report
        assert report["home"] == "/tmp" and report["/tmp"] == "written", report
        assert run.record["stop_reason"] == "max_iterations"
    assert not evidence(second.baseline_test())["tmp_had_mark"]  # a fresh /tmp per run
    host_dirs = ["/", "/etc", "/usr", "/usr/local/bin", "/tmp", "/var", "/root",
                 str(Path.home()), str(tmp_path), str(repo)]  # fmt: skip
    assert [d for d in host_dirs if (Path(d) / mark).exists()] == []


# -- 8. escalation ----------------------------------------------------------------------------

ESCALATE = """
import os
import shutil
import subprocess


def run(*argv):
    done = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True)
    return [done.returncode, (done.stdout + done.stderr).strip()]


def test_become_root():
    status = dict(line.split(":", 1) for line in open("/proc/self/status") if ":" in line)
    report = {key: status[key].strip() for key in
              ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb", "NoNewPrivs")}
    report["uid"] = [os.getuid(), os.geteuid()]
    report["sudo"] = shutil.which("sudo")
    report["su"] = run("su", "root", "-c", "id -u")
    # passwd is setuid root: with the bit honoured it reads /etc/shadow and prints the
    # password-ageing fields; without it, only the name and a status letter.
    report["passwd_fields"] = len(run("passwd", "-S")[1].split())
    try:
        os.setuid(0)
        report["setuid0"] = "ok"
    except OSError as exc:
        report["setuid0"] = exc.strerror
    raise AssertionError("EVIDENCE " + json.dumps(report, sort_keys=True))
"""


def test_generated_code_cannot_gain_privileges(bot: Bot, tmp_path: Path) -> None:
    bot.server.script(creates("test_root.py", hostile_module(ESCALATE)))
    run = bot.run(repo_with(tmp_path), spec_fields())

    check = run.iteration_test(1)
    assert not check["passed"] and check["reason"] == "1 test failed"
    report = evidence(check)
    assert report["uid"] == [65534, 65534]
    zero = "0000000000000000"
    assert [report[k] for k in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb")] == [zero] * 5
    assert report["NoNewPrivs"] == "1"
    assert report["sudo"] is None
    assert report["su"][0] != 0 and "Authentication failure" in report["su"][1]
    assert report["passwd_fields"] == 2, report  # /etc/shadow stayed unreadable
    assert report["setuid0"] == "Operation not permitted"
    assert run.record["stop_reason"] == "max_iterations"


# -- taking the sandbox down from inside ----------------------------------------------------

SIGNAL_INIT = """
import os
import signal
import time


def test_stop_the_sandbox():
    sent = {}
    for name in ("SIGTERM", "SIGINT", "SIGHUP", "SIGQUIT", "SIGKILL"):
        try:
            os.kill(1, getattr(signal, name))
            sent[name] = "sent"
        except OSError as exc:
            sent[name] = exc.strerror
        time.sleep(0.2)
    raise AssertionError("EVIDENCE " + json.dumps(sent))
"""


def test_signalling_the_sandbox_init_fails_the_check_not_the_run(bot: Bot, tmp_path: Path) -> None:
    """PID 1 runs as the sandbox user, so generated code may signal it; if that ended the
    container, any test could abort the whole run as a sandbox failure."""
    bot.server.script(creates("test_stop.py", hostile_module(SIGNAL_INIT)))
    run = bot.run(repo_with(tmp_path), spec_fields())

    assert run.record["stop_reason"] == "max_iterations", run.record["stop_detail"]
    check = run.iteration_test(1)
    assert not check["passed"] and check["reason"] == "1 test failed"
    assert set(evidence(check).values()) == {"sent"}  # delivered, and shrugged off


# -- the operator's opt-in network serves the setup step only -------------------------------

SETUP_CALLS_HOME = (
    "python3 -c \"import socket; s = socket.create_connection(('{host}', {port}), timeout=5); "
    "s.sendall(b'setup'); s.close()\""
)


def test_opt_in_network_reaches_the_setup_step_and_never_the_generated_code(
    bot: Bot, tmp_path: Path, docker_client: docker.DockerClient
) -> None:
    gateway = bridge_gateway(docker_client)
    with host_listener() as listener:
        code = hostile_module(PHONE_HOME, PORT=listener.port, GATEWAY=gateway, NAME="pypi.org")
        bot.server.script(creates("test_phone_home.py", code))
        setup = SETUP_CALLS_HOME.format(host=gateway, port=listener.port)
        run = bot.run(repo_with(tmp_path), spec_fields(setup=setup), network=True)
        time.sleep(0.3)  # let a late connection show up in the log

    assert [(c["name"], c["passed"]) for c in run.record["baseline"]] == [
        ("setup", True),
        ("test", True),
    ]
    # Setup ran once, in the environment builder; the run and its verification started
    # from the environment image with no network.
    assert len(listener.log) == 1 and listener.log[0].endswith("sent b'setup'"), listener.log
    report = evidence(run.iteration_test(1))
    assert report[gateway] == "OSError: Network is unreachable"
    assert report["interfaces"] == ["lo"] and report["routes"] == []
    assert report["pypi.org"].startswith("gaierror"), report


def test_a_failing_setup_stops_the_run_before_the_model_is_asked(bot: Bot, tmp_path: Path) -> None:
    repo = repo_with(tmp_path)
    run = bot.run(repo, spec_fields(setup="echo cannot install >&2; exit 3"))

    assert run.record["stop_reason"] == "setup_failed"
    assert run.record["stop_detail"] == "`echo cannot install >&2; exit 3` failed: exit code 3"
    (setup,) = run.record["baseline"]
    assert setup["name"] == "setup" and "cannot install" in setup["output"]
    assert run.record["iterations"] == [] and bot.server.requests == []
    assert run.outcome.branch is None
    assert "setup command failed" in run.file("pr.md")


HELPER_PACKAGE = {
    "vendor/helper/pyproject.toml": (
        '[build-system]\nrequires = ["setuptools"]\nbuild-backend = "setuptools.build_meta"\n\n'
        '[project]\nname = "helper"\nversion = "1.0"\n'
    ),
    "vendor/helper/helper/__init__.py": "ANSWER = 42\n",
    "test_uses_helper.py": (
        "import helper\n\n\ndef test_helper_is_installed():\n"
        "    assert helper.ANSWER == 42 and '/opt/codebot-env/' in helper.__file__\n"
    ),
}


def test_what_setup_installs_with_pip_is_there_for_every_check(bot: Bot, tmp_path: Path) -> None:
    """The root filesystem is read-only: `pip install` lands in the run's home (/tmp)."""
    repo = repo_with(tmp_path, HELPER_PACKAGE)
    bot.server.script("Nothing to change.")
    setup = "python3 -m pip install -q --no-build-isolation --no-deps --no-index ./vendor/helper"
    run = bot.run(repo, spec_fields(setup=f"{setup} # {uuid.uuid4().hex}"))  # not from the cache

    setup_check, test_check = run.record["baseline"]
    assert setup_check["passed"], setup_check["output"]
    assert test_check["passed"] and test_check["tests_passed"] == 2, test_check["output"]


SEES_THE_BRANCH = """import os


def test_the_branch_files_are_in_place():
    assert os.path.exists("generated.py") and not os.path.exists("old.py")
"""


def test_setup_runs_on_the_base_files_never_on_code_a_branch_already_holds(
    bot: Bot, tmp_path: Path
) -> None:
    """A PR codebot continues holds model-written commits; the setup step (the one that may
    have the network) must not run that code. It sees the base commit's files; the checks
    after it see the branch's, with files the branch deleted gone."""
    base = make_repo(tmp_path / "base", {**PASSING, "old.py": "OLD = 1\n"})
    git(base, "checkout", "-q", "-b", "codebot/continued")
    (base / "generated.py").write_text("import os\nos.system('curl http://127.0.0.1:9/x')\n")
    (base / "test_branch.py").write_text(SEES_THE_BRANCH)
    git(base, "rm", "-q", "old.py")
    git(base, "add", "-A")
    git(base, "commit", "-qm", "an earlier codebot run")
    git(base, "checkout", "-q", "main")
    remote = tmp_path / "remote.git"
    git(tmp_path, "clone", "-q", "--bare", str(base), str(remote))

    ws = Workspace.clone(str(remote), "codebot/continued", "main")
    setup = "test ! -e generated.py && test -e old.py && echo base-files-only"
    setup += f" # {uuid.uuid4().hex}"  # a fresh environment, so the setup step really runs
    spec = spec_from_data(spec_fields(setup=setup), "spec", {})
    settings = replace(cfg.from_env(bot.env()), runs_dir=tmp_path / "runs")
    bot.server.script("Nothing to change.")
    try:
        assert ws.ahead_of_base()
        solved = solve(spec, settings, ws, bot.env())
    finally:
        ws.cleanup()
    bot.run_ids.append(solved.record.run_id)

    setup_check, test_check = solved.record.baseline
    assert setup_check.passed and "base-files-only" in setup_check.output, setup_check
    assert test_check.passed and test_check.tests_passed == 2, test_check.output
