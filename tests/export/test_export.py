"""``cityscapes-seg export``: ONNX files that onnx.checker accepts and ONNX Runtime runs like our PyTorch model."""

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from support.fixtures import load_fixture

from cityscapes_seg_ros import build_segmentor, scores_to_train_ids
from cityscapes_seg_ros.cli.main import main
from cityscapes_seg_ros.dcnv3.geometry import DCNv3Geometry
from cityscapes_seg_ros.labels import TRAIN_CLASS_NAMES, TRAIN_LABELS
from cityscapes_seg_ros.ops import dcnv3

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

from cityscapes_seg_ros.export.dcnv3_gridsample import dcnv3_core_gridsample, gridsample_dcnv3  # noqa: E402
from cityscapes_seg_ros.export.onnx_export import (  # noqa: E402
    ExportSettings,
    export_graph,
    export_onnx,
    ort_session,
)
from cityscapes_seg_ros.export.sidecar import read_sidecar  # noqa: E402
from cityscapes_seg_ros.export.verify import compare_with_pytorch, random_input  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
MEAN_RGB = (123.675, 116.28, 103.53)  # written out: the test checks the sidecar against the official values
STD_RGB = (58.395, 57.12, 57.375)


def relative_error(out, ref) -> float:
    out, ref = np.asarray(out, np.float64), np.asarray(ref, np.float64)
    return float(np.linalg.norm(out - ref) / np.linalg.norm(ref))


# ------------------------------------------------------------------------------------------ the DCNv3 core


@pytest.mark.parametrize(
    "geometry, size",
    [
        (DCNv3Geometry(3, 3, 1, 1, 1, 1, 1, 1, 2, 8, 1.0), (9, 13)),  # InternImage's blocks
        (DCNv3Geometry(3, 3, 2, 2, 1, 1, 2, 2, 4, 4, 2.0), (12, 10)),  # stride, dilation, offset_scale 2 (L/XL)
        (DCNv3Geometry(5, 5, 1, 1, 2, 2, 1, 1, 1, 3, 0.5), (7, 7)),
    ],
)
def test_gridsample_core_equals_our_operator(geometry, size):
    generator = torch.Generator().manual_seed(sum(size))
    k, s, p, d = geometry.kernel_h, geometry.stride_h, geometry.pad_h, geometry.dilation_h
    h, w = size
    ho, wo = (h + 2 * p - (d * (k - 1) + 1)) // s + 1, (w + 2 * p - (d * (k - 1) + 1)) // s + 1
    x = torch.randn(2, h, w, geometry.group * geometry.group_channels, generator=generator)
    offset = 3 * torch.randn(2, ho, wo, geometry.group * k * k * 2, generator=generator)  # many points land outside
    mask = torch.rand(2, ho, wo, geometry.group * k * k, generator=generator)
    expected = dcnv3(x, offset, mask, *geometry)
    assert relative_error(dcnv3_core_gridsample(x, offset, mask, geometry), expected) <= 1e-5
    halves = (x.half(), offset.half(), mask.half())  # sampled in fp32 like the operator: same positions
    half = dcnv3_core_gridsample(*halves, geometry)
    assert half.dtype == torch.float16 and relative_error(half, dcnv3(*halves, *geometry)) <= 1e-3


@pytest.fixture(scope="module")
def tiny_t():
    fixture = load_fixture("official_tiny_upernet_t_like")
    return build_segmentor(fixture["config"], device="cpu")


@pytest.fixture(scope="module")
def tiny_segformer():
    fixture = load_fixture("official_tiny_segformer_l_like")
    return build_segmentor(fixture["config"], device="cpu")


def test_gridsample_swap_lasts_only_for_the_block(tiny_t):
    x = torch.randn(1, 3, 64, 96)
    with torch.inference_mode():
        before = tiny_t(x)
        with gridsample_dcnv3(tiny_t):
            dcn = tiny_t.backbone.levels[0].blocks[0].dcn
            assert "core" in vars(dcn)  # shadowed on the instance, not on the class
            swapped = tiny_t(x)
        after = tiny_t(x)
    assert "core" not in vars(dcn)
    assert relative_error(swapped, before) <= 1e-5
    assert torch.equal(after, before)


