"""Small ONNX models with the real files' contracts, and images with faces they can find.

The detector reports a face wherever a bright square of FACE_SIDE pixels (in 640x640 detector space)
is centred on a stride-32 anchor; its landmarks sit where ArcFace's template puts them, so alignment
is a plain scale. The embedder's output depends on the crop and the swapper's on the latent.
"""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import av
import cv2
import numpy as np
import onnx
from PIL import Image
from onnx import TensorProto, helper, numpy_helper
from skimage import data as photos

from swaparoony.imaging.face_geometry import ARCFACE_TEMPLATE
from swaparoony.models.arcface import RECOGNIZER
from swaparoony.models.inswapper import SWAPPER
from swaparoony.models.rivagan import DECODER as WATERMARK_DECODER, ENCODER as WATERMARK_ENCODER
from swaparoony.models.scrfd import DETECTOR

DET_10G_OUTPUTS = ("448", "471", "494", "451", "474", "497", "454", "477", "500")
"""det_10g's output names: scores, boxes and landmarks for strides 8, 16 and 32, in that order."""

FACE_SIDE = 64
OPSET = [helper.make_opsetid("", 17)]
IR_VERSION = 8
"""What every ONNX Runtime the service ships reads (onnxruntime-gpu 1.26, the CUDA 12 line, reads IR up to 13; onnx 1.23 writes 14)."""

# Convolution plans (in_channels, out_channels, stride, repeats) that give the generated models about
# the real files' compute: SCRFD-10GF ~10 GFLOPs at 640x640, ResNet-50 ArcFace ~6 GFLOPs at 112x112,
# inswapper_128 ~175 GFLOPs and 138 M parameters.
DETECTOR_COST = [(3, 32, 2, 1), (32, 64, 2, 1), (64, 128, 2, 1), (128, 128, 1, 4)]
RECOGNIZER_COST = [(3, 64, 1, 1), (64, 64, 1, 6)]
SWAPPER_COST = [(3, 256, 2, 1), (256, 512, 2, 1), (512, 1024, 1, 1), (1024, 1024, 1, 7), (1024, 1024, 2, 1), (1024, 1024, 1, 6)]


def _const(name: str, array: np.ndarray) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(array), name)


def _ballast(nodes: list, inits: list, source: str, plan: list, size: int, seed: int) -> str:
    """A stack of 3x3 convolutions over the input, reduced to a scalar that is multiplied by zero.

    It costs what the plan costs but leaves the outputs as they are; ONNX Runtime cannot fold it
    away because it depends on the input. He-initialised weights with ReLU keep it finite.
    Returns the scalar's name.
    """
    rng = np.random.default_rng(seed)
    current = source
    for index, (cin, cout, step, _) in enumerate(_layers(plan, size)):
        name = f"ballast_{index}"
        weight = (rng.standard_normal((cout, cin, 3, 3)) * np.sqrt(2.0 / (cin * 9))).astype(np.float32)
        inits.append(_const(f"{name}_w", weight))
        nodes.append(helper.make_node("Conv", [current, f"{name}_w"], [f"{name}_conv"], kernel_shape=[3, 3],
                                      strides=[step, step], pads=[1, 1, 1, 1]))
        nodes.append(helper.make_node("Relu", [f"{name}_conv"], [f"{name}_out"]))
        current = f"{name}_out"
    nodes.append(helper.make_node("ReduceMean", [current], ["ballast_mean"], keepdims=0))
    inits.append(_const("ballast_zero", np.float32(0.0)))
    nodes.append(helper.make_node("Mul", ["ballast_mean", "ballast_zero"], ["ballast"]))
    return "ballast"


def _layers(plan: list, size: int) -> list[tuple[int, int, int, int]]:
    """Each convolution of a plan as (in_channels, out_channels, stride, output size)."""
    layers = []
    for in_ch, out_ch, stride, repeats in plan:
        for repeat in range(repeats):
            step = stride if repeat == 0 else 1
            size = (size + step - 1) // step
            layers.append((in_ch if repeat == 0 else out_ch, out_ch, step, size))
    return layers


