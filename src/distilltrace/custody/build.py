"""custody build: gather a campaign's exchanges, test the suspect, write the bundle.

Every model query made here is recorded in the bundle (transcripts), and every claim is
computed by `custody.claims` from the recorded files, the same functions `verify` runs.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import math
import random
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from distilltrace.custody import claims as C
from distilltrace.custody.bundle import (
    CustodyError,
    Manifest,
    add_files,
    seal,
    sha256_file,
    software,
    write_json,
    write_jsonl,
)
from distilltrace.custody.logs import customer_units, harvested_of, member_lines, parse_segment
from distilltrace.custody.record import RecordingModel
from distilltrace.evidence import EvidenceResult
from distilltrace.provenance.membership import FRESH_SEED

Note = Callable[[str], None]
PREFIX_MODES = ("auto", "on", "off")


@dataclass(frozen=True)
class CustodyConfig:
    """Every parameter of a custody build (recorded in the manifest; verify reads them)."""

    alpha: float = 0.01  # family-wise level of the custody statement (Holm over the claims)
    mark_alpha: float = 1e-3  # per-test verdict level of the mark tests (their own verdicts)
    min_scored: int = 16  # fewer scored tuples: the mark test does not run
    n_probes: int = 64  # closed-mode probe prompts
    reelicit: bool = True  # probes: harvested prompts first (seeded sample), then fresh ones
    probe_seed: int = 7
    max_new_tokens: int = 96  # suspect answers to the probes
    temperature: float = 0.0  # suspect sampling (0: greedy, which carried the most evidence)
    seed: int = 0
    filter_min_count: int | None = 2  # supervised: windows seen >= this often in the harvest
    # closed mode with the reference's weights: score only tokens it gave <= this (None: off)
    max_reference_prob: float | None = 0.5
    # which of the two selections closed mode applies (claims.closed_selection): "auto" picks
    # one by the scheme, "both" applies both
    closed_selection: str = "auto"
    open_mode: bool = True  # also open mode when the suspect's weights are local
    open_max_tokens: int = 256
    open_batch_size: int = 8
    # prefix mode (marks.radioactivity_prefix): open mode through the suspect's text
    # completion; "auto" runs it when open mode cannot (an endpoint, another tokenizer)
    prefix_mode: str = "auto"
    prefix_stride: int = 4  # probe every N-th token of each harvested response
    prefix_format: str | None = None  # the suspect's prompt pattern ({prompt}); None: its template
    prefix_tokens: int | None = None  # tokens per probe; None: 1 on the key's tokenizer, else 3
    prefix_filter_min_count: int | None = None  # the supervised window filter (None: off)
    prefix_batch_size: int = 16
    # logprobs mode (marks.radioactivity_logprobs): closed mode read through the top-k
    # log-probabilities the suspect returns with its answers; "auto" runs it when it can
    logprobs_mode: str = "off"
    logprobs_top_k: int = 20
    provenance: dict[str, Any] = field(default_factory=dict)  # ProvenanceConfig overrides
    # harvest membership (provenance.membership): the suspect's likelihood of the served
    # answers against fresh answers our model draws under the same settings and key
    membership: bool = True
    membership_fresh: int = 1  # fresh answers per exchange (k; the rank is out of k + 1)
    membership_max: int = 128  # exchanges tested at most (a seeded sample beyond it)
    membership_seed: int = FRESH_SEED  # fresh answer j is drawn with seed membership_seed + j
    # which exchanges membership tests (custody.claims._why_left_out): 3 also leaves out
    # requests whose billed input_tokens are not our encoding of what the row shows; 2
    # (bundles of session 33) tests those served after a system prompt (fresh answers
    # drawn after it) and leaves out requests with other turns (the log's
    # context_messages); 1, the rules of bundles built before (absent there), left every
    # system-prompt exchange out
    membership_rules: int = C.MEMBERSHIP_RULES
    # the serving settings, for log rows that lack them (None: such rows are left out)
    served_temperature: float | None = None
    served_max_tokens: int | None = None
    served_top_p: float = 1.0

    def __post_init__(self) -> None:
        if self.closed_selection not in C.CLOSED_SELECTIONS:
            raise CustodyError(
                f"closed_selection must be auto or both, got {self.closed_selection!r}"
            )
        if self.prefix_mode not in PREFIX_MODES:
            raise CustodyError(f"prefix_mode must be auto, on or off, got {self.prefix_mode!r}")
        if self.logprobs_mode not in PREFIX_MODES:
            raise CustodyError(f"logprobs_mode must be auto, on or off, got {self.logprobs_mode!r}")
        if not 1 <= self.logprobs_top_k <= 100:
            raise CustodyError("logprobs_top_k must be in 1..100")
        if self.prefix_stride < 1 or (self.prefix_tokens is not None and self.prefix_tokens < 1):
            raise CustodyError("prefix_stride and prefix_tokens must be >= 1")
        if self.membership_fresh < 1 or self.membership_max < 1:
            raise CustodyError("membership_fresh and membership_max must be >= 1")
        if not 1 <= self.membership_rules <= C.MEMBERSHIP_RULES:
            raise CustodyError(f"membership_rules must be 1 to {C.MEMBERSHIP_RULES}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CustodyConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


@dataclass
class CustodyInputs:
    """What a custody build reads: logs and their scan, the campaign, the key, the models."""

    logs: Sequence[str | Path]
    scan_dir: str | Path
    campaign: int | Sequence[str]  # a cluster id of the scan, or the accounts
    key_files: Sequence[str | Path]
    suspect: Any  # a Model (weights, or an HTTP endpoint)
    reference: Any | None = None  # the served reference model (provenance); None: skipped
    controls: Sequence[Any] = ()
    tokenizer: Any | None = None  # the key's tokenizer (default: the suspect's or key spec's)
    probes: Sequence[str] | None = None
    # logits processors the server applied before the watermark's, if any: fresh answers
    # (the membership claim) are drawn through the same pipeline as the served ones
    serving_processors: Sequence[Any] = ()


@dataclass(frozen=True)
class BuildResult:
    out: Path
    manifest_sha256: str
    report: dict[str, Any]
    seconds: dict[str, float] = field(default_factory=dict)  # wall time of each phase


class _Phases:
    """Announces each phase of a build through `note` and times it (`seconds`): what a
    build spends its time on, shown as it goes and kept in the result (not in the bundle:
    timings are not evidence)."""

    def __init__(self, note: Note) -> None:
        self.note, self.seconds = note, {}

    @contextmanager
    def __call__(self, name: str, what: str) -> Iterator[dict[str, str]]:
        """Yields a dict; a phase that did not run sets its "skipped" reason in it, and
        its end is noted as skipped with that reason instead of done."""
        self.note(what)
        t0 = time.perf_counter()
        outcome: dict[str, str] = {}
        yield outcome
        self.seconds[name] = round(time.perf_counter() - t0, 1)
        if "skipped" in outcome:
            self.note(f"{name}: skipped ({outcome['skipped']})")
        else:
            self.note(f"{name}: done in {self.seconds[name]:.0f} s")

    @staticmethod
    def ran(outcome: dict[str, str], result: Any) -> Any:
        """`result`, with its skip reason recorded in `outcome` when it is one (a str)."""
        if isinstance(result, str):
            outcome["skipped"] = result
        return result


def _scan_campaign(scan_dir: Path, campaign: int | Sequence[str]) -> dict[str, Any]:
    """The campaign's members, their calibrated behaviour and harvest tails, and the number
    of groups the scan tested (its Bonferroni factor)."""
    import pandas as pd

    need = [scan_dir / n for n in ("campaigns.json", "accounts.parquet", "summary.json")]
    for p in need:
        if not p.is_file():
            raise CustodyError(f"{p} not found: --scan must be a traffic scan folder")
    camps = json.loads(need[0].read_text(encoding="utf-8"))["campaigns"]
    m = int(json.loads(need[2].read_text(encoding="utf-8")).get("n_clusters_tested", 0))
    scan_p = scan_h = None
    if isinstance(campaign, int):
        hit = [c for c in camps if int(c["cluster_id"]) == campaign]
        if not hit:
            raise CustodyError(f"cluster {campaign} is not a campaign in {need[0]}")
        members = [str(a) for a in hit[0]["members"]]
        label, scan_p = hit[0].get("name") or f"cluster {campaign}", hit[0]["pvalue_adjusted"]
        scan_h = hit[0].get("harvest_pvalue_adjusted")
    else:
        members = sorted({str(a) for a in campaign})
        same = [c for c in camps if sorted(map(str, c["members"])) == members]
        label = same[0].get("name") if same else f"{len(members)} named accounts"
        scan_p = same[0]["pvalue_adjusted"] if same else None
        scan_h = same[0].get("harvest_pvalue_adjusted") if same else None
        m = m if same else m + 1  # a group the scan did not test: one more candidate
    from distilltrace.traffic.features import SIGNALS
    from distilltrace.traffic.scanner import HARVEST_ALPHA

    acct = pd.read_parquet(need[1])
    acct.index = acct["account_id"].astype(str)
    missing = [a for a in members if a not in acct.index]
    if missing or not members:
        raise CustodyError(f"accounts {missing[:3]} are not in {need[1]}")
    rows = acct.loc[members]
    harvest = [s.name for s in SIGNALS if s.harvest and f"tail_{s.name}" in acct.columns]
    summary = json.loads(need[2].read_text(encoding="utf-8"))
    return {
        "label": label,
        "members": members,
        "member_tail_p": [float(x) for x in rows["behaviour_tail_p"]],
        # the harvest signals' calibrated tails, as the scan stores them (-log10 p)
        "member_harvest_log10_tails": {n: [float(x) for x in rows[f"tail_{n}"]] for n in harvest},
        "harvest_alpha": float(summary.get("harvest_alpha", HARVEST_ALPHA)),
        "n_clusters_tested": max(1, m),
        "scan_pvalue_adjusted": scan_p,
        "scan_harvest_pvalue_adjusted": scan_h,
        "scan_files": {p.name: sha256_file(p) for p in need},
    }


def check_out(out: str | Path) -> Path:
    """Raise a one-line error unless `out` is a new or empty folder a bundle can be
    written in; leaves nothing behind (the CLI runs it before any model is loaded)."""
    from distilltrace.provenance.inputs import check_out_dir

    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise CustodyError(f"--out {out} exists and is not an empty folder")
    return check_out_dir(out)


def _check_out(out: Path) -> None:
    check_out(out)
    out.mkdir(parents=True, exist_ok=True)


def _load_key(key_files: Sequence[str | Path]) -> tuple[Any, dict[str, Any], Any]:
    """The one watermark key, its public part (the key file without the secret), and the
    secret (for the seal's HMAC only; it never enters the bundle)."""
    from distilltrace.marks.keys import _read_secret, load_watermark

    if len(key_files) != 1:
        raise CustodyError(f"a bundle covers one key; got {len(key_files)} key files")
    wm = load_watermark(key_files[0], allow_legacy=False)
    d = json.loads(Path(key_files[0]).read_text(encoding="utf-8"))
    public = {k: v for k, v in d.items() if k not in ("secret", "secret_env")}
    return wm, public, _read_secret(d, str(key_files[0]))


def _tokenizer(inputs: CustodyInputs, wm: Any) -> Any:
    tok = inputs.tokenizer or getattr(inputs.suspect, "tokenizer", None)
    if tok is None or not wm.tokenizer.matches(tok):
        from distilltrace.marks.cli import _tokenizer_for

        tok = _tokenizer_for(wm, None)
    wm.check_tokenizer(tok, what="the custody tokenizer")
    return tok


def _probes(inputs: CustodyInputs, cfg: CustodyConfig, harvested: list[dict]) -> list[str]:
    if inputs.probes is not None:
        probes = [str(p) for p in inputs.probes]
    else:
        from distilltrace.prompts import generate_prompts

        seen = sorted({str(h["prompt"]) for h in harvested})
        random.Random(cfg.probe_seed).shuffle(seen)
        probes = seen[: cfg.n_probes] if cfg.reelicit else []
        pool = generate_prompts(cfg.n_probes + len(seen) + 8, seed=cfg.probe_seed)
        fresh = [p.text for p in pool if p.text not in set(seen)]
        probes += fresh[: cfg.n_probes - len(probes)]
    if not probes:
        raise CustodyError("closed-mode radioactivity needs at least one probe prompt")
    return probes


def _segments(inputs: CustodyInputs, out: Path, members: list[str]) -> tuple[list, list]:
    rows: list[dict] = []
    sources = []
    for i, p in enumerate(Path(x) for x in inputs.logs):
        if not p.is_file():
            raise CustodyError(f"log {p} not found")
        lines = member_lines(p, set(members))
        seg = out / "log" / f"segment-{i:03d}.jsonl"
        seg.parent.mkdir(parents=True, exist_ok=True)
        seg.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
        rows += parse_segment(lines, seg.name)
        sources.append({"path": p.name, "sha256": sha256_file(p), "segment": seg.name,
                        "rows": len(lines)})  # fmt: skip
    return rows, sources


def provenance_config(overrides: dict[str, Any]) -> Any:
    from distilltrace.provenance.config import ProvenanceConfig

    d = {k: tuple(v) if isinstance(v, list) else v for k, v in overrides.items()}
    try:
        return ProvenanceConfig().with_options(**d)
    except TypeError as e:
        raise CustodyError(f"provenance settings: {e}") from None


def _closed(inputs, wm, tok, cfg, probes, harvested, out: Path) -> EvidenceResult:
    gens = inputs.suspect.generate(
        probes, max_new_tokens=cfg.max_new_tokens, temperature=cfg.temperature,
        seed=cfg.seed, chat=True,
    )  # fmt: skip
    outs = [g.text for g in gens]
    probs = _reference_probs(inputs, wm, tok, cfg, probes, outs)
    rows = [{"prompt": g.prompt, "output": g.text, "finish_reason": g.finish_reason} for g in gens]
    for row, p in zip(rows, probs or [], strict=False):
        row["reference_probs"] = p
    write_jsonl(out / "transcripts" / "radioactivity_closed.jsonl", rows)
    return C.radio_closed_claim(wm, tok, probes, outs, harvested, cfg.to_dict(), probs)


def _reference_probs(inputs, wm, tok, cfg, probes, outs) -> list[list[float]] | None:
    """The reference's probability of each token of the suspect's answers, when it is our
    local marking model (the key's tokenizer); recorded so verify needs no model."""
    from distilltrace.marks.radioactivity import reference_token_probs

    ref = _our_local_model(inputs, wm)
    if cfg.max_reference_prob is None or ref is None:
        return None
    return reference_token_probs(ref, probes, outs, tok)


def _our_local_model(inputs, wm) -> Any:
    """The reference when it is our marking model with local weights and the key's
    tokenizer (what reads the suspect's answers token by token), else None."""
    from distilltrace.marks.schemes import TokenizerMismatchError

    ref = inputs.reference
    if ref is None or not hasattr(ref, "hf_model"):
        return None
    try:
        wm.check_tokenizer(ref.tokenizer, what="the reference's tokenizer")
    except TokenizerMismatchError:
        return None
    return ref


def _open(inputs, wm, tok, cfg, harvested, out: Path) -> EvidenceResult | str:
    """Open mode when the suspect's weights are local and share the key's tokenizer."""
    from distilltrace.marks.radioactivity import read_open

    s = inputs.suspect
    if not cfg.open_mode:
        return "open mode turned off"
    if not hasattr(s, "hf_model") or getattr(s, "tokenizer", None) is None:
        return "the suspect's weights are not local (an endpoint)"
    if not wm.tokenizer.matches(s.tokenizer):
        return "the suspect's tokenizer is not the key's: open mode cannot score its predictions"
    # each response read after its prompt in the suspect's chat format: the context a
    # student trained on it saw (prompt tokens are context only, never scored)
    texts, prompts = [h["response"] for h in harvested], [h["prompt"] for h in harvested]
    r = read_open(s, texts, marked_prompts=prompts, max_tokens=cfg.open_max_tokens,
                  batch_size=cfg.open_batch_size)  # fmt: skip
    reading = {"seqs": [list(x) for x in r.seqs], "starts": list(r.starts),
               "preds": [list(x) for x in r.preds]}  # fmt: skip
    write_json(out / "transcripts" / "radioactivity_open.json", reading)
    return C.radio_open_claim(wm, tok, reading, harvested, cfg.to_dict())


def _prefix(inputs, wm, tok, cfg, harvested, out: Path, open_ran: bool, note: Note):
    """Prefix mode (`prefix_mode` "on", or "auto" when open mode did not run); every query's
    continuation is recorded so verify recomputes the reading from the bundle."""
    from distilltrace.errors import CapabilityError, InputError
    from distilltrace.marks.radioactivity_prefix import read_prefix

    s = inputs.suspect
    if cfg.prefix_mode == "off":
        return "prefix mode turned off"
    if cfg.prefix_mode == "auto" and open_ran:
        return "open mode read the suspect's weights (prefix_mode 'on' also asks its completions)"
    same = getattr(s, "tokenizer", None) is not None and wm.tokenizer.matches(s.tokenizer)
    k = cfg.prefix_tokens or (1 if same else 3)
    try:
        got = read_prefix(
            s, [h["response"] for h in harvested], [h["prompt"] for h in harvested], tok,
            context_width=wm.context_width, stride=cfg.prefix_stride,
            prompt_format=cfg.prefix_format, max_tokens=cfg.open_max_tokens, new_tokens=k,
            batch_size=cfg.prefix_batch_size, on_batch=_line_progress(note, "prefix mode"),
        )  # fmt: skip
    except (InputError, CapabilityError) as e:
        if cfg.prefix_mode == "on":
            raise CustodyError(f"prefix mode: {e}") from None
        return f"prefix mode cannot ask this suspect: {e}"
    transcript = {
        "prompt_format": cfg.prefix_format,
        "new_tokens": k,
        "heads": list(got.heads),
        "probes": [{"text": i, "position": t, "continuation": c, "finish_reason": f}
                   for (i, t), c, f in zip(got.positions, got.continuations,
                                           got.finish_reasons, strict=True)],
    }  # fmt: skip
    write_json(out / "transcripts" / "radioactivity_prefix.json", transcript)
    return C.radio_prefix_claim(wm, tok, transcript, harvested, cfg.to_dict())


def _logprobs(inputs, wm, tok, cfg, probes, out: Path) -> EvidenceResult | str:
    """Logprobs mode (`logprobs_mode` "on", or "auto" when the suspect can): its greedy
    answers to the probes with their top-k log-probabilities, and our model's probabilities
    of the candidates when it is local; all recorded, so verify needs no model."""
    from distilltrace.errors import CapabilityError, InputError
    from distilltrace.marks.radioactivity_logprobs import read_steps, reference_candidates

    if cfg.logprobs_mode == "off":
        return "logprobs mode turned off"
    try:
        r = read_steps(wm, inputs.suspect, probes, tok, top_k=cfg.logprobs_top_k,
                       max_new_tokens=cfg.max_new_tokens, seed=cfg.seed)  # fmt: skip
    except (InputError, CapabilityError) as e:
        if cfg.logprobs_mode == "on":
            raise CustodyError(f"logprobs mode: {e}") from None
        return f"logprobs mode cannot read this suspect: {e}"
    ours = _our_local_model(inputs, wm)
    ref = None if ours is None else reference_candidates(ours, r)
    answers = []
    for i in range(len(r.prompts)):  # 7 significant digits: the claim reads what is stored
        row = {"prompt": r.prompts[i], "text": r.texts[i], "chosen": list(r.chosen[i]),
               "top_ids": r.top_ids[i].tolist(), "top_logprobs": _sig(r.top_logprobs[i])}  # fmt: skip
        if ref is not None:
            row["reference_top_ids"] = ref[0][i][:, r.top_k :].tolist()  # ours; theirs: top_ids
            row["reference_probs"] = _sig(ref[1][i])
        answers.append(row)
    write_jsonl(out / "transcripts" / "radioactivity_logprobs.jsonl", answers)
    transcript = {"top_k": r.top_k, "answers": answers}
    return C.radio_logprobs_claim(wm, tok, transcript, cfg.to_dict())


def _sig(a: Any) -> list[list[float | None]]:
    """A float matrix as JSON rows, 7 significant digits, None for -inf (missing)."""
    return [[float(f"{v:.7g}") if math.isfinite(v) else None for v in x] for x in a.tolist()]


class _NoteStream:
    """A text stream whose lines go to `note` (so `progress.LineProgress` reports through the
    build's note callback)."""

    def __init__(self, note: Note) -> None:
        self.note = note

    def write(self, text: str) -> None:
        if text.strip():
            self.note(text.strip())

    def flush(self) -> None:
        return None


def _line_progress(note: Note, what: str) -> Callable[[int, int], None]:
    """A progress callback: `progress.LineProgress` lines (each tenth of the work, and at
    least every 30 s) with the time spent and an ETA, through `note`."""
    from distilltrace.progress import LineProgress

    lines = LineProgress(stream=_NoteStream(note))
    task = lines.add_task(what, total=None)
    return lambda done, total: lines.update(task, completed=done, total=total)


def _fresh_answers(ref, wm, prompts, settings, cfg, serving=(), systems=None) -> list[list[str]]:
    """k fresh answers per exchange from our model, marked with the key, under each
    exchange's serving settings and after its system prompt (`systems`, "" for none);
    `serving`: the server's own processors, applied before the watermark's as the server
    does (provenance.membership.draw_fresh)."""
    from distilltrace.provenance.membership import draw_fresh

    procs = [*serving, *wm.logits_processors(ref)]
    return draw_fresh(ref, prompts, settings, cfg.membership_fresh, cfg.membership_seed, procs,
                      systems)  # fmt: skip


def _membership(inputs, wm, cfg, rows, harvested, out: Path, note: Note) -> EvidenceResult | str:
    """The harvest-membership claim: fresh answers from our model, every answer scored by
    the suspect and by our model, all recorded so verify recomputes the test."""
    from distilltrace.custody.logs import exchange_contexts, serving_settings
    from distilltrace.errors import CapabilityError, InputError
    from distilltrace.marks.schemes import TokenizerMismatchError
    from distilltrace.provenance.membership import score_exchanges

    ref = inputs.reference
    if not cfg.membership:
        return "membership turned off"
    if ref is None or getattr(ref, "tokenizer", None) is None:
        return "fresh answers need our served model, local (no reference model given)"
    if not callable(getattr(inputs.suspect, "score", None)):
        return "the suspect cannot score text (no weights or log-probabilities)"
    settings = serving_settings(rows, harvested, cfg.to_dict())
    contexts = _counted_contexts(ref, exchange_contexts(rows, harvested), harvested, cfg, out)
    idx, left = C.membership_exchanges(harvested, settings, cfg.to_dict(), contexts)
    if not idx:
        return f"no exchange can be tested (left out: {left})"
    prompts = [str(harvested[i]["prompt"]) for i in idx]
    chosen = [settings[i] for i in idx]
    note(f"membership: {len(idx)} exchanges, {cfg.membership_fresh} fresh answer(s) each "
         f"(left out: {sum(left.values())})")  # fmt: skip
    try:
        fresh = _fresh_answers(ref, wm, prompts, chosen, cfg, inputs.serving_processors,
                               [contexts[i]["system"] for i in idx])  # fmt: skip
    except (TokenizerMismatchError, CapabilityError, InputError) as e:
        return f"our model cannot redraw the answers under this key: {e}"
    answers = [[str(harvested[i]["response"]), *f] for i, f in zip(idx, fresh, strict=True)]
    note(f"membership: fresh answers drawn; {sum(map(len, answers))} answers to score")
    try:
        s_lp, r_lp = score_exchanges(inputs.suspect, ref, prompts, answers)
    except (CapabilityError, InputError, NotImplementedError) as e:
        return f"the suspect cannot score text: {e}"
    transcript = [
        {"request_id": str(harvested[i]["request_id"]), "settings": st, "answers": a,
         "suspect_logprob": sl, "reference_logprob": rl}
        for i, st, a, sl, rl in zip(idx, chosen, answers, s_lp, r_lp, strict=True)
    ]  # fmt: skip
    write_jsonl(out / "transcripts" / "harvest_membership.jsonl", transcript)
    return C.membership_claim(transcript, left, cfg.to_dict())


def _counted_contexts(ref, contexts, harvested, cfg, out: Path) -> list[dict]:
    """The logged contexts with our encoding's token count of each exchange that has a
    billed input_tokens (membership rules 3), recorded in
    transcripts/membership_context.jsonl so verify selects the same exchanges."""
    from distilltrace.provenance.membership import our_counts

    ours = our_counts(ref, harvested, contexts) if cfg.membership_rules >= 3 else {}
    if not ours:
        return contexts
    write_jsonl(out / "transcripts" / "membership_context.jsonl",
                [{"request_id": k, "our_input_tokens": n} for k, n in ours.items()])  # fmt: skip
    return C.with_our_counts(contexts, harvested, ours)


def _provenance(inputs, cfg, out: Path, note: Note) -> tuple[EvidenceResult | str, dict]:
    from distilltrace.provenance.tester import test_provenance

    if inputs.reference is None:
        return "no reference model given", {}
    if len(inputs.controls) < 2:
        return "the provenance test needs at least 2 controls", {}
    rec = {"suspect": RecordingModel(inputs.suspect, "suspect"),
           "reference": RecordingModel(inputs.reference, "reference")}  # fmt: skip
    for i, c in enumerate(inputs.controls):
        rec[f"control-{i + 1}"] = RecordingModel(c, f"control-{i + 1}")
    ctrls = [rec[k] for k in rec if k.startswith("control-")]
    res = test_provenance(
        rec["suspect"], [rec["reference"]], ctrls, config=provenance_config(cfg.provenance),
        name_of=lambda m: m.label,
        progress=lambda msg, done, total: note(f"provenance: {msg} {done}/{total}"),
    )  # fmt: skip
    rows = [r for m in rec.values() for r in m.records]
    write_jsonl(out / "transcripts" / "provenance.jsonl", rows)
    return C.provenance_claim(res), {k: m.info.to_dict() for k, m in rec.items()}


def build_bundle(
    inputs: CustodyInputs,
    out: str | Path,
    config: CustodyConfig | None = None,
    note: Note | None = None,
) -> BuildResult:
    """Write the evidence bundle for one campaign and one suspect (see bundle.py)."""
    from distilltrace.custody.report import write_report

    cfg = config or CustodyConfig()
    phase = _Phases(note or (lambda msg: None))
    out = Path(out)
    _check_out(out)
    wm, public_key, secret = _load_key(inputs.key_files)
    with phase("campaign", "campaign: reading the scan and the logs"):
        camp = _scan_campaign(Path(inputs.scan_dir), inputs.campaign)
        rows, sources = _segments(inputs, out, camp["members"])
    camp["units"] = customer_units(rows, camp["members"])
    harvested, left_out = harvested_of(rows, wm.key_id)
    if not harvested:
        raise CustodyError(f"the campaign's log rows hold no response served under {wm.key_id}")
    camp["harvest_left_out"] = left_out
    write_json(out / "campaign.json", camp)
    write_jsonl(out / "harvested.jsonl", harvested)
    write_json(out / "key_commitment.json", public_key)
    tok = _tokenizer(inputs, wm)
    tok.save_pretrained(str(out / "tokenizer"))
    results: list[EvidenceResult] = [C.campaign_claim(camp)]
    with phase("harvest", f"harvest: pooled mark test over {len(harvested)} responses"):
        results.append(C.harvest_mark_claim(wm, tok, harvested, cfg.to_dict()))
    what = "suspect: its likelihood of the served answers against fresh ones (membership)"
    with phase("membership", what) as ph:
        r_mem = phase.ran(ph, _membership(inputs, wm, cfg, rows, harvested, out, phase.note))
    probes = _probes(inputs, cfg, harvested)
    write_jsonl(out / "probes.jsonl", [{"prompt": p} for p in probes])
    with phase("closed", f"suspect: closed-mode radioactivity on {len(probes)} probes"):
        results.append(_closed(inputs, wm, tok, cfg, probes, harvested, out))
    with phase("open", "suspect: open-mode radioactivity") as ph:
        r_open = phase.ran(ph, _open(inputs, wm, tok, cfg, harvested, out))
    with phase("prefix", "suspect: prefix-mode radioactivity") as ph:
        r_pre = phase.ran(ph, _prefix(inputs, wm, tok, cfg, harvested, out,
                                      not isinstance(r_open, str), phase.note))  # fmt: skip
    with phase("logprobs", "suspect: logprobs-mode radioactivity") as ph:
        r_lp = phase.ran(ph, _logprobs(inputs, wm, tok, cfg, probes, out))
    with phase("provenance", "suspect: provenance test against the reference and controls") as ph:
        r_prov, prov_models = _provenance(inputs, cfg, out, phase.note)
        phase.ran(ph, r_prov)
    skipped: dict[str, str] = {}
    later = ((C.MEMBERSHIP, r_mem), (C.RADIO_OPEN, r_open), (C.RADIO_PREFIX, r_pre),
             (C.RADIO_LOGPROBS, r_lp), (C.PROVENANCE, r_prov))  # fmt: skip
    for name, r in later:
        if isinstance(r, str):
            skipped[name] = r
        else:
            results.append(r)
    results.sort(key=lambda c: C.ORDER.index(c.name))
    models = {"suspect": inputs.suspect.info.to_dict(), "provenance": prov_models}
    write_json(out / "models.json", models)
    report = write_report(out, results, skipped, cfg, camp, wm.key_id, models)
    man = Manifest(
        software=software(),
        created=_dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        key_commitment={"key_id": wm.key_id, "scheme": wm.scheme, "file": "key_commitment.json"},
        seeds={
            "seed": cfg.seed,
            "probe_seed": cfg.probe_seed,
            "provenance_seed": int(provenance_config(cfg.provenance).seed),
        },  # fmt: skip
        config=cfg.to_dict(),
        campaign={
            "label": camp["label"],
            "n_accounts": len(camp["members"]),
            "n_harvested": len(harvested),
        },  # fmt: skip
        models={"suspect": models["suspect"]["identity"]},
        sources=sources,
    )
    kinds = [("key_commitment.json", "key_commitment"), ("tokenizer", "tokenizer"),
             ("log", "log_segment"), ("harvested.jsonl", "harvested"),
             ("campaign.json", "campaign"), ("probes.jsonl", "probe_prompts"),
             ("transcripts", "transcript"), ("models.json", "model_identity"),
             ("report.json", "report"), ("report.html", "report")]  # fmt: skip
    add_files(out, man, [(out / p, k) for p, k in kinds if (out / p).exists()])
    digest = seal(out, man, secret)
    return BuildResult(out, digest, report, phase.seconds)