# ------------------------------------------------------------------------------------------------ exports


def export_and_check(model, tmp_path, **settings):
    settings = ExportSettings(**settings)
    files = export_onnx(model, tmp_path / "model.onnx", settings, model_name="tiny")
    proto = onnx.load(str(files.onnx))
    onnx.checker.check_model(proto, full_check=True)
    assert proto.opset_import[0].version >= 17
    return settings, files, proto


def io_shapes(proto):
    def shape(value):
        return [d.dim_value for d in value.type.tensor_type.shape.dim]

    return {v.name: shape(v) for v in (*proto.graph.input, *proto.graph.output)}


@pytest.mark.parametrize("size", [(64, 128), (128, 256)])
@pytest.mark.parametrize("model_name", ["tiny_t", "tiny_segformer"])
def test_plugin_free_logits_match_pytorch(model_name, size, request, tmp_path):
    model = request.getfixturevalue(model_name)
    settings, files, proto = export_and_check(model, tmp_path, height=size[0], width=size[1], output="logits")
    assert {node.domain for node in proto.graph.node} <= {"", "ai.onnx"}  # standard ops only: no plugin needed
    assert "GridSample" in {node.op_type for node in proto.graph.node}
    assert io_shapes(proto) == {"input": [1, 3, *size], "logits": [1, 19, *size]}
    check = compare_with_pytorch(model, files.onnx, settings, seed=sum(size))
    assert check.relative_error <= 1e-4 and check.agreement >= 0.999


def test_logits_are_the_first_19_head_channels_at_the_input_size(tiny_t):
    settings = ExportSettings(64, 128, output="logits")
    x = torch.from_numpy(random_input(settings, seed=3))
    with torch.inference_mode():
        assert torch.equal(export_graph(tiny_t, settings)(x), tiny_t(x)[:, :19])


def test_cli_argmax_batch_of_two_normalising_in_graph_is_the_official_decision(tmp_path):
    """From a released-layout checkpoint through the CLI: uint8-range RGB in, the official train ids out."""
    fixture = load_fixture("official_tiny_upernet_t_like")
    config, checkpoint = tmp_path / "tiny.yaml", tmp_path / "tiny.pth"
    config.write_text(yaml.safe_dump({"model": json.loads(json.dumps(fixture["config"]))}))
    torch.save(fixture["checkpoint"], checkpoint)
    out = tmp_path / "tiny.onnx"
    code = main(
        [
            "export",
            "--model",
            str(config),
            "--checkpoint",
            str(checkpoint),
            "--size",
            "64x128",
            "--batch",
            "2",
            "--output",
            "argmax",
            "--normalize-in-graph",
            "--out",
            str(out),
            "--device",
            "cpu",
        ]
    )
    assert code == 0
    onnx.checker.check_model(onnx.load(str(out)), full_check=True)
    sidecar = read_sidecar(tmp_path / "tiny.yaml")
    assert sidecar["input"]["normalize_in_graph"] is True and sidecar["input"]["shape"] == [2, 3, 64, 128]
    assert sidecar["model"] == "tiny" and sidecar["checkpoint"] == str(checkpoint)
    settings = ExportSettings(64, 128, batch=2, output="argmax", normalize_in_graph=True)
    images = random_input(settings, seed=7)  # 0..255 RGB
    (train_ids,) = ort_session(out).run(None, {"input": images})
    assert train_ids.dtype == np.int32 and train_ids.shape == (2, 64, 128)

    model = build_segmentor(fixture["config"], checkpoint=checkpoint, device="cpu")
    normalised = (torch.from_numpy(images) - torch.tensor(MEAN_RGB).view(1, 3, 1, 1)) / torch.tensor(STD_RGB).view(
        1, 3, 1, 1
    )
    with torch.inference_mode():
        official = scores_to_train_ids(model(normalised)).numpy()
    assert np.mean(train_ids == official) >= 0.999
    assert set(np.unique(official)) <= set(range(19)) | {255}
    assert (official == 255).any()  # this model lets unused channels win: the 255 path is exercised
    assert not np.array_equal(train_ids[0], train_ids[1])  # each image of the batch its own answer


