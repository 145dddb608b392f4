"""`arena-seg bench fewshot` end to end on 6 mm phantoms with the tiny network (1 epoch, two methods)."""

from __future__ import annotations

import json
import math

import pytest

from arena_seg.bench.fewshot import user_data
from arena_seg.cli import main


@pytest.mark.slow
def test_fewshot_writes_results_markdown_and_plots(tiny_default, tmp_path):
    out = tmp_path / "fewshot"
    argv = ["bench", "fewshot", "--quick", "--out", str(out), "--pool", "1", "--test", "1", "--spacing", "6",
            "--shots", "1", "--seeds", "0", "--methods", "arena:2", "linear", "--epochs", "1", "--num-samples", "1",
            "--device", "cpu"]
    assert main(argv) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["organs"] == {"gallbladder": "novel", "liver": "base"}
    assert [(r["method"], r["k"], r["seed"]) for r in results["runs"]] == [("arena-r2", 1, 0), ("linear", 1, 0)]
    for run in results["runs"]:
        assert set(run["dice"]) == {"gallbladder", "liver"}
        assert all(d is None or (math.isfinite(d) and 0 <= d <= 1) for d in run["dice"].values())
        assert run["params_start"] >= run["params_end"] > 0 and run["train_seconds"] > 0
        assert len(run["loss"]) == 1
        assert run["peak_memory_mb"] >= 0 and run["memory_measure"] == "cpu_peak_rss_above_start"
    arena, linear = results["runs"]
    assert linear["params_end"] < arena["params_end"] and not linear["effective_ranks"]
    assert len(arena["effective_ranks"]) == 14 and all(0 <= r <= 2 for r in arena["effective_ranks"].values())
    # the trace run keeps every gate per epoch (epoch 0 = initial), the others per-layer summaries
    assert results["trace_run"] == {"method": "arena-r2", "k": 1, "seed": 0}
    values = next(iter(arena["gate_values"].values()))
    assert len(values) == 2 and values[0] == [1.0, 1.0]
    assert all(len(g["mean_abs"]) == 2 for g in arena["gates"].values())
    text = (out / "results.md").read_text()
    assert "| arena-r2 |" in text and "| linear |" in text and "k=1 novel" in text
    for png in ("dice_vs_params.png", "dice_vs_rank.png", "gates.png"):
        assert (out / png).read_bytes()[:4] == b"\x89PNG"
    assert (out / "phantoms" / "bench-phantoms.json").is_file()
    assert main(argv) == 2  # results exist: refuse without --force


def test_user_data_holds_out_the_last_volumes(phantom_dir):
    data = user_data([str(phantom_dir / "images")], [str(phantom_dir / "labels")], ["gallbladder", "liver=1"], 2)
    assert data.organs == {"gallbladder": 8, "liver": 1}
    assert [p["id"] for p in data.test] == ["phantom_004", "phantom_005"] and len(data.pool) == 4


@pytest.mark.slow
def test_cpu_preset_resumes_run_by_run(tiny_default, tmp_path):
    out = tmp_path / "cpu"
    argv = ["bench", "fewshot", "--preset", "cpu", "--out", str(out), "--pool", "1", "--test", "1", "--spacing", "6",
            "--shots", "1", "--seeds", "0", "--methods", "arena:2", "lora:2", "--steps", "1", "--num-samples", "1",
            "--organs", "gallbladder", "liver", "--device", "cpu"]
    assert main(argv) == 0
    first = json.loads((out / "results.json").read_text())
    assert first["preset"]["name"] == "cpu" and first["preset"]["lam"] is None
    arena_file, lora_file = out / "runs" / "arena-r2-k1-s0.json", out / "runs" / "lora-r2-k1-s0.json"
    kept = json.loads(arena_file.read_text())
    from arena_seg.adapters import ArenaConfig

    assert kept["arena"]["lam"] == ArenaConfig().lam and kept["epochs_run"] == 1  # ARENA's defaults; ⌈1/1⌉ epochs
    lora_file.unlink()  # as if the benchmark had been stopped during the LoRA run
    assert main(argv) == 2  # results exist: neither --resume nor --force
    assert main(argv + ["--resume"]) == 0
    again = json.loads((out / "results.json").read_text())
    assert [r["method"] for r in again["runs"]] == ["arena-r2", "lora-r2"] and lora_file.is_file()
    assert again["runs"][0] == kept  # read back, not run again
    text = (out / "results.md").read_text()
    assert "ARENA − LoRA, paired" not in text  # no r16 pair in this tiny run
    own = sum(r["train_seconds"] + r["eval_seconds"] for r in again["runs"])
    assert f"the runs' own training and testing {own:.0f} s" in text  # a kept run's time is not lost to the report
    assert main(argv + ["--resume", "--lr", "0.01"]) == 0  # other settings: nothing is reused
    assert json.loads(arena_file.read_text())["key"]["lr"] == 0.01


