"""The repository map: definitions per file, noise, ranking for a task, regions worth showing.

Pure functions over texts; `synthetic_repo` builds the ~150-module project the context tests
also use (a 90 KB billing module holding the bug, noise files around it).
"""

from __future__ import annotations

import pytest

from codebot import repomap as rm

BUG = (
    "def compute_total(items):\n    total = 0\n    for item in items[1:]:\n"
    "        total += item\n    return total\n"
)


def _module(k: int) -> str:
    body = [f'"""Module {k}."""', "", "from pkg import util", ""]
    for j in range(6):
        body += [f"def func_{k}_{j}(x, y=1):", f"    z = util.helper(x) + {j}", "    return z", ""]
    return "\n".join(body)


def _billing(size: int = 90_000) -> str:
    """A large module: many small rate functions, `compute_total` (the bug) in the middle."""
    parts = ['"""Billing."""\n\nimport math\n\n']
    k = 0
    while sum(map(len, parts)) < size:
        parts.append(
            f"def rate_{k}(amount, factor=1.0):\n    value = amount * factor + {k}\n"
            "    if value < 0:\n        raise ValueError('negative')\n"
            "    return round(value, 2)\n\n"
        )
        k += 1
        if k == 100:
            parts.append(BUG + "\n")
    return "".join(parts)


def synthetic_repo() -> dict[str, str]:
    """~150 modules, tests for some, and the noise real projects carry."""
    files = {
        "pkg/__init__.py": "",
        "pkg/util.py": '"""Helpers."""\n\n\ndef helper(x):\n    return x * 2\n',
        "pkg/billing.py": _billing(),
        "pkg/invoice.py": "from pkg.billing import compute_total\n\n\ndef invoice(items):\n"
        "    return {'total': compute_total(items)}\n",
        "tests/test_billing.py": "from pkg.billing import compute_total\n\n\n"
        "def test_total():\n    assert compute_total([1, 2, 3]) == 6\n",
        "docs/conf.py": "project = 'x'\nextensions = []\n" * 100,
        "setup.py": "from setuptools import setup\n\nsetup(name='pkg')\n",
        "pkg.egg-info/SOURCES.txt": "pkg/billing.py\npkg/util.py\n" * 100,
        ".github/ISSUE_TEMPLATE/bug.md": "Describe the compute_total bug\n" * 30,
        "vendor/lib/billing_helpers.py": "def compute_total(items):\n    return 0\n",
        "README.md": "# pkg\n\nBilling helpers.\n",
    }
    for k in range(150):
        files[f"pkg/mod_{k:03}.py"] = _module(k)
    for k in range(0, 150, 5):
        files[f"tests/test_mod_{k:03}.py"] = f"from pkg.mod_{k:03} import func_{k}_0\n"
    return files


TASK = rm.Task("compute_total skips the first item", files=("pkg/billing.py",))


def _order(entries: tuple[rm.Entry, ...]) -> list[str]:
    return [e.path for e in entries]


# -- definitions -----------------------------------------------------------------------------


def test_python_outline_lists_classes_methods_and_functions_with_their_lines() -> None:
    text = (
        "import os\n\n\nclass Parser(Base, metaclass=M):\n"
        "    def feed(self, data: str) -> int:\n        return 1\n\n"
        "    async def close(self):\n        pass\n\n\n"
        "@cache\ndef parse(x, *a, k=1):\n    return x\n"
    )
    symbols = rm.outline("p.py", text)
    assert [(s.name, s.line, s.end, s.signature) for s in symbols] == [
        ("Parser", 4, 9, "class Parser(Base, metaclass=M)"),
        ("Parser.feed", 5, 6, "def feed(self, data: str) -> int"),
        ("Parser.close", 8, 9, "async def close(self)"),
        ("parse", 12, 14, "def parse(x, *a, k=1)"),
    ]


def test_other_languages_are_outlined_by_their_definition_lines() -> None:
    js = "export class Cart {\n  total() {\n  }\n}\n\nexport async function load(id) {\n  x;\n}\n"
    go = "package x\n\nfunc (c *Cart) Total() int {\n\treturn 0\n}\n\nfunc Load() {}\n"
    assert [(s.name, s.line, s.end) for s in rm.outline("a.js", js)] == [
        ("Cart", 1, 4),
        ("load", 6, 8),
    ]
    assert [s.name for s in rm.outline("a.go", go)] == ["Total", "Load"]