def test_our_op_export_has_one_dcnv3_node_per_block_and_runs_through_our_cpu_op(tiny_t, tmp_path):
    settings, files, proto = export_and_check(tiny_t, tmp_path, height=64, width=128, output="logits", dcnv3="op")
    nodes = [node for node in proto.graph.node if node.op_type == "DCNv3"]
    modules = [m for m in tiny_t.modules() if type(m).__name__ == "DCNv3"]
    assert len(nodes) == len(modules) and {node.domain for node in nodes} == {"cityscapes_seg"}
    assert "GridSample" not in Counter(node.op_type for node in proto.graph.node)
    for node, module in zip(nodes, modules):
        attributes = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        expected = module.geometry()._asdict()
        assert attributes.pop("im2col_step") > 0
        assert attributes.pop("offset_scale") == pytest.approx(expected.pop("offset_scale"))
        assert attributes == expected
    check = compare_with_pytorch(tiny_t, files.onnx, settings, seed=5)
    assert check.relative_error <= 1e-4


@pytest.mark.parametrize("output", ["logits", "argmax"])
def test_fp16_export_agrees_with_the_fp16_model(tiny_segformer, tmp_path, output):
    settings, files, proto = export_and_check(tiny_segformer, tmp_path, height=64, width=128, output=output, fp16=True)
    weights = Counter(onnx.helper.tensor_dtype_to_np_dtype(t.data_type) for t in proto.graph.initializer)
    assert weights[np.dtype(np.float16)] > weights[np.dtype(np.float32)]
    check = compare_with_pytorch(tiny_segformer, files.onnx, settings, seed=11)
    assert check.agreement >= 0.99
    if output == "logits":
        assert check.relative_error <= 1e-2


def test_fp16_op_export_check_says_why_it_cannot_run(tiny_t, tmp_path):
    settings = ExportSettings(64, 128, dcnv3="op", fp16=True)
    with pytest.raises(RuntimeError, match="serves float32 only"):
        compare_with_pytorch(tiny_t, tmp_path / "never_written.onnx", settings)


def test_released_t_architecture_exports_and_matches(tmp_path):
    """The real InternImage-T UperNet (random weights: the released file cannot be downloaded here)."""
    model = build_segmentor("upernet_internimage_t_512x1024_160k_cityscapes", device="cpu")
    settings, files, _ = export_and_check(model, tmp_path, height=64, width=128, output="logits")
    check = compare_with_pytorch(model, files.onnx, settings, seed=13)
    assert check.relative_error <= 1e-4


# -------------------------------------------------------------------------------------------- the sidecar


def test_sidecar_describes_the_file_from_the_package_tables(tiny_t, tmp_path):
    settings, files, proto = export_and_check(tiny_t, tmp_path, height=64, width=128, batch=3, output="argmax")
    sidecar = read_sidecar(files.sidecar)
    assert files.sidecar == tmp_path / "model.yaml" and sidecar["onnx"] == "model.onnx"
    shapes = io_shapes(proto)
    assert shapes == {
        sidecar["input"]["name"]: sidecar["input"]["shape"],
        sidecar["output"]["name"]: sidecar["output"]["shape"],
    }
    assert sidecar["input"]["shape"] == [3, 3, 64, 128] and sidecar["output"]["shape"] == [3, 64, 128]
    assert sidecar["output"]["kind"] == "argmax" and sidecar["output"]["dtype"] == "int32"
    assert proto.graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.INT32
    assert sidecar["input"]["mean"] == list(MEAN_RGB) and sidecar["input"]["std"] == list(STD_RGB)
    assert sidecar["input"]["normalize_in_graph"] is False
    assert sidecar["classes"] == list(TRAIN_CLASS_NAMES) and len(sidecar["classes"]) == 19
    assert sidecar["palette"] == [list(label.color) for label in TRAIN_LABELS]
    assert sidecar["ignore_id"] == 255 and sidecar["opset"] == proto.opset_import[0].version


