"""Keras 3 / TensorFlow peer for benchmarks/speed.py: a line-oriented JSON server.

Runs inside its own virtual environment (``benchmarks/_work/tf-venv``, made by speed.py with
``pip install tensorflow-cpu keras``); never imported by cnnlab. Requests on stdin, one JSON per
line, replies on stdout:

    {"cmd": "build", "model": "mnist-cnn-small", "batch": 128, "policy": "mixed_bfloat16"}
    {"cmd": "run", "steps": 20}   ->  {"img_s": ...}   (model.fit over `steps` batches)

The models mirror cnnlab's layer for layer in Keras' NHWC layout, with logits plus
SparseCategoricalCrossentropy(from_logits=True) and Adam(1e-3), the logits in float32 under
mixed_bfloat16 (as PyTorch autocast computes the loss in float32). Throughput is taken from
per-batch timestamps of ``fit`` (batches 2..n), i.e. Keras' steady state without its epoch set-up.
"""
import json
import sys
import time

import numpy as np

import keras
import tensorflow as tf
from keras import layers

SHAPES = {"mnist-cnn-small": (28, 28, 1), "mnist-cnn-wide": (28, 28, 1),
          "cifar10-cnn-3block": (32, 32, 3), "resnet20": (32, 32, 3)}


def conv(w, **kw):
    return layers.Conv2D(w, 3, padding="same", activation="relu", **kw)


def build(name):
    shape = SHAPES[name]
    if name == "mnist-cnn-small":
        ls = [conv(32), conv(64), layers.MaxPooling2D(2), layers.Dropout(0.25), layers.Flatten(),
              layers.Dropout(0.5), layers.Dense(128, activation="relu"), layers.Dense(10)]
    elif name == "mnist-cnn-wide":
        ls = [conv(128), conv(128), layers.MaxPooling2D(2), conv(64), conv(64), layers.MaxPooling2D(2),
              layers.Flatten(), layers.Dense(128, activation="relu"), layers.Dense(10)]
    elif name == "cifar10-cnn-3block":
        ls = []
        for w in (32, 64, 128):
            ls += [conv(w), conv(w), layers.BatchNormalization(), layers.MaxPooling2D(2), layers.Dropout(0.25)]
        ls += [layers.Flatten(), layers.Dense(128, activation="relu"), layers.Dropout(0.5), layers.Dense(10)]
    elif name == "resnet20":
        return resnet20(shape)
    else:
        raise ValueError(name)
    return keras.Sequential([keras.Input(shape), *ls, layers.Activation("linear", dtype="float32")])


def resnet20(shape, n=3):
    """He et al. 2015 CIFAR ResNet-20 with option-A (subsample + zero-pad) shortcuts."""
    def shortcut(x, cout, stride):
        cin = x.shape[-1]
        if stride == 1 and cin == cout:
            return x
        pad = cout - cin
        return layers.Lambda(lambda t: keras.ops.pad(t[:, ::stride, ::stride, :],
                                                     [[0, 0], [0, 0], [0, 0], [pad // 2, pad - pad // 2]]))(x)

    inp = keras.Input(shape)
    x = layers.Conv2D(16, 3, padding="same", use_bias=False)(inp)
    x = layers.ReLU()(layers.BatchNormalization()(x))
    for i, w in enumerate((16, 32, 64)):
        for j in range(n):
            stride = 2 if i > 0 and j == 0 else 1
            y = layers.Conv2D(w, 3, strides=stride, padding="same", use_bias=False)(x)
            y = layers.ReLU()(layers.BatchNormalization()(y))
            y = layers.BatchNormalization()(layers.Conv2D(w, 3, padding="same", use_bias=False)(y))
            x = layers.ReLU()(layers.Add()([y, shortcut(x, w, stride)]))
    x = layers.GlobalAveragePooling2D()(x)
    out = layers.Activation("linear", dtype="float32")(layers.Dense(10)(x))
    return keras.Model(inp, out)


class Timer(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        self.t = []

    def on_train_batch_end(self, batch, logs=None):
        self.t.append(time.perf_counter())


def main():
    state = {}
    for line in sys.stdin:
        req = json.loads(line)
        if req["cmd"] == "build":
            keras.mixed_precision.set_global_policy(req["policy"])
            keras.utils.set_random_seed(0)
            model = build(req["model"])
            keras.mixed_precision.set_global_policy("float32")
            model.compile(optimizer=keras.optimizers.Adam(1e-3),
                          loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
            b = req["batch"]
            n = b * req.get("steps", 20)
            rng = np.random.default_rng(0)
            x = rng.integers(0, 256, (n, *SHAPES[req["model"]]), dtype=np.uint8).astype(np.float32) / 255
            y = rng.integers(0, 10, (n,))
            state.update(model=model, x=x, y=y, batch=b, timer=Timer())
            reply = {"ok": True, "tf": tf.__version__, "keras": keras.__version__,
                     # 0: TensorFlow's default, one intra-op thread per core
                     "threads": f"intra-op {tf.config.threading.get_intra_op_parallelism_threads()}, "
                                f"inter-op {tf.config.threading.get_inter_op_parallelism_threads()}",
                     "params": model.count_params()}
        elif req["cmd"] == "run":
            s = state
            n = s["batch"] * req["steps"]
            s["model"].fit(s["x"][:n], s["y"][:n], batch_size=s["batch"], epochs=1, shuffle=False,
                           verbose=0, callbacks=[s["timer"]])
            t = s["timer"].t
            reply = {"img_s": (len(t) - 1) * s["batch"] / (t[-1] - t[0])}
        else:
            reply = {"error": f"unknown cmd {req['cmd']}"}
        print(json.dumps(reply), flush=True)


if __name__ == "__main__":
    main()
