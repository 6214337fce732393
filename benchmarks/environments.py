"""Cold and warm starts of cached dependency environments, per toolchain.

For each toolchain a tiny repository with a real (offline) install step: a local Python
package through pip, a local npm package through npm, a Go module built once. A *cold*
start builds the environment (builder container, setup, commit); a *warm* start finds it in
the cache. Both are measured to the moment the first check can run: the environment ready,
the run's sandbox started, the workspace restored and the repository's files synced in.
The goal is a warm start of at most 2 s here.

    python benchmarks/environments.py --runs 3     # writes benchmarks/results/environments.*
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from codebot import config as cfg  # noqa: E402
from codebot import environment  # noqa: E402
from codebot.bench import machine  # noqa: E402
from codebot.sandbox import DockerSandbox, remove_image  # noqa: E402
from codebot.spec import spec_from_data  # noqa: E402
from codebot.workspace import Workspace  # noqa: E402

PY_PACKAGE = {
    "vendor/helper/pyproject.toml": '[build-system]\nrequires = ["setuptools"]\n'
    'build-backend = "setuptools.build_meta"\n[project]\nname = "helper"\nversion = "1.0"\n',
    "vendor/helper/helper/__init__.py": "ANSWER = 42\n",
    "test_helper.py": "import helper\n\n\ndef test_answer():\n    assert helper.ANSWER == 42\n",
}
NODE_PACKAGE = {
    "vendor/lib/package.json": '{"name": "lib", "version": "1.0.0", "main": "index.js"}\n',
    "vendor/lib/index.js": "exports.answer = 42;\n",
    "package.json": '{"name": "app", "version": "1.0.0", "scripts": {"test": "node --test"}}\n',
    "app.test.js": "const t = require('node:test');\nconst a = require('node:assert');\n"
    "t('answer', () => a.strictEqual(require('lib').answer, 42));\n",
}
GO_MODULE = {
    "go.mod": "module example.com/app\n\ngo 1.19\n",
    "app.go": "package app\n\nfunc Answer() int { return 42 }\n",
    "app_test.go": 'package app\n\nimport "testing"\n\nfunc TestAnswer(t *testing.T) {\n'
    "\tif Answer() != 42 {\n\t\tt.Fatal()\n\t}\n}\n",
}
PIP = "python3 -m pip install -q --no-build-isolation --no-deps --no-index ./vendor/helper"
TOOLCHAINS = {
    "python": ("codebot-sandbox:bookworm", PY_PACKAGE, PIP),
    "node": ("codebot-sandbox:node", NODE_PACKAGE, "npm install --offline --no-save ./vendor/lib"),
    "go": ("codebot-sandbox:go", GO_MODULE, "go vet ./..."),
}  # fmt: skip


def make_repo(path: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        (path / name).write_text(text)
    git = ["git", "-c", "user.name=bench", "-c", "user.email=bench@localhost"]
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "init"]):
        subprocess.run([*git, *args], cwd=path, check=True)
    return path


def start(settings: cfg.Settings, repo: Path, setup: str) -> tuple[float, bool, str]:
    """Seconds to a sandbox ready for its first check; whether it was a cache hit; image."""
    spec = spec_from_data({"title": "t", "description": "d", "test": "true", "setup": setup}, "b")
    ws = Workspace.create(repo, "bench", None, "codebot/")
    run_id = f"bench-{uuid.uuid4().hex[:8]}"
    try:
        t0 = time.monotonic()
        env = environment.prepare(
            settings, spec, run_id, ws.read_base_file, ws.tracked_files(), ws.base_tree,
            lambda _: None,
        )  # fmt: skip
        assert env.ready, env.setup
        sandbox = DockerSandbox.start(environment.sandbox_config(settings, env), run_id)
        try:
            environment.fill(sandbox, env, ws.path)
            ready = time.monotonic() - t0
        finally:
            sandbox.close()
    finally:
        ws.cleanup()
    return ready, env.cached, env.image


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args()
    rows, data = [], {}
    for name, (image, files, setup) in TOOLCHAINS.items():
        settings = replace(cfg.from_env({"CODEBOT_SANDBOX_IMAGE": image}))
        cold, warm = [], []
        for _ in range(args.runs):
            with tempfile.TemporaryDirectory(prefix=f"codebot-env-{name}-") as tmp:
                repo = make_repo(Path(tmp), files)
                marker = f"{setup} # {uuid.uuid4().hex}"  # a new key: a cold start
                seconds, hit, built = start(settings, repo, marker)
                assert not hit
                cold.append(seconds)
                seconds, hit, _ = start(settings, repo, marker)
                assert hit
                warm.append(seconds)
                remove_image(built)
        data[name] = {"cold_s": round(statistics.median(cold), 3),
                      "warm_s": round(statistics.median(warm), 3)}  # fmt: skip
        rows.append(f"| {name} | `{setup}` | {data[name]['cold_s']} | {data[name]['warm_s']} |")
    head = "| toolchain | setup | cold start (s) | warm start (s) |\n| --- | --- | --- | --- |"
    table = f"{machine()}, {args.runs} runs, medians\n\n{head}\n" + "\n".join(rows) + "\n"
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "environments.md").write_text(table)
    (args.out / "environments.json").write_text(
        json.dumps({"machine": machine(), "runs": args.runs, "results": data}, indent=2) + "\n"
    )
    print(table)


if __name__ == "__main__":
    main()
