#!/usr/bin/env python3
"""gpulut adapter for ONNX Runtime on the CPU: framework `onnxruntime-cpu`.

An ONNX graph (opset 17, NCHW, fp32) is generated with the `onnx` package from the agent's op
list (see ADAPTERS.md): Conv (group = channels for depthwise) with Relu or HardSwish,
squeeze-excitation as GlobalAveragePool, two 1x1 Convs, HardSigmoid(1/6, 1/2) and Mul, residual
Add, GlobalAveragePool, and Flatten + Gemm for fully connected layers. The HWC input and output
are converted outside the timed region; one timed run is one `InferenceSession.run`.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gpulut_adapter  # noqa: E402

REVISION = "gpulut.1"
OPSET = 17


def probe():
    try:
        import numpy  # noqa: F401
        import onnx  # noqa: F401
        import onnxruntime
    except ImportError as e:
        name = getattr(e, "name", None) or "onnxruntime"
        detail = gpulut_adapter.missing_module(name, e)
        return [{"name": "onnxruntime-cpu", "version": "", "available": False, "detail": detail}]
    version = "%s+%s" % (onnxruntime.__version__, REVISION)
    ok = "CPUExecutionProvider" in onnxruntime.get_available_providers()
    entry = {"name": "onnxruntime-cpu", "version": version, "available": ok}
    if not ok:
        entry["detail"] = "onnxruntime has no CPUExecutionProvider"
    return [entry]


def generate(model, tensor):
    """The ONNX ModelProto of the op list, and whether its output is NCHW (else [1, C])."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    nodes, inits = [], []
    rank4 = {0: True}

    def init(name, array):
        inits.append(numpy_helper.from_array(np.ascontiguousarray(array, dtype=np.float32), name))
        return name

    def act(x, a, name):
        if a == "none":
            return x
        kind = {"relu": "Relu", "hswish": "HardSwish"}.get(a)
        if kind is None:
            raise ValueError("activation %r is not supported by this adapter" % a)
        nodes.append(helper.make_node(kind, [x], [name]))
        return name

    def conv(x, wname, bname, w, b, k, s, p, group, out):
        nodes.append(helper.make_node(
            "Conv", [x, init(wname, w), init(bname, b)], [out],
            kernel_shape=[k, k], strides=[s, s], pads=[p, p, p, p], group=group))
        return out

    h, w, c = model["input_shape"]
    for node in model["nodes"]:
        i, op = node["id"], node["op"]
        x, y = "v%d" % node["input"], "v%d" % i
        if op == "conv":
            k, cin, cout = node["kernel"], node["cin"], node["cout"]
            wt = tensor(node["weight"]).reshape(k, k, cin, cout).transpose(3, 2, 0, 1)
            z = conv(x, "w%d" % i, "b%d" % i, wt, tensor(node["bias"]), k, node["stride"], node["padding"], 1,
                     y if node["act"] == "none" else y + "_pre")
            act(z, node["act"], y)
        elif op == "depthwise":
            k, ch = node["kernel"], node["channels"]
            wt = tensor(node["weight"]).reshape(k, k, ch).transpose(2, 0, 1)[:, None]
            z = conv(x, "w%d" % i, "b%d" % i, wt, tensor(node["bias"]), k, node["stride"], node["padding"], ch,
                     y if node["act"] == "none" else y + "_pre")
            act(z, node["act"], y)
        elif op == "squeeze_excite":
            ch, sq = node["channels"], node["squeeze"]
            nodes.append(helper.make_node("GlobalAveragePool", [x], [y + "_pool"]))
            r = tensor(node["reduce_weight"]).reshape(ch, sq).T[:, :, None, None]
            z = conv(y + "_pool", "wr%d" % i, "br%d" % i, r, tensor(node["reduce_bias"]), 1, 1, 0, 1, y + "_sq")
            z = act(z, node["act"], y + "_sqa")
            e = tensor(node["expand_weight"]).reshape(sq, ch).T[:, :, None, None]
            z = conv(z, "we%d" % i, "be%d" % i, e, tensor(node["expand_bias"]), 1, 1, 0, 1, y + "_ex")
            nodes.append(helper.make_node("HardSigmoid", [z], [y + "_gate"], alpha=1.0 / 6.0, beta=0.5))
            nodes.append(helper.make_node("Mul", [x, y + "_gate"], [y]))
        elif op == "global_avg_pool":
            nodes.append(helper.make_node("GlobalAveragePool", [x], [y]))
        elif op == "fully_connected":
            cin, cout = node["cin"], node["cout"]
            if rank4[node["input"]]:
                nodes.append(helper.make_node("Flatten", [x], [y + "_flat"]))
                x = y + "_flat"
            wt = tensor(node["weight"]).reshape(cin, cout)
            nodes.append(helper.make_node("Gemm", [x, init("w%d" % i, wt), init("b%d" % i, tensor(node["bias"]))], [y]))
            rank4[i] = False
        elif op == "add":
            nodes.append(helper.make_node("Add", [x, "v%d" % node["other"]], [y]))
        else:
            raise ValueError("op %r is not supported by this adapter" % op)
        rank4.setdefault(i, True)

    out = model["output"]
    oh, ow, oc = model["output_shape"]
    out_shape = [1, oc, oh, ow] if rank4[out] else [1, oc]
    graph = helper.make_graph(
        nodes, "gpulut",
        [helper.make_tensor_value_info("v0", TensorProto.FLOAT, [1, c, h, w])],
        [helper.make_tensor_value_info("v%d" % out, TensorProto.FLOAT, out_shape)],
        initializer=inits)
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="gpulut")
    proto.ir_version = 9
    return proto, rank4[out]


class Model:
    def __init__(self, framework, model, tensor):
        import numpy as np
        import onnx
        import onnxruntime as ort

        if framework != "onnxruntime-cpu":
            raise ValueError("this adapter has no framework %r" % framework)
        self.np = np
        proto, self.nchw_out = generate(model, tensor)
        onnx.checker.check_model(proto)
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        threads = os.environ.get("GPULUT_ORT_THREADS")
        if threads:
            so.intra_op_num_threads = int(threads)
        self.sess = ort.InferenceSession(proto.SerializeToString(), so, providers=["CPUExecutionProvider"])
        self.out_name = "v%d" % model["output"]
        self.shape = model["input_shape"]
        self.feed = None
        self.last = None

    def set_input(self, x):
        h, w, c = self.shape
        nchw = self.np.ascontiguousarray(x.reshape(h, w, c).transpose(2, 0, 1)[None], dtype=self.np.float32)
        self.feed = {"v0": nchw}

    def run_once(self):
        self.last = self.sess.run([self.out_name], self.feed)[0]

    def output(self):
        a = self.last
        if self.nchw_out:
            a = a.transpose(0, 2, 3, 1)
        return a.reshape(-1)


if __name__ == "__main__":
    gpulut_adapter.serve(probe, Model)
