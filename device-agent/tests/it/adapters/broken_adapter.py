#!/usr/bin/env python3
"""Test double of an external runtime: ONNX Runtime through the shipped adapter, with its output
deliberately perturbed. Verification must reject it before any timed run. Every request's
protocol is appended to the file named by GPULUT_DOUBLE_LOG, so a test can prove that no
timed run was ever asked for."""

import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "..", "adapters"))
import gpulut_adapter  # noqa: E402
import onnxruntime_adapter  # noqa: E402


def probe():
    (ort,) = onnxruntime_adapter.probe()
    return [dict(ort, name="broken-double")]


class Broken(onnxruntime_adapter.Model):
    def __init__(self, framework, model, tensor):
        super().__init__("onnxruntime-cpu", model, tensor)

    def output(self):
        out = super().output().copy()
        out[0] += 1.0 + abs(out).max()
        return out




if __name__ == "__main__":
    raw = sys.stdin.read()
    log = os.environ.get("GPULUT_DOUBLE_LOG")
    if log:
        req = json.loads(raw)
        with open(log, "a") as f:
            f.write(json.dumps({"request": req.get("request"), "protocol": req.get("protocol")}) + "\n")
    import io

    sys.stdin = io.StringIO(raw)
    gpulut_adapter.serve(probe, Broken)
