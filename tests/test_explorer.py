"""The canvas explorer's data (docs/formats.md §11) against the full canvas of tiny models."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from explorer_files import read_js, unpack
from PIL import Image

from xinc.canvas import ffn_canvas, nerv_canvas
from xinc.data import generate, prepare_video, working_resolution
from xinc.explorer import explorer_model_data, layout, write_page
from xinc.explorer.encode import SHARE_MAX, atlas, id_dtype, pack, quantise_signed
from xinc.explorer.scatter import XY_MAX, scatter_data
from xinc.explorer.segments import frame_segments, segment_names
from xinc.explorer.select import grid_pixels, grid_ranking, map_set
from xinc.explorer.topk import PixelTopK, pixel_topk
from xinc.io import save_npz
from xinc.models import build_model, load_checkpoint, save_checkpoint
from xinc.stats import read_frame_stats
from xinc.workflow_steps import canvas_model_stats, make_pixel_groups

FRAMES = (4, 9)
LAYERS = {"nerv": ["head", "b3", "b2", "b1"], "ffn": ["l1", "l2", "l3"]}
CANVAS = {"time_index": "exact", "mode": "reference", "chunk": None, "bias": "split",
          "neuron": "kernel"}
EXPLORER = {"top_k": 5, "maps": 12, "grid": [2, 4]}
MEMBERS = {1: [7, 3, 7], 2: [150]}  # cluster members of NeRV b2 at frame 4, by seed
H, W = 32, 64


def build(root: Path, work: Path, tmp: Path) -> dict[str, Path]:
    """The explorer data of a tiny NeRV and the tiny FFNs of two frames, below `root`."""
    folders = {}
    groups = [tmp / f"groups_f{f}.npz" for f in FRAMES]
    for arch in ("nerv", "ffn"):
        ckpts = [tmp / "nerv.pt"] if arch == "nerv" else [tmp / f"ffn_f{f}.pt" for f in FRAMES]
        stats = [tmp / arch / f"f{f}" / f"{layer}.npz" for f in FRAMES for layer in LAYERS[arch]]
        members = [tmp / "members.npz"] if arch == "nerv" else []
        frames = work / ("frames_bicubic.npy" if arch == "nerv" else "frames_pil.npy")
        folders[arch] = root / layout.model_dir(arch, "cityscapes_vps", "0001", 1)
        explorer_model_data(ckpts, stats, groups, frames, work / "meta.json", members,
                            folders[arch], {"arch": arch, "dataset": "cityscapes_vps",
                                            "video": "0001", "seed": 1},
                            FRAMES, LAYERS[arch], canvas=CANVAS, explorer=EXPLORER, device="cpu")
    return folders


@pytest.fixture(scope="module")
def built(tmp_path_factory, one_thread):
    """Tiny synthetic video, random-init NeRV (seed 1) and FFNs, their statistics and groups,
    a members file, and the explorer data built twice."""
    tmp = tmp_path_factory.mktemp("explorer")
    generate("cityscapes_vps", tmp / "raw", tmp / "truth.npz", seed=0, scale="tiny")
    prepare_video("cityscapes_vps", tmp / "raw", "0001", tmp / "prepared")
    working_resolution(tmp / "prepared", tmp / "work", H, W)
    work = tmp / "work"
    meta = json.loads((work / "meta.json").read_text())
    torch.manual_seed(1)
    save_checkpoint(tmp / "nerv.pt", build_model("nerv", {"fc_dim": 8, "fc_hw": [2, 4]}),
                    {"frames": meta["T"], "height": H, "width": W, "seed": 1})
    for f in FRAMES:
        torch.manual_seed(f)
        save_checkpoint(tmp / f"ffn_f{f}.pt", build_model("ffn", {"width": 16}),
                        {"frame": f, "height": H, "width": W, "seed": 1})
        make_pixel_groups(work / "frames_pil.npy", work / "panoptic.npy", work / "meta.json", f,
                          tmp / f"groups_f{f}.npz", clusters=4, grid=(2, 4), seed=0,
                          gabor_mode="full")
    for arch in ("nerv", "ffn"):
        ckpts = [tmp / "nerv.pt"] if arch == "nerv" else [tmp / f"ffn_f{f}.pt" for f in FRAMES]
        stats = [tmp / arch / f"f{f}" / f"{layer}.npz" for f in FRAMES for layer in LAYERS[arch]]
        for path in stats:
            path.parent.mkdir(parents=True, exist_ok=True)
        canvas_model_stats(ckpts, [tmp / f"groups_f{f}.npz" for f in FRAMES], work / "meta.json",
                           FRAMES, stats, LAYERS[arch], canvas=CANVAS,
                           stats={"sample_neurons": 4, "seed": 0}, device="cpu")
    seeds = [s for s, ids in MEMBERS.items() for _ in ids]
    neurons = [n for ids in MEMBERS.values() for n in ids]
    save_npz(tmp / "members.npz", cluster=np.zeros(len(seeds), np.int64),
             slot=np.arange(len(seeds)), seed=np.array(seeds), neuron=np.array(neurons),
             maps=np.zeros((len(seeds), H, W), np.float32),
             meta_json=json.dumps({"frame": 4, "layer": "b2", "arch": "nerv"}))
    first = build(tmp / "one", work, tmp)
    second = build(tmp / "two", work, tmp)
    return {"tmp": tmp, "folders": first, "again": second, "work": work}


def truth_maps(tmp: Path, arch: str, frame: int) -> dict[str, np.ndarray]:
    """Every layer's signed maps straight from the checkpoint (xinc.canvas)."""
    if arch == "nerv":
        model = load_checkpoint(tmp / "nerv.pt")
        return {k: v.numpy() for k, v in nerv_canvas(model, frame / model.meta["frames"]).items()}
    model = load_checkpoint(tmp / f"ffn_f{frame}.pt")
    return {k: v.numpy() for k, v in ffn_canvas(model, H, W).items()}


