"""Shared plumbing of gpulut-agent's shipped adapters: the subprocess protocol of ADAPTERS.md.

An adapter script calls `serve(probe, build)`:

- `probe()` returns a list of `{"name", "available", "version", "detail"}` dicts, one per
  framework the script provides;
- `build(framework, nodes, weights)` returns an object with `set_input(x_hwc)`, `run_once()`
  (one timed inference on the input set last) and `output()` (the last run's output as a flat
  float32 array in HWC order).

This module reads the request from stdin, loads the weight and input files, runs the timing
protocol (warm-up, then timed runs until the median's 95% CI is within the target, or
max_runs, or max_seconds: the same rule as the agent's own) and writes the reply to stdout.
Anything native libraries print goes to stderr, so stdout carries only the reply.
"""

import json
import math
import os
import sys
import time
import traceback


def _reply_stream():
    # Native code (ncnn's GPU listing, for one) prints to fd 1: keep the real stdout for the
    # reply and send everything else to stderr.
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    return os.fdopen(saved, "w")


def median(sorted_samples):
    n = len(sorted_samples)
    h = (n - 1) * 0.5
    lo, hi = math.floor(h), math.ceil(h)
    return sorted_samples[lo] + (h - lo) * (sorted_samples[hi] - sorted_samples[lo])


def median_ci(sorted_samples, level=0.95):
    """Narrowest symmetric order-statistic interval with exact binomial coverage >= level."""
    n = len(sorted_samples)
    if n == 0:
        return None
    ln_pmf = n * math.log(0.5)
    cdf = math.exp(ln_pmf)
    best = None
    for j in range(1, (n + 1) // 2 + 1):
        if 1.0 - 2.0 * cdf >= level:
            best = j
        else:
            break
        ln_pmf += math.log(n - (j - 1)) - math.log(j)
        cdf += math.exp(ln_pmf)
    if best is None:
        return None
    return sorted_samples[best - 1], sorted_samples[n - best]


def stop_reason(samples, timed_ms, p):
    n = len(samples)
    if n >= max(p["max_runs"], 1):
        return "max_runs"
    if timed_ms >= p["max_seconds"] * 1e3:
        return "max_seconds"
    if n >= p["min_runs"]:
        s = sorted(samples)
        m = median(s)
        ci = median_ci(s)
        if ci is not None and m > 0 and (ci[1] - ci[0]) / 2.0 / m <= p["target_relative_ci"]:
            return "converged"
    return None


def measure(model, p):
    """Warm-up and timed runs of `model` under protocol `p`; samples in ms."""
    warm_runs, warm_ms = 0, 0.0
    if p["max_runs"] > 0:
        while warm_runs < p["warmup_runs"] or warm_ms < p["warmup_min_ms"]:
            t0 = time.perf_counter()
            model.run_once()
            warm_ms += (time.perf_counter() - t0) * 1e3
            warm_runs += 1
    samples, timed_ms, stopped_by = [], 0.0, None
    while p["max_runs"] > 0:
        t0 = time.perf_counter()
        model.run_once()
        ms = (time.perf_counter() - t0) * 1e3
        samples.append(ms)
        timed_ms += ms
        stopped_by = stop_reason(samples, timed_ms, p)
        if stopped_by:
            break
    return samples, warm_runs, stopped_by


def _run(request, build):
    import numpy as np

    d = request["dir"]
    model_doc = request["model"]
    weights = np.fromfile(os.path.join(d, model_doc["weights_file"]), dtype="<f4")

    def tensor(ref):
        return weights[ref["offset"]: ref["offset"] + ref["count"]]

    x = np.fromfile(os.path.join(d, request["input_file"]), dtype="<f4")
    t0 = time.perf_counter()
    model = build(request["framework"], model_doc, tensor)
    model.set_input(x)
    model.run_once()  # the first run also pays for lazy initialisation
    build_ms = (time.perf_counter() - t0) * 1e3
    out = np.ascontiguousarray(model.output(), dtype="<f4").reshape(-1)
    samples, warm_runs, stopped_by = measure(model, request["protocol"])
    if samples:
        # The output after timing, so a runtime that drifts while timed is caught too.
        out = np.ascontiguousarray(model.output(), dtype="<f4").reshape(-1)
    out.tofile(os.path.join(d, request["output_file"]))
    return {
        "ok": True,
        "build_ms": build_ms,
        "warmup_runs": warm_runs,
        "samples_ms": samples,
        "stopped_by": stopped_by,
    }


def serve(probe, build):
    out = _reply_stream()
    try:
        request = json.load(sys.stdin)
        kind = request.get("request")
        if kind == "probe":
            reply = {"ok": True, "frameworks": probe()}
        elif kind == "run":
            reply = _run(request, build)
        else:
            reply = {"ok": False, "error": "unknown request %r" % (kind,)}
    except Exception as e:  # the agent shows the message; the traceback goes to stderr
        traceback.print_exc(file=sys.stderr)
        reply = {"ok": False, "error": "%s: %s" % (type(e).__name__, e)}
    out.write(json.dumps(reply))
    out.write("\n")
    out.flush()


def missing_module(name, error):
    return "python module %s not found (%s)" % (name, error)