# ------------------------------------------------------------------------------------------ bad arguments


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["--size", "64by128"], "expected HEIGHTxWIDTH"),
        (["--size", "0x128"], "size must be positive"),
        (["--size", "64x100"], "width 100 must be a positive multiple of 32"),
        (["--size", "64x128", "--model", "no_such_model"], "unknown model 'no_such_model'"),
        (["--size", "64x128", "--out", "{tmp}/missing/model.onnx"], "output folder {tmp}/missing does not exist"),
        (["--size", "64x128", "--out", "{tmp}/model.txt"], "must end in .onnx"),
        (["--size", "64x128", "--out", "{tmp}"], "must end in .onnx"),
        (["--size", "64x128", "--out", "{tmp}/folder.onnx"], "cannot write {tmp}/folder.onnx"),
        (["--size", "64x128", "--batch", "0"], "expected a whole number of at least 1"),
        (["--size", "64x128", "--output", "softmax"], "invalid choice: 'softmax'"),
        (["--size", "64x128", "--precision", "fp16"], "--precision does not apply to export; use --fp16"),
        (["--size", "100000x100000"], "height 100000 is above the largest supported input edge, 8192"),
        (["--size", "8192x8192", "--batch", "2"], "2 x 8192 x 8192 is above 67108864 pixels"),
        (
            ["--size", "64x128", "--fp16", "--dcnv3", "op", "--verify", "--out", "{tmp}/m.onnx"],
            "the Python DCNv3 op serves float32 only",
        ),
    ],
)
def test_bad_arguments_are_one_clear_line_and_exit_2(arguments, message, tmp_path, capsys):
    arguments = [a.replace("{tmp}", str(tmp_path)) for a in arguments]
    (tmp_path / "folder.onnx").mkdir()
    try:
        code = main(["export", "--checkpoint", "none", *arguments])
    except SystemExit as exit:  # argparse's own errors
        code = exit.code
    assert code == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert "error:" in error and message.replace("{tmp}", str(tmp_path)) in error
    assert not [path for path in tmp_path.glob("*.onnx") if path.is_file()]


def write_pair(folder: Path) -> dict:
    (folder / "model.onnx").write_bytes(b"the good export")
    (folder / "model.yaml").write_text("onnx: model.onnx\n")
    return {path.name: path.read_bytes() for path in folder.iterdir()}


def test_a_failing_onnx_writer_keeps_the_previous_pair_and_leaves_no_partial_file(tiny_t, tmp_path, monkeypatch):
    before = write_pair(tmp_path)

    def disk_full(model, path, *args, **kwargs):
        Path(path).write_bytes(b"half a mod")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(onnx, "save", disk_full)
    with pytest.raises(OSError, match="No space left"):
        export_onnx(tiny_t, tmp_path / "model.onnx", ExportSettings(64, 128), model_name="tiny")
    assert {path.name: path.read_bytes() for path in tmp_path.iterdir()} == before


def test_a_failing_sidecar_writer_keeps_the_previous_pair(tiny_t, tmp_path, monkeypatch):
    from cityscapes_seg_ros.export import onnx_export

    before = write_pair(tmp_path)

    def fails(path, contents):
        Path(path).write_text("half")
        raise RuntimeError("interrupted while writing the sidecar")

    monkeypatch.setattr(onnx_export, "write_sidecar", fails)
    with pytest.raises(RuntimeError, match="interrupted"):
        export_onnx(tiny_t, tmp_path / "model.onnx", ExportSettings(64, 128), model_name="tiny")
    assert {path.name: path.read_bytes() for path in tmp_path.iterdir()} == before


