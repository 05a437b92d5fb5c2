"""The custody claims, each a pure function of bundle files (and, for the mark claims, the
key): `custody build` and `custody verify` call the same functions, so a verified number
is the reported number recomputed, not a second implementation of it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from distilltrace.evidence import EvidenceResult, FamilyResult, family

CAMPAIGN = "campaign"
HARVEST_MARK = "harvest_mark"
RADIO_CLOSED = "radioactivity_closed"
RADIO_OPEN = "radioactivity_open"
RADIO_PREFIX = "radioactivity_prefix"
RADIO_LOGPROBS = "radioactivity_logprobs"
PROVENANCE = "provenance"
MEMBERSHIP = "harvest_membership"
ORDER = (CAMPAIGN, HARVEST_MARK, MEMBERSHIP, RADIO_CLOSED, RADIO_OPEN, RADIO_PREFIX,
         RADIO_LOGPROBS, PROVENANCE)  # fmt: skip
#: The claims about the suspect (the others are about the campaign and its harvest).
SUSPECT_SIDE = (MEMBERSHIP, RADIO_CLOSED, RADIO_OPEN, RADIO_PREFIX, RADIO_LOGPROBS, PROVENANCE)

#: The null of the three radioactivity claims (each adds its test's own null in brackets).
WEIGHTS_NULL = (
    "the suspect's weights are independent of our key (not trained on text marked with it)"
)

#: What each p-value shows, and what it does not, in plain words (the report prints these).
MEANING: dict[str, dict[str, str]] = {
    CAMPAIGN: {
        "shows": "these accounts, taken together, ask for extraction-like outputs (and behave) "
        "unlike the rest of the API's population, beyond what chance among all groups tested "
        "gives: the scan's own rule for calling a group a campaign",
        "not": "who runs the accounts, nor that anyone trained on the outputs; the accounts' "
        "calibration against the population comes from the scan (its files' hashes are listed)",
    },
    HARVEST_MARK: {
        "shows": "the responses these accounts received carry our watermark: they are our "
        "model's outputs served under this key",
        "not": "anything about the suspect model; only that this harvested text is ours",
    },
    MEMBERSHIP: {
        "shows": "the suspect finds the exact answers this campaign received likelier (relative "
        "to our model) than fresh answers our model gives the same prompts under the same "
        "settings: it was trained on these exchanges, the campaign's own harvest, not merely "
        "on text like our model's",
        "not": "who trained it, nor what else it learned from; it rests on the fresh answers "
        "being drawn as the served ones were (our model, its settings and key, another seed), "
        "which the bundle records but only a holder of our model can redraw, and it needs the "
        "suspect's scores (its weights, or an API that returns log-probabilities)",
    },
    RADIO_CLOSED: {
        "shows": "the suspect's own answers to fresh prompts carry our watermark's bias: its "
        "weights were shaped by text marked with our key (it trained on it, directly or not)",
        "not": "who trained the suspect, nor through which account the marked text travelled",
    },
    RADIO_OPEN: {
        "shows": "reading our harvested marked text, the suspect predicts the key's favoured "
        "tokens more often than chance: it learned from text marked with our key",
        "not": "who trained it, nor how much of its training data was ours",
    },
    RADIO_PREFIX: {
        "shows": "given the beginnings of our harvested marked answers, the suspect continues "
        "them with the key's favoured tokens more often than chance: it learned from text "
        "marked with our key (open mode asked through its text-completion interface, without "
        "its weights)",
        "not": "who trained it, nor how much of its training data was ours; a model that "
        "copies from its context gains nothing (windows seen earlier in an answer are not "
        "scored)",
    },
    RADIO_LOGPROBS: {
        "shows": "answering the probes, the suspect puts more probability than our own model "
        "does on the tokens our key favours: its weights lean the way the key pushed our "
        "outputs, so it learned from text marked with our key (closed mode read through the "
        "log-probabilities its API returns)",
        "not": "who trained it, nor how much of its training data was ours; the p-value is "
        "an upper bound on the exact tail (conservative), and our model's probabilities are "
        "recorded in the bundle, not recomputed by verify",
    },
    PROVENANCE: {
        "shows": "the suspect is closer to the reference model than comparable independent "
        "models (the controls) are: consistent with it being derived from the reference",
        "not": "that it was derived through this campaign, and it depends on the controls "
        "being fair stand-ins for innocent models",
    },
}


def campaign_claim(c: Mapping[str, Any]) -> EvidenceResult:
    """The scan's flagging rule for the campaign, as one p-value.

    The scan flags a group on either of two routes, each at half the campaign level: its
    harvest test (what the members ask for: the Gamma test of their harvest tails, the
    best signal Bonferroni-adjusted over the signals) alone, or its behaviour test (the
    Gamma test of their behaviour tails) when the harvest test also reaches
    ``harvest_alpha``. Both are Bonferroni-adjusted over the groups the scan tested. So
    ``p = min(1, 2 min(h, b'))`` with ``b' = b`` if ``h <= harvest_alpha`` else 1: under
    the null (the members are a random sample of the population, so both tails are
    Uniform(0, 1)) ``P(p <= a) <= P(2h <= a) + P(2b <= a) <= a``, whatever their
    dependence, and ``p <= a`` exactly when the scan flags the group at level ``a``.
    A bundle without harvest tails (built before they were recorded) has the behaviour
    test alone."""
    from distilltrace.traffic.fusion import cluster_test

    units = np.asarray(c["units"], dtype=object)
    m = max(1, int(c["n_clusters_tested"]))
    beh = cluster_test(np.asarray(c["member_tail_p"], float), units)
    b = min(1.0, beh.pvalue * m)
    details: dict[str, Any] = {
        "behaviour_pvalue_adjusted": b,
        "n_clusters_tested": m,
        "n_accounts": len(c["members"]),
        "campaign": c.get("label", ""),
    }
    H = c.get("member_harvest_log10_tails") or {}
    if not H:
        null = f"{beh.null}; adjusted (Bonferroni) over the {m} groups the scan tested"
        return EvidenceResult(CAMPAIGN, null, beh.statistic, b, beh.size,
                              {**details, "pvalue_unadjusted": beh.pvalue})  # fmt: skip
    tests = {k: cluster_test(10.0 ** -np.asarray(v, float), units) for k, v in H.items()}
    best = min(tests, key=lambda k: tests[k].pvalue)
    h = min(1.0, tests[best].pvalue * len(tests) * m)
    alpha_h = float(c.get("harvest_alpha", 0.01))
    joint = b if h <= alpha_h else 1.0
    p = min(1.0, 2 * min(h, joint))
    route = "harvest" if h <= joint else "behaviour with harvest"
    stat = tests[best].statistic if route == "harvest" else beh.statistic
    null = (
        "the campaign's accounts are a random sample of the API's population: their "
        "calibrated harvest tails (what they ask for) and behaviour tails are Uniform(0, 1) "
        "(T = sum of capped -ln u per customer unit is at most Gamma(k, 1) in the tail); "
        f"the scan's two routes, each Bonferroni-adjusted over the {m} groups it tested, "
        "combined by a union bound (harvest alone, or behaviour once harvest reaches "
        f"{alpha_h:g})"
    )
    details.update(harvest_pvalue_adjusted=h, harvest_signal=best, harvest_alpha=alpha_h,
                   route=route)  # fmt: skip
    return EvidenceResult(CAMPAIGN, null, stat, p, tests[best].size, details)


def _mark_claim(name: str, null: str, test: Any, extra: Mapping[str, Any]) -> EvidenceResult:
    e = EvidenceResult.of(test, name=name)
    return EvidenceResult(e.name, f"{null} ({test.null})", e.statistic, e.pvalue, e.n,
                          {**e.details, **extra})  # fmt: skip


def harvest_mark_claim(
    wm: Any, tokenizer: Any, harvested: Sequence[Mapping[str, Any]], cfg: Mapping[str, Any]
) -> EvidenceResult:
    """The pooled watermark test over every harvested response (prompt windows excluded)."""
    from distilltrace.marks.detect import detect_texts

    rep = detect_texts(
        wm,
        [str(h["response"]) for h in harvested],
        tokenizer,
        prompts=[str(h["prompt"]) for h in harvested],
        alpha=float(cfg["mark_alpha"]),
        min_scored=int(cfg["min_scored"]),
    )
    null = "the harvested responses were produced independently of our key"
    extra = {"n_texts": len(harvested), "n_texts_flagged_holm": rep.n_flagged_holm}
    return _mark_claim(HARVEST_MARK, null, rep.pooled, extra)


#: The values of CustodyConfig.closed_selection (see closed_selection).
CLOSED_SELECTIONS = ("auto", "both")


def closed_selection(wm: Any, cfg: Mapping[str, Any], have_probs: bool) -> tuple[int | None, bool]:
    """Which tokens closed mode scores: (window filter's min count or None, whether only the
    tokens our model was unsure of).

    `closed_selection` "auto" (the default): with our model's probabilities and a
    distortion-free scheme, only the tokens it gave <= max_reference_prob (the mark moved
    no confident choice, so a student learned nothing there); otherwise the window filter.
    Session 18 measured each alone beat the other on its kind of scheme (tournament: 5.3e-15
    against 7.6e-7; green list: 4.2e-8 against 1.2e-4, docs/benchmarks.md); together they
    leave too few tuples. "both" applies both (bundles written before "auto" existed)."""
    fmc, cap = cfg.get("filter_min_count"), cfg.get("max_reference_prob")
    fmc = None if fmc is None else int(fmc)
    unsure = have_probs and cap is not None
    mode = cfg.get("closed_selection", "both")
    if mode == "auto":
        if unsure and wm.impl.distortion_free:
            return None, True
        return fmc, False
    if mode not in CLOSED_SELECTIONS:
        raise ValueError(f"closed_selection must be auto or both, got {mode!r}")
    return fmc, unsure


def radio_closed_claim(
    wm: Any,
    tokenizer: Any,
    probes: Sequence[str],
    outputs: Sequence[str],
    harvested: Sequence[Mapping[str, Any]],
    cfg: Mapping[str, Any],
    reference_probs: Sequence[Sequence[float]] | None = None,
) -> EvidenceResult:
    """Closed mode, supervised by the harvested outputs: the suspect's answers to the
    probes, prompt windows excluded, and the tokens `closed_selection` picks (windows
    frequent in the harvested text, or the tokens our model was unsure of)."""
    from distilltrace.marks.radioactivity import score_closed

    fmc, use = closed_selection(wm, cfg, reference_probs is not None)
    cap = cfg.get("max_reference_prob")
    test, n_allowed = score_closed(
        wm,
        list(outputs),
        list(probes),
        tokenizer,
        marked_texts=[str(h["response"]) for h in harvested],
        filter_min_count=fmc,
        reference_probs=reference_probs if use else None,
        max_reference_prob=float(cap) if use else 1.0,
        alpha=float(cfg["mark_alpha"]),
        min_scored=int(cfg["min_scored"]),
    )
    extra = {"n_probes": len(probes), "n_allowed_windows": n_allowed, "filter_min_count": fmc,
             "max_reference_prob": float(cap) if use else None}  # fmt: skip
    return _mark_claim(RADIO_CLOSED, WEIGHTS_NULL, test, extra)


def _open_test(wm: Any, tokenizer: Any, reading: Any, harvested, fmc, cfg) -> Any:
    """Open mode's test of a reading (open or prefix mode), with the supervised window
    filter when `fmc` is given."""
    from distilltrace.marks.radioactivity import frequent_window_seeds, score_open

    allowed = None
    if fmc is not None:
        texts = [str(h["response"]) for h in harvested]
        allowed = frequent_window_seeds(wm, tokenizer, texts, int(fmc))
    return score_open(
        wm, reading, allowed_seeds=allowed, alpha=float(cfg["mark_alpha"]),
        min_scored=int(cfg["min_scored"]),
    )  # fmt: skip


def radio_open_claim(
    wm: Any,
    tokenizer: Any,
    reading: Mapping[str, Any],
    harvested: Sequence[Mapping[str, Any]],
    cfg: Mapping[str, Any],
) -> EvidenceResult:
    """Open mode: the suspect's recorded top-1 predictions along the harvested text."""
    from distilltrace.marks.radioactivity import OpenReading

    r = OpenReading(
        tuple(tuple(int(t) for t in s) for s in reading["seqs"]),
        tuple(int(s) for s in reading["starts"]),
        tuple(tuple(int(t) for t in p) for p in reading["preds"]),
    )
    test = _open_test(wm, tokenizer, r, harvested, cfg.get("filter_min_count"), cfg)
    return _mark_claim(RADIO_OPEN, WEIGHTS_NULL, test, {"n_texts": len(r.seqs)})


def radio_prefix_claim(
    wm: Any,
    tokenizer: Any,
    transcript: Mapping[str, Any],
    harvested: Sequence[Mapping[str, Any]],
    cfg: Mapping[str, Any],
) -> EvidenceResult:
    """Prefix mode: the suspect's recorded continuations of prefixes of the harvested
    responses, re-tokenised with the key's tokenizer and scored as open mode
    (marks.radioactivity_prefix). The probed positions are recomputed from the harvest and
    the stride; a transcript whose probes differ from them raises ValueError."""
    from distilltrace.marks.detect import encode_text
    from distilltrace.marks.radioactivity_prefix import prefix_positions, prefix_predictions

    n = int(cfg["open_max_tokens"])
    answers = [encode_text(tokenizer, str(h["response"]))[:n] for h in harvested]
    want = prefix_positions(answers, wm.context_width, int(cfg["prefix_stride"]))
    probes = transcript["probes"]
    if [(int(p["text"]), int(p["position"])) for p in probes] != want:
        raise ValueError(
            f"the probed positions are not every {cfg['prefix_stride']}-th token of the "
            "harvested responses"
        )
    if len(transcript["heads"]) != len(answers):
        raise ValueError("one suspect prompt (head) per harvested response is needed")
    conts = [str(p["continuation"]) for p in probes]
    reading = prefix_predictions(tokenizer, answers, want, conts)
    test = _open_test(wm, tokenizer, reading, harvested, cfg.get("prefix_filter_min_count"), cfg)
    extra = {
        "n_texts": len(answers),
        "n_queries": len(want),
        "n_usable_probes": reading.n_predicted,
        "stride": int(cfg["prefix_stride"]),
        "new_tokens": int(transcript["new_tokens"]),
    }
    return _mark_claim(RADIO_PREFIX, WEIGHTS_NULL, test, extra)


MEMBERSHIP_RULES = 3  # the exchange-selection rules new bundles record (CustodyConfig)


def membership_exchanges(
    harvested: Sequence[Mapping[str, Any]],
    settings: Sequence[Mapping[str, Any] | None],
    cfg: Mapping[str, Any],
    contexts: Sequence[Mapping[str, Any]] | None = None,
) -> tuple[list[int], dict[str, int]]:
    """Which harvested exchanges the membership claim tests (indices, in harvest order), and
    how many were left out, by reason (`_why_left_out`): serving settings unknown, the
    served context not redrawable, greedy, a repeat of an earlier (prompt, answer) pair
    (one draw counts once: the exact test needs independent exchanges), and over
    `membership_max` (a seeded sample is kept). `contexts`: each exchange's logged context
    (`logs.exchange_contexts`); `membership_rules` (absent: 1, the rules of bundles built
    before session 33) says which rules apply, so a bundle verifies as it was built."""
    import random

    rules = int(cfg.get("membership_rules", 1))
    left = {"unknown_settings": 0, "system_prompt": 0, "greedy": 0, "duplicate": 0,
            "over_max": 0, **({"earlier_turns": 0} if rules >= 2 else {}),
            **({"hidden_context": 0} if rules >= 3 else {})}  # fmt: skip
    keep, seen = [], set()
    for i, (h, st) in enumerate(zip(harvested, settings, strict=True)):
        pair = (str(h["prompt"]), str(h["response"]))
        why = _why_left_out(st, contexts[i] if contexts is not None else None, rules)
        if why is None and pair in seen:
            why = "duplicate"
        if why is not None:
            left[why] += 1
        else:
            seen.add(pair)
            keep.append(i)
    most = int(cfg.get("membership_max", 128))
    if len(keep) > most:
        left["over_max"] = len(keep) - most
        keep = sorted(random.Random(int(cfg.get("seed", 0))).sample(keep, most))
    return keep, left


def _why_left_out(
    st: Mapping[str, Any] | None, ctx: Mapping[str, Any] | None, rules: int
) -> str | None:
    """Why one exchange cannot be tested (None: it can). Fresh answers must be draws of
    the served distribution, so our model must be asked exactly what it was asked:
    - "unknown_settings": no temperature or length cap (`logs.serving_settings`);
    - "system_prompt": served after a system prompt that cannot be sent again (rules 1,
      or no logged context, or a digest instead of the text: `logs.redrawable_system`);
      under rules 2 the fresh answers are drawn after the same system prompt;
    - "earlier_turns" (rules 2): the request held other turns than the last user one
      (the log's `context_messages`), which the log does not keep;
    - "hidden_context" (rules 3): the prompt tokens billed (the log's `input_tokens`)
      are not our model's encoding of the system prompt and user turn the row shows
      ("ours", `with_our_counts`), so the request held text the row does not (earlier
      turns in a log without `context_messages`, a hidden system prompt, another
      template); a row without a count is not checked;
    - "greedy": temperature 0 (a fresh answer is the served one: no information)."""
    from distilltrace.custody.logs import redrawable_system

    if st is None:
        return "unknown_settings"
    if st.get("system_prompt") and not (
        rules >= 2 and ctx is not None and redrawable_system(str(ctx.get("system") or ""))
    ):
        return "system_prompt"
    if rules >= 2 and ctx is not None and int(ctx.get("earlier") or 0) > 0:
        return "earlier_turns"
    billed = ctx.get("input_tokens") if ctx is not None else None
    if rules >= 3 and billed is not None and billed != ctx.get("ours"):
        return "hidden_context"
    if float(st["temperature"]) <= 0:
        return "greedy"
    return None


def with_our_counts(
    contexts: Sequence[Mapping[str, Any]],
    harvested: Sequence[Mapping[str, Any]],
    ours: Mapping[str, int],
) -> list[dict[str, Any]]:
    """`contexts` with "ours", our encoding's token count of each exchange's system prompt
    and user turn (`provenance.membership.chat_input_tokens`), by request id: compared
    with the billed count under rules 3. A bundle records them
    (transcripts/membership_context.jsonl) so verify selects as the build did."""
    return [{**c, "ours": ours.get(str(h["request_id"]))}
            for c, h in zip(contexts, harvested, strict=True)]  # fmt: skip


def membership_claim(
    transcript: Sequence[Mapping[str, Any]], left_out: Mapping[str, int], cfg: Mapping[str, Any]
) -> EvidenceResult:
    """The exact rank test of the served answers against fresh ones
    (provenance.membership), from the recorded log-probabilities: for each exchange the
    served answer first, then its fresh answers, each scored by the suspect and our model."""
    from distilltrace.provenance.membership import test_logprobs

    k = int(cfg.get("membership_fresh", 1))
    if any(len(t["answers"]) != k + 1 for t in transcript):
        raise ValueError(f"each exchange needs its served answer and {k} fresh answers")
    test = test_logprobs([t["suspect_logprob"] for t in transcript],
                         [t["reference_logprob"] for t in transcript],
                         [t["answers"] for t in transcript], seed=int(cfg.get("seed", 0)))  # fmt: skip
    extra = {"n_exchanges": test.n, "left_out": dict(left_out)}
    e = EvidenceResult.of(test, name=MEMBERSHIP)
    return EvidenceResult(e.name, e.null, e.statistic, e.pvalue, e.n, {**e.details, **extra})


# Detail keys added to a claim after bundles were first written: verify compares them only
# when the bundle has them (an older bundle of the same version still verifies).
LATER_DETAILS = {PROVENANCE: ("per_test", "standing", "monte_carlo_floor", "not_run")}


def _finite(x: Any) -> float | None:
    """A JSON-stable number: None for missing or non-finite values (NaN != NaN)."""
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if np.isfinite(v) else None


def _provenance_evidence(t: Any) -> dict[str, Any]:
    """One provenance test's evidence per control: its p-value and the mean difference it
    tested (after the margin where the test has one), so a reader sees which control
    decided the intersection-union p-value and by how much."""
    return {
        "pvalue": _finite(t.pvalue),
        "effect": _finite(t.effect),
        "effect_label": t.effect_label,
        "margin": _finite(t.details.get("margin")),
        "per_control": {
            c: {
                "pvalue": _finite(v.get("pvalue")),
                "difference": _finite(v.get("mean_difference")),
                "n": int(v.get("n") or 0),
            }
            for c, v in t.per_control.items()
        },
    }


def _standing(st: dict[str, Any]) -> dict[str, Any]:
    """A test's model-level standing (provenance.standing): would one more independent
    model of the controls' kind stand as far above them as the suspect does?"""
    return {
        "statistic": _finite(st["statistic"]),
        "pvalue": _finite(st["pvalue"]),
        "pvalue_rank": _finite(st["pvalue_rank"]),
        "n": int(st["n"]),
    }


def _at_floor(tests: Mapping[str, Any]) -> dict[str, list[str]]:
    """Per test that ran, the controls whose p-value is the sign-flip test's Monte Carlo
    floor 1 / (B + 1) (`PairedResult.at_floor`): valid, but the exact p is smaller still."""
    out = {}
    for k, t in tests.items():
        hit = [c for c, v in t.per_control.items() if v.get("monte_carlo_floor")] if t.ran else []
        if hit:
            out[k] = sorted(hit)
    return out


def _not_run(tests: Mapping[str, Any]) -> dict[str, str]:
    """Tests that count as p = 1 without having looked at any data, and why
    (`TestResult.looked_at_no_data`: stopped because the earlier tests had decided, or a
    greedy stream that drew no probe)."""
    return {k: str(t.skipped) for k, t in tests.items() if t.looked_at_no_data}


def provenance_claim(res: Any) -> EvidenceResult:
    """The provenance test's combined p-value for the (one) reference: Bonferroni over the
    tests that ran, each an intersection-union test against every control."""
    ref = res.references[0]
    ran = {k: t.pvalue for k, t in ref.tests.items() if t.ran}
    nulls = "; ".join(f"{k}: {t.null}" for k, t in ref.tests.items() if t.ran)
    p = ref.combined_pvalue
    return EvidenceResult(
        PROVENANCE,
        f"the suspect is no closer to the reference than the controls are (union over the "
        f"tests that ran, Bonferroni: {nulls or 'none ran'})",
        min(ran.values()) if ran else None,
        None if p is None else float(p),
        len(ran),
        {
            "reference": ref.reference,
            "controls": list(ref.controls),
            "per_test_pvalue": ran,
            "per_test": {k: _provenance_evidence(t) for k, t in ref.tests.items() if t.ran},
            "standing": {
                k: _standing(t.details["standing"])
                for k, t in ref.tests.items()
                if t.ran and t.details.get("standing")
            },
            "monte_carlo_floor": _at_floor(ref.tests),
            "not_run": _not_run(ref.tests),
            "skipped": {k: t.skipped for k, t in ref.tests.items() if not t.ran},
            "identical": ref.identical,
            "suspect_queries": int(res.suspect_queries),
            "verdict": res.verdict,
        },
    )


def _candidate_ids(row: Mapping[str, Any], top_ids: np.ndarray, k: int, arr: Any) -> np.ndarray:
    """One answer's candidate ids [steps, 2k]: the suspect's top-k, then our model's top-k
    (`reference_top_ids`; earlier bundles stored all 2k as `reference_ids`)."""
    if "reference_ids" in row:
        return arr(row["reference_ids"], 2 * k).astype(np.int64)
    ours = arr(row["reference_top_ids"], k).astype(np.int64)
    return np.concatenate([top_ids, ours], 1)


def radio_logprobs_claim(
    wm: Any, tokenizer: Any, transcript: Mapping[str, Any], cfg: Mapping[str, Any]
) -> EvidenceResult:
    """Logprobs mode (marks.radioactivity_logprobs): the suspect's recorded greedy answers
    to the probes with their top-k log-probabilities (and our model's probabilities of the
    candidates, when recorded), weighted q - p (or q) and tested. Malformed: ValueError."""
    from distilltrace.marks.radioactivity_logprobs import StepReading, score_logprobs

    k = int(transcript["top_k"])
    rows = transcript["answers"]

    def arr(x: Any, width: int) -> np.ndarray:  # rows of `width` numbers; None -> nan
        return np.array(x, dtype=np.float64).reshape(len(x), width)

    ids = [arr(r["top_ids"], k).astype(np.int64) for r in rows]
    lps = [np.nan_to_num(arr(r["top_logprobs"], k), nan=-np.inf) for r in rows]
    reading = StepReading(tuple(str(r["prompt"]) for r in rows), tuple(str(r["text"]) for r in rows),
                          tuple(tuple(int(t) for t in r["chosen"]) for r in rows), tuple(ids),
                          tuple(lps), k)  # fmt: skip
    ref = None
    if rows and all("reference_probs" in r for r in rows):
        ref = ([_candidate_ids(r, i, k, arr) for r, i in zip(rows, ids, strict=True)],
               [arr(r["reference_probs"], 2 * k) for r in rows])  # fmt: skip
    test = score_logprobs(wm, reading, tokenizer, reference_probs=ref,
                          alpha=float(cfg["mark_alpha"]), min_scored=int(cfg["min_scored"]))  # fmt: skip
    extra = {"n_probes": len(rows), "top_k": k, "n_steps": reading.n_steps,
             "weights": "q" if ref is None else "q - p (our model)"}  # fmt: skip
    return _mark_claim(RADIO_LOGPROBS, WEIGHTS_NULL, test, extra)


def combine(claims: Sequence[EvidenceResult], alpha: float) -> FamilyResult:
    """Holm over every claim that ran (in the fixed claim order)."""
    return family(sorted(claims, key=lambda c: ORDER.index(c.name)), alpha=alpha)


def attribution(fam: FamilyResult, claims: Sequence[EvidenceResult]) -> dict[str, Any]:
    """The one family-wise statement: attributed when every claim ran and Holm rejects each
    at alpha; the suspect-side claims decide whether the suspect is implicated."""
    suspect_side = [c for c in fam.claims if c.name in SUSPECT_SIDE]
    ran = {c.name for c in fam.claims}
    all_ran = all(c.name in ran for c in claims)
    attributed = all_ran and fam.all_rejected and bool(suspect_side)
    if attributed:
        text = (
            f"All {fam.n} claims hold at family-wise level {fam.alpha:g} (Holm): the campaign "
            "harvested our marked outputs, and the suspect carries their trace."
        )
    else:
        held = [c.name for c in fam.claims if c.reject]
        text = (
            f"Not attributed at family-wise level {fam.alpha:g} (Holm): claims that hold: "
            f"{', '.join(held) or 'none'}; not: "
            f"{', '.join(c.name for c in fam.claims if not c.reject) or 'none'}"
            + (f"; did not run: {', '.join(fam.skipped)}" if fam.skipped else "")
            + "."
        )
    return {"attributed": attributed, "statement": text, "alpha": fam.alpha}