def _add_ballast(nodes: list, output: str, ballast: str) -> None:
    """Route one output through `+ ballast` (which is zero) so the heavy branch must run."""
    for node in nodes:
        node.output[:] = [f"{output}_light" if name == output else name for name in node.output]
    nodes.append(helper.make_node("Add", [f"{output}_light", ballast], [output]))


def _level(nodes: list, inits: list, stride: int, coverage: str, live: bool, keep_batch: bool = False) -> tuple[str, str, str]:
    """Score, box and landmark outputs for one stride, laid out as SCRFD's (cells x 2 anchors)."""
    s = f"s{stride}"
    if live:
        nodes.append(helper.make_node("Sub", [coverage, "cov_threshold"], [f"{s}_centered"]))
        nodes.append(helper.make_node("Mul", [f"{s}_centered", "cov_gain"], [f"{s}_logit"]))
        nodes.append(helper.make_node("Sigmoid", [f"{s}_logit"], [f"{s}_score1"]))
    else:
        nodes.append(helper.make_node("Mul", [coverage, "zero"], [f"{s}_score1"]))
    nodes.append(helper.make_node("Mul", [coverage, "zero"], [f"{s}_zeros"]))
    # Only the first anchor of a cell fires, so one face gives one box before NMS.
    nodes.append(helper.make_node("Concat", [f"{s}_score1", f"{s}_zeros"], [f"{s}_score2"], axis=1))
    half = FACE_SIDE / 2 / stride
    box = np.full((1, 8, 1, 1), half, dtype=np.float32)
    kps_points = (ARCFACE_TEMPLATE - 56.0) * (FACE_SIDE / 112.0) / stride
    kps = np.tile(kps_points.reshape(-1), 2).reshape(1, 20, 1, 1).astype(np.float32)
    inits += [_const(f"{s}_box", box), _const(f"{s}_kps", kps)]
    nodes.append(helper.make_node("Add", [f"{s}_zeros", f"{s}_box"], [f"{s}_box8"]))
    nodes.append(helper.make_node("Add", [f"{s}_zeros", f"{s}_kps"], [f"{s}_kps20"]))
    names = []
    for tensor, width in ((f"{s}_score2", 1), (f"{s}_box8", 4), (f"{s}_kps20", 10)):
        nodes.append(helper.make_node("Transpose", [tensor], [f"{tensor}_t"], perm=[0, 2, 3, 1]))
        shape = [0, -1, width] if keep_batch else [-1, width]  # [batch, anchors, width], or the batch folded in
        inits.append(_const(f"{tensor}_shape", np.array(shape, dtype=np.int64)))
        nodes.append(helper.make_node("Reshape", [f"{tensor}_t", f"{tensor}_shape"], [f"{tensor}_out"]))
        names.append(f"{tensor}_out")
    return names[0], names[1], names[2]