def test_python_that_does_not_parse_is_outlined_by_its_definition_lines() -> None:
    text = "def ok(x):\n    return x\n\ndef broken(:\n    pass\n"
    assert [s.name for s in rm.outline("bad.py", text)] == ["ok", "broken"]


# -- noise -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "vendor/x.py",
        "src/third_party/y.py",
        "web/node_modules/z/index.js",
        "build/lib/pkg/a.py",
        "dist/pkg-1.0.tar.gz",
        "pkg.egg-info/SOURCES.txt",
        "src/pkg.egg-info/PKG-INFO",
        "poetry.lock",
        "package-lock.json",
        "yarn.lock",
        "docs/conf.py",
        ".github/ISSUE_TEMPLATE/bug_report.md",
        ".github/PULL_REQUEST_TEMPLATE.md",
        "assets/logo.png",
    ],
)
def test_generated_vendored_metadata_template_and_binary_files_are_noise(path: str) -> None:
    assert rm.is_noise(path)


@pytest.mark.parametrize("path", ["pkg/build.py", "src/build/__init__.py", "docs/index.md"])
def test_source_that_merely_resembles_noise_is_not_noise(path: str) -> None:
    assert not rm.is_noise(path)


def test_the_callers_globs_exclude_more() -> None:
    assert rm.is_noise("migrations/0001_initial.py", exclude=("migrations/",))
    assert rm.is_noise("pkg/data/big.csv", exclude=("*.csv",))
    assert not rm.is_noise("pkg/models.py", exclude=("migrations/", "*.csv"))


def test_a_nul_byte_makes_content_binary() -> None:
    assert rm.looks_binary(b"GIF89a\x00\x01") and not rm.looks_binary("é".encode())


# -- ranking ---------------------------------------------------------------------------------


def test_files_named_in_the_spec_rank_first() -> None:
    assert _order(rm.rank(synthetic_repo(), TASK))[0] == "pkg/billing.py"


def test_noise_is_never_ranked_unless_the_spec_names_it() -> None:
    paths = _order(rm.rank(synthetic_repo(), TASK))
    assert not [p for p in paths if rm.is_noise(p)]
    named = rm.Task("fix the docs", files=("docs/conf.py",))
    assert _order(rm.rank(synthetic_repo(), named))[0] == "docs/conf.py"


def test_a_module_importing_the_failing_one_ranks_high() -> None:
    failing = rm.Task("the total is wrong", frames=(rm.Frame("pkg/billing.py", 303),))
    paths = _order(rm.rank(synthetic_repo(), failing))
    assert paths.index("pkg/invoice.py") < paths.index("pkg/mod_000.py")
    assert paths.index("pkg/invoice.py") < paths.index("pkg/util.py")


def test_a_test_of_a_relevant_module_ranks_just_below_it() -> None:
    paths = _order(rm.rank(synthetic_repo(), TASK))
    assert paths.index("tests/test_billing.py") == paths.index("pkg/billing.py") + 1


def test_unrelated_tests_rank_below_unrelated_source() -> None:
    paths = _order(rm.rank(synthetic_repo(), TASK))
    assert paths.index("tests/test_mod_005.py") > paths.index("pkg/mod_149.py")


def test_a_file_defining_an_identifier_the_task_names_is_relevant() -> None:
    texts = {"a.py": "def parse_header(x):\n    pass\n", "b.py": "def other():\n    pass\n"}
    entries = rm.rank(texts, rm.Task("`parse_header` drops the last field"))
    assert _order(entries) == ["a.py", "b.py"]
    assert entries[0].relevant and entries[0].named == ("parse_header",)


def test_a_path_the_task_names_is_relevant() -> None:
    texts = {"pkg/a.py": "x = 1\n", "pkg/stats.py": "y = 2\n"}
    assert _order(rm.rank(texts, rm.Task("stats.py rounds wrongly")))[0] == "pkg/stats.py"


def test_relative_and_src_layout_imports_resolve_within_the_repository() -> None:
    texts = {
        "src/pkg/__init__.py": "",
        "src/pkg/core.py": "def run():\n    pass\n",
        "src/pkg/cli.py": "from .core import run\n",
        "src/pkg/api.py": "import pkg.core\n",
        "src/pkg/other.py": "import os\n",
    }
    entries = rm.rank(texts, rm.Task("", frames=(rm.Frame("src/pkg/core.py", 1),)))
    scores = {e.path: e.score for e in entries}
    assert scores["src/pkg/cli.py"] > scores["src/pkg/other.py"]
    assert scores["src/pkg/api.py"] > scores["src/pkg/other.py"]


