"""custody verify: re-check a bundle from its files alone, without querying any model.

1. the seal: manifest.json's SHA-256 (and HMAC under the secret, when revealed);
2. every file's SHA-256, and no file the manifest does not list;
3. the revealed secret hashes to the committed key id (and the key's MAC holds);
4. the harvested subset is what the log segments give; the campaign's units too;
5. every claim recomputed by the functions that built it (`custody.claims`), from the
   recorded transcripts (provenance re-run on replayed models), and compared with
   report.json; the Holm family and the statement recomputed; report.html re-rendered.

Any failure raises VerifyError naming the file (one line; exit code 2 on the CLI).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from distilltrace import jsonl
from distilltrace.custody import claims as C
from distilltrace.custody.bundle import (
    VerifyError,
    check_files,
    check_seal,
    read_json,
    read_jsonl,
)
from distilltrace.custody.logs import customer_units, harvested_of, parse_segment
from distilltrace.evidence import EvidenceResult

NEEDS_SECRET = (C.HARVEST_MARK, C.RADIO_CLOSED, C.RADIO_OPEN, C.RADIO_PREFIX, C.RADIO_LOGPROBS)


@dataclass
class VerifyResult:
    """What verify checked; `not_recomputed` names claims checked by hash only."""

    bundle: Path
    manifest_sha256: str
    files_checked: int
    recomputed: dict[str, float | None] = field(default_factory=dict)
    not_recomputed: dict[str, str] = field(default_factory=dict)
    attributed: bool = False
    statement: str = ""

    @property
    def ok(self) -> bool:
        return True  # a failing bundle raises VerifyError

    def to_dict(self) -> dict[str, Any]:
        return {
            "bundle": str(self.bundle),
            "manifest_sha256": self.manifest_sha256,
            "files_checked": self.files_checked,
            "recomputed": self.recomputed,
            "not_recomputed": self.not_recomputed,
            "attributed": self.attributed,
            "statement": self.statement,
        }


def read_secret_file(path: str | Path) -> Any:
    """A revealed secret: a watermark key file (JSON with "secret") or a file of hex."""
    from distilltrace.marks.keys import secret_from_hex

    p = Path(path)
    if not p.is_file():
        raise VerifyError(f"secret file {p} not found")
    text = p.read_text(encoding="utf-8", errors="replace").strip()
    if text.startswith("{"):
        try:
            d = json.loads(text)
        except json.JSONDecodeError:
            raise VerifyError(f"{p}: not valid JSON") from None
        if not isinstance(d, dict) or "secret" not in d:
            raise VerifyError(f"{p}: a key file with the secret inline is needed")
        text = str(d["secret"])
    try:
        return secret_from_hex(text, str(p))
    except Exception as e:  # InputError: never echoes the value
        raise VerifyError(str(e)) from None


def _watermark(root: Path, secret: Any) -> Any:
    """The committed key rebuilt with the revealed secret; its id and MAC must hold."""
    from distilltrace.marks.keys import watermark_from_dict
    from distilltrace.marks.secret import key_id_of

    pub = read_json(root / "key_commitment.json")
    if key_id_of(secret) != pub.get("key_id"):
        raise VerifyError(
            f"the revealed secret does not match the committed key id {pub.get('key_id')!r} "
            "(key_commitment.json)"
        )
    try:
        return watermark_from_dict({**pub, "secret": secret.hex()}, "key_commitment.json",
                                   allow_legacy=False)  # fmt: skip
    except Exception as e:
        raise VerifyError(str(e)) from None


def _tokenizer(root: Path, wm: Any) -> Any:
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(str(root / "tokenizer"), local_files_only=True)
    except Exception as e:
        raise VerifyError(f"tokenizer/: not loadable ({type(e).__name__})") from None
    try:
        wm.check_tokenizer(tok, what="tokenizer/ in the bundle")
    except Exception as e:
        raise VerifyError(str(e)) from None
    return tok


def _same(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return a == b or math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-300)


def _version_hint(built_with: str | None) -> str:
    """Why a recomputed claim may differ other than tampering: another software version."""
    from distilltrace import __version__

    if built_with in (None, __version__):
        return ""
    return (
        f" (the bundle was built with distilltrace {built_with}, this is {__version__}: a "
        "statistic changed between versions can explain it; verify with the bundle's version)"
    )


def _as_reported(new: EvidenceResult, old: dict[str, Any]) -> dict[str, Any]:
    """The recomputed claim as JSON, without the detail keys added since the bundle was
    written (`claims.LATER_DETAILS`) when the bundle's claim lacks them."""
    d = json.loads(json.dumps(new.to_dict()))
    had = old.get("details") if isinstance(old.get("details"), dict) else {}
    for k in C.LATER_DETAILS.get(new.name, ()):
        if k not in had:
            d.get("details", {}).pop(k, None)
    return d