def detector_model(cost_faithful: bool = False, output_names: tuple[str, ...] = DET_10G_OUTPUTS, by_stride: bool = False,
                   free_batch: bool = False, landmarks: bool = True) -> onnx.ModelProto:
    """det_10g's contract: input.1 [1,3,?,?] -> 9 outputs (scores, boxes, landmarks at strides 8/16/32).

    Variants other exports have: other output names, outputs grouped per stride (score, box, landmarks for 8,
    then 16, then 32), a free batch axis with [batch, anchors, width] outputs, or no landmark outputs.
    """
    nodes: list = []
    inits = [
        _const("zero", np.float32(0.0)),
        _const("cov_threshold", np.float32(0.8)),
        _const("cov_gain", np.float32(40.0)),
        _const("bright_offset", np.float32(0.1)),
        _const("bright_gain", np.float32(4.0)),
    ]
    nodes += [
        helper.make_node("ReduceMean", ["input.1"], ["gray"], axes=[1], keepdims=1),
        helper.make_node("Sub", ["gray", "bright_offset"], ["gray_c"]),
        helper.make_node("Mul", ["gray_c", "bright_gain"], ["gray_g"]),
        helper.make_node("Clip", ["gray_g", "zero_f", "one_f"], ["bright"]),
    ]
    inits += [_const("zero_f", np.float32(0.0)), _const("one_f", np.float32(1.0))]
    outputs = {}
    for stride in (8, 16, 32):
        # Coverage of a FACE_SIDE window centred on each anchor (anchors sit on multiples of the stride).
        kernel = FACE_SIDE if stride == 32 else stride
        pads = [kernel // 2, kernel // 2, kernel // 2 - 1, kernel // 2 - 1] if stride == 32 else [0, 0, 0, 0]
        nodes.append(
            helper.make_node(
                "AveragePool", ["bright"], [f"cov{stride}"], kernel_shape=[kernel, kernel],
                strides=[stride, stride], pads=pads, count_include_pad=0,
            )
        )
        outputs[stride] = _level(nodes, inits, stride, f"cov{stride}", live=stride == 32, keep_batch=free_batch)
    kinds = (0, 1, 2) if landmarks else (0, 1)
    if by_stride:
        ordered = [(outputs[s][k], (1, 4, 10)[k]) for s in (8, 16, 32) for k in kinds]
    else:
        ordered = [(outputs[s][k], (1, 4, 10)[k]) for k in kinds for s in (8, 16, 32)]
    for (internal, _), name in zip(ordered, output_names):
        nodes.append(helper.make_node("Identity", [internal], [name]))
    if cost_faithful:
        _add_ballast(nodes, output_names[0], _ballast(nodes, inits, "input.1", DETECTOR_COST, 640, 1))
    batch = "batch" if free_batch else 1
    graph = helper.make_graph(
        nodes, "generated_det_10g",
        [helper.make_tensor_value_info("input.1", TensorProto.FLOAT, [batch, 3, "height", "width"])],
        [helper.make_tensor_value_info(name, TensorProto.FLOAT, ["batch", "anchors", width] if free_batch else ["anchors", width])
         for (_, width), name in zip(ordered, output_names)],
        inits,
    )
    return helper.make_model(graph, opset_imports=OPSET, ir_version=IR_VERSION)


def recognizer_model(seed: int = 7, cost_faithful: bool = False, identity_faithful: bool = False) -> onnx.ModelProto:
    """w600k_r50's contract: input.1 [N,3,112,112] -> 683 [N,512], dynamic batch.

    identity_faithful: the embedding is the crop's mean colour per channel (the other 509 values zero), so that
    with the identity-faithful swapper a face's identity is its colour and survives the swap measurably.
    """
    rng = np.random.default_rng(seed)
    weights = rng.standard_normal((3 * 14 * 14, 512)).astype(np.float32)
    if identity_faithful:
        weights = np.zeros((3 * 14 * 14, 512), np.float32)
        for channel in range(3):
            weights[channel * 196 : (channel + 1) * 196, channel] = 1 / 196
    nodes = [
        helper.make_node("AveragePool", ["input.1"], ["pooled"], kernel_shape=[8, 8], strides=[8, 8]),
        helper.make_node("Flatten", ["pooled"], ["flat"], axis=1),
        helper.make_node("MatMul", ["flat", "weights"], ["683"]),
    ]
    inits = [_const("weights", weights)]
    if cost_faithful:
        _add_ballast(nodes, "683", _ballast(nodes, inits, "input.1", RECOGNIZER_COST, 112, 2))
    graph = helper.make_graph(
        nodes, "generated_w600k_r50",
        [helper.make_tensor_value_info("input.1", TensorProto.FLOAT, ["None", 3, 112, 112])],
        [helper.make_tensor_value_info("683", TensorProto.FLOAT, ["None", 512])],
        inits,
    )
    return helper.make_model(graph, opset_imports=OPSET, ir_version=IR_VERSION)


def swapper_model(seed: int = 11, cost_faithful: bool = False, batch: str = "pinned",
                  identity_faithful: bool = False) -> onnx.ModelProto:
    """inswapper_128's contract: target [1,3,128,128] + source [1,512] -> output, emap last initializer.

    The output is half the target and half a flat colour chosen by the latent (identity_faithful: the colour the
    identity-faithful recognizer embedded, through an identity emap). batch: "pinned" (as the real
    file: batch 1, and a Reshape to [1,3,1,1] that a free-batch copy can free), "free" (exported with a free
    batch axis) or "folded" (the target reshaped to [3, 16384] and back, which no rewrite of leading 1s frees).
    """
    rng = np.random.default_rng(seed)
    target = "target"
    nodes = []
    inits = [
        _const("colour_weights", (rng.standard_normal((512, 3)) * 4).astype(np.float32)),
        _const("colour_shape", np.array([-1 if batch == "free" else 1, 3, 1, 1], dtype=np.int64)),
        _const("half", np.float32(0.5)),
    ]
    if batch == "folded":
        inits += [_const("fold_shape", np.array([3, 128 * 128], dtype=np.int64)),
                  _const("unfold_shape", np.array([1, 3, 128, 128], dtype=np.int64))]
        nodes += [helper.make_node("Reshape", ["target", "fold_shape"], ["target_folded"]),
                  helper.make_node("Reshape", ["target_folded", "unfold_shape"], ["target_unfolded"])]
        target = "target_unfolded"
    if batch == "mixing":  # averages over the batch axis: the same for one item, wrong for several
        nodes.append(helper.make_node("ReduceMean", ["target"], ["target_mixed"], axes=[0], keepdims=1))
        target = "target_mixed"
    if identity_faithful:
        selection = np.zeros((512, 3), np.float32)
        selection[[0, 1, 2], [0, 1, 2]] = 0.5
        inits[0] = _const("colour_weights", selection)  # colour = 0.5 + latent/2: back to pixel units in [0, 1]
    nodes += [
        helper.make_node("MatMul", ["source", "colour_weights"], ["colour_logit"]),
        helper.make_node("Add", ["colour_logit", "half"], ["colour"]) if identity_faithful
        else helper.make_node("Sigmoid", ["colour_logit"], ["colour"]),
        helper.make_node("Reshape", ["colour", "colour_shape"], ["colour4"]),
        helper.make_node("Mul", [target, "half"], ["target_half"]),
        helper.make_node("Mul", ["colour4", "half"], ["colour_half"]),
        helper.make_node("Add", ["target_half", "colour_half"], ["output"]),
    ]
    if cost_faithful:
        _add_ballast(nodes, "output", _ballast(nodes, inits, "target", SWAPPER_COST, 128, 3))
    emap = np.eye(512, dtype=np.float32) if identity_faithful else rng.standard_normal((512, 512)).astype(np.float32)
    inits.append(_const("emap", emap))  # always the last initializer
    axis = "batch" if batch == "free" else 1
    graph = helper.make_graph(
        nodes, "generated_inswapper_128",
        [
            helper.make_tensor_value_info("target", TensorProto.FLOAT, [axis, 3, 128, 128]),
            helper.make_tensor_value_info("source", TensorProto.FLOAT, [axis, 512]),
        ],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [axis, 3, 128, 128])],
        inits,
    )
    return helper.make_model(graph, opset_imports=OPSET, ir_version=IR_VERSION)


