"""Fixtures for the real components live in tests/support/; this file only wires them in."""

pytest_plugins = [
    "tests.support.docker_fixtures",
    "tests.support.model_server",
    "tests.support.scripted_sandbox",
    "tests.support.github_server",
    "tests.support.github_world",
    "tests.support.git_repos",
]
