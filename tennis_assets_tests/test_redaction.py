"""Credentials are masked whatever characters they hold: every printable ASCII character that
has a meaning in a URL, in the password as typed and percent-encoded, in each kind of URL the
project prints (PostgreSQL, MySQL, Redis, HTTP), alone and in a driver's error message. The
end-to-end check (a real PostgreSQL server, Dagster's event log, MLflow, alerts) is
tennis_assets_tests/services/test_services_secrets.py, whose password holds '#', '/' and '?'."""

from __future__ import annotations

import string
from urllib.parse import quote

import pytest

from tennis_assets.redaction import MASK, redact_text, redact_url, redact_webhook

# Each character that ends or splits a URL part somewhere, in the middle of a password.
SPECIAL = sorted(set(string.punctuation) | {" "})
PASSWORDS = [f"pw{c}S3cret{c}42" for c in SPECIAL] + ["#", "/", "@@", "a:b:c", "%", "%2F",
                                                       "p@ss/w#rd?x=1&y"]
TEMPLATES = ["postgresql://tennis:{pw}@db.example:5432/optuna",
             "postgresql+psycopg2://tennis:{pw}@db.example/optuna?sslmode=require",
             "mysql://tennis:{pw}@db.example:3306/optuna", "redis://:{pw}@db.example:6379/0",
             "https://tennis:{pw}@db.example/mlflow"]


def _secret_free(shown: str, password: str) -> None:
    for form in {password, quote(password, safe="")}:
        assert form not in shown.replace(MASK, ""), (password, shown)
    assert "db.example" in shown, shown


@pytest.mark.parametrize("template", TEMPLATES)
@pytest.mark.parametrize("password", PASSWORDS)
def test_a_password_is_masked_whatever_it_holds(template, password):
    # The short ones ('#', '/', '%') also occur in the rest of the URL: check the long form.
    for written in (password, quote(password, safe="")):
        url = template.format(pw=written)
        shown = redact_url(url)
        assert MASK in shown and shown.startswith(template.split("{pw}")[0].rsplit(":", 1)[0])
        if len(password) > 3:
            _secret_free(shown, password)
        message = f"connection to {url} failed: password {written!r} was refused"
        assert written not in redact_text(message, url).replace(MASK, "")


def test_urls_without_a_password_are_unchanged():
    for url in ("sqlite:///data/optuna.db", "sqlite:////abs/mlflow.db?mode=ro",
                "postgresql://db.example/optuna", "postgresql://tennis@db.example/optuna",
                "http://127.0.0.1:5000", "journal:/data/optuna/journal.log", "memory"):
        assert redact_url(url) == url


def test_secret_query_values_and_webhook_paths_are_masked():
    assert redact_url("postgresql://db.example/x?user=u&password=p%23w") == \
        "postgresql://db.example/x?user=u&password=***"
    assert redact_webhook("https://hooks.slack.com/services/T0/B0/XyZ#?") == \
        "https://hooks.slack.com/***"
    assert redact_webhook("https://u:p#w/@hooks.example/x") == "https://hooks.example/***"