def write_models(models_dir: Path, cost_faithful: bool = False, identity_faithful: bool = False) -> Path:
    """Write the generated files of every required role in the layout the service reads (cost-faithful: real compute
    too; identity-faithful: an identity the swap carries over, see recognizer_model); the watermark encoder is a
    stand-in that marks nothing (real_watermark_files puts the real pair in place)."""
    models = (
        (DETECTOR, detector_model(cost_faithful=cost_faithful)),
        (RECOGNIZER, recognizer_model(cost_faithful=cost_faithful, identity_faithful=identity_faithful)),
        (SWAPPER, swapper_model(cost_faithful=cost_faithful, identity_faithful=identity_faithful)),
        (WATERMARK_ENCODER, watermark_encoder_model()),
    )
    for spec, model in models:
        path = models_dir / spec.relative_path
        path.parent.mkdir(parents=True, exist_ok=True)
        onnx.checker.check_model(model)
        onnx.save(model, str(path))
    return models_dir


def plan_cost(plan: list, size: int) -> tuple[float, int]:
    """GFLOPs per item and parameters of a ballast plan, without building it."""
    layers = _layers(plan, size)
    flops = sum(2.0 * cin * cout * 9 * out * out for cin, cout, _, out in layers)
    return flops / 1e9, sum(cout * cin * 9 for cin, cout, _, _ in layers)