def test_ranking_is_the_same_whatever_order_the_files_come_in() -> None:
    texts = synthetic_repo()
    reverse = dict(reversed(list(texts.items())))
    assert rm.rank(texts, TASK) == rm.rank(reverse, TASK)


# -- tracebacks and regions ------------------------------------------------------------------


def test_frames_are_read_from_python_and_pytest_tracebacks_in_tracked_files_only() -> None:
    text = (
        'File "/workspace/pkg/util.py", line 42, in helper\n'
        'File "/usr/lib/python3/json/__init__.py", line 3, in loads\n'
        "tests/test_util.py:7: in test_helper\n"
        "pkg/util.py:44: ZeroDivisionError\n"
    )
    tracked = ["pkg/util.py", "tests/test_util.py"]
    assert rm.frames(text, tracked) == (
        rm.Frame("pkg/util.py", 42, "helper"),
        rm.Frame("tests/test_util.py", 7, "test_helper"),
        rm.Frame("pkg/util.py", 44, None),
    )


def test_the_region_at_a_traceback_line_is_its_whole_definition_with_context() -> None:
    text = _billing(30_000)
    (entry,) = rm.rank({"pkg/billing.py": text}, rm.Task(""))
    bug = next(s for s in entry.symbols if s.name == "compute_total")
    region = rm.regions(entry, [bug.line + 2])[0]
    assert (region.start, region.end) == (bug.line - 3, bug.end + 3)


def test_a_long_definition_is_shown_by_its_start_and_the_window_at_the_line() -> None:
    text = "def long():\n" + "    x = 1\n" * 300
    (entry,) = rm.rank({"a.py": text}, rm.Task(""))
    assert rm.regions(entry, [200]) == [rm.Region(1, 1), rm.Region(194, 206)]


def test_definitions_the_task_names_are_regions_too() -> None:
    (entry,) = rm.rank({"pkg/billing.py": _billing(30_000)}, TASK)
    bug = next(s for s in entry.symbols if s.name == "compute_total")
    assert rm.regions(entry, []) == [rm.Region(bug.line - 3, bug.end + 3)]


def test_changed_regions_are_the_changed_lines_of_the_new_text_with_context() -> None:
    before = "".join(f"line {k}\n" for k in range(1, 101))
    after = before.replace("line 50\n", "LINE 50\nextra\n")
    assert rm.changed_regions(before, after, around=2) == [rm.Region(48, 53)]


def test_a_rewritten_file_changes_are_shown_by_the_start_and_end_of_the_hunk() -> None:
    before = "".join(f"a{k}\n" for k in range(500))
    after = "".join(f"b{k}\n" for k in range(500))
    regions = rm.changed_regions(before, after, around=0, span=40)
    assert regions == [rm.Region(1, 20), rm.Region(481, 500)]


def test_close_matches_prefer_the_same_file_name() -> None:
    paths = ["pkg/util.py", "pkg/utils_old.py", "tests/test_util.py"]
    assert rm.close_matches("util.py", paths)[0] == "pkg/util.py"
    assert rm.close_matches("Cart.totl", ["Cart.total", "Cart.add"], sep=".") == ["Cart.total"]


@pytest.mark.parametrize(
    ("text", "path"),
    [
        ("Route 83 charges the heavy surcharge on light parcels", "depot/routes/route_083.py"),
        ("Update the README's examples to the new units", "README.md"),
    ],
    ids=["numbered-module", "readme"],
)
def test_a_file_whose_name_the_task_spells_as_words_ranks_above_its_siblings(
    text: str, path: str
) -> None:
    texts = {
        f"depot/routes/route_{k:03d}.py": f"def quote_{k}():\n    return {k}\n"
        for k in range(80, 90)
    }
    texts |= {"README.md": "# sizes\n", "CHANGES.md": "# changes\n", "sizes.py": "X = 1\n"}

    ranked = rm.rank(texts, rm.Task(text))

    assert _order(ranked).index(path) < 2 and ranked[0].score >= rm.RELEVANT