def _compare(new: EvidenceResult, old: dict[str, Any], where: str) -> None:
    for k in ("pvalue", "statistic"):
        if not _same(new.to_dict()[k], old.get(k)):
            raise VerifyError(
                f"{where}: claim {new.name!r}: recomputed {k} {new.to_dict()[k]!r} differs "
                f"from the reported {old.get(k)!r}"
            )
    if int(old.get("n", -1)) != new.n:
        raise VerifyError(f"{where}: claim {new.name!r}: recomputed n {new.n} != {old.get('n')}")


def _harvest(root: Path, man: Any, key_id: str) -> tuple[list[dict], list[dict]]:
    """The log segments' rows, and the harvested subset (checked against harvested.jsonl)."""
    rows: list[dict] = []
    for f in sorted(man.kind_of("log_segment"), key=lambda f: f.path):
        lines = [x for x in jsonl.lines((root / f.path).read_text(encoding="utf-8")) if x.strip()]
        try:
            rows += parse_segment(lines, f.path)
        except Exception as e:
            raise VerifyError(str(e)) from None
    want, _ = harvested_of(rows, key_id)
    if read_jsonl(root / "harvested.jsonl") != want:
        raise VerifyError("harvested.jsonl is not the harvested subset of the log segments")
    return rows, want


def _campaign(root: Path, rows: list[dict]) -> EvidenceResult:
    camp = read_json(root / "campaign.json")
    try:
        members = [str(a) for a in camp["members"]]
        if customer_units(rows, members) != list(camp["units"]):
            raise VerifyError("campaign.json: customer units differ from the log segments'")
        if {str(r.get("account_id")) for r in rows} - set(members):
            raise VerifyError("log segments hold rows of accounts outside the campaign")
        return C.campaign_claim(camp)
    except (KeyError, TypeError, ValueError) as e:
        raise VerifyError(f"campaign.json: malformed ({e})") from None


def _closed(root, wm, tok, cfg, harvested) -> EvidenceResult:
    probes = [str(p["prompt"]) for p in read_jsonl(root / "probes.jsonl")]
    rows = read_jsonl(root / "transcripts" / "radioactivity_closed.jsonl")
    if [str(r.get("prompt")) for r in rows] != probes:
        raise VerifyError("transcripts/radioactivity_closed.jsonl: prompts are not probes.jsonl")
    outs = [str(r.get("output", "")) for r in rows]
    recorded = rows and all("reference_probs" in r for r in rows)
    probs = [r["reference_probs"] for r in rows] if recorded else None
    return C.radio_closed_claim(wm, tok, probes, outs, harvested, cfg, probs)


def _open(root, wm, tok, cfg, harvested) -> EvidenceResult:
    from distilltrace.marks.detect import encode_text

    where = "transcripts/radioactivity_open.json"
    reading = read_json(root / where)
    n = int(cfg["open_max_tokens"])
    try:
        seqs, starts = reading["seqs"], [int(s) for s in reading["starts"]]
        # each sequence: the prompt in the suspect's chat format (context, never scored),
        # then the harvested response, cut at open_max_tokens in all
        ok = len(seqs) == len(starts) == len(harvested) and all(
            s[a:] == encode_text(tok, h["response"])[: max(0, n - a)]
            for s, a, h in zip(seqs, starts, harvested, strict=True)
        )
    except (KeyError, TypeError, ValueError):
        ok = False
    if not ok:
        raise VerifyError(f"{where}: the read sequences are not the harvested responses")
    if [len(p) for p in reading.get("preds", [])] != [len(s) for s in seqs]:
        raise VerifyError(f"{where}: predictions do not align with the sequences")
    return C.radio_open_claim(wm, tok, reading, harvested, cfg)