def draw_faces(size: tuple[int, int], centers: list[tuple[int, int]], scale: float = 1.0,
               colours: list[tuple[int, int, int]] | None = None) -> np.ndarray:
    """A dark BGR image with a bright square 'face' at each centre.

    With scale s the image is meant to be letterboxed by 1/s, so centres should sit on multiples of
    32*s and the squares are FACE_SIDE*s wide.
    """
    width, height = size
    image = np.full((height, width, 3), 30, dtype=np.uint8)
    rng = np.random.default_rng(0)
    image += rng.integers(0, 20, image.shape, dtype=np.uint8)  # texture, so changes are visible
    half = int(FACE_SIDE * scale / 2)
    for i, (cx, cy) in enumerate(centers):
        colour = colours[i] if colours else (200, 210, 230)
        image[cy - half : cy + half, cx - half : cx + half] = colour
        # A darker 'eye line' so aligned crops are not uniform.
        image[cy - half // 3 : cy - half // 3 + max(2, half // 8), cx - half + 4 : cx + half - 4] = (170, 180, 200)
    return image


GLASSES = (120, 150, 255)
"""A BGR colour the generated face parser labels glasses (class 6): bright, so the detector still sees the face."""
HAND = (150, 255, 150)
"""A BGR colour the generated face occluder marks as covering the face."""


def enhancer_model(weighted: bool = False) -> onnx.ModelProto:
    """An enhancer's contract ([1,3,512,512] in [-1, 1] in and out) with a known effect: the negative (-x), or with
    CodeFormer's `weight` input (a double [1]) x * (1 - 2 * weight): itself at 0, the negative at 1."""
    face = [1, 3, 512, 512]
    inputs = [helper.make_tensor_value_info("input", TensorProto.FLOAT, face)]
    if weighted:
        inits = [_const("one", np.float32(1.0)), _const("two", np.float32(2.0))]
        inputs.append(helper.make_tensor_value_info("weight", TensorProto.DOUBLE, [1]))
        nodes = [helper.make_node("Cast", ["weight"], ["w"], to=TensorProto.FLOAT),
                 helper.make_node("Mul", ["w", "two"], ["w2"]),
                 helper.make_node("Sub", ["one", "w2"], ["gain"]),
                 helper.make_node("Mul", ["input", "gain"], ["output"])]
    else:
        inits = [_const("minus_one", np.float32(-1.0))]
        nodes = [helper.make_node("Mul", ["input", "minus_one"], ["output"])]
    graph = helper.make_graph(nodes, "generated_enhancer", inputs,
                              [helper.make_tensor_value_info("output", TensorProto.FLOAT, face)], inits)
    return helper.make_model(graph, opset_imports=OPSET, ir_version=IR_VERSION)


def parser_model() -> onnx.ModelProto:
    """BiSeNet's contract ([1,3,512,512] ImageNet-normalised RGB in, [1,19,512,512] logits out): class 6 (glasses)
    where red stands well above green (the GLASSES colour), class 1 (skin) everywhere else."""
    weights = np.zeros((19, 3, 1, 1), np.float32)
    bias = np.full(19, -100.0, np.float32)
    bias[1] = 0.0
    weights[6, :, 0, 0] = (20.0, -20.0, 0.0)  # RGB order: 20 * (R - G - 1) in ImageNet units
    bias[6] = -20.0
    graph = helper.make_graph(
        [helper.make_node("Conv", ["input", "w", "b"], ["output"], kernel_shape=[1, 1])], "generated_bisenet",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 512, 512])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 19, 512, 512])],
        [_const("w", weights), _const("b", bias)],
    )
    return helper.make_model(graph, opset_imports=OPSET, ir_version=IR_VERSION)


