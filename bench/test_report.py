"""The record files and the README table, on made-up GPU and CPU results in a temporary directory."""
import datetime
import json

import pytest

import records
import report


def _end_to_end(**overrides) -> dict:
    record = records.make_record(
        "end_to_end", model="resnet50", input_shape=(3, 224, 224), dtype="bfloat16", batch_size=1000, n=20_000,
        samples_per_s=31_000.0, baseline_samples_per_s=2_500.0, speedup=12.4, plain_bf16_samples_per_s=20_000.0,
        s_per_100k_certificate=3.3, derived=True, batches_timed=20, baseline_batch_size=400,
    )
    record.update(device="NVIDIA H200", commit="abc1234", timestamp="2026-01-02T03:04:05+00:00", **overrides)
    return record


def _noise() -> dict:
    record = records.make_record(
        "noise_normalize", model=None, input_shape=(3, 32, 32), dtype="float32", batch_size=5000, n=5000,
        memory_format="channels_last", fused_ms=0.5, unfused_ms=1.0, speedup=2.0, gb_per_s=120.0,
        normals_per_s=3e10,
    )
    record.update(device="NVIDIA H200", commit="abc1234", timestamp="2026-01-02T03:04:05+00:00")
    return record


def _cpu_end_to_end(model: str, speedup: float, overhead_share: float) -> dict:
    record = records.make_record(
        "cpu_end_to_end", model=model, input_shape=(1, 28, 28), dtype="float32", batch_size=334, n=20_040,
        samples_per_s=78_000.0, baseline_samples_per_s=78_000.0 / speedup, speedup=speedup,
        plain_samples_per_s=67_000.0, forward_samples_per_s=90_000.0, overhead_share=overhead_share,
        memory_format="channels_last", threads=2, cpu="AMD EPYC")
    record.update(device="cpu", commit="abc1234", timestamp="2026-12-05T03:04:05+00:00")
    return record


def _cpu_noise(normals_per_s: float) -> dict:
    record = records.make_record(
        "cpu_noise", model=None, input_shape=(1, 28, 28), dtype="float32", batch_size=1000, n=1000,
        normals_per_s=normals_per_s, reference_normals_per_s=2.1e7, randn_normals_per_s=2.9e8,
        speedup=normals_per_s / 2.1e7, threads=2, cpu="AMD EPYC")
    record.update(device="cpu", commit="abc1234", timestamp="2026-12-05T03:04:05+00:00")
    return record


def test_records_carry_every_required_key():
    record = _end_to_end()
    assert set(records.REQUIRED_KEYS + records.FIGURE_KEYS["end_to_end"]) <= set(record)
    with pytest.raises(ValueError, match="baseline_samples_per_s"):
        records.validate_record({key: value for key, value in record.items() if key != "baseline_samples_per_s"})
    with pytest.raises(ValueError, match="JSON"):
        records.validate_record(dict(record, n=(1, 2)))


def test_results_file_is_named_after_device_and_day(tmp_path, monkeypatch):
    day = datetime.date(2026, 1, 2)
    assert records.results_file("NVIDIA H200", day, tmp_path) == tmp_path / "nvidia-h200_2026-01-02.json"
    monkeypatch.setenv("RSENGINE_BENCH_OUT", str(tmp_path / "out"))
    assert records.results_file("NVIDIA H100 80GB HBM3", day).parent == tmp_path / "out"


def test_append_records_extends_the_json_list(tmp_path):
    path = tmp_path / "nvidia-h200_2026-01-02.json"
    records.append_records([_end_to_end()], path)
    records.append_records([_noise()], path)
    assert [record["bench"] for record in json.loads(path.read_text())] == ["end_to_end", "noise_normalize"]
    assert [record["bench"] for record in records.load_records(tmp_path)] == ["end_to_end", "noise_normalize"]


def test_recorder_writes_only_when_asked(tmp_path, monkeypatch):
    monkeypatch.setenv("RSENGINE_BENCH_OUT", str(tmp_path))
    fields = dict(model=None, input_shape=(10,), dtype="bfloat16", batch_size=64, n=64, speedup=2.0,
                  fused_ms=0.01, bincount_ms=0.02)
    smoke = records.Recorder({}, write=False)
    smoke("vote_count", **fields)
    assert smoke.written == [] and list(tmp_path.iterdir()) == []
    extra_info = {}
    gpu = records.Recorder(extra_info, write=True)
    record = gpu("vote_count", **fields)
    assert extra_info == record and gpu.written == [records.results_file(record["device"], directory=tmp_path)]
    assert records.load_records(tmp_path) == [record]


