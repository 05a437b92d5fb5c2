"""The registered `harvest_membership` test: `provenance test` with the answers we served.

When the provider knows the exact exchanges it served (its logs), the strongest question
is not whether the suspect is closer to the reference than the controls are, but whether it
learned those very answers: `provenance.membership`'s exact rank test of each served
answer against k fresh answers drawn from our model under the same settings. This module
registers that test with the provenance registry, so `provenance test --tests ...
harvest_membership --served FILE` combines it with the other tests (Bonferroni) in one
verdict. It needs no control, so a mismatched control cannot decide it.

It runs only against the reference that served the answers (`served_by`, or the only
reference): fresh answers from another model would not be draws of the served
distribution, so for the other references it is left out. Like `first_words` it is not in
the default tests: each test that runs multiplies the Bonferroni factor, so it must be
named. Its suspect queries are scoring calls, one per answer scored ((k + 1) per exchange,
at most `membership_max` exchanges), reserved from the budget before the greedy stream.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from distilltrace.errors import InputError
from distilltrace.provenance.config import ProvenanceConfig
from distilltrace.provenance.membership import FRESH_SEED, NAME, NULL
from distilltrace.provenance.registry import QueryNeeds, TestInputs
from distilltrace.provenance.result import TestResult, skipped_test

if TYPE_CHECKING:
    from distilltrace.provenance.membership_cli import Selection


def membership_settings(cfg: ProvenanceConfig) -> dict[str, Any]:
    """The membership settings of a provenance config, in the form `membership_cli` and
    custody read (serving defaults for rows that do not record them; the current
    exchange-selection rules)."""
    from distilltrace.custody.claims import MEMBERSHIP_RULES

    return {"served_temperature": cfg.served_temperature, "served_max_tokens":
            cfg.served_max_tokens, "served_top_p": cfg.served_top_p,
            "membership_fresh": cfg.membership_fresh, "membership_max": cfg.membership_max,
            "membership_seed": FRESH_SEED, "seed": cfg.seed,
            "membership_rules": MEMBERSHIP_RULES}  # fmt: skip


def check_served(cfg: ProvenanceConfig) -> tuple[list[dict], int, Selection]:
    """The served rows, the number quarantined and the selection (`membership_cli.selection`),
    or InputError: called before any model is loaded, and again by the plan and the test.
    The file is read once per content (path, size, modification time); callers must not
    change the rows."""
    if not cfg.served:
        raise InputError(f"the {NAME} test needs the served exchanges (--served FILE)")
    path = Path(cfg.served)
    try:
        st = path.stat()
        stamp = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    except OSError:
        stamp = (str(path), -1, -1)  # read_served names the missing file
    settings = membership_settings(cfg)
    return _read_and_select(stamp, tuple(sorted(settings.items())))


@lru_cache(maxsize=4)
def _read_and_select(stamp: tuple, settings: tuple) -> tuple[list[dict], int, Selection]:
    from distilltrace.provenance.membership_cli import read_served, selection

    rows, bad = read_served(Path(stamp[0]))
    return rows, bad, selection(rows, dict(settings))


def _serves(data: TestInputs) -> str | None:
    """Why this reference is not the one that served (None: it is)."""
    want, info = data.cfg.served_by, data.session.models[data.reference].info
    if not want or want in (data.reference, info.name, info.spec):
        return None
    return f"served by {want!r}, not this reference"


class HarvestMembership:
    """Did the suspect learn the exact answers this reference served? (exact rank test)"""

    name = NAME
    null = NULL

    def queries(self, cfg: ProvenanceConfig) -> QueryNeeds:
        """One score per answer: (k + 1) per exchange tested, against the one reference
        that served (reserved once, whatever the number of references)."""
        if not cfg.served:
            return QueryNeeds()
        n = len(check_served(cfg)[2].idx) * (cfg.membership_fresh + 1)
        return QueryNeeds(suspect_queries=n, one_reference=True)

    def run(self, data: TestInputs) -> TestResult | None:
        from distilltrace.provenance.membership_cli import counted_selection, run_membership

        if _serves(data) is not None:
            return None  # another reference's answers: not this one's test
        if not data.can_score(data.suspect):
            return skipped_test(NAME, NULL, "the suspect gives no log-probabilities (score)")
        rows, bad, chosen = check_served(data.cfg)
        sess, cfg = data.session, membership_settings(data.cfg)
        try:
            chosen = counted_selection(rows, cfg, chosen, sess.models[data.reference])
        except InputError as e:
            return skipped_test(NAME, NULL, str(e))
        procs = []
        if data.cfg.served_key:
            from distilltrace.marks.keys import load_watermark

            procs = load_watermark(Path(data.cfg.served_key)).logits_processors(
                sess.models[data.reference]
            )
        res, _ = run_membership(sess.models[data.suspect], sess.models[data.reference], rows,
                                cfg, procs, chosen)  # fmt: skip
        sess.counter.add(data.suspect, "score", res.n * (res.k + 1))
        return TestResult(
            name=NAME,
            null=NULL,
            pvalue=float(res.pvalue),
            n=res.n,
            effect=res.statistic,
            effect_label="served answers' mean rank among their k + 1 (0.5 under the null)",
            details={
                **res.details,
                "statistic": res.statistic,
                "left_out": chosen.left,
                "quarantined": bad,
                "served": str(data.cfg.served),
            },  # fmt: skip
        )