def occluder_model() -> onnx.ModelProto:
    """XSeg's contract ([1,256,256,3] BGR /255 in, [1,256,256,1] out): 0 (covered) where green stands well above
    blue and red (the HAND colour), 1 elsewhere."""
    weights = np.array([[15.0], [-30.0], [15.0]], np.float32)  # 30 * (0.2 - (G - (B + R) / 2)), BGR order
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["input", "w"], ["d"]), helper.make_node("Add", ["d", "b"], ["logit"]),
         helper.make_node("Sigmoid", ["logit"], ["output"])], "generated_xseg",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 256, 256, 3])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 256, 256, 1])],
        [_const("w", weights), _const("b", np.array([6.0], np.float32))],
    )
    return helper.make_model(graph, opset_imports=OPSET, ir_version=IR_VERSION)


def write_optional_models(models_dir: Path, enhancers: tuple[str, ...] = ("gfpgan_1.4", "codeformer")) -> Path:
    """Add generated enhancers (CodeFormer's with its weight), a face parser and an occluder to a models directory."""
    from swaparoony.models.face_enhancer import ENHANCERS
    from swaparoony.models.face_occluder import OCCLUDERS
    from swaparoony.models.face_parser import PARSERS

    models = [(ENHANCERS[key], enhancer_model(weighted=len(ENHANCERS[key].inputs) == 2)) for key in enhancers]
    models += [(PARSERS["bisenet_resnet_34"], parser_model()), (OCCLUDERS["xseg_1"], occluder_model())]
    for spec, model in models:
        onnx.checker.check_model(model)
        onnx.save(model, str(models_dir / spec.relative_path))
    return models_dir


def watermark_encoder_model() -> onnx.ModelProto:
    """RivaGAN's encoder contract, marking nothing: the frames come back as they went in (the payload is taken and
    left unused), for the servers whose tests are not about the watermark."""
    frame = ["batch", 3, 1, "height", "width"]
    graph = helper.make_graph(
        [helper.make_node("Identity", ["frame"], ["output"])], "rivagan_encoder_stand_in",
        [helper.make_tensor_value_info("frame", TensorProto.FLOAT, frame),
         helper.make_tensor_value_info("data", TensorProto.FLOAT, ["batch", 32])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, frame)],
    )
    return helper.make_model(graph, opset_imports=OPSET, ir_version=IR_VERSION)


WATERMARK_WHEEL = "invisible_watermark-0.2.0-py3-none-any.whl"
WATERMARK_WHEEL_SHA256 = "644311beed9cfe4a9a5a4a46c740f47800cef184fe2e1297f3f4542e2d992f8b"
WHEELS = Path(__file__).resolve().parent.parent / "build" / "wheels"


def watermark_wheel() -> Path:
    """invisible-watermark's wheel, the real RivaGAN files' home: the one package registry file these machines can
    get, fetched once (without its dependencies: torch is never installed) into build/wheels and checked."""
    wheel = WHEELS / WATERMARK_WHEEL
    if not wheel.is_file():
        WHEELS.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=WHEELS) as fetched:  # then renamed: the other test process may be here too
            subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "invisible-watermark==0.2.0",
                            "-d", fetched], check=True)
            os.replace(Path(fetched) / WATERMARK_WHEEL, wheel)
    if hashlib.sha256(wheel.read_bytes()).hexdigest() != WATERMARK_WHEEL_SHA256:
        raise AssertionError(f"{wheel} is not invisible-watermark 0.2.0's wheel; delete it to fetch it again")
    return wheel


