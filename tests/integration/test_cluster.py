"""The Kubernetes topology locally: a 2-process bytewax cluster on loopback (as the
StatefulSet runs it with its hostfile) writes exactly what the 1-process run writes."""

from __future__ import annotations

import pytest

from tests.integration.test_end_to_end import predictions, run_drain

pytestmark = pytest.mark.integration

TIMING = {"inference_time_ns"}
# LightGBM scores until lleaves has compiled the model, then lleaves: equal within 1e-9
SCORE = "fraud_probability"


def test_two_process_cluster_equals_single_process(isolated, small_csv, trained_model,
                                                   tmp_path):
    from enrich.loader import load_reference_data
    from messaging.producer import produce_csv

    settings = isolated.model_copy(update={"model_dir": trained_model})
    load_reference_data(settings, small_csv, progress=False)
    report = produce_csv(settings, small_csv, progress=False)

    single = settings.model_copy(update={
        "map_predictions": settings.map_predictions + "_p1",
        "recovery_directory": tmp_path / "recovery-p1"})
    cluster = settings.model_copy(update={
        "map_predictions": settings.map_predictions + "_p2",
        "recovery_directory": tmp_path / "recovery-p2"})
    run_drain(single, processes=1, workers=2)
    run_drain(cluster, processes=2, workers=1)

    one = predictions(single)
    two = predictions(cluster)
    assert len(one) == report.delivered
    assert one.keys() == two.keys()
    for key, record in one.items():
        other = two[key]
        assert {k: v for k, v in record.items() if k not in TIMING | {SCORE}} == \
            {k: v for k, v in other.items() if k not in TIMING | {SCORE}}, key
        assert abs(record[SCORE] - other[SCORE]) < 1e-9, key