def _prefix(root, wm, tok, cfg, harvested) -> EvidenceResult:
    where = "transcripts/radioactivity_prefix.json"
    try:
        return C.radio_prefix_claim(wm, tok, read_json(root / where), harvested, cfg)
    except (KeyError, TypeError, ValueError) as e:
        raise VerifyError(f"{where}: {e}") from None


def _logprobs(root, wm, tok, cfg) -> EvidenceResult:
    where = "transcripts/radioactivity_logprobs.jsonl"
    answers = read_jsonl(root / where)
    probes = [str(p["prompt"]) for p in read_jsonl(root / "probes.jsonl")]
    try:
        if [str(a["prompt"]) for a in answers] != probes:
            raise VerifyError(f"{where}: prompts are not probes.jsonl")
        t = {"top_k": int(cfg["logprobs_top_k"]), "answers": answers}
        return C.radio_logprobs_claim(wm, tok, t, cfg)
    except (KeyError, TypeError, ValueError) as e:
        raise VerifyError(f"{where}: malformed ({e})") from None


def tested_exchanges(
    root: Path, cfg: dict, rows: list[dict], harvested: list[dict]
) -> tuple[list, list[int], dict[str, int]]:
    """The serving settings of each harvested exchange, the ones membership tests and the
    counts left out, as the log, the config and (rules 3) our recorded token counts
    (transcripts/membership_context.jsonl) select them."""
    from distilltrace.custody.logs import exchange_contexts, serving_settings

    settings = serving_settings(rows, harvested, cfg)
    contexts = exchange_contexts(rows, harvested)
    counted = root / "transcripts" / "membership_context.jsonl"
    if int(cfg.get("membership_rules", 1)) >= 3:
        try:
            ours = {str(r["request_id"]): int(r["our_input_tokens"])
                    for r in (read_jsonl(counted) if counted.is_file() else [])}  # fmt: skip
        except (KeyError, TypeError, ValueError) as e:
            raise VerifyError(f"transcripts/membership_context.jsonl: malformed ({e})") from None
        contexts = C.with_our_counts(contexts, harvested, ours)
    idx, left = C.membership_exchanges(harvested, settings, cfg, contexts)
    return settings, idx, left


def _membership(root: Path, cfg: dict, rows: list[dict], harvested: list[dict]) -> EvidenceResult:
    """The membership claim from its transcript: the tested exchanges must be the ones the
    log and the config select, with their served answers and settings; the scores are the
    recorded ones (verify queries no model)."""
    where = "transcripts/harvest_membership.jsonl"
    settings, idx, left = tested_exchanges(root, cfg, rows, harvested)
    t = read_jsonl(root / where)
    try:
        want = [(str(harvested[i]["request_id"]), settings[i], str(harvested[i]["response"]))
                for i in idx]  # fmt: skip
        got = [(r["request_id"], r["settings"], r["answers"][0]) for r in t]
        if got != want:
            raise VerifyError(
                f"{where}: the tested exchanges are not the harvest's (request ids, serving "
                "settings or served answers differ)"
            )
        return C.membership_claim(t, left, cfg)
    except (KeyError, TypeError, ValueError, IndexError) as e:
        raise VerifyError(f"{where}: malformed ({e})") from None


def _provenance(root: Path, cfg: dict) -> EvidenceResult:
    from distilltrace.custody.build import provenance_config
    from distilltrace.custody.record import ReplayModel, model_info_from_dict
    from distilltrace.provenance.tester import test_provenance

    infos = read_json(root / "models.json").get("provenance") or {}
    recs = read_jsonl(root / "transcripts" / "provenance.jsonl")
    models = {}
    for label, info in infos.items():
        m = ReplayModel(model_info_from_dict(info), [r for r in recs if r.get("model") == label])
        m.label = label
        models[label] = m
    ctrls = [models[k] for k in sorted(models) if k.startswith("control-")]
    if "suspect" not in models or "reference" not in models:
        raise VerifyError("models.json: the provenance models are not recorded")
    res = test_provenance(
        models["suspect"], [models["reference"]], ctrls,
        config=provenance_config(cfg.get("provenance") or {}), name_of=lambda m: m.label,
    )  # fmt: skip
    return C.provenance_claim(res)


