"""Are the server's answers and the membership claim's fresh answers draws of one
distribution? The claim's null rests on it (docs/custody.md, `harvest_membership`).

    .venv/bin/python -m benchmarks.custody_served_vs_fresh custody-demo/ [--draws 4]

DEMO is a finished `distilltrace custody demo` folder. Its teacher is served again with
its key, as the demo served it (the OpenAI-compatible app, batches of 32 from 32
concurrent clients, over loopback HTTP), and asked each harvested prompt `--draws` times
under the logged settings with fresh seeds; our model also draws `--draws` answers per
prompt the claim's way (`provenance.membership.draw_fresh`). Every answer is scored by our
model and by the demo's null students (`benign`, `control-1..3`), then:

- our model's log-probability per character, served minus fresh, per prompt (a paired t:
  a serving path that wrote other text than the fresh draws would show here);
- for each null student, the share of (served, fresh) pairs of one prompt in which the
  served answer has the higher membership score (log p_student - log p_ours) / characters:
  1/2 under the claim's null, per prompt, with draws x draws pairs each.

Unlike the demo's own claim, whose 79 served answers are one sample read by every
suspect, here every prompt has several served answers, so a lean shared by all suspects
is the serving path's, not the sample's. Writes DEMO/served_vs_fresh.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from benchmarks.custody_membership import NULL, _exchanges


def paired_t(diffs: list[float]) -> dict[str, float]:
    """Mean, standard deviation and one-sample t of per-prompt differences (t = 0 when
    they all agree, where scipy gives nan)."""
    from scipy import stats

    m, s = statistics.mean(diffs), statistics.stdev(diffs)
    t = float(stats.ttest_1samp(diffs, 0.0).statistic) if s > 0 else 0.0
    return {"mean": m, "sd": s, "t": t, "n": len(diffs), "below_zero": sum(d < 0 for d in diffs)}


def served_above_fresh(scores: list[list[float]], k: int) -> list[float]:
    """Per prompt, the share of (served, fresh) pairs where the served answer scores higher
    (ties count half: the Mann-Whitney U of served against fresh over its pairs);
    `scores[i]` holds prompt i's k served scores, then its k fresh."""
    from scipy import stats

    out = []
    for sc in scores:
        s, f = sc[:k], sc[k:]
        out.append(
            float(stats.mannwhitneyu(s, f, method="asymptotic").statistic) / (len(s) * len(f))
        )
    return out


def _served(base: str, prompts: list[str], settings: list[dict], k: int) -> list[list[str]]:
    """k answers per prompt from the running server, 32 requests at a time, seeds that no
    demo request used (the demo seeds by CRC-32 of its request ids)."""
    import httpx

    model_id = httpx.get(f"{base}/models", timeout=60.0).json()["data"][0]["id"]
    out: list[list[str]] = [[""] * k for _ in prompts]

    def one(job: tuple[int, int]) -> None:
        i, j = job
        body = {"model": model_id, "messages": [{"role": "user", "content": prompts[i]}],
                "max_tokens": settings[i]["max_tokens"],
                "temperature": settings[i]["temperature"], "top_p": settings[i]["top_p"],
                "seed": 2**31 + 1_000 * j + i}  # fmt: skip
        r = httpx.post(f"{base}/chat/completions", json=body, timeout=3600.0)
        r.raise_for_status()
        out[i][j] = r.json()["choices"][0]["message"]["content"]

    with ThreadPoolExecutor(32) as ex:
        list(ex.map(one, [(i, j) for j in range(k) for i in range(len(prompts))]))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("demo", type=Path, help="a finished `custody demo` folder")
    ap.add_argument("--draws", type=int, default=4, help="answers per prompt each way")
    a = ap.parse_args(argv)
    if a.draws < 2:
        ap.error("--draws must be >= 2")
    from distilltrace.custody.demo import _Server
    from distilltrace.marks.keys import load_watermark
    from distilltrace.models import load_model
    from distilltrace.provenance.membership import draw_fresh, exchange_logprobs, per_char_score

    demo = json.loads((a.demo / "demo.json").read_text(encoding="utf-8"))
    dtype, k, t0 = demo["config"]["dtype"], a.draws, time.perf_counter()
    ref = load_model(demo["config"]["teacher"], dtype=dtype)
    wm = load_watermark(a.demo / "key.json")
    ex, settings, _ = _exchanges(a.demo)
    prompts = [str(h["prompt"]) for h in ex]
    with _Server(ref, wm, int(demo["config"].get("clients", 32))) as base:
        served = _served(base, prompts, settings, k)
    print(f"{len(prompts)} prompts x {k} served ({time.perf_counter() - t0:.0f} s)", flush=True)
    fresh = draw_fresh(ref, prompts, settings, k, 7_000_003, wm.logits_processors(ref))
    answers = [s + f for s, f in zip(served, fresh, strict=True)]
    ours = exchange_logprobs(ref, prompts, answers)
    per_char = [[lp / max(1, len(t)) for lp, t in zip(ls, ts, strict=True)]
                for ls, ts in zip(ours, answers, strict=True)]  # fmt: skip
    ref_t = paired_t([statistics.mean(p[:k]) - statistics.mean(p[k:]) for p in per_char])
    print(f"our model, log p per character, served - fresh: mean {ref_t['mean']:.4f}, "
          f"t {ref_t['t']:.2f} ({time.perf_counter() - t0:.0f} s)", flush=True)  # fmt: skip
    rows = {}
    for name in NULL:
        m = load_model(str(a.demo / "students" / name), dtype=dtype)
        lp = exchange_logprobs(m, prompts, answers)
        sc = [[per_char_score(x, y, t) for x, y, t in zip(ls, rs, ts, strict=True)]
              for ls, rs, ts in zip(lp, ours, answers, strict=True)]  # fmt: skip
        share = served_above_fresh(sc, k)
        rows[name] = {**paired_t([s - 0.5 for s in share]), "share": statistics.mean(share)}
        print(
            f"{name}: served above fresh in {rows[name]['share']:.3f} of pairs, "
            f"t vs 1/2 {rows[name]['t']:.2f} ({time.perf_counter() - t0:.0f} s)",
            flush=True,
        )
    out = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": platform.processor() or platform.machine(), "demo": str(a.demo),
        "draws": k, "n_prompts": len(prompts), "ours_served_minus_fresh": ref_t,
        "null_students": rows, "seconds": round(time.perf_counter() - t0, 1),
    }  # fmt: skip
    (a.demo / "served_vs_fresh.json").write_text(json.dumps(out, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
