"""The pure parts of tools.bench.attach: latency summary, downsampling, /proc/<pid>/stat parsing."""

import math
import os

from tools.bench.attach import cpu_ticks, downsample, slope_per_100, summarize


def test_summarize_takes_first_and_last_ten_and_their_ratio():
    lat = [1.0] * 10 + [5.0] * 80 + [3.0] * 10
    s = summarize(lat)
    assert s["first"] == 1.0 and s["last"] == 3.0
    assert s["last_over_first"] == 3.0
    assert s["p50"] == 5.0 and s["p99"] == 5.0


def test_summarize_of_nothing_is_nan():
    assert all(math.isnan(v) for v in summarize([]).values())


def test_downsample_keeps_indices_and_limit():
    xs, ys = downsample([float(i) for i in range(5000)], limit=2000)
    assert len(xs) <= 2000 and xs[0] == 0
    assert ys == [float(x) for x in xs]
    assert downsample([1.0, 2.0]) == [[0, 1], [1.0, 2.0]]


def test_cpu_ticks_reads_this_process():
    assert cpu_ticks(os.getpid()) >= 0


def test_slope_per_100_of_a_line_and_of_too_little():
    assert abs(slope_per_100([5.0 + 0.5 * i for i in range(300)]) - 50.0) < 1e-9
    assert slope_per_100([3.0] * 10) == 0.0
    assert math.isnan(slope_per_100([1.0]))