def test_an_export_over_a_previous_pair_replaces_both_with_usual_permissions(tiny_t, tmp_path):
    write_pair(tmp_path)
    settings, files, _ = export_and_check(tiny_t, tmp_path, height=64, width=128, output="argmax")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["model.onnx", "model.yaml"]
    assert read_sidecar(files.sidecar)["output"]["kind"] == "argmax"
    umask = os.umask(0)
    os.umask(umask)
    assert (files.onnx.stat().st_mode & 0o777) == 0o666 & ~umask


def test_unwritable_output_folder_is_refused_before_the_model_loads(tmp_path, capsys):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    if os.access(locked, os.W_OK):
        pytest.skip("this user may write into a read-only folder (root)")
    code = main(["export", "--checkpoint", "none", "--size", "64x128", "--out", str(locked / "m.onnx")])
    assert code == 2 and "is not writable" in capsys.readouterr().err


def test_without_onnx_the_package_imports_and_export_names_the_extra(tmp_path):
    script = (
        "import sys; sys.modules['onnx'] = None; sys.modules['onnxscript'] = None\n"
        "import cityscapes_seg_ros.export.onnx_export, cityscapes_seg_ros.export.dcnv3_gridsample\n"
        "from cityscapes_seg_ros.cli.main import main\n"
        f"sys.exit(main(['export', '--checkpoint', 'none', '--size', '64x128', '--out', r'{tmp_path / 'm.onnx'}']))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 2, done.stderr
    assert "pip install 'cityscapes_seg_ros[export]'" in done.stderr.strip().splitlines()[-1]


# --------------------------------------------------------------------------------------------- Isaac ROS


def test_isaac_ros_config_matches_the_package_tables_and_the_exported_file(tiny_t, tmp_path):
    config = yaml.safe_load((ROOT / "config" / "isaac_ros_cityscapes_seg.yaml").read_text())
    encoder = config["dnn_image_encoder"]["ros__parameters"]
    tensor_rt = config["tensor_rt"]["ros__parameters"]
    decoder = config["unet_decoder"]["ros__parameters"]
    height, width = encoder["network_image_height"], encoder["network_image_width"]
    settings, files, proto = export_and_check(tiny_t, tmp_path, height=height, width=width, output="argmax")
    sidecar = read_sidecar(files.sidecar)

    # The encoder hands the graph (x / 255 - mean) / stddev: the model's normalisation on the 0..255 scale.
    assert np.allclose(np.array(encoder["image_mean"]) * 255, sidecar["input"]["mean"], rtol=1e-6)
    assert np.allclose(np.array(encoder["image_stddev"]) * 255, sidecar["input"]["std"], rtol=1e-6)
    assert encoder["encoding_desired"] == "rgb8" and encoder["use_planar_input"] is True  # RGB, NCHW

    shapes = io_shapes(proto)
    assert tensor_rt["input_binding_names"] == [proto.graph.input[0].name]
    assert tensor_rt["output_binding_names"] == [proto.graph.output[0].name]
    assert shapes[proto.graph.input[0].name] == [1, 3, height, width]
    assert shapes[proto.graph.output[0].name] == [1, height, width]
    assert proto.graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.INT32
    assert Path(tensor_rt["engine_file_path"]).stem == Path(tensor_rt["model_file_path"]).stem
    assert Path(tensor_rt["model_file_path"]).suffix == ".onnx"

    assert decoder["network_output_type"] == "argmax" == sidecar["output"]["kind"]
    assert (decoder["mask_height"], decoder["mask_width"]) == (height, width)
    palette = decoder["color_palette"]
    colors = [((value >> 16) & 255, (value >> 8) & 255, value & 255) for value in palette]
    assert colors[:19] == [tuple(rgb) for rgb in sidecar["palette"]] == [label.color for label in TRAIN_LABELS]
    assert colors[255 % len(palette)] == (0, 0, 0)  # the decoder's colour of the ignore id: black
    assert len(palette) == 256