def test_report_table_rows_and_goals(tmp_path, capsys):
    records.append_records([_end_to_end(), _noise()], tmp_path / "nvidia-h200_2026-01-02.json")
    assert report.main(["--results", str(tmp_path)]) == 0
    table = capsys.readouterr().out
    assert "Measured on: NVIDIA H200." in table
    lines = [line for line in table.splitlines() if line.startswith("| NVIDIA H200")]
    assert len(lines) == 2
    end_to_end = next(line for line in lines if "end_to_end" in line)
    assert "31,000" in end_to_end and "2,500" in end_to_end and "12.40x" in end_to_end
    assert "met (>= 30,000/s, >= 10x)" in end_to_end and "derived from 20 batches" in end_to_end
    assert "missed (>= 3x)" in next(line for line in lines if "noise_normalize" in line)


@pytest.mark.parametrize("model, speedup, overhead_share, goal", [
    ("mnist_cnn", 1.25, 0.10, "met (>= 1.2x, <= 25% outside forward)"),
    ("mnist_cnn", 1.15, 0.10, "missed (>= 1.2x, <= 25% outside forward)"),
    ("mnist_cnn", 2.0, 0.30, "missed (>= 1.2x, <= 25% outside forward)"),
    ("cifar_resnet20", 1.0, 0.25, "met (>= 1.0x, <= 25% outside forward)"),
    ("cifar_resnet20", 0.98, 0.05, "missed (>= 1.0x, <= 25% outside forward)"),
])
def test_report_cpu_rows_against_the_cpu_goals(tmp_path, capsys, model, speedup, overhead_share, goal):
    records.append_records([_cpu_end_to_end(model, speedup, overhead_share), _cpu_noise(5e8), _cpu_noise(9e7)],
                           tmp_path / "cpu_2026-12-05.json")
    report.main(["--results", str(tmp_path)])
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| cpu")]
    end_to_end = next(line for line in lines if "cpu_end_to_end" in line)
    assert goal in end_to_end and "78,000" in end_to_end and f"{speedup:.2f}x" in end_to_end
    assert "channels_last; " in end_to_end and "2 threads of AMD EPYC" in end_to_end
    noise_goals = sorted(line.split(" | ")[10] for line in lines if "cpu_noise" in line)
    assert noise_goals == ["met (>= 1e+08 normals/s)", "missed (>= 1e+08 normals/s)"]


