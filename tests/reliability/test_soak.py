"""A short soak of the real daemon (``streaming.bench_soak``): no event lost, counters consistent, RSS flat.

The full soak (``ictal bench soak``: 24 h of EEG per bed) prints figures and asserts nothing; this
test runs a short one (slow marker) and asserts on the returned :class:`SoakResult`.
"""

from __future__ import annotations

import pytest

from ictal.streaming.bench_soak import report, soak


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_short_soak_loses_no_event_and_keeps_counters_and_memory_flat(shared_data, tmp_path):
    result = soak(beds=3, hours=1.0, speed=60.0, data=shared_data / "background" / "eegmat",
                  alarm_every_s=300.0, workdir=tmp_path, progress=lambda line: None)
    print(report(result, 60.0, "test run"))
    assert result.exit_code == 0, result.log_tail
    assert min(result.stream_hours.values()) >= 1.0
    # a CPU-starved daemon skips to the newest window (reported as scoring_behind events): rare, never silent
    skipped, scored = sum(result.windows_skipped.values()), sum(result.windows_scored.values())
    assert skipped <= 0.01 * scored, (skipped, scored)
    behind = result.journal_kinds.get("signal_quality", 0)
    assert skipped == 0 or behind > 0, "windows were skipped without a quality event"
    assert result.journal_contiguous and result.events_lost == 0 and result.subscriber_matches_journal
    assert result.subscriber_seqs == result.journal_seqs and result.subscriber_duplicates == 0
    for bed in result.beds:
        assert result.onsets_journal[bed] == result.onsets_metric[bed] >= 10, bed  # one per 300 s of stream
    for kind, count in result.journal_kinds.items():
        assert result.published_metric[kind] == count, kind
    warm = [m for w, _, m in result.rss if w >= 0.2 * result.wall_s]
    assert max(warm) - min(warm) < 40.0, f"RSS after warm-up ranged {min(warm):.1f}-{max(warm):.1f} MB"
    assert result.slope_mb_per_stream_h < 10.0, result.slope_mb_per_stream_h