@pytest.mark.slow
def test_jobs_share_the_runs_between_processes_and_report_them_all(tiny_default, tmp_path, capsys):
    """--jobs 2: two worker processes make every other run of the plan; the report holds all of them in plan
    order, as one process would have written it, and a rerun with --resume makes nothing again."""
    out = tmp_path / "jobs"
    argv = ["bench", "fewshot", "--preset", "cpu", "--out", str(out), "--pool", "1", "--test", "1", "--spacing", "6",
            "--shots", "1", "--seeds", "0", "1", "--methods", "arena:2", "lora:2", "--steps", "1", "--num-samples",
            "1", "--organs", "gallbladder", "liver", "--device", "cpu", "--jobs", "2"]
    assert main(argv) == 0
    results = json.loads((out / "results.json").read_text())
    plan = [("arena-r2", 0), ("lora-r2", 0), ("arena-r2", 1), ("lora-r2", 1)]
    assert [(r["method"], r["seed"]) for r in results["runs"]] == plan
    assert "stopped" not in results and (out / "results.md").is_file()
    stamps = {p.name: p.stat().st_mtime_ns for p in (out / "runs").glob("*.json")}
    assert len(stamps) == 4
    assert main(argv + ["--resume"]) == 0
    assert {p.name: p.stat().st_mtime_ns for p in (out / "runs").glob("*.json")} == stamps  # nothing made again
    assert main(argv[:-2] + ["--jobs", "0", "--resume"]) == 2
    assert "--jobs 0: give 1 or more" in capsys.readouterr().err


def test_a_stored_run_on_other_foundation_weights_is_not_reused(tmp_path):
    """--resume reuses a run only on the same foundation weights: a new version of the embedded network (same
    settings, same data) gives another key, so its runs are made again."""
    import torch

    from arena_seg.bench.fewshot import FewshotData, run_key
    from arena_seg.bench.protocol import PRESETS
    from arena_seg.models.registry import build_network, get_spec

    arch = get_spec("default").arch
    torch.manual_seed(0)
    a = build_network(arch)
    torch.manual_seed(1)
    b = build_network(arch)
    data = FewshotData(organs={"gallbladder": 8}, pool=[], test=[{"id": "t", "image": "t.nii.gz"}], source="x")
    preset = PRESETS["cpu"]
    assert run_key(preset, data, a) == run_key(preset, data, a)
    assert run_key(preset, data, a) != run_key(preset, data, b)
    assert run_key(preset, data, a)["foundation_sha256"] != run_key(preset, data, b)["foundation_sha256"]


def test_a_stored_arena_run_made_under_other_arena_defaults_is_not_reused(tmp_path):
    """The run key holds the preset, not ARENA's defaults: an ARENA run file is reused only when its recorded
    options are the ones today's defaults give; LoRA and the others do not depend on them."""
    from arena_seg.bench.fewshot import _stored, arena_settings, run_config
    from arena_seg.bench.protocol import PRESETS, MethodSpec

    preset, key = PRESETS["cpu"], {"any": "key"}
    arena, lora = MethodSpec("arena", 64), MethodSpec("lora", 64)
    today = arena_settings(arena, run_config(arena, 5, 0, preset, "cpu"))
    assert today["rank"] == 64 and arena_settings(lora, run_config(lora, 5, 0, preset, "cpu")) is None
    path = tmp_path / "arena-r64-k5-s0.json"
    path.write_text(json.dumps({"key": key, "arena": today, "dice": {}}))
    assert _stored(path, key, today) is not None
    assert _stored(path, {"other": "key"}, today) is None
    path.write_text(json.dumps({"key": key, "arena": {**today, "lam": today["lam"] * 10}, "dice": {}}))
    assert _stored(path, key, today) is None  # made under another λ default
    path.write_text(json.dumps({"key": key, "arena": None, "dice": {}}))
    assert _stored(path, key, None) is not None  # a LoRA run
