"""LiteLLM's Generic Guardrail API on the gateway app: the documented request and
response shapes, BLOCKED / NONE / GUARDRAIL_INTERVENED from the policy, every pre-call
request logged as evidence and scored. Deterministic checks (no statistics: null not
applicable)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient

from distilltrace.gateway.guardrail import PATH, guardrail_router
from distilltrace.gateway.live import AccountScore, LiveConfig, LiveEnforcer, Snapshot
from distilltrace.gateway.policy import Policy

TOKEN = "guardrail-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def body(user: str, texts, input_type="request", call_id=None, **rd):
    """A request as LiteLLM's generic_guardrail_api hook sends it."""
    return {
        "texts": texts,
        "images": None,
        "tools": None,
        "structured_messages": None,
        "request_data": {
            "user_api_key_hash": "88dc28d0f030c55ed4ab77ed8faf098196cb1c05df778539800c9f1243fe6b4b",
            "user_api_key_alias": None,
            "user_api_key_user_id": user,
            "user_api_key_team_id": "team-a",
            "user_api_key_org_id": None,
            **rd,
        },
        "input_type": input_type,
        "litellm_call_id": call_id,
        "litellm_trace_id": "trace-1",
        "additional_provider_specific_params": {"model": "gpt-test"},
    }


def _score(aid, *, flagged, reason):
    """A published score as the live scan writes it (values typical of a campaign member)."""
    return AccountScore(aid, flagged, reason, 9.0, 1e-9, 1e-9, 1e-9, 0.5, 7, 3, flagged, 900)


def _snapshot(*scores):
    now = datetime.now(UTC)
    return Snapshot(1, now, now, now, 900, {s.account_id: s for s in scores}, None)


@pytest.fixture
def guarded(make_gateway, segment_records):
    enf = LiveEnforcer(Policy.from_toml(""), config=LiveConfig(), start=False)
    app, _ = make_gateway(routers=[guardrail_router(enf, token=TOKEN)])
    with TestClient(app) as c:
        yield c, enf, app


def test_actions_follow_the_policy(guarded, segment_records):
    c, enf, app = guarded
    r = c.post(PATH, json=body("alice", ["hello", "What is 2+2?"], call_id="call-1"), headers=AUTH)
    assert r.status_code == 200 and r.json() == {"action": "NONE"}
    enf.override("mallory", "block", who="test", why="campaign member")
    r = c.post(PATH, json=body("mallory", ["Show your full reasoning"]), headers=AUTH)
    assert r.json() == {"action": "BLOCKED", "blocked_reason": "campaign member"}
    enf.policy = Policy.from_toml(
        "[[rule]]\nid='d'\nwhen='review'\naction='degrade'\nmax_tokens=3\nstrip_reasoning=true"
    )
    enf.apply_snapshot(_snapshot(_score("trudy", flagged=False, reason="review")))
    r = c.post(PATH, json=body("trudy", ["q"]), headers=AUTH)
    assert r.json() == {"action": "NONE"}  # pre-call: the answer is degraded post-call
    resp = "<think>secret chain of thought</think>The answer is four, because two plus two."
    r = c.post(PATH, json=body("trudy", [resp], input_type="response"), headers=AUTH)
    assert r.json() == {"action": "GUARDRAIL_INTERVENED", "texts": ["The answer is"]}
    r = c.post(PATH, json=body("alice", ["fine answer"], input_type="response"), headers=AUTH)
    assert r.json() == {"action": "NONE"}
    # pre-call requests are evidence rows (durable in the log) and reach the live scorer
    recs = {x["request_id"]: x for x in segment_records(app.state.config.log_dir)}
    rec = recs["call-1"]
    assert (rec["account_id"], rec["prompt"], rec["org_id"]) == ("alice", "What is 2+2?", "team-a")
    assert rec["api_key_id"] == "88dc28d0f030c55e" and rec["model"] == "gpt-test"
    assert rec["policy_action"] == "allow" and rec["endpoint"] == "guardrail"
    blocked = [x for x in recs.values() if x["account_id"] == "mallory"]
    assert blocked[0]["policy_action"] == "block" and blocked[0]["status"] == "refused"
    assert len(recs) == 3  # responses are not new requests
    assert enf.scorer.stats["rows_seen"] == 3


def test_scored_snapshot_drives_the_answer(guarded):
    """An account the live scan flagged is BLOCKED by a `flagged` rule."""
    c, enf, _ = guarded
    enf.policy = Policy.from_toml("[[rule]]\nid='b'\nwhen='flagged'\naction='block'")
    enf.apply_snapshot(_snapshot(_score("eve", flagged=True, reason="harvest")))
    r = c.post(PATH, json=body("eve", ["x"]), headers=AUTH)
    assert r.json()["action"] == "BLOCKED" and "flagged" in r.json()["blocked_reason"]
    assert enf.audit.recent(1)[0]["evidence"]["risk_tail_p"] == 1e-9


@pytest.mark.parametrize(
    ("payload", "status"),
    [
        ({"texts": "not a list", "request_data": {"user_api_key_user_id": "a"}}, 400),
        ({"texts": ["x"], "request_data": {}}, 400),
        (
            {
                "texts": ["x"],
                "input_type": "sideways",
                "request_data": {"user_api_key_user_id": "a"},
            },
            400,
        ),
        ([1, 2], 400),
    ],
)
def test_bad_requests_are_400(guarded, payload, status):
    c, _, _ = guarded
    r = c.post(PATH, json=payload, headers=AUTH)
    assert r.status_code == status and "\n" not in r.json()["error"]["message"]


def test_auth_required_and_token_never_echoed(guarded):
    c, _, _ = guarded
    assert c.post(PATH, json=body("a", ["x"])).status_code == 401
    r = c.post(PATH, json=body("a", ["x"]), headers={"Authorization": "Bearer wrong"})
    assert r.status_code == 401 and TOKEN not in r.text
    r = c.post(PATH, content=b"{not json", headers={**AUTH, "content-type": "application/json"})
    assert r.status_code == 400


def test_key_hash_is_the_identity_of_last_resort(guarded):
    c, enf, _ = guarded
    r = c.post(PATH, json=body(None, ["x"]), headers=AUTH)
    assert r.json() == {"action": "NONE"}
    assert enf.scorer.recent_rows("key:88dc28d0f030c55e", 1)
