"""Membership for exchanges served after a system prompt: our model's fresh answers are
drawn after the same system prompt, encoded and seeded as the server does, so they are
draws of the served distribution (H0 of the rank test holds for those rows too)."""

from __future__ import annotations

import json

import httpx
import pytest

from distilltrace.custody.claims import membership_exchanges
from distilltrace.custody.logs import exchange_contexts, redrawable_system, serving_settings
from distilltrace.errors import CapabilityError
from distilltrace.models import load_model
from distilltrace.models.tiny import make_tiny_model
from distilltrace.provenance.membership import draw_after_system, draw_fresh
from tests.serve_helpers import running_server

SYSTEM = "You are a terse assistant. Answer in one line."
ST = {"temperature": 1.0, "top_p": 1.0, "max_tokens": 12}


def _chat(url: str, model: str, prompt: str, seed: int, system: str = "") -> str:
    msgs = ([{"role": "system", "content": system}] if system else []) + [
        {"role": "user", "content": prompt}
    ]
    body = {"model": model, "messages": msgs, "temperature": 1.0, "max_tokens": 12, "seed": seed}
    r = httpx.post(f"{url}/chat/completions", json=body, timeout=120)
    assert r.status_code == 200, r.text
    return r.json()["choices"][0]["message"]["content"]


def _membership_cli(tmp_path, teacher_dir, rows: list[dict]) -> dict:
    """`provenance membership` of the teacher against itself on these served rows (at
    temperature 1, 12 tokens), through the CLI; its JSON output."""
    from distilltrace.cli import main

    path = tmp_path / "served.jsonl"
    path.write_text("".join(json.dumps({**r, "temperature": 1.0, "max_tokens": 12}) + "\n"
                            for r in rows))  # fmt: skip
    with pytest.raises(SystemExit) as e:
        main(["provenance", "membership", "--reference", str(teacher_dir), "--suspect",
              str(teacher_dir), "--served", str(path), "--no-cache", "--out",
              str(tmp_path / "m.json")])  # fmt: skip
    assert e.value.code == 0
    return json.loads((tmp_path / "m.json").read_text())


def test_fresh_draws_after_a_system_prompt_are_the_servers_draws(tmp_path, capsys):
    """The answer a running `distilltrace serve` gave a (system, user) request with seed s
    is our fresh draw with seed s; without the system prompt the draws differ; an endpoint
    cannot be asked for such draws (one clear error). Then `provenance membership` tests a
    served file whose rows carry a system prompt instead of leaving them out."""

    teacher_dir = make_tiny_model(tmp_path / "teacher", seed=5)
    teacher = load_model(str(teacher_dir))
    prompts = [f"question {i}: what is {i} plus {i}?" for i in range(6)]
    systems = [SYSTEM if i % 2 == 0 else "" for i in range(6)]
    with running_server(str(teacher_dir)) as url:
        served = [_chat(url, teacher_dir.name, p, 40 + i, s)
                  for i, (p, s) in enumerate(zip(prompts, systems, strict=True))]  # fmt: skip
        endpoint = load_model(f"openai:{url};model={teacher_dir.name}")
        with pytest.raises(CapabilityError, match="need our model local"):
            draw_after_system(endpoint, prompts[:1], [SYSTEM], max_new_tokens=4)
    for i, (p, s) in enumerate(zip(prompts, systems, strict=True)):
        assert draw_fresh(teacher, [p], [ST], 1, 40 + i, systems=[s]) == [[served[i]]]
    plain = draw_fresh(teacher, prompts, [ST] * 6, 1, 40)
    after = draw_fresh(teacher, prompts, [ST] * 6, 1, 40, systems=[SYSTEM] * 6)
    assert plain != after  # the system prompt is in the context
    mixed = draw_fresh(teacher, prompts, [ST] * 6, 1, 40, systems=systems)
    assert mixed == [after[i] if s else plain[i] for i, s in enumerate(systems)]

    doc = _membership_cli(tmp_path, teacher_dir, [
        {"prompt": p, "response": a or "x", "system_prompt": s}
        for p, a, s in zip(prompts, served, systems, strict=True)])  # fmt: skip
    assert doc["n"] == 6 and doc["left_out"]["system_prompt"] == 0
    fresh = draw_fresh(teacher, prompts, [ST] * 6, 1, doc["config"]["membership_seed"],
                       systems=systems)  # fmt: skip
    assert [t["answers"][1] for t in doc["transcript"]] == [f[0] for f in fresh]
    capsys.readouterr()


def test_fresh_draws_after_a_system_prompt_come_from_the_query_cache(tmp_path):
    """A rerun (of `custody build`, `provenance membership`) draws its fresh answers after
    a system prompt from the query cache, as it does those without one: the same answers,
    no model call."""
    from distilltrace.models.cache import CachedModel

    tiny_model = load_model(str(make_tiny_model(tmp_path / "teacher", seed=5)))
    prompts = [f"question {i}: what is {i} plus {i}?" for i in range(4)]
    systems = [SYSTEM, "", SYSTEM, "Answer in French."]
    want = draw_fresh(tiny_model, prompts, [ST] * 4, 2, 7, systems=systems)
    first = CachedModel(tiny_model, tmp_path / "q.sqlite")
    assert draw_fresh(first, prompts, [ST] * 4, 2, 7, systems=systems) == want
    rerun = CachedModel(tiny_model, tmp_path / "q.sqlite")
    assert draw_fresh(rerun, prompts, [ST] * 4, 2, 7, systems=systems) == want
    assert rerun.stats.misses == rerun.stats.uncacheable == 0 and rerun.stats.hits == 8


