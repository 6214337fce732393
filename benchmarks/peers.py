"""The trivial task end to end, side by side: codebot, mini-swe-agent and Aider in one run.

Optional, not part of the test suite. Each peer is installed from the package registry into
its own virtual environment under --cache (reused when present; they pin different litellm
releases); codebot is the package installed in this interpreter. One zero-latency scripted
OpenAI-compatible model on 127.0.0.1 answers every tool in the format that tool expects, with
the right fix for speed.py's trivial task (`add` returns `a - b`; one pytest test):

- codebot (model `oracle`): codebot's own oracle (`codebot.oracle.answer`), as speed.py uses;
- mini-swe-agent (model `openai/mini`, its default `mini.yaml`: one `bash` tool call a turn):
  a `sed` fix chained with the test run, then `echo COMPLETE_TASK_AND_SUBMIT_FINAL_OUTPUT`
  (a ```mswea_bash_command fence instead when the request carries no tools, as with
  `mini_textbased.yaml`);
- Aider (model `openai/aider`, `--edit-format diff`): one SEARCH/REPLACE block (a whole-file
  listing when its prompt asks for that format), then `--auto-test` runs the test.

Each round runs codebot, mini-swe-agent and Aider once, each on a fresh copy of the task
(interleaved, so a noisy shared machine slows all three alike), after --warmup untimed rounds.
A run counts as fixed when the test passes on its result with the test file unchanged. Every
time is a fresh process, interpreter start to exit, as a user runs it. Writes
benchmarks/results/peers.{md,json}: median, min and max per tool, the ratio to codebot's
median from the same run, model calls per run as the scripted server saw them, the machine.

    python benchmarks/peers.py --runs 7 [--cache ~/.cache/codebot/peers] [--reinstall]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.speed import FILES, FIX, repo  # noqa: E402
from codebot.bench import machine, save_figures  # noqa: E402
from codebot.oracle import JsonHandler, answer  # noqa: E402
from codebot.tokens import estimate_tokens  # noqa: E402

TEST_CMD = "python3 -m pytest -q"
SUBMIT = "echo COMPLETE_TASK_AND_SUBMIT_FINAL_OUTPUT"
RUN_TIMEOUT_S = 300
INSTALL_TIMEOUT_S = 1200


# --- the fix, taken from speed.py's reference diff ---------------------------------------


@dataclass(frozen=True)
class Fix:
    path: str
    before: str  # the hunk's old side (context and removed lines)
    after: str  # its new side
    bad_line: str  # the removed line, present in the file while the bug is
    good_line: str

    @classmethod
    def from_diff(cls, diff: str) -> Fix:
        lines = diff.rstrip("\n").split("\n")
        path = next(line[6:] for line in lines if line.startswith("+++ b/"))
        body = lines[lines.index(next(x for x in lines if x.startswith("@@"))) + 1 :]
        old = [x[1:] for x in body if x[:1] in (" ", "-")]
        new = [x[1:] for x in body if x[:1] in (" ", "+")]
        bad = next(x[1:] for x in body if x.startswith("-"))
        good = next(x[1:] for x in body if x.startswith("+"))
        return cls(path, "\n".join(old) + "\n", "\n".join(new) + "\n", bad, good)

    def sed(self) -> str:
        """A one-line `sed -i` for the changed line, as an agent writes it (basic regex)."""

        def escape(text: str, specials: str) -> str:
            return "".join("\\" + c if c in specials else c for c in text)

        pattern = escape(self.bad_line.strip(), "\\.*[]^$|")
        replacement = escape(self.good_line.strip(), "\\&|")
        return f"sed -i {shlex.quote(f's|{pattern}|{replacement}|')} {shlex.quote(self.path)}"

    def search_replace(self) -> str:
        return (
            f"{self.path}\n```python\n<<<<<<< SEARCH\n{self.before}=======\n{self.after}"
            ">>>>>>> REPLACE\n```\n"
        )

    def whole_file(self) -> str:
        return f"{self.path}\n```\n{FILES[self.path].replace(self.before, self.after)}```\n"


FIXED = Fix.from_diff(FIX)


# --- one scripted model for all three tools ----------------------------------------------


class ScriptedModel:
    """`POST /v1/chat/completions` on 127.0.0.1, routed by the request's model name: `oracle`
    (codebot) gets codebot's oracle, `mini` and `aider` their scripted replies. Counts the
    calls per model name; zero latency."""

    def __init__(self) -> None:
        self.tasks: dict[str, str] = {}
        self.calls: Counter[str] = Counter()
        self.stamps: dict[str, list[float]] = {}  # model -> perf_counter() of each call
        self.scripts: dict[str, set[str]] = {}  # model -> the reply kinds it was sent
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None

    @property
    def base_url(self) -> str:
        assert self._httpd is not None
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    def __enter__(self) -> ScriptedModel:
        handler = type("Handler", (_Handler,), {"owner": self})
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._httpd.daemon_threads = True
        threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()

    def register(self, title: str, diff: str) -> None:
        with self._lock:
            self.tasks[title] = diff

    def count(self, model: str) -> int:
        with self._lock:
            return self.calls[model]

    def first_call_after(self, model: str, t0: float) -> float | None:
        """Seconds from t0 to this model's first call after it (the tool's start-up)."""
        with self._lock:
            later = [t for t in self.stamps.get(model, []) if t >= t0]
        return min(later) - t0 if later else None

    def reply(self, body: dict[str, Any]) -> dict[str, Any] | None:
        """The assistant message for this request, or None when nothing fits."""
        model = str(body.get("model", "")).removeprefix("openai/")
        messages = [m for m in body.get("messages", []) if isinstance(m, dict)]
        with self._lock:
            self.calls[model] += 1
            self.stamps.setdefault(model, []).append(time.perf_counter())
            tasks = dict(self.tasks)
        kind, message = _script(model, messages, tasks, bool(body.get("tools")))
        if message is not None:
            with self._lock:
                self.scripts.setdefault(model, set()).add(kind)
        return message


def _text(messages: list[dict[str, Any]]) -> list[str]:
    out = []
    for m in messages:
        content = m.get("content")
        if isinstance(content, list):  # content parts
            content = "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
        out.append(str(content or ""))
    return out


def _script(
    model: str, messages: list[dict[str, Any]], tasks: dict[str, str], tools: bool
) -> tuple[str, dict[str, Any] | None]:
    if model == "oracle":  # codebot: its own benchmark oracle, a unified diff in a fence
        text = answer(tasks, messages)
        return "codebot oracle: the reference diff", (
            None if text is None else {"role": "assistant", "content": text}
        )
    if model == "mini":
        first = not any(m.get("role") == "assistant" for m in messages)
        command = f"{FIXED.sed()} && {TEST_CMD}" if first else SUBMIT
        thought = "THOUGHT: fix the operator, then run the test." if first else "Done."
        kind = "fix and test" if first else "submit"
        if tools:  # mini.yaml: one `bash` tool call per turn
            call = {
                "id": f"call_{time.monotonic_ns()}",
                "type": "function",
                "function": {"name": "bash", "arguments": json.dumps({"command": command})},
            }
            return f"bash tool call: {kind}", {
                "role": "assistant",
                "content": thought,
                "tool_calls": [call],
            }
        return f"mswea_bash_command fence: {kind}", {
            "role": "assistant",
            "content": f"{thought}\n\n```mswea_bash_command\n{command}\n```\n",
        }
    if model == "aider":
        texts = _text(messages)
        system = "\n".join(
            t for m, t in zip(messages, texts, strict=True) if m.get("role") == "system"
        )
        # The latest message quoting the buggy line (the file's listing, or a failing test's
        # traceback) with no later one quoting the fixed line: the bug is still there.
        bad = [i for i, t in enumerate(texts) if FIXED.bad_line.strip() in t]
        if not bad or any(FIXED.good_line.strip() in t for t in texts[bad[-1] :]):
            return "done", {"role": "assistant", "content": "The fix is in place."}
        if "SEARCH/REPLACE" in system:
            return "SEARCH/REPLACE block", {
                "role": "assistant",
                "content": f"Use `+` in `add`.\n\n{FIXED.search_replace()}",
            }
        return "whole-file listing", {
            "role": "assistant",
            "content": f"Use `+` in `add`.\n\n{FIXED.whole_file()}",
        }
    return "unknown model", None


class _Handler(JsonHandler):
    owner: ScriptedModel

    def do_GET(self) -> None:
        models = [{"id": m, "object": "model"} for m in ("oracle", "mini", "aider")]
        self.send_json(200, {"object": "list", "data": models})

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
        except ValueError:
            body = None
        if not self.path.rstrip("/").endswith("/chat/completions") or not isinstance(body, dict):
            self.send_json(404, {"error": {"message": f"unknown path {self.path}"}})
            return
        if body.get("stream"):
            self.send_json(400, {"error": {"message": "this scripted model does not stream"}})
            return
        message = self.owner.reply(body)
        if message is None:
            self.send_json(422, {"error": {"message": "no scripted reply for this request"}})
            return
        prompt = estimate_tokens("".join(_text(body.get("messages", []))))
        completion = estimate_tokens(str(message.get("content", "")))
        self.send_json(
            200,
            {
                "id": f"chatcmpl-peers-{time.monotonic_ns()}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": str(body.get("model", "")),
                "choices": [
                    {
                        "index": 0,
                        "message": message,
                        "finish_reason": "tool_calls" if "tool_calls" in message else "stop",
                    }
                ],
                "usage": {
                    "prompt_tokens": prompt,
                    "completion_tokens": completion,
                    "total_tokens": prompt + completion,
                },
            },
        )


# --- the tools ---------------------------------------------------------------------------


@dataclass
class Tool:
    name: str
    model: str  # the name the scripted server sees
    sandbox: str
    requirement: str = ""  # a peer's PyPI requirement; empty for codebot
    exe: str = ""
    version: str = ""
    venv: Path | None = None
    install_error: str = ""
    install_s: float | None = None
    runs: list[Run] = field(default_factory=list)

    @property
    def usable(self) -> bool:
        return not self.install_error


def install(tool: Tool, cache: Path, reinstall: bool) -> None:
    """Install a peer into cache/<name> unless a finished install of the same requirement
    is there; on failure, record why and leave the tool out of the timings."""
    venv = cache / tool.name
    marker = venv / ".codebot-peer"
    exe = venv / "bin" / tool.exe
    if reinstall and venv.exists():
        shutil.rmtree(venv)
    if not (exe.exists() and marker.exists() and marker.read_text() == tool.requirement):
        t0 = time.perf_counter()
        log = cache / f"{tool.name}.install.log"
        cache.mkdir(parents=True, exist_ok=True)
        steps = [
            [sys.executable, "-m", "venv", str(venv)],
            [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", tool.requirement],
        ]
        print(f"installing {tool.requirement} into {venv} (log: {log})", flush=True)
        with log.open("w") as out:
            for argv in steps:
                try:
                    done = subprocess.run(
                        argv, stdout=out, stderr=subprocess.STDOUT, timeout=INSTALL_TIMEOUT_S
                    )
                except (OSError, subprocess.TimeoutExpired) as exc:
                    tool.install_error = f"`{' '.join(argv[-3:])}`: {exc}"
                    return
                if done.returncode != 0:
                    tail = [x for x in log.read_text().splitlines() if "ignored" not in x][-2:]
                    why = re.sub(r"\(from versions: [^)]*\)", "", " / ".join(tail))
                    tool.install_error = f"`{' '.join(argv[-3:])}` failed: {why[:400]}"
                    return
        if not exe.exists():
            tool.install_error = f"installed, but {exe} is missing"
            return
        marker.write_text(tool.requirement)
        tool.install_s = round(time.perf_counter() - t0, 1)
    tool.venv = venv
    dist = tool.requirement.split("=")[0].split("<")[0].split(">")[0].strip()
    script = f"import importlib.metadata as m; print(m.version({dist!r}))"
    done = subprocess.run(
        [str(venv / "bin" / "python"), "-c", script], capture_output=True, text=True
    )
    tool.version = done.stdout.strip() or "?"


def task_text(title: str) -> str:
    return f"{title}: add subtracts. Make `{TEST_CMD}` pass."


def argv_for(tool: Tool, spec: Path, path: Path, work: Path, title: str) -> list[str]:
    if tool.name == "codebot":  # as speed.py runs it
        return [sys.executable, "-m", "codebot", "dry-run", str(spec), "--repo", str(path),
                "--runs-dir", str(work / "runs")]  # fmt: skip
    assert tool.venv is not None
    bin_ = tool.venv / "bin"
    if tool.name == "mini-swe-agent":
        return [str(bin_ / "mini"), "-m", "openai/mini", "-t", task_text(title), "--yolo",
                "--exit-immediately", "-c", "mini.yaml", "-c", "agent.cost_limit=0",
                "-o", str(work / "mini.traj.json")]  # fmt: skip
    # Aider looks unknown models up in litellm's price list, fetched from GitHub when not
    # cached; a metadata file (as its docs advise for local models) answers it offline.
    metadata_file = work / "aider.model.metadata.json"
    info = {"max_input_tokens": 128000, "max_output_tokens": 4096, "input_cost_per_token": 0.0,
            "output_cost_per_token": 0.0, "litellm_provider": "openai", "mode": "chat"}  # fmt: skip
    metadata_file.write_text(json.dumps({"openai/aider": info}))
    return [str(bin_ / "aider"), "--model", "openai/aider", "--edit-format", "diff",
            "--model-metadata-file", str(metadata_file),
            "--yes-always", "--no-auto-commits", "--no-dirty-commits", "--no-gitignore",
            "--no-check-update", "--no-show-release-notes", "--no-analytics", "--no-stream",
            "--no-pretty", "--no-fancy-input", "--no-show-model-warnings", "--no-detect-urls",
            "--no-suggest-shell-commands", "--no-notifications", "--no-restore-chat-history",
            "--chat-history-file", str(work / "aider.chat.md"),
            "--input-history-file", str(work / "aider.input"),
            "--test-cmd", TEST_CMD, "--auto-test",
            "--message", task_text(title), FIXED.path]  # fmt: skip


def env_for(base_url: str, work: Path) -> dict[str, str]:
    bindir = str(Path(sys.executable).parent)  # `python3` is this interpreter, not a shim
    return {
        **os.environ,
        "PATH": f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}",
        # codebot
        "OPENAI_BASE_URL": base_url,
        "CODEBOT_MODEL": "oracle",
        # the peers, through litellm
        "OPENAI_API_BASE": base_url,
        "OPENAI_API_KEY": "scripted",
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "LITELLM_TELEMETRY": "False",
        "MSWEA_CONFIGURED": "true",
        "MSWEA_COST_TRACKING": "ignore_errors",
        "MSWEA_SILENT_STARTUP": "1",
        "MSWEA_GLOBAL_CONFIG_DIR": str(work / "mswea"),
        "AIDER_ANALYTICS": "false",
        "AIDER_CHECK_UPDATE": "false",
        "PYTHONDONTWRITEBYTECODE": "1",
    }


def result_tree(tool: Tool, path: Path, work: Path) -> Path | None:
    """Where the tool's result is: the peers edit the working tree; codebot leaves its
    branch codebot/<slug> (the working tree untouched), exported here with `git archive`."""
    if tool.name != "codebot":
        return path
    refs = subprocess.run(
        ["git", "-C", str(path), "for-each-ref", "--format=%(refname:short)",
         "refs/heads/codebot/"],
        capture_output=True, text=True,
    ).stdout.split()  # fmt: skip
    if not refs:
        return None
    out = work / "codebot-result"
    out.mkdir()
    archive = subprocess.run(["git", "-C", str(path), "archive", refs[0]], capture_output=True)
    subprocess.run(["tar", "-x", "-C", str(out)], input=archive.stdout, check=True)
    return out


def fixed(tree: Path | None) -> str:
    """'' when the test passes on the result and the test file is unchanged, else why not."""
    if tree is None:
        return "no result branch"
    for name, text in FILES.items():
        if name.startswith("test_") and (tree / name).read_text() != text:
            return f"{name} was changed"
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=tree, capture_output=True, text=True,
    )  # fmt: skip
    return "" if done.returncode == 0 else f"test fails: {done.stdout.strip()[-200:]}"


@dataclass
class Run:
    elapsed: float
    calls: int
    first_call_s: float | None
    failure: str  # empty when fixed


def one_run(tool: Tool, model: ScriptedModel, base: Path, label: str) -> Run:
    work = base / f"{tool.name}-{label}"
    work.mkdir(parents=True)
    title = f"Fix add {tool.name} {label}"
    path, spec = repo(work / "repo", title)
    model.register(title, FIX)
    before = model.count(tool.model)
    argv = argv_for(tool, spec, path, work, title)
    cwd = work if tool.name == "codebot" else path
    t0 = time.perf_counter()
    try:
        done = subprocess.run(
            argv, cwd=cwd, env=env_for(model.base_url, work), stdin=subprocess.DEVNULL,
            capture_output=True, text=True, timeout=RUN_TIMEOUT_S,
        )  # fmt: skip
        elapsed = time.perf_counter() - t0
        (work / "stdout.log").write_text(done.stdout)
        (work / "stderr.log").write_text(done.stderr)
        status = "" if done.returncode == 0 else f"exit {done.returncode}: {done.stderr[-300:]}"
    except subprocess.TimeoutExpired:
        elapsed, status = time.perf_counter() - t0, f"timed out after {RUN_TIMEOUT_S} s"
    calls = model.count(tool.model) - before
    first = model.first_call_after(tool.model, t0)
    return Run(elapsed, calls, first, status or fixed(result_tree(tool, path, work)))


def codebot_version() -> str:
    """The installed version, with the commit when it runs from this checkout."""
    version = metadata.version("codebot")
    git = ["git", "-C", str(ROOT)]
    head = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    if head.returncode != 0:
        return version
    dirty = subprocess.run([*git, "status", "--porcelain", "--", "codebot"], capture_output=True)
    return f"{version} ({head.stdout.strip()}{', modified tree' if dirty.stdout else ''})"


def docker_version() -> str:
    try:
        done = subprocess.run(
            ["docker", "version", "--format", "{{.Server.Version}} (client {{.Client.Version}})"],
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unavailable ({exc})"
    return done.stdout.strip() or f"unavailable ({done.stderr.strip()[-120:]})"


NOTES = {
    "codebot": "`codebot dry-run` (isolated clone, Docker sandbox without network): baseline "
    "test run, the model's diff applied, lint + tests in a fresh sandbox (the verification "
    "too: cheap checks run once), or in the warm one as well when the fresh one is still "
    "starting, a local branch, patch.diff, pr.md and run.json.",
    "mini-swe-agent": "`mini --yolo --exit-immediately -c mini.yaml`: each `bash` tool call "
    "runs on the host via subprocess (no sandbox); the test runs because the model runs it; "
    "trajectory JSON written.",
    "aider": "`aider --message ... --edit-format diff --auto-test`: applies the SEARCH/REPLACE "
    "edit in place on the host (no sandbox), lints it, runs `--test-cmd` on the host; "
    "no commit (`--no-auto-commits`).",
}


def _r(x: float | None) -> float | None:
    return None if x is None else round(x, 3)


def summary(tools: list[Tool], scripts: dict[str, set[str]]) -> dict[str, dict[str, Any]]:
    base = next(t for t in tools if t.name == "codebot")
    out = {}
    for t in tools:
        times = [r.elapsed for r in t.runs]
        firsts = [r.first_call_s for r in t.runs if r.first_call_s is not None]
        ok = [r.elapsed for r in t.runs if not r.failure]
        med = statistics.median(times) if times else None
        base_med = statistics.median(r.elapsed for r in base.runs) if base.runs else None
        rounds = [r.elapsed / b.elapsed for r, b in zip(t.runs, base.runs, strict=False)]
        out[t.name] = {
            "version": t.version,
            "requirement": t.requirement or "installed in this interpreter",
            "install_error": t.install_error or None,
            "install_s": t.install_s,
            "sandbox": t.sandbox,
            "runs_s": [round(x, 3) for x in times],
            "median_s": _r(med),
            "min_s": _r(min(times, default=None)),
            "max_s": _r(max(times, default=None)),
            "median_fixed_s": _r(statistics.median(ok) if ok else None),
            "fixed": f"{len(ok)}/{len(times)}",
            "failures": [r.failure for r in t.runs if r.failure],
            "ratio_to_codebot": round(med / base_med, 2) if med and base_med else None,
            "median_ratio_per_round": round(statistics.median(rounds), 2) if rounds else None,
            "median_first_model_call_s": _r(statistics.median(firsts) if firsts else None),
            "model_calls_per_run": [r.calls for r in t.runs],
            "scripted_replies": sorted(scripts.get(t.model, ())),
            "what_it_does": NOTES[t.name],
        }
    return out


def markdown(result: dict[str, Any]) -> str:
    lines = [
        f"Trivial task (`a - b` → `a + b`, one pytest test), zero-latency scripted model on "
        f"127.0.0.1, {result['runs']} interleaved rounds after {result['warmup']} untimed "
        f"warm-up round(s). {result['machine']}; Docker {result['docker']}; 1-minute load "
        f"average {' → '.join(map(str, result['load_average_1min']))} (a shared machine).",
        "",
        "Each time is a fresh process, start to exit. × codebot = the tool's median / "
        "codebot's median in this run (in brackets: the median of the per-round ratios). "
        "First call = start to the tool's first request to the model (interpreter, imports, "
        "set-up). Model calls as the scripted server counted them.",
        "",
        "| tool | version | median (s) | min (s) | max (s) | × codebot | first call (s) "
        "| fixed | model calls per run | sandbox |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, s in result["tools"].items():
        if s["install_error"]:
            lines.append(f"| {name} | not installed | {' | '.join('–' * 8)} | {s['sandbox']} |")
            continue
        calls = sorted(set(s["model_calls_per_run"]))
        lines.append(
            f"| {name} | {s['version']} | {s['median_s']} | {s['min_s']} | {s['max_s']} "
            f"| {s['ratio_to_codebot']} ({s['median_ratio_per_round']}) "
            f"| {s['median_first_model_call_s']} | {s['fixed']} "
            f"| {', '.join(map(str, calls))} | {s['sandbox']} |"
        )
    lines += ["", "## What each tool did", ""]
    for name, s in result["tools"].items():
        lines.append(f"- **{name}**: {s['what_it_does']}")
        if s["scripted_replies"]:
            lines.append(f"  Scripted model replies: {'; '.join(s['scripted_replies'])}.")
        if s["install_s"] is not None:
            lines.append(f"  Installed into its own virtual environment in {s['install_s']} s.")
        if s["install_error"]:
            lines.append(f"  Not measured: install of `{s['requirement']}` failed: "
                         f"{s['install_error']}")  # fmt: skip
        for f in s["failures"][:3]:
            lines.append(f"  Failed run: {f}")
    lines += ["", f"Command: `{result['command']}`", ""]
    return "\n".join(lines)


def measure(live: list[Tool], model: ScriptedModel, base: Path, runs: int, warmup: int) -> None:
    """Rounds of one run per tool, in the same order each round; warm-up rounds untimed."""
    for n in range(warmup + runs):
        warm = n < warmup
        for tool in live:
            label = f"w{n}" if warm else f"r{n - warmup}"
            run = one_run(tool, model, base, label)
            verdict = "fixed" if not run.failure else f"NOT FIXED: {run.failure}"
            print(
                f"{label} {tool.name:15} {run.elapsed:6.2f} s  calls={run.calls}  "
                f"first call {run.first_call_s or 0:.2f} s  {verdict}",
                flush=True,
            )
            if not warm:
                tool.runs.append(run)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--warmup", type=int, default=1, help="untimed rounds first")
    parser.add_argument("--cache", type=Path, default=Path.home() / ".cache/codebot/peers")
    parser.add_argument("--reinstall", action="store_true")
    parser.add_argument("--mini-swe-agent", default="mini-swe-agent", help="pip requirement")
    parser.add_argument("--aider", default="aider-chat", help="pip requirement")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    parser.add_argument(
        "--keep", type=Path, help="keep every run's repository and logs under this directory"
    )
    args = parser.parse_args()
    tools = [
        Tool("codebot", "oracle", "Docker (network none)", version=codebot_version()),
        Tool("mini-swe-agent", "mini", "none (host)", args.mini_swe_agent, exe="mini"),
        Tool("aider", "aider", "none (host)", args.aider, exe="aider"),
    ]
    for tool in tools[1:]:
        install(tool, args.cache, args.reinstall)
        print(f"{tool.name}: {tool.version or 'NOT INSTALLED: ' + tool.install_error}", flush=True)
    live = [t for t in tools if t.usable]
    if args.keep is not None:
        args.keep.mkdir(parents=True, exist_ok=True)
    load_before = os.getloadavg()[0]
    base = Path(tempfile.mkdtemp(prefix="codebot-peers-", dir=args.keep))
    try:
        with ScriptedModel() as model:
            measure(live, model, base, args.runs, args.warmup)
    finally:
        if args.keep is None:
            shutil.rmtree(base, ignore_errors=True)
        else:
            print(f"runs kept in {base}")
    result = {
        "machine": machine(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "docker": docker_version(),
        "load_average_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "runs": args.runs,
        "warmup": args.warmup,
        "order": [t.name for t in live],
        "command": " ".join(["python", "benchmarks/peers.py", *sys.argv[1:]]),
        "tools": summary(tools, model.scripts),
    }
    save_figures(args.out, "peers", markdown(result), result)
    print(markdown(result))


if __name__ == "__main__":
    main()
