from codebot.redact import MASK, Redactor


def test_configured_secret_values_are_masked_everywhere():
    r = Redactor.from_env({"OPENAI_API_KEY": "abc123secret", "HOME": "/root"})
    assert r("key=abc123secret and again abc123secret") == f"key={MASK} and again {MASK}"
    assert r("/root stays") == "/root stays"


def test_secret_like_env_names_are_covered():
    r = Redactor.from_env({"CODEBOT_SECRET_DB": "hunter2hunter2", "NPM_TOKEN": "npm-tok-1234"})
    assert MASK in r("hunter2hunter2") and MASK in r("npm-tok-1234")


def test_known_credential_shapes_are_masked_without_configuration():
    token = "ghp_" + "a1" * 18
    assert Redactor()(f"token {token}!") == f"token {MASK}!"


def test_longer_secret_is_masked_whole_when_it_contains_a_shorter_one():
    r = Redactor.of(["secret1", "secret1-extended"])
    assert r("secret1-extended") == MASK


def test_short_values_are_ignored_to_avoid_masking_common_text():
    assert Redactor.of(["abc"])("abc") == "abc"


def test_leaks_reports_a_secret_in_text():
    r = Redactor.of(["s3cr3t-value"])
    assert r.leaks("x s3cr3t-value") and not r.leaks("clean")