def real_watermark_files(models_dir: Path) -> Path:
    """The real RivaGAN encoder and decoder (MIT) taken from the wheel into models_dir, over the stand-in."""
    with zipfile.ZipFile(watermark_wheel()) as wheel:
        for spec in (WATERMARK_ENCODER, WATERMARK_DECODER):
            (models_dir / spec.relative_path).write_bytes(wheel.read(f"imwatermark/{spec.relative_path}"))
    return models_dir


def photo_portrait(photo_rgb: np.ndarray, size: tuple[int, int] = (1280, 1280),
                   centres: tuple[tuple[int, int], ...] = ((640, 640),), scale: float = 2.0) -> np.ndarray:
    """A real photo as a destination the generated detector can use: dimmed (so none of its own bright patches reads
    as a face) with draw_faces' squares on it. A watermark needs a real picture's texture to hide in: on draw_faces'
    flat backdrop RivaGAN's mark is too weak to read."""
    backdrop = cv2.resize(np.ascontiguousarray(photo_rgb[..., ::-1]), size, interpolation=cv2.INTER_AREA)
    portrait = (backdrop.astype(np.float32) * 0.4 + 10).astype(np.uint8)
    faces = draw_faces(size, list(centres), scale)
    half = int(FACE_SIDE * scale / 2)
    for x, y in centres:
        portrait[y - half : y + half, x - half : x + half] = faces[y - half : y + half, x - half : x + half]
    return portrait


def photo_gallery(directory: Path) -> Path:
    """Two portraits made from scikit-image's real photos (astronaut.png, coffee.jpg), as a booth's gallery of
    photographs would be."""
    directory.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(directory / "astronaut.png"), photo_portrait(photos.astronaut()))
    cv2.imwrite(str(directory / "coffee.jpg"), photo_portrait(photos.coffee(), (1200, 800), ((608, 384),)),
                [cv2.IMWRITE_JPEG_QUALITY, 95])
    return directory


def moving_face_frames(count: int, size: tuple[int, int] = (640, 352), start: tuple[int, int] = (96, 160),
                       step: tuple[int, int] = (32, 0), absent: tuple[int, ...] = (), scale: float = 1.0) -> list[np.ndarray]:
    """A clip's frames: draw_faces' scene with one face moving `step` pixels a frame, and no face in the `absent` frames."""
    return [draw_faces(size, [] if i in absent else [(start[0] + step[0] * i, start[1] + step[1] * i)], scale=scale)
            for i in range(count)]


def gif_clip(frames: list[np.ndarray], durations_ms: list[int]) -> bytes:
    """The frames as an animated GIF with these frame times (GIF keeps hundredths of a second)."""
    pictures = [Image.fromarray(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)) for frame in frames]
    buffer = io.BytesIO()
    pictures[0].save(buffer, "GIF", save_all=True, append_images=pictures[1:], duration=durations_ms, loop=0)
    return buffer.getvalue()


def mp4_clip(frames: list[np.ndarray], fps: int = 12, sound: bool = True) -> bytes:
    """The frames as an H.264 MP4 at `fps`, with a 440 Hz AAC tone as long as the clip where asked."""
    height, width = frames[0].shape[:2]
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mp4") as output:
        video = output.add_stream("libx264", rate=fps)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        audio = output.add_stream("aac", rate=44100) if sound else None
        for i, frame in enumerate(frames):
            picture = av.VideoFrame.from_ndarray(frame, format="bgr24")
            picture.pts = i
            output.mux(video.encode(picture))
        output.mux(video.encode(None))
        if audio is not None:
            samples = int(44100 * len(frames) / fps)
            for start in range(0, samples, 1024):
                tone = (0.3 * np.sin(np.arange(start, start + 1024) * 2 * np.pi * 440 / 44100)).astype(np.float32)
                chunk = av.AudioFrame.from_ndarray(tone[None], format="fltp", layout="mono")
                chunk.sample_rate, chunk.pts = 44100, start
                output.mux(audio.encode(chunk))
            output.mux(audio.encode(None))
    return buffer.getvalue()
