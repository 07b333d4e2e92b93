#!/usr/bin/env python3
"""gpulut adapter for Tencent ncnn through its Python package: frameworks `ncnn-vulkan` (Vulkan
compute) and `ncnn-cpu`, both fp32 end to end (fp16/bf16 storage and arithmetic off).

The ncnn model (param text and weight blob) is generated from the agent's op list (see
ADAPTERS.md): dense and depthwise convs with their fused activation, squeeze-excitation as
global pooling, two inner products, h-sigmoid and a per-channel multiply, residual adds, and
inner products for the head. Feature maps are CHW in ncnn; the adapter converts the HWC input
and output outside the timed region. One timed run is: new extractor, input, extract (for
Vulkan this includes the upload and the download, as an application would see it).
"""

import os
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gpulut_adapter  # noqa: E402

# Bump when the generated models change in a way that can move timings.
REVISION = "gpulut.1"

HSWISH = ["1.666666716e-01", "5.000000000e-01"]


def probe():
    names = ["ncnn-vulkan", "ncnn-cpu"]
    try:
        import numpy  # noqa: F401
        import ncnn
    except ImportError as e:
        detail = gpulut_adapter.missing_module(getattr(e, "name", None) or "ncnn", e)
        return [{"name": n, "version": "", "available": False, "detail": detail} for n in names]
    version = "%s+%s" % (ncnn.__version__, REVISION)
    cpu = {"name": "ncnn-cpu", "version": version, "available": True}
    try:
        gpus = ncnn.get_gpu_count()
    except Exception as e:  # a build without Vulkan
        gpus, why = 0, "ncnn has no Vulkan support here: %s" % e
    else:
        why = "ncnn finds no Vulkan device (install a Vulkan driver and loader)"
    vulkan = {"name": "ncnn-vulkan", "version": version, "available": gpus > 0}
    if gpus == 0:
        vulkan["detail"] = why
    else:
        ncnn.destroy_gpu_instance()
    return [vulkan, cpu]


def _act(act):
    if act == "relu":
        return " 9=1"
    if act == "hswish":
        return " 9=6 -23310=2,%s" % ",".join(HSWISH)
    if act == "none":
        return ""
    raise ValueError("activation %r is not fused by this adapter" % act)


class Graph:
    """ncnn layers with named blobs; Split layers are added where a blob has several readers."""

    def __init__(self):
        self.layers = []  # (type, name, inputs, outputs, params)
        self.blobs = []  # weight-file parts in layer order

    def add(self, typ, inputs, output, params=""):
        name = "l%d" % len(self.layers)
        self.layers.append((typ, name, list(inputs), [output], params))
        return output

    def weights(self, data, tagged):
        import numpy as np

        part = np.ascontiguousarray(data, dtype="<f4").tobytes()
        self.blobs.append((struct.pack("<I", 0) if tagged else b"") + part)

    def param_text(self):
        readers = {}
        for _, _, ins, _, _ in self.layers:
            for b in ins:
                readers[b] = readers.get(b, 0) + 1
        out, pending = [], {}
        for typ, name, ins, outs, params in self.layers:
            ins = [pending[b].pop(0) if b in pending else b for b in ins]
            out.append((typ, name, ins, outs, params))
            for b in outs:
                n = readers.get(b, 0)
                if n > 1:
                    split = ["%s_%d" % (b, i) for i in range(n)]
                    out.append(("Split", "split_" + b, [b], split, ""))
                    pending[b] = list(split)
        blobs = set()
        for _, _, _, outs, _ in out:
            blobs.update(outs)
        lines = ["7767517", "%d %d" % (len(out), len(blobs))]
        for typ, name, ins, outs, params in out:
            lines.append(" ".join([typ, name, str(len(ins)), str(len(outs))] + ins + outs + [params]).rstrip())
        return "\n".join(lines) + "\n"


