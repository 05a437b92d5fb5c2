"""The policy file: a safe condition language, first-match rules, readable errors, and a
calibrated threshold on benign traffic."""

from __future__ import annotations

import pytest
from scipy.stats import binom

from distilltrace.errors import DistilltraceError
from distilltrace.gateway.policy import (
    AuditLog,
    Condition,
    Policy,
    PolicyError,
    default_policy,
)

POLICY = """
default = "allow"

[[rule]]
id = "block-campaign"
when = "cluster_flagged"
scope = "cluster"
action = "block"

[[rule]]
id = "degrade"
when = "pvalue < 1e-4 and not flagged"
action = "degrade"
max_tokens = 64
strip_reasoning = true

[[rule]]
id = "throttle-review"
when = "review or (risk >= 3 and n_requests > 500)"
action = "throttle"
rate_per_min = 10
retry_after_s = 30

[[rule]]
id = "flag"
when = "pvalue < 0.01"
action = "flag"
"""


def env(**kw):
    base = dict(
        flagged=False,
        cluster_flagged=False,
        review=False,
        pvalue=0.5,
        risk=0.3,
        n_requests=10,
        cluster_size=1,
    )
    base.update(kw)
    return base


def test_conditions_parse_and_evaluate():
    """Deterministic checks of the grammar (no statistics: null not applicable)."""
    c = Condition("pvalue < 1e-6 or (flagged and not review)")
    assert c(env(pvalue=1e-7)) and c(env(flagged=True)) and not c(env(flagged=True, review=True))
    assert Condition("risk >= 2.5")(env(risk=2.5)) and not Condition("risk > 2.5")(env(risk=2.5))
    assert Condition("n_requests != 3")(env()) and Condition("cluster_size == 1")(env())
    assert not Condition("pvalue < .01")(env(pvalue=None))  # a missing score never matches
    assert Condition("not not flagged")(env(flagged=True))


@pytest.mark.parametrize(
    "text",
    [
        "__import__('os').system('true')",
        "flagged; rm -rf /",
        "pvalue < risk",
        "flagged and",
        "(flagged",
        "unknown_name",
        "pvalue <",
        "",
        "flagged flagged",
        "lambda: 1",
        "pvalue.__class__",
    ],
)
def test_conditions_reject_anything_else(text):
    """No eval: anything outside the grammar is a ValueError at load time."""
    with pytest.raises(ValueError):
        Condition(text)


def test_first_matching_rule_decides_with_its_parameters():
    """Rules are tried in order; a rule's scope picks the account or cluster variables."""
    p = Policy.from_toml(POLICY)
    d = p.decide(env(), env(cluster_flagged=True))
    assert (d.action, d.rule) == ("block", "block-campaign")
    d = p.decide(env(pvalue=1e-5), env(pvalue=1e-5))
    assert (d.action, d.max_tokens, d.strip_reasoning) == ("degrade", 64, True)
    d = p.decide(env(review=True), env())
    assert (d.action, d.retry_after_s, p.rule(d.rule).rate_per_min) == ("throttle", 30.0, 10.0)
    assert p.decide(env(pvalue=0.005), env()).action == "flag"
    d = p.decide(env(), env())
    assert (d.action, d.rule, d.reason) == ("allow", None, "default")
    assert default_policy().decide(env(flagged=True), env()).action == "block"


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("[[rule]]\nwhen = 'flagged'\naction = 'nuke'", "action must be one of"),
        ("[[rule]]\nwhen = 'flagged'\naction = 'block'\nscope = 'org'", "scope must be"),
        ("[[rule]]\nwhen = 'flaged'\naction = 'block'", "unknown name 'flaged'"),
        ("[[rule]]\nwhen = 'flagged'\naction = 'degrade'\nmax_tokens = -1", "positive number"),
        ("[[rule]]\nwhen = 'flagged'\naction = 'block'\ncolour = 'red'", "unknown key"),
        ("default = 'explode'", "default must be one of"),
        ("rule = 3", "array of tables"),
        ("[[rule]\n", "not valid TOML"),
        (
            "[[rule]]\nid='a'\nwhen='flagged'\naction='block'\n[[rule]]\nid='a'\nwhen='review'"
            "\naction='flag'",
            "unique",
        ),
    ],
)
def test_bad_policy_files_are_one_readable_line(text, needle, tmp_path):
    p = tmp_path / "policy.toml"
    p.write_text(text)
    with pytest.raises(PolicyError) as e:
        Policy.load(p)
    msg = str(e.value)
    assert needle in msg and "\n" not in msg and str(p) in msg
    assert isinstance(e.value, DistilltraceError)
    with pytest.raises(PolicyError, match="cannot read policy file"):
        Policy.load(tmp_path / "missing.toml")


def test_audit_log_is_append_only_jsonl(tmp_path):
    a = AuditLog(tmp_path / "a" / "audit.jsonl")
    a.write({"who": "rule:x", "account_id": "<b>x</b>", "action": "block"})
    a.write({"who": "admin:bob", "account_id": "y", "action": "allow"})
    b = AuditLog(tmp_path / "a" / "audit.jsonl")  # a restarted process appends
    b.write({"who": "rule:z", "account_id": "z", "action": "flag"})
    rows = b.read()
    assert [r["who"] for r in rows] == ["rule:x", "admin:bob", "rule:z"]
    assert all("ts" in r for r in rows) and b.recent(5)[0]["who"] == "rule:z"


def test_pvalue_rule_is_calibrated_on_benign_traffic():
    """Null: benign-only traffic (simulator, no campaigns; look-alikes included). A rule
    `pvalue < alpha` must act on at most alpha of the accounts (binomial 99.9% slack):
    the live p-values are calibrated, so the policy's false-positive rate is its alpha."""
    from distilltrace.gateway.live import LiveConfig, LiveEnforcer
    from distilltrace.traffic.simulate import simulate

    table = simulate(n_accounts=2000, days=1, seed=5, campaigns=())
    rows = table.drop(["campaign_id"]).to_pylist()
    alphas = (0.01, 0.05)
    pol = Policy.from_toml(
        "\n".join(
            f"[[rule]]\nid='p{i}'\nwhen='pvalue < {a}'\naction='flag'\n"
            for i, a in enumerate(reversed(alphas))
        )
    )
    enf = LiveEnforcer(pol, config=LiveConfig(window_s=3 * 86400), start=False)
    for r in rows:
        enf.observe(r)
    snap = enf.scorer.score_now()
    n = len(snap.accounts)
    assert n > 600
    for a in alphas:
        acted = sum(s.risk_tail_p < a for s in snap.accounts.values())
        assert acted <= binom.ppf(0.999, n, a), (a, acted, n)
    assert not any(s.flagged for s in snap.accounts.values())