def top_k_truth(maps: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(ids [k, H, W] with −1 for zero |C|, shares) by a full sort: |C| descending, then id."""
    size = np.abs(maps.astype(np.float64)).reshape(len(maps), -1)
    order = np.lexsort((np.broadcast_to(np.arange(len(maps))[:, None], size.shape), -size),
                       axis=0)[:k]
    values = np.take_along_axis(size, order, 0)
    total = size.sum(0)
    ids = np.where(values > 0, order, -1).reshape(k, H, W)
    share = np.where(total > 0, values / np.where(total > 0, total, 1), 0).reshape(k, H, W)
    return ids, share


@pytest.mark.parametrize("arch", ["nerv", "ffn"])
def test_top_k_and_shares_equal_the_full_canvas(built, arch):
    for frame in FRAMES:
        full = truth_maps(built["tmp"], arch, frame)
        for layer in LAYERS[arch]:
            key, data = read_js(built["folders"][arch] / f"f{frame}" / f"{layer}.js")
            assert key == f"{layout.model_dir(arch, 'cityscapes_vps', '0001', 1)}/f{frame}/" \
                f"{layer}.js"
            n = len(full[layer])
            k = min(EXPLORER["top_k"], n)
            packed_ids, packed_shares = unpack(data["ids"]), unpack(data["shares"])
            ids = packed_ids.astype(np.int64)
            none = np.iinfo(id_dtype(n)).max
            want_ids, want_share = top_k_truth(full[layer], k)
            assert ids.shape == (k, H, W) and data["ids"]["dtype"] == id_dtype(n).name
            np.testing.assert_array_equal(np.where(ids == none, -1, ids), want_ids,
                                          err_msg=f"{arch} f{frame} {layer}")
            shares = packed_shares / SHARE_MAX
            assert data["shares"]["dtype"] == "uint16" and data["share_max"] == SHARE_MAX
            # the documented size before deflating: k·H·W·(b + 2) bytes, b the bytes of an id
            assert packed_ids.nbytes + packed_shares.nbytes == \
                k * H * W * (id_dtype(n).itemsize + 2)
            np.testing.assert_allclose(shares, want_share, atol=0.5 / SHARE_MAX + 1e-6)


@pytest.mark.parametrize("arch", ["nerv", "ffn"])
def test_map_tiles_decode_to_the_signed_maps(built, arch):
    for frame in FRAMES:
        full = truth_maps(built["tmp"], arch, frame)
        for layer in LAYERS[arch]:
            folder = built["folders"][arch] / f"f{frame}"
            _, data = read_js(folder / f"{layer}.js")
            maps = data["maps"]
            with Image.open(folder / maps["file"]) as image:
                assert image.mode == "P"
                index = np.asarray(image)
            n = len(maps["ids"])
            cols = math.ceil(math.sqrt(n * H / W))
            assert (maps["cols"], maps["rows"]) == (cols, math.ceil(n / cols))
            assert index.shape == (maps["rows"] * H, maps["cols"] * W)
            for tile, (neuron, scale) in enumerate(zip(maps["ids"], maps["scale"], strict=True)):
                r, c = divmod(tile, cols)
                cell = index[r * H:(r + 1) * H, c * W:(c + 1) * W].astype(np.float64)
                want = full[layer][neuron]
                assert scale == pytest.approx(np.abs(want).max(), rel=1e-6)
                decoded = (cell - 127.5) / 127.5 * scale
                assert np.abs(decoded - want).max() <= scale / 127.5 + 1e-7, (layer, neuron)


def test_kept_maps_start_with_the_samples_then_the_members(built):
    for arch, folder in built["folders"].items():
        for frame in FRAMES:
            for layer in LAYERS[arch]:
                _, data = read_js(folder / f"f{frame}" / f"{layer}.js")
                sample = read_frame_stats(built["tmp"] / arch / f"f{frame}" /
                                          f"{layer}.npz")["sample_ids"].tolist()
                ids, sources = data["maps"]["ids"], data["maps"]["sources"]
                members = [7, 3] if (arch, frame, layer) == ("nerv", 4, "b2") else []
                fresh = [m for m in members if m not in sample]
                head = sample + fresh
                assert ids[:len(head)] == head and len(ids) == len(set(ids))
                assert sources[:len(head)] == ["sample"] * len(sample) + ["member"] * len(fresh)
                assert set(sources[len(head):]) <= {"grid", "top"}
                assert sources == sorted(sources, key=["sample", "member", "grid", "top"].index)
                listed = set(unpack(data["ids"]).ravel().tolist()) - {
                    np.iinfo(id_dtype(data["neurons"])).max}
                assert set(ids[len(head):]) <= listed  # every other one is some pixel's top
                assert len(ids) == min(EXPLORER["maps"], len(listed | set(head)))
                assert 150 not in ids[:len(head)]  # seed 2's member is not this model's


def test_rebuild_is_byte_identical_and_writes_the_declared_files(built):
    for arch, folder in built["folders"].items():
        files = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
        assert files == sorted(layout.model_files(FRAMES, LAYERS[arch]))
        for name in files:
            assert (folder / name).read_bytes() == (built["again"][arch] / name).read_bytes(), name


def test_frame_overlays_and_segments(built):
    folder = built["folders"]["nerv"]
    _, frame = read_js(folder / "f4" / "frame.js")
    groups = np.load(built["tmp"] / "groups_f4.npz")
    np.testing.assert_array_equal(unpack(frame["instances"]), groups["instances"])
    assert [s["pan_id"] for s in frame["segments"]] == groups["instances_ids"].tolist()
    for name in layout.OVERLAYS:
        with Image.open(folder / "f4" / f"{name}.png") as image:
            assert image.mode == "P" and image.size == (W, H)
    with Image.open(folder / "f4" / "frame.png") as image:
        frame4 = np.load(built["work"] / "frames_bicubic.npy")[4].astype(np.float64)
        want = np.rint(np.clip(frame4, 0, 1) * 255)
        np.testing.assert_array_equal(np.asarray(image.convert("RGB")), want)
    _, seg = read_js(folder / "b2_segments.js")
    assert [f["frame"] for f in seg["frames"]] == list(FRAMES)
    stats = read_frame_stats(built["tmp"] / "nerv" / "f9" / "b2.npz")
    shares = unpack(seg["frames"][1]["shares"]) / seg["share_max"]
    want = stats["group_sums_instances"] / stats["total"][:, None]
    np.testing.assert_allclose(shares, want, atol=0.5 / SHARE_MAX + 1e-9)
    with Image.open(folder / "f4" / "b2_heat.png") as image:
        _, data = read_js(folder / "f4" / "b2.js")
        heat = read_frame_stats(built["tmp"] / "nerv" / "f4" / "b2.npz")["heat"]
        assert data["heat"]["max"] == pytest.approx(heat.max(), rel=1e-6)
        np.testing.assert_array_equal(np.asarray(image),
                                      np.rint(255 * heat.astype(np.float64) / heat.max()))


def test_page_manifest_lists_every_model(built, tmp_path):
    root = built["tmp"] / "one"
    indexes = [folder / "model.json" for folder in built["folders"].values()]
    write_page(root, indexes, [], "test")
    text = (root / "manifest.js").read_text()
    prefix = "window.XINC_MANIFEST = Object.freeze("
    assert text.startswith(prefix)
    manifest = json.loads(text[len(prefix):-3])
    (video,) = manifest["videos"]
    assert [(m["arch"], m["seed"], m["frames"]) for m in video["models"]] == [
        ("nerv", 1, [4, 9]), ("ffn", 1, [4, 9])]
    assert video["models"][0]["neurons"] == {"head": 18, "b3": 144, "b2": 168, "b1": 896}
    for name in layout.PAGE_FILES:
        assert (root / name).stat().st_size > 0


# ---------------------------------------------------------------- the pieces, on known values


def test_a_video_without_masks_has_one_segment(tmp_path):
    (tmp_path / "meta.json").write_text(json.dumps({"video": "clip", "categories": []}))
    names = segment_names([], tmp_path / "meta.json")
    assert names == {-2: "other"}
    assert frame_segments({"instances_ids": np.array([-2])}, names) == [
        {"pan_id": -2, "name": "other"}]


def test_pixel_topk_breaks_ties_by_the_lower_id_across_chunks():
    maps = torch.tensor([[[1.0, 0.0]], [[-2.0, 0.0]], [[2.0, 0.0]], [[1.0, 3.0]]])  # [4, 1, 2]
    acc = PixelTopK(3, 1, 2)
    for start in (0, 2):  # two chunks in id order
        acc.update(torch.arange(start, start + 2), maps[start:start + 2])
    ids, values, total = acc.result()
    assert ids[:, 0, 0].tolist() == [1, 2, 0] and values[:, 0, 0].tolist() == [2, 2, 1]
    assert ids[:, 0, 1].tolist() == [3, -1, -1]  # zero |C| is never listed
    assert total.tolist() == [[6.0, 3.0]]
    with pytest.raises(ValueError, match="increasing neuron-id order"):
        acc.update(torch.tensor([1]), maps[1:2])
    same, _, _ = pixel_topk([(torch.arange(4), maps)], 3, 1, 2)
    np.testing.assert_array_equal(same, ids)
    # one neuron per chunk once the k kept are full: an equal value never displaces a kept one
    single = torch.tensor([1.0, 3.0, 1.0, 3.0]).reshape(4, 1, 1, 1)
    ids, values, _ = pixel_topk(((torch.tensor([n]), single[n]) for n in range(4)), 2, 1, 1)
    assert ids.ravel().tolist() == [1, 3] and values.ravel().tolist() == [3.0, 3.0]


def test_grid_ranking_and_map_set():
    ids = np.array([[[5, 2]], [[2, 9]]])  # [k=2, 1, 2]
    shares = np.array([[[0.5, 0.6]], [[0.3, 0.2]]])
    assert grid_ranking(ids, shares, (np.array([0, 0]), np.array([0, 1]))) == [2, 5, 9]
    assert map_set([("sample", [4, 2]), ("grid", [2, 5, 9])], 3) == ([4, 2, 5],
                                                                   ["sample", "sample", "grid"])
    ys, xs = grid_pixels(32, 64, (2, 4))
    assert ys.tolist() == [8] * 4 + [24] * 4 and xs.tolist() == [8, 24, 40, 56] * 2


def test_quantisation_and_packing_round_trip():
    maps = np.array([[[-1.0, 0.0, 0.5, 1.0]], [[0.0, 0.0, 0.0, 0.0]]], np.float32)
    index = quantise_signed(maps, np.array([1.0, 0.0]))
    assert index[0, 0].tolist() == [0, 128, 191, 255] and (index[1] == 128).all()
    image, cols, rows = atlas(index[:, :, :2])
    assert (cols, rows) == (1, 2) and image.shape == (2, 2)
    assert [id_dtype(n).name for n in (255, 256, 65535, 65536)] == [
        "uint8", "uint16", "uint16", "uint32"]
    for array, planes in ((np.arange(0, 60000, 7, dtype=np.uint16), True),  # smaller so
                          (np.arange(6, dtype=np.uint32).reshape(2, 3), None),
                          (np.arange(5, dtype=np.uint8), False)):  # one byte: never
        packed = pack(array)
        assert planes is None or packed["planes"] == planes
        assert packed["dtype"] == array.dtype.name and packed["shape"] == list(array.shape)
        np.testing.assert_array_equal(unpack(packed), array)


def test_scatter_packs_points_by_seed_and_cluster():
    clusters = {"xy": np.array([[0.0, 1.0], [2.0, -1.0], [1.0, 0.0]], np.float32),
                "labels": np.array([1, 0, 0]), "seed": np.array([20, 10, 20]),
                "neuron": np.array([3, 300, 5]),
                "meta": {"arch": "nerv", "layer": "b2", "frame": 4, "seeds": [10, 20]}}
    data = scatter_data(clusters)
    assert data["seeds"] == [10, 20] and data["clusters"] == 2
    assert unpack(data["x"]).tolist() == [0, XY_MAX, XY_MAX // 2 + 1]
    assert unpack(data["seed"]).tolist() == [1, 0, 1]
    assert unpack(data["neuron"]).tolist() == [3, 300, 5]
    assert data["neuron"]["dtype"] == "uint16" and data["label"]["dtype"] == "uint8"
