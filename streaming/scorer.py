"""Enrich and score: one `get_all` per map, one model call and one explanation call per batch."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from enrich.lookups import ReferenceLookup
from features.vector import feature_matrix, feature_row_and_derived
from scoring.model import LoadedModel
from scoring.records import prediction_record
from streaming.batches import FeaturedBatch, ScoredBatch

log = logging.getLogger(__name__)

StageObserver = Callable[[str, float], None]


class BatchScorer:
    """Callable for `flat_map_batch`: many featured batches in, one scored batch out."""

    def __init__(self, model: Callable[[], LoadedModel], reference: ReferenceLookup,
                 explain: bool = True, keep_features: bool = False,
                 observe: StageObserver | None = None) -> None:
        self._model = model
        self._reference = reference
        self._explain = explain
        self._keep_features = keep_features
        self._observe = observe or (lambda _stage, _seconds: None)

    def __call__(self, batches: list[FeaturedBatch]) -> list[ScoredBatch]:
        txns = [t for b in batches for t in b.transactions]
        if not txns:
            return []
        trailing = [f for b in batches for f in b.trailing]
        stamps = [s for b in batches for s in b.timestamps_ms]
        model = self._model()

        began = time.perf_counter()
        customers = self._reference.customers({t.cc_num for t in txns})
        merchants = self._reference.merchants({t.merchant for t in txns})
        cust = [customers.get(t.cc_num) for t in txns]
        merch = [merchants.get(t.merchant) for t in txns]
        rows_and_derived = [feature_row_and_derived(t, f, c, m)
                            for t, f, c, m in zip(txns, trailing, cust, merch, strict=True)]
        x = feature_matrix([rd[0] for rd in rows_and_derived])
        enriched = time.perf_counter()
        self._observe("enrich", enriched - began)

        probabilities = model.predict(x)
        scored = time.perf_counter()
        self._observe("score", scored - enriched)
        per_row_ns = int((scored - enriched) * 1e9 / len(txns))

        flagged = [i for i, p in enumerate(probabilities) if p >= model.threshold]
        explanations: dict[int, list[tuple[str, float]]] = {}
        if self._explain and flagged:
            tops = model.top_contributions(x[flagged])
            explanations = dict(zip(flagged, tops, strict=True))
            self._observe("explain", time.perf_counter() - scored)

        threshold, version = model.threshold, model.version
        records = [
            prediction_record(t, f, c, m, p, threshold, per_row_ns, version,
                              explanations.get(i), rd[1])
            for i, (t, f, c, m, p, rd) in enumerate(zip(txns, trailing, cust, merch,
                                                        probabilities.tolist(),
                                                        rows_and_derived, strict=True))
        ]
        features = x.tolist() if self._keep_features else None
        return [ScoredBatch(records, stamps, features)]