def recompute_provenance(bundle: str | Path) -> EvidenceResult:
    """A bundle's provenance claim recomputed from its transcripts alone (no model, no
    secret; hashes not checked: `verify_bundle` does that)."""
    root = Path(bundle)
    try:
        cfg = read_json(root / "manifest.json")["config"]
    except (OSError, KeyError, TypeError, ValueError) as e:
        raise VerifyError(f"{root}: no readable manifest.json ({e})") from None
    return _provenance(root, dict(cfg))


def _recompute(root, man, wm, tok, cfg, reported) -> tuple[dict, dict]:
    """Every reported claim recomputed (or why not)."""
    rows, harvested = _harvest(root, man, man.key_commitment.get("key_id", ""))
    new: dict[str, EvidenceResult] = {C.CAMPAIGN: _campaign(root, rows)}
    why: dict[str, str] = {}
    for name in reported:
        if name in NEEDS_SECRET and wm is None:
            why[name] = "needs the secret (--secret-file): hashes checked only"
        elif name == C.HARVEST_MARK:
            new[name] = C.harvest_mark_claim(wm, tok, harvested, cfg)
        elif name == C.RADIO_CLOSED:
            new[name] = _closed(root, wm, tok, cfg, harvested)
        elif name == C.RADIO_OPEN:
            new[name] = _open(root, wm, tok, cfg, harvested)
        elif name == C.RADIO_PREFIX:
            new[name] = _prefix(root, wm, tok, cfg, harvested)
        elif name == C.RADIO_LOGPROBS:
            new[name] = _logprobs(root, wm, tok, cfg)
        elif name == C.PROVENANCE:
            new[name] = _provenance(root, cfg)
        elif name == C.MEMBERSHIP:
            new[name] = _membership(root, cfg, rows, harvested)
        elif name != C.CAMPAIGN:
            raise VerifyError(f"report.json: unknown claim {name!r}")
    return new, why


def verify_bundle(
    bundle: str | Path, secret_file: str | Path | None = None, expect_digest: str | None = None
) -> VerifyResult:
    """Verify a bundle (see the module docstring); raises VerifyError on any failure."""
    from distilltrace.custody.build import CustodyConfig
    from distilltrace.custody.report import render

    root = Path(bundle)
    if not root.is_dir():
        raise VerifyError(f"bundle {root} is not a folder")
    secret = read_secret_file(secret_file) if secret_file is not None else None
    man, digest = check_seal(root, secret, expect_digest)
    check_files(root, man)
    wm = tok = None
    if secret is not None:
        wm = _watermark(root, secret)
        tok = _tokenizer(root, wm)
    report = read_json(root / "report.json")
    try:
        reported = {c["name"]: c for c in report["claims"]}
        cfg = CustodyConfig.from_dict(man.config)
    except (KeyError, TypeError) as e:
        raise VerifyError(f"report.json or manifest.json: malformed ({e})") from None
    if man.config != report.get("config"):  # as recorded (defaults added since stay out)
        raise VerifyError("report.json: its config differs from the manifest's")
    # the claims read the config as recorded: a setting added since (absent in an older
    # bundle) takes the meaning the claims give its absence, not today's default
    new, why = _recompute(root, man, wm, tok, dict(man.config), reported)
    try:
        for name, e in new.items():
            if name not in reported:
                raise VerifyError(f"report.json: claim {name!r} is missing")
            _compare(e, reported[name], "report.json")
            old = {k: v for k, v in reported[name].items() if k != "meaning"}
            if _as_reported(e, old) != old:
                raise VerifyError(
                    f"report.json: claim {name!r}: details differ from the recomputed"
                )
    except VerifyError as e:
        raise VerifyError(str(e) + _version_hint(man.software.get("version"))) from None
    claims = [new.get(n) or EvidenceResult.from_dict(c) for n, c in reported.items()]
    fam = C.combine(claims, cfg.alpha)
    if json.loads(json.dumps(fam.to_dict())) != report.get("family"):
        raise VerifyError("report.json: the Holm family differs from the recomputed one")
    att = C.attribution(fam, claims)
    if att != report.get("attribution"):
        raise VerifyError("report.json: the family-wise statement differs from the recomputed")
    if render(report, man.software.get("version")) != (root / "report.html").read_text(
        encoding="utf-8"
    ):
        raise VerifyError("report.html is not the rendering of report.json")
    return VerifyResult(
        root, digest, len(man.files), {k: v.pvalue for k, v in new.items()}, why,
        bool(att["attributed"]), str(att["statement"]),
    )  # fmt: skip