def test_report_writes_readme_block_between_markers(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(f"# Title\n\n{report.START_MARKER}\nold table\n{report.END_MARKER}\n\nafter\n")
    results = tmp_path / "results"
    results.mkdir()
    report.main(["--results", str(results), "--write-readme", "--readme", str(readme)])
    assert readme.read_text() == (f"# Title\n\n{report.START_MARKER}\n_no results recorded yet_\n"
                                  f"{report.END_MARKER}\n\nafter\n")
    records.append_records([_end_to_end()], results / "nvidia-h200_2026-01-02.json")
    report.main(["--results", str(results), "--write-readme", "--readme", str(readme)])
    text = readme.read_text()
    assert "old table" not in text and "| NVIDIA H200 | end_to_end | resnet50 |" in text
    assert text.endswith(f"{report.END_MARKER}\n\nafter\n")


def test_report_refuses_readme_without_markers(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("# Title\n")
    with pytest.raises(ValueError, match="bench-table:start"):
        report.main(["--results", str(tmp_path), "--write-readme", "--readme", str(readme)])
    assert readme.read_text() == "# Title\n"


def _adaptive_run(radius_fewer: float = 133.0, accuracy: float = 0.919, tolerance_fewer: float = 1.92,
                  loss: float = 0.037) -> dict:
    return dict(
        benchmark="adaptive_goals", device="cpu", date="2026-12-05", commit="853335dffd6c3952313845041b846a70d54caada",
        inputs=334, n0=100, budget=100_000, alpha=0.001, sigma=0.25, fixed_samples=100_100, fixed_seconds=None,
        radius=dict(mean_samples=100_100 / radius_fewer, max_samples=17_041, fewer_samples=radius_fewer, seconds=11.3,
                    certified_accuracy=accuracy, fixed_certified_accuracy=0.919, answers_differ=0),
        tolerance=dict(mean_samples=100_100 / tolerance_fewer, max_samples=100_100, fewer_samples=tolerance_fewer,
                       seconds=564.0, mean_radius_loss=loss, max_radius_loss=0.048, mean_radius=0.82,
                       fixed_mean_radius=0.858))


@pytest.mark.parametrize("run, radius_goal, tolerance_goal", [
    (_adaptive_run(), "met (>= 50x, accuracy >= fixed - 0.02)", "missed (>= 2x, loss <= 0.05)"),
    (_adaptive_run(radius_fewer=40.0, tolerance_fewer=2.5), "missed (>= 50x, accuracy >= fixed - 0.02)",
     "met (>= 2x, loss <= 0.05)"),
    (_adaptive_run(accuracy=0.89, loss=0.06), "missed (>= 50x, accuracy >= fixed - 0.02)",
     "missed (>= 2x, loss <= 0.05)"),
], ids=["paper-run", "fewer-missed", "answers-missed"])
def test_report_adaptive_rows_against_the_adaptive_goals(run, radius_goal, tolerance_goal):
    table = report.format_adaptive_table([run])
    assert table.startswith("Measured on: cpu; 334 inputs, sigma = 0.25, alpha = 0.001, n0 = 100, budget 100,000 "
                            "(the fixed run: 100,100 samples an input).")
    radius = next(line for line in table.splitlines() if "`--radius 0.5`" in line)
    tolerance = next(line for line in table.splitlines() if "`--tolerance 0.05`" in line)
    assert radius_goal in radius and f"{run['radius']['fewer_samples']:.0f}x" in radius
    assert "no answer differs" in radius and radius.endswith("| 2026-12-05 | 853335d |")
    assert tolerance_goal in tolerance and f"{run['tolerance']['fewer_samples']:.2f}x" in tolerance
    assert f"mean radius loss {run['tolerance']['mean_radius_loss']:.3f} (max 0.048)" in tolerance


def test_report_writes_docs_block_between_markers(tmp_path):
    page = tmp_path / "adaptive.md"
    page.write_text(f"# Adaptive\n\n{report.ADAPTIVE_START_MARKER}\nold table\n{report.ADAPTIVE_END_MARKER}\n\nafter\n")
    results = tmp_path / "results"
    (results / "adaptive").mkdir(parents=True)
    report.main(["--results", str(results), "--write-docs", "--adaptive-doc", str(page)])
    assert page.read_text() == (f"# Adaptive\n\n{report.ADAPTIVE_START_MARKER}\n_no adaptive runs recorded yet_\n"
                                f"{report.ADAPTIVE_END_MARKER}\n\nafter\n")
    (results / "adaptive" / "cpu_2026-12-05.json").write_text(json.dumps([_adaptive_run()]))
    report.main(["--results", str(results), "--write-docs", "--adaptive-doc", str(page)])
    text = page.read_text()
    assert "old table" not in text and "| cpu | `--radius 0.5` | 753 | 133x |" in text
    assert text.endswith(f"{report.ADAPTIVE_END_MARKER}\n\nafter\n")


def test_report_refuses_docs_without_markers_and_writes_nothing(tmp_path):
    readme, page = tmp_path / "README.md", tmp_path / "adaptive.md"
    readme.write_text(f"{report.START_MARKER}\nold table\n{report.END_MARKER}\n")
    page.write_text("# Adaptive\n")
    with pytest.raises(ValueError, match="adaptive-table:start"):
        report.main(["--results", str(tmp_path), "--write-readme", "--readme", str(readme), "--write-docs",
                     "--adaptive-doc", str(page)])
    assert readme.read_text() == f"{report.START_MARKER}\nold table\n{report.END_MARKER}\n"
    assert page.read_text() == "# Adaptive\n"


@pytest.mark.parametrize("api_ratio, cli_ratio, goal", [
    (1.04, 1.08, "met (<= 1.1x at once)"),
    (1.04, 1.30, "missed (<= 1.1x at once)"),
    (1.20, 1.08, "missed (<= 1.1x at once)"),
])
def test_report_dataset_run_rows_against_the_run_goals(tmp_path, capsys, api_ratio, cli_ratio, goal):
    record = records.make_record("cpu_dataset_run", model="mnist_cnn", input_shape=(1, 28, 28), dtype="float32",
                                 batch_size=334, n=10_000, inputs=20, at_once_s=5.0, api_s=5.0 * api_ratio,
                                 cli_s=5.0 * cli_ratio, api_ratio=api_ratio, cli_ratio=cli_ratio,
                                 threads=2, cpu="AMD EPYC", cpu_capability="AVX512")
    records.append_records([record], tmp_path / "cpu_2026-12-07.json")
    report.main(["--results", str(tmp_path)])
    row = next(line for line in capsys.readouterr().out.splitlines() if "cpu_dataset_run" in line)
    assert goal in row and f"certify_dataset {5.0 * api_ratio:.2f} s ({api_ratio:.2f}x)" in row and "AVX512" in row


@pytest.mark.parametrize("seconds, goal", [(1.2, "met (--max 0 < 1.5 s)"), (1.6, "missed (--max 0 < 1.5 s)")])
def test_report_startup_rows_against_the_goal_and_the_torch_floor(tmp_path, capsys, seconds, goal):
    record = records.make_record("cpu_startup", model="mnist_cnn", input_shape=(1, 28, 28), dtype="float32",
                                 batch_size=1, n=1, torch_import_s=1.0, import_s=1.1, cli_max0_s=seconds,
                                 cli_max0_ratio=seconds / 1.0, deferred_imported={"import": [], "cli_max0": ["PIL"]},
                                 threads=2, cpu="AMD EPYC", cpu_capability="AVX512")
    records.append_records([record], tmp_path / "cpu_2026-12-07.json")
    report.main(["--results", str(tmp_path)])
    row = next(line for line in capsys.readouterr().out.splitlines() if "cpu_startup" in line)
    assert goal in row and f"--max 0 {seconds:.2f} s = {seconds:.2f}x import torch alone (1.00 s" in row
    assert "imports PIL of the deferred modules" in row