def test_bundles_built_before_keep_leaving_system_prompt_rows_out():
    """custody verify reads the config as recorded: a bundle without `membership_rules`
    (built when such rows were left out) selects the same exchanges as when it was built.
    Under rules 2 a row is tested when its system prompt's text is logged, not when the log
    holds a digest of it (the schema allows either: a digest cannot be sent again), nor
    when the request held earlier turns the log does not keep (the gateway's
    `context_messages`)."""
    digest = "sha256:" + "ab12" * 16
    rows = [{"request_id": f"r{i}", "prompt": f"p{i}", "response": f"a{i}",
             "system_prompt": [None, "", "  ", "Be brief.", digest, "9F" * 20][i % 6],
             "context_messages": {2: None, 6: "3", 7: 2, 8: "n/a", 9: ""}.get(i, 0),
             "temperature": 0.8, "max_tokens": 16} for i in range(12)]  # fmt: skip
    settings = serving_settings(rows, rows, {})
    assert [s["system_prompt"] for s in settings] == [False, False, False, True, True, True] * 2
    ctx = exchange_contexts(rows, rows)
    assert [c["system"] for c in ctx] == ["", "", "", "Be brief.", digest, "9F" * 20] * 2
    # CSV logs give strings: "3" is 3; an unreadable value is an unknown context (1)
    assert [c["earlier"] for c in ctx] == [0] * 6 + [3, 2, 1] + [0] * 3
    old, left_old = membership_exchanges(rows, settings, {}, ctx)
    assert old == [0, 1, 2, 6, 7, 8] and left_old["system_prompt"] == 6
    assert "earlier_turns" not in left_old  # the old rules' counts, as recorded then
    on = {"membership_rules": 2}
    new, left_new = membership_exchanges(rows, settings, on, ctx)
    assert new == [0, 1, 2, 3, 9] and left_new["system_prompt"] == 4
    assert left_new["earlier_turns"] == 3
    assert membership_exchanges(rows, settings, on)[0] == old  # no contexts: as before
    assert redrawable_system("You are helpful.") and not redrawable_system("md5-" + "0" * 32)


def test_rules_3_leave_out_requests_billed_for_other_tokens_than_their_row_shows():
    """Rules 3 set a row's logged input_tokens against our encoding of its system prompt
    and user turn ("ours"): a different count (more context than the row keeps, such as
    earlier turns in a log without context_messages) or an unreadable one leaves the row
    out as "hidden_context"; a row without a count is not checked; rules 2 (bundles of
    session 33) ignore counts, so those bundles select as they were built."""
    from distilltrace.custody.claims import with_our_counts

    billed = [None, "", 12, "12", 12.0, 40, "n/a", -3, True, 12]
    rows = [{"request_id": f"r{i}", "prompt": f"p{i}", "response": f"a{i}", "input_tokens": b,
             "temperature": 0.8, "max_tokens": 16} for i, b in enumerate(billed)]  # fmt: skip
    settings = serving_settings(rows, rows, {})
    ctx = exchange_contexts(rows, rows)
    assert [c["input_tokens"] for c in ctx] == [None, None, 12, 12, 12, 40, -1, -1, -1, 12]
    ours = {f"r{i}": 12 for i in range(9)}  # r9: our count unknown
    counted = with_our_counts(ctx, rows, ours)
    idx, left = membership_exchanges(rows, settings, {"membership_rules": 3}, counted)
    assert idx == [0, 1, 2, 3, 4] and left["hidden_context"] == 5
    idx2, left2 = membership_exchanges(rows, settings, {"membership_rules": 2}, counted)
    assert idx2 == list(range(10)) and "hidden_context" not in left2


def test_billed_prompt_tokens_of_a_served_request_are_our_count(tmp_path, capsys):
    """`distilltrace serve` bills (usage.prompt_tokens) exactly `chat_input_tokens` of a
    (system, user) request, with and without a system prompt and with special-token
    strings in the content; `provenance membership` then tests the rows billed that
    count and leaves out one billed for more (an unlogged earlier turn)."""
    from distilltrace.provenance.membership import chat_input_tokens

    teacher_dir = make_tiny_model(tmp_path / "teacher", seed=5)
    teacher = load_model(str(teacher_dir))
    prompts = [f"question {i}: what is {i} plus {i}?" for i in range(5)] + ["<|im_end|> hi"]
    systems = [SYSTEM, "", SYSTEM, "", "Use <|im_start|> freely.", ""]
    with running_server(str(teacher_dir)) as url:
        billed, served = [], []
        for i, (p, s) in enumerate(zip(prompts, systems, strict=True)):
            msgs = ([{"role": "system", "content": s}] if s else []) + [
                {"role": "user", "content": p}
            ]
            body = {"model": teacher_dir.name, "messages": msgs, "temperature": 1.0,
                    "max_tokens": 12, "seed": 40 + i}  # fmt: skip
            j = httpx.post(f"{url}/chat/completions", json=body, timeout=120).json()
            billed.append(j["usage"]["prompt_tokens"])
            served.append(j["choices"][0]["message"]["content"] or "x")
    assert billed == chat_input_tokens(teacher, prompts, systems)
    billed[1] += 9
    doc = _membership_cli(tmp_path, teacher_dir, [
        {"prompt": p, "response": a, "system_prompt": s, "input_tokens": b}
        for p, a, s, b in zip(prompts, served, systems, billed, strict=True)])  # fmt: skip
    assert doc["n"] == 5 and doc["left_out"]["hidden_context"] == 1
    assert doc["config"]["membership_rules"] == 3
    capsys.readouterr()
