"""The built-in provenance tests, registered exactly as a plugin registers its own (see
docs/extending.md). Their order here is the order they run and are reported in; `first_words` (the
baseline of issue #18) and `harvest_membership` (the served answers known) run only when named in
ProvenanceConfig.tests."""

from __future__ import annotations

from distilltrace.provenance.agreement import GreedyAgreement
from distilltrace.provenance.firstwords import FirstWordsAgreement
from distilltrace.provenance.lexical import LexicalFingerprint
from distilltrace.provenance.likelihood import Likelihood, ReverseLikelihood
from distilltrace.provenance.registry import register
from distilltrace.provenance.served import HarvestMembership

register(GreedyAgreement())
register(Likelihood())
register(ReverseLikelihood())
register(LexicalFingerprint())
register(FirstWordsAgreement())  # not in DEFAULT_TESTS: name it in cfg.tests to run it
register(HarvestMembership())  # not in DEFAULT_TESTS: needs ProvenanceConfig.served