def generate(model, tensor):
    """The ncnn param text, weight bytes, and input and output blob names of the op list."""
    g = Graph()
    h, w, c = model["input_shape"]
    g.add("Input", [], "v0", "0=%d 1=%d 2=%d" % (w, h, c))
    for node in model["nodes"]:
        x, y, op = "v%d" % node["input"], "v%d" % node["id"], node["op"]
        if op == "conv":
            k, s, p, cin, cout = node["kernel"], node["stride"], node["padding"], node["cin"], node["cout"]
            wt = tensor(node["weight"]).reshape(k, k, cin, cout).transpose(3, 2, 0, 1)
            g.add("Convolution", [x], y, "0=%d 1=%d 3=%d 4=%d 5=1 6=%d%s" % (cout, k, s, p, wt.size, _act(node["act"])))
            g.weights(wt, True)
            g.weights(tensor(node["bias"]), False)
        elif op == "depthwise":
            k, s, p, ch = node["kernel"], node["stride"], node["padding"], node["channels"]
            wt = tensor(node["weight"]).reshape(k, k, ch).transpose(2, 0, 1)
            g.add("ConvolutionDepthWise", [x], y, "0=%d 1=%d 3=%d 4=%d 5=1 6=%d 7=%d%s" % (ch, k, s, p, wt.size, ch, _act(node["act"])))
            g.weights(wt, True)
            g.weights(tensor(node["bias"]), False)
        elif op == "squeeze_excite":
            ch, sq = node["channels"], node["squeeze"]
            pooled = g.add("Pooling", [x], y + "_pool", "0=1 4=1")
            squeezed = g.add("InnerProduct", [pooled], y + "_sq", "0=%d 1=1 2=%d%s" % (sq, ch * sq, _act(node["act"])))
            g.weights(tensor(node["reduce_weight"]).reshape(ch, sq).T, True)
            g.weights(tensor(node["reduce_bias"]), False)
            expanded = g.add("InnerProduct", [squeezed], y + "_ex", "0=%d 1=1 2=%d" % (ch, ch * sq))
            g.weights(tensor(node["expand_weight"]).reshape(sq, ch).T, True)
            g.weights(tensor(node["expand_bias"]), False)
            gate = g.add("HardSigmoid", [expanded], y + "_gate", "0=%s 1=%s" % tuple(HSWISH))
            g.add("BinaryOp", [x, gate], y, "0=2")
        elif op == "global_avg_pool":
            g.add("Pooling", [x], y, "0=1 4=1")
        elif op == "fully_connected":
            cin, cout = node["cin"], node["cout"]
            g.add("InnerProduct", [x], y, "0=%d 1=1 2=%d" % (cout, cin * cout))
            g.weights(tensor(node["weight"]).reshape(cin, cout).T, True)
            g.weights(tensor(node["bias"]), False)
        elif op == "add":
            g.add("BinaryOp", [x, "v%d" % node["other"]], y, "0=0")
        else:
            raise ValueError("op %r is not supported by this adapter" % op)
    return g.param_text(), b"".join(g.blobs), "v0", "v%d" % model["output"]


class Model:
    def __init__(self, framework, model, tensor):
        import ncnn
        import numpy as np

        if framework not in ("ncnn-vulkan", "ncnn-cpu"):
            raise ValueError("this adapter has no framework %r" % framework)
        self.ncnn, self.np = ncnn, np
        self.vulkan = framework == "ncnn-vulkan"
        self.shape = model["input_shape"]
        param, weights, self.inp, self.out = generate(model, tensor)
        d = os.environ.get("GPULUT_ADAPTER_WORKDIR") or "."
        param_path, bin_path = os.path.join(d, "model.param"), os.path.join(d, "model.bin")
        with open(param_path, "w") as f:
            f.write(param)
        with open(bin_path, "wb") as f:
            f.write(weights)
        net = ncnn.Net()
        opt = net.opt
        opt.use_vulkan_compute = self.vulkan
        for flag in ("use_fp16_packed", "use_fp16_storage", "use_fp16_arithmetic", "use_bf16_storage", "use_bf16_packed"):
            if hasattr(opt, flag):
                setattr(opt, flag, False)
        if net.load_param(param_path) != 0:
            raise RuntimeError("ncnn refused the generated param file")
        if net.load_model(bin_path) != 0:
            raise RuntimeError("ncnn refused the generated weights")
        if self.vulkan and (net.vulkan_device() is None or not net.opt.use_vulkan_compute):
            raise RuntimeError("ncnn did not enable Vulkan compute (no usable Vulkan device)")
        self.net = net
        self.x = None
        self.last = None

    def set_input(self, x):
        h, w, c = self.shape
        chw = self.np.ascontiguousarray(x.reshape(h, w, c).transpose(2, 0, 1), dtype=self.np.float32)
        # Mat(ndarray) wraps the buffer with an unaligned channel step; clone() makes an
        # aligned Mat that the Vulkan upload reads correctly.
        self.x = self.ncnn.Mat(chw).clone()

    def run_once(self):
        ex = self.net.create_extractor()
        ex.input(self.inp, self.x)
        ret, out = ex.extract(self.out)
        if ret != 0:
            raise RuntimeError("ncnn extract failed with %d" % ret)
        self.last = out

    def output(self):
        a = self.np.array(self.last)
        if a.ndim == 3:
            a = a.transpose(1, 2, 0)
        return a.reshape(-1)

    def close(self):
        self.last = self.x = None
        del self.net
        if self.vulkan:
            self.ncnn.destroy_gpu_instance()


if __name__ == "__main__":
    gpulut_adapter.serve(probe, Model)
